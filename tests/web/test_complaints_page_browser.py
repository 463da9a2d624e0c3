"""The Complaints page end to end in headless Chromium against a real server process: a mailbox
export of mixed notices (ARF, ACNS, X-ARF 0.2, a mail that is no complaint) uploaded in the
browser against a store whose subscriber directory is ingested, the answers downloaded and read,
the repeat-offender summary read off the page, by account.

A database of its own (``tests/directory/lab.py``): its directory must not give the other web
tests' answers an account. Browser and Playwright as in ``test_browser.py`` (skipped loudly
without them; DETNAT_REQUIRE_BROWSER=1 makes that a failure).
"""

from __future__ import annotations

import csv
import io
import os
import re
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from detnat.settings import Settings
from tests.complaints import samples
from tests.directory.lab import Lab, ingest_csv, lab_store
from tests.web.conftest import new_case
from tests.web.support import includes_pages
from tests.web.test_browser import (  # noqa: F401  (fixtures)
    Server,
    Visit,
    _free_port,
    artifacts,
    chromium,
)

pytestmark = pytest.mark.postgres

IP = "198.18.9.0"  # the lab plan's first pool address
# small_plan: subscriber 10.0.0.k holds ports 1024 + 15k .. 1038 + 15k of the pool's first address
ALICE_BOB, CAROL, NOBODY = 1099, 1114, 1159  # 10.0.0.5, 10.0.0.6, 10.0.0.9
DIRECTORY = (
    "subscriber,account,from,to\n"
    "10.0.0.5,alice,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
    "10.0.0.5,bob,2026-03-02T00:00:00Z,\n"
    "10.0.0.6,carol,2026-03-01T00:00:00Z,\n"
)
DAY1 = datetime(2026, 3, 1, 12, tzinfo=UTC)  # alice holds 10.0.0.5
DAY3 = datetime(2026, 3, 3, tzinfo=UTC)  # bob holds it


def _arrival(at: datetime) -> str:
    return at.strftime("%a, %d %b %Y %H:%M:%S +0000")


def _stamp(at: datetime) -> str:
    return at.strftime("%Y-%m-%dT%H:%M:%SZ")


MAILBOX = samples.mbox(
    samples.arf_mail(IP, ALICE_BOB, arrival=_arrival(DAY1)),  # alice
    samples.acns_mail(IP, ALICE_BOB, _stamp(DAY3), case_id="N-2"),  # bob
    samples.arf_mail(IP, ALICE_BOB + 3, arrival=_arrival(DAY3 + timedelta(hours=5))),  # bob
    samples.acns_mail(IP, CAROL, _stamp(DAY3), case_id="N-4"),  # carol
    samples.arf_mail(IP, NOBODY, arrival=_arrival(DAY3)),  # no account in the directory
    samples.arf_mail(IP, None, arrival=_arrival(DAY3)),  # no source port: names no one
    samples.xarf_02_mail(IP),  # 2014: before any plan
    b"Subject: out of office\n\nback Monday\n",
)


@pytest.fixture(scope="module")
def lab() -> Iterator[Lab]:
    with lab_store() as store:
        done = ingest_csv(store, DIRECTORY)
        assert done.intervals == 3 and done.refused == []
        yield store


@pytest.fixture(scope="module")
def lab_server(
    chromium: Any,  # noqa: F811
    lab: Lab,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DETNAT_DATABASE_URL": lab.url,
        "DETNAT_DATA_DIR": str(tmp_path_factory.mktemp("complaints-server-data")),
        "DETNAT_RATE_LIMIT_PER_SECOND": "1000",
        "DETNAT_RATE_LIMIT_BURST": "1000",
    }
    serves_pages = includes_pages(create_app(Settings(database_url=lab.url)))
    command = (
        [sys.executable, "-c", "from cli.main import app; app()", "serve"]
        if serves_pages
        else [
            sys.executable,
            "-m",
            "uvicorn",
            "--factory",
            "tests.web.support:app_from_environment",
        ]
    ) + ["--host", "127.0.0.1", "--port", str(port)]
    running = Server(command, env)
    try:
        if not running.ready.wait(timeout=60) or running.process.poll() is not None:
            pytest.fail(f"the server did not start: {''.join(running.lines)[-3000:]}")
        yield f"http://127.0.0.1:{port}"
    finally:
        running.stop()


@pytest.fixture
def lab_visit(
    chromium: Any,  # noqa: F811
    lab_server: str,
    artifacts: Path,  # noqa: F811
) -> Iterator[Visit]:
    opened = Visit(chromium, lab_server, artifacts)
    yield opened
    opened.context.close()
    assert opened.errors == [], opened.errors  # script errors, CSP refusals


def test_a_mailbox_export_uploaded_in_the_browser_gives_accounts_and_repeat_offenders(
    lab_visit: Visit, lab: Lab, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = lab_visit.page
    lab_visit.sign_in(lab.tokens["abuse"])
    page.get_by_role("link", name="Complaints").first.click()
    expect(page).to_have_url(re.compile(r"/web/complaints$"))
    page.get_by_label("Complaints file").set_input_files(
        files=[{"name": "export.mbox", "mimeType": "application/mbox", "buffer": MAILBOX}]
    )
    case = new_case()
    page.get_by_label("Case reference").fill(case)
    page.get_by_role("button", name="Upload and answer").click()
    expect(page.locator("#result-heading")).to_have_text("8 complaints answered")
    lab_visit.shot("complaints-result")

    verdicts = {
        row.locator("td").nth(0).inner_text(): row.locator("td").nth(2).inner_text()
        for row in page.locator("#verdicts tbody tr").all()
    }
    assert verdicts == {
        "identified": "5", "no_source_port": "1", "not_ours": "1", "unreadable": "1",
    }  # fmt: skip

    # The repeat offenders, by account; a subscriber the directory does not cover, by subscriber.
    summary = [
        [cell.inner_text().strip() for cell in row.locator("td").all()]
        for row in page.locator("#summary tbody tr").all()
    ]
    assert summary[0] == [
        "bob", "2", "2026-03-03T00:00:00Z", "2026-03-03T05:00:00Z",
        "copyright/BitTorrent ×1, feedback/abuse ×1",
    ]  # fmt: skip
    assert sorted(summary[1:]) == [
        ["10.0.0.9/32 (subscriber)", "1", "2026-03-03T00:00:00Z", "2026-03-03T00:00:00Z",
         "feedback/abuse ×1"],
        ["alice", "1", "2026-03-01T12:00:00Z", "2026-03-01T12:00:00Z", "feedback/abuse ×1"],
        ["carol", "1", "2026-03-03T00:00:00Z", "2026-03-03T00:00:00Z", "copyright/BitTorrent ×1"],
    ]  # fmt: skip
    expect(page.locator("table.failed tbody tr")).to_have_count(1)
    expect(page.locator("table.failed")).to_contain_text("out of office")

    with page.expect_download() as fetched:
        page.locator("#download").click()
    assert fetched.value.suggested_filename == "export-answers.csv"
    saved = tmp_path / "answers.csv"
    fetched.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text(encoding="utf-8"))))
    assert [
        (r["source"], r["format"], r["port"], r["verdict"], r["subscriber"], r["account"])
        for r in rows
    ] == [
        ("export.mbox#1", "arf", str(ALICE_BOB), "identified", "10.0.0.5/32", "alice"),
        ("export.mbox#2", "acns", str(ALICE_BOB), "identified", "10.0.0.5/32", "bob"),
        ("export.mbox#3", "arf", str(ALICE_BOB + 3), "identified", "10.0.0.5/32", "bob"),
        ("export.mbox#4", "acns", str(CAROL), "identified", "10.0.0.6/32", "carol"),
        ("export.mbox#5", "arf", str(NOBODY), "identified", "10.0.0.9/32", ""),
        ("export.mbox#6", "arf", "", "no_source_port", "", ""),
        ("export.mbox#7", "x-arf-0.2", "22", "not_ours", "", ""),
        ("export.mbox#8", "", "", "unreadable", "", ""),
    ]
    assert [r["complaint"] for r in rows[1:4:2]] == ["N-2", "N-4"]  # the ACNS Case/ID
    assert int(rows[5]["shared_by"]) > 1  # a shared address without its source port
