"""Property: every interval a parse makes of random Kea leases -- memfile rows under each header
version (renewals, reclaims, releases, deletions) and forensic log lines (assignments, renewals,
releases) -- reads again clean from its own source lines
(:func:`detnat.directory.reread.check_row`), and the same interval with its account, key, start
or end changed does not (a released lease's end: past what its release allows, since the rows
between its first and last, not carried, may have moved it)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.directory import kea
from detnat.directory.reread import Reading, check_row
from tests.directory.samples import KEA_2, KEA_3, KEA_OLD

S = 1_000_000
T0 = 1_772_359_200  # 2026-03-01T10:00:00Z
PREFIXES = ("2001:db8:1:100::", "2001:db8:1:200::")
DUIDS = ("00:01:02", "00:01:03")


@st.composite
def memfiles(draw: st.DrawFn) -> str:
    header = draw(st.sampled_from((KEA_OLD, KEA_2, KEA_3)))
    width = header.count(",") + 1
    rows, at = [header], T0
    for _ in range(draw(st.integers(1, 10))):
        at += draw(st.integers(0, 5000))
        valid = draw(st.sampled_from((0, 600, 3600, 3600)))
        state = draw(st.sampled_from(("0", "0", "0", "2", "3")))
        prefix, duid = draw(st.sampled_from(PREFIXES)), draw(st.sampled_from(DUIDS))
        fields = [prefix, duid, str(valid), str(at + valid), "1", "1800", "2", "7", "56"]
        fields += ["0", "0", "", "", state, ""]
        fields += [""] * (width - len(fields))
        rows.append(",".join(fields))
    return "\n".join(rows) + "\n"


@st.composite
def forensic_logs(draw: st.DrawFn) -> str:
    lines, at = [], T0
    for _ in range(draw(st.integers(1, 10))):
        at += draw(st.integers(1, 5000))
        prefix, duid = draw(st.sampled_from(PREFIXES)), draw(st.sampled_from(DUIDS))
        when = datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        verb = draw(st.sampled_from(("assigned", "renewed", "released")))
        lasting = "" if verb == "released" else f" for {draw(st.integers(0, 2))} hrs 0 mins 0 secs"
        relay = draw(st.sampled_from(("", " identified by remote-id: 01:02")))
        lines.append(
            f"{when} Prefix:{prefix}/56 has been {verb}{lasting} to a device with DUID: {duid}"
            f" and hardware address: hwtype=1 08:00:2b:02:3f:4e{relay}"
        )
    return "\n".join(lines) + "\n"


@settings(max_examples=200, deadline=None)
@given(st.one_of(memfiles(), forensic_logs()), st.data())
def test_every_lease_interval_a_parse_makes_reads_again_and_a_changed_one_does_not(
    text: str, data: st.DataObject
) -> None:
    parsed = kea.parse([("leases", text)], tz="UTC")
    reading = Reading("kea-lease6", "UTC", None)
    for iv in parsed.intervals:
        assert check_row(iv, reading) == [], (iv, text)
        assert iv.end is not None
        # a release bounds the end (its lease may have been renewed by rows not carried): past it
        latest = (
            kea.read_line(iv.sources[-1].text, tz="UTC").end if iv.closed == "released" else iv.end
        )
        changed = data.draw(
            st.sampled_from(
                [
                    iv._replace(account=iv.account + "x"),
                    iv._replace(subscriber="2001:db8:9::/56"),
                    iv._replace(start=iv.start - S),
                    iv._replace(end=latest + S),
                ]
            )
        )
        assert check_row(changed, reading) != [], (iv, changed)
