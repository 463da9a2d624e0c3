"""Each directory format on its samples, and every quirk the parsers must get right."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from detnat.directory import kea, radius, table
from detnat.directory.model import collector_paused
from detnat.directory.resolve import instant_text
from detnat.directory.zones import epoch_us, from_us
from detnat.errors import InvalidInput
from detnat.service.times import format_instant
from tests.directory.samples import DETAIL, KEA_2, KEA_3, KEA_LEGAL_DOC, KEA_OLD


def us(text: str) -> int:
    return epoch_us(datetime.fromisoformat(text).replace(tzinfo=UTC))


def record(status: str, when: str, sid: str, *attrs: str, nas: str = "192.0.2.10") -> str:
    lines = [when, f"\tAcct-Status-Type = {status}", f"\tNAS-IP-Address = {nas}"]
    if sid:
        lines.append(f'\tAcct-Session-Id = "{sid}"')
    lines += [f"\t{a}" for a in attrs]
    return "\n".join(lines) + "\n\n"


P = "Delegated-IPv6-Prefix = 2001:db8:1:100::/56"


# -- freeradius-detail ---------------------------------------------------------------------------


def test_detail_sample_gives_one_session_with_its_start_and_stop_lines() -> None:
    parsed = radius.parse([("detail-20260630", DETAIL)], tz="Europe/Berlin")
    assert parsed.records == 3 and parsed.refused == []
    by_key = {iv.subscriber: iv for iv in parsed.intervals}
    assert set(by_key) == {"2001:db8:104d:c900::/56", "2001:db8:ffff::10/128"}
    held = by_key["2001:db8:104d:c900::/56"]
    assert held.account == "alice@isp.example" and held.closed == "stop"
    assert held.start == us("2026-06-30T20:44:25")  # 22:44:25 CEST
    assert held.end == (1782860405 - 5) * 1_000_000  # received, minus Acct-Delay-Time
    assert [s.line for s in held.sources] == [1, 23]
    assert held.sources[0].text.startswith("Tue Jun 30 22:44:25 2026\n\tAcct-Session-Id")


def test_detail_needs_a_zone_and_refuses_a_wrong_one() -> None:
    with pytest.raises(InvalidInput):
        radius.parse([("d", DETAIL)], tz=None)
    parsed = radius.parse([("d", DETAIL)], tz="UTC")  # the lines were written in Berlin
    assert len(parsed.refused) == 3
    assert "other zone" in parsed.refused[0].reason or "CEST" in parsed.refused[0].reason


def test_event_time_is_receive_time_minus_acct_delay_time() -> None:
    text = record(
        "Start", "Thu Jan  1 10:00:30 2026", "s1", 'User-Name = "bob"', P, "Acct-Delay-Time = 30"
    )
    (iv,) = radius.parse([("d", text)], tz="UTC").intervals
    assert iv.start == us("2026-01-01T10:00:00") and iv.end is None and iv.closed == "open"


def test_event_timestamp_wins_over_the_record_time() -> None:
    text = record(
        "Start",
        "Thu Jan  1 10:00:30 2026",
        "s1",
        'User-Name = "bob"',
        P,
        "Event-Timestamp = 1767261600",
        "Acct-Delay-Time = 30",
    )
    (iv,) = radius.parse([("d", text)], tz="UTC").intervals
    assert iv.start == 1767261600 * 1_000_000


def test_accounting_on_closes_every_open_session_of_that_nas_only() -> None:
    text = (
        record("Start", "Thu Jan  1 10:00:00 2026", "a", 'User-Name = "alice"', P)
        + record(
            "Start",
            "Thu Jan  1 10:00:00 2026",
            "b",
            'User-Name = "bob"',
            "Framed-IP-Address = 100.64.0.7",
        )
        + record(
            "Start",
            "Thu Jan  1 10:00:00 2026",
            "c",
            'User-Name = "carol"',
            "Framed-IP-Address = 100.64.0.8",
            nas="192.0.2.99",
        )
        + record("Accounting-On", "Thu Jan  1 11:00:00 2026", "")
    )
    parsed = radius.parse([("d", text)], tz="UTC")
    closed = {iv.account: (iv.closed, iv.end) for iv in parsed.intervals}
    assert closed["alice"] == ("nas-reboot", us("2026-01-01T11:00:00"))
    assert closed["bob"] == ("nas-reboot", us("2026-01-01T11:00:00"))
    assert closed["carol"] == ("open", None)


def test_a_lost_stop_stays_open_until_someone_else_starts_on_the_key() -> None:
    text = record("Start", "Thu Jan  1 10:00:00 2026", "a", 'User-Name = "alice"', P) + record(
        "Start", "Thu Jan  1 12:00:00 2026", "b", 'User-Name = "bob"', P
    )
    first, second = sorted(radius.parse([("d", text)], tz="UTC").intervals, key=lambda i: i.start)
    assert (first.account, first.closed, first.end) == (
        "alice",
        "takeover",
        us("2026-01-01T12:00:00"),
    )
    assert (second.account, second.closed, second.end) == ("bob", "open", None)
    assert len(first.sources) == 2  # its Start and bob's Start, which ended it


def test_delayed_records_written_out_of_order_land_where_they_happened() -> None:
    stop = record(
        "Stop", "Thu Jan  1 12:00:05 2026", "a", 'User-Name = "alice"', P, "Acct-Delay-Time = 5"
    )
    start = record("Start", "Thu Jan  1 10:00:00 2026", "a", 'User-Name = "alice"', P)
    (iv,) = radius.parse([("d", stop + start)], tz="UTC").intervals
    assert (iv.start, iv.end, iv.closed) == (
        us("2026-01-01T10:00:00"),
        us("2026-01-01T12:00:00"),
        "stop",
    )


def test_a_stop_without_its_start_uses_the_session_time_or_is_refused() -> None:
    known = record(
        "Stop",
        "Thu Jan  1 12:00:00 2026",
        "a",
        'User-Name = "alice"',
        P,
        "Acct-Session-Time = 3600",
    )
    unknown = record("Stop", "Thu Jan  1 12:00:00 2026", "b", 'User-Name = "bob"', P)
    parsed = radius.parse([("d", known + unknown)], tz="UTC")
    (iv,) = parsed.intervals
    assert (iv.account, iv.start) == ("alice", us("2026-01-01T11:00:00"))
    assert len(parsed.refused) == 1 and "Start was not read" in parsed.refused[0].reason


def test_a_retransmitted_record_is_a_duplicate() -> None:
    start = record("Start", "Thu Jan  1 10:00:00 2026", "a", 'User-Name = "alice"', P)
    parsed = radius.parse([("d", start + start)], tz="UTC")
    assert parsed.records == 2 and parsed.duplicates == 1 and len(parsed.intervals) == 1


def test_unreadable_records_are_refused_with_their_line() -> None:
    text = (
        record("Start", "Thu Jan  1 10:00:00 2026", "a", P)  # no account
        + record("Bogus", "Thu Jan  1 10:00:00 2026", "a", 'User-Name = "x"')
        + record(
            "Start",
            "Thu Jan  1 10:00:00 2026",
            "a",
            'User-Name = "x"',
            "Delegated-IPv6-Prefix = 2001:db8::1/56",
        )  # host bits set
    )
    parsed = radius.parse([("f", text)], tz="UTC")
    assert [(r.file, r.line) for r in parsed.refused] == [("f", 1), ("f", 7), ("f", 13)]
    assert parsed.intervals == []


def test_a_wall_clock_time_skipped_by_the_zone_is_refused() -> None:
    text = record("Start", "Sun Mar 29 02:30:00 2026", "a", 'User-Name = "x"', P)
    parsed = radius.parse([("f", text)], tz="Europe/Berlin")
    assert "does not exist" in parsed.refused[0].reason


@pytest.mark.parametrize("second", ["60", "61", "99"])
def test_a_second_past_59_is_refused_not_carried_into_the_next_minute(second: str) -> None:
    """Found by review: ``22:44:99`` was read as 22:45:39 -- a time no clock writes."""
    header = f"Tue Jun 30 22:44:{second} 2026"
    printed = f'Event-Timestamp = "Jun 30 2026 22:44:{second} CEST"'
    for text in (
        record("Start", header, "a", 'User-Name = "x"', P),
        record("Start", "Tue Jun 30 22:44:25 2026", "a", 'User-Name = "x"', P, printed),
    ):
        parsed = radius.parse([("f", text)], tz="Europe/Berlin")
        assert parsed.intervals == [] and len(parsed.refused) == 1, parsed


# -- kea-lease6 ------------------------------------------------------------------------------------


@pytest.mark.parametrize("header", [KEA_OLD, KEA_2, KEA_3])
def test_kea_memfile_of_every_header_version(header: str) -> None:
    extra = "," * (header.count(",") - KEA_OLD.count(","))
    rows = [
        # a renewal chain of one /56, then its release; an IA_NA row skipped
        f"2001:db8:1:100::,00:01:02,3600,1767229200,1,1800,2,7,56,0,0,,,0,{extra}",
        f"2001:db8:1:100::,00:01:02,3600,1767231000,1,1800,2,7,56,0,0,,,0,{extra}",
        f"2001:db8:1:100::,00:01:02,3600,1767229800,1,1800,2,7,56,0,0,,,3,{extra}",
        f"2001:db8::5,00:01:02,3600,1767231000,1,1800,0,7,128,0,0,,,0,{extra}",
    ]
    parsed = kea.parse([("kea-leases6.csv", "\n".join([header, *rows]) + "\n")], tz=None)
    assert parsed.refused == [] and parsed.records == 4
    (iv,) = parsed.intervals
    assert iv.subscriber == "2001:db8:1:100::/56" and iv.account == "duid:00:01:02"
    assert (iv.start, iv.end, iv.closed) == (
        (1767229200 - 3600) * 1_000_000,
        1767229800 * 1_000_000,
        "released",
    )
    assert [s.line for s in iv.sources] == [2, 4]


def test_kea_memfile_valid_lifetime_zero_ends_the_lease_and_a_gap_starts_another() -> None:
    rows = [
        "2001:db8:1:100::,00:01:02,3600,1767229200,1,1800,2,7,56,0,0,,,0,",
        "2001:db8:1:100::,00:01:02,0,1767228000,1,0,2,7,56,0,0,,,0,",
        "2001:db8:1:100::,00:01:02,3600,1767240000,1,1800,2,7,56,0,0,,,0,",
    ]
    parsed = kea.parse([("l.csv", "\n".join([KEA_OLD, *rows]))], tz=None)
    first, second = sorted(parsed.intervals, key=lambda i: i.start)
    assert (first.end, first.closed) == (1767228000 * 1_000_000, "released")
    assert (second.start, second.closed) == ((1767240000 - 3600) * 1_000_000, "expired")


def test_kea_forensic_line_of_the_documentation() -> None:
    parsed = kea.parse([("kea-legal6.txt", KEA_LEGAL_DOC + "\n")], tz="America/Los_Angeles")
    (iv,) = parsed.intervals
    assert iv.subscriber == "2001:db8:1::/56"
    assert iv.account == "subscriber-id:1a:2b:3c:4d:5e:6f"  # the relay's word wins over the DUID
    start = us("2018-01-06T09:02:03")  # 01:02:03 PST
    assert (iv.start, iv.end) == (start, start + (11 * 60 + 53) * 1_000_000)


@pytest.mark.parametrize("second", ["60", "99"])
def test_kea_forensic_second_past_59_is_refused(second: str) -> None:
    line = KEA_LEGAL_DOC.replace("01:02:03 PST", f"01:02:{second} PST")
    parsed = kea.parse([("l", line)], tz="America/Los_Angeles")
    assert parsed.intervals == [] and len(parsed.refused) == 1, parsed


def test_kea_forensic_zone_abbreviation_must_be_the_zones_at_that_instant() -> None:
    parsed = kea.parse([("l", KEA_LEGAL_DOC)], tz="Europe/Berlin")
    assert parsed.intervals == [] and "PST is not Europe/Berlin's" in parsed.refused[0].reason
    summer = KEA_LEGAL_DOC.replace("2018-01-06", "2018-07-06")  # PDT then, not PST
    parsed = kea.parse([("l", summer)], tz="America/Los_Angeles")
    assert parsed.intervals == [] and "(it is PDT)" in parsed.refused[0].reason
    with pytest.raises(InvalidInput):
        kea.parse([("l", KEA_LEGAL_DOC)], tz=None)


def test_kea_forensic_renew_extends_and_release_ends_without_relay_ids_the_duid() -> None:
    lines = [
        "2026-01-01 10:00:00 UTC Prefix:2001:db8:2::/56 has been assigned for 1 hrs 0 mins 0 secs"
        " to a device with DUID: 00:03:00:01:aa",
        "2026-01-01 10:30:00 UTC Prefix:2001:db8:2::/56 has been renewed for 1 hrs 0 min 0 secs"
        " to a device with DUID: 00:03:00:01:aa",
        "2026-01-01 11:00:00 UTC Prefix:2001:db8:2::/56 has been released"
        " to a device with DUID: 00:03:00:01:aa",
    ]
    (iv,) = kea.parse([("l", "\n".join(lines))], tz="Europe/Berlin").intervals
    assert iv.account == "duid:00:03:00:01:aa"
    assert (iv.start, iv.end, iv.closed) == (
        us("2026-01-01T10:00:00"),
        us("2026-01-01T11:00:00"),
        "released",
    )


# -- csv -------------------------------------------------------------------------------------------


def test_csv_rows_and_their_refusals() -> None:
    text = (
        "subscriber,account,from,to\n"
        "2001:db8:104d:c900::/56,CUST-1001,2026-03-01T00:00:00Z,2026-04-01T00:00:00Z\n"
        "100.64.0.7,CUST-7,2026-03-01T01:00:00,\n"
        "2001:db8::1/56,CUST-2,2026-03-01T00:00:00Z,\n"
        "2001:db8:1::/56,CUST-3,2026-03-02T00:00:00Z,2026-03-01T00:00:00Z\n"
    )
    parsed = table.parse([("dir.csv", text)], tz="Europe/Berlin")
    assert [iv.subscriber for iv in parsed.intervals] == [
        "2001:db8:104d:c900::/56",
        "100.64.0.7/32",
    ]
    assert (
        parsed.intervals[1].start == us("2026-03-01T00:00:00") and parsed.intervals[1].end is None
    )
    assert [(r.line) for r in parsed.refused] == [4, 5]
    assert table.parse([("x", "a,b\n")], tz=None).refused[0].line == 1


def test_detail_files_with_crlf_odd_blank_lines_or_glued_records_read_the_same() -> None:
    plain = radius.parse([("d", DETAIL)], tz="Europe/Berlin")
    crlf = radius.parse([("d", DETAIL.replace("\n", "\r\n"))], tz="Europe/Berlin")
    assert crlf.intervals == plain.intervals
    odd = DETAIL.replace("\n\nTue", "\n\t\n\n\nTue")  # a tab-only line, extra blank lines
    shifted = radius.parse([("d", odd)], tz="Europe/Berlin")
    assert [iv.account for iv in shifted.intervals] == [iv.account for iv in plain.intervals]
    assert shifted.refused == [] and shifted.records == 3
    glued = DETAIL.replace("\n\nTue Jun 30 23:44:30", "\nTue Jun 30 23:44:30")
    again = radius.parse([("d", glued)], tz="Europe/Berlin")
    assert again.records == 3 and again.refused == []
    assert [iv[:5] for iv in again.intervals] == [iv[:5] for iv in plain.intervals]


@given(st.integers(-(10**15), 4 * 10**15))
def test_instant_text_is_the_stores_instant_form(us: int) -> None:
    assert instant_text(us) == format_instant(from_us(us))


def test_a_parse_pauses_the_collector_and_gives_it_back_as_it_was() -> None:
    import gc

    seen: list[bool] = []

    @collector_paused
    def reading(fail: bool) -> None:
        seen.append(gc.isenabled())
        if fail:
            raise ValueError("unreadable")

    assert gc.isenabled()
    reading(False)
    with pytest.raises(ValueError):
        reading(True)
    assert seen == [False, False] and gc.isenabled()
    gc.disable()
    try:
        reading(False)
        assert not gc.isenabled()
    finally:
        gc.enable()
