"""Holes found by an attacker's review of the log answers (issue 13): each test failed first."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detnat.engine.results import Status
from detnat.logs.events import EventKind
from detnat.store.db import SessionFactory
from tests.logs.conftest import T0_US, event, ingest, new_realm
from tests.logs.test_store_answers import _ask, _plan_realm

pytestmark = pytest.mark.postgres

A, R = EventKind.ALLOCATE, EventKind.RELEASE
S = 10**6


def test_one_realms_logs_do_not_answer_for_an_address_another_realms_plan_holds(
    sessions: SessionFactory,
) -> None:
    """Realm X's plan holds 198.18.44.1 (port 6100 in a dynamic block); the logs of realm Y (a
    logs-only realm, or X's file ingested under the wrong realm) name 10.0.0.2 there. Asked
    without a realm, the answer must not be a clean match naming Y's subscriber: Y's 10.0.0.2 is
    another person than X's, and the plan in force says the address is X's."""
    x = _plan_realm(sessions, "198.18.44.1/32")
    y = new_realm(sessions)
    ingest(
        sessions,
        y,
        [
            event(A, T0_US, "10.0.0.2", "198.18.44.1", 6064, 7071),
            event(R, T0_US + 60 * S, "10.0.0.2", "198.18.44.1", 6064, 7071),
        ],
        hold=timedelta(hours=1),
    )
    assert _ask(sessions, x, "198.18.44.1", 6100, T0_US + 30 * S).answer["status"] != Status.MATCH
    answer = _ask(sessions, None, "198.18.44.1", 6100, T0_US + 30 * S).answer
    assert answer["status"] != Status.MATCH, answer
