"""HTTP plumbing of the app: RFC 9457 problems, strict JSON, body limits, request ids.

Errors carry data (:mod:`detnat.errors`); here they become ``application/problem+json`` with the
HTTP status of their kind and a stable ``code``.
"""

from __future__ import annotations

import email.message
import json
import uuid
from collections.abc import MutableMapping
from typing import Any
from urllib.parse import parse_qsl

from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field

from detnat import strictjson
from detnat.errors import (
    InvalidInput,
)

PROBLEM = "application/problem+json"


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


def json_response(body: object, status: int = 200) -> Response:
    """JSON without FastAPI's encoder pass (answers are plain dicts of str/int/list)."""
    return Response(
        json.dumps(body, separators=(",", ":"), ensure_ascii=False),
        status_code=status,
        media_type="application/json",
    )


class BodyLimit:
    """Refuse bodies over the limit with 413, with or without a Content-Length.

    ``limit`` applies to every path but those in ``larger`` (the batch endpoint).
    """

    def __init__(self, app: Any, limit: int, larger: dict[str, int] | None = None) -> None:
        self.app, self.limit, self.larger = app, limit, larger or {}

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.larger.get(scope["path"], self.limit)
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await problem(413, "body_too_large", f"request body over {limit} bytes")(
                    scope, receive, send
                )
                return
        seen = 0
        started = False

        async def limited() -> MutableMapping[str, Any]:
            nonlocal seen
            message: MutableMapping[str, Any] = await receive()
            seen += len(message.get("body", b""))
            if seen > limit:
                raise _TooLarge
            return message

        async def watched(message: MutableMapping[str, Any]) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, limited, watched)
        except _TooLarge:
            if not started:
                await problem(413, "body_too_large", f"request body over {limit} bytes")(
                    scope, receive, send
                )


class _TooLarge(Exception):
    pass


class StrictJson:
    """Refuse JSON bodies that Python's parser would quietly accept: duplicate keys (the last
    would win), NaN and Infinity, over-long numbers, nesting deep enough to exhaust the parser.
    422, before routing.

    Every body FastAPI would read as JSON passes here: ``application/json`` is parsed strictly,
    and the other JSON types FastAPI reads (``application/*+json``) are ``415``, so no JSON body
    reaches a route unchecked.
    """

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH", "DELETE"):
            await self.app(scope, receive, send)
            return
        kind = json_kind(scope)
        if kind is None or scope["path"] == "/v1/lookups/reverse/batch":
            await self.app(scope, receive, send)  # the batch endpoint parses strictly itself
            return
        if kind != "application/json":
            await problem(
                415,
                "unsupported_media_type",
                f"send JSON bodies as application/json, not {kind[:60]}",
            )(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                await self.app(scope, receive, send)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        try:
            if body:
                strict_json(body)
        except InvalidInput as exc:
            await problem(422, exc.code, str(exc), field=exc.field)(scope, receive, send)
            return
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if replayed:
                message: MutableMapping[str, Any] = await receive()
                return message
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        await self.app(scope, replay, send)


class OneValueQuery:
    """Refuse a query parameter given more than once (``?case=A&case=B``): frameworks quietly
    take one of them (FastAPI the last), so the request would not mean what it says. 422."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope.get("query_string"):
            seen: set[str] = set()
            # Read as Starlette reads it, so both see the same names.
            for name, _ in parse_qsl(scope["query_string"].decode("latin-1"), True):
                if name in seen:
                    await problem(
                        422, "invalid_input", "given more than once; give it once", field=name[:60]
                    )(scope, receive, send)
                    return
                seen.add(name)
        await self.app(scope, receive, send)


class NoStore:
    """``Cache-Control: no-store`` on every response that does not say otherwise (the static
    assets do): answers, evidence files and pages carry identities no cache may keep."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def marked(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                if not any(name.lower() == b"cache-control" for name, _ in headers):
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, marked)


def json_kind(scope: MutableMapping[str, Any]) -> str | None:
    """The content type of a request whose body FastAPI would parse as JSON, else None.

    The same reading as FastAPI's (the first ``Content-Type`` header, parsed by
    :mod:`email.message`; ``application/json`` or ``application/*+json``), so the two cannot
    disagree about which bodies are JSON.
    """
    value = next((v for n, v in scope["headers"] if n == b"content-type"), None)
    if not value:
        return None
    try:
        return _JSON_KINDS[value]
    except KeyError:
        pass
    kind = _json_kind(value)
    if len(_JSON_KINDS) < _JSON_KINDS_KEPT:
        _JSON_KINDS[value] = kind
    return kind


# The readings of the Content-Type values seen (clients send a handful): parsing one with
# email.message costs more than the rest of the middleware together.
_JSON_KINDS: dict[bytes, str | None] = {}
_JSON_KINDS_KEPT = 256


def _json_kind(value: bytes) -> str | None:
    message = email.message.Message()
    message["content-type"] = value.decode("latin-1")
    if message.get_content_maintype() != "application":
        return None
    subtype = message.get_content_subtype()
    if subtype == "json" or subtype.endswith("+json"):
        return f"application/{subtype}"
    return None


def strict_json(body: bytes) -> Any:
    """Parse a request body strictly (:mod:`detnat.strictjson`)."""
    return strictjson.loads(body, field="body")


class Problem(BaseModel):
    """An RFC 9457 problem: every error of the API."""

    type: str
    title: str
    status: int
    code: str = Field(description="Stable machine-readable code, e.g. invalid_query.")
    detail: str
    field: str | None = None


def problem_responses() -> dict[int | str, dict[str, Any]]:
    schema = {"application/problem+json": {"schema": Problem.model_json_schema()}}
    reasons = {
        401: "No valid bearer token (unknown, revoked and expired tokens alike).",
        403: "The token's role may not do this (or the case belongs to someone else).",
        404: "No such realm, version, answer or token.",
        409: "The store's invariants refuse it (conflict).",
        413: "Request body too large.",
        415: "Unsupported media type.",
        422: "Invalid input; `field` names it.",
        429: "Rate limited; see Retry-After.",
        503: "The database (and so the audit log) is unavailable: no answer was given.",
    }
    return {code: {"description": text, "content": schema} for code, text in reasons.items()}


# -- request bodies --------------------------------------------------------------------------------


class RequestId:
    """Give every request an id (``X-Request-Id`` on every response; recorded in the audit)."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id

        async def tagged(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                message.setdefault("headers", [])
                message["headers"] = [*message["headers"], (b"x-request-id", request_id.encode())]
            await send(message)

        await self.app(scope, receive, tagged)
