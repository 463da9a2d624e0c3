"""CSV complaints: Shadowserver reports, and any CSV with a column mapping.

**Shadowserver** report CSVs have ``timestamp`` (UTC, documented "UTC+0", written without an
offset: ``2014-04-12 00:00:06``) and ``ip``. Event and sinkhole reports carry ``src_port`` (the
source port of the infected host's connection); scan reports carry only ``port`` — the *scanned
service* (Open-SNMP: 161), which names no one on a shared address: such rows are kept with
``port_kind`` ``service``. The category is the row's ``tag``/``infection``/``type`` when the report
has one, else the file name.

**Mapped CSV**: ``mapping`` names the columns of ``ip``, ``port`` (taken as a source port: the
sender of the file vouches for it), ``time`` and optionally ``id`` and ``category``; times without
an offset need ``tz`` (an IANA zone), and a local time DST makes ambiguous is unreadable with both
readings.

>>> rows = ["seen,src,sport\\n", "2026-03-14 21:07:33,192.0.2.1,1100\\n"]
>>> [c] = mapped(rows, "a.csv", {"ip": "src", "port": "sport", "time": "seen"}, tz="Europe/Berlin")
>>> c.port, c.zone, str(c.ref)
(1100, 'Europe/Berlin', 'a.csv:2')
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Iterator, Mapping
from pathlib import PurePath

from detnat.complaints.records import (
    SERVICE,
    SOURCE,
    BadTime,
    Complaint,
    PortKind,
    Record,
    Ref,
    Unreadable,
    iso_instant,
    port_of,
    zone_checked,
)
from detnat.errors import InvalidInput

MAP_KEYS = ("ip", "port", "time", "id", "category")
_CATEGORY_COLUMNS = ("tag", "infection", "type")


def is_shadowserver(header: list[str]) -> bool:
    names = {h.strip().lower() for h in header}
    return {"timestamp", "ip"} <= names


def _rows(lines: Iterable[str]) -> Iterator[tuple[int, list[str]]]:
    reader = csv.reader(iter(lines), strict=True)
    while True:
        line = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            yield line, ["\x00malformed CSV: " + str(exc)]
            continue
        if cells:
            yield line, cells


def _header(rows: Iterator[tuple[int, list[str]]], file: str) -> list[str]:
    for _, cells in rows:
        if cells and cells[0].startswith("\x00"):
            raise InvalidInput(f"{cells[0][1:]} in the header", field=file)
        names = [c.strip().lstrip("\ufeff") for c in cells]
        if len(set(names)) != len(names):
            raise InvalidInput("a column name appears twice in the header", field=file)
        return names
    raise InvalidInput("empty file: no header row", field=file)


def shadowserver(lines: Iterable[str], file: str) -> Iterator[Record]:
    rows = _rows(lines)
    header = [h.lower() for h in _header(rows, file)]
    if not is_shadowserver(header):
        raise InvalidInput("not a Shadowserver report: no timestamp and ip columns", field=file)
    col = {name: i for i, name in enumerate(header)}
    kind: PortKind = SOURCE if "src_port" in col else SERVICE
    port_col = col["src_port"] if "src_port" in col else col.get("port")
    cat_col = next((col[n] for n in _CATEGORY_COLUMNS if n in col), None)
    stem = PurePath(file).stem
    for line, cells in rows:
        ref = Ref(file, line=line)
        if cells[0].startswith("\x00"):
            yield Unreadable(ref, "shadowserver", cells[0][1:])
            continue
        if len(cells) != len(header):
            yield Unreadable(
                ref, "shadowserver", f"{len(cells)} fields, the header has {len(header)}"
            )
            continue
        category = (cells[cat_col] if cat_col is not None else "") or stem
        yield _row(
            ref, "shadowserver", str(ref), cells[col["ip"]], cells[port_col] if port_col is not None
            else "", kind, cells[col["timestamp"]], "UTC", f"shadowserver/{category}",
        )  # fmt: skip


def parse_map(text: str) -> dict[str, str]:
    """``ip=src,port=sport,time=seen`` as a mapping; unknown keys and missing ones refused."""
    mapping: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, sep, column = item.partition("=")
        key = key.strip()
        if not sep or not column.strip():
            raise InvalidInput(f"{item[:40]!r}: want key=column", field="--map")
        if key not in MAP_KEYS:
            raise InvalidInput(
                f"unknown key {key[:20]!r}; keys are {', '.join(MAP_KEYS)}", field="--map"
            )
        mapping[key] = column.strip()
    missing = [k for k in ("ip", "time") if k not in mapping]
    if missing:
        raise InvalidInput(f"missing {', '.join(missing)}", field="--map")
    return mapping


def mapped(
    lines: Iterable[str], file: str, mapping: Mapping[str, str], *, tz: str | None = None
) -> Iterator[Record]:
    if tz is not None:
        try:
            zone_checked(tz)
        except BadTime as exc:
            raise InvalidInput(str(exc), field="--tz") from None
    rows = _rows(lines)
    header = _header(rows, file)
    missing = [c for c in mapping.values() if c not in header]
    if missing:
        raise InvalidInput(
            f"no column {', '.join(map(repr, missing))} (columns are {', '.join(header)[:200]})",
            field=file,
        )
    col = {key: header.index(column) for key, column in mapping.items()}
    for line, cells in rows:
        ref = Ref(file, line=line)
        if cells[0].startswith("\x00"):
            yield Unreadable(ref, "csv", cells[0][1:])
            continue
        if len(cells) != len(header):
            yield Unreadable(ref, "csv", f"{len(cells)} fields, the header has {len(header)}")
            continue
        yield _row(
            ref, "csv", cells[col["id"]] if "id" in col else str(ref), cells[col["ip"]],
            cells[col["port"]] if "port" in col else "", SOURCE, cells[col["time"]], tz,
            cells[col["category"]] if "category" in col else "csv",
        )  # fmt: skip


def _row(
    ref: Ref,
    fmt: str,
    row_id: str,
    ip: str,
    port_text: str,
    kind: PortKind,
    when: str,
    tz: str | None,
    category: str,
) -> Record:
    ip = ip.strip()
    if not ip:
        return Unreadable(ref, fmt, "no ip", row_id)
    port = None
    if port_text.strip():
        port = port_of(port_text)
        if port is None:
            return Unreadable(ref, fmt, f"port {port_text[:20]!r} is not a port", row_id)
    try:
        at_us, zone = iso_instant(when, tz=tz)
    except BadTime as exc:
        return Unreadable(ref, fmt, str(exc), row_id)
    flags: tuple[str, ...] = ()
    if port is not None and kind == SERVICE:
        flags = (f"port {port} is the scanned service, not a source port",)
    return Complaint(
        ref, fmt, row_id, ip, port, kind if port is not None else None, at_us, when.strip(),
        zone, category, flags,
    )  # fmt: skip
