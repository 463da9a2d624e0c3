"""The shapes of the answers to "who held A:P at T" and "what did S get at T", written once.

The service builds them (:mod:`detnat.service.lookups`), the audit log keeps them, the API
documents them as its response schemas, the CLI prints them and the web pages explain them.
They are ``TypedDict``\\ s: at run time an answer is the plain dict it always was (no copy, no
validation on the single-lookup path), while mypy checks every key the service writes and
pydantic turns them into the OpenAPI contract. A key that an answer may leave out is
``NotRequired`` (absent, never ``null``); a key that may be ``null`` says ``| None``. Unknown keys
are refused when pydantic validates one (``extra="forbid"``), so a key written without being
declared here fails the tests instead of going undocumented.

Example (a match at an instant with no change nearby)::

    {"ip": "192.0.2.1", "port": 1100, "time": "2026-03-14T20:07:33Z", "tolerance_seconds": 0.0,
     "window": {"from": "2026-03-14T20:07:33Z", "to": "2026-03-14T20:07:33Z"},
     "nearest_change": {...}, "candidates": [{"status": "match", ..., "covers": {...}}],
     "status": "match", "subscriber": "2001:db8:1000:100::/56", "public_ip": "192.0.2.1",
     "port_ranges": [[1024, 2031]]}
"""

from __future__ import annotations

from typing import Annotated, Literal, NotRequired

from pydantic import ConfigDict, Field, with_config
from typing_extensions import TypedDict  # pydantic reads typing's only from Python 3.12

from detnat.engine.results import Reason, Status

__all__ = [
    "AccountAnswer",
    "Allocated",
    "Asked",
    "AuditedForwardAnswer",
    "AuditedReverseAnswer",
    "Covers",
    "ForwardAnswer",
    "ForwardCandidate",
    "LogCandidate",
    "LogLine",
    "LoggedSpan",
    "NearestChange",
    "PendingVersion",
    "PortRange",
    "Reason",
    "ReverseAnswer",
    "ReverseCandidate",
    "Status",
    "Verdict",
    "VersionEvidence",
    "Window",
]

_STRICT = ConfigDict(extra="forbid")

PortRange = Annotated[
    list[int], Field(min_length=2, max_length=2, description="An inclusive [first, last] range.")
]

# "from" is a Python keyword: these two are spelled the functional way.
Window = TypedDict("Window", {"from": str, "to": str})  # the instants searched, RFC 3339 UTC
# The part of the window a candidate version covers; ``in_drain_only``: it had been replaced
# before the window, but sessions opened under it live on (the realm's drain).
Covers = TypedDict("Covers", {"from": str, "to": str, "in_drain_only": bool})
Window.__pydantic_config__ = Covers.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]


@with_config(_STRICT)
class VersionEvidence(TypedDict):
    """The plan version an answer comes from (``version`` is its number in the realm)."""

    realm: str
    version: int
    content_sha256: str
    effective_from: str
    correction: bool


@with_config(_STRICT)
class PendingVersion(TypedDict):
    """A version in the window that awaits a second admin's approval (so it was not used)."""

    realm: str
    version: int
    content_sha256: str | None  # None: a retirement
    effective_from: str
    correction: bool
    pending_approval: Literal[True]


@with_config(_STRICT)
class NearestChange(TypedDict):
    """The plan change nearest to the time asked, so the reader sees how close the call was."""

    at: str
    realm: str
    seconds_from_time: float


@with_config(_STRICT)
class Allocated(TypedDict):
    """A subscriber (as a prefix) and what it holds: a public address and inclusive port ranges."""

    subscriber: str
    public_ip: str
    port_ranges: list[PortRange]


@with_config(_STRICT)
class Verdict(TypedDict):
    """Status and reason, or for a match the subscriber and its allocation."""

    status: Status
    reason: NotRequired[Reason]  # every status but match
    subscriber: NotRequired[str]  # match only, as a prefix
    public_ip: NotRequired[str]
    port_ranges: NotRequired[list[PortRange]]


@with_config(_STRICT)
class ReverseCandidate(Verdict, VersionEvidence):
    """One plan version's own answer (match, no_mapping or not_deterministic) and its evidence."""

    covers: Covers


LoggedSpan = TypedDict("LoggedSpan", {"from": str | None, "to": str | None})  # None: unbounded
LoggedSpan.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]


@with_config(_STRICT)
class LogLine(TypedDict):
    """One log line behind a log candidate, embedded so the evidence can be checked offline."""

    kind: Literal["allocate", "interim", "release"]
    at: str
    file: str
    line: int
    sha256: str  # of the line's bytes; ``text`` is the line as stored
    text: str


@with_config(_STRICT)
class LogCandidate(Allocated):
    """One log interval that holds the port in the window (``source: "log"``): the inside key as
    ``subscriber``, the interval ``[from, to)``, the part its lines prove (``seen``, inclusive),
    its flags and its lines."""

    source: Literal["log"]
    realm: str
    port_step: int
    protocol: str | None
    interval: LoggedSpan
    seen: LoggedSpan
    open: bool
    unknown_start: bool
    conflict: bool
    interim_deadline: NotRequired[bool]  # open, ends at its next interim deadline (only if so)
    lines: list[LogLine]


@with_config(_STRICT)
class Asked(TypedDict):
    """What a reverse answer repeats of its question, and the window searched."""

    ip: str
    port: int
    time: str
    tolerance_seconds: float
    window: Window


# The subscriber directory's account behind a matched subscriber (detnat.service.directory).
@with_config(_STRICT)
class DirectorySource(TypedDict):
    """A record the interval was read from (as ``detnat directory ingest`` stored it)."""

    file: str
    line: int
    sha256: str
    text: str


Held = TypedDict(
    "Held",
    {
        "account": str,
        "subscriber": str,
        "from": str,
        "to": str | None,
        "closed": str,
        "sources": NotRequired[list[DirectorySource]],  # legal and the local operator only
    },
)
Held.__pydantic_config__ = _STRICT  # type: ignore[attr-defined]


@with_config(_STRICT)
class AccountAnswer(TypedDict):
    """Who held the subscriber in the window: ``identified`` (``account``) or ``ambiguous`` (the
    prefix changed hands: every holder in ``held``)."""

    status: Literal["identified", "ambiguous"]
    account: str | None
    held: list[Held]


@with_config(_STRICT)
class ReverseAnswer(Verdict, Asked):
    """Who held ``ip:port`` at ``time``: every candidate version, the window searched, the
    nearest change (absent for a future time; null when no version is near) and the versions
    still awaiting approval (absent when none)."""

    candidates: list[ReverseCandidate]
    # The logs, when consulted (a dynamic block, a realm with logs and no plan, a plan's match
    # checked against them): the intervals that hold the port in the window, and each realm's
    # log hold and interim period they were made with (µs; None: not declared; the periods only
    # when some realm declares one).
    log_candidates: NotRequired[list[LogCandidate]]
    log_holds_us: NotRequired[dict[str, int | None]]
    log_interims_us: NotRequired[dict[str, int | None]]
    source: NotRequired[Literal["log"]]  # the status and subscriber come from the logs
    nearest_change: NotRequired[NearestChange | None]
    pending_approval: NotRequired[list[PendingVersion]]
    account: NotRequired[AccountAnswer | None]  # a match, for roles that see accounts
    account_reason: NotRequired[str | None]  # why account is null or ambiguous


@with_config(_STRICT)
class ForwardCandidate(Allocated, VersionEvidence):
    """One realm's allocation of the subscriber (``static``: a dedicated address, all ports)."""

    static: bool


@with_config(_STRICT)
class ForwardAnswer(Verdict):
    """What ``query`` got at ``time`` under each plan in force then (``scheduled``: a future
    time, answered from the versions published for it)."""

    query: str
    time: str
    scheduled: NotRequired[Literal[True]]
    candidates: list[ForwardCandidate]
    log_blocks: NotRequired[list[LogCandidate]]  # the blocks the logs give it then (if any)


class _Audited(TypedDict):
    case: str
    answer_id: int  # the seq of the answer's audit entry
    audit_sha256: str  # that entry's hash


@with_config(_STRICT)
class AuditedReverseAnswer(ReverseAnswer, _Audited):
    """A reverse answer as it leaves: with its case and audit entry."""


@with_config(_STRICT)
class AuditedForwardAnswer(ForwardAnswer, _Audited):
    """A forward answer as it leaves: with its case and audit entry."""
