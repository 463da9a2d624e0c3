"""Publishing into realms and answering "who held A:P at T" at the edges of the timeline."""

from __future__ import annotations

import threading
from datetime import timedelta

import pytest
from sqlalchemy import text

from detnat.errors import Conflict, InvalidInput, QueryError
from detnat.service import lookups, plans
from detnat.service.audit import Actor
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres

US = timedelta(microseconds=1)
LATER = clock_at(T0 + timedelta(days=30))
EARLY = clock_at(T0 - timedelta(days=30))


def _realm(sessions: SessionFactory, name: str, drain: timedelta = timedelta(0)) -> None:
    with unit_of_work(sessions) as s:
        plans.create_realm(
            s, name, by=Actor("tester", "admin"), session_drain=drain, single_approver=True
        )


def _publish(sessions: SessionFactory, name: str, plan, at, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("clock", EARLY)
    with unit_of_work(sessions) as s:
        return plans.publish(
            s, name, plan, effective_from=at, reason="CHG-1", by=Actor("tester", "admin"), **kw
        )


def _reverse(sessions: SessionFactory, ip: str, port: int, at, **kw):  # type: ignore[no-untyped-def]
    kw.setdefault("clock", LATER)
    with sessions() as s:
        return lookups.reverse_at(s, ip, port, at=at, **kw)


@pytest.fixture
def two_plans(sessions: SessionFactory, realm_name: str) -> tuple[str, str]:
    """Version 1 at T0; version 2 at T0+1min with the ratio halved (ports move)."""
    pool = fresh_pool()
    _realm(sessions, realm_name)
    _publish(sessions, realm_name, small_plan(pool), T0)
    _publish(
        sessions,
        realm_name,
        small_plan(pool, ratio=8192, inside="10.0.0.0/17"),
        T0 + timedelta(minutes=1),
    )
    return realm_name, pool.split("/")[0]


def _first_ip(pool_ip: str) -> str:
    return pool_ip


def test_before_the_first_plan_no_plan_is_in_force(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, ip = two_plans
    answer = _reverse(sessions, ip, 1054, T0 - US, realm=realm)
    assert answer["status"] == "no_plan_in_force"
    assert answer["candidates"] == []


def test_exactly_at_the_change_the_new_version_answers(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, ip = two_plans
    at = T0 + timedelta(minutes=1)
    answer = _reverse(sessions, ip, 1100, at, realm=realm)
    assert [c["version"] for c in answer["candidates"]] == [2]
    assert answer["status"] == "match"
    assert answer["nearest_change"]["seconds_from_time"] == 0
    before = _reverse(sessions, ip, 1100, at - US, realm=realm)
    assert [c["version"] for c in before["candidates"]] == [1]
    assert before["subscriber"] != answer["subscriber"]


def test_tolerance_across_a_change_is_ambiguous(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, ip = two_plans
    at = T0 + timedelta(minutes=1) - timedelta(seconds=1)
    answer = _reverse(sessions, ip, 1100, at, tolerance=timedelta(seconds=2), realm=realm)
    assert answer["status"] == "ambiguous"
    assert {c["version"] for c in answer["candidates"]} == {1, 2}
    assert all("covers" in c and "content_sha256" in c for c in answer["candidates"])


def test_within_session_drain_the_old_version_is_still_a_candidate(sessions, realm_name) -> None:  # type: ignore[no-untyped-def]
    pool = fresh_pool()
    _realm(sessions, realm_name, drain=timedelta(minutes=5))
    _publish(sessions, realm_name, small_plan(pool), T0)
    _publish(
        sessions,
        realm_name,
        small_plan(pool, ratio=8192, inside="10.0.0.0/17"),
        T0 + timedelta(minutes=1),
    )
    ip = pool.split("/")[0]
    inside = _reverse(sessions, ip, 1100, T0 + timedelta(minutes=3), realm=realm_name)
    assert answer_versions(inside) == [1, 2]
    assert inside["candidates"][0]["covers"]["in_drain_only"] is True
    after = _reverse(
        sessions, ip, 1100, T0 + timedelta(minutes=6, microseconds=1), realm=realm_name
    )
    assert answer_versions(after) == [2]


def answer_versions(answer: dict[str, object]) -> list[int]:
    return [c["version"] for c in answer["candidates"]]  # type: ignore[index, union-attr]


def test_two_changes_inside_one_window_give_three_candidates(sessions, realm_name) -> None:  # type: ignore[no-untyped-def]
    pool = fresh_pool()
    _realm(sessions, realm_name)
    for n in range(3):
        _publish(
            sessions,
            realm_name,
            small_plan(pool, ratio=4096 * 2**n, inside=f"10.0.0.0/{18 - n}"),
            T0 + timedelta(seconds=n),
        )
    answer = _reverse(
        sessions,
        pool.split("/")[0],
        1024,
        T0 + timedelta(seconds=1),
        tolerance=timedelta(seconds=1),
        realm=realm_name,
    )
    assert answer_versions(answer) == [1, 2, 3]


def test_future_instants_are_refused_as_future(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, ip = two_plans
    answer = _reverse(sessions, ip, 1100, T0 + timedelta(days=31), realm=realm)
    assert answer["status"] == "future"


def test_without_a_realm_every_realm_holding_the_address_is_searched(sessions, realm_name) -> None:  # type: ignore[no-untyped-def]
    pool = fresh_pool()
    other = realm_name + "-b"
    _realm(sessions, realm_name)
    _realm(sessions, other)
    _publish(sessions, realm_name, small_plan(pool), T0)
    _publish(sessions, realm_name, None, T0 + timedelta(minutes=1))  # retired
    _publish(sessions, other, small_plan(pool), T0 + timedelta(minutes=1))
    ip = pool.split("/")[0]
    answer = _reverse(sessions, ip, 1054, T0 + timedelta(minutes=1), tolerance=timedelta(seconds=1))
    assert {c["realm"] for c in answer["candidates"]} == {realm_name, other}
    # the same plan in both realms names the same text, but 10.0.0.2 behind the old NAT and
    # 10.0.0.2 behind the new one are two people (tests/test_cross_realm_verdict.py)
    assert (answer["status"], answer["reason"]) == ("ambiguous", "candidates_differ")
    assert len({c["subscriber"] for c in answer["candidates"]}) == 1
    alone = _reverse(sessions, ip, 1054, T0 + timedelta(minutes=2))
    assert {c["realm"] for c in alone["candidates"]} == {other}
    retired = _reverse(sessions, ip, 1054, T0 + timedelta(minutes=2), realm=realm_name)
    assert retired["status"] == "no_plan_in_force"


def test_address_in_no_plan_is_no_mapping(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    answer = _reverse(sessions, "203.0.113.99", 1100, T0 + timedelta(seconds=5))
    assert answer["status"] in ("no_mapping", "no_plan_in_force")
    with pytest.raises(QueryError):
        _reverse(sessions, "192.168.1.1", 1100, T0 + timedelta(seconds=5))


def test_publishing_in_the_past_needs_a_correction(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, ip = two_plans
    pool = ip + "/30"
    with pytest.raises(InvalidInput, match="correction"):
        _publish(sessions, realm, small_plan(pool), T0 + timedelta(seconds=30), clock=LATER)
    fixed = _publish(
        sessions,
        realm,
        small_plan(pool, ratio=8192, inside="10.0.0.0/17"),
        T0,
        clock=LATER,
        correction=True,
    )
    assert fixed.correction and fixed.supersedes_id is not None
    with sessions() as s:
        realm_row = plans.get_realm(s, realm)
        history = [plans.version_json(s, realm_row, v) for v in plans.repo.history(s, realm_row.id)]
        assert plans.verify_chain(s, realm_row) is None
    assert history[0]["superseded"] is True and history[-1]["supersedes"] == 1
    answer = _reverse(sessions, ip, 1100, T0 + timedelta(seconds=1), realm=realm)
    assert answer_versions(answer) == [3] and answer["candidates"][0]["correction"] is True


def test_same_instant_twice_is_a_conflict(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, ip = two_plans
    with pytest.raises(Conflict, match="already has version"):
        _publish(sessions, realm, small_plan(ip + "/30"), T0)


def test_an_address_belongs_to_one_realm_at_a_time(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, ip = two_plans
    _realm(sessions, realm + "-x")
    with pytest.raises(Conflict, match="one realm at a time"):
        _publish(sessions, realm + "-x", small_plan(ip + "/30"), T0 + timedelta(hours=1))


def test_published_versions_cannot_be_updated_or_deleted(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    from sqlalchemy.exc import DBAPIError

    for statement in (
        "update plan_versions set reason = 'rewritten'",
        "delete from plan_versions",
        "truncate plan_versions cascade",
        "update plan_versions set superseded = false where superseded",
    ):
        with sessions() as s, pytest.raises(DBAPIError, match="append-only"):
            s.execute(text(statement))
            s.flush()


def test_concurrent_publishers_keep_one_consistent_timeline(sessions, realm_name) -> None:  # type: ignore[no-untyped-def]
    pool = fresh_pool()
    _realm(sessions, realm_name)
    errors: list[BaseException] = []

    def publisher(n: int) -> None:
        try:
            _publish(sessions, realm_name, small_plan(pool), T0 + timedelta(seconds=n % 4))
        except Conflict as exc:
            errors.append(exc)

    threads = [threading.Thread(target=publisher, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with sessions() as s:
        realm = plans.get_realm(s, realm_name)
        history = plans.repo.history(s, realm.id)
        assert [v.seq for v in history] == list(range(1, 5))
        assert plans.verify_chain(s, realm) is None
        ranges = s.execute(
            text(
                "select count(*), count(distinct lower(validity)) from plan_version_ranges "
                "where realm_id = :r"
            ),
            {"r": realm.id},
        ).one()
    assert len(errors) == 8 and ranges == (4, 4)


def test_forward_at_a_time_uses_the_plan_in_force(sessions, two_plans) -> None:  # type: ignore[no-untyped-def]
    realm, _ = two_plans
    with sessions() as s:
        first = lookups.forward_at(
            s, "10.0.0.2", at=T0 + timedelta(seconds=1), realm=realm, clock=LATER
        )
        second = lookups.forward_at(
            s, "10.0.0.2", at=T0 + timedelta(minutes=2), realm=realm, clock=LATER
        )
        none = lookups.forward_at(s, "10.0.0.2", at=T0 - US, realm=realm, clock=LATER)
    assert first["status"] == "match" and first["port_ranges"] == [[1054, 1068]]
    assert second["candidates"][0]["version"] == 2
    assert none["status"] == "no_plan_in_force"
