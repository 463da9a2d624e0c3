"""``overflow=on``: the dynamic blocks take a subscriber's flows beyond its block size, and the
reader knows that rule and map (the kernel's side is ``test_nftables_overflow_netns``)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from detnat.datapath import NotExpressible, planned_state
from detnat.datapath.nftables import (
    NftablesDatapath,
    Rule,
    layout,
    overflow_holdings,
    parse_live,
    recognise,
    render_ruleset,
)
from detnat.engine import Mapper
from detnat.engine.addresses import parse_prefix
from detnat.errors import InvalidInput
from tests.datapath.test_nftables_render import (
    DROP,
    L4,
    SNAT,
    _elem,
    _elements,
    _live_json,
    _mapper,
)

# 4 subscribers on 192.0.2.1, blocks of 10 ports (1024-1063); 1064-1083 are 2 dynamic blocks.
DYNAMIC = (
    "algorithm: block\n"
    'inside: {prefixes: ["10.0.0.0/30"], subscriber_prefix_length: 32}\n'
    'outside: {prefixes: ["192.0.2.1/32"]}\n'
    "ports: {first: 1024, last: 1083}\n"
    "block: {size: 10, dynamic_blocks: 2}\n"
)
COUNT_OVER_10 = {
    "set": {
        "op": "add",
        "elem": {"payload": {"protocol": "ip", "field": "saddr"}},
        "set": "@overflow_flows",
        "stmt": [{"ct count": {"val": 10, "inv": True}}],
    }
}
OVERFLOW_SNAT = {
    "snat": {
        "family": "ip",
        "addr": {
            "map": {"key": {"payload": {"protocol": "ip", "field": "saddr"}}, "data": "@overflow"}
        },
    }
}


def _overflow_json(overflow_elements: list[Any], rules: list[list[Any]]) -> Any:
    deterministic = [_elem(f"10.0.0.{n}", 1024 + 10 * n, 1033 + 10 * n) for n in range(4)]
    live = _live_json(deterministic, rules)
    live["nftables"].insert(
        3,
        {
            "map": {
                "family": "ip",
                "name": "overflow",
                "table": "detnat",
                "type": "ipv4_addr",
                "map": "ipv4_addr . inet_service",
                "elem": overflow_elements,
            }
        },
    )
    return live


def _read(live: Any, mapper: Mapper) -> Any:
    assert mapper.plan.inside is not None
    return parse_live(
        live,
        table="detnat",
        shape=layout(mapper, overflow=True),
        inside=mapper.plan.inside.prefixes,
        overflow=overflow_holdings(mapper),
    )


def test_overflow_counts_every_new_flow_first_and_spills_past_the_block_size() -> None:
    text = "".join(render_ruleset(_mapper(DYNAMIC), overflow=True))
    chain = text[text.index("chain postrouting") :]
    rules = [x.strip() for x in chain.splitlines()[2:4]]
    assert rules == [
        "meta l4proto { icmp, tcp, udp } add @overflow_flows { ip saddr ct count over 10 } "
        "snat ip to ip saddr map @overflow",
        "meta l4proto { icmp, tcp, udp } snat ip to ip saddr map @snat_0",
    ]
    maps = _elements(text)
    # every subscriber overflows into the dynamic blocks of its own address, all of them
    assert maps["overflow"] == {f"10.0.0.{n}": {("192.0.2.1", 1064, 1083)} for n in range(4)}
    assert maps["snat_0"]["10.0.0.3"] == {("192.0.2.1", 1054, 1063)}
    assert "take a subscriber's flows beyond its 10th" in text


def test_without_overflow_the_ruleset_is_as_before() -> None:
    mapper = _mapper(DYNAMIC)
    assert "".join(render_ruleset(mapper)) == "".join(
        NftablesDatapath(overflow="off").render(mapper)
    )
    assert "overflow" not in "".join(render_ruleset(mapper)).replace("dynamic overflow", "")


@pytest.mark.parametrize(
    ("plan", "why"),
    [
        (DYNAMIC.replace("dynamic_blocks: 2", "dynamic_blocks: 0"), "overflow needs dynamic"),
        (DYNAMIC.replace("last: 1083}", 'last: 1084, exclude: ["1070"]}'), "split by excluded"),
    ],
)
def test_overflow_is_refused_where_nftables_cannot_do_it_honestly(plan: str, why: str) -> None:
    with pytest.raises(NotExpressible, match=why):
        render_ruleset(_mapper(plan), overflow=True)


def test_the_overflow_option_is_on_or_off() -> None:
    assert NftablesDatapath.from_options({"overflow": "on"}).overflow is True
    with pytest.raises(InvalidInput, match="overflow is on or off"):
        NftablesDatapath.from_options({"overflow": "yes"})


def test_the_reader_knows_the_overflow_rule_and_keeps_its_ports_out_of_the_holdings() -> None:
    mapper = _mapper(DYNAMIC)
    assert recognise([L4, COUNT_OVER_10, OVERFLOW_SNAT], None) == Rule("overflow", "overflow", 10)
    spill = [_elem(f"10.0.0.{n}", 1064, 1083) for n in range(4)]
    live = _read(
        _overflow_json(spill, [[L4, COUNT_OVER_10, OVERFLOW_SNAT], [L4, SNAT], DROP]), mapper
    )
    assert live.problems == ()
    assert live.holdings == planned_state(mapper).holdings


def test_an_overflow_map_or_rule_that_differs_from_the_plan_is_reported() -> None:
    mapper = _mapper(DYNAMIC)
    wrong = [_elem(f"10.0.0.{n}", 1064, 1083) for n in range(3)] + [_elem("10.0.0.3", 1054, 1083)]
    live = _read(
        _overflow_json(wrong, [[L4, COUNT_OVER_10, OVERFLOW_SNAT], [L4, SNAT], DROP]), mapper
    )
    assert any("overflow map differs" in p and "10.0.0.3/32" in p for p in live.problems)
    later = {"set": {**COUNT_OVER_10["set"], "stmt": [{"ct count": {"val": 30, "inv": True}}]}}
    spill = [_elem(f"10.0.0.{n}", 1064, 1083) for n in range(4)]
    live = _read(_overflow_json(spill, [[L4, later, OVERFLOW_SNAT], [L4, SNAT], DROP]), mapper)
    assert any("rules differ" in p and "beyond 30 flows" in p for p in live.problems)
    assert (
        live.holdings[parse_prefix("10.0.0.0")]
        == planned_state(mapper).holdings[parse_prefix("10.0.0.0")]
    )


@pytest.mark.skipif(shutil.which("nft") is None, reason="nft is not installed")
def test_nft_accepts_the_rendered_overflow_file(tmp_path: Path) -> None:
    path = tmp_path / "ruleset.nft"
    path.write_text("".join(render_ruleset(_mapper(DYNAMIC), oifname="out0", overflow=True)))
    done = subprocess.run(["nft", "-c", "-f", str(path)], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert re.search(r"ct count over 10", path.read_text())
