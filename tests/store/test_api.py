"""The REST API over the ASGI app (httpx) and as a real ``detnat serve`` process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from typing import Any

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


TOKENS: dict[str, str] = {}


@pytest.fixture
def app(database_url: str, api_tokens: dict[str, str]) -> FastAPI:
    TOKENS.update(api_tokens)
    return create_app(Settings(database_url=database_url, max_body_bytes=4096))


def _call(app: FastAPI, *requests: tuple[Any, ...]) -> list[httpx.Response]:
    """Requests in order; a 4th element names the token holder (default: legal for lookups,
    admin otherwise; None: no token)."""
    import asyncio

    async def run() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                out = []
                for method, url, body, *who in requests:
                    holder = who[0] if who else ("legal" if "/lookups/" in url else "admin")
                    client.headers.pop("authorization", None)
                    if holder is not None:
                        client.headers["authorization"] = f"Bearer {TOKENS[holder]}"
                    if isinstance(body, tuple):
                        kind, content = body
                        out.append(
                            await client.request(
                                method, url, content=content, headers={"content-type": kind}
                            )
                        )
                    elif isinstance(body, bytes):
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
    created, published, dup, pending, approved, ans, fwd, shown, ready = _call(
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
            {"ip": ip, "port": 1100, "time": "2020-01-01T00:00:01Z", "case": "CASE-API-1"},
        ),
        ("POST", f"/v1/realms/{realm_name}/versions/1/approval", {}, "admin2"),
        (
            "POST",
            "/v1/lookups/reverse",
            {
                "ip": ip,
                "port": 1100,
                "time": "2020-01-01T00:00:01+00:00",
                "realm": realm_name,
                "case": "CASE-API-1",
            },
        ),
        (
            "POST",
            "/v1/lookups/forward",
            {
                "subscriber": "10.0.0.5",
                "time": "2020-01-02T00:00:00Z",
                "case": "CASE-API-1",
                "realm": realm_name,  # other tests' realms map the same inside space
            },
        ),
        ("GET", f"/v1/realms/{realm_name}/versions/1", None),
        ("GET", "/readyz", None),
    )
    assert created.status_code == 201, created.text
    assert published.status_code == 201, published.text
    assert dup.status_code == 409 and dup.headers["content-type"] == "application/problem+json"
    assert dup.json()["code"] == "conflict"
    assert pending.json()["pending_approval"][0]["version"] == 1
    assert pending.json()["status"] in ("no_plan_in_force", "no_mapping")
    assert approved.status_code == 201 and approved.json()["approved_by"] == "test-admin2"
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
    (response,) = _call(app, ("POST", "/v1/lookups/reverse", {"case": "CASE-BAD", **body}))
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


def test_batch_over_http_csv_and_json(
    database_url: str, realm_name: str, api_tokens: dict[str, str]
) -> None:
    TOKENS.update(api_tokens)
    app = create_app(Settings(database_url=database_url, max_batch_rows=3))
    pool = fresh_pool()
    ip = pool.split("/")[0]
    plan = {**PLAN, "outside": {"prefixes": [pool]}}
    t = "2020-01-01T00:00:01Z"
    csv_body = f"ip,port,time\n{ip},1100,{t}\n{ip},99999,{t}\n".encode()
    json_body = json.dumps([{"ip": ip, "port": 1100, "time": t}]).encode()
    too_many = ("ip,port,time\n" + f"{ip},1100,{t}\n" * 4).encode()
    responses = _call(
        app,
        (
            "POST",
            "/v1/realms",
            {"name": realm_name, "session_drain": "0s", "single_approver": True},
        ),
        (
            "POST",
            f"/v1/realms/{realm_name}/versions",
            {
                "plan": plan,
                "effective_from": "2020-01-01T00:00:00Z",
                "reason": "C",
                "correction": True,
            },
        ),
        ("POST", "/v1/lookups/reverse/batch?case=CASE-B", ("text/csv", csv_body)),
        ("POST", "/v1/lookups/reverse/batch?case=CASE-B", ("application/json", json_body)),
        ("POST", "/v1/lookups/reverse/batch?case=CASE-B", ("text/csv", too_many)),
        ("POST", "/v1/lookups/reverse/batch?case=CASE-B", ("text/plain", csv_body)),
    )
    _, _, as_csv, as_json, limited, wrong_type = responses
    assert as_csv.status_code == 200 and as_csv.headers["content-type"].startswith("text/csv")
    lines = as_csv.text.splitlines()
    assert lines[0] == "ip,port,time,status,reason,subscriber"
    assert lines[1] == f"{ip},1100,{t},match,,10.0.0.5/32"
    assert lines[2].startswith(f"{ip},99999,{t},error,")
    assert as_csv.headers["x-detnat-bad-rows"] == "1"
    assert as_json.json() == [
        {"ip": ip, "port": 1100, "time": t, "status": "match", "subscriber": "10.0.0.5/32"}
    ]
    assert limited.status_code == 422 and "limit is 3 rows" in limited.json()["detail"]
    assert wrong_type.status_code == 415
