"""After a realm is retired, its addresses answer ``no_plan_in_force`` (issue 10).

Whatever other realms have in force: an address that the retired realm's last plan held has no plan
in force after the retirement, which is not the same as "not in any pool". Single lookups and store
batches answer alike.
"""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta

import pytest

from detnat.errors import QueryError
from detnat.service import batch_lookups, lookups, plans
from detnat.service.audit import Actor
from detnat.service.plans import MapperCache
from detnat.service.timelines import TimelineCache
from detnat.service.times import format_instant
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

PLANNED = T0 + timedelta(days=100)
RETIRED = T0 + timedelta(days=110)
NOW = T0 + timedelta(days=200)


@pytest.fixture
def world(sessions: SessionFactory, realm_name: str) -> dict[str, str]:
    """Realm A: a plan, then retired; realm B: a plan in force all along (other addresses)."""
    a_pool, b_pool = fresh_pool(), fresh_pool()
    other = realm_name + "-b"
    with unit_of_work(sessions) as s:
        for name in (realm_name, other):
            plans.create_realm(
                s, name, by=Actor("t", "admin"), session_drain=timedelta(0), single_approver=True
            )
    for name, plan, at in (
        (realm_name, small_plan(a_pool), PLANNED),
        (other, small_plan(b_pool), PLANNED),
        (realm_name, None, RETIRED),
    ):
        with unit_of_work(sessions) as s:
            plans.publish(
                s,
                name,
                plan,
                effective_from=at,
                reason="CHG-9",
                by=Actor("t", "admin"),
                clock=clock_at(T0),
            )
    return {"retired": realm_name, "a_ip": a_pool.split("/")[0], "b_ip": b_pool.split("/")[0]}


def _reverse(sessions: SessionFactory, ip: str, at, **kw) -> dict[str, object]:  # type: ignore[no-untyped-def]
    with sessions() as s:
        return lookups.reverse_at(
            s, ip, 1054, at=at, clock=clock_at(NOW), timelines=TimelineCache(), **kw
        )


def test_an_address_of_a_retired_realm_has_no_plan_in_force(
    sessions: SessionFactory, world: dict[str, str]
) -> None:
    before = _reverse(sessions, world["a_ip"], RETIRED - timedelta(days=1))
    assert before["status"] == "match"
    after = _reverse(sessions, world["a_ip"], RETIRED + timedelta(days=1))
    assert (after["status"], after["reason"]) == ("no_plan_in_force", "no_plan")
    assert after["candidates"] == []
    named = _reverse(sessions, world["a_ip"], RETIRED + timedelta(days=1), realm=world["retired"])
    assert named["status"] == "no_plan_in_force"


def test_a_window_across_the_retirement_keeps_the_plan_that_was_in_force(
    sessions: SessionFactory, world: dict[str, str]
) -> None:
    across = _reverse(sessions, world["a_ip"], RETIRED, tolerance=timedelta(seconds=2))
    assert across["status"] == "match"
    assert [c["realm"] for c in across["candidates"]] == [world["retired"]]


def test_addresses_no_plan_held_are_still_not_in_pool_or_refused(
    sessions: SessionFactory, world: dict[str, str]
) -> None:
    at = RETIRED + timedelta(days=1)
    assert _reverse(sessions, world["b_ip"], at)["status"] == "match"
    stranger = _reverse(sessions, "8.8.4.4", at)
    assert (stranger["status"], stranger["reason"]) == ("no_mapping", "not_in_pool")
    with pytest.raises(QueryError):
        _reverse(sessions, "10.9.9.9", at)


def test_store_batches_answer_a_retired_realm_like_single_lookups(
    sessions: SessionFactory, world: dict[str, str]
) -> None:
    rows = [
        (ip, format_instant(at))
        for ip in (world["a_ip"], world["b_ip"], "8.8.4.4")
        for at in (RETIRED - timedelta(days=1), RETIRED, RETIRED + timedelta(days=1))
    ]
    text = "ip,port,time\n" + "".join(f"{ip},1054,{t}\n" for ip, t in rows)
    out = io.StringIO()
    with sessions() as s:
        query = batch_lookups.BatchQuery(
            snapshot=TimelineCache().get(s), now=NOW, mappers=MapperCache()
        )
        batch_lookups.reverse_csv_at(query, io.StringIO(text, newline=""), out.write)
    answered = list(csv.DictReader(io.StringIO(out.getvalue())))
    for (ip, t), row in zip(rows, answered, strict=True):
        single = _reverse(sessions, ip, datetime.fromisoformat(t))
        assert (row["status"], row["reason"]) == (single["status"], single.get("reason", "")), (
            ip,
            t,
        )
    assert answered[2]["status"] == "no_plan_in_force"
