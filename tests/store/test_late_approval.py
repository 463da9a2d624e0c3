"""An approval may not move a plan change into the past: a version that was not approved when it
was to take effect was not in force then (lookups answered from the version before it, and the
datapath, applied "as lookups see it", ran that one). Approving it afterwards would make every
answer of that stretch name other subscribers, with no correction to say so."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detnat.errors import Conflict
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
