"""``evidence verify`` re-reads every embedded log line with the format and options its ingest
used, and refuses a file whose log candidates say something their lines do not.

The hole this closes: the offline check hashed each line against its text, then derived the
intervals from the candidate's *shown* subscriber, address, ports and times. A file that names
subscriber X over lines that say Y -- every hash recomputed, as a consistent forger leaves it --
verified clean. Each forgery below changes one thing the lines say (subscriber, ports, public
address, time, kind), makes the rest of the answer agree with it as the old rules derive it, and
rehashes the audit entry, so that only reading the lines again can catch it.

The round trips ingest real lines of every format through the CLI (with ``--year``, ``--tz`` and
``--exporter`` where the format needs them), answer with ``reverse --evidence`` and verify.
"""

from __future__ import annotations

import copy
import io
import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app
from detnat.logs.events import EventKind
from detnat.logs.formats import ParseOptions, parse_lines
from detnat.service import audit, directory, evidence, log_answers, logs
from detnat.store.db import SessionFactory, unit_of_work
from tests.logs.conftest import OPS, T0_US
from tests.logs.render import (
    Event,
    render_a10,
    render_conntrack,
    render_csv,
    render_juniper_structured,
    render_juniper_text,
    render_nfdump,
    render_nfdump_pretty,
    render_vpp,
)
from tests.logs.test_store_answers import _ask

pytestmark = pytest.mark.postgres

A, R, INTERIM = EventKind.ALLOCATE, EventKind.RELEASE, EventKind.INTERIM
S = 10**6
AT = "2026-03-14T20:00:30Z"  # T0 + 30 s: between each allocation and its release


def run(cli: CliRunner, *args: str) -> Any:
    return cli.invoke(app, list(args))


def _answered(
    cli: CliRunner, tmp_path: Path, realm: str, public: str, port: int, name: str
) -> Path:
    proof = tmp_path / f"{name}.json"
    asked = run(
        cli, "reverse", f"{public}:{port}", "--at", AT, "--realm", realm, "--case", "C-LINES",
        "--evidence", str(proof),
    )  # fmt: skip
    assert asked.exit_code == 0, asked.output
    return proof


def _ingested(
    cli: CliRunner, tmp_path: Path, realm: str, fmt: str, lines: list[bytes], *options: str
) -> None:
    log = tmp_path / f"{fmt}.log"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    done = run(cli, "logs", "ingest", realm, "--format", fmt, *options, str(log), "--json")
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["refused"] == 0, summary


def test_a_followed_file_records_its_options_with_each_chunk(
    cli: CliRunner, realm: str, tmp_path: Path
) -> None:
    public = "198.18.89.1"
    lines = [render_juniper_text(e, epoch=False) for e in _events(public, True, None)]
    log = tmp_path / "followed.log"
    log.write_bytes(b"".join(line + b"\n" for line in lines))
    done = run(
        cli, "logs", "ingest", realm, "--format", "juniper-pba", "--year", "2026", "--tz", "UTC",
        "--follow", "--until-idle", str(log), "--json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["refused"] == 0, summary
    proof = _answered(cli, tmp_path, realm, public, 1100, "followed")
    (ingested,) = json.loads(proof.read_text())["logs"]["ingests"]
    assert ingested["detail"]["options"] == {"year": 2026, "tz": "UTC", "exporter": "iana"}
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 0, checked.output


# -- every format, round trip ----------------------------------------------------------------------

Render = Callable[[Event], bytes]
ROUND_TRIPS: list[tuple[str, str, list[str], Callable[[list[Event]], list[bytes]], bool]] = [
    # (name, format, options, lines of the events, whether the block is a block or one port)
    ("csv", "csv", [], lambda es: [render_csv(e, offset_minutes=60) for e in es], True),
    ("juniper-sd", "juniper-pba", [], lambda es: [render_juniper_structured(e) for e in es], True),
    (
        "juniper-bsd",
        "juniper-pba",
        ["--year", "2026", "--tz", "UTC"],
        lambda es: [render_juniper_text(e, epoch=False) for e in es],
        True,
    ),
    ("a10", "a10-cef", [], lambda es: [render_a10(e) for e in es], True),
    ("vpp", "vpp-syslog", [], lambda es: [render_vpp(e) for e in es], False),
    ("conntrack", "conntrack", [], lambda es: [render_conntrack(e) for e in es], False),
    (
        "nfdump-juniper",
        "nfdump-json",
        ["--tz", "Europe/Berlin", "--exporter", "juniper"],
        lambda es: [render_nfdump(e, exporter="juniper", tz="Europe/Berlin") for e in es],
        True,
    ),
    (
        "nfdump-pretty",
        "nfdump-json",
        ["--tz", "UTC"],
        lambda es: render_nfdump_pretty(es),
        True,
    ),
]


def _events(public: str, block: bool, protocol: str | None) -> list[Event]:
    last = 1535 if block else 1024
    return [
        Event(A, T0_US, "100.64.7.9", public, 1024, last, protocol),
        Event(R, T0_US + 60 * S, "100.64.7.9", public, 1024, last, protocol),
    ]


@pytest.mark.parametrize(
    ("name", "fmt", "options", "render", "block"), ROUND_TRIPS, ids=[r[0] for r in ROUND_TRIPS]
)
def test_every_format_round_trips_from_ingest_to_a_verified_evidence_file(
    cli: CliRunner,
    realm: str,
    tmp_path: Path,
    name: str,
    fmt: str,
    options: list[str],
    render: Callable[[list[Event]], list[bytes]],
    block: bool,
) -> None:
    public = f"198.18.90.{ROUND_TRIPS.index(next(r for r in ROUND_TRIPS if r[0] == name)) + 1}"
    protocol = None if fmt in ("juniper-pba", "csv", "nfdump-json") else "tcp"
    _ingested(cli, tmp_path, realm, fmt, render(_events(public, block, protocol)), *options)
    proof = _answered(cli, tmp_path, realm, public, 1024, name)
    document = json.loads(proof.read_text())
    answer = document["answer"]
    assert (answer["status"], answer["subscriber"], answer.get("source")) == (
        "match",
        "100.64.7.9/32",
        "log",
    ), answer
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("valid:"), checked.stdout
    # the file says which ingest read each line, with which format and options
    (ingest,) = document["logs"]["ingests"]
    assert ingest["detail"]["record"]["format"] == fmt
    assert document["logs"]["lines"] == [[ingest["detail"]["record"]["ingest"]] * 2]


def test_a_bsd_line_after_the_new_year_reads_again_in_the_year_its_ingest_turned_to(
    cli: CliRunner, realm: str, tmp_path: Path
) -> None:
    """``--year 2025`` over a file from Dec 31 into Jan 1: the January lines were read as 2026
    (the year turns with the months). Alone, a line reads in ``--year``: read again, it may take
    the year of the instant it shows -- never one before ``--year`` less one (a straggler), and
    only in a month its ingest stored events in -- so the genuine file verifies, and a line moved
    by a year into a month its ingest never stored does not."""
    new_year = 1_767_225_600_000_000  # 2026-01-01T00:00:00Z
    public = "198.18.88.1"
    made = [
        Event(A, new_year - 60 * S, "100.64.7.8", public, 2048, 2559, None),
        Event(A, new_year + 10 * S, "100.64.7.9", public, 1024, 1535, None),
        Event(R, new_year + 70 * S, "100.64.7.9", public, 1024, 1535, None),
    ]
    lines = [render_juniper_text(e, epoch=False) for e in made]
    _ingested(cli, tmp_path, realm, "juniper-pba", lines, "--year", "2025", "--tz", "UTC")
    proof = tmp_path / "new-year.json"
    asked = run(
        cli, "reverse", f"{public}:1100", "--at", "2026-01-01T00:00:40Z", "--realm", realm,
        "--case", "C-LINES", "--evidence", str(proof),
    )  # fmt: skip
    assert asked.exit_code == 0, asked.output
    document = json.loads(proof.read_text())
    assert document["answer"]["subscriber"] == "100.64.7.9/32"
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 0, checked.output

    # the lines moved by whole years: the rule that reads a year-less time in another year
    record = document["logs"]["ingests"][0]["detail"]["record"]
    assert sorted(record["months"]) == ["2025-12", "2026-01"]
    options = ParseOptions(year=2025, tz="UTC")
    for year, months, accepted in [
        ("2026", record["months"], True),  # as ingested
        ("2027", record["months"], False),  # a month the ingest stored nothing in
        ("2027", [*record["months"], "2027-01"], True),  # had it: a year it may have turned to
        ("2023", [*record["months"], "2023-01"], False),  # before --year less one
    ]:
        moved = copy.deepcopy(document["answer"])
        for line in _candidate(moved)["lines"]:
            line["at"] = line["at"].replace("2026-", f"{year}-")
        reading = log_answers.LineReading("juniper-pba", options, True, frozenset(months))
        problems = log_answers.check_lines(moved, [[reading, reading]])
        assert (problems == []) is accepted, (year, problems)
        assert all("its time names no year: read in --year 2025" in p for p in problems)


# -- forgeries that only reading the lines again can catch -------------------------------------


def _rehash(entry: dict[str, Any]) -> None:
    content = {k: entry[k] for k in audit.CONTENT_FIELDS}
    entry["content_sha256"] = audit.sha256_text(audit.canonical(content))
    entry["entry_sha256"] = audit.chain_hash(
        entry["seq"], entry["prev_sha256"], entry["content_sha256"]
    )


def _set_answer(document: dict[str, Any], answer: dict[str, Any]) -> None:
    document["answer"] = copy.deepcopy(answer)
    entry = document["audit_entry"]
    entry["detail"]["answer"] = copy.deepcopy(answer)
    entry["status"] = answer["status"]
    _rehash(entry)


def _forged(document: dict[str, Any], tamper: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """``document`` with ``tamper`` applied to its answer, the rest of the answer made to agree
    with it by the verifier's own recomputation, and the audit entry rehashed."""
    forged = copy.deepcopy(document)
    answer = copy.deepcopy(forged["answer"])
    tamper(answer)
    _set_answer(forged, answer)
    kept = ("pending_approval", *directory.ACCOUNT_KEYS)
    for _ in range(3):  # to a fixed point: the recomputed answer is the one shown
        problems, recomputed = evidence.verify(forged)
        assert recomputed is not None, problems
        again = json.loads(json.dumps(recomputed))
        again.update({k: v for k, v in forged["answer"].items() if k in kept})
        if again == forged["answer"]:
            break
        _set_answer(forged, again)
    return forged


def _candidate(answer: dict[str, Any]) -> dict[str, Any]:
    (candidate,) = answer["log_candidates"]
    return candidate


def _other_subscriber(answer: dict[str, Any]) -> None:
    _candidate(answer)["subscriber"] = "100.64.7.10/32"


def _other_ports(answer: dict[str, Any]) -> None:
    _candidate(answer)["port_ranges"] = [[1024, 1279]]


def _other_public(answer: dict[str, Any]) -> None:
    _candidate(answer)["public_ip"] = "198.18.91.99"


def _other_time(answer: dict[str, Any]) -> None:
    earlier = "2026-03-14T20:00:10Z"
    candidate = _candidate(answer)
    candidate["lines"][0]["at"] = candidate["interval"]["from"] = earlier
    candidate["seen"]["from"] = earlier


def _other_kind(answer: dict[str, Any]) -> None:
    _candidate(answer)["lines"][1]["kind"] = "interim"


TAMPERS = {  # the forgery, and the lines (allocate, release) that no longer say it
    "subscriber": (_other_subscriber, (0, 1)),
    "ports": (_other_ports, (0, 1)),
    "public": (_other_public, (0, 1)),
    "time": (_other_time, (0,)),
    "kind": (_other_kind, (1,)),
}


@pytest.fixture
def genuine(cli: CliRunner, realm: str, tmp_path: Path) -> dict[str, Any]:
    public = "198.18.91.1"
    lines = [render_csv(e) for e in _events(public, True, None)]
    _ingested(cli, tmp_path, realm, "csv", lines)
    proof = _answered(cli, tmp_path, realm, public, 1100, "genuine")
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 0, checked.output
    document: dict[str, Any] = json.loads(proof.read_text())
    return document


@pytest.mark.parametrize("what", sorted(TAMPERS))
def test_a_candidate_its_lines_do_not_say_fails_evidence_verify(
    cli: CliRunner, genuine: dict[str, Any], tmp_path: Path, what: str
) -> None:
    tamper, lines = TAMPERS[what]
    forged = _forged(genuine, tamper)
    assert forged["answer"] != genuine["answer"]
    problems, _ = evidence.verify(forged)
    # every other check agrees with the forgery: only the lines read again refuse it
    wheres = [f"answer.log_candidates[0].lines[{n}]: line " for n in lines]
    assert len(problems) == len(wheres), problems
    assert all(p.startswith(w) for p, w in zip(problems, wheres, strict=True)), problems
    assert all("read again as csv says" in p for p in problems), problems
    path = tmp_path / f"forged-{what}.json"
    path.write_text(json.dumps(forged))
    checked = run(cli, "evidence", "verify", str(path))
    assert checked.exit_code == 6, checked.output
    for n, where in zip(lines, wheres, strict=True):
        assert f"detnat: evidence: {where}" in checked.stderr, checked.stderr
        assert f"csv.log:{n + 1} read again as csv says" in checked.stderr, checked.stderr


# -- files and ingests made before the formats were carried ---------------------------------------


def test_a_previous_format_file_with_log_lines_is_not_called_valid(
    cli: CliRunner, genuine: dict[str, Any], tmp_path: Path
) -> None:
    previous = copy.deepcopy(genuine)
    previous["format"] = "detnat-evidence/2"
    del previous["logs"], previous["directory"]
    problems, _ = evidence.verify(previous)
    assert len(problems) == 1 and problems[0].startswith("answer.log_candidates: "), problems
    path = tmp_path / "previous.json"
    path.write_text(json.dumps(previous))
    checked = run(cli, "evidence", "verify", str(path))
    assert checked.exit_code == 6, checked.output
    assert "cannot be read again" in checked.stderr, checked.stderr
    assert f"make the evidence file again ({evidence.FORMAT})" in checked.stderr, checked.stderr


def _ingest_without_options(
    sessions: SessionFactory, realm: str, fmt: str, lines: list[bytes], options: ParseOptions
) -> None:
    """An ingest as they were made before ``logs.ingest`` recorded the parse options."""
    reading = logs.Reading(io.BytesIO(b"".join(line + b"\n" for line in lines)), name="old.log")
    items = parse_lines(fmt, reading.lines(), file="old.log", options=options)
    with unit_of_work(sessions) as s:
        done = logs.ingest(s, realm, items, reading, fmt=fmt, by=OPS, request_id="t")
    assert (done.events_stored, done.refused) == (len(lines), 0)


def test_an_ingest_that_recorded_no_options_is_read_again_with_none(
    cli: CliRunner, sessions: SessionFactory, realm: str, tmp_path: Path
) -> None:
    """Lines that carry their own instant read again the same without options: they verify.
    A line timed by a BSD header needed ``--year`` and ``--tz``, which were not recorded: it is
    refused, never read in some year or zone the verifier picks."""
    epoch = [render_juniper_structured(e) for e in _events("198.18.92.1", True, None)]
    _ingest_without_options(sessions, realm, "juniper-pba", epoch, ParseOptions())
    proof = _answered(cli, tmp_path, realm, "198.18.92.1", 1100, "epoch")
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 0, checked.output
    assert "options" not in json.loads(proof.read_text())["logs"]["ingests"][0]["detail"]
    bsd = [render_juniper_text(e, epoch=False) for e in _events("198.18.92.2", True, None)]
    _ingest_without_options(sessions, realm, "juniper-pba", bsd, ParseOptions(year=2026, tz="UTC"))
    proof = _answered(cli, tmp_path, realm, "198.18.92.2", 1100, "bsd")
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 6, checked.output
    assert "old.log:1 does not read again as juniper-pba (its ingest recorded no" in checked.stderr
    assert "give --year" in checked.stderr, checked.stderr


def test_an_nfdump_line_whose_ingest_recorded_no_exporter_is_not_read_again(
    cli: CliRunner, sessions: SessionFactory, realm: str, tmp_path: Path
) -> None:
    """16 is an allocation in IANA's numbering and an interim in Juniper's: without the exporter
    recorded, no reading of the line can prove which it said."""
    lines = [render_nfdump(e, exporter="iana") for e in _events("198.18.92.3", True, None)]
    _ingest_without_options(sessions, realm, "nfdump-json", lines, ParseOptions(tz="UTC"))
    proof = _answered(cli, tmp_path, realm, "198.18.92.3", 1100, "nfdump")
    checked = run(cli, "evidence", "verify", str(proof))
    assert checked.exit_code == 6, checked.output
    assert "which natEvent numbering it has is not known" in checked.stderr, checked.stderr


def test_lines_whose_events_were_pruned_are_read_with_the_ingest_of_their_file(
    sessions: SessionFactory, realm: str
) -> None:
    """The answer was given, then its month pruned: the evidence file made afterwards finds the
    ingest by the file and month its lines were read from -- when one ingest alone fits."""
    csv_lines = [render_csv(e) for e in _events("198.18.93.1", True, None)]
    _ingest_without_options(sessions, realm, "csv", csv_lines, ParseOptions())
    answered = _ask(sessions, realm, "198.18.93.1", 1100, T0_US + 30 * S)
    assert answered.answer["status"] == "match"
    with unit_of_work(sessions) as s:
        logs.prune(s, realm, before=datetime(2026, 4, 1, tzinfo=UTC), by=OPS, request_id="t")
    with sessions() as s:
        document = evidence.build(s, answered.answer_id)
    assert evidence.verify(document)[0] == []
    # another ingest of a file of that name in that month: which one read the line is not known
    other = [render_csv(e) for e in _events("198.18.93.2", True, None)]
    _ingest_without_options(sessions, realm, "csv", other, ParseOptions())
    with sessions() as s:
        document = evidence.build(s, answered.answer_id)
    assert document["logs"]["lines"] == [[None, None]]
    problems = evidence.verify(document)[0]
    assert len(problems) == 2 and all("is not read again" in p for p in problems), problems


def _leaves(value: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(value, dict):
        return [p for k, v in value.items() for p in _leaves(v, (*path, k))]
    if isinstance(value, list):
        return [p for n, v in enumerate(value) for p in _leaves(v, (*path, n))]
    return [path]


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if isinstance(value, str):
        return value + "0"
    return 1  # null


def test_every_leaf_of_the_logs_part_changed_makes_the_file_invalid(
    genuine: dict[str, Any],
) -> None:
    """The ``logs`` part is not covered by the lookup's audit entry: each ``logs.ingest`` entry
    is held to its own hashes, each line to the ingest it names."""
    assert evidence.verify(genuine)[0] == []
    accepted = []
    for path in _leaves(genuine["logs"]):
        forged = copy.deepcopy(genuine)
        parent = forged["logs"]
        for key in path[:-1]:
            parent = parent[key]
        parent[path[-1]] = _changed(parent[path[-1]])
        if not evidence.verify(forged)[0]:
            accepted.append(path)
    assert not accepted, accepted
    extra = copy.deepcopy(genuine)
    extra["logs"]["ingests"].append(copy.deepcopy(extra["logs"]["ingests"][0]))
    assert any("twice" in p for p in evidence.verify(extra)[0])
