"""Who may call what: the policy table, deny by default, and per-token rate limits.

Every route of the app must appear here (``tests/store/test_trust_api.py`` enumerates the app's
routes against every role and fails on a route without a policy); a route that is missing is
refused to everyone. Roles:

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
from dataclasses import dataclass

PUBLIC: frozenset[str] = frozenset({"*"})
ABUSE, LEGAL, PLANNER, ADMIN, AUDITOR = "abuse", "legal", "planner", "admin", "auditor"
ROLES = (ABUSE, LEGAL, PLANNER, ADMIN, AUDITOR)
READ_PLANS = frozenset({LEGAL, PLANNER, ADMIN, AUDITOR})

POLICY: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    # A redirect to the web pages (/web/), which check sessions themselves (api/web/access.py).
    ("GET", "/"): PUBLIC,
    # The API's own description: the code is public; it names no realm, plan or subscriber.
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/docs/oauth2-redirect"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/v1/realms"): READ_PLANS,
    ("POST", "/v1/realms"): frozenset({ADMIN}),
    ("GET", "/v1/realms/{realm}"): READ_PLANS,
    ("GET", "/v1/realms/{realm}/versions"): READ_PLANS,
    ("POST", "/v1/realms/{realm}/versions"): frozenset({ADMIN}),
    ("GET", "/v1/realms/{realm}/versions/{n}"): READ_PLANS,
    ("POST", "/v1/realms/{realm}/versions/{n}/approval"): frozenset({ADMIN}),
    ("POST", "/v1/lookups/reverse"): frozenset({ABUSE, LEGAL}),
    ("POST", "/v1/lookups/reverse/batch"): frozenset({ABUSE, LEGAL}),
    ("POST", "/v1/lookups/forward"): frozenset({LEGAL}),
    ("GET", "/v1/answers/{answer_id}"): frozenset({ABUSE, LEGAL}),
    ("GET", "/v1/answers/{answer_id}/evidence"): frozenset({LEGAL}),
    ("GET", "/v1/cases/{case}/answers"): frozenset({ABUSE, LEGAL}),
    ("GET", "/v1/tokens"): frozenset({ADMIN}),
    ("POST", "/v1/tokens"): frozenset({ADMIN}),
    ("DELETE", "/v1/tokens/{token_id}"): frozenset({ADMIN}),
    ("GET", "/v1/audit"): frozenset({AUDITOR}),
    ("GET", "/v1/audit/verify"): frozenset({AUDITOR}),
    ("POST", "/v1/audit/checkpoints"): frozenset({AUDITOR, ADMIN}),
}

# Route families added by other modules (capacity planning, plan diffs): any method. The web
# pages are signed in with a session, not a bearer token: their own table (api/web/access.py,
# deny by default too) decides, so the API's guard lets them through.
PREFIXES: tuple[tuple[str, frozenset[str]], ...] = (
    ("/v1/capacity/", frozenset({PLANNER, ADMIN})),
    ("/v1/capacity", frozenset({PLANNER, ADMIN})),
    ("/v1/plans/diff", frozenset({PLANNER, ADMIN})),
    ("/web/", PUBLIC),
)


# Routes whose only writes are appending their audit entry (and opening a case): they run in
# autocommit mode, each statement its own transaction.
APPEND_ONLY_ROUTES = frozenset(
    {
        ("POST", "/v1/lookups/reverse"),
        ("POST", "/v1/lookups/forward"),
        ("POST", "/v1/lookups/reverse/batch"),
        ("GET", "/v1/answers/{answer_id}"),
        ("GET", "/v1/answers/{answer_id}/evidence"),
    }
)


# Routes that name subscribers or read answers: a refusal there (403, 404, 422) is audited too.
IDENTITY_ROUTES = APPEND_ONLY_ROUTES | frozenset({("GET", "/v1/cases/{case}/answers")})


# Single lookups: their two statements run on an async connection (detnat.store.async_db).
ASYNC_LOOKUPS = frozenset({("POST", "/v1/lookups/reverse"), ("POST", "/v1/lookups/forward")})


def async_lookup(method: str, path: str) -> bool:
    return (method, path) in ASYNC_LOOKUPS


def appends_only(method: str, path: str) -> bool:
    return (method, path) in APPEND_ONLY_ROUTES


def policy_for(method: str, path: str) -> frozenset[str] | None:
    """The roles allowed on a route (its path template), PUBLIC, or None: no policy, denied."""
    if method == "HEAD":
        method = "GET"
    found = POLICY.get((method, path))
    if found is not None:
        return found
    for prefix, roles in PREFIXES:
        if path == prefix or (prefix.endswith("/") and path.startswith(prefix)):
            return roles
        if path.startswith(prefix + "/"):
            return roles
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
