"""With no DETNAT_DATABASE_URL, an embedded Postgres starts in the data folder, migrated."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.postgres

SCRIPT = """
from pathlib import Path
import sys
from sqlalchemy import text
from detnat.settings import Settings
from detnat.store.db import make_engine
from detnat.store.embedded import database_url
from detnat.store import migrate
url = database_url(Settings(data_dir=Path(sys.argv[1]), database_url=None))
engine = make_engine(url)
with engine.connect() as conn:
    print(conn.execute(text("select count(*) from realms")).scalar(), migrate.is_current(engine))
engine.dispose()
"""


def test_embedded_postgres_starts_and_is_migrated(tmp_path: Path) -> None:
    # A subprocess: pgserver stops its server at interpreter exit, not ours to keep running.
    env = {
        "PATH": "/usr/sbin:/usr/bin:/sbin:/bin",
        "HOME": str(tmp_path),
    }  # root: pgserver runs useradd
    run = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "data")],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=Path(__file__).parents[2],
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.split() == ["0", "True"]
