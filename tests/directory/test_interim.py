"""A RADIUS session whose Stop was lost, and the NAS's declared interim period (``--interim``).

Without a period such a session stays open until the next Start on its key or a reboot of its
NAS, which may be never: months later it would still name its account. With the period
declared, a session silent for longer ended one period after it was last heard (``unheard``).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import text
from typer.testing import CliRunner

from cli.main import app as cli_app
from detnat.directory import parse, radius
from detnat.directory.resolve import account_of
from detnat.errors import InvalidInput
from detnat.service import directory
from detnat.settings import get_settings
from detnat.store.db import unit_of_work
from tests.directory.lab import OPS, lab_store

MIN = 60_000_000  # µs
T = 1_772_323_200_000_000  # 2026-03-01T00:00:00Z


def _record(clock: str, status: str, extra: str = "") -> str:
    return (
        f"Sun Mar  1 {clock} 2026\n\tAcct-Status-Type = {status}\n\tNAS-IP-Address = 192.0.2.1\n"
        f'\tAcct-Session-Id = "s1"\n\tUser-Name = "alice"\n\tFramed-IP-Address = 10.0.0.5\n'
        f"{extra}\n"
    )


# alice starts at 10:00, is heard at 10:15 and 10:30, then nothing: her Stop was lost
DETAIL = (
    _record("10:00:00", "Start")
    + _record("10:15:00", "Interim-Update")
    + _record("10:30:00", "Interim-Update")
)
HOUR10 = T + 10 * 60 * MIN


def test_without_a_period_a_silent_session_names_its_account_for_ever() -> None:
    [iv] = radius.parse([("detail", DETAIL)], tz="UTC").intervals
    assert (iv.end, iv.closed) == (None, "open")
    assert account_of([iv], HOUR10 + 90 * 24 * 60 * MIN, HOUR10 + 90 * 24 * 60 * MIN).account


def test_with_a_period_it_ended_one_period_after_it_was_last_heard() -> None:
    [iv] = radius.parse([("detail", DETAIL)], tz="UTC", interim_us=20 * MIN).intervals
    assert (iv.start, iv.end, iv.closed) == (HOUR10, HOUR10 + 50 * MIN, "unheard")
    assert [s.line for s in iv.sources] == [1, 15]  # the Start, and the last record heard
    assert account_of([iv], HOUR10 + 49 * MIN, HOUR10 + 49 * MIN).account == "alice"
    assert account_of([iv], HOUR10 + 50 * MIN, HOUR10 + 50 * MIN).status == "not_covered"


def test_a_later_sign_of_life_keeps_the_session() -> None:
    later = DETAIL + _record("12:00:00", "Interim-Update")  # 90 minutes of silence, then heard
    [iv] = radius.parse([("detail", later)], tz="UTC", interim_us=20 * MIN).intervals
    assert (iv.end, iv.closed) == (HOUR10 + 140 * MIN, "unheard")
    stopped = DETAIL + _record("12:00:00", "Stop")  # its Stop says when it ended, whatever came
    [iv] = radius.parse([("detail", stopped)], tz="UTC", interim_us=20 * MIN).intervals
    assert (iv.end, iv.closed) == (HOUR10 + 120 * MIN, "stop")


def test_a_period_is_refused_where_it_means_nothing() -> None:
    with pytest.raises(InvalidInput, match="applies to freeradius-detail") as caught:
        parse("csv", [("x.csv", "subscriber,account,from,to\n")], tz=None, interim_us=MIN)
    assert caught.value.field == "--interim"
    with pytest.raises(InvalidInput, match="longer than zero"):
        parse("freeradius-detail", [("d", DETAIL)], tz="UTC", interim_us=0)


@pytest.mark.postgres
def test_cli_ingest_takes_the_period_and_the_audit_entry_records_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    detail = tmp_path / "detail-20260301"
    detail.write_text(DETAIL)
    with lab_store() as lab:
        monkeypatch.setenv("DETNAT_DATABASE_URL", lab.url)
        get_settings.cache_clear()
        args = ["directory", "ingest", "--format", "freeradius-detail", "--tz", "UTC"]
        try:
            bad = CliRunner().invoke(cli_app, [*args, "--interim", "soon", str(detail)])
            done = CliRunner().invoke(cli_app, [*args, "--interim", "20m", str(detail)])
        finally:
            get_settings.cache_clear()
        assert bad.exit_code != 0 and "--interim" in bad.output
        assert done.exit_code == 0, done.output
        with unit_of_work(lab.sessions) as s:
            answer = {
                "status": "match",
                "subscriber": "10.0.0.5/32",
                "window": {"from": "2026-03-01T11:00:00Z", "to": "2026-03-01T11:00:00Z"},
            }
            directory.add_account(s, OPS, answer, {})
            entry = s.execute(
                text("select detail from audit_log where action = 'directory.ingest'")
            ).scalar_one()
        assert answer["account"] is None and "holds no interval" in str(answer["account_reason"])
        assert entry["record"]["interim_seconds"] == 1200


def test_an_interim_update_claiming_a_key_since_before_anothers_start_is_refused() -> None:
    """yves starts on 10.0.0.5 at 10:00; at 10:30 an Interim-Update of xena's session (its Start
    never read) says she has been on for an hour, holding 10.0.0.5 since 09:30. Before, yves's
    row was ended at 09:30 — before it began — and the whole ingest failed in Postgres."""

    def record(clock: str, status: str, session: str, user: str, extra: str = "") -> str:
        return (
            f"Sun Mar  1 {clock} 2026\n\tAcct-Status-Type = {status}\n"
            f'\tNAS-IP-Address = 192.0.2.1\n\tAcct-Session-Id = "{session}"\n'
            f'\tUser-Name = "{user}"\n\tFramed-IP-Address = 10.0.0.5\n{extra}\n'
        )

    text = record("10:00:00", "Start", "y", "yves") + record(
        "10:30:00", "Interim-Update", "x", "xena", "\tAcct-Session-Time = 3600\n"
    )
    parsed = radius.parse([("detail", text)], tz="UTC")
    assert [(r.line, "disagree" in r.reason) for r in parsed.refused] == [(8, True)]
    [iv] = parsed.intervals
    assert (iv.account, iv.start, iv.end) == ("yves", HOUR10, None)
