"""The subscriber directory over time: which account held an inside prefix when.

Pure parsers (no I/O, clock or environment: they take ``(file name, text)`` pairs) turn an
operator's records into :class:`~detnat.directory.model.Interval` s, one shape for every format:

- ``freeradius-detail`` (:mod:`detnat.directory.radius`): accounting sessions replayed;
- ``kea-lease6`` (:mod:`detnat.directory.kea`): DHCPv6-PD memfile rows and forensic log lines;
- ``csv`` (:mod:`detnat.directory.table`): ``subscriber,account,from,to``.

:mod:`detnat.directory.resolve` answers "which account held this subscriber at T" from
intervals, the one rule the store's answers and the tests' brute force share. The store and its
audit are :mod:`detnat.service.directory`; the rules are in ``docs/directory.md``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from detnat.directory.model import Interval, Parsed, Refused, SourceLine
from detnat.errors import InvalidInput

Parser = Callable[..., Parsed]
FORMATS = ("freeradius-detail", "kea-lease6", "csv")
NEEDS_TZ = frozenset({"freeradius-detail"})  # kea-lease6 needs it only for forensic logs


def parser(name: str) -> Parser:
    """The parser of a format (imported on first use)."""
    if name == "freeradius-detail":
        from detnat.directory import radius

        return radius.parse
    if name == "kea-lease6":
        from detnat.directory import kea

        return kea.parse
    if name == "csv":
        from detnat.directory import table

        return table.parse
    raise InvalidInput(f"unknown format {name!r}: one of {', '.join(FORMATS)}", field="--format")


def parse(name: str, files: Iterable[tuple[str, str]], *, tz: str | None) -> Parsed:
    return parser(name)(files, tz=tz)


__all__ = ["FORMATS", "Interval", "Parsed", "Refused", "SourceLine", "parse", "parser"]
