"""The account of a row the NAT's own logs match, in a store of several realms: the allocation's
realm says behind which NAT the inside address sits, in a batch (complaints) as in a single
lookup. Before, a batch row matched by the logs with no realm asked had no realm, and a private
address (every IPv4 key) then got no account where the single lookup named one."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import numpy as np
import pytest

from detnat.logs.events import EventKind
from detnat.service import audit, batch_lookups, directory, log_answers, lookups, plans
from detnat.service.batch_lookups import BatchQuery, BatchReport
from detnat.service.timelines import TimelineCache
from detnat.store import logs as store
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.logs.conftest import T0_US, event, ingest, new_realm
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

S = 10**6
LEGAL = audit.Actor("l", "legal")
WEST, EAST = "198.19.200.1", "198.19.200.2"


@pytest.fixture(scope="module")
def sessions() -> Iterator[SessionFactory]:
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        yield make_sessions(engine)
        engine.dispose()


def test_a_logged_row_takes_the_account_of_its_allocations_realm(
    sessions: SessionFactory,
) -> None:
    west, east = new_realm(sessions), new_realm(sessions)
    for realm, public in ((west, WEST), (east, EAST)):
        held = [
            event(EventKind.ALLOCATE, T0_US, "100.64.0.9", public, 1024, 1535),
            event(EventKind.RELEASE, T0_US + 120 * S, "100.64.0.9", public, 1024, 1535, line=2),
        ]
        ingest(sessions, realm, held)
    since = store.instant(T0_US - 3600 * S).isoformat()
    for realm, account in ((west, "alice"), (east, "bob")):
        with unit_of_work(sessions) as s:
            body = f"subscriber,account,from,to\n100.64.0.9,{account},{since},\n".encode()
            directory.ingest(
                s, LEGAL, "csv", [directory.InputFile("d.csv", body)], tz=None,
                request_id="t", realm=realm,
            )  # fmt: skip
    at = T0_US + 60 * S
    now = lookups.utcnow()
    with sessions() as s:
        query = BatchQuery(
            snapshot=TimelineCache().get(s), now=now, mappers=plans.MapperCache(),
            tolerance=timedelta(0), logs=log_answers.BatchLogs(s, None),
            accounts=directory.BatchAccounts(s, LEGAL.role),
        )  # fmt: skip
        ips = np.array([int.from_bytes(bytes(map(int, ip.split(".")))) for ip in (WEST, EAST)])
        said = batch_lookups.answer_rows(
            query, ips, np.array([1100, 1100]), np.array([at, at]), {}, BatchReport()
        )
        assert [batch_lookups.STATUS_WORDS[k] for k in said.status] == ["match", "match"]
        assert said.account == ["alice", "bob"]
        for ip, account in ((WEST, "alice"), (EAST, "bob")):
            single = lookups.reverse_at(
                s, ip, 1100, at=store.instant(at), tolerance=timedelta(0), realm=None,
                mappers=plans.MapperCache(), timelines=TimelineCache(),
            )  # fmt: skip
            answer: dict[str, object] = dict(log_answers.consult(s, single, realm=None, now=now))
            directory.add_account(s, LEGAL, answer, {})
            assert answer["account"]["account"] == account  # type: ignore[index]
