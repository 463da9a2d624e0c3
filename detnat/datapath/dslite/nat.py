"""The AFTR's NAT bindings: keyed by B4, outside ports only from the B4's deterministic port set.

A binding maps (B4 IPv6 address, inner source address, inner port or ICMP identifier, protocol) to
(public address, public port). The public address and the ports a binding may use are the
subscriber's allocation under the plan (:meth:`Mapper.forward` of the B4 address), so whatever
public address and port a server sees, ``detnat reverse`` names that B4 — two B4s whose hosts both
use 192.168.1.10 never share a port.

Mappings are endpoint-independent (RFC 4787 REQ-1), so is filtering (an inbound packet to a bound
public port reaches the binding whoever sends it; RFC 4787 REQ-8 allows it). Timers (seconds):

- UDP 300 (RFC 4787 REQ-5: at least 120, 300 recommended), refreshed by outbound packets (REQ-6);
- TCP established 7440 (RFC 5382 REQ-5: at least 2 h 4 min), transitory 240 (RFC 5382: 4 min,
  before establishment and after FIN in both directions or a RST; RFC 7857 section 2.2);
- ICMP echo 60 (RFC 5508 REQ-1: at least 60 s).

>>> from detnat.engine import compile_plan, Plan, Inside, Outside, Block
>>> from detnat.engine.addresses import parse_prefix, parse_address
>>> plan = Plan("block", inside=Inside((parse_prefix("2001:db8:b4::/126"),), 128),
...             outside=Outside((parse_prefix("192.0.2.1/32"),)), block=Block(size=1000))
>>> table = BindingTable(compile_plan(plan))
>>> b4 = parse_address("2001:db8:b4::1")[1]
>>> binding = table.outbound(b4, 0xC0A8010A, 40000, UDP, now=0.0)
>>> 2024 <= binding.public_port <= 3023  # subscriber 1's block
True
"""

from __future__ import annotations

import heapq
from bisect import bisect_right
from dataclasses import dataclass, field
from enum import IntEnum

from detnat.datapath.base import NotExpressible
from detnat.datapath.dslite.packets import ICMP, TCP, UDP
from detnat.engine import ENFORCE, Mapper, Prefix, refusal
from detnat.engine.addresses import V6
from detnat.errors import QueryError

PROTOCOLS = (ICMP, TCP, UDP)
TCP_SYN, TCP_FIN, TCP_RST, TCP_ACK = 0x02, 0x01, 0x04, 0x10


@dataclass(frozen=True)
class Timeouts:
    udp: float = 300.0
    tcp_established: float = 7440.0
    tcp_transitory: float = 240.0
    icmp: float = 60.0


class TcpState(IntEnum):
    OPENING = 0  # a SYN seen one way
    ESTABLISHED = 1  # SYNs seen both ways
    CLOSING = 2  # FIN seen one way
    CLOSED = 3  # FIN both ways, or RST: transitory until it expires


class PortSet:
    """A subscriber's port set (inclusive ranges) numbered 0 .. count-1, for picking free ports."""

    def __init__(self, ranges: tuple[tuple[int, int], ...]) -> None:
        self.ranges = ranges
        self.starts: list[int] = []
        total = 0
        for first, last in ranges:
            self.starts.append(total)
            total += last - first + 1
        self.count = total

    def port_at(self, index: int) -> int:
        run = bisect_right(self.starts, index) - 1
        return self.ranges[run][0] + index - self.starts[run]

    def index_of(self, port: int) -> int | None:
        for (first, last), start in zip(self.ranges, self.starts, strict=True):
            if first <= port <= last:
                return start + port - first
        return None


@dataclass
class Subscriber:
    """What one subscriber may use: its public address and port set, and where to look next."""

    prefix: Prefix
    public_ip: int
    ports: PortSet
    cursor: dict[int, int] = field(default_factory=dict)  # protocol -> next index to try
    bound: dict[int, int] = field(default_factory=dict)  # protocol -> ports in use


@dataclass
class Binding:
    b4: int
    inner_ip: int
    inner_port: int
    protocol: int
    public_ip: int
    public_port: int
    subscriber: Subscriber
    expires: float
    tcp: TcpState = TcpState.OPENING
    fin_out: bool = False
    fin_in: bool = False
    timer: float | None = None  # when its one live entry in the timer heap fires

    @property
    def key(self) -> tuple[int, int, int, int]:
        return (self.b4, self.inner_ip, self.inner_port, self.protocol)


class NoBinding(Exception):
    """Why an outbound packet gets no binding: not a subscriber, or its port set is full."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class BindingTable:
    """All bindings of one AFTR, both directions, with their timers.

    ``now`` is passed in (seconds, any monotonic origin): the table has no clock of its own, so
    timers are tested without waiting.
    """

    def __init__(self, mapper: Mapper, timeouts: Timeouts | None = None) -> None:
        why_not = refusal(mapper, ENFORCE, "dslite")
        if why_not is not None:
            raise NotExpressible("the detnat DS-Lite AFTR", [why_not])
        if mapper.family != V6:
            raise QueryError(
                f"an AFTR's subscribers are B4 IPv6 addresses or prefixes; this plan's are "
                f"IPv{mapper.family}",
                field="plan",
            )
        self.mapper = mapper
        self.timeouts = timeouts or Timeouts()
        self._out: dict[tuple[int, int, int, int], Binding] = {}
        self._in: dict[tuple[int, int, int], Binding] = {}  # (protocol, public ip, public port)
        self._subscribers: dict[int, Subscriber] = {}  # by subscriber number
        self._timers: list[tuple[float, int, tuple[int, int, int, int]]] = []
        self._sequence = 0

    def __len__(self) -> int:
        return len(self._out)

    def bindings(self) -> list[Binding]:
        return list(self._out.values())

    def subscriber_of(self, b4: int) -> Subscriber:
        """The subscriber a B4 address belongs to; :class:`NoBinding` if none."""
        try:
            index = self.mapper.subscriber_number(Prefix(V6, b4, 128))
        except QueryError:
            raise NoBinding("not_a_subscriber") from None
        found = self._subscribers.get(index)
        if found is None:
            allocation = self.mapper.allocation_of(index)
            # Port 0 is no port: a static subscriber's "all ports" starts at 1 here.
            ranges = tuple((max(a, 1), b) for a, b in allocation.port_ranges if b >= 1)
            found = Subscriber(allocation.subscriber, allocation.public_ip, PortSet(ranges))
            self._subscribers[index] = found
        return found

    # -- timers -----------------------------------------------------------------------------------

    def _timeout(self, binding: Binding) -> float:
        if binding.protocol == UDP:
            return self.timeouts.udp
        if binding.protocol == ICMP:
            return self.timeouts.icmp
        if binding.tcp == TcpState.ESTABLISHED or binding.tcp == TcpState.CLOSING:
            return self.timeouts.tcp_established
        return self.timeouts.tcp_transitory

    def _refresh(self, binding: Binding, now: float) -> None:
        binding.expires = now + self._timeout(binding)
        # One heap entry per binding: a later expiry is picked up when the entry fires; only an
        # earlier one (TCP closing) needs a new entry. The heap stays as big as the table.
        if binding.timer is None or binding.expires < binding.timer:
            binding.timer = binding.expires
            self._sequence += 1
            heapq.heappush(self._timers, (binding.expires, self._sequence, binding.key))

    @property
    def timer_count(self) -> int:
        return len(self._timers)

    def expire(self, now: float) -> int:
        """Remove every binding whose timer ran out by ``now``; how many went."""
        gone = 0
        while self._timers and self._timers[0][0] <= now:
            when, _, key = heapq.heappop(self._timers)
            binding = self._out.get(key)
            if binding is None or binding.timer != when:
                continue  # an entry a newer one replaced, or of a binding already gone
            if binding.expires <= now:
                self._remove(binding)
                gone += 1
            else:
                binding.timer = binding.expires
                self._sequence += 1
                heapq.heappush(self._timers, (binding.expires, self._sequence, key))
        return gone

    def _remove(self, binding: Binding) -> None:
        del self._out[binding.key]
        del self._in[(binding.protocol, binding.public_ip, binding.public_port)]
        binding.subscriber.bound[binding.protocol] -= 1

    # -- TCP state --------------------------------------------------------------------------------

    @staticmethod
    def _track(binding: Binding, flags: int, *, outbound: bool) -> None:
        if flags & TCP_RST:
            binding.tcp = TcpState.CLOSED
            return
        if flags & TCP_FIN:
            if outbound:
                binding.fin_out = True
            else:
                binding.fin_in = True
            binding.tcp = (
                TcpState.CLOSED if binding.fin_in and binding.fin_out else TcpState.CLOSING
            )
            return
        if binding.tcp == TcpState.OPENING and not outbound and flags & TCP_SYN and flags & TCP_ACK:
            binding.tcp = TcpState.ESTABLISHED
        elif binding.tcp == TcpState.CLOSED and flags & TCP_SYN and outbound:
            binding.tcp, binding.fin_in, binding.fin_out = TcpState.OPENING, False, False

    # -- the two directions -----------------------------------------------------------------------

    def outbound(
        self,
        b4: int,
        inner_ip: int,
        inner_port: int,
        protocol: int,
        *,
        now: float,
        tcp_flags: int = 0,
    ) -> Binding:
        """The binding for a packet from a B4's host, made if needed; :class:`NoBinding` if none."""
        key = (b4, inner_ip, inner_port, protocol)
        binding = self._out.get(key)
        if binding is not None and binding.expires <= now:
            self._remove(binding)
            binding = None
        if binding is None:
            subscriber = self.subscriber_of(b4)
            port = self._free_port(subscriber, protocol, inner_port)
            binding = Binding(
                b4, inner_ip, inner_port, protocol, subscriber.public_ip, port, subscriber, now
            )
            self._out[key] = binding
            self._in[(protocol, subscriber.public_ip, port)] = binding
            subscriber.bound[protocol] = subscriber.bound.get(protocol, 0) + 1
        if protocol == TCP:
            self._track(binding, tcp_flags, outbound=True)
        self._refresh(binding, now)
        return binding

    def inbound(
        self, protocol: int, public_ip: int, public_port: int, *, now: float, tcp_flags: int = 0
    ) -> Binding | None:
        """The binding a packet from outside to ``public_ip:public_port`` belongs to, if any."""
        binding = self._in.get((protocol, public_ip, public_port))
        if binding is None:
            return None
        if binding.expires <= now:
            self._remove(binding)
            return None
        if protocol == TCP:
            self._track(binding, tcp_flags, outbound=False)
            self._refresh(binding, now)  # TCP state decides the timer, whichever way it moved
        return binding

    def existing(
        self, b4: int, inner_ip: int, inner_port: int, protocol: int, *, now: float
    ) -> Binding | None:
        """The live binding of an inner endpoint, without making one (for ICMP errors)."""
        binding = self._out.get((b4, inner_ip, inner_port, protocol))
        return binding if binding is not None and binding.expires > now else None

    def _free_port(self, subscriber: Subscriber, protocol: int, inner_port: int) -> int:
        """A free port of the subscriber's set: the inner port if it is one, else the next free."""
        ports = subscriber.ports
        if subscriber.bound.get(protocol, 0) >= ports.count:
            raise NoBinding("port_set_exhausted")
        ip = subscriber.public_ip
        preferred = ports.index_of(inner_port)
        if preferred is not None and (protocol, ip, inner_port) not in self._in:
            return inner_port
        start = subscriber.cursor.get(protocol, 0)
        for step in range(ports.count):
            index = (start + step) % ports.count
            port = ports.port_at(index)
            if (protocol, ip, port) not in self._in:
                subscriber.cursor[protocol] = (index + 1) % ports.count
                return port
        raise NoBinding("port_set_exhausted")  # pragma: no cover - bound counts say otherwise
