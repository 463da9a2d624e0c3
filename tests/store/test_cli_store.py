"""The store's CLI commands through Typer's runner, against the test database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from detnat.settings import get_settings
from tests.store.conftest import fresh_pool

pytestmark = pytest.mark.postgres


def test_realm_publish_history_and_lookups(
    database_url: str, realm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    pool = fresh_pool()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "algorithm: block\ninside: {prefixes: ['10.0.0.0/18'], subscriber_prefix_length: 32}\n"
        f"outside: {{prefixes: ['{pool}']}}\nblock: {{ratio: 4096}}\n"
    )
    run = CliRunner().invoke
    try:
        assert run(app, ["realm", "create", realm_name, "--session-drain", "1s"]).exit_code == 0
        past = run(
            app,
            [
                "plan",
                "publish",
                realm_name,
                str(plan),
                "--effective-from",
                "2020-01-01T00:00:00Z",
                "--reason",
                "CHG-1",
            ],
        )
        assert past.exit_code == 2
        ok = run(
            app,
            [
                "plan",
                "publish",
                realm_name,
                str(plan),
                "--effective-from",
                "2020-01-01T00:00:00Z",
                "--reason",
                "CHG-1",
                "--correction",
                "--json",
            ],
        )
        assert ok.exit_code == 0, ok.output
        again = run(app, ["realm", "create", realm_name])
        assert again.exit_code == 4
        answer = run(
            app,
            [
                "reverse",
                f"{pool.split('/')[0]}:1100",
                "--at",
                "2020-06-01T00:00:00+02:00",
                "--realm",
                realm_name,
                "--json",
            ],
        )
        assert answer.exit_code == 0, answer.output
        line = json.loads(answer.stdout)
        assert line["status"] == "match" and line["subscriber"] == "10.0.0.5/32"
        assert line["window"] and line["candidates"][0]["version"] == 1
        history = run(app, ["plan", "history", realm_name, "--json"])
        assert json.loads(history.stdout)["correction"] is True
        missing = run(app, ["realm", "show", "no-such-realm"])
        assert missing.exit_code == 3
    finally:
        get_settings.cache_clear()
