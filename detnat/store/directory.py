"""The rows of ``directory_intervals``: written with COPY, read by prefix and time.

No rules here (the service decides what a row means); this is how rows get in and out fast.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import TYPE_CHECKING, Any

from detnat.store.lean import AsyncConn, text

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

_COPY = (
    "COPY directory_intervals (ingest, n, prefix, during, account, closed, sources, realm_id) "
    "FROM STDIN"
)
_ESCAPES = str.maketrans({"\\": "\\\\", "\t": "\\t", "\n": "\\n", "\r": "\\r"})

# Rows one (subscriber, window) is answered from at most, earliest first. A window that more rows
# touch is answered by no account (the service says why): a cut set could leave a holder out.
LIMIT = 200


# Candidates for one subscriber and window (one more than LIMIT, to know when there are more); an
# open row also gets the start of the next row of the same prefix that answers the same question
# (when its lost Stop is taken to have happened), and an open row taken over before the window is
# not a candidate.
#
# Which rows answer (the service's rule, ``docs/directory.md``): a row of a realm answers only
# answers in that realm (``realm``; None: the answer is of no one realm); a row of no realm
# answers any realm, unless the key is ``scoped`` (reused behind every NAT:
# :func:`detnat.directory.model.reused`) and the store holds more than one realm. Takeovers
# follow the same rule, so the rows an answer sees end one another as the Python rule
# (:func:`detnat.directory.resolve.taken_over`) ends them.
def _scope(row: str) -> str:
    return (
        f"(({row}.realm_id IS NULL AND (NOT {{scoped}} OR (SELECT count(*) FROM realms) <= 1)) "
        f"OR {row}.realm_id = (SELECT r.id FROM realms r WHERE r.name = {{realm}}))"
    )


# ``d.prefix && net`` for the B-tree on (prefix, lower(during)) (migration 0009): the prefixes that
# hold ``net`` are equality probes on its supernets at the prefix lengths the directory holds
# (``lens``, of ``net``'s family: :func:`prefix_lengths`, taken at store revision ``rev``; a
# statement that sees another revision probes every length, ``every``), and the prefixes inside
# it one range of the B-tree's order (:func:`_inside`).
_MATCH = (
    "(d.prefix = ANY(ARRAY(SELECT network(set_masklen(CAST({net} AS inet), m.len)) FROM unnest("
    "CASE WHEN (SELECT revision FROM store_revision WHERE id = 1) = {rev} "
    "THEN CAST({lens} AS int2[]) ELSE CAST({every} AS int2[]) END) AS m(len) "
    "WHERE m.len < masklen(CAST({net} AS inet)))) "
    "OR (d.prefix >= network(CAST({net} AS inet)) AND "
    "d.prefix <= set_masklen(broadcast(CAST({net} AS inet)), "
    "CASE family(CAST({net} AS inet)) WHEN 4 THEN 32 ELSE 128 END) "
    "AND d.prefix <<= CAST({net} AS inet)))"
)
_TAKEN = f"o.prefix = d.prefix AND lower(o.during) > lower(d.during) AND {_scope('o')}"
_AROUND = (
    "SELECT d.prefix::text, lower(d.during), upper(d.during), d.account, d.closed, d.sources, "
    "CASE WHEN upper_inf(d.during) THEN (SELECT min(lower(o.during)) FROM directory_intervals o "
    f"WHERE {_TAKEN}) END, "
    "(SELECT r.name FROM realms r WHERE r.id = d.realm_id) "
    "FROM directory_intervals d "
    f"WHERE {_MATCH} AND d.during && tstzrange({{lo}}, {{hi}}, '[]') "
    f"AND {_scope('d')} "
    "AND NOT (upper_inf(d.during) AND EXISTS (SELECT 1 FROM directory_intervals o WHERE "
    f"{_TAKEN} AND lower(o.during) <= {{lo}})) "
    f"ORDER BY lower(d.during), d.ingest, d.n LIMIT {LIMIT + 1}"
)
_AROUND_FIELDS = ("net", "lo", "hi", "scoped", "realm", "rev", "lens", "every")
_AROUND_PG = _AROUND.format(**{k: f"%({k})s" for k in _AROUND_FIELDS})
# prefix, start, end | None, account, closed, sources, next start | None, realm | None; the
# sources as their JSON text (migration 0011; a store not yet migrated gives them decoded)
Sources = str | list[dict[str, Any]]
Candidate = tuple[str, datetime, datetime | None, str, str, Sources, datetime | None, str | None]

# The rows touching many subscribers at once, in set form (complaints batches): each subscriber
# asked once, with the window spanning all its asks. A row matches as :data:`_AROUND` matches
# (``prefix && subscriber``, ``during`` overlapping the window) in two parts: rows whose prefix
# holds the subscriber are B-tree probes on its supernets (``prefix = ANY(supernets)``: a join
# the planner cannot hash, so never a scan of the whole table), rows whose prefix lies strictly
# inside it (a B4 /128 in a delegated /56) one range of the B-tree, only for subscribers that can
# hold one. Supernets are taken only at the prefix lengths the directory holds (per address
# family: :func:`prefix_lengths`), which the statement checks by the store revision it saw. The
# start that ends an open row (a later row of the same prefix) is the next entry of its prefix in
# the B-tree, for the open rows found. Instants go in and out as µs since the epoch (no
# ``datetime`` either way); the caller picks each ask's rows by its own window. Each ask carries
# its realm and whether its key is scoped: rows and takeovers as :func:`_scope` has them.
_AROUND_NETS = """
WITH rev AS (SELECT (SELECT revision FROM store_revision WHERE id = 1) AS revision),
q AS MATERIALIZED (
  SELECT u.i, x.net,
         timestamptz 'epoch' + u.lo * interval '1 microsecond' AS lo,
         timestamptz 'epoch' + u.hi * interval '1 microsecond' AS hi,
         NOT u.scoped OR (SELECT count(*) FROM realms) <= 1 AS anywhere,
         (SELECT r.id FROM realms r WHERE r.name = u.realm) AS realm_id,
         ARRAY(SELECT network(set_masklen(x.net, m.len))
               FROM unnest(CASE family(x.net) WHEN 4 THEN CAST(%(v4)s AS int2[])
                           ELSE CAST(%(v6)s AS int2[]) END) AS m(len)
               WHERE m.len <= masklen(x.net)) AS supernets
  FROM unnest(CAST(%(nets)s AS text[]), CAST(%(los)s AS int8[]), CAST(%(his)s AS int8[]),
              CAST(%(realms)s AS text[]), CAST(%(scoped)s AS bool[]))
       WITH ORDINALITY AS u(net, lo, hi, realm, scoped, i)
  CROSS JOIN LATERAL (SELECT CAST(u.net AS inet) AS net) x
), hit AS MATERIALIZED (
  SELECT q.i, d.ingest, d.n, d.prefix, d.during, d.account, d.closed, d.realm_id
  FROM q JOIN directory_intervals d ON d.prefix = ANY(q.supernets)
  WHERE d.during && tstzrange(q.lo, q.hi, '[]')
    AND ((d.realm_id IS NULL AND q.anywhere) OR d.realm_id = q.realm_id)
  UNION ALL
  SELECT q.i, d.ingest, d.n, d.prefix, d.during, d.account, d.closed, d.realm_id
  FROM q JOIN directory_intervals d ON d.prefix > network(q.net)
   AND d.prefix <= set_masklen(broadcast(q.net), CASE family(q.net) WHEN 4 THEN 32 ELSE 128 END)
   AND d.prefix << q.net
  WHERE masklen(q.net) < CASE family(q.net) WHEN 4 THEN %(v4max)s ELSE %(v6max)s END
    AND d.during && tstzrange(q.lo, q.hi, '[]')
    AND ((d.realm_id IS NULL AND q.anywhere) OR d.realm_id = q.realm_id)
), nxt AS (
  SELECT h.i, h.prefix, h.start,
         (SELECT min(lower(o.during)) FROM directory_intervals o
          WHERE o.prefix = h.prefix AND lower(o.during) > h.start
            AND ((o.realm_id IS NULL AND q.anywhere) OR o.realm_id = q.realm_id)) AS taken
  FROM (SELECT DISTINCT i, prefix, lower(during) AS start FROM hit WHERE upper_inf(during)) h
  JOIN q ON q.i = h.i
), found AS (
  SELECT h.i, h.ingest, h.n, h.prefix::text AS prefix,
         CAST(extract(epoch FROM lower(h.during)) * 1000000 AS int8) AS start,
         CAST(extract(epoch FROM upper(h.during)) * 1000000 AS int8) AS stop,
         h.account, h.closed, CAST(extract(epoch FROM x.taken) * 1000000 AS int8) AS taken
  FROM hit h LEFT JOIN nxt x ON x.i = h.i AND x.prefix = h.prefix AND x.start = lower(h.during)
  WHERE NOT isempty(h.during)
)
SELECT rev.revision, found.* FROM rev LEFT JOIN found ON true
"""
# The prefix lengths per address family of the rows made by ingests after ``after``, with the
# revision they are of, the last ingest, and the database's oid (one dropped and made again under
# its name is another store). A row's ``ingest`` is the seq of its ingest's audit entry, taken
# under the row lock of ``audit_head`` (migration 0003) until the ingest commits: a statement
# that sees the rows of ingest s sees those of every earlier ingest, so what a later revision
# adds is exactly the rows of ingests after the last one seen (read through the primary key).
_LENGTHS_HELD = """
SELECT rev.revision, rev.last, rev.db, g.f, g.lens
FROM (SELECT (SELECT revision FROM store_revision WHERE id = 1) AS revision,
             (SELECT max(ingest) FROM directory_intervals) AS last,
             (SELECT oid FROM pg_database WHERE datname = current_database()) AS db) rev
LEFT JOIN (SELECT family(prefix) AS f, array_agg(DISTINCT masklen(prefix)) AS lens
           FROM directory_intervals WHERE ingest > %(after)s GROUP BY 1) g ON true
"""
_REVISION = "SELECT revision FROM store_revision WHERE id = 1"
Lengths = dict[int, list[int]]  # address family (4, 6) -> the prefix lengths held
_EVERY_LENGTH: Lengths = {4: list(range(33)), 6: list(range(129))}
_HELD: dict[tuple[str, int], Lengths] = {}  # (database, revision) -> lengths, bounded below
_SINCE: dict[str, tuple[int, int, Lengths]] = {}  # database -> (oid, last ingest, lengths then)
# ask index (0-based), ingest, n, prefix, start µs, end µs | None, account, closed, next start µs
Near = tuple[int, int, int, str, int, int | None, str, str, int | None]


def copy_text(text: str) -> str:
    """A text field as COPY's text format takes it (backslash, tab, newline, CR escaped)."""
    if "\\" in text or "\t" in text or "\n" in text or "\r" in text:
        return text.translate(_ESCAPES)
    return text


def copy_json(text: str) -> str:
    """JSON text as a COPY field: it has no raw tab, newline or CR, only backslashes to double."""
    return text.replace("\\", "\\\\") if "\\" in text else text


# The seq the next audit entry takes, the audit head locked until the transaction ends (the
# chain trigger of migration 0003 takes the same row lock, then head.seq + 1); no trigger fires.
# The store revision first, then the audit head: the order every writer takes them in (a
# publish, a revocation, a log ingest, a lookup's case claim bump or hold the revision, then
# write their entry). The rows' COPY bumps the revision by trigger: taken after the head, it
# deadlocked with a claim holding the revision and waiting for the head.
_LOCK_REVISION = "SELECT 1 FROM store_revision WHERE id = 1 FOR UPDATE"
_NEXT_SEQ = "SELECT seq + 1 FROM audit_head WHERE id = 1 FOR UPDATE"


def lock_next_seq(session: Session) -> int:
    """The ``seq`` the next audit entry of this transaction will take: the audit head is locked
    until it ends, so no other entry comes between (an ingest writes its rows, which carry that
    seq, before its entry, which records their count and digest); the store revision, which the
    rows bump, is locked before it."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        cur.execute(_LOCK_REVISION)
        (seq,) = cur.execute(_NEXT_SEQ).fetchone() or (None,)
    if seq is None:
        raise RuntimeError("audit_head has no row: the store is not migrated")
    return int(seq)


def copy_lines(session: Session, ingest: int, batches: Iterable[list[str]]) -> int:
    """Append the rows of one ingest with COPY (text format), one write per batch as it comes
    (the server stores a batch while the next is made): each line is a row's fields after
    ``ingest`` (n, prefix, during, account, closed, sources, realm_id), tab-separated, escaped
    (:func:`copy_text`, :func:`copy_json`: ``sources`` is a text column since migration 0011,
    which keeps the JSON as written) and ending in a newline; returns how many. An
    exception from ``batches`` ends the COPY with an error (the transaction stores nothing)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    count = 0
    prefix = f"{ingest}\t"
    with raw.cursor() as cur, cur.copy(_COPY) as copy:
        for batch in batches:
            if batch:
                copy.write(prefix + prefix.join(batch))
                count += len(batch)
    return count


# The statistics target of an ingest's ANALYZE: a sample of 300 x this many rows. At the default
# (100: 30,000 rows, each on a page of its own for a RADIUS ingest's wide rows) it cost 0.2-0.45 s
# of server CPU per ingest whatever its size, a third of the server's work for 100,000 records
# (issue 14); at 10 (3,000 rows) ~0.01 s. What the lookups need of it is coarse: the table's size,
# that ``prefix`` is nearly unique, the span of ``during``. Autovacuum's own ANALYZE (default
# target) replaces these statistics later.
ANALYZE_TARGET = 10


def analyze(session: Session) -> None:
    """Fresh statistics after an ingest, from a small sample (:data:`ANALYZE_TARGET`): without
    them the planner may scan the whole table for every lookup. The session's statistics target
    is as it was afterwards."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        (was,) = cur.execute("SELECT current_setting('default_statistics_target')").fetchone() or (
            "100",
        )
        cur.execute(
            "SELECT set_config('default_statistics_target', %s, true)", (str(ANALYZE_TARGET),)
        )
        cur.execute("ANALYZE directory_intervals")
        cur.execute("SELECT set_config('default_statistics_target', %s, true)", (was,))


_ANY = "SELECT EXISTS (SELECT 1 FROM directory_intervals)"


def any_rows(session: Session) -> bool:
    return bool(session.execute(text(_ANY)).scalar())


async def any_rows_async(conn: AsyncConn) -> bool:
    cur = await conn.execute(_ANY)
    row = await cur.fetchone()
    return bool(row and row[0])


# The single lookup's statement runs on its generic plan: the planner's custom plan for each call's
# values (Postgres's choice for it) cost ~0.35 ms of server CPU a lookup in planning alone, three
# times the execution (bench/bench_directory.py --only lean). The generic plan reads the table
# through the B-tree as the custom one does (tests/directory/test_index.py). A session's
# connection is set to it for the statement and restored in the same round trip; the lookup
# path's connections run every statement so (:data:`detnat.store.lean.LOOKUP_PATH`).
_GENERIC = "SET plan_cache_mode = force_generic_plan"
_CUSTOM = "RESET plan_cache_mode"


def around(
    session: Session,
    net: str,
    lo: datetime,
    hi: datetime,
    *,
    realm: str | None,
    scoped: bool,
    revision: int | None = None,
) -> list[Candidate]:
    """The candidates of one (subscriber, window) in ``realm`` (``scoped``: see :func:`_scope`):
    on the session's own connection, a prepared statement on its generic plan (no SQL text
    compiled or planned per lookup: :data:`_GENERIC`). ``revision``: the store revision the
    caller expects (its snapshot's), whose prefix lengths are used when this process knows them
    (:func:`_single_lengths`)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    revision, held = _single_lengths(_where(raw.info), revision)
    params = {"net": net, "lo": lo, "hi": hi, "realm": realm, "scoped": scoped}
    with raw.pipeline(), raw.cursor() as cur:
        cur.execute(_GENERIC)
        cur.execute(_AROUND_PG, params | _around_lengths(net, revision, held), prepare=True)
        rows = cur.fetchall()
        cur.execute(_CUSTOM)
    return [tuple(r) for r in rows]


async def around_async(
    conn: AsyncConn,
    net: str,
    lo: datetime,
    hi: datetime,
    *,
    realm: str | None,
    scoped: bool,
    revision: int | None = None,
) -> list[Candidate]:
    """:func:`around` on a connection of the lookup path, which runs every statement on its
    generic plan (:class:`~detnat.store.async_db.AsyncConnections`): one statement."""
    revision, held = _single_lengths(_where(conn.info), revision)
    params = {"net": net, "lo": lo, "hi": hi, "realm": realm, "scoped": scoped}
    cur = await conn.execute(_AROUND_PG, params | _around_lengths(net, revision, held))
    return await cur.fetchall()


# The single lookups in flight together on the lookup path, in one statement (issue 14: a round
# trip per lookup was most of what an account cost): :data:`_AROUND` for each ask, over the asks
# unnested, each keeping its own match, order and limit (numbered in that order).
# net, lo, hi, realm, scoped, the store revision the caller expects
Ask = tuple[str, datetime, datetime, str | None, bool, int | None]
_AROUND_MANY = (
    "SELECT q.i, x.prefix, x.lower, x.upper, x.account, x.closed, x.sources, x.taken, x.realm "
    "FROM unnest(CAST(%(nets)s AS text[]), CAST(%(los)s AS timestamptz[]), "
    "CAST(%(his)s AS timestamptz[]), CAST(%(realms)s AS text[]), CAST(%(scoped)s AS bool[]), "
    "CAST(%(revs)s AS int8[]), CAST(%(ask_lens)s AS text[]), CAST(%(ask_every)s AS text[])) "
    "WITH ORDINALITY AS q(net, lo, hi, realm, scoped, rev, lens, every, i) "
    "CROSS JOIN LATERAL (SELECT y.*, row_number() OVER () AS k FROM ("
    + _AROUND.format(**{k: f"q.{k}" for k in _AROUND_FIELDS})
    + ") AS y(prefix, lower, upper, account, closed, sources, taken, realm)) AS x "
    "ORDER BY q.i, x.k"
)


async def around_many_async(conn: AsyncConn, asks: list[Ask]) -> list[list[Candidate]]:
    """:func:`around_async` for each of ``asks`` (net, lo, hi, realm, scoped, the revision its
    caller expects), in one statement: the candidates of each, in the order asked. One ask alone
    (one lookup in flight) is asked by :func:`around_async`'s statement: psycopg dumps the
    grouped statement's eight arrays element by element (~0.1 ms for a group of one)."""
    if len(asks) == 1:
        ((net, lo, hi, realm, scoped, expected),) = asks
        alone = await around_async(conn, net, lo, hi, realm=realm, scoped=scoped, revision=expected)
        return [alone]
    where = _where(conn.info)
    params: dict[str, list[Any]] = {
        k: [] for k in ("nets", "los", "his", "realms", "scoped", "revs", "ask_lens", "ask_every")
    }
    for net, lo, hi, realm, scoped, expected in asks:
        revision, held = _single_lengths(where, expected)
        lengths = _around_lengths(net, revision, held)
        for key, value in (
            ("nets", net),
            ("los", lo),
            ("his", hi),
            ("realms", realm),
            ("scoped", scoped),
            ("revs", lengths["rev"]),
            ("ask_lens", lengths["lens"]),
            ("ask_every", lengths["every"]),
        ):
            params[key].append(value)
    found: list[list[Candidate]] = [[] for _ in asks]
    cur = await conn.execute(_AROUND_MANY, params)
    for i, *row in await cur.fetchall():
        found[i - 1].append(tuple(row))
    return found


def _single_lengths(where: str, revision: int | None) -> tuple[int | None, Lengths]:
    """The lengths a single lookup probes: those learnt at ``revision`` in this process (by a
    batch, or a lookup before), else every length (a B-tree probe each, ~0.1 ms in all). A single
    lookup does not learn them: the first time a process meets a store that reads every row of
    the directory (~0.9 s at 1.25 M rows), and each CLI lookup is a new process."""
    held = _HELD.get((where, revision)) if revision is not None else None
    return (revision, held) if held is not None else (None, _EVERY_LENGTH)


def _around_lengths(net: str, revision: int | None, held: Lengths) -> dict[str, Any]:
    family = 6 if ":" in net else 4
    every = _EVERY_TEXT[family]
    return {
        "rev": revision,
        "lens": every if held is _EVERY_LENGTH else _array_text(held[family]),
        "every": every,
    }


def _array_text(lengths: list[int]) -> str:
    """Lengths as Postgres's array literal, cast to ``int2[]`` by the statements: psycopg dumps a
    list element by element in Python (~0.25 ms for 129 lengths, a fifth of a lookup's CPU)."""
    return "{" + ",".join(map(str, lengths)) + "}"


_EVERY_TEXT = {family: _array_text(lengths) for family, lengths in _EVERY_LENGTH.items()}


_REALMS = "SELECT count(*) FROM realms"


def realm_count(session: Session) -> int:
    """How many realms the store holds (ever created: realms are never removed)."""
    return int(session.execute(text(_REALMS)).scalar() or 0)


async def realm_count_async(conn: AsyncConn) -> int:
    cur = await conn.execute(_REALMS)
    row = await cur.fetchone()
    return int(row[0]) if row else 0


def _where(info: Any) -> str:
    """Which database a connection talks to (the key of what is learnt of it): host, port and
    database as libpq has them (read from libpq's own fields: ``info.host`` and the others decode
    each through the connection's settings, ~10 µs a lookup)."""
    pg = info.pgconn
    port = pg.port.decode() or str(info.port)  # empty: libpq's compiled default
    return f"{pg.host.decode()}:{port}/{pg.db.decode()}"


def prefix_lengths(session: Session) -> tuple[int | None, Lengths]:
    """The store revision and the prefix lengths the directory holds at it (learnt once per
    revision and database in a process, from the rows of the ingests made since the last one
    learnt: :data:`_LENGTHS_HELD`)."""
    raw = session.connection().connection.driver_connection
    assert raw is not None
    where = _where(raw.info)
    with raw.cursor() as cur:
        (revision,) = cur.execute(_REVISION).fetchone() or (None,)
        known = None if revision is None else _HELD.get((where, revision))
        if known is not None:
            return revision, known
        base = _SINCE.get(where)
        rows = cur.execute(_LENGTHS_HELD, {"after": -1 if base is None else base[1]}).fetchall()
        if base is not None and not _builds_on(base, rows):
            rows = cur.execute(_LENGTHS_HELD, {"after": -1}).fetchall()
            base = None
    return _learn(where, base, rows)


def _builds_on(base: tuple[int, int, Lengths], rows: list[Any]) -> bool:
    """Whether the rows read after ``base``'s last ingest complete it: the same database, still
    holding an ingest at least as late (else read every row again)."""
    _, last, db, *_ = rows[0]
    return db == base[0] and last is not None and last >= base[1]


def _learn(
    where: str, base: tuple[int, int, Lengths] | None, rows: list[Any]
) -> tuple[int | None, Lengths]:
    revision, last, db = rows[0][:3]
    found: dict[int, set[int]] = {4: set(), 6: set()}
    if base is not None:
        for family, lengths in base[2].items():
            found[family].update(lengths)
    for *_, family, lengths in rows:
        if family is not None:
            found[family].update(lengths)
    held: Lengths = {family: sorted(lengths) for family, lengths in found.items()}
    if last is not None:
        if len(_SINCE) >= 64:
            _SINCE.clear()
        _SINCE[where] = (db, last, held)
    if revision is not None:  # no revision row: nothing to key it by (not remembered)
        if len(_HELD) >= 64:
            _HELD.clear()
        _HELD[(where, revision)] = held
    return revision, held


def around_nets(
    session: Session,
    nets: list[str],
    los: list[int],
    his: list[int],
    realms: list[str | None],
    scoped: list[bool],
) -> list[Near]:
    """The rows touching each subscriber ``nets[k]`` of realm ``realms[k]`` within ``[los[k],
    his[k]]`` (µs), in one statement (:data:`_AROUND_NETS`), in no particular order.

    Supernets are joined at the lengths :func:`prefix_lengths` found; a statement that saw
    another store revision (an ingest in between) is asked again at every length."""
    if not nets:
        return []
    revision, held = prefix_lengths(session)
    raw = session.connection().connection.driver_connection
    assert raw is not None
    with raw.cursor() as cur:
        # JIT compiling would cost more than the query (seconds): off for it, then as it was
        (jit,) = cur.execute("SELECT current_setting('jit')").fetchone() or ("off",)
        cur.execute("SELECT set_config('jit', 'off', true)")
        asked = {"nets": nets, "los": los, "his": his, "realms": realms, "scoped": scoped}
        rows = cur.execute(_AROUND_NETS, asked | _lengths_args(held)).fetchall()
        if revision is None or rows[0][0] != revision:
            rows = cur.execute(_AROUND_NETS, asked | _lengths_args(_EVERY_LENGTH)).fetchall()
        cur.execute("SELECT set_config('jit', %s, true)", (jit,))
    return [(i - 1, *rest) for _, i, *rest in rows if i is not None]


def _lengths_args(held: Lengths) -> dict[str, Any]:
    return {
        "v4": _array_text(held[4]),
        "v6": _array_text(held[6]),
        "v4max": max(held[4], default=-1),
        "v6max": max(held[6], default=-1),
    }


def all_rows(
    session: Session,
) -> Iterator[tuple[int, int, str, datetime, datetime | None, str, str, Any, int | None]]:
    """Every row, in (ingest, n) order, read in constant memory (``audit verify``); ``sources``
    as stored (its JSON text since migration 0011)."""
    result = session.execute(
        text(
            "SELECT ingest, n, prefix::text, lower(during), upper(during), account, closed, "
            "sources, realm_id FROM directory_intervals ORDER BY ingest, n"
        ).execution_options(yield_per=5000)
    )
    for row in result:
        yield tuple(row)


def rows_at(
    session: Session, prefix: str, start: datetime, account: str, realm: str | None
) -> list[tuple[int, Any]]:
    """(ingest, sources as stored) of the rows of ``prefix`` beginning at ``start`` held by
    ``account`` in ``realm`` (None: of no realm), by ingest: which ingest made a row an answer
    shows (evidence files)."""
    found = session.execute(
        text(
            "SELECT d.ingest, d.sources FROM directory_intervals d "
            "WHERE d.prefix = CAST(:prefix AS cidr) AND lower(d.during) = :start "
            "AND d.account = :account AND d.realm_id IS NOT DISTINCT FROM "
            "(SELECT r.id FROM realms r WHERE r.name = :realm) ORDER BY d.ingest, d.n"
        ),
        {"prefix": prefix, "start": start, "account": account, "realm": realm},
    )
    return [(int(i), sources) for i, sources in found]
