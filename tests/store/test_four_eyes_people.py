"""Four eyes compares people, not spellings: the publisher's name written in another case, with
blanks around it, in a compatibility form or with an invisible format character is still the
publisher (a careless operator makes a second token for "Alice " and she approves her own plan)."""

from __future__ import annotations

from datetime import timedelta

import pytest

from detnat.errors import Conflict
from detnat.service import audit, plans, tokens
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

BEFORE = clock_at(T0 - timedelta(minutes=30))  # approvals come before the version takes effect
SPELLINGS = ("Alice", " alice", "alice ", "ALICE", "ａｌｉｃｅ", "ali\u200bce", "alice\u00ad")


def _published(sessions: SessionFactory, realm: str, publisher: audit.Actor) -> None:
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm, session_drain=timedelta(0), by=publisher)
        plans.publish(
            s,
            realm,
            small_plan(fresh_pool()),
            effective_from=T0,
            reason="CHG-1",
            by=publisher,
            clock=clock_at(T0 - timedelta(hours=1)),
        )


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_the_publisher_under_another_spelling_may_not_approve(
    sessions: SessionFactory, realm_name: str, spelling: str
) -> None:
    _published(sessions, realm_name, audit.Actor("alice", "admin"))
    with unit_of_work(sessions) as s, pytest.raises(Conflict, match="four eyes"):
        plans.approve(s, realm_name, 1, by=audit.Actor(spelling, "admin"), clock=BEFORE)


@pytest.mark.parametrize("spelling", ("Alice", "alice "))
def test_a_token_made_by_the_publisher_under_another_spelling_may_not_approve(
    sessions: SessionFactory, realm_name: str, spelling: str
) -> None:
    _published(sessions, realm_name, audit.Actor("alice", "admin"))
    with unit_of_work(sessions) as s:
        _, row = tokens.create_token(
            s,
            name=f"bob-{realm_name}",
            person="bob",
            role="admin",
            by=audit.Actor(spelling, "admin"),
        )
        bob = audit.Actor("bob", "admin", token_id=row.id)
    with unit_of_work(sessions) as s, pytest.raises(Conflict, match="four eyes"):
        plans.approve(s, realm_name, 1, by=bob, clock=BEFORE)


def test_another_person_may_approve(sessions: SessionFactory, realm_name: str) -> None:
    _published(sessions, realm_name, audit.Actor("alice", "admin"))
    with unit_of_work(sessions) as s:
        plans.approve(s, realm_name, 1, by=audit.Actor("alicia", "admin"), clock=BEFORE)
        assert plans.verify_approvals(s, plans.get_realm(s, realm_name)) == []


def test_the_approver_may_not_approve_what_was_published_with_a_token_they_made(
    sessions: SessionFactory, realm_name: str
) -> None:
    """alice makes a token naming bob (she saw it when it was made), publishes with it, and
    approves as herself: one person, two names. Refused as the mirror case is (approving with a
    token the publisher made), up the chain of creators."""
    with unit_of_work(sessions) as s:
        _, mine = tokens.create_token(
            s, name=f"alice-{realm_name}", role="admin", by=audit.Actor("root", "admin")
        )
        alice = audit.Actor("alice", "admin", token_id=mine.id)
        _, made = tokens.create_token(
            s, name=f"bob-{realm_name}", person="bob", role="admin", by=alice
        )
        _, made2 = tokens.create_token(
            s,
            name=f"carol-{realm_name}",
            person="carol",
            role="admin",
            by=audit.Actor("bob", "admin", token_id=made.id),
        )
    for n, publisher in enumerate((made, made2), start=1):
        realm = f"{realm_name}-{n}"
        _published(sessions, realm, audit.Actor(publisher.person, "admin", token_id=publisher.id))
        with unit_of_work(sessions) as s, pytest.raises(Conflict, match="four eyes"):
            plans.approve(s, realm, 1, by=alice, clock=BEFORE)
        with unit_of_work(sessions) as s:
            plans.approve(s, realm, 1, by=audit.Actor("dave", "admin"), clock=BEFORE)
