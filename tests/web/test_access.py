"""Who may open what: the pages' policy table, sign-in, sessions, CSRF, security headers (httpx on
the app in process)."""

from __future__ import annotations

import json
import re
from http.cookies import SimpleCookie

import httpx
import pytest
from fastapi import APIRouter, FastAPI
from fastapi.responses import HTMLResponse
from sqlalchemy import func, select

from api import policy
from api.web import WEB_POLICY, access
from api.web import sessions as web_sessions
from api.web.account import safe_next
from api.web.routing import SECURITY_HEADERS, TEMPLATES, WebRoute
from detnat.service import tokens
from detnat.service.audit import Actor
from detnat.settings import Settings
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry, Case
from tests.web.conftest import ADDRESS, HOLDERS, PORT, Browser, Site, new_case
from tests.web.support import web_app, web_paths

pytestmark = pytest.mark.postgres


def _filled(path: str, answer_id: int) -> str:
    return (
        path.replace("{realm}", "fra")
        .replace("{n}", "1")
        .replace("{answer_id}", str(answer_id))
        .replace("{name}", "web.css")
    )


def _lookup(browser: Browser, case: str, **extra: str) -> httpx.Response:
    data = {"ip": ADDRESS, "port": str(PORT), "time": "2020-01-01 11:00:00", "case": case, **extra}
    return browser.submit("/web/lookup", "/web/lookup", data)


def _answer_id(page: httpx.Response) -> int:
    found = re.search(r"number (\d+), recorded in the audit log", page.text)
    assert found is not None, page.text[:2000]
    return int(found[1])


def _entries(sessions: SessionFactory, case: str) -> list[str]:
    with unit_of_work(sessions) as s:
        return list(s.scalars(select(AuditEntry.action).where(AuditEntry.case_ref == case)))


# -- the policy table ------------------------------------------------------------------------------


def test_every_page_has_an_entry_and_every_entry_a_page() -> None:
    paths = web_paths()
    assert set(paths) == set(WEB_POLICY), "WEB_POLICY and the router differ"
    assert all(path.startswith("/web/") or path == "/" for _, path in paths)  # /: to /web/
    # The API's guard hands every page to the pages' own checks.
    from api.web import router

    assert all(policy.access_of(r) == policy.WEB_PAGE for r in router.routes)
    public = {p for p, roles in WEB_POLICY.items() if roles is access.PUBLIC}
    assert public == {
        ("GET", "/"),
        ("GET", "/web/static/{name}"),
        ("GET", "/web/sign-in"),
        ("POST", "/web/sign-in"),
    }


def test_the_pages_roles_are_those_of_the_api_routes_doing_the_same() -> None:
    assert WEB_POLICY[("POST", "/web/lookup")] == {"abuse", "legal"}
    assert WEB_POLICY[("GET", "/web/answers/{answer_id}/evidence")] == {"legal"}
    assert WEB_POLICY[("GET", "/web/cases")] == {"abuse", "legal", "auditor"}
    assert WEB_POLICY[("GET", "/web/realms")] == {"legal", "planner", "admin", "auditor"}
    assert WEB_POLICY[("POST", "/web/realms/{realm}/versions/{n}/approval")] == {"admin"}
    assert WEB_POLICY[("GET", "/web/capacity")] == {"planner", "admin"}
    for label, path, roles in access.NAVIGATION:
        assert WEB_POLICY[("GET", path)] == roles, label


def test_a_page_without_an_entry_is_refused_to_everyone(site: Site) -> None:
    unlisted = APIRouter(route_class=WebRoute)

    @unlisted.get("/web/unlisted")
    async def page() -> HTMLResponse:
        return HTMLResponse("should never be seen")

    app = FastAPI()
    app.include_router(unlisted)
    app.state.settings = site.app.state.settings
    client = Browser(app, site.loop)
    answer = client.get("/web/unlisted")
    site.loop.run_until_complete(client.client.aclose())
    assert answer.status_code == 403
    assert "no policy allows this page" in answer.text
    assert "should never be seen" not in answer.text


def test_anonymous_visitors_are_sent_to_sign_in(site: Site) -> None:
    anonymous = site.anonymous()
    for method, path in web_paths():
        if WEB_POLICY[(method, path)] is access.PUBLIC:
            continue
        url = _filled(path, 1)
        got = anonymous.get(url) if method == "GET" else anonymous.post(url, data={})
        assert got.status_code == 303, (method, path, got.status_code)
        assert got.headers["location"].startswith("/web/sign-in"), (method, path)
    got = anonymous.get("/web/realms/fra?x=1")
    assert got.headers["location"] == "/web/sign-in?next=%2Fweb%2Frealms%2Ffra%3Fx%3D1"


def test_each_role_opens_exactly_its_pages(site: Site) -> None:
    case = new_case()
    answer_id = _answer_id(_lookup(site.browser("abuse"), case))
    for holder, role in HOLDERS:
        if holder == "abuse2":
            continue  # another desk: its own cases only, see the BOLA tests
        browser = site.browser(holder)
        for method, path in web_paths():
            roles = WEB_POLICY[(method, path)]
            if method != "GET" or roles is access.PUBLIC:
                continue
            got = browser.get(_filled(path, answer_id))
            expected = 200 if role in roles else 403
            assert got.status_code == expected, (holder, path, got.status_code, got.text[:300])
            if expected == 403:
                assert "Not for your role" in got.text


# -- signing in ------------------------------------------------------------------------------------


def _set_cookies(response: httpx.Response) -> dict[str, str]:
    return {
        name: header
        for header in response.headers.get_list("set-cookie")
        for name in SimpleCookie(header)
    }


def test_signing_in_sets_a_host_only_secure_strict_cookie_without_the_token(
    site: Site, sessions: SessionFactory
) -> None:
    token = site.world.tokens["legal"]
    browser = site.anonymous()
    signed = browser.sign_in(token)
    assert signed.status_code == 303 and signed.headers["location"] == "/web/"
    header = _set_cookies(signed)[web_sessions.SESSION_COOKIE]
    attributes = {part.strip().lower() for part in header.split(";")}
    assert {"secure", "httponly", "samesite=strict", "path=/"} <= attributes
    assert not any(a.startswith("domain") for a in attributes)
    assert token not in header and token[4:20] not in header
    home = browser.get("/web/")
    assert home.status_code == 200 and token not in home.text
    assert "Signed in as <strong>legal</strong> (legal)" in home.text
    with unit_of_work(sessions) as s:
        signed_in = s.scalars(
            select(AuditEntry.token_id).where(AuditEntry.action == "web.sign_in")
        ).all()
    assert site.world.token_ids["legal"] in signed_in


def test_an_invalid_token_does_not_sign_in(site: Site) -> None:
    browser = site.anonymous()
    for token in ("dnt_" + "x" * 43, "not-a-token", ""):
        got = browser.sign_in(token)
        assert got.status_code == 401
        assert "That token is not valid" in got.text
        assert web_sessions.SESSION_COOKIE not in _set_cookies(got)


def test_after_signing_in_the_visitor_goes_where_they_were_going(site: Site) -> None:
    browser = site.anonymous()
    csrf = browser.csrf("/web/sign-in?next=%2Fweb%2Fbatch")
    got = browser.post(
        "/web/sign-in",
        data={"csrf": csrf, "token": site.world.tokens["abuse"], "next": "/web/batch"},
    )
    assert got.headers["location"] == "/web/batch"


@pytest.mark.parametrize(
    "target",
    ["//evil.example/", "https://evil.example/web/", "/web/\\evil", "/elsewhere", "/web/sign-in"],
)
def test_sign_in_never_sends_anyone_to_another_site(target: str) -> None:
    assert safe_next(target) == "/web/"


def test_revoking_the_token_ends_its_sessions_at_once(site: Site, sessions: SessionFactory) -> None:
    with unit_of_work(sessions) as s:
        secret, row = tokens.create_token(
            s, name="temp-desk", role="abuse", by=Actor("tests", "admin")
        )
    browser = site.anonymous()
    assert browser.sign_in(secret).status_code == 303
    assert browser.get("/web/lookup").status_code == 200
    with unit_of_work(sessions) as s:
        tokens.revoke_token(s, row.id, by=Actor("tests", "admin"))
    ended = browser.get("/web/lookup")
    assert ended.status_code == 303
    assert ended.headers["location"] == "/web/sign-in?next=%2Fweb%2Flookup&ended=1"
    assert "max-age=0" in _set_cookies(ended)[web_sessions.SESSION_COOKIE].lower()


def test_a_tampered_session_cookie_is_worth_nothing(site: Site) -> None:
    name = web_sessions.SESSION_COOKIE
    value = site.browser("admin").client.cookies[name]
    body, mac = value.split(".")
    payload = json.loads(web_sessions._unb64(body))
    stranger = site.anonymous()
    assert stranger.get("/web/realms", headers={"cookie": f"{name}={value}"}).status_code == 200
    for changed in ({"t": payload["t"] + 1}, {"i": payload["i"] + 1}, {"k": "signin"}):
        text = json.dumps({**payload, **changed}, separators=(",", ":"), sort_keys=True)
        forged = f"{web_sessions._b64(text.encode())}.{mac}"
        got = stranger.get("/web/realms", headers={"cookie": f"{name}={forged}"})
        assert got.status_code == 303, changed
    for forged in (
        f"{body}.{mac[:-2]}AA",
        body,
        "",
    ):
        got = stranger.get("/web/realms", headers={"cookie": f"{name}={forged}"})
        assert got.status_code == 303, forged


def test_signing_out_forgets_the_session(site: Site) -> None:
    browser = site.browser("planner")
    out = browser.submit("/web/", "/web/sign-out", {})
    assert out.status_code == 303 and out.headers["location"] == "/web/sign-in?signed_out=1"
    assert browser.get("/web/capacity").status_code == 303


# -- CSRF ------------------------------------------------------------------------------------------


def test_forms_without_this_sessions_csrf_token_are_refused(
    site: Site, sessions: SessionFactory
) -> None:
    case = new_case()
    browser = site.browser("legal")
    other = site.browser("legal").csrf("/web/lookup")
    form = {"ip": ADDRESS, "port": str(PORT), "time": "2020-01-01 11:00:00", "case": case}
    for extra in ({}, {"csrf": ""}, {"csrf": "x" * 43}, {"csrf": other}):
        got = browser.post("/web/lookup", data={**form, **extra})
        assert got.status_code == 400, extra
        assert "This form cannot be used" in got.text
    good = browser.csrf("/web/lookup")
    elsewhere = browser.post(
        "/web/lookup", data={**form, "csrf": good}, headers={"origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 400
    cross = browser.post(
        "/web/lookup", data={**form, "csrf": good}, headers={"sec-fetch-site": "cross-site"}
    )
    assert cross.status_code == 400
    assert _entries(sessions, case) == []  # nothing was looked up, nothing recorded
    same = browser.post(
        "/web/lookup", data={**form, "csrf": good}, headers={"origin": "https://testserver"}
    )
    assert same.status_code == 200
    assert _entries(sessions, case) == ["case.open", "lookup.reverse"]


def test_the_sign_in_form_needs_its_own_cookie(site: Site) -> None:
    token = site.world.tokens["legal"]
    csrf = site.anonymous().csrf("/web/sign-in")  # someone else's form
    stranger = site.anonymous()
    got = stranger.post("/web/sign-in", data={"csrf": csrf, "token": token})
    assert got.status_code == 400
    assert web_sessions.SESSION_COOKIE not in _set_cookies(got)


# -- headers and templates -------------------------------------------------------------------------


def test_pages_carry_a_strict_content_security_policy(site: Site) -> None:
    browser = site.browser("abuse")
    for url in ("/web/sign-in", "/web/", "/web/lookup", "/web/realms", "/web/nowhere-known"):
        got = browser.get(url)
        if url == "/web/nowhere-known":
            assert got.status_code == 404
            continue
        for name, value in SECURITY_HEADERS.items():
            assert got.headers[name] == value, (url, name)
        assert got.headers["cache-control"] == "no-store"
    csp = SECURITY_HEADERS["content-security-policy"]
    assert "unsafe-inline" not in csp and "unsafe-eval" not in csp
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp


def test_templates_have_no_inline_script_style_or_handlers() -> None:
    for template in TEMPLATES.glob("*.html"):
        text = template.read_text()
        assert not re.search(r"<script(?![^>]*\ssrc=)", text), template.name
        assert not re.search(r"\son[a-z]+\s*=", text), template.name
        assert not re.search(r"\sstyle\s*=", text), template.name
        assert "<style" not in text, template.name


def test_static_files_are_served_and_nothing_else(site: Site) -> None:
    anonymous = site.anonymous()
    css = anonymous.get("/web/static/web.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert "max-age" in css.headers["cache-control"]
    js = anonymous.get("/web/static/lookup.js")
    assert js.headers["content-type"].startswith("text/javascript")
    for name in ("nope.css", "..%2Fweb%2F__init__.py", "web.css.bak", "WEB.CSS"):
        assert anonymous.get(f"/web/static/{name}").status_code == 404, name


def test_a_slow_down_is_a_page_too(settings: Settings, site: Site) -> None:
    slow = {"rate_limit_per_second": 0.001, "rate_limit_burst": 2}
    limited = Settings(**{**settings.model_dump(), **slow})
    other = Site(web_app(limited), site.world)
    try:
        browser = other.browser("planner")  # the sign-in POST and its form are not counted
        statuses = [browser.get("/web/realms").status_code for _ in range(4)]
        assert statuses[:2] == [200, 200] and statuses[-1] == 429
        last = browser.get("/web/realms")
        assert last.status_code == 429 and "Too many requests" in last.text
        assert int(last.headers["retry-after"]) >= 1
    finally:
        other.close()


def test_cases_of_an_abuse_desk_are_its_own(site: Site, sessions: SessionFactory) -> None:
    case = new_case()
    desk = site.browser("abuse")
    answer_id = _answer_id(_lookup(desk, case))
    other = site.browser("abuse2")
    refused = _lookup(other, case)
    assert refused.status_code == 403
    assert "opened by someone else" in refused.text
    assert case not in other.get("/web/cases").text
    assert case in desk.get("/web/cases").text
    assert other.get(f"/web/cases?case={case}").status_code == 404
    assert other.get(f"/web/answers/{answer_id}").status_code == 404
    assert site.browser("legal").get(f"/web/cases?case={case}").status_code == 200
    with unit_of_work(sessions) as s:
        assert s.scalar(select(func.count()).select_from(Case).where(Case.ref == case)) == 1
