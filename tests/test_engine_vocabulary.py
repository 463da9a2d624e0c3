"""One vocabulary of statuses and reasons: the vectorised codes agree with the enums both ways,
and every status has the words the pages show."""

from __future__ import annotations

import pytest

from detnat.engine import mapper
from detnat.engine.results import ENGINE_REASONS, ENGINE_STATUSES, Reason, Status
from detnat.service import batch_lookups


def test_every_status_code_names_a_status_and_back() -> None:
    for code, status in enumerate(mapper.STATUS_CODES):
        assert mapper.STATUS_CODE[status] == code
    assert mapper.STATUS_CODES[mapper.INVALID] is None
    for status in ENGINE_STATUSES:
        assert mapper.STATUS_CODES[mapper.STATUS_CODE[status]] is status
    assert [s for s in mapper.STATUS_CODES if s is not None] == list(ENGINE_STATUSES)
    named = (mapper.MATCH, mapper.NO_MAPPING, mapper.NOT_DETERMINISTIC)
    assert [mapper.STATUS_CODES[c] for c in named] == [
        Status.MATCH,
        Status.NO_MAPPING,
        Status.NOT_DETERMINISTIC,
    ]


def test_every_reason_code_names_an_engine_reason_and_back() -> None:
    assert mapper.REASON_CODES[mapper.R_NONE] is None
    assert mapper.R_NONE == 0  # the algorithms start from np.zeros
    for code, reason in enumerate(mapper.REASON_CODES):
        if reason is not None:
            assert mapper.reason_code(reason) == code
    assert set(mapper.REASON_CODES) - {None} == set(ENGINE_REASONS)
    for reason in ENGINE_REASONS:
        assert mapper.REASON_CODES[mapper.reason_code(reason)] is reason
    for name, reason in [
        ("R_NOT_IN_POOL", Reason.NOT_IN_POOL),
        ("R_EXCLUDED", Reason.EXCLUDED_ADDRESS),
        ("R_RESERVED", Reason.RESERVED_PORT),
        ("R_UNALLOCATED", Reason.UNALLOCATED),
        ("R_DYNAMIC", Reason.DYNAMIC_BLOCK),
    ]:
        assert mapper.REASON_CODES[getattr(mapper, name)] is reason


def test_each_reason_code_gives_the_status_code_of_its_status() -> None:
    table = mapper._status_of_reason().tolist()
    assert table[mapper.R_NONE] == mapper.MATCH
    for reason, status in ENGINE_REASONS.items():
        assert table[mapper.reason_code(reason)] == mapper.STATUS_CODE[status]
        assert status in ENGINE_STATUSES


def test_engine_answers_use_only_engine_statuses_and_reasons() -> None:
    assert set(ENGINE_STATUSES) < set(Status)
    assert set(ENGINE_REASONS) < set(Reason)


@pytest.mark.parametrize("status", list(Status))
def test_every_status_has_words_for_the_pages(status: Status) -> None:
    assert status.words and status.headline
    assert batch_lookups.status_words(status) == status.words
    assert Status(status.value) is status and f"{status}" == status.value


def test_a_batch_error_row_has_its_own_words() -> None:
    assert batch_lookups.status_words(batch_lookups.ERROR) == "not a query (see below)"
    assert batch_lookups.ERROR not in {s.value for s in Status}
