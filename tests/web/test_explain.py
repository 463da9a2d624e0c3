"""Answers in words and the timeline strips (pure functions of an answer)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

from api.web.explain import Mark, duration, explain, history_svg, human, timeline_svg

CHANGE = datetime(2020, 1, 1, 12, 0, tzinfo=UTC)


def _answer(status: str, **extra: Any) -> dict[str, Any]:
    return {
        "ip": "198.18.0.1",
        "port": 1100,
        "time": "2020-01-01T12:30:00Z",
        "tolerance_seconds": 0.0,
        "window": {"from": "2020-01-01T12:30:00Z", "to": "2020-01-01T12:30:00Z"},
        "status": status,
        "candidates": [],
        **extra,
    }


def test_times_and_durations_read_as_words() -> None:
    assert human("2020-01-01T12:30:00Z") == "2020-01-01 12:30:00 UTC"
    assert [duration(s) for s in (0, 2.5, 200, 7200, 7260, -1800, 5 * 86400)] == [
        "0 s",
        "2.5 s",
        "3 min 20 s",
        "2 h",
        "2 h 1 min",
        "30 min",
        "5 days",
    ]


def test_each_status_is_put_in_words() -> None:
    for status, reason, words in (
        ("no_mapping", "unallocated", "in no subscriber's block"),
        ("no_mapping", "reserved_port", "outside the ports handed to subscribers"),
        ("no_mapping", "not_in_pool", "not in the public pool"),
        ("not_deterministic", "dynamic_block", "only in the NAT's own logs"),
        ("no_plan_in_force", "no_plan", "no realm had a plan"),
        ("future", "after_now", "nobody can have held it yet"),
    ):
        said = explain(_answer(status, reason=reason))
        assert said["headline"] != status
        assert words in said["sentences"][0], status
        assert said["why"] == []


def test_a_match_names_the_subscriber_and_its_ports() -> None:
    said = explain(
        _answer(
            "match", subscriber="10.0.16.5/32", public_ip="198.18.0.1", port_ranges=[[1099, 1113]]
        )
    )
    assert said["sentences"][0] == (
        "10.0.16.5/32 held 198.18.0.1 port 1100 at 2020-01-01 12:30:00 UTC: the plan gives it "
        "the ports 1099–1113 of 198.18.0.1."
    )


def test_pending_versions_and_the_nearest_change_are_noted() -> None:
    said = explain(
        _answer(
            "no_plan_in_force",
            reason="no_plan",
            pending_approval=[
                {"realm": "lab", "version": 2, "effective_from": "2020-01-01T12:00:00Z"}
            ],
            nearest_change={"at": "2020-01-01T12:30:05Z", "realm": "lab", "seconds_from_time": 5.0},
        )
    )
    assert any("awaits a second admin's approval" in n for n in said["notes"])
    assert any("5 s after that time" in n for n in said["notes"])


def test_the_strip_shows_t_the_window_and_each_version_with_its_drain() -> None:
    marks = [
        Mark("fra", 1, CHANGE - timedelta(hours=12), CHANGE, timedelta(hours=2)),
        Mark("fra", 2, CHANGE, None, timedelta(hours=2)),
        Mark("gone", 4, CHANGE - timedelta(days=1), None, timedelta(0), retired=True),
    ]
    answer = _answer(
        "ambiguous",
        window={"from": "2020-01-01T12:29:50Z", "to": "2020-01-01T12:30:10Z"},
        nearest_change={"at": "2020-01-01T12:00:00Z", "realm": "fra", "seconds_from_time": -1800},
    )
    svg = str(timeline_svg(answer, marks, ident="s"))
    assert svg.startswith('<svg class="strip"') and svg.endswith("</svg>")
    assert 'role="img" aria-labelledby="s-t s-d"' in svg
    assert len(re.findall(r'<rect class="version (odd|even|retired)"', svg)) == 3
    assert svg.count('<rect class="drain"') == 1  # version 1's drain; version 2 goes on
    assert svg.count('<rect class="window"') == 1
    assert ">T = 2020-01-01 12:30:00 UTC</text>" in svg
    # the drain runs to 14:00, so the strip reaches past it, and shows 12:00 too
    ticks = re.findall(r'class="tick-label"[^>]*>([^<]+)<', svg)
    assert "12:00" in ticks and "14:00" in ticks


def test_text_in_the_strip_is_escaped() -> None:
    marks = [Mark("<script>", 1, CHANGE, None, timedelta(0))]
    svg = str(timeline_svg(_answer("match"), marks))
    assert "<script>" not in svg and "&lt;script&gt;" in svg


def test_the_realm_history_marks_now() -> None:
    marks = [
        Mark("fra", 1, CHANGE - timedelta(days=2), CHANGE, timedelta(hours=2)),
        Mark("fra", 2, CHANGE, None, timedelta(hours=2)),
    ]
    svg = str(history_svg(marks, CHANGE + timedelta(days=1)))
    assert svg.count('<rect class="version') == 2 and ">now</text>" in svg
    assert str(history_svg([], CHANGE)) == ""


def _logged(subscriber: str, **extra: Any) -> dict[str, Any]:
    return {
        "source": "log",
        "realm": "fra",
        "subscriber": subscriber,
        "public_ip": "198.18.0.1",
        "port_ranges": [[6064, 7071]],
        "port_step": 1,
        "protocol": None,
        "interval": {"from": "2020-01-01T12:00:00Z", "to": "2020-01-01T13:00:00Z"},
        "seen": {"from": "2020-01-01T12:00:00Z", "to": "2020-01-01T13:00:00Z"},
        "open": False,
        "unknown_start": False,
        "conflict": False,
        "lines": [
            {
                "kind": "allocate",
                "at": "2020-01-01T12:00:00Z",
                "file": "nat.log",
                "line": 7,
                "sha256": "ab" * 32,
                "text": "12:00 alloc 10.0.0.2 6064-7071",
            },
        ],
        **extra,
    }


def test_a_match_from_the_logs_says_the_logs_not_the_plan_gave_the_port() -> None:
    plan = {"realm": "fra", "version": 1, "status": "not_deterministic", "reason": "dynamic_block"}
    said = explain(
        _answer(
            "match",
            source="log",
            subscriber="10.0.0.2/32",
            public_ip="198.18.0.1",
            port_ranges=[[6064, 7071]],
            candidates=[plan],
            log_candidates=[_logged("10.0.0.2/32")],
        )
    )
    first = said["sentences"][0]
    assert "the plan gives" not in first
    assert first == (
        "10.0.0.2/32 held 198.18.0.1 port 1100 at 2020-01-01 12:30:00 UTC: the NAT's own logs "
        "show the ports 6064–7071 of 198.18.0.1 allocated to it from 2020-01-01 12:00:00 UTC to "
        "2020-01-01 13:00:00 UTC."
    )
    (shown,) = said["log_candidates"]
    assert shown["holder"] == "subscriber 10.0.0.2/32"
    assert shown["span"] == "from 2020-01-01 12:00:00 UTC to 2020-01-01 13:00:00 UTC"
    assert shown["flags"] == []


def test_an_answer_the_logs_leave_ambiguous_gives_their_reason_not_the_plans() -> None:
    open_ended = _logged("10.0.0.2/32", open=True, unknown_start=True, conflict=True)
    said = explain(
        _answer(
            "ambiguous",
            source="log",
            reason="log_open_ended",
            candidates=[{"realm": "fra", "version": 1, "status": "not_deterministic"}],
            log_candidates=[open_ended],
        )
    )
    assert "plan versions" not in said["sentences"][0]
    assert "not up to that time" in said["sentences"][0]
    assert said["log_candidates"][0]["flags"] == [
        "no release seen: the end is the realm's hold",
        "no allocation seen: the start is unknown",
        "another subscriber is logged for the same port and time",
    ]
    assert said["why"] == []
