"""The two single lookups (``POST /v1/lookups/reverse`` and ``/forward``) without the framework's
per-request machinery: :class:`LookupPath`, the app's outermost middleware.

Under load a worker spent about two thirds of an audited lookup's CPU in FastAPI, Starlette and the
app's five middlewares (``bench/README.md``): some forty calls per request before the service ran.
This path answers the requests that need none of it — a plain ``application/json`` body within the
size limit, strict JSON that the route's own body model accepts, no query string, a bearer token
of a role the route allows, within its rate — with the same guard functions, the same inquiry and
the same bytes (the body, ``content-type``, ``x-request-id``, ``cache-control: no-store``).

Everything else goes the framework's way unchanged, the body replayed: a missing or unknown token,
a role the route does not allow, the rate limit, a body that is too large, not JSON, not the
model's, a query string, another media type. So every refusal before the inquiry (401, 403, 413,
415, 422, 429) is the FastAPI route's own, byte for byte, audited as it was; nothing is recorded
and no rate is counted here before that hand-over. A refusal raised by the inquiry itself (a case
of another desk 403, an unknown realm 404, a bad address or time 422, the audit log down 503) is
rendered by the app's own exception handlers (``api/problems.py``), which audit it as before.
``tests/store/test_lookup_path.py`` holds both ways to the same answers and refusals.

The routes stay declared in ``api/routes/lookups.py`` (the OpenAPI document comes from there, and
they answer whatever this path hands over).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import MutableMapping
from typing import Any

from pydantic import BaseModel, ValidationError
from starlette.requests import Request

from api import policy
from api.deps import _lookup
from api.http import json_kind
from api.routes import lookups
from api.schemas import ForwardIn, ReverseIn
from detnat import strictjson
from detnat.errors import DetnatError

Scope = MutableMapping[str, Any]
_JSON = [(b"content-type", b"application/json")]
_NO_STORE = (b"cache-control", b"no-store")


class LookupPath:
    """ASGI middleware: answer the plain single lookups itself, hand the rest to ``app``."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app = app
        self.limit = limit
        self._routes: dict[str, tuple[Any, policy.Access, type[BaseModel]]] | None = None
        self.taken = 0  # requests answered here (or refused by their inquiry): for the tests

    async def __call__(self, scope: Scope, receive: Any, send: Any) -> None:
        if (
            scope["type"] != "http"
            or scope["method"] != "POST"
            or scope["path"] not in _PATHS
            or scope.get("query_string")
            or scope.get("root_path")
        ):
            await self.app(scope, receive, send)
            return
        # What the framework would check first, read here without a refusal of our own.
        token = None
        for name, value in scope["headers"]:
            if name == b"authorization" and token is None:
                token = value
            elif name == b"content-length" and (not value.isdigit() or int(value) > self.limit):
                await self.app(scope, receive, send)  # 413
                return
        if token is None or json_kind(scope) != "application/json":
            await self.app(scope, receive, send)
            return
        messages: list[MutableMapping[str, Any]] = []
        size = 0
        while True:
            message = await receive()
            messages.append(message)
            if message["type"] != "http.request":
                await self.app(scope, _replay(messages, receive), send)
                return
            size += len(message.get("body", b""))
            if size > self.limit or not message.get("more_body", False):
                break
        body = b"".join(m.get("body", b"") for m in messages)
        asked = self._admissible(scope, body, token)
        if asked is None:
            await self.app(scope, _replay(messages, receive), send)
            return
        await self._answer(scope, _replay(messages, receive), send, *asked, token)

    def _admissible(
        self, scope: Scope, body: bytes, header: bytes
    ) -> tuple[Any, policy.Access, BaseModel] | None:
        """The route, its access and the body as its model reads it; None: the framework's way."""
        if not body or len(body) > self.limit:
            return None
        scheme, _, token = header.decode("latin-1").partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            return None
        state = scope["app"].state
        if getattr(state, "sessions", None) is None:
            return None
        route, access, model = self._route(scope)
        try:
            parsed = model.model_validate(strictjson.loads(body, field="body"))
        except (DetnatError, ValidationError):
            return None
        return route, access, parsed

    def _route(self, scope: Scope) -> tuple[Any, policy.Access, type[BaseModel]]:
        if self._routes is None:
            found = {}
            for route in policy.routes_of(scope["app"].routes):
                path = getattr(route, "path", None)
                if path in _PATHS and "POST" in (getattr(route, "methods", None) or ()):
                    access = policy.access_of(route)
                    assert access is not None and access.store == "lookup"
                    found[path] = (route, access, _PATHS[path])
            self._routes = found
        return self._routes[scope["path"]]

    async def _answer(
        self,
        scope: Scope,
        replayed: Any,
        send: Any,
        route: Any,
        access: policy.Access,
        parsed: BaseModel,
        header: bytes,
    ) -> None:
        """Admit as the guard does (else the framework's way, ``replayed`` giving the body again),
        ask, and answer or render the inquiry's refusal."""
        app = scope["app"]
        state = app.state
        token = header.decode("latin-1").partition(" ")[2].strip()
        request_id = uuid.uuid4().hex
        try:  # the guard's admission, side-effect free until the rate is counted
            revision = await state.astore.revision()
            look = await _lookup(state, token, access.roles, revision, request_id)
        except Exception:  # 401, 403, 503: the guard's own refusal
            await self.app(scope, replayed, send)
            return
        if state.limiter.wait_for(look.actor.token_id):
            await self.app(scope, replayed, send)  # 429 (a refusal counts nothing)
            return
        self.taken += 1
        scope.setdefault("state", {}).update(request_id=request_id, actor=look.actor)
        scope["route"] = route
        try:
            query = (
                lookups.reverse_query(parsed)
                if isinstance(parsed, ReverseIn)
                else lookups.forward_query(parsed)  # type: ignore[arg-type]
            )
            answer = await lookups.ask(query, look, state.inquiries)
        except Exception as exc:
            handler = _handler(app, exc)
            if handler is None:
                raise  # the framework's ServerErrorMiddleware: a bare 500, as before
            response = await handler(Request(scope, replayed), exc)
            await response(scope, replayed, _tagged(send, request_id))
            return
        text = json.dumps(answer, separators=(",", ":"), ensure_ascii=False).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(text)).encode()),
                    *_JSON,
                    (b"x-request-id", request_id.encode()),
                    _NO_STORE,
                ],
            }
        )
        await send({"type": "http.response.body", "body": text})


_PATHS: dict[str, type[BaseModel]] = {
    "/v1/lookups/reverse": ReverseIn,
    "/v1/lookups/forward": ForwardIn,
}


def _replay(messages: list[MutableMapping[str, Any]], receive: Any) -> Any:
    """``receive`` with ``messages`` (already read) given again first."""
    pending = list(messages)

    async def replayed() -> MutableMapping[str, Any]:
        if pending:
            return pending.pop(0)
        message: MutableMapping[str, Any] = await receive()
        return message

    return replayed


def _handler(app: Any, exc: Exception) -> Any:
    """The app's handler for ``exc`` as Starlette's ExceptionMiddleware finds it; None for the
    catch-all (``Exception``), which the server error middleware applies (and re-raises)."""
    handlers = app.exception_handlers
    for cls in type(exc).__mro__:
        if cls is Exception:
            return None
        if cls in handlers:
            return handlers[cls]
    return None


def _tagged(send: Any, request_id: str) -> Any:
    """What RequestId and NoStore add to a response, in their order."""

    async def tagged(message: MutableMapping[str, Any]) -> None:
        if message["type"] == "http.response.start":
            headers = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            if not any(name.lower() == b"cache-control" for name, _ in headers):
                headers.append(_NO_STORE)
            message["headers"] = headers
        await send(message)

    return tagged
