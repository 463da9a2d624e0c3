"""Diffs of hand-built plans with known churn, the warning and its computed alternative."""

from __future__ import annotations

import time

import pytest

from detnat.capacity.diff import CSV_HEADER, diff_plans
from tests.capacity.conftest import block_plan, compiled


def _report(old: dict, new: dict) -> dict:  # type: ignore[type-arg]
    return diff_plans(compiled(old), compiled(new)).report()


def test_identical_plans_keep_everyone() -> None:
    report = _report(block_plan(), block_plan())
    assert report["subscribers"] == {
        "old": 256,
        "new": 256,
        "common": 256,
        "kept": 256,
        "ports_changed": 0,
        "address_changed": 0,
        "added": 0,
        "removed": 0,
        "moved_share": 0.0,
    }
    assert report["warnings"] == [] and report["changes"] == []


def test_appending_an_address_to_a_sequential_pool_moves_nobody() -> None:
    # 256 subscribers, 64 per address on 192.0.2.0/30; append 198.51.100.0/30.
    old = block_plan()
    new = block_plan(outside=["192.0.2.0/30", "198.51.100.0/30"])
    report = _report(old, new)
    assert report["subscribers"]["kept"] == 256
    assert report["warnings"] == []
    assert report["capacity"]["before"]["capacity"] == 256
    assert report["capacity"]["after"]["capacity"] == 512


def test_inserting_addresses_in_front_moves_everyone_and_names_appending() -> None:
    old = block_plan()
    new = block_plan(outside=["198.51.100.0/30", "192.0.2.0/30"])
    report = _report(old, new)
    s = report["subscribers"]
    # Subscriber i now sits on new address i // 64, which is a 198.51.100.x address.
    assert s["address_changed"] == 256 and s["kept"] == 0 and s["ports_changed"] == 0
    assert "outside.prefixes: +198.51.100.0/30, inserted at position 0" in report["changes"]
    (warning,) = report["warnings"]
    assert warning["code"] == "moves_most_subscribers"
    assert warning["alternative"]["moved"] == 0
    assert "append the new outside prefixes (198.51.100.0/30)" in warning["message"]
    assert warning["alternative"]["plan"]["outside"]["prefixes"] == [
        "192.0.2.0/30",
        "198.51.100.0/30",
    ]


def test_a_block_size_change_moves_ports_and_says_no_reordering_helps() -> None:
    old = block_plan(outside=["192.0.2.0/29"], ratio=64)  # 8 addresses x 64 blocks of 1008
    new = block_plan(outside=["192.0.2.0/29"], ratio=32)  # 32 blocks of 2016
    report = _report(old, new)
    s = report["subscribers"]
    # Subscriber i: old address i // 64, new i // 32; only 0 stays at port 1024 on address 0...
    # but its block is twice as large, so nobody keeps the same port set.
    assert s["kept"] == 0
    assert s["ports_changed"] == 32  # 0..31 stay on 192.0.2.0 with other ports
    assert s["address_changed"] == 224
    assert report["ports"] == {
        "gained": 256 * 1008,
        "lost": 0,
        "subscribers_gaining": 256,
        "subscribers_losing": 0,
    }
    (warning,) = report["warnings"]
    assert "block size changes (1008 -> 2016 ports)" in warning["message"]
    assert "alternative" not in warning


def test_an_added_exclusion_renumbers_everyone_after_it() -> None:
    old = block_plan(inside=["10.0.0.0/24"], outside=["192.0.2.0/30"], ratio=128)
    new = block_plan(
        inside=["10.0.0.0/24"],
        outside=["192.0.2.0/30"],
        ratio=128,
        inside_exclude=["10.0.0.0/32", "10.0.0.255/32"],
    )
    report = _report(old, new)
    s = report["subscribers"]
    assert s["removed"] == 2 and s["common"] == 254
    # 10.0.0.k was number k and is now k - 1: one block down, the same address (k // 128), except
    # 10.0.0.128, which crosses onto the previous address.
    assert s["kept"] == 0 and s["moved_share"] == 1.0
    assert s["address_changed"] == 1 and s["ports_changed"] == 253
    (warning,) = report["warnings"]
    assert "leave 10.0.0.0/32, 10.0.0.255/32 in the key space" in warning["message"]
    assert warning["alternative"]["moved"] == 0


def test_an_exclusion_at_the_end_moves_nobody() -> None:
    old = block_plan(ratio=128)
    new = block_plan(ratio=128, inside_exclude=["10.0.0.255/32"])
    report = _report(old, new)
    assert report["subscribers"]["kept"] == 255 and report["subscribers"]["removed"] == 1
    assert report["warnings"] == []


def test_staggered_growth_moves_nearly_everyone_and_says_why() -> None:
    old = block_plan(assignment="staggered")
    new = block_plan(assignment="staggered", outside=["192.0.2.0/30", "198.51.100.0/30"])
    report = _report(old, new)
    assert report["subscribers"]["kept"] == 4  # 0..3 keep address i and block 0
    assert "staggered assignment" in report["warnings"][0]["message"]


def test_per_subscriber_rows_name_each_change() -> None:
    old = block_plan(ratio=128, outside=["192.0.2.0/31"])
    new = block_plan(ratio=128, outside=["192.0.2.0/31"], inside_exclude=["10.0.0.255/32"])
    compared = diff_plans(compiled(old), compiled(new))
    rows = [row for chunk in compared.rows() for row in chunk]
    assert len(CSV_HEADER) == 6
    assert rows[0] == ("10.0.0.0/32", "kept", "192.0.2.0", "1024-1527", "192.0.2.0", "1024-1527")
    assert rows[-1] == ("10.0.0.255/32", "removed", "192.0.2.1", "65032-65535", "", "")
    assert [r[1] for r in rows].count("kept") == 255
    changed = [row for chunk in compared.rows(changed_only=True) for row in chunk]
    assert changed == [rows[-1]]


def test_added_subscribers_are_listed_with_their_new_allocation() -> None:
    old = block_plan(inside=["10.0.0.0/25"], ratio=64)
    new = block_plan(inside=["10.0.0.0/24"], ratio=64)
    compared = diff_plans(compiled(old), compiled(new))
    assert compared.report()["subscribers"]["added"] == 128
    added = [r for chunk in compared.rows(changed_only=True) for r in chunk]
    assert len(added) == 128 and added[0][:3] == ("10.0.0.128/32", "added", "")


def test_a_diff_of_65536_subscribers_takes_well_under_a_second() -> None:
    old = block_plan(inside=["10.0.0.0/16"], outside=["192.0.2.0/24"], ratio=256)
    new = block_plan(inside=["10.0.0.0/16"], outside=["198.51.100.0/24", "192.0.2.0/24"], ratio=256)
    old_mapper, new_mapper = compiled(old), compiled(new)
    started = time.perf_counter()
    report = diff_plans(old_mapper, new_mapper).report()  # with the alternative computed
    elapsed = time.perf_counter() - started
    assert report["subscribers"]["common"] == 65536
    assert report["warnings"][0]["alternative"]["moved"] == 0
    assert elapsed < 0.5, elapsed


@pytest.mark.parametrize("ratio", [64, 32])
def test_map_plans_compare_by_psid(ratio: int) -> None:
    rule = {
        "rule_ipv6_prefix": "2001:db8::/40",
        "rule_ipv4_prefix": "192.0.2.0/24",
        "ea_bits_length": 16,
        "psid_offset": 6,
    }
    old = {"algorithm": "map", "map": rule}
    new = {"algorithm": "map", "map": {**rule, "rule_ipv4_prefix": "198.51.100.0/24"}}
    report = _report(old, new)
    assert report["subscribers"]["address_changed"] == 65536
    assert report["subscribers"]["ports_changed"] == 0
    assert _report(old, old)["subscribers"]["kept"] == 65536
