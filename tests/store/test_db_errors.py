"""Database errors reach people as one line and the right exit code, never SQL or parameters.

The store translates driver errors once (``repo.domain_error``); the CLI and the API render what
it gives (issue 10).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import timedelta

import psycopg
import pytest
from typer.testing import CliRunner, Result

from cli.main import app
from detnat.errors import Conflict
from detnat.service import audit, plans
from detnat.settings import get_settings
from detnat.store.async_db import libpq_url
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import Realm
from tests.postgres import url_of
from tests.store.conftest import _admin_conninfo

pytestmark = pytest.mark.postgres


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> Iterator[pytest.MonkeyPatch]:
    get_settings.cache_clear()
    yield monkeypatch
    monkeypatch.undo()
    get_settings.cache_clear()


def detnat(env: pytest.MonkeyPatch, url: str, *args: str) -> Result:
    env.setenv("DETNAT_DATABASE_URL", url)
    get_settings.cache_clear()
    return CliRunner().invoke(app, list(args))


def assert_one_clear_line(result: Result) -> str:
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("detnat: error: "), lines[0]
    for leak in ("SQL", "parameters", "SELECT", "sqlalche.me", "secret"):
        assert leak not in lines[0], lines[0]
    return lines[0]


def test_a_value_the_column_cannot_hold_is_invalid_input_exit_2(
    database_url: str, env: pytest.MonkeyPatch, realm_name: str
) -> None:
    assert detnat(env, database_url, "realm", "create", realm_name).exit_code == 0
    result = detnat(env, database_url, "plan", "show", realm_name, "3000000000")
    assert result.exit_code == 2, result.output
    assert "out of range" in assert_one_clear_line(result)


def test_an_unmigrated_database_is_unavailable_exit_5_and_says_to_upgrade(
    env: pytest.MonkeyPatch,
) -> None:
    name = f"detnat_bare_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        url = url_of(name)
        result = detnat(env, url, "realm", "list")
        assert result.exit_code == 5, result.output
        assert "detnat db upgrade" in assert_one_clear_line(result)
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_an_unreachable_database_is_unavailable_exit_5(env: pytest.MonkeyPatch) -> None:
    result = detnat(env, "postgresql://nobody:secret@127.0.0.1:1/none", "realm", "list")
    assert result.exit_code == 5, result.output
    assert "the database is unreachable" in assert_one_clear_line(result)


@pytest.mark.parametrize(
    "url", ["not a url", "mysql://u:secret@host/db", "postgresql+nodriver://u:secret@host/db"]
)
def test_a_wrong_database_url_is_invalid_input_exit_2(env: pytest.MonkeyPatch, url: str) -> None:
    result = detnat(env, url, "realm", "list")
    assert result.exit_code == 2, result.output
    assert "DETNAT_DATABASE_URL" in assert_one_clear_line(result)


def test_a_constraint_violation_leaves_the_unit_of_work_as_a_conflict(
    sessions: SessionFactory, realm_name: str
) -> None:
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm_name, by=audit.Actor("t", "admin"), session_drain=timedelta(0))
    # Around the service's friendly pre-check: the unique index answers, translated.
    with (
        pytest.raises(Conflict, match="a realm with this name already exists"),
        unit_of_work(sessions) as s,
    ):
        s.add(Realm(name=realm_name, session_drain=timedelta(0)))


def test_the_store_translates_psycopg_errors_too(database_url: str, realm_name: str) -> None:
    # The API's lookup path runs on psycopg's own connections: the same translation.
    with (
        psycopg.connect(libpq_url(database_url)) as conn,
        pytest.raises(psycopg.IntegrityError) as raised,
    ):
        conn.execute(
            "INSERT INTO realms (name, session_drain) VALUES (%s, '0'), (%s, '0')",
            (realm_name, realm_name),
        )
    from detnat.store.repo import domain_error

    error = domain_error(raised.value)
    assert isinstance(error, Conflict)
    assert str(error) == "a realm with this name already exists"
