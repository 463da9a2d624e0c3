"""An approval may not move a plan change into the past: a version that was not approved when it
was to take effect was not in force then (lookups answered from the version before it, and the
datapath, applied "as lookups see it", ran that one). Approving it afterwards would make every
answer of that stretch name other subscribers, with no correction to say so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from detnat.errors import Conflict, InvalidInput, NotFound
from detnat.service import audit, plans
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

ALICE, BOB = audit.Actor("alice", "admin"), audit.Actor("bob", "admin")


def _scheduled(sessions: SessionFactory, realm: str) -> None:
    """v1 in force (approved), v2 published an hour before it is to take effect at T0."""
    pool = fresh_pool()
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm, session_drain=timedelta(0), by=ALICE)
        plans.publish(
            s,
            realm,
            small_plan(pool),
            effective_from=T0 - timedelta(days=30),
            reason="CHG-1",
            by=ALICE,
            clock=clock_at(T0 - timedelta(days=31)),
        )
        plans.approve(s, realm, 1, by=BOB, clock=clock_at(T0 - timedelta(days=31)))
        plans.publish(
            s,
            realm,
            small_plan(pool, inside="10.1.0.0/18"),
            effective_from=T0,
            reason="CHG-2",
            by=ALICE,
            clock=clock_at(T0 - timedelta(hours=1)),
        )


def test_a_version_approved_after_it_was_to_take_effect_is_refused(
    sessions: SessionFactory, realm_name: str
) -> None:
    _scheduled(sessions, realm_name)
    with unit_of_work(sessions) as s, pytest.raises(Conflict, match="correction"):
        plans.approve(s, realm_name, 2, by=BOB, clock=clock_at(T0 + timedelta(days=1)))


def test_a_version_approved_before_it_takes_effect_is_approved(
    sessions: SessionFactory, realm_name: str
) -> None:
    _scheduled(sessions, realm_name)
    with unit_of_work(sessions) as s:
        plans.approve(s, realm_name, 2, by=BOB, clock=clock_at(T0 - timedelta(minutes=1)))


def test_a_four_eyes_version_effective_now_is_refused_at_publish(
    sessions: SessionFactory, realm_name: str
) -> None:
    """It could never be approved in time, and would hold its addresses while pending; a
    correction (a change already made, recorded after the fact) may still be approved later."""
    pool = fresh_pool()
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm_name, session_drain=timedelta(0), by=ALICE)
    for effective_from in (None, T0):
        with unit_of_work(sessions) as s, pytest.raises(InvalidInput, match="approval before"):
            plans.publish(
                s,
                realm_name,
                small_plan(pool),
                effective_from=effective_from,
                reason="CHG-1",
                by=ALICE,
                clock=clock_at(T0),
            )
    with unit_of_work(sessions) as s:
        plans.publish(
            s,
            realm_name,
            small_plan(pool),
            effective_from=T0,
            reason="CHG-1",
            by=ALICE,
            correction=True,
            clock=clock_at(T0),
        )
        plans.approve(s, realm_name, 1, by=BOB, clock=clock_at(T0 + timedelta(hours=1)))


@pytest.mark.parametrize("year", [9000, 9999])
def test_a_version_effective_at_the_end_of_the_calendar_is_refused(
    sessions: SessionFactory, realm_name: str, year: int
) -> None:
    """9999-12-31 (a typo for 2026, or "for ever") left no room to add the realm's drain to it:
    every reverse lookup in the realm failed with an overflow once such a version was in the
    timeline."""
    far = datetime(year, 12, 31, 23, 59, 59, tzinfo=UTC)
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm_name, session_drain=timedelta(hours=2), by=ALICE)
    with unit_of_work(sessions) as s, pytest.raises(InvalidInput) as refused:
        plans.publish(
            s, realm_name, small_plan(fresh_pool()), effective_from=far, reason="C", by=ALICE
        )
    assert refused.value.field == "effective_from"


def test_version_zero_of_a_realm_with_versions_is_not_found_as_such(
    sessions: SessionFactory, realm_name: str
) -> None:
    """It said "no versions yet" of a realm that has some."""
    _scheduled(sessions, realm_name)
    with sessions() as s, pytest.raises(NotFound, match="has no version 0"):
        plans.get_version(s, plans.get_realm(s, realm_name), 0)
