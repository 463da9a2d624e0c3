"""A pending version does not free its realm's addresses: until a second admin approves it, the
version before it is in force for lookups, so another realm may not take those addresses then.
Else one admin, alone, put an address in two realms as lookups see it (a pending version that
moves off a pool, then a single-approver realm of their own on it): every answer there became
ambiguous."""

from __future__ import annotations

import ipaddress
from datetime import timedelta

import pytest

from detnat.errors import Conflict
from detnat.service import audit, lookups, plans
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

ALICE, BOB = audit.Actor("alice", "admin"), audit.Actor("bob", "admin")
EARLY = clock_at(T0 - timedelta(days=10))


def _moving_off(sessions: SessionFactory, realm: str, pool: str) -> None:
    """v1 (approved) holds ``pool``; v2, pending, moves the realm to another pool at T0."""
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm, session_drain=timedelta(0), by=ALICE)
        plans.publish(
            s, realm, small_plan(pool), effective_from=T0 - timedelta(days=5), reason="1",
            by=ALICE, clock=EARLY,
        )  # fmt: skip
        plans.approve(s, realm, 1, by=BOB, clock=EARLY)
        plans.publish(
            s, realm, small_plan(fresh_pool()), effective_from=T0, reason="2", by=ALICE,
            clock=EARLY,
        )  # fmt: skip


def _take(sessions: SessionFactory, realm: str, pool: str) -> None:
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm, session_drain=timedelta(0), by=ALICE, single_approver=True)
    with unit_of_work(sessions) as s:
        plans.publish(
            s, realm, small_plan(pool, ratio=1, inside="10.99.0.0/30"), effective_from=T0,
            reason="3", by=ALICE, clock=EARLY,
        )  # fmt: skip


def test_addresses_a_pending_version_leaves_stay_with_the_version_in_force(
    sessions: SessionFactory, realm_name: str
) -> None:
    pool = fresh_pool()
    _moving_off(sessions, realm_name, pool)
    with pytest.raises(Conflict, match="one realm at a time"):
        _take(sessions, f"{realm_name}-b", pool)
    with sessions() as s:
        answer = lookups.reverse_at(
            s,
            str(ipaddress.ip_network(pool)[1]),
            1100,
            at=T0 + timedelta(hours=1),
            clock=clock_at(T0 + timedelta(days=1)),
        )
    assert answer["status"] == "match" and answer["subscriber"] == "10.0.16.5/32"


def test_once_the_move_is_approved_another_realm_may_take_the_addresses(
    sessions: SessionFactory, realm_name: str
) -> None:
    pool = fresh_pool()
    _moving_off(sessions, realm_name, pool)
    with unit_of_work(sessions) as s:
        plans.approve(s, realm_name, 2, by=BOB, clock=EARLY)
    _take(sessions, f"{realm_name}-b", pool)
