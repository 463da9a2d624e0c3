"""Queries over the log tables (migration 0005): events in by COPY, intervals in and out.

Rows in, rows out; the rules live in :mod:`detnat.service.logs` and :mod:`detnat.logs.intervals`.
Events go through a temporary staging table filled by ``COPY`` (one round trip per chunk, no row
inserts), then into ``log_events`` with ``ON CONFLICT DO NOTHING``: a line already stored is a
duplicate, counted, not stored again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
from sqlalchemy import text
from sqlalchemy.orm import Session

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# The text of one event row that an ingest's digest covers (``audit verify`` recomputes it): every
# column, so no column can change unseen. Postgres computes it at ingest and at verify alike.
ROW_TEXT = (
    "concat_ws('|', e.realm_id, (extract(epoch FROM e.at) * 1000000)::bigint, e.line_sha256, "
    "e.ingest_id, e.kind, e.inside, e.public, e.port_first, e.port_last, e.port_step, "
    "e.protocol, e.file, e.line, e.raw)"
)
MONTH = "to_char(e.at AT TIME ZONE 'UTC', 'YYYY-MM')"

STAGE = """
CREATE TEMPORARY TABLE IF NOT EXISTS log_stage (
    at_us bigint, line_sha256 text, kind text, inside text, public bigint, port_first integer,
    port_last integer, port_step integer, protocol text, file text, line bigint, raw text
) ON COMMIT DROP
"""
COLUMNS = (
    "at_us, line_sha256, kind, inside, public, port_first, port_last, port_step, protocol, "
    "file, line, raw"
)


def raw_connection(session: Session) -> psycopg.Connection[Any]:
    """The psycopg connection under the session's transaction (for COPY)."""
    conn = session.connection().connection.driver_connection
    assert isinstance(conn, psycopg.Connection)
    return conn


def instant(at_us: int) -> datetime:
    return EPOCH + timedelta(microseconds=at_us)


def micros(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


def stage(session: Session, rows: Iterable[bytes]) -> None:
    """COPY tab-separated rows (already escaped, newline-terminated) into ``log_stage``."""
    session.execute(text(STAGE))
    conn = raw_connection(session)
    with conn.cursor() as cur, cur.copy(f"COPY log_stage ({COLUMNS}) FROM STDIN") as copy:
        for chunk in rows:
            copy.write(chunk)


def ensure_partitions(session: Session, realm_id: int) -> None:
    """Make the realm's month partitions the staged rows need."""
    session.execute(
        text(
            "SELECT log_events_partition(:realm, m) FROM (SELECT DISTINCT date_trunc('month', "
            "to_timestamp(at_us / 1000000.0) AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' AS m "
            "FROM log_stage) s"
        ),
        {"realm": realm_id},
    )


def store_staged(session: Session, realm_id: int, ingest_id: int) -> list[tuple[str, str]]:
    """Insert the staged rows not stored yet; (month, row digest) of each row inserted. Empties
    the stage."""
    found = session.execute(
        text(
            "WITH e AS (INSERT INTO log_events (realm_id, at, line_sha256, ingest_id, kind, "
            "inside, public, port_first, port_last, port_step, protocol, file, line, raw) "
            "SELECT :realm, to_timestamp(0) + at_us * interval '1 microsecond', line_sha256, "
            ":ingest, kind, inside, public, port_first, port_last, port_step, protocol, file, "
            "line, raw FROM log_stage ON CONFLICT DO NOTHING RETURNING *) "
            f"SELECT {MONTH}, encode(sha256(convert_to({ROW_TEXT}, 'UTF8')), 'hex') FROM e"
        ),
        {"realm": realm_id, "ingest": ingest_id},
    ).all()
    session.execute(text("TRUNCATE log_stage"))
    return [(m, h) for m, h in found]


def staged_publics(session: Session) -> set[int]:
    return set(session.scalars(text("SELECT DISTINCT public FROM log_stage")))


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


def events(
    session: Session, realm_id: int, publics: Iterable[int] | None = None
) -> Iterator[tuple[int, list[Any]]]:
    """The realm's events, one public address at a time (memory: one address's events)."""
    query = (
        "SELECT public, at, line_sha256, kind, inside, port_first, port_last, port_step, "
        "protocol, file, line FROM log_events WHERE realm_id = :realm"
    )
    params: dict[str, Any] = {"realm": realm_id}
    if publics is not None:
        query += " AND public = ANY(:publics)"
        params["publics"] = sorted(publics)
    rows = session.execute(
        text(query + " ORDER BY public").execution_options(yield_per=20_000), params
    )
    current: int | None = None
    batch: list[Any] = []
    for row in rows:
        if row.public != current:
            if batch and current is not None:
                yield current, batch
            current, batch = row.public, []
        batch.append(row)
    if batch and current is not None:
        yield current, batch


def raw_lines(session: Session, realm_id: int, keys: Iterable[tuple[int, str]]) -> dict[str, str]:
    """The raw text of lines, by (instant in µs, line SHA-256)."""
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = session.execute(
        text(
            "SELECT line_sha256, raw FROM log_events WHERE realm_id = :realm AND "
            "(at, line_sha256) IN (SELECT to_timestamp(0) + a * interval '1 microsecond', s "
            "FROM unnest(CAST(:ats AS bigint[]), CAST(:shas AS text[])) AS u(a, s))"
        ),
        {"realm": realm_id, "ats": [a for a, _ in wanted], "shas": [s for _, s in wanted]},
    )
    return {sha: raw for sha, raw in rows}


def delete_intervals(session: Session, realm_id: int, publics: Iterable[int] | None) -> None:
    if publics is None:
        session.execute(text("DELETE FROM log_intervals WHERE realm_id = :r"), {"r": realm_id})
    else:
        session.execute(
            text("DELETE FROM log_intervals WHERE realm_id = :r AND public = ANY(:p)"),
            {"r": realm_id, "p": sorted(publics)},
        )


def copy_text(value: str) -> str:
    """``value`` escaped for COPY's text format."""
    return (
        value.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def insert_intervals(session: Session, rows: Iterable[str]) -> None:
    """COPY interval rows (tab-separated, escaped, newline-terminated: :data:`INTERVAL_COPY`)."""
    conn = raw_connection(session)
    with conn.cursor() as cur, cur.copy(f"COPY log_intervals ({INTERVAL_COPY}) FROM STDIN") as copy:
        for row in rows:
            copy.write(row)


INTERVAL_COPY = (
    "realm_id, public, port_first, port_last, port_step, protocol, inside, during, ports, open, "
    "unknown_start, conflict, lines"
)
INTERVAL_COLUMNS = (
    "realm_id, public, port_first, port_last, port_step, protocol, inside, during, open, "
    "unknown_start, conflict, lines"
)


def intervals_at(
    session: Session,
    public: int,
    port: int,
    start: datetime,
    end: datetime,
    realm_ids: list[int] | None,
) -> list[Any]:
    """(realm id, interval) of every interval that holds ``public:port`` at some instant of the
    closed window ``[start, end]`` (the GiST index on ``(ports, during)``)."""
    query = (
        f"SELECT {INTERVAL_COLUMNS} FROM log_intervals WHERE ports @> CAST(:key AS bigint) "
        "AND during && tstzrange(:start, :end, '[]') "
        "AND (:port - port_first) % port_step = 0"
    )
    params: dict[str, Any] = {
        "key": public * 65536 + port,
        "start": start,
        "end": end,
        "port": port,
    }
    if realm_ids is not None:
        query += " AND realm_id = ANY(:realms)"
        params["realms"] = realm_ids
    return list(session.execute(text(query), params))


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


def realms_with_logs(session: Session) -> set[int]:
    return set(session.scalars(text("SELECT DISTINCT realm_id FROM log_ingests")))


def log_hold(session: Session, realm_id: int) -> timedelta | None:
    """The hold the realm's latest ingest declared (None: never declared)."""
    found: timedelta | None = session.scalar(
        text(
            "SELECT log_hold FROM log_ingests WHERE realm_id = :r AND log_hold IS NOT NULL "
            "ORDER BY id DESC LIMIT 1"
        ),
        {"r": realm_id},
    )
    return found


def position(session: Session, realm_id: int, identity: str) -> tuple[int, int]:
    """(byte offset, lines) already read of the file with this identity."""
    row = session.execute(
        text(
            "SELECT coalesce(max(offset_to), 0), coalesce(sum(lines_read), 0) FROM log_ingests "
            "WHERE realm_id = :r AND file_identity = :i"
        ),
        {"r": realm_id, "i": identity},
    ).one()
    return int(row[0]), int(row[1])


def identities(session: Session, realm_id: int, file: str) -> list[str]:
    """The identities a file name has had, oldest first (for rotation)."""
    rows = session.execute(
        text(
            "SELECT file_identity FROM log_ingests WHERE realm_id = :r AND file = :f "
            "AND file_identity IS NOT NULL GROUP BY file_identity ORDER BY min(id)"
        ),
        {"r": realm_id, "f": file},
    )
    return [r[0] for r in rows]


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


# -- the lookup path's async connection (the API's single lookups) ---------------------------------

LOGGED_REALMS = (
    "SELECT r.id, r.name, (SELECT i.log_hold FROM log_ingests i WHERE i.realm_id = r.id AND "
    "i.log_hold IS NOT NULL ORDER BY i.id DESC LIMIT 1) FROM realms r "
    "WHERE EXISTS (SELECT 1 FROM log_ingests i WHERE i.realm_id = r.id)"
)
_INTERVALS_AT = (
    f"SELECT {INTERVAL_COLUMNS} FROM log_intervals WHERE ports @> %(key)s::bigint "
    "AND during && tstzrange(%(start)s, %(end)s, '[]') AND (%(port)s - port_first) %% port_step = 0"
)
_RAW = (
    "SELECT line_sha256, raw FROM log_events WHERE realm_id = %(realm)s AND (at, line_sha256) IN "
    "(SELECT to_timestamp(0) + a * interval '1 microsecond', s FROM unnest(%(ats)s::bigint[], "
    "%(shas)s::text[]) AS u(a, s))"
)


def logged_realms(session: Session) -> dict[int, tuple[str, timedelta | None]]:
    """Realm id -> (name, declared log hold) of every realm with logs."""
    return {r[0]: (r[1], r[2]) for r in session.execute(text(LOGGED_REALMS))}


async def logged_realms_async(conn: Any) -> dict[int, tuple[str, timedelta | None]]:
    cur = await conn.execute(LOGGED_REALMS)
    return {r[0]: (r[1], r[2]) for r in await cur.fetchall()}


async def intervals_at_async(
    conn: Any, public: int, port: int, start: datetime, end: datetime
) -> list[Any]:
    from psycopg.rows import namedtuple_row

    async with conn.cursor(row_factory=namedtuple_row) as cur:
        await cur.execute(
            _INTERVALS_AT,
            {"key": public * 65536 + port, "start": start, "end": end, "port": port},
        )
        return list(await cur.fetchall())


async def raw_lines_async(
    conn: Any, realm_id: int, keys: Iterable[tuple[int, str]]
) -> dict[str, str]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    cur = await conn.execute(
        _RAW,
        {"realm": realm_id, "ats": [a for a, _ in wanted], "shas": [s for _, s in wanted]},
    )
    return {sha: raw for sha, raw in await cur.fetchall()}
