"""Reassembly of fragmented packets (IPv4 RFC 791, IPv6 RFC 8200 section 4.5), bounded in memory.

RFC 6333 section 5.3: the tunnel exit (AFTR or B4) MUST reassemble the IPv6 packets the entry
fragmented; a NAT must also reassemble IPv4 fragments to find the ports of all but the first
(RFC 4787 REQ-14). :class:`Reassembler` collects byte ranges per key until one packet is whole,
drops overlapping fragments (RFC 5722), and forgets incomplete packets after ``timeout`` seconds.

>>> r = Reassembler(timeout=60.0)
>>> r.add("k", 8, b"world!!!", more=False, now=0.0) is None
True
>>> r.add("k", 0, b"hello,  ", more=True, now=1.0)
b'hello,  world!!!'
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable
from dataclasses import dataclass, field

MAX_PACKET = 65535 + 40  # an IPv6 jumbogram is not supported
MAX_PENDING = 4096  # packets being reassembled at once; the oldest is dropped beyond it


@dataclass
class _Pending:
    started: float
    pieces: dict[int, bytes] = field(default_factory=dict)  # offset -> data
    total: int | None = None  # known once the last fragment came


class Reassembler:
    def __init__(self, *, timeout: float, max_pending: int = MAX_PENDING) -> None:
        self.timeout = timeout
        self.max_pending = max_pending
        self._pending: OrderedDict[Hashable, _Pending] = OrderedDict()
        self.dropped = 0

    def __len__(self) -> int:
        return len(self._pending)

    def add(
        self, key: Hashable, offset: int, data: bytes, *, more: bool, now: float
    ) -> bytes | None:
        """Add one fragment; the whole payload once every byte is there, else None."""
        self.expire(now)
        pending = self._pending.get(key)
        if pending is None:
            while len(self._pending) >= self.max_pending:
                self._pending.popitem(last=False)
                self.dropped += 1
            pending = self._pending[key] = _Pending(now)
        end = offset + len(data)
        if (
            end > MAX_PACKET
            or (more and len(data) % 8)
            or (pending.total is not None and end > pending.total)
        ):
            self._drop(key)
            return None
        for start, piece in pending.pieces.items():
            if start < end and offset < start + len(piece) and (start, piece) != (offset, data):
                self._drop(key)  # overlapping fragments: RFC 5722 says drop the whole packet
                return None
        pending.pieces[offset] = data
        if not more:
            if pending.total is not None and pending.total != end:
                self._drop(key)
                return None
            pending.total = end
        if pending.total is None:
            return None
        have = 0
        for start in sorted(pending.pieces):
            if start != have:
                return None
            have += len(pending.pieces[start])
        if have != pending.total:
            return None
        del self._pending[key]
        return b"".join(pending.pieces[s] for s in sorted(pending.pieces))

    def expire(self, now: float) -> None:
        while self._pending:
            key, oldest = next(iter(self._pending.items()))
            if now - oldest.started < self.timeout:
                break
            self._drop(key)

    def _drop(self, key: Hashable) -> None:
        if self._pending.pop(key, None) is not None:
            self.dropped += 1
