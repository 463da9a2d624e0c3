"""``detnat logs`` through Typer's runner: files, stdin, .gz, --follow through rotation and restart,
prune and check.

The lines are the tests' own format (``tests/logs/made_format.py``), registered for these tests,
so ingest is driven end to end without depending on any vendor parser.
"""

from __future__ import annotations

import gzip
import json
import os
from datetime import timedelta
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from detnat.logs.events import EventKind
from detnat.service import integrity
from detnat.store.db import SessionFactory
from tests.logs.conftest import T0_US, line_of
from tests.logs.test_store_answers import _plan_realm

pytestmark = pytest.mark.postgres

A, R = EventKind.ALLOCATE, EventKind.RELEASE
S = 10**6
PUBLIC = "198.18.50.1"


def lines(*specs: tuple[EventKind, int, str, int]) -> bytes:
    return b"".join(
        line_of(kind, T0_US + at * S, inside, PUBLIC, first, first + 511)
        for kind, at, inside, first in specs
    )


def run(cli: CliRunner, *args: str, stdin: bytes | None = None):  # type: ignore[no-untyped-def]
    return cli.invoke(app, list(args), input=stdin)


def summary(result) -> dict:  # type: ignore[no-untyped-def]
    return json.loads(result.stdout.strip().splitlines()[-1])


def test_ingest_files_stdin_and_gz_reports_counts_and_refused_lines(
    cli: CliRunner, realm: str, tmp_path: Path
) -> None:
    plain = tmp_path / "a.log"
    plain.write_bytes(
        lines((A, 0, "100.64.0.1", 1024)) + b"garbage\n" + lines((R, 9, "100.64.0.1", 1024))
    )
    packed = tmp_path / "b.log.gz"
    packed.write_bytes(gzip.compress(lines((A, 3, "100.64.0.2", 2048), (R, 9, "100.64.0.1", 1024))))
    result = run(
        cli, "logs", "ingest", realm, "--format", "test-made", str(plain), str(packed), "--json"
    )
    assert result.exit_code == 0, result.output
    first, second = (json.loads(x) for x in result.stdout.strip().splitlines())
    assert (first["lines_read"], first["events_stored"], first["refused"]) == (3, 2, 1)
    assert first["refusals"][0]["line"] == 2
    assert f"{plain}:2: refused" in result.stderr
    assert (second["lines_read"], second["events_stored"], second["duplicates"]) == (2, 1, 1)
    piped = run(
        cli,
        "logs",
        "ingest",
        realm,
        "--format",
        "test-made",
        "-",
        stdin=lines((R, 20, "100.64.0.2", 2048)),
    )
    assert piped.exit_code == 0, piped.output
    assert "<stdin>: 1 lines read, 1 events stored, 0 duplicates, 0 refused" in piped.stdout
    asked = run(
        cli,
        "reverse",
        f"{PUBLIC}:2100",
        "--at",
        "2026-03-14T20:00:10Z",
        "--realm",
        realm,
        "--case",
        "C-1",
        "--json",
    )
    assert asked.exit_code == 0, asked.output
    answer = json.loads(asked.stdout)
    assert (answer["status"], answer["subscriber"], answer["source"]) == (
        "match",
        "100.64.0.2/32",
        "log",
    )
    # a realm with logs and no plan: the evidence file re-derives the answer from its lines
    proof = tmp_path / "a.json"
    kept = run(
        cli,
        "reverse",
        f"{PUBLIC}:1100",
        "--at",
        "2026-03-14T20:00:12Z",
        "--realm",
        realm,
        "--case",
        "C-1",
        "--evidence",
        str(proof),
    )
    assert kept.exit_code == 0, kept.output
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 0, checked.output
    document = json.loads(proof.read_text())
    assert document["answer"]["reason"] == "not_logged"


def test_unknown_format_and_bad_hold_are_refused(
    cli: CliRunner, realm: str, tmp_path: Path
) -> None:
    assert run(cli, "logs", "ingest", realm, "--format", "nope", "x").exit_code == 2
    empty = tmp_path / "e.log"
    empty.write_bytes(b"")
    assert (
        run(
            cli, "logs", "ingest", realm, "--format", "test-made", "--log-hold", "0", str(empty)
        ).exit_code
        == 2
    )


def test_follow_reads_through_rotation_and_resumes_after_a_restart_with_no_line_lost_or_twice(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    log = tmp_path / "pba.log"
    follow = (
        "logs",
        "ingest",
        realm,
        "--format",
        "test-made",
        "--follow",
        "--until-idle",
        "--json",
        str(log),
    )
    log.write_bytes(
        lines((A, 0, "100.64.0.1", 1024)) + lines((A, 1, "100.64.0.2", 1536))[:-10]
    )  # half a line
    first = run(cli, *follow)
    assert first.exit_code == 0, first.output
    assert (summary(first)["lines_read"], summary(first)["events_stored"]) == (1, 1)
    with log.open("ab") as f:  # the half line completes, another follows
        f.write(lines((A, 1, "100.64.0.2", 1536))[-10:] + lines((R, 5, "100.64.0.1", 1024)))
    second = run(cli, *follow)
    assert (summary(second)["lines_read"], summary(second)["events_stored"]) == (2, 2)
    # rotation while detnat is down: more lines in the old file, then renamed, then a new file
    with log.open("ab") as f:
        f.write(lines((R, 7, "100.64.0.2", 1536)))
    os.rename(log, tmp_path / "pba.log.1")
    log.write_bytes(lines((A, 8, "100.64.0.3", 1024)))
    third = run(cli, *follow)
    assert third.exit_code == 0, third.output
    assert (summary(third)["lines_read"], summary(third)["events_stored"]) == (2, 2)
    assert summary(third)["duplicates"] == 0
    again = run(cli, *follow)
    assert summary(again)["lines_read"] == 0
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
    asked = run(
        cli,
        "reverse",
        f"{PUBLIC}:1600",
        "--at",
        "2026-03-14T20:00:06Z",
        "--realm",
        realm,
        "--case",
        "C-2",
        "--json",
    )
    assert json.loads(asked.stdout)["subscriber"] == "100.64.0.2/32"


def test_prune_and_check(cli: CliRunner, sessions: SessionFactory, tmp_path: Path) -> None:
    realm = _plan_realm(sessions, "198.18.51.1/32")
    log = tmp_path / "c.log"
    day = 86_400
    rows = [
        # a dynamic block, properly released: fine
        (A, 0, "10.0.0.1", 6064),
        (R, 50, "10.0.0.1", 6064),
        # the deterministic block of 10.0.0.0 logged for 10.0.0.3: names another subscriber
        (A, 10, "10.0.0.3", 1024),
        (R, 20, "10.0.0.3", 1024),
        # never released, hold long past
        (A, 30, "10.0.0.2", 7072),
        # an old month
        (A, -40 * day, "10.0.0.1", 8080),
        (R, -40 * day + 5, "10.0.0.1", 8080),
    ]
    log.write_bytes(
        b"".join(
            line_of(k, T0_US + at * S, inside, "198.18.51.1", first, first + 1007)
            for k, at, inside, first in rows
        )
    )
    assert (
        run(
            cli, "logs", "ingest", realm, "--format", "test-made", "--log-hold", "1h", str(log)
        ).exit_code
        == 0
    )
    checked = run(cli, "logs", "check", realm, "--json")
    assert checked.exit_code == 4, checked.output
    kinds = sorted(json.loads(x)["kind"] for x in checked.stdout.strip().splitlines()[:-1])
    assert kinds == ["names_another_subscriber", "open_past_hold"]
    narrow = run(
        cli,
        "logs",
        "check",
        realm,
        "--from",
        "2026-03-14T20:00:40Z",
        "--to",
        "2026-03-14T20:00:45Z",
    )
    assert narrow.exit_code == 4 and "open_past_hold" in narrow.stdout
    clean = run(
        cli,
        "logs",
        "check",
        realm,
        "--from",
        "2026-03-01T00:00:00Z",
        "--to",
        "2026-03-14T19:00:00Z",
    )
    assert clean.exit_code == 0, clean.output
    pruned = run(cli, "logs", "prune", realm, "--before", "2026-03-01T00:00:00Z", "--json")
    assert pruned.exit_code == 0, pruned.output
    assert json.loads(pruned.stdout)["months"] == ["2026-02"]
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []


def test_a_batch_answers_dynamic_ports_from_the_logs_as_single_lookups_do(
    cli: CliRunner, sessions: SessionFactory, tmp_path: Path
) -> None:
    from tests.logs.conftest import event, ingest

    realm = _plan_realm(sessions, "198.18.52.1/32")
    ingest(
        sessions,
        realm,
        [
            event(A, T0_US, "10.0.0.1", "198.18.52.1", 6064, 7071),
            event(R, T0_US + 60 * S, "10.0.0.1", "198.18.52.1", 6064, 7071),
            event(A, T0_US, "10.0.0.3", "198.18.52.1", 1024, 1100),
        ],
    )
    questions = [
        ("198.18.52.1", 6100, "2026-03-14T20:00:30Z"),  # dynamic, logged
        ("198.18.52.1", 6100, "2026-03-14T20:02:00Z"),  # dynamic, released before
        ("198.18.52.1", 1050, "2026-03-14T20:00:00Z"),  # plan says 10.0.0.0, log 10.0.0.3
        ("198.18.52.1", 2500, "2026-03-14T20:00:00Z"),  # the plan alone
    ]
    batch = tmp_path / "in.csv"
    batch.write_text("ip,port,time\n" + "".join(f"{a},{p},{t}\n" for a, p, t in questions))
    out = tmp_path / "out.csv"
    done = run(
        cli, "reverse", "--batch", str(batch), "-o", str(out), "--realm", realm, "--case", "C-3"
    )
    assert done.exit_code == 0, done.output
    got = [line.split(",")[3:6] for line in out.read_text().splitlines()[1:]]
    singles = []
    for ip, port, at in questions:
        single = run(
            cli, "reverse", f"{ip}:{port}", "--at", at, "--realm", realm, "--case", "C-3", "--json"
        )
        shown = json.loads(single.stdout)
        singles.append([shown["status"], shown.get("reason", ""), shown.get("subscriber", "")])
    assert got == singles
    assert [row[0] for row in got] == ["match", "no_mapping", "ambiguous", "match"]


def test_the_csv_format_end_to_end_with_a_delegated_prefix(
    cli: CliRunner, realm: str, tmp_path: Path
) -> None:
    """The real csv parser (``detnat/logs/formats/csv.py``) behind the ingest command."""
    log = tmp_path / "ops.csv"
    log.write_text(
        "time,event,subscriber,public_ip,port_first,port_last,protocol\n"
        "2026-03-14T20:00:00Z,allocate,2001:db8:100::/56,198.18.53.1,1024,1535,\n"
        "2026-03-14T20:00:00Z,allocate,2001:db8:100::/56,198.18.53.1,\n"
        "2026-03-14T21:30:00+01:00,release,2001:db8:100::/56,198.18.53.1,1024,1535,\n"
    )
    done = run(cli, "logs", "ingest", realm, "--format", "csv", str(log), "--json")
    assert done.exit_code == 0, done.output
    assert (summary(done)["events_stored"], summary(done)["refused"]) == (2, 1)
    assert f"{log}:3: refused" in done.stderr

    def who(at: str) -> dict:
        asked = run(
            cli,
            "reverse",
            "198.18.53.1:1300",
            "--at",
            at,
            "--realm",
            realm,
            "--case",
            "C-4",
            "--json",
        )
        assert asked.exit_code == 0, asked.output
        return json.loads(asked.stdout)

    assert who("2026-03-14T20:00:00Z")["subscriber"] == "2001:db8:100::/56"
    assert who("2026-03-14T20:00:00Z")["log_candidates"][0]["lines"][0]["text"].startswith(
        "2026-03-14T20:00:00Z,allocate"
    )
    assert who("2026-03-14T20:10:00Z")["subscriber"] == "2001:db8:100::/56"
    assert who("2026-03-14T20:30:00Z")["reason"] == "not_logged"  # released at 20:30 UTC
    forward = run(
        cli,
        "forward",
        "2001:db8:100::/56",
        "--at",
        "2026-03-14T19:59:59Z",
        "--realm",
        realm,
        "--case",
        "C-4",
        "--json",
    )
    assert forward.exit_code == 0, forward.output


def test_complaints_about_dynamic_ports_are_answered_from_the_logs(
    cli: CliRunner, sessions: SessionFactory, tmp_path: Path
) -> None:
    """A complaint is a reverse lookup: a port in a dynamic block is answered by the logs as the
    batch answers it, and a port no log covers is ours but unknown, never ``not_ours``."""
    from tests.logs.conftest import event, ingest

    realm = _plan_realm(sessions, "198.18.53.1/32")
    ingest(
        sessions,
        realm,
        [
            event(A, T0_US, "10.0.0.1", "198.18.53.1", 6064, 7071),
            event(R, T0_US + 60 * S, "10.0.0.1", "198.18.53.1", 6064, 7071),
        ],
    )
    notices = tmp_path / "notices.csv"
    notices.write_text(
        "ip,port,time\n"
        "198.18.53.1,6100,2026-03-14T20:00:30Z\n"  # dynamic, logged
        "198.18.53.1,8000,2026-03-14T20:00:30Z\n"  # dynamic, no log covers it
        "198.18.53.1,2500,2026-03-14T20:00:30Z\n"  # the plan alone
    )
    out = tmp_path / "answers.csv"
    done = run(
        cli, "complaints", "answer", str(notices), "--format", "csv",
        "--map", "ip=ip,port=port,time=time", "--realm", realm, "--case", "C-4", "-o", str(out),
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    import csv as _csv

    with out.open(newline="") as answers:
        rows = list(_csv.DictReader(answers))
    said = [(r["verdict"], r["status"], r["reason"], r["subscriber"]) for r in rows]
    assert said[0] == ("identified", "match", "", "10.0.0.1/32")
    assert said[1][:3] == ("ambiguous", "no_mapping", "not_logged") and said[1][3] == ""
    assert said[2][:2] == ("identified", "match")


def test_a_snapshot_carries_the_logs_and_annotates_as_reverse_does(
    cli: CliRunner, sessions: SessionFactory, tmp_path: Path
) -> None:
    """``snapshot export`` takes the realm's log intervals that hold in the period (not the
    others); ``annotate`` then answers dynamic ports from them exactly as ``reverse --at``."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from detnat.snapshot import file
    from tests.logs.conftest import event, ingest

    realm = _plan_realm(sessions, "198.18.54.1/32")
    H = 3600 * S
    ingest(
        sessions,
        realm,
        [
            event(A, T0_US, "10.0.0.1", "198.18.54.1", 6064, 7071),
            event(R, T0_US + 60 * S, "10.0.0.1", "198.18.54.1", 6064, 7071),
            event(A, T0_US - 10 * H, "10.0.0.3", "198.18.54.1", 7072, 8079),  # before the period
            event(R, T0_US - 9 * H, "10.0.0.3", "198.18.54.1", 7072, 8079),
            event(A, T0_US - 2 * H, "10.0.0.2", "198.18.54.1", 8080, 9087),  # into the period
            event(A, T0_US + 30 * S, "10.0.0.3", "198.18.54.1", 1024, 1100),  # against the plan
        ],
        hold=timedelta(hours=4),
    )
    snap = tmp_path / "logs.detnat"
    exported = run(
        cli, "snapshot", "export", realm, "--from", "2026-03-14T19:00:00Z",
        "--to", "2026-03-14T20:30:00Z", "--case", "C-5", "-o", str(snap),
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    (shown,) = file.read(str(snap)).realms
    assert shown.logs is not None
    assert sorted((i.inside, i.port_first) for i in shown.logs) == [
        ("10.0.0.1", 6064),
        ("10.0.0.2", 8080),
        ("10.0.0.3", 1024),
    ]
    questions = [
        (6100, "2026-03-14T20:00:30Z"),  # dynamic, logged
        (6100, "2026-03-14T20:02:00Z"),  # dynamic, released before
        (8100, "2026-03-14T19:30:00Z"),  # allocated before the period, never released: open
        (7100, "2026-03-14T19:30:00Z"),  # dynamic, its interval ended before the period
        (1050, "2026-03-14T20:01:00Z"),  # the plan says 10.0.0.0, a log 10.0.0.3
        (2500, "2026-03-14T20:00:00Z"),  # the plan alone
    ]
    flows = tmp_path / "flows.parquet"
    pq.write_table(
        pa.table(
            {
                "ip": ["198.18.54.1"] * len(questions),
                "port": [p for p, _ in questions],
                "time": pa.array(
                    [t.replace("Z", "+00:00") for _, t in questions], pa.string()
                ).cast(pa.timestamp("us", tz="UTC")),
            }
        ),
        flows,
    )
    out = tmp_path / "out.parquet"
    done = run(
        cli, "annotate", str(flows), "--snapshot", str(snap), "-o", str(out), "--case", "C-5"
    )
    assert done.exit_code == 0, done.output
    annotated = pq.read_table(out).to_pydict()
    got = list(zip(annotated["status"], annotated["reason"], annotated["subscriber"], strict=True))
    singles = []
    for port, at in questions:
        single = run(cli, "reverse", f"198.18.54.1:{port}", "--at", at, "--case", "C-5", "--json")
        said = json.loads(single.stdout)
        singles.append((said["status"], said.get("reason"), said.get("subscriber")))
    assert got == singles
    assert [g[:2] for g in got] == [
        ("match", None),
        ("no_mapping", "not_logged"),
        ("ambiguous", "log_open_ended"),
        ("no_mapping", "not_logged"),
        ("ambiguous", "plan_and_log_disagree"),
        ("match", None),
    ]
