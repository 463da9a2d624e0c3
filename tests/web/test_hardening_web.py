"""Holes a black-box probe found in the web pages (issue 10): each is refused at its field,
never a 500, a misleading 503 or text smuggled into the audit log."""

from __future__ import annotations

import html

import httpx
import pytest

from tests.web.conftest import ADDRESS, PORT, Browser, Site, new_case

pytestmark = pytest.mark.postgres


def _lookup(browser: Browser, **form: str) -> httpx.Response:
    data = {"ip": ADDRESS, "port": str(PORT), "case": new_case(), **form}
    return browser.submit("/web/lookup", "/web/lookup", data)


def _upload(browser: Browser, body: bytes, **fields: str) -> httpx.Response:
    return browser.submit(
        "/web/batch",
        "/web/batch",
        {"tolerance": "0", "case": new_case(), **fields},
        files={"file": ("complaints.csv", body, "text/csv")},
    )


def _refused_at(page: httpx.Response, field: str) -> None:
    assert page.status_code == 422, (page.status_code, page.text[:800])
    assert f'href="#f-{field}"' in page.text, html.unescape(page.text)[:2000]


@pytest.mark.parametrize("time", ["0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_a_lookup_at_the_edge_of_the_calendar_is_refused_at_the_time(site: Site, time: str) -> None:
    _refused_at(_lookup(site.browser("abuse"), time=time, tolerance="5s"), "time")


def test_a_batch_row_at_the_edge_of_the_calendar_is_a_bad_row(site: Site) -> None:
    body = (
        "ip,port,time\n"
        f"{ADDRESS},{PORT},0001-01-01T00:00:00Z\n"
        f"{ADDRESS},{PORT},2020-01-01T11:00:00Z\n"
    ).encode()
    page = _upload(site.browser("abuse"), body, tolerance="5s")
    assert page.status_code == 200, page.text[:1000]
    assert "1 row could not be answered" in " ".join(html.unescape(page.text).split())


def test_pages_say_no_store_and_static_assets_may_be_cached(site: Site) -> None:
    browser = site.browser("legal")
    page = _lookup(browser, time="2020-01-01T11:00:00Z")
    assert page.status_code == 200 and page.headers["cache-control"] == "no-store"
    assert browser.get("/web/").headers["cache-control"] == "no-store"
    assert browser.get("/web/static/web.css").headers["cache-control"].startswith("public")


@pytest.mark.parametrize(
    "tz",
    [
        "Europe/Berlin\x00",
        "UTC\r\nX-Injected: 1",
        "Europe/\u202eBerlin",
        "A" * 500_000,
        "Mars/Olympus",
    ],
    ids=["NUL", "CRLF", "bidi", "500 KB", "unknown"],
)
def test_the_zone_is_checked_even_when_the_time_has_an_offset(site: Site, tz: str) -> None:
    case = new_case()
    page = _lookup(site.browser("abuse"), time="2020-01-01T11:00:00Z", tz=tz, case=case)
    _refused_at(page, "tz")


def test_a_batch_zone_is_checked_alike(site: Site) -> None:
    body = f"ip,port,time\n{ADDRESS},{PORT},2020-01-01T11:00:00Z\n".encode()
    _refused_at(_upload(site.browser("abuse"), body, tz="UTC\x00"), "tz")
