"""A complaint without a source port names no one (RFC 6302) but says how many subscribers shared
the address then: those the NAT's own logs show holding a port block on it count too. Before,
a realm answered by its logs alone (port block allocation, no plan) gave such a complaint
``not_ours`` ("no subscriber of ours held it"), and an address whose plan leaves ports to the
logs counted only the plan's holders."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest

from detnat.complaints import Complaint, Ref
from detnat.complaints.records import SOURCE
from detnat.logs.events import EventKind
from detnat.service import complaints, lookups, plans
from detnat.service.batch_lookups import BatchQuery
from detnat.service.timelines import TimelineCache
from detnat.store import logs as store
from detnat.store.db import SessionFactory
from tests.logs.conftest import T0_US, event, ingest, new_realm

pytestmark = pytest.mark.postgres

S = 10**6
PUBLIC, OTHER = "198.19.210.1", "198.19.210.2"


def _ask(
    sessions: SessionFactory, ip: str, at_us: int, realm: str | None, port: int | None = None
) -> dict[str, str]:
    at = store.instant(at_us)
    kind = None if port is None else SOURCE
    record = Complaint(Ref("t"), "csv", "c", ip, port, kind, at_us, at.isoformat(), "Z", "spam")
    out: list[str] = []
    with sessions() as s:
        query = BatchQuery(
            snapshot=TimelineCache().get(s), now=lookups.utcnow(), mappers=plans.MapperCache(),
            tolerance=timedelta(seconds=1), realm=realm,
        )  # fmt: skip
        complaints.answer_records(complaints.with_logs(s, query), [record], out.append)
    (row,) = csv.DictReader(io.StringIO("".join(out)))
    return row


def test_logged_holders_are_counted_and_no_one_is_named(sessions: SessionFactory) -> None:
    realm = new_realm(sessions)
    lines = [
        # three subscribers hold blocks on PUBLIC around T0 + 60 s; the third twice
        event(EventKind.ALLOCATE, T0_US, "100.64.1.1", PUBLIC, 1024, 1535),
        event(EventKind.ALLOCATE, T0_US + S, "100.64.1.2", PUBLIC, 1536, 2047, line=2),
        event(EventKind.ALLOCATE, T0_US + 2 * S, "100.64.1.3", PUBLIC, 2048, 2559, line=3),
        event(EventKind.ALLOCATE, T0_US + 3 * S, "100.64.1.3", PUBLIC, 2560, 3071, line=4),
        # one released before the window, one on another address: neither counts
        event(EventKind.ALLOCATE, T0_US, "100.64.1.4", PUBLIC, 3072, 3583, line=5),
        event(EventKind.RELEASE, T0_US + 10 * S, "100.64.1.4", PUBLIC, 3072, 3583, line=6),
        event(EventKind.ALLOCATE, T0_US, "100.64.1.5", OTHER, 1024, 1535, line=7),
    ]
    ingest(sessions, realm, lines, hold=timedelta(hours=1))
    for asked in (realm, None):
        row = _ask(sessions, PUBLIC, T0_US + 60 * S, asked)
        assert (row["verdict"], row["shared_by"], row["subscriber"]) == (
            "no_source_port", "3", ""
        ), row  # fmt: skip
        assert "3 subscribers shared" in row["note"]
    # Before any allocation on the address the logs show no one: not ours, as before.
    early = _ask(sessions, PUBLIC, T0_US - 3600 * S, realm)
    assert early["verdict"] == "not_ours", early
    # With the source port, a complaint in a closed allocation names its holder (the logs
    # answer it); an open one past its last line is ambiguous, as in every reverse lookup.
    named = _ask(sessions, PUBLIC, T0_US + 5 * S, realm, port=3100)
    assert (named["verdict"], named["subscriber"]) == ("identified", "100.64.1.4/32"), named
    assert _ask(sessions, PUBLIC, T0_US + 60 * S, realm, port=1600)["verdict"] == "ambiguous"
