"""The directory in the store: ingest (audited, verified), accounts on answers, roles over HTTP.

A database of its own: its intervals must not give other tests' answers an account.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from typer.testing import CliRunner

from cli.main import app as cli_app
from detnat.service import audit, directory, integrity
from detnat.settings import Settings, get_settings
from detnat.store.db import unit_of_work
from tests.directory.lab import OPS, Lab, ingest_csv, lab_store
from tests.store.conftest import Api

pytestmark = pytest.mark.postgres

DIRECTORY = (
    "subscriber,account,from,to\n"
    "10.0.0.5,alice,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z\n"
    "10.0.0.5,bob,2026-03-01T01:00:00Z,\n"
    "10.0.0.4/30,block-owner,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
    "2001:db8:1:100::/56,carol,2026-03-01T00:00:00Z,\n"
)


@pytest.fixture(scope="module")
def store() -> Iterator[Lab]:
    with lab_store() as lab:
        done = ingest_csv(lab, DIRECTORY)
        assert (done.records, done.intervals, done.refused) == (4, 4, [])
        yield lab


def _ask(api: Api, who: str, port: int, time: str, tolerance: float = 0) -> dict[str, object]:
    body = {
        "ip": "198.18.9.0",
        "port": port,
        "time": time,
        "case": f"C-{who}",
        "tolerance_seconds": tolerance,
    }
    response = api("POST", "/v1/lookups/reverse", who, body)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


@pytest.fixture
def api(store: Lab) -> Iterator[Api]:
    from api.app import create_app

    client = Api(create_app(Settings(database_url=store.url)), store.tokens)
    yield client
    client.close()


def test_legal_sees_the_account_and_its_source_lines(api: Api) -> None:
    answer = _ask(api, "legal", 1099, "2026-03-01T00:30:00Z")
    assert answer["subscriber"] == "10.0.0.5/32"
    account = answer["account"]
    assert isinstance(account, dict) and account["status"] == "ambiguous"
    # the /30 export row and alice's row both cover 10.0.0.5: two accounts, named both
    assert sorted(h["account"] for h in account["held"]) == ["alice", "block-owner"]
    alice = next(h for h in account["held"] if h["account"] == "alice")
    assert alice["from"] == "2026-03-01T00:00:00Z" and alice["to"] == "2026-03-01T01:00:00Z"
    (line,) = alice["sources"]
    assert (line["file"], line["line"]) == ("dir.csv", 2) and line["text"].startswith("10.0.0.5,")


def test_abuse_sees_the_account_but_not_the_lines_and_planner_no_lookup(api: Api) -> None:
    answer = _ask(api, "abuse", 1159, "2026-03-01T00:30:00Z")  # 10.0.0.9: the /30 does not cover
    assert answer["account"] is None and "no interval" in str(answer["account_reason"])
    answer = _ask(api, "abuse", 1099, "2026-03-03T00:00:00Z")  # bob alone, the /30 has ended
    account = answer["account"]
    assert isinstance(account, dict)
    assert account["status"] == "identified" and account["account"] == "bob"
    assert "sources" not in account["held"][0]
    refused = api(
        "POST",
        "/v1/lookups/reverse",
        "planner",
        {"ip": "198.18.9.0", "port": 1099, "time": "2026-03-03T00:00:00Z", "case": "P"},
    )
    assert refused.status_code == 403


def test_a_window_where_the_prefix_changed_hands_is_ambiguous_with_both(api: Api) -> None:
    answer = _ask(api, "legal", 1099, "2026-03-02T01:00:00Z", tolerance=0)
    assert answer["account"]["account"] == "bob"  # type: ignore[index]
    answer = _ask(api, "legal", 1099, "2026-03-02T00:00:00Z", tolerance=5)
    held = answer["account"]["held"]  # type: ignore[index]
    assert answer["account"]["status"] == "ambiguous"  # type: ignore[index]
    assert sorted(h["account"] for h in held) == ["block-owner", "bob"]


def test_a_delegated_prefix_answers_for_every_address_inside_it(store: Lab) -> None:
    for subscriber in ("2001:db8:1:100::/56", "2001:db8:1:1ff::1/128", "2001:db8:1:100:ab::/64"):
        answer = {
            "status": "match",
            "subscriber": subscriber,
            "window": {"from": "2026-05-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
        }
        detail: dict[str, object] = {}
        with store.sessions() as s:
            directory.add_account(s, audit.Actor("l", "legal"), answer, detail)
        assert answer["account"]["account"] == "carol", subscriber  # type: ignore[index]
    outside = {
        "status": "match",
        "subscriber": "2001:db8:1:200::/56",
        "window": {"from": "2026-05-01T00:00:00Z", "to": "2026-05-01T00:00:00Z"},
    }
    planned = dict(outside)
    with store.sessions() as s:
        directory.add_account(s, audit.Actor("l", "legal"), outside, {})
        directory.add_account(s, audit.Actor("p", "planner"), planned, {})
    assert outside["account"] is None and "account" not in planned  # planners never see one


def test_the_answer_in_the_audit_log_carries_what_was_shown(api: Api, store: Lab) -> None:
    answer = _ask(api, "abuse", 1099, "2026-03-03T00:00:00Z")
    with store.sessions() as s:
        entry = next(audit.entries(s, after=int(answer["answer_id"]) - 1, limit=1))  # type: ignore[call-overload]
    assert entry.detail["answer"]["account"] == answer["account"]


def test_ingest_is_audited_verified_and_append_only(store: Lab) -> None:
    with store.sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
        for statement in (
            "update directory_intervals set account = 'mallory'",
            "delete from directory_intervals",
            "truncate directory_intervals",
        ):
            with pytest.raises(DBAPIError), s.begin_nested():
                s.execute(text(statement))
        s.rollback()
    with store.sessions() as s:
        s.execute(text("set local session_replication_role = replica"))
        s.execute(text("update directory_intervals set account = 'mallory' where n = 2"))
        broken = [str(b) for b in integrity.verify(s)[0]]
        s.rollback()
    assert broken and broken[0].startswith("directory ingest ") and "differ" in broken[0]
    with store.sessions() as s:  # the same JSON written otherwise: not the text that was hashed
        s.execute(text("set local session_replication_role = replica"))
        s.execute(
            text(
                "update directory_intervals set sources = "
                """replace(sources, '","line":', '", "line":')"""
            )
        )
        assert json.loads(s.execute(text("select sources from directory_intervals")).first()[0])
        broken = [str(b) for b in integrity.verify(s)[0]]
        s.rollback()
    assert broken and broken[0].startswith("directory ingest ") and "differ" in broken[0]
    with store.sessions() as s:  # a row whose range lost its bounds (stored 'empty'): named
        s.execute(text("set local session_replication_role = replica"))
        s.execute(text("update directory_intervals set during = 'empty' where n = 2"))
        broken = [str(b) for b in integrity.verify(s)[0]]
        s.rollback()
    assert broken and broken[0].startswith("directory ingest ") and "differ" in broken[0]


def test_cli_ingest_prints_the_summary_and_refused_lines(
    store: Lab, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", store.url)
    get_settings.cache_clear()
    detail = tmp_path / "detail-20260301"
    detail.write_text(
        "Sun Mar  1 10:00:00 2026\n\tAcct-Status-Type = Start\n\tNAS-IP-Address = 192.0.2.1\n"
        '\tAcct-Session-Id = "x"\n\tUser-Name = "dave"\n\tFramed-IP-Address = 10.0.0.7\n\n'
        "Sun Mar  1 10:00:00 2026\n\tAcct-Status-Type = Start\n\tNAS-IP-Address = 192.0.2.1\n\n"
    )
    run = CliRunner().invoke
    try:
        no_tz = run(cli_app, ["directory", "ingest", "--format", "freeradius-detail", str(detail)])
        assert no_tz.exit_code == 2 and "--tz" in no_tz.output
        done = run(
            cli_app,
            [
                "directory",
                "ingest",
                "--format",
                "freeradius-detail",
                "--tz",
                "Europe/Berlin",
                str(detail),
                "--json",
            ],
        )
        assert done.exit_code == 0, done.output
        summary = json.loads(done.stdout)
        assert (summary["records"], summary["intervals"], summary["refused"]) == (2, 1, 1)
        assert summary["refused_records"][0].endswith(":8: no Acct-Session-Id")
        with store.sessions() as s:
            assert [str(b) for b in integrity.verify(s)[0]] == []
    finally:
        get_settings.cache_clear()


def test_evidence_carries_the_directory_lines_and_verifies_offline(api: Api, store: Lab) -> None:
    from detnat.service import evidence

    answer = _ask(api, "legal", 1099, "2026-03-01T00:30:00Z")
    with store.sessions() as s:
        document = evidence.build(s, int(answer["answer_id"]))  # type: ignore[call-overload]
    carried = document["audit_entry"]["detail"]["answer"]["account"]
    assert carried["held"][0]["sources"][0]["file"] == "dir.csv"
    problems, _ = evidence.verify(json.loads(json.dumps(document)))
    assert problems == []
    forged = json.loads(json.dumps(document))
    line = forged["audit_entry"]["detail"]["answer"]["account"]["held"][0]["sources"][0]
    line["text"] = line["text"].replace("2026", "2025")
    problems, _ = evidence.verify(forged)
    assert problems and "content" in problems[0]  # the audit entry's hash no longer holds
    forged_answer = forged["audit_entry"]["detail"]["answer"]
    assert "not the line its SHA-256 names" in directory.check_account(forged_answer)[0]
    forged_answer["account"]["status"] = "identified"
    forged_answer["account"]["account"] = "alice"
    assert "do not give this account" in directory.check_account(forged_answer)[-1]


def test_the_lookup_page_shows_the_account_and_lines_to_legal_not_abuse(
    store: Lab, tmp_path: Path
) -> None:
    from tests.web.conftest import Site, World
    from tests.web.support import web_app

    settings = Settings(
        database_url=store.url,
        data_dir=tmp_path,
        migrate_on_start=False,
        rate_limit_per_second=10_000,
        rate_limit_burst=10_000,
    )
    site = Site(web_app(settings), World(store.tokens, {}))
    try:
        form = {"ip": "198.18.9.0", "port": "1099", "time": "2026-03-01T00:30:00Z"}
        legal = site.browser("legal").submit(
            "/web/lookup", "/web/lookup", {**form, "case": "WEB-L"}
        )
        assert legal.status_code == 200, legal.text[:500]
        assert "Account (subscriber directory)" in legal.text
        assert "alice" in legal.text and "dir.csv:2" in legal.text
        abuse = site.browser("abuse").submit(
            "/web/lookup", "/web/lookup", {**form, "case": "WEB-A"}
        )
        assert abuse.status_code == 200 and "alice" in abuse.text
        assert "dir.csv:2" not in abuse.text  # the source lines are legal's
    finally:
        site.close()


def test_awkward_text_round_trips_through_copy_and_verifies(store: Lab) -> None:
    rows = (
        "subscriber,account,from,to\n"
        '10.0.1.1,"back\\slash\ttab ""quoted"" ünï\x00nul",2026-03-01T00:00:00Z,\n'
    )
    with unit_of_work(store.sessions) as s:
        files = [directory.InputFile("we\\ird\tname.csv", rows.encode())]
        done = directory.ingest(s, OPS, "csv", files, tz=None, request_id="t")
        assert done.intervals == 1
    with store.sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
        account = s.execute(
            text("select account from directory_intervals where prefix = '10.0.1.1/32'")
        ).scalar()
    assert account == 'back\\slash\ttab "quoted" ünï\ufffdnul'


def test_a_worker_that_saw_no_directory_shows_the_accounts_of_a_later_ingest() -> None:
    """The lookup path remembers, per store revision, that a store holds no directory (no
    connection per lookup); an ingest bumps the revision, so the next answer has its account."""
    from api.app import create_app

    with lab_store() as lab:
        api = Api(create_app(Settings(database_url=lab.url)), lab.tokens)
        try:
            before = _ask(api, "legal", 1099, "2026-03-02T02:00:00Z")
            assert before["subscriber"] == "10.0.0.5/32" and "account" not in before
            with unit_of_work(lab.sessions) as s:
                revision = s.execute(text("SELECT revision FROM store_revision")).scalar_one()
            ingest_csv(lab, DIRECTORY)
            with unit_of_work(lab.sessions) as s:
                assert (
                    s.execute(text("SELECT revision FROM store_revision")).scalar_one() > revision
                )
            after = _ask(api, "legal", 1099, "2026-03-02T02:00:00Z")
            account = after["account"]
            assert isinstance(account, dict) and account["status"] == "identified"
            assert [h["account"] for h in account["held"]] == ["bob"]
        finally:
            api.close()
