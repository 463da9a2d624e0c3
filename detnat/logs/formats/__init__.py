"""The log formats detnat reads, by name, each a parser of its own.

A parser takes the lines of one file (bytes, line endings included or not) and yields a `LogEvent`
for each line that says something we store, a `Refused` for each line it cannot read, and nothing
for lines that are not port-block events at all (other syslog traffic). A bad line never stops it.

>>> sorted(FORMATS)
['a10-cef', 'conntrack', 'csv', 'juniper-pba', 'nfdump-json', 'vpp-syslog']
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace

from detnat.logs.events import LogEvent, Refused
from detnat.logs.formats._common import Clock


@dataclass(frozen=True, slots=True)
class ParseOptions:
    """What a line may not say itself: the year and zone of a syslog header, the IPFIX numbering.

    ``clock``: the clock of the lines read before these, in the same file (a ``--follow`` reads
    a file in chunks): the year of a year-less time turns across chunks as within one
    (:meth:`Clock.year_of`). None: these lines begin the file. Made by :meth:`continued`."""

    year: int | None = None  # for BSD syslog headers, which carry no year
    tz: str | None = None  # IANA zone name for headers that carry no offset
    exporter: str = "iana"  # natEvent numbering of nfdump-json: "iana" (16/17) or "juniper" (14/15)
    clock: Clock | None = field(default=None, compare=False, repr=False)

    def continued(self) -> ParseOptions:
        """These options with one clock for every chunk of a file read in turn."""
        return replace(self, clock=Clock(year=self.year, tz=self.tz))

    def clock_now(self) -> Clock:
        """The clock to read the next lines with: the chunks' own, or a new one."""
        return self.clock if self.clock is not None else Clock(year=self.year, tz=self.tz)


Parser = Callable[[Iterable[bytes], str, ParseOptions], Iterator[LogEvent | Refused]]

# name -> "module:function", imported on first use.
FORMATS: dict[str, str] = {
    "juniper-pba": "detnat.logs.formats.juniper:parse",
    "a10-cef": "detnat.logs.formats.a10:parse",
    "vpp-syslog": "detnat.logs.formats.vpp:parse",
    "conntrack": "detnat.logs.formats.conntrack:parse",
    "nfdump-json": "detnat.logs.formats.nfdump:parse",
    "csv": "detnat.logs.formats.csv:parse",
}


def parser(name: str) -> Parser:
    """The parser of format `name` (a KeyError names the formats there are)."""
    try:
        target = FORMATS[name]
    except KeyError:
        raise KeyError(f"no log format {name!r}; there are {', '.join(sorted(FORMATS))}") from None
    module, _, function = target.partition(":")
    found: Parser = getattr(importlib.import_module(module), function)
    return found


def parse_lines(
    name: str, lines: Iterable[bytes], *, file: str, options: ParseOptions | None = None
) -> Iterator[LogEvent | Refused]:
    """Every event and refusal of `lines` read as format `name`; `file` is named in each LineRef.

    Line numbers count from 1 over `lines` as given (blank lines included).
    """
    return parser(name)(lines, file, options or ParseOptions())
