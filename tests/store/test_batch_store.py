"""Batch lookups against the store: the same answers as single lookups, CSV and JSON edges."""

from __future__ import annotations

import csv
import io
import ipaddress
import random
from datetime import datetime, timedelta

import pytest

from detnat.errors import InvalidInput, QueryError
from detnat.planfile import plan_from_data
from detnat.service import batch_lookups, lookups, plans
from detnat.service.audit import Actor
from detnat.service.plans import MapperCache
from detnat.service.timelines import TimelineCache
from detnat.service.times import format_instant
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

NOW = T0 + timedelta(hours=1)
EARLY = clock_at(T0 - timedelta(days=30))


def _dynamic_plan(pool: str):  # type: ignore[no-untyped-def]
    return plan_from_data(
        {
            "algorithm": "block",
            "inside": {"prefixes": ["10.0.0.0/21"], "subscriber_prefix_length": 32},
            "outside": {"prefixes": [pool]},
            "block": {"size": 64, "dynamic_blocks": 8},
        }
    )


@pytest.fixture
def world(sessions: SessionFactory, realm_name: str) -> dict[str, object]:
    """Three realms; changes a minute apart, a drain, a retirement, a pool that changes realm."""
    a, b, c = realm_name + "-a", realm_name + "-b", realm_name + "-c"
    pool_a, pool_b = fresh_pool(), fresh_pool()
    changes: list[datetime] = []
    with unit_of_work(sessions) as s:
        plans.create_realm(
            s,
            a,
            by=Actor("tester", "admin"),
            session_drain=timedelta(minutes=5),
            single_approver=True,
        )
        plans.create_realm(
            s, b, by=Actor("tester", "admin"), session_drain=timedelta(0), single_approver=True
        )
        plans.create_realm(
            s,
            c,
            by=Actor("tester", "admin"),
            session_drain=timedelta(seconds=30),
            single_approver=True,
        )
    steps = [
        (a, small_plan(pool_a), T0),
        (a, small_plan(pool_a, ratio=8192, inside="10.0.0.0/17"), T0 + timedelta(minutes=1)),
        (a, None, T0 + timedelta(minutes=10)),
        (c, small_plan(pool_a, ratio=2048, inside="10.0.0.0/19"), T0 + timedelta(minutes=10)),
        (c, None, T0 + timedelta(minutes=20)),
        (a, _dynamic_plan(pool_a), T0 + timedelta(minutes=20)),
        (b, small_plan(pool_b), T0 + timedelta(seconds=30)),
        (b, small_plan(pool_b, ratio=2048, inside="10.0.0.0/19"), T0 + timedelta(minutes=2)),
    ]
    for realm, plan, at in steps:
        with unit_of_work(sessions) as s:
            plans.publish(
                s, realm, plan, effective_from=at, reason="CHG", by=Actor("t", "admin"), clock=EARLY
            )
        changes.append(at)
    ips = [str(ipaddress.ip_network(p)[k]) for p in (pool_a, pool_b) for k in range(4)]
    return {"realms": [a, b, c], "ips": ips, "changes": changes}


def _random_rows(world: dict[str, object], n: int, seed: int) -> list[tuple[str, int, str]]:
    rnd = random.Random(seed)
    changes: list[datetime] = world["changes"]  # type: ignore[assignment]
    ips: list[str] = world["ips"]  # type: ignore[assignment]
    offsets = [
        timedelta(0),
        timedelta(microseconds=1),
        -timedelta(microseconds=1),
        timedelta(seconds=1),
        -timedelta(seconds=1),
        timedelta(seconds=20),
        timedelta(minutes=3),
        timedelta(minutes=5),
        timedelta(minutes=6),
    ]
    rows = []
    for _ in range(n):
        pick = rnd.random()
        if pick < 0.6:
            at = rnd.choice(changes) + rnd.choice(offsets)
        elif pick < 0.95:
            at = T0 + timedelta(microseconds=rnd.randrange(-3_600_000_000, 3_600_000_000))
        else:
            at = NOW + timedelta(seconds=rnd.randrange(1, 100))  # future
        ip = rnd.choice(ips) if rnd.random() < 0.9 else rnd.choice(["203.0.113.9", "10.1.2.3"])
        port = rnd.choice([rnd.randrange(1024, 65536), rnd.randrange(0, 1024), 65535, 1024])
        rows.append((ip, port, format_instant(at)))
    return rows


def _single(sessions: SessionFactory, row, tolerance, realm):  # type: ignore[no-untyped-def]
    ip, port, time = row
    from detnat.service.times import parse_instant

    with sessions() as s:
        try:
            answer = lookups.reverse_at(
                s,
                ip,
                port,
                at=parse_instant(time),
                tolerance=tolerance,
                realm=realm,
                clock=clock_at(NOW),
            )
        except QueryError:
            return ("error", None, None)
    return (answer["status"], answer.get("reason", ""), answer.get("subscriber", ""))


def _batch_csv(sessions: SessionFactory, text: str, **kw):  # type: ignore[no-untyped-def]
    out = io.StringIO()
    with sessions() as s:
        query = batch_lookups.BatchQuery(
            snapshot=TimelineCache().get(s), now=NOW, mappers=MapperCache(), **kw
        )
        report = batch_lookups.reverse_csv_at(query, io.StringIO(text, newline=""), out.write)
    return list(csv.reader(io.StringIO(out.getvalue()))), report


@pytest.mark.parametrize(("tolerance", "named"), [(0, False), (2, False), (0, True), (90, True)])
def test_batch_and_single_lookups_agree_on_random_rows(
    sessions: SessionFactory, world: dict[str, object], tolerance: int, named: bool
) -> None:
    rows = _random_rows(world, 400, seed=tolerance * 10 + named)
    realm = world["realms"][0] if named else None  # type: ignore[index]
    text = "ip,port,time\n" + "".join(f"{ip},{port},{t}\n" for ip, port, t in rows)
    window = timedelta(seconds=tolerance)
    got, report = _batch_csv(sessions, text, tolerance=window, realm=realm)
    assert got[0] == ["ip", "port", "time", "status", "reason", "subscriber"]
    assert report.rows == len(rows)
    seen = set()
    for row, out in zip(rows, got[1:], strict=True):
        want = _single(sessions, row, window, realm)
        if want[0] == "error":
            assert out[3] == "error", (row, out)
        else:
            assert tuple(out[3:]) == want, (row, out, want)
        seen.add(out[3])
    assert {"match", "future"} <= seen
    if named:  # (without a realm, other tests' plans decide whether "no plan" is "not in pool")
        assert "no_plan_in_force" in seen
    else:
        assert {"ambiguous", "not_deterministic", "no_mapping", "error"} <= seen


def test_json_batch_gives_the_same_answers(sessions: SessionFactory, world) -> None:  # type: ignore[no-untyped-def]
    rows = _random_rows(world, 200, seed=7)
    items = [{"ip": ip, "port": port, "time": t} for ip, port, t in rows]
    with sessions() as s:
        query = batch_lookups.BatchQuery(
            snapshot=TimelineCache().get(s), now=NOW, mappers=MapperCache()
        )
        answers, report = batch_lookups.reverse_json_at(query, items)
    for row, answer in zip(rows, answers, strict=True):
        want = _single(sessions, row, timedelta(0), None)
        assert answer["status"] == want[0]
        if want[0] != "error":
            assert (answer.get("reason", ""), answer.get("subscriber", "")) == want[1:]
    assert report.rows == 200


def test_csv_edges_bom_crlf_quotes_extra_columns_empty_lines_and_bad_rows(
    sessions: SessionFactory, world: dict[str, object]
) -> None:
    ip = world["ips"][0]  # type: ignore[index]
    t = format_instant(T0 + timedelta(seconds=5))
    text = (
        "\ufeffnote,ip,port,time\r\n"
        f'"a, quoted",{ip},1100,{t}\r\n'
        "\r\n"
        f"=cmd(),{ip},1100,{t}\r\n"
        f"x,{ip},80.5,{t}\r\n"
        f"y,{ip},1100,2026-03-14T20:00:05\r\n"
        f"z,1.2.3,1100,{t}\r\n"
        f"w,{ip},1100,{t},extra\r\n"
        f"short,{ip}\r\n"
    )
    got, report = _batch_csv(sessions, text.lstrip("\ufeff"))
    assert got[0] == ["note", "ip", "port", "time", "status", "reason", "subscriber"]
    assert got[1][0] == "a, quoted" and got[1][4] == "match"
    assert got[2][0] == "'=cmd()" and got[2][4] == "match"
    statuses = [r[4] for r in got[1:]]
    assert statuses == ["match", "match", "error", "error", "error", "error", "error"]
    assert [b.line for b in report.bad_rows] == [5, 6, 7, 8, 9]
    assert "80.5" in report.bad_rows[0].message and "offset" in report.bad_rows[1].message
    assert report.counts == {"match": 2, "error": 5}


@pytest.mark.parametrize(
    ("text", "why"),
    [("", "empty"), ("ip,port\n1.2.3.4,1\n", "'time'"), ("ip,ip,port,time\n", "twice")],
)
def test_bad_headers_are_refused(sessions: SessionFactory, text: str, why: str) -> None:
    with pytest.raises(InvalidInput, match=why):
        _batch_csv(sessions, text)


def test_row_limit_names_the_limit(sessions: SessionFactory) -> None:
    text = "ip,port,time\n" + "192.0.2.1,1,2020-01-01T00:00:00Z\n" * 3
    with pytest.raises(InvalidInput, match="limit is 2 rows"):
        _batch_csv(sessions, text, max_rows=2)


def test_strict_json_rows() -> None:
    for body, why in [
        (b'[{"ip": "1", "ip": "2"}]', "duplicate"),
        (b"[NaN]", "NaN"),
        (b"{}", "array"),
        (b"[]", "empty"),
        (b"[" * 100_000 + b"]" * 100_000, "nested"),
        (b"[1] x", "not JSON"),
    ]:
        with pytest.raises(InvalidInput, match=why):
            batch_lookups.load_json_rows(body)
