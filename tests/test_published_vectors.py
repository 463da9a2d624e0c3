"""The published vectors (``tests/vectors/published.json``, a copy of the shared set).

Each case is a deployment from a public source written as a detnat plan, with the answers that
source prints. Subscribers are compared as prefixes (``10.0.16.16`` is ``10.0.16.16/32``); a
forward ``range`` is the whole port set when ``exact`` is true, otherwise one of its ranges.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from detnat.engine import (
    REASON_CODES,
    STATUS_CODES,
    compile_plan,
    parse_prefix,
    parse_public_address,
)
from detnat.planfile import plan_from_data

CASES: list[dict[str, Any]] = json.loads(
    (Path(__file__).parent / "vectors" / "published.json").read_text(encoding="utf-8")
)
FORWARD = [
    pytest.param(case, expected, id=f"{case['name']}-{expected['query']}-{n}")
    for case in CASES
    for n, expected in enumerate(case["forward"])
]
REVERSE = [
    pytest.param(case, expected, id=f"{case['name']}-{expected['query']}")
    for case in CASES
    for expected in case["reverse"]
]


def test_every_case_has_a_source_and_something_to_check() -> None:
    assert CASES
    for case in CASES:
        assert case["source"].strip(), case["name"]
        assert case["forward"] or case["reverse"], case["name"]
    assert len(FORWARD) + len(REVERSE) == sum(len(c["forward"]) + len(c["reverse"]) for c in CASES)


@pytest.mark.parametrize(("case", "expected"), FORWARD)
def test_forward_gives_the_published_allocation(
    case: dict[str, Any], expected: dict[str, Any]
) -> None:
    allocation = compile_plan(plan_from_data(case["plan"])).forward(expected["query"])
    assert allocation.subscriber == parse_prefix(expected["subscriber"])
    assert allocation.public_ip == parse_public_address(expected["public_ip"])
    published = tuple(expected["range"])
    if expected["exact"]:
        assert allocation.port_ranges == (published,)
    else:
        assert published in allocation.port_ranges


@pytest.mark.parametrize(("case", "expected"), REVERSE)
def test_reverse_gives_the_published_answer(case: dict[str, Any], expected: dict[str, Any]) -> None:
    mapper = compile_plan(plan_from_data(case["plan"]))
    address, _, port_text = expected["query"].rpartition(":")
    answer = mapper.reverse(address, int(port_text))
    assert answer.status.value == expected["status"]
    if expected["status"] == "match":
        assert answer.allocation is not None
        assert answer.allocation.subscriber == parse_prefix(expected["subscriber"])
    else:
        assert answer.reason is not None
        assert answer.reason.value == expected["reason"]
    # The vectorised path answers the same.
    bulk = mapper.reverse_many(
        np.array([parse_public_address(address)]), np.array([int(port_text)])
    )
    assert STATUS_CODES[int(bulk.status[0])] is answer.status
    assert REASON_CODES[int(bulk.reason[0])] is answer.reason
    if answer.allocation is not None:
        assert mapper.subscriber_at(int(bulk.subscriber[0])) == answer.allocation.subscriber
