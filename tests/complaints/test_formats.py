"""The readers: each format on published samples and our own notices, every quirk named."""

from __future__ import annotations

import io
import mailbox
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from detnat.complaints import Complaint, Options, Unreadable, read, split_mbox
from detnat.complaints.records import BadTime, iso_instant, mail_instant
from detnat.complaints.tables import parse_map
from detnat.errors import InvalidInput
from tests.complaints import samples


def one(data: bytes | str, name: str = "n", **kw: object) -> Complaint | Unreadable:
    raw = data.encode() if isinstance(data, str) else data
    [record] = list(read(io.BytesIO(raw), name, Options(**kw)))  # type: ignore[arg-type]
    return record


def complaint(data: bytes | str, name: str = "n", **kw: object) -> Complaint:
    record = one(data, name, **kw)
    assert isinstance(record, Complaint), record
    return record


# -- XARF --------------------------------------------------------------------------------------


def test_xarf_4_sample_gives_source_port_and_utc_instant() -> None:
    c = complaint(samples.XARF_4, "report.json")
    assert (c.format, c.ip, c.port, c.port_kind) == ("xarf-4", "198.51.100.77", 45621, "source")
    assert c.time_text == "2025-01-11T12:17:20Z" and c.zone == "Z"
    assert c.at_us == iso_instant("2025-01-11T12:17:20+00:00")[0]
    assert c.id == "3a1f6e0c-4b8e-4a55-9f0b-7c1d2e3f4a5b"
    assert c.category == "connection/login_attack"


def test_xarf_4_copyright_sample_without_source_port_has_no_port() -> None:
    c = complaint(samples.XARF_4_NO_PORT)
    assert c.port is None and c.port_kind is None and not c.has_source_port


def test_abusix_sample_reads_report_fields() -> None:
    c = complaint(samples.ABUSIX, "loginattack_sample.json", format="xarf")
    assert (c.format, c.ip, c.port, c.port_kind) == ("xarf-abusix", "192.0.2.55", 54321, "source")
    assert c.category == "Activity/LoginAttack" and c.zone == "Z"


def test_abusix_and_4_0_0_of_the_same_event_agree() -> None:
    v4 = complaint(
        b'{"xarf_version":"4.0.0","timestamp":"2018-02-05T15:17:10+01:00",'
        b'"source_identifier":"192.0.2.55","source_port":54321}'
    )
    abusix = complaint(samples.ABUSIX)
    assert (v4.ip, v4.port, v4.at_us) == (abusix.ip, abusix.port, abusix.at_us)
    assert v4.zone == "+01:00"


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b'{"xarf_version":"4.0.0","source_identifier":"192.0.2.1","source_identifier":"x"}',
         "duplicate key"),
        (b'{"xarf_version":"4.0.0","timestamp":"2025-01-11T12:17:20","source_identifier":"1.2.3.4"}',
         "no offset"),
        (b'{"xarf_version":"4.0.0","timestamp":"2016-12-31T23:59:60Z","source_identifier":"1.2.3.4"}',
         "leap second"),
        (b'{"xarf_version":"4.0.0","timestamp":"2025-01-11T12:17:20Z","source_identifier":"1.2.3.4",'
         b'"source_port":70000}', "not a port"),
        (b'{"xarf_version":"4.0.0","timestamp":"2025-01-11T12:17:20Z","source_identifier":"1.2.3.4",'
         b'"source_port":true}', "not a port"),
        (b'{"xarf_version":"4.0.0","timestamp":"2025-01-11T12:17:20Z"}', "no source_identifier"),
        (b'{"hello":1}', "not an XARF report"),
        (b'{"xarf_version":NaN}', "NaN"),
    ],
)  # fmt: skip
def test_bad_xarf_json_is_unreadable_with_the_reason(body: bytes, why: str) -> None:
    record = one(body)
    assert isinstance(record, Unreadable)
    assert why in record.reason


def test_x_arf_0_2_port_is_the_service_port() -> None:
    c = complaint(samples.xarf_02_mail("192.0.2.1"), "one.eml")
    assert (c.format, c.ip, c.port, c.port_kind) == ("x-arf-0.2", "192.0.2.1", 22, "service")
    assert not c.has_source_port
    assert c.zone == "+0100" and c.time_text == "Feb  3 2014 02:13:35 +0100"
    assert c.at_us == iso_instant("2014-02-03T01:13:35Z")[0]
    assert "port of ssh, not a source port" in c.flags[0]
    assert c.id == "1391390015@example.org"


def test_x_arf_yaml_with_aliases_is_refused() -> None:
    bomb = samples.XARF_02_YAML.format(ip="192.0.2.1") + "a: &a [x, x]\nb: [*a, *a]\n"
    mail = (
        b"X-XARF: PLAIN\nContent-Type: multipart/mixed; boundary=q\n\n--q\n\nhi\n--q\n\n"
        + bomb.encode()
        + b"--q--\n"
    )
    record = one(mail)
    assert isinstance(record, Unreadable) and "YAML" in record.reason


# -- ARF ---------------------------------------------------------------------------------------


def test_arf_reads_source_ip_port_and_arrival_date_with_its_zone() -> None:
    c = complaint(samples.arf_mail("192.0.2.1", 47123), "fbl.eml")
    assert (c.format, c.ip, c.port, c.port_kind) == ("arf", "192.0.2.1", 47123, "source")
    assert c.zone == "EDT" and c.at_us == iso_instant("2005-03-08T18:00:00Z")[0]
    assert c.category == "feedback/abuse" and c.id == "<arf-192.0.2.1-47123@example.com>"


def test_arf_without_source_port_has_no_port() -> None:
    c = complaint(samples.arf_mail("192.0.2.1", None))
    assert c.port is None and not c.has_source_port


def test_arf_without_arrival_date_is_unreadable_not_dated_by_the_report() -> None:
    mail = samples.arf_mail("192.0.2.1", 1).replace(b"Arrival-Date", b"X-Nothing")
    record = one(b"Date: Fri, 9 Mar 2005 10:00:00 +0000\n" + mail)
    assert isinstance(record, Unreadable) and "without Arrival-Date" in record.reason


# -- ACNS --------------------------------------------------------------------------------------


def test_acns_standalone_xml() -> None:
    c = complaint(samples.acns_xml("192.0.2.9", 33273), "notice.xml")
    assert (c.format, c.ip, c.port, c.port_kind) == ("acns", "192.0.2.9", 33273, "source")
    assert c.time_text == "2016-10-16T17:27:46Z" and c.id == "A1B2C3"
    assert c.category == "copyright/BitTorrent" and c.flags == ()


def test_acns_old_movielabs_namespace_is_read_and_said() -> None:
    xml = samples.acns_xml("192.0.2.9", 33273, namespace="http://www.movielabs.com/ACNS")
    c = complaint(xml)
    assert c.port == 33273 and "movielabs" in c.flags[0]


def test_acns_other_namespace_is_unreadable() -> None:
    record = one(samples.acns_xml("192.0.2.9", 1, namespace="urn:example:other"))
    assert isinstance(record, Unreadable) and "namespace" in record.reason


def test_acns_unescaped_ampersand_is_tolerated_and_said() -> None:
    c = complaint(samples.acns_xml("192.0.2.9", 33273, title="Tom & Jerry &amp; Friends"))
    assert c.port == 33273
    assert c.flags == ("unescaped & in the XML read as &amp;",)


def test_acns_text_and_xml_timestamps_disagreeing_is_reported_with_both() -> None:
    # The observed quirk (formats.md section 2): the mail text said 2019-02-27T08:06:44Z while
    # the XML TimeStamp was 2019-03-10T08:06:44Z.
    mail = samples.acns_mail(
        "192.0.2.9", 33273, "2019-03-10T08:06:44Z", text_stamp="2019-02-27T08:06:44Z"
    )
    c = complaint(mail)
    assert c.at_us == iso_instant("2019-03-10T08:06:44Z")[0]
    assert c.also_at_us == iso_instant("2019-02-27T08:06:44Z")[0]
    assert "2019-02-27T08:06:44Z" in c.flags[0] and "2019-03-10T08:06:44Z" in c.flags[0]


def test_acns_text_timestamp_that_agrees_adds_nothing() -> None:
    c = complaint(samples.acns_mail("192.0.2.9", 1, "2019-03-10T08:06:44Z", "2019-03-10T08:06:44Z"))
    assert c.also_at_us is None and c.flags == ()


def test_acns_entity_tricks_are_refused_by_defusedxml() -> None:
    xml = '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]>' + samples.acns_xml(
        "192.0.2.9", 1
    ).split("?>", 1)[1].replace("Big Buck Bunny", "&a;")
    record = one(xml)
    assert isinstance(record, Unreadable) and "ACNS XML" in record.reason


# -- Shadowserver and mapped CSV -----------------------------------------------------------------


def test_shadowserver_scan_port_is_the_scanned_service() -> None:
    text = samples.SHADOW_SNMP + (
        '"2014-04-12 00:00:06","192.0.2.3","udp","161","","","","64500","XX","","",""\n'
    )
    c = complaint(text, "2014-04-12-scan_snmp-example.csv")
    assert (c.ip, c.port, c.port_kind, c.zone) == ("192.0.2.3", 161, "service", "UTC")
    assert c.at_us == iso_instant("2014-04-12T00:00:06Z")[0]
    assert "scanned service" in c.flags[0]
    assert str(c.ref) == "2014-04-12-scan_snmp-example.csv:2"


def test_shadowserver_src_port_is_a_source_port() -> None:
    text = samples.SHADOW_DRONE + (
        '"2014-04-12 00:00:06","192.0.2.4","64500","XX","/x","http","agent","","40001",'
        '"203.0.113.5","64501","YY"\n'
        '"2014-04-12 00:00:07","192.0.2.4","64500","XX","/x","http","agent","","",'
        '"203.0.113.5","64501","YY"\n'
    )
    first, second = list(read(io.BytesIO(text.encode()), "sinkhole-http-drone.csv"))
    assert isinstance(first, Complaint) and (first.port, first.port_kind) == (40001, "source")
    assert first.category == "shadowserver/http"
    assert isinstance(second, Complaint) and second.port is None


def test_mapped_csv_with_zone_and_dst_refusals() -> None:
    text = (
        "seen,src,sport,what\n"
        "2026-03-14 21:07:33,192.0.2.1,1100,spam\n"
        "2026-10-25 02:30:00,192.0.2.1,1100,spam\n"  # Berlin: happened twice
        "2026-03-29 02:30:00,192.0.2.1,1100,spam\n"  # Berlin: never happened
        "2026-03-14T20:07:33Z,192.0.2.1,99999,spam\n"
    )
    mapping = parse_map("ip=src,port=sport,time=seen,category=what")
    records = list(
        read(io.BytesIO(text.encode()), "x.csv", Options("csv", mapping, "Europe/Berlin"))
    )
    ok = records[0]
    assert isinstance(ok, Complaint) and ok.zone == "Europe/Berlin" and ok.category == "spam"
    assert ok.at_us == iso_instant("2026-03-14T20:07:33Z")[0]
    assert [type(r).__name__ for r in records[1:]] == ["Unreadable"] * 3
    reasons = [r.reason for r in records[1:] if isinstance(r, Unreadable)]
    assert "happened twice" in reasons[0] and "never happened" in reasons[1]
    assert "not a port" in reasons[2]


def test_csv_needs_a_map_unless_it_is_shadowserver() -> None:
    with pytest.raises(InvalidInput, match="--map"):
        list(read(io.BytesIO(b"a,b,c\n1,2,3\n"), "x.csv"))


@pytest.mark.parametrize(
    ("text", "why"),
    [("ip=a,port=b", "missing time"), ("ip=a,time=b,colour=c", "unknown key"), ("ip", "key=")],
)
def test_bad_maps_are_refused(text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        parse_map(text)


def test_mapped_csv_missing_column_is_refused_before_any_row() -> None:
    with pytest.raises(InvalidInput, match="no column 'seen'"):
        list(read(io.BytesIO(b"a,b\n1,2\n"), "x.csv", Options("csv", parse_map("ip=a,time=seen"))))


# -- mailboxes ---------------------------------------------------------------------------------


def test_mbox_of_mixed_formats_reads_each_message_as_what_it_is() -> None:
    box = samples.mbox(
        samples.arf_mail("192.0.2.1", 47123),
        samples.xarf_02_mail("192.0.2.2"),
        b"Content-Type: application/json\n\n" + samples.ABUSIX,
        samples.acns_mail("192.0.2.9", 33273, "2016-10-16T17:27:46Z"),
        (
            b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
            b"--b\nContent-Type: text/plain\n\nsee attached\n--b\n"
            b"Content-Type: application/json; name=report.json\n\n" + samples.XARF_4 + b"\n--b--\n"
        ),
        b"Subject: Re: your invoice\n\nThis is not a complaint.\n",
    )
    records = list(read(io.BytesIO(box), "export.mbox"))
    kinds = [r.format if isinstance(r, Complaint) else "unreadable" for r in records]
    assert kinds == ["arf", "x-arf-0.2", "xarf-abusix", "acns", "xarf-4", "unreadable"]
    assert [str(r.ref) for r in records] == [f"export.mbox#{n}" for n in range(1, 7)]
    last = records[-1]
    assert isinstance(last, Unreadable) and "Subject: Re: your invoice" in last.reason


def test_mbox_with_a_named_format_marks_the_others_unreadable() -> None:
    box = samples.mbox(samples.arf_mail("192.0.2.1", 1), samples.xarf_02_mail())
    first, second = list(read(io.BytesIO(box), "x.mbox", Options("arf")))
    assert isinstance(first, Complaint)
    assert isinstance(second, Unreadable) and "no ARF report" in second.reason


def test_mbox_split_agrees_with_the_standard_library(tmp_path: Path) -> None:
    box = samples.mbox(
        samples.arf_mail("192.0.2.1", 1), b"Subject: x\n\nbody\n", samples.xarf_02_mail()
    )
    path = tmp_path / "box.mbox"
    path.write_bytes(box)
    ours = list(split_mbox(io.BytesIO(box)))
    box_of_theirs = mailbox.mbox(path)
    try:
        theirs = [box_of_theirs.get_bytes(key) for key in box_of_theirs.iterkeys()]
    finally:
        box_of_theirs.close()
    assert len(ours) == len(theirs) == 3
    for a, b in zip(ours, theirs, strict=True):
        assert a.rstrip(b"\n") == b.rstrip(b"\n")


def test_single_eml_and_empty_message() -> None:
    assert isinstance(one(samples.arf_mail("192.0.2.1", 2), "one.eml"), Complaint)
    box = b"From x\n\nFrom y\nSubject: s\n\n"
    records = list(read(io.BytesIO(box), "x.mbox"))
    assert isinstance(records[0], Unreadable) and "empty message" in records[0].reason


# -- instants ----------------------------------------------------------------------------------


def test_mail_dates_keep_the_zone_as_written() -> None:
    assert mail_instant("Mon, 16 Mar 2026 10:00:00 -0000")[1] == "-0000"
    with pytest.raises(BadTime):
        mail_instant("yesterday")


@pytest.mark.parametrize(
    "text",
    [
        "Thu, 8 Mar 2005 14:00:00 CET",  # a zone RFC 5322 does not name: its offset is unknown
        "Thu, 8 Mar 2005 14:00:00",  # no zone at all
        "Feb  3 2014 02:13:35 CET",  # X-ARF 0.2's form with a zone abbreviation
        "Thu, 8 Mar 2005 14:00:00 Q",  # a military letter: its sign was never settled
    ],
)
def test_a_mail_date_whose_offset_is_unknown_is_refused_never_read_as_utc(text: str) -> None:
    """Reading 14:00 CET as 14:00Z would ask about the wrong hour and name whoever held the port
    then; only ``-0000`` (and the zones RFC 5322 names, with their offsets) say the instant."""
    with pytest.raises(BadTime, match="offset"):
        mail_instant(text)
    assert mail_instant("Thu, 8 Mar 2005 14:00:00 GMT")[0] == iso_instant("2005-03-08T14:00:00Z")[0]
    assert (
        mail_instant("Thu, 8 Mar 2005 14:00:00 -0000")[0] == iso_instant("2005-03-08T14:00:00Z")[0]
    )


@settings(deadline=None)  # zoneinfo loads: slow the first time on a loaded machine
@given(st.datetimes(timezones=st.timezones()))
def test_iso_instants_round_trip(moment: object) -> None:
    from datetime import UTC, datetime, timedelta

    assert isinstance(moment, datetime)
    offset = moment.utcoffset()
    assert offset is not None
    if offset.seconds % 60 or abs(offset.total_seconds()) >= 86400:
        return  # RFC 3339 offsets are whole minutes
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        return
    text = moment.isoformat()
    expected = (utc - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
    try:
        got, _ = iso_instant(text)
    except BadTime:
        return  # leaves the calendar in UTC: refused, not wrapped
    assert got == expected


_KEYS = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,12}", fullmatch=True)
_VALUES = st.text(
    st.characters(codec="utf-8", exclude_categories=("Cs", "Cc", "Zl", "Zp")), max_size=30
)


@settings(deadline=None)
@given(st.dictionaries(_KEYS, _VALUES, min_size=1, max_size=6), st.sampled_from([" ", "  "]))
@example({"A": "&x"}, " ")  # an anchor: YAML reads it, load_yaml refuses it (billion laughs)
@example({"A": ">#"}, " ")  # libyaml reads a block scalar here, PyYAML's own parser refuses it
def test_flat_reports_read_as_yaml_reads_them(report: dict[str, str], gap: str) -> None:
    """The fast path for flat ``Key: value`` reports gives what YAML gives, or defers to it: the
    YAML of ``load_yaml`` itself (libyaml where it is built in), which differs from PyYAML's
    pure-Python parser on a few malformed headers (``A: >#``: libyaml reads an empty block
    scalar, PyYAML refuses it)."""
    import yaml

    from detnat.complaints.xarf import _BASE_LOADER, load_yaml

    text = "".join(f"{k}:{gap}{v}\n" for k, v in report.items())
    try:
        expected = yaml.load(text, Loader=_BASE_LOADER)
        anchored = any(
            isinstance(e, yaml.AliasEvent) or getattr(e, "anchor", None) is not None
            for e in yaml.parse(text, Loader=_BASE_LOADER)
        )
    except yaml.YAMLError:
        anchored = True  # refused by YAML itself
    if anchored:  # YAML errors, and anchors or aliases (``Key: &x``): load_yaml refuses both
        with pytest.raises(yaml.YAMLError):
            load_yaml(text)
        return
    assert load_yaml(text) == expected


def test_a_mailbox_read_in_worker_processes_reads_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    import detnat.complaints as intake

    monkeypatch.setattr(intake, "CHUNK_MESSAGES", 3)
    box = samples.mbox(
        *[samples.arf_mail(f"192.0.2.{n}", 1000 + n) for n in range(1, 6)],
        samples.xarf_02_mail(),
        b"Subject: nothing\n\n",
        samples.acns_mail("192.0.2.9", 1, "2016-10-16T17:27:46Z"),
    )
    alone = list(read(io.BytesIO(box), "x.mbox"))
    together = list(read(io.BytesIO(box), "x.mbox", Options(workers=2)))
    assert together == alone and len(alone) == 8


def test_a_mailbox_whose_separator_line_has_a_comma_is_still_a_mailbox() -> None:
    box = b"From abuse@example.net, Mon Mar 16 10:00:00 2026\n" + samples.arf_mail("192.0.2.1", 7)
    assert complaint(box, "x.mbox").ref.message == 1
