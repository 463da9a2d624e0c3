"""The directory's statements and its B-tree on ``(prefix, lower(during))`` (migration 0009).

- every statement can read ``directory_intervals`` through the index alone: with sequential scans
  priced out, each scan of the table has an index condition (a lookup condition the B-tree cannot
  use, such as ``prefix << $1``, leaves a full scan and fails this);
- the single lookup's supernets are probed at the prefix lengths learnt at the revision its caller
  names; a statement that sees another revision probes every length.

A database of its own: its intervals must not give other tests' answers an account.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import psycopg
import pytest

from detnat.service import audit, directory
from detnat.service.times import format_instant
from detnat.store import directory as rows_repo
from detnat.store.db import unit_of_work
from tests.directory.lab import T0, Lab, ingest_csv, lab_store

pytestmark = pytest.mark.postgres

LEGAL = audit.Actor("l", "legal")

DIRECTORY = (
    "subscriber,account,from,to\n"
    "10.0.0.5,alice,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z\n"
    "10.0.0.5,bob,2026-03-01T01:00:00Z,\n"
    "10.0.0.5,carol,2026-03-01T05:00:00Z,\n"
    "10.0.0.4/30,block,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
    "2001:db8:1:100::/56,dave,2026-03-01T00:00:00Z,\n"
    "2001:db8:1:100::1/128,b4,2026-03-01T00:00:00Z,2026-03-01T02:00:00Z\n"
)


@pytest.fixture(scope="module")
def store() -> Iterator[Lab]:
    with lab_store() as lab:
        assert ingest_csv(lab, DIRECTORY).refused == []
        yield lab


def _scans(plan: Any) -> Iterator[dict[str, Any]]:
    """Every node of an EXPLAIN (FORMAT JSON) plan that reads directory_intervals."""
    if isinstance(plan, dict):
        if plan.get("Relation Name") == "directory_intervals":
            yield plan
        for value in plan.values():
            yield from _scans(value)
    elif isinstance(plan, list):
        for value in plan:
            yield from _scans(value)


# SQL types of the statements' parameters (PREPARE names them)
_TYPES = {
    "net": "text",
    "lo": "timestamptz",
    "hi": "timestamptz",
    "realm": "text",
    "scoped": "bool",
    "rev": "int8",
    "lens": "int2[]",
    "every": "int2[]",
    "nets": "text[]",
    "los": "int8[]",
    "his": "int8[]",
    "realms": "text[]",
    "v4": "int2[]",
    "v6": "int2[]",
    "v4max": "int4",
    "v6max": "int4",
}


def _plan(lab: Lab, statement: str, params: dict[str, Any], types: dict[str, str]) -> Any:
    """The generic plan of ``statement`` (its parameters unknown to the planner, as a prepared
    statement may be run), with sequential scans priced out; and the rows it gives."""
    names = list(dict.fromkeys(re.findall(r"%\((\w+)\)s", statement)))
    positional = statement
    for k, name in enumerate(names, start=1):
        positional = positional.replace(f"%({name})s", f"${k}")
    values = [params[name] for name in names]
    with unit_of_work(lab.sessions) as s:
        raw = s.connection().connection.driver_connection
        assert raw is not None
        with psycopg.ClientCursor(raw) as cur:  # literals in EXECUTE (), not parameters
            cur.execute("SET LOCAL enable_seqscan = off")
            cur.execute("SET LOCAL plan_cache_mode = force_generic_plan")
            cur.execute(
                f"PREPARE around_plan ({', '.join(types[n] for n in names)}) AS {positional}"
            )
            args = ", ".join(["%s"] * len(values))
            (plan,) = cur.execute(
                f"EXPLAIN (FORMAT JSON) EXECUTE around_plan ({args})", values
            ).fetchone() or (None,)
            rows = cur.execute(f"EXECUTE around_plan ({args})", values).fetchall()
            cur.execute("DEALLOCATE around_plan")
    return (json.loads(plan) if isinstance(plan, str) else plan), rows


def _through_the_index(plan: Any) -> None:
    scans = list(_scans(plan))
    assert scans
    for node in scans:
        assert node["Node Type"] in ("Index Scan", "Bitmap Heap Scan", "Index Only Scan"), node
        if node["Node Type"] == "Bitmap Heap Scan":
            assert node.get("Recheck Cond"), node
        else:
            assert node.get("Index Cond") and node["Index Name"].startswith("ix_directory"), node


def _asked(net: str) -> dict[str, object]:
    """A single lookup's parameters for ``net`` over a window inside the lab's rows."""
    return {
        "net": net,
        "lo": T0 + timedelta(minutes=30),
        "hi": T0 + timedelta(hours=6),
        "realm": "lab",
        "scoped": True,
    }


@pytest.mark.parametrize("net", ["10.0.0.5/32", "10.0.0.4/30", "2001:db8:1:100::1/128"])
def test_a_single_lookup_reads_the_table_through_the_index(store: Lab, net: str) -> None:
    with unit_of_work(store.sessions) as s:
        revision, held = rows_repo.prefix_lengths(s)
    params = _asked(net)
    plan, rows = _plan(
        store, rows_repo._AROUND_PG, params | rows_repo._around_lengths(net, revision, held), _TYPES
    )
    _through_the_index(plan)
    assert rows  # and it finds what it should


@pytest.mark.parametrize("net", ["10.0.0.5/32", "2001:db8:1:100::1/128"])
def test_a_single_lookup_that_knows_no_lengths_probes_every_one_through_the_index(
    store: Lab, net: str
) -> None:
    params = _asked(net)
    every = rows_repo._around_lengths(net, None, rows_repo._EVERY_LENGTH)
    plan, rows = _plan(store, rows_repo._AROUND_PG, params | every, _TYPES)
    _through_the_index(plan)
    assert rows


def test_single_lookups_learn_no_lengths(store: Lab) -> None:
    """Learning the lengths the first time reads every row of the directory (0.9 s at 1.25 M
    rows): a CLI lookup is a new process each time, so single lookups probe every length instead
    and leave learning to batches (and use what a batch learnt)."""
    rows_repo._HELD.clear()
    rows_repo._SINCE.clear()
    with unit_of_work(store.sessions) as s:
        (revision,) = s.connection().exec_driver_sql(rows_repo._REVISION).one()
        found = rows_repo.around(
            s, "10.0.0.5/32", T0, T0 + timedelta(hours=6), realm="lab", scoped=True,
            revision=revision,
        )  # fmt: skip
        assert {r[3] for r in found} >= {"alice", "bob", "carol", "block"}
        assert rows_repo._HELD == {}
        rows_repo.prefix_lengths(s)  # a batch learns them; a single lookup then uses them
        assert rows_repo._single_lengths(
            rows_repo._where(s.connection().connection.driver_connection.info), revision
        ) == (revision, {4: [30, 32], 6: [56, 128]})


def test_the_batch_statement_reads_the_table_through_the_index(store: Lab) -> None:
    nets = ["10.0.0.5/32", "10.0.0.4/30", "2001:db8:1:100::/56", "2001:db8:1:100::1/128"]
    lo = int((T0 - timedelta(hours=1)).timestamp() * 10**6)
    hi = int((T0 + timedelta(days=2)).timestamp() * 10**6)
    with unit_of_work(store.sessions) as s:
        _, held = rows_repo.prefix_lengths(s)
    params = {
        "nets": nets,
        "los": [lo] * len(nets),
        "his": [hi] * len(nets),
        "realms": ["lab"] * len(nets),
        "scoped": [True] * len(nets),
    } | rows_repo._lengths_args(held)
    plan, rows = _plan(store, rows_repo._AROUND_NETS, params, _TYPES | {"scoped": "bool[]"})
    _through_the_index(plan)
    # the open rows' successors were asked for and found (bob's row is ended by carol's)
    assert any(r[9] is not None for r in rows)


def _account(lab: Lab, subscriber: str, at: str, revision: int | None) -> tuple[str, str]:
    answer: dict[str, Any] = {
        "status": "match",
        "subscriber": subscriber,
        "window": {"from": at, "to": at},
    }
    with unit_of_work(lab.sessions) as s:
        directory.add_account(s, LEGAL, answer, {}, revision=revision)
    shown = answer["account"]
    return ("not_covered", "") if shown is None else (shown["status"], shown["account"] or "")


def test_a_single_lookup_told_an_old_revision_still_sees_a_new_length() -> None:
    """Lengths learnt at revision R (no /20 then); a /20 ingested after; a lookup that names R
    (its snapshot was read before the ingest) must still find the /20: the statement sees the
    store at another revision and probes every length."""
    at = format_instant(T0 + timedelta(hours=1))
    with lab_store() as lab:
        ingest_csv(lab, "subscriber,account,from,to\n10.0.0.5,alice,2026-03-01T00:00:00Z,\n")
        with unit_of_work(lab.sessions) as s:
            old, held = rows_repo.prefix_lengths(s)
        assert held[4] == [32]
        assert _account(lab, "10.0.0.5/32", at, old) == ("identified", "alice")
        ingest_csv(lab, "subscriber,account,from,to\n10.0.0.0/20,wholesale,2026-03-01T00:00:00Z,\n")
        assert _account(lab, "10.0.0.5/32", at, old) == ("ambiguous", "")
        with unit_of_work(lab.sessions) as s:
            new, held = rows_repo.prefix_lengths(s)
        assert new != old and held[4] == [20, 32]
        assert _account(lab, "10.0.0.5/32", at, new) == ("ambiguous", "")
        assert _account(lab, "10.0.0.5/32", at, None) == ("ambiguous", "")


def test_the_lengths_are_learnt_from_the_ingests_since_the_last_one_seen() -> None:
    """A new revision reads only the rows of the ingests after the last one learnt; what was
    learnt of another database under the same name (another oid), or of a store whose last
    ingest is now earlier, is not built upon."""
    with lab_store() as lab:
        ingest_csv(lab, "subscriber,account,from,to\n10.0.0.5,alice,2026-03-01T00:00:00Z,\n")
        with unit_of_work(lab.sessions) as s:
            raw = s.connection().connection.driver_connection
            assert raw is not None
            where = rows_repo._where(raw.info)
            assert rows_repo.prefix_lengths(s)[1] == {4: [32], 6: []}
        oid, last, _ = rows_repo._SINCE[where]
        v6 = "subscriber,account,from,to\n2001:db8::/56,bob,2026-03-01T00:00:00Z,\n"
        ingest_csv(lab, v6)
        with unit_of_work(lab.sessions) as s:
            assert rows_repo.prefix_lengths(s)[1] == {4: [32], 6: [56]}
        assert rows_repo._SINCE[where][0] == oid and rows_repo._SINCE[where][1] > last
        # built upon: a length remembered (though no row has it) stays, a new ingest adds its own
        rows_repo._SINCE[where] = (oid, rows_repo._SINCE[where][1], {4: [7, 32], 6: [56]})
        ingest_csv(lab, "subscriber,account,from,to\n10.0.0.0/20,w,2026-03-01T00:00:00Z,\n")
        with unit_of_work(lab.sessions) as s:
            assert rows_repo.prefix_lengths(s)[1] == {4: [7, 20, 32], 6: [56]}
        for stranger in ((oid + 1, 0, {4: [], 6: []}), (oid, 10**9, {4: [], 6: []})):
            rows_repo._SINCE[where] = stranger
            ingest_csv(lab, "subscriber,account,from,to\n10.0.0.9,x,2026-03-01T00:00:00Z,\n")
            with unit_of_work(lab.sessions) as s:
                assert rows_repo.prefix_lengths(s)[1] == {4: [20, 32], 6: [56]}


_PLANS = (
    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
    "WHERE statement LIKE '%FROM directory_intervals d%' AND statement NOT LIKE '%unnest(CAST($%'"
)


def test_a_single_lookup_is_planned_once_not_per_call(store: Lab) -> None:
    """Postgres chose a custom plan for each call's values (~0.35 ms of server CPU a lookup in
    planning, three times the execution): the statement is run on its generic plan, and the
    connection's own plan cache mode is left as it was."""
    with unit_of_work(store.sessions) as s:
        raw = s.connection().connection.driver_connection
        assert raw is not None
        before = raw.execute(_PLANS).fetchone() or (0, 0)  # a pooled connection may have run it
        for k in range(12):
            found = rows_repo.around(
                s, f"10.0.0.{k % 8}/32", T0, T0 + timedelta(hours=6), realm="lab", scoped=True
            )
            assert k % 8 != 5 or {r[3] for r in found} >= {"alice", "bob", "carol"}
        after = raw.execute(_PLANS).fetchone()
        assert after == (before[0] + 12, 0)
        assert raw.execute("SHOW plan_cache_mode").fetchone() == ("auto",)


def test_a_single_lookup_on_the_lookup_path_is_planned_once_not_per_call(store: Lab) -> None:
    """The lookup path's connections run every statement on its generic plan, set once when
    the connection is made (no statement around each lookup's)."""
    from detnat.store.async_db import AsyncConnections

    async def run() -> None:
        pool = AsyncConnections(store.url, 1)
        try:
            async with pool.connection() as conn:
                for k in range(12):
                    found = await rows_repo.around_async(
                        conn, f"10.0.0.{k % 8}/32", T0, T0 + timedelta(hours=6), realm="lab",
                        scoped=True,
                    )  # fmt: skip
                    assert k % 8 != 5 or {r[3] for r in found} >= {"alice", "bob", "carol"}
                assert await (await conn.execute(_PLANS)).fetchall() == [(12, 0)]
                shown = await (await conn.execute("SHOW plan_cache_mode")).fetchone()
                assert shown == ("force_generic_plan",)
        finally:
            await pool.close()

    asyncio.run(run())


def _many(asks: list[rows_repo.Ask]) -> dict[str, Any]:
    """The grouped statement's parameters for ``asks``, as :func:`around_many_async` makes them."""
    params: dict[str, list[Any]] = {}
    for net, lo, hi, realm, scoped, revision in asks:
        lengths = rows_repo._around_lengths(net, revision, rows_repo._EVERY_LENGTH)
        for key, value in (
            ("nets", net), ("los", lo), ("his", hi), ("realms", realm), ("scoped", scoped),
            ("revs", None), ("ask_lens", lengths["lens"]), ("ask_every", lengths["every"]),
        ):  # fmt: skip
            params.setdefault(key, []).append(value)
    return params


_MANY_TYPES = _TYPES | {
    "los": "timestamptz[]",
    "his": "timestamptz[]",
    "scoped": "bool[]",
    "revs": "int8[]",
    "ask_lens": "text[]",
    "ask_every": "text[]",
}
_GROUPED_PLANS = (
    "SELECT generic_plans, custom_plans FROM pg_prepared_statements "
    "WHERE statement LIKE '%AS q(net, lo, hi, realm, scoped, rev, lens, every, i)%' "
    "AND statement NOT LIKE '%pg_prepared_statements%'"
)
_NETS = ["10.0.0.5/32", "10.0.0.4/30", "10.0.0.9/32", "2001:db8:1:100::/56"]
_NETS += ["2001:db8:1:100::1/128"]


def test_the_lookups_grouped_read_the_table_through_the_index(store: Lab) -> None:
    asks = [(n, T0, T0 + timedelta(hours=6), "lab", True, None) for n in _NETS]
    plan, rows = _plan(store, rows_repo._AROUND_MANY, _many(asks), _MANY_TYPES)
    _through_the_index(plan)
    assert {r[0] for r in rows} == {1, 2, 4, 5}  # 10.0.0.9 is in no row


def test_lookups_grouped_find_what_each_finds_alone(store: Lab) -> None:
    """One statement for the lookups in flight together: each ask gets the rows, in the order,
    that its own statement gives (every subscriber of the lab's rows and beside them, windows
    before, across and after hand-overs, a realm or none, scoped or not)."""
    from detnat.store.async_db import AsyncConnections

    windows = [(0, 0), (0, 30), (30, 90), (59, 61), (60, 60), (240, 360), (300, 300), (0, 2880)]
    asks = [
        (net, T0 + timedelta(minutes=a), T0 + timedelta(minutes=b), realm, scoped, None)
        for net in [*_NETS, "10.0.0.0/24", "2001:db8:1::/48"]
        for a, b in windows
        for realm in ("lab", None)
        for scoped in (True, False)
    ]

    async def run() -> None:
        pool = AsyncConnections(store.url, 1)
        try:
            async with pool.connection() as conn:
                alone = [
                    await rows_repo.around_async(
                        conn, net, lo, hi, realm=realm, scoped=scoped, revision=revision
                    )
                    for net, lo, hi, realm, scoped, revision in asks
                ]
                together = await rows_repo.around_many_async(conn, asks)
                again = await rows_repo.around_many_async(conn, asks[::-1])
                one = await rows_repo.around_many_async(conn, asks[5:6])  # its own statement
                plans = await (await conn.execute(_PLANS)).fetchall()
                grouped = await (await conn.execute(_GROUPED_PLANS)).fetchall()
        finally:
            await pool.close()
        assert together == alone and again == alone[::-1] and one == alone[5:6]
        assert sum(map(len, alone)) > 100 and sum(not rows for rows in alone) > 10
        assert (plans, grouped) == ([(len(asks) + 1, 0)], [(2, 0)])  # none planned for its values

    asyncio.run(run())
