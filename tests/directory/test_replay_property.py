"""Property: for random RADIUS accounting (lost stops, NAS reboots, delayed records written out
of order, interim updates), the account the directory answers for any instant is the brute-force
replay's, with and without a declared interim period."""

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
    kind: str  # Start | Interim-Update | Stop | Accounting-On
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
        move = draw(st.sampled_from(("start", "start", "stop", "lose", "reboot", "interim")))
        if move == "start" or not open_:
            nas, key = draw(st.sampled_from(NASES)), draw(st.sampled_from(KEYS))
            account = draw(st.sampled_from(("alice", "bob", "carol")))
            events.append(Event(at, "Start", n, nas, key, account, delay))
            open_[n] = events[-1]
        elif move == "interim":
            sid = draw(st.sampled_from(sorted(open_)))
            began = open_[sid]
            kind = "Interim-Update"
            events.append(Event(at, kind, sid, began.nas, began.key, began.account, delay))
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


def brute_force(events: list[Event], key: str, at: int, interim: int | None = None) -> str | None:
    """The latest Start on the key at or before ``at``, unless its own Stop or a reboot of its
    NAS came between. With an ``interim`` period, also unless the session had been silent (no
    Start or Interim-Update) for that long at ``at`` and gave no sign of life (an Interim-Update,
    its Stop) after ``at`` before what ended it: the next Start on the key, a reboot of its NAS,
    its Stop, or the end of the records."""
    starts = [e for e in events if e.kind == "Start" and e.key == key and e.at <= at]
    if not starts:
        return None
    last = max(starts, key=lambda e: e.at)
    mine = [e for e in events if e.session == last.session]
    for e in events:
        if last.at < e.at <= at and (
            (e.kind == "Stop" and e.session == last.session)
            or (e.kind == "Accounting-On" and e.nas == last.nas)
        ):
            return None
    if interim is None:
        return last.account
    heard = max(e.at for e in mine if e.kind in ("Start", "Interim-Update") and e.at <= at)
    if at < heard + interim:
        return last.account
    ends = [
        e.at
        for e in events
        if e.at > at
        and (
            (e.kind == "Start" and e.key == key and e.session != last.session)
            or (e.kind == "Accounting-On" and e.nas == last.nas)
            or (e.kind == "Stop" and e.session == last.session)
        )
    ]
    closed = min(ends, default=None)
    signs = [e for e in mine if e.at > at and e.kind in ("Interim-Update", "Stop")]
    if any(closed is None or e.at <= closed for e in signs):
        return last.account
    return None


@settings(max_examples=300, deadline=None)
@given(histories(), st.sampled_from([None, None, 1, 100, 400]))
def test_account_at_any_instant_agrees_with_a_brute_force_replay(
    events: list[Event], interim: int | None
) -> None:
    period = None if interim is None else interim * 1_000_000
    parsed = radius.parse([("detail", detail_file(events))], tz="UTC", interim_us=period)
    assert parsed.refused == []
    instants = {t for e in events for t in (e.at - 1, e.at, e.at + 1)}
    if interim is not None:  # each session's deadlines too
        instants |= {e.at + interim + d for e in events for d in (-1, 0, 1)}
    for key in KEYS:
        mine = [iv for iv in parsed.intervals if iv.subscriber == key]
        for at in sorted(instants):
            found = account_of(mine, at * 1_000_000, at * 1_000_000)
            assert found.status != "ambiguous", (key, at, found)
            expected = brute_force(events, key, at, interim)
            assert found.account == expected, (key, at, found.held)
