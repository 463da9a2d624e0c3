"""The Complaints page: upload a mailbox export, see the verdicts and the repeat offenders, download
the answers (httpx on the app in process, with the web tests' world: realm "fra")."""

from __future__ import annotations

import base64
import csv
import hashlib
import html
import io
import re

import pytest
from sqlalchemy import select

from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry
from tests.complaints import samples
from tests.web.conftest import ADDRESS, PORT, Site, new_case

pytestmark = pytest.mark.postgres

ARRIVAL = "Wed, 01 Jan 2020 11:00:00 +0000"  # under fra's first plan: 10.0.16.5 holds the port


def _text(page: object) -> str:
    return " ".join(html.unescape(re.sub(r"<[^>]+>", " ", page.text)).split())  # type: ignore[attr-defined]


def test_a_mailbox_export_is_answered_with_the_repeat_offenders(
    site: Site,
    sessions: SessionFactory,
) -> None:
    case = new_case()
    box = samples.mbox(
        samples.arf_mail(ADDRESS, PORT, arrival=ARRIVAL),
        samples.acns_mail(ADDRESS, PORT, "2020-01-01T10:30:00Z"),
        samples.xarf_02_mail(ADDRESS),
        b"Subject: out of office\n\nback Monday\n",
    )
    page = site.browser("abuse").submit(
        "/web/complaints",
        "/web/complaints",
        {"case": case, "tolerance": "0", "format": "auto"},
        files={"file": ("export.mbox", box, "application/mbox")},
    )
    assert page.status_code == 200, page.text[:1000]
    text = _text(page)
    assert "4 complaints answered" in text
    assert "10.0.16.5/32 (subscriber) 2" in text  # two complaints against one subscriber
    assert "feedback/abuse ×1, copyright/BitTorrent ×1" in text
    assert "1 notice could not be read" in text and "out of office" in text
    with unit_of_work(sessions) as s:
        (entry,) = s.scalars(
            select(AuditEntry).where(AuditEntry.case_ref == case, AuditEntry.action != "case.open")
        ).all()
        detail = entry.detail
    assert detail["batch"]["format"] == "complaints/auto"
    assert detail["batch"]["input_sha256"] == hashlib.sha256(box).hexdigest()
    link = re.search(r'href="data:text/csv;charset=utf-8;base64,([^"]+)"', page.text)
    assert link is not None
    output = base64.b64decode(link[1])
    assert hashlib.sha256(output).hexdigest() == detail["batch"]["output_sha256"]
    rows = list(csv.DictReader(io.StringIO(output.decode())))
    assert [r["verdict"] for r in rows] == [
        "identified", "identified", "not_ours", "unreadable",
    ]  # fmt: skip
    assert 'download="export-answers.csv"' in page.text


@pytest.mark.parametrize(
    ("fields", "body", "message"),
    [
        ({"case": ""}, b"x", "Give the case reference this batch is for."),
        ({"case": "C", "format": "pdf"}, b"x", "Choose one of auto"),
        ({"case": "C"}, b"", "That file is empty."),
        ({"case": "C", "map": "ip=a"}, b"a,b\n1,2\n", "missing time"),
    ],
)
def test_a_complaints_upload_that_cannot_be_answered_says_why(
    site: Site, fields: dict[str, str], body: bytes, message: str
) -> None:
    fields = {k: f"{v}-{new_case()}" if k == "case" and v else v for k, v in fields.items()}
    page = site.browser("abuse").submit(
        "/web/complaints",
        "/web/complaints",
        {"tolerance": "0", **fields},
        files={"file": ("a.csv", body, "text/csv")},
    )
    assert page.status_code == 422
    assert message in html.unescape(page.text)


def test_planners_do_not_see_the_page(site: Site) -> None:
    planner = site.browser("planner")
    assert planner.get("/web/complaints").status_code == 403
    assert "/web/complaints" not in planner.get("/web/").text
    home = site.browser("abuse").get("/web/")
    assert home.status_code == 200 and 'href="/web/complaints"' in home.text
