"""The annotator answers every row as the single lookup (``detnat reverse --at``) does.

The oracle is :func:`detnat.service.lookups.reverse_in`, the service's single reverse lookup that
the CLI, the API and the web pages all ask, on the same timelines the snapshot was built from,
with ``now`` the snapshot's export instant. Timelines are random: several realms, changes seconds
apart, session drains, retirements, pools that change realm, static bindings, dynamic blocks; rows
are random too: near changes (ambiguous windows), before any plan, after retirements, in the
future, outside every pool, never-public, null cells.
"""

from __future__ import annotations

from datetime import timedelta

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.errors import QueryError
from detnat.service import lookups
from detnat.service.plans import MapperCache
from detnat.service.timelines import to_us
from detnat.service.times import format_instant
from detnat.snapshot import file
from detnat.snapshot.annotate import _SEVERAL, OUTPUT_COLUMNS, Annotator
from tests.scale.timelines import T0, Change, snapshot_bytes, timelines_of, worlds

NOW = T0 + timedelta(minutes=50)
START = T0 - timedelta(minutes=30)
END = T0 + timedelta(minutes=45)
ADDRESSES = [
    *(f"192.0.2.{k}" for k in range(12)),
    *(f"198.51.100.{k}" for k in range(8)),
    "203.0.113.7",  # static
    "8.8.8.8",  # public, in no pool
    "10.1.2.3",  # never public
]


@st.composite
def rows(draw: st.DrawFn, changes: list[Change]) -> list[tuple[str | None, int | None, int | None]]:
    out = []
    for _ in range(draw(st.integers(1, 60))):
        ip = draw(st.sampled_from([*ADDRESSES, None]))
        port = draw(st.sampled_from([0, 80, 1023, 1024, 1999, 2000, 40000, 65535, 65536, None]))
        port = draw(st.integers(0, 65535)) if port == 40000 else port
        pick = draw(st.integers(0, 9))
        if pick < 6:
            base = draw(st.sampled_from(changes)).at_s * 1_000_000 + to_us(T0)
            at = base + draw(
                st.sampled_from(
                    [0, 1, -1, 999_999, -1_000_000, 20_000_000, 200_000_000, 310_000_000]
                )
            )
        elif pick < 8:
            at = draw(st.integers(to_us(START), to_us(NOW) + 60_000_000))
        elif pick < 9:
            at = draw(st.integers(to_us(START) - 3_600_000_000, to_us(END) + 3_600_000_000))
        else:
            at = None
        out.append((ip, port, at))
    return out


def _oracle(view, ip, port, at, tolerance):  # type: ignore[no-untyped-def]
    """(subscriber, status, reason, realm, version) as the single lookup answers."""
    if ip is None or port is None or at is None or port > 65535:
        return (None, "error", "invalid_query", None, None)
    when = T0 + timedelta(microseconds=at - to_us(T0))
    if when > NOW:
        pass
    elif when - tolerance < START or min(when + tolerance, NOW) > END:
        return (None, "error", "outside_snapshot", None, None)
    try:
        answer = lookups.reverse_in(
            view, ip, port, at=when, tolerance=tolerance, realm=None, now=NOW, mappers=MapperCache()
        )
    except QueryError:
        return (None, "error", "invalid_query", None, None)
    candidates = answer["candidates"]
    realms = {c["realm"] for c in candidates}
    return (
        answer.get("subscriber"),
        str(answer["status"]),
        answer.get("reason") and str(answer["reason"]),
        realms.pop() if len(realms) == 1 else None,
        candidates[0]["version"] if len(candidates) == 1 else None,
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), world=worlds(), tolerance_s=st.sampled_from([0, 0, 1, 30, 400]))
def test_annotator_agrees_with_single_lookup_on_every_row(data, world, tolerance_s) -> None:  # type: ignore[no-untyped-def]
    drains, changes = world
    view = timelines_of(drains, changes)
    snapshot = file.load(snapshot_bytes(view, start=START, end=END, now=NOW))
    tolerance = timedelta(seconds=tolerance_s)
    annotator = Annotator(snapshot, tolerance_us=tolerance_s * 1_000_000)
    drawn = data.draw(rows(changes))
    batch = pa.RecordBatch.from_pydict(
        {
            "ip": pa.array([r[0] for r in drawn], pa.string()),
            "port": pa.array([r[1] for r in drawn], pa.int64()),
            "time": pa.array([r[2] for r in drawn], pa.timestamp("us", tz="UTC")),
        }
    )
    annotated = annotator.annotate(batch)
    out = annotated.to_pydict()
    # The same columns as dictionary arrays (what `detnat annotate` writes), value for value.
    encoded = annotator.annotate(batch, dictionary=True)
    for name in OUTPUT_COLUMNS:
        plain = encoded.column(name).cast(annotated.column(name).type)
        assert plain.equals(annotated.column(name)), name
    # The time-slot table only takes a short cut: the general search answers the same.
    general = Annotator(snapshot, tolerance_us=tolerance_s * 1_000_000)
    general._slot_code[:] = _SEVERAL
    assert general.annotate(batch).equals(annotated)
    for k, (ip, port, at) in enumerate(drawn):
        got = tuple(out[c][k] for c in ("subscriber", "status", "reason", "realm", "version"))
        want = _oracle(view, ip, port, at, tolerance)
        shown = format_instant(T0 + timedelta(microseconds=at - to_us(T0))) if at else None
        assert got == want, f"row {k}: {ip}:{port} at {shown}"
