"""End to end in headless Chromium against a real server process: sign in, look up, an ambiguous
answer explained, a batch uploaded and its answers downloaded, approvals, capacity charts, and the
pages a role may not open. Every page is saved as a screenshot (DETNAT_WEB_ARTIFACTS, default a
temporary folder whose path is printed).

Needs Debian's ``chromium`` (``/usr/bin/chromium`` or DETNAT_CHROMIUM) and Playwright for Python
(never ``playwright install``: the system browser is driven). Without them the tests are skipped,
loudly; with DETNAT_REQUIRE_BROWSER=1 (CI) that is a failure instead.
"""

from __future__ import annotations

import csv
import io
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from api.app import create_app
from detnat.service import evidence
from detnat.settings import Settings
from tests.web.conftest import ADDRESS, PORT, REPO, World, new_case
from tests.web.support import includes_pages

CHROMIUM = os.environ.get("DETNAT_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
STARTED = "Application startup complete"


def _missing() -> str | None:
    if shutil.which(CHROMIUM) is None:
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return (
            "Playwright for Python is not installed (pip install playwright; no browser download)"
        )
    return None


@pytest.fixture(scope="module")
def chromium() -> Iterator[Any]:
    missing = _missing()
    if missing is not None:
        if os.environ.get("DETNAT_REQUIRE_BROWSER") == "1":
            pytest.fail(f"DETNAT_REQUIRE_BROWSER=1 but {missing}", pytrace=False)
        pytest.skip(f"!!! BROWSER TESTS NOT RUN: {missing} !!!")
    from playwright.sync_api import sync_playwright

    driver = sync_playwright().start()
    browser = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield browser
    browser.close()
    driver.stop()


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = os.environ.get("DETNAT_WEB_ARTIFACTS")
    path = Path(folder) if folder else tmp_path_factory.mktemp("web-screenshots")
    path.mkdir(parents=True, exist_ok=True)
    print(f"\nweb screenshots: {path}")
    return path


class Server:
    """``detnat serve`` (or uvicorn on the app with the pages) on a free port, in a subprocess."""

    def __init__(self, command: list[str], env: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.ready = threading.Event()
        self.process = subprocess.Popen(
            command,
            cwd=REPO,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.process.stderr is not None
        for line in self.process.stderr:
            self.lines.append(line)
            if STARTED in line:
                self.ready.set()
        self.ready.set()  # exited: whoever waits must look

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.reader.join(timeout=5)
        if self.process.stderr is not None:
            self.process.stderr.close()


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def server(
    chromium: Any, database_url: str, world: World, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    port = _free_port()
    env = {
        **os.environ,
        "DETNAT_DATABASE_URL": database_url,
        "DETNAT_DATA_DIR": str(tmp_path_factory.mktemp("server-data")),
        "DETNAT_RATE_LIMIT_PER_SECOND": "1000",
        "DETNAT_RATE_LIMIT_BURST": "1000",
    }
    serves_pages = includes_pages(create_app(Settings(database_url=database_url)))
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


def _refused(message: Any) -> bool:
    return message.type == "error" and not message.text.startswith("Failed to load resource")


class Visit:
    """One browser context (one person), with the page's console errors collected."""

    def __init__(self, chromium: Any, base_url: str, artifacts: Path) -> None:
        self.context = chromium.new_context(base_url=base_url, accept_downloads=True)
        self.context.set_default_timeout(10_000)
        self.page = self.context.new_page()
        self.artifacts = artifacts
        self.errors: list[str] = []
        # Script errors, and whatever the browser refused (CSP violations say "Refused to ...");
        # a page answered 403 on purpose logs "Failed to load resource", which is not one.
        self.page.on("console", lambda m: self.errors.append(m.text) if _refused(m) else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def shot(self, name: str) -> None:
        self.page.screenshot(path=str(self.artifacts / f"{name}.png"), full_page=True)

    def sign_in(self, token: str) -> None:
        from playwright.sync_api import expect

        self.page.goto("/web/sign-in")
        self.page.get_by_label("Your API token").fill(token)
        self.page.get_by_role("button", name="Sign in").click()
        expect(self.page).to_have_url(re.compile(r"/web/$"))


@pytest.fixture
def visit(chromium: Any, server: str, artifacts: Path) -> Iterator[Visit]:
    opened = Visit(chromium, server, artifacts)
    yield opened
    opened.context.close()
    # A strict CSP refuses inline scripts and styles: any violation (or script error) is here.
    assert opened.errors == [], opened.errors


def test_sign_in_shows_the_pages_of_the_role(visit: Visit, world: World) -> None:
    from playwright.sync_api import expect

    page = visit.page
    page.goto("/web/lookup")
    expect(page).to_have_url(re.compile(r"/web/sign-in\?next="))
    # Keyboard first: the skip link is the first stop.
    page.keyboard.press("Tab")
    expect(page.get_by_role("link", name="Skip to the content")).to_be_focused()
    visit.shot("sign-in")
    page.get_by_label("Your API token").fill(world.tokens["abuse"])
    page.get_by_label("Your API token").press("Enter")
    expect(page).to_have_url(re.compile(r"/web/lookup$"))  # back where they were going
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link")).to_have_text(["Lookup", "Batch", "Complaints", "Cases"])
    page.goto("/web/")
    expect(page.get_by_role("heading", level=1)).to_have_text("detnat")
    visit.shot("start-abuse")
    cookies = {c["name"]: c for c in visit.context.cookies()}
    session = cookies["__Host-detnat-session"]
    assert session["httpOnly"] and session["sameSite"] == "Strict"
    assert world.tokens["abuse"] not in session["value"]
    assert world.tokens["abuse"] not in page.content()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("status")).to_contain_text("You are signed out")
    page.goto("/web/lookup")
    expect(page).to_have_url(re.compile(r"/web/sign-in"))


def test_lookup_explains_an_ambiguous_answer_and_gives_the_evidence(
    visit: Visit, world: World, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.sign_in(world.tokens["legal"])
    page.get_by_role("link", name="Lookup").first.click()
    page.get_by_label("Public IPv4 address").fill(ADDRESS)
    page.get_by_label("Port").fill(str(PORT))
    page.get_by_label("Time (required)").fill("2020-01-01 13:30:00")
    page.get_by_label("Time zone of that time").fill("Europe/Berlin")
    # While typing: the UTC instant that local time means (Berlin is UTC+1 in January).
    expect(page.locator("#utc-preview")).to_contain_text("2020-01-01T12:30:00Z")
    page.get_by_label("Case reference").fill(new_case())
    page.get_by_role("button", name="Look up").click()
    heading = page.locator("#answer-heading")
    expect(heading).to_contain_text("Ambiguous: the plans disagree")
    expect(heading).to_be_focused()
    expect(page.locator("#utc-preview")).to_contain_text("2020-01-01T12:30:00Z")
    why = page.locator("ul.why")
    expect(why).to_contain_text("session drain after version 1 of fra was replaced")
    expect(why).to_contain_text("it says subscriber 10.0.16.5/32")
    expect(why).to_contain_text("it says subscriber 10.1.16.5/32")
    rows = page.locator("table.candidates tbody tr")
    expect(rows).to_have_count(2)
    expect(page.locator("svg.strip rect.version")).to_have_count(2)
    expect(page.locator("svg.strip rect.drain")).to_have_count(1)
    expect(page.locator("svg.strip .t-label")).to_contain_text("2020-01-01 12:30:00 UTC")
    visit.shot("lookup-ambiguous")
    with page.expect_download() as fetched:
        page.get_by_role("link", name="Download the evidence file").click()
    saved = tmp_path / fetched.value.suggested_filename
    fetched.value.save_as(saved)
    document = json.loads(saved.read_text())
    assert document["answer"]["status"] == "ambiguous"
    problems, recomputed = evidence.verify(document)
    assert problems == [] and recomputed is not None


def test_batch_upload_lists_failed_rows_and_downloads_the_answers(
    visit: Visit, world: World, tmp_path: Path
) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.sign_in(world.tokens["abuse"])
    page.goto("/web/batch")
    complaints = (
        "ip,port,time,ticket\n"
        f"{ADDRESS},{PORT},2020-01-01T11:00:00Z,T-1\n"
        f"{ADDRESS},99999,2020-01-01T11:00:00Z,T-2\n"
        f"{ADDRESS},{PORT},2020-01-01T12:30:00Z,T-3\n"
    )
    page.get_by_label("CSV file").set_input_files(
        files=[{"name": "complaints.csv", "mimeType": "text/csv", "buffer": complaints.encode()}]
    )
    page.get_by_label("Case reference").fill(new_case())
    page.get_by_role("button", name="Upload and answer").click()
    expect(page.locator("#result-heading")).to_have_text("3 rows answered")
    failed = page.locator("table.failed tbody tr")
    expect(failed).to_have_count(1)
    expect(failed.first.locator("td").first).to_have_text("3")
    expect(failed.first).to_contain_text("99999")
    visit.shot("batch-result")
    with page.expect_download() as fetched:
        page.locator("#download").click()
    assert fetched.value.suggested_filename == "complaints-answers.csv"
    saved = tmp_path / "answers.csv"
    fetched.value.save_as(saved)
    rows = list(csv.DictReader(io.StringIO(saved.read_text())))
    assert [(r["ticket"], r["status"], r["subscriber"]) for r in rows] == [
        ("T-1", "match", "10.0.16.5/32"),
        ("T-2", "error", ""),
        ("T-3", "ambiguous", ""),
    ]


def test_pages_a_role_may_not_open_are_forbidden(visit: Visit, world: World) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.sign_in(world.tokens["planner"])
    nav = page.get_by_role("navigation", name="Pages")
    expect(nav.get_by_role("link")).to_have_text(["Realms", "Capacity"])
    for path in ("/web/lookup", "/web/batch", "/web/cases"):
        response = page.goto(path)
        assert response is not None and response.status == 403, path
        expect(page.get_by_role("heading", level=1)).to_have_text("Not for your role")
    visit.shot("forbidden-planner")


def test_admins_review_and_approve_a_pending_version(visit: Visit, world: World) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.sign_in(world.tokens["admin2"])
    page.get_by_role("link", name="Realms").first.click()
    pending = page.locator("section.pending")
    expect(pending).to_contain_text("lab v1")
    visit.shot("realms")
    pending.get_by_role("row", name=re.compile(r"^lab v1 ")).get_by_role("link").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("lab version 1")
    visit.shot("version-pending")
    page.get_by_role("button", name="Approve version 1").click()
    expect(page.get_by_role("status")).to_contain_text("Approved")
    page.goto("/web/realms/fra/versions/2")
    expect(page.locator("table.diff")).to_contain_text("Change address")
    visit.shot("version-diff")
    page.goto("/web/realms/fra")
    expect(page.locator("svg.strip rect.version")).to_have_count(2)
    visit.shot("realm")


def test_capacity_sizing_draws_its_charts(visit: Visit, world: World) -> None:
    from playwright.sync_api import expect

    page = visit.page
    visit.sign_in(world.tokens["planner"])
    page.goto("/web/capacity")
    page.get_by_label("Subscribers to serve").fill("1000000")
    page.get_by_role("button", name="Compute").click()
    expect(page.locator("#result-heading")).to_contain_text("Recommended: blocks of")
    expect(page.locator("svg.chart polyline")).not_to_have_count(0)
    visit.shot("capacity")


def test_a_case_shows_its_lookups_and_audit_entries(visit: Visit, world: World) -> None:
    from playwright.sync_api import expect

    page = visit.page
    case = new_case()
    visit.sign_in(world.tokens["abuse"])
    page.goto("/web/lookup")
    page.get_by_label("Public IPv4 address").fill(f"{ADDRESS}:{PORT}")
    page.get_by_label("Time (required)").fill("2020-01-01 11:00:00")
    page.get_by_label("Case reference").fill(case)
    page.get_by_role("button", name="Look up").click()
    expect(page.locator("#answer-heading")).to_contain_text("Match: one subscriber")
    page.get_by_role("link", name=case).click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Case {case}")
    expect(page.locator("table.audit tbody tr")).to_have_count(2)  # case opened, lookup
    visit.shot("case")
    page.get_by_role("link", name=re.compile(r"^Answer \d+$")).click()
    expect(page.locator("#answer-heading")).to_contain_text("Match: one subscriber")
    visit.shot("answer")
