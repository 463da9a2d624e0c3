"""The rows of ``directory_intervals``: written with COPY, read by prefix and time.

No rules here (the service decides what a row means); this is how rows get in and out fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

from sqlalchemy import text
from sqlalchemy.orm import Session

from detnat.store.repo import AsyncConn

Row = tuple[int, str, str, str, str, str]  # n, prefix, during literal, account, closed, sources

_COPY = "COPY directory_intervals (ingest, n, prefix, during, account, closed, sources) FROM STDIN"
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

# Candidates for one subscriber and window; an open row also gets the start of the next row of
# the same prefix (when its lost Stop is taken to have happened).
_AROUND = (
    "SELECT d.prefix::text, lower(d.during), upper(d.during), d.account, d.closed, d.sources, "
    "CASE WHEN upper_inf(d.during) THEN (SELECT min(lower(o.during)) FROM directory_intervals o "
    "WHERE o.prefix = d.prefix AND lower(o.during) > lower(d.during)) END "
    "FROM directory_intervals d "
    "WHERE d.prefix && CAST({net} AS inet) AND d.during && tstzrange({lo}, {hi}, '[]') "
    "ORDER BY lower(d.during), d.ingest, d.n LIMIT 200"
)
Candidate = tuple[str, datetime, datetime | None, str, str, list[dict[str, Any]], datetime | None]

# The same candidates for many (subscriber, window) asks at once: one statement, each ask joined
# laterally against the GiST index as :data:`_AROUND` asks (same match, order and limit); no
# source lines (batch answers carry the account only).
_AROUND_MANY = (
    "SELECT q.i, c.* FROM unnest(CAST(:nets AS inet[]), CAST(:los AS timestamptz[]), "
    "CAST(:his AS timestamptz[])) WITH ORDINALITY AS q(net, lo, hi, i) "
    "CROSS JOIN LATERAL (SELECT d.prefix::text, lower(d.during), upper(d.during), d.account, "
    "d.closed, CASE WHEN upper_inf(d.during) THEN (SELECT min(lower(o.during)) "
    "FROM directory_intervals o WHERE o.prefix = d.prefix AND lower(o.during) > lower(d.during)) "
    "END FROM directory_intervals d "
    "WHERE d.prefix && q.net AND d.during && tstzrange(q.lo, q.hi, '[]') "
    "ORDER BY lower(d.during), d.ingest, d.n LIMIT 200) c "
    "ORDER BY q.i"
)
Brief = tuple[str, datetime, datetime | None, str, str, datetime | None]  # a Candidate, no lines


def copy_rows(session: Session, ingest: int, rows: Iterable[Row]) -> int:
    """Append the rows of one ingest with COPY (text format); returns how many."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    count = 0
    chunk: list[str] = []
    prefix = f"{ingest}\t"
    with raw.cursor() as cur:
        with cur.copy(_COPY) as copy:
            for n, net, during, account, closed, sources in rows:
                if "\\" in account or "\t" in account or "\n" in account or "\r" in account:
                    account = account.translate(_ESCAPES)
                # JSON text has no raw tab, newline or carriage return: only backslashes to double
                chunk.append(
                    f"{prefix}{n}\t{net}\t{during}\t{account}\t{closed}\t"
                    f"{sources.replace(chr(92), chr(92) * 2)}\n"
                )
                count += 1
                if len(chunk) >= 5000:
                    copy.write("".join(chunk))
                    chunk.clear()
            if chunk:
                copy.write("".join(chunk))
        # fresh statistics (once the COPY is done): without them the planner may scan the whole
        # table for every lookup
        cur.execute("ANALYZE directory_intervals")
    return count


_ANY = "SELECT EXISTS (SELECT 1 FROM directory_intervals)"


def any_rows(session: Session) -> bool:
    return bool(session.execute(text(_ANY)).scalar())


async def any_rows_async(conn: AsyncConn) -> bool:
    cur = await conn.execute(_ANY)
    row = await cur.fetchone()
    return bool(row and row[0])


def around(session: Session, net: str, lo: datetime, hi: datetime) -> list[Candidate]:
    query = text(_AROUND.format(net=":net", lo=":lo", hi=":hi"))
    result = session.execute(query, {"net": net, "lo": lo, "hi": hi})
    return [tuple(r) for r in result]


async def around_async(conn: AsyncConn, net: str, lo: datetime, hi: datetime) -> list[Candidate]:
    cur = await conn.execute(_AROUND.format(net="%s", lo="%s", hi="%s"), (net, lo, hi))
    return [tuple(r) for r in await cur.fetchall()]


def around_many(
    session: Session, asks: list[tuple[str, datetime, datetime]]
) -> dict[int, list[Brief]]:
    """:func:`around` of each (subscriber, lo, hi) of ``asks`` in one statement: ask index ->
    its candidates (asks with none are absent)."""
    if not asks:
        return {}
    nets, los, his = (list(column) for column in zip(*asks, strict=True))
    found: dict[int, list[Brief]] = {}
    result = session.execute(text(_AROUND_MANY), {"nets": nets, "los": los, "his": his})
    for i, *row in result:
        found.setdefault(int(i) - 1, []).append(tuple(row))
    return found


def all_rows(
    session: Session,
) -> Iterator[tuple[int, int, str, datetime, datetime | None, str, str, Any]]:
    """Every row, in (ingest, n) order, read in constant memory (``audit verify``)."""
    result = session.execute(
        text(
            "SELECT ingest, n, prefix::text, lower(during), upper(during), account, closed, "
            "sources FROM directory_intervals ORDER BY ingest, n"
        ).execution_options(yield_per=5000)
    )
    for row in result:
        yield tuple(row)
