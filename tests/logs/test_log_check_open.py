"""``logs check`` on intervals whose release was never logged: which end ran out by now."""

from __future__ import annotations

from datetime import timedelta

from detnat.logs.events import EventKind
from detnat.logs.intervals import derive
from detnat.service.log_check import open_findings
from tests.logs.conftest import event

A, INTERIM = EventKind.ALLOCATE, EventKind.INTERIM
PUBLIC = "198.18.9.1"
S = 10**6
HOLD = timedelta(seconds=100)


def _kinds(interim: int | None, now: int, hold: timedelta | None = HOLD, *more: object) -> list:
    lines = [event(A, 10 * S, "100.64.0.1", PUBLIC, 1024, 1031)]
    lines += [event(INTERIM, 40 * S, "100.64.0.1", PUBLIC, 1024, 1031)]
    lines += list(more)
    hold_us = None if hold is None else hold // timedelta(microseconds=1)
    found = derive(lines, hold_us=hold_us, interim_us=None if interim is None else interim * S)
    return [
        f.kind for i in found if i.inside == "100.64.0.1" for f in open_findings(i, hold, now * S)
    ]


def test_an_interval_past_its_next_interim_deadline_is_reported_once_the_deadline_passed() -> None:
    assert _kinds(30, now=70) == ["open_past_interim"]
    assert _kinds(30, now=69) == []


def test_without_an_interim_period_the_hold_is_what_runs_out() -> None:
    assert _kinds(None, now=140) == ["open_past_hold"]
    assert _kinds(None, now=139) == []
    assert _kinds(None, now=10**6, hold=None) == ["open_without_hold"]


def test_an_interim_period_longer_than_the_hold_leaves_the_hold_in_charge() -> None:
    assert _kinds(300, now=140) == ["open_past_hold"]


def test_an_interval_cut_by_the_next_allocation_of_its_ports_is_not_a_finding() -> None:
    taken = event(A, 50 * S, "100.64.0.2", PUBLIC, 1024, 1031)
    assert _kinds(30, 10**6, HOLD, taken) == []
