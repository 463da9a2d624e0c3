"""Property: for random RADIUS accounting (lost stops, NAS reboots, delayed records written out
of order), the account the directory answers for any instant is the brute-force replay's."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.directory import radius
from detnat.directory.resolve import account_of

KEYS = ("2001:db8:1:100::/56", "2001:db8:1:200::/56")
NASES = ("192.0.2.1", "192.0.2.2")
T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


@dataclass(frozen=True)
class Event:
    at: int  # seconds
    kind: str  # Start | Stop | Accounting-On
    session: int
    nas: str
    key: str
    account: str
    delay: int  # Acct-Delay-Time: the record is received (and written) this much later


@st.composite
def histories(draw: st.DrawFn) -> list[Event]:
    steps = draw(st.integers(1, 14))
    at, events, open_ = T0, [], {}
    for n in range(steps):
        at += draw(st.integers(1, 500))
        delay = draw(st.sampled_from((0, 0, 3, 90, 700)))
        move = draw(st.sampled_from(("start", "start", "stop", "lose", "reboot")))
        if move == "start" or not open_:
            nas, key = draw(st.sampled_from(NASES)), draw(st.sampled_from(KEYS))
            account = draw(st.sampled_from(("alice", "bob", "carol")))
            events.append(Event(at, "Start", n, nas, key, account, delay))
            open_[n] = events[-1]
        elif move in ("stop", "lose"):
            sid = draw(st.sampled_from(sorted(open_)))
            began = open_.pop(sid)
            if move == "stop":  # "lose": the Stop never reaches the server
                events.append(Event(at, "Stop", sid, began.nas, began.key, began.account, delay))
        else:
            nas = draw(st.sampled_from(NASES))
            events.append(Event(at, "Accounting-On", -1, nas, "", "", delay))
            open_ = {s: e for s, e in open_.items() if e.nas != nas}
    return events


def detail_file(events: list[Event]) -> str:
    """Records in the order the server received them (event time + delay), not event order."""
    out = []
    for e in sorted(events, key=lambda e: e.at + e.delay):
        received = datetime.fromtimestamp(e.at + e.delay, UTC)
        lines = [
            f"{received:%a %b} {received.day:2d} {received:%H:%M:%S %Y}",
            f"\tAcct-Status-Type = {e.kind}",
            f"\tNAS-IP-Address = {e.nas}",
            f"\tAcct-Delay-Time = {e.delay}",
        ]
        if e.kind != "Accounting-On":
            lines += [
                f'\tAcct-Session-Id = "s{e.session}"',
                f'\tUser-Name = "{e.account}"',
                f"\tDelegated-IPv6-Prefix = {e.key}",
            ]
        out.append("\n".join(lines) + "\n\n")
    return "".join(out)


def brute_force(events: list[Event], key: str, at: int) -> str | None:
    """The latest Start on the key at or before ``at``, unless its own Stop or a reboot of its
    NAS came between."""
    starts = [e for e in events if e.kind == "Start" and e.key == key and e.at <= at]
    if not starts:
        return None
    last = max(starts, key=lambda e: e.at)
    for e in events:
        if last.at < e.at <= at and (
            (e.kind == "Stop" and e.session == last.session)
            or (e.kind == "Accounting-On" and e.nas == last.nas)
        ):
            return None
    return last.account


@settings(max_examples=300, deadline=None)
@given(histories())
def test_account_at_any_instant_agrees_with_a_brute_force_replay(events: list[Event]) -> None:
    parsed = radius.parse([("detail", detail_file(events))], tz="UTC")
    assert parsed.refused == []
    instants = sorted({t for e in events for t in (e.at - 1, e.at, e.at + 1)})
    for key in KEYS:
        mine = [iv for iv in parsed.intervals if iv.subscriber == key]
        for at in instants:
            found = account_of(mine, at * 1_000_000, at * 1_000_000)
            assert found.status != "ambiguous", (key, at, found)
            assert found.account == brute_force(events, key, at), (key, at, found.held)
