"""The CLI's store batch on psycopg alone (issue 12, start-up): the same output and the same audit
entries as the sessions' code writes for the same batch.

``detnat reverse --batch`` is run as a subprocess (a new case, then the same case again); beside
it, the batch is answered in-process the sessions' way (the snapshot read through a session,
:func:`inquiry.open_batch` and :func:`inquiry.record_batch` on it), on the same file. The output
bytes are the same, each entry holds the same content but for its instant and request id (the
entry's hash covers exactly what is stored: ``audit verify`` passes), and the case's ``case.open``
entry was committed in a transaction of its own before the batch's.
"""

from __future__ import annotations

import getpass
import io
import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from detnat.service import audit, batch_lookups, inquiry, integrity, timelines
from detnat.service.clock import utcnow
from detnat.service.mappers import MapperCache
from detnat.store.db import make_engine, make_sessions, unit_of_work
from detnat.store.lean import libpq_url
from detnat.store.models import AuditEntry
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
PLAN = """algorithm: block
inside: {prefixes: ["10.0.0.0/24"], subscriber_prefix_length: 32}
outside: {prefixes: ["192.0.2.0/28"]}
block: {size: 2016}
"""
ROWS = (
    "ip,port,time\n"
    "192.0.2.1,1100,2026-01-01T00:00:00Z\n"
    "192.0.2.3,4000,2019-06-01T00:00:00+01:00\n"  # before any plan
    "192.0.2.9,x,2026-01-01T00:00:00Z\n"  # a bad row
    "198.51.100.1,1100,2026-01-01T00:00:00Z\n"  # no realm's address
    "192.0.2.2,65000,2026-01-01T00:00:00.123456Z\n"
    "=cmd,1,2\n"
)


def _detnat(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DETNAT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-c", "from cli.main import app; app()", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    plan = tmp_path_factory.mktemp("plan") / "plan.yaml"
    plan.write_text(PLAN)
    with throwaway_database() as url:
        publish = ["plan", "publish", "r1", str(plan), "--correction", "--effective-from"]
        for args in (
            ["db", "upgrade"],
            ["realm", "create", "r1", "--single-approver"],
            [*publish, "2020-01-01T00:00:00Z", "--reason", "CHG-1"],
            [*publish, "2025-12-31T23:59:00Z", "--reason", "CHG-2"],
        ):
            done = _detnat(url, *args)
            assert done.returncode == 0, done.stderr
        yield url


def _sessions_batch(url: str, source: Path, case: str, request_id: str) -> tuple[bytes, int]:
    """The batch as the sessions' code answered and recorded it: its output and entry's seq."""
    actor = audit.local_operator(getpass.getuser())
    ask = inquiry.BatchAsk(inquiry.Identity(case), "cli", file=source.name)
    engine = make_engine(url, pool_size=1)
    out = io.BytesIO()
    try:
        with unit_of_work(make_sessions(engine)) as session:
            inquiry.open_batch(session, actor, ask, kept=inquiry.Inquiries(), request_id=request_id)
            query = batch_lookups.BatchQuery(
                snapshot=timelines.TimelineCache().get(session), now=utcnow(), mappers=MapperCache()
            )
            with source.open("rb") as raw:
                report = batch_lookups.reverse_csv_blocks(
                    query, batch_lookups.file_blocks(raw), out.write
                )
            entry = inquiry.record_batch(
                session,
                actor,
                ask,
                report,
                kind="text/csv",
                input_sha256=audit.sha256_text(source.read_text()),
                request_id=request_id,
            )
    finally:
        engine.dispose()
    return out.getvalue(), entry.seq


def _entries(url: str, case: str) -> list[dict[str, Any]]:
    """The case's entries as stored: content (as hashed) and the writing transaction."""
    engine = make_engine(url, pool_size=1)
    try:
        with make_sessions(engine)() as session:
            found = list(audit.entries(session, case=case))
            contents = [{**audit.content_of(e), "seq": e.seq} for e in found]
            rows = {e.seq: e for e in found}
            for content in contents:
                entry: AuditEntry = rows[content["seq"]]
                assert entry.content_sha256 == audit.sha256_text(
                    audit.canonical(audit.content_of(entry))
                )
            broken, _ = integrity.verify(session)
            assert broken == []
    finally:
        engine.dispose()
    with psycopg.connect(libpq_url(url)) as conn:
        xmins: dict[int, str] = dict(
            conn.execute("SELECT seq, xmin::text FROM audit_log").fetchall()
        )
    return [{**c, "xmin": xmins[c["seq"]]} for c in contents]


def _same_but_when(lean: dict[str, Any], sessions: dict[str, Any], case: str) -> None:
    """Two entries' content alike but for the instant, the request id and the case named."""
    left = json.loads(json.dumps(lean).replace(lean["case"], case))
    right = json.loads(json.dumps(sessions).replace(sessions["case"], case))
    for content in (left, right):
        for key in ("at", "request_id", "seq", "xmin"):
            content.pop(key)
        record = content["detail"].get("record")
        if record is not None:
            record.pop("created_at")
    assert left == right


def test_the_lean_batch_writes_what_the_sessions_wrote(store: str, tmp_path: Path) -> None:
    source = tmp_path / "rows.csv"
    source.write_text(ROWS)
    out = tmp_path / "out.csv"
    ran = _detnat(store, "reverse", "--batch", str(source), "--case", "LEAN-1", "-o", str(out))
    assert ran.returncode == 2, ran.stderr  # the bad rows; the batch is complete
    again = _detnat(store, "reverse", "--batch", str(source), "--case", "LEAN-1")
    assert again.returncode == 2, again.stderr
    written, _ = _sessions_batch(store, source, "OLD-1", "cli-sessions")
    assert out.read_bytes() == written
    assert again.stdout.encode() == written

    lean, sessions = _entries(store, "LEAN-1"), _entries(store, "OLD-1")
    assert [e["action"] for e in lean] == [
        "case.open",
        "lookup.reverse_batch",
        "lookup.reverse_batch",
    ]
    assert [e["action"] for e in sessions] == ["case.open", "lookup.reverse_batch"]
    _same_but_when(lean[0], sessions[0], "CASE")
    _same_but_when(lean[1], sessions[1], "CASE")
    _same_but_when(lean[2], sessions[1], "CASE")
    # The case was opened (and committed) before the batch was answered, on its own.
    assert lean[0]["seq"] < lean[1]["seq"] and lean[0]["xmin"] != lean[1]["xmin"]
    assert lean[1]["detail"]["batch"]["rows"] == 6
    verified = _detnat(store, "audit", "verify")
    assert verified.returncode == 0, verified.stdout + verified.stderr
