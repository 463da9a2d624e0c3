"""Cases opened from the pages: a failed lookup leaves no claim behind, in the database or in a
worker's cache (issue 10: the cache kept an owner whose row had been rolled back, so the owner got
404 on its own answers and another desk could take the case after a restart)."""

from __future__ import annotations

import re

import httpx
from sqlalchemy import select

from detnat.settings import Settings
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry, Case
from tests.web.conftest import ADDRESS, PORT, Browser, Site, World, new_case
from tests.web.support import web_app


def _lookup(browser: Browser, case: str, ip: str = ADDRESS) -> httpx.Response:
    data = {"ip": ip, "port": str(PORT), "time": "2020-01-01T11:00:00Z", "case": case}
    return browser.submit("/web/lookup", "/web/lookup", data)


def test_a_failed_lookup_leaves_no_claim_and_the_owner_keeps_its_answers(
    site: Site, settings: Settings, world: World, sessions: SessionFactory
) -> None:
    case = new_case()
    desk = site.browser("abuse")
    failed = _lookup(desk, case, ip="10.0.0.1")  # private: refused, rolled back
    assert failed.status_code == 422, failed.text[:500]
    with unit_of_work(sessions) as s:
        assert s.get(Case, case) is None

    answered = _lookup(desk, case)
    assert answered.status_code == 200, answered.text[:500]
    with unit_of_work(sessions) as s:
        row = s.get(Case, case)
        assert row is not None and row.owner == f"token:{world.token_ids['abuse']}"
        seq = s.scalars(
            select(AuditEntry.seq).where(
                AuditEntry.case_ref == case, AuditEntry.action == "lookup.reverse"
            )
        ).one()
    assert desk.get(f"/web/answers/{seq}").status_code == 200

    restarted = Site(web_app(settings), world)  # another worker, or after a restart
    try:
        taken = _lookup(restarted.browser("abuse2"), case)
        assert taken.status_code == 403
        assert restarted.browser("abuse2").get(f"/web/answers/{seq}").status_code == 404
    finally:
        restarted.close()


def test_a_refused_lookup_is_recorded(site: Site, sessions: SessionFactory) -> None:
    case = new_case()
    assert _lookup(site.browser("abuse"), case).status_code == 200
    refused = _lookup(site.browser("abuse2"), case)
    assert refused.status_code == 403
    request_id = refused.headers["x-request-id"]
    with unit_of_work(sessions) as s:
        entry = s.scalars(select(AuditEntry).where(AuditEntry.request_id == request_id)).one()
    assert entry.action == "lookup.refused" and entry.actor == "abuse2"
    assert entry.detail["status"] == 403 and re.search("someone else", entry.detail["message"])
