"""``create_app(settings)``: the FastAPI app. Nothing is built at import time.

Every route passes :func:`guard` first: its policy (``api/policy.py``, deny by default), the bearer
token, the per-token rate limit, and one session for the request (the unit of work; only routes
commit). Identity lookups record their audit entry before they answer (``docs/trust.md``).

Every error is an RFC 9457 ``application/problem+json`` with a stable ``code``; request bodies are
limited in size (413) and JSON is parsed strictly. The app keeps no state of its own besides caches
of immutable rows (compiled plans, timelines and token rows per store revision, case owners) and
per-worker rate buckets: Postgres is the only state, so several workers or hosts answer alike.
"""

from __future__ import annotations

import asyncio
import gc
import hashlib
import io
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass
from typing import Annotated, Any

import psycopg
from fastapi import Depends, FastAPI, Query, Request
from fastapi import Path as PathParam
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response, StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import policy, web
from api.capacity import router as capacity_router
from api.http import (
    STATUS_OF,
    BodyLimit,
    NoStore,
    OneValueQuery,
    RequestId,
    StrictJson,
    json_response,
    problem,
    problem_responses,
)
from detnat import __version__
from detnat.errors import (
    Conflict,
    DetnatError,
    Forbidden,
    InvalidInput,
    NotAuthenticated,
    NotFound,
    Unavailable,
)
from detnat.planfile import plan_from_data
from detnat.service import (
    audit,
    batch_lookups,
    evidence,
    inquiry,
    integrity,
    plans,
    times,
    tokens,
)
from detnat.service.plans import MapperCache
from detnat.service.timelines import TimelineCache, Timelines
from detnat.service.times import format_instant, parse_duration, parse_instant, tolerance_seconds
from detnat.service.tokens import TokenCache
from detnat.settings import Settings, get_settings
from detnat.store import repo
from detnat.store.async_db import AsyncConnections

AnswerId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
Int32 = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RealmIn(_Body):
    name: str = Field(examples=["aftr-fra-1"])
    session_drain: str = Field(default="2h", examples=["2h"])
    description: str = ""
    single_approver: bool = Field(
        default=False, description="Opt out of four-eyes publishing (labs); recorded for good."
    )


class VersionIn(_Body):
    plan: dict[str, Any] | None = Field(description="The plan; null retires the realm.")
    effective_from: str = Field(examples=["2026-03-14T21:00:00+01:00"])
    reason: str = Field(examples=["CHG-1234"])
    correction: bool = False


class ApprovalIn(_Body):
    content_sha256: str | None = Field(
        default=None, description="The content hash the approver read (must be the version's)."
    )


class _Identity(_Body):
    case: str = Field(examples=["ABUSE-2026-0412"], description="Case reference (required).")
    legal_basis: str | None = Field(default=None, examples=["§ 113 TKG"])
    requested_by: str | None = Field(default=None, examples=["Staatsanwaltschaft Berlin"])


class ReverseIn(_Identity):
    ip: str = Field(examples=["192.0.2.1"])
    port: int = Field(examples=[1100])
    time: str = Field(examples=["2026-03-14T21:07:33+01:00"])
    tz: str | None = Field(
        default=None,
        examples=["Europe/Berlin"],
        description="The zone of a time without an offset (refused when DST makes it unclear).",
    )
    tolerance_seconds: float = Field(default=0, ge=0, le=86400, allow_inf_nan=False)
    realm: str | None = None


class ForwardIn(_Identity):
    subscriber: str = Field(examples=["2001:db8:1000:100::/56"])
    time: str = Field(examples=["2026-03-14T21:07:33+01:00"])
    tz: str | None = Field(default=None, examples=["Europe/Berlin"])
    realm: str | None = None


class TokenIn(_Body):
    name: str = Field(examples=["abuse-desk-1"])
    role: str = Field(examples=["abuse"])
    person: str | None = Field(
        default=None,
        examples=["Alice Example"],
        description="Who holds the token (default: its name); four eyes compares people.",
    )
    expires: str | None = Field(default=None, examples=["90d"])


# -- the request context: authentication, policy, one session --------------------------------------


@dataclass
class Ctx:
    """One request: its session (the unit of work), who asks, the store revision it reads."""

    session: Session
    actor: audit.Actor
    revision: int
    request_id: str
    cases: audit.CaseOwners


class _RateLimited(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


async def guard(request: Request) -> AsyncIterator[None]:
    """Every route: its policy (deny by default), the bearer token, the rate limit, a session."""
    route = request.scope.get("route")
    allowed = policy.policy_for(request.method, getattr(route, "path", ""))
    if allowed is None:
        raise Forbidden("no policy allows this route")
    if allowed is policy.PUBLIC:
        yield
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("a bearer token is required (Authorization: Bearer dnt_...)")
    state = request.app.state
    if getattr(state, "sessions", None) is None:
        raise Unavailable("the store is not running (the app's lifespan has not started)")
    if policy.async_lookup(request.method, route.path):  # type: ignore[union-attr]
        async with state.aconns.connection() as conn:
            revision = await repo.store_revision_async(conn)
            actor = await state.tokens.authenticate_async(
                conn, token.strip(), revision=revision, now=plans.utcnow()
            )
            _admit(state, actor, allowed)
            assert actor is not None
            request.state.actor = actor
            snapshot = state.timelines.current(revision)
            if snapshot is None:  # something was published: reload (rare, off the loop)
                snapshot = await run_in_threadpool(_load_snapshot, state, revision)
            request.state.lookup = Lookup(
                conn, actor, revision, snapshot, request.state.request_id, state.cases
            )
            yield
        return
    # A lookup's one write is its audit entry: one statement, its own transaction (autocommit
    # saves the BEGIN and COMMIT round trips and holds the chain's lock the least time).
    autocommit = policy.appends_only(request.method, route.path)  # type: ignore[union-attr]
    session: Session = (state.append_sessions if autocommit else state.sessions)()
    try:
        revision = repo.store_revision(session)
        actor = state.tokens.authenticate(
            session, token.strip(), revision=revision, now=plans.utcnow()
        )
        _admit(state, actor, allowed)
        assert actor is not None
        request.state.actor = actor
        request.state.ctx = Ctx(session, actor, revision, request.state.request_id, state.cases)
        yield
    finally:
        _close_after_response(session)


def _close_after_response(session: Session) -> None:
    """End the request's session; this runs after the response is sent (a streamed one too).

    What was to be kept is committed by then, so ending means rolling back a read — and if the
    connection died meanwhile, an error here would come after the response started (an ASGI
    error, "response already started"): the connection is dropped instead, the server has
    rolled it back already.
    """
    try:
        session.close()
    except DBAPIError:
        session.invalidate()


def _admit(state: Any, actor: audit.Actor | None, allowed: frozenset[str]) -> None:
    """A valid token, a role the route allows, within the token's rate."""
    if actor is None:
        raise NotAuthenticated("the token is not valid")
    if actor.role not in allowed:
        raise Forbidden(f"the {actor.role} role may not do this")
    wait = state.limiter.wait_for(actor.token_id)
    if wait:
        raise _RateLimited(wait)


def _load_snapshot(state: Any, revision: int) -> Timelines:
    with state.sessions() as session:
        snapshot: Timelines = state.timelines.get(session, revision)
        return snapshot


@dataclass
class Lookup:
    """A single lookup's request: an async connection (autocommit), who asks, the snapshot."""

    conn: repo.AsyncConn
    actor: audit.Actor
    revision: int
    snapshot: Timelines
    request_id: str
    cases: audit.CaseOwners


async def get_lookup(request: Request) -> Lookup:
    lookup: Lookup = request.state.lookup
    return lookup


LookupDep = Annotated[Lookup, Depends(get_lookup)]


async def get_ctx(request: Request) -> Ctx:
    ctx: Ctx = request.state.ctx
    return ctx


CtxDep = Annotated[Ctx, Depends(get_ctx)]


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from detnat.store.db import make_engine, make_sessions
        from detnat.store.embedded import database_url

        url = database_url(settings, run_migrations=settings.migrate_on_start)
        engine = make_engine(url, pool_size=settings.database_pool_size, pre_ping=False)
        app.state.engine = engine
        app.state.sessions = make_sessions(engine)
        app.state.append_sessions = make_sessions(
            engine.execution_options(isolation_level="AUTOCOMMIT")
        )
        app.state.timelines = TimelineCache()
        app.state.mappers = MapperCache()
        app.state.tokens = TokenCache()
        app.state.cases = audit.CaseOwners()
        app.state.inquiries = inquiry.Inquiries(app.state.mappers, app.state.cases)
        app.state.limiter = policy.RateLimiter(
            settings.rate_limit_per_second, settings.rate_limit_burst
        )
        app.state.aconns = AsyncConnections(url, settings.database_pool_size)
        watchdog = None if settings.database_url else asyncio.create_task(_watch_embedded(settings))
        yield
        if watchdog is not None:
            watchdog.cancel()
        await app.state.aconns.close()
        engine.dispose()

    app = FastAPI(
        title="detnat",
        summary="Who held public address A, port P, at time T?",
        version=__version__,
        lifespan=lifespan,
        dependencies=[Depends(guard)],
        responses=problem_responses(),
    )
    app.state.settings = settings  # the web pages read their session settings here

    @app.exception_handler(DetnatError)
    async def detnat_error(request: Request, exc: DetnatError) -> JSONResponse:
        status = next((s for kind, s in STATUS_OF if isinstance(exc, kind)), 500)
        await _audit_refusal(request, status, exc.code, str(exc), exc.field)
        headers = {"www-authenticate": "Bearer"} if status == 401 else None
        response = problem(status, exc.code, str(exc), field=exc.field)
        if headers:
            response.headers.update(headers)
        return response

    @app.exception_handler(_RateLimited)
    async def rate_limited(request: Request, exc: _RateLimited) -> JSONResponse:
        response = problem(429, "rate_limited", "too many requests for this token; slow down")
        response.headers["retry-after"] = policy.retry_after(exc.seconds)
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        await _audit_refusal(request, 422, "invalid_input", detail, None)
        return problem(422, "invalid_input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(psycopg.Error)
    @app.exception_handler(DBAPIError)
    async def driver_error(request: Request, exc: Exception) -> JSONResponse:
        error = repo.domain_error(exc)  # the store's one translation (the CLI's too)
        if isinstance(error, Conflict | InvalidInput):
            return await detnat_error(request, error)
        return problem(
            503, "unavailable", "the database (and so the audit log) is unavailable: no answer"
        )

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        return problem(500, "internal_error", "internal error")

    # -- health ------------------------------------------------------------------------------------

    @app.get("/healthz", tags=["health"])
    async def healthz() -> JSONResponse:
        """Liveness: the process answers and the embedded Postgres it runs, if any, is up
        (started again here if it died). ``/readyz`` says whether the database is usable."""
        from detnat.store.embedded import revive

        if not await run_in_threadpool(revive, settings):
            down = "the embedded Postgres of this service is down and will not start"
            return problem(503, "unavailable", down)
        return JSONResponse({"status": "ok"})

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
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

    # -- realms and versions -----------------------------------------------------------------------

    @app.get("/v1/realms", tags=["realms"])
    async def list_realms(ctx: CtxDep) -> list[dict[str, object]]:
        return [plans.realm_json(ctx.session, r) for r in plans.list_realms(ctx.session)]

    @app.post("/v1/realms", tags=["realms"], status_code=201)
    async def create_realm(body: RealmIn, ctx: CtxDep) -> dict[str, object]:
        drain = parse_duration(body.session_drain, field="session_drain")
        realm = plans.create_realm(
            ctx.session,
            body.name,
            session_drain=drain,
            by=ctx.actor,
            request_id=ctx.request_id,
            description=body.description,
            single_approver=body.single_approver,
        )
        shown = plans.realm_json(ctx.session, realm)
        ctx.session.commit()
        return shown

    @app.get("/v1/realms/{realm}", tags=["realms"])
    async def show_realm(realm: str, ctx: CtxDep) -> dict[str, object]:
        return plans.realm_json(ctx.session, plans.get_realm(ctx.session, realm))

    @app.get("/v1/realms/{realm}/versions", tags=["versions"])
    async def list_versions(realm: str, ctx: CtxDep) -> list[dict[str, object]]:
        row = plans.get_realm(ctx.session, realm)
        return [plans.version_json(ctx.session, row, v) for v in plans.history(ctx.session, row)]

    @app.post("/v1/realms/{realm}/versions", tags=["versions"], status_code=201)
    async def publish(realm: str, body: VersionIn, ctx: CtxDep) -> dict[str, object]:
        plan = plan_from_data(body.plan) if body.plan is not None else None
        version = plans.publish(
            ctx.session,
            realm,
            plan,
            effective_from=parse_instant(body.effective_from, field="effective_from"),
            reason=body.reason,
            by=ctx.actor,
            request_id=ctx.request_id,
            correction=body.correction,
        )
        shown = plans.version_json(ctx.session, plans.get_realm(ctx.session, realm), version)
        ctx.session.commit()
        return shown

    @app.get("/v1/realms/{realm}/versions/{n}", tags=["versions"])
    async def show_version(realm: str, n: Int32, ctx: CtxDep) -> dict[str, object]:
        row = plans.get_realm(ctx.session, realm)
        version = plans.get_version(ctx.session, row, n)
        return plans.version_json(ctx.session, row, version, with_plan=True)

    @app.post("/v1/realms/{realm}/versions/{n}/approval", tags=["versions"], status_code=201)
    async def approve(realm: str, n: Int32, body: ApprovalIn, ctx: CtxDep) -> dict[str, object]:
        plans.approve(
            ctx.session,
            realm,
            n,
            by=ctx.actor,
            request_id=ctx.request_id,
            content_sha256=body.content_sha256,
        )
        row = plans.get_realm(ctx.session, realm)
        shown = plans.version_json(ctx.session, row, plans.get_version(ctx.session, row, n))
        ctx.session.commit()
        return shown

    # -- identity lookups --------------------------------------------------------------------------

    # Lookups run on the event loop: a few sub-millisecond queries and arithmetic cost less than
    # the thread hops of a sync route.
    @app.post("/v1/lookups/reverse", tags=["lookups"], response_model=None)
    async def reverse(body: ReverseIn, request: Request, look: LookupDep) -> Response:
        asked = inquiry.ReverseQuery(
            body.ip,
            body.port,
            body.time,
            _identity(body),
            "api",
            tz=body.tz,
            tolerance=tolerance_seconds(body.tolerance_seconds),
            realm=body.realm,
        )
        answered = await inquiry.reverse_async(
            look.conn, look.actor, asked, **_inquiry(request, look.snapshot, look.request_id)
        )
        return json_response(answered.to_json())

    @app.post("/v1/lookups/forward", tags=["lookups"], response_model=None)
    async def forward(body: ForwardIn, request: Request, look: LookupDep) -> Response:
        asked = inquiry.ForwardQuery(
            body.subscriber, body.time, _identity(body), "api", tz=body.tz, realm=body.realm
        )
        answered = await inquiry.forward_async(
            look.conn, look.actor, asked, **_inquiry(request, look.snapshot, look.request_id)
        )
        return json_response(answered.to_json())

    @app.post(
        "/v1/lookups/reverse/batch",
        tags=["lookups"],
        summary="Many reverse lookups at once (CSV or JSON), answered in the same format",
        openapi_extra={"requestBody": BATCH_BODY},
        responses={200: {"content": {"text/csv": {}, "application/json": {}}}},
        response_model=None,
    )
    async def reverse_batch(
        request: Request,
        ctx: CtxDep,
        case: str,
        tolerance_seconds: Annotated[float, Query(ge=0, le=86400, allow_inf_nan=False)] = 0,
        realm: str | None = None,
        legal_basis: str | None = None,
        requested_by: str | None = None,
    ) -> Response:
        kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if kind not in ("text/csv", "application/json"):
            return problem(
                415,
                "unsupported_media_type",
                "send the batch as text/csv (columns ip,port,time) or application/json "
                "(an array of {ip, port, time})",
            )
        ask = inquiry.BatchAsk(
            inquiry.Identity(case, legal_basis, requested_by),
            "api",
            tolerance=times.tolerance_seconds(tolerance_seconds),
            realm=realm,
        )
        inquiry.open_batch(
            ctx.session, ctx.actor, ask, kept=request.app.state.inquiries, request_id=ctx.request_id
        )
        limit = min(settings.max_batch_rows, settings.batch_rows_for(ctx.actor.role))
        body = await request.body()
        payload, report = await run_in_threadpool(
            _run_batch, request.app, ctx, body, kind, ask, limit
        )
        headers = {
            "X-Detnat-Rows": str(report.rows),
            "X-Detnat-Bad-Rows": str(report.bad_row_count),
            "X-Detnat-Output-Sha256": report.output_sha256,
            "X-Detnat-Answer-Id": str(report.answer_id),
        }
        return StreamingResponse(iter(payload), media_type=kind, headers=headers)

    # -- answers, evidence, cases ------------------------------------------------------------------

    @app.get("/v1/answers/{answer_id}", tags=["answers"])
    async def show_answer(answer_id: AnswerId, ctx: CtxDep) -> dict[str, object]:
        entry = _readable_entry(ctx, answer_id)
        _audit(ctx, "answer.read", {"answer_id": answer_id}, case=entry.case_ref)
        ctx.session.commit()
        return {
            "answer_id": entry.seq,
            "case": entry.case_ref,
            "at": format_instant(entry.at),
            "action": entry.action,
            "query": entry.detail.get("query"),
            "answer": entry.detail.get("answer", entry.detail.get("batch")),
            "audit_sha256": entry.entry_sha256,
        }

    @app.get("/v1/answers/{answer_id}/evidence", tags=["answers"])
    async def answer_evidence(answer_id: AnswerId, ctx: CtxDep) -> dict[str, object]:
        entry = _readable_entry(ctx, answer_id)
        document = evidence.build(ctx.session, answer_id)
        _audit(ctx, "evidence.read", {"answer_id": answer_id}, case=entry.case_ref)
        ctx.session.commit()
        return document

    @app.get("/v1/cases/{case}/answers", tags=["answers"])
    async def case_answers(case: str, ctx: CtxDep) -> list[dict[str, object]]:
        audit.check_reference(case, field="case")
        if not audit.may_read_case(ctx.session, ctx.actor, case):
            raise NotFound(f"no case {case!r}", field="case")
        _audit(ctx, "case.read", {"case": case}, case=case)
        ctx.session.commit()
        return [
            {
                "answer_id": e.seq,
                "at": format_instant(e.at),
                "action": e.action,
                "status": e.status,
                "actor": e.actor,
            }
            for e in audit.entries(ctx.session, case=case)
            if e.action.startswith("lookup.")
        ]

    # -- tokens ------------------------------------------------------------------------------------

    @app.get("/v1/tokens", tags=["tokens"])
    async def list_tokens(ctx: CtxDep) -> list[dict[str, object]]:
        return [tokens.token_json(t) for t in repo.tokens(ctx.session)]

    @app.post("/v1/tokens", tags=["tokens"], status_code=201)
    async def create_token(body: TokenIn, ctx: CtxDep) -> dict[str, object]:
        expires = tokens.parse_expiry(body.expires, field="expires") if body.expires else None
        secret, row = tokens.create_token(
            ctx.session,
            name=body.name,
            role=body.role,
            by=ctx.actor,
            person=body.person,
            expires=expires,
            request_id=ctx.request_id,
        )
        shown = tokens.token_json(row)
        ctx.session.commit()
        return {"token": secret, **shown}

    @app.delete("/v1/tokens/{token_id}", tags=["tokens"])
    async def revoke_token(token_id: Int32, ctx: CtxDep) -> dict[str, object]:
        row = tokens.revoke_token(ctx.session, token_id, by=ctx.actor, request_id=ctx.request_id)
        shown = tokens.token_json(row)
        ctx.session.commit()
        return shown

    # -- the audit log -----------------------------------------------------------------------------

    @app.get("/v1/audit", tags=["audit"])
    async def read_audit(
        ctx: CtxDep,
        case: str | None = None,
        after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> list[dict[str, object]]:
        if not 1 <= limit <= 1000:
            raise InvalidInput("must be between 1 and 1000", field="limit")
        if case is not None:
            audit.check_reference(case, field="case")
        found = audit.entries(ctx.session, case=case, after=after, limit=limit)
        return [audit.entry_json(e) for e in found]

    @app.get("/v1/audit/verify", tags=["audit"])
    async def verify_audit(ctx: CtxDep) -> dict[str, object]:
        broken, summary = await run_in_threadpool(integrity.verify, ctx.session)
        return {**summary, "broken": [str(b) for b in broken]}

    @app.post("/v1/audit/checkpoints", tags=["audit"], status_code=201)
    async def audit_checkpoint(ctx: CtxDep) -> dict[str, object]:
        shown = audit.checkpoint(ctx.session, ctx.actor, request_id=ctx.request_id)
        ctx.session.commit()
        return shown

    # Outermost last: no-store and ids on every response, then the size limit, then one value
    # per query parameter, then strict JSON.
    app.add_middleware(StrictJson)
    app.add_middleware(OneValueQuery)
    app.include_router(capacity_router)
    app.include_router(web.router)
    app.add_middleware(
        BodyLimit,
        limit=settings.max_body_bytes,
        larger={
            "/v1/lookups/reverse/batch": settings.max_batch_body_bytes,
            "/web/batch": settings.max_batch_body_bytes,
        },
    )
    app.add_middleware(RequestId)
    app.add_middleware(NoStore)
    return app


def _identity(body: _Identity) -> inquiry.Identity:
    return inquiry.Identity(body.case, body.legal_basis, body.requested_by)


def _inquiry(request: Request, snapshot: Timelines, request_id: str) -> dict[str, Any]:
    """What an inquiry takes from the app besides the question: its snapshot, caches, clock."""
    return {
        "snapshot": snapshot,
        "kept": request.app.state.inquiries,
        "now": plans.utcnow(),
        "request_id": request_id,
    }


async def _audit_refusal(
    request: Request, status: int, code: str, message: str, field: str | None
) -> None:
    """Record a refused identity request (403, 404, 422) of an authenticated caller.

    Its own short transaction: the request's own session may be the one that failed. If this
    write fails too the refusal still goes out: it carries no answer.
    """
    actor = getattr(request.state, "actor", None)
    route = request.scope.get("route")
    path = getattr(route, "path", "")
    if actor is None or status not in (403, 404, 422):
        return
    if (request.method, path) not in policy.IDENTITY_ROUTES:
        return

    def write() -> None:
        with request.app.state.append_sessions() as session:
            audit.record_refusal(
                session,
                actor,
                request_id=request.state.request_id,
                route=f"{request.method} {path}",
                status=status,
                code=code,
                message=message,
                field=field,
            )

    with suppress(DBAPIError, psycopg.Error):
        await run_in_threadpool(write)


def _audit(ctx: Ctx, action: str, detail: dict[str, Any], *, case: str | None = None) -> None:
    audit.record(
        ctx.session, ctx.actor, action, request_id=ctx.request_id, detail=detail, case=case
    )


def _readable_entry(ctx: Ctx, answer_id: int) -> Any:
    """The audit entry of an answer the caller may read (else 404: no hint that it exists)."""
    entry = evidence.lookup_entry(ctx.session, answer_id)
    if not audit.may_read_case(ctx.session, ctx.actor, entry.case_ref):
        raise NotFound(f"no answer {answer_id}", field="answer_id")
    return entry


BATCH_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "ip,port,time\n192.0.2.1,1100,2026-03-14T21:07:33+01:00\n",
        },
        "application/json": {
            "schema": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "ip": {"type": "string"},
                        "port": {"type": "integer"},
                        "time": {"type": "string"},
                    },
                    "required": ["ip", "port", "time"],
                    "additionalProperties": False,
                },
            },
            "example": [{"ip": "192.0.2.1", "port": 1100, "time": "2026-03-14T21:07:33+01:00"}],
        },
    },
}


def _run_batch(
    app: FastAPI, ctx: Ctx, body: bytes, kind: str, ask: inquiry.BatchAsk, limit: int
) -> tuple[list[bytes], batch_lookups.BatchReport]:
    """Answer the whole batch, audit it (rows, input and output SHA-256), commit; then send."""
    query = batch_lookups.BatchQuery(
        snapshot=app.state.timelines.get(ctx.session, ctx.revision),
        now=plans.utcnow(),
        mappers=app.state.mappers,
        tolerance=ask.tolerance,
        realm=ask.realm,
        max_rows=limit,
    )
    chunks: list[bytes] = []
    if kind == "application/json":
        answers, report = batch_lookups.reverse_json_at(query, batch_lookups.load_json_rows(body))
        data = json.dumps(answers, separators=(",", ":"), ensure_ascii=False).encode()
        report.output_sha256 = hashlib.sha256(data).hexdigest()
        chunks.append(data)
    else:
        text = body.decode("utf-8-sig", "surrogateescape")
        report = batch_lookups.reverse_csv_at(
            query,
            io.StringIO(text, newline=""),
            lambda part: chunks.append(part.encode("utf-8", "surrogateescape")),
        )
    inquiry.record_batch(
        ctx.session,
        ctx.actor,
        ask,
        report,
        kind=kind,
        input_sha256=hashlib.sha256(body).hexdigest(),
        request_id=ctx.request_id,
    )
    ctx.session.commit()
    ctx.session.close()  # nothing touches the database while the answer streams
    return chunks, report


EMBEDDED_WATCH_SECONDS = 2.0


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
