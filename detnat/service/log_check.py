"""``detnat logs check``: where a realm's logs and its plans disagree, and where the logs are thin.

For every stored interval of the realm that touches ``[from, to]``:

- ``names_another_subscriber``: the plan in force when the interval began gives one of its ports
  deterministically to another subscriber than the inside key the log names;
- ``outside_any_block``: the plan in force gives one of its ports to nobody (not in the pool, an
  excluded address, a reserved port, an unallocated tail): the NAT used a port the plan does not
  have;
- ``open_past_hold``: no release was logged and the realm's log hold ran out before now (or no
  hold is declared: ``open_without_hold``);
- ``open_past_interim``: no release was logged, and the interval ended at its next interim
  deadline (it is flagged ``interim_deadline``), before now: the NAT re-logs every block it
  still holds each interim period, so the release, or the refreshes, were lost;
- ``interim_gap``: the interim refreshes of an interval stopped for more than twice their usual
  spacing (lines lost?).

Ports of a dynamic block are the logs' to answer: no finding. A realm with logs and no plan is
checked for the last three only. Any finding makes the CLI exit 4.
"""

from __future__ import annotations

import itertools
import statistics
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.orm import Session

from detnat.engine import Status, parse_public_address
from detnat.logs.intervals import Interval
from detnat.logs.settle import subscriber_of, within
from detnat.service import logs, plans
from detnat.service.lookups import DEFAULT_MAPPERS
from detnat.service.timelines import TimelineCache
from detnat.service.times import format_instant
from detnat.store import logs as store

US = timedelta(microseconds=1)
SHOWN_PER_KIND = 1000


@dataclass(frozen=True)
class Finding:
    kind: str
    interval: Interval
    detail: str

    def to_json(self, realm: str) -> dict[str, Any]:
        i = self.interval
        return {
            "kind": self.kind,
            "realm": realm,
            "public_ip": i.public,
            "port_ranges": i.port_ranges() if i.port_step == 1 else [[i.port_first, i.port_last]],
            "port_step": i.port_step,
            "protocol": i.protocol,
            "subscriber": subscriber_of(i.inside),
            "from": None if i.start_us is None else format_instant(store.instant(i.start_us)),
            "to": None if i.end_us is None else format_instant(store.instant(i.end_us)),
            "lines": [f"{s.source.file}:{s.source.line}" for s in i.lines],
            "detail": self.detail,
        }


def check(
    session: Session,
    realm_name: str,
    *,
    start: datetime | None,
    end: datetime | None,
    now: datetime,
) -> tuple[list[Finding], dict[str, int]]:
    """The findings (see the module docstring) and how many intervals were checked."""
    realm = plans.get_realm(session, realm_name)
    timeline = TimelineCache().get(session).by_name.get(realm.name)
    hold = store.log_hold(session, realm.id)
    now_us = store.micros(now)
    found: list[Finding] = []
    checked = 0
    for row in store.intervals_touching(session, realm.id, start, end):
        interval = logs.interval_of(row)
        checked += 1
        found.extend(_against_plan(interval, timeline))
        found.extend(open_findings(interval, hold, now_us))
        gap = _interim_gap(interval)
        if gap is not None:
            found.append(Finding("interim_gap", interval, gap))
    return found, {"intervals": checked, "findings": len(found)}


def open_findings(interval: Interval, hold: timedelta | None, now_us: int) -> list[Finding]:
    """What an interval whose release was never logged says by ``now_us``: it has no end (no
    hold), or its end, the hold or the next interim deadline, has passed. An open interval cut
    short by the next allocation of its ports is not a finding."""
    if not interval.open:
        return []
    if interval.end_us is None:
        return [Finding("open_without_hold", interval, "no release, no log hold")]
    if interval.interim_deadline and interval.end_us <= now_us:
        return [
            Finding(
                "open_past_interim",
                interval,
                "no release, and no interim refresh by the next interim deadline",
            )
        ]
    if (
        hold is not None
        and interval.seen_to_us + hold // US <= now_us
        and interval.end_us == interval.seen_to_us + hold // US
    ):
        return [Finding("open_past_hold", interval, "no release within the log hold")]
    return []


def _against_plan(interval: Interval, timeline: Any) -> list[Finding]:
    if timeline is None or interval.start_us is None:
        return []
    index = timeline.in_force_at(store.instant(interval.start_us))
    if index < 0 or timeline.versions[index].plan is None:
        return []
    mapper = DEFAULT_MAPPERS.get(timeline.versions[index])
    address = parse_public_address(interval.public, field="public")
    for port in range(interval.port_first, interval.port_last + 1, interval.port_step):
        answer = mapper.reverse(address, port)
        if answer.status is Status.NO_MAPPING:
            return [
                Finding(
                    "outside_any_block",
                    interval,
                    f"port {port}: the plan in force gives it to nobody ({answer.reason})",
                )
            ]
        if answer.status is Status.MATCH and answer.allocation is not None:
            owner = str(answer.allocation.subscriber)
            if not within(interval.inside, owner):
                return [
                    Finding(
                        "names_another_subscriber",
                        interval,
                        f"port {port}: the plan in force gives it to {owner}",
                    )
                ]
    return []


def _interim_gap(interval: Interval) -> str | None:
    times = sorted(s.at_us for s in interval.lines)
    gaps = [b - a for a, b in itertools.pairwise(times)]
    if len(gaps) < 3:
        return None
    usual = statistics.median(gaps)
    worst = max(gaps)
    if usual > 0 and worst > 2 * usual:
        return f"a refresh gap of {worst / 1e6:g}s where {usual / 1e6:g}s is usual"
    return None
