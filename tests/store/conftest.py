"""A throwaway Postgres database per test session, built by the Alembic migrations.

The server is the session's (``tests/postgres.py``): DETNAT_TEST_DATABASE_URL, else the local server
at 127.0.0.1:5432, else an embedded Postgres started for the session. A configured server that
is unreachable is a failure, not a skip.
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
from fastapi import FastAPI
from sqlalchemy import Engine

from detnat.engine import Plan
from detnat.planfile import plan_from_data
from detnat.service.audit import Actor
from detnat.settings import Settings
from detnat.store import migrate
from detnat.store.db import SessionFactory, make_engine, make_sessions
from tests import postgres

T0 = datetime(2026, 3, 14, 20, 0, 0, tzinfo=UTC)


def _admin_conninfo() -> str:
    """libpq's URL of the test server's maintenance database, to create and drop databases."""
    try:
        return postgres.admin_conninfo()
    except postgres.ServerUnavailable as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@contextmanager
def throwaway_database() -> Iterator[str]:
    """A new database on the test server, migrated to head; dropped afterwards."""
    name = f"detnat_test_{uuid.uuid4().hex[:12]}"
    try:
        admin = psycopg.connect(_admin_conninfo(), autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        pytest.fail(f"Postgres is unreachable ({postgres.describe()}): {exc}", pytrace=False)
    with admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    text = postgres.url_of(name)
    try:
        migrate.upgrade(text)
        yield text
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="session")
def engine(database_url: str) -> Iterator[Engine]:
    eng = make_engine(database_url, pool_size=10)
    yield eng
    eng.dispose()


@pytest.fixture(scope="session")
def sessions(engine: Engine) -> SessionFactory:
    return make_sessions(engine)


_pools = itertools.count(1)
_names = itertools.count(1)


@pytest.fixture
def realm_name() -> str:
    return f"realm-{next(_names)}-{uuid.uuid4().hex[:6]}"


def fresh_pool() -> str:
    """A /30 of public space no other test uses (198.18.0.0/15 is for benchmarking)."""
    n = next(_pools)
    return f"198.{18 + (n >> 14)}.{(n >> 6) & 255}.{(n & 63) << 2}/30"


def small_plan(pool: str, *, ratio: int = 4096, inside: str = "10.0.0.0/18") -> Plan:
    """4 addresses x 4096 subscribers of 15 ports (1024-65535 / 4096 = 15)."""
    return plan_from_data(
        {
            "algorithm": "block",
            "inside": {"prefixes": [inside], "subscriber_prefix_length": 32},
            "outside": {"prefixes": [pool]},
            "block": {"ratio": ratio},
        }
    )


def clock_at(moment: datetime):  # type: ignore[no-untyped-def]
    return lambda: moment


def before(moment: datetime) -> datetime:
    return moment - timedelta(days=1)


TOKEN_HOLDERS = (
    ("abuse", "abuse"),
    ("abuse2", "abuse"),
    ("legal", "legal"),
    ("planner", "planner"),
    ("admin", "admin"),
    ("admin2", "admin"),
    ("auditor", "auditor"),
)


@pytest.fixture(scope="session")
def api_tokens(sessions: SessionFactory) -> dict[str, str]:
    """A token per holder (two abuse desks, two admins for four eyes), made in the test store."""
    return make_tokens(sessions)


def make_tokens(sessions: SessionFactory) -> dict[str, str]:
    from detnat.service.tokens import create_token
    from detnat.store.db import unit_of_work

    out: dict[str, str] = {}
    with unit_of_work(sessions) as s:
        for holder, role in TOKEN_HOLDERS:
            secret, _ = create_token(
                s, name=f"test-{holder}", role=role, by=Actor("tests", "admin")
            )
            out[holder] = secret
    return out


class Api:
    """One app with its lifespan running, and a client per token holder."""

    def __init__(self, app: FastAPI, api_tokens: dict[str, str]) -> None:
        self.app, self.api_tokens = app, api_tokens
        self.loop = asyncio.new_event_loop()
        self._lifespan = app.router.lifespan_context(app)
        self.loop.run_until_complete(self._lifespan.__aenter__())
        self.client = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t")

    def __call__(
        self, method: str, url: str, who: str | None, body: Any = None, **kw: Any
    ) -> httpx.Response:
        headers = dict(kw.pop("headers", {}))
        if who is not None:
            headers["authorization"] = f"Bearer {self.api_tokens.get(who, who)}"
        if body is not None:
            kw["json"] = body
        return self.loop.run_until_complete(self.client.request(method, url, headers=headers, **kw))

    def close(self) -> None:
        self.loop.run_until_complete(self.client.aclose())
        self.loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture
def api(database_url: str, api_tokens: dict[str, str]) -> Iterator[Api]:
    from api.app import create_app

    client = Api(create_app(Settings(database_url=database_url)), api_tokens)
    yield client
    client.close()
