"""The interval rule and the logs' answer, against a brute-force replay of the lines."""

from __future__ import annotations

import random

from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.engine.results import Reason, Status
from detnat.logs import intervals
from detnat.logs.events import EventKind
from detnat.logs.intervals import decide, derive, ports_meet
from tests.logs.conftest import event

A, INTERIM, R = EventKind.ALLOCATE, EventKind.INTERIM, EventKind.RELEASE
PUBLIC = "198.18.7.1"
INSIDES = ["100.64.0.1", "100.64.0.2", "100.64.0.3"]
HOLD = 20


@st.composite
def histories(draw: st.DrawFn) -> tuple[list, list[tuple[int, int, str]]]:
    """Allocations of one block that never overlap (a well-behaved NAT): (events, truth), where
    truth is [(from, to, inside)] with to = the release instant."""
    t = 0
    events, truth = [], []
    for _ in range(draw(st.integers(0, 6))):
        t += draw(st.integers(0, 5))
        start = t
        t += draw(st.integers(1, 8))
        inside = draw(st.sampled_from(INSIDES))
        events.append(event(A, start, inside, PUBLIC, 1024, 1031, line=len(events) + 1))
        for at in draw(st.lists(st.integers(start + 1, t), max_size=2, unique=True)):
            if at < t:
                events.append(event(INTERIM, at, inside, PUBLIC, 1024, 1031))
        events.append(event(R, t, inside, PUBLIC, 1024, 1031))
        truth.append((start, t, inside))
    return events, truth


def holder(truth: list[tuple[int, int, str]], t: int) -> str | None:
    found = [inside for start, end, inside in truth if start <= t < end]
    assert len(found) <= 1
    return found[0] if found else None


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(-2, 50), st.integers(0, 4))
def test_every_lookup_of_complete_lines_agrees_with_a_replay(
    history: tuple[list, list[tuple[int, int, str]]], at: int, tolerance: int
) -> None:
    events, truth = history
    start, end = at - tolerance, at + tolerance
    held = {holder(truth, t) for t in range(start, end + 1)}
    decided = decide(derive(events, hold_us=HOLD), 1027, start, end)
    if held == {None}:
        assert (decided.status, decided.reason) == (Status.NO_MAPPING, Reason.NOT_LOGGED)
    elif len(held) == 1:
        assert decided.status == Status.MATCH and decided.inside == held.pop()
    else:
        assert decided.status == Status.AMBIGUOUS, (decided, held)
    assert decide(derive(events, hold_us=HOLD), 1040, start, end).reason == Reason.NOT_LOGGED


@settings(max_examples=300, deadline=None)
@given(histories(), st.integers(-2, 50), st.integers(0, 4), st.randoms(use_true_random=False))
def test_lost_lines_never_make_a_wrong_match(
    history: tuple[list, list[tuple[int, int, str]]], at: int, tolerance: int, rnd: random.Random
) -> None:
    """Lines dropped at random: the answer may become ambiguous or not_logged, but a match names
    someone who held the port in the window, and nobody else held it then. (A release and the
    next allocation of the same key both lost join two of its allocations: the key is still the
    only one that held the port.)"""
    events, truth = history
    kept = [e for e in events if rnd.random() < 0.6]
    start, end = at - tolerance, at + tolerance
    decided = decide(derive(kept, hold_us=HOLD), 1027, start, end)
    if decided.status == Status.MATCH:
        held = {holder(truth, t) for t in range(start, end + 1)}
        assert held <= {decided.inside, None}
        if decided.inside not in held:  # two allocations joined: it held the port around them
            assert any(e <= start and i == decided.inside for _, e, i in truth)
            assert any(s > end and i == decided.inside for s, _, i in truth)


@settings(max_examples=200, deadline=None)
@given(histories(), st.randoms(use_true_random=False), st.integers(-2, 50))
def test_order_and_duplicates_do_not_change_the_intervals(
    history: tuple[list, list[tuple[int, int, str]]], rnd: random.Random, at: int
) -> None:
    events, _ = history
    shuffled = events + rnd.sample(events, k=len(events) // 2)
    rnd.shuffle(shuffled)
    assert derive(shuffled, hold_us=HOLD) == derive(events, hold_us=HOLD) or _same_but_lines(
        derive(shuffled, hold_us=HOLD), derive(events, hold_us=HOLD)
    )
    assert decide(derive(shuffled, hold_us=HOLD), 1027, at, at + 2).status == (
        decide(derive(events, hold_us=HOLD), 1027, at, at + 2).status
    )


def _same_but_lines(a: list, b: list) -> bool:
    return [(i.block, i.start_us, i.end_us, i.open, i.interim_deadline) for i in a] == [
        (i.block, i.start_us, i.end_us, i.open, i.interim_deadline) for i in b
    ]


# -- the interim deadline --------------------------------------------------------------------


@st.composite
def refreshed(draw: st.DrawFn) -> list:
    """Allocations of one block by several keys one after the other, refreshed by interims, whose
    releases may be lost (the next allocation, of any key, comes after the lost release)."""
    t = 0
    events: list = []
    for _ in range(draw(st.integers(0, 6))):
        t += draw(st.integers(0, 5))
        start = t
        t += draw(st.integers(1, 12))
        inside = draw(st.sampled_from(INSIDES))
        events.append(event(A, start, inside, PUBLIC, 1024, 1031, line=len(events) + 1))
        for at in draw(st.lists(st.integers(start + 1, t), max_size=3, unique=True)):
            if at < t:
                events.append(event(INTERIM, at, inside, PUBLIC, 1024, 1031, line=len(events) + 1))
        if draw(st.booleans()):
            events.append(event(R, t, inside, PUBLIC, 1024, 1031, line=len(events) + 1))
    return events


def replay_holders(events: list, t: int, hold: int | None, interim: int | None) -> set[str]:
    """Who the lines say holds the block at instant ``t``, worked out from ``t`` alone: the key
    whose last allocation at or before ``t`` is neither released nor superseded by then, and whose
    last line before the next allocation or release is less than the hold, or the interim period
    (the block would have been logged again), before ``t``."""
    limits = [x for x in (hold, interim) if x is not None]
    holders = set()
    starts = sorted(e.at_us for e in events if e.kind is A)
    for key in {e.inside for e in events}:
        mine = sorted((e for e in events if e.inside == key), key=lambda e: e.at_us)
        allocated = [e.at_us for e in mine if e.kind is A and e.at_us <= t]
        if not allocated:
            continue
        since = allocated[-1]
        after = [e for e in mine if e.at_us > since and e.kind in (A, R)]
        if after and after[0].kind is R:
            if t < after[0].at_us:
                holders.add(key)
            continue
        bound = after[0].at_us if after else None
        last = max(e.at_us for e in mine if since <= e.at_us and (bound is None or e.at_us < bound))
        ends = [last + x for x in limits]
        ends += [bound] if bound is not None else []
        ends += [s for s in starts if s > last]  # another key's allocation: the NAT gave it on
        if not ends or t < min(ends):
            holders.add(key)
    return holders


@settings(max_examples=400, deadline=None)
@given(
    refreshed(),
    st.sampled_from([None, 4, 20]),
    st.sampled_from([None, 3, 7, 30]),
    st.randoms(use_true_random=False),
)
def test_open_intervals_end_at_the_hold_or_the_next_interim_deadline_as_a_replay_says(
    events: list, hold: int | None, interim: int | None, rnd: random.Random
) -> None:
    shuffled = events + rnd.sample(events, k=len(events) // 2)
    rnd.shuffle(shuffled)
    found = derive(shuffled, hold_us=hold, interim_us=interim)
    assert _same_but_lines(found, derive(events, hold_us=hold, interim_us=interim))
    for t in range(-1, 110):
        derived = {
            i.inside
            for i in found
            if (i.start_us is None or i.start_us <= t) and (i.end_us is None or t < i.end_us)
        }
        assert derived == replay_holders(events, t, hold, interim), t
    for i in found:
        last = max(s.at_us for s in i.lines)
        flagged = i.open and interim is not None and i.end_us == last + interim
        flagged = flagged and (hold is None or interim < hold)
        assert i.interim_deadline == flagged, i
        assert not i.interim_deadline or i.open


def test_an_open_interval_ends_at_the_next_interim_deadline_when_it_comes_before_the_hold() -> None:
    lines = [
        event(A, 10, "100.64.0.1", PUBLIC, 1024, 1031),
        event(INTERIM, 40, "100.64.0.1", PUBLIC, 1024, 1031),
    ]
    (held,) = derive(lines, hold_us=100, interim_us=30)
    assert (held.start_us, held.end_us, held.open, held.interim_deadline) == (10, 70, True, True)
    (by_hold,) = derive(lines, hold_us=20, interim_us=30)
    assert (by_hold.end_us, by_hold.interim_deadline) == (60, False)
    (no_hold,) = derive(lines, hold_us=None, interim_us=30)
    assert (no_hold.end_us, no_hold.interim_deadline) == (70, True)
    assert decide([held], 1024, 41, 41).reason == Reason.LOG_OPEN_ENDED
    assert decide([held], 1024, 70, 70).reason == Reason.NOT_LOGGED


def test_allocate_without_release_is_open_until_the_hold_and_proven_only_to_its_last_line() -> None:
    found = derive(
        [
            event(A, 10, "100.64.0.1", PUBLIC, 1024, 1031),
            event(INTERIM, 30, "100.64.0.1", PUBLIC, 1024, 1031),
        ],
        hold_us=100,
    )
    (interval,) = found
    assert (interval.start_us, interval.end_us, interval.open) == (10, 130, True)
    assert decide(found, 1024, 12, 30).status == Status.MATCH
    assert decide(found, 1024, 25, 40).reason == Reason.LOG_OPEN_ENDED


def test_release_without_allocate_has_an_unknown_start() -> None:
    found = derive([event(R, 50, "100.64.0.1", PUBLIC, 1024, 1031)], hold_us=None)
    (interval,) = found
    assert interval.unknown_start and interval.start_us is None and interval.end_us == 50
    assert decide(found, 1024, 40, 40).reason == Reason.LOG_OPEN_ENDED
    assert decide(found, 1024, 50, 60).reason == Reason.NOT_LOGGED


def test_an_unknown_start_begins_after_the_previous_holder_released() -> None:
    found = derive(
        [
            event(A, 10, "100.64.0.1", PUBLIC, 1024, 1031),
            event(R, 20, "100.64.0.1", PUBLIC, 1024, 1031),
            event(R, 50, "100.64.0.2", PUBLIC, 1024, 1031),
        ],
        hold_us=None,
    )
    assert [(i.inside, i.start_us, i.end_us, i.conflict) for i in found] == [
        ("100.64.0.1", 10, 20, False),
        ("100.64.0.2", 20, 50, False),
    ]
    assert decide(found, 1030, 12, 15).status == Status.MATCH


def test_overlapping_allocations_of_two_inside_keys_are_kept_and_flagged() -> None:
    found = derive(
        [
            event(A, 10, "100.64.0.1", PUBLIC, 1024, 1535),
            event(R, 60, "100.64.0.1", PUBLIC, 1024, 1535),
            event(A, 30, "100.64.0.2", PUBLIC, 1500, 1600),
            event(R, 40, "100.64.0.2", PUBLIC, 1500, 1600),
        ],
        hold_us=None,
    )
    assert [(i.inside, i.conflict) for i in found] == [("100.64.0.1", True), ("100.64.0.2", True)]
    assert decide(found, 1100, 12, 12).reason == Reason.LOG_CONFLICT


def test_window_across_a_handover_is_ambiguous_at_the_boundary() -> None:
    found = derive(
        [
            event(A, 10, "100.64.0.1", PUBLIC, 1024, 1031),
            event(R, 20, "100.64.0.1", PUBLIC, 1024, 1031),
            event(A, 20, "100.64.0.2", PUBLIC, 1024, 1031),
            event(R, 40, "100.64.0.2", PUBLIC, 1024, 1031),
        ],
        hold_us=None,
    )
    assert decide(found, 1024, 18, 22).reason == Reason.LOG_BOUNDARY
    assert decide(found, 1024, 20, 20).inside == "100.64.0.2"
    assert decide(found, 1024, 19, 19).inside == "100.64.0.1"


def test_strided_blocks_hold_only_their_ports() -> None:
    found = derive(
        [
            event(A, 10, "100.64.0.1", PUBLIC, 1024, 1124, step=4),
            event(R, 20, "100.64.0.1", PUBLIC, 1024, 1124, step=4),
        ],
        hold_us=None,
    )
    assert decide(found, 1028, 12, 12).status == Status.MATCH
    assert decide(found, 1029, 12, 12).reason == Reason.NOT_LOGGED
    a = found[0]
    other = derive([event(A, 10, "100.64.0.2", PUBLIC, 1025, 1125, step=4)], hold_us=None)[0]
    assert not ports_meet(a, other)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(
        st.tuples(st.sampled_from(list(EventKind)), st.integers(0, 3), st.integers(1, 2)),
        min_size=1,
        max_size=3,
    ),
    st.sampled_from([None, 2, 5]),
    st.sampled_from([None, 1, 3]),
)
def test_a_block_of_an_allocation_and_its_release_is_made_as_the_rule_makes_it(
    lines: list, hold: int | None, interim: int | None
) -> None:
    """The shortcut for the usual block (two lines: allocate, then release) gives what the rule
    in time order gives, for every pair of kinds and instants (equal ones too), in either order
    given."""
    events = [event(kind, at, "100.64.0.1", PUBLIC, 1024, 1031, line=n) for kind, at, n in lines]
    key = intervals._key(events[0])
    for given_order in (events, events[::-1]):
        made = intervals._block(key, list(given_order), hold, interim)
        assert made == intervals._block_in_order(key, list(given_order), hold, interim)
