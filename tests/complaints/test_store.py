"""Complaints answered against a real Postgres store: verdicts, the audit entry, the CLI."""

from __future__ import annotations

import csv
import hashlib
import io
import json
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text
from typer.testing import CliRunner

from cli.main import app
from detnat.complaints import Complaint, Ref
from detnat.complaints.records import SERVICE, SOURCE, to_us
from detnat.service import complaints, plans
from detnat.service.batch_lookups import BatchQuery
from detnat.service.timelines import TimelineCache
from detnat.settings import get_settings
from detnat.store.db import SessionFactory, unit_of_work
from tests.complaints import samples
from tests.complaints.conftest import T0, V1_FROM, V2_FROM, World

pytestmark = pytest.mark.postgres

AT = T0 - timedelta(days=5)  # under v2
BEFORE = T0 - timedelta(days=20)  # under v1


def _iso(moment: object) -> str:
    from detnat.service.times import format_instant

    return format_instant(moment)  # type: ignore[arg-type]


def answer(sessions: SessionFactory, records: list[object]) -> tuple[list[dict[str, str]], object]:
    out: list[str] = []
    with unit_of_work(sessions) as s:
        query = BatchQuery(snapshot=TimelineCache().get(s), now=T0, mappers=plans.MapperCache())
        report = complaints.answer_records(query, records, out.append)  # type: ignore[arg-type]
    return list(csv.DictReader(io.StringIO("".join(out)))), report


def _complaint(ip: str, port: int | None, kind: str | None, at: object, **kw: object) -> Complaint:
    return Complaint(
        Ref("t"), "csv", "c", ip, port, kind, to_us(at), _iso(at), "Z", "spam",  # type: ignore[arg-type]
        **kw,  # type: ignore[arg-type]
    )  # fmt: skip


def test_each_verdict_from_a_mixed_mailbox(sessions: SessionFactory, world: World) -> None:
    expected = world.v2.reverse(world.ip, 1100)
    box = samples.mbox(
        samples.arf_mail(world.ip, 1100, arrival=AT.strftime("%a, %d %b %Y %H:%M:%S +0000")),
        samples.xarf_02_mail(world.ip).replace(
            b"Feb  3 2014 02:13:35 +0100", AT.strftime("%b %d %Y %H:%M:%S +0000").encode()
        ),
        samples.acns_mail("198.51.100.77", 33273, _iso(AT)),  # TEST-NET-2: in no pool
        samples.acns_mail(world.ip, 1023, _iso(AT)),  # below the plan's first port
        b"Subject: lunch?\n\nNot a complaint.\n",
        samples.acns_mail("100.64.0.1", 1100, _iso(AT)),  # shared CGN space: never public
    )
    from detnat import complaints as intake

    records = list(intake.read(io.BytesIO(box), "export.mbox"))
    rows, report = answer(sessions, records)
    verdicts = [r["verdict"] for r in rows]
    assert verdicts == [
        "identified", "no_source_port", "not_ours", "not_ours", "unreadable", "unreadable",
    ]  # fmt: skip
    arf = rows[0]
    assert arf["subscriber"] == str(expected.allocation.subscriber)  # type: ignore[union-attr]
    assert arf["status"] == "match" and arf["account"] == "" and arf["port_kind"] == "source"
    assert arf["time"] == _iso(AT) and arf["source"] == "export.mbox#1"
    assert arf["zone"] == "'+0000"  # neutralised like every cell that starts like a formula
    xarf = rows[1]
    assert xarf["subscriber"] == "" and xarf["port"] == "22" and xarf["port_kind"] == "service"
    assert xarf["shared_by"] == "8192"  # v2: ratio 8192, every address full
    assert "service port" in xarf["note"]
    assert "none of our pools" in rows[2]["note"]
    assert "that port is reserved" in rows[3]["note"]
    assert "lunch?" in rows[4]["note"]
    assert "shared address space" in rows[5]["note"]
    assert report.counts == {  # type: ignore[attr-defined]
        "identified": 1, "no_source_port": 1, "not_ours": 2, "unreadable": 2,
    }  # fmt: skip
    [offender] = report.summary()  # type: ignore[attr-defined]
    assert offender.key == arf["subscriber"] and offender.kind == "subscriber"


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(port=st.integers(0, 65535), days=st.integers(1, 29))
def test_a_service_port_never_names_a_subscriber(
    sessions: SessionFactory, world: World, port: int, days: int
) -> None:
    at = T0 - timedelta(days=days, minutes=7)
    rows, _ = answer(sessions, [_complaint(world.ip, port, SERVICE, at)])
    [row] = rows
    assert row["verdict"] == "no_source_port" and row["subscriber"] == ""
    mapper = world.v2 if at >= V2_FROM else world.v1
    assert row["shared_by"] == str(4096 if mapper is world.v1 else 8192)


def test_same_port_as_a_source_port_identifies(sessions: SessionFactory, world: World) -> None:
    rows, _ = answer(
        sessions,
        [_complaint(world.ip, 1100, SOURCE, AT), _complaint(world.ip, 1100, SOURCE, BEFORE)],
    )
    assert [r["verdict"] for r in rows] == ["identified", "identified"]
    v2 = world.v2.reverse(world.ip, 1100).allocation
    v1 = world.v1.reverse(world.ip, 1100).allocation
    assert rows[0]["subscriber"] == str(v2.subscriber)  # type: ignore[union-attr]
    assert rows[1]["subscriber"] == str(v1.subscriber)  # type: ignore[union-attr]


def test_acns_times_that_disagree_across_a_plan_change_are_ambiguous(
    sessions: SessionFactory, world: World
) -> None:
    v1 = str(world.v1.reverse(world.ip, 1100).allocation.subscriber)  # type: ignore[union-attr]
    v2 = str(world.v2.reverse(world.ip, 1100).allocation.subscriber)  # type: ignore[union-attr]
    assert v1 != v2
    flag = "the notice's text says ... but its XML TimeStamp says ..."
    split = _complaint(world.ip, 1100, SOURCE, AT, flags=(flag,), also_at_us=to_us(BEFORE))
    agree = _complaint(
        world.ip, 1100, SOURCE, AT, flags=(flag,), also_at_us=to_us(AT - timedelta(hours=1))
    )
    rows, report = answer(sessions, [split, agree])
    assert rows[0]["verdict"] == "ambiguous" and rows[0]["subscriber"] == ""
    assert v1 in rows[0]["note"] and flag in rows[0]["note"]
    assert rows[1]["verdict"] == "identified" and rows[1]["subscriber"] == v2
    assert flag in rows[1]["note"]
    assert report.counts == {"ambiguous": 1, "identified": 1}  # type: ignore[attr-defined]


def test_no_plan_before_the_first_version_is_not_ours(
    sessions: SessionFactory, world: World
) -> None:
    rows, _ = answer(sessions, [_complaint(world.ip, 1100, SOURCE, V1_FROM - timedelta(days=1))])
    assert rows[0]["verdict"] == "not_ours" and rows[0]["status"] == "no_plan_in_force"


def test_cells_are_formula_neutralised(sessions: SessionFactory, world: World) -> None:
    record = Complaint(
        Ref("=cmd|x"), "csv", "=HYPERLINK(1)", world.ip, 1100, SOURCE, to_us(AT), "@t", "+1",
        "-cat",
    )  # fmt: skip
    out: list[str] = []
    with unit_of_work(sessions) as s:
        query = BatchQuery(snapshot=TimelineCache().get(s), now=T0, mappers=plans.MapperCache())
        complaints.answer_records(query, [record], out.append)
    line = "".join(out).splitlines()[1]
    assert line.startswith("'=HYPERLINK(1),'=cmd|x,csv,'-cat,")
    assert ",'@t,'+1," in line


def test_cli_answers_a_mailbox_with_audit_and_summary(
    database_url: str,
    sessions: SessionFactory,
    world: World,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    arrival = AT.strftime("%a, %d %b %Y %H:%M:%S +0000")
    box = tmp_path / "export.mbox"
    box.write_bytes(
        samples.mbox(
            samples.arf_mail(world.ip, 1100, arrival=arrival),
            samples.arf_mail(world.ip, 1094, arrival=arrival),
            b"Subject: hello\n\nnothing\n",
        )
    )
    out = tmp_path / "answers.csv"
    run = CliRunner().invoke
    try:
        done = run(
            app,
            ["complaints", "answer", str(box), "--case", "ABUSE-1", "-o", str(out), "--summary"],
        )
        assert done.exit_code == 0, done.output
        rows = list(csv.DictReader(io.StringIO(out.read_text())))
        assert [r["verdict"] for r in rows] == ["identified", "identified", "unreadable"]
        assert rows[0]["subscriber"] == rows[1]["subscriber"] != ""  # 1094-1100: one block
        assert "2 complaints" in done.stdout and rows[0]["subscriber"] in done.stdout
        assert "3 complaints: 2 identified, 1 unreadable" in done.stderr
        again = run(app, ["complaints", "answer", str(box), "--case", "ABUSE-1", "-o", str(out)])
        assert again.exit_code == 2 and "already exists" in again.stderr
        no_case = run(app, ["complaints", "answer", str(box)])
        assert no_case.exit_code == 2 and "--case" in no_case.stderr
        as_json = run(
            app,
            ["complaints", "answer", str(box), "--case", "ABUSE-1", "-o", str(tmp_path / "b.csv"),
             "--json", "--summary"],
        )  # fmt: skip
        assert as_json.exit_code == 0, as_json.output
        summary = json.loads(as_json.stdout)
        assert summary["counts"] == {"identified": 2, "unreadable": 1}
        assert summary["summary"][0]["complaints"] == 2
        assert summary["answer_id"] > 0
        audited = run(app, ["audit", "verify"])
        assert audited.exit_code == 0, audited.output
        with unit_of_work(sessions) as s:
            detail = s.execute(
                text("SELECT detail FROM audit_log WHERE seq = :seq"),
                {"seq": summary["answer_id"]},
            ).scalar_one()
        assert detail["batch"]["format"] == "complaints/auto"
        assert detail["batch"]["counts"] == {"identified": 2, "unreadable": 1}
        assert detail["batch"]["output_sha256"] == summary["output_sha256"]
        assert detail["batch"]["input_sha256"] == hashlib.sha256(box.read_bytes()).hexdigest()
    finally:
        get_settings.cache_clear()


@pytest.mark.parametrize(
    ("extra", "field"),
    [
        (["--tz", "Nowhere/Else"], "--tz"),
        (["--format", "pdf"], "--format"),
        (["--map", "ip=a,colour=b"], "--map"),
        (["--tolerance", "2 days"], "--tolerance"),
    ],
)
def test_cli_refuses_bad_options_before_reading(
    tmp_path: Path, extra: list[str], field: str
) -> None:
    box = tmp_path / "x.mbox"
    box.write_bytes(samples.mbox(samples.arf_mail("192.0.2.1", 1)))
    done = CliRunner().invoke(app, ["complaints", "answer", str(box), "--case", "C-1", *extra])
    assert done.exit_code == 2 and field in done.stderr, done.output


def test_cli_refuses_an_unreadable_input_file(
    database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        done = CliRunner().invoke(app, ["complaints", "answer", str(tmp_path), "--case", "C-1"])
    finally:
        get_settings.cache_clear()
    assert done.exit_code == 2 and "cannot read" in done.stderr


def test_logged_holders_count_beside_the_plans_holders(
    sessions: SessionFactory, world: World
) -> None:
    """A port block the NAT logged on the address (a dynamic overflow block, say) adds its holder
    to ``shared_by``; a holder the plan already counts is counted once."""
    from detnat.logs.events import EventKind
    from tests.logs.conftest import event, ingest

    allocation = world.v2.reverse(world.ip, 40000).allocation
    assert allocation is not None
    planned = allocation.subscriber
    since = to_us(AT - timedelta(minutes=1))
    lines = [
        event(EventKind.ALLOCATE, since, "100.64.9.9", world.ip, 1024, 1535),
        event(EventKind.ALLOCATE, since, str(planned).split("/")[0], world.ip, 2048, 2559, line=2),
    ]
    ingest(sessions, world.realm, lines, hold=timedelta(hours=1))
    out: list[str] = []
    with unit_of_work(sessions) as s:
        query = BatchQuery(snapshot=TimelineCache().get(s), now=T0, mappers=plans.MapperCache())
        record = _complaint(world.ip, None, None, AT)
        complaints.answer_records(complaints.with_logs(s, query), [record], out.append)
    [row] = csv.DictReader(io.StringIO("".join(out)))
    assert (row["verdict"], row["shared_by"], row["subscriber"]) == ("no_source_port", "8193", "")
