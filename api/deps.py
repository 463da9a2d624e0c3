"""What every request goes through, and what routes take: the guard and typed dependencies.

:func:`guard` runs first on every route: the route's declared access (``api/policy.py``; none
declared: refused to everyone), the bearer token, the role, the per-token rate limit, and the
store access the route declared — a session that is the unit of work (``CtxDep``; only the route
commits), an autocommit session (audit appends), or the async store for single lookups (a
:class:`Lookup`, left on ``request.state.lookup``: the revision read shared with the lookups in
flight, a connection only while a token or a case is not known yet, the audit entry
group-committed). Database work of the guard
runs off the event loop, except on the async lookup path, which is asynchronous throughout and
holds no connection while the request runs.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from api import policy
from detnat.errors import Forbidden, InvalidInput, NotAuthenticated, Unavailable
from detnat.service import audit, inquiry, plans
from detnat.service.timelines import Timelines
from detnat.settings import Settings
from detnat.store import repo
from detnat.store.async_db import AsyncStore


@dataclass
class Ctx:
    """One request: its session (the unit of work), who asks, the store revision it reads."""

    session: Session
    actor: audit.Actor
    revision: int
    request_id: str
    cases: audit.CaseOwners


@dataclass
class Lookup:
    """A single lookup's request: the async store, who asks, the snapshot it answers from."""

    store: AsyncStore
    actor: audit.Actor
    revision: int
    snapshot: Timelines
    request_id: str
    cases: audit.CaseOwners
    _state: Any
    _token: str
    _roles: frozenset[str]

    async def at(self, revision: int) -> Lookup:
        """This lookup again at ``revision`` (the store moved on before its entry was written):
        the token checked again (it may be revoked now) and that revision's snapshot."""
        return await _lookup(self._state, self._token, self._roles, revision, self.request_id)


class RateLimited(Exception):
    def __init__(self, seconds: float) -> None:
        self.seconds = seconds


async def guard(request: Request) -> AsyncIterator[None]:
    """Every route: its declared access, the bearer token, the rate limit, its store access."""
    access = policy.access_of(request.scope.get("route"))
    if access is None:
        raise Forbidden("no policy allows this route")
    if access.roles is policy.PUBLIC:
        yield
        return
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token:
        raise NotAuthenticated("a bearer token is required (Authorization: Bearer dnt_...)")
    state = request.app.state
    if getattr(state, "sessions", None) is None:
        raise Unavailable("the store is not running (the app's lifespan has not started)")
    if access.store == "lookup":
        revision = await state.astore.revision()  # no round trip once a group has committed
        lookup = await _lookup(
            state, token.strip(), access.roles, revision, request.state.request_id
        )
        _limit(state, lookup.actor)
        request.state.actor = lookup.actor
        request.state.lookup = lookup
        _only_declared_query(request)
        yield
        return
    ctx = await run_in_threadpool(_open, state, token.strip(), access, request.state.request_id)
    request.state.actor = ctx.actor
    request.state.ctx = ctx
    try:
        _only_declared_query(request)
        yield
    finally:
        await run_in_threadpool(_close_after_response, ctx.session)


def _only_declared_query(request: Request) -> None:
    """Refuse a query parameter the route does not take: ignored, ``?tolerance=30`` (for
    ``tolerance_seconds``) would answer a batch with no tolerance at all."""
    given = request.query_params
    if not given:
        return
    route = request.scope.get("route")
    dependant = getattr(route, "dependant", None)
    if dependant is None:
        return
    known = _query_names(dependant)
    for name in given:
        if name not in known:
            raise InvalidInput(
                f"this route takes no such query parameter (it takes: "
                f"{', '.join(sorted(known)) or 'none'})",
                field=name[:60],
            )


def _query_names(dependant: Any) -> set[str]:
    """The query parameters a route (and its dependencies) declare."""
    names = {field.alias for field in dependant.query_params}
    for sub in dependant.dependencies:
        names |= _query_names(sub)
    return names


def _open(state: Any, token: str, access: policy.Access, request_id: str) -> Ctx:
    # A lookup's one write is its audit entry: one statement, its own transaction (autocommit
    # saves the BEGIN and COMMIT round trips and holds the chain's lock the least time).
    session: Session = (state.append_sessions if access.store == "append" else state.sessions)()
    try:
        revision = repo.store_revision(session)
        actor = state.tokens.authenticate(session, token, revision=revision, now=plans.utcnow())
        _admit(state, actor, access.roles)
        assert actor is not None
    except BaseException:
        _close_after_response(session)
        raise
    return Ctx(session, actor, revision, request_id, state.cases)


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


async def _lookup(
    state: Any, token: str, roles: frozenset[str], revision: int, request_id: str
) -> Lookup:
    store: AsyncStore = state.astore
    now = plans.utcnow()
    known, actor = state.tokens.peek(token, revision=revision, now=now)
    if not known:  # a connection and a round trip only for a token not known at this revision
        async with store.connection() as conn:
            actor = await state.tokens.authenticate_async(conn, token, revision=revision, now=now)
    _allow(actor, roles)
    assert actor is not None
    snapshot = state.timelines.current(revision)
    if snapshot is None:  # something was published: reload (rare, off the loop)
        snapshot = await run_in_threadpool(_load_snapshot, state, revision)
    return Lookup(store, actor, revision, snapshot, request_id, state.cases, state, token, roles)


def _admit(state: Any, actor: audit.Actor | None, allowed: frozenset[str]) -> None:
    """A valid token, a role the route allows, within the token's rate."""
    _allow(actor, allowed)
    assert actor is not None
    _limit(state, actor)


def _allow(actor: audit.Actor | None, allowed: frozenset[str]) -> None:
    if actor is None:
        raise NotAuthenticated("the token is not valid")
    if actor.role not in allowed:
        raise Forbidden(f"the {actor.role} role may not do this")


def _limit(state: Any, actor: audit.Actor) -> None:
    wait = state.limiter.wait_for(actor.token_id)
    if wait:
        raise RateLimited(wait)


def _load_snapshot(state: Any, revision: int) -> Timelines:
    with state.sessions() as session:
        snapshot: Timelines = state.timelines.get(session, revision)
        return snapshot


async def get_ctx(request: Request) -> Ctx:
    ctx: Ctx = request.state.ctx
    return ctx


async def get_settings(request: Request) -> Settings:
    settings: Settings = request.app.state.settings
    return settings


async def get_inquiries(request: Request) -> inquiry.Inquiries:
    kept: inquiry.Inquiries = request.app.state.inquiries
    return kept


CtxDep = Annotated[Ctx, Depends(get_ctx)]
SettingsDep = Annotated[Settings, Depends(get_settings)]
InquiriesDep = Annotated[inquiry.Inquiries, Depends(get_inquiries)]
