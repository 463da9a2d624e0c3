"""A realm's declared interim period (``logs ingest --log-interim``), end to end: stored per ingest,
used by every derivation (ingest, rebuild, ``audit verify``, evidence), reported by ``logs check``.

The block below is allocated at T0 and refreshed at T0 + 20 s, never released; the hold is an
hour, the interim period 30 s: the NAT would have logged the block again by T0 + 50 s had it
still held it, so past that the logs hold nothing (``not_logged``), not an open-ended guess.
"""

from __future__ import annotations

import copy
import json
import random
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.engine.results import Reason, Status
from detnat.logs.events import EventKind
from detnat.logs.intervals import decide, derive
from detnat.service import audit, evidence, integrity, log_answers, logs, plans
from detnat.service.times import parse_instant
from detnat.store import logs as store
from detnat.store.db import SessionFactory
from tests.logs.conftest import T0_US, event, ingest, line_of, new_realm
from tests.logs.test_cli_logs import run
from tests.logs.test_store_answers import (
    PUBLIC,
    _answer,
    _ask,
    _plan_realm,
    _shape,
    _stored,
    logged,
)

pytestmark = pytest.mark.postgres

A, INTERIM, R = EventKind.ALLOCATE, EventKind.INTERIM, EventKind.RELEASE
S = 10**6
POOL = "198.18.62.1"  # its own: the logs tests share one store
BLOCK = (6064, 7071)  # a dynamic block of _plan_realm's plan: only the logs answer it


def _at(seconds: int) -> str:
    return store.instant(T0_US + seconds * S).isoformat().replace("+00:00", "Z")


def _logged_then_silent(tmp_path: Path) -> Path:
    log = tmp_path / "pba.log"
    log.write_bytes(
        line_of(A, T0_US, "10.0.0.2", POOL, *BLOCK)
        + line_of(INTERIM, T0_US + 20 * S, "10.0.0.2", POOL, *BLOCK)
    )
    return log


def _reverse(cli, realm: str, port: int, seconds: int, tolerance: str = "0s") -> dict:
    done = run(
        cli, "reverse", f"{POOL}:{port}", "--at", _at(seconds), "--tolerance", tolerance,
        "--realm", realm, "--case", "C-INTERIM", "--json",
    )  # fmt: skip
    return json.loads(done.stdout)


def test_past_the_interim_deadline_the_logs_hold_nothing_single_batch_and_check(
    cli,
    sessions: SessionFactory,
    tmp_path: Path,
) -> None:
    realm = _plan_realm(sessions, f"{POOL}/32")
    log = _logged_then_silent(tmp_path)
    ingested = run(
        cli, "logs", "ingest", realm, "--format", "test-made", "--log-hold", "1h",
        "--log-interim", "30s", str(log),
    )  # fmt: skip
    assert ingested.exit_code == 0, ingested.output
    held = _reverse(cli, realm, 6100, 10)
    assert (held["status"], held["subscriber"], held["source"]) == ("match", "10.0.0.2/32", "log")
    gap = _reverse(cli, realm, 6100, 100)  # past T0 + 50 s, well within the hour's hold
    assert (gap["status"], gap["reason"]) == ("no_mapping", "not_logged")
    straddling = _reverse(cli, realm, 6100, 45, tolerance="10s")
    assert (straddling["status"], straddling["reason"]) == ("ambiguous", "log_open_ended")
    (shown,) = straddling["log_candidates"]
    assert shown["interim_deadline"] is True
    assert parse_instant(shown["interval"]["to"]) == store.instant(T0_US + 50 * S)
    assert straddling["log_interims_us"] == {realm: 30 * S}
    batch = tmp_path / "in.csv"
    batch.write_text(f"ip,port,time\n{POOL},6100,{_at(10)}\n{POOL},6100,{_at(100)}\n")
    out = tmp_path / "out.csv"
    done = run(
        cli, "reverse", "--batch", str(batch), "-o", str(out), "--realm", realm,
        "--case", "C-INTERIM",
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    rows = [line.split(",")[3:5] for line in out.read_text().splitlines()[1:]]
    assert rows == [["match", ""], ["no_mapping", "not_logged"]]
    checked = run(cli, "logs", "check", realm, "--json")
    assert checked.exit_code == 4, checked.output
    kinds = [json.loads(x)["kind"] for x in checked.stdout.strip().splitlines()[:-1]]
    assert kinds == ["open_past_interim"]
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []
        (recorded,) = [
            r for k, _, r in logs.records(s, {}) if k == "log_ingests" and r["file"] == str(log)
        ]
    assert (recorded["log_hold_us"], recorded["log_interim_us"]) == (3600 * S, 30 * S)


def test_an_answer_at_the_interim_deadline_verifies_offline_and_not_with_another_period(
    sessions: SessionFactory,
) -> None:
    realm = _plan_realm(sessions, "198.18.71.1/32")
    public = "198.18.71.1"
    ingest(
        sessions,
        realm,
        [
            event(A, T0_US, "10.0.0.2", public, *BLOCK),
            event(INTERIM, T0_US + 20 * S, "10.0.0.2", public, *BLOCK),
        ],
        hold=timedelta(hours=1),
        interim=timedelta(seconds=30),
    )
    answered = _ask(sessions, realm, public, 6100, T0_US + 50 * S - 1)
    answer = answered.answer
    assert (answer["status"], answer["reason"]) == (Status.AMBIGUOUS, Reason.LOG_OPEN_ENDED)
    assert answer["log_candidates"][0]["interim_deadline"] is True
    with sessions() as s:
        document = evidence.build(s, answered.answer_id)
    assert evidence.verify(document)[0] == []
    now = parse_instant(document["audit_entry"]["detail"]["trace"]["now"])
    for period in (40 * S, 20 * S, None):
        forged = copy.deepcopy(document)
        for shown in (forged["answer"], forged["audit_entry"]["detail"]["answer"]):
            shown["log_interims_us"][realm] = period
        problems = evidence.verify(_rehashed(forged))[0]
        assert any("interim" in p and "log_candidates[0]" in p for p in problems), problems
        # the offline re-derivation itself, whatever the hashes say
        rederived: list[str] = []
        log_answers.rederive(copy.deepcopy(answer), forged["answer"], rederived, now=now)
        assert rederived, period
    unflagged = copy.deepcopy(document["answer"])
    del unflagged["log_candidates"][0]["interim_deadline"]
    rederived = []
    log_answers.rederive(copy.deepcopy(answer), unflagged, rederived, now=now)
    assert any("past its next interim deadline" in p for p in rederived), rederived


def _rehashed(document: dict) -> dict:
    """The file as a consistent forger leaves it: the audit entry's hashes made again."""
    entry = document["audit_entry"]
    content = {k: entry[k] for k in audit.CONTENT_FIELDS}
    entry["content_sha256"] = audit.sha256_text(audit.canonical(content))
    entry["entry_sha256"] = audit.chain_hash(
        entry["seq"], entry["prev_sha256"], entry["content_sha256"]
    )
    return document


def test_the_latest_declared_interim_period_applies_to_the_whole_realm(
    sessions: SessionFactory,
) -> None:
    realm = new_realm(sessions)
    first = [event(A, T0_US, "100.64.0.1", PUBLIC, 1024, 1535)]
    other = [event(A, T0_US, "100.64.0.2", "198.18.40.2", 1024, 1535)]
    ingest(sessions, realm, first, hold=timedelta(hours=1), interim=timedelta(seconds=30))
    assert [i.end_us for i in _stored(sessions, realm)] == [T0_US + 30 * S]
    # another file declaring another period: every interval of the realm is derived with it
    ingest(sessions, realm, other, name="other.log", interim=timedelta(seconds=10))
    assert [i.end_us for i in _stored(sessions, realm)] == [T0_US + 10 * S] * 2
    # a file declaring none keeps the latest declared
    again = [event(R, T0_US + 5 * S, "100.64.0.2", "198.18.40.2", 1024, 1535)]
    ingest(sessions, realm, again, name="third.log")
    assert [(i.end_us, i.interim_deadline) for i in _stored(sessions, realm)] == [
        (T0_US + 10 * S, True),
        (T0_US + 5 * S, False),
    ]
    with sessions() as s:
        assert store.log_interim(s, plans.get_realm(s, realm).id) == timedelta(seconds=10)
        assert [str(b) for b in integrity.verify(s)[0]] == []


@settings(
    max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(logged(), st.sampled_from([3, 7, 40]), st.randoms(use_true_random=False))
def test_ingests_in_any_order_store_and_answer_what_the_lines_make_with_the_period(
    sessions: SessionFactory, events: list, interim: int, rnd: random.Random
) -> None:
    one, two = new_realm(sessions), new_realm(sessions)
    hold, period = timedelta(seconds=20), timedelta(seconds=interim)
    ingest(sessions, one, events, hold=hold, interim=period)
    parts = [events[: len(events) // 2], events[len(events) // 2 :]]
    rnd.shuffle(parts)
    ingest(sessions, two, parts[0][::-1], name="part-0.log", hold=hold, interim=period)
    ingest(sessions, two, parts[1], name="part-1.log")  # declares nothing: the period stays
    want = derive(events, hold_us=20 * S, interim_us=interim * S)
    deadlines = [i.interim_deadline for i in want]
    for realm in (one, two):
        stored = _stored(sessions, realm)
        assert _shape(stored) == _shape(want)
        assert [i.interim_deadline for i in stored] == deadlines
    for at in range(-5, 130, 9):
        for port in (1030, 1600):
            expected = decide(want, port, T0_US + at * S, T0_US + (at + 2) * S)
            for realm in (one, two):
                got = _answer(sessions, realm, PUBLIC, port, T0_US + (at + 1) * S, tol=S)
                assert (got["status"], got.get("reason")) == (expected.status, expected.reason)
