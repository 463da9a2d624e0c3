"""One question through the three doors — the API, the CLI and the web page — is one inquiry: the
same audit detail (but for ``via``, and the case, which belongs to the asking role: the CLI is the
admin operator), and an evidence file from each that verifies offline."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app
from detnat.service import evidence
from detnat.settings import Settings, get_settings
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry
from tests.store.conftest import Api
from tests.web.conftest import ADDRESS, PORT, Site, World, new_case

QUESTION = {"time": "2020-01-01 12:30:00", "tz": "Europe/Berlin", "tolerance": 30}


@pytest.fixture
def api(database_url: str, world: World) -> Iterator[Api]:
    client = Api(create_app(Settings(database_url=database_url)), world.tokens)
    yield client
    client.close()


def _cli(database_url: str, monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    try:
        return CliRunner().invoke(app, list(args))
    finally:
        get_settings.cache_clear()


def _detail(sessions: SessionFactory, answer_id: int) -> dict[str, Any]:
    with unit_of_work(sessions) as s:
        entry = s.get(AuditEntry, answer_id)
        assert entry is not None and entry.action == "lookup.reverse"
        detail: dict[str, Any] = json.loads(json.dumps(entry.detail))
    return detail


def _comparable(detail: dict[str, Any]) -> dict[str, Any]:
    query = {k: v for k, v in detail["query"].items() if k not in ("via", "case")}
    trace = {k: v for k, v in detail["trace"].items() if k != "now"}  # the instant it was asked
    return {**detail, "query": query, "trace": trace}


def test_one_question_through_three_doors_is_one_inquiry(
    site: Site,
    api: Api,
    database_url: str,
    sessions: SessionFactory,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    case = new_case()
    body = {
        "ip": ADDRESS,
        "port": PORT,
        "time": QUESTION["time"],
        "tz": QUESTION["tz"],
        "tolerance_seconds": QUESTION["tolerance"],
        "case": case,
        "legal_basis": "court order 7/26",
    }
    by_api = api("POST", "/v1/lookups/reverse", "legal", body)
    assert by_api.status_code == 200, by_api.text
    assert by_api.json()["status"] == "match"

    page = site.browser("legal").submit(
        "/web/lookup",
        "/web/lookup",
        {
            "ip": ADDRESS,
            "port": str(PORT),
            "time": QUESTION["time"],
            "tz": QUESTION["tz"],
            "tolerance": f"{QUESTION['tolerance']}s",
            "case": case,
            "legal_basis": "court order 7/26",
        },
    )
    assert page.status_code == 200, page.text[:500]
    with unit_of_work(sessions) as s:
        by_web = s.scalars(
            select(AuditEntry.seq).where(
                AuditEntry.request_id == page.headers["x-request-id"],
                AuditEntry.action == "lookup.reverse",
            )
        ).one()

    proof = tmp_path / "cli-evidence.json"
    by_cli = _cli(
        database_url,
        monkeypatch,
        "reverse",
        f"{ADDRESS}:{PORT}",
        "--at",
        QUESTION["time"],
        "--tz",
        QUESTION["tz"],
        "--tolerance",
        f"{QUESTION['tolerance']}s",
        "--case",
        f"CLI-{case}",
        "--legal-basis",
        "court order 7/26",
        "--evidence",
        str(proof),
        "--json",
    )
    assert by_cli.exit_code == 0, by_cli.output
    cli_id = json.loads(by_cli.stdout)["answer_id"]

    details = {
        "api": _detail(sessions, by_api.json()["answer_id"]),
        "web": _detail(sessions, by_web),
        "cli": _detail(sessions, cli_id),
    }
    assert {door: d["query"]["via"] for door, d in details.items()} == {
        "api": "api",
        "web": "web",
        "cli": "cli",
    }
    assert _comparable(details["api"]) == _comparable(details["web"]) == _comparable(details["cli"])

    files = {
        "api": api("GET", f"/v1/answers/{by_api.json()['answer_id']}/evidence", "legal").json(),
        "web": site.browser("legal").get(f"/web/answers/{by_web}/evidence").json(),
        "cli": json.loads(proof.read_text()),
    }
    for door, document in files.items():
        problems, _ = evidence.verify(document)
        assert problems == [], (door, problems)
