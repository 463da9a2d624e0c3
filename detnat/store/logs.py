"""Queries over the log tables (migration 0005): events in by COPY, intervals in and out.

Rows in, rows out; the rules live in :mod:`detnat.service.logs` and :mod:`detnat.logs.intervals`.
Events go in by ``COPY`` (one round trip per chunk, no row inserts): straight into ``log_events``
(its month's partition) when the chunk cannot hold a duplicate -- no line repeated in it, and no
event of the realm stored in its time range -- else through a temporary staging table, then into
``log_events`` with ``ON CONFLICT DO NOTHING``: a line already stored is a duplicate, counted, not
stored again.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple

import psycopg
import psycopg.adapt
import psycopg.pq

from detnat.store.lean import text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The text of one event row that an ingest's digest covers (``audit verify`` recomputes it): every
# column, so no column can change unseen. Postgres computes it at verify; an ingest computes it in
# Python (:func:`row_text`) for the rows it stores, or here when some of its rows are duplicates.
ROW_TEXT = (
    "concat_ws('|', e.realm_id, (extract(epoch FROM e.at) * 1000000)::bigint, e.line_sha256, "
    "e.ingest_id, e.kind, e.inside, e.public, e.port_first, e.port_last, e.port_step, "
    "e.protocol, e.file, e.line, e.raw)"
)
MONTH = "to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM')"
# |at_us| below this: the instant goes in and out of Postgres exactly (a float8 holds it).
EXACT_US = 1 << 53

# An event row as an ingest writes it for ``COPY``: the columns of ``log_events`` in this order,
# ``at`` as Postgres prints a timestamptz. The same rows go straight into ``log_events``
# (:func:`copy_events`, when a chunk can hold no duplicate) or into the staging table first.
COLUMNS = (
    "realm_id, ingest_id, at, line_sha256, kind, inside, public, port_first, port_last, "
    "port_step, protocol, file, line, raw"
)
STAGE = f"""
CREATE TEMPORARY TABLE IF NOT EXISTS log_stage ON COMMIT DROP AS
SELECT {COLUMNS} FROM log_events WITH NO DATA
"""


def raw_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's transaction (for COPY)."""
    conn = session.connection().connection.driver_connection
    assert isinstance(conn, psycopg.Connection)
    return conn


def instant(at_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=at_us)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def lock_realm(session: Session, realm_id: int) -> None:
    """Serialise the writers of one realm's logs (ingest, prune) until the transaction ends:
    each re-derives intervals from the events it sees. Publishing is not blocked."""
    session.execute(text("SELECT pg_advisory_xact_lock(1302, :r)"), {"r": realm_id})


def stage(session: Session, rows: Iterable[bytes]) -> None:
    """COPY event rows (already escaped, newline-terminated; :data:`COLUMNS`) into ``log_stage``
    (made empty for the transaction if it is not there)."""
    session.execute(text(STAGE))
    _copy(raw_connection(session), "log_stage", rows)


def copy_events(session: Session, rows: Iterable[bytes], partition: str | None = None) -> None:
    """COPY event rows (as :func:`stage`) straight into ``log_events`` (or, named, the one
    partition that holds them all: no routing per row): the caller has made sure none is stored
    yet (:func:`stored_between`) and none repeats another, and made their month partitions
    (:func:`ensure_months`)."""
    table = "log_events" if partition is None else f'log_partitions."{partition}"'
    _copy(raw_connection(session), table, rows)


def _copy(conn: psycopg.Connection[Any], table: str, rows: Iterable[bytes]) -> None:
    with conn.cursor() as cur, cur.copy(f"COPY {table} ({COLUMNS}) FROM STDIN") as copy:
        for chunk in rows:
            copy.write(chunk)


def stored_between(session: Session, realm_id: int, first_us: int, last_us: int) -> bool:
    """Whether the realm has an event stored at some instant of ``[first_us, last_us]`` (one
    range of the primary key): a chunk of rows whose instants are all in a range with none
    stored has no duplicate of a stored row."""
    return bool(
        session.scalar(
            text(
                "SELECT EXISTS (SELECT 1 FROM log_events WHERE realm_id = :r "
                "AND at >= :first AND at <= :last)"
            ),
            {"r": realm_id, "first": instant(first_us), "last": instant(last_us)},
        )
    )


def ensure_months(session: Session, realm_id: int, months: Iterable[str]) -> list[str]:
    """Make the realm's partitions of ``months`` (``YYYY-MM``) if they are not there; their
    names (in schema ``log_partitions``), in the order of the months."""
    return list(
        session.scalars(
            text(
                "SELECT log_events_partition(:realm, (m || '-01 00:00:00+00')::timestamptz) "
                "FROM unnest(CAST(:months AS text[])) WITH ORDINALITY AS u(m, n) ORDER BY n"
            ),
            {"realm": realm_id, "months": sorted(set(months))},
        )
    )


def ensure_partitions(session: Session, realm_id: int) -> None:
    """Make the realm's month partitions the staged rows need."""
    session.execute(
        text(
            "SELECT log_events_partition(:realm, m) FROM (SELECT DISTINCT date_trunc('month', "
            "at AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m FROM log_stage) s"
        ),
        {"realm": realm_id},
    )


# The digest of one row as eight 32-bit parts (``p0`` the highest), so a chunk's digests are summed
# in Postgres (a sum per part, bigint cannot overflow below 2**31 rows) and not sent row by row.
_PARTS = ", ".join(
    f"sum(('x00000000' || substr(d.h, {1 + 8 * k}, 8))::bit(64)::bigint)" for k in range(8)
)


def insert_staged(session: Session, realm_id: int, ingest_id: int) -> int:
    """Insert the staged rows not stored yet (a row whose instant and line hash are stored is a
    duplicate); how many were inserted."""
    done = session.execute(
        text(
            f"INSERT INTO log_events ({COLUMNS}) SELECT {COLUMNS} FROM log_stage "
            "ON CONFLICT DO NOTHING"
        )
    )
    return int(done.rowcount)  # type: ignore[attr-defined]


def staged_digests(session: Session, realm_id: int, ingest_id: int) -> list[tuple[Any, ...]]:
    """Of the staged rows that :func:`insert_staged` inserted, per (month, public address):
    ``(month, public, count, p0, …, p7)``, ``p0..p7`` the sums of the eight 32-bit parts of the
    rows' digests (highest first; see :func:`digest_sum`). A stored row of this ingest with the
    instant, hash, file and line of a staged row is one this stage inserted, as long as an
    ingest stages all the events of one line together."""
    found = session.execute(
        text(
            "WITH e AS (SELECT DISTINCT ON (e.at, e.line_sha256) e.* FROM log_stage s "
            "JOIN log_events e ON e.realm_id = :realm "
            "AND e.at = s.at "
            "AND e.line_sha256 = s.line_sha256 AND e.ingest_id = :ingest AND e.file = s.file "
            "AND e.line = s.line), "
            f"d AS (SELECT {MONTH} AS month, e.public, "
            f"encode(sha256(convert_to({ROW_TEXT}, 'UTF8')), 'hex') AS h FROM e) "
            f"SELECT d.month, d.public, count(*), {_PARTS} FROM d GROUP BY d.month, d.public"
        ),
        {"realm": realm_id, "ingest": ingest_id},
    ).all()
    return [tuple(r) for r in found]


def clear_stage(session: Session) -> None:
    session.execute(text("TRUNCATE log_stage"))


def digest_sum(parts: Iterable[Any]) -> int:
    """The sum of the digests (as 256-bit integers) whose parts were summed to ``parts``."""
    total = 0
    for k, part in enumerate(parts):
        total += int(part) << (32 * (7 - k))
    return total


def event_digests(session: Session) -> Iterator[tuple[int, int, str, str]]:
    """(realm, ingest, month, row digest) of every stored event."""
    rows = session.execute(
        text(
            f"SELECT e.realm_id, e.ingest_id, {MONTH}, "
            f"encode(sha256(convert_to({ROW_TEXT}, 'UTF8')), 'hex') FROM log_events e"
        ).execution_options(yield_per=10_000)
    )
    for realm, ingest, month, digest in rows:
        yield int(realm), int(ingest), str(month), str(digest)


def next_ingest_id(session: Session) -> int:
    return int(session.scalar(text("SELECT nextval('log_ingests_id_seq')")) or 0)


def ipv4_text(value: int) -> str:
    return f"{value >> 24}.{(value >> 16) & 255}.{(value >> 8) & 255}.{value & 255}"


EVENT_ROW = (
    "SELECT public, (extract(epoch FROM at) * 1000000)::bigint AS at_us, line_sha256, kind, "
    "inside, port_first, port_last, port_step, protocol, file, line FROM log_events "
    "WHERE realm_id = %(realm)s"
)


def event_rows(
    session: Session, realm_id: int, publics: Iterable[int] | None = None
) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """The realm's events, one public address at a time, rows as plain tuples in the order of
    :data:`EVENT_ROW`: a cursor on the server, so memory holds one address's events."""
    query = EVENT_ROW
    params: dict[str, Any] = {"realm": realm_id}
    if publics is not None:
        query += " AND public = ANY(%(publics)s)"
        params["publics"] = sorted(publics)
    with raw_connection(session).cursor(name="log_event_rows") as cur:
        cur.itersize = 20_000
        cur.execute(query + " ORDER BY public", params)
        yield from _by_address(cur)


def _by_address(
    cur: psycopg.ServerCursor[Any], since: dict[int, int] | None = None
) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """The rows of a server cursor ordered by address (their first column) in runs of one
    address; with ``since``, only each address's rows at or after its instant (second column)."""
    current: int | None = None
    batch: list[tuple[Any, ...]] = []
    while rows := cur.fetchmany(20_000):
        for row in rows:
            if row[0] != current:
                if batch and current is not None:
                    yield current, batch
                current, batch = row[0], []
            if since is None or row[1] >= since[row[0]]:
                batch.append(row)
    if batch and current is not None:
        yield current, batch


def delete_intervals(session: Session, realm_id: int, publics: Iterable[int] | None) -> None:
    if publics is None:
        session.execute(text("DELETE FROM log_intervals WHERE realm_id = :r"), {"r": realm_id})
    else:
        session.execute(
            text("DELETE FROM log_intervals WHERE realm_id = :r AND public = ANY(:p)"),
            {"r": realm_id, "p": sorted(publics)},
        )


def delete_intervals_without_events(session: Session, realm_id: int, publics: list[int]) -> None:
    """Delete the realm's intervals of every address but ``publics`` (those left with events)."""
    session.execute(
        text("DELETE FROM log_intervals WHERE realm_id = :r AND NOT (public = ANY(:p))"),
        {"r": realm_id, "p": sorted(publics)},
    )


def publics_with_intervals(
    session: Session, realm_id: int, publics: Iterable[int] | None
) -> set[int]:
    """Of ``publics`` (None: any), the addresses the realm has intervals stored for."""
    query = "SELECT DISTINCT public FROM log_intervals WHERE realm_id = :r"
    params: dict[str, Any] = {"r": realm_id}
    if publics is not None:
        query += " AND public = ANY(:p)"
        params["p"] = sorted(publics)
    return set(session.scalars(text(query), params))


def _copy_escaped(sql: str) -> str:
    return (
        f"replace(replace(replace(replace({sql}, '\\', '\\\\'), E'\\t', '\\t'), "
        "E'\\n', '\\n'), E'\\r', '\\r')"
    )


def _bound_text(sql: str) -> str:
    return f"to_char({sql} AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS.US') || '+00'"


def _flag(column: str) -> str:
    return f"CASE WHEN {column} THEN 't' ELSE 'f' END"


# A stored interval row printed back as the COPY row that made it
# (:func:`detnat.service.logs.interval_row`, without its line feed, its lines written as Postgres
# prints jsonb), hashed: the same MD5 for a row and the text of an interval means the row is what
# copying that text makes. A row the printing does not reproduce (an odd bound, a year past
# 9999, a file name with non-ASCII characters, lines altered in the store) never matches, and is
# written again.
_ROW_TEXT = (
    "concat(realm_id, E'\\t', public, E'\\t', port_first, E'\\t', port_last, E'\\t', "
    "port_step, E'\\t', protocol, E'\\t', " + _copy_escaped("inside") + ", E'\\t', "
    "CASE WHEN lower_inf(during) THEN '[' WHEN lower_inc(during) THEN '[' || "
    + _bound_text("lower(during)")
    + " END, ',', "
    "CASE WHEN upper_inf(during) THEN ')' WHEN NOT upper_inc(during) THEN "
    + _bound_text("upper(during)")
    + " || ')' END, E'\\t', ports::text, E'\\t', "
    + _flag("open")
    + ", E'\\t', "
    + _flag("unknown_start")
    + ", E'\\t', "
    + _flag("conflict")
    + ", E'\\t', "
    + _copy_escaped("lines::text")
    + ", E'\\t', "
    + _flag("interim_deadline")
    + ")"
)
STORED_ROWS = (
    f"SELECT md5({_ROW_TEXT}), ctid::text FROM log_intervals WHERE realm_id = %s AND public = %s"
)


def stored_rows(conn: psycopg.Connection[Any], realm_id: int, public: int) -> dict[str, str]:
    """The realm's interval rows of one address: the MD5 of each printed back as its COPY row
    (:data:`STORED_ROWS`) -> its ctid."""
    with conn.cursor() as cur:
        cur.execute(STORED_ROWS, (realm_id, public))
        return {digest: ctid for digest, ctid in cur.fetchall() if digest is not None}


# Per span of ports of an address (``w``: address, first and last port, an instant): the realm's
# intervals on a port of the span that end at or after the instant (or never). ``ports`` holds
# the span and ``during`` reaches the instant: the GiST index finds both. ``{what}`` is selected
# from log_intervals (its columns unqualified).
_SPANS = (
    "SELECT w.n, x.* FROM unnest(%(publics)s::bigint[], %(los)s::integer[], %(his)s::integer[], "
    "%(ats)s::timestamptz[]) WITH ORDINALITY AS w(public, lo, hi, at, n) CROSS JOIN LATERAL "
    "(SELECT {what}, realm_id AS realm FROM log_intervals WHERE "
    "ports && int8range(w.public * 65536 + w.lo, w.public * 65536 + w.hi + 1) "
    "AND during && tstzrange(w.at - interval '1 microsecond', NULL) OFFSET 0) AS x "
    "WHERE x.realm = %(realm)s"
)
# (The subquery stands alone (``OFFSET 0``), the realm tested outside it: one GiST probe per span.
# Given the realm inside, the planner scanned the primary key for the whole realm per span, or
# the whole table once to join it with every span.)

# A bound of ``during`` in µs (NULL: unbounded); extract gives a numeric, exact.
_US = "(extract(epoch FROM {}(during)) * 1000000)::bigint"
Span = tuple[int, int, int, int]  # address, first port, last port, instant (µs)


def _span_params(realm_id: int, spans: list[Span]) -> dict[str, Any]:
    return {
        "realm": realm_id,
        "publics": [s[0] for s in spans],
        "los": [s[1] for s in spans],
        "his": [s[2] for s in spans],
        "ats": [instant(s[3]) for s in spans],
    }


def reaching(
    conn: psycopg.Connection[Any], realm_id: int, spans: list[Span]
) -> list[list[tuple[int, int, int | None, int | None]]]:
    """Per span (address, first port, last port, instant): its intervals on a port of the span
    that end at or after the instant (or never), as (first port, last port, start, end), µs
    (None: unbounded)."""
    found: list[list[tuple[int, int, int | None, int | None]]] = [[] for _ in spans]
    query = _SPANS.format(
        what=f"port_first, port_last, {_US.format('lower')}, {_US.format('upper')}"
    )
    with conn.cursor() as cur:
        cur.execute(query, _span_params(realm_id, spans))
        for n, first, last, start, end, _ in cur.fetchall():
            found[n - 1].append((first, last, start, end))
    return found


def stored_rows_from(
    conn: psycopg.Connection[Any], realm_id: int, spans: list[Span]
) -> list[list[tuple[int, int, int | None, str, str]]]:
    """:func:`stored_rows` of the intervals of each span (as :func:`reaching`), as (first port,
    last port, end in µs or None, MD5, ctid)."""
    found: list[list[tuple[int, int, int | None, str, str]]] = [[] for _ in spans]
    query = _SPANS.format(
        what=f"port_first, port_last, {_US.format('upper')}, md5({_ROW_TEXT}), ctid::text"
    )
    with conn.cursor() as cur:
        cur.execute(query, _span_params(realm_id, spans))
        for n, first, last, end, digest, ctid, _ in cur.fetchall():
            if digest is not None:
                found[n - 1].append((first, last, end, digest, ctid))
    return found


def event_rows_since(
    conn: psycopg.Connection[Any], realm_id: int, since: dict[int, int]
) -> Iterator[tuple[int, list[tuple[Any, ...]]]]:
    """The realm's events of each address of ``since`` at or after its instant (µs), one address
    at a time (rows as :func:`event_rows`): one query from the earliest instant (the primary
    key's range), the rest left here."""
    publics = sorted(since)
    with conn.cursor(name="log_event_rows_since") as cur:
        cur.itersize = 20_000
        # ``public + 0``: the range of the primary key from the instant, sorted. A cursor is
        # planned to start fast: on ``public`` itself, the planner walked the index of the
        # addresses for its order, through every event of theirs (the history this read is
        # there to avoid).
        cur.execute(
            EVENT_ROW + " AND at >= %(from)s AND public + 0 = ANY(%(publics)s) ORDER BY public + 0",
            {"realm": realm_id, "from": instant(min(since.values())), "publics": publics},
        )
        yield from _by_address(cur, since)


Block = tuple[int, int, int, int, str, str]  # address, first, last, step, protocol, inside


def last_before(
    conn: psycopg.Connection[Any], realm_id: int, asked: list[tuple[Block, int]]
) -> list[tuple[bool, int | None] | None]:
    """Per (block, instant in µs): the block's last stored interval that starts before the
    instant (or has no start), as (open, start in µs or None); None: it has none."""
    found: list[tuple[bool, int | None] | None] = [None for _ in asked]
    if not asked:
        return found
    columns = list(zip(*(block for block, _ in asked), strict=True))
    with conn.cursor() as cur:
        cur.execute(
            "SELECT w.n, x.open, x.start FROM unnest(%(publics)s::bigint[], %(firsts)s::integer[], "
            "%(lasts)s::integer[], %(steps)s::integer[], %(protocols)s::text[], "
            "%(insides)s::text[], %(ats)s::timestamptz[]) WITH ORDINALITY AS w(public, first, "
            "last, step, protocol, inside, at, n) CROSS JOIN LATERAL (SELECT open, lower(during) "
            "AS start FROM log_intervals WHERE realm_id = %(realm)s AND public = w.public AND "
            "port_first = w.first AND port_last = w.last AND port_step = w.step AND protocol = "
            "w.protocol AND inside = w.inside AND (lower_inf(during) OR lower(during) < w.at) "
            "ORDER BY during DESC LIMIT 1) AS x",
            {
                "realm": realm_id,
                "publics": list(columns[0]),
                "firsts": list(columns[1]),
                "lasts": list(columns[2]),
                "steps": list(columns[3]),
                "protocols": list(columns[4]),
                "insides": list(columns[5]),
                "ats": [instant(at) for _, at in asked],
            },
        )
        for n, opened, start in cur.fetchall():
            found[n - 1] = (bool(opened), None if start is None else micros(start))
    return found


def delete_rows(conn: psycopg.Connection[Any], ctids: list[str]) -> None:
    """Delete interval rows by ctid (read in this transaction, the realm locked: they stay put)."""
    if ctids:
        conn.execute("DELETE FROM log_intervals WHERE ctid = ANY(%s::tid[])", (ctids,))


def copy_text(value: str) -> str:
    """``value`` escaped for COPY's text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def insert_intervals(session: Session, rows: Iterable[str]) -> None:
    """COPY interval rows (tab-separated, escaped, newline-terminated: :data:`INTERVAL_COPY`)."""
    copy_intervals(raw_connection(session), rows)


def copy_intervals(conn: psycopg.Connection[Any], rows: Iterable[str]) -> None:
    """:func:`insert_intervals` on the session's psycopg connection (usable from another thread
    while the session waits)."""
    with conn.cursor() as cur, cur.copy(f"COPY log_intervals ({INTERVAL_COPY}) FROM STDIN") as copy:
        copy.write("".join(rows))


INTERVAL_COPY = (
    "realm_id, public, port_first, port_last, port_step, protocol, inside, during, ports, open, "
    "unknown_start, conflict, lines, interim_deadline"
)
INTERVAL_COLUMNS = (
    "realm_id, public, port_first, port_last, port_step, protocol, inside, during, open, "
    "unknown_start, conflict, lines, interim_deadline"
)


def all_intervals(session: Session, realm_id: int) -> Iterator[Any]:
    """Every interval row of the realm."""
    rows = session.execute(
        text(
            f"SELECT {INTERVAL_COLUMNS} FROM log_intervals WHERE realm_id = :r ORDER BY public"
        ).execution_options(yield_per=20_000),
        {"r": realm_id},
    )
    yield from rows


def intervals_touching(
    session: Session, realm_id: int, start: datetime | None, end: datetime | None
) -> Iterator[Any]:
    """The realm's interval rows that touch ``[start, end]`` (None: unbounded)."""
    rows = session.execute(
        text(
            f"SELECT {INTERVAL_COLUMNS} FROM log_intervals WHERE realm_id = :r "
            "AND during && tstzrange(:start, :end, '[]') ORDER BY public, port_first, during"
        ).execution_options(yield_per=20_000),
        {"r": realm_id, "start": start, "end": end},
    )
    yield from rows


def log_hold(session: Session, realm_id: int) -> timedelta | None:
    """The hold the realm's latest ingest declaring one declared (None: never declared)."""
    found: timedelta | None = session.scalar(
        text(_LATEST.format(column="log_hold")), {"r": realm_id}
    )
    return found


def log_interim(session: Session, realm_id: int) -> timedelta | None:
    """The interim period the realm's latest ingest declaring one declared (None: never)."""
    found: timedelta | None = session.scalar(
        text(_LATEST.format(column="log_interim")), {"r": realm_id}
    )
    return found


# The latest declaration of a realm's log hold or interim period (an ingest declaring none keeps
# the one before).
_LATEST = (
    "SELECT {column} FROM log_ingests WHERE realm_id = :r AND {column} IS NOT NULL "
    "ORDER BY id DESC LIMIT 1"
)
_LATEST_OF = (
    "(SELECT g.{column} FROM log_ingests g WHERE g.realm_id = i.realm_id AND g.{column} IS NOT "
    "NULL ORDER BY g.id DESC LIMIT 1) AS {name}"
)
_PERIODS = (
    _LATEST_OF.format(column="log_hold", name="hold")
    + ", "
    + _LATEST_OF.format(column="log_interim", name="interim")
)


class Position(NamedTuple):
    """Where the last ingest of a file identity ended: the byte offset, the lines read of that
    file from its start, and the fingerprint of its start as read (None: stdin, or made before
    migration 0012)."""

    offset: int
    lines: int
    head_sha256: str | None
    head_bytes: int | None


def position(session: Session, realm_id: int, identity: str) -> Position:
    """Where the latest ingest of the file with this identity ended (0 if none). ``lines``: the
    lines read since the latest ingest of it that read from its start (byte 0): a file truncated
    in place, or a new one on a freed inode, counts its lines anew."""
    row = session.execute(
        text(
            "WITH mine AS (SELECT id, offset_from, offset_to, lines_read, head_sha256, head_bytes "
            "FROM log_ingests WHERE realm_id = :r AND file_identity = :i), "
            "since AS (SELECT coalesce(max(id), 0) AS id FROM mine WHERE offset_from = 0) "
            "SELECT m.offset_to, (SELECT sum(lines_read) FROM mine, since WHERE mine.id >= "
            "since.id), m.head_sha256, m.head_bytes FROM mine m ORDER BY m.id DESC LIMIT 1"
        ),
        {"r": realm_id, "i": identity},
    ).one_or_none()
    if row is None:
        return Position(0, 0, None, None)
    return Position(int(row[0]), int(row[1]), row[2], row[3])


def last_identity(session: Session, realm_id: int, file: str) -> str | None:
    """The identity of the file this name was last ingested from (for rotation)."""
    return session.execute(
        text(
            "SELECT file_identity FROM log_ingests WHERE realm_id = :r AND file = :f "
            "AND file_identity IS NOT NULL ORDER BY id DESC LIMIT 1"
        ),
        {"r": realm_id, "f": file},
    ).scalar_one_or_none()


def ingest_of_event(session: Session, realm: str, at: datetime, sha256: str) -> int | None:
    """The ingest that stored the event of ``realm`` at ``at`` read from the line ``sha256``
    (None: no such event is stored, e.g. its month was pruned)."""
    found = session.scalar(
        text(
            "SELECT e.ingest_id FROM log_events e JOIN realms r ON r.id = e.realm_id "
            "WHERE r.name = :realm AND e.at = :at AND e.line_sha256 = :sha"
        ),
        {"realm": realm, "at": at, "sha": sha256},
    )
    return None if found is None else int(found)


def ingests_of_file(session: Session, realm: str, file: str, month: str) -> list[int]:
    """The ingests of ``realm`` that read a file named ``file`` and stored events of ``month``
    (``YYYY-MM``), by id."""
    return [
        int(i)
        for i in session.scalars(
            text(
                "SELECT i.id FROM log_ingests i JOIN realms r ON r.id = i.realm_id "
                "WHERE r.name = :realm AND i.file = :file AND i.months ? :month ORDER BY i.id"
            ),
            {"realm": realm, "file": file, "month": month},
        )
    ]


def ingest_entry_seqs(session: Session, ingests: Iterable[int]) -> list[int]:
    """The seqs of the ``logs.ingest`` audit entries that recorded ``ingests``, in order."""
    wanted = sorted(set(ingests))
    if not wanted:
        return []
    return [
        int(seq)
        for seq in session.scalars(
            text(
                "SELECT seq FROM audit_log WHERE action = 'logs.ingest' "
                "AND (detail -> 'record' ->> 'ingest')::bigint = ANY(:ids) ORDER BY seq"
            ),
            {"ids": wanted},
        )
    ]


def months(session: Session, realm_id: int) -> list[str]:
    """The months the realm has events in, as ``YYYY-MM``."""
    return list(
        session.scalars(
            text(
                "SELECT DISTINCT to_char(at AT TIME ZONE 'UTC', 'YYYY-MM') FROM log_events "
                "WHERE realm_id = :r ORDER BY 1"
            ),
            {"r": realm_id},
        )
    )


def drop_month(session: Session, realm_id: int, month: str) -> None:
    """Drop a realm's events of one month ``YYYY-MM``: its whole partition (no row is deleted)."""
    name = f"log_events_r{int(realm_id)}_{month[:4]}m{month[5:7]}"
    session.execute(text(f"DROP TABLE IF EXISTS log_partitions.{name}"))


# -- lookups: one round trip (and the async twin for the API's lookup path) -----------------------

# The span of ports of an interval, and its bounds with none taken as infinite: columns of the
# B-tree ``ix_log_intervals_block_time`` (migration 0010), written as it is.
_SPAN = "(port_last - port_first)"
_FROM = "coalesce(lower(during), '-infinity'::timestamptz)"
_TO = "coalesce(upper(during), 'infinity'::timestamptz)"
# The (realm, span) pairs the intervals have, ``{realm}`` an extra condition: the index's first
# two columns walked from one distinct pair to the next, the next span of the realm or else the
# first of the next realm (a descent each; a realm's blocks have few shapes).
_SHAPES = (
    "WITH RECURSIVE shapes(realm_id, span) AS ("
    f"(SELECT realm_id, {_SPAN} FROM log_intervals WHERE true{{realm}} "
    f"ORDER BY realm_id, {_SPAN} LIMIT 1) "
    "UNION ALL SELECT x.* FROM shapes h CROSS JOIN LATERAL ("
    f"(SELECT realm_id, {_SPAN} FROM log_intervals WHERE realm_id = h.realm_id AND {_SPAN} > "
    f"h.span{{realm}} ORDER BY {_SPAN} LIMIT 1) UNION ALL "
    f"(SELECT realm_id, {_SPAN} FROM log_intervals WHERE realm_id > h.realm_id{{realm}} "
    f"ORDER BY realm_id, {_SPAN} LIMIT 1) LIMIT 1) AS x) "
)
_SHOWN_COLUMNS = (
    "SELECT i.realm_id, i.public, i.port_first, i.port_last, i.port_step, i.protocol, i.inside, "
    "i.during, i.open, i.unknown_start, i.conflict, i.lines, i.interim_deadline, "
    "r.name AS realm_name, " + _PERIODS + ", "
    "(SELECT coalesce(jsonb_object_agg(l->>4, (SELECT e.raw FROM log_events e WHERE "
    "e.realm_id = i.realm_id AND e.at = to_timestamp(0) + (l->>1)::bigint * interval "
    "'1 microsecond' AND e.line_sha256 = l->>4)), '{{}}'::jsonb) "
    "FROM jsonb_array_elements(i.lines) AS l) AS texts "
)
_SHOWN = _SHOWN_COLUMNS + "FROM log_intervals i JOIN realms r ON r.id = i.realm_id "
# The intervals that hold ``{key}`` (public * 65536 + port) at some instant of the closed window
# ``[{start}, {end}]``, as the batch's DECIDING finds them: per shape, the B-tree range of
# ``port_first`` in ``[port - span, port]`` of the address, the window tested on the index
# entries; then the window exactly and the step (a GiST probe on ``(ports, during)`` found them
# before: ``tests/logs/test_batch_index.py`` holds the two alike).
_ANSWERING = (
    _SHAPES.format(realm="")
    + _SHOWN_COLUMNS
    + "FROM shapes h CROSS JOIN LATERAL (SELECT * FROM log_intervals WHERE realm_id = h.realm_id "
    f"AND {_SPAN} = h.span AND public = CAST({{key}} AS bigint) >> 16 AND port_first >= "
    "CAST({port} AS integer) - h.span AND port_first <= CAST({port} AS integer) AND "
    f"{_FROM} <= CAST({{end}} AS timestamptz) AND {_TO} >= CAST({{start}} AS timestamptz) "
    "OFFSET 0) AS i JOIN realms r ON r.id = i.realm_id "
    "WHERE i.during && tstzrange({start}, {end}, '[]') AND ({port} - i.port_first) {mod} "
    "i.port_step = 0"
)
# A subscriber's logged blocks at an instant (forward lookups): inside keys in its prefix.
_HELD_BY = (
    _SHOWN + "WHERE i.during @> CAST({at} AS timestamptz) AND "
    "CAST(i.inside AS inet) <<= CAST({prefix} AS inet) ORDER BY i.public, i.port_first"
)
ANSWERING = _ANSWERING.format(key=":key", start=":start", end=":end", port=":port", mod="%")
ANSWERING_ASYNC = _ANSWERING.format(
    key="%(key)s", start="%(start)s", end="%(end)s", port="%(port)s", mod="%%"
)


def answering(
    session: Session, public: int, port: int, start: datetime, end: datetime
) -> list[Any]:
    """The interval rows (with ``realm_name``, ``hold``, ``interim``, ``texts``) that hold
    ``public:port`` at some instant of ``[start, end]``."""
    params = {"key": public * 65536 + port, "start": start, "end": end, "port": port}
    return list(session.execute(text(ANSWERING), params))


async def answering_async(
    conn: Any, public: int, port: int, start: datetime, end: datetime
) -> list[Any]:
    from psycopg.rows import namedtuple_row

    params = {"key": public * 65536 + port, "start": start, "end": end, "port": port}
    async with conn.cursor(row_factory=namedtuple_row) as cur:
        await cur.execute(ANSWERING_ASYNC, params)
        return list(await cur.fetchall())


def has_logs(session: Session, realm: str | None) -> bool:
    """Whether the realm named (None: any realm) has logs."""
    query = "SELECT EXISTS (SELECT 1 FROM log_ingests i"
    if realm is not None:
        query += " JOIN realms r ON r.id = i.realm_id WHERE r.name = :realm"
    return bool(session.scalar(text(query + ")"), {"realm": realm}))


async def has_logs_async(conn: Any, realm: str | None) -> bool:
    query = "SELECT EXISTS (SELECT 1 FROM log_ingests i"
    if realm is not None:
        query += " JOIN realms r ON r.id = i.realm_id WHERE r.name = %(realm)s"
    cur = await conn.execute(query + ")", {"realm": realm})
    row = await cur.fetchone()
    return bool(row and row[0])


HELD_BY = _HELD_BY.format(at=":at", prefix=":prefix")
HELD_BY_ASYNC = _HELD_BY.format(at="%(at)s", prefix="%(prefix)s")


def held_by(session: Session, prefix: str, at: datetime) -> list[Any]:
    """The interval rows (as :func:`answering`) of inside keys in ``prefix`` at ``at``."""
    return list(session.execute(text(HELD_BY), {"prefix": prefix, "at": at}))


async def held_by_async(conn: Any, prefix: str, at: datetime) -> list[Any]:
    from psycopg.rows import namedtuple_row

    async with conn.cursor(row_factory=namedtuple_row) as cur:
        await cur.execute(HELD_BY_ASYNC, {"prefix": prefix, "at": at})
        return list(await cur.fetchall())


# A realm's intervals that hold at some instant of a period (snapshot exports).
_DURING = (
    "SELECT i.public, i.port_first, i.port_last, i.port_step, i.protocol, i.inside, i.during, "
    "i.open, i.unknown_start, i.conflict, i.lines, i.interim_deadline FROM log_intervals i "
    "JOIN realms r ON "
    "r.id = i.realm_id WHERE r.name = :realm AND i.during && tstzrange(:start, :end, '[]') "
    "ORDER BY i.public, i.port_first, i.port_last, i.port_step, i.protocol, i.inside, "
    "lower(i.during) NULLS FIRST"
)


def during(session: Session, realm: str, start: datetime, end: datetime) -> Iterator[Any]:
    """The interval rows of ``realm`` that hold at some instant of ``[start, end]``, in one
    fixed order, streamed."""
    params = {"realm": realm, "start": start, "end": end}
    yield from session.execute(text(_DURING).execution_options(yield_per=10_000), params)


_MANY = (
    "SELECT q.n, i.realm_id, i.public, i.port_first, i.port_last, i.port_step, i.protocol, "
    "i.inside, i.during, i.open, i.unknown_start, i.conflict, i.lines, i.interim_deadline, "
    "r.name AS realm_name, " + _PERIODS + ", '{}'::jsonb AS texts "
    "FROM unnest(CAST(:ns AS integer[]), CAST(:keys AS bigint[]), CAST(:starts AS bigint[]), "
    "CAST(:ends AS bigint[]), CAST(:ports AS integer[])) AS q(n, key, s, e, port) "
    "JOIN log_intervals i ON i.ports @> q.key AND i.during && tstzrange(to_timestamp(0) + q.s "
    "* interval '1 microsecond', to_timestamp(0) + q.e * interval '1 microsecond', '[]') "
    "AND (q.port - i.port_first) % i.port_step = 0 JOIN realms r ON r.id = i.realm_id"
)


def answering_many(
    session: Session,
    rows: list[int],
    keys: list[int],
    starts: list[int],
    ends: list[int],
    ports: list[int],
) -> list[Any]:
    """:func:`answering` for many questions at once (row ``n``, without the line texts)."""
    params = {"ns": rows, "keys": keys, "starts": starts, "ends": ends, "ports": ports}
    return list(session.execute(text(_MANY), params))


# What decides a batch row's answer (detnat.logs.intervals.decide) of each interval that holds
# it: the inside key, the flags and the seen part (Interval.seen_from_us / seen_to_us, from the
# bounds, or the lines' instants where a bound is assumed). One row per (question, interval).
# Instants are built from whole seconds and microseconds so every product is exact; the arrays go
# in binary.
_AT = (
    "to_timestamp(0) + (q.{x} / 1000000) * interval '1 second' + (q.{x} %% 1000000) * "
    "interval '1 microsecond'"
)
_LINE_AT = "(SELECT {f}((l->>1)::bigint) FROM jsonb_array_elements(i.lines) AS l)"
# The questions: ``key`` = public * 65536 + port and the closed window ``[s, e]``, sent as binary
# arrays (:func:`deciding_params`), numbered from 0 in the order sent.
_QUESTIONS = (
    "(SELECT u.n - 1 AS n, u.key >> 16 AS public, (u.key & 65535)::integer AS port, u.s, u.e "
    "FROM unnest(%(keys)b, %(starts)b, %(ends)b) WITH ORDINALITY AS u(key, s, e, n)) AS q"
)
# Per question and shape, the intervals of that realm and span holding the port whose bounds reach
# the window: the index range ``port_first`` in ``[port - span, port]`` of the address, the window
# tested on the index entries; then the window exactly (the range's own bounds) and the step.
# (The subquery stands alone, ``OFFSET 0``: one walk of the index per question and shape.) The
# seen part as instants (binary: exact µs), from the bounds or else the lines.
_SEEN_FROM = (
    "CASE WHEN i.unknown_start OR lower_inf(i.during) THEN "
    + _AT.format(x="f").replace("q.f", "s.f")
    + " ELSE lower(i.during) END"
)
_SEEN_TO = (
    "CASE WHEN NOT i.open AND NOT upper_inf(i.during) THEN upper(i.during) - interval "
    "'1 microsecond' ELSE " + _AT.format(x="t").replace("q.t", "s.t") + " END"
)
_DECIDING_ROWS = (
    "SELECT q.n, i.inside, i.open, i.unknown_start, i.conflict, "
    + _SEEN_FROM
    + ", "
    + _SEEN_TO
    + ", i.realm_id::bigint "
    f"FROM {_QUESTIONS} CROSS JOIN shapes h "
    "CROSS JOIN LATERAL (SELECT * FROM log_intervals WHERE realm_id = h.realm_id AND "
    f"{_SPAN} = h.span AND public = q.public AND port_first >= q.port - h.span AND "
    f"port_first <= q.port AND {_FROM} <= q.e AND {_TO} >= q.s OFFSET 0) AS i "
    "CROSS JOIN LATERAL (SELECT "
    "CASE WHEN i.unknown_start OR lower_inf(i.during) THEN " + _LINE_AT.format(f="min") + " END, "
    "CASE WHEN i.open OR upper_inf(i.during) THEN " + _LINE_AT.format(f="max") + " END) AS s(f, t) "
    "WHERE i.during && tstzrange(q.s, q.e, '[]') AND (q.port - i.port_first) %% i.port_step = 0"
)
# The rows above as one row of columns (arrays in binary, the inside keys one text: no row per
# interval to send and read; every aggregate reads the rows in the same order).
_DECIDING = (
    "SELECT array_agg(n), string_agg(inside, E'\\n'), array_agg(open), array_agg(unknown_start), "
    "array_agg(conflict), array_agg(seen_from), array_agg(seen_to), array_agg(realm_id) FROM ("
    + _DECIDING_ROWS
    + ") AS d(n, inside, open, unknown_start, conflict, seen_from, seen_to, realm_id)"
)
DECIDING = _SHAPES.format(realm="") + _DECIDING
_IN_REALM = " AND realm_id = (SELECT id FROM realms WHERE name = %(realm)s)"
DECIDING_IN_REALM = _SHAPES.format(realm=_IN_REALM) + _DECIDING

# The inside keys that held a port block on an address at some instant of a closed window, per
# question ``n`` (a complaint without a source port counts them and names none).
SHARING = (
    "SELECT DISTINCT q.n, i.inside FROM unnest(%(ns)b::integer[], %(ips)b::bigint[], "
    "%(starts)b::bigint[], %(ends)b::bigint[]) AS q(n, ip, s, e) "
    "JOIN log_intervals i ON i.ports && int8range(q.ip * 65536, q.ip * 65536 + 65536) "
    "AND i.during && tstzrange(" + _AT.format(x="s") + ", " + _AT.format(x="e") + ", '[]')"
)
SHARING_IN_REALM = SHARING + " AND i.realm_id = (SELECT id FROM realms WHERE name = %(realm)s)"


def without_jit(conn: psycopg.Connection[Any]) -> None:
    """No JIT compilation for the rest of the transaction: a chunk's query is costed high (many
    index probes) and compiling it takes longer than running it."""
    conn.execute("SET LOCAL jit = off")


class Decided(NamedTuple):
    """The rows of :data:`DECIDING` as columns (numpy arrays; ``inside`` a list), one per
    (question, interval that holds it): the question ``n``, the interval's inside key, flags,
    seen part (:attr:`~detnat.logs.intervals.Interval.seen_from_us` and ``seen_to_us``) and
    realm id."""

    n: Any
    inside: list[str]
    open: Any
    unknown_start: Any
    conflict: Any
    seen_from_us: Any
    seen_to_us: Any
    realm_id: Any

    def rows(self) -> list[tuple[int, str, bool, bool, bool, int, int, int]]:
        """The rows, one tuple each (in the order of the columns)."""
        columns = [c if isinstance(c, list) else c.tolist() for c in self]
        return list(zip(*columns, strict=True))


def deciding(
    conn: psycopg.Connection[Any], realm: str | None, keys: Any, starts: Any, ends: Any
) -> Decided:
    """For each question ``n`` (from 0: ``keys[n]`` = public * 65536 + port, the closed window
    ``[starts[n], ends[n]]`` in µs; numpy int64 arrays), the intervals that hold it (of ``realm``;
    None: any): one query, one row of arrays back."""
    import numpy as np

    with with_arrays(conn.cursor(binary=True)) as cur:
        cur.adapters.register_loader(1016, _Int8ArrayLoader)  # int8[]
        cur.adapters.register_loader(1000, _BoolArrayLoader)  # bool[]
        cur.adapters.register_loader(1185, _InstantArrayLoader)  # timestamptz[]
        cur.execute(
            DECIDING if realm is None else DECIDING_IN_REALM,
            deciding_params(realm, keys, starts, ends),
        )
        row = cur.fetchone()
    assert row is not None
    n, inside, opened, unknown, conflict, seen_from, seen_to, realm_id = row
    if n is None:  # no interval holds any question
        nothing, flags = np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.bool_)
        return Decided(nothing, [], flags, flags, flags, nothing, nothing, nothing)
    insides = inside.split("\n")
    if len(insides) != len(n):
        raise ValueError("an inside key of log_intervals holds a line break")
    return Decided(n, insides, opened, unknown, conflict, seen_from, seen_to, realm_id)


def deciding_params(realm: str | None, keys: Any, starts: Any, ends: Any) -> dict[str, Any]:
    """The parameters of :data:`DECIDING` (``realm`` None) or :data:`DECIDING_IN_REALM`."""
    params: dict[str, Any] = {
        "keys": Int8Array(keys),
        "starts": InstantArray(starts),
        "ends": InstantArray(ends),
    }
    if realm is not None:
        params["realm"] = realm
    return params


def realm_names(conn: psycopg.Connection[Any]) -> dict[int, str]:
    """Every realm's name by id."""
    with conn.cursor() as cur:
        cur.execute("SELECT id, name FROM realms")
        return {int(i): str(name) for i, name in cur.fetchall()}


class Int8Array:
    """Integers (a numpy array or a sequence) sent as a binary ``bigint[]`` built by numpy in one
    go (psycopg's own dumper packs each element in Python)."""

    __slots__ = ("data",)
    oid = 20  # int8
    offset = 0

    def __init__(self, values: Any) -> None:
        import numpy as np  # batches only: a single lookup starts without it

        a = np.asarray(values, dtype=np.int64) - self.offset
        if not len(a):
            self.data = struct.pack(">iiI", 0, 0, self.oid)
            return
        body = np.empty(len(a), dtype=[("size", ">i4"), ("value", ">i8")])
        body["size"] = 8
        body["value"] = a
        self.data = struct.pack(">iiIii", 1, 0, self.oid, len(a), 1) + body.tobytes()


class InstantArray(Int8Array):
    """Instants in µs since 1970 sent as a binary ``timestamptz[]`` (µs since 2000 on the wire:
    exact, no arithmetic on the server)."""

    __slots__ = ()
    oid = 1184  # timestamptz
    offset = 946_684_800_000_000  # 2000-01-01 in µs since 1970


class _Int8ArrayDumper(psycopg.adapt.Dumper):
    format = psycopg.pq.Format.BINARY
    oid = 1016  # int8[]

    def dump(self, obj: Any) -> bytes:
        data: bytes = obj.data
        return data


class _InstantArrayDumper(_Int8ArrayDumper):
    oid = 1185  # timestamptz[]


class _Int8ArrayLoader(psycopg.adapt.Loader):
    """A binary one-dimensional ``bigint[]`` without NULLs as a numpy int64 array."""

    format = psycopg.pq.Format.BINARY
    element = ">i8"
    offset = 0

    def load(self, data: Any) -> Any:
        import numpy as np

        dims, nulls, _ = struct.unpack_from(">iiI", data)
        if dims == 0:
            return np.zeros(0, dtype=np.dtype(self.element).newbyteorder("="))
        if dims != 1 or nulls:
            raise ValueError("want a one-dimensional array without NULLs")
        (count,) = struct.unpack_from(">i", data, 12)
        kind = np.dtype([("size", ">i4"), ("value", self.element)])
        values = np.frombuffer(data, dtype=kind, count=count, offset=20)["value"]
        return values.astype(np.dtype(self.element).newbyteorder("=")) + self.offset


class _BoolArrayLoader(_Int8ArrayLoader):
    element = "?"


class _InstantArrayLoader(_Int8ArrayLoader):
    """A binary ``timestamptz[]`` of finite instants as µs since 1970 (µs since 2000 on the
    wire; an infinite one is refused, as the text of its epoch would be)."""

    offset = InstantArray.offset

    def load(self, data: Any) -> Any:
        import numpy as np

        values = super().load(data)
        wire = values - self.offset
        limits = np.iinfo(np.int64)
        if len(values) and (int(wire.max()) == limits.max or int(wire.min()) == limits.min):
            raise ValueError("an infinite instant")
        return values


def with_arrays(cur: psycopg.Cursor[Any]) -> psycopg.Cursor[Any]:
    """``cur`` able to send :class:`Int8Array` and :class:`InstantArray`."""
    cur.adapters.register_dumper(Int8Array, _Int8ArrayDumper)
    cur.adapters.register_dumper(InstantArray, _InstantArrayDumper)
    return cur


def sharing(
    conn: psycopg.Connection[Any],
    realm: str | None,
    ips: list[int],
    starts: list[int],
    ends: list[int],
) -> list[tuple[int, str]]:
    """For each question ``n`` (an address, the closed window ``[start, end]`` in µs), the inside
    keys of the intervals (of ``realm``; None: any) on that address in the window, as (n,
    inside): one query."""
    params: dict[str, Any] = {"ns": list(range(len(ips))), "ips": ips}
    params |= {"starts": starts, "ends": ends}
    if realm is not None:
        params["realm"] = realm
    with conn.cursor() as cur:
        cur.execute(SHARING if realm is None else SHARING_IN_REALM, params)
        return cur.fetchall()
