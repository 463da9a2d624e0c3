"""The REST API over the ASGI app (httpx) and as a real ``detnat serve`` process."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import httpx
import pytest
from fastapi import FastAPI

from api.app import create_app
from detnat.settings import Settings
from tests.store.conftest import fresh_pool

pytestmark = [pytest.mark.postgres]

PLAN = {
    "algorithm": "block",
    "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
    "block": {"ratio": 4096},
}


@pytest.fixture
def app(database_url: str) -> FastAPI:
    return create_app(Settings(database_url=database_url, max_body_bytes=4096))


def _call(app: FastAPI, *requests: tuple[str, str, object]) -> list[httpx.Response]:
    import asyncio

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                out = []
                for method, url, body in requests:
                    if isinstance(body, bytes):
                        out.append(
                            await client.request(
                                method,
                                url,
                                content=body,
                                headers={"content-type": "application/json"},
                            )
                        )
                    else:
                        out.append(await client.request(method, url, json=body))
                return out

    return asyncio.run(run())


def test_publish_then_lookups_over_http(app: FastAPI, realm_name: str) -> None:
    pool = fresh_pool()
    ip = pool.split("/")[0]
    plan = {**PLAN, "outside": {"prefixes": [pool]}}
    t = "2020-01-01T00:00:00Z"
    created, published, dup, ans, fwd, shown, ready = _call(
        app,
        ("POST", "/v1/realms", {"name": realm_name, "session_drain": "0s"}),
        (
            "POST",
            f"/v1/realms/{realm_name}/versions",
            {"plan": plan, "effective_from": t, "reason": "CHG-9", "correction": True},
        ),
        ("POST", "/v1/realms", {"name": realm_name}),
        (
            "POST",
            "/v1/lookups/reverse",
            {"ip": ip, "port": 1100, "time": "2020-01-01T00:00:01+00:00", "realm": realm_name},
        ),
        ("POST", "/v1/lookups/forward", {"subscriber": "10.0.0.5", "time": "2020-01-02T00:00:00Z"}),
        ("GET", f"/v1/realms/{realm_name}/versions/1", None),
        ("GET", "/readyz", None),
    )
    assert created.status_code == 201, created.text
    assert published.status_code == 201, published.text
    assert dup.status_code == 409 and dup.headers["content-type"] == "application/problem+json"
    assert dup.json()["code"] == "conflict"
    assert ans.json()["status"] == "match" and ans.json()["subscriber"] == "10.0.0.5/32"
    assert fwd.json()["port_ranges"] == [[1099, 1113]]
    assert shown.json()["plan"]["outside"]["prefixes"] == [pool]
    assert ready.status_code == 200


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"ip": "192.0.2.1", "port": 80, "time": "2026-03-01T10:00:00"}, "invalid_query"),
        ({"ip": "192.0.2.1", "port": "80", "time": "2026-03-01T10:00:00Z"}, "invalid_input"),
        ({"ip": "192.0.2.1", "port": 80, "time": 1700000000}, "invalid_input"),
        ({"ip": "::ffff:192.0.2.1", "port": 80, "time": "2026-03-01T10:00:00Z"}, "invalid_query"),
        ({"ip": "192.0.2.1", "port": 65536, "time": "2026-03-01T10:00:00Z"}, "invalid_query"),
        ({"ip": "192.0.2.1", "port": 80, "time": "2016-12-31T23:59:60Z"}, "invalid_query"),
    ],
)
def test_bad_lookups_are_problems(app: FastAPI, body: object, code: str) -> None:
    (response,) = _call(app, ("POST", "/v1/lookups/reverse", body))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == code


def test_large_bodies_are_413_and_unknown_realms_404(app: FastAPI) -> None:
    big, missing, garbage = _call(
        app,
        ("POST", "/v1/lookups/reverse", b"[" + b" " * 10_000 + b"]"),
        ("GET", "/v1/realms/nope", None),
        ("POST", "/v1/lookups/reverse", b'{"ip": "1.2.3.4"} trailing'),
    )
    assert big.status_code == 413 and big.json()["code"] == "body_too_large"
    assert missing.status_code == 404 and missing.json()["code"] == "not_found"
    assert garbage.status_code == 422


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_detnat_serve_answers_health_and_readiness(database_url: str) -> None:
    port = _free_port()
    env = {**os.environ, "DETNAT_DATABASE_URL": database_url}
    proc = subprocess.Popen(
        [sys.executable, "-c", "from cli.main import app; app()", "serve", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=1)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline or proc.poll() is not None:
                    raise
                time.sleep(0.1)
        assert ready.status_code == 200
        assert httpx.get(f"http://127.0.0.1:{port}/healthz").json() == {"status": "ok"}
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        assert proc.stderr is not None
        proc.stderr.close()
