"""What a subscriber directory says, in one shape for every source format.

A parser turns the records of its files into :class:`Interval` s — an inside key (an IPv6 prefix
such as ``2001:db8:104d:c900::/56``, a B4 ``/128`` or an IPv4 ``/32``) held by one ``account``
over ``[start, end)`` — and :class:`Refused` records (file, line, reason; never guessed). Every
interval keeps the records it was made from (:class:`SourceLine`: file, line number, SHA-256 and
the record's text as read), so an answer can show them and an evidence file re-derive them.

Instants are integers: microseconds since the Unix epoch, UTC. ``end`` is ``None`` while the
directory has seen no end (a session whose Stop was lost, a lease still running)::

    >>> iv = Interval("2001:db8:1:100::/56", "alice", 1_000_000, None, "open", ())
    >>> iv.covers(5_000_000)
    True
"""

from __future__ import annotations

import contextlib
import functools
import gc
import hashlib
import ipaddress
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import NamedTuple, ParamSpec, TypeVar

from detnat.engine.addresses import Prefix
from detnat.engine.addresses import reused as reused_key

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# How an interval ended (or why it has no end): the words an answer shows.
CLOSED = (
    "stop",  # RADIUS Stop for the session
    "nas-reboot",  # Accounting-On/Off of the session's NAS
    "takeover",  # a later Start for the same key by another session (the Stop was lost)
    "open",  # no end seen: the Stop may have been lost
    "unheard",  # not heard from for longer than the declared interim period (RADIUS --interim)
    "expired",  # a lease's valid lifetime ran out
    "released",  # a lease released, reclaimed, or deleted (valid_lifetime 0)
    "given",  # the ``csv`` format: the end as given (or none)
)


class SourceLine(NamedTuple):
    """A record an interval was made from: file name as given, 1-based first line, the SHA-256
    of its text (UTF-8, lines joined by ``\\n``, no trailing newline) and that text."""

    file: str
    line: int
    sha256: str
    text: str

    @classmethod
    def of(cls, file: str, line: int, text: str) -> SourceLine:
        return cls(file, line, hashlib.sha256(text.encode("utf-8", "replace")).hexdigest(), text)

    def to_json(self) -> dict[str, object]:
        return {"file": self.file, "line": self.line, "sha256": self.sha256, "text": self.text}


class Interval(NamedTuple):
    """``account`` held ``subscriber`` (canonical network text) over ``[start, end)``."""

    subscriber: str
    account: str
    start: int  # µs since the epoch, UTC
    end: int | None  # µs, exclusive; None: no end seen
    closed: str  # one of CLOSED
    sources: tuple[SourceLine, ...]
    realm: str | None = None  # the realm the ingest declared (``--realm``); None: none named

    def covers(self, at: int) -> bool:
        return self.start <= at and (self.end is None or at < self.end)


@dataclass(frozen=True, slots=True)
class Refused:
    """A record that could not be read, and why."""

    file: str
    line: int
    reason: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.reason}"


@dataclass
class Parsed:
    """What a parser read: the intervals, the refused records, how many records it read, and
    how many were duplicates of one already read (the same record twice, a repeated Start)."""

    intervals: list[Interval] = field(default_factory=list)
    refused: list[Refused] = field(default_factory=list)
    records: int = 0
    duplicates: int = 0


# A parser's stream (:func:`detnat.directory.stream`): intervals in batches of about BATCH, each
# final when given (the order and content :class:`Parsed` ``.intervals`` would hold); the
# counts and refused records of its :class:`Parsed` are complete once the stream is exhausted.
Batches = Iterator[list[Interval]]
BATCH = 2048

P = ParamSpec("P")
R = TypeVar("R")


@contextlib.contextmanager
def collector_pause() -> Iterator[None]:
    """The cyclic garbage collector paused while the block runs (the reference counts free
    everything else as usual). A parse allocates millions of small objects, none in a cycle,
    that live until it returns: each one would count towards collections that walk all of them
    again, a fifth to a half of a parse's time. The collector runs again once the block ends."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def collector_paused(parse: Callable[P, R]) -> Callable[P, R]:
    """``parse`` run under :func:`collector_pause`."""

    @functools.wraps(parse)
    def paused(*args: P.args, **kwargs: P.kwargs) -> R:
        with collector_pause():
            return parse(*args, **kwargs)

    return paused


def network_text(text: str) -> str:
    """The canonical text of an address or prefix (host bits refused): ``ValueError`` if not.

    The C library's ``inet_pton``/``inet_ntop`` (RFC 5952 text), not :mod:`ipaddress`: an
    ingest reads millions of them. ``audit verify`` reads the stored ones back through here too.
    A text already read is answered from :data:`_NETWORKS` (a session's records, a lease's rows
    and the rows of one subscriber name the same prefix again and again).

    >>> network_text("2001:DB8:0:0:1::/80"), network_text("192.0.2.7")
    ('2001:db8:0:0:1::/80', '192.0.2.7/32')
    """
    found = _NETWORKS.get(text)
    if found is None:
        found = _network_text(text)
        if len(_NETWORKS) >= 100_000:
            _NETWORKS.clear()
        _NETWORKS[text] = found
    return found


_NETWORKS: dict[str, str] = {}  # text as given -> canonical text (bounded above; no errors)


def _network_text(text: str) -> str:
    address, slash, length = text.strip().partition("/")
    if ":" in address:
        family, bits, host = socket.AF_INET6, 128, _HOST_BITS_6
    else:
        family, bits, host = socket.AF_INET, 32, _HOST_BITS_4
    try:
        packed = socket.inet_pton(family, address)
    except OSError:
        raise ValueError(f"{text.strip()!r} is not an IP address or prefix") from None
    if not slash:
        size = bits
    elif length.isascii() and length.isdigit() and len(length) <= 3:
        size = int(length)
        if size > bits:
            raise ValueError(f"{text.strip()!r}: a prefix length above {bits}")
    else:
        raise ValueError(f"{text.strip()!r}: the prefix length is not a number")
    if int.from_bytes(packed, "big") & host[size]:
        raise ValueError(f"{text.strip()!r} has host bits set")
    return f"{socket.inet_ntop(family, packed)}/{size}"


# prefix length -> the mask of its host bits
_HOST_BITS_6 = [(1 << (128 - n)) - 1 for n in range(129)]
_HOST_BITS_4 = [(1 << (32 - n)) - 1 for n in range(33)]


def reused(subscriber: str) -> bool:
    """Whether a subscriber key may name another line behind another NAT
    (:func:`detnat.engine.addresses.reused`): every IPv4 key, and IPv6 keys in (or covering
    part of) unique local, link-local, IPv4-mapped or local-use NAT64 space.

    >>> reused("100.64.0.10/32"), reused("2001:db8:104d:c900::/56"), reused("198.51.100.7/32")
    (True, False, True)
    >>> reused("::ffff:10.0.0.5/128"), reused("fd00:1::/64"), reused("::/0")
    (True, True, True)
    """
    if ":" not in subscriber:
        return True  # every IPv4 key (an answer's text or a row's, so not parsed: a lookup's path)
    net = ipaddress.ip_network(subscriber, strict=False)  # an answer's text, or a row's
    return reused_key(Prefix(net.version, int(net.network_address), net.prefixlen))
