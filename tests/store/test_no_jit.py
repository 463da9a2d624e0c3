"""No JIT compilation on detnat's connections.

The logs' lookup statements read ``log_events`` (partitioned per realm and month) in a subquery
whose realm comes from the outer row, so no partition is pruned when the statement is planned. With
150 partitions (13 realms after a year, or 150 realms after a month) the plan's cost passed
Postgres's ``jit_above_cost`` and each single lookup spent 0.7-1 s compiling it, against 9-11 ms
without JIT (``bench/README.md``). Every connection detnat makes (the sessions' engine, the
lookup path's pool) now has ``jit = off``; the test reads a lookup's plan through each. The lookup
path's connections also plan every statement generically (``detnat.store.lean.LOOKUP_PATH``):
the logs' statement's generic plan still walks its B-tree.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import text

from detnat.logs.events import EventKind
from detnat.store import logs as store
from detnat.store.async_db import AsyncConnections
from detnat.store.db import SessionFactory, make_engine, make_sessions
from tests.logs.conftest import T0_US, event, ingest, new_realm
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

S = 10**6
REALMS = 150
PUBLIC = 0xC6135001  # 198.19.80.1, the first realm's address


@pytest.fixture(scope="module")
def many_partitions() -> Iterator[tuple[str, SessionFactory]]:
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        sessions = make_sessions(engine)
        for k in range(REALMS):
            public = f"198.19.{80 + k // 250}.{k % 250 + 1}"
            lines = [
                event(EventKind.ALLOCATE, T0_US + k * S, "100.64.0.1", public, 1024, 1535),
                event(EventKind.RELEASE, T0_US + (k + 99) * S, "100.64.0.1", public, 1024, 1535),
            ]
            ingest(sessions, new_realm(sessions), lines, hold=timedelta(hours=1))
        yield url, sessions
        engine.dispose()


def _params() -> dict[str, Any]:
    at = store.instant(T0_US + 50 * S)
    return {"key": PUBLIC * 65536 + 1100, "start": at, "end": at, "port": 1100}


def _jitted(plan: Any) -> bool:
    document = json.loads(plan) if isinstance(plan, str) else plan
    return "JIT" in document[0]


def test_a_session_plans_a_lookup_without_jit(many_partitions: tuple[str, SessionFactory]) -> None:
    _, sessions = many_partitions
    with sessions() as s:
        assert s.execute(text("SHOW jit")).scalar() == "off"
        plan = s.execute(
            text("EXPLAIN (ANALYZE, FORMAT JSON) " + store.ANSWERING), _params()
        ).scalar()
        assert not _jitted(plan)
        asked = _params()
        assert store.answering(s, PUBLIC, 1100, asked["start"], asked["end"])  # the holder


def test_the_lookup_path_plans_a_lookup_without_jit(
    many_partitions: tuple[str, SessionFactory],
) -> None:
    url, _ = many_partitions

    async def plan() -> tuple[tuple[Any, ...], Any]:
        pool = AsyncConnections(url, 1)
        try:
            async with pool.connection() as conn:
                shown = await (await conn.execute("SHOW jit")).fetchone()
                mode = await (await conn.execute("SHOW plan_cache_mode")).fetchone()
                cur = await conn.execute(
                    "EXPLAIN (ANALYZE, FORMAT JSON) " + store.ANSWERING_ASYNC, _params()
                )
                found = await cur.fetchone()
        finally:
            await pool.close()
        assert shown is not None and mode is not None and found is not None
        return (shown[0], mode[0]), found[0]

    shown, found = asyncio.run(plan())
    assert shown == ("off", "force_generic_plan")
    assert not _jitted(found)
    # its generic plan (the lookup path plans every statement so) walks the B-tree of 0010
    assert ("Index Scan", "ix_log_intervals_block_time") in _scans(found, "log_intervals")


def _scans(plan: Any, table: str) -> set[tuple[str, str | None]]:
    """(node type, index) of each node of a plan that reads ``table``."""
    found: set[tuple[str, str | None]] = set()
    nodes = [json.loads(plan) if isinstance(plan, str) else plan]
    while nodes:
        node = nodes.pop()
        if isinstance(node, dict):
            if node.get("Relation Name") == table:
                found.add((node["Node Type"], node.get("Index Name")))
            nodes.extend(node.values())
        elif isinstance(node, list):
            nodes.extend(node)
    return found
