"""The web pages' tests: a throwaway Postgres database built by the migrations, a small world in
it (tokens for every role, a realm whose plan changed with a session drain, a realm with a version
awaiting approval), an in-process client per holder, and a real server for the browser tests.

Postgres: the session's test server (``tests/postgres.py``: DETNAT_TEST_DATABASE_URL, the local
server at 127.0.0.1:5432, else an embedded one); a configured server that is unreachable is a
failure, not a skip.
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

from api import policy
from detnat.planfile import plan_from_data
from detnat.service import plans, tokens
from detnat.service.audit import Actor
from detnat.settings import Settings
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.store.conftest import TOKEN_HOLDERS, throwaway_database
from tests.web.support import web_app

REPO = Path(__file__).resolve().parents[2]

# The world: realm "fra" changed plans at CHANGE with a 2 h drain, so 12:30 is ambiguous.
V1_FROM = datetime(2020, 1, 1, 0, 0, tzinfo=UTC)
CHANGE = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)
FRA_POOL, LAB_POOL = "198.18.0.0/30", "198.18.0.4/30"
ADDRESS, PORT = "198.18.0.1", 1100  # subscriber 4101: 10.0.16.5 under v1, 10.1.16.5 under v2
HOLDERS = TOKEN_HOLDERS


def _block_plan(inside: str, pool: str) -> dict[str, Any]:
    """16384 subscribers on 4 addresses, 15 ports each (VPP det44's ratio 4096)."""
    return {
        "algorithm": "block",
        "inside": {"prefixes": [inside], "subscriber_prefix_length": 32},
        "outside": {"prefixes": [pool]},
        "block": {"ratio": 4096},
    }


@pytest.fixture(scope="session")
def database_url() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


@pytest.fixture(scope="session")
def sessions(database_url: str) -> Iterator[SessionFactory]:
    engine = make_engine(database_url, pool_size=4)
    yield make_sessions(engine)
    engine.dispose()


@dataclass(frozen=True)
class World:
    tokens: dict[str, str]  # holder -> the token itself
    token_ids: dict[str, int]


@pytest.fixture(scope="session")
def world(sessions: SessionFactory) -> World:
    secrets: dict[str, str] = {}
    ids: dict[str, int] = {}
    with unit_of_work(sessions) as s:
        for holder, role in HOLDERS:
            secret, row = tokens.create_token(s, name=holder, role=role, by=Actor("tests", "admin"))
            secrets[holder], ids[holder] = secret, row.id
        plans.create_realm(
            s,
            "fra",
            by=Actor("tester", "admin"),
            session_drain=timedelta(hours=2),
            single_approver=True,
        )
        for inside, moment, reason in (
            ("10.0.0.0/18", V1_FROM, "CHG-1"),
            ("10.1.0.0/18", CHANGE, "CHG-2 renumber the inside"),
        ):
            plans.publish(
                s,
                "fra",
                plan_from_data(_block_plan(inside, FRA_POOL)),
                effective_from=moment,
                reason=reason,
                by=Actor("admin", "admin"),
                correction=True,
            )
        plans.create_realm(
            s,
            "lab",
            by=Actor("tester", "admin"),
            session_drain=timedelta(0),
            description="four eyes",
        )
        plans.publish(
            s,
            "lab",
            plan_from_data(_block_plan("10.2.0.0/18", LAB_POOL)),
            effective_from=V1_FROM,
            reason="CHG-3 new lab",
            by=Actor("admin", "admin"),
            correction=True,
        )
    return World(secrets, ids)


@pytest.fixture(scope="session")
def settings(database_url: str, tmp_path_factory: pytest.TempPathFactory) -> Settings:
    return Settings(
        database_url=database_url,
        data_dir=tmp_path_factory.mktemp("web-data"),
        migrate_on_start=False,
        rate_limit_per_second=10_000,
        rate_limit_burst=10_000,
    )


@pytest.fixture(scope="session", autouse=True)
def _api_policy_lets_pages_through() -> None:
    """The API's guard must hand /web to the pages' own checks (``api/policy.py``)."""
    from api.web import router

    closed = [r.path for r in router.routes if policy.access_of(r) != policy.WEB_PAGE]
    if closed:
        pytest.fail(
            f"the API's guard refuses the web pages {closed}: serve them with WebRoute "
            "(api/web/routing.py), whose access is public to the guard",
            pytrace=False,
        )


CSRF = re.compile(r'name="csrf" value="([^"]*)"')


class Browser:
    """An in-process client with a cookie jar: one person at one browser."""

    def __init__(self, app: FastAPI, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.client = httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app), base_url="https://testserver"
        )

    def get(self, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.get(url, **kw))

    def post(self, url: str, **kw: Any) -> httpx.Response:
        return self.loop.run_until_complete(self.client.post(url, **kw))

    def csrf(self, url: str) -> str:
        page = self.get(url)
        assert page.status_code == 200, (url, page.status_code, page.text[:500])
        found = CSRF.search(page.text)
        assert found is not None and found[1], f"no CSRF token on {url}"
        return found[1]

    def sign_in(self, token: str) -> httpx.Response:
        csrf = self.csrf("/web/sign-in")
        return self.post("/web/sign-in", data={"csrf": csrf, "token": token, "next": "/web/"})

    def submit(self, form_url: str, action: str, data: dict[str, str], **kw: Any) -> httpx.Response:
        """Open the form page, then post it with its CSRF token, as a browser would."""
        return self.post(action, data={"csrf": self.csrf(form_url), **data}, **kw)


class Site:
    """The app with its lifespan running; ``browser(holder)`` is someone signed in."""

    def __init__(self, app: FastAPI, world: World) -> None:
        self.app, self.world = app, world
        self.loop = asyncio.new_event_loop()
        self._lifespan = app.router.lifespan_context(app)
        self.loop.run_until_complete(self._lifespan.__aenter__())
        self._browsers: list[Browser] = []

    def anonymous(self) -> Browser:
        browser = Browser(self.app, self.loop)
        self._browsers.append(browser)
        return browser

    def browser(self, holder: str) -> Browser:
        browser = self.anonymous()
        signed = browser.sign_in(self.world.tokens[holder])
        assert signed.status_code == 303, signed.text[:500]
        return browser

    def close(self) -> None:
        for browser in self._browsers:
            self.loop.run_until_complete(browser.client.aclose())
        self.loop.run_until_complete(self._lifespan.__aexit__(None, None, None))
        self.loop.close()


@pytest.fixture(scope="module")
def site(settings: Settings, world: World) -> Iterator[Site]:
    running = Site(web_app(settings), world)
    yield running
    running.close()


def new_case() -> str:
    return f"WEB-{uuid.uuid4().hex[:10]}"
