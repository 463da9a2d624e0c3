"""``create_app(settings)``: the FastAPI app, composed. Nothing is built at import time.

The routes live in feature modules (``api/routes``), each declaring who may call it
(``api/policy.py``); every request passes :func:`api.deps.guard` first (the declared access, the
bearer token, the rate limit, the store access); errors become RFC 9457 problems
(``api/problems.py``); request bodies are limited in size (413) and JSON is parsed strictly
(``api/http.py``). The two single lookups, when nothing is to be refused before they are asked,
are answered in front of all that by the same guard functions and inquiry
(``api/lookup_path.py``); everything else, their refusals included, goes the routes' way.

The app keeps no state of its own besides caches of immutable rows (compiled plans, timelines and
token rows per store revision, case owners) and per-worker rate buckets: Postgres is the only
state, so several workers or hosts answer alike.
"""

from __future__ import annotations

import asyncio
import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from starlette.concurrency import run_in_threadpool

from api import policy, problems, web
from api.capacity import router as capacity_router
from api.deps import guard
from api.http import BodyLimit, NoStore, OneValueQuery, RequestId, StrictJson, problem_responses
from api.lookup_path import LookupPath
from api.routes import answers, auditlog, complaints, health, lookups, realms, tokens
from detnat import __version__
from detnat.service import audit, inquiry
from detnat.service.plans import MapperCache
from detnat.service.timelines import TimelineCache
from detnat.service.tokens import TokenCache
from detnat.settings import Settings, get_settings
from detnat.store.async_db import AsyncStore

ROUTERS = (health, realms, lookups, answers, tokens, auditlog, complaints)
EMBEDDED_WATCH_SECONDS = 2.0


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from detnat.store.db import make_engine, make_sessions
        from detnat.store.embedded import database_url

        url = database_url(settings, run_migrations=settings.migrate_on_start)
        engine = make_engine(url, pool_size=settings.database_pool_size, pre_ping=False)
        state = app.state
        state.engine = engine
        state.sessions = make_sessions(engine)
        state.append_sessions = make_sessions(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        state.timelines = TimelineCache()
        state.mappers = MapperCache()
        state.tokens = TokenCache()
        state.cases = audit.CaseOwners()
        state.inquiries = inquiry.Inquiries(state.mappers, state.cases)
        state.limiter = policy.RateLimiter(
            settings.rate_limit_per_second, settings.rate_limit_burst
        )
        state.astore = AsyncStore(url, settings.database_pool_size)
        watchdog = None if settings.database_url else asyncio.create_task(_watch_embedded(settings))
        yield
        if watchdog is not None:
            watchdog.cancel()
        await state.astore.close()
        engine.dispose()

    app = FastAPI(
        title="detnat",
        summary="Who held public address A, port P, at time T?",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(guard)],
        responses=problem_responses(),
    )
    app.state.settings = settings  # the routes and the web pages read their settings here
    problems.install(app)
    for module in ROUTERS:
        app.include_router(module.router)
    app.include_router(capacity_router)
    app.include_router(web.router)
    # Outermost last: no-store and ids on every response, then the size limit, then one value
    # per query parameter, then strict JSON.
    app.add_middleware(StrictJson)
    app.add_middleware(OneValueQuery)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        larger={
            lookups.BATCH_PATH: settings.max_batch_body_bytes,
            "/web/batch": settings.max_batch_body_bytes,
            complaints.PATH: settings.max_batch_body_bytes,
            "/web/complaints": settings.max_batch_body_bytes,
        },
    )
    app.add_middleware(RequestId)
    app.add_middleware(NoStore)
    # The two single lookups, answered without the framework when nothing needs it.
    app.add_middleware(LookupPath, limit=settings.max_body_bytes)
    return app


async def _watch_embedded(settings: Settings) -> None:
    """Start the embedded Postgres again when it dies, whether or not anything probes /healthz."""
    from detnat.store.embedded import revive

    while True:
        await asyncio.sleep(EMBEDDED_WATCH_SECONDS)
        await run_in_threadpool(revive, settings)


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory`` (``detnat serve``): a server process of its own.

    The garbage collector's full passes over the long-lived objects of the app (plans, caches,
    SQLAlchemy's metadata) showed as p99 latency spikes: they are frozen out of its view, and young
    collections run less often.
    """
    app = create_app(get_settings())
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 20, 100)
    return app


__all__ = ["create_app"]
