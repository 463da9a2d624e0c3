"""Tampering as a superuser with triggers disabled is detected by ``audit verify``, naming the row.

Each tampering runs in its own transaction (``session_replication_role = replica`` switches the
append-only triggers off), is verified inside it, and is rolled back.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import timedelta

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from detnat.service import audit, integrity, plans
from detnat.service.audit import Actor
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import T0, clock_at, fresh_pool, small_plan

pytestmark = pytest.mark.postgres
EARLY = clock_at(T0 - timedelta(days=30))


@pytest.fixture
def history(sessions: SessionFactory, realm_name: str) -> tuple[str, list[int]]:
    """A realm with three versions and six audit entries (their seqs)."""
    pool = fresh_pool()
    actor = audit.Actor("tamper-test", "admin")
    seqs = []
    with unit_of_work(sessions) as s:
        plans.create_realm(
            s,
            realm_name,
            by=Actor("tester", "admin"),
            session_drain=timedelta(0),
            single_approver=True,
        )
    for n in range(3):
        with unit_of_work(sessions) as s:
            plans.publish(
                s,
                realm_name,
                small_plan(pool, ratio=4096 * 2**n, inside=f"10.0.0.0/{18 - n}"),
                effective_from=T0 + timedelta(minutes=n),
                reason=f"CHG-{n}",
                by=Actor("tester", "admin"),
                clock=EARLY,
            )
    for n in range(6):
        with unit_of_work(sessions) as s:
            seqs.append(
                audit.record(
                    s, actor, "lookup.reverse", request_id=f"r{n}", detail={"n": n}, case="T-1"
                ).seq
            )
    with sessions() as s:
        broken, _ = integrity.verify(s)
    assert broken == [], broken
    return realm_name, seqs


def _tampered(sessions: SessionFactory, change: Callable[[Session], None]) -> list[str]:
    with sessions() as s:
        s.execute(text("set local session_replication_role = replica"))
        change(s)
        broken, _ = integrity.verify(s)
        s.rollback()
    return [str(b) for b in broken]


def _sql(statement: str, **params: object) -> Callable[[Session], None]:
    return lambda s: s.execute(text(statement), params) and None


def test_audit_tampering_is_detected_and_named(sessions: SessionFactory, history) -> None:  # type: ignore[no-untyped-def]
    _, seqs = history
    rnd = random.Random(4)
    k = rnd.choice(seqs[1:-1])
    other = rnd.choice([s for s in seqs if s != k])
    first, second = sorted((k, other))
    cases = {
        "update detail": (
            _sql("update audit_log set detail = '{\"n\": 99}' where seq = :k", k=k),
            f"audit entry {k}: content altered",
        ),
        "update time": (
            _sql("update audit_log set at = at + interval '1 second' where seq = :k", k=k),
            f"audit entry {k}: content altered",
        ),
        "delete": (
            _sql("delete from audit_log where seq = :k", k=k),
            f"expected entry {k} here",
        ),
        "swap": (
            _sql(
                "update audit_log a set actor = b.actor, detail = b.detail, request_id = "
                "b.request_id, content_sha256 = b.content_sha256, prev_sha256 = b.prev_sha256, "
                "entry_sha256 = b.entry_sha256 from audit_log b "
                "where (a.seq, b.seq) in ((:i, :j), (:j, :i))",
                i=first,
                j=second,
            ),
            f"audit entry {first}: ",
        ),
        "rehash": (
            _sql("update audit_log set entry_sha256 = repeat('a', 64) where seq = :k", k=k),
            f"audit entry {k}: entry_sha256",
        ),
        "delete the newest": (
            _sql("delete from audit_log where seq = (select max(seq) from audit_log)"),
            "audit head",
        ),
    }
    for name, (change, expected) in cases.items():
        broken = _tampered(sessions, change)
        assert any(expected in b for b in broken), (name, broken)


def test_plan_version_tampering_is_detected_and_named(sessions: SessionFactory, history) -> None:  # type: ignore[no-untyped-def]
    realm, _ = history
    ids = "(select id from realms where name = :r)"
    cases = {
        "reason rewritten": (
            _sql(
                f"update plan_versions set reason = 'x' where seq = 2 and realm_id = {ids}", r=realm
            ),
            f"plan_versions {realm} v2",
        ),
        "plans swapped": (
            _sql(
                "update plan_versions a set plan = b.plan from plan_versions b "
                f"where a.realm_id = {ids} and b.realm_id = a.realm_id "
                "and (a.seq, b.seq) in ((1, 2), (2, 1))",
                r=realm,
            ),
            f"plan_versions {realm} v1",
        ),
        "version deleted": (
            lambda s: (
                [
                    s.execute(text(q), {"r": realm})
                    for q in (
                        f"delete from plan_version_ranges where version_id in (select id from "
                        f"plan_versions where seq = 2 and realm_id = {ids})",
                        f"delete from plan_approvals where version_id in (select id from "
                        f"plan_versions where seq = 2 and realm_id = {ids})",
                        f"delete from plan_versions where seq = 2 and realm_id = {ids}",
                    )
                ]
                and None
            ),
            f"plan_versions {realm} v3",
        ),
        "content forged with its hash": (
            _sql(
                "update plan_versions set plan = jsonb_set(plan, '{block,ratio}', '8'), "
                "content_sha256 = repeat('b', 64) "
                f"where seq = 1 and realm_id = {ids}",
                r=realm,
            ),
            f"plan_versions {realm} v1",
        ),
        "approval rebound": (
            _sql(
                "update plan_approvals set content_sha256 = repeat('c', 64) where version_id = "
                f"(select id from plan_versions where seq = 3 and realm_id = {ids})",
                r=realm,
            ),
            f"approval {realm} v3",
        ),
    }
    for name, (change, expected) in cases.items():
        broken = _tampered(sessions, change)
        assert any(expected in b for b in broken), (name, broken)


def test_checkpoints_catch_a_rewritten_tail(sessions: SessionFactory, history) -> None:  # type: ignore[no-untyped-def]
    with unit_of_work(sessions) as s:
        mark = audit.checkpoint(s, audit.Actor("t", "auditor"), request_id="cp")
    # Rewrite the chain from the checkpointed entry on, consistently (recomputing every hash):
    # only the checkpoint kept outside can tell.
    with sessions() as s:
        s.execute(text("set local session_replication_role = replica"))
        s.execute(text("delete from audit_log where seq >= :k"), {"k": mark["seq"]})
        # the checkpoint rows whose audit.checkpoint entries go with the rewritten tail
        s.execute(text("delete from audit_checkpoints where seq >= :k - 1"), {"k": mark["seq"]})
        last = s.execute(
            text("select seq, entry_sha256 from audit_log order by seq desc limit 1")
        ).one()
        s.execute(text("update audit_head set seq = :q, sha256 = :h"), {"q": last[0], "h": last[1]})
        broken, _ = integrity.verify(s)
        assert broken == []  # consistent on its own ...
        broken, _ = integrity.verify(
            s, checkpoint=integrity.Checkpoint(mark["seq"], mark["sha256"])
        )
        s.rollback()
    assert any(f"checkpoint exported {mark['seq']}" in str(b) for b in broken)


def test_deleting_the_newest_version_is_reported_with_or_without_a_checkpoint(
    sessions: SessionFactory, history
) -> None:  # type: ignore[no-untyped-def]
    realm, _ = history
    with unit_of_work(sessions) as s:
        mark = audit.checkpoint(s, audit.Actor("t", "auditor"), request_id="cp-newest")
    assert mark["plan_heads"][realm]["version"] == 3
    ids = "(select id from realms where name = :r)"
    with sessions() as s:
        s.execute(text("set local session_replication_role = replica"))
        for table, column in (
            ("plan_version_ranges", "version_id"),
            ("plan_approvals", "version_id"),
        ):
            s.execute(
                text(
                    f"delete from {table} where {column} in (select id from plan_versions "
                    f"where seq = 3 and realm_id = {ids})"
                ),
                {"r": realm},
            )
        s.execute(
            text(f"delete from plan_versions where seq = 3 and realm_id = {ids}"), {"r": realm}
        )
        plain = [str(b) for b in integrity.verify(s)[0]]
        exported = integrity.Checkpoint(mark["seq"], mark["sha256"], mark["plan_heads"])
        checked = [str(b) for b in integrity.verify(s, checkpoint=exported)[0]]
        s.rollback()
    assert f"plan_versions {realm} v3: audit entry" in " ".join(plain), plain
    assert any(f"plan version {realm} v3 is missing" in b for b in checked), checked
