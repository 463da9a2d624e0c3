"""A small pool of psycopg ``AsyncConnection``s (autocommit) for the lookup path.

A lookup's database work is two statements (read the store revision, append the audit entry); on
the event loop with asyncio they let one worker serve other requests while Postgres answers, where
SQLAlchemy's synchronous sessions would block it. Everything else uses sessions.

A connection that raised a psycopg error is closed and dropped, never returned to the pool. One
that the server closed while it waited in the pool (a restart, ``pg_terminate_backend``) is
replaced before it is handed out (:func:`~detnat.store.db.closed_by_server`, no round trip), so
a database restart fails no lookup. Nothing is ever retried: a lookup's audit entry is written
once, and an answer leaves only after it is committed (autocommit) — else the request is a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import psycopg
from sqlalchemy.engine import make_url

from detnat.store.db import closed_by_server, normalise_url


def libpq_url(url: str) -> str:
    return make_url(normalise_url(url)).set(drivername="postgresql").render_as_string(False)


class AsyncConnections:
    """At most ``size`` autocommit connections to ``url``, made on demand.

    Slots wait in a FIFO queue (``None``: not connected yet), so requests get connections in the
    order they asked for them: no request waits behind later ones.
    """

    def __init__(self, url: str, size: int) -> None:
        self.url = libpq_url(url)
        self._slots: asyncio.Queue[psycopg.AsyncConnection[tuple[Any, ...]] | None] = (
            asyncio.Queue()
        )
        for _ in range(size):
            self._slots.put_nowait(None)

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[psycopg.AsyncConnection[tuple[Any, ...]]]:
        conn = await self._slots.get()
        if conn is not None and closed_by_server(conn):
            await conn.close()
            conn = None
        if conn is None:
            try:
                conn = await psycopg.AsyncConnection.connect(
                    self.url, autocommit=True, connect_timeout=5, prepare_threshold=0
                )
            except BaseException:
                self._slots.put_nowait(None)
                raise
        try:
            yield conn
        except Exception as exc:
            # A domain error (a bad query) leaves the connection as it was; a database error
            # may not: drop it.
            if isinstance(exc, psycopg.Error) or conn.broken:
                await conn.close()
                self._slots.put_nowait(None)
            else:
                self._slots.put_nowait(conn)
            raise
        except BaseException:  # cancelled mid-statement: the connection's state is unknown
            await conn.close()
            self._slots.put_nowait(None)
            raise
        self._slots.put_nowait(conn)

    async def close(self) -> None:
        while not self._slots.empty():
            conn = self._slots.get_nowait()
            if conn is not None:
                await conn.close()
