"""The annotator answers every row as the single lookup (``detnat reverse --at``) does.

The oracle is :func:`detnat.service.lookups.reverse_in`, the service's single reverse lookup that
the CLI, the API and the web pages all ask, on the same timelines the snapshot was built from,
with ``now`` the snapshot's export instant. Timelines are random: several realms, changes seconds
apart, session drains, retirements, pools that change realm, static bindings, dynamic blocks; rows
are random too: near changes (ambiguous windows), before any plan, after retirements, in the
future, outside every pool, never-public, null cells.
"""

from __future__ import annotations

import hashlib
from dataclasses import replace
from datetime import timedelta

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from detnat.engine import Status
from detnat.errors import QueryError
from detnat.logs.events import EventKind, LineRef, LogEvent
from detnat.logs.intervals import derive
from detnat.logs.settle import CONSULTED
from detnat.planfile import plan_from_data
from detnat.service import log_answers, lookups, snapshots
from detnat.service.plans import MapperCache
from detnat.service.timelines import to_us
from detnat.service.times import format_instant
from detnat.snapshot import file
from detnat.snapshot.annotate import _SEVERAL, OUTPUT_COLUMNS, Annotator
from tests.scale.timelines import T0, Change, block_plan, snapshot_bytes, timelines_of, worlds

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
    _subscribers_as_a_dictionary(annotator, batch, annotated)
    # The time-slot table only takes a short cut: the general search answers the same.
    general = Annotator(snapshot, tolerance_us=tolerance_s * 1_000_000)
    general._slot_code[:] = _SEVERAL
    assert general.annotate(batch).equals(annotated)
    for k, (ip, port, at) in enumerate(drawn):
        got = tuple(out[c][k] for c in ("subscriber", "status", "reason", "realm", "version"))
        want = _oracle(view, ip, port, at, tolerance)
        shown = format_instant(T0 + timedelta(microseconds=at - to_us(T0))) if at else None
        assert got == want, f"row {k}: {ip}:{port} at {shown}"


def _subscribers_as_a_dictionary(
    annotator: Annotator, batch: pa.RecordBatch, annotated: pa.RecordBatch
) -> None:
    """``subscriber_dictionary=True`` (what ``detnat annotate`` encodes): the same subscribers,
    the dictionary the batch's distinct texts only."""
    columns = [batch.column(c) for c in ("ip", "port", "time")]
    found = annotator.answer(*columns, dictionary=True, subscriber_dictionary=True)
    assert pa.types.is_dictionary(found[0].type)
    assert found[0].cast(pa.string()).equals(annotated.column("subscriber"))
    named = {s for s in annotated.column("subscriber").to_pylist() if s is not None}
    assert sorted(found[0].dictionary.to_pylist()) == sorted(named)


# -- with the NAT's own logs -------------------------------------------------------------------

LOGGED_ADDRESSES = ["192.0.2.1", "192.0.2.2", "198.51.100.3", "203.0.113.50"]  # the last: no pool
BLOCKS = [(1024, 1535, 1), (2000, 2999, 1), (40000, 49999, 1), (60000, 65535, 1), (1024, 65534, 2)]


@st.composite
def log_events(draw: st.DrawFn, realms: int) -> dict[int, list[LogEvent]]:
    """Random allocate / interim / release lines per realm, on blocks that cross the plans'
    dynamic and deterministic ports (so the two agree, disagree, or only the logs speak)."""
    out: dict[int, list[LogEvent]] = {}
    for n in range(draw(st.integers(0, 14))):
        kind = draw(st.sampled_from(list(EventKind)))
        at = to_us(T0) + draw(st.integers(-700, 1300)) * 2_000_000 + draw(st.sampled_from([0, 1]))
        inside = draw(st.sampled_from(["10.0.0.1", "10.0.0.5", "10.0.0.77", "2001:db8::1"]))
        first, last, step = draw(st.sampled_from(BLOCKS))
        public = draw(st.sampled_from(LOGGED_ADDRESSES))
        raw = f"{n}:{kind}:{at}:{inside}:{public}:{first}".encode()
        event = LogEvent(
            kind, at, inside, public, first, last, draw(st.sampled_from([None, None, "tcp"])),
            LineRef("nat.log", n + 1, hashlib.sha256(raw).hexdigest()), step,
        )  # fmt: skip
        out.setdefault(draw(st.integers(0, realms - 1)), []).append(event)
    return out


def _oracle_with_logs(view, logged, ip, port, at, tolerance):  # type: ignore[no-untyped-def]
    """As :func:`_oracle`, with the logs heard as the store's lookup hears them
    (:func:`detnat.service.log_answers.fetch` then ``combine``, no realm named)."""
    plain = _oracle(view, ip, port, at, tolerance)
    if plain[1] in ("error", "future") or not logged:
        return plain
    when = T0 + timedelta(microseconds=at - to_us(T0))
    answer = lookups.reverse_in(
        view, ip, port, at=when, tolerance=tolerance, realm=None, now=NOW, mappers=MapperCache()
    )
    if answer["status"] not in CONSULTED:
        return plain
    start, end = lookups.window(when, tolerance, NOW)
    lo, hi = to_us(start), to_us(end)
    answering = log_answers.answering_realms(answer, None)
    rows = [
        (realm, i)
        for realm, intervals in logged.items()
        for i in intervals
        if i.public == ip and i.holds(port) and i.overlaps(lo, hi)
        if answering is None or realm in answering
    ]
    if not rows and answer["status"] is Status.MATCH:
        return plain
    answer = log_answers.combine(answer, rows, {}, {}, window_us=(lo, hi), logs_asked=False)
    reason = answer.get("reason")
    return (answer.get("subscriber"), str(answer["status"]), reason and str(reason), *plain[3:])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data(), world=worlds(), tolerance_s=st.sampled_from([0, 0, 1, 30, 400]))
def test_annotator_hears_the_logs_as_the_single_lookup_does(data, world, tolerance_s) -> None:  # type: ignore[no-untyped-def]
    drains, changes = world
    view = timelines_of(drains, changes)
    events = data.draw(log_events(len(drains)))
    hold = data.draw(st.sampled_from([None, 60_000_000]))
    logged = {
        f"realm-{r}": derive(events.get(r, []), hold_us=hold)
        for r in range(len(drains))
        if r in events or data.draw(st.booleans())  # a realm may have logs and no interval
    }
    body = snapshots.build(
        view, [r.name for r in view.realms], start=START, end=END, now=NOW, case="TEST-1",
        logs=logged,
    )  # fmt: skip
    snapshot = file.load(file.encode(body))
    annotator = Annotator(snapshot, tolerance_us=tolerance_s * 1_000_000)
    tolerance = timedelta(seconds=tolerance_s)
    drawn = data.draw(rows(changes))
    drawn += [
        (data.draw(st.sampled_from(LOGGED_ADDRESSES)), data.draw(st.integers(1024, 65535)), at)
        for at in data.draw(
            st.lists(st.integers(to_us(START), to_us(NOW)), min_size=1, max_size=30)
        )
    ]
    batch = pa.RecordBatch.from_pydict(
        {
            "ip": pa.array([r[0] for r in drawn], pa.string()),
            "port": pa.array([r[1] for r in drawn], pa.int64()),
            "time": pa.array([r[2] for r in drawn], pa.timestamp("us", tz="UTC")),
        }
    )
    out = annotator.annotate(batch).to_pydict()
    coded = annotator.annotate(batch, dictionary=True)
    assert coded.to_pydict() == out  # dictionary arrays: the same values
    _subscribers_as_a_dictionary(annotator, batch, annotator.annotate(batch))
    for k, (ip, port, at) in enumerate(drawn):
        got = tuple(out[c][k] for c in ("subscriber", "status", "reason", "realm", "version"))
        want = _oracle_with_logs(view, logged, ip, port, at, tolerance)
        shown = format_instant(T0 + timedelta(microseconds=at - to_us(T0))) if at else None
        assert got == want, f"row {k}: {ip}:{port} at {shown}"


# -- which addresses a version holds, read from the engine's answers ------------------------------


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=st.data(),
    exclude=st.lists(st.integers(0, 7), max_size=3, unique=True),
    static=st.booleans(),
)
def test_held_read_from_the_engine_is_the_version_ranges(data, exclude, static) -> None:  # type: ignore[no-untyped-def]
    """A version whose ranges are its plan's pool and static addresses reads "held" from
    reverse_many's answers (not in the pool, excluded, never public: not held); the same rows
    through the ranges themselves (``_held``) give the same columns, excluded addresses,
    static bindings, never-public and foreign addresses among them."""
    plan: dict[str, object] = {
        "algorithm": "block",
        "inside": {"prefixes": ["10.0.0.0/24"], "subscriber_prefix_length": 32},
        "outside": {
            "prefixes": ["192.0.2.0/29"],
            "exclude": [f"192.0.2.{k}/32" for k in exclude],
        },
        "ports": {"first": 1024, "last": 65535},
        "block": {"ratio": 256, "dynamic_blocks": 0},
    }
    if static:
        plan["static"] = [{"subscriber": "10.0.0.5/32", "address": "203.0.113.7"}]
    plan = plan_from_data(plan).to_dict()
    view = timelines_of([0], [Change(0, -1200, plan)])
    snapshot = file.load(snapshot_bytes(view, start=START, end=END, now=NOW))
    fast = Annotator(snapshot)
    assert all(v.pool_held for v in fast.versions)
    general = Annotator(snapshot)
    general.versions = [replace(v, pool_held=False) for v in general.versions]
    addresses = [*ADDRESSES, "192.0.2.255", "0.0.0.0", "255.255.255.255", None]
    n = data.draw(st.integers(1, 80))
    batch = pa.RecordBatch.from_pydict(
        {
            "ip": pa.array(data.draw(st.lists(st.sampled_from(addresses), min_size=n, max_size=n))),
            "port": pa.array(
                data.draw(st.lists(st.integers(0, 65535), min_size=n, max_size=n)), pa.int64()
            ),
            "time": pa.array([to_us(T0)] * n, pa.timestamp("us", tz="UTC")),
        }
    )
    assert fast.annotate(batch).equals(general.annotate(batch))
    assert fast.annotate(batch, dictionary=True).equals(general.annotate(batch, dictionary=True))


def test_an_address_two_realms_plans_hold_hears_neither_a_third_realms_logs() -> None:
    """Realms 0 and 1 hold 192.0.2.1 at once (one plan, both realms) and leave a port to their
    logs; realm 2's logs name 10.0.0.77 there. The single lookup hears the logs of realms 0 and
    1 alone (:func:`log_answers.answering_realms`): ``not_logged``. The annotator, whose
    ``realm`` is null on such a row, heard every realm's logs and named 10.0.0.77 (found by
    review)."""
    shared = block_plan("192.0.2.0/29", ratio=64, dynamic=8, static=False, first_port=1024)
    other = block_plan("198.51.100.0/29", ratio=64, dynamic=8, static=False, first_port=1024)
    view = timelines_of(
        [0, 0, 0], [Change(0, -900, shared), Change(1, -900, shared), Change(2, -900, other)]
    )
    tolerance = timedelta(0)
    at = to_us(T0)
    port = next(
        p
        for p in range(1024, 65536, 64)
        if _oracle(view, "192.0.2.1", p, at, tolerance)[1] == "not_deterministic"
    )
    line = LineRef("nat.log", 1, hashlib.sha256(b"1").hexdigest())
    logged = {
        "realm-2": derive(
            [
                LogEvent(
                    EventKind.ALLOCATE,
                    at - 60_000_000,
                    "10.0.0.77",
                    "192.0.2.1",
                    port,
                    port,
                    None,
                    line,
                    1,
                )
            ],
            hold_us=None,
        )
    }
    want = _oracle_with_logs(view, logged, "192.0.2.1", port, at, tolerance)
    assert want[:4] == (None, "no_mapping", "not_logged", None), want
    body = snapshots.build(
        view, [r.name for r in view.realms], start=START, end=END, now=NOW, case="TEST-1",
        logs=logged,
    )  # fmt: skip
    annotator = Annotator(file.load(file.encode(body)))
    batch = pa.RecordBatch.from_pydict(
        {
            "ip": pa.array(["192.0.2.1"], pa.string()),
            "port": pa.array([port], pa.int64()),
            "time": pa.array([at], pa.timestamp("us", tz="UTC")),
        }
    )
    out = annotator.annotate(batch).to_pydict()
    assert tuple(out[c][0] for c in OUTPUT_COLUMNS) == want
