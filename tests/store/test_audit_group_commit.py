"""Audited lookups' group commit (issue 12): entries of concurrent lookups are committed together,
each answer leaves only after its group committed, and a group that fails answers nobody.

Against a throwaway database of the test server: the store's writer directly (where the grouping
must be known exactly), then a uvicorn server in a thread over real HTTP. Failures are made the
way production meets them: ``pg_terminate_backend`` of the writer's connection while its group
waits for the chain head, and a constraint trigger that refuses an entry only at commit (so an
implementation that answered once the INSERT returned, before the commit, would fail here).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import psycopg
import pytest
import uvicorn

from api.app import create_app
from detnat.errors import Unavailable
from detnat.planfile import plan_from_data
from detnat.service import audit, integrity, plans
from detnat.settings import Settings
from detnat.store.async_db import AsyncStore, Stale, libpq_url
from detnat.store.db import make_engine, make_sessions, unit_of_work
from tests.store.conftest import make_tokens, throwaway_database

pytestmark = pytest.mark.postgres

ASKER = audit.Actor("desk", "legal", None)
POISON = "POISON-AT-COMMIT"

# Refuses a lookup's entry of case POISON when its transaction commits (not when it is
# inserted); the case itself opens.
REFUSE_AT_COMMIT = f"""
CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.case_ref = '{POISON}' AND NEW.action = 'lookup.reverse' THEN
        RAISE EXCEPTION 'entry % refused at commit', NEW.request_id;
    END IF;
    RETURN NULL;
END;
$$;
CREATE CONSTRAINT TRIGGER refuse_poison AFTER INSERT ON audit_log
    DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION refuse_poison();
"""


@pytest.fixture(scope="module")
def database() -> Iterator[str]:
    with throwaway_database() as url:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(REFUSE_AT_COMMIT)
        yield url


def chain_is_whole(url: str) -> None:
    engine = make_engine(url)
    try:
        with make_sessions(engine)() as session:
            broken, _ = integrity.verify(session)
    finally:
        engine.dispose()
    assert broken == []


def rows_of(url: str, request_ids: list[str]) -> dict[str, tuple[int, str, str]]:
    """request_id -> (seq, entry_sha256, xmin: the transaction that wrote it) of the lookups'
    entries (a request that opens a case also has that case's ``case.open`` entry)."""
    with psycopg.connect(libpq_url(url)) as conn:
        found = conn.execute(
            "SELECT request_id, seq, entry_sha256, xmin::text FROM audit_log "
            "WHERE request_id = ANY(%s) AND action = 'lookup.reverse'",
            (request_ids,),
        ).fetchall()
    return {r[0]: (int(r[1]), str(r[2]), str(r[3])) for r in found}


async def record(store: AsyncStore, request_id: str, case: str = "CASE-1") -> audit.Recorded:
    return await audit.record_async(
        store,
        ASKER,
        "lookup.reverse",
        revision=await store.revision(),
        request_id=request_id,
        detail={"n": request_id},
        case=case,
        status="match",
    )


async def started(database: str) -> AsyncStore:
    """A store that knows the revision already: its callers hand their entries in at once."""
    store = AsyncStore(database, 2)
    await store.revision()
    await record(store, "warm-up")
    return store


async def settled(*calls: Any) -> list[Any]:
    return list(await asyncio.gather(*calls, return_exceptions=True))


# -- the writer ------------------------------------------------------------------------------------


def test_entries_handed_in_together_commit_in_one_transaction_in_their_order(
    database: str,
) -> None:
    ids = [f"together-{k}" for k in range(40)]

    async def run() -> list[Any]:
        store = await started(database)
        try:
            return await settled(*(record(store, i) for i in ids))
        finally:
            await store.close()

    recorded = asyncio.run(run())
    seqs = [r.seq for r in recorded]
    assert seqs == list(range(seqs[0], seqs[0] + len(ids)))  # the order they were handed in
    rows = rows_of(database, ids)
    assert {rows[i][0] for i in ids} == set(seqs)
    assert [rows[i][1] for i in ids] == [r.entry_sha256 for r in recorded]
    assert len({rows[i][2] for i in ids}) == 1  # one transaction: one WAL flush
    # Each entry is chained to the one before it, as returned to its caller.
    assert [r.prev_sha256 for r in recorded[1:]] == [r.entry_sha256 for r in recorded[:-1]]
    chain_is_whole(database)


def test_two_writers_like_two_workers_chain_one_line(database: str) -> None:
    ids = [f"two-{w}-{k}" for w in range(2) for k in range(30)]

    async def run() -> list[Any]:
        # Two stores: two writers on two connections, as two uvicorn workers have.
        stores = [await started(database), await started(database)]
        try:
            return await settled(*(record(stores[k % 2], i) for k, i in enumerate(ids)))
        finally:
            for store in stores:
                await store.close()

    recorded = asyncio.run(run())
    seqs = sorted(r.seq for r in recorded)
    assert seqs == list(range(seqs[0], seqs[0] + len(ids)))
    by_seq = {r.seq: r for r in recorded}
    assert all(by_seq[s].prev_sha256 == by_seq[s - 1].entry_sha256 for s in seqs[1:])
    chain_is_whole(database)


def test_a_group_refused_at_commit_fails_every_caller_and_leaves_no_entry(database: str) -> None:
    ids = [f"refused-{k}" for k in range(12)]

    async def run() -> tuple[list[Any], list[Any]]:
        store = await started(database)
        try:
            calls = [record(store, i, POISON if k == 5 else "CASE-2") for k, i in enumerate(ids)]
            failed = await settled(*calls)
            after = await settled(record(store, "after-refused-0"), record(store, "after-1"))
            return failed, after
        finally:
            await store.close()

    failed, after = asyncio.run(run())
    assert all(isinstance(r, Unavailable) for r in failed), failed
    assert rows_of(database, ids) == {}
    # The next group starts again, right after the last committed entry.
    assert [type(r) for r in after] == [audit.Recorded, audit.Recorded]
    assert after[1].seq == after[0].seq + 1
    chain_is_whole(database)


async def _waiting_writer(admin: psycopg.AsyncConnection[Any], deadline: float) -> int:
    """The pid of the writer whose INSERT waits for the chain head's row lock."""
    while True:
        cur = await admin.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() "
            "AND wait_event_type = 'Lock' AND query LIKE '%INSERT INTO audit_log%' "
            "AND pid <> pg_backend_pid()"
        )
        row = await cur.fetchone()
        if row is not None:
            return int(row[0])
        assert time.monotonic() < deadline, "the writer never waited for the head"


def test_a_group_whose_connection_is_killed_mid_statement_fails_only_that_group(
    database: str,
) -> None:
    ids = [f"killed-{k}" for k in range(16)]

    async def run() -> tuple[list[Any], Any]:
        store = await started(database)
        url = libpq_url(database)
        try:
            async with (
                await psycopg.AsyncConnection.connect(url, autocommit=True) as admin,
                await psycopg.AsyncConnection.connect(url) as holder,
            ):
                # Another writer (another worker) holds the head: the group waits mid-statement.
                await holder.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
                group = asyncio.gather(*(record(store, i) for i in ids), return_exceptions=True)
                pid = await _waiting_writer(admin, time.monotonic() + 10)
                await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
                failed = await group
                await holder.rollback()
            return failed, await record(store, "after-killed")
        finally:
            await store.close()

    failed, after = asyncio.run(run())
    assert all(isinstance(r, Unavailable) for r in failed), failed
    assert rows_of(database, ids) == {}
    assert rows_of(database, ["after-killed"])["after-killed"][0] == after.seq
    chain_is_whole(database)


def publish_plan_for_8_8_8_8(url: str) -> None:
    """A realm whose plan holds 8.8.8.8 from 2019-06-01 on: the store moves to a new revision."""
    engine = make_engine(url)
    admin = audit.Actor("tests", "admin")
    plan = plan_from_data(
        {
            "algorithm": "block",
            "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
            "outside": {"prefixes": ["8.8.8.8/30"]},
            "block": {"ratio": 4096},
        }
    )
    try:
        with unit_of_work(make_sessions(engine)) as session:
            plans.create_realm(
                session, "moved", session_drain=timedelta(0), by=admin, single_approver=True
            )
        with unit_of_work(make_sessions(engine)) as session:
            plans.publish(
                session,
                "moved",
                plan,
                effective_from=datetime(2019, 6, 1, tzinfo=UTC),
                reason="the store moves on",
                by=admin,
                clock=lambda: datetime(2019, 1, 1, tzinfo=UTC),
            )
    finally:
        engine.dispose()


def test_an_entry_answered_at_a_revision_the_store_left_is_not_written(database: str) -> None:
    async def run() -> tuple[Any, audit.Recorded, int, int]:
        store = await started(database)
        try:
            before = await store.revision()
            await asyncio.to_thread(publish_plan_for_8_8_8_8, database)
            stale = await settled(
                audit.record_async(
                    store,
                    ASKER,
                    "lookup.reverse",
                    revision=before,
                    request_id="answered-before",
                    detail={},
                    case="CASE-3",
                    status="no_plan_in_force",
                )
            )
            again = await record(store, "answered-again")
            return stale[0], again, before, await store.revision()
        finally:
            await store.close()

    stale, again, before, after = asyncio.run(run())
    assert isinstance(stale, Stale) and stale.revision == after > before
    assert rows_of(database, ["answered-before"]) == {}
    assert rows_of(database, ["answered-again"])["answered-again"][0] == again.seq
    chain_is_whole(database)


# -- over HTTP -------------------------------------------------------------------------------------


@dataclass
class Served:
    url: str
    base: str
    tokens: dict[str, str]

    def lookups(self, cases: list[str]) -> list[httpx.Response]:
        """One reverse lookup per case, all sent at once."""

        async def run() -> list[httpx.Response]:
            limits = httpx.Limits(max_connections=len(cases))
            async with httpx.AsyncClient(base_url=self.base, timeout=30, limits=limits) as c:
                return list(await asyncio.gather(*(self.ask(c, case) for case in cases)))

        return asyncio.run(run())

    async def ask(self, client: httpx.AsyncClient, case: str) -> httpx.Response:
        body = {"ip": "8.8.8.8", "port": 1100, "time": "2020-01-01T00:00:00Z", "case": case}
        auth = {"authorization": f"Bearer {self.tokens['legal']}"}
        return await client.post("/v1/lookups/reverse", json=body, headers=auth)

    def each_answer_is_its_own_entry(self, answers: list[httpx.Response]) -> None:
        """A 200 has its entry (seq and hash as answered, its request id); a 503 is a problem
        with no answer in it, and no entry of its request exists."""
        ids = [r.headers["x-request-id"] for r in answers]
        rows = rows_of(self.url, ids)
        for answer, request_id in zip(answers, ids, strict=True):
            if answer.status_code == 200:
                found = answer.json()
                assert rows[request_id][:2] == (found["answer_id"], found["audit_sha256"])
            else:
                assert answer.status_code == 503, answer.text
                assert answer.headers["content-type"] == "application/problem+json"
                assert set(answer.json()) <= {"type", "title", "status", "detail", "code", "field"}
                assert request_id not in rows


@pytest.fixture
def served() -> Iterator[Served]:
    with throwaway_database() as url:
        with psycopg.connect(libpq_url(url), autocommit=True) as conn:
            conn.execute(REFUSE_AT_COMMIT)
        engine = make_engine(url)
        tokens = make_tokens(make_sessions(engine))
        engine.dispose()
        settings = Settings(database_url=url, rate_limit_per_second=1e6, rate_limit_burst=1e6)
        config = uvicorn.Config(
            create_app(settings), host="127.0.0.1", port=0, log_config=None, lifespan="on"
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            yield Served(url, f"http://127.0.0.1:{port}", tokens)
        finally:
            server.should_exit = True
            thread.join(20)


def test_many_concurrent_lookups_are_each_answered_with_their_own_committed_entry(
    served: Served,
) -> None:
    answers = served.lookups([f"MANY-{k % 4}" for k in range(96)])
    assert [r.status_code for r in answers] == [200] * len(answers), answers[0].text
    assert len({r.json()["answer_id"] for r in answers}) == len(answers)
    served.each_answer_is_its_own_entry(answers)
    chain_is_whole(served.url)


def test_a_lookup_refused_at_commit_gets_503_and_no_answer_and_the_next_ones_succeed(
    served: Served,
) -> None:
    answers = served.lookups([POISON if k == 7 else "FINE-1" for k in range(24)])
    assert answers[7].status_code == 503
    served.each_answer_is_its_own_entry(answers)
    again = served.lookups(["FINE-1"] * 8)
    assert [r.status_code for r in again] == [200] * 8
    served.each_answer_is_its_own_entry(again)
    chain_is_whole(served.url)


def test_a_lookup_after_a_publish_is_answered_from_the_new_plan(served: Served) -> None:
    # The worker answers at the revision its last group found; a publish since then makes the
    # entry stale at insertion, and the lookup is answered again from the published plan.
    (first,) = served.lookups(["MOVED-1"])
    assert first.json()["status"] == "no_plan_in_force"
    publish_plan_for_8_8_8_8(served.url)
    (moved,) = served.lookups(["MOVED-1"])
    assert moved.status_code == 200, moved.text
    assert moved.json()["status"] == "match"
    served.each_answer_is_its_own_entry([first, moved])
    chain_is_whole(served.url)


def test_lookups_whose_writer_is_killed_mid_group_get_503_and_no_answer(served: Served) -> None:
    served.lookups(["KILL-1"])  # the case is opened and the token known: lookups now only append

    async def run() -> list[httpx.Response]:
        url = libpq_url(served.url)
        async with (
            await psycopg.AsyncConnection.connect(url, autocommit=True) as admin,
            await psycopg.AsyncConnection.connect(url) as holder,
            httpx.AsyncClient(base_url=served.base, timeout=30) as client,
        ):
            await holder.execute("SELECT seq FROM audit_head WHERE id = 1 FOR UPDATE")
            sent = asyncio.gather(*(served.ask(client, "KILL-1") for _ in range(24)))
            pid = await _waiting_writer(admin, time.monotonic() + 10)
            await admin.execute("SELECT pg_terminate_backend(%s)", (pid,))
            await holder.rollback()
            return list(await sent)

    answers = asyncio.run(run())
    assert 503 in [r.status_code for r in answers]  # at least the group that was waiting
    served.each_answer_is_its_own_entry(answers)
    again = served.lookups(["KILL-1"] * 8)
    assert [r.status_code for r in again] == [200] * 8
    served.each_answer_is_its_own_entry(again)
    chain_is_whole(served.url)
