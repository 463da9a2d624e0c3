"""Who the web pages say acts: the person who holds the token, as the API says, not the token's
name -- four eyes and the audit log compare people."""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from sqlalchemy import select

from detnat.planfile import plan_from_data
from detnat.service import plans, tokens
from detnat.service.audit import Actor
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry
from tests.web.conftest import V1_FROM, Site

pytestmark = pytest.mark.postgres


def test_a_publisher_may_not_approve_on_the_web_with_a_token_named_otherwise(
    site: Site, sessions: SessionFactory
) -> None:
    """alice holds one token named 'alice-laptop' (made by another admin): she publishes
    through the API (the record says alice) and may not approve that version on the web."""
    realm = f"eyes-{uuid.uuid4().hex[:8]}"
    with unit_of_work(sessions) as s:
        secret, row = tokens.create_token(
            s,
            name=f"alice-laptop-{realm}",
            person="alice",
            role="admin",
            by=Actor("root", "admin"),
        )
        plans.create_realm(s, realm, by=Actor("root", "admin"), session_drain=timedelta(0))
        plans.publish(
            s,
            realm,
            plan_from_data(
                {
                    "algorithm": "block",
                    "inside": {"prefixes": ["10.9.64.0/18"], "subscriber_prefix_length": 32},
                    "outside": {"prefixes": ["198.18.2.0/30"]},
                    "block": {"ratio": 4096},
                }
            ),
            effective_from=V1_FROM,
            reason="CHG-10",
            by=Actor("alice", "admin", token_id=row.id),
            correction=True,
        )
    alice = site.anonymous()
    assert alice.sign_in(secret).status_code == 303
    page = f"/web/realms/{realm}/versions/1"
    refused = alice.submit(page, f"{page}/approval", {"content_sha256": ""})
    assert refused.status_code == 409
    with unit_of_work(sessions) as s:
        version = plans.get_version(s, plans.get_realm(s, realm), 1)
        assert plans.verify_approvals(s, plans.get_realm(s, realm)) == []
        assert plans.version_json(s, plans.get_realm(s, realm), version)["approved"] is False
        actors = set(s.scalars(select(AuditEntry.actor).where(AuditEntry.token_id == row.id)).all())
    assert actors <= {"alice"}, actors
