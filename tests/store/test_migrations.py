"""The migrations build the schema, undo it, rebuild it, and match the models."""

from __future__ import annotations

import uuid

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.engine import make_url

from detnat.store import migrate
from detnat.store.db import make_engine, normalise_url
from detnat.store.models import Base
from tests.store.conftest import SERVER_URL, _admin_conninfo

pytestmark = pytest.mark.postgres


def test_upgrade_downgrade_upgrade_on_a_fresh_database() -> None:
    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = make_url(normalise_url(SERVER_URL)).set(database=name).render_as_string(False)
    try:
        migrate.upgrade(url)
        migrate.downgrade(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(
                "select count(*) from pg_tables where schemaname='public' "
                "and tablename <> 'alembic_version'"
            ).scalar()
            assert tables == 0
        migrate.upgrade(url)
        assert migrate.is_current(engine)
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_models_match_the_migrated_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []
