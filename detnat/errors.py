"""The one error tree of detnat.

Errors carry data, not HTTP: the API renders them as RFC 9457 problems, the CLI as one line on
stderr and an exit code. Every error has a stable ``code`` and, where it concerns one input, the
``field`` it concerns (a dotted path such as ``outside.prefixes[1]``)::

    DetnatError
    ├── InvalidInput          bad plan, bad query, bad file           (CLI exit 2, HTTP 422)
    │   ├── PlanError         a plan that cannot be used as written
    │   └── QueryError        a lookup that cannot be answered as asked
    ├── NotAuthenticated      no valid token (unknown, revoked, expired alike) (HTTP 401)
    ├── Forbidden             the role or case does not allow it               (HTTP 403)
    ├── NotFound              a realm, version, token ... that does not exist   (HTTP 404)
    ├── Conflict              would break an invariant of the store             (HTTP 409)
    └── Unavailable           a dependency (database, audit log) is down        (HTTP 503)

This module imports nothing of ours, so every layer (the pure engine included) may raise these.
"""

from __future__ import annotations


class DetnatError(Exception):
    """Root of every error detnat raises on purpose."""

    code = "error"

    def __init__(self, message: str, *, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


class InvalidInput(DetnatError):
    code = "invalid_input"


class PlanError(InvalidInput):
    code = "invalid_plan"


class QueryError(InvalidInput):
    code = "invalid_query"


class NotAuthenticated(DetnatError):
    code = "not_authenticated"


class Forbidden(DetnatError):
    code = "forbidden"


class NotFound(DetnatError):
    code = "not_found"


class Conflict(DetnatError):
    code = "conflict"


class Unavailable(DetnatError):
    code = "unavailable"
