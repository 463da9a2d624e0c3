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


def _logged_body() -> dict[str, object]:
    from detnat.logs.events import EventKind, LineRef, LogEvent
    from detnat.logs.intervals import derive
    from detnat.service import snapshots
    from detnat.service.timelines import to_us

    at = to_us(T0)
    ref = LineRef("nat.log", 1, "a" * 64)
    events = [
        LogEvent(EventKind.ALLOCATE, at, "10.0.0.9", "192.0.2.1", 4096, 8190, "udp", ref, 2),
        LogEvent(EventKind.INTERIM, at + 5, "2001:db8::/56", "192.0.2.2", 1024, 2047, None, ref),
    ]
    view = timelines_of(DRAINS, CHANGES)
    logs = {"realm-0": derive(events, hold_us=None), "realm-1": []}
    names = [r.name for r in view.realms]
    return snapshots.build(view, names, start=START, end=END, now=NOW, case="T-1", logs=logs)


def _rehashed(body: object) -> bytes:
    data = file.canonical(body) + b"\n"
    header = {"bytes": len(data), "format": file.FORMAT, "sha256": hashlib.sha256(data).hexdigest()}
    return file.canonical(header) + b"\n" + data


def test_log_intervals_travel_whole_and_a_realm_without_logs_says_so() -> None:
    body = _logged_body()
    snap = file.load(file.encode(body))
    first, second = snap.realms
    assert second.logs == () and snap.summary()["log_intervals"] == 2
    assert first.logs is not None
    assert [file.interval_json(i) for i in first.logs] == body["realms"][0]["logs"]  # type: ignore[index]
    (interim,) = [i for i in first.logs if i.inside == "2001:db8::/56"]
    assert interim.unknown_start and interim.start_us is None  # an interim line alone
    plain = file.load(DATA)
    assert all(r.logs is None for r in plain.realms)  # exported with no logs: none asked


@pytest.mark.parametrize(
    ("key", "value", "said"),
    [
        ("port_last", 70000, "port_first <= port_last <= 65535"),
        ("port_step", 0, "port_step >= 1"),
        ("public", -1, "not an IPv4 address"),
        ("inside", "not-an-address", "not an address or prefix"),
        ("lines", [], "lines: want"),
        ("lines", [["stolen", 1, "f", 1, "a" * 64]], "lines: want"),
        ("lines", [["allocate", 1, "f", 1, "A" * 64]], "lines: want"),
        ("end_us", -5, "start_us is not before end_us"),
        ("open", 1, "open has the wrong type"),
        ("extra", 1, "unexpected or missing keys extra"),
    ],
)
def test_a_bad_log_interval_is_named_even_when_rehashed(key: str, value: object, said: str) -> None:
    body = _logged_body()
    interval = body["realms"][0]["logs"][1]  # type: ignore[index]
    if key == "end_us":
        interval["start_us"] = 10
    interval[key] = value
    problems = file.check(_rehashed(body))
    assert any(said in p and "realms[0].logs[1]" in p for p in problems), problems
