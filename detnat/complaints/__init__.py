"""Complaints as they arrive, turned into questions: the readers of each format, and ``auto``.

:func:`read` takes one file (a mailbox, one mail, an XARF JSON document, an ACNS XML document, a
Shadowserver report or a mapped CSV) and yields one :class:`Complaint` or :class:`Unreadable` per
notice, in file order. A mailbox export mixes formats: with ``auto`` each message is read as what
it is (X-ARF 0.2, XARF JSON, ARF or ACNS, in that order of checks); with a named format a message
of another kind is :class:`Unreadable`, saying so. Readers are pure: bytes in, records out.

Formats: ``xarf`` (:mod:`.xarf`), ``arf`` (:mod:`.arf`), ``acns`` (:mod:`.acns`),
``shadowserver`` and ``csv`` (:mod:`.tables`).
"""

from __future__ import annotations

import csv
import email
import io
import multiprocessing
import re
from collections import deque
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from email.message import Message
from typing import IO, Protocol

from detnat import strictjson
from detnat.complaints import acns, arf, tables, xarf
from detnat.complaints.records import (
    SERVICE,
    SOURCE,
    Complaint,
    Record,
    Ref,
    Unreadable,
)
from detnat.errors import InvalidInput

FORMATS = ("auto", "xarf", "arf", "acns", "shadowserver", "csv")
MAIL_FORMATS = ("xarf", "arf", "acns")
MAX_MESSAGE_BYTES = 16 << 20  # a message larger than this is unreadable, not read whole
_HEADER_LINE = re.compile(rb"^[!-9;-~]+:[ \t]")  # an RFC 5322 field name then a colon


@dataclass(frozen=True)
class Options:
    """How to read: the format (``auto`` detects per file and per message), a CSV's column
    mapping and the zone of its naive times."""

    format: str = "auto"
    mapping: Mapping[str, str] | None = None
    tz: str | None = None
    workers: int = 1  # processes reading a mailbox's messages (the CLI uses every core)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise InvalidInput(
                f"unknown format {self.format[:20]!r}; formats are {', '.join(FORMATS)}",
                field="--format",
            )


class Readable(Protocol):
    def read(self, n: int = -1, /) -> bytes: ...


def read(stream: Readable, name: str, options: Options = Options()) -> Iterator[Record]:
    """Every complaint of one file, in order (see the module docstring)."""
    head = stream.read(8192)
    whole: IO[bytes] = io.BufferedReader(_Chained(head, stream))
    start = head.removeprefix(b"\xef\xbb\xbf").lstrip()
    fmt = options.format
    if fmt in ("shadowserver", "csv") or (fmt == "auto" and _is_csv(start)):
        yield from _table(whole, name, options)
    elif start.startswith(b"From "):
        if options.workers > 1:
            yield from _read_in_parallel(split_mbox(whole), name, fmt, options.workers)
        else:
            for number, message in enumerate(split_mbox(whole), 1):
                yield from_mail(message, Ref(name, message=number), fmt)
    else:
        data = whole.read(MAX_MESSAGE_BYTES + 1)
        if len(data) > MAX_MESSAGE_BYTES:
            yield Unreadable(Ref(name), None, f"larger than {MAX_MESSAGE_BYTES} bytes")
        elif start.startswith(b"{") and fmt in ("auto", "xarf"):
            yield xarf.from_json_text(data, Ref(name))
        elif start.startswith(b"<") and fmt in ("auto", "acns"):
            yield acns.from_text(data.decode("utf-8", "replace"), Ref(name))
        else:
            yield from_mail(data, Ref(name), fmt)


def _is_csv(start: bytes) -> bool:
    """A header row of comma-separated names: not a mailbox's ``From `` line, not a mail header,
    not JSON or XML."""
    first = start.split(b"\n", 1)[0]
    return (
        b"," in first
        and not first.startswith((b"From ", b"{", b"<"))
        and not _HEADER_LINE.match(first)
    )


def _table(whole: IO[bytes], name: str, options: Options) -> Iterator[Record]:
    text = io.TextIOWrapper(whole, encoding="utf-8-sig", errors="replace", newline="")
    if options.mapping is not None:
        yield from tables.mapped(text, name, options.mapping, tz=options.tz)
        return
    if options.format == "csv":
        raise InvalidInput("a CSV needs --map (ip=COLUMN,port=COLUMN,time=COLUMN)", field="--map")
    first = text.readline()
    header = next(csv.reader([first]), [])
    if not tables.is_shadowserver(header):
        raise InvalidInput(
            f"{name}: a CSV that is not a Shadowserver report (no timestamp and ip columns) "
            "needs --map ip=COLUMN,port=COLUMN,time=COLUMN",
            field="--map",
        )
    yield from tables.shadowserver(_prepend(first, text), name)


def _prepend(first: str, rest: io.TextIOWrapper) -> Iterator[str]:
    yield first
    yield from rest


def split_mbox(stream: Iterable[bytes]) -> Iterator[bytes]:
    """The messages of an mbox, without their ``From `` separator lines (the rule of
    :class:`mailbox.mbox`: every line that starts with ``From `` starts a message)."""
    lines: list[bytes] = []
    size = 0
    started = False
    for line in stream:
        if line.startswith(b"From "):
            if started:
                yield b"".join(lines) if size <= MAX_MESSAGE_BYTES else b""
            lines, size, started = [], 0, True
            continue
        size += len(line)
        if size <= MAX_MESSAGE_BYTES:
            lines.append(line)
    if started:
        yield b"".join(lines) if size <= MAX_MESSAGE_BYTES else b""


def from_mail(data: bytes, ref: Ref, fmt: str = "auto") -> Record:
    """One mail (or a bare document of headers) as the complaint it carries."""
    try:
        return _from_mail(data, ref, fmt)
    except RecursionError:  # the standard library's mail parser recurses once per MIME level
        return Unreadable(ref, None, "MIME parts nested too deeply to read")


def _from_mail(data: bytes, ref: Ref, fmt: str) -> Record:
    if not data.strip():
        return Unreadable(ref, None, f"an empty message (or one over {MAX_MESSAGE_BYTES} bytes)")
    if fmt not in ("auto", *MAIL_FORMATS):
        return Unreadable(ref, fmt, f"a mail, not a {fmt} file")
    message = email.message_from_bytes(data)
    want = MAIL_FORMATS if fmt == "auto" else (fmt,)
    if "xarf" in want and xarf.is_xarf_mail(message):
        return xarf.from_xarf_mail(message, ref)
    if "xarf" in want:
        found = _json_report(message, ref)
        if found is not None:
            return found
        if message.get("Source") and message.get("Report-Type"):  # an X-ARF YAML part alone
            return xarf.from_xarf_yaml(dict(message.items()), ref)
    if "arf" in want and arf.feedback_part(message) is not None:
        return arf.from_message(message, ref)
    if "acns" in want:
        for part in message.walk():
            if part.is_multipart():
                continue
            text = _text_of(part)
            if text is not None and acns.contains(text):
                return acns.from_text(text, ref)
    what = "ARF, X-ARF, XARF JSON or ACNS" if fmt == "auto" else fmt.upper()
    subject = str(message.get("Subject", ""))[:80]
    return Unreadable(
        ref, None if fmt == "auto" else fmt, f"no {what} report in this message"
        + (f" (Subject: {subject})" if subject else ""), str(message.get("Message-ID", "")).strip(),
    )  # fmt: skip


CHUNK_MESSAGES = 1000


def _read_in_parallel(
    messages: Iterator[bytes], name: str, fmt: str, workers: int
) -> Iterator[Record]:
    """:func:`from_mail` over the messages in ``workers`` processes, in input order.

    The processes come from a fork server: a clean interpreter, so nothing of the caller (an open
    database connection) is inherited and closed by a child.
    """
    context = multiprocessing.get_context("forkserver")
    with ProcessPoolExecutor(workers, mp_context=context) as pool:
        pending: deque[Future[list[Record]]] = deque()
        first, chunk = 1, []
        for message in messages:
            chunk.append(message)
            if len(chunk) == CHUNK_MESSAGES:
                pending.append(pool.submit(_read_chunk, chunk, name, first, fmt))
                first, chunk = first + len(chunk), []
                if len(pending) > 2 * workers:
                    yield from pending.popleft().result()
        if chunk:
            pending.append(pool.submit(_read_chunk, chunk, name, first, fmt))
        while pending:
            yield from pending.popleft().result()


def _read_chunk(messages: list[bytes], name: str, first: int, fmt: str) -> list[Record]:
    return [from_mail(m, Ref(name, message=first + i), fmt) for i, m in enumerate(messages)]


def _text_of(part: Message) -> str | None:
    payload = part.get_payload(decode=True)
    if not isinstance(payload, bytes):
        return None
    return xarf.text_of(payload, part.get_content_charset())


def _json_report(message: Message, ref: Ref) -> Record | None:
    for part in message.walk():
        if part.is_multipart():
            continue
        if part.get_content_subtype() != "json" and not (part.get_filename() or "").endswith(
            ".json"
        ):
            continue
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes):
            continue
        try:
            data = strictjson.loads(payload, field="xarf")
        except InvalidInput as exc:
            return Unreadable(ref, "xarf", f"XARF JSON part: {exc.message}")
        if xarf.looks_like_json(data):
            return xarf.from_json(data, ref)
    return None


class _Chained(io.RawIOBase):
    """``head`` then the rest of ``stream``: a file whose first bytes were read to sniff it."""

    def __init__(self, head: bytes, stream: Readable) -> None:
        self._head, self._stream = memoryview(head), stream

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: memoryview) -> int:  # type: ignore[override]
        if self._head:
            n = min(len(buffer), len(self._head))
            buffer[:n] = self._head[:n]
            self._head = self._head[n:]
            return n
        data = self._stream.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


__all__ = [
    "FORMATS",
    "SERVICE",
    "SOURCE",
    "Complaint",
    "Options",
    "Record",
    "Ref",
    "Unreadable",
    "from_mail",
    "read",
    "split_mbox",
]
