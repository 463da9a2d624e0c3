"""Health: liveness of the process (and of its embedded Postgres), readiness of the store."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool

from api.deps import SettingsDep
from api.http import problem
from api.policy import PUBLIC, declare

router = APIRouter(tags=["health"])


@router.get("/healthz")
@declare(PUBLIC, store="none")
async def healthz(settings: SettingsDep) -> JSONResponse:
    """Liveness: the process answers and the embedded Postgres it runs, if any, is up
    (started again here if it died). ``/readyz`` says whether the database is usable."""
    from detnat.store.embedded import revive

    if not await run_in_threadpool(revive, settings):
        down = "the embedded Postgres of this service is down and will not start"
        return problem(503, "unavailable", down)
    return JSONResponse({"status": "ok"})


@router.get("/readyz")
@declare(PUBLIC, store="none")
def readyz(request: Request) -> JSONResponse:
    """Readiness: the database answers and its schema is this code's."""
    from detnat.store import migrate

    try:
        with request.app.state.engine.connect() as conn:
            conn.execute(text("select 1"))
        current = migrate.is_current(request.app.state.engine)
    except DBAPIError:
        return problem(503, "unavailable", "the database is unreachable")
    if not current:
        return problem(503, "unavailable", "migrations are not current (detnat db upgrade)")
    return JSONResponse({"status": "ready"})
