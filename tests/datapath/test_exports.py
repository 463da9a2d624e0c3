"""Exports say exactly what the plan says, or refuse, naming every part that does not fit."""

from __future__ import annotations

import re

import pytest

from detnat.datapath import NotExpressible
from detnat.datapath.exports import det44_commands, export, map_b4_address, snabb_binding_table
from detnat.engine import Mapper, compile_plan
from detnat.engine.addresses import parse_address, parse_prefix
from detnat.errors import InvalidInput
from detnat.planfile import plan_from_text
from tests.datapath.plans import DSLITE, MAP, SPLIT_BLOCKS, VPP


def _mapper(text: str) -> Mapper:
    return compile_plan(plan_from_text(text))


def _det44_forward(inside: str, outside: str, host: str) -> tuple[int, int, int]:
    """VPP's snat_det_forward, written out: (outside address, first port, last port)."""
    in_net, in_len = parse_prefix(inside).network, parse_prefix(inside).length
    out_net, out_len = parse_prefix(outside).network, parse_prefix(outside).length
    ratio = (1 << (32 - in_len)) // (1 << (32 - out_len))
    per_host = (65535 - 1023) // ratio
    offset = parse_address(host)[1] - in_net
    low = 1024 + per_host * (offset % ratio)
    return out_net + offset // ratio, low, low + per_host - 1


def test_det44_export_of_vpps_own_example() -> None:
    lines = list(det44_commands(_mapper(VPP)))
    assert lines[-1] == "det44 add in 10.0.0.0/18 out 1.1.1.0/30\n"
    assert all(line.startswith("comment {") for line in lines[:-1])


@pytest.mark.parametrize("host", ["10.0.0.0", "10.0.0.2", "10.0.16.16", "10.0.63.255"])
def test_what_det44_computes_from_the_export_is_what_detnat_answers(host: str) -> None:
    mapper = _mapper(VPP)
    allocation = mapper.forward(host)
    ip, low, high = _det44_forward("10.0.0.0/18", "1.1.1.0/30", host)
    assert (allocation.public_ip, allocation.port_ranges) == (ip, ((low, high),))


WIDER = ('"1.1.1.0/30"', '"1.1.1.0/29"')  # room for the variants that would not fit


@pytest.mark.parametrize(
    ("changes", "reason"),
    [
        ([("ratio: 4096", "size: 15")], "blocks per address"),  # 4300 blocks; det44 shares by 4096
        ([("ratio: 4096", "ratio: 4096, assignment: staggered")], "assignment staggered"),
        ([("ratio: 4096", "ratio: 4096, dynamic_blocks: 1"), WIDER], "dynamic_blocks"),
        ([("block:", "ports: {first: 2048}\nblock:")], "ports 2048-65535"),
        ([("block:", "ports: {exclude: [5060]}\nblock:")], "ports.exclude"),
        ([WIDER, ('/29"]', '/29"], exclude: ["1.1.1.0/32"]')], "outside.exclude"),
        ([("32}", '32, exclude: ["10.0.0.0/32"]}')], "inside.exclude"),
        ([('"10.0.0.0/18"', '"10.0.0.0/18", "10.1.0.0/20"'), WIDER], "2 inside prefixes"),
        ([WIDER], "shares each address among 2048"),
    ],
)
def test_det44_refuses_what_it_cannot_express_and_says_what(
    changes: list[tuple[str, str]], reason: str
) -> None:
    text = VPP
    for old, new in changes:
        assert old in text
        text = text.replace(old, new)
    with pytest.raises(NotExpressible, match=re.escape(reason)):
        det44_commands(_mapper(text))


def test_det44_lists_every_reason_at_once() -> None:
    with pytest.raises(NotExpressible) as refused:
        det44_commands(_mapper(SPLIT_BLOCKS))
    assert len(refused.value.reasons) == 4  # inside.exclude, ports range, ports.exclude, static
    assert refused.value.code == "not_expressible"


def test_det44_refuses_map_plans_and_ipv6_subscribers() -> None:
    with pytest.raises(NotExpressible, match="MAP port sets"):
        det44_commands(_mapper(MAP))
    with pytest.raises(NotExpressible, match="IPv6"):
        det44_commands(_mapper(DSLITE))


def test_snabb_softwire_of_the_rfc_7599_example_ce() -> None:
    table = "".join(snabb_binding_table(_mapper(MAP), br_address="2001:db8:ffff::1"))
    # RFC 7599 appendix A: 2001:db8:12:3400::/56 -> 192.0.2.18, PSID 0x34; its MAP address is
    # 2001:db8:12:3400:0:c000:212:34 (RFC 7597 section 6 interface identifier).
    assert (
        "softwire { ipv4 192.0.2.18; psid 52; b4-ipv6 2001:db8:12:3400:0:c000:212:34; "
        "br-address 2001:db8:ffff::1; port-set { psid-length 8; reserved-ports-bit-count 6; } }"
    ) in table
    assert table.count("softwire {") == 65536


def test_snabb_b4_of_a_single_address_subscriber_is_the_address() -> None:
    prefix = parse_prefix("2001:db8::1:2")
    assert map_b4_address(prefix, 0xC0000201, 7) == prefix.network
    with pytest.raises(NotExpressible, match="/96"):
        map_b4_address(parse_prefix("2001:db8::/96"), 0xC0000201, 7)


def test_snabb_refuses_block_plans_and_needs_an_ipv6_br_address() -> None:
    with pytest.raises(NotExpressible, match="algorithm block"):
        snabb_binding_table(_mapper(DSLITE), br_address="2001:db8::1")
    with pytest.raises(InvalidInput, match="not an IPv6 address"):
        snabb_binding_table(_mapper(MAP), br_address="192.0.2.1")
    with pytest.raises(InvalidInput, match="--br-address"):
        export(_mapper(MAP), "snabb")


def test_the_nftables_export_is_the_backends_ruleset() -> None:
    text = "".join(export(_mapper(SPLIT_BLOCKS), "nftables", table="cgn"))
    assert "table ip cgn {" in text and "add element ip cgn snat_1" in text


def test_an_nftables_table_name_that_could_inject_syntax_is_refused() -> None:
    with pytest.raises(InvalidInput, match="table name"):
        export(_mapper(SPLIT_BLOCKS), "nftables", table="t { }; flush ruleset; table ip x")
