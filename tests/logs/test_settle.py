"""The plans-and-logs rule (``detnat.logs.settle``) over intervals of several realms."""

from __future__ import annotations

from detnat.engine import Reason, Status
from detnat.logs.events import EventKind, LineRef
from detnat.logs.intervals import Interval, Seen
from detnat.logs.settle import settle


def _held(inside: str, start: int, end: int, line: int) -> Interval:
    seen = (
        Seen(EventKind.ALLOCATE, start, LineRef("nat.log", line, f"{line:064x}")),
        Seen(EventKind.RELEASE, end, LineRef("nat.log", line + 1, f"{line + 1:064x}")),
    )
    return Interval("203.0.113.7", 1024, 1535, 1, None, inside, start, end, False, False, seen)


def test_the_same_inside_address_in_two_realms_is_two_subscribers() -> None:
    """100.64.0.10 behind one BNG and 100.64.0.10 behind another are different people: a window
    across the address moving between the realms names neither (no realm was named)."""
    found = [("fra", _held("100.64.0.10", 0, 100, 1)), ("ber", _held("100.64.0.10", 100, 200, 3))]
    settled = settle(
        Status.NO_PLAN_IN_FORCE, Reason.NO_PLAN, None, found, 1100, 90, 110, logs_asked=False
    )
    assert settled is not None
    assert (settled.status, settled.subscriber) == (Status.AMBIGUOUS, None)
    one_realm = [("fra", i) for _, i in found]  # the same key in one realm: one holder throughout
    settled = settle(
        Status.NO_PLAN_IN_FORCE, Reason.NO_PLAN, None, one_realm, 1100, 90, 110, logs_asked=False
    )
    assert settled is not None
    assert (settled.status, settled.subscriber) == (Status.MATCH, "100.64.0.10/32")
    inside_one = settle(
        Status.NO_PLAN_IN_FORCE, Reason.NO_PLAN, None, found, 1100, 20, 30, logs_asked=False
    )
    assert inside_one is not None and inside_one.subscriber == "100.64.0.10/32"


def test_a_global_b4_address_in_two_realms_is_one_subscriber() -> None:
    """A DS-Lite B4's IPv6 address is one line wherever it is seen: a block logged by one AFTR
    and then by another (the pool moved) is the same holder across the move, as two realms'
    plans naming the same global /56 agree (``lookups.verdict``)."""
    b4 = "2001:db8:104d:c900::1"
    found = [("fra", _held(b4, 0, 100, 1)), ("ber", _held(b4, 100, 200, 3))]
    settled = settle(
        Status.NO_PLAN_IN_FORCE, Reason.NO_PLAN, None, found, 1100, 90, 110, logs_asked=False
    )
    assert settled is not None
    assert (settled.status, settled.subscriber) == (Status.MATCH, f"{b4}/128")
