"""The lookup path's database, asynchronously: :class:`AsyncStore`.

A lookup's database work is two statements' worth: know the store revision, append the audit
entry. On the event loop with asyncio they let one worker serve other requests while Postgres
answers, where SQLAlchemy's synchronous sessions would block it. Everything else uses sessions.
Both are shared between the lookups of a worker that are in flight together:

- the store revision a lookup answers at is the one its worker's last group commit found (read
  once at start, :class:`SharedRead`), and its entry goes in only if the store is still at that
  revision when its group is inserted (:class:`Stale` otherwise: it is answered again);
- audit entries are group-committed (:class:`AuditWriter`): the entries handed in while one
  group's statement runs go in the next, as one statement and one transaction, and each lookup
  is answered only after its group committed;
- a read each lookup makes (the directory's rows of its subscriber) is made for the lookups in
  flight in one statement the same way (:class:`GroupedReads`).

:class:`AsyncConnections` is a small pool of autocommit connections. A connection that raised a
psycopg error is closed and dropped, never returned to the pool. One that the server closed while
it waited (a restart, ``pg_terminate_backend``) is replaced before it is used
(:func:`~detnat.store.db.closed_by_server`, no round trip), so a database restart fails no lookup
that starts after it. Nothing is ever retried: an audit entry is written once, and an answer
leaves only after it is committed — else the request (every request of its group) is a 503.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import psycopg
from psycopg import AsyncClientCursor

from detnat.errors import Unavailable
from detnat.store.lean import LOOKUP_PATH, closed_by_server, libpq_url
from detnat.store.lean import Stale as Stale  # where the lookups catch it
from detnat.store.lean import driver_error as domain_error


class AsyncConnections:
    """At most ``size`` autocommit connections to ``url``, made on demand, each without JIT and
    with every statement prepared on its generic plan (:data:`~detnat.store.lean.LOOKUP_PATH`).

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
                await conn.execute(LOOKUP_PATH, prepare=False)
            except BaseException:
                await conn.close()
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


# -- the audit log's group commit ------------------------------------------------------------------

# Entries of one group go in as one INSERT: its rows in the order they joined the group (the
# ordinality), each chained by the trigger (``audit_log_chain``) as it is inserted, under the
# chain head's row lock. A lock is held until its transaction ends, and a synchronous commit ends
# only after its WAL flush; so the INSERT's transaction commits asynchronously (the head is free
# as soon as the commit record is written, and the next writer, of this worker or another, chains
# on), and a second transaction, synchronous, follows it: its commit returns once the WAL is
# flushed up to its own commit record, which lies after the group's (WAL is written in order), so
# the group is as durable as its own synchronous commit would have made it. That transaction's
# one write is an empty logical-decoding message (``pg_logical_emit_message``: any role may call
# it, and it touches no table). Both go in one query string: one round trip per group. Only
# then is any caller answered.
# The group travels as one JSON array of {"c": content, "h": content_sha256, "r": revision}: the
# content is the canonical JSON the service hashed (``detnat.service.audit.entry_content``), put in
# as is (no second encoding) and taken apart here, so each row holds exactly what was hashed.
_REVISION = "SELECT revision FROM store_revision WHERE id = 1"
_INSERT = (
    "INSERT INTO audit_log (seq, at, actor, role, token_id, action, case_ref, status, "
    "request_id, code_version, detail, content_sha256, prev_sha256, entry_sha256) "
    "SELECT 0, (c->>'at')::timestamptz, c->>'actor', c->>'role', (c->>'token_id')::integer, "
    "c->>'action', c->>'case', c->>'status', c->>'request_id', c->>'code_version', c->'detail', "
    "h, '', '' FROM ROWS FROM (jsonb_to_recordset(%s::jsonb) AS (c jsonb, h text, r bigint)) "
    f"WITH ORDINALITY AS e(c, h, r, n) WHERE r = ({_REVISION}) ORDER BY n "
    "RETURNING seq, entry_sha256, prev_sha256, content_sha256"
)
_GROUP_SQL = (
    f"BEGIN; SET LOCAL synchronous_commit TO off; {_INSERT}; COMMIT; "
    f"SELECT pg_logical_emit_message(true, 'detnat.audit', ''), ({_REVISION})"
)
MAX_GROUP = 128  # entries per statement: the head row is updated once per entry
A = TypeVar("A")
R = TypeVar("R")


class AuditWriter:
    """Group commit of audit entries, on one connection of its own.

    :meth:`append` hands in an entry and waits for its (seq, entry_sha256, prev_sha256). While
    one group is being written, every entry handed in waits for the next group, so under load a
    group holds every request that arrived during the previous commit, and one request alone
    costs one round trip as before. A caller is answered only when its group's transaction has
    committed and the WAL is flushed past its commit record. If the statement fails (the
    connection dies, a trigger refuses a row, the commit fails), every caller of the group gets
    :class:`~detnat.errors.Unavailable` and none of its entries exists; the next group starts on
    a new connection. An entry answered at a store revision that is no longer the store's when
    its group is inserted is left out (:class:`Stale`); the others of its group go in.

    Several processes (uvicorn workers) each have a writer; their groups serialise on the chain
    head's row lock, so the chain stays one line.
    """

    def __init__(self, url: str, *, most: int = MAX_GROUP) -> None:
        self.url = libpq_url(url)
        self.most = most
        self._queue: list[tuple[_Entry, asyncio.Future[tuple[int, str, str]]]] = []
        self.revision: int | None = None  # the store's, as the last group's commit found it
        self._task: asyncio.Task[None] | None = None
        self._conn: psycopg.AsyncConnection[tuple[Any, ...]] | None = None

    async def append(
        self, content_json: str, content_sha256: str, *, revision: int
    ) -> tuple[int, str, str]:
        """Append one entry (its content as canonical JSON, and that text's SHA-256; the trigger
        assigns seq and chains it) once its group commits, if the store is still at
        ``revision`` (the one its answer was computed at) when the group is inserted; else
        :class:`Stale`, and nothing is written."""
        entry = _Entry(content_json, content_sha256, revision)
        done: asyncio.Future[tuple[int, str, str]] = asyncio.get_running_loop().create_future()
        self._queue.append((entry, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._write_groups())
        return await done

    async def _write_groups(self) -> None:
        while self._queue:
            group = self._queue[: self.most]
            del self._queue[: self.most]
            try:
                rows = await self._insert([entry for entry, _ in group])
            except BaseException as exc:
                for _, done in group:
                    if not done.done():  # a caller that went away is not told
                        done.set_exception(_unwritten(exc))
                if not isinstance(exc, Exception):
                    raise
            else:
                for (_, done), row in zip(group, rows, strict=True):
                    if done.done():
                        continue
                    if isinstance(row, Stale):
                        done.set_exception(row)
                    else:
                        done.set_result(row)

    async def _insert(self, group: list[_Entry]) -> list[tuple[int, str, str] | Stale]:
        conn = self._conn
        if conn is not None and closed_by_server(conn):
            await conn.close()
            conn = self._conn = None
        if conn is None:
            # Client-side binding: several statements in one query string.
            conn = await psycopg.AsyncConnection.connect(
                self.url, autocommit=True, connect_timeout=5, cursor_factory=AsyncClientCursor
            )
            self._conn = conn
        payload = (
            "["
            + ",".join(f'{{"c":{e.content},"h":"{e.sha256}","r":{e.revision}}}' for e in group)
            + "]"
        )
        try:
            cur = await conn.execute(_GROUP_SQL, (payload,))
            while cur.description is None:  # BEGIN, SET: on to the INSERT's rows
                cur.nextset()
            returned = await cur.fetchall()
            cur.nextset()  # COMMIT
            cur.nextset()
            flushed = await cur.fetchone()
            assert flushed is not None
        except BaseException:
            # A failed statement rolled the group back (an error skips the rest of the string,
            # and so the flush: nobody is answered); the connection may be gone or in a failed
            # transaction or an unknown state (cancelled): the next group starts on a new one.
            self._conn = None
            await conn.close()
            raise
        self.revision = int(flushed[1])
        return _in_order(group, returned, self.revision)

    async def close(self) -> None:
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task])
        if self._conn is not None:
            await self._conn.close()
            self._conn = None


@dataclass(frozen=True)
class _Entry:
    content: str  # canonical JSON
    sha256: str
    revision: int


def _in_order(
    group: list[_Entry], returned: list[tuple[Any, ...]], revision: int
) -> list[tuple[int, str, str] | Stale]:
    """The returned rows matched to the group's entries by content hash (not by the order of
    RETURNING, which SQL does not promise); entries with the same content take seqs in order.
    An entry not inserted was answered at a revision that was no longer the store's."""
    by_content: dict[str, list[tuple[int, str, str]]] = {}
    for seq, entry_sha256, prev_sha256, content_sha256 in sorted(returned):
        by_content.setdefault(str(content_sha256), []).append(
            (int(seq), str(entry_sha256), str(prev_sha256))
        )
    out: list[tuple[int, str, str] | Stale] = []
    for entry in group:
        mine = by_content.get(entry.sha256)
        if mine:
            out.append(mine.pop(0))
        elif entry.revision != revision:
            out.append(Stale(revision))
        else:
            raise Unavailable("the audit log did not return an entry that was written")
    return out


def _unwritten(exc: BaseException) -> Unavailable:
    """What each caller of a failed group gets: a new error (a shared one would gather every
    caller's traceback), caused by the driver's."""
    error = Unavailable("the audit log could not be written: no answer")
    error.__cause__ = exc
    return error


# -- reads of the lookups in flight, grouped -------------------------------------------------------


class GroupedReads(Generic[A, R]):
    """A read that each lookup makes once (the directory's rows of its subscriber), made for every
    lookup in flight in one statement: ``read(conn, asks)`` answers a list of asks in their order.

    As :class:`AuditWriter` groups entries: the asks handed in while one group's statement runs
    go in the next, so one lookup alone costs one round trip as before, and under load one round
    trip serves a round of lookups. If the statement fails, each caller of the group gets the
    error as a domain error of its own (:class:`~detnat.errors.Unavailable` for anything not
    from the driver); the connection is dropped as :class:`AsyncConnections` drops it.
    """

    def __init__(
        self,
        connections: AsyncConnections,
        read: Callable[[psycopg.AsyncConnection[tuple[Any, ...]], list[A]], Awaitable[list[R]]],
        *,
        most: int = MAX_GROUP,
    ) -> None:
        self._connections = connections
        self._read = read
        self.most = most
        self._queue: list[tuple[A, asyncio.Future[R]]] = []
        self._task: asyncio.Task[None] | None = None

    async def ask(self, ask: A) -> R:
        done: asyncio.Future[R] = asyncio.get_running_loop().create_future()
        self._queue.append((ask, done))
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._rounds())
        return await done

    async def _rounds(self) -> None:
        while self._queue:
            group = self._queue[: self.most]
            del self._queue[: self.most]
            try:
                async with self._connections.connection() as conn:
                    found = await self._read(conn, [ask for ask, _ in group])
            except BaseException as exc:
                for _, done in group:
                    if not done.done():  # a caller that went away is not told
                        done.set_exception(_unread(exc))
                if not isinstance(exc, Exception):
                    raise
            else:
                for (_, done), result in zip(group, found, strict=True):
                    if not done.done():
                        done.set_result(result)


def _unread(exc: BaseException) -> Exception:
    """What each caller of a failed group gets: an error of its own, caused by the original."""
    error = domain_error(exc) or Unavailable("the store could not be read: no answer")
    error.__cause__ = exc
    return error


# -- the store revision, read once for every lookup waiting ----------------------------------------


class SharedRead:
    """The store revision, read once for all lookups that ask while it is being read.

    A caller gets the result of a read that *started after it asked* (a read in flight may predate
    a publication the caller must see): callers that arrive during a read wait for the next one,
    which they share. Under load, one round trip serves every lookup of a round.
    """

    def __init__(self, connections: AsyncConnections) -> None:
        self._connections = connections
        self._next: asyncio.Future[int] | None = None
        self._task: asyncio.Task[None] | None = None

    async def revision(self) -> int:
        if self._next is None:
            self._next = asyncio.get_running_loop().create_future()
        mine = self._next
        if self._task is None or self._task.done():
            self._task = asyncio.create_task(self._rounds())
        try:
            return await asyncio.shield(mine)
        except psycopg.Error as exc:
            raise (domain_error(exc) or Unavailable("the database is unreachable")) from exc

    async def _rounds(self) -> None:
        while self._next is not None:
            round_, self._next = self._next, None
            try:
                async with self._connections.connection() as conn:
                    cur = await conn.execute("SELECT revision FROM store_revision WHERE id = 1")
                    row = await cur.fetchone()
                assert row is not None
            except BaseException as exc:
                round_.set_exception(exc)
                round_.exception()  # retrieved: callers that went away raise no warning
                if not isinstance(exc, Exception):
                    raise
            else:
                round_.set_result(int(row[0]))


class AsyncStore:
    """The lookup path's database: connections for reads (and a new case's ``case.open``), the
    store revision to answer at, and the audit log's group commit.

    A lookup answers at the last revision this worker saw (read once at start, then as each
    group's commit finds it) without a round trip of its own; its entry is inserted only if the
    store is still at that revision when its group is inserted, so the answer was right at an
    instant between the request's arrival and its reply. If the store moved on,
    :meth:`append_audit` raises :class:`Stale` with the new revision and the lookup is answered
    again there (publishing is rare; one lookup after it pays a second group).
    """

    def __init__(self, url: str, size: int) -> None:
        self.name = url  # which database: keys what a process learnt of it (log_answers)
        self.reads = AsyncConnections(url, size)
        self.audit = AuditWriter(url)
        self._revision = SharedRead(self.reads)
        self._grouped: dict[Any, GroupedReads[Any, Any]] = {}

    def connection(self) -> AbstractAsyncContextManager[psycopg.AsyncConnection[tuple[Any, ...]]]:
        return self.reads.connection()

    def grouped(
        self,
        read: Callable[[psycopg.AsyncConnection[tuple[Any, ...]], list[A]], Awaitable[list[R]]],
    ) -> GroupedReads[A, R]:
        """The :class:`GroupedReads` of ``read`` on this store's connections (one per ``read``;
        the caller's module brings the statement, so this one imports none)."""
        found = self._grouped.get(read)
        if found is None:
            found = self._grouped[read] = GroupedReads(self.reads, read)
        return found

    async def revision(self) -> int:
        """The revision to answer at: the last one a group's commit found, else one read."""
        if self.audit.revision is not None:
            return self.audit.revision
        return await self._revision.revision()

    async def append_audit(
        self, content_json: str, content_sha256: str, *, revision: int
    ) -> tuple[int, str, str]:
        return await self.audit.append(content_json, content_sha256, revision=revision)

    async def close(self) -> None:
        await self.audit.close()
        await self.reads.close()
