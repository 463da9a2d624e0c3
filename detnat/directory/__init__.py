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

from detnat.directory.model import Batches, Interval, Parsed, Refused, SourceLine
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


INTERIM_FORMATS = frozenset({"freeradius-detail"})  # formats of sessions with interim updates


def parse(
    name: str, files: Iterable[tuple[str, str]], *, tz: str | None, interim_us: int | None = None
) -> Parsed:
    """The files read by the parser of format ``name``; ``interim_us`` (the NAS's declared
    interim period) only for :data:`INTERIM_FORMATS`."""
    _check(name, interim_us)
    if interim_us is None:
        parsed = parser(name)(files, tz=tz)
    else:
        parsed = parser(name)(files, tz=tz, interim_us=interim_us)
    for batch in _holding([parsed.intervals], parsed):
        parsed.intervals = batch
    return parsed


def _check(name: str, interim_us: int | None) -> None:
    parser(name)
    if interim_us is None:
        return
    if name not in INTERIM_FORMATS:
        raise InvalidInput(
            f"an interim period applies to {', '.join(sorted(INTERIM_FORMATS))} sessions, "
            f"not to {name}",
            field="--interim",
        )
    if interim_us <= 0:
        raise InvalidInput("the interim period must be longer than zero", field="--interim")


def stream(
    name: str, files: Iterable[tuple[str, str]], *, tz: str | None, interim_us: int | None = None
) -> tuple[Parsed, Batches]:
    """:func:`parse` as a stream (an ingest writes the rows while the files are read): the
    intervals in batches, in :func:`parse`'s order, each final when given; the returned
    :class:`Parsed` (its ``intervals`` left empty) has the counts and refused records once the
    batches are exhausted. The arguments are checked here, the files when the batches are
    drawn."""
    _check(name, interim_us)
    out = Parsed()
    if name == "freeradius-detail":
        from detnat.directory import radius

        return out, _holding(radius.stream(files, tz=tz, out=out, interim_us=interim_us), out)
    if name == "kea-lease6":
        from detnat.directory import kea

        return out, _holding(kea.stream(files, tz=tz, out=out), out)
    from detnat.directory import table

    return out, _holding(table.stream(files, tz=tz, out=out), out)


def _holding(batches: Iterable[list[Interval]], out: Parsed) -> Batches:
    """The intervals of ``batches`` that hold an instant. One that ends where it begins (a
    RADIUS session ended by its NAS's Accounting-On at the instant of its Start) names no one at
    any instant and is left out: Postgres would store its range as ``empty``, without the bounds
    its row was hashed with. One that ends before it begins is refused at its last record (a
    parser's rule should never make one; Postgres would refuse the whole ingest). The refusals
    follow the parser's, once the batches are exhausted."""
    refused: list[Refused] = []
    for batch in batches:
        kept = [iv for iv in batch if iv.end is None or iv.end > iv.start]
        if len(kept) < len(batch):
            for iv in batch:
                if iv.end is not None and iv.end < iv.start:
                    last = iv.sources[-1]
                    refused.append(
                        Refused(
                            last.file,
                            last.line,
                            "the records of this interval end it before it begins",
                        )
                    )
        if kept:
            yield kept
    out.refused += refused


__all__ = [
    "FORMATS",
    "INTERIM_FORMATS",
    "Interval",
    "Parsed",
    "Refused",
    "SourceLine",
    "parse",
    "parser",
    "stream",
]
