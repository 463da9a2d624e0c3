"""``--realm R``: the datapath enforces the version of R that lookups use now (the store)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from cli.commands import datapath
from detnat.planfile import plan_from_text
from detnat.service import plans
from detnat.service.audit import Actor
from detnat.settings import get_settings
from detnat.store.db import make_engine, make_sessions, unit_of_work
from tests.datapath.plans import SPLIT_BLOCKS, VPP
from tests.store.conftest import throwaway_database

runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """detnat (test harness)."""

    app.add_typer(datapath.app, name="datapath")
    return app


@pytest.fixture
def settings_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def test_an_unreachable_store_is_unavailable_exit_five(settings_env: pytest.MonkeyPatch) -> None:
    settings_env.setenv("DETNAT_DATABASE_URL", "postgresql+psycopg://nobody@127.0.0.1:1/none")
    result = runner.invoke(
        _app(), ["datapath", "verify", "--backend", "recording", "--realm", "cgn-1"]
    )
    assert result.exit_code == 5, result.output
    assert "the database is unreachable" in result.stderr


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.mark.postgres
def test_realm_apply_uses_the_version_in_force_now_not_a_scheduled_one(
    database_url: str, settings_env: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    now = datetime.now(UTC)
    engine = make_engine(database_url, pool_size=1)
    try:
        with unit_of_work(make_sessions(engine)) as session:
            plans.create_realm(
                session,
                "cgn-dp",
                by=Actor("tester", "admin"),
                session_drain=timedelta(0),
                single_approver=True,
            )
            plans.publish(
                session,
                "cgn-dp",
                plan_from_text(SPLIT_BLOCKS),
                effective_from=now - timedelta(hours=1),
                reason="CHG-1",
                by=Actor("netops", "admin"),
                clock=lambda: now - timedelta(days=1),
            )
            plans.publish(
                session,
                "cgn-dp",
                plan_from_text(VPP),
                effective_from=now + timedelta(days=1),
                reason="CHG-2",
                by=Actor("netops", "admin"),
                clock=lambda: now,
            )
    finally:
        engine.dispose()
    settings_env.setenv("DETNAT_DATABASE_URL", database_url)
    state = tmp_path / "state.json"
    args = ["--backend", "recording", "--realm", "cgn-dp", "--option", f"state={state}"]

    applied = runner.invoke(_app(), ["datapath", "apply", *args])

    assert applied.exit_code == 0, applied.output
    assert "realm cgn-dp version 1" in applied.stderr
    assert "14 subscribers checked, 0 differ" in applied.stdout  # the split plan, not VPP's
    missing = runner.invoke(
        _app(), ["datapath", "verify", "--backend", "recording", "--realm", "nope"]
    )
    assert missing.exit_code == 3
