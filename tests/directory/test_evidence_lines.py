"""``evidence verify`` reads every embedded directory source line again with the format and
options of the ingest that read it, and refuses an account its lines do not say (issue 14).

The hole this closes: the offline check hashed each source line against its text, then took the
account, the subscriber key and the interval's times as shown. A file naming ``CUST-2`` over
lines that say ``CUST-1`` -- the audit entry rehashed, as a consistent forger leaves it --
verified clean. Each forgery below changes one thing the lines say (account, subscriber, from,
to), keeps the account's status agreeing with it, and rehashes the audit entry, so that only
reading the lines again can catch it.

The round trips ingest real lines of every directory format through the CLI (with ``--tz``,
``--realm`` and ``--interim`` where the format takes them), answer as ``legal`` over HTTP, take
the evidence file legal is given, and verify it with the CLI.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app as cli_app
from detnat.service import audit, evidence
from detnat.settings import Settings, get_settings
from tests.directory.lab import Lab, lab_store
from tests.directory.samples import KEA_3
from tests.store.conftest import Api

pytestmark = pytest.mark.postgres

# Subscriber 10.0.0.k answers 198.18.9.0 on ports 1024 + 15 k .. (the lab's block plan).
IP = "198.18.9.0"
AT = "2026-03-01T10:30:00Z"


def _port(k: int) -> int:
    return 1024 + 15 * k


def _record(when: str, status: str, session: str, *attrs: str) -> str:
    body = "".join(f"\t{a}\n" for a in attrs)
    return (
        f'{when}\n\tAcct-Status-Type = {status}\n\tAcct-Session-Id = "{session}"\n'
        f"\tNAS-IP-Address = 192.0.2.10\n{body}\n"
    )


def _on(when: str) -> str:
    return f"{when}\n\tAcct-Status-Type = Accounting-On\n\tNAS-IP-Address = 192.0.2.10\n\n"


# Berlin is UTC+1 in March: 11:30 local is 10:30Z.
RADIUS_STOP = (
    _record("Sun Mar  1 10:00:07 2026", "Start", "S-11", 'User-Name = "CUST-11"',
            "Framed-IP-Address = 10.0.0.11", "Acct-Delay-Time = 7")
    + _record("Sun Mar  1 11:00:00 2026", "Interim-Update", "S-11", 'User-Name = "CUST-11"',
              "Framed-IP-Address = 10.0.0.11", "Acct-Session-Time = 3600")
    + _record("Sun Mar  1 13:00:02 2026", "Stop", "S-11", 'User-Name = "CUST-11"',
              "Framed-IP-Address = 10.0.0.11", "Acct-Session-Time = 10800", "Acct-Delay-Time = 2")
)  # fmt: skip
RADIUS_UNHEARD = _record(
    "Sun Mar  1 11:00:00 2026", "Start", "S-12", 'User-Name = "CUST-12"',
    "Framed-IP-Address = 10.0.0.12",
) + _record(
    "Sun Mar  1 11:20:00 2026", "Interim-Update", "S-12", 'User-Name = "CUST-12"',
    "Framed-IP-Address = 10.0.0.12", "Acct-Session-Time = 1200",
)  # fmt: skip
RADIUS_REBOOT = _record(
    "Sun Mar  1 11:00:00 2026", "Start", "S-13", 'User-Name = "CUST-13"',
    "Framed-IP-Address = 10.0.0.13",
) + _on("Sun Mar  1 12:00:00 2026")  # fmt: skip
RADIUS_TAKEOVER = _record(
    "Sun Mar  1 11:00:00 2026", "Start", "S-14", 'User-Name = "CUST-14"',
    "Framed-IP-Address = 10.0.0.14",
) + _record(
    "Sun Mar  1 12:00:00 2026", "Start", "S-14b", 'User-Name = "CUST-14b"',
    "Framed-IP-Address = 10.0.0.14",
)  # fmt: skip
RADIUS_LOST_START = _record(
    "Sun Mar  1 12:00:00 2026", "Stop", "S-17", 'User-Name = "CUST-17"',
    "Framed-IP-Address = 10.0.0.17", "Acct-Session-Time = 7200",
)  # fmt: skip

# 2026-03-01T10:00:00Z = 1772359200; leases of an hour, renewed, then released / reclaimed.
KEA_MEMFILE = (
    KEA_3 + "\n"
    "10.0.0.15,00:01:02,3600,1772362800,1,1800,2,7,32,0,0,,,0,,,,\n"
    "10.0.0.15,00:01:02,3600,1772364600,1,1800,2,7,32,0,0,,,0,,,,\n"
    "10.0.0.15,00:01:02,0,1772364000,1,1800,2,7,32,0,0,,,3,,,,\n"
)
KEA_LEGAL = (
    "2026-03-01 11:00:00 CET Prefix:10.0.0.16/32 has been assigned for 1 hrs 0 mins 0 secs "
    "to a device with DUID: 00:01:03 and hardware address: hwtype=1 08:00:2b:02:3f:4e "
    "identified by remote-id: 01:02:03:04 and subscriber-id: 1a:2b:3c:4d\n"
    "2026-03-01 11:40:00 CET Prefix:10.0.0.16/32 has been released "
    "to a device with DUID: 00:01:03 and hardware address: hwtype=1 08:00:2b:02:3f:4e "
    "identified by remote-id: 01:02:03:04 and subscriber-id: 1a:2b:3c:4d\n"
)
CSV = (
    "subscriber,account,from,to\n"
    "10.0.0.10,CUST-10,2026-03-01T11:00:00,2026-03-01T12:00:00\n"
    "10.0.0.18,CUST-18,2026-03-01T10:00:00Z,\n"
    "10.0.0.18,CUST-18b,2026-03-01T11:00:00Z,\n"
)

# (name, format, options, text, subscriber k, account, closed)
ROUND_TRIPS: list[tuple[str, str, list[str], str, int, str, str]] = [
    ("csv", "csv", ["--tz", "Europe/Berlin"], CSV, 10, "CUST-10", "given"),
    ("csv-open", "csv", ["--tz", "Europe/Berlin"], CSV, 18, "CUST-18", "takeover"),
    ("radius-stop", "freeradius-detail", ["--tz", "Europe/Berlin"], RADIUS_STOP, 11, "CUST-11",
     "stop"),
    ("radius-unheard", "freeradius-detail", ["--tz", "Europe/Berlin", "--interim", "30m"],
     RADIUS_UNHEARD, 12, "CUST-12", "unheard"),
    ("radius-reboot", "freeradius-detail", ["--tz", "Europe/Berlin"], RADIUS_REBOOT, 13,
     "CUST-13", "nas-reboot"),
    ("radius-takeover", "freeradius-detail", ["--tz", "Europe/Berlin"], RADIUS_TAKEOVER, 14,
     "CUST-14", "takeover"),
    ("radius-lost-start", "freeradius-detail", ["--tz", "Europe/Berlin"], RADIUS_LOST_START, 17,
     "CUST-17", "stop"),
    ("kea-memfile", "kea-lease6", [], KEA_MEMFILE, 15, "duid:00:01:02", "released"),
    ("kea-legal", "kea-lease6", ["--tz", "Europe/Berlin"], KEA_LEGAL, 16,
     "subscriber-id:1a:2b:3c:4d", "released"),
]  # fmt: skip


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    with lab_store() as lab:
        yield lab


@pytest.fixture
def cli(store: Lab, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("DETNAT_DATABASE_URL", store.url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


@pytest.fixture
def api(store: Lab) -> Iterator[Api]:
    from api.app import create_app

    client = Api(create_app(Settings(database_url=store.url)), store.tokens)
    yield client
    client.close()


_INGESTED: set[str] = set()


def _ingest(cli: CliRunner, tmp_path: Path, name: str, fmt: str, text: str, *options: str) -> None:
    if name in _INGESTED:  # the module's store: each file once
        return
    path = tmp_path / f"{name}.txt"
    path.write_text(text)
    done = cli.invoke(
        cli_app, ["directory", "ingest", "--format", fmt, "--realm", "lab", *options, str(path),
                  "--json"],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    assert json.loads(done.stdout)["refused"] == 0, done.stdout
    _INGESTED.add(name)


def _evidence(api: Api, k: int, at: str = AT) -> dict[str, Any]:
    """The evidence file legal is given of its answer for subscriber 10.0.0.k at ``at``."""
    body = {"ip": IP, "port": _port(k), "time": at, "case": "C-DIR", "tolerance_seconds": 0}
    asked = api("POST", "/v1/lookups/reverse", "legal", body)
    assert asked.status_code == 200, asked.text
    answer = asked.json()
    assert answer["subscriber"] == f"10.0.0.{k}/32", answer
    got = api("GET", f"/v1/answers/{answer['answer_id']}/evidence", "legal")
    assert got.status_code == 200, got.text
    document: dict[str, Any] = got.json()
    return document


def _verify(cli: CliRunner, tmp_path: Path, document: dict[str, Any], name: str) -> Any:
    path = tmp_path / f"{name}.json"
    path.write_text(json.dumps(document))
    return cli.invoke(cli_app, ["evidence", "verify", str(path)])


@pytest.mark.parametrize(
    ("name", "fmt", "options", "text", "k", "account", "closed"),
    ROUND_TRIPS,
    ids=[r[0] for r in ROUND_TRIPS],
)
def test_every_directory_format_round_trips_to_a_verified_evidence_file(
    cli: CliRunner,
    api: Api,
    tmp_path: Path,
    name: str,
    fmt: str,
    options: list[str],
    text: str,
    k: int,
    account: str,
    closed: str,
) -> None:
    _ingest(cli, tmp_path, name.partition("-")[0] if fmt == "csv" else name, fmt, text, *options)
    document = _evidence(api, k)
    shown = document["answer"]["account"]
    assert (shown["status"], shown["account"]) == ("identified", account), shown
    assert shown["held"][0]["closed"] == closed, shown
    assert all(h["sources"] for h in shown["held"]), shown
    # the file carries the directory.ingest entry of each row's lines
    part = document["directory"]
    assert [e["action"] for e in part["ingests"]] == ["directory.ingest"]
    assert part["held"] == [part["ingests"][0]["seq"]] * len(shown["held"])
    assert part["ingests"][0]["detail"]["record"]["format"] == fmt
    problems, _ = evidence.verify(document)
    assert problems == [], problems
    checked = _verify(cli, tmp_path, document, name)
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("valid:"), checked.stdout
    seq = part["ingests"][0]["seq"]
    assert f"of audit entry {seq} (directory.ingest: " in checked.stdout, checked.stdout


# -- forgeries ------------------------------------------------------------------------------------


def _rehash(entry: dict[str, Any]) -> None:
    content = {k: entry[k] for k in audit.CONTENT_FIELDS}
    entry["content_sha256"] = audit.sha256_text(audit.canonical(content))
    entry["entry_sha256"] = audit.chain_hash(
        entry["seq"], entry["prev_sha256"], entry["content_sha256"]
    )


def _forged(document: dict[str, Any], tamper: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
    """``document`` with ``tamper`` applied to its answer's account, the audit entry rehashed:
    every hash holds, the account follows from its intervals as shown."""
    forged = copy.deepcopy(document)
    answer = forged["audit_entry"]["detail"]["answer"]
    tamper(answer["account"])
    forged["answer"] = copy.deepcopy(answer)
    _rehash(forged["audit_entry"])
    return forged


def _account(account: dict[str, Any]) -> None:
    account["account"] = account["held"][0]["account"] = "CUST-2"


def _subscriber(account: dict[str, Any]) -> None:
    account["held"][0]["subscriber"] = "10.0.0.0/24"


def _from(account: dict[str, Any]) -> None:
    account["held"][0]["from"] = "2026-03-01T08:00:00Z"


def _to(account: dict[str, Any]) -> None:
    account["held"][0]["to"] = "2026-03-01T23:00:00Z"


TAMPERS = {"account": _account, "subscriber": _subscriber, "from": _from, "to": _to}
GENUINE = {  # name -> (round trip, what a forged value is said against)
    "csv": ROUND_TRIPS[0],
    "radius-stop": ROUND_TRIPS[2],
    "kea-memfile": ROUND_TRIPS[7],
    "kea-legal": ROUND_TRIPS[8],
}


@pytest.mark.parametrize("what", sorted(TAMPERS))
@pytest.mark.parametrize("source", sorted(GENUINE))
def test_an_account_its_directory_lines_do_not_say_fails_evidence_verify(
    cli: CliRunner, api: Api, tmp_path: Path, source: str, what: str
) -> None:
    name, fmt, options, text, k, _, _ = GENUINE[source]
    _ingest(cli, tmp_path, name.partition("-")[0] if fmt == "csv" else name, fmt, text, *options)
    genuine = _evidence(api, k)
    forged = _forged(genuine, TAMPERS[what])
    assert forged["answer"]["account"] != genuine["answer"]["account"]
    problems, _ = evidence.verify(forged)
    assert problems, f"a forged {what} verified clean"
    assert all(p.startswith("answer.account.held[0]: ") for p in problems), problems
    assert any(f"read again as {fmt}" in p for p in problems), problems
    checked = _verify(cli, tmp_path, forged, f"forged-{source}-{what}")
    assert checked.exit_code == 6, checked.output
    assert "detnat: evidence: answer.account.held[0]: " in checked.stderr, checked.stderr
    assert f"read again as {fmt}" in checked.stderr, checked.stderr


def test_an_ingest_entry_forged_to_another_zone_reads_the_lines_at_other_times(
    cli: CliRunner, api: Api, tmp_path: Path
) -> None:
    name, fmt, options, text, k, _, _ = ROUND_TRIPS[2]
    _ingest(cli, tmp_path, name, fmt, text, *options)
    forged = _evidence(api, k)
    (entry,) = forged["directory"]["ingests"]
    entry["detail"]["record"]["tz"] = "UTC"
    _rehash(entry)
    problems, _ = evidence.verify(forged)
    assert problems and all(p.startswith("answer.account.held[0]: ") for p in problems), problems


def test_a_row_moved_to_another_ingest_is_refused(cli: CliRunner, api: Api, tmp_path: Path) -> None:
    name, fmt, options, text, k, _, _ = ROUND_TRIPS[0]
    _ingest(cli, tmp_path, name, fmt, text, *options)
    forged = _evidence(api, k)
    forged["directory"]["held"] = [None]
    problems, _ = evidence.verify(forged)
    assert problems and "not read again" in problems[0], problems


def test_a_previous_format_file_with_an_account_is_not_called_valid(
    cli: CliRunner, api: Api, tmp_path: Path
) -> None:
    name, fmt, options, text, k, _, _ = ROUND_TRIPS[0]
    _ingest(cli, tmp_path, name, fmt, text, *options)
    previous = _evidence(api, k)
    previous["format"] = "detnat-evidence/3"
    del previous["directory"]
    problems, _ = evidence.verify(previous)
    assert len(problems) == 1 and problems[0].startswith("answer.account: "), problems
    checked = _verify(cli, tmp_path, previous, "previous")
    assert checked.exit_code == 6, checked.output
    assert "cannot be read again" in checked.stderr, checked.stderr
    assert f"make the evidence file again ({evidence.FORMAT})" in checked.stderr, checked.stderr


def test_an_account_shown_without_its_lines_is_not_called_valid(
    cli: CliRunner, api: Api, tmp_path: Path
) -> None:
    """An answer made for ``abuse`` shows the intervals without their lines; legal may take its
    evidence file, but nothing in it proves the account: verify says so, never "valid"."""
    name, fmt, options, text, k, _, _ = ROUND_TRIPS[0]
    _ingest(cli, tmp_path, name, fmt, text, *options)
    body = {"ip": IP, "port": _port(k), "time": AT, "case": "C-DIR-ABUSE", "tolerance_seconds": 0}
    asked = api("POST", "/v1/lookups/reverse", "abuse", body)
    assert asked.status_code == 200, asked.text
    assert "sources" not in asked.json()["account"]["held"][0]
    got = api("GET", f"/v1/answers/{asked.json()['answer_id']}/evidence", "legal")
    assert got.status_code == 200, got.text
    document = got.json()
    assert document["directory"] == {"ingests": [], "held": [None]}
    checked = _verify(cli, tmp_path, document, "abuse")
    assert checked.exit_code == 6, checked.output
    assert "answer.account.held[0]: its lines are not read again" in checked.stderr
    assert "shown without lines" in checked.stderr, checked.stderr
