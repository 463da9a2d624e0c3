"""Accounts on batch answers: complaints (service, CLI, upload) get the directory's account, by
the single lookup's rule; roles that see no accounts get none.

A database of its own: its intervals must not give other tests' answers an account.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app as cli_app
from detnat.complaints import Complaint, Ref
from detnat.complaints.records import to_us
from detnat.service import audit, batch_lookups, complaints, directory, lookups, plans
from detnat.service.batch_lookups import BatchQuery, BatchReport
from detnat.service.timelines import TimelineCache, from_us
from detnat.service.times import format_instant
from detnat.settings import Settings, get_settings
from detnat.store.db import unit_of_work
from tests.complaints import samples
from tests.directory.lab import T0, Lab, ingest_csv, lab_store
from tests.store.conftest import Api

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 6, 1, tzinfo=UTC)
IP = "198.18.9.0"
# small_plan: subscriber 10.0.0.k holds ports 1024 + 15k .. 1038 + 15k of the pool's first address
ALICE_BOB, CAROL, NOBODY, DAVE_ERIN, BLOCK = 1099, 1114, 1159, 1129, 1204  # 10.0.0.{5,6,9,7,12}
DIRECTORY = (
    "subscriber,account,from,to\n"
    "10.0.0.5,alice,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
    "10.0.0.5,bob,2026-03-02T00:00:00Z,\n"
    "10.0.0.6,carol,2026-03-01T00:00:00Z,\n"
    "10.0.0.7,dave,2026-03-01T00:00:00Z,\n"  # its Stop lost: ends where erin's Start is
    "10.0.0.7,erin,2026-03-02T12:00:00Z,\n"
    "10.0.0.12/30,block-owner,2026-03-01T06:00:00Z,2026-03-02T06:00:00Z\n"
)


@pytest.fixture(scope="module")
def store() -> Iterator[Lab]:
    with lab_store() as lab:
        done = ingest_csv(lab, DIRECTORY)
        assert done.intervals == 6 and done.refused == []
        yield lab


def _complaint(port: int, at: datetime, n: int = 0) -> Complaint:
    return Complaint(
        Ref("t"), "csv", f"c{n}", IP, port, "source", to_us(at), format_instant(at), "Z", "spam"
    )


def _answer(
    store: Lab, role: str, records: list[Complaint], tolerance: timedelta = timedelta(0)
) -> tuple[list[dict[str, str]], complaints.ComplaintsReport]:
    out: list[str] = []
    with unit_of_work(store.sessions) as s:
        query = BatchQuery(
            snapshot=TimelineCache().get(s), now=NOW, mappers=plans.MapperCache(),
            tolerance=tolerance,
        )  # fmt: skip
        query = complaints.with_accounts(s, audit.Actor("someone", role), query)
        report = complaints.answer_records(query, records, out.append)
    return list(csv.DictReader(io.StringIO("".join(out)))), report


DAY1 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY3 = datetime(2026, 3, 3, tzinfo=UTC)


def test_complaints_get_the_account_and_the_summary_groups_by_it(store: Lab) -> None:
    records = [
        _complaint(ALICE_BOB, DAY1, 1),
        _complaint(ALICE_BOB, DAY3, 2),
        _complaint(ALICE_BOB, DAY3 + timedelta(hours=5), 3),
        _complaint(CAROL, DAY3, 4),
        _complaint(NOBODY, DAY3, 5),
        _complaint(DAVE_ERIN, DAY1, 6),  # dave's open interval, before erin took the address
        _complaint(DAVE_ERIN, DAY3, 7),
    ]
    rows, report = _answer(store, "legal", records)
    assert [r["verdict"] for r in rows] == ["identified"] * 7
    assert [r["account"] for r in rows] == ["alice", "bob", "bob", "carol", "", "dave", "erin"]
    assert rows[4]["subscriber"] == "10.0.0.9/32" and rows[4]["note"] == ""
    summary = [o.to_json() for o in report.summary()]
    assert summary[0] == {
        "account": "bob",
        "complaints": 2,
        "first_seen": "2026-03-03T00:00:00Z",
        "last_seen": "2026-03-03T05:00:00Z",
        "categories": {"spam": 2},
    }
    keys = {(o["account"] if "account" in o else o["subscriber"]) for o in summary}
    assert keys == {"bob", "alice", "carol", "dave", "erin", "10.0.0.9/32"}


def test_a_window_where_the_prefix_changed_hands_names_no_account(store: Lab) -> None:
    changed = datetime(2026, 3, 2, tzinfo=UTC)  # alice's end, bob's start
    rows, report = _answer(store, "abuse", [_complaint(ALICE_BOB, changed)], timedelta(minutes=5))
    [row] = rows
    assert row["verdict"] == "identified" and row["subscriber"] == "10.0.0.5/32"
    assert row["account"] == "" and complaints.ACCOUNT_AMBIGUOUS in row["note"]
    assert [o.kind for o in report.summary()] == ["subscriber"]
    # a /30 row and a /32 row both cover 10.0.0.13 only while the block row lasts
    block = datetime(2026, 3, 1, 12, tzinfo=UTC)
    rows, _ = _answer(store, "legal", [_complaint(BLOCK + 15, block), _complaint(BLOCK, block)])
    assert [r["account"] for r in rows] == ["block-owner", "block-owner"]
    rows, _ = _answer(store, "legal", [_complaint(BLOCK, DAY3)])
    assert rows[0]["account"] == "" and rows[0]["note"] == ""  # the block row has ended


@pytest.mark.parametrize("role", ["planner", "auditor", "viewer"])
def test_a_role_that_sees_no_accounts_gets_none(store: Lab, role: str) -> None:
    rows, report = _answer(store, role, [_complaint(ALICE_BOB, DAY3), _complaint(CAROL, DAY3)])
    assert [r["account"] for r in rows] == ["", ""]
    assert [r["subscriber"] for r in rows] == ["10.0.0.5/32", "10.0.0.6/32"]
    assert {o.kind for o in report.summary()} == {"subscriber"}


def test_the_reverse_batch_query_carries_no_accounts(store: Lab) -> None:
    with unit_of_work(store.sessions) as s:
        query = BatchQuery(snapshot=TimelineCache().get(s), now=NOW, mappers=plans.MapperCache())
        at = np.array([to_us(DAY3)], dtype=np.int64)
        ips, ports = np.array([3323070720], dtype=np.int64), np.array([1099], dtype=np.int64)
        said = batch_lookups.answer_rows(query, ips, ports, at, {}, BatchReport())
    assert said.account is None and said.subscribers() == ["10.0.0.5/32"]


def test_cli_complaints_carry_the_account_and_the_summary(
    store: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", store.url)
    get_settings.cache_clear()
    arrival = DAY3.strftime("%a, %d %b %Y %H:%M:%S +0000")
    box = tmp_path / "export.mbox"
    box.write_bytes(
        samples.mbox(
            samples.arf_mail(IP, ALICE_BOB, arrival=arrival),
            samples.arf_mail(IP, ALICE_BOB + 3, arrival=arrival),  # the same port set
            samples.arf_mail(IP, CAROL, arrival=arrival),
        )
    )
    out = tmp_path / "answers.csv"
    try:
        done = CliRunner().invoke(
            cli_app,
            ["complaints", "answer", str(box), "--case", "ACC-1", "-o", str(out), "--summary",
             "--json"],
        )  # fmt: skip
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 0, done.output
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert [r["account"] for r in rows] == ["bob", "bob", "carol"]  # the local operator sees them
    summary = json.loads(done.stdout)["summary"]
    assert [(o["account"], o["complaints"]) for o in summary] == [("bob", 2), ("carol", 1)]


def test_an_upload_carries_the_account(store: Lab) -> None:
    from api.app import create_app

    api = Api(create_app(Settings(database_url=store.url)), store.tokens)
    arrival = DAY1.strftime("%a, %d %b %Y %H:%M:%S +0000")
    box = samples.mbox(
        samples.arf_mail(IP, ALICE_BOB, arrival=arrival),
        samples.arf_mail(IP, NOBODY, arrival=arrival),
    )
    try:
        got = api(
            "POST", "/v1/complaints/answer", "abuse", files={"files": ("export.mbox", box)},
            data={"case": "ABUSE-ACC"},
        )  # fmt: skip
    finally:
        api.close()
    assert got.status_code == 200, got.text
    body = got.json()
    assert [a["account"] for a in body["answers"]] == ["alice", ""]
    shown = {(o.get("account"), o.get("subscriber"), o["complaints"]) for o in body["summary"]}
    assert shown == {("alice", None, 1), (None, "10.0.0.9/32", 1)}


_PORTS = st.sampled_from([ALICE_BOB, CAROL, NOBODY, DAVE_ERIN, BLOCK, BLOCK + 15, 1024])
_TIMES = st.integers(to_us(T0) - 3_600_000_000, to_us(T0) + 3 * 86_400_000_000)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    asks=st.lists(st.tuples(_PORTS, _TIMES), min_size=1, max_size=12),
    tolerance_s=st.sampled_from([0, 1, 600, 7200, 43200]),
)
def test_batch_accounts_agree_with_single_lookups(
    store: Lab, asks: list[tuple[int, int]], tolerance_s: int
) -> None:
    """Each batch row's account is the one :func:`directory.add_account` gives its single
    lookup (the same subscriber and window)."""
    tolerance = timedelta(seconds=tolerance_s)
    legal = audit.Actor("l", "legal")
    with unit_of_work(store.sessions) as s:
        query = BatchQuery(
            snapshot=TimelineCache().get(s), now=NOW, mappers=plans.MapperCache(),
            tolerance=tolerance, accounts=directory.BatchAccounts(s, legal.role),
        )  # fmt: skip
        ips = np.full(len(asks), 3323070720, dtype=np.int64)
        ports = np.array([p for p, _ in asks], dtype=np.int64)
        at = np.array([t for _, t in asks], dtype=np.int64)
        said = batch_lookups.answer_rows(query, ips, ports, at, {}, BatchReport())
        subscribers = said.subscribers()
        assert said.account is not None and said.account_status is not None
        for k, (_, t) in enumerate(asks):
            if said.status[k] != batch_lookups.STATUS_WORDS.index("match"):
                assert said.account[k] == ""
                continue
            single: dict[str, object] = dict(
                lookups.reverse_in(
                    query.snapshot, IP, asks[k][0], at=from_us(t), tolerance=tolerance,
                    realm=None, now=NOW, mappers=query.mappers,
                )
            )  # fmt: skip
            assert single["status"] == "match" and single["subscriber"] == subscribers[k]
            directory.add_account(s, legal, single, {})
            shown = single["account"]
            if shown is None:
                assert (said.account_status[k], said.account[k]) == ("not_covered", "")
            else:
                assert isinstance(shown, dict)
                assert said.account_status[k] == shown["status"]
                assert said.account[k] == (shown["account"] or "")
