"""Holes a read-only attacker's review found in the paths that run on psycopg alone (the API's
lean lookup path, the CLI's single lookups): each test failed on the code before its fix.

1. A revoked token opened (squatted) a case: the case claim was committed in its own statement
   before the revision-checked audit entry refused the lookup as stale.
2. A store that could not be reached answered any bearer, valid or not, with libpq's own text
   (server, port, user, database).
3. ``DETNAT_DATABASE_URL`` was handed to libpq as written: a password with ``%`` worked for the
   sessions (SQLAlchemy reads it) and failed every lookup with its text in the answer; one with
   ``/`` sent the lookups to another host than the sessions.
"""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy import select
from sqlalchemy.engine import make_url

from api.app import create_app
from detnat.errors import InvalidInput
from detnat.service import integrity, tokens
from detnat.service.audit import Actor
from detnat.settings import Settings
from detnat.store.db import normalise_url, unit_of_work
from detnat.store.lean import libpq_url
from detnat.store.models import AuditEntry, Case
from tests.store.conftest import Api, SessionFactory
from tests.store.test_trust_api import _realm_with_plan, _reverse


def test_a_revoked_token_opens_no_case(api: Api, realm_name: str, sessions: SessionFactory) -> None:
    ip = _realm_with_plan(api, realm_name)
    with unit_of_work(sessions) as s:
        secret, row = tokens.create_token(
            s, name=f"{realm_name}-d", role="abuse", by=Actor("t", "admin")
        )
        token_id = row.id
    api.api_tokens["desk"] = secret
    assert _reverse(api, "desk", ip, f"{realm_name}-warm").status_code == 200
    with unit_of_work(sessions) as s:  # the worker has not seen this revision yet
        tokens.revoke_token(s, token_id, by=Actor("t", "admin"))

    refused = _reverse(api, "desk", ip, f"{realm_name}-squat")

    assert refused.status_code == 401
    with sessions() as s:
        assert s.get(Case, f"{realm_name}-squat") is None
        opened = s.scalars(
            select(AuditEntry).where(
                AuditEntry.action == "case.open", AuditEntry.case_ref == f"{realm_name}-squat"
            )
        ).all()
        assert opened == []
    # another desk may still open that reference
    assert _reverse(api, "abuse2", ip, f"{realm_name}-squat").status_code == 200
    with sessions() as s:
        assert integrity.verify(s)[1]["ok"]


def test_an_unreachable_store_tells_callers_nothing_about_it() -> None:
    url = "postgresql+psycopg://detnat_nobody@127.0.0.1:5432/detnat_no_such_database"
    api = Api(create_app(Settings(database_url=url)), {})
    try:
        for who in ("dnt_" + "A" * 43, "whatever"):
            answer = _reverse(api, who, "192.0.2.1", "X-1")
            assert answer.status_code == 503, answer.text
            text = answer.text
            for secret in ("127.0.0.1", "5432", "detnat_nobody", "no_such_database", "FATAL"):
                assert secret not in text, text
    finally:
        api.close()


# -- the URL libpq is given ------------------------------------------------------------------------


def _as_sessions_connect(url: str) -> dict[str, str]:
    """What the sessions' engine hands psycopg: SQLAlchemy's parse and its dialect's arguments."""
    parsed = make_url(normalise_url(url))
    _, kwargs = parsed.get_dialect()().create_connect_args(parsed)
    return {k: str(v) for k, v in kwargs.items() if v is not None}


def _as_lookups_connect(url: str) -> dict[str, str]:
    return {k: v for k, v in conninfo_to_dict(libpq_url(url)).items() if v is not None}


TRICKY = [
    "postgresql+psycopg://u:S3cr%t pw@db.example/d",  # '%' and ' ' unescaped
    "postgresql+psycopg://u:p/ss@db.example/d",  # '/' in the password
    "postgresql+psycopg://u:p#ss@db.example/d",
    "postgresql+psycopg://u:p?ss@db.example/d",
    "postgresql+psycopg://u:p+ss@db.example/d",
    "postgresql+psycopg://u:p%zz@db.example/d",
    "postgresql+psycopg://u:p%40ss%2Fw%3Ard@db.example/d",
    'postgresql+psycopg://u:it\'s \\ "q"@db.example:6543/d',
    "postgresql+psycopg://u@db.example/d?options=-c%20search_path%3Dx",
    "postgresql+psycopg://postgres@/postgres?host=/tmp/pg%20sock",
    "postgresql+psycopg://postgres@/postgres?host=/tmp/pg+sock",
    "postgresql+psycopg://u@[::1]:5433/d",
    "postgresql+psycopg:///d?host=/var/run/postgresql&port=5433&user=u",
    "postgres://u:p@db.example:6543/d",
    "postgresql+psycopg://u@h/d?sslmode=require&application_name=detnat",
]


@pytest.mark.parametrize("url", TRICKY)
def test_lookups_connect_where_the_sessions_connect(url: str) -> None:
    assert _as_lookups_connect(url) == _as_sessions_connect(url)


_PART = st.text(st.characters(codec="utf-8", exclude_characters="\x00"), max_size=12)


@settings(max_examples=300, deadline=None)
@given(user=_PART, password=_PART, host=st.sampled_from(["db.example", "10.0.0.1", ""]), db=_PART)
@example(user="u", password="p/ss", host="db.example", db="d")
def test_any_url_the_sessions_read_the_lookups_read_alike(
    user: str, password: str, host: str, db: str
) -> None:
    url = f"postgresql+psycopg://{user}:{password}@{host}/{db}"
    try:
        expected = _as_sessions_connect(url)
    except Exception:  # SQLAlchemy refuses it: so must the lookups, quietly
        with pytest.raises(InvalidInput) as refused:
            libpq_url(url)
        assert password not in str(refused.value) or not password
        return
    assert _as_lookups_connect(url) == expected


def test_a_503_of_detnat_s_own_keeps_its_words() -> None:
    """Only what the driver said is kept from callers: detnat's own reasons (here: no lifespan,
    so no store) are said as they are."""
    import asyncio

    import httpx

    app = create_app(Settings(database_url="postgresql+psycopg://u@127.0.0.1:1/d"))

    async def ask() -> httpx.Response:
        transport = httpx.ASGITransport(app=app)  # no lifespan: the store never started
        async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
            return await client.get("/v1/realms", headers={"authorization": "Bearer x"})

    answer = asyncio.run(ask())
    assert answer.status_code == 503
    assert "lifespan has not started" in answer.json()["detail"]
