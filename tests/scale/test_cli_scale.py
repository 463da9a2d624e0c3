"""``detnat snapshot export/verify``, ``detnat annotate`` and ``detnat audit record-job`` against
the test store: the annotation of every row is what the store's single lookup answers, Parquet and
CSV agree, every job is in the audit log, a changed snapshot is refused."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from cli.main import app
from detnat.errors import QueryError
from detnat.service import lookups, plans
from detnat.service.audit import Actor
from detnat.service.plans import MapperCache
from detnat.service.timelines import TimelineCache, to_us
from detnat.service.times import format_instant
from detnat.settings import get_settings
from detnat.snapshot import file
from detnat.snapshot.annotate import OUTPUT_COLUMNS, Annotator
from detnat.store.db import SessionFactory, unit_of_work
from tests.scale.conftest import tampered
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

EARLY = clock_at(T0 - timedelta(days=30))


@pytest.fixture
def detnat(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(app, list(args))
    get_settings.cache_clear()


@pytest.fixture
def realm(sessions: SessionFactory, realm_name: str) -> tuple[str, str]:
    """A realm with a drain: two plans a minute apart, then retired."""
    pool = fresh_pool()
    admin = Actor("tester", "admin")
    with unit_of_work(sessions) as s:
        plans.create_realm(
            s, realm_name, by=admin, session_drain=timedelta(minutes=5), single_approver=True
        )
    for plan, at in (
        (small_plan(pool), T0),
        (small_plan(pool, ratio=8192, inside="10.0.0.0/17"), T0 + timedelta(minutes=1)),
        (None, T0 + timedelta(minutes=10)),
    ):
        with unit_of_work(sessions) as s:
            plans.publish(
                s, realm_name, plan, effective_from=at, reason="CHG", by=admin, clock=EARLY
            )
    return realm_name, pool


def _flows(pool: str, n: int) -> pa.Table:
    rnd = random.Random(3)
    base = pool.rsplit(".", 1)[0]
    first = int(pool.rsplit(".", 1)[1].split("/")[0])
    marks = [0, 60, 360, 600]
    times = [
        to_us(T0) + rnd.choice(marks) * 1_000_000 + rnd.randrange(-30_000_000, 30_000_000)
        if rnd.random() < 0.6
        else to_us(T0) + rnd.randrange(0, 1_800_000_000)
        for _ in range(n)
    ]
    return pa.table(
        {
            "src": [f"{base}.{first + rnd.randrange(4)}" for _ in range(n)],
            "sport": [rnd.choice([rnd.randrange(1024, 65536), 80]) for _ in range(n)],
            "ts": pa.array([max(t, to_us(T0)) for t in times], pa.timestamp("us", tz="UTC")),
        }
    )


def test_export_verify_annotate_and_record_jobs(
    detnat: Any, realm: tuple[str, str], sessions: SessionFactory, tmp_path: Path
) -> None:
    name, pool = realm
    snap = tmp_path / "flows.detnat"
    exported = detnat(
        "snapshot", "export", name,
        "--from", format_instant(T0 - timedelta(hours=1)),
        "--to", format_instant(T0 + timedelta(minutes=30)),
        "--case", "SCALE-1", "-o", str(snap), "--json",
    )  # fmt: skip
    assert exported.exit_code == 0, exported.output
    shown = json.loads(exported.stdout)
    assert shown["sha256"] == file.sha256_of(snap.read_bytes()) and shown["versions"] == 3
    verified = detnat("snapshot", "verify", str(snap), "--json")
    assert verified.exit_code == 0 and json.loads(verified.stdout)["valid"] is True

    table = _flows(pool, 400)
    source = tmp_path / "in.parquet"
    pq.write_table(table, source, row_group_size=150)
    out = tmp_path / "out.parquet"
    columns = "ip=src,port=sport,time=ts"
    done = detnat(
        "annotate", str(source), "--snapshot", str(snap), "-o", str(out),
        "--columns", columns, "--case", "SCALE-2", "--json",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    job = json.loads(done.stdout)
    assert job["input_rows"] == job["output_rows"] == 400
    assert job["snapshot_sha256"] == shown["sha256"]
    result = pq.read_table(out)
    assert result.column_names == ["src", "sport", "ts", *OUTPUT_COLUMNS]

    # Every row: what the store's single lookup answers (as at the export's instant).
    loaded = file.read(str(snap))
    now = T0 + timedelta(microseconds=loaded.exported_at_us - to_us(T0))
    cache, mappers = TimelineCache(), MapperCache()
    rows = result.to_pylist()
    with sessions() as s:
        for row in rows:
            try:
                answer = lookups.reverse_at(
                    s, row["src"], row["sport"], at=row["ts"], clock=lambda: now,
                    mappers=mappers, timelines=cache,
                )  # fmt: skip
            except QueryError:
                assert row["status"] == "error"
                continue
            assert row["status"] == answer["status"], row
            assert row["reason"] == answer.get("reason"), row
            assert row["subscriber"] == answer.get("subscriber"), row
    assert {r["status"] for r in rows} >= {"match", "ambiguous", "no_plan_in_force"}

    # The same columns, byte for byte, as the annotator in-process (which Spark, Dask, DuckDB and
    # Polars match in test_integrations) and as DuckDB and Polars here.
    from detnat.integrations import duckdb as detnat_duckdb
    from detnat.snapshot.annotate import Columns

    chosen = Columns(ip="src", port="sport", time="ts")
    in_process = Annotator(loaded, columns=chosen).annotate(table.combine_chunks().to_batches()[0])
    import duckdb

    via_duckdb, _ = detnat_duckdb.annotate(
        duckdb.connect().from_arrow(table), snap, case="SCALE-4", columns=chosen
    )
    for column in OUTPUT_COLUMNS:
        cli_column = result.column(column).combine_chunks()
        assert cli_column.equals(in_process.column(column)), column
        assert cli_column.equals(via_duckdb.column(column).combine_chunks()), column

    # CSV in and out: the same answers.
    csv_in = tmp_path / "in.csv"
    pacsv.write_csv(
        table.set_column(
            2, "ts", pa.array([format_instant(t) for t in table.column("ts").to_pylist()])
        ),
        csv_in,
    )
    csv_out = tmp_path / "out.csv"
    done = detnat(
        "annotate", str(csv_in), "--snapshot", str(snap), "-o", str(csv_out),
        "--columns", columns, "--case", "SCALE-2",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    from_csv = pacsv.read_csv(
        csv_out,
        convert_options=pacsv.ConvertOptions(
            column_types={"version": pa.int32()}, strings_can_be_null=True
        ),
    )
    for column in OUTPUT_COLUMNS:
        assert from_csv.column(column).to_pylist() == result.column(column).to_pylist(), column

    # A job run elsewhere (Polars here) is recorded from its summary; an unknown snapshot is not.
    import polars as pl

    from detnat.integrations import polars as detnat_polars

    frame = pl.from_arrow(table)
    from detnat.snapshot.annotate import Columns

    _, summary = detnat_polars.annotate(
        frame, snap, case="SCALE-3", columns=Columns(ip="src", port="sport", time="ts")
    )
    summary_file = tmp_path / "job.json"
    summary_file.write_text(summary.dumps())
    recorded = detnat("audit", "record-job", str(summary_file), "--json")
    assert recorded.exit_code == 0, recorded.output
    forged = summary.to_json() | {"snapshot_sha256": "0" * 64}
    summary_file.write_text(json.dumps(forged))
    assert detnat("audit", "record-job", str(summary_file)).exit_code == 3

    # The audit log holds the export and both jobs, and still verifies.
    shown_cases = {
        case: [
            json.loads(line)["action"]
            for line in detnat("audit", "show", "--case", case, "--json").stdout.splitlines()
        ]
        for case in ("SCALE-1", "SCALE-2", "SCALE-3")
    }
    assert "snapshot.export" in shown_cases["SCALE-1"]
    assert shown_cases["SCALE-2"].count("annotate.job") == 2
    assert "annotate.job" in shown_cases["SCALE-3"]
    assert detnat("audit", "verify").exit_code == 0

    # One changed byte: refused by verify (broken, 6) and by annotate (invalid, 2), no output.
    bad = tampered(snap, tmp_path, len(snap.read_bytes()) // 2)
    assert detnat("snapshot", "verify", str(bad)).exit_code == 6
    refused = detnat(
        "annotate", str(source), "--snapshot", str(bad), "-o", str(tmp_path / "no.parquet"),
        "--columns", columns, "--case", "SCALE-2",
    )  # fmt: skip
    assert refused.exit_code == 2 and not (tmp_path / "no.parquet").exists()
    assert Annotator(loaded).snapshot.sha256 == shown["sha256"]


def test_export_needs_a_case_and_known_realms(detnat: Any, tmp_path: Path) -> None:
    out = tmp_path / "s.detnat"
    period = ("--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z")
    missing = detnat(
        "snapshot", "export", "no-such-realm", *period, "--case", "C-9", "-o", str(out)
    )
    assert missing.exit_code == 3 and not out.exists()
    no_case = detnat("snapshot", "export", "x", *period, "-o", str(out))
    assert no_case.exit_code == 2
