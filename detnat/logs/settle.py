"""What the plans and the NAT's own logs say together of one port over one window.

The one rule, used by the store's lookups (:mod:`detnat.service.log_answers`, which turns it into
an answer with its log candidates) and by snapshot annotation (:mod:`detnat.snapshot.logs`, on
the intervals a snapshot carries):

- the plan names a subscriber (``match``): the logs never replace it; if an interval holding the
  port in the window names another inside key, the answer is ``ambiguous`` /
  ``plan_and_log_disagree``;
- the plan leaves the port to the logs (``not_deterministic``: a dynamic block), or no plan holds
  the address (``no_plan_in_force`` / ``no_plan``, ``no_mapping`` / ``not_in_pool``): the logs'
  own answer (:func:`~detnat.logs.intervals.decide`) stands -- ``not_logged`` for the last two
  only when the realm asked about has logs, or an interval was found;
- anything else (a reserved port, an unallocated block, ``future`` ...) is the plan's alone.

>>> from detnat.logs.intervals import Interval
>>> from detnat.logs.events import EventKind, LineRef
>>> from detnat.logs.intervals import Seen
>>> seen = (Seen(EventKind.ALLOCATE, 10, LineRef("nat.log", 1, "0" * 64)),)
>>> held = Interval("192.0.2.1", 6000, 6999, 1, None, "10.0.0.2", 10, 90, False, False, seen)
>>> s = settle(Status.NOT_DETERMINISTIC, Reason.DYNAMIC_BLOCK, None, [("fra", held)], 6100,
...            20, 30, logs_asked=False)
>>> s.status, s.reason, s.subscriber, s.source
(<Status.MATCH: 'match'>, None, '10.0.0.2/32', 'log')
>>> settle(Status.MATCH, None, "10.0.0.0/30", [("fra", held)], 6100, 20, 30,
...        logs_asked=False).source
'plan'
>>> settle(Status.MATCH, None, "10.0.0.4/32", [("fra", held)], 6100, 20, 30,
...        logs_asked=False).reason
<Reason.PLAN_AND_LOG_DISAGREE: 'plan_and_log_disagree'>

Pure: standard library and the engine's vocabulary.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from detnat.engine.addresses import parse_prefix, reused
from detnat.engine.results import Reason, Status
from detnat.logs.intervals import Decided, Interval, decide

# The plan's statuses the logs may change (a match only to ambiguous).
CONSULTED = (Status.NOT_DETERMINISTIC, Status.NO_PLAN_IN_FORCE, Status.NO_MAPPING, Status.MATCH)


@functools.lru_cache(maxsize=1 << 16)  # bulk answers name the same keys again and again
def subscriber_of(inside: str) -> str:
    """An inside key as a subscriber prefix (``100.64.0.1`` -> ``100.64.0.1/32``)."""
    return str(ipaddress.ip_network(inside, strict=False))


@functools.lru_cache(maxsize=1 << 16)
def within(inside: str, subscriber: str) -> bool:
    """Whether an inside key lies in a subscriber's prefix."""
    a = ipaddress.ip_network(inside, strict=False)
    b = ipaddress.ip_network(subscriber, strict=False)
    return a.version == b.version and a.subnet_of(b)  # type: ignore[arg-type]


@dataclass(frozen=True, slots=True)
class Settled:
    """The answer once the logs are heard, and the intervals shown beside it.

    ``source``: ``log`` when the answer is the logs' own (``subscriber`` set on a match),
    ``plan`` when the plan's answer stands or the two disagree."""

    status: Status
    reason: Reason | None
    subscriber: str | None
    source: Literal["plan", "log"]
    decided: Decided


def _realm_part(realm_of: dict[int, str], interval: Interval) -> str | None:
    """The realm that is part of an interval's holder: its own for an inside key another NAT
    may reuse (every IPv4 address), none for a global IPv6 one (a B4 is one line behind either
    NAT), as :func:`detnat.service.lookups.verdict` weighs two realms' plans."""
    return realm_of[id(interval)] if reused(parse_prefix(interval.inside)) else None


def settle(
    status: Status,
    reason: Reason | None,
    subscriber: str | None,
    found: Sequence[tuple[str, Interval]],
    port: int,
    start_us: int,
    end_us: int,
    *,
    logs_asked: bool,
) -> Settled | None:
    """The plan's answer (``status``, ``reason``, ``subscriber``) for ``port`` over the closed
    window ``[start_us, end_us]`` with what the intervals ``found`` (``(realm, interval)`` of the
    port's public address) say; an inside key names one subscriber of one realm.
    None: the logs have nothing to add (the plan's answer stands, no interval is shown).
    ``logs_asked``: the realm asked about has logs (a ``not_logged`` may be said where no plan
    holds the address)."""
    realm_of = {id(i): realm for realm, i in found}
    decided = decide(
        [i for _, i in found],
        port,
        start_us,
        end_us,
        holder=None
        if len(set(realm_of.values())) < 2
        else lambda i: (_realm_part(realm_of, i), i.inside),
    )
    if status is Status.MATCH:
        if not decided.intervals:
            return None
        assert subscriber is not None
        if all(within(i.inside, subscriber) for i in decided.intervals):
            return Settled(status, reason, subscriber, "plan", decided)
        return Settled(Status.AMBIGUOUS, Reason.PLAN_AND_LOG_DISAGREE, None, "plan", decided)
    plan_answers = status is Status.NOT_DETERMINISTIC or (
        status in (Status.NO_PLAN_IN_FORCE, Status.NO_MAPPING)
        and reason in (Reason.NO_PLAN, Reason.NOT_IN_POOL)
    )
    if not plan_answers or (
        not decided.intervals and not logs_asked and status is not Status.NOT_DETERMINISTIC
    ):
        return None
    named = subscriber_of(decided.inside) if decided.inside is not None else None
    return Settled(decided.status, decided.reason, named, "log", decided)
