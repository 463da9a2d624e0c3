"""``detnat serve`` on its embedded Postgres: if that server dies, the service starts it again,
and ``/healthz`` fails while it cannot (issue 10). Real processes, real HTTP, no mocks."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).parents[2]
CLI = [sys.executable, "-c", "from cli.main import app; app()"]
QUERY = {"ip": "8.8.8.8", "port": 1100, "time": "2020-01-01T00:00:00Z", "case": "OPS-3"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _until(what: str, check: Callable[[], bool], seconds: float = 60) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _status(call: Callable[[], httpx.Response]) -> int:
    try:
        return call().status_code
    except httpx.TransportError:
        return 0


def _postmaster(pgdata: Path) -> int | None:
    try:
        return int((pgdata / "postmaster.pid").read_text().split()[0])
    except (OSError, IndexError, ValueError):
        return None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


@pytest.fixture
def embedded(tmp_path: Path) -> Iterator[tuple[str, Path, dict[str, str]]]:
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "DETNAT_DATA_DIR": str(tmp_path / "d")}
    port = _free_port()
    log = (tmp_path / "serve.log").open("wb")
    serve = subprocess.Popen(
        [*CLI, "serve", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=log,
    )
    base = f"http://127.0.0.1:{port}"
    pgdata = tmp_path / "d" / "pgdata"
    try:
        # initdb, then pgserver's lock (shared by every pgserver on the machine): be patient.
        _until("detnat serve", lambda: _status(lambda: httpx.get(base + "/healthz")) == 200, 180)
        made = subprocess.run(
            [*CLI, "token", "create", "--name", "ops", "--role", "legal", "--json"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        yield base, pgdata, {"authorization": f"Bearer {json.loads(made.stdout)['token']}"}
    finally:
        serve.send_signal(signal.SIGINT)
        try:
            serve.wait(30)
        except subprocess.TimeoutExpired:
            serve.kill()
        log.close()
        left = _postmaster(pgdata)
        if left is not None and _alive(left):
            os.kill(left, signal.SIGQUIT)  # never leave a server behind


def test_a_dead_embedded_postgres_is_restarted_and_health_tells_the_truth(
    embedded: tuple[str, Path, dict[str, str]],
) -> None:
    base, pgdata, auth = embedded

    def lookup() -> httpx.Response:
        return httpx.post(base + "/v1/lookups/reverse", json=QUERY, headers=auth, timeout=30)

    assert lookup().status_code == 200
    conf = pgdata / "postgresql.conf"
    good = conf.read_text()

    # While it cannot start (a setting Postgres refuses), liveness fails.
    conf.write_text(good + "\ndetnat_no_such_setting = on\n")
    first = _postmaster(pgdata)
    assert first is not None
    os.kill(first, signal.SIGKILL)
    _until("the postmaster to die", lambda: not _alive(first))
    assert _status(lambda: httpx.get(base + "/healthz", timeout=30)) == 503
    assert lookup().status_code == 503

    # Once it can, the service starts it again: health and lookups come back on their own.
    conf.write_text(good)
    _until("lookups", lambda: _status(lookup) == 200)
    assert httpx.get(base + "/healthz", timeout=30).status_code == 200
    assert httpx.get(base + "/readyz", timeout=30).status_code == 200
    second = _postmaster(pgdata)
    assert second is not None and second != first and _alive(second)
