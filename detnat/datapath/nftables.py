"""nftables backend: NAT44 / CGNAT in the Linux kernel, for ``block`` plans with IPv4 subscribers.

One table (``ip detnat`` by default) holds the whole plan in maps keyed by source address, so the
kernel does one hash lookup per new flow however many subscribers there are::

    table ip detnat {
      set inside { type ipv4_addr; flags interval; elements = { 10.0.0.0/18 } }
      map snat_0 { type ipv4_addr : interval ipv4_addr . inet_service; }
      chain postrouting {
        type nat hook postrouting priority srcnat; policy accept;
        meta l4proto { icmp, tcp, udp } snat ip to ip saddr map @snat_0
        ip saddr @inside counter drop
      }
    }
    add element ip detnat snat_0 { 10.0.0.0 : 1.1.1.0 . 1024-1038, 10.0.0.1 : 1.1.1.0 . 1039-1053 }

- TCP, UDP and ICMP echo (its identifier is the "port") are translated to the subscriber's public
  address and a port of its block; the kernel picks the port, always inside the range given.
- A block that an excluded port splits has several ranges, but one SNAT statement takes one range.
  With K = the most ranges of any block, the ruleset has maps ``snat_0 .. snat_{K-1}`` (map k holds
  each subscriber's range k, its ranges repeated when it has fewer) and K rules; rule k takes a new
  flow with probability 1/(K-k) (``numgen random mod (K-k) == 0``), so each range is picked with
  probability 1/K. Only ports of the block are ever used; a short range can fill up before the
  others (fewer concurrent flows to one destination, never a wrong port).
- Static subscribers are translated to their address, all protocols, ports kept where possible.
- Everything else from the inside prefixes is dropped: excluded subscribers, other protocols
  (GRE, ESP ...: no port to attribute), and anything a wrong map would let through.
- The last ``dynamic_blocks`` blocks of every address are not used, unless the backend is made
  with ``overflow=on``: then a subscriber's new flow beyond its S-th tracked one (S = the block
  size; ``ct count`` per inside address, in a dynamic set) is translated to a port of the dynamic
  blocks of the subscriber's own public address, shared by every subscriber of that address::

      set overflow_flows { type ipv4_addr; size 65536; flags dynamic; }
      map overflow { type ipv4_addr : interval ipv4_addr . inet_service; }
      meta l4proto { icmp, tcp, udp } add @overflow_flows { ip saddr ct count over 20 }
        snat ip to ip saddr map @overflow

  nftables itself logs nothing: who got an overflow port is known only from the connection
  tracker's events (``conntrack -E -o timestamp``, ingested with ``detnat logs ingest --format
  conntrack``); without them those ports answer ``not_deterministic``. Counting flows, not ports,
  is the simple honest trigger: a port's flows to different destinations would fit in the block,
  so overflow starts early, never late; a subscriber wider than one address is counted per inside
  address. The dynamic ports of an address must be one range (no excluded port splitting them).

:meth:`NftablesDatapath.apply` loads the file with one ``nft -f`` (one kernel transaction: the old
table is replaced whole or not at all). Connections already tracked keep the translation they were
given until they end: that is the realm's ``session_drain``. :meth:`NftablesDatapath.read_live`
parses ``nft -j list ruleset``: the maps *and* the rules that use them, so a map that no rule reads
translates nobody.

One module at this size: one backend (render, apply, read, verify) behind the datapath seam.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple, cast

from detnat.datapath.base import (
    Datapath,
    DriftReport,
    Holding,
    LiveState,
    NotExpressible,
    compare,
    normalise,
)
from detnat.engine import ENFORCE, Mapper, Prefix, format_ipv4, refusal
from detnat.engine.addresses import V4, parse_ipv4
from detnat.engine.block import BlockMapper, build_ports
from detnat.errors import InvalidInput, Unavailable

TARGET = "nftables NAT44"
CHAIN = "postrouting"
STATIC_MAP = "static"
OVERFLOW_MAP = "overflow"
OVERFLOW_SET = "overflow_flows"
INSIDE_SET = "inside"
PORT_PROTOCOLS = ("icmp", "tcp", "udp")  # as nft lists them: by protocol number
ELEMENTS_PER_STATEMENT = 1024
NFT_TIMEOUT = 600.0  # seconds; loading millions of elements takes a while

_TABLE_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,63}")
_NETNS_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")
_IFNAME = re.compile(r"[A-Za-z0-9_.:@-]{1,15}")


# -- what the plan needs -----------------------------------------------------------------------


@dataclass(frozen=True)
class Layout:
    """The shape of the ruleset for one plan: how many range maps, whether a static map."""

    ranges_per_block: int  # K
    interval_keys: bool  # subscribers wider than one address
    has_static: bool
    dynamic_blocks: int
    overflow_after: int | None = None  # overflow on: a subscriber's flows beyond this many


def layout(mapper: Mapper, *, overflow: bool = False) -> Layout:
    """Check that nftables NAT44 can enforce ``mapper``; :class:`NotExpressible` says why not.

    ``overflow``: the dynamic blocks take a subscriber's flows beyond its block size (they must
    exist and be one range of ports on every address).
    """
    why_not = refusal(mapper, ENFORCE, "nftables")
    if why_not is not None:
        raise NotExpressible(TARGET, [why_not])
    mapper = cast(BlockMapper, mapper)  # what an algorithm nftables enforces compiles to
    if mapper.family != V4:
        raise NotExpressible(
            TARGET,
            [
                f"subscribers are IPv{mapper.family} prefixes (DS-Lite B4s): they are translated "
                "by an AFTR (detnat.datapath.dslite), not by NAT44"
            ],
        )
    assert mapper.plan.ports is not None
    ports = build_ports(mapper.plan.ports)
    k = max(
        len(ports.ranges_between(b * mapper.size, b * mapper.size + mapper.size - 1))
        for b in range(mapper.det_blocks)
    )
    dynamic = mapper.blocks - mapper.det_blocks
    if overflow:
        if not dynamic:
            raise NotExpressible(
                TARGET, ["overflow needs dynamic blocks: the plan has block.dynamic_blocks 0"]
            )
        if len(overflow_ranges(mapper)) > 1:
            raise NotExpressible(
                TARGET,
                [
                    "the dynamic blocks are split by excluded ports; one snat statement takes "
                    "one range, so overflow needs them contiguous"
                ],
            )
    return Layout(
        ranges_per_block=k,
        interval_keys=mapper.subscriber_prefix_length < 32,
        has_static=bool(mapper.plan.static),
        dynamic_blocks=dynamic,
        overflow_after=mapper.size if overflow else None,
    )


def overflow_ranges(mapper: BlockMapper) -> list[tuple[int, int]]:
    """The ports of the dynamic blocks of every address (the same on each), as ranges."""
    assert mapper.plan.ports is not None
    ports = build_ports(mapper.plan.ports)
    return ports.ranges_between(mapper.det_blocks * mapper.size, mapper.blocks * mapper.size - 1)


def overflow_holdings(mapper: Mapper) -> dict[Prefix, Holding]:
    """Overflow on: what map ``overflow`` gives each subscriber (its address's dynamic ports)."""
    block = cast(BlockMapper, mapper)
    ((first, last),) = overflow_ranges(block)
    out: dict[Prefix, Holding] = {}
    for index in range(mapper.subscriber_count):
        a = mapper.allocation_of(index)
        if not a.static:
            out[a.subscriber] = Holding(a.public_ip, ((first, last),))
    return out


def _key(prefix: Prefix) -> str:
    return format_ipv4(prefix.network) if prefix.length == 32 else str(prefix)


def _port_range(first: int, last: int) -> str:
    return f"{first}-{last}" if first != last else str(first)


def render_ruleset(
    mapper: Mapper, *, table: str = "detnat", oifname: str | None = None, overflow: bool = False
) -> Iterator[str]:
    """The ruleset file for ``mapper``, streamed; ``nft -f`` loads it in one transaction."""
    _check_names(table, oifname)
    return _ruleset_lines(mapper, layout(mapper, overflow=overflow), table, oifname)


def _check_names(table: str, oifname: str | None) -> None:
    """Names go into nft syntax: only plain ones, so none can smuggle in a statement."""
    if not _TABLE_NAME.fullmatch(table):
        raise InvalidInput(f"{table!r} is not an nftables table name", field="table")
    if oifname is not None and not _IFNAME.fullmatch(oifname):
        raise InvalidInput(f"{oifname!r} is not an interface name", field="oifname")


def _ruleset_lines(mapper: Mapper, shape: Layout, table: str, oifname: str | None) -> Iterator[str]:
    plan = cast(BlockMapper, mapper).plan  # layout() checked it
    assert plan.inside is not None and plan.ports is not None
    k = shape.ranges_per_block
    flags = " flags interval;" if shape.interval_keys else ""
    out_match = f'oifname "{oifname}" ' if oifname else ""
    summary = mapper.summary()
    yield "#!/usr/sbin/nft -f\n"
    yield "# Rendered by detnat: deterministic NAT44 (RFC 7422 port blocks).\n"
    yield (
        f"# {summary['subscribers']} subscribers, {summary['usable_addresses']} public addresses, "
        f"{summary['ports_per_subscriber']} ports each, {k} range map(s).\n"
    )
    if shape.overflow_after is not None:
        yield (
            f"# The {shape.dynamic_blocks} dynamic overflow block(s) of every address take a "
            f"subscriber's flows beyond its {shape.overflow_after}th: only conntrack's events "
            "(conntrack -E -o timestamp) say who got which port.\n"
        )
    elif shape.dynamic_blocks:
        yield (
            f"# The {shape.dynamic_blocks} dynamic overflow block(s) of every address are not "
            "used: nftables cannot log which flow got one.\n"
        )
    yield f"table ip {table}\ndelete table ip {table}\ntable ip {table} {{\n"
    inside = ", ".join(str(p) for p in plan.inside.prefixes)
    yield f"  set {INSIDE_SET} {{ type ipv4_addr; flags interval; elements = {{ {inside} }} }}\n"
    for n in range(k):
        yield f"  map snat_{n} {{ type ipv4_addr : interval ipv4_addr . inet_service;{flags} }}\n"
    if shape.has_static:
        yield f"  map {STATIC_MAP} {{ type ipv4_addr : ipv4_addr;{flags} }}\n"
    if shape.overflow_after is not None:
        yield f"  set {OVERFLOW_SET} {{ type ipv4_addr; size 65536; flags dynamic; }}\n"
        yield (
            f"  map {OVERFLOW_MAP} {{ type ipv4_addr : interval ipv4_addr . inet_service;"
            f"{flags} }}\n"
        )
    yield f"  chain {CHAIN} {{\n    type nat hook postrouting priority srcnat; policy accept;\n"
    protocols = ", ".join(PORT_PROTOCOLS)
    if shape.overflow_after is not None:
        # First, so every new flow is counted; it translates only flows beyond the block size.
        yield (
            f"    {out_match}meta l4proto {{ {protocols} }} add @{OVERFLOW_SET} "
            f"{{ ip saddr ct count over {shape.overflow_after} }} "
            f"snat ip to ip saddr map @{OVERFLOW_MAP}\n"
        )
    for n in range(k):
        pick = f"numgen random mod {k - n} == 0 " if n < k - 1 else ""
        yield (
            f"    {out_match}meta l4proto {{ {protocols} }} {pick}"
            f"snat ip to ip saddr map @snat_{n}\n"
        )
    if shape.has_static:
        yield f"    {out_match}snat ip to ip saddr map @{STATIC_MAP}\n"
    yield f"    {out_match}ip saddr @{INSIDE_SET} counter drop\n  }}\n}}\n"

    batches: list[list[str]] = [[] for _ in range(k)]
    statics: list[str] = []
    spill: list[str] = []
    if shape.overflow_after is not None:
        ((spill_first, spill_last),) = overflow_ranges(cast(BlockMapper, mapper))
        spill_ports = _port_range(spill_first, spill_last)
    names = [f"snat_{n}" for n in range(k)] + [OVERFLOW_MAP]

    def flush(final: bool = False) -> Iterator[str]:
        for name, batch in zip(names, [*batches, spill], strict=True):
            if batch and (final or len(batch) >= ELEMENTS_PER_STATEMENT):
                yield f"add element ip {table} {name} {{ {', '.join(batch)} }}\n"
                batch.clear()
        if statics and (final or len(statics) >= ELEMENTS_PER_STATEMENT):
            yield f"add element ip {table} {STATIC_MAP} {{ {', '.join(statics)} }}\n"
            statics.clear()

    for index in range(mapper.subscriber_count):
        a = mapper.allocation_of(index)
        key = _key(a.subscriber)
        if a.static:
            statics.append(f"{key} : {format_ipv4(a.public_ip)}")
        else:
            ip = format_ipv4(a.public_ip)
            ranges = a.port_ranges
            for n in range(k):
                first, last = ranges[n % len(ranges)]
                batches[n].append(f"{key} : {ip} . {_port_range(first, last)}")
            if shape.overflow_after is not None:
                spill.append(f"{key} : {ip} . {spill_ports}")
        if len(batches[0]) >= ELEMENTS_PER_STATEMENT or len(statics) >= ELEMENTS_PER_STATEMENT:
            yield from flush()
    yield from flush(final=True)


# -- reading the live ruleset --------------------------------------------------------------------


def _address(value: Any) -> Prefix:
    """An nft JSON key: ``"10.0.0.1"`` or ``{"prefix": {"addr": ..., "len": ...}}``."""
    if isinstance(value, dict) and "elem" in value:
        return _address(value["elem"]["val"])
    if isinstance(value, str):
        return Prefix(V4, parse_ipv4(value), 32)
    if isinstance(value, dict) and "prefix" in value:
        return Prefix(V4, parse_ipv4(value["prefix"]["addr"]), int(value["prefix"]["len"]))
    raise ValueError(f"unexpected map key {value!r}")


def _holding(value: Any) -> Holding:
    """An nft JSON map value: ``"1.1.1.1"`` or ``{"concat": ["1.1.1.1", 1024 | {"range": ..}]}``."""
    if isinstance(value, str):
        return Holding(parse_ipv4(value), ((0, 65535),))
    if isinstance(value, dict) and "concat" in value:
        ip, ports = value["concat"]
        if isinstance(ports, int):
            return Holding(parse_ipv4(ip), ((ports, ports),))
        first, last = ports["range"]
        return Holding(parse_ipv4(ip), ((int(first), int(last)),))
    raise ValueError(f"unexpected map value {value!r}")


class Rule(NamedTuple):
    """One live rule in our ruleset's terms: ``overflow``, ``ports``, ``static``, ``drop``,
    ``other``."""

    kind: str
    map: str = ""  # the map it reads (overflow, ports, static); the rule's JSON for other
    pick: int | None = None  # ports: ``numgen random mod pick == 0``; overflow: ``ct count over``


def _strip(exprs: list[Any], oifname: str | None) -> list[Any]:
    """The rule without counters and without the outside-interface match we render."""
    kept = []
    for e in exprs:
        if "counter" in e:
            continue
        m = e.get("match")
        if (
            oifname is not None
            and m is not None
            and m.get("left") == {"meta": {"key": "oifname"}}
            and m.get("right") == oifname
            and m.get("op") == "=="
        ):
            continue
        kept.append(e)
    return kept


def _snat_map(e: Any, *, with_ports: bool) -> str | None:
    snat = e.get("snat") if isinstance(e, dict) else None
    if not isinstance(snat, dict) or set(snat) - {"family", "addr"}:
        return None
    if with_ports and snat.get("family") != "ip":
        return None
    addr = snat.get("addr")
    if not isinstance(addr, dict) or "map" not in addr:
        return None
    if addr["map"].get("key") != {"payload": {"protocol": "ip", "field": "saddr"}}:
        return None
    data = addr["map"].get("data")
    return data[1:] if isinstance(data, str) and data.startswith("@") else None


def recognise(exprs: list[Any], oifname: str | None) -> Rule:
    """What one live rule does, in the terms of our own ruleset, or ("other", its JSON)."""
    body = _strip(exprs, oifname)
    l4 = {
        "match": {
            "op": "==",
            "left": {"meta": {"key": "l4proto"}},
            "right": {"set": list(PORT_PROTOCOLS)},
        }
    }
    if body and body[0] == l4:
        pick: int | None = None
        rest = body[1:]
        if len(rest) == 2 and (after := _overflow_count(rest[0])) is not None:
            name = _snat_map(rest[1], with_ports=True)
            if name is not None:
                return Rule("overflow", name, after)
        if len(rest) == 2:
            m = rest[0].get("match", {})
            numgen = m.get("left", {}).get("numgen") if isinstance(m.get("left"), dict) else None
            if (
                m.get("op") == "=="
                and m.get("right") == 0
                and isinstance(numgen, dict)
                and numgen.get("mode") == "random"
                and numgen.get("offset", 0) == 0
            ):
                pick = int(numgen["mod"])
                rest = rest[1:]
        if len(rest) == 1 and (name := _snat_map(rest[0], with_ports=True)) is not None:
            return Rule("ports", name, pick)
    if len(body) == 1 and (name := _snat_map(body[0], with_ports=False)) is not None:
        return Rule("static", name)
    drop = [
        {
            "match": {
                "op": "==",
                "left": {"payload": {"protocol": "ip", "field": "saddr"}},
                "right": f"@{INSIDE_SET}",
            }
        },
        {"drop": None},
    ]
    if body == drop:
        return Rule("drop")
    return Rule("other", json.dumps(exprs, separators=(",", ":")))


def _overflow_count(e: Any) -> int | None:
    """N of ``add @overflow_flows { ip saddr ct count over N }``, else None."""
    body = e.get("set") if isinstance(e, dict) else None
    if not isinstance(body, dict) or body.get("op") != "add":
        return None
    if body.get("set") != f"@{OVERFLOW_SET}":
        return None
    if body.get("elem") != {"payload": {"protocol": "ip", "field": "saddr"}}:
        return None
    stmt = body.get("stmt")
    if not (isinstance(stmt, list) and len(stmt) == 1 and isinstance(stmt[0], dict)):
        return None
    count = stmt[0].get("ct count")
    if not isinstance(count, dict) or count.get("inv") is not True:
        return None
    value = count.get("val")
    return value if isinstance(value, int) else None


def expected_rules(shape: Layout) -> list[Rule]:
    k = shape.ranges_per_block
    rules = [Rule("ports", f"snat_{n}", k - n if n < k - 1 else None) for n in range(k)]
    if shape.overflow_after is not None:
        rules.insert(0, Rule("overflow", OVERFLOW_MAP, shape.overflow_after))
    if shape.has_static:
        rules.append(Rule("static", STATIC_MAP))
    rules.append(Rule("drop"))
    return rules


def _describe(rule: Rule) -> str:
    if rule.kind == "overflow":
        return f"overflow snat via @{rule.map} beyond {rule.pick} flows"
    if rule.kind == "ports":
        pick = f" (1 in {rule.pick} flows)" if rule.pick is not None else ""
        return f"tcp/udp/icmp snat via @{rule.map}{pick}"
    if rule.kind == "static":
        return f"static snat via @{rule.map}"
    if rule.kind == "drop":
        return f"drop the rest of @{INSIDE_SET}"
    return f"other rule {rule.map}"


def parse_live(
    ruleset: Mapping[str, Any],
    *,
    table: str,
    oifname: str | None = None,
    shape: Layout | None = None,
    inside: Sequence[Prefix] | None = None,
    overflow: Mapping[Prefix, Holding] | None = None,
) -> LiveState:
    """Interpret ``nft -j list ruleset`` output: who our table translates to what, and problems.

    ``shape`` and ``inside`` (from the plan) let it also report rules and inside prefixes that
    differ from what the plan's ruleset has; ``overflow`` (the plan's :func:`overflow_holdings`)
    the overflow map's elements that differ. Overflow ports are not deterministic holdings: they
    are not in the state returned.
    """
    items = ruleset.get("nftables", [])
    problems: list[str] = []
    maps: dict[str, dict[str, Any]] = {}
    sets: dict[str, dict[str, Any]] = {}
    chain: dict[str, Any] | None = None
    rules: list[Rule] = []
    found_table = False
    for item in items:
        kind, body = next(iter(item.items()))
        if not isinstance(body, dict):
            continue
        ours = body.get("family") == "ip" and body.get("table") == table
        if kind == "table" and body.get("family") == "ip" and body.get("name") == table:
            found_table = True
        elif kind == "map" and ours:
            maps[body["name"]] = body
        elif kind == "set" and ours:
            sets[body["name"]] = body
        elif kind == "chain" and ours and body.get("name") == CHAIN:
            chain = body
        elif (
            kind == "chain"
            and not ours
            and body.get("family") in ("ip", "inet")
            and (body.get("type"), body.get("hook")) == ("nat", "postrouting")
            and int(body.get("prio", 0)) <= 100
        ):
            problems.append(
                f"table {body['family']} {body.get('table')} chain {body.get('name')} also does "
                f"source NAT at priority {body.get('prio')}, before or beside ours: it can "
                "translate subscribers first"
            )
        elif kind == "rule" and ours and body.get("chain") == CHAIN:
            rules.append(recognise(body.get("expr", []), oifname))
    if not found_table:
        return LiveState({}, (f"table ip {table} is not loaded: nobody is translated by it",))
    if chain is None:
        problems.append(f"table ip {table} has no chain {CHAIN}: nobody is translated")
        rules = []
    elif (chain.get("type"), chain.get("hook"), chain.get("prio"), chain.get("policy")) != (
        "nat",
        "postrouting",
        100,
        "accept",
    ):
        problems.append(
            f"chain {CHAIN} is type {chain.get('type')} hook {chain.get('hook')} priority "
            f"{chain.get('prio')} policy {chain.get('policy')}, not type nat hook postrouting "
            "priority srcnat policy accept"
        )
    if shape is not None:
        want = expected_rules(shape)
        if rules != want:
            problems.append(
                f"chain {CHAIN} rules differ from the plan's: expected ["
                + "; ".join(map(_describe, want))
                + "], found ["
                + "; ".join(map(_describe, rules))
                + "]"
            )
    if inside is not None:
        have = sorted(_address(e) for e in sets.get(INSIDE_SET, {}).get("elem", []))
        want_inside = sorted(inside)
        if have != want_inside:
            problems.append(
                f"set {INSIDE_SET} holds [{', '.join(map(str, have))}], the plan's inside "
                f"prefixes are [{', '.join(map(str, want_inside))}]"
            )

    if overflow is not None:
        problems.extend(_overflow_problems(maps, overflow, rules))
    # Only maps that a rule reads translate anyone.
    used_port_maps = {r.map for r in rules if r.kind == "ports"}
    used_static_maps = {r.map for r in rules if r.kind == "static"}
    collected: dict[Prefix, list[Holding]] = {}
    for name in sorted(used_port_maps | used_static_maps):
        body = maps.get(name)
        if body is None:
            problems.append(f"a rule reads map @{name}, which does not exist")
            continue
        for element in body.get("elem", []):
            try:
                key, value = element
                subscriber = _address(key)
                holding = _holding(value)
            except (ValueError, TypeError, KeyError) as exc:
                problems.append(f"map @{name}: cannot read element {element!r} ({exc})")
                continue
            address_only = isinstance(value, str)
            if (name in used_static_maps) == address_only:
                collected.setdefault(subscriber, []).append(holding)
            else:
                problems.append(f"map @{name}: element {element!r} does not fit the rule")
    return LiveState(
        {sub: normalise(hs) for sub, hs in collected.items()},
        tuple(problems),
    )


def _overflow_problems(
    maps: Mapping[str, Mapping[str, Any]], want: Mapping[Prefix, Holding], rules: list[Rule]
) -> list[str]:
    read = {r.map for r in rules if r.kind == "overflow"}
    have: dict[Prefix, Holding] = {}
    for name in sorted(read):
        for element in maps.get(name, {}).get("elem", []):
            try:
                key, value = element
                have[_address(key)] = _holding(value)
            except (ValueError, TypeError, KeyError):
                return [f"map @{name}: cannot read element {element!r}"]
    wrong = sorted(p for p in set(have) | set(want) if have.get(p) != want.get(p))
    if not wrong:
        return []
    shown = ", ".join(str(p) for p in wrong[:5])
    return [
        f"the overflow map differs from the plan's dynamic blocks for {len(wrong)} "
        f"subscriber(s): {shown}"
    ]


# -- the backend ---------------------------------------------------------------------------------


class NftablesDatapath(Datapath):
    """NAT44 with nftables maps; ``netns`` runs ``nft`` inside that network namespace."""

    name = "nftables"
    options: ClassVar[Mapping[str, str]] = {
        "table": "name of the ip table detnat owns (default detnat)",
        "oifname": "translate only traffic leaving this interface (default: all)",
        "netns": "run nft in this named network namespace (ip netns exec)",
        "nft": "the nft program (default nft)",
        "overflow": "on: a subscriber's flows beyond its block size take ports of the dynamic "
        "blocks (log them with conntrack -E); off (default): those blocks are not used",
    }

    def __init__(
        self,
        table: str = "detnat",
        oifname: str | None = None,
        netns: str | None = None,
        nft: str = "nft",
        overflow: bool | str = False,
    ) -> None:
        _check_names(table, oifname)
        if isinstance(overflow, str):
            if overflow not in ("on", "off"):
                raise InvalidInput(f"overflow is on or off, not {overflow!r}", field="overflow")
            overflow = overflow == "on"
        self.overflow = overflow
        if netns is not None and not _NETNS_NAME.fullmatch(netns):
            raise InvalidInput(f"{netns!r} is not a network namespace name", field="netns")
        self.table = table
        self.oifname = oifname
        self.netns = netns
        self.nft = nft

    def render(self, mapper: Mapper) -> Iterator[str]:
        return render_ruleset(
            mapper, table=self.table, oifname=self.oifname, overflow=self.overflow
        )

    def _run(self, *args: str) -> str:
        command = [self.nft, *args]
        if self.netns is not None:
            command = ["ip", "netns", "exec", self.netns, *command]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=NFT_TIMEOUT, check=False
            )
        except FileNotFoundError:
            raise Unavailable(
                f"{command[0]} is not installed (nftables: apt-get install nftables)"
            ) from None
        except subprocess.TimeoutExpired:
            raise Unavailable(f"{' '.join(command)} did not finish in {NFT_TIMEOUT:.0f}s") from None
        if done.returncode != 0:
            error = " ".join(done.stderr.split())[:2000] or f"exit status {done.returncode}"
            raise Unavailable(f"{' '.join(command[:-1])} failed: {error}")
        return done.stdout

    def apply(self, mapper: Mapper) -> None:
        fd, path = tempfile.mkstemp(prefix="detnat-", suffix=".nft")
        try:
            with os.fdopen(fd, "w") as out:
                out.writelines(self.render(mapper))
            self._run("-f", path)
        finally:
            os.unlink(path)

    def read_ruleset(self) -> dict[str, Any]:
        text = self._run("-j", "list", "ruleset")
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise Unavailable(f"nft -j list ruleset printed no JSON ({exc})") from None
        if not isinstance(data, dict):
            raise Unavailable("nft -j list ruleset printed unexpected JSON")
        return data

    def read_live(self) -> LiveState:
        return parse_live(self.read_ruleset(), table=self.table, oifname=self.oifname)

    def verify(self, mapper: Mapper) -> DriftReport:
        shape = layout(mapper, overflow=self.overflow)
        inside = cast(BlockMapper, mapper).plan.inside  # layout() checked it
        assert inside is not None
        live = parse_live(
            self.read_ruleset(),
            table=self.table,
            oifname=self.oifname,
            shape=shape,
            inside=inside.prefixes,
            overflow=overflow_holdings(mapper) if self.overflow else None,
        )
        return compare(self.expected(mapper), live)
