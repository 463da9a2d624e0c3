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

What each kind of error means at the edges — its HTTP status, CLI exit code and the heading a
page shows — is one table, :data:`OUTCOMES` (read with :func:`outcome_of`): the API, the web pages
and the CLI all read it, so the three can never disagree.

This module imports nothing of ours, so every layer (the pure engine included) may raise these.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True)
class Outcome:
    """How an edge renders an error of one kind."""

    http_status: int
    exit_code: int
    title: str  # the heading of the web page that shows it


# First match wins (subclasses before their bases where they differ).
OUTCOMES: tuple[tuple[type[DetnatError], Outcome], ...] = (
    (InvalidInput, Outcome(422, 2, "That cannot be done as asked")),
    (NotAuthenticated, Outcome(401, 7, "Please sign in")),
    (Forbidden, Outcome(403, 7, "Not for your role")),
    (NotFound, Outcome(404, 3, "Not found")),
    (Conflict, Outcome(409, 4, "Refused: it would break a rule of the store")),
    (Unavailable, Outcome(503, 5, "The service is unavailable")),
)
INTERNAL = Outcome(500, 1, "Something went wrong")


def outcome_of(error: BaseException) -> Outcome:
    """The outcome of ``error``'s kind; :data:`INTERNAL` for anything else.

    >>> outcome_of(NotFound("no realm named 'x'", field="realm")).http_status
    404
    >>> outcome_of(ValueError()).exit_code
    1
    """
    return next((outcome for kind, outcome in OUTCOMES if isinstance(error, kind)), INTERNAL)
