"""Engines and sessions. Only the edge (a CLI command, an API request) commits."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, create_engine
from sqlalchemy.orm import Session, sessionmaker

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
    return create_engine(
        normalise_url(url),
        pool_size=pool_size,
        pool_pre_ping=pre_ping,
        max_overflow=10,
        connect_args={"connect_timeout": 5},
    )


def make_sessions(engine: Engine) -> SessionFactory:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def unit_of_work(sessions: SessionFactory) -> Iterator[Session]:
    """One transaction: committed if the block succeeds, rolled back otherwise."""
    with sessions() as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise
