"""The plan: every parameter of one deterministic mapping, as immutable values.

A :class:`Plan` is what a plan file says, already parsed (prefixes are :class:`Prefix`, ports are
ints) but not yet checked as a whole; :func:`detnat.engine.compile_plan` checks it and builds the
mapper. :meth:`Plan.to_dict` is the canonical content (defaults written out, prefixes in canonical
text) that the store hashes, so two files that mean the same plan hash the same.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from detnat.engine.addresses import Prefix, format_ipv4

Algorithm = Literal["block", "map"]
Assignment = Literal["sequential", "staggered"]

DEFAULT_FIRST_PORT = 1024
DEFAULT_LAST_PORT = 65535
DEFAULT_PSID_OFFSET = 6  # RFC 7597 section 5.1


@dataclass(frozen=True)
class Inside:
    prefixes: tuple[Prefix, ...]
    subscriber_prefix_length: int
    exclude: tuple[Prefix, ...] = ()


@dataclass(frozen=True)
class Outside:
    prefixes: tuple[Prefix, ...]
    exclude: tuple[Prefix, ...] = ()


@dataclass(frozen=True)
class Ports:
    first: int = DEFAULT_FIRST_PORT
    last: int = DEFAULT_LAST_PORT
    exclude: tuple[tuple[int, int], ...] = ()


@dataclass(frozen=True)
class Block:
    size: int | None = None
    ratio: int | None = None
    assignment: Assignment = "sequential"
    dynamic_blocks: int = 0


@dataclass(frozen=True)
class MapRule:
    rule_ipv6_prefix: Prefix
    rule_ipv4_prefix: Prefix
    ea_bits_length: int
    psid_offset: int = DEFAULT_PSID_OFFSET


@dataclass(frozen=True)
class StaticBinding:
    subscriber: Prefix
    address: int


@dataclass(frozen=True)
class Plan:
    algorithm: Algorithm
    inside: Inside | None = None
    outside: Outside | None = None
    ports: Ports | None = None
    block: Block | None = None
    map: MapRule | None = None
    static: tuple[StaticBinding, ...] = ()

    def __post_init__(self) -> None:
        # A block plan without ``ports`` means the default range; say so, so both are equal.
        if self.algorithm == "block" and self.ports is None:
            object.__setattr__(self, "ports", Ports())

    def to_dict(self) -> dict[str, object]:
        """Canonical content: what the plan means, with every default written out."""
        out: dict[str, object] = {"algorithm": self.algorithm}
        if self.inside is not None:
            out["inside"] = {
                "prefixes": [str(p) for p in self.inside.prefixes],
                "subscriber_prefix_length": self.inside.subscriber_prefix_length,
                "exclude": [str(p) for p in self.inside.exclude],
            }
        if self.outside is not None:
            out["outside"] = {
                "prefixes": [str(p) for p in self.outside.prefixes],
                "exclude": [str(p) for p in self.outside.exclude],
            }
        if self.ports is not None:
            out["ports"] = {
                "first": self.ports.first,
                "last": self.ports.last,
                "exclude": [f"{a}" if a == b else f"{a}-{b}" for a, b in self.ports.exclude],
            }
        if self.block is not None:
            block: dict[str, object] = {}
            if self.block.size is not None:
                block["size"] = self.block.size
            if self.block.ratio is not None:
                block["ratio"] = self.block.ratio
            block["assignment"] = self.block.assignment
            block["dynamic_blocks"] = self.block.dynamic_blocks
            out["block"] = block
        if self.map is not None:
            out["map"] = {
                "rule_ipv6_prefix": str(self.map.rule_ipv6_prefix),
                "rule_ipv4_prefix": str(self.map.rule_ipv4_prefix),
                "ea_bits_length": self.map.ea_bits_length,
                "psid_offset": self.map.psid_offset,
            }
        out["static"] = [
            {"subscriber": str(s.subscriber), "address": format_ipv4(s.address)}
            for s in self.static
        ]
        return out
