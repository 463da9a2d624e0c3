"""``detnat plan history``: which versions still await a second admin's approval (issue 11).

Through Typer's runner against the test database: a four-eyes realm, a version published by one
admin (awaiting approval), approved by another (no longer awaiting); a lab realm needs no second
admin, so nothing of it awaits.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from cli.main import app
from detnat.settings import get_settings
from tests.store.conftest import fresh_pool

pytestmark = pytest.mark.postgres

Detnat = Callable[..., Result]  # runs `detnat ARGS...`, asserting exit code 0
LATER = "2099-01-01T00:00:00Z"  # scheduled: a version in the future needs no --correction


@pytest.fixture
def detnat(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Detnat]:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()

    def run(*args: str) -> Result:
        result = CliRunner().invoke(app, list(args))
        assert result.exit_code == 0, (args, result.output)
        return result

    yield run
    get_settings.cache_clear()


def _plan(tmp_path: Path) -> str:
    path = tmp_path / f"plan-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(
        "algorithm: block\ninside: {prefixes: ['10.0.0.0/18'], subscriber_prefix_length: 32}\n"
        f"outside: {{prefixes: ['{fresh_pool()}']}}\nblock: {{ratio: 4096}}\n"
    )
    return str(path)


def _history(detnat: Detnat, realm: str) -> tuple[list[str], list[dict[str, object]]]:
    text = detnat("plan", "history", realm).stdout.splitlines()
    shown = detnat("plan", "history", realm, "--json").stdout.splitlines()
    return text, [json.loads(line) for line in shown]


def test_history_shows_the_versions_pending_approval_until_a_second_admin_approves(
    detnat: Detnat, realm_name: str, tmp_path: Path
) -> None:
    detnat("realm", "create", realm_name)
    detnat("--as", "alice", "plan", "publish", realm_name, _plan(tmp_path),
        "--effective-from", LATER, "--reason", "CHG-1")  # fmt: skip

    text, shown = _history(detnat, realm_name)
    assert len(text) == 1 and "pending-approval" in text[0], text
    assert shown[0]["pending_approval"] is True and shown[0]["approved"] is False

    detnat("--as", "bob", "plan", "approve", realm_name, "1")
    text, shown = _history(detnat, realm_name)
    assert "pending-approval" not in text[0], text
    assert shown[0]["pending_approval"] is False and shown[0]["approved_by"] == "bob"


def test_a_single_approver_realm_has_nothing_pending_approval(
    detnat: Detnat, realm_name: str, tmp_path: Path
) -> None:
    detnat("realm", "create", realm_name, "--single-approver")
    detnat("--as", "alice", "plan", "publish", realm_name, _plan(tmp_path),
        "--effective-from", LATER, "--reason", "CHG-2")  # fmt: skip

    text, shown = _history(detnat, realm_name)
    assert "pending-approval" not in text[0], text
    assert shown[0]["pending_approval"] is False
