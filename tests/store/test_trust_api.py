"""Trust over the API: tokens, the role x route matrix, cases (BOLA), four eyes, the audit log,
evidence files, limits."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute
from sqlalchemy import func, select, text
from starlette.routing import Route

from api import policy
from api.app import create_app
from detnat.service import evidence, tokens
from detnat.service.audit import Actor
from detnat.settings import Settings
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry
from tests.store.conftest import TOKEN_HOLDERS, Api, fresh_pool

pytestmark = pytest.mark.postgres

PLAN = {
    "algorithm": "block",
    "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
    "block": {"ratio": 4096},
}
T = "2020-01-01T00:00:00Z"


def _realm_with_plan(api: Api, name: str, *, single: bool = True) -> str:
    pool = fresh_pool()
    created = api(
        "POST",
        "/v1/realms",
        "admin",
        {"name": name, "session_drain": "0s", "single_approver": single},
    )
    assert created.status_code == 201, created.text
    published = api(
        "POST",
        f"/v1/realms/{name}/versions",
        "admin",
        {
            "plan": {**PLAN, "outside": {"prefixes": [pool]}},
            "effective_from": T,
            "reason": "CHG-1",
            "correction": True,
        },
    )
    assert published.status_code == 201, published.text
    return pool.split("/")[0]


def _reverse(api: Api, who: str, ip: str, case: str, **extra: Any) -> httpx.Response:
    body = {"ip": ip, "port": 1100, "time": "2020-01-01T00:00:01Z", "case": case, **extra}
    # ASCII JSON (\\u escapes), so that lone surrogates can be sent as the JSON they are.
    return api(
        "POST",
        "/v1/lookups/reverse",
        who,
        content=json.dumps(body).encode(),
        headers={"content-type": "application/json"},
    )


# -- authentication and the role x route matrix ----------------------------------------------------


def _routes(app: FastAPI) -> list[tuple[str, str]]:
    """Every (method, path) the app answers: its OpenAPI operations (included routers too) and
    the routes outside the schema (docs pages, routes hidden from the schema)."""
    out = {(m.upper(), path) for path, ops in app.openapi()["paths"].items() for m in ops}
    for route in app.routes:
        if isinstance(route, Route) and not (
            isinstance(route, APIRoute) and route.include_in_schema
        ):
            out |= {(m, route.path) for m in route.methods or () if m != "HEAD"}
    return sorted(out)


@pytest.fixture
def full_app(api: Api) -> Api:
    """The app with the capacity and diff routes (included here until create_app does)."""
    if not any(path.startswith("/v1/capacity") for _, path in _routes(api.app)):
        from api.capacity import router

        api.app.include_router(router)
        api.app.openapi_schema = None
    return api


def test_every_route_has_a_policy(full_app: Api) -> None:
    api = full_app
    missing = [r for r in _routes(api.app) if policy.route_access(api.app, *r) is None]
    assert missing == [], f"routes without a declared access (refused to everyone): {missing}"
    assert _roles(api, "POST", "/v1/capacity/size") == {"planner", "admin"}
    assert _roles(api, "POST", "/v1/plans/diff") == {"planner", "admin"}
    assert policy.route_access(api.app, "GET", "/v1/something-new") is None
    assert policy.access_of(object()) is None  # nothing declared: refused


def _roles(api: Api, method: str, path: str) -> frozenset[str]:
    access = policy.route_access(api.app, method, path)
    assert access is not None, (method, path)
    return access.roles


def _filled(path: str) -> str:
    return (
        path.replace("{realm}", "no-such-realm")
        .replace("{n}", "1")
        .replace("{answer_id}", "999999999")
        .replace("{token_id}", "999999999")
        .replace("{case}", "NO-SUCH-CASE")
    )


def test_role_by_route_matrix(full_app: Api) -> None:
    """Every route x every role: denied (403) exactly when the policy says so; never 401 with a
    valid token; 401 without one unless public."""
    api = full_app
    assert ("POST", "/v1/capacity/size") in _routes(api.app)
    for method, path in _routes(api.app):
        allowed = _roles(api, method, path)
        if path.startswith("/web/"):
            continue  # pages: signed-in sessions and their own table (api/web/access.py)
        url = _filled(path)
        anonymous = api(method, url, None, {} if method in ("POST", "DELETE") else None)
        if allowed is policy.PUBLIC:
            assert anonymous.status_code not in (401, 403), (method, path)
            continue
        assert anonymous.status_code == 401, (method, path, anonymous.text)
        for holder, role in TOKEN_HOLDERS:
            got = api(method, url, holder, {} if method == "POST" else None)
            if role in allowed:
                assert got.status_code not in (401, 403), (method, path, role, got.text)
            else:
                assert got.status_code == 403, (method, path, role, got.status_code)
                assert got.json()["code"] == "forbidden"


def test_unknown_revoked_and_expired_tokens_get_the_same_401(
    api: Api, sessions: SessionFactory
) -> None:
    with unit_of_work(sessions) as s:
        revoked, row = tokens.create_token(s, name="gone", role="legal", by=Actor("t", "admin"))
        tokens.revoke_token(s, row.id, by=Actor("t", "admin"))
        expired, _ = tokens.create_token(
            s,
            name="old",
            role="legal",
            by=Actor("t", "admin"),
            expires=timedelta(minutes=1),
            clock=lambda: tokens.utcnow() - timedelta(hours=1),
        )
    answers = [
        api("GET", "/v1/realms", who)
        for who in ("dnt_" + "x" * 43, revoked, expired, "not-a-token")
    ]
    bodies = {(a.status_code, a.json()["detail"]) for a in answers}
    assert bodies == {(401, "the token is not valid")}
    assert answers[0].headers["www-authenticate"] == "Bearer"


def test_a_revoked_token_stops_working_at_once(api: Api) -> None:
    made = api("POST", "/v1/tokens", "admin", {"name": "temp", "role": "planner"})
    assert made.status_code == 201 and made.json()["token"].startswith("dnt_")
    secret, token_id = made.json()["token"], made.json()["id"]
    assert api("GET", "/v1/realms", secret).status_code == 200
    assert api("DELETE", f"/v1/tokens/{token_id}", "admin").status_code == 200
    assert api("GET", "/v1/realms", secret).status_code == 401
    listed = api("GET", "/v1/tokens", "admin").json()
    assert all("token" not in t and "token_sha256" not in t for t in listed)
    assert next(t for t in listed if t["id"] == token_id)["state"] == "revoked"


# -- cases and BOLA --------------------------------------------------------------------------------


def test_case_is_required_and_validated(api: Api, realm_name: str) -> None:
    ip = _realm_with_plan(api, realm_name)
    missing = api(
        "POST",
        "/v1/lookups/reverse",
        "legal",
        {"ip": ip, "port": 1100, "time": "2020-01-01T00:00:01Z"},
    )
    assert missing.status_code == 422 and "case" in missing.json()["detail"]
    for bad in ["", " ", "a\r\nb", "a\x00b", "x" * 201, "abc\u202edcba", "tab\there", "\ud800"]:
        got = _reverse(api, "legal", ip, bad)
        assert got.status_code == 422, (bad, got.text)
        assert got.json()["field"] == "case"


def test_bola_abuse_tokens_see_only_their_own_cases(api: Api, realm_name: str) -> None:
    ip = _realm_with_plan(api, realm_name)
    mine = _reverse(api, "abuse", ip, f"ABUSE-{realm_name}")
    assert mine.status_code == 200, mine.text
    answer_id = mine.json()["answer_id"]
    assert api("GET", f"/v1/answers/{answer_id}", "abuse").status_code == 200
    assert api("GET", f"/v1/answers/{answer_id}", "abuse2").status_code == 404
    assert api("GET", f"/v1/cases/ABUSE-{realm_name}/answers", "abuse2").status_code == 404
    assert api("GET", f"/v1/cases/ABUSE-{realm_name}/answers", "abuse").json()[0]["answer_id"] == (
        answer_id
    )
    hijack = _reverse(api, "abuse2", ip, f"ABUSE-{realm_name}")
    assert hijack.status_code == 403 and hijack.json()["field"] == "case"
    assert api("GET", f"/v1/answers/{answer_id}", "legal").status_code == 200
    assert api("GET", f"/v1/answers/{answer_id}/evidence", "abuse").status_code == 403


# -- four eyes -------------------------------------------------------------------------------------


def test_four_eyes_publishing(api: Api, realm_name: str, sessions: SessionFactory) -> None:
    pool = fresh_pool()
    ip = pool.split("/")[0]
    assert (
        api("POST", "/v1/realms", "admin", {"name": realm_name, "session_drain": "0s"}).status_code
        == 201
    )
    made = api(
        "POST",
        f"/v1/realms/{realm_name}/versions",
        "admin",
        {
            "plan": {**PLAN, "outside": {"prefixes": [pool]}},
            "effective_from": T,
            "reason": "CHG-2",
            "correction": True,
        },
    )
    assert made.json()["approved"] is False
    before = _reverse(api, "legal", ip, "CASE-4EYES", realm=realm_name)
    assert before.json()["status"] == "no_plan_in_force"
    assert before.json()["pending_approval"][0]["version"] == 1
    self_approval = api("POST", f"/v1/realms/{realm_name}/versions/1/approval", "admin", {})
    assert self_approval.status_code == 409 and "four eyes" in self_approval.json()["detail"]
    wrong = api(
        "POST",
        f"/v1/realms/{realm_name}/versions/1/approval",
        "admin2",
        {"content_sha256": "0" * 64},
    )
    assert wrong.status_code == 409
    right = api(
        "POST",
        f"/v1/realms/{realm_name}/versions/1/approval",
        "admin2",
        {"content_sha256": made.json()["content_sha256"]},
    )
    assert right.status_code == 201 and right.json()["approved_by"] == "test-admin2"
    after = _reverse(api, "legal", ip, "CASE-4EYES", realm=realm_name)
    assert after.json()["status"] == "match" and "pending_approval" not in after.json()
    # Postgres refuses a self-approval even when Python is bypassed.
    from sqlalchemy.exc import IntegrityError

    with sessions() as s, pytest.raises(IntegrityError, match="different admin"):
        s.execute(
            text("insert into realms (name, session_drain) values (:n, '0s')"),
            {"n": realm_name + "-x"},
        )
        s.execute(
            text(
                "insert into plan_versions (realm_id, seq, effective_from, record_sha256, "
                "published_at, published_by, reason, correction) select id, 1, now(), 'x', "
                "now(), 'mallory', 'r', false from realms where name = :n"
            ),
            {"n": realm_name + "-x"},
        )
        s.execute(
            text(
                "insert into plan_approvals (version_id, approved_by, approved_at, "
                "single_approver) select v.id, 'mallory', now(), true from plan_versions v "
                "join realms r on r.id = v.realm_id where r.name = :n"
            ),
            {"n": realm_name + "-x"},
        )


# -- the audit log ---------------------------------------------------------------------------------


def test_every_answer_is_audited_before_it_leaves(
    api: Api, realm_name: str, sessions: SessionFactory
) -> None:
    ip = _realm_with_plan(api, realm_name)
    case = f"CASE-AUDIT-{realm_name}"
    answers = [_reverse(api, "legal", ip, case) for _ in range(5)]
    batch = api(
        "POST",
        f"/v1/lookups/reverse/batch?case={case}",
        "legal",
        content=f"ip,port,time\n{ip},1100,{T}\n".encode(),
        headers={"content-type": "text/csv"},
    )
    assert batch.status_code == 200
    with sessions() as s:
        rows = s.scalars(select(AuditEntry).where(AuditEntry.case_ref == case)).all()
    by_request = {r.request_id: r for r in rows}
    for answer in answers:
        entry = by_request[answer.headers["x-request-id"]]
        assert entry.seq == answer.json()["answer_id"]
        assert entry.detail["answer"]["subscriber"] == answer.json()["subscriber"]
        assert entry.actor == "test-legal" and entry.role == "legal"
    entry = by_request[batch.headers["x-request-id"]]
    assert entry.detail["batch"]["rows"] == 1
    import hashlib

    assert entry.detail["batch"]["output_sha256"] == hashlib.sha256(batch.content).hexdigest()
    assert (
        entry.detail["batch"]["input_sha256"]
        == hashlib.sha256(f"ip,port,time\n{ip},1100,{T}\n".encode()).hexdigest()
    )


def test_no_answer_leaves_when_the_audit_write_fails(
    api: Api, realm_name: str, sessions: SessionFactory
) -> None:
    ip = _realm_with_plan(api, realm_name)
    with sessions() as s:
        count = s.scalar(select(func.count()).select_from(AuditEntry))
    with unit_of_work(sessions) as s:  # a fault in the database, not a mock of our code
        s.execute(
            text(
                "create function zz_refuse() returns trigger language plpgsql as "
                "$$ begin raise exception 'disk full (test)'; end $$;"
                "create trigger zz_refuse before insert on audit_log "
                "for each row execute function zz_refuse()"
            )
        )
    try:
        got = _reverse(api, "legal", ip, "CASE-FAIL")
    finally:
        with unit_of_work(sessions) as s:
            s.execute(text("drop trigger zz_refuse on audit_log; drop function zz_refuse()"))
    assert got.status_code == 503
    assert "subscriber" not in got.text and "10.0.0" not in got.text
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(AuditEntry)) == count


def test_killed_connections_give_200_or_503_and_every_200_is_audited(
    api: Api, realm_name: str, sessions: SessionFactory, database_url: str
) -> None:
    import threading

    import psycopg
    from sqlalchemy.engine import make_url

    from tests.store.conftest import _admin_conninfo

    ip = _realm_with_plan(api, realm_name)
    case = f"CASE-KILL-{realm_name}"
    done, go = threading.Event(), threading.Event()
    kills = [0]
    dbname = make_url(database_url).database

    def killer() -> None:
        # Woken before every 4th request, it kills the first backend it sees busy in a
        # transaction: the connection dies in the middle of a lookup.
        with psycopg.connect(_admin_conninfo(), autocommit=True) as conn:
            while go.wait() and not done.is_set():
                killed = conn.execute(
                    "select count(pg_terminate_backend(pid)) from pg_stat_activity "
                    "where datname = %s and pid <> pg_backend_pid() "
                    "and state in ('active', 'idle in transaction')",
                    (dbname,),
                ).fetchone()
                if killed and killed[0]:
                    kills[0] += killed[0]
                    go.clear()

    thread = threading.Thread(target=killer)
    thread.start()
    results = []
    try:
        for n in range(120):
            if n % 4 == 0:
                go.set()
            results.append(_reverse(api, "legal", ip, case))
    finally:
        done.set()
        go.set()
        thread.join()
    statuses = {r.status_code for r in results}
    assert statuses <= {200, 503}, statuses
    assert kills[0] > 0 and 503 in statuses and 200 in statuses
    with sessions() as s:
        audited = set(s.scalars(select(AuditEntry.request_id).where(AuditEntry.case_ref == case)))
    ok = {r.headers["x-request-id"] for r in results if r.status_code == 200}
    failed = {r.headers["x-request-id"] for r in results if r.status_code == 503}
    assert ok <= audited  # every answer given is in the log
    # An entry without an answer only where the commit's acknowledgement was lost.
    assert audited <= ok | failed
    for r in results:
        if r.status_code == 503:
            assert "subscriber" not in r.json()


# -- evidence files --------------------------------------------------------------------------------


def test_evidence_verifies_offline_and_a_one_byte_change_fails(api: Api, realm_name: str) -> None:
    ip = _realm_with_plan(api, realm_name)
    answer = _reverse(api, "legal", ip, "CASE-EVIDENCE", tolerance_seconds=1.5)
    document = api("GET", f"/v1/answers/{answer.json()['answer_id']}/evidence", "legal").json()
    problems, recomputed = evidence.verify(json.loads(json.dumps(document)))
    assert problems == [] and recomputed is not None
    assert recomputed["subscriber"] == answer.json()["subscriber"]
    versions = [v for r in document["realms"].values() for v in r["versions"]]
    assert versions
    for version in versions:
        for index in range(len(version["plan"]["outside"]["prefixes"][0])):
            changed = json.loads(json.dumps(document))
            plan = next(
                v
                for r in changed["realms"].values()
                for v in r["versions"]
                if v["id"] == version["id"]
            )["plan"]
            text_ = plan["outside"]["prefixes"][0]
            plan["outside"]["prefixes"][0] = (
                text_[:index] + ("9" if text_[index] != "9" else "8") + text_[index + 1 :]
            )
            bad, _ = evidence.verify(changed)
            assert bad, f"one byte changed at {index} went unnoticed"
    tampered = json.loads(json.dumps(document))
    tampered["audit_entry"]["actor"] = "someone-else"
    assert any(p.startswith("audit_entry: content") for p in evidence.verify(tampered)[0])
    forged = json.loads(json.dumps(document))
    forged["answer"]["subscriber"] = "10.0.0.6/32"
    assert evidence.verify(forged)[0]


# -- limits ----------------------------------------------------------------------------------------


def test_rate_limit_gives_429_with_retry_after(
    database_url: str, api_tokens: dict[str, str]
) -> None:
    app = create_app(
        Settings(database_url=database_url, rate_limit_per_second=0.01, rate_limit_burst=2)
    )
    client = Api(app, api_tokens)
    try:
        got = [client("GET", "/v1/realms", "planner").status_code for _ in range(3)]
        limited = client("GET", "/v1/realms", "planner")
        other = client("GET", "/v1/realms", "admin")
    finally:
        client.close()
    assert got[:2] == [200, 200] and limited.status_code == 429
    assert int(limited.headers["retry-after"]) >= 1 and other.status_code == 200


def test_batch_row_limits_per_role(
    database_url: str, api_tokens: dict[str, str], realm_name: str
) -> None:
    client = Api(create_app(Settings(database_url=database_url, batch_rows_abuse=2)), api_tokens)
    try:
        ip = _realm_with_plan(client, realm_name)
        body = f"ip,port,time\n{ip},1100,{T}\n" * 1 + f"{ip},1101,{T}\n{ip},1102,{T}\n"
        headers = {"content-type": "text/csv"}
        abuse = client(
            "POST",
            "/v1/lookups/reverse/batch?case=ROWS-1",
            "abuse",
            content=body.encode(),
            headers=headers,
        )
        legal = client(
            "POST",
            "/v1/lookups/reverse/batch?case=ROWS-1L",
            "legal",
            content=body.encode(),
            headers=headers,
        )
    finally:
        client.close()
    assert abuse.status_code == 422 and "limit is 2 rows" in abuse.json()["detail"]
    assert legal.status_code == 200
