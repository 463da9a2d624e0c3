"""The lookup path's URL, read without SQLAlchemy: libpq must see the connection SQLAlchemy's
own parse of ``DETNAT_DATABASE_URL`` gave it before (user, password, host, port, database and
parameters), and anything but a Postgres URL is refused without echoing it."""

from __future__ import annotations

import pytest
from psycopg.conninfo import conninfo_to_dict
from sqlalchemy.engine import make_url

from detnat.errors import InvalidInput
from detnat.store.db import normalise_url
from detnat.store.lean import libpq_url

URLS = [
    "postgresql+psycopg://postgres@127.0.0.1:5432/detnat",
    "postgresql://postgres@127.0.0.1/detnat",
    "postgres://u:p@db.example:6543/d",
    "postgresql+psycopg://u:p%40ss%2Fw%3Ard@db.example/d",  # '@', '/', ':' escaped
    "postgresql+psycopg://u@[::1]:5433/d",
    "postgresql+psycopg://postgres@/postgres?host=/var/run/postgresql",  # a Unix socket
    "postgresql+psycopg://u@h/d?sslmode=require&application_name=detnat",
    "postgresql+psycopg:///d?host=/var/run/postgresql&port=5433&user=u",
]


def _as_sqlalchemy_gave_it(url: str) -> str:
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(False)


@pytest.mark.parametrize("url", URLS)
def test_libpq_sees_what_sqlalchemy_gave_it(url: str) -> None:
    assert conninfo_to_dict(libpq_url(url)) == conninfo_to_dict(_as_sqlalchemy_gave_it(url))


@pytest.mark.parametrize(
    "url", ["mysql://root:secret@h/d", "sqlite:///x.db", "127.0.0.1:5432", "", "postgresql:/x"]
)
def test_anything_else_is_refused_without_the_url(url: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        libpq_url(url)
    assert refused.value.field == "DETNAT_DATABASE_URL"
    assert "secret" not in str(refused.value)


def test_escapes_are_libpqs_to_decode() -> None:
    """SQLAlchemy re-rendered ``%20`` in a parameter as ``+``, which libpq reads as a plus: a
    socket directory with a space was another directory. The URL now goes to libpq as given."""
    url = "postgresql+psycopg://postgres@/postgres?host=/tmp/pg%20sock"
    assert conninfo_to_dict(libpq_url(url))["host"] == "/tmp/pg sock"
