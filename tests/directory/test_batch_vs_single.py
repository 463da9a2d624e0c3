"""The batch's accounts (one set-form query per chunk) agree with the single lookup's (one query per
answer) for any subscribers and windows: IPv4 and IPv6, directory prefixes holding the subscriber
or lying inside it (a B4 /128 in a delegated /56), open rows ended by a later start, rows of two
ingests starting together, a prefix with more rows than one answer is made from.

A database of its own: its intervals must not give other tests' answers an account.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.directory.resolve import instant_text
from detnat.service import audit, directory
from detnat.store import directory as rows_repo
from detnat.store.db import unit_of_work
from tests.directory.lab import T0, Lab, ingest_csv, lab_store

pytestmark = pytest.mark.postgres

LEGAL = audit.Actor("l", "legal")
HOUR = 3_600_000_000
BASE = int(T0.timestamp()) * 1_000_000


def _at(us: int) -> str:
    return instant_text(BASE + us)


def _first() -> str:
    rows = [
        ("2001:db8:1:100::/56", "carol", 0, 24 * HOUR),
        ("2001:db8:1:100::/56", "dave", 24 * HOUR, None),
        ("2001:db8:1:1ff::1/128", "erin", 12 * HOUR, 13 * HOUR),  # inside the /56
        ("2001:db8:1:1ab::/64", "frank", 48 * HOUR, None),
        ("2001:db8:1::/48", "grace", 0, 72 * HOUR),  # holds the /56
        ("10.0.0.5", "alice", 0, 24 * HOUR),
        ("10.0.0.5", "bob", 24 * HOUR, None),
        ("10.0.0.4/30", "block", 0, 24 * HOUR),
        ("10.0.1.0", "open-a", 0, None),  # both open: a ends where b starts
        ("10.0.1.0", "open-b", 6 * HOUR, None),
        ("10.0.1.1", "short", 5 * HOUR, 5 * HOUR + 1),  # one microsecond
    ]
    # 250 open rows of one address, each taken over an hour later by the next
    rows += [
        ("10.0.3.0", f"t{k}" if k < 249 else "t-last", 100 * HOUR + k * HOUR, None)
        for k in range(250)
    ]
    # 250 one-minute rows: more than an answer is made from
    rows += [
        (
            "10.0.2.0/24",
            f"m{k // 200}",
            50 * HOUR + k * 60_000_000,
            50 * HOUR + (k + 1) * 60_000_000,
        )
        for k in range(250)
    ]
    lines = [
        f"{net},{account},{_at(start)},{'' if end is None else _at(end)}"
        for net, account, start, end in rows
    ]
    return "subscriber,account,from,to\n" + "\n".join(lines) + "\n"


SECOND = (  # a second ingest: a row starting where the first ingest's bob starts
    "subscriber,account,from,to\n"
    f"10.0.0.5,bob-again,{_at(24 * HOUR)},\n"
    f"10.0.1.0,open-c,{_at(6 * HOUR)},{_at(30 * HOUR)}\n"
)

SUBSCRIBERS = [
    "2001:db8:1:100::/56",
    "2001:db8:1:100::/64",
    "2001:db8:1:1ff::1/128",
    "2001:db8:1:100:ab::/80",
    "2001:db8:1:1ab::/64",
    "2001:db8:1:1ab:1::/80",
    "2001:db8:1::/48",
    "2001:db8:2::/56",  # no row
    "10.0.0.5/32",
    "10.0.0.6/32",
    "10.0.0.4/30",
    "10.0.0.0/16",  # holds rows inside it
    "10.0.1.0/32",
    "10.0.1.1/32",
    "10.0.2.7/32",
    "10.0.2.0/24",
    "10.9.9.9/32",  # no row
]


@pytest.fixture(scope="module")
def store() -> Iterator[Lab]:
    with lab_store() as lab:
        assert ingest_csv(lab, _first()).refused == []
        assert ingest_csv(lab, SECOND).refused == []
        yield lab


def _single(lab: Lab, subscriber: str, lo: int, hi: int) -> tuple[str, str]:
    answer = {
        "status": "match",
        "subscriber": subscriber,
        "window": {"from": instant_text(lo), "to": instant_text(hi)},
    }
    with unit_of_work(lab.sessions) as s:
        directory.add_account(s, LEGAL, answer, {})
    shown = answer["account"]
    if shown is None:
        return "not_covered", ""
    assert isinstance(shown, dict)
    return shown["status"], shown["account"] or ""


_ASK = st.tuples(
    st.sampled_from(SUBSCRIBERS),
    st.one_of(
        st.integers(-HOUR, 80 * HOUR),
        # the rows' edges: starts, ends (an end is not in its row), the 250 rows' first
        st.sampled_from([0, 5 * HOUR, 5 * HOUR + 1, 6 * HOUR, 13 * HOUR, 24 * HOUR, 50 * HOUR]),
    ),
    st.sampled_from([0, 1, 1_000_000, HOUR, 4 * HOUR, 12 * HOUR, 48 * HOUR]),
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(asks=st.lists(_ASK, min_size=1, max_size=25))
def test_batch_accounts_are_the_single_lookups(
    store: Lab, asks: list[tuple[str, int, int]]
) -> None:
    start = np.array([BASE + lo for _, lo, _ in asks], dtype=np.int64)
    end = start + np.array([width for _, _, width in asks], dtype=np.int64)
    with unit_of_work(store.sessions) as s:
        batch = directory.BatchAccounts(s, LEGAL.role)
        said = batch(
            {k: (subscriber, None) for k, (subscriber, _, _) in enumerate(asks)}, start, end
        )
    for k, (subscriber, _, _) in enumerate(asks):
        assert said[k] == _single(store, subscriber, int(start[k]), int(end[k])), asks[k]


def test_the_cases_the_rows_were_made_for(store: Lab) -> None:
    """Not only agreement: what each case gives, so that both cannot be wrong together."""
    cases = [
        ("2001:db8:1:1ff::1/128", 12 * HOUR + 1, 0, ("ambiguous", "")),  # carol, erin, grace
        ("2001:db8:1:200::/56", 30 * HOUR, 0, ("identified", "grace")),
        ("2001:db8:1:100::/56", 49 * HOUR, 0, ("ambiguous", "")),  # dave, frank, grace
        ("10.0.0.5/32", 12 * HOUR, 0, ("ambiguous", "")),  # alice and block
        ("10.0.0.6/32", 12 * HOUR, 0, ("identified", "block")),
        ("10.0.0.5/32", 30 * HOUR, 0, ("ambiguous", "")),  # bob and bob-again
        ("10.0.1.0/32", 3 * HOUR, 0, ("identified", "open-a")),  # before open-b took over
        ("10.0.1.1/32", 5 * HOUR, 0, ("identified", "short")),
        ("10.0.1.1/32", 5 * HOUR + 1, 0, ("not_covered", "")),  # its end is not in it
        # 241 rows in the window, more than an answer is made from: the first 200 are all m0's,
        # but m1 held it too; a cut set must never name one account
        ("10.0.2.0/24", 50 * HOUR, 240 * 60_000_000, ("ambiguous", "")),
        ("10.0.2.0/24", 50 * HOUR + 60 * 60_000_000, 0, ("identified", "m0")),  # one row
        # open rows each taken over by the next: only the last holds in the window, the others
        # ended before it and must not fill the rows an answer is made from
        ("10.0.3.0/32", 400 * HOUR, 0, ("identified", "t-last")),
        ("10.9.9.9/32", 0, 0, ("not_covered", "")),
    ]
    start = np.array([BASE + lo for _, lo, _, _ in cases], dtype=np.int64)
    end = start + np.array([width for _, _, width, _ in cases], dtype=np.int64)
    with unit_of_work(store.sessions) as s:
        said = directory.BatchAccounts(s, LEGAL.role)(
            {k: (c[0], None) for k, c in enumerate(cases)}, start, end
        )
    assert [said[k] for k in range(len(cases))] == [c[3] for c in cases]
    for k, (subscriber, _, _, expected) in enumerate(cases):
        assert _single(store, subscriber, int(start[k]), int(end[k])) == expected, subscriber


def test_the_lengths_held_find_what_every_length_finds(store: Lab) -> None:
    """Supernets joined only at the prefix lengths the directory holds give the rows that every
    length gives (the statement asked again when the store moved under it)."""
    nets = [*SUBSCRIBERS, "10.0.0.4/31", "2001:db8:1:100::/60", "::/0", "0.0.0.0/0"]
    los = [BASE + k * HOUR for k in range(len(nets))]
    his = [lo + 80 * HOUR for lo in los]
    with unit_of_work(store.sessions) as s:
        _, held = rows_repo.prefix_lengths(s)
        assert held == {4: [24, 30, 32], 6: [48, 56, 64, 128]}
        unscoped = ([None] * len(nets), [False] * len(nets))
        found = sorted(rows_repo.around_nets(s, nets, los, his, *unscoped))
        raw = s.connection().connection.driver_connection
        assert raw is not None
        asked = {"nets": nets, "los": los, "his": his, "realms": unscoped[0], "scoped": unscoped[1]}
        every = asked | rows_repo._lengths_args(rows_repo._EVERY_LENGTH)
        with raw.cursor() as cur:
            rows = cur.execute(rows_repo._AROUND_NETS, every).fetchall()
    assert found == sorted((i - 1, *rest) for _, i, *rest in rows if i is not None)
    assert len(found) > 250


def test_a_later_ingest_is_seen_at_its_lengths() -> None:
    """The lengths are learnt per store revision: a /20 ingested after a batch was answered
    answers the next batch."""
    with lab_store() as lab:
        ingest_csv(lab, f"subscriber,account,from,to\n10.0.0.5,alice,{_at(0)},\n")
        ask = ({0: ("10.0.0.5/32", None)}, np.array([BASE + HOUR]), np.array([BASE + HOUR]))
        with unit_of_work(lab.sessions) as s:
            assert directory.BatchAccounts(s, LEGAL.role)(*ask) == {0: ("identified", "alice")}
        ingest_csv(lab, f"subscriber,account,from,to\n10.0.0.0/20,wholesale,{_at(0)},\n")
        with unit_of_work(lab.sessions) as s:
            assert directory.BatchAccounts(s, LEGAL.role)(*ask) == {0: ("ambiguous", "")}


def test_more_rows_than_an_answer_is_made_from_name_no_account_and_say_why(store: Lab) -> None:
    answer = {
        "status": "match",
        "subscriber": "10.0.2.0/24",
        "window": {"from": _at(50 * HOUR), "to": _at(50 * HOUR + 240 * 60_000_000)},
    }
    with unit_of_work(store.sessions) as s:
        directory.add_account(s, LEGAL, answer, {})
    assert answer["account"]["status"] == "ambiguous" and answer["account"]["account"] is None
    assert "too many to name one account" in answer["account_reason"]
    assert directory.check_account(answer) == []  # its evidence still checks offline
