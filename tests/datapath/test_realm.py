"""``--realm R``: the datapath enforces the version of R that lookups use now (the store)."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import pytest
import typer
from sqlalchemy.engine import make_url
from typer.testing import CliRunner

from cli.datapath import register
from detnat.planfile import plan_from_text
from detnat.service import plans
from detnat.service.audit import Actor
from detnat.settings import get_settings
from detnat.store import migrate
from detnat.store.db import make_engine, make_sessions, normalise_url, unit_of_work
from tests.datapath.plans import SPLIT_BLOCKS, VPP

SERVER_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
runner = CliRunner()


def _app() -> typer.Typer:
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """detnat (test harness)."""

    register(app)
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
    server = os.environ.get("DETNAT_TEST_DATABASE_URL", SERVER_URL)
    admin_url = make_url(normalise_url(server)).set(drivername="postgresql")
    admin_info = admin_url.render_as_string(hide_password=False)
    name = f"detnat_dp_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(admin_info, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"Postgres is unreachable at {server}: {exc}", pytrace=False)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_url(server)).set(database=name).render_as_string(hide_password=False)
    try:
        migrate.upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin_info, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


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
