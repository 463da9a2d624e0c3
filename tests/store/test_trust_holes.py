"""The trust holes a black-box probe found (issue 10), each over the real API and Postgres.

Four eyes by one person, cases shared across roles, a negative zero that broke ``audit verify``,
refusals that left no trace, and a database owner rewriting what decides answers.
"""

from __future__ import annotations

import json
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError

from detnat.service import audit, integrity, plans
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, Api, clock_at, fresh_pool, small_plan
from tests.store.test_trust_api import PLAN, T, _realm_with_plan, _reverse

pytestmark = pytest.mark.postgres
ADMIN = audit.Actor("holes-admin", "admin")


def _broken(sessions: SessionFactory) -> list[str]:
    with sessions() as s:
        broken, _ = integrity.verify(s)
    return [str(b) for b in broken]


def test_negative_zero_tolerance_leaves_the_audit_log_verifiable(
    api: Api, realm_name: str, sessions: SessionFactory
) -> None:
    ip = _realm_with_plan(api, realm_name)
    body = json.dumps({"ip": ip, "port": 1100, "time": "2020-01-01T00:00:01Z", "case": "NZ-1"})
    body = body[:-1] + ', "tolerance_seconds": -0.0}'
    got = api(
        "POST",
        "/v1/lookups/reverse",
        "legal",
        content=body.encode(),
        headers={"content-type": "application/json"},
    )
    assert got.status_code == 200, got.text
    assert _broken(sessions) == []
    proof = api("GET", f"/v1/answers/{got.json()['answer_id']}/evidence", "legal").json()
    from detnat.service import evidence

    problems, _ = evidence.verify(proof)
    assert problems == []


def test_an_admin_cannot_approve_their_own_publish_with_a_token_they_made(
    api: Api, realm_name: str
) -> None:
    pool = fresh_pool()
    made = api(
        "POST", "/v1/tokens", "admin", {"name": f"second-{realm_name}", "role": "admin"}
    ).json()
    api.api_tokens["second"] = made["token"]
    # ... and a third made by the second: the chain of creators leads back to the publisher
    third = api("POST", "/v1/tokens", "second", {"name": f"third-{realm_name}", "role": "admin"})
    api.api_tokens["third"] = third.json()["token"]
    assert api("POST", "/v1/realms", "admin", {"name": realm_name, "session_drain": "0s"})
    published = api(
        "POST",
        f"/v1/realms/{realm_name}/versions",
        "admin",
        {
            "plan": {**PLAN, "outside": {"prefixes": [pool]}},
            "effective_from": T,
            "reason": "C",
            "correction": True,
        },
    )
    assert published.status_code == 201, published.text
    for holder in ("second", "third"):
        got = api("POST", f"/v1/realms/{realm_name}/versions/1/approval", holder, {})
        assert got.status_code == 409 and "made the token" in got.json()["detail"], got.text
    assert api(
        "POST", f"/v1/realms/{realm_name}/versions/1/approval", "admin2", {}
    ).status_code == (201)


def test_token_names_are_unique_among_active_tokens(api: Api, realm_name: str) -> None:
    first = api("POST", "/v1/tokens", "admin", {"name": f"alice-{realm_name}", "role": "admin"})
    assert first.status_code == 201
    again = api("POST", "/v1/tokens", "admin", {"name": f"alice-{realm_name}", "role": "admin"})
    assert again.status_code == 409 and "already has this name" in again.json()["detail"]
    assert api("DELETE", f"/v1/tokens/{first.json()['id']}", "admin").status_code == 200
    reused = api("POST", "/v1/tokens", "admin", {"name": f"alice-{realm_name}", "role": "admin"})
    assert reused.status_code == 201


def test_a_case_belongs_to_the_role_that_opened_it(api: Api, realm_name: str) -> None:
    ip = _realm_with_plan(api, realm_name)
    case = f"SHARED-{realm_name}"
    opened = _reverse(api, "abuse", ip, case)
    assert opened.status_code == 200
    legal = api(
        "POST",
        "/v1/lookups/forward",
        "legal",
        {
            "subscriber": "10.0.0.5",
            "time": "2020-01-01T00:00:01Z",
            "case": case,
            "legal_basis": "court order",
            "requested_by": "prosecutor",
        },
    )
    assert legal.status_code == 403 and legal.json()["field"] == "case"
    listed = api("GET", f"/v1/cases/{case}/answers", "abuse").json()
    assert [a["action"] for a in listed] == ["lookup.reverse"]


def test_refusals_and_case_listings_are_audited(
    api: Api, realm_name: str, sessions: SessionFactory
) -> None:
    ip = _realm_with_plan(api, realm_name)
    case = f"MINE-{realm_name}"
    assert _reverse(api, "abuse", ip, case).status_code == 200
    refused = _reverse(api, "abuse2", ip, case)
    invalid = _reverse(api, "abuse2", "10.0.0.1", f"OTHER-{realm_name}")
    listed = api("GET", f"/v1/cases/{case}/answers", "abuse")
    assert (refused.status_code, invalid.status_code, listed.status_code) == (403, 422, 200)
    with sessions() as s:
        for response, action in (
            (refused, "lookup.refused"),
            (invalid, "lookup.refused"),
            (listed, "case.read"),
        ):
            rid = response.headers["x-request-id"]
            found = s.execute(
                text("select action, actor from audit_log where request_id = :r order by seq"),
                {"r": rid},
            ).all()
            assert action in [a for a, _ in found], (rid, found)


# -- what the database owner can no longer do, triggers on -----------------------------------------


@pytest.fixture
def corrected(sessions: SessionFactory, realm_name: str) -> str:
    """A four-eyes realm: v1, then v2 a correction at the same instant (v1 superseded)."""
    pool = fresh_pool()
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm_name, by=ADMIN, session_drain=timedelta(minutes=5))
    for ratio in (4096, 2048):
        with unit_of_work(sessions) as s:
            plans.publish(
                s,
                realm_name,
                small_plan(pool, ratio=ratio, inside="10.0.0.0/19"),
                effective_from=T0,
                reason="CHG",
                by=ADMIN,
                correction=ratio == 2048,
                clock=clock_at(T0 - timedelta(days=1)),
            )
    return realm_name


@pytest.mark.parametrize(
    "statement",
    [
        "update plan_versions set superseded = true where seq = 2 and realm_id = {realm}",
        "update plan_versions set superseded = false where seq = 1 and realm_id = {realm}",
        "update realms set session_drain = interval '0' where id = {realm}",
        "update realms set single_approver = true where id = {realm}",
        "delete from realms where id = {realm}",
        "truncate plan_approvals cascade",
        "truncate cases cascade",
        "truncate audit_checkpoints cascade",
        "truncate audit_head cascade",
        "truncate realms cascade",
        "truncate plan_version_ranges cascade",
        "truncate store_revision",
        "delete from audit_head",
        "update store_revision set revision = revision - 1",
    ],
)
def test_the_owner_cannot_change_what_decides_an_answer(
    sessions: SessionFactory, corrected: str, statement: str
) -> None:
    realm = f"(select id from realms where name = '{corrected}')"
    with sessions() as s, pytest.raises(DBAPIError, match=r"append-only|refused|only|moved only"):
        s.execute(text(statement.format(realm=realm)))
    assert _broken(sessions) == []


def test_superseded_is_set_by_the_correction_itself(
    sessions: SessionFactory, corrected: str
) -> None:
    with sessions() as s:
        rows = s.execute(
            text(
                "select seq, superseded, supersedes_id is not null from plan_versions "
                "where realm_id = (select id from realms where name = :r) order by seq"
            ),
            {"r": corrected},
        ).all()
    assert [tuple(r) for r in rows] == [(1, True, False), (2, False, True)]


@pytest.mark.parametrize("expires", ["９０d", "٩٠d", "90 d", "0d", "99999d"])
def test_token_lifetimes_take_ascii_digits_in_range_only(expires: str) -> None:
    from detnat.errors import InvalidInput
    from detnat.service import tokens

    with pytest.raises(InvalidInput, match="expires"):
        tokens.parse_expiry(expires, field="expires")
