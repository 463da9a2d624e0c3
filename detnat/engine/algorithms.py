"""The algorithm registry: the one place that knows which algorithms exist and what each can do.

An algorithm is declared once, by an :class:`Algorithm` in its own module, and listed in
:data:`BUILT_IN` (or registered at run time with :func:`register`). It brings:

- its **plan class**: a :class:`~detnat.engine.plan.Plan` subclass whose ``algorithm`` field is
  a ``Literal`` of its name and whose other fields are its plan file sections. The plan file
  schema is the discriminated union of the registered plan classes on ``algorithm``
  (:mod:`detnat.planfile` builds its validator from them);
- its **mapper**: a :class:`~detnat.engine.mapper.Mapper` subclass, built from a plan of its class
  (forward, reverse and the vectorised paths);
- its **capabilities**: which datapath formats it can be exported as, which datapath backends can
  enforce it, which capacity tools can plan with it; for anything else, :func:`refusal` says why
  not, in the words the algorithm chose.

Everything else asks here, never ``isinstance`` on a plan or a mapper.

A worked example: ``toy``, block-like with four subscribers per address, in a test or a plug-in::

    >>> from dataclasses import dataclass
    >>> from typing import Literal
    >>> from detnat.engine import Block, Inside, Outside, Plan, compile_plan, parse_prefix
    >>> from detnat.engine.algorithms import EXPORT, Algorithm, Capabilities, refusal, registered
    >>> from detnat.engine.block import BlockMapper, BlockPlan
    >>> @dataclass(frozen=True)
    ... class ToyPlan(Plan):
    ...     algorithm: Literal["toy"] = "toy"
    ...     inside: Inside | None = None
    ...     outside: Outside | None = None
    ...     def _pool_ranges(self):
    ...         return [(p.first, p.last) for p in self.outside.prefixes]
    >>> class ToyMapper(BlockMapper):
    ...     def __init__(self, plan):
    ...         super().__init__(BlockPlan(inside=plan.inside, outside=plan.outside,
    ...                                    block=Block(ratio=4), static=plan.static))
    ...         self.plan = plan
    >>> toy = Algorithm("toy", ToyPlan, ToyMapper, Capabilities(capacity={"evaluate"}),
    ...                 description="four subscribers per address")
    >>> with registered(toy):
    ...     mapper = compile_plan(Plan("toy", inside=Inside((parse_prefix("10.0.0.0/30"),), 32),
    ...                                outside=Outside((parse_prefix("192.0.2.1/32"),))))
    ...     print(mapper.forward("10.0.0.1").to_json()["port_ranges"])
    ...     print(refusal(mapper, EXPORT, "nftables"))
    [[17152, 33279]]
    algorithm toy: cannot be exported as nftables (it declares no export formats)
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from collections.abc import Set as AbstractSet
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Literal

from detnat.engine.mapper import Mapper
from detnat.engine.plan import Plan
from detnat.errors import PlanError

Kind = Literal["export", "enforce", "capacity"]
EXPORT: Kind = "export"  # a datapath export format: det44, snabb, nftables
ENFORCE: Kind = "enforce"  # a datapath backend that applies the plan: nftables, dslite
CAPACITY: Kind = "capacity"  # a capacity tool: evaluate, compare

_ASKED = {
    EXPORT: ("cannot be exported as {name}", "export formats"),
    ENFORCE: ("cannot be enforced by the {name} datapath", "datapath backends"),
    CAPACITY: ("cannot be planned by capacity {name}", "capacity tools"),
}


@dataclass(frozen=True)
class Capabilities:
    """What the rest of detnat may do with an algorithm's plans, by name."""

    exports: AbstractSet[str] = frozenset()
    enforce: AbstractSet[str] = frozenset()
    capacity: AbstractSet[str] = frozenset()
    # Why not, for names it does not declare (keyed by format, backend or tool name): said to the
    # user as "algorithm NAME: WHY".
    refusals: Mapping[str, str] = field(default_factory=dict, hash=False, compare=False)

    def __post_init__(self) -> None:
        for name in ("exports", "enforce", "capacity"):
            object.__setattr__(self, name, frozenset(getattr(self, name)))

    def declared(self, kind: Kind) -> AbstractSet[str]:
        return {EXPORT: self.exports, ENFORCE: self.enforce, CAPACITY: self.capacity}[kind]


@dataclass(frozen=True)
class Algorithm:
    name: str  # the plan file's ``algorithm``
    plan: type[Plan]
    mapper: Callable[[Plan], Mapper]
    capabilities: Capabilities = Capabilities()
    description: str = ""  # one line, for listings and the plan file reference
    # Added to "not used by algorithm NAME" when a plan file has a section the algorithm ignores.
    unused_hint: str = ""


def _built_in() -> dict[str, Algorithm]:
    # Adding an algorithm: write its module (plan class, mapper, ALGORITHM) and list it here.
    from detnat.engine import block, map_rule

    return {a.name: a for a in (block.ALGORITHM, map_rule.ALGORITHM)}


_registry: dict[str, Algorithm] = {}


def _algorithms() -> dict[str, Algorithm]:
    if not _registry:
        _registry.update(_built_in())
    return _registry


def algorithms() -> tuple[Algorithm, ...]:
    """Every registered algorithm, built-ins first, in registration order."""
    return tuple(_algorithms().values())


def algorithm_named(name: object) -> Algorithm:
    """The algorithm called ``name``; :class:`PlanError` (field ``algorithm``) lists the names."""
    found = _algorithms().get(name) if isinstance(name, str) else None
    if found is None:
        *most, last = (repr(a.name) for a in algorithms())
        names = f"{', '.join(most)} or {last}" if most else last
        raise PlanError(f"Input should be {names} (got {name!r})", field="algorithm")
    return found


def algorithm_of(subject: Plan | Mapper) -> Algorithm:
    """The algorithm of a plan or of a compiled plan."""
    plan = subject.plan if isinstance(subject, Mapper) else subject
    return algorithm_named(plan.algorithm)


def register(algorithm: Algorithm) -> None:
    """Add an algorithm (a plug-in, a test); a name is registered once."""
    known = _algorithms()
    if algorithm.name in known:
        raise ValueError(f"algorithm {algorithm.name!r} is already registered")
    known[algorithm.name] = algorithm


def unregister(name: str) -> None:
    if name in {a.name for a in _built_in().values()}:
        raise ValueError(f"algorithm {name!r} is built in")
    _algorithms().pop(name, None)


@contextmanager
def registered(algorithm: Algorithm) -> Iterator[Algorithm]:
    """``register`` for the duration of a ``with`` block."""
    register(algorithm)
    try:
        yield algorithm
    finally:
        unregister(algorithm.name)


def compile_plan(plan: Plan) -> Mapper:
    """Check ``plan`` as a whole and build its mapper; :class:`PlanError` names what is wrong."""
    return algorithm_of(plan).mapper(plan)


def refusal(subject: Plan | Mapper, kind: Kind, name: str) -> str | None:
    """Why the algorithm of ``subject`` cannot be used by ``name`` (a format, backend or tool of
    ``kind``), or None when it declares that it can."""
    algorithm = algorithm_of(subject)
    declared = algorithm.capabilities.declared(kind)
    if name in declared:
        return None
    why = algorithm.capabilities.refusals.get(name)
    if why is None:
        cannot, what = _ASKED[kind]
        also = (
            f"it declares {', '.join(sorted(declared))}" if declared else f"it declares no {what}"
        )
        why = f"{cannot.format(name=name)} ({also})"
    return f"algorithm {algorithm.name}: {why}"


__all__ = [
    "CAPACITY",
    "ENFORCE",
    "EXPORT",
    "Algorithm",
    "Capabilities",
    "algorithm_named",
    "algorithm_of",
    "algorithms",
    "compile_plan",
    "refusal",
    "register",
    "registered",
    "unregister",
]
