"""``detnat serve``'s own address leads to the web pages: ``GET /`` redirects to ``/web/``, and
an anonymous visitor who follows it lands on the sign-in page. A real server over real HTTP."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.web.conftest import World

pytestmark = pytest.mark.postgres

REPO = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def served(
    database_url: str, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """``detnat serve`` on a free port, on the web tests' database; its base URL once it answers."""
    folder = tmp_path_factory.mktemp("serve")
    port, log = _free_port(), folder / "serve.log"
    env = {
        **os.environ,
        "DETNAT_DATABASE_URL": database_url,
        "DETNAT_DATA_DIR": str(folder / "data"),
    }
    command = [sys.executable, "-c", "from cli.main import app; app()", "serve"]
    with log.open("w") as out:
        process = subprocess.Popen(
            [*command, "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not _answers(f"{base}/healthz"):
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"detnat serve did not start: {log.read_text()[-3000:]}")
            time.sleep(0.05)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _answers(url: str) -> bool:
    try:
        return httpx.get(url, timeout=2).status_code == 200
    except httpx.TransportError:
        return False


def test_the_root_redirects_to_the_web_pages(served: str) -> None:
    got = httpx.get(f"{served}/")
    assert got.status_code == 307, (got.status_code, got.text[:300])
    assert got.headers["location"] == "/web/"
    assert "application/problem+json" not in got.headers.get("content-type", "")
    assert got.headers["x-frame-options"] == "DENY"  # it passes the pages' route like any page


def test_following_the_root_an_anonymous_visitor_reaches_the_sign_in_page(served: str) -> None:
    got = httpx.get(f"{served}/", follow_redirects=True)
    assert got.status_code == 200, (got.status_code, got.text[:300])
    assert got.url.path == "/web/sign-in"
    assert got.headers["content-type"].startswith("text/html")
    assert [str(r.url) for r in got.history] == [f"{served}/", f"{served}/web/"]
