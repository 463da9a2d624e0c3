"""Exports for operators who run another datapath: VPP det44 commands, a Snabb lwAFTR binding
table, the nftables ruleset file.

Each export either says exactly what the plan says, or refuses with :class:`NotExpressible`
listing everything that does not fit; it never writes an approximation. Which algorithms a format
takes is the algorithm's declaration in the registry (:func:`detnat.engine.refusal`): a format
then relies on the mapper that algorithm compiles to (det44 and nftables on a
:class:`BlockMapper`, Snabb on a :class:`MapMapper`).

**VPP det44** computes, for ``det44 add in I/i out O/o``: sharing ratio R = 2^(32-i) / 2^(32-o),
ports per host S = (65535 - 1023) // R, inside host n gets outside address O + n // R and ports
1024 + S * (n % R) ... + S - 1 (VPP ``snat_det_forward``). That is detnat's ``block`` algorithm
with ``ratio`` R, ports 1024-65535, ``sequential``, one inside prefix of /32 subscribers, one
outside prefix, and nothing excluded, dynamic or static.

**Snabb lwAFTR** binding tables (``snabb-softwire-v2``) list one ``softwire`` per subscriber:
public ``ipv4``, ``psid``, the B4's ``b4-ipv6``, the AFTR's ``br-address`` and the ``port-set``
(``psid-length`` k, ``reserved-ports-bit-count`` a). That is detnat's ``map`` algorithm; the B4
address of a delegated prefix is its RFC 7597 section 6 MAP address (interface identifier
0:IPv4:PSID, subnet 0).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import cast

from detnat.datapath.base import NotExpressible
from detnat.datapath.nftables import TARGET as NFTABLES_TARGET
from detnat.datapath.nftables import render_ruleset
from detnat.engine import EXPORT, Mapper, Prefix, format_address, format_ipv4, refusal
from detnat.engine.addresses import V4, V6, parse_address
from detnat.engine.block import BlockMapper
from detnat.engine.map_rule import MapMapper
from detnat.errors import InvalidInput

FORMATS = ("det44", "snabb", "nftables")
DET44_FIRST_PORT, DET44_LAST_PORT = 1024, 65535


# -- VPP det44 -------------------------------------------------------------------------------------


def det44_refusals(mapper: Mapper) -> list[str]:
    """Every reason ``mapper`` is not one ``det44 add`` mapping; empty when it is."""
    why_not = refusal(mapper, EXPORT, "det44")
    if why_not is not None:
        return [why_not]
    mapper = cast(BlockMapper, mapper)  # what an algorithm exportable as det44 compiles to
    plan = mapper.plan
    assert plan.inside is not None and plan.outside is not None and plan.ports is not None
    why: list[str] = []
    if mapper.family != V4:
        why.append(
            "subscribers are IPv6 (DS-Lite): det44 translates IPv4 inside addresses "
            "(VPP's DS-Lite plugin is not deterministic)"
        )
    if mapper.subscriber_prefix_length != 32:
        why.append(
            f"subscribers are /{mapper.subscriber_prefix_length}: det44 gives every inside "
            "address its own block"
        )
    if len(plan.inside.prefixes) != 1:
        why.append(f"{len(plan.inside.prefixes)} inside prefixes: det44 maps one (one `det44 add`)")
    if plan.inside.exclude:
        why.append("inside.exclude: det44 numbers every address of the inside prefix")
    if len(plan.outside.prefixes) != 1:
        why.append(
            f"{len(plan.outside.prefixes)} outside prefixes: det44 maps to one outside prefix"
        )
    if plan.outside.exclude:
        why.append("outside.exclude: det44 uses every address of the outside prefix")
    if (plan.ports.first, plan.ports.last) != (DET44_FIRST_PORT, DET44_LAST_PORT):
        why.append(
            f"ports {plan.ports.first}-{plan.ports.last}: det44 always uses "
            f"{DET44_FIRST_PORT}-{DET44_LAST_PORT}"
        )
    if plan.ports.exclude:
        why.append("ports.exclude: det44 cannot exclude ports")
    if mapper.block.assignment != "sequential":
        why.append(f"assignment {mapper.block.assignment}: det44 is sequential")
    if mapper.block.dynamic_blocks:
        why.append("dynamic_blocks: det44 has no dynamic overflow blocks")
    if plan.static:
        why.append("static bindings: det44 has none (use a static NAT44 mapping outside det44)")
    if why:
        return why
    inside, outside = plan.inside.prefixes[0], plan.outside.prefixes[0]
    if inside.length > outside.length:
        return [
            f"inside {inside} is smaller than outside {outside}: det44's sharing ratio "
            "would be below 1"
        ]
    ratio = 1 << (outside.length - inside.length)
    if mapper.blocks != ratio:
        why.append(
            f"{mapper.blocks} blocks per address, but det44 add in {inside} out {outside} "
            f"shares each address among {ratio} (the ratio of the prefix sizes)"
        )
    elif mapper.size != (DET44_LAST_PORT - DET44_FIRST_PORT + 1) // ratio:
        why.append(f"{mapper.size} ports per subscriber, det44 would give {64512 // ratio}")
    return why


def det44_commands(mapper: Mapper) -> Iterator[str]:
    """``vppctl exec`` lines for the plan, or :class:`NotExpressible` naming what does not fit."""
    why = det44_refusals(mapper)
    if why:
        raise NotExpressible("VPP det44", why)
    return _det44_lines(cast(BlockMapper, mapper))


def _det44_lines(mapper: BlockMapper) -> Iterator[str]:
    plan = mapper.plan
    assert plan.inside is not None and plan.outside is not None
    inside, outside = plan.inside.prefixes[0], plan.outside.prefixes[0]
    yield "comment { Rendered by detnat. Also needed: det44 plugin enable, }\n"
    yield "comment { set interface det44 inside IF outside IF (this host's interfaces). }\n"
    yield (
        f"comment {{ {mapper.subscriber_count} hosts, ratio {mapper.blocks}, "
        f"{mapper.size} ports each. det44 keeps at most 1000 sessions per host. }}\n"
    )
    yield f"det44 add in {inside} out {outside}\n"


# -- Snabb lwAFTR ----------------------------------------------------------------------------------


def map_b4_address(subscriber: Prefix, public_ip: int, psid: int) -> int:
    """The B4 (CE) IPv6 address of a MAP subscriber: the /128 itself, or RFC 7597 section 6."""
    if subscriber.length == 128:
        return subscriber.network
    if subscriber.length > 64:
        raise NotExpressible(
            "a Snabb binding table",
            [
                f"subscribers are /{subscriber.length}: a B4 address is defined for /128 "
                "subscribers and for delegated prefixes of /64 or shorter (RFC 7597 section 6)"
            ],
        )
    return subscriber.network | (public_ip << 16) | psid


def snabb_binding_table(mapper: Mapper, *, br_address: str) -> Iterator[str]:
    """A ``softwire-config { binding-table { ... } }`` block, one softwire per subscriber."""
    why_not = refusal(mapper, EXPORT, "snabb")
    if why_not is not None:
        raise NotExpressible("a Snabb binding table", [why_not])
    family, br = parse_address(br_address, field="br_address")
    if family != V6:
        raise InvalidInput(f"{br_address!r} is not an IPv6 address", field="br_address")
    if 64 < mapper.subscriber_prefix_length < 128:
        map_b4_address(mapper.subscriber_at(0), 0, 0)  # raises NotExpressible, saying why
    return _snabb_lines(cast(MapMapper, mapper), br)  # what an algorithm exportable as snabb is


def _snabb_lines(mapper: MapMapper, br: int) -> Iterator[str]:
    k, a = mapper.psid_length, mapper.psid_offset
    br_text = format_address(V6, br)
    yield "// Rendered by detnat from a MAP plan: one softwire per subscriber.\n"
    yield (
        f"// PSID length {k}, offset (reserved-ports-bit-count) {a}. RFC 7597 reserves ports "
        f"below {1 << (16 - a) if a else 0}; Snabb's lookup reserves ports below 2^{a}, so B4s "
        "must keep to RFC 7597 port sets.\n"
    )
    yield "softwire-config {\n  binding-table {\n"
    for index in range(mapper.subscriber_count):
        allocation = mapper.allocation_of(index)
        if allocation.static:
            psid, length, reserved = 0, 0, 0
        else:
            psid = index & ((1 << k) - 1)
            length, reserved = k, a
        b4 = map_b4_address(allocation.subscriber, allocation.public_ip, psid)
        yield (
            f"    softwire {{ ipv4 {format_ipv4(allocation.public_ip)}; psid {psid}; "
            f"b4-ipv6 {format_address(V6, b4)}; br-address {br_text}; "
            f"port-set {{ psid-length {length}; reserved-ports-bit-count {reserved}; }} }}\n"
        )
    yield "  }\n}\n"


# -- dispatch --------------------------------------------------------------------------------------


def export(
    mapper: Mapper, fmt: str, *, br_address: str | None = None, table: str = "detnat"
) -> Iterator[str]:
    """The plan in format ``fmt`` (one of :data:`FORMATS`), streamed."""
    if fmt == "det44":
        return det44_commands(mapper)
    if fmt == "snabb":
        if br_address is None:
            raise InvalidInput(
                "a Snabb binding table needs the AFTR's IPv6 address (--br-address)",
                field="--br-address",
            )
        return snabb_binding_table(mapper, br_address=br_address)
    if fmt == "nftables":
        why_not = refusal(mapper, EXPORT, "nftables")
        if why_not is not None:
            raise NotExpressible(NFTABLES_TARGET, [why_not])
        return render_ruleset(mapper, table=table)
    raise InvalidInput(f"{fmt!r} is not one of {', '.join(FORMATS)}", field="--format")
