"""Who may call what: access declared on every route, deny by default, per-token rate limits.

Every route declares its :class:`Access` on its endpoint (:func:`declare`);
``tests/store/test_trust_api.py`` walks the app's routes and every role against them, and fails on
a route without a declaration — which the guard refuses to everyone. Roles:

- ``abuse``: reverse lookups (single, batch), and only the answers of cases it opened;
- ``legal``: forward and reverse lookups, answers and evidence files of every case;
- ``planner``: read realms and plans, capacity and plan diffs; no identity lookups;
- ``admin``: realms, publishing and approving, tokens (and what planners do);
- ``auditor``: read and verify the audit log, record checkpoints.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

PUBLIC: frozenset[str] = frozenset({"*"})
ABUSE, LEGAL, PLANNER, ADMIN, AUDITOR = "abuse", "legal", "planner", "admin", "auditor"
ROLES = (ABUSE, LEGAL, PLANNER, ADMIN, AUDITOR)
READ_PLANS = frozenset({LEGAL, PLANNER, ADMIN, AUDITOR})

# Named role sets: each API route declares one (:func:`declare`); the web pages take the same.
ADMINS = frozenset({ADMIN})
AUDITORS = frozenset({AUDITOR})
CHECKPOINTS = frozenset({AUDITOR, ADMIN})
REVERSE = frozenset({ABUSE, LEGAL})
FORWARD = frozenset({LEGAL})
ANSWERS = frozenset({ABUSE, LEGAL})
EVIDENCE = frozenset({LEGAL})
PLANNING = frozenset({PLANNER, ADMIN})

Store = Literal["unit", "append", "lookup", "none"]


@dataclass(frozen=True)
class Access:
    """What a route declares: who may call it, and how it reaches the store.

    ``store``: ``unit`` — one session, the route commits (the unit of work); ``append`` — an
    autocommit session (the route's only writes are appends to the audit log); ``lookup`` — an
    async autocommit connection (single lookups); ``none`` — no store (public routes, or routes
    that open their own). ``identity``: the route names subscribers or reads answers, so a refusal
    there is audited too.
    """

    roles: frozenset[str]
    store: Store = "unit"
    identity: bool = False


E = TypeVar("E", bound=Callable[..., Any])


def declare(
    roles: frozenset[str], *, store: Store = "unit", identity: bool = False
) -> Callable[[E], E]:
    """Mark an endpoint with its :class:`Access` (put it under the route decorator)::

    @router.get("/v1/realms")
    @declare(READ_PLANS)
    def list_realms(ctx: CtxDep) -> ...
    """

    def mark(endpoint: E) -> E:
        endpoint.detnat_access = Access(roles, store, identity)  # type: ignore[attr-defined]
        return endpoint

    return mark


# FastAPI's own pages (the API's description: the code is public; it names no realm, plan or
# subscriber). Every other route declares its access on its endpoint (or its route class).
_FRAMEWORK = {"/openapi.json", "/docs", "/docs/oauth2-redirect", "/redoc"}


def access_of(route: object) -> Access | None:
    """The access a route declares, or None: no declaration, refused to everyone."""
    declared = getattr(route, "detnat_access", None) or getattr(
        getattr(route, "endpoint", None), "detnat_access", None
    )
    if isinstance(declared, Access):
        return declared
    if getattr(route, "path", None) in _FRAMEWORK:
        return Access(PUBLIC, "none")
    return None


# Web pages are signed in with a session, not a bearer token: the guard lets them through and
# their own table (api/web/access.py, deny by default too) decides.
WEB_PAGE = Access(PUBLIC, "none")


def routes_of(routes: Any) -> Iterator[Any]:
    """Every route, those of included routers too (FastAPI keeps those behind the router)."""
    for route in routes:
        included = getattr(route, "original_router", None)
        if included is not None:
            yield from routes_of(included.routes)
        else:
            yield route


def route_access(app: Any, method: str, path: str) -> Access | None:
    """The access declared by the app's route for ``method`` and ``path`` (its template)."""
    wanted = "GET" if method == "HEAD" else method
    for route in routes_of(app.routes):
        if getattr(route, "path", None) == path and wanted in (
            getattr(route, "methods", None) or ()
        ):
            return access_of(route)
    return None


@dataclass
class _Bucket:
    tokens: float
    stamp: float


class RateLimiter:
    """A token bucket per API token, per worker (``rate`` requests/s, bursts of ``burst``).

    Kept in the worker's memory like the caches: with N workers, configure the per-worker share
    (``detnat serve`` divides the setting by its worker count).
    """

    def __init__(self, rate: float, burst: float) -> None:
        self.rate, self.burst = rate, burst
        self._buckets: dict[int, _Bucket] = {}
        self._lock = threading.Lock()

    def wait_for(self, key: int) -> float:
        """0 if a request may go now (and counts it), else the seconds until one may."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.get(key)
            if bucket is None:
                bucket = self._buckets[key] = _Bucket(self.burst, now)
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
            if bucket.tokens >= 1:
                bucket.tokens -= 1
                return 0.0
            return (1 - bucket.tokens) / self.rate


def retry_after(seconds: float) -> str:
    return str(max(1, math.ceil(seconds)))
