"""Batch reverse: a CSV of ``ip,port`` rows in, the same rows out with ``status,reason,subscriber``.

:func:`reverse_csv` streams: it reads whole lines in blocks of about 512 KiB and writes each block's
answers before reading the next, so memory stays flat whatever the size of the file.

Two paths, one result. A block whose lines are plain CSV records (no bare CR, quotes only around
whole cells and never around a line break: :func:`_fast_block`) takes the *fast path*: numpy
finds the lines and fields in the raw bytes, parses every dotted quad and port of the block at
once, asks :meth:`Mapper.reverse_many` once and builds the answer cells with array operations;
the echoed cells are the input bytes themselves. Fast blocks are answered by two worker threads
(numpy lets go of the GIL) and written in input order. Any other block takes the *slow path*:
the :mod:`csv` module (strict), record by record. Rows the fast path cannot vouch for (bad
addresses or ports, cells to neutralise or quoted without need, too few or too many fields) are
redone one by one with the slow path's own functions, so every message and every echoed cell has
one definition, and both paths write the same bytes for the same rows (``tests/test_batch.py``
checks it against a plain reference on random nasty CSV).

The output, row for row:

- the header: the input's columns, then ``status,reason,subscriber``; every data row, in order;
  empty lines are skipped; lines end with LF whatever the input used;
- the input cells as they were (CSV-quoted where they need it, missing trailing cells empty,
  bytes that are not UTF-8 passed through; a BOM is dropped);
- ``status``: ``match``, ``no_mapping``, ``not_deterministic``, or ``error`` for a row that is
  not a query: a bad ``ip`` or ``port``, an address that is never public, malformed CSV, more
  fields than the header (that row is kept whole in its first cell);
- ``reason``: the engine's reason, or for ``error`` what is wrong;
- ``subscriber``: the subscriber's canonical prefix for a ``match``.

Any cell that a spreadsheet would read as a formula (it starts with ``=``, ``+``, ``-``, ``@``,
their fullwidth forms, or a control character such as NUL, tab or CR, which spreadsheets skip) is
written with a leading ``'``, echoed input cells included.

Strict parsing: ``ip`` is a dotted quad as :func:`detnat.engine.addresses.parse_ipv4` accepts it
(no leading zeros, no spaces, ASCII digits); ``port`` is ``0`` or a decimal number without sign,
spaces or leading zeros, at most 65535.

One module at this size: the hand-tuned plan-file batch pipeline (reader, vectorised parse, engine,
formatter) whose stages share buffers and are measured as one (bench/bench_batch.py). The store
batch (:mod:`detnat.service.batch_lookups`) uses its cell rules, parsers and :func:`splice_rows`.
"""

from __future__ import annotations

import csv
import io
import os
import re
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import BinaryIO, TypeAlias

import numpy as np
import numpy.typing as npt
from numpy.lib.stride_tricks import as_strided

from detnat.engine import INVALID, MATCH, REASON_CODES, STATUS_CODES, Mapper
from detnat.engine.addresses import V4, V6, parse_address, parse_ipv4
from detnat.errors import InvalidInput
from detnat.subscriber_text import SubscriberTexts

BLOCK_BYTES = 512 << 10  # read size (cache-sized: faster than MiBs); cut at the last LF
MAX_LINE_BYTES = 16 << 20  # a line (or quoted record) longer than this is refused
MAX_BAD_ROWS = 1000  # kept in the report; bad_row_count counts them all
FLUSH_ROWS = 1 << 16  # slow path: answer and write this many records at a time

# The output word of each status code: the engine's statuses, "error" for a bad row (INVALID).
STATUSES = tuple("error" if status is None else status.value for status in STATUS_CODES)
ERROR = INVALID  # our status code of a bad row: the engine's INVALID, for the same reason
OUTPUT_COLUMNS = ("status", "reason", "subscriber")

_BOM = b"\xef\xbb\xbf"
# What a spreadsheet may run as a formula: = + - @, their fullwidth forms (Excel folds them), and
# any control character before them (NUL, tab, CR ...: spreadsheets skip those).
FORMULA_START = (
    "=", "+", "-", "@", "\uff1d", "\uff0b", "\uff0d", "\uff20", "\x7f",
    *map(chr, range(32)),
)  # fmt: skip
_NEEDS_QUOTES = frozenset(',"\r\n')

Ints: TypeAlias = npt.NDArray[np.int64]
Bools: TypeAlias = npt.NDArray[np.bool_]
Bytes: TypeAlias = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class BadRow:
    """A row answered ``error``: its first physical line (the header is line 1) and why."""

    line: int
    message: str


@dataclass
class BatchReport:
    """What one batch did: data rows, rows per status (statuses seen), the bad rows."""

    rows: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    bad_rows: list[BadRow] = field(default_factory=list)  # the first MAX_BAD_ROWS
    bad_row_count: int = 0


def reverse_csv(
    mapper: Mapper,
    source: BinaryIO,
    sink: BinaryIO,
    *,
    progress: Callable[[int], None] | None = None,
) -> BatchReport:
    """Answer every ``ip,port`` row of the CSV ``source`` into the CSV ``sink``.

    Raises :class:`InvalidInput` (``field='header'``) before writing anything when the header is
    missing, malformed, repeats a column name or lacks ``ip`` or ``port``; and (``field='batch'``)
    when a line runs on past ``MAX_LINE_BYTES``. ``progress`` is called after each block with the
    number of input bytes consumed so far.
    """
    return _Batch(mapper, sink, progress).run(source)


# -- cells --------------------------------------------------------------------------------------


def cell(text: str) -> str:
    """One output cell: formula starts neutralised, quoted when it holds , " CR or LF."""
    if text.startswith(FORMULA_START):
        text = "'" + text
    if not _NEEDS_QUOTES.isdisjoint(text):
        text = '"' + text.replace('"', '""') + '"'
    return text


_cell = cell


def _encode_row(cells: list[str]) -> bytes:
    return ",".join(map(_cell, cells)).encode("utf-8", "surrogateescape")


def read_header(reader: Iterator[list[str]], required: Sequence[str]) -> list[str]:
    """The header row (blank lines before it skipped): unique names, ``required`` all present."""
    wanted = ", ".join(required[:-1]) + f" and {required[-1]}"
    try:
        names: list[str] = []
        while not names:
            names = next(reader)
    except StopIteration:
        raise InvalidInput(
            f"empty file: need a header row with columns {wanted}", field="header"
        ) from None
    except csv.Error as exc:
        raise InvalidInput(f"malformed CSV header ({exc})", field="header") from None
    seen: set[str] = set()
    for name in names:
        if name in seen:
            raise InvalidInput(f"column {_shown(name)} appears twice", field="header")
        seen.add(name)
    missing = [name for name in required if name not in seen]
    if missing:
        raise InvalidInput(
            f"no column {', '.join(map(repr, missing))} (columns are "
            f"{', '.join(map(_shown, names))}; names are case-sensitive)",
            field="header",
        )
    return names


def _shown(text: str) -> str:
    """A value quoted for a message: repr (so control characters are escaped), cut at 40."""
    return repr(text[:40]) + ("..." if len(text) > 40 else "")


def parse_ip(text: str) -> int | str:
    """The address of an ``ip`` cell, or the message for a bad one."""
    try:
        return parse_ipv4(text)
    except InvalidInput:
        pass
    return f"bad ip {_shown(text)} ({_ip_problem(text)})"


def _ip_problem(text: str) -> str:
    if not text:
        return "empty"
    if ":" in text:
        try:
            family, value = parse_address(text)
        except InvalidInput:
            return "not an address"
        if family == V6 and value >> 32 == 0xFFFF:
            return f"IPv4-mapped; write {_dotted(value)}"
        if family == V6 and value >> 32 == 0x0064FF9B0000000000000000:
            return f"NAT64 well-known prefix; write {_dotted(value)}"
        return "IPv6; public addresses are IPv4"
    parts = text.split(".")
    if len(parts) != 4:
        return "want four decimal octets"
    for part in parts:
        if not part or len(part) > 3 or not (part.isascii() and part.isdigit()):
            return f"bad octet {_shown(part)}"
        if len(part) > 1 and part[0] == "0":
            return f"octet {part!r} has a leading zero"
        if int(part) > 255:
            return f"octet {part} is larger than 255"
    return "not a dotted quad"  # not reached: parse_ipv4 accepted everything else


def _dotted(value: int) -> str:
    return ".".join(str((value >> shift) & 255) for shift in (24, 16, 8, 0))


def parse_port(text: str) -> int | str:
    """The port of a ``port`` cell, or the message for a bad one."""
    if 0 < len(text) <= 5 and text.isascii() and text.isdigit():
        if len(text) > 1 and text[0] == "0":
            return f"bad port {_shown(text)} (leading zero)"
        port = int(text)
        if port <= 65535:
            return port
        return f"bad port {_shown(text)} (want 0-65535)"
    if not text:
        return "bad port '' (empty)"
    if text.isascii() and text.isdigit():
        return f"bad port {_shown(text)} (want 0-65535)"
    return f"bad port {_shown(text)} (not a decimal number)"


# -- vectorised parsing of the fast path ----------------------------------------------------------

FORMULA_BYTE = np.zeros(256, dtype=np.bool_)
FORMULA_BYTE[[ord(c) for c in "=+-@\x7f"]] = True
FORMULA_BYTE[:32] = True  # control characters (a fast block has CR only in CRLF: redone, harmless)
FORMULA_BYTE[10] = False  # LF ends the line
FORMULA_BYTE[0xEF] = True  # the first byte of the fullwidth forms (and of a few more): redone
FORMULA_GATE = re.compile(rb"[=+\-@\x00-\x09\x0b-\x1f\x7f\xef]")
_POWERS = np.array([1, 10, 100, 1000, 10000], dtype=np.int32)[:, None]
_BACK = np.arange(1, 6, dtype=np.int64)[:, None]


def parse_ipv4_many(text: Bytes, dots: Ints, fs: Ints, fe: Ints) -> tuple[Ints, Bools]:
    """Dotted quads in ``[fs, fe)`` of ``text``: (addresses, which are valid as parse_ipv4 says).

    ``dots`` are the sorted offsets of every dot of ``text``. A valid field is three dots and four
    octets of 1-3 ASCII digits around them, without leading zero, none above 255.
    """
    n = len(fs)
    count = len(dots)
    if count < 3 or n == 0:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.bool_)
    # The first three dots from the field's start (the last three of the text if there are fewer:
    # the first octet is then empty or negative and the row invalid). A fourth dot inside the
    # field would fall in the last octet, whose bytes must all be digits.
    first = np.minimum(np.searchsorted(dots, fs), count - 3)
    ends = np.empty((4, n), dtype=np.int64)
    ends[0] = dots[first]
    ends[1] = dots[first + 1]
    ends[2] = dots[first + 2]
    ends[3] = fe
    sizes = np.empty((4, n), dtype=np.int64)
    sizes[0] = ends[0] - fs
    np.subtract(ends[1:], ends[:3] + 1, out=sizes[1:])
    # A digit is 0-9, other bytes wrap above 9; offsets before the text are clipped to it.
    ones = (np.take(text, ends - 1, mode="clip") - 48).astype(np.int16)
    tens = (np.take(text, ends - 2, mode="clip") - 48).astype(np.int16)
    hundreds = (np.take(text, ends - 3, mode="clip") - 48).astype(np.int16)
    two = sizes >= 2
    three = sizes == 3
    good = (sizes >= 1) & (sizes <= 3) & (ones < 10)
    good &= (tens < 10) | ~two
    good &= (hundreds < 10) | ~three
    octets = ones + tens * 10 * two + hundreds * 100 * three
    good &= octets <= 255
    good &= ~((three & (hundreds == 0)) | ((sizes == 2) & (tens == 0)))  # leading zero
    values = octets.astype(np.int64)
    address = (values[0] << 24) | (values[1] << 16) | (values[2] << 8) | values[3]
    valid: Bools = np.all(good, axis=0)
    return address, valid


def parse_port_many(text: Bytes, fs: Ints, fe: Ints) -> tuple[Ints, Bools]:
    """Ports in ``[fs, fe)`` of ``text``: (values, which are valid as :func:`parse_port` says)."""
    size = fe - fs
    digits = (np.take(text, fe - _BACK, mode="clip") - 48).astype(np.int32)  # 5 x n, ones first
    used = size >= _BACK
    ok = (size >= 1) & (size <= 5) & ((digits < 10) | ~used).all(axis=0)
    value = (digits * _POWERS * used).sum(axis=0, dtype=np.int64)
    leading = np.take(text, fs, mode="clip") == 48  # fs is past the end only in junk rows
    ok &= (value <= 65535) & ~((size >= 2) & leading)
    return value, ok


# -- answers to bytes ---------------------------------------------------------------------------


class _Answers:
    """Writes reverse answers as the ``,status,reason,subscriber`` tail of each output line."""

    MATCH_PREFIX = b",match,,"

    def __init__(self, mapper: Mapper) -> None:
        self.mapper = mapper
        prefixes: list[bytes] = []
        for status in range(len(STATUSES)):
            for reason in range(8):
                text = STATUS_CODES[status] if status < len(STATUS_CODES) else None
                why = REASON_CODES[reason] if reason < len(REASON_CODES) else None
                name = STATUSES[status] if text is None else text.value
                prefixes.append(f",{name},{why.value if why else ''},".encode())
        self._runs = SubscriberTexts.of(mapper)
        widest = 18 if mapper.family == V4 else 43  # 255.255.255.255/32, an IPv6 /128 in full
        self.width = max(max(map(len, prefixes)) + 1, len(self.MATCH_PREFIX) + widest + 1)
        self.table = np.zeros((len(prefixes), self.width), dtype=np.uint8)
        self.lengths = np.zeros(len(prefixes), dtype=np.int64)
        for code, prefix in enumerate(prefixes):
            line = prefix if code == MATCH * 8 else prefix + b"\n"
            self.table[code, : len(line)] = np.frombuffer(line, dtype=np.uint8)
            self.lengths[code] = len(line)
        self._texts: dict[int, bytes] = {}

    def tails(
        self, status: npt.NDArray[np.uint8], reason: npt.NDArray[np.uint8], sub: Ints
    ) -> tuple[Bytes, Ints]:
        """(each row's tail, left-aligned and zero-padded; the tails' lengths)."""
        code = status.astype(np.intp) * 8 + reason
        rows = self.table[code]
        lengths = self.lengths[code]
        matches = np.flatnonzero(status == MATCH)
        if len(matches):
            text, size = self._subscribers(sub[matches])
            start = len(self.MATCH_PREFIX)
            rows[matches, start : start + text.shape[1]] = text
            end = start + size
            rows[matches, end] = ord("\n")
            lengths[matches] = end + 1
        return rows, lengths

    def _subscribers(self, index: Ints) -> tuple[Bytes, Ints]:
        if self._runs is not None:
            return self._runs.texts(index)
        texts = [self._text(i) for i in index.tolist()]
        width = max(map(len, texts))
        matrix = np.array(texts, dtype=f"S{width}").view(np.uint8).reshape(len(texts), width)
        return matrix, np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))

    def _text(self, index: int) -> bytes:
        text = self._texts.get(index)
        if text is None:
            if len(self._texts) >= 1 << 16:
                self._texts.clear()
            text = self._texts[index] = str(self.mapper.subscriber_at(index)).encode()
        return text


# -- input ----------------------------------------------------------------------------------------


class _Source:
    """The input in blocks of whole lines; the BOM dropped, a last line without LF given one."""

    def __init__(self, stream: BinaryIO, block_bytes: int) -> None:
        self._stream = stream
        self._block_bytes = block_bytes
        self._rest = b""
        self._read = 0
        self._started = False
        self._eof = False

    @property
    def consumed(self) -> int:
        return self._read - len(self._rest)

    def _more(self) -> bytes:
        data = self._stream.read(self._block_bytes)
        if not data:
            self._eof = True
            return b""
        self._read += len(data)
        return data

    def block(self) -> bytes | None:
        buf = self._rest
        self._rest = b""
        if not self._started:
            while len(buf) < len(_BOM) and not self._eof:
                buf += self._more()
            if buf.startswith(_BOM):
                buf = buf[len(_BOM) :]
            self._started = True
        while True:
            cut = buf.rfind(b"\n")
            if cut >= 0 and (cut == len(buf) - 1 or not self._eof):
                self._rest = buf[cut + 1 :]
                return buf[: cut + 1]
            if self._eof:
                return buf + b"\n" if buf else None
            if len(buf) > MAX_LINE_BYTES:
                raise InvalidInput(
                    f"no line break in {MAX_LINE_BYTES} bytes after byte {self.consumed}",
                    field="batch",
                )
            buf += self._more()


class _Lines:
    """Physical lines for the csv module: the rest of the current block, then further blocks."""

    def __init__(self, source: _Source) -> None:
        self.source = source
        self.block = b""
        self.pos = 0
        self.count = 0  # physical lines handed out so far
        self.record: list[str] = []  # the lines of the record being read
        self.record_bytes = 0

    def load(self, block: bytes) -> None:
        self.block, self.pos = block, 0

    def at_end(self) -> bool:
        return self.pos >= len(self.block)

    def rest(self) -> bytes:
        rest = self.block[self.pos :]
        self.block, self.pos = b"", 0
        return rest

    def start_record(self) -> None:
        self.record = []
        self.record_bytes = 0

    def __iter__(self) -> Iterator[str]:
        while True:
            if self.pos >= len(self.block):
                block = self.source.block()
                if block is None:
                    return
                self.block, self.pos = block, 0
            end = self.block.index(b"\n", self.pos) + 1
            self.record_bytes += end - self.pos
            if self.record_bytes > MAX_LINE_BYTES:
                raise InvalidInput(
                    f"line {self.count + 1 - len(self.record)}: a record runs on past "
                    f"{MAX_LINE_BYTES} bytes (a quote never closed?)",
                    field="batch",
                )
            line = self.block[self.pos : end].decode("utf-8", "surrogateescape")
            self.pos = end
            self.count += 1
            self.record.append(line)
            yield line


def _fast_block(block: bytes) -> bool:
    """Whether the lines and fields of a block are where its bytes say, for the fast path.

    Every CR must be one of a CRLF, and quotes, if any, must be RFC 4180 quoted fields that hold
    no line break: a field's quote opens at its start, closes at its end, and quotes inside come
    doubled. The quotes are then the 1st, 3rd ... (opening) and 2nd, 4th ... (closing) of the
    block; an opening quote follows a separator, the start, or the closing quote just before it
    (a doubled quote); a closing one is followed by a separator, CR, or the opening quote just
    after it. A block that is not so (malformed or multi-line records) goes to the csv module.
    """
    if b"\r" in block and block.count(b"\r") != block.count(b"\r\n"):
        return False
    if b'"' not in block:
        return True
    text = np.frombuffer(block, dtype=np.uint8)
    quotes = np.flatnonzero(text == 34)
    if len(quotes) % 2:
        return False
    opening, closing = quotes[0::2], quotes[1::2]
    before = np.take(text, opening - 1, mode="clip")
    after = text[np.minimum(closing + 1, len(text) - 1)]
    doubled = np.zeros(len(opening), dtype=np.bool_)
    doubled[1:] = opening[1:] == closing[:-1] + 1
    open_ok = (opening == 0) | (before == 44) | (before == 10) | doubled
    close_ok = (after == 44) | (after == 10) | (after == 13)
    close_ok[:-1] |= doubled[1:]
    if not (open_ok.all() and close_ok.all()):
        return False
    breaks = np.flatnonzero(text == 10)
    return bool((np.searchsorted(breaks, opening) == np.searchsorted(breaks, closing)).all())


# -- the batch ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Done:
    """A run of rows answered: the output bytes, and what :meth:`_Batch._deliver` counts."""

    output: bytes | memoryview
    lines: int  # physical lines of a fast block; 0 for a slow run, whose line_no are absolute
    line_no: Ints  # of each row, from the block's first line (0) in a fast block
    status: npt.NDArray[np.uint8]
    errors: dict[int, str]  # row -> message


class _Batch:
    def __init__(
        self,
        mapper: Mapper,
        sink: BinaryIO,
        progress: Callable[[int], None] | None,
        *,
        block_bytes: int = BLOCK_BYTES,
        fast: bool = True,
        threads: int | None = None,
    ) -> None:
        self.mapper = mapper
        self.sink = sink
        self.progress = progress
        self.block_bytes = block_bytes
        self.fast = fast
        self.threads = cpus() if threads is None else threads
        self.answers = _Answers(mapper)
        self.report = BatchReport()
        self.status_counts = np.zeros(len(STATUSES), dtype=np.int64)
        self.columns = 0
        self.ip_column = 0
        self.port_column = 0
        self._refusals: dict[int, str] = {}
        self.lines = _Lines(_Source(io.BytesIO(), 1))  # replaced in run()

    def run(self, stream: BinaryIO) -> BatchReport:
        source = _Source(stream, self.block_bytes)
        lines = self.lines = _Lines(source)
        self._header(lines)
        # Fast blocks are answered by worker threads (numpy lets go of the GIL in its loops),
        # and written here in input order; a slow block waits for those before it.
        pending: deque[tuple[Future[_Done], int]] = deque()
        pool: ThreadPoolExecutor | None = None
        try:
            while True:
                block = lines.rest()
                if not block:
                    block = source.block() or b""
                    if not block:
                        break
                if self.fast and _fast_block(block):
                    if self.threads < 2:
                        self._deliver(self._fast(block), source.consumed)
                        continue
                    if pool is None:
                        pool = ThreadPoolExecutor(self.threads, thread_name_prefix="detnat-batch")
                    pending.append((pool.submit(self._fast, block), source.consumed))
                    while len(pending) > self.threads:
                        self._deliver_next(pending)
                else:
                    while pending:
                        self._deliver_next(pending)
                    self._slow(block, lines)
                    self._progress(source.consumed - (len(lines.block) - lines.pos))
            while pending:
                self._deliver_next(pending)
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        report = self.report
        report.counts = {
            name: int(count)
            for name, count in zip(STATUSES, self.status_counts, strict=True)
            if count
        }
        return report

    def _deliver_next(self, pending: deque[tuple[Future[_Done], int]]) -> None:
        future, consumed = pending.popleft()
        self._deliver(future.result(), consumed)

    def _deliver(self, done: _Done, consumed: int | None) -> None:
        """Write an answered run of rows and count it; runs are delivered in input order."""
        first_line = self.lines.count + 1 if done.lines else 0  # slow runs number their own
        self.lines.count += done.lines
        self._write(done.output)
        report = self.report
        report.rows += len(done.status)
        self.status_counts += np.bincount(done.status, minlength=len(STATUSES))[: len(STATUSES)]
        if done.errors:
            report.bad_row_count += len(done.errors)
            room = MAX_BAD_ROWS - len(report.bad_rows)
            for i in sorted(done.errors)[: max(room, 0)]:
                report.bad_rows.append(BadRow(first_line + int(done.line_no[i]), done.errors[i]))
        if consumed is not None:
            self._progress(consumed)

    def _write(self, data: bytes | memoryview) -> None:
        """All of ``data``, also to an unbuffered sink that takes a part at a time."""
        view = memoryview(data)
        while view:
            written = self.sink.write(view)
            if written is None or written >= len(view):  # None: a sink that does not count
                return
            view = view[written:]

    def _progress(self, consumed: int) -> None:
        if self.progress is not None:
            self.progress(consumed)

    # -- header -----------------------------------------------------------------------------------

    def _header(self, lines: _Lines) -> None:
        block = lines.source.block()
        if block is None:
            raise InvalidInput(
                "empty file: need a header row with columns ip and port", field="header"
            )
        lines.load(block)
        names = read_header(csv.reader(iter(lines), strict=True), ("ip", "port"))
        self.columns = len(names)
        self.ip_column = names.index("ip")
        self.port_column = names.index("port")
        self._write(_encode_row([*names, *OUTPUT_COLUMNS]) + b"\n")

    # -- one row, the definition both paths share -------------------------------------------------

    def _row(self, cells: list[str], raw: str | None = None) -> tuple[bytes, int, int, str | None]:
        """(echoed cells, ip or -1, port or -1, error message or None) of one record."""
        if len(cells) > self.columns:
            return self._malformed(
                ",".join(cells) if raw is None else raw,
                f"{len(cells)} fields, the header has {self.columns} "
                "(row kept whole in the first column)",
            )
        if len(cells) < self.columns:
            cells = cells + [""] * (self.columns - len(cells))
        ip = parse_ip(cells[self.ip_column])
        port = parse_port(cells[self.port_column])
        problems = [p for p in (ip, port) if isinstance(p, str)]
        echo = _encode_row(cells)
        if problems:
            return echo, -1, -1, "; ".join(problems)
        assert isinstance(ip, int) and isinstance(port, int)
        return echo, ip, port, None

    def _malformed(self, raw: str, message: str) -> tuple[bytes, int, int, str | None]:
        return _encode_row([raw] + [""] * (self.columns - 1)), -1, -1, message

    def _refusal(self, ip: int, port: int) -> str:
        """Why the engine refuses a row that ``reverse_many`` marked INVALID."""
        message = self._refusals.get(ip)
        if message is None:
            try:
                self.mapper.reverse(ip, port)
                message = "refused by the engine"
            except InvalidInput as exc:
                message = exc.message
            if len(self._refusals) < 4096:
                self._refusals[ip] = message
        return message

    # -- answering a run of rows ------------------------------------------------------------------

    def _answer(
        self, ip: Ints, port: Ints, errors: dict[int, str]
    ) -> tuple[Bytes, Ints, npt.NDArray[np.uint8]]:
        """Answer rows (``ip`` -1 where ``errors`` has a message): (tails, lengths, statuses).

        The tails are :meth:`_Answers.tails`; rows that the engine refuses get their message
        added to ``errors``, and every row in ``errors`` is to be written with :func:`error_tail`.
        """
        n = len(ip)
        status = np.full(n, ERROR, dtype=np.uint8)
        reason = np.zeros(n, dtype=np.uint8)
        subscriber = np.full(n, -1, dtype=np.int64)
        query = ip >= 0
        if query.all():
            answers = self.mapper.reverse_many(ip, port)
            status, reason, subscriber = answers.status, answers.reason, answers.subscriber
        elif query.any():
            answers = self.mapper.reverse_many(ip[query], port[query])
            status[query] = answers.status
            reason[query] = answers.reason
            subscriber[query] = answers.subscriber
        for i in np.flatnonzero(query & (status == INVALID)).tolist():
            errors[i] = self._refusal(int(ip[i]), int(port[i]))
        tails, lengths = self.answers.tails(status, reason, subscriber)
        return tails, lengths, status

    # -- fast path --------------------------------------------------------------------------------

    def _fast(self, block: bytes) -> _Done:
        """Answer a fast block; runs in worker threads, so it leaves ``self`` as it is."""
        text = np.frombuffer(block, dtype=np.uint8)
        separators = np.flatnonzero((text == 44) | (text == 10))
        quotes = np.flatnonzero(text == 34) if b'"' in block else None
        if quotes is not None:  # commas between a pair of quotes are text (no LF is, see above)
            pair = np.searchsorted(quotes, separators)
            text_commas = separators[pair % 2 == 1]
            separators = separators[pair % 2 == 0]
        at_break = text[separators] == 10
        break_at = np.flatnonzero(at_break)  # each line break's place among the separators
        breaks = separators[break_at]
        n_lines = len(breaks)
        starts = np.empty(n_lines, dtype=np.int64)
        starts[0] = 0
        starts[1:] = breaks[:-1] + 1
        ends = breaks.copy()
        crlf = b"\r" in block
        if crlf:  # in a fast block every CR is one of a CRLF (negative offsets wrap to the LF)
            ends -= (text[breaks - 1] == 13) & (breaks > starts)
        line_no = np.arange(n_lines, dtype=np.int64)  # counted from the block's first line
        fields = np.diff(break_at, prepend=-1)
        # Rows to redo in Python: a cell to neutralise, or quoted when it need not be.
        redo = np.zeros(n_lines, dtype=np.bool_)
        if FORMULA_GATE.search(block):
            redo = FORMULA_BYTE[text[starts]]
            after = FORMULA_BYTE[text[np.minimum(separators + 1, len(text) - 1)]] & ~at_break
            redo[np.searchsorted(break_at, np.flatnonzero(after))] = True
        if quotes is not None:
            # A quoted cell is written back as it came only if it needs its quotes (it holds a
            # comma or a doubled quote) and does not start like a formula.
            opening, closing = quotes[0::2], quotes[1::2]
            doubled = np.zeros(len(opening), dtype=np.bool_)
            doubled[1:] = opening[1:] == closing[:-1] + 1
            cell = np.cumsum(~doubled) - 1  # the cell of each pair of quotes
            needed = np.zeros(cell[-1] + 1, dtype=np.bool_)
            needed[cell[1:][doubled[1:]]] = True
            needed[cell[np.searchsorted(quotes, text_commas) // 2]] = True
            first = opening[~doubled]
            needed &= ~FORMULA_BYTE[text[first + 1]]
            redo[np.searchsorted(breaks, first[~needed])] = True
        filled = ends > starts
        if not filled.all():  # empty lines: no row, no output
            keep = np.flatnonzero(filled)
            starts, ends, line_no = starts[keep], ends[keep], line_no[keep]
            break_at, fields, redo = break_at[keep], fields[keep], redo[keep]
        n = len(starts)
        if n == 0:
            return _Done(b"", n_lines, line_no, np.zeros(0, dtype=np.uint8), {})

        columns = self.columns
        shape_ok = fields == columns
        first_comma = break_at - (columns - 1)  # among the separators, when the shape is right

        def bounds(column: int) -> tuple[Ints, Ints]:
            fs = starts if column == 0 else separators[np.maximum(first_comma + column - 1, 0)] + 1
            fe = ends if column == columns - 1 else separators[np.maximum(first_comma + column, 0)]
            return fs, fe

        dots = np.flatnonzero(text == 46)  # a quoted ip or port fails here and is redone
        ip, ip_ok = parse_ipv4_many(text, dots, *bounds(self.ip_column))
        port, port_ok = parse_port_many(text, *bounds(self.port_column))
        good = shape_ok & ip_ok & port_ok
        ip[~good] = -1
        echoes: dict[int, bytes] = {}
        errors: dict[int, str] = {}
        for i in np.flatnonzero(~good | redo).tolist():
            line = block[starts[i] : ends[i]].decode("utf-8", "surrogateescape")
            cells = next(csv.reader((line,), strict=True)) if '"' in line else line.split(",")
            echoes[i], ip[i], port[i], error = self._row(cells, line)
            if error is not None:
                errors[i] = error
        tails, tail_lengths, status = self._answer(ip, port, errors)

        replaced = {
            i: (
                echoes.get(i),
                error_tail(errors[i]) if i in errors else tails[i, : tail_lengths[i]].tobytes(),
            )
            for i in echoes.keys() | errors.keys()
        }
        out = splice_rows(block, text, starts, ends, tails, tail_lengths, replaced, crlf=crlf)
        return _Done(out, n_lines, line_no, status, errors)

    # -- slow path --------------------------------------------------------------------------------

    def _slow(self, block: bytes, lines: _Lines) -> None:
        lines.load(block)
        reader = csv.reader(iter(lines), strict=True)
        line_no: list[int] = []
        echo: list[bytes] = []
        ips: list[int] = []
        ports: list[int] = []
        errors: dict[int, str] = {}
        while not lines.at_end():
            first = lines.count + 1
            lines.start_record()
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                row = self._malformed(_raw(lines.record), f"malformed CSV ({exc})")
            else:
                if not cells:
                    continue  # an empty line
                row = self._row(cells, _raw(lines.record))
            if row[3] is not None:
                errors[len(echo)] = row[3]
            line_no.append(first)
            echo.append(row[0])
            ips.append(row[1])
            ports.append(row[2])
            if len(echo) >= FLUSH_ROWS:
                self._flush(line_no, echo, ips, ports, errors)
        self._flush(line_no, echo, ips, ports, errors)

    def _flush(
        self,
        line_no: list[int],
        echo: list[bytes],
        ips: list[int],
        ports: list[int],
        errors: dict[int, str],
    ) -> None:
        n = len(echo)
        if n:
            tails, _, status = self._answer(
                np.array(ips, dtype=np.int64), np.array(ports, dtype=np.int64), errors
            )
            out: list[bytes] = [b""] * (2 * n)
            out[0::2] = echo
            out[1::2] = tails.view(f"S{tails.shape[1]}").reshape(-1).tolist()
            for i, message in errors.items():
                out[2 * i + 1] = error_tail(message)
            done = _Done(b"".join(out), 0, np.array(line_no, dtype=np.int64), status, dict(errors))
            self._deliver(done, None)
        for buffer in (line_no, echo, ips, ports):
            buffer.clear()
        errors.clear()


def splice_rows(
    block: bytes,
    text: Bytes,
    starts: Ints,
    ends: Ints,
    tails: Bytes,
    tail_lengths: Ints,
    replaced: dict[int, tuple[bytes | None, bytes]],
    *,
    crlf: bool = False,
) -> bytes | memoryview:
    """Output lines: row ``i`` is its input bytes ``block[starts[i]:ends[i]]`` then its tail
    (``tails[i, :tail_lengths[i]]``: left-aligned, zero-padded, no zero byte inside), assembled
    by numpy; a row in ``replaced`` is written from Python bytes (``(echo, tail)``; echo None: its
    input bytes), spliced in its place. ``text`` is ``block`` as bytes (it may run on past it);
    a line's bytes hold no LF, and no CR either when ``crlf``.

    Each row is laid out in one record of a grid (its line, then its tail, each padded to the
    widest of the block) and the grid is read out without the padding: one pass over a few
    bytes per row more than the output. A block with a line far wider than the others (a grid
    mostly padding) is assembled byte by byte instead (:func:`_splice_by_bytes`).
    """
    n = len(starts)
    special = sorted(replaced)
    content_lengths = ends - starts
    if special:
        content_lengths[special] = 0
        tail_lengths[special] = 0
        tails[special] = 0
    widest = int(content_lengths.max(initial=0))
    tail_width = int(tail_lengths.max(initial=0))
    if n * (widest + tail_width) > 2 * (int(content_lengths.sum()) + int(tail_lengths.sum())) + 64:
        out = _splice_by_bytes(
            text, len(block), starts, ends, content_lengths, tails, tail_lengths, special, crlf
        )
    else:
        out = _splice_by_records(text, starts, content_lengths, tails, widest, tail_width)
    if not special:
        return out
    row_ends = np.cumsum(content_lengths + tail_lengths)
    parts: list[bytes | memoryview] = []
    done = 0
    for i in special:
        at = int(row_ends[i])
        echo, tail = replaced[i]
        parts += (out[done:at], block[starts[i] : ends[i]] if echo is None else echo, tail)
        done = at
    parts.append(out[done:])
    return b"".join(parts)


def _splice_by_records(
    text: Bytes, starts: Ints, lengths: Ints, tails: Bytes, widest: int, tail_width: int
) -> memoryview:
    """Rows of at most ``widest`` bytes of line and ``tail_width`` of tail, through a grid."""
    n = len(starts)
    if n and int(starts.max()) + widest > len(text):  # windows must not run past the bytes
        text = np.concatenate((text, np.zeros(widest, dtype=np.uint8)))
    grid = np.empty((n, widest + tail_width), dtype=np.uint8)
    windows = as_strided(text, (max(len(text) - widest + 1, 0), widest), (text.strides[0],) * 2)
    grid[:, :widest] = windows[starts]
    grid[:, widest:] = tails[:, :tail_width]
    keep = np.empty(grid.shape, dtype=np.bool_)
    first_of = np.arange(widest)[None, :] < np.arange(widest + 1)[:, None]  # row L: L Trues
    keep[:, :widest] = first_of[lengths]
    np.not_equal(tails[:, :tail_width], 0, out=keep[:, widest:])
    return grid[keep].data


def _splice_by_bytes(
    text: Bytes,
    size: int,
    starts: Ints,
    ends: Ints,
    content_lengths: Ints,
    tails: Bytes,
    tail_lengths: Ints,
    special: list[int],
    crlf: bool,
) -> memoryview:
    """:func:`_splice_by_records` byte by byte: every byte of the block but the line breaks
    (and the lines of ``special``) is a line's."""
    n = len(starts)
    text = text[:size]
    content = (text != 10) & (text != 13) if crlf else text != 10
    for i in special:
        content[starts[i] : ends[i]] = False
    pieces = np.empty(2 * n, dtype=np.int64)
    pieces[0::2] = content_lengths
    pieces[1::2] = tail_lengths
    from_input = np.repeat(np.tile(np.array([True, False]), n), pieces)
    out = np.empty(len(from_input), dtype=np.uint8)
    out[from_input] = text[content]
    out[~from_input] = tails[tails != 0]
    return out.data


def cpus() -> int:
    """Worker threads for fast blocks: the CPUs this process may run on, at most 2.

    Beyond 2 the writing thread is the bottleneck and memory grows for nothing.
    """
    try:
        count = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        count = os.cpu_count() or 1
    return min(count, 2)


def error_tail(message: str) -> bytes:
    """The ``,error,MESSAGE,`` end of a bad row's line, with its line break."""
    return b",error," + _cell(message).encode("utf-8", "surrogateescape") + b",\n"


def _raw(record: list[str]) -> str:
    """A record's text as it stood in the file, without its final line break."""
    text = "".join(record)
    return text[:-2] if text.endswith("\r\n") else text[:-1]


__all__ = [
    "BadRow",
    "BatchReport",
    "cell",
    "error_tail",
    "parse_ip",
    "parse_port",
    "reverse_csv",
    "splice_rows",
]
