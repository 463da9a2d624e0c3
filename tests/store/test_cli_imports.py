"""What one audited store lookup from the CLI imports: nothing of the commands it does not run,
no Alembic (the store is migrated already), no pydantic-settings, no numpy (the vectorised paths
import it), no PyYAML (stored plans are JSON), no SQLAlchemy (the lookup runs the API's lookup path
on psycopg alone), and, in a store without logs or a directory, none of their modules (issue 12,
start-up: each of these cost the lookup a share of its 0.6 s)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
SETUP = """
import sys
from cli.main import app
for args in (["db", "upgrade"], ["realm", "create", "r1", "--single-approver"],
             ["plan", "publish", "r1", sys.argv[1], "--effective-from", "2020-01-01T00:00:00Z",
              "--reason", "CHG-1", "--correction"]):
    try:
        app(args)
    except SystemExit as exit:
        assert exit.code in (0, None), (args, exit.code)
"""
SINGLE = """
import sys
from cli.main import app
try:
    app(["reverse", "192.0.2.1:1100", "--at", "2026-01-01T00:00:00Z", "--case", "IMPORTS-1"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
commands = sorted(m for m in sys.modules if m.startswith("cli.commands."))
libraries = {"alembic", "pydantic_settings", "numpy", "yaml", "sqlalchemy"}
libraries = sorted({m.partition(".")[0] for m in sys.modules} & libraries)
ours = ("detnat.logs", "detnat.directory", "detnat.service.log_answers", "detnat.service.logs",
        "detnat.service.directory", "detnat.batch", "detnat.store.repo", "detnat.store.models")
print("loaded:", commands, libraries)
print("of ours:", sorted(m for m in sys.modules if m.startswith(ours)))
"""
PLAN = """algorithm: block
inside: {prefixes: ["10.0.0.0/24"], subscriber_prefix_length: 32}
outside: {prefixes: ["192.0.2.0/28"]}
block: {size: 2016}
"""


def _run(url: str, script: str, *args: str) -> str:
    env = {**os.environ, "DETNAT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
    run = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
        timeout=300,
    )
    assert run.returncode == 0, run.stderr
    return run.stdout


def test_a_store_reverse_imports_only_what_it_runs(tmp_path: Path) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    with throwaway_database() as url:
        _run(url, SETUP, str(plan))
        out = _run(url, SINGLE).splitlines()
    assert "match" in out[0], out
    expected = "loaded: ['cli.commands.lookups', 'cli.commands.lookups_store'] []"
    assert out[-2] == expected, out
    assert out[-1] == "of ours: []", out


BATCH = """
import sys
from cli.main import app
try:
    app(["reverse", "--batch", sys.argv[1], "--case", "IMPORTS-2", "-o", sys.argv[2]])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
libraries = {"alembic", "pydantic_settings", "yaml", "sqlalchemy"}
print("loaded:", sorted({m.partition(".")[0] for m in sys.modules} & libraries))
ours = ("detnat.logs", "detnat.service.log_answers", "detnat.service.logs",
        "detnat.service.directory", "detnat.directory", "detnat.store.repo", "detnat.store.models",
        "detnat.store.db", "detnat.service.plans")
print("of ours:", sorted(m for m in sys.modules if m.startswith(ours)))
"""


def test_a_store_batch_without_logs_imports_none_of_their_modules(tmp_path: Path) -> None:
    """The logs are asked only where the store holds some: their modules stay out of a batch
    against a store without logs (its rows answered as before: the logs had nothing to say).
    Nor SQLAlchemy: the case, the snapshot and the audit entries go through psycopg alone, as a
    single lookup's (issue 12, start-up)."""
    plan = tmp_path / "plan.yaml"
    plan.write_text(PLAN)
    rows = tmp_path / "rows.csv"
    rows.write_text("ip,port,time\n192.0.2.1,1100,2026-01-01T00:00:00Z\n")
    with throwaway_database() as url:
        _run(url, SETUP, str(plan))
        out = _run(url, BATCH, str(rows), str(tmp_path / "out.csv")).splitlines()
    assert out[-2] == "loaded: []", out
    assert out[-1] == "of ours: []", out
    assert (tmp_path / "out.csv").read_text().splitlines()[1].split(",")[3] == "match"
