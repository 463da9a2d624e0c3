"""The nftables ruleset says what the engine says, and its reader sees through what nft prints."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from detnat.datapath import NotExpressible, planned_state
from detnat.datapath.nftables import Layout, layout, parse_live, render_ruleset
from detnat.engine import Mapper, compile_plan, format_ipv4
from detnat.engine.addresses import parse_prefix
from detnat.errors import PlanError
from detnat.planfile import plan_from_text
from tests.datapath.plans import DSLITE, MAP, SPLIT_BLOCKS

_ELEMENT = re.compile(r"([0-9./]+) : ([0-9.]+)(?: \. ([0-9]+)(?:-([0-9]+))?)?")


def _mapper(text: str) -> Mapper:
    return compile_plan(plan_from_text(text))


def _elements(ruleset: str) -> dict[str, dict[str, set[tuple[str, int, int]]]]:
    """map name -> subscriber -> {(public ip, first, last)} from the ``add element`` lines."""
    out: dict[str, dict[str, set[tuple[str, int, int]]]] = {}
    for line in ruleset.splitlines():
        m = re.fullmatch(r"add element ip \w+ (\w+) \{ (.*) \}", line)
        if not m:
            continue
        for key, ip, first, last in _ELEMENT.findall(m[2]):
            lo = int(first) if first else 0
            hi = int(last) if last else (lo if first else 65535)
            out.setdefault(m[1], {}).setdefault(key, set()).add((ip, lo, hi))
    return out


def test_a_block_split_by_an_excluded_port_gets_one_map_per_range() -> None:
    text = "".join(render_ruleset(_mapper(SPLIT_BLOCKS)))
    maps = _elements(text)
    assert maps["snat_0"]["10.0.0.1"] == {("192.0.2.0", 2000, 2009)}
    assert maps["snat_1"]["10.0.0.1"] == {("192.0.2.0", 2012, 2021)}
    # An unsplit block is the same range in both maps: either rule gives only its own ports.
    assert maps["snat_0"]["10.0.0.2"] == maps["snat_1"]["10.0.0.2"] == {("192.0.2.0", 2022, 2041)}
    assert maps["static"] == {"10.0.0.14": {("198.51.100.7", 0, 65535)}}
    assert "numgen random mod 2 == 0 snat ip to ip saddr map @snat_0" in text
    assert "ip saddr @inside counter drop" in text
    assert "10.0.0.15" not in text and "10.0.0.0 :" not in text  # excluded: dropped


@st.composite
def block_plans(draw: st.DrawFn) -> str:
    """Small block plans: excluded ports splitting blocks, both assignments, dynamic blocks."""
    first = draw(st.integers(1024, 60000))
    span = draw(st.integers(60, 400))
    offsets = draw(st.lists(st.integers(1, span - 1), max_size=4, unique=True))
    exclude = ", ".join(f'"{first + x}"' for x in offsets)
    kind = draw(st.sampled_from(["ratio", "size"]))
    assignment = draw(st.sampled_from(["sequential", "staggered"]))
    return (
        "algorithm: block\n"
        'inside: {prefixes: ["10.0.0.0/27", "10.1.0.0/30"], subscriber_prefix_length: 32}\n'
        'outside: {prefixes: ["192.0.2.0/28"], exclude: ["192.0.2.0/32"]}\n'
        f"ports: {{first: {first}, last: {first + span}, exclude: [{exclude}]}}\n"
        f"block: {{{kind}: {draw(st.integers(4, 20))}, assignment: {assignment}, "
        f"dynamic_blocks: {draw(st.integers(0, 1))}}}\n"
    )


@settings(max_examples=60, deadline=None)
@given(block_plans())
def test_every_subscriber_gets_exactly_its_allocation_across_the_maps(text: str) -> None:
    try:
        mapper = _mapper(text)
    except PlanError:  # a plan the engine refuses (capacity ...) is not this test's business
        return
    maps = _elements("".join(render_ruleset(mapper)))
    want = planned_state(mapper).holdings
    seen: dict[str, set[tuple[str, int, int]]] = {}
    for elements in maps.values():
        for key, ranges in elements.items():
            seen.setdefault(key, set()).update(ranges)
    assert set(seen) == {format_ipv4(p.network) for p in want}
    for prefix, (holding,) in want.items():
        got = seen[format_ipv4(prefix.network)]
        assert {ip for ip, _, _ in got} == {format_ipv4(holding.public_ip)}
        assert _merged(got) == holding.port_ranges


def _merged(got: set[tuple[str, int, int]]) -> tuple[tuple[int, int], ...]:
    out: list[tuple[int, int]] = []
    for lo, hi in sorted((lo, hi) for _, lo, hi in got):
        if out and lo <= out[-1][1] + 1:
            out[-1] = (out[-1][0], max(hi, out[-1][1]))
        else:
            out.append((lo, hi))
    return tuple(out)


def test_dynamic_blocks_are_never_handed_out() -> None:
    mapper = _mapper(
        "algorithm: block\n"
        'inside: {prefixes: ["10.0.0.0/30"], subscriber_prefix_length: 32}\n'
        'outside: {prefixes: ["192.0.2.1/32"]}\n'
        "ports: {first: 1024, last: 1123}\n"
        "block: {size: 20, dynamic_blocks: 1}\n"
    )
    text = "".join(render_ruleset(mapper))
    assert "dynamic overflow block(s) of every address are not used" in text
    ports = [int(p) for p in re.findall(r"\. (\d+)-", text)]
    assert max(ports) < 1024 + 4 * 20


def test_subscribers_wider_than_one_address_use_interval_keys() -> None:
    mapper = _mapper(
        "algorithm: block\n"
        'inside: {prefixes: ["10.0.0.0/28"], subscriber_prefix_length: 30}\n'
        'outside: {prefixes: ["192.0.2.1/32"]}\n'
        "block: {ratio: 4}\n"
    )
    text = "".join(render_ruleset(mapper))
    assert "inet_service; flags interval; }" in text
    assert "10.0.0.4/30 : 192.0.2.1 . 17152-33279" in text


@pytest.mark.parametrize(
    ("plan", "why"),
    [(MAP, "algorithm map"), (DSLITE, "subscribers are IPv6 prefixes (DS-Lite B4s)")],
)
def test_plans_nat44_cannot_enforce_are_refused_with_the_reason(plan: str, why: str) -> None:
    with pytest.raises(NotExpressible, match=re.escape(why)):
        render_ruleset(_mapper(plan))


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
@pytest.mark.parametrize(
    "text",
    [
        SPLIT_BLOCKS,
        'algorithm: block\ninside: {prefixes: ["10.0.0.0/28"], subscriber_prefix_length: 30}\n'
        'outside: {prefixes: ["192.0.2.1/32"]}\nblock: {ratio: 4}\n'
        'static: [{subscriber: "10.0.0.8/30", address: "198.51.100.1"}]\n',
    ],
)
def test_nft_accepts_the_rendered_file(tmp_path: Path, text: str) -> None:
    path = tmp_path / "ruleset.nft"
    path.write_text("".join(render_ruleset(_mapper(text), oifname="out0")))
    done = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


# -- reading what nft prints (its JSON, as nft 1.0.6 writes it) ---------------------------------


def _live_json(elements: list[Any], rules: list[list[Any]], *, extra: tuple[Any, ...] = ()) -> Any:
    items: list[Any] = [
        {"metainfo": {"version": "1.0.6"}},
        {"table": {"family": "ip", "name": "detnat", "handle": 1}},
        {
            "set": {
                "family": "ip",
                "name": "inside",
                "table": "detnat",
                "type": "ipv4_addr",
                "flags": ["interval"],
                "elem": [{"prefix": {"addr": "10.0.0.0", "len": 30}}],
            }
        },
        {
            "map": {
                "family": "ip",
                "name": "snat_0",
                "table": "detnat",
                "type": "ipv4_addr",
                "map": "ipv4_addr . inet_service",
                "elem": elements,
            }
        },
        {
            "chain": {
                "family": "ip",
                "table": "detnat",
                "name": "postrouting",
                "type": "nat",
                "hook": "postrouting",
                "prio": 100,
                "policy": "accept",
            }
        },
    ]
    items += [
        {"rule": {"family": "ip", "table": "detnat", "chain": "postrouting", "expr": r}}
        for r in rules
    ]
    return {"nftables": items + list(extra)}


SNAT = {
    "snat": {
        "family": "ip",
        "addr": {
            "map": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@snat_0"}
        },
    }
}
L4 = {
    "match": {
        "op": "==",
        "left": {"meta": {"key": "l4proto"}},
        "right": {"set": ["icmp", "tcp", "udp"]},
    }
}
DROP = [
    {
        "match": {
            "op": "==",
            "left": {"payload": {"protocol": "ip", "field": "saddr"}},
            "right": "@inside",
        }
    },
    {"counter": {"packets": 3, "bytes": 180}},
    {"drop": None},
]
TINY = (
    "algorithm: block\n"
    'inside: {prefixes: ["10.0.0.0/30"], subscriber_prefix_length: 32}\n'
    'outside: {prefixes: ["192.0.2.1/32"]}\n'
    "ports: {first: 1024, last: 1063}\n"
    "block: {size: 10}\n"
)


def _elem(sub: str, lo: int, hi: int) -> list[Any]:
    port: Any = lo if lo == hi else {"range": [lo, hi]}
    return [sub, {"concat": ["192.0.2.1", port]}]


def _read(live: Any, mapper: Mapper) -> Any:
    shape: Layout = layout(mapper)
    assert mapper.plan.inside is not None
    return parse_live(live, table="detnat", shape=shape, inside=mapper.plan.inside.prefixes)


def test_the_reader_recovers_each_subscriber_and_accepts_counters() -> None:
    mapper = _mapper(TINY)
    elements = [_elem(f"10.0.0.{n}", 1024 + 10 * n, 1033 + 10 * n) for n in range(4)]
    live = _read(_live_json(elements, [[L4, SNAT], DROP]), mapper)
    assert live.problems == ()
    assert live.holdings == planned_state(mapper).holdings


def test_a_single_port_range_printed_as_a_number_is_read_as_that_port() -> None:
    mapper = _mapper(TINY)
    live = _read(_live_json([_elem("10.0.0.1", 1034, 1034)], [[L4, SNAT], DROP]), mapper)
    assert live.holdings[parse_prefix("10.0.0.1")][0].port_ranges == ((1034, 1034),)


def test_a_map_no_rule_reads_translates_nobody() -> None:
    mapper = _mapper(TINY)
    elements = [_elem(f"10.0.0.{n}", 1024 + 10 * n, 1033 + 10 * n) for n in range(4)]
    live = _read(_live_json(elements, [DROP]), mapper)
    assert live.holdings == {}
    assert any("rules differ" in p for p in live.problems)


def test_a_rule_only_for_tcp_is_not_ours_and_is_reported() -> None:
    mapper = _mapper(TINY)
    tcp_only = {"match": {**L4["match"], "right": "tcp"}}
    live = _read(_live_json([], [[tcp_only, SNAT], DROP]), mapper)
    assert any("other rule" in p for p in live.problems)


def test_another_source_nat_chain_that_runs_first_is_reported() -> None:
    mapper = _mapper(TINY)
    other = {
        "chain": {
            "family": "inet",
            "table": "docker",
            "name": "post",
            "type": "nat",
            "hook": "postrouting",
            "prio": 50,
        }
    }
    live = _read(_live_json([], [[L4, SNAT], DROP], extra=[other]), mapper)
    assert any("inet docker chain post also does source NAT" in p for p in live.problems)


def test_a_missing_table_is_one_problem_and_nobody_translated() -> None:
    mapper = _mapper(TINY)
    live = _read({"nftables": [{"metainfo": {}}]}, mapper)
    assert live.holdings == {}
    assert live.problems == ("table ip detnat is not loaded: nobody is translated by it",)


def test_an_inside_set_that_differs_from_the_plan_is_reported() -> None:
    mapper = _mapper(TINY.replace("10.0.0.0/30", "10.0.0.4/30"))
    live = _read(_live_json([], [[L4, SNAT], DROP]), mapper)
    assert any("set inside holds [10.0.0.0/30]" in p for p in live.problems)
