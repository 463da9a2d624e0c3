"""The plan: every parameter of one deterministic mapping, as immutable values.

A :class:`Plan` is what a plan file says, already parsed (prefixes are :class:`Prefix`, ports are
ints) but not yet checked as a whole; :func:`detnat.engine.compile_plan` checks it and builds the
mapper. Each algorithm has its own plan class (:class:`detnat.engine.block.BlockPlan`,
:class:`detnat.engine.map_rule.MapPlan`, ...), a subclass of :class:`Plan` declared in the
algorithm registry (:mod:`detnat.engine.algorithms`); ``Plan("block", ...)`` builds the plan class
of the algorithm named, as ``pathlib.Path(...)`` builds a ``PosixPath``.

These dataclasses are *the* plan schema. Their type hints, with the markers below where the type
alone does not say how a value is written, are what :mod:`detnat.planfile` validates a plan file
against, and what :meth:`Plan.to_dict` writes as the canonical content that the store hashes (two
files that mean the same plan hash the same).
"""

from __future__ import annotations

import enum
from dataclasses import MISSING, dataclass, fields
from typing import Annotated, Any, Literal, cast, get_args, get_origin, get_type_hints

from detnat.engine.addresses import Prefix, format_ipv4

Assignment = Literal["sequential", "staggered"]

DEFAULT_FIRST_PORT = 1024
DEFAULT_LAST_PORT = 65535
DEFAULT_PSID_OFFSET = 6  # RFC 7597 section 5.1


class Spelling(enum.Enum):
    """How a plan file writes a value whose Python type does not say it (``Annotated`` marks)."""

    IPV4_ADDRESS = "an IPv4 address as a string, held as an int"
    PORT_RANGE = "a port (int) or a range 'first-last' (str), held as (first, last)"
    NON_EMPTY = "a list that needs at least one item"


IPv4Address = Annotated[int, Spelling.IPV4_ADDRESS]
PortRange = Annotated[tuple[int, int], Spelling.PORT_RANGE]


@dataclass(frozen=True)
class Inside:
    prefixes: Annotated[tuple[Prefix, ...], Spelling.NON_EMPTY]
    subscriber_prefix_length: int
    exclude: tuple[Prefix, ...] = ()


@dataclass(frozen=True)
class Outside:
    prefixes: Annotated[tuple[Prefix, ...], Spelling.NON_EMPTY]
    exclude: tuple[Prefix, ...] = ()


@dataclass(frozen=True)
class Ports:
    first: int = DEFAULT_FIRST_PORT
    last: int = DEFAULT_LAST_PORT
    exclude: tuple[PortRange, ...] = ()


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
    address: IPv4Address


@dataclass(frozen=True)
class Plan:
    """What every plan has: its algorithm's name and the static bindings.

    A subclass per algorithm adds that algorithm's sections as fields (``None`` when absent: the
    mapper says which are needed) and redeclares ``algorithm`` as a ``Literal`` of its name.
    """

    algorithm: str
    static: tuple[StaticBinding, ...] = ()

    def __new__(cls, *args: Any, **kwargs: Any) -> Plan:
        if cls is Plan:  # Plan("block", ...): the plan class of the algorithm named
            from detnat.engine.algorithms import algorithm_named

            cls = algorithm_named(args[0] if args else kwargs.get("algorithm")).plan
        return object.__new__(cls)

    def _pool_ranges(self) -> list[tuple[int, int]]:
        """The public IPv4 addresses of the algorithm's pool (excluded ones left out)."""
        raise NotImplementedError

    def public_ranges(self) -> list[tuple[int, int]]:
        """Every public IPv4 address the plan uses (pool and static), as merged inclusive ranges."""
        spans = self._pool_ranges()
        spans.extend((s.address, s.address) for s in self.static)
        merged: list[tuple[int, int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1] = (merged[-1][0], max(hi, merged[-1][1]))
            else:
                merged.append((lo, hi))
        return merged

    def to_dict(self) -> dict[str, object]:
        """Canonical content: what the plan means, with every default written out.

        Written from the fields themselves: a section or value that is ``None`` is left out
        (``block.size`` when the plan gives ``ratio``), prefixes are their canonical text, an
        address its dotted quad, a port range ``"first-last"`` (``"first"`` for one port).
        """
        return _encode_dataclass(self)


def _encode_dataclass(value: object) -> dict[str, object]:
    hints = _hints(type(value))
    out: dict[str, object] = {}
    for f in fields(value):  # type: ignore[arg-type]
        item = getattr(value, f.name)
        if item is not None:
            out[f.name] = _encode(item, hints[f.name])
    return out


def _encode(value: object, hint: Any) -> object:
    marks: tuple[object, ...] = ()
    if get_origin(hint) is Annotated:
        hint, *rest = get_args(hint)
        marks = tuple(rest)
    if Spelling.IPV4_ADDRESS in marks:
        assert isinstance(value, int)
        return format_ipv4(value)
    if Spelling.PORT_RANGE in marks:
        first, last = cast(tuple[int, int], value)
        return f"{first}" if first == last else f"{first}-{last}"
    if isinstance(value, Prefix):
        return str(value)
    if isinstance(value, tuple):
        item_hint = get_args(hint)[0] if get_origin(hint) is tuple else Any
        return [_encode(item, item_hint) for item in value]
    if hasattr(value, "__dataclass_fields__"):
        return _encode_dataclass(value)
    return value


_HINTS: dict[type, dict[str, Any]] = {}


def _hints(cls: type) -> dict[str, Any]:
    """The resolved type hints of a plan dataclass, markers kept (cached: classes are fixed)."""
    found = _HINTS.get(cls)
    if found is None:
        found = _HINTS[cls] = get_type_hints(cls, include_extras=True)
    return found


def plan_fields(cls: type) -> list[tuple[str, Any, object]]:
    """(name, type hint with markers, default or ``MISSING``) of each field of a plan dataclass:
    the schema that :mod:`detnat.planfile` validates plan files against."""
    hints = _hints(cls)
    return [
        (f.name, hints[f.name], f.default if f.default is not MISSING else MISSING)
        for f in fields(cls)
    ]


__all__ = [
    "MISSING",
    "Block",
    "IPv4Address",
    "Inside",
    "MapRule",
    "Outside",
    "Plan",
    "PortRange",
    "Ports",
    "Spelling",
    "StaticBinding",
    "plan_fields",
]
