"""The API's single reverse lookup (the async lookup path) answers dynamic ports from the logs."""

from __future__ import annotations

from datetime import timedelta

import pytest
from pydantic import TypeAdapter

from detnat.logs.events import EventKind
from detnat.service.answers import AuditedReverseAnswer
from detnat.store.db import SessionFactory
from tests.logs.conftest import T0_US, event, ingest
from tests.logs.test_store_answers import _plan_realm
from tests.store.conftest import Api

pytestmark = pytest.mark.postgres
S = 10**6


def test_reverse_over_http_answers_from_the_logs_beside_the_plan(
    sessions: SessionFactory, api: Api
) -> None:
    realm = _plan_realm(sessions, "198.18.60.1/32")
    ingest(
        sessions,
        realm,
        [
            event(EventKind.ALLOCATE, T0_US, "10.0.0.1", "198.18.60.1", 6064, 7071),
            event(EventKind.RELEASE, T0_US + 60 * S, "10.0.0.1", "198.18.60.1", 6064, 7071),
            event(EventKind.ALLOCATE, T0_US, "10.0.0.3", "198.18.60.1", 1024, 1100),
        ],
        hold=timedelta(hours=1),
    )

    def ask(port: int) -> dict:
        body = {"ip": "198.18.60.1", "port": port, "time": "2026-03-14T20:00:00Z", "case": "C-API"}
        response = api("POST", "/v1/lookups/reverse", "abuse", body)
        assert response.status_code == 200, response.text
        shown = response.json()
        TypeAdapter(AuditedReverseAnswer).validate_python(shown)  # the documented shape
        return shown

    dynamic = ask(6100)
    assert (dynamic["status"], dynamic["source"], dynamic["subscriber"]) == (
        "match",
        "log",
        "10.0.0.1/32",
    )
    disagree = ask(1050)
    assert (disagree["status"], disagree["reason"]) == ("ambiguous", "plan_and_log_disagree")
    assert {c["subscriber"] for c in disagree["log_candidates"]} == {"10.0.0.3/32"}
    unlogged = ask(9000)
    assert (unlogged["status"], unlogged["reason"]) == ("no_mapping", "not_logged")


def test_the_api_evidence_file_carries_how_its_log_lines_were_read_and_verifies(
    sessions: SessionFactory, api: Api
) -> None:
    from detnat.service import evidence

    realm = _plan_realm(sessions, "198.18.61.1/32")
    ingest(
        sessions,
        realm,
        [
            event(EventKind.ALLOCATE, T0_US, "10.0.0.1", "198.18.61.1", 6064, 7071),
            event(EventKind.RELEASE, T0_US + 60 * S, "10.0.0.1", "198.18.61.1", 6064, 7071),
        ],
    )
    body = {"ip": "198.18.61.1", "port": 6100, "time": "2026-03-14T20:00:00Z", "case": "L-API"}
    answer = api("POST", "/v1/lookups/reverse", "legal", body)
    assert answer.status_code == 200, answer.text
    assert answer.json()["source"] == "log"
    got = api("GET", f"/v1/answers/{answer.json()['answer_id']}/evidence", "legal")
    assert got.status_code == 200, got.text
    document = got.json()
    (ingested,) = document["logs"]["ingests"]
    assert ingested["action"] == "logs.ingest"
    assert ingested["detail"]["options"] == {"year": None, "tz": None, "exporter": "iana"}
    assert evidence.verify(document)[0] == []
