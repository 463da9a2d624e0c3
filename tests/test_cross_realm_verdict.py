"""A pool moved from one NAT (realm) to another: a window that straddles the move has a candidate
in each realm. Two candidates naming ``10.0.0.5/32`` are two people — 10.0.0.5 behind the old
NAT and 10.0.0.5 behind the new one — so the answer is ``ambiguous``; before, identical texts
made a ``match``. A global IPv6 key (a DS-Lite B4's delegated /56) is one line wherever it is
seen, so there the candidates still agree. The batch and the snapshot annotator say the same."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa

from detnat.planfile import plan_from_data
from detnat.service import batch_lookups, lookups
from detnat.service.batch_lookups import BatchQuery, BatchReport
from detnat.service.plans import MapperCache
from detnat.service.timelines import to_us
from detnat.snapshot import file
from detnat.snapshot.annotate import Annotator
from tests.scale.timelines import T0, Change, block_plan, snapshot_bytes, timelines_of

MOVE_S = 600  # the pool leaves realm-0 for realm-1 ten minutes after T0
NOW = T0 + timedelta(hours=1)


def _dslite() -> dict[str, object]:
    return plan_from_data(
        {
            "algorithm": "block",
            "inside": {"prefixes": ["2001:db8:1000::/52"], "subscriber_prefix_length": 56},
            "outside": {"prefixes": ["192.0.2.0/29"]},
            "block": {"ratio": 512},
        }
    ).to_dict()


def _moved(plan: dict[str, object]):  # type: ignore[no-untyped-def]
    return timelines_of(
        [0, 0],
        [Change(0, -600, plan), Change(0, MOVE_S, None), Change(1, MOVE_S, plan)],
    )


def _ask(view, at_s: int, tolerance_s: int) -> dict[str, object]:  # type: ignore[no-untyped-def]
    answer = lookups.reverse_in(
        view, "192.0.2.0", 1100, at=T0 + timedelta(seconds=at_s),
        tolerance=timedelta(seconds=tolerance_s), realm=None, now=NOW, mappers=MapperCache(),
    )  # fmt: skip
    return dict(answer)


def _batch(view, at_s: int, tolerance_s: int) -> str:  # type: ignore[no-untyped-def]
    query = BatchQuery(
        snapshot=view, now=NOW, mappers=MapperCache(), tolerance=timedelta(seconds=tolerance_s)
    )
    at = np.array([to_us(T0 + timedelta(seconds=at_s))])
    said = batch_lookups.answer_rows(
        query, np.array([0xC0000200]), np.array([1100]), at, {}, BatchReport()
    )
    return batch_lookups.STATUS_WORDS[said.status[0]]


def _annotated(view, at_s: int, tolerance_s: int) -> str:  # type: ignore[no-untyped-def]
    snapshot = file.load(snapshot_bytes(view, start=T0 - timedelta(hours=1), end=NOW, now=NOW))
    batch = pa.RecordBatch.from_pydict(
        {
            "ip": pa.array(["192.0.2.0"]),
            "port": pa.array([1100], pa.int64()),
            "time": pa.array([T0 + timedelta(seconds=at_s)], pa.timestamp("us", tz="UTC")),
        }
    )
    return str(
        Annotator(snapshot, tolerance_us=tolerance_s * 1_000_000).annotate(batch)["status"][0]
    )


def test_the_same_private_address_behind_two_nats_is_two_subscribers() -> None:
    view = _moved(block_plan("192.0.2.0/29", ratio=64, dynamic=0, static=False, first_port=1024))
    before, after = _ask(view, MOVE_S - 60, 0), _ask(view, MOVE_S + 60, 0)
    assert before["status"] == after["status"] == "match"
    assert before["subscriber"] == after["subscriber"]  # the same text, behind each NAT
    straddle = _ask(view, MOVE_S, 120)
    assert {c["realm"] for c in straddle["candidates"]} == {"realm-0", "realm-1"}  # type: ignore[attr-defined]
    assert (straddle["status"], straddle["reason"]) == ("ambiguous", "candidates_differ")
    assert _batch(view, MOVE_S, 120) == "ambiguous"
    assert _annotated(view, MOVE_S, 120) == "ambiguous"


def test_a_global_ipv6_subscriber_is_one_line_behind_either_nat() -> None:
    view = _moved(_dslite())
    straddle = _ask(view, MOVE_S, 120)
    assert len(straddle["candidates"]) == 2  # type: ignore[arg-type]
    assert straddle["status"] == "match"
    assert _batch(view, MOVE_S, 120) == "match"
    assert _annotated(view, MOVE_S, 120) == "match"
