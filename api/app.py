"""``create_app(settings)``: the FastAPI app. Nothing is built at import time.

Every error is an RFC 9457 ``application/problem+json`` with a stable ``code``; request bodies are
limited in size (413). The app keeps no state of its own besides compiled plans of immutable
versions: Postgres is the only state, so several workers or hosts answer alike.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, MutableMapping
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session
from starlette.exceptions import HTTPException as StarletteHTTPException

from detnat.errors import Conflict, DetnatError, InvalidInput, NotFound, Unavailable
from detnat.planfile import plan_from_data
from detnat.service import lookups, plans
from detnat.service.times import check_tolerance, parse_duration, parse_instant
from detnat.settings import Settings, get_settings

PROBLEM = "application/problem+json"
_STATUS = ((InvalidInput, 422), (NotFound, 404), (Conflict, 409), (Unavailable, 503))


def problem(status: int, code: str, detail: str, **extra: object) -> JSONResponse:
    body = {
        "type": f"https://detnat.dev/problems/{code}",
        "title": code.replace("_", " "),
        "status": status,
        "code": code,
        "detail": detail,
        **extra,
    }
    return JSONResponse(body, status_code=status, media_type=PROBLEM)


class BodyLimit:
    """Refuse bodies over ``limit`` bytes with 413, with or without a Content-Length."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await problem(413, "body_too_large", f"request body over {self.limit} bytes")(
                    scope, receive, send
                )
                return
        seen = 0

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message: MutableMapping[str, Any] = await receive()
            seen += len(message.get("body", b""))
            if seen > self.limit:
                raise _TooLarge
            return message

        try:
            await self.app(scope, limited, send)
        except _TooLarge:
            await problem(413, "body_too_large", f"request body over {self.limit} bytes")(
                scope, receive, send
            )


class _TooLarge(Exception):
    pass


# -- request bodies --------------------------------------------------------------------------------


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class RealmIn(_Body):
    name: str = Field(examples=["aftr-fra-1"])
    session_drain: str = Field(default="2h", examples=["2h"])
    description: str = ""


class VersionIn(_Body):
    plan: dict[str, Any] | None = Field(description="The plan; null retires the realm.")
    effective_from: str = Field(examples=["2026-03-14T21:00:00+01:00"])
    reason: str = Field(examples=["CHG-1234"])
    correction: bool = False
    published_by: str | None = None


class ReverseIn(_Body):
    ip: str = Field(examples=["192.0.2.1"])
    port: int = Field(examples=[1100])
    time: str = Field(examples=["2026-03-14T21:07:33+01:00"])
    tolerance_seconds: float = 0
    realm: str | None = None
    case: str | None = None


class ForwardIn(_Body):
    subscriber: str = Field(examples=["2001:db8:1000:100::/56"])
    time: str
    realm: str | None = None
    case: str | None = None


def get_session(request: Request) -> Iterator[Session]:
    """The request's session; routes that write commit it themselves (the edge commits)."""
    with request.app.state.sessions() as session:
        yield session


SessionDep = Annotated[Session, Depends(get_session)]


def create_app(settings: Settings) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        from detnat.store.db import make_engine, make_sessions
        from detnat.store.embedded import database_url

        engine = make_engine(database_url(settings, run_migrations=settings.migrate_on_start))
        app.state.engine = engine
        app.state.sessions = make_sessions(engine)
        yield
        engine.dispose()

    app = FastAPI(
        title="detnat",
        summary="Who held public address A, port P, at time T?",
        version="0.1.0",
        lifespan=lifespan,
    )

    @app.exception_handler(DetnatError)
    async def detnat_error(request: Request, exc: DetnatError) -> JSONResponse:
        status = next((s for kind, s in _STATUS if isinstance(exc, kind)), 500)
        return problem(status, exc.code, str(exc), field=exc.field)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]}
            for e in exc.errors()
        ]
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
        return problem(422, "invalid_input", detail, errors=errors)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        return problem(exc.status_code, code, str(exc.detail))

    @app.exception_handler(OperationalError)
    async def db_down(request: Request, exc: OperationalError) -> JSONResponse:
        return problem(503, "unavailable", "the database is unreachable")

    @app.exception_handler(Exception)
    async def internal(request: Request, exc: Exception) -> JSONResponse:
        return problem(500, "internal_error", "internal error")

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        from detnat.store import migrate

        try:
            with request.app.state.engine.connect() as conn:
                conn.execute(text("select 1"))
            current = migrate.is_current(request.app.state.engine)
        except OperationalError:
            return problem(503, "unavailable", "the database is unreachable")
        if not current:
            return problem(503, "unavailable", "migrations are not current (detnat db upgrade)")
        return JSONResponse({"status": "ready"})

    @app.get("/v1/realms", tags=["realms"])
    def list_realms(session: SessionDep) -> list[dict[str, object]]:
        return [plans.realm_json(session, r) for r in plans.list_realms(session)]

    @app.post("/v1/realms", tags=["realms"], status_code=201)
    def create_realm(body: RealmIn, session: SessionDep) -> dict[str, object]:
        drain = parse_duration(body.session_drain, field="session_drain")
        realm = plans.create_realm(
            session, body.name, session_drain=drain, description=body.description
        )
        shown = plans.realm_json(session, realm)
        session.commit()
        return shown

    @app.get("/v1/realms/{realm}", tags=["realms"])
    def show_realm(realm: str, session: SessionDep) -> dict[str, object]:
        return plans.realm_json(session, plans.get_realm(session, realm))

    @app.get("/v1/realms/{realm}/versions", tags=["versions"])
    def list_versions(realm: str, session: SessionDep) -> list[dict[str, object]]:
        row = plans.get_realm(session, realm)
        return [plans.version_json(session, row, v) for v in plans.history(session, row)]

    @app.post("/v1/realms/{realm}/versions", tags=["versions"], status_code=201)
    def publish(realm: str, body: VersionIn, session: SessionDep) -> dict[str, object]:
        plan = plan_from_data(body.plan) if body.plan is not None else None
        version = plans.publish(
            session,
            realm,
            plan,
            effective_from=parse_instant(body.effective_from, field="effective_from"),
            reason=body.reason,
            published_by=body.published_by or "api",
            correction=body.correction,
        )
        shown = plans.version_json(session, plans.get_realm(session, realm), version)
        session.commit()
        return shown

    @app.get("/v1/realms/{realm}/versions/{n}", tags=["versions"])
    def show_version(realm: str, n: int, session: SessionDep) -> dict[str, object]:
        row = plans.get_realm(session, realm)
        return plans.version_json(session, row, plans.get_version(session, row, n), with_plan=True)

    @app.post("/v1/lookups/reverse", tags=["lookups"])
    def reverse(body: ReverseIn, session: SessionDep) -> dict[str, object]:
        tolerance = check_tolerance(
            timedelta(seconds=body.tolerance_seconds), field="tolerance_seconds"
        )
        answer = lookups.reverse_at(
            session,
            body.ip,
            body.port,
            at=parse_instant(body.time),
            tolerance=tolerance,
            realm=body.realm,
        )
        if body.case is not None:
            answer["case"] = plans.check_text(body.case, field="case")
        return answer

    @app.post("/v1/lookups/forward", tags=["lookups"])
    def forward(body: ForwardIn, session: SessionDep) -> dict[str, object]:
        answer = lookups.forward_at(
            session, body.subscriber, at=parse_instant(body.time), realm=body.realm
        )
        if body.case is not None:
            answer["case"] = plans.check_text(body.case, field="case")
        return answer

    app.add_middleware(BodyLimit, limit=settings.max_body_bytes)
    return app


def app_from_environment() -> FastAPI:
    """For ``uvicorn --factory`` (``detnat serve``)."""
    return create_app(get_settings())


__all__ = ["create_app"]
