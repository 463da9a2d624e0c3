"""Snapshot files: one byte string per snapshot, every changed byte refused, the period covered."""

from __future__ import annotations

import hashlib
from datetime import timedelta
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.errors import InvalidInput
from detnat.snapshot import file
from tests.scale.conftest import CHANGES, DRAINS, END, NOW, START
from tests.scale.timelines import T0, snapshot_bytes, timelines_of

DATA = snapshot_bytes(timelines_of(DRAINS, CHANGES), start=START, end=END, now=NOW)


@settings(max_examples=300, deadline=None)
@given(at=st.integers(0, len(DATA) - 1), value=st.integers(0, 255))
def test_any_changed_byte_is_refused(at: int, value: int) -> None:
    if DATA[at] == value:
        value = (value + 1) % 256
    changed = DATA[:at] + bytes([value]) + DATA[at + 1 :]
    assert file.check(changed)
    with pytest.raises(InvalidInput):
        file.load(changed)


@pytest.mark.parametrize("cut", [0, 1, 60, len(DATA) - 1])
def test_cut_or_lengthened_files_are_refused(cut: int) -> None:
    assert file.check(DATA[:cut])
    assert file.check(DATA + b"\n")
    assert file.check(DATA.replace(b"\n", b"\r\n", 1))


def test_a_consistent_rewrite_with_a_new_hash_still_needs_content_hashes_that_match() -> None:
    """Rehashing the body does not make a changed plan pass: its content_sha256 no longer fits."""
    body = DATA.split(b"\n", 1)[1]
    changed = body.replace(b'"ratio":64', b'"ratio":32', 1)
    assert changed != body
    header = {
        "bytes": len(changed),
        "format": file.FORMAT,
        "sha256": hashlib.sha256(changed).hexdigest(),
    }
    data = file.canonical(header) + b"\n" + changed
    assert any("content_sha256" in p for p in file.check(data))


def test_the_snapshot_holds_the_versions_a_window_in_the_period_can_need(tmp_path: Path) -> None:
    snap = file.load(DATA)
    first, second = snap.realms
    # realm-0: the plan in force at START minus the drain, the next one, the retirement
    assert [v.seq for v in first.versions] == [1, 2, 3]
    assert first.versions[2].plan is None and first.versions[2].ranges == first.versions[1].ranges
    assert first.versions[0].valid_to_us == first.versions[1].effective_from_us
    assert first.versions[1].replaced_by == 3 and first.versions[2].valid_to_us is None
    assert [v.seq for v in second.versions] == [1, 2]
    assert snap.all_realms and snap.case == "TEST-1"
    later = snapshot_bytes(
        timelines_of(DRAINS, CHANGES), start=T0 + timedelta(minutes=20), end=END, now=NOW
    )
    assert [v.seq for v in file.load(later).realms[0].versions] == [2, 3]
