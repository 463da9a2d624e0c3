"""Golden vectors from public sources (``tests/vectors/sourced.json``), each with its source named.

A case has the shape of ``shared/vectors/published.json`` — ``name``, ``source``, ``plan``,
``forward`` and ``reverse`` — plus:

- ``notes``: how the vendor's parameters map to the detnat plan (and why the vector is derived,
  when ``derived`` is true);
- ``forward[].range`` may be absent when the source prints only the public address; then
  ``forward[].holds`` lists ports the source shows in the subscriber's port set;
- ``summary``: figures of :meth:`Mapper.summary` the source prints;
- ``plan_error``: the source refuses this plan, and detnat must refuse it too (``field`` named);
- ``expressible: false``: the source's semantics cannot be written as a detnat plan. Such a case
  keeps its numbers in ``notes`` only and asserts nothing (``plan`` is null), so it documents the
  disagreement without bending the numbers.

Subscribers are compared as prefixes (``10.0.16.16`` and ``10.0.16.16/32`` are one subscriber).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, cast

import numpy as np
import pytest

from detnat.engine import (
    MATCH,
    REASON_CODES,
    STATUS_CODES,
    Mapper,
    compile_plan,
    parse_prefix,
    parse_public_address,
)
from detnat.errors import PlanError
from detnat.planfile import plan_from_data

VECTORS = Path(__file__).parent / "vectors" / "sourced.json"
CASES: list[dict[str, Any]] = json.loads(VECTORS.read_text(encoding="utf-8"))
TESTED = [case for case in CASES if case.get("expressible", True)]
LEFT_OUT = [case for case in CASES if not case.get("expressible", True)]


def _same_subscriber(got: str, want: str) -> bool:
    return parse_prefix(got) == parse_prefix(want)


def _mapper(case: dict[str, Any]) -> Mapper:
    return compile_plan(plan_from_data(case["plan"]))


def _split(query: str) -> tuple[str, int]:
    address, _, port = query.rpartition(":")
    return address, int(port)


def _ranges(answer: dict[str, object]) -> list[tuple[int, int]]:
    return [(first, last) for first, last in cast(list[list[int]], answer["port_ranges"])]


def _params(kind: str) -> list[Any]:
    return [
        pytest.param(case, entry, id=f"{case['name']}: {kind} {entry['query']}")
        for case in TESTED
        for entry in case[kind]
    ]


# -- the file itself -------------------------------------------------------------------------------


def test_every_case_names_its_source_and_explains_the_mapping() -> None:
    names = [case["name"] for case in CASES]
    assert len(names) == len(set(names)), "case names must be unique"
    for case in CASES:
        assert case["source"].strip(), case["name"]
        assert case["notes"].strip(), case["name"]
        assert isinstance(case["derived"], bool), case["name"]


def test_every_expressible_case_asserts_something() -> None:
    for case in TESTED:
        expectations = (
            len(case["forward"]) + len(case["reverse"]) + len(case.get("summary", {}))
        ) or ("plan_error" in case)
        assert expectations, f"{case['name']} has a plan but no expected answer"


def test_left_out_cases_carry_no_plan_and_no_answers() -> None:
    # A case we cannot express must not be half-tested with bent numbers.
    for case in LEFT_OUT:
        assert case["plan"] is None, case["name"]
        assert not case["forward"] and not case["reverse"], case["name"]
        assert "summary" not in case and "plan_error" not in case, case["name"]


def test_the_suite_is_not_vacuous() -> None:
    # Guards against a reshaped file silently collecting nothing.
    assert len(TESTED) >= 30
    assert sum(len(case["reverse"]) for case in TESTED) >= 40
    assert sum(len(case["forward"]) for case in TESTED) >= 30


# -- the vectors -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("case", "entry"), _params("forward"))
def test_forward_matches_source(case: dict[str, Any], entry: dict[str, Any]) -> None:
    answer = _mapper(case).forward(entry["query"]).to_json()
    assert _same_subscriber(str(answer["subscriber"]), entry["subscriber"])
    assert answer["public_ip"] == entry["public_ip"]
    ranges = _ranges(answer)
    if "range" in entry:
        want = tuple(entry["range"])
        if entry["exact"]:
            assert ranges == [want]
        else:
            assert want in ranges
    for port in entry.get("holds", []):
        assert any(first <= port <= last for first, last in ranges), port


@pytest.mark.parametrize(("case", "entry"), _params("reverse"))
def test_reverse_matches_source(case: dict[str, Any], entry: dict[str, Any]) -> None:
    address, port = _split(entry["query"])
    answer = _mapper(case).reverse(address, port).to_json()
    assert answer["status"] == entry["status"]
    if entry["status"] == "match":
        assert _same_subscriber(str(answer["subscriber"]), entry["subscriber"])
        assert answer["public_ip"] == address
        assert any(first <= port <= last for first, last in _ranges(answer))
    else:
        assert answer["reason"] == entry["reason"]


@pytest.mark.parametrize(("case", "entry"), _params("reverse"))
def test_bulk_reverse_agrees_with_source(case: dict[str, Any], entry: dict[str, Any]) -> None:
    mapper = _mapper(case)
    address, port = _split(entry["query"])
    bulk = mapper.reverse_many(np.array([parse_public_address(address)]), np.array([port]))
    status = STATUS_CODES[int(bulk.status[0])]
    assert status is not None and status.value == entry["status"]
    if entry["status"] == "match":
        assert int(bulk.status[0]) == MATCH
        subscriber = mapper.subscriber_at(int(bulk.subscriber[0]))
        assert _same_subscriber(str(subscriber), entry["subscriber"])
    else:
        reason = REASON_CODES[int(bulk.reason[0])]
        assert reason is not None and reason.value == entry["reason"]


@pytest.mark.parametrize("case", [pytest.param(c, id=c["name"]) for c in TESTED if "summary" in c])
def test_summary_matches_source(case: dict[str, Any]) -> None:
    summary = _mapper(case).summary()
    for key, value in case["summary"].items():
        assert summary[key] == value, key


@pytest.mark.parametrize(
    "case", [pytest.param(c, id=c["name"]) for c in TESTED if "plan_error" in c]
)
def test_plan_the_source_refuses_is_refused(case: dict[str, Any]) -> None:
    with pytest.raises(PlanError) as info:
        _mapper(case)
    assert info.value.field == case["plan_error"]["field"]
