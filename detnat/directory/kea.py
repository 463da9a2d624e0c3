"""ISC Kea DHCPv6 prefix delegations: the memfile lease CSV and the forensic (legal) log.

**Memfile** (``kea-leases6.csv``): one row per change, appended; columns found by the header, so
every version reads — old (``…,hwaddr,state,user_context``), 2.x (``…,pool_id``), 3.0
(``…,user_context,hwtype,hwaddr_source,pool_id``). Only IA_PD rows (``lease_type`` 2) are read:
a row holds ``address/prefix_len`` over ``[expire − valid_lifetime, expire)``; a later row of the
same lease (prefix, DUID, IAID) that overlaps or touches it renews it; a row in state 2
(expired-reclaimed) or 3 (released), or with ``valid_lifetime`` 0 (a deletion), ends it at that
row's ``expire`` at the latest. IA_NA/IA_TA rows are skipped (not refused).

**Forensic log** (``libdhcp_legal_log.so``)::

    2018-01-06 01:02:03 PST Prefix:2001:db8:1::/56 has been assigned for 0 hrs 11 mins 53 secs
    to a device with DUID: 17:34:e2:ff:09:92:54 and hardware address: … identified by
    remote-id: 01:02:03:04 and subscriber-id: 1a:2b:3c:4d

(one line). ``assigned`` and ``renewed`` hold the prefix from the line's instant for the duration;
``released`` ends it. The time is local with the zone's abbreviation: ``--tz`` names the zone and
a line whose abbreviation is not that zone's at that instant is refused. ``Address:`` (IA_NA)
lines are skipped.

**The account** is what the relay said the line is, when it said it: ``subscriber-id:<hex>``,
else ``remote-id:<hex>`` (RFC 4580 / RFC 4649, the usual link to a contract), else the client's
``duid:<hex>`` (a device, not a contract — the memfile knows nothing else). The kind is part of
the account so one can never be read as another.
"""

from __future__ import annotations

import csv
import re
from collections.abc import Iterable
from dataclasses import dataclass
from hashlib import sha256
from typing import NamedTuple

from detnat.directory.model import (
    BATCH,
    Batches,
    Interval,
    Parsed,
    Refused,
    SourceLine,
    collector_paused,
    network_text,
)
from detnat.directory.zones import LocalTimeError, Zone

PD = "2"
ENDED_STATES = frozenset({"2", "3"})
_NEEDED = ("address", "duid", "valid_lifetime", "expire", "lease_type", "iaid", "prefix_len")


@dataclass(slots=True)
class _Lease:
    key: str
    account: str
    start: int
    end: int
    closed: str
    sources: list[SourceLine]


def _fold(
    leases: dict[tuple[str, str, str], _Lease],
    out: list[Interval],
    lease_key: tuple[str, str, str],
    prefix: str,
    account: str,
    start: int,
    end: int,
    source: SourceLine,
    ending: bool,
) -> str | None:
    """One row (or line) of a lease: renew the interval it continues, or begin a new one; the
    reason a row is refused (else None)."""
    current = leases.get(lease_key)
    if current is not None and current.closed == "expired" and start <= current.end:
        renewed = min(current.end, end) if ending else end
        if renewed < current.start:  # an older row of the key, read after a newer one
            return "an older record of this lease, read after a newer one: not applied"
        current.end = renewed
        if ending:
            current.closed = "released"
        current.sources.append(source)
        if len(current.sources) > 2:
            del current.sources[1:-1]  # the first and the last record say the interval
        return None
    if current is not None:
        out.append(_interval(current))
    if ending:
        leases.pop(lease_key, None)  # a release of a lease not read: its start is unknown
        return None
    leases[lease_key] = _Lease(prefix, account, start, end, "expired", [source])
    return None


def _interval(lease: _Lease) -> Interval:
    return Interval(
        lease.key, lease.account, lease.start, lease.end, lease.closed, tuple(lease.sources)
    )


def parse_memfile(files: Iterable[tuple[str, str]], *, tz: str | None = None) -> Parsed:
    """Kea memfile lease CSVs (``tz`` is not used: ``expire`` is epoch seconds)."""
    out = Parsed()
    for batch in _memfile(files, out):
        out.intervals += batch
    return out


def _memfile(files: Iterable[tuple[str, str]], out: Parsed) -> Batches:
    """:func:`parse_memfile` as a stream: an interval is given once a later row of its lease
    began another (it is final then), the leases still running at the end."""
    leases: dict[tuple[str, str, str], _Lease] = {}
    seen: set[str] = set()
    intervals: list[Interval] = []
    for name, text in files:
        lines = text.split("\n")
        if not lines or not lines[0].strip():
            out.refused.append(Refused(name, 1, "no header line"))
            continue
        header = [h.strip() for h in lines[0].rstrip("\r").split(",")]
        missing = [h for h in _NEEDED if h not in header]
        if missing:
            out.refused.append(
                Refused(name, 1, f"not a Kea lease6 header: no {', '.join(missing)} column")
            )
            continue
        col = {h: n for n, h in enumerate(header)}
        state_col = col.get("state")
        needed = [col[h] for h in _NEEDED]
        address, duid_col, valid_col, expire_col, type_col, iaid_col, length_col = needed
        width = len(header)
        records = 0
        for n, raw in enumerate(lines[1:], start=2):
            line = raw.rstrip("\r") if raw.endswith("\r") else raw
            if not line:
                continue
            records += 1
            row = line.split(",") if '"' not in line else next(csv.reader([line]))
            fields = len(row)
            if fields != width:
                if fields < width - 3 or fields > width:
                    # older writers leave trailing columns off; more than the header is not ours
                    out.refused.append(Refused(name, n, f"{fields} fields, header has {width}"))
                    continue
                row += [""] * (width - fields)
            if row[type_col] != PD:
                continue
            if line in seen:
                out.duplicates += 1
                continue
            seen.add(line)
            try:
                prefix = network_text(f"{row[address]}/{row[length_col]}")
                valid = int(row[valid_col])
                if valid < 0:
                    raise ValueError("a negative valid lifetime")
                expire = int(row[expire_col]) * 1_000_000
                duid = row[duid_col].strip().lower()
                if not duid:
                    raise ValueError("no DUID")
            except ValueError as exc:
                out.refused.append(Refused(name, n, f"not a prefix delegation row: {exc}"))
                continue
            state = row[state_col].strip() if state_col is not None else "0"
            ending = valid == 0 or state in ENDED_STATES
            key = (prefix, duid, row[iaid_col].strip())
            # SourceLine.of, inline (a call less a row)
            source = SourceLine(name, n, sha256(line.encode("utf-8", "replace")).hexdigest(), line)
            start = expire - valid * 1_000_000
            why = _fold(
                leases, intervals, key, prefix, f"duid:{duid}", start, expire, source, ending
            )
            if why is not None:
                out.refused.append(Refused(name, n, why))
            if len(intervals) >= BATCH:
                out.records += records
                records = 0
                yield intervals
                intervals = []
        out.records += records
    intervals.extend(_interval(lease) for lease in leases.values())
    if intervals:
        yield intervals


_LEGAL = re.compile(
    r"(?P<y>\d{4})-(?P<mo>\d\d)-(?P<d>\d\d) (?P<h>\d\d):(?P<mi>\d\d):(?P<s>\d\d)"
    r" (?P<zone>[A-Za-z][A-Za-z0-9+\-]*)"
    r" (?:Prefix:\s*(?P<prefix>\S+) has been (?P<verb>assigned|renewed|released)"
    r"|Administrator (?P<admin>added|updated|deleted) a lease of prefix: (?P<aprefix>\S+))"
    r"(?: for (?P<dh>\d+) hrs (?P<dm>\d+) mins? (?P<ds>\d+) secs?)?"
    r" to a device with DUID: (?P<duid>[0-9A-Fa-f:]+)(?P<rest>.*)"
)
_RELAY = re.compile(r"(?P<kind>remote-id|subscriber-id): (?P<value>[0-9A-Fa-f:]+)")


class LeaseLine(NamedTuple):
    """One memfile row or forensic log line of a prefix read alone: the lease it is of
    (prefix, DUID, IAID), the account it names, the span it holds ``[start, end)`` and whether
    it ends its lease (a release, a reclaimed or deleted row: its lease ended at ``end`` at the
    latest, and not before ``start``)."""

    lease: tuple[str, str, str]
    account: str
    start: int
    end: int
    ending: bool


def _legal_line(match: re.Match[str], zone: Zone) -> LeaseLine:
    """A forensic log line (``_LEGAL``'s match) read alone, as :func:`_legal` reads it (written
    out there, not called: a call and a tuple per line cost an ingest a tenth of its parse;
    ``tests/directory/test_reread_kea_property.py`` holds the two together); ValueError (or
    LocalTimeError): refused."""
    g = match.group
    at = zone.instant_us(
        int(g("y")),
        int(g("mo")),
        int(g("d")),
        int(g("h")),
        int(g("mi")),
        int(g("s")),
        abbreviation=g("zone"),
    )
    prefix = network_text(g("prefix") or g("aprefix"))
    ending = g("verb") == "released" or g("admin") == "deleted"
    if not ending and g("dh") is None:
        raise ValueError("an assignment without its duration")
    lasting = 0 if ending else (int(g("dh")) * 3600 + int(g("dm")) * 60 + int(g("ds")))
    relay = {m.group("kind"): m.group("value").lower() for m in _RELAY.finditer(g("rest"))}
    duid = g("duid").lower()
    if "subscriber-id" in relay:
        account = f"subscriber-id:{relay['subscriber-id']}"
    elif "remote-id" in relay:
        account = f"remote-id:{relay['remote-id']}"
    else:
        account = f"duid:{duid}"
    return LeaseLine((prefix, duid, ""), account, at, at + lasting * 1_000_000, ending)


# The columns every lease6 header version begins with, in this order (later versions add
# pool_id, or hwtype, hwaddr_source and pool_id, after them).
MEMFILE_COLUMNS = (
    *("address", "duid", "valid_lifetime", "expire", "subnet_id", "pref_lifetime", "lease_type"),
    *("iaid", "prefix_len", "fqdn_fwd", "fqdn_rev", "hostname", "hwaddr", "state", "user_context"),
)


def read_line(text: str, *, tz: str | None) -> LeaseLine:
    """A source line of a ``kea-lease6`` interval read alone, as its ingest read it (``evidence
    verify``): a forensic log line (in the zone ``tz``) when it reads as one, else a memfile row
    read with :data:`MEMFILE_COLUMNS` (the header is not a source line: a file written with its
    columns in another order does not read again). ValueError: neither, or refused. The row is
    read as :func:`_memfile` reads it, written out again for one row
    (``tests/directory/test_reread_kea_property.py`` holds the two together)."""
    match = _LEGAL.match(text)
    if match is not None:
        return _legal_line(match, Zone.named(tz))
    row = text.split(",") if '"' not in text else next(csv.reader([text]))
    width = len(MEMFILE_COLUMNS)
    if not width - 3 <= len(row) <= width + 3:  # the old header, to 3.0's
        raise ValueError("neither a forensic log line of a prefix nor a lease6 memfile row")
    row += [""] * (width - len(row))
    col = {h: n for n, h in enumerate(MEMFILE_COLUMNS)}
    if row[col["lease_type"]] != PD:
        raise ValueError("a memfile row that is no prefix delegation (lease_type is not 2)")
    prefix = network_text(f"{row[col['address']]}/{row[col['prefix_len']]}")
    valid = int(row[col["valid_lifetime"]])
    if valid < 0:
        raise ValueError("a negative valid lifetime")
    expire = int(row[col["expire"]]) * 1_000_000
    duid = row[col["duid"]].strip().lower()
    if not duid:
        raise ValueError("no DUID")
    ending = valid == 0 or row[col["state"]].strip() in ENDED_STATES
    lease = (prefix, duid, row[col["iaid"]].strip())
    return LeaseLine(lease, f"duid:{duid}", expire - valid * 1_000_000, expire, ending)


def parse_legal(files: Iterable[tuple[str, str]], *, tz: str | None) -> Parsed:
    """Kea forensic log lines (``--tz`` required: the lines are local time)."""
    out = Parsed()
    for batch in _legal(files, Zone.named(tz), out):
        out.intervals += batch
    return out


def _legal(files: Iterable[tuple[str, str]], zone: Zone, out: Parsed) -> Batches:
    """:func:`parse_legal` as a stream (as :func:`_memfile`)."""
    leases: dict[tuple[str, str, str], _Lease] = {}
    seen: set[str] = set()
    intervals: list[Interval] = []
    for name, text in files:
        for n, raw in enumerate(text.split("\n"), start=1):
            line = raw.rstrip("\r")
            if not line.strip():
                continue
            out.records += 1
            if " Address:" in line[:40] or "lease of address" in line:
                continue  # IA_NA: not a delegated prefix
            match = _LEGAL.match(line)
            if match is None:
                out.refused.append(Refused(name, n, "not a Kea forensic log line of a prefix"))
                continue
            if line in seen:
                out.duplicates += 1
                continue
            seen.add(line)
            g = match.group
            try:
                at = zone.instant_us(
                    int(g("y")),
                    int(g("mo")),
                    int(g("d")),
                    int(g("h")),
                    int(g("mi")),
                    int(g("s")),
                    abbreviation=g("zone"),
                )
                prefix = network_text(g("prefix") or g("aprefix"))
            except (ValueError, LocalTimeError) as exc:
                out.refused.append(Refused(name, n, str(exc)))
                continue
            ending = g("verb") == "released" or g("admin") == "deleted"
            if not ending and g("dh") is None:
                out.refused.append(Refused(name, n, "an assignment without its duration"))
                continue
            lasting = 0 if ending else (int(g("dh")) * 3600 + int(g("dm")) * 60 + int(g("ds")))
            relay = {m.group("kind"): m.group("value").lower() for m in _RELAY.finditer(g("rest"))}
            duid = g("duid").lower()
            if "subscriber-id" in relay:
                account = f"subscriber-id:{relay['subscriber-id']}"
            elif "remote-id" in relay:
                account = f"remote-id:{relay['remote-id']}"
            else:
                account = f"duid:{duid}"
            source = SourceLine.of(name, n, line)
            end = at + lasting * 1_000_000
            why = _fold(
                leases, intervals, (prefix, duid, ""), prefix, account, at, end, source, ending
            )
            if why is not None:
                out.refused.append(Refused(name, n, why))
            if len(intervals) >= BATCH:
                yield intervals
                intervals = []
    intervals.extend(_interval(lease) for lease in leases.values())
    if intervals:
        yield intervals


@collector_paused
def parse(files: Iterable[tuple[str, str]], *, tz: str | None) -> Parsed:
    """``kea-lease6``: each file is read as a memfile CSV when its first line is a lease6
    header, else as forensic log lines (which need ``--tz``)."""
    out = Parsed()
    for batch in stream(files, tz=tz, out=out):
        out.intervals += batch
    return out


def stream(files: Iterable[tuple[str, str]], *, tz: str | None, out: Parsed) -> Batches:
    """:func:`parse` as a stream: the memfiles' intervals, then the forensic logs'."""
    memfiles: list[tuple[str, str]] = []
    logs: list[tuple[str, str]] = []
    for name, text in files:
        head = text[:400].split("\n", 1)[0]
        (memfiles if head.startswith("address,duid,") else logs).append((name, text))
    zone = Zone.named(tz) if logs else None  # refused before any row is given
    yield from _memfile(memfiles, out)
    if zone is not None:
        yield from _legal(logs, zone, out)
