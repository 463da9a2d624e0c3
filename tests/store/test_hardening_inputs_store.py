"""Holes a black-box probe found in the edges (issue 10), over real HTTP and the real CLI against
a real store: each must be a clear 4xx (a one-line error and exit 2), never a 500 or a silent
change of what was asked."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app as cli
from detnat.service import plans
from detnat.service.audit import Actor
from detnat.settings import Settings, get_settings
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

EDGES = ("0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z")


class Served:
    """The app with its lifespan running, and one realm whose plan holds ``ip``."""

    def __init__(self, app: FastAPI, tokens: dict[str, str], ip: str) -> None:
        self.app, self.tokens, self.ip = app, tokens, ip
        self.loop = asyncio.new_event_loop()
        self._lifespan = app.router.lifespan_context(app)
        self.loop.run_until_complete(self._lifespan.__aenter__())

    def request(
        self,
        method: str,
        url: str,
        *,
        body: bytes | None = None,
        kind: str | None = "application/json",
        holder: str | None = "legal",
    ) -> httpx.Response:
        headers = {} if kind is None else {"content-type": kind}
        if holder is not None:
            headers["authorization"] = f"Bearer {self.tokens[holder]}"

        async def go() -> httpx.Response:
            async with httpx.AsyncClient(
                transport=httpx.ASGITransport(app=self.app), base_url="http://t"
            ) as client:
                return await client.request(method, url, content=body, headers=headers)

        return self.loop.run_until_complete(go())

    def post(self, url: str, payload: Any, **kw: Any) -> httpx.Response:
        return self.request("POST", url, body=json.dumps(payload).encode(), **kw)

    def close(self) -> None:
        self.loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def served(
    database_url: str, api_tokens: dict[str, str], sessions: SessionFactory
) -> Iterator[Served]:
    pool = fresh_pool()
    name = f"hardening-{pool.replace('/', '-')}"
    with unit_of_work(sessions) as s:
        plans.create_realm(
            s,
            name,
            by=Actor("tests", "admin"),
            session_drain=timedelta(hours=1),
            single_approver=True,
        )
        plans.publish(
            s,
            name,
            small_plan(pool, inside="10.251.0.0/18"),  # subscribers no other test has
            effective_from=T0 - timedelta(days=1),
            reason="CHG-HARDEN",
            by=Actor("tests", "admin"),
            correction=True,
        )
    app = create_app(Settings(database_url=database_url))
    running = Served(app, api_tokens, pool.split("/")[0])
    yield running
    running.close()


def _refused(response: httpx.Response, field: str, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, (response.status_code, response.text[:500])
    assert response.headers["content-type"] == "application/problem+json"
    body: dict[str, Any] = response.json()
    assert field in (body.get("field") or "") + body["detail"], body
    return body


@pytest.fixture
def run(database_url: str, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()
    yield lambda *args: runner.invoke(cli, list(args))
    get_settings.cache_clear()


def _one_error_line(result: Any, field: str, code: int = 2) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detnat: error:"), result.stderr
    assert field in lines[0], lines[0]


# -- 1. times at the edges of the calendar ---------------------------------------------------------


@pytest.mark.parametrize("time", EDGES)
def test_lookup_at_the_edge_of_the_calendar_with_a_tolerance_is_refused_naming_time(
    served: Served, time: str
) -> None:
    body = {"ip": served.ip, "port": 1100, "time": time, "case": "EDGE-1", "tolerance_seconds": 5}
    _refused(served.post("/v1/lookups/reverse", body), "time")


@pytest.mark.parametrize("time", EDGES)
def test_lookup_at_the_edge_of_the_calendar_without_tolerance_is_answered(
    served: Served, time: str
) -> None:
    body = {"ip": served.ip, "port": 1100, "time": time, "case": "EDGE-1"}
    response = served.post("/v1/lookups/reverse", body)
    assert response.status_code == 200, response.text
    assert response.json()["status"] in ("no_plan_in_force", "future")


def test_one_edge_row_is_a_bad_row_not_a_failed_batch(served: Served) -> None:
    rows = "".join(f"{served.ip},1100,{t}\n" for t in (*EDGES, "2026-03-14T20:00:00Z"))
    response = served.request(
        "POST",
        "/v1/lookups/reverse/batch?case=EDGE-B&tolerance_seconds=5",
        body=f"ip,port,time\n{rows}".encode(),
        kind="text/csv",
    )
    assert response.status_code == 200, response.text
    lines = response.text.splitlines()
    assert lines[1].split(",")[3] == "error" and "time" in lines[1]
    assert lines[2].split(",")[3] == "error"
    assert lines[3].split(",")[3] == "match"
    items = [{"ip": served.ip, "port": 1100, "time": t} for t in (*EDGES, "2026-03-14T20:00:00Z")]
    answered = served.request(
        "POST",
        "/v1/lookups/reverse/batch?case=EDGE-B&tolerance_seconds=5",
        body=json.dumps(items).encode(),
    )
    assert answered.status_code == 200, answered.text
    assert [a["status"] for a in answered.json()] == ["error", "error", "match"]


@pytest.mark.parametrize("time", EDGES)
def test_cli_lookup_at_the_edge_of_the_calendar_is_one_line_and_exit_2(
    run: Any, served: Served, time: str
) -> None:
    result = run("reverse", f"{served.ip}:1100", "--at", time, "--tolerance", "2s", "--case", "E")
    _one_error_line(result, "time")


# -- 2. over-long numbers in JSON ------------------------------------------------------------------

LONG = "1" * 5000


@pytest.mark.parametrize(
    "url", ["/v1/lookups/reverse", "/v1/lookups/forward", "/v1/realms", "/v1/capacity/size"]
)
def test_an_over_long_json_number_is_refused_before_authentication(
    served: Served, url: str
) -> None:
    body = f'{{"port": {LONG}}}'.encode()
    _refused(served.request("POST", url, body=body, holder=None), "body")


@pytest.mark.parametrize("number", [LONG, "1e400", "-1e400"])
def test_an_over_long_or_infinite_number_in_a_json_batch_is_refused(
    served: Served, number: str
) -> None:
    body = f'[{{"ip": "{served.ip}", "port": {number}, "time": "2026-01-01T00:00:00Z"}}]'
    response = served.request("POST", "/v1/lookups/reverse/batch?case=LONG-1", body=body.encode())
    _refused(response, "batch")


# -- 3. JSON under other content types -------------------------------------------------------------

DUPLICATE = (
    b'{"ip": "192.0.2.1", "ip": "%s", "port": 1100, "time": "2026-03-14T20:00:00Z", "case": "CT-1"}'
)


@pytest.mark.parametrize(
    "kind", ["application/vnd.foo+json", "application/problem+json", "APPLICATION/X+JSON; q=1"]
)
def test_json_under_another_json_type_is_415_not_read_leniently(served: Served, kind: str) -> None:
    body = DUPLICATE % served.ip.encode()
    _refused(served.request("POST", "/v1/lookups/reverse", body=body, kind=kind), "json", 415)
    plan = b'{"plan": null, "plan": null, "effective_from": "2030-01-01T00:00:00Z", "reason": "x"}'
    published = served.request(
        "POST", "/v1/realms/nowhere/versions", body=plan, kind=kind, holder="admin"
    )
    _refused(published, "json", 415)


def test_json_with_parameters_is_still_read_strictly(served: Served) -> None:
    body = DUPLICATE % served.ip.encode()
    kind = "Application/JSON; charset=utf-8"
    _refused(served.request("POST", "/v1/lookups/reverse", body=body, kind=kind), "duplicate key")


def test_the_first_of_two_content_types_decides_as_it_does_for_fastapi(served: Served) -> None:
    body = DUPLICATE % served.ip.encode()

    async def go() -> httpx.Response:
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=served.app), base_url="http://t"
        ) as client:
            return await client.post(
                "/v1/lookups/reverse",
                content=body,
                headers=[
                    ("authorization", f"Bearer {served.tokens['legal']}"),
                    ("content-type", "application/vnd.foo+json"),
                    ("content-type", "application/json"),
                ],
            )

    _refused(served.loop.run_until_complete(go()), "json", 415)


# -- 5. digits are ASCII ---------------------------------------------------------------------------


@pytest.mark.parametrize("time", ["２０２６-03-14T20:00:00Z", "٢٠٢٦-03-14T20:00:00Z"])
def test_a_lookup_time_with_non_ascii_digits_is_refused(served: Served, time: str) -> None:
    body = {"ip": served.ip, "port": 1100, "time": time, "case": "DIGITS-1"}
    _refused(served.post("/v1/lookups/reverse", body), "time")


def test_cli_tolerance_with_non_ascii_digits_is_refused(run: Any, served: Served) -> None:
    at = "2026-03-14T20:00:00Z"
    result = run("reverse", f"{served.ip}:1100", "--at", at, "--tolerance", "２s", "--case", "D")
    _one_error_line(result, "tolerance")


# -- 6. a query parameter given twice --------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/v1/lookups/reverse/batch?case=A&case=B", "case"),
        ("/v1/lookups/reverse/batch?case=A&tolerance_seconds=1&tolerance_seconds=0", "tolerance"),
        ("/v1/audit?limit=1&limit=1000", "limit"),
    ],
)
def test_a_repeated_query_parameter_is_refused(served: Served, url: str, name: str) -> None:
    method = "GET" if url.startswith("/v1/audit") else "POST"
    body = f"ip,port,time\n{served.ip},1100,2026-03-14T20:00:00Z\n".encode()
    holder = "auditor" if method == "GET" else "legal"
    response = served.request(method, url, body=body, kind="text/csv", holder=holder)
    _refused(response, name)


# -- 10. no cache keeps an answer ------------------------------------------------------------------


def test_every_api_response_says_no_store(served: Served) -> None:
    body = {"ip": served.ip, "port": 1100, "time": "2026-03-14T20:00:00Z", "case": "CACHE-1"}
    answered = served.post("/v1/lookups/reverse", body)
    assert answered.status_code == 200, answered.text
    answer_id = answered.json()["answer_id"]
    csv_body = f"ip,port,time\n{served.ip},1100,2026-03-14T20:00:00Z\n".encode()
    responses = [
        answered,
        served.request("GET", f"/v1/answers/{answer_id}"),
        served.request("GET", f"/v1/answers/{answer_id}/evidence"),
        served.request(
            "POST", "/v1/lookups/reverse/batch?case=CACHE-1", body=csv_body, kind="text/csv"
        ),
        served.request("GET", "/v1/realms", holder="admin"),
        served.post("/v1/lookups/reverse", {**body, "port": -1}),
        served.request("GET", "/v1/realms", holder=None),
        served.request("GET", "/healthz"),
    ]
    for response in responses:
        assert response.headers.get("cache-control") == "no-store", (
            response.request.url,
            response.status_code,
        )


# -- 8. files that never end, nesting that never ends, argv that is not text -----------------------


def test_store_batch_of_dev_zero_is_refused_not_hung(run: Any, tmp_path: Any) -> None:
    out = tmp_path / "out.csv"
    result = run("reverse", "--batch", "/dev/zero", "--case", "ZERO-1", "-o", str(out))
    _one_error_line(result, "batch")
    assert not out.exists()


@pytest.mark.parametrize("content", [None, "[" * 100_000 + "]" * 100_000])
def test_audit_verify_refuses_a_checkpoint_that_never_ends_or_nests_forever(
    run: Any, tmp_path: Any, content: str | None
) -> None:
    path = "/dev/zero"
    if content is not None:
        path = str(tmp_path / "head.json")
        (tmp_path / "head.json").write_text(content)
    _one_error_line(run("audit", "verify", "--checkpoint", path), path)


def test_a_realm_name_that_is_not_utf8_is_refused(run: Any) -> None:
    _one_error_line(run("realm", "show", "\udcff"), "name")


def test_a_tolerance_too_large_to_count_is_refused(run: Any, served: Served) -> None:
    at = "2026-03-14T20:00:00Z"
    big = "99999999999999999999h"
    result = run("reverse", f"{served.ip}:1100", "--at", at, "--tolerance", big, "--case", "T")
    _one_error_line(result, "tolerance")


# -- 11. capacity numbers out of range ------------------------------------------------------------

HUGE = 10**30
SIZE = {"subscribers": 1000, "target": 0.01, "samples": 0}


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"demand": {"histogram": [[100, HUGE]]}}, "histogram"),
        ({"demand": {"histogram": [[HUGE, 1]]}}, "histogram"),
        ({"demand": {"histogram": [[100, 1e30]]}}, "histogram"),
        ({"demand": {"histogram": [[1, HUGE, 1]]}}, "histogram"),
        ({"demand": {"histogram": [[1, 2, HUGE]]}}, "histogram"),
        ({"demand": {"percentiles": {"50": HUGE}}}, "percentiles"),
        ({"demand": {"histogram_csv": f"ports,subscribers\n100,{HUGE}\n"}}, "histogram_csv"),
        ({"subscribers": HUGE}, "subscribers"),
        ({"addresses": HUGE}, "addresses"),
        ({"seed": HUGE}, "seed"),
        ({"samples": HUGE}, "samples"),
        ({"dynamic": HUGE}, "dynamic"),
        ({"target": 1e30}, "target"),
        ({"pool_target": 1e300}, "pool_target"),
        ({"ports": {"first": HUGE}}, "ports"),
        ({"ports": {"exclude": [[HUGE]]}}, "ports"),
    ],
)
def test_capacity_size_refuses_out_of_range_numbers_naming_the_field(
    served: Served, change: dict[str, Any], field: str
) -> None:
    response = served.post("/v1/capacity/size", {**SIZE, **change}, holder="planner")
    _refused(response, field)


@pytest.mark.parametrize(
    ("change", "field"),
    [({"seed": HUGE}, "seed"), ({"samples": HUGE}, "samples"), ({"target": 1e30}, "target")],
)
def test_capacity_check_refuses_out_of_range_numbers_naming_the_field(
    served: Served, change: dict[str, Any], field: str
) -> None:
    plan = {
        "algorithm": "block",
        "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
        "outside": {"prefixes": ["192.0.2.0/30"]},
        "block": {"ratio": 4096},
    }
    response = served.post("/v1/capacity/check", {"plan": plan, **change}, holder="planner")
    _refused(response, field)
