"""Property: every interval a parse makes of random RADIUS accounting (lost stops, NAS reboots,
delayed records written out of order, interim updates, with and without ``--interim``) reads
again clean from its own source lines (:func:`detnat.directory.reread.check_row`), and the same
interval with its account, key, start or end changed does not: what ``evidence verify`` holds an
account's intervals to, against the parser itself."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.directory import radius
from detnat.directory.reread import Reading, check_row
from tests.directory.test_replay_property import Event, detail_file, histories

S = 1_000_000


@settings(max_examples=200, deadline=None)
@given(histories(), st.sampled_from([None, None, 1, 100, 400]), st.data())
def test_every_interval_a_parse_makes_reads_again_and_a_changed_one_does_not(
    events: list[Event], interim: int | None, data: st.DataObject
) -> None:
    period = None if interim is None else interim * S
    parsed = radius.parse([("detail", detail_file(events))], tz="UTC", interim_us=period)
    reading = Reading("freeradius-detail", "UTC", period)
    for iv in parsed.intervals:
        assert check_row(iv, reading) == [], iv
        changed = data.draw(
            st.sampled_from(
                [
                    iv._replace(account=iv.account + "x"),
                    iv._replace(subscriber="2001:db8:9::/56"),
                    iv._replace(start=iv.start - S),
                    iv._replace(end=(iv.start + 7 * S) if iv.end is None else iv.end + S),
                ]
            )
        )
        assert check_row(changed, reading) != [], (iv, changed)
