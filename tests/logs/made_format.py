"""A format of our own for the tests: the lines ``tests.logs.conftest.line_of`` writes.

``at_us,kind,inside,public,first,last,step,protocol`` — a stand-in for a real format, so the ingest
commands can be driven end to end before (and independently of) the real parsers.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import ParseOptions

NAME = "test-made"
TARGET = "tests.logs.made_format:parse"


def parse(lines: Iterable[bytes], file: str, options: ParseOptions) -> Iterator[LogEvent | Refused]:
    for n, raw in enumerate(lines, start=1):
        text = raw.decode("utf-8", "replace").strip()
        if not text:
            continue
        try:
            at, kind, inside, public, first, last, step, protocol = text.split(",")
            yield LogEvent(
                EventKind(kind),
                int(at),
                inside,
                public,
                int(first),
                int(last),
                protocol or None,
                LineRef.of(file, n, raw),
                int(step),
            )
        except ValueError as exc:
            yield Refused(file, n, f"not a made line ({exc})")
