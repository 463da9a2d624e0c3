"""The datapath seam: one small base class, what a datapath holds, and the drift between the two.

A backend turns a compiled plan (:class:`~detnat.engine.Mapper`) into configuration for a real
datapath (:meth:`Datapath.render`), loads it (:meth:`Datapath.apply`), reads back what the datapath
really does (:meth:`Datapath.read_live`), and :meth:`Datapath.verify` compares that with what the
plan says, subscriber by subscriber. The comparison lives here, once, so every backend reports drift
the same way::

    >>> from detnat.engine.addresses import parse_prefix
    >>> sub = parse_prefix("10.0.0.7")
    >>> plan = LiveState({sub: (Holding(0xC0000201, ((1024, 1039),)),)})
    >>> live = LiveState({sub: (Holding(0xC0000201, ((1024, 1040),)),)})
    >>> print(compare(plan, live).drifts[0])
    10.0.0.7/32: plan 192.0.2.1 ports 1024-1039; datapath 192.0.2.1 ports 1024-1040
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import ClassVar, NamedTuple, Self

from detnat.engine import Mapper, Prefix, format_ipv4
from detnat.engine.ranges import merge
from detnat.errors import InvalidInput, PlanError

PortRanges = tuple[tuple[int, int], ...]


class NotExpressible(PlanError):
    """The plan is valid, but this datapath (or export format) cannot enforce it as written.

    ``reasons`` lists every part of the plan that does not fit, so the operator sees them all at
    once rather than one per attempt.
    """

    code = "not_expressible"

    def __init__(self, target: str, reasons: Iterable[str]) -> None:
        self.target = target
        self.reasons = tuple(reasons)
        super().__init__(f"the plan is not expressible in {target}: " + "; ".join(self.reasons))


class Holding(NamedTuple):
    """A public address and the ports of it that a subscriber may be translated to."""

    public_ip: int
    port_ranges: PortRanges

    def to_json(self) -> dict[str, object]:
        return {
            "public_ip": format_ipv4(self.public_ip),
            "port_ranges": [list(r) for r in self.port_ranges],
        }

    def __str__(self) -> str:
        ports = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in self.port_ranges)
        return f"{format_ipv4(self.public_ip)} ports {ports or 'none'}"


def normalise(holdings: Iterable[Holding]) -> tuple[Holding, ...]:
    """One holding per public address, its ranges merged, addresses ascending."""
    by_ip: dict[int, list[tuple[int, int]]] = {}
    for h in holdings:
        by_ip.setdefault(h.public_ip, []).extend(h.port_ranges)
    return tuple(Holding(ip, tuple(merge(by_ip[ip]))) for ip in sorted(by_ip))


@dataclass(frozen=True)
class LiveState:
    """What a datapath translates each subscriber to, and findings that concern no one subscriber.

    ``holdings`` maps a subscriber prefix to every (public address, ports) the datapath may give
    it; a subscriber it does not translate is absent. ``problems`` are datapath-wide findings such
    as a missing table or an unexpected rule, in the operator's words.
    """

    holdings: Mapping[Prefix, tuple[Holding, ...]]
    problems: tuple[str, ...] = ()


@dataclass(frozen=True)
class Drift:
    """One subscriber whose live translation differs from the plan."""

    subscriber: Prefix
    plan: tuple[Holding, ...]
    datapath: tuple[Holding, ...]

    def to_json(self) -> dict[str, object]:
        return {
            "subscriber": str(self.subscriber),
            "plan": [h.to_json() for h in self.plan],
            "datapath": [h.to_json() for h in self.datapath],
        }

    def __str__(self) -> str:
        def say(holdings: tuple[Holding, ...]) -> str:
            return "; ".join(map(str, holdings)) or "no translation"

        return f"{self.subscriber}: plan {say(self.plan)}; datapath {say(self.datapath)}"


@dataclass(frozen=True)
class DriftReport:
    """The result of :meth:`Datapath.verify`: empty ``drifts`` and ``problems`` mean agreement."""

    checked: int  # subscribers compared (the union of both sides)
    drifts: tuple[Drift, ...] = ()
    problems: tuple[str, ...] = field(default=())

    @property
    def ok(self) -> bool:
        return not self.drifts and not self.problems

    def to_json(self) -> dict[str, object]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "drift_count": len(self.drifts),
            "problems": list(self.problems),
            "drifts": [d.to_json() for d in self.drifts],
        }


def compare(plan: LiveState, live: LiveState) -> DriftReport:
    """Every subscriber whose holdings differ between ``plan`` and ``live``, in address order."""
    drifts: list[Drift] = []
    subscribers = set(plan.holdings) | set(live.holdings)
    for subscriber in sorted(subscribers, key=lambda p: (p.family, p.network, p.length)):
        want = normalise(plan.holdings.get(subscriber, ()))
        have = normalise(live.holdings.get(subscriber, ()))
        if want != have:
            drifts.append(Drift(subscriber, want, have))
    return DriftReport(
        checked=len(subscribers),
        drifts=tuple(drifts),
        problems=(*plan.problems, *live.problems),
    )


def planned_state(mapper: Mapper) -> LiveState:
    """What a datapath that enforces ``mapper`` exactly holds: every subscriber's allocation."""
    holdings: dict[Prefix, tuple[Holding, ...]] = {}
    for index in range(mapper.subscriber_count):
        a = mapper.allocation_of(index)
        holdings[a.subscriber] = (Holding(a.public_ip, a.port_ranges),)
    return LiveState(holdings)


class Datapath(ABC):
    """A datapath that can enforce a plan: render, apply, read back, verify.

    Backends are found by name through the ``detnat.datapath`` entry-point group (see
    :mod:`detnat.datapath.registry`); each takes its settings as text options
    (``--option KEY=VALUE`` on the command line), refusing unknown ones.
    :class:`~detnat.datapath.testing.RecordingDatapath` is the test double.
    """

    name: ClassVar[str]
    options: ClassVar[Mapping[str, str]] = {}  # option name -> what it means

    @classmethod
    def from_options(cls, options: Mapping[str, str]) -> Self:
        """Build the backend from text options; unknown names are refused with the known ones."""
        unknown = sorted(set(options) - set(cls.options))
        if unknown:
            known = ", ".join(sorted(cls.options)) or "none"
            raise InvalidInput(
                f"backend {cls.name!r} has no option {unknown[0]!r} (options: {known})",
                field="--option",
            )
        return cls._from_options(dict(options))

    @classmethod
    def _from_options(cls, options: dict[str, str]) -> Self:
        return cls(**options)

    @abstractmethod
    def render(self, mapper: Mapper) -> Iterator[str]:
        """The datapath's configuration for ``mapper`` as text chunks (streamed: plans are big).

        Raises :class:`NotExpressible` when the datapath cannot enforce the plan as written.
        """

    @abstractmethod
    def apply(self, mapper: Mapper) -> None:
        """Load the rendered configuration, atomically: all of it or nothing."""

    @abstractmethod
    def read_live(self) -> LiveState:
        """What the datapath does now, read from the datapath itself (not from our own record)."""

    def expected(self, mapper: Mapper) -> LiveState:
        """What :meth:`read_live` returns once ``mapper`` is applied: by default each allocation."""
        return planned_state(mapper)

    def verify(self, mapper: Mapper) -> DriftReport:
        """Compare the live datapath with the plan, subscriber by subscriber."""
        return compare(self.expected(mapper), self.read_live())
