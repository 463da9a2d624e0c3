"""Each page does its work: lookups (audited before they are shown), answers and evidence files,
batches, realms and approvals, capacity (httpx on the app in process)."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import json
import re
import uuid
from datetime import timedelta

import httpx
import pytest
from sqlalchemy import select

from detnat.planfile import plan_from_data
from detnat.service import evidence, plans
from detnat.service.audit import Actor
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry, Case
from tests.web.conftest import ADDRESS, PORT, V1_FROM, Browser, Site, new_case

pytestmark = pytest.mark.postgres


def _lookup(browser: Browser, case: str, time: str, **extra: str) -> httpx.Response:
    data = {"ip": ADDRESS, "port": str(PORT), "time": time, "case": case, **extra}
    return browser.submit("/web/lookup", "/web/lookup", data)


def _entries(sessions: SessionFactory, case: str) -> list[AuditEntry]:
    with unit_of_work(sessions) as s:
        found = list(
            s.scalars(
                select(AuditEntry)
                .where(AuditEntry.case_ref == case, AuditEntry.action != "case.open")
                .order_by(AuditEntry.seq)
            )
        )
        s.expunge_all()
        return found


def _text(page: httpx.Response) -> str:
    """The page's text, tags removed, entities decoded, blanks collapsed."""
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())


# -- lookups ---------------------------------------------------------------------------------------


def test_a_lookup_names_the_subscriber_after_recording_it(
    site: Site, sessions: SessionFactory
) -> None:
    case = new_case()
    page = _lookup(site.browser("abuse"), case, "2020-01-01 11:00:00", legal_basis="§ 113 TKG")
    assert page.status_code == 200
    text = _text(page)
    assert "Match: one subscriber" in text
    assert "10.0.16.5/32 held 198.18.0.1 port 1100 at 2020-01-01 11:00:00 UTC" in text
    assert "ports 1099–1113 of 198.18.0.1" in text
    (entry,) = _entries(sessions, case)
    assert entry.action == "lookup.reverse" and entry.status == "match"
    assert entry.detail["query"]["via"] == "web"
    assert entry.detail["query"]["legal_basis"] == "§ 113 TKG"
    assert entry.detail["answer"]["subscriber"] == "10.0.16.5/32"
    assert f"number {entry.seq}, recorded in the audit log" in text
    assert "Evidence files are issued to the legal role" in text  # abuse gets no evidence link


def test_an_ambiguous_answer_says_why(site: Site) -> None:
    text = _text(_lookup(site.browser("legal"), new_case(), "2020-01-01T13:30:00+01:00"))
    assert "Ambiguous: the plans disagree" in text
    assert "2 plan versions could have been in force, and they disagree" in text
    assert "within the session drain after version 1 of fra was replaced" in text
    assert "it says subscriber 10.0.16.5/32" in text and "it says subscriber 10.1.16.5/32" in text
    assert "The nearest plan change is 30 min before that time" in text
    assert "Download the evidence file" in text


def test_a_tolerance_across_the_change_is_explained(site: Site) -> None:
    text = _text(_lookup(site.browser("legal"), new_case(), "2020-01-01 11:59:58", tolerance="5s"))
    assert "Ambiguous" in text
    assert "spans the plan change at 2020-01-01 12:00:00 UTC" in text


def test_a_time_in_a_zone_is_shown_as_its_utc_instant_without_a_lookup(
    site: Site, sessions: SessionFactory
) -> None:
    case = new_case()
    browser = site.browser("abuse")
    form = {"time": "2020-01-01 13:30:00", "tz": "Europe/Berlin", "action": "preview"}
    page = browser.submit("/web/lookup", "/web/lookup", form)  # no address, port or case needed
    assert page.status_code == 200
    assert "That time is the instant 2020-01-01T12:30:00Z (UTC)" in _text(page)
    assert 'id="answer"' not in page.text and 'aria-invalid="true"' not in page.text
    page = _lookup(browser, case, "2020-01-01 13:30:00", tz="Europe/Berlin", action="preview")
    assert 'id="answer"' not in page.text
    assert _entries(sessions, case) == []
    with unit_of_work(sessions) as s:
        assert s.get(Case, case) is None


def test_a_local_time_that_dst_makes_ambiguous_is_refused_with_both_readings(site: Site) -> None:
    page = _lookup(site.browser("abuse"), new_case(), "2025-10-26 02:30:00", tz="Europe/Berlin")
    assert page.status_code == 422
    text = _text(page)
    assert "happened twice in Europe/Berlin" in text
    assert "2025-10-26T02:30:00+02:00 or 2025-10-26T02:30:00+01:00" in text


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("port", "65536", "Give the port as a number from 0 to 65535."),
        ("time", "2020-01-01T11:00:00+0100", "write the offset as ±HH:MM"),
        ("tz", "Mars/Olympus", "is not a known time zone"),
        ("tolerance", "2 days", "is not a duration"),
        ("case", "", "Give the case reference this lookup is for."),
        ("case", "A\u202eB", "contains a control or direction character"),
        ("ip", "10.0.0.1", "is private address space (RFC 1918)"),
    ],
)
def test_bad_input_is_shown_at_its_field(
    site: Site, sessions: SessionFactory, field: str, value: str, message: str
) -> None:
    case = new_case()
    form = {"time": "2020-01-01 11:00:00", "case": case, field: value}
    page = site.browser("abuse").submit(
        "/web/lookup", "/web/lookup", {"ip": ADDRESS, "port": str(PORT), **form}
    )
    assert page.status_code in (403, 422)
    assert f'href="#f-{field}"' in page.text
    assert message in html.unescape(page.text)
    assert f'id="f-{field}"' in page.text and 'aria-invalid="true"' in page.text
    assert _entries(sessions, case) == []


def test_reading_an_answer_and_its_evidence_is_recorded(
    site: Site, sessions: SessionFactory
) -> None:
    case = new_case()
    legal = site.browser("legal")
    _lookup(legal, case, "2020-01-01 12:30:00")
    (lookup,) = _entries(sessions, case)
    again = legal.get(f"/web/answers/{lookup.seq}")
    assert again.status_code == 200 and "Ambiguous: the plans disagree" in _text(again)
    file = legal.get(f"/web/answers/{lookup.seq}/evidence")
    assert file.status_code == 200
    assert file.headers["content-disposition"] == (
        f'attachment; filename="evidence-{lookup.seq}.json"'
    )
    problems, recomputed = evidence.verify(json.loads(file.text))
    assert problems == [] and recomputed is not None
    assert [e.action for e in _entries(sessions, case)] == [
        "lookup.reverse",
        "answer.read",
        "evidence.read",
    ]
    assert site.browser("auditor").get(f"/web/answers/{lookup.seq}").status_code == 403
    assert legal.get("/web/answers/999999999").status_code == 404


# -- batches ---------------------------------------------------------------------------------------


def _upload(browser: Browser, body: bytes, **fields: str) -> httpx.Response:
    return browser.submit(
        "/web/batch",
        "/web/batch",
        {"tolerance": "0", **fields},
        files={"file": ("complaints.csv", body, "text/csv")},
    )


def test_a_batch_lists_failed_rows_by_line_and_carries_the_answers(
    site: Site, sessions: SessionFactory
) -> None:
    case = new_case()
    body = (
        "ip,port,time,ticket\n"
        f"{ADDRESS},{PORT},2020-01-01T11:00:00Z,T-1\n"
        "\n"
        f"{ADDRESS},{PORT},yesterday,T-2\n"
        f"{ADDRESS},{PORT},2020-01-01 21:00:00,T-3\n"
        f"{ADDRESS},{PORT},2020-01-01T12:30:00Z,=HYPERLINK()\n"
    ).encode()
    page = _upload(site.browser("abuse"), body, case=case)
    assert page.status_code == 200, page.text[:1000]
    text = _text(page)
    assert "4 rows answered" in text
    assert "2 rows could not be answered" in text
    failed = re.findall(r'<tr><td class="num">(\d+)</td><td>([^<]*)</td></tr>', page.text)
    assert [line for line, _ in failed] == ["4", "5"]
    assert "bad time" in failed[0][1]
    (entry,) = _entries(sessions, case)
    assert entry.action == "lookup.reverse_batch"
    assert entry.detail["batch"]["input_sha256"] == hashlib.sha256(body).hexdigest()
    assert entry.detail["batch"]["counts"] == {"match": 1, "error": 2, "ambiguous": 1}
    link = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', page.text)
    assert link is not None
    output = base64.b64decode(link[1])
    assert hashlib.sha256(output).hexdigest() == entry.detail["batch"]["output_sha256"]
    rows = list(csv.DictReader(io.StringIO(output.decode())))
    assert [(r["ticket"], r["status"]) for r in rows] == [
        ("T-1", "match"),
        ("T-2", "error"),
        ("T-3", "error"),
        ("'=HYPERLINK()", "ambiguous"),  # a spreadsheet formula, neutralised
    ]
    assert 'download="complaints-answers.csv"' in page.text


def test_a_batch_may_name_the_zone_of_naive_times(site: Site) -> None:
    body = f"ip,port,time\n{ADDRESS},{PORT},2020-01-01 12:00:00\n".encode()
    page = _upload(site.browser("legal"), body, case=new_case(), tz="Europe/Berlin")
    assert "1 row answered" in _text(page)
    link = re.search(r"base64,([^\"]+)\"", page.text)
    assert link is not None and b",match,,10.0.16.5/32" in base64.b64decode(link[1])


@pytest.mark.parametrize(
    ("body", "fields", "message"),
    [
        (b"", {"case": "C"}, "That file is empty."),
        (b"ip,port\n1.2.3.4,1\n", {"case": "C"}, "no column 'time'"),
        (b"ip,port,time\n", {"case": ""}, "Give the case reference this batch is for."),
        (b"ip,port,time\n", {"case": "C", "tz": "Nowhere/Else"}, "is not a known time zone"),
        (b"ip,port,time\n", {"case": "C", "realm": "no-such"}, "no realm named 'no-such'"),
    ],
)
def test_a_batch_that_cannot_be_answered_says_why(
    site: Site, body: bytes, fields: dict[str, str], message: str
) -> None:
    fields = {
        k: (f"{v}-{uuid.uuid4().hex[:6]}" if k == "case" and v else v) for k, v in fields.items()
    }
    page = _upload(site.browser("abuse"), body, **fields)
    assert page.status_code == 422
    assert message in html.unescape(page.text)


# -- realms and approvals --------------------------------------------------------------------------


def test_realms_show_their_timeline_and_what_a_version_changed(site: Site) -> None:
    browser = site.browser("legal")
    listing = _text(browser.get("/web/realms"))
    assert "fra" in listing and "lab" in listing
    assert "Waiting for approval" not in listing  # for admins
    realm = browser.get("/web/realms/fra")
    assert realm.status_code == 200
    assert realm.text.count('class="version ') == 2
    assert "CHG-2 renumber the inside" in _text(realm)
    version = _text(browser.get("/web/realms/fra/versions/2"))
    assert "inside.prefixes: +10.1.0.0/18, -10.0.0.0/18" in version
    assert "Added (only in this version) 16,384" in version
    assert "Removed (only in version 1) 16,384" in version
    first = _text(browser.get("/web/realms/fra/versions/1"))
    assert "This is the realm's first plan" in first
    assert browser.get("/web/realms/nowhere").status_code == 404
    assert browser.get("/web/realms/fra/versions/9").status_code == 404
    assert browser.get("/web/realms/fra/versions/0").status_code == 404


def test_four_eyes_the_publisher_may_not_approve_another_admin_may(
    site: Site, sessions: SessionFactory
) -> None:
    name = f"eyes-{uuid.uuid4().hex[:8]}"
    with unit_of_work(sessions) as s:
        plans.create_realm(s, name, by=Actor("tester", "admin"), session_drain=timedelta(0))
        plans.publish(
            s,
            name,
            plan_from_data(
                {
                    "algorithm": "block",
                    "inside": {"prefixes": ["10.9.0.0/18"], "subscriber_prefix_length": 32},
                    "outside": {"prefixes": ["198.18.1.0/30"]},
                    "block": {"ratio": 4096},
                }
            ),
            effective_from=V1_FROM,
            reason="CHG-9",
            by=Actor("admin", "admin"),
            correction=True,
        )
    page = f"/web/realms/{name}/versions/1"
    action = f"{page}/approval"
    publisher = site.browser("admin")
    assert f"{name} v1" in _text(publisher.get("/web/realms"))
    assert "You published this version: another admin must approve it" in _text(publisher.get(page))
    refused = publisher.submit(page, action, {"content_sha256": ""})
    assert refused.status_code == 409
    assert "a different admin must approve it" in _text(refused)
    other = site.browser("admin2")
    wrong = other.submit(page, action, {"content_sha256": "0" * 64})
    assert wrong.status_code == 409 and "approve what was published" in _text(wrong)
    shown = re.search(r'name="content_sha256" value="([0-9a-f]{64})"', other.get(page).text)
    assert shown is not None
    approved = other.submit(page, action, {"content_sha256": shown[1]})
    assert approved.status_code == 303
    assert "Approved. Lookups use this version" in _text(other.get(approved.headers["location"]))
    assert (
        site.browser("planner")
        .submit("/web/realms", action, {"content_sha256": shown[1]})
        .status_code
        == 403
    )


# -- capacity --------------------------------------------------------------------------------------


def test_capacity_sizes_a_deployment_with_its_charts(site: Site) -> None:
    browser = site.browser("planner")
    page = browser.get(
        "/web/capacity",
        params={"subscribers": "1000000", "target": "0.01", "samples": "10000"},
    )
    assert page.status_code == 200
    text = _text(page)
    assert "Recommended: blocks of 1,536 ports on 23,810 addresses" in text
    assert page.text.count('<svg class="chart" role="img" aria-labelledby="chart-caption"') == 1
    assert browser.get("/web/capacity").status_code == 200  # the empty form


def test_capacity_checks_a_realms_plan(site: Site) -> None:
    page = site.browser("admin").get(
        "/web/capacity", params={"mode": "check", "plan": "fra@1", "samples": "0"}
    )
    assert page.status_code == 200
    assert "fra v1: 16,384 subscribers on 4 addresses" in _text(page)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"subscribers": "many"}, "Give a whole number."),
        ({"subscribers": "1000", "target": "", "addresses": ""}, "give the addresses available"),
        ({"subscribers": "1000", "demand": "percentiles", "percentiles": "x"}, "PERCENTILE=PORTS"),
        ({"subscribers": "1000", "ports": "65535"}, "FIRST-LAST"),
        ({"mode": "check", "plan": "nowhere@1"}, "no realm named 'nowhere'"),
    ],
)
def test_capacity_input_problems_are_shown(
    site: Site, params: dict[str, str], message: str
) -> None:
    page = site.browser("planner").get("/web/capacity", params=params)
    assert page.status_code == 422
    assert message in html.unescape(page.text)


def test_a_port_the_logs_answer_is_explained_with_its_log_lines(
    site: Site, sessions: SessionFactory
) -> None:
    """A dynamic port answered from the NAT's logs: the page says the logs (not the plan) named
    the subscriber, and shows the allocation with the lines that make it."""
    from datetime import UTC, datetime

    from detnat.logs.events import EventKind
    from tests.logs.conftest import event, ingest

    realm = f"logged-{uuid.uuid4().hex[:6]}"
    start = datetime(2020, 2, 1, 10, 0, tzinfo=UTC)
    at_us = int(start.timestamp()) * 10**6
    plan = plan_from_data(
        {
            "algorithm": "block",
            "inside": {"prefixes": ["10.9.0.0/30"], "subscriber_prefix_length": 32},
            "outside": {"prefixes": ["198.18.9.1/32"]},
            "block": {"size": 1008, "dynamic_blocks": 60},
        }
    )
    admin = Actor("tests", "admin")
    with unit_of_work(sessions) as s:
        plans.create_realm(s, realm, session_drain=timedelta(0), by=admin, single_approver=True)
        plans.publish(
            s,
            realm,
            plan,
            effective_from=start - timedelta(days=1),
            reason="CHG-10",
            by=admin,
            clock=lambda: start - timedelta(days=2),
        )
    A, R = EventKind.ALLOCATE, EventKind.RELEASE
    ingest(
        sessions,
        realm,
        [
            event(A, at_us, "10.9.0.2", "198.18.9.1", 6064, 7071),
            event(R, at_us + 3600 * 10**6, "10.9.0.2", "198.18.9.1", 6064, 7071),
        ],
        by=admin,
    )
    data = {"ip": "198.18.9.1", "port": "6100", "time": "2020-02-01T10:30:00Z", "case": new_case()}
    page = site.browser("legal").submit("/web/lookup", "/web/lookup", data)
    assert page.status_code == 200, page.text
    text = _text(page)
    assert (
        "10.9.0.2/32 held 198.18.9.1 port 6100 at 2020-02-01 10:30:00 UTC: the NAT's own " in text
    )
    assert "the plan gives" not in text
    assert "Allocations in the NAT's own logs (1)" in text
    assert "from 2020-02-01 10:00:00 UTC to 2020-02-01 11:00:00 UTC" in text
    assert "allocate at 2020-02-01T10:00:00Z, made.log:1" in text
    assert "release at 2020-02-01T11:00:00Z, made.log:2" in text
    unlogged = dict(data, port="8000", case=new_case())
    text = _text(site.browser("legal").submit("/web/lookup", "/web/lookup", unlogged))
    assert "Nobody can be named for 198.18.9.1 port 8000" in text
    assert "no allocation in the NAT's own logs covers that port then" in text
