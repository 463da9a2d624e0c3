"""``detnat serve`` on its embedded Postgres stops that server when it is stopped (SIGTERM:
systemd, docker, kill), with one worker or several.

Uvicorn re-raises the signal it caught once it has shut down, so the process died by it without
running its exit handlers: pgserver's list of the processes using the server kept the dead one,
and the server ran on for ever, whoever came after. Real processes, no mocks.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import httpx
import pytest

from tests.store.test_embedded_health import (
    CLI,
    ROOT,
    _alive,
    _free_port,
    _postmaster,
    _status,
    _until,
)

pytestmark = pytest.mark.postgres


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_stopped_by_sigterm_stops_its_embedded_postgres(tmp_path: Path, workers: int) -> None:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DETNAT_DATA_DIR": str(tmp_path / "d")}
    port = _free_port()
    pgdata = tmp_path / "d" / "pgdata"
    with (tmp_path / "serve.log").open("wb") as log:
        serve = subprocess.Popen(
            [*CLI, "serve", "--port", str(port), "--workers", str(workers)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=log,
        )
        postmaster = None
        try:
            base = f"http://127.0.0.1:{port}"
            _until(
                "detnat serve", lambda: _status(lambda: httpx.get(base + "/healthz")) == 200, 180
            )
            postmaster = _postmaster(pgdata)
            assert postmaster is not None and _alive(postmaster)
            serve.send_signal(signal.SIGTERM)
            serve.wait(60)
            _until("the embedded Postgres to stop", lambda: not _alive(postmaster), 30)
            assert json.loads((pgdata / ".handle_pids.json").read_text()) == []
        finally:
            if serve.poll() is None:
                serve.kill()
            if postmaster is not None and _alive(postmaster):
                import os

                os.kill(postmaster, signal.SIGQUIT)  # never leave a server behind
