"""What one audited store lookup from the CLI imports: nothing of the commands it does not run,
no Alembic (the store is migrated already), no pydantic-settings (issue 12, start-up)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = """
import sys
from cli.main import app
try:
    app(["reverse", "192.0.2.1:1100", "--at", "2026-01-01T00:00:00Z", "--case", "IMPORTS-1"])
except SystemExit as exit:
    assert exit.code in (0, None), exit.code
commands = sorted(m for m in sys.modules if m.startswith("cli.commands."))
libraries = sorted({m.partition(".")[0] for m in sys.modules} & {"alembic", "pydantic_settings"})
print("loaded:", commands, libraries)
"""


def test_a_store_reverse_imports_only_what_it_runs() -> None:
    with throwaway_database() as url:
        env = {**os.environ, "DETNAT_DATABASE_URL": url, "PYTHONPATH": str(ROOT)}
        run = subprocess.run(
            [sys.executable, "-c", SCRIPT],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=300,
        )
    assert run.returncode == 0, run.stderr
    expected = "loaded: ['cli.commands.lookups', 'cli.commands.lookups_store'] []"
    assert run.stdout.splitlines()[-1] == expected, run.stdout
