"""The REST routes (httpx on the ASGI app) and realm versions from the store (CLI and API)."""

from __future__ import annotations

import asyncio
import csv
import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import httpx
import pytest
import typer
from fastapi import FastAPI
from typer.testing import CliRunner

from api.app import create_app
from detnat.planfile import plan_from_data
from detnat.service import plans
from detnat.service.audit import Actor
from detnat.settings import Settings, get_settings
from detnat.store.db import SessionFactory
from tests.capacity.conftest import block_plan
from tests.store.conftest import fresh_pool

pytestmark = pytest.mark.postgres  # every /v1 route needs a token, and tokens live in the store


@pytest.fixture
def planner(
    database_url: str, api_tokens: dict[str, str]
) -> Iterator[Callable[..., list[httpx.Response]]]:
    """POST requests as a planner to the app (with its lifespan) on the test store."""
    app = create_app(Settings(database_url=database_url, migrate_on_start=False))
    auth = {"authorization": f"Bearer {api_tokens['planner']}"}

    def post(*requests: tuple[str, object, dict[str, str]]) -> list[httpx.Response]:
        return _call(app, *[(url, body, {**auth, **h}) for url, body, h in requests])

    yield post


def _call(app: FastAPI, *requests: tuple[str, object, dict[str, str]]) -> list[httpx.Response]:
    async def run() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return [await client.post(url, json=body, headers=h) for url, body, h in requests]

    async def with_lifespan() -> list[httpx.Response]:
        async with app.router.lifespan_context(app):
            return await run()

    return asyncio.run(with_lifespan())


def test_size_over_http(planner: Callable[..., list[httpx.Response]]) -> None:
    (response,) = planner(
        (
            "/v1/capacity/size",
            {
                "subscribers": 10_000,
                "demand": {"preset": "constant:700"},
                "target": 0.0,
                "samples": 10_000,
            },
            {},
        ),
    )
    assert response.status_code == 200, response.text
    assert response.json()["recommended"]["block_size"] == 701


def test_check_inline_plan_and_demand_as_histogram_rows(
    planner: Callable[..., list[httpx.Response]],
) -> None:
    (response,) = planner(
        (
            "/v1/capacity/check",
            {"plan": block_plan(), "demand": {"histogram": [[100, 9], [2000, 1]]}, "samples": 0},
            {},
        ),
    )
    assert response.status_code == 200, response.text
    figures = response.json()["figures"]
    assert figures["block_size"] == 1008
    assert figures["exceeding_share"]["analytic"] == pytest.approx(0.1)


@pytest.mark.parametrize(
    ("url", "body", "field"),
    [
        (
            "/v1/capacity/size",
            {"subscribers": 10, "demand": {"preset": "x"}, "target": 0.1},
            "demand",
        ),
        ("/v1/capacity/size", {"subscribers": 10, "target": 2.0}, "target"),
        ("/v1/capacity/check", {"samples": 0}, "plan"),
        ("/v1/capacity/check", {"plan": block_plan(ratio=1)}, "block"),
        ("/v1/plans/diff", {"old": {"plan": block_plan()}, "new": {}}, "new"),
    ],
)
def test_bad_requests_are_problems_naming_the_field(
    planner: Callable[..., list[httpx.Response]], url: str, body: object, field: str
) -> None:
    (response,) = planner((url, body, {}))
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["field"] == field


def test_diff_over_http_as_json_and_as_csv(planner: Callable[..., list[httpx.Response]]) -> None:
    body = {
        "old": {"plan": block_plan()},
        "new": {"plan": block_plan(outside=["198.51.100.0/30", "192.0.2.0/30"])},
        "changed_only": True,
    }
    summary, rows = planner(
        ("/v1/plans/diff", body, {}),
        ("/v1/plans/diff", body, {"accept": "text/csv"}),
    )
    assert summary.json()["subscribers"]["address_changed"] == 256
    assert summary.json()["warnings"][0]["alternative"]["moved"] == 0
    assert rows.headers["content-type"].startswith("text/csv")
    table = list(csv.DictReader(rows.text.splitlines()))
    assert len(table) == 256 and {r["change"] for r in table} == {"address"}


def test_capacity_routes_refuse_identity_roles(
    database_url: str, api_tokens: dict[str, str]
) -> None:
    app = create_app(Settings(database_url=database_url, migrate_on_start=False))
    body = {"subscribers": 10, "target": 0.1}
    anonymous, abuse = _call(
        app,
        ("/v1/capacity/size", body, {}),
        ("/v1/capacity/size", body, {"authorization": f"Bearer {api_tokens['abuse']}"}),
    )
    assert (anonymous.status_code, abuse.status_code) == (401, 403)


def test_unknown_realm_is_not_found(planner: Callable[..., list[httpx.Response]]) -> None:
    (response,) = planner(("/v1/capacity/check", {"realm": "no-such-realm"}, {}))
    assert response.status_code == 404


# -- against the store -----------------------------------------------------------------------------

T1 = datetime(2020, 1, 1, tzinfo=UTC)


@pytest.fixture
def realm_with_two_versions(sessions: SessionFactory) -> Iterator[tuple[str, list[str]]]:
    """A realm whose version 2 inserts a new /30 in front of version 1's pool."""
    name = f"cap-{fresh_pool().replace('/', '-').replace('.', '-')}"
    first, second = fresh_pool(), fresh_pool()
    with sessions() as session:
        plans.create_realm(session, name, by=Actor("tester", "admin"), session_drain=timedelta(0))
        for n, pool in enumerate(([first], [second, first])):
            plans.publish(
                session,
                name,
                plan_from_data(block_plan(outside=pool)),
                effective_from=T1 + timedelta(days=n),
                reason=f"CHG-{n}",
                by=Actor("test", "admin"),
                correction=True,
            )
        session.commit()
    yield name, [first, second]


def test_cli_diff_and_check_of_realm_versions(
    realm_with_two_versions: tuple[str, list[str]],
    database_url: str,
    cli: typer.Typer,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    name, _ = realm_with_two_versions
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        runner = CliRunner()
        result = runner.invoke(cli, ["plan", "diff", f"{name}@1", f"{name}@2", "--json"])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
        assert report["old"]["version"] == 1 and report["new"]["version"] == 2
        assert report["subscribers"]["address_changed"] == 256
        check = runner.invoke(cli, ["capacity", "check", name, "--samples", "0", "--json"])
        assert check.exit_code == 0, check.output
        assert json.loads(check.stdout)["source"]["version"] == 2  # in force now
        missing = runner.invoke(cli, ["capacity", "check", f"{name}@9"])
        assert missing.exit_code == 3
    finally:
        get_settings.cache_clear()


def test_api_diff_of_realm_versions(
    realm_with_two_versions: tuple[str, list[str]], planner: Callable[..., list[httpx.Response]]
) -> None:
    name, _ = realm_with_two_versions
    diff, check = planner(
        ("/v1/plans/diff", {"old": {"realm": f"{name}@1"}, "new": {"realm": f"{name}@latest"}}, {}),
        ("/v1/capacity/check", {"realm": f"{name}@1", "samples": 0}, {}),
    )
    assert diff.status_code == 200, diff.text
    assert diff.json()["subscribers"]["address_changed"] == 256
    assert check.json()["source"]["realm"] == name and check.json()["source"]["version"] == 1
