"""The directory and realms: a private inside address is another subscriber behind another NAT.

Two realms, ``lab`` (pool 198.18.9.0/30) and ``east`` (pool 198.18.10.0/30), with the same plan
shape over the same inside space 10.0.0.0/18: port 1099 of either pool's first address is
10.0.0.5 — of that realm. RADIUS from the lab BNG says alice held 10.0.0.5, from the east BNG
that bob did. Whose account a lookup names must depend on the realm the answer is in.

A database of its own: its intervals must not give other tests' answers an account.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from cli.main import app as cli_app
from detnat.complaints import Complaint, Ref
from detnat.complaints.records import to_us
from detnat.errors import NotFound
from detnat.service import audit, batch_lookups, complaints, directory, integrity, lookups, plans
from detnat.service.batch_lookups import BatchQuery, BatchReport
from detnat.service.timelines import TimelineCache, from_us
from detnat.service.times import format_instant
from detnat.settings import get_settings
from detnat.store.db import unit_of_work
from tests.directory.lab import OPS, T0, Lab, lab_store
from tests.store.conftest import small_plan

pytestmark = pytest.mark.postgres

NOW = datetime(2026, 6, 1, tzinfo=UTC)
LAB_IP, EAST_IP = "198.18.9.0", "198.18.10.0"
PORT = 1099  # 10.0.0.5 in both realms (small_plan: 10.0.0.k holds 1024 + 15k .. 1038 + 15k)
OTHER_PORT = 1114  # 10.0.0.6
DAY1 = datetime(2026, 3, 1, 12, tzinfo=UTC)
DAY3 = datetime(2026, 3, 3, tzinfo=UTC)
LEGAL = audit.Actor("l", "legal")


def _ingest(lab: Lab, body: str, realm: str | None) -> directory.IngestSummary:
    with unit_of_work(lab.sessions) as s:
        files = [directory.InputFile("dir.csv", ("subscriber,account,from,to\n" + body).encode())]
        return directory.ingest(s, OPS, "csv", files, tz=None, request_id="t", realm=realm)


def _two_realms(lab: Lab) -> None:
    with unit_of_work(lab.sessions) as s:
        plans.create_realm(s, "east", by=OPS, session_drain=timedelta(0), single_approver=True)
        plans.publish(
            s, "east", small_plan("198.18.10.0/30"), effective_from=T0 - timedelta(days=1),
            reason="EAST", by=OPS, clock=lambda: T0 - timedelta(days=2),
        )  # fmt: skip


@pytest.fixture(scope="module")
def store() -> Iterator[Lab]:
    """Two realms; the lab BNG's and the east BNG's RADIUS ingested each with its realm, and a
    CRM export that names no realm (10.0.0.6: carol; a global IPv6 prefix: dora)."""
    with lab_store() as lab:
        _two_realms(lab)
        _ingest(lab, "10.0.0.5,alice,2026-03-01T00:00:00Z,\n", "lab")
        _ingest(lab, "10.0.0.5,bob,2026-03-01T00:00:00Z,\n", "east")
        # east: bob's session (its Stop lost) is taken over by erin's Start, in east only
        _ingest(lab, "10.0.0.5,erin,2026-03-02T00:00:00Z,\n", "east")
        _ingest(
            lab,
            "10.0.0.6,carol,2026-03-01T00:00:00Z,\n2001:db8:77::/48,dora,2026-03-01T00:00:00Z,\n",
            None,
        )
        _ingest(lab, "2001:db8:88::/48,fred,2026-03-01T00:00:00Z,\n", "east")
        yield lab


def _single(lab: Lab, ip: str, port: int, at: datetime) -> dict[str, object]:
    with unit_of_work(lab.sessions) as s:
        answer: dict[str, object] = dict(
            lookups.reverse_in(
                TimelineCache().get(s), ip, port, at=at, tolerance=timedelta(0), realm=None,
                now=NOW, mappers=plans.MapperCache(),
            )
        )  # fmt: skip
        directory.add_account(s, LEGAL, answer, {})
    return answer


def _account(answer: dict[str, object]) -> str | None:
    shown = answer["account"]
    return None if shown is None else shown["account"]  # type: ignore[index]


def test_the_same_private_address_names_the_account_of_its_own_realm(store: Lab) -> None:
    lab = _single(store, LAB_IP, PORT, DAY1)
    east = _single(store, EAST_IP, PORT, DAY1)
    assert lab["subscriber"] == east["subscriber"] == "10.0.0.5/32"
    assert _account(lab) == "alice" and _account(east) == "bob"
    held = lab["account"]["held"]  # type: ignore[index]
    assert [(h["account"], h["realm"]) for h in held] == [("alice", "lab")]


def test_a_takeover_in_one_realm_does_not_end_a_session_in_another(store: Lab) -> None:
    # erin's Start ends bob's open session in east; alice's in lab is not touched by it
    assert _account(_single(store, EAST_IP, PORT, DAY3)) == "erin"
    assert _account(_single(store, LAB_IP, PORT, DAY3)) == "alice"


def test_rows_without_a_realm_do_not_name_the_holder_of_a_private_address(store: Lab) -> None:
    """Before rows carried a realm, carol's row (the CRM knows 10.0.0.6, but behind which NAT?)
    named carol for 10.0.0.6 in either realm: one of them is someone else."""
    for ip in (LAB_IP, EAST_IP):
        answer = _single(store, ip, OTHER_PORT, DAY1)
        assert answer["status"] == "match" and answer["subscriber"] == "10.0.0.6/32"
        assert answer["account"] is None
        reason = str(answer["account_reason"])
        assert "--realm" in reason and "private address" in reason


def test_rows_without_a_realm_answer_a_global_key_in_any_realm(store: Lab) -> None:
    for realm in ("lab", "east"):
        answer = {
            "status": "match",
            "subscriber": "2001:db8:77:100::/56",
            "window": {"from": "2026-03-02T00:00:00Z", "to": "2026-03-02T00:00:00Z"},
            "candidates": [{"realm": realm}],
        }
        with unit_of_work(store.sessions) as s:
            directory.add_account(s, LEGAL, answer, {})
        assert _account(answer) == "dora"


def _asked(subscriber: str, at: str, *realms: str) -> dict[str, object]:
    return {
        "status": "match",
        "subscriber": subscriber,
        "window": {"from": at, "to": at},
        "candidates": [{"realm": r} for r in realms],
    }


def test_a_row_of_a_realm_answers_only_answers_in_that_realm_whatever_the_key(
    store: Lab,
) -> None:
    """Even a global key: the operator said these rows are east's. (Before, a row of east for
    a key not on a fixed list of private ranges named its account in any realm.)"""
    said = {}
    for realms in (("east",), ("lab",), ("lab", "east")):
        answer = _asked("2001:db8:88:100::/56", "2026-03-02T00:00:00Z", *realms)
        with unit_of_work(store.sessions) as s:
            directory.add_account(s, LEGAL, answer, {})
        said[realms] = _account(answer)
    assert said == {("east",): "fred", ("lab",): None, ("lab", "east"): None}


def test_a_later_row_of_the_realm_ends_an_open_row_of_no_realm() -> None:
    """A store of one realm: an open row ingested without a realm (before realms were
    recorded) is taken over by a later Start ingested with it, as it was by one without."""
    with lab_store() as lab:
        _ingest(lab, "10.0.0.5,alice,2026-03-01T00:00:00Z,\n", None)
        _ingest(lab, "10.0.0.5,bob,2026-03-02T00:00:00Z,2026-03-03T00:00:00Z\n", "lab")
        assert _account(_single(lab, LAB_IP, PORT, DAY1)) == "alice"
        assert _account(_single(lab, LAB_IP, PORT, datetime(2026, 3, 2, 12, tzinfo=UTC))) == "bob"
        after = _single(lab, LAB_IP, PORT, datetime(2026, 3, 4, 12, tzinfo=UTC))
        assert after["account"] is None  # alice's session ended when bob's began
        with unit_of_work(lab.sessions) as s:
            query = BatchQuery(
                snapshot=TimelineCache().get(s), now=NOW, mappers=plans.MapperCache(),
                tolerance=timedelta(0), accounts=directory.BatchAccounts(s, LEGAL.role),
            )  # fmt: skip
            at = to_us(datetime(2026, 3, 4, 12, tzinfo=UTC))
            said = batch_lookups.answer_rows(
                query, np.array([3323070720]), np.array([PORT]), np.array([at]), {}, BatchReport()
            )
        assert said.account_status == ["not_covered"]


def test_an_evidence_file_whose_account_rests_on_another_realms_row_fails(store: Lab) -> None:
    answer = _single(store, EAST_IP, PORT, DAY1)
    assert _account(answer) == "bob" and directory.check_account(answer) == []
    moved = {**answer, "candidates": [{**c, "realm": "lab"} for c in answer["candidates"]]}  # type: ignore[attr-defined]
    assert any("realm east" in p for p in directory.check_account(moved))


def test_in_a_store_of_one_realm_rows_without_a_realm_answer_as_before() -> None:
    with lab_store() as lab:
        _ingest(lab, "10.0.0.6,carol,2026-03-01T00:00:00Z,\n", None)
        assert _account(_single(lab, LAB_IP, OTHER_PORT, DAY1)) == "carol"
        _two_realms(lab)  # a second NAT from now on: carol's row no longer says which
        assert _account(_single(lab, LAB_IP, OTHER_PORT, DAY1)) is None


def test_a_match_from_two_realms_is_of_no_one_realm(store: Lab) -> None:
    answer = {
        "status": "match",
        "subscriber": "10.0.0.5/32",
        "window": {"from": "2026-03-01T12:00:00Z", "to": "2026-03-01T12:00:00Z"},
        "candidates": [{"realm": "lab"}, {"realm": "east"}],
    }
    with unit_of_work(store.sessions) as s:
        directory.add_account(s, LEGAL, answer, {})
    assert answer["account"] is None and "several realms" in str(answer["account_reason"])


def _complaint(ip: str, port: int, at: datetime, n: int) -> Complaint:
    return Complaint(
        Ref("t"), "csv", f"c{n}", ip, port, "source", to_us(at), format_instant(at), "Z", "spam"
    )


def test_complaints_name_the_account_of_the_realm_too(store: Lab) -> None:
    records = [
        _complaint(LAB_IP, PORT, DAY1, 1),
        _complaint(EAST_IP, PORT, DAY1, 2),
        _complaint(EAST_IP, PORT, DAY3, 3),
        _complaint(LAB_IP, OTHER_PORT, DAY1, 4),
    ]
    out: list[str] = []
    with unit_of_work(store.sessions) as s:
        query = BatchQuery(
            snapshot=TimelineCache().get(s), now=NOW, mappers=plans.MapperCache(),
            tolerance=timedelta(0),
        )  # fmt: skip
        query = complaints.with_accounts(s, LEGAL, query)
        complaints.answer_records(query, records, out.append)
    rows = list(csv.DictReader(io.StringIO("".join(out))))
    assert [r["subscriber"] for r in rows] == ["10.0.0.5/32"] * 3 + ["10.0.0.6/32"]
    assert [r["account"] for r in rows] == ["alice", "bob", "erin", ""]


_ASKS = st.tuples(
    st.sampled_from([LAB_IP, EAST_IP]),
    st.sampled_from([PORT, OTHER_PORT, 1024]),
    st.integers(to_us(T0) - 3_600_000_000, to_us(T0) + 3 * 86_400_000_000),
)


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(asks=st.lists(_ASKS, min_size=1, max_size=12), tolerance_s=st.sampled_from([0, 7200]))
def test_batch_accounts_agree_with_single_lookups_across_realms(
    store: Lab, asks: list[tuple[str, int, int]], tolerance_s: int
) -> None:
    tolerance = timedelta(seconds=tolerance_s)
    with unit_of_work(store.sessions) as s:
        query = BatchQuery(
            snapshot=TimelineCache().get(s), now=NOW, mappers=plans.MapperCache(),
            tolerance=tolerance, accounts=directory.BatchAccounts(s, LEGAL.role),
        )  # fmt: skip
        ips = np.array([int.from_bytes(bytes(map(int, ip.split(".")))) for ip, _, _ in asks])
        ports = np.array([p for _, p, _ in asks], dtype=np.int64)
        at = np.array([t for _, _, t in asks], dtype=np.int64)
        said = batch_lookups.answer_rows(query, ips, ports, at, {}, BatchReport())
        assert said.account is not None and said.account_status is not None
        for k, (ip, port, t) in enumerate(asks):
            if said.status[k] != batch_lookups.STATUS_WORDS.index("match"):
                continue
            single: dict[str, object] = dict(
                lookups.reverse_in(
                    query.snapshot, ip, port, at=from_us(t), tolerance=tolerance, realm=None,
                    now=NOW, mappers=query.mappers,
                )
            )  # fmt: skip
            directory.add_account(s, LEGAL, single, {})
            shown = single["account"]
            if shown is None:
                assert (said.account_status[k], said.account[k]) == ("not_covered", "")
            else:
                assert isinstance(shown, dict)
                assert (said.account_status[k], said.account[k]) == (
                    shown["status"],
                    shown["account"] or "",
                )


def test_an_unknown_realm_is_refused_and_nothing_is_stored(store: Lab) -> None:
    with pytest.raises(NotFound, match="west"):
        _ingest(store, "10.0.0.9,zed,2026-03-01T00:00:00Z,\n", "west")
    with store.sessions() as s:
        assert not s.execute(text("select 1 from directory_intervals where account = 'zed'")).all()


def test_the_realm_is_hashed_with_the_row(store: Lab) -> None:
    with store.sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
        s.execute(text("set local session_replication_role = replica"))
        s.execute(
            text(
                "update directory_intervals set realm_id = (select id from realms where "
                "name = 'east') where account = 'alice'"
            )
        )
        broken = [str(b) for b in integrity.verify(s)[0]]
        s.rollback()
    assert broken and broken[0].startswith("directory ingest ") and "differ" in broken[0]


def test_cli_ingest_takes_the_realm(
    store: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", store.url)
    get_settings.cache_clear()
    export = tmp_path / "east.csv"
    export.write_text("subscriber,account,from,to\n10.0.0.9,yann,2026-03-01T00:00:00Z,\n")
    run = CliRunner().invoke
    try:
        unknown = run(
            cli_app, ["directory", "ingest", "--format", "csv", "--realm", "west", str(export)]
        )
        done = run(
            cli_app, ["directory", "ingest", "--format", "csv", "--realm", "east", str(export)]
        )
    finally:
        get_settings.cache_clear()
    assert unknown.exit_code != 0 and "west" in unknown.output
    assert done.exit_code == 0, done.output
    yann = _single(store, EAST_IP, 1024 + 15 * 9, DAY1)
    assert yann["subscriber"] == "10.0.0.9/32" and _account(yann) == "yann"
    assert _account(_single(store, LAB_IP, 1024 + 15 * 9, DAY1)) is None


def test_rows_outside_every_plan_of_the_realm_named_are_refused(store: Lab) -> None:
    """A careless `--realm`: RADIUS of a NAT whose inside is 172.16/12 ingested as east's (whose
    plans use 10.0.0.0/18). Its private keys would name east's subscribers' accounts; they are
    refused, each with its line, and the rest of the file is stored. A global IPv6 key is not
    scoped by the plans and stays; a realm without plans cannot be checked and keeps every row."""
    body = (
        "172.16.0.5,mallory,2026-03-01T00:00:00Z,\n"
        "10.0.0.9,trent,2026-03-01T00:00:00Z,\n"
        "172.16.0.6,mallory2,2026-03-01T00:00:00Z,\n"
        "2001:db8:99::/48,gina,2026-03-01T00:00:00Z,\n"
    )
    summary = _ingest(store, body, "east")
    assert summary.intervals == 2
    assert [(r.line, r.reason.split(" ")[0]) for r in summary.refused] == [
        (2, "172.16.0.5/32"),
        (4, "172.16.0.6/32"),
    ]
    assert "east" in summary.refused[0].reason and "--realm" in summary.refused[0].reason
    with unit_of_work(store.sessions) as s:
        plans.create_realm(s, "bare", by=OPS, session_drain=timedelta(0), single_approver=True)
    assert _ingest(store, body, "bare").intervals == 4
