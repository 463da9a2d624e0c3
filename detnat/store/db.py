"""Engines and sessions. Only the edge (a CLI command, an API request) commits.

Driver errors leave :func:`unit_of_work` as domain errors (:func:`detnat.store.repo.domain_error`),
and a URL that is not a Postgres URL is refused by :func:`make_engine` as invalid input.

Pooled connections that the server closed while they sat idle (a restart, ``pg_terminate_backend``,
a crash) are replaced when they are checked out (:func:`closed_by_server`), so a restart of the
database costs no request an error.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, DBAPIError, DisconnectionError
from sqlalchemy.orm import Session, sessionmaker

from detnat.errors import InvalidInput
from detnat.store.lean import NO_JIT, closed_by_server
from detnat.store.repo import domain_error

SessionFactory = sessionmaker[Session]


def normalise_url(url: str) -> str:
    """``postgresql://`` and ``postgres://`` mean psycopg 3 here."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def make_engine(url: str, *, pool_size: int = 5, pre_ping: bool = True) -> Engine:
    """``pre_ping=False`` saves a round trip per checkout (the API: a connection found dead fails
    that one request with 503 and is replaced)."""
    try:
        parsed = make_url(normalise_url(url))
    except ArgumentError:
        parsed = None
    if parsed is None or parsed.get_backend_name() != "postgresql":
        # Never echo the URL: it may hold a password.
        raise InvalidInput(
            "not a Postgres URL (postgresql+psycopg://user@host/database)",
            field="DETNAT_DATABASE_URL",
        )
    try:
        engine = create_engine(
            parsed,
            pool_size=pool_size,
            pool_pre_ping=pre_ping,
            max_overflow=10,
            connect_args={"connect_timeout": 5},
            use_native_hstore=False,  # no hstore here: a new connection skips looking it up
        )
    except ArgumentError as exc:  # e.g. an unknown driver after the +
        raise InvalidInput(
            f"not a usable Postgres URL: {exc}", field="DETNAT_DATABASE_URL"
        ) from None
    event.listen(engine, "checkout", _refuse_closed)
    event.listen(engine, "connect", _without_jit)
    return engine


def _without_jit(dbapi_connection: Any, record: Any) -> None:
    """``jit = off`` for the connection's life (:data:`detnat.store.lean.NO_JIT`)."""
    with dbapi_connection.cursor() as cur:
        cur.execute(NO_JIT)
    dbapi_connection.commit()


def _refuse_closed(dbapi_connection: Any, record: Any, proxy: Any) -> None:
    # The pool takes DisconnectionError as "this one is dead": it reconnects and checks out anew.
    if closed_by_server(dbapi_connection):
        raise DisconnectionError("the server closed this connection while it was idle")


def make_sessions(engine: Engine) -> SessionFactory:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(sessions: SessionFactory) -> Iterator[Session]:
    """One transaction: committed if the block succeeds, rolled back otherwise.

    A driver error leaves as the domain error it means (one line for the CLI, never the SQL).
    """
    with sessions() as session:
        try:
            yield session
            session.commit()
        except DBAPIError as exc:
            _rollback(session)
            error = domain_error(exc)
            if error is None:
                raise
            raise error from exc
        except BaseException:
            _rollback(session)
            raise


def _rollback(session: Session) -> None:
    # A connection that is gone has nothing to roll back; the pool discards it.
    with suppress(DBAPIError):
        session.rollback()
