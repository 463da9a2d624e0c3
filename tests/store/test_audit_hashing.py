"""An audit entry's hash covers exactly what Postgres stores, and ``verify`` reports every break.

Postgres' JSONB changes some JSON on the way in: ``-0.0`` becomes ``0.0``, ``1e30`` becomes
``1000000000000000000000000000000`` (read back as an integer), ``\\u0000`` is refused. An entry
hashed before that change reads "content altered" for ever after. These tests use a database of
their own: a broken entry would break every other test's ``verify``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import text

from detnat.service import audit, integrity
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres
ACTOR = audit.Actor("hash-test", "legal", 1)


@pytest.fixture(scope="module")
def own_sessions() -> Iterator[SessionFactory]:
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        yield make_sessions(engine)
        engine.dispose()


def _record(sessions: SessionFactory, detail: dict[str, Any]) -> audit.Recorded:
    with unit_of_work(sessions) as s:
        return audit.record(s, ACTOR, "lookup.reverse", request_id="r", detail=detail, case="C-1")


def _broken(sessions: SessionFactory) -> list[str]:
    with sessions() as s:
        broken, _ = integrity.verify(s)
    return [str(b) for b in broken]


@pytest.mark.parametrize(
    "value",
    [-0.0, 1e30, 1e16, 123.0, 0.1, 1.5e-7, 5e-324, 2**70, "a\x00b", "\ud800", {"k\x00": 1}],
    ids=repr,
)
def test_what_jsonb_changes_is_hashed_as_stored(own_sessions: SessionFactory, value: Any) -> None:
    recorded = _record(own_sessions, {"query": {"tolerance_seconds": value}})
    assert _broken(own_sessions) == []
    with own_sessions() as s:
        stored = s.execute(
            text("select detail from audit_log where seq = :k"), {"k": recorded.seq}
        ).scalar_one()
    assert stored == recorded.content["detail"]  # the entry as returned is the entry as stored


def test_negative_zero_tolerance_over_the_api_keeps_verify_clean(
    own_sessions: SessionFactory,
) -> None:
    detail = json.loads('{"query": {"tolerance_seconds": -0.0}}')
    _record(own_sessions, detail)
    assert _broken(own_sessions) == []


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(detail=st.dictionaries(st.text(max_size=8), json_values, max_size=4))
def test_any_json_detail_verifies_after_storing(
    own_sessions: SessionFactory, detail: dict[str, Any]
) -> None:
    _record(own_sessions, detail)
    assert _broken(own_sessions) == []


def test_verify_reports_every_broken_entry_not_only_the_first(
    own_sessions: SessionFactory,
) -> None:
    seqs = [_record(own_sessions, {"n": n}).seq for n in range(5)]
    with own_sessions() as s:
        s.execute(text("set local session_replication_role = replica"))
        s.execute(
            text("update audit_log set detail = '{\"n\": 99}' where seq in (:a, :b)"),
            {"a": seqs[1], "b": seqs[3]},
        )
        broken, summary = integrity.verify(s)
        s.rollback()
    shown = [str(b) for b in broken]
    assert any(f"audit entry {seqs[1]}: content altered" in b for b in shown), shown
    assert any(f"audit entry {seqs[3]}: content altered" in b for b in shown), shown
    assert summary["broken_entries"] == 2


def _stored_by_decimal(value: Any) -> Any:
    """The stored form as first written: every float's text read as a Decimal."""

    def number(text: str) -> int | float:
        exact = Decimal(text)
        return int(exact) if exact == exact.to_integral_value() else float(text)

    return json.loads(json.dumps(value, ensure_ascii=False, allow_nan=False), parse_float=number)


_storable_text = st.text(
    alphabet=st.characters(exclude_categories=["Cs"], exclude_characters="\x00")
)


@settings(max_examples=400, deadline=None)
@given(
    value=st.recursive(
        st.none()
        | st.booleans()
        | st.integers()
        | st.floats(allow_nan=False, allow_infinity=False)
        | st.sampled_from([-0.0, 2.0**53, 2.0**53 - 1, -(2.0**53), 1e16, 1e30, 5e-324, 1.5e300])
        | _storable_text,
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(_storable_text, inner, max_size=4)
        ),
        max_leaves=16,
    )
)
def test_the_stored_form_reads_floats_as_a_decimal_reading_does(value: Any) -> None:
    stored = audit.stored_form(value)
    expected = _stored_by_decimal(value)
    assert audit.canonical(stored) == audit.canonical(expected)
    assert stored == expected
