"""The catalogue of ``shared/bad-inputs.md`` that applies to lookups, over the API and the CLI:
a clear 4xx (a one-line error and exit 2) naming the field — never a 500, a trace or an answer."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app as cli
from detnat.settings import Settings, get_settings
from tests.store.conftest import fresh_pool

pytestmark = pytest.mark.postgres

GOOD = {"ip": "198.18.0.1", "port": 1100, "time": "2020-06-01T00:00:00Z", "case": "BAD-1"}

ADDRESSES = [
    "",
    " 1.2.3.4",
    "1.2.3.4\n",
    "1.2.3",
    "1.2.3.4.5",
    "256.1.1.1",
    "01.2.3.4",
    "127.1",
    "0x7f.0.0.1",
    "2130706433",
    2130706433,
    "１.２.３.４",
    "1。2。3。4",
    "::ffff:192.0.2.1",
    "64:ff9b::192.0.2.1",
    "fe80::1%eth0",
    "100.64.0.1",
    "10.1.2.3",
]
PORTS = [-1, 65536, "80", 80.5, 1e3, True, None]
TIMES = [
    "2026-03-01T10:00:00",
    "2026-03-01T10:00:00+24:00",
    "2026-03-01T10:00:00+0100",
    "2016-12-31T23:59:60Z",
    1700000000,
    "2026-03-01T10:00:00.123456789Z",
    "0001-01-01T00:00:00+14:00",
    "9999-12-31T23:59:59-14:00",
    "",
]
CASES = ["a\r\nb", "a\x00b", "x" * (1 << 20), "abc\u202edcba", "", None]


@pytest.fixture(scope="module")
def served(database_url: str, api_tokens: dict[str, str]) -> Iterator[tuple[FastAPI, str]]:
    """An app (lifespan running) with one realm whose plan holds 198.18.x (a fresh /30)."""
    app = create_app(Settings(database_url=database_url, max_body_bytes=1 << 21))
    loop = asyncio.new_event_loop()
    lifespan = app.router.lifespan_context(app)
    loop.run_until_complete(lifespan.__aenter__())
    app.state.loop = loop
    yield app, api_tokens["legal"]
    loop.run_until_complete(lifespan.__aexit__(None, None, None))
    loop.run_until_complete(loop.shutdown_asyncgens())
    loop.close()


def _post(
    served: tuple[FastAPI, str], body: bytes, url: str = "/v1/lookups/reverse", **headers: str
) -> httpx.Response:
    app, token = served

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            return await client.post(
                url,
                content=body,
                headers={
                    "authorization": f"Bearer {token}",
                    "content-type": "application/json",
                    **headers,
                },
            )

    loop: asyncio.AbstractEventLoop = app.state.loop
    return loop.run_until_complete(go())


def _refused(response: httpx.Response, field: str | None) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.text)
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert "Traceback" not in response.text and "SELECT" not in response.text.upper()
    assert "subscriber" not in body
    if field is not None:
        assert field in (body.get("field") or "") + body["detail"], body


@pytest.mark.parametrize("value", ADDRESSES, ids=repr)
def test_bad_addresses(served, value: Any) -> None:  # type: ignore[no-untyped-def]
    _refused(_post(served, json.dumps({**GOOD, "ip": value}).encode()), "ip")


@pytest.mark.parametrize("value", PORTS, ids=repr)
def test_bad_ports(served, value: Any) -> None:  # type: ignore[no-untyped-def]
    _refused(_post(served, json.dumps({**GOOD, "port": value}).encode()), "port")


@pytest.mark.parametrize("value", TIMES, ids=repr)
def test_bad_times(served, value: Any) -> None:  # type: ignore[no-untyped-def]
    _refused(_post(served, json.dumps({**GOOD, "time": value}).encode()), "time")


@pytest.mark.parametrize("value", CASES, ids=lambda v: repr(v)[:20])
def test_bad_case_references(served, value: Any) -> None:  # type: ignore[no-untyped-def]
    _refused(_post(served, json.dumps({**GOOD, "case": value}).encode()), "case")


@pytest.mark.parametrize(
    "body",
    [
        b'{"ip": "198.18.0.1", "ip": "198.18.0.2", "port": 1, "time": "x", "case": "c"}',
        b'{"ip": "198.18.0.1", "port": 1, "time": "2020-01-01T00:00:00Z", "case": "c", '
        b'"tolerance_seconds": NaN}',
        b"[" * 50_000 + b"]" * 50_000,
        b'{"ip": "198.18.0.1"} trailing',
        b"",
        b'{"ip": "198.18.0.1", "port": 1, "time": "2020-01-01T00:00:00Z", "case": "c", "x": 1}',
        b'{"ip": "198.18.0.1", "port": 1, "time": "2020-01-01T00:00:00Z", "case": "c", '
        b'"tolerance_seconds": -1}',
    ],
    ids=[
        "duplicate keys",
        "NaN",
        "deep nesting",
        "trailing garbage",
        "empty",
        "unknown key",
        "negative tolerance",
    ],
)
def test_bad_bodies(served, body: bytes) -> None:  # type: ignore[no-untyped-def]
    _refused(_post(served, body), None)


def test_wrong_content_type_and_oversized_bodies(served) -> None:  # type: ignore[no-untyped-def]
    _refused(_post(served, b"ip=1", **{"content-type": "text/plain"}), None)
    big = b" " * (3 << 20)
    assert _post(served, big).status_code == 413

    async def chunks():  # type: ignore[no-untyped-def]
        for _ in range(40):
            yield b" " * (1 << 18)

    app, token = served

    async def unsized() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="http://t"
        ) as client:
            return await client.post(
                "/v1/lookups/reverse",
                content=chunks(),
                headers={"authorization": f"Bearer {token}", "content-type": "application/json"},
            )

    response = app.state.loop.run_until_complete(unsized())
    assert "content-length" not in response.request.headers
    assert response.status_code == 413


# -- the CLI ---------------------------------------------------------------------------------------


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli, list(args))
    get_settings.cache_clear()


@pytest.mark.parametrize(
    ("args", "field"),
    [
        (["1.2.3:80"], "ip"),
        (["01.2.3.4:80"], "ip"),
        (["[::ffff:192.0.2.1]:80"], "ip"),
        (["198.18.0.1:65536"], "query"),
        (["198.18.0.1:080"], "query"),
        (["198.18.0.1:80", "--at", "2026-03-01T10:00:00"], "--at"),
        (["198.18.0.1:80", "--at", "2016-12-31T23:59:60Z"], "--at"),
        (["198.18.0.1:80", "--tolerance", "2 weeks"], "tolerance"),
        (["198.18.0.1:80", "--case", "a\nb"], "--case"),
        (["198.18.0.1:80", "--case", "x\u202ey"], "--case"),
        (["198.18.0.1:80", "--tz", "Mars/Olympus", "--at", "2026-03-01T10:00:00"], "tz"),
    ],
)
def test_cli_refuses_bad_inputs_with_one_line(run, args: list[str], field: str) -> None:  # type: ignore[no-untyped-def]
    base = ["reverse", *args]
    if "--at" not in args:
        base += ["--at", "2020-06-01T00:00:00Z"]
    if "--case" not in args:
        base += ["--case", "CLI-BAD"]
    result = run(*base)
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert lines and lines[0].startswith("detnat: error:") and field in lines[0]
    assert "Traceback" not in result.output


def test_cli_batch_with_bad_rows_reports_line_numbers(run, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    batch = tmp_path / "in.csv"
    ip = fresh_pool().split("/")[0]
    batch.write_text(
        "ip,port,time\n"
        f"{ip},1100,2020-06-01T00:00:00Z\n"
        f"{ip},-1,2020-06-01T00:00:00Z\n"
        f"{ip},1100,2020-06-01T00:00:00\n"
        f"１.２.３.４,1100,2020-06-01T00:00:00Z\n"
    )
    result = run("reverse", "--batch", str(batch), "--case", "CLI-BATCH", "-o", str(tmp_path / "o"))
    assert result.exit_code == 2
    lines = [re.match(r"detnat: .*?in\.csv:(\d+): ", line) for line in result.stderr.splitlines()]
    assert [m.group(1) for m in lines if m] == ["3", "4", "5"]
