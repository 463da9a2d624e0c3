"""Subscriber prefixes as text, many at once: what ``str(mapper.subscriber_at(i))`` writes.

The batch writes a subscriber's canonical prefix on every matched row; doing it per row in Python
is most of the batch's time for IPv6 plans. :class:`SubscriberTexts` makes the texts with numpy,
byte-identical to :meth:`Prefix.__str__` (dotted quads; RFC 5952 for IPv6: lowercase hex without
leading zeros, the first longest run of two or more zero hextets written ``::``, IPv4-mapped
addresses as ``::ffff:a.b.c.d``):

>>> from detnat.engine import compile_plan
>>> from detnat.planfile import plan_from_text
>>> mapper = compile_plan(plan_from_text('''
... algorithm: block
... inside: {prefixes: ["2001:db8:1000::/40"], subscriber_prefix_length: 56}
... outside: {prefixes: ["192.0.2.0/24"]}
... ports: {first: 1024, last: 65535}
... block: {ratio: 256, assignment: sequential}
... '''))
>>> rows, lengths = SubscriberTexts.of(mapper).texts(np.array([0, 1, 65535]))
>>> [bytes(row[:k]) for row, k in zip(rows, lengths)]
[b'2001:db8:1000::/56', b'2001:db8:1000:100::/56', b'2001:db8:10ff:ff00::/56']

Subscriber number -> prefix is affine within each of the plan's key runs (``Mapper.key_runs``),
so a text is a run's first network plus an offset, split into 16-bit pieces looked up in
precomputed tables of 8-byte words and packed left to right. Texts are only made this way when
the runs agree with :meth:`Mapper.subscriber_at` at every run boundary; otherwise (and for
numbers outside the runs) :meth:`SubscriberTexts.of` gives None and callers ask the engine.
"""

from __future__ import annotations

from functools import cache
from typing import TypeAlias

import numpy as np
import numpy.typing as npt

from detnat.engine import Mapper
from detnat.engine.addresses import V4, WIDTH

Ints: TypeAlias = npt.NDArray[np.int64]
Bytes: TypeAlias = npt.NDArray[np.uint8]
_Words: TypeAlias = npt.NDArray[np.uint64]

_MASK64 = (1 << 64) - 1


@cache
def _half_texts() -> tuple[_Words, _Words, _Words, _Words]:
    """ "a.b." and "c.d" for every 16-bit half of an address: 8-byte words and their bit lengths."""
    octets = [str(octet).encode() for octet in range(256)]
    text = np.array(octets, dtype="S8").view("<u8")
    bits = np.array([8 * len(t) for t in octets], dtype=np.uint64)
    half = np.arange(1 << 16)
    first, second = half >> 8, half & 255
    dot = np.uint64(ord("."))
    low = text[first] | (dot << bits[first]) | (text[second] << (bits[first] + np.uint64(8)))
    low_bits = bits[first] + np.uint64(8) + bits[second]
    return low | (dot << low_bits), low_bits + np.uint64(8), low, low_bits


def format_ipv4_many(addresses: Ints, tail: bytes) -> tuple[Bytes, Ints]:
    """Dotted quads followed by ``tail`` (at most 3 bytes): (24-byte zero-padded rows, lengths).

    Each text is put together in three little-endian 64-bit words: "a.b." (4-8 bytes), then
    "c.d" (3-7 bytes) shifted past it, then the tail. This leans on numpy's shifts by 64 bits
    or more giving 0 (C leaves them undefined; numpy defines them).
    """
    high_table, high_sizes, low_table, low_sizes = _half_texts()
    high_half = addresses >> 16
    low_half = addresses & 0xFFFF
    high = high_table[high_half]
    low = low_table[low_half]
    high_bits = high_sizes[high_half]
    tail_at = high_bits + low_sizes[low_half]  # 56-120
    end = np.frombuffer(tail.ljust(8, b"\0"), dtype="<u8")[0]
    sixty_four = np.uint64(64)
    words = np.empty((len(addresses), 3), dtype="<u8")
    words[:, 0] = high | (low << high_bits) | (end << tail_at)
    # Unsigned differences that go below zero wrap to huge shifts, which give 0.
    words[:, 1] = (
        (low >> (sixty_four - high_bits))
        | (end << (tail_at - sixty_four))
        | (end >> (sixty_four - tail_at))
    )
    words[:, 2] = end >> (np.uint64(128) - tail_at)
    lengths = (tail_at // np.uint64(8)).astype(np.int64) + len(tail)
    return words.view(np.uint8), lengths


def _word(text: bytes) -> np.uint64:
    return np.uint64(int.from_bytes(text.ljust(8, b"\0"), "little"))


@cache
def _hextet_texts() -> tuple[_Words, _Words, npt.NDArray[np.int8]]:
    """Every hextet in lowercase hex without leading zeros: with ":" after, without, lengths."""
    texts = [f"{h:x}".encode() for h in range(1 << 16)]
    bare = np.array(texts, dtype="S8").view("<u8")
    sizes = np.array([len(t) for t in texts], dtype=np.int8)
    colon = bare | (np.uint64(ord(":")) << (sizes.astype(np.uint64) * np.uint64(8)))
    return colon, bare, sizes


_SLOT = np.arange(8, dtype=np.int8)
_COLUMN = np.arange(8)


def format_ipv6_many(high: _Words, low: _Words, tail: bytes) -> tuple[Bytes, Ints]:
    """IPv6 addresses (upper and lower 64 bits) as RFC 5952 text followed by ``tail`` (at most 8
    bytes, e.g. ``b"/56"``): (zero-padded rows, lengths), as :func:`format_address` writes them.

    Each row is nine 8-byte slots, packed left to right: the eight hextets as ``hex:`` (the last
    without ``:``), the longest zero run's first slot replaced by ``:`` (``::`` at the start) and
    the rest of the run emptied; IPv4-mapped rows use ``::ffff:``, ``a.b.`` and ``c.d``; then
    the tail.
    """
    n = len(high)
    colon, bare, sizes = _hextet_texts()
    hextets = np.stack([high, low], axis=1).astype(">u8").view(">u2").reshape(n, 8).astype(np.intp)
    words = np.empty((n, 9), dtype="<u8")
    words[:, :7] = colon[hextets[:, :7]]
    words[:, 7] = bare[hextets[:, 7]]
    words[:, 8] = _word(tail)
    lengths = np.empty((n, 9), dtype=np.int8)
    lengths[:, :8] = sizes[hextets]
    lengths[:, :7] += 1
    lengths[:, 8] = len(tail)

    # Zero runs: run[:, i] is how many zero hextets start at i; the first longest one of two or
    # more is written "::" (argmax takes the first of equals, as RFC 5952 4.2.3 wants).
    zero = (hextets == 0).astype(np.int8)
    run = np.empty((n, 8), dtype=np.int8)
    run[:, 7] = zero[:, 7]
    for i in range(6, -1, -1):
        run[:, i] = zero[:, i] * (run[:, i + 1] + 1)
    start = run.argmax(axis=1)
    longest = run[np.arange(n), start]
    compressed = np.flatnonzero(longest >= 2)
    if len(compressed):
        first = start[compressed]
        inside = (first[:, None] <= _COLUMN) & ((first + longest[compressed])[:, None] > _COLUMN)
        lengths[compressed, :8] *= ~inside
        at_start = first == 0
        words[compressed, first] = np.where(at_start, _word(b"::"), _word(b":"))
        lengths[compressed, first] = np.where(at_start, 2, 1)

    mapped = np.flatnonzero((high == 0) & ((low >> np.uint64(32)) == 0xFFFF))
    if len(mapped):
        high_table, high_sizes, low_table, low_sizes = _half_texts()
        address = (low[mapped] & np.uint64(0xFFFFFFFF)).astype(np.int64)
        words[mapped, 0] = _word(b"::ffff:")
        words[mapped, 1] = high_table[address >> 16]
        words[mapped, 2] = low_table[address & 0xFFFF]
        lengths[mapped, 0] = 7
        lengths[mapped, 1] = (high_sizes[address >> 16] // np.uint64(8)).astype(np.int8)
        lengths[mapped, 2] = (low_sizes[address & 0xFFFF] // np.uint64(8)).astype(np.int8)
        lengths[mapped, 3:8] = 0

    # Pack: keep each slot's first `length` bytes, rows left-aligned in a zero-padded matrix.
    keep = lengths[:, :, None] > _SLOT
    text = words.view(np.uint8).reshape(n, 9, 8)[keep]
    row_lengths = lengths.sum(axis=1, dtype=np.int64)
    width = int(row_lengths.max()) if n else 1
    rows = np.zeros((n, width), dtype=np.uint8)
    row_starts = np.cumsum(row_lengths) - row_lengths
    at = np.arange(len(text), dtype=np.int64) + np.repeat(
        np.arange(n, dtype=np.int64) * width - row_starts, row_lengths
    )
    rows.reshape(-1)[at] = text
    return rows, row_lengths


PAGE_BITS = 10  # IPv6 texts are made and kept 1024 subscribers at a time
MAX_KEPT = 1 << 20  # subscribers whose IPv6 texts may be kept: 44 MiB of table at most
_IPV6_WIDTH = 43  # the widest IPv6 text: eight 4-digit hextets and "/128"


class SubscriberTexts:
    """The texts of subscriber numbers of one mapper, built from its key runs.

    IPv6 texts cost about 0.6 µs a row to make, ten times a dotted quad, while a batch names the
    same subscribers again and again; so for plans of up to :data:`MAX_KEPT` subscribers they are
    made a page of 1024 neighbours at a time, on first use, into a table indexed by subscriber
    number (zeroed memory that the system maps only when a page is written) and then just copied.
    Two threads may make the same page at once: they write the same bytes.
    """

    def __init__(self, mapper: Mapper, firsts: list[int], starts: Ints) -> None:
        self.family = mapper.family
        self.host_bits = WIDTH[mapper.family] - mapper.subscriber_prefix_length
        self.tail = f"/{mapper.subscriber_prefix_length}".encode()
        self.starts = starts
        networks = [first << self.host_bits for first in firsts]
        if self.family == V4:
            self.first_keys = np.array(firsts, dtype=np.int64)
        else:
            self.high = np.array([net >> 64 for net in networks], dtype=np.uint64)
            self.low = np.array([net & _MASK64 for net in networks], dtype=np.uint64)
            if mapper.subscriber_count <= MAX_KEPT:
                self._table = np.zeros((mapper.subscriber_count, _IPV6_WIDTH), dtype=np.uint8)
                self._lengths = np.zeros(mapper.subscriber_count, dtype=np.int64)
                pages = (mapper.subscriber_count + (1 << PAGE_BITS) - 1) >> PAGE_BITS
                self._made = np.zeros(pages, dtype=np.bool_)

    @classmethod
    def of(cls, mapper: Mapper) -> SubscriberTexts | None:
        """The mapper's texts, or None when its runs cannot be used (see the module docstring)."""
        runs = mapper.key_runs()
        if not runs:
            return None
        starts = np.array([run.start for run in runs], dtype=np.int64)
        if len(starts) > 1 and np.any(np.diff(starts) <= 0):
            return None
        firsts = [run.first for run in runs]
        host_bits = WIDTH[mapper.family] - mapper.subscriber_prefix_length
        probes = {0, mapper.subscriber_count - 1, *starts.tolist(), *(starts - 1).tolist()}
        for index in sorted(probes):
            if 0 <= index < mapper.subscriber_count:
                run = int(np.searchsorted(starts, index, side="right")) - 1
                network = (firsts[run] + index - int(starts[run])) << host_bits
                if mapper.subscriber_at(index).network != network:
                    return None
        return cls(mapper, firsts, starts)

    _table: Bytes | None = None
    _lengths: Ints
    _made: npt.NDArray[np.bool_]

    def texts(self, index: Ints) -> tuple[Bytes, Ints]:
        """(zero-padded rows, lengths) of the prefixes of subscriber numbers ``index``."""
        if self._table is None:
            return self._make(index)
        pages = index >> PAGE_BITS
        missing = np.flatnonzero(~self._made[pages])
        if len(missing):
            for page in np.unique(pages[missing]).tolist():
                first = page << PAGE_BITS
                numbers = np.arange(first, min(first + (1 << PAGE_BITS), len(self._lengths)))
                rows, lengths = self._make(numbers)
                self._table[numbers, : rows.shape[1]] = rows
                self._lengths[numbers] = lengths
                self._made[page] = True
        return np.take(self._table, index, axis=0), np.take(self._lengths, index)

    def _make(self, index: Ints) -> tuple[Bytes, Ints]:
        run = np.searchsorted(self.starts, index, side="right") - 1
        offset = index - self.starts[run]
        if self.family == V4:
            return format_ipv4_many((self.first_keys[run] + offset) << self.host_bits, self.tail)
        step = offset.astype(np.uint64)
        bits = self.host_bits
        if bits >= 64:
            add_high, add_low = step << np.uint64(bits - 64), np.zeros_like(step)
        elif bits == 0:
            add_high, add_low = np.zeros_like(step), step
        else:
            add_high, add_low = step >> np.uint64(64 - bits), step << np.uint64(bits)
        low = self.low[run] + add_low
        high = self.high[run] + add_high + (low < add_low)
        return format_ipv6_many(high, low, self.tail)


__all__ = ["SubscriberTexts", "format_ipv4_many", "format_ipv6_many"]
