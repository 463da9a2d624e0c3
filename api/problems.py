"""Every error of the API as an RFC 9457 problem (``api.http.problem``), in one place.

Domain errors (:mod:`detnat.errors`) map to their HTTP status (``errors.outcome_of``); driver
errors are translated once, by the store (:func:`detnat.store.repo.domain_error`), as the CLI's
are; anything unexpected is a bare ``500 internal_error``, never a trace. A refused identity
request of an authenticated caller (403, 404, 422 on a route that names subscribers) is recorded
in the audit log before the refusal leaves (ASVS 16.3.2).
"""

from __future__ import annotations

import logging
from contextlib import suppress

import psycopg
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy.exc import DBAPIError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from api import policy
from api.deps import RateLimited
from api.http import problem
from detnat.errors import Conflict, DetnatError, InvalidInput, outcome_of
from detnat.service import audit
from detnat.store import repo

UNAVAILABLE = "the database (and so the audit log) is unavailable: no answer"
_log = logging.getLogger("detnat.api")


async def detnat_error(request: Request, exc: DetnatError) -> JSONResponse:
    status = outcome_of(exc).http_status
    if status == 503 and from_the_driver(exc):
        # What failed (libpq's text: the server, its port, the user, the database) is the
        # operator's to read in the server's log, not any caller's: a 503 may come before the
        # token is checked.
        _log.warning("503 for %s %s: %s", request.method, request.url.path, exc)
        return problem(503, "unavailable", UNAVAILABLE)
    await audit_refusal(request, status, exc.code, str(exc), exc.field)
    response = problem(status, exc.code, str(exc), field=exc.field)
    if status == 401:
        response.headers["www-authenticate"] = "Bearer"
    return response


def from_the_driver(exc: BaseException) -> bool:
    """Whether ``exc`` is the store's translation of a driver error (its text is libpq's)."""
    cause = exc.__cause__ or exc.__context__
    return isinstance(cause, psycopg.Error | DBAPIError)


async def rate_limited(request: Request, exc: RateLimited) -> JSONResponse:
    response = problem(429, "rate_limited", "too many requests for this token; slow down")
    response.headers["retry-after"] = policy.retry_after(exc.seconds)
    return response


async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
    errors = [
        {"field": ".".join(str(p) for p in e["loc"][1:]), "message": e["msg"]} for e in exc.errors()
    ]
    detail = "; ".join(f"{e['field']}: {e['message']}" for e in errors) or "invalid request"
    await audit_refusal(request, 422, "invalid_input", detail, None)
    return problem(422, "invalid_input", detail, errors=errors)


async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
    code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
    return problem(exc.status_code, code, str(exc.detail))


async def driver_error(request: Request, exc: Exception) -> JSONResponse:
    error = repo.domain_error(exc)  # the store's one translation (the CLI's too)
    if isinstance(error, Conflict | InvalidInput):
        return await detnat_error(request, error)
    _log.warning("503 for %s %s: %s", request.method, request.url.path, error or exc)
    return problem(503, "unavailable", UNAVAILABLE)


async def internal(request: Request, exc: Exception) -> JSONResponse:
    return problem(500, "internal_error", "internal error")


def install(app: FastAPI) -> None:
    app.add_exception_handler(DetnatError, detnat_error)  # type: ignore[arg-type]
    app.add_exception_handler(RateLimited, rate_limited)  # type: ignore[arg-type]
    app.add_exception_handler(RequestValidationError, invalid)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, http_error)  # type: ignore[arg-type]
    app.add_exception_handler(psycopg.Error, driver_error)
    app.add_exception_handler(DBAPIError, driver_error)
    app.add_exception_handler(Exception, internal)


async def audit_refusal(
    request: Request, status: int, code: str, message: str, field: str | None
) -> None:
    """Record a refused identity request (403, 404, 422) of an authenticated caller.

    Its own short transaction: the request's own session may be the one that failed. If this
    write fails too the refusal still goes out: it carries no answer.
    """
    actor = getattr(request.state, "actor", None)
    route = request.scope.get("route")
    access = policy.access_of(route)
    if actor is None or status not in (403, 404, 422) or access is None or not access.identity:
        return
    where = f"{request.method} {getattr(route, 'path', '')}"

    def write() -> None:
        with request.app.state.append_sessions() as session:
            audit.record_refusal(
                session,
                actor,
                request_id=request.state.request_id,
                route=where,
                status=status,
                code=code,
                message=message,
                field=field,
            )

    with suppress(DBAPIError, psycopg.Error):
        await run_in_threadpool(write)
