"""Reads of the lookups in flight, grouped (``detnat.store.async_db.GroupedReads``, issue 14):
the asks of lookups made together go in one statement, asks made while it runs in the next, each
caller gets its own answer; a statement that fails fails its group alone, each caller with an
error of its own, and the next group runs on a new connection.

Against a throwaway database: a read that doubles numbers in SQL stands for the directory's.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import psycopg
import pytest

from detnat.errors import Unavailable
from detnat.store.async_db import AsyncConnections, GroupedReads
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

Conn = psycopg.AsyncConnection[tuple[Any, ...]]


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database() as url:
        yield url


class Doubling:
    """``read`` for :class:`GroupedReads`: each ask doubled by Postgres, one statement a group;
    the groups it was given are kept, and a group can be held (``hold``) or killed (``kill``)."""

    def __init__(self) -> None:
        self.groups: list[list[int]] = []
        self.backends: list[int] = []
        self.hold: asyncio.Event | None = None
        self.kill = False

    async def __call__(self, conn: Conn, asks: list[int]) -> list[int]:
        self.groups.append(list(asks))
        self.backends.append(conn.info.backend_pid)
        if self.hold is not None:
            await self.hold.wait()
        if self.kill:
            self.kill = False
            await conn.execute("SELECT pg_terminate_backend(pg_backend_pid())")
        cur = await conn.execute(
            "SELECT x * 2 FROM unnest(CAST(%s AS int[])) WITH ORDINALITY AS u(x, i) ORDER BY i",
            (asks,),
        )
        return [int(r[0]) for r in await cur.fetchall()]


def test_asks_made_together_go_in_one_statement_each_answered_its_own(database: str) -> None:
    async def run() -> tuple[list[int], list[list[int]]]:
        read = Doubling()
        pool = AsyncConnections(database, 2)
        grouped = GroupedReads(pool, read)
        try:
            answers = await asyncio.gather(*(grouped.ask(n) for n in range(16)))
        finally:
            await pool.close()
        return answers, read.groups

    answers, groups = asyncio.run(run())
    assert answers == [2 * n for n in range(16)]
    assert groups == [list(range(16))]


def test_asks_made_while_a_group_is_read_go_in_the_next(database: str) -> None:
    async def run() -> tuple[list[int], list[list[int]]]:
        read = Doubling()
        read.hold = asyncio.Event()
        pool = AsyncConnections(database, 2)
        grouped = GroupedReads(pool, read)
        try:
            first = asyncio.create_task(grouped.ask(100))
            while not read.groups:  # the first group is being read
                await asyncio.sleep(0)
            later = [asyncio.create_task(grouped.ask(n)) for n in range(5)]
            await asyncio.sleep(0)
            assert read.groups == [[100]]  # held: the later asks wait for the next group
            read.hold.set()
            answers = [await first, *[await t for t in later]]
        finally:
            await pool.close()
        return answers, read.groups

    answers, groups = asyncio.run(run())
    assert answers == [200, 0, 2, 4, 6, 8]
    assert groups == [[100], [0, 1, 2, 3, 4]]


def test_a_group_whose_connection_dies_fails_its_callers_alone(database: str) -> None:
    async def run() -> tuple[list[BaseException | int], list[int], Doubling]:
        read = Doubling()
        read.kill = True
        pool = AsyncConnections(database, 1)
        grouped = GroupedReads(pool, read)
        try:
            failed = await asyncio.gather(
                *(grouped.ask(n) for n in range(3)), return_exceptions=True
            )
            after = await asyncio.gather(*(grouped.ask(n) for n in range(3)))
        finally:
            await pool.close()
        return failed, after, read

    failed, after, read = asyncio.run(run())
    assert all(isinstance(e, Unavailable) for e in failed)
    assert len({id(e) for e in failed}) == 3  # each caller its own error
    assert all(isinstance(e, BaseException) and e.__cause__ is not None for e in failed)
    assert after == [0, 2, 4]
    assert read.groups == [[0, 1, 2], [0, 1, 2]]
    assert read.backends[0] != read.backends[1]  # the dead connection was not used again
