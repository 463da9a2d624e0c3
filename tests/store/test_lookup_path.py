"""The single lookups' lean path (``api/lookup_path.py``) against the FastAPI routes it stands in
front of: the same answers, headers and audit entries; every refusal the routes' own.

Two apps on one store: ``api`` as ``create_app`` builds it, and ``framework``, the same app without
:class:`LookupPath` (its middleware left out before the app first runs), so each request can be
sent both ways and the responses compared whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import select

from api.app import create_app
from api.lookup_path import LookupPath
from detnat.settings import Settings
from detnat.store.db import SessionFactory
from detnat.store.models import AuditEntry
from tests.store.conftest import Api
from tests.store.test_trust_api import _realm_with_plan

pytestmark = pytest.mark.postgres

REVERSE, FORWARD = "/v1/lookups/reverse", "/v1/lookups/forward"
AT = "2020-01-01T00:00:01Z"


def _framework_only(settings: Settings) -> Any:
    app = create_app(settings)
    app.user_middleware = [m for m in app.user_middleware if m.cls is not LookupPath]
    return app


def _lean(app: Any) -> LookupPath:
    layer = app.middleware_stack
    while not isinstance(layer, LookupPath):
        layer = layer.app
    return layer


@pytest.fixture
def both(database_url: str, api_tokens: dict[str, str]) -> Iterator[tuple[Api, Api]]:
    settings = Settings(database_url=database_url)
    lean, framework = (
        Api(create_app(settings), api_tokens),
        Api(_framework_only(settings), api_tokens),
    )
    yield lean, framework
    lean.close()
    framework.close()


def _send(
    api: Api, path: str, who: str | None, body: bytes | None, **headers: str
) -> httpx.Response:
    sent = {"content-type": "application/json", **headers}
    return api("POST", path, who, content=body, headers=sent)


def _same_response(
    a: httpx.Response, b: httpx.Response, *, answer: bool = False, timed: bool = False
) -> None:
    """Status, header names in order and values (but the request id, and with ``timed`` the
    seconds of Retry-After, counted from each one's own instant), and the body; an answer's entry
    (answer_id, audit_sha256) is its own."""
    assert a.status_code == b.status_code, (a.text, b.text)
    assert [k for k, _ in a.headers.items()] == [k for k, _ in b.headers.items()]
    varying = {"x-request-id", "content-length"} | ({"retry-after"} if timed else set())
    for name in a.headers:
        if name not in varying:
            assert a.headers[name] == b.headers[name], name
    if answer:  # the answers' bytes: their own dicts, compact, in the same order of keys
        mine, theirs = a.json(), b.json()
        for r, body in ((a, mine), (b, theirs)):
            assert r.content == json.dumps(body, separators=(",", ":"), ensure_ascii=False).encode()
        for key in ("answer_id", "audit_sha256"):
            assert mine.pop(key) != theirs.pop(key)
        assert list(mine.items()) == list(theirs.items())
    else:
        assert a.content == b.content
        assert a.headers.get("content-length") == b.headers.get("content-length")


def _entry(sessions: SessionFactory, request_id: str) -> AuditEntry:
    """The request's entry (beside the ``case.open`` of a case it opened)."""
    found = [e for e in _entries(sessions, request_id) if e.action != "case.open"]
    assert len(found) == 1, found
    return found[0]


def _entries(sessions: SessionFactory, request_id: str) -> list[AuditEntry]:
    with sessions() as s:
        query = select(AuditEntry).where(AuditEntry.request_id == request_id)
        return list(s.execute(query).scalars())


def test_answers_are_the_routes_answers_with_the_same_entries(
    both: tuple[Api, Api], realm_name: str, sessions: SessionFactory
) -> None:
    lean, framework = both
    ip = _realm_with_plan(lean, realm_name)
    asked = [
        (REVERSE, "legal", {"ip": ip, "port": 1100, "time": AT, "case": "LEAN-1"}),
        (REVERSE, "abuse", {"ip": ip, "port": 1100, "time": AT, "case": "LEAN-2"}),
        (REVERSE, "legal", {"ip": ip, "port": 80, "time": AT, "case": "LEAN-1", "realm": None}),
        (
            REVERSE,
            "legal",
            {
                "ip": ip,
                "port": 1100,
                "time": "2020-01-01 01:00:01",
                "tz": "Europe/Berlin",
                "tolerance_seconds": 2.5,
                "realm": realm_name,
                "case": "LEAN-1",
                "legal_basis": "§ 113 TKG",
                "requested_by": "Staatsanwältin",
            },
        ),
        (REVERSE, "legal", {"ip": "8.8.8.8", "port": 1100, "time": AT, "case": "LEAN-1"}),
        (FORWARD, "legal", {"subscriber": "10.0.0.7", "time": AT, "case": "LEAN-1"}),
        (FORWARD, "legal", {"subscriber": "10.0.0.7/32", "time": AT, "case": "LEAN-1"}),
    ]
    taken = _lean(lean.app).taken if lean.app.middleware_stack else 0
    for path, who, body in asked:
        raw = json.dumps(body).encode()
        mine, theirs = _send(lean, path, who, raw), _send(framework, path, who, raw)
        assert mine.status_code == 200, mine.text
        _same_response(mine, theirs, answer=True)
        a = _entry(sessions, mine.headers["x-request-id"])
        b = _entry(sessions, theirs.headers["x-request-id"])
        assert (a.seq, a.entry_sha256) == (mine.json()["answer_id"], mine.json()["audit_sha256"])
        for entry in (a, b):
            entry.detail.get("trace", {}).pop("now", None)  # the instant each was answered
        assert (a.action, a.case_ref, a.status, a.actor, a.detail) == (
            b.action,
            b.case_ref,
            b.status,
            b.actor,
            b.detail,
        )
    assert _lean(lean.app).taken == taken + len(asked)  # answered by the lean path, all of them


def test_refusals_before_the_inquiry_are_the_routes_own(
    both: tuple[Api, Api], realm_name: str, sessions: SessionFactory
) -> None:
    lean, framework = both
    ip = _realm_with_plan(lean, realm_name)
    good = {"ip": ip, "port": 1100, "time": AT, "case": "LEAN-R"}
    ok = json.dumps(good).encode()
    refused: list[tuple[str, str | None, bytes | None, dict[str, str]]] = [
        (REVERSE, None, ok, {}),  # 401
        (REVERSE, "dnt_" + "x" * 43, ok, {}),  # 401, unknown token
        (REVERSE, "not-a-token", ok, {}),
        (REVERSE, None, ok, {"authorization": "Basic abc"}),
        (REVERSE, None, ok, {"authorization": "Bearer "}),
        (REVERSE, "planner", ok, {}),  # 403
        (
            FORWARD,
            "abuse",
            json.dumps({"subscriber": "10.0.0.7", "time": AT, "case": "C"}).encode(),
            {},
        ),
        (REVERSE, "legal", b"x" * ((1 << 20) + 1), {}),  # 413
        (REVERSE, "legal", ok, {"content-type": "text/plain"}),  # 415
        (REVERSE, "legal", ok, {"content-type": "application/problem+json"}),
        (REVERSE, "legal", b"", {}),  # 422: no body
        (REVERSE, "legal", b"{not json", {}),
        (REVERSE, "legal", b'{"ip":"1.2.3.4","ip":"1.2.3.5","port":1,"time":"x","case":"C"}', {}),
        (REVERSE, "legal", b'{"ip":"1.2.3.4","port":1e999,"time":"x","case":"C"}', {}),
        (REVERSE, "legal", b'{"ip":"1.2.3.4","port":NaN,"time":"x","case":"C"}', {}),
        (REVERSE, "legal", json.dumps({**good, "port": "1100"}).encode(), {}),  # strict: no str
        (REVERSE, "legal", json.dumps({**good, "port": 1100.0}).encode(), {}),
        (REVERSE, "legal", json.dumps({**good, "extra": 1}).encode(), {}),
        (REVERSE, "legal", json.dumps({k: v for k, v in good.items() if k != "case"}).encode(), {}),
        (REVERSE, "legal", json.dumps({**good, "tolerance_seconds": -1}).encode(), {}),
        (REVERSE, "legal", json.dumps([good]).encode(), {}),
        (REVERSE, "legal", b"null", {}),
    ]
    taken = None
    audited = 0
    for path, who, body, headers in refused:
        mine = _send(lean, path, who, body, **headers)
        taken = _lean(lean.app).taken if taken is None else taken
        theirs = _send(framework, path, who, body, **headers)
        assert mine.status_code in (401, 403, 413, 415, 422), (path, who, body, mine.text)
        assert mine.headers["content-type"] == "application/problem+json"
        _same_response(mine, theirs)
        a = _entries(sessions, mine.headers["x-request-id"])
        b = _entries(sessions, theirs.headers["x-request-id"])
        assert [(e.action, e.detail) for e in a] == [(e.action, e.detail) for e in b]
        assert all(e.action == "lookup.refused" for e in a)
        audited += len(a)
    # The query string and its one-value rule, the methods: all the framework's.
    twice = REVERSE + "?case=A&case=B"
    _same_response(_send(lean, twice, "legal", ok), _send(framework, twice, "legal", ok))
    unknown = REVERSE + "?x=1"  # a parameter the route does not take: refused, not ignored
    mine, theirs = _send(lean, unknown, "legal", ok), _send(framework, unknown, "legal", ok)
    assert mine.status_code == 422 and mine.json()["field"] == "x"
    _same_response(mine, theirs)
    for method in ("GET", "PUT"):
        mine, theirs = lean(method, REVERSE, "legal"), framework(method, REVERSE, "legal")
        assert mine.status_code == 405
        _same_response(mine, theirs)
    assert _lean(lean.app).taken == taken  # none of them answered by the lean path
    assert audited >= 9  # refused identity requests of a known token: audited, by both alike


def test_refusals_of_the_inquiry_are_rendered_and_audited_as_the_routes_do(
    both: tuple[Api, Api], realm_name: str, sessions: SessionFactory
) -> None:
    lean, framework = both
    ip = _realm_with_plan(lean, realm_name)
    opened = _send(
        lean,
        REVERSE,
        "abuse",
        json.dumps({"ip": ip, "port": 1100, "time": AT, "case": "DESK-1"}).encode(),
    )
    assert opened.status_code == 200
    refused = [
        (REVERSE, "abuse2", {"ip": ip, "port": 1100, "time": AT, "case": "DESK-1"}, 403),
        (REVERSE, "legal", {"ip": ip, "port": 1100, "time": AT, "case": "L", "realm": "nope"}, 404),
        (REVERSE, "legal", {"ip": "300.1.1.1", "port": 1100, "time": AT, "case": "L"}, 422),
        (REVERSE, "legal", {"ip": ip, "port": 70000, "time": AT, "case": "L"}, 422),
        (REVERSE, "legal", {"ip": ip, "port": 1100, "time": "yesterday", "case": "L"}, 422),
        (REVERSE, "legal", {"ip": ip, "port": 1100, "time": AT, "case": "a\r\nb"}, 422),
        (FORWARD, "legal", {"subscriber": "not a subscriber", "time": AT, "case": "L"}, 422),
    ]
    taken = _lean(lean.app).taken
    for path, who, body, status in refused:
        raw = json.dumps(body).encode()
        mine, theirs = _send(lean, path, who, raw), _send(framework, path, who, raw)
        assert mine.status_code == status, mine.text
        _same_response(mine, theirs)
        a = _entry(sessions, mine.headers["x-request-id"])
        b = _entry(sessions, theirs.headers["x-request-id"])
        assert a.action == b.action == "lookup.refused"
        assert a.detail == b.detail and a.detail["route"] == f"POST {path}"
    assert _lean(lean.app).taken == taken + len(refused)


def test_a_revoked_token_gets_no_more_lookups_at_once(
    both: tuple[Api, Api], realm_name: str
) -> None:
    lean, framework = both
    ip = _realm_with_plan(lean, realm_name)
    made = lean("POST", "/v1/tokens", "admin", {"name": "desk-temp", "role": "abuse"}).json()
    body = json.dumps({"ip": ip, "port": 1100, "time": AT, "case": "REVOKED-1"}).encode()
    for _ in range(3):  # known to the worker now (its row cached at this revision)
        assert _send(lean, REVERSE, made["token"], body).status_code == 200
    assert lean("DELETE", f"/v1/tokens/{made['id']}", "admin").status_code == 200
    mine, theirs = (
        _send(lean, REVERSE, made["token"], body),
        _send(framework, REVERSE, made["token"], body),
    )
    assert mine.status_code == 401 and mine.json()["detail"] == "the token is not valid"
    _same_response(mine, theirs)


def test_the_rate_limit_is_the_routes_429(
    api: Api, database_url: str, api_tokens: dict[str, str], realm_name: str
) -> None:
    ip = _realm_with_plan(api, realm_name)
    settings = Settings(database_url=database_url, rate_limit_per_second=0.001, rate_limit_burst=2)
    lean = Api(create_app(settings), api_tokens)
    framework = Api(_framework_only(settings), api_tokens)
    try:
        body = json.dumps({"ip": ip, "port": 1100, "time": AT, "case": "RATE-1"}).encode()
        got = [_send(lean, REVERSE, "abuse", body).status_code for _ in range(4)]
        assert got == [200, 200, 429, 429]
        assert _lean(lean.app).taken == 2
        theirs = [_send(framework, REVERSE, "abuse", body) for _ in range(3)]
        mine = _send(lean, REVERSE, "abuse", body)
        assert [r.status_code for r in theirs] == [200, 200, 429]
        _same_response(mine, theirs[-1], timed=True)
        waits = [int(r.headers["retry-after"]) for r in (mine, theirs[-1])]
        assert all(990 <= w <= 1000 for w in waits), waits  # 1 request at 0.001/s
    finally:
        lean.close()
        framework.close()


def _raw(
    api: Api, path: str, who: str, chunks: list[bytes], *, gone: bool = False, root: str = ""
) -> list[dict[str, Any]]:
    """The app driven as a server would drive it: the body in ``chunks`` (one ``http.request``
    each, ``more_body`` on all but the last, no content-length: chunked transfer), or with
    ``gone`` the client disconnecting after them; ``root``: a root_path (a mount behind a
    proxy). What the app sent back."""
    headers = [
        (b"host", b"t"),
        (b"content-type", b"application/json"),
        (b"authorization", f"Bearer {api.api_tokens[who]}".encode()),
        (b"transfer-encoding", b"chunked"),
    ]
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": root + path, "raw_path": (root + path).encode(),
        "query_string": b"", "root_path": root, "headers": headers,
        "client": ("127.0.0.1", 50000), "server": ("t", 80), "extensions": {},
    }  # fmt: skip
    messages: list[dict[str, Any]] = [
        {"type": "http.request", "body": c, "more_body": gone or n < len(chunks) - 1}
        for n, c in enumerate(chunks)
    ]
    if gone:
        messages.append({"type": "http.disconnect"})
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        return {"type": "http.disconnect"}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    async def run() -> None:
        try:
            await api.app(scope, receive, send)
        except Exception as exc:  # a disconnect may end in the server error middleware
            sent.append({"type": "raised", "exception": exc})

    api.loop.run_until_complete(run())
    return sent


def _status_and_body(sent: list[dict[str, Any]]) -> tuple[int | None, bytes]:
    status = next((m["status"] for m in sent if m["type"] == "http.response.start"), None)
    return status, b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")


def test_a_chunked_body_is_read_whole_by_the_lean_path(
    both: tuple[Api, Api], realm_name: str
) -> None:
    lean, _ = both
    ip = _realm_with_plan(lean, realm_name)
    body = json.dumps({"ip": ip, "port": 1100, "time": AT, "case": "LEAN-C"}).encode()
    whole = _send(lean, REVERSE, "legal", body)
    taken = _lean(lean.app).taken
    status, got = _status_and_body(_raw(lean, REVERSE, "legal", [body[:7], body[7:30], body[30:]]))
    assert status == 200, got
    assert _lean(lean.app).taken == taken + 1
    mine, theirs = json.loads(got), whole.json()
    for key in ("answer_id", "audit_sha256"):
        assert mine.pop(key) != theirs.pop(key)
    assert mine == theirs


def test_a_client_gone_before_its_body_ends_gets_no_answer_and_none_is_recorded(
    both: tuple[Api, Api], realm_name: str, sessions: SessionFactory
) -> None:
    lean, _ = both
    ip = _realm_with_plan(lean, realm_name)
    body = json.dumps({"ip": ip, "port": 1100, "time": AT, "case": "LEAN-GONE"}).encode()
    taken = _lean(lean.app).taken
    # every byte of the body came, but not its end: the request never completed
    sent = _raw(lean, REVERSE, "legal", [body[:20], body[20:]], gone=True)
    assert _status_and_body(sent)[0] != 200
    assert _lean(lean.app).taken == taken
    with sessions() as s:
        asked = select(AuditEntry).where(AuditEntry.case_ref == "LEAN-GONE")
        assert list(s.execute(asked).scalars()) == []


def test_a_request_under_a_root_path_goes_the_frameworks_way(
    both: tuple[Api, Api], realm_name: str
) -> None:
    lean, framework = both
    ip = _realm_with_plan(lean, realm_name)
    body = json.dumps({"ip": ip, "port": 1100, "time": AT, "case": "LEAN-ROOT"}).encode()
    taken = _lean(lean.app).taken
    mine = _status_and_body(_raw(lean, REVERSE, "legal", [body], root="/detnat"))
    theirs = _status_and_body(_raw(framework, REVERSE, "legal", [body], root="/detnat"))
    assert _lean(lean.app).taken == taken
    assert mine[0] == theirs[0] == 200, (mine, theirs)


def test_a_published_version_is_in_the_next_answers_trace_and_evidence(
    both: tuple[Api, Api], realm_name: str, sessions: SessionFactory
) -> None:
    """The trace excerpt and a version's evidence are kept per realm object (issue 12): a version
    published between two lookups is in the second one's trace (the first version after the
    window), and a lookup after it has its evidence, as the route has them."""
    lean, framework = both
    ip = _realm_with_plan(lean, realm_name)
    raw = json.dumps({"ip": ip, "port": 1100, "time": AT, "case": "LEAN-7"}).encode()

    def traced(response: httpx.Response) -> list[int]:
        assert response.status_code == 200, response.text
        trace = _entry(sessions, response.headers["x-request-id"]).detail["trace"]
        return [v["seq"] for v in trace["realms"][realm_name]["versions"]]

    before = [_send(lean, REVERSE, "legal", raw) for _ in range(2)]  # the second from what is kept
    assert [traced(r) for r in before] == [[1], [1]]
    published = lean(
        "POST",
        f"/v1/realms/{realm_name}/versions",
        "admin",
        {
            "plan": _plan_of(lean, realm_name),
            "effective_from": "2020-01-01T00:00:03Z",
            "reason": "CHG-2",
            "correction": True,
        },
    )
    assert published.status_code == 201, published.text
    mine, theirs = _send(lean, REVERSE, "legal", raw), _send(framework, REVERSE, "legal", raw)
    _same_response(mine, theirs, answer=True)
    assert traced(mine) == traced(theirs) == [1, 2]
    later = json.dumps({"ip": ip, "port": 1100, "time": "2020-01-01T00:00:04Z", "case": "LEAN-7"})
    mine, theirs = (_send(api, REVERSE, "legal", later.encode()) for api in (lean, framework))
    _same_response(mine, theirs, answer=True)
    assert [c["version"] for c in mine.json()["candidates"]] == [2]  # the new version's evidence


def _plan_of(api: Api, realm: str) -> Any:
    shown = api("GET", f"/v1/realms/{realm}/versions/1", "admin")
    assert shown.status_code == 200, shown.text
    return shown.json()["plan"]
