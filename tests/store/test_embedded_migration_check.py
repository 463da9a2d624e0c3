"""The embedded store's start-up check: one query tells a store at the newest migration, so a CLI
invocation loads Alembic only to upgrade (``detnat.store.embedded._migrate_once``)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from alembic.script import ScriptDirectory

from detnat.store import embedded, migrate
from detnat.store.db import make_engine
from tests.postgres import url_of
from tests.store.conftest import _admin_conninfo

pytestmark = pytest.mark.postgres


@pytest.fixture
def empty_database() -> Iterator[str]:
    name = f"detnat_head_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url_of(name)
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_the_newest_migration_read_from_the_scripts_is_alembics_head() -> None:
    assert embedded.newest_migration() == migrate.head_revision()


def test_only_a_store_at_the_newest_migration_is_at_it(empty_database: str) -> None:
    assert not embedded.at_newest_migration(empty_database)  # no alembic_version table
    scripts = ScriptDirectory.from_config(migrate.alembic_config("postgresql://"))
    head = scripts.get_revision(migrate.head_revision())
    assert head is not None and isinstance(head.down_revision, str)
    migrate.upgrade(empty_database, head.down_revision)  # one behind
    assert not embedded.at_newest_migration(empty_database)
    migrate.upgrade(empty_database)
    assert embedded.at_newest_migration(empty_database)


def test_first_use_upgrades_a_store_behind_and_leaves_one_at_head_alone(
    empty_database: str,
) -> None:
    migrate.upgrade(empty_database, "0001")
    embedded._migrate_once(empty_database)
    engine = make_engine(empty_database)
    try:
        assert migrate.is_current(engine)
    finally:
        engine.dispose()
    embedded._migrated.discard(empty_database)
    embedded._migrate_once(empty_database)  # at head: nothing to do, and nothing fails
    assert embedded.at_newest_migration(empty_database)
