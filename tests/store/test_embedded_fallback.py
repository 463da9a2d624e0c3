"""A machine without Postgres runs the suite on one embedded server (``tests/postgres.py``).

A few tests of the store, the web pages, the capacity routes and the datapath run in a pytest
subprocess whose local port is closed (``DETNAT_TEST_POSTGRES_PORT``) and with no
``DETNAT_TEST_DATABASE_URL``, as on a newcomer's laptop: they pass on an embedded Postgres that
the session starts once, for all of them, and removes at its end. The real server keeps running.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests import postgres

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).parents[2]
# One or two tests of each part of the suite that makes its own throwaway database.
SAMPLE = (
    "tests/store/test_cli_store.py::test_realm_publish_history_and_lookups",
    "tests/store/test_migrations.py::test_upgrade_downgrade_upgrade_on_a_fresh_database",
    "tests/web/test_access.py::test_anonymous_visitors_are_sent_to_sign_in",
    "tests/capacity/test_store_and_api.py::test_size_over_http",
    "tests/datapath/test_realm.py::test_realm_apply_uses_the_version_in_force_now_not_a_scheduled_one",
)


def _closed_port() -> int:
    """A port nothing listens on (bound, then released, never listened on)."""
    with socket.socket() as s:
        s.bind((postgres.LOCAL_HOST, 0))
        return int(s.getsockname()[1])


@pytest.fixture
def short_tmp() -> Iterator[Path]:
    """A temporary folder with a short path: a Unix socket path may not exceed 107 bytes, and
    pgserver puts its socket in the data folder (pytest's own tmp_path grows too long)."""
    folder = Path(tempfile.mkdtemp(prefix="dnt-", dir="/tmp"))
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def test_without_a_postgres_server_the_tests_run_on_one_embedded_server(short_tmp: Path) -> None:
    tmp_path = short_tmp
    port = _closed_port()
    env = {k: v for k, v in os.environ.items() if k != postgres.URL_VARIABLE}
    env.update({postgres.PORT_VARIABLE: str(port), "TMPDIR": str(tmp_path)})
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *SAMPLE],
        capture_output=True,
        text=True,
        timeout=900,  # a deadline, not a wait: pgserver's machine-wide lock may be held a while
        env=env,
        cwd=ROOT,
    )
    out = run.stdout
    assert run.returncode == 0, out[-4000:] + run.stderr[-2000:]
    assert f"{len(SAMPLE)} passed" in out, out[-2000:]
    assert f"postgres: nothing answers at 127.0.0.1:{port}" in out, out[:2000]
    stopped = re.findall(r"^postgres: stopped the embedded server and removed (\S+)$", out, re.M)
    assert len(stopped) == 1, out[-2000:]  # one server for the store, the web pages, the datapath
    assert Path(stopped[0]).parent == tmp_path
    assert not Path(stopped[0]).exists()
    assert list(tmp_path.glob(f"{postgres.EMBEDDED_PREFIX}*")) == []
