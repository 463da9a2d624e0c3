"""The store's statements that a single lookup runs, on psycopg alone.

A CLI lookup is a new process, and SQLAlchemy is a third of its start-up (``bench/README.md``);
the single lookups of the CLI and of the API's lookup path run on psycopg connections and need
none of it. What they ask is here, with nothing imported but psycopg: the store revision and the
timeline snapshot's rows, the case claim and the token row, and the one translation of a driver
error into a domain error. :mod:`detnat.store.repo` takes the same statements for the sessions'
side (its functions pass a session's own psycopg connection), so each is written once.
"""

from __future__ import annotations

import re
import select
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, NamedTuple
from urllib.parse import parse_qsl, unquote

import psycopg
from psycopg.conninfo import make_conninfo
from psycopg.types.json import Jsonb

from detnat.errors import Conflict, DetnatError, InvalidInput, Unavailable

if TYPE_CHECKING:
    from sqlalchemy import TextClause

AsyncConn = psycopg.AsyncConnection[tuple[Any, ...]]


def text(sql: str) -> TextClause:
    """``sqlalchemy.text``, imported when a session's statement first needs it: the modules that
    hold both a statement's session form and its psycopg form load without SQLAlchemy."""
    from sqlalchemy import text as clause

    return clause(sql)


# -- the URL ---------------------------------------------------------------------------------------


# The URL's parts as the sessions' engine reads them (SQLAlchemy's ``make_url``): a user up to the
# first ':' or '/', a password up to the first '@', a host (or a bracketed IPv6 literal), a port, a
# database up to '?', then the parameters. The lookups must reach the server, as the user, that the
# sessions reach: the same grammar, and the parts percent-decoded the same way.
_URL = re.compile(
    r"""(?P<scheme>[\w+]+)://
        (?: (?P<user>[^:/]*) (?: :(?P<password>[^@]*) )? @ )?
        (?: (?: \[(?P<ipv6>[^/?]+)\] | (?P<host>[^/:?]+) )? (?: :(?P<port>[^/?]*) )? )?
        (?: /(?P<database>[^?]*) )?
        (?: \?(?P<query>.*) )?""",
    re.X | re.S,
)


def libpq_url(url: str) -> str:
    """``DETNAT_DATABASE_URL`` (``postgresql+psycopg://``, ``postgresql://``, ``postgres://``) as
    a libpq connection string naming what the sessions' engine connects with: the user, password,
    host, port and database as SQLAlchemy reads them (percent-escapes decoded, a ``%`` or ``/``
    in a password taken as written) and the parameters as they pass them (``?host=/socket/dir``,
    ``sslmode`` ...), each quoted for libpq. Anything else is refused, without echoing the URL (it
    may hold a password); so are several hosts in the parameters, which the lookups do not read
    as the sessions do (give them as ``host=a,b&port=5432,5433``)."""
    found = _URL.match(url)
    if found is None or (
        found["scheme"] != "postgres" and found["scheme"].partition("+")[0] != "postgresql"
    ):
        raise _not_a_url()
    parts: dict[str, str] = {}
    for name, key in (("user", "user"), ("password", "password"), ("database", "dbname")):
        if found[name]:  # an empty part is left to libpq's default, as the sessions leave it
            parts[key] = unquote(found[name])
    host = found["ipv6"] or found["host"]
    if host:
        parts["host"] = host
    if found["port"]:
        if not (found["port"].isascii() and found["port"].isdigit()):
            raise _not_a_url()
        parts["port"] = str(int(found["port"]))
    if found["query"] is not None:
        pairs = parse_qsl(found["query"])
        names = [name for name, _ in pairs]
        if len(set(names)) != len(names) or any(
            name == "host" and ":" in value and "port" not in names for name, value in pairs
        ):
            raise InvalidInput(
                "one value per parameter in the database URL, and no port in ?host= "
                "(several hosts: host=a,b&port=5432,5433)",
                field="DETNAT_DATABASE_URL",
            )
        parts.update(pairs)
    return make_conninfo("", **parts)


def _not_a_url() -> InvalidInput:
    return InvalidInput(
        "not a Postgres URL (postgresql+psycopg://user@host/database)", field="DETNAT_DATABASE_URL"
    )


# Every connection detnat makes runs without JIT compilation. The logs' lookup statements read
# log_events (partitioned per realm and month) in a subquery whose realm comes from the outer row,
# so no partition is pruned at planning: with 150 partitions the plan passed jit_above_cost and a
# single lookup spent 0.7-1 s compiling it, against 9-11 ms without (tests/store/test_no_jit.py).
# detnat's statements are short or already set it off (the batches); none gains from JIT.
NO_JIT = "SET jit = off"
# The lookup path's read connections (:class:`detnat.store.async_db.AsyncConnections`) also run
# every statement on its generic plan, planned once per connection (they prepare every statement:
# ``prepare_threshold=0``). Left to choose, Postgres kept a custom plan for each call of the
# directory's single lookup (~0.35 ms of server CPU a lookup in planning, three times the
# execution); setting the mode around that one statement cost a pipeline of three statements per
# lookup (~0.1 ms of client CPU, issue 14). The lookup path's other statements are probes of a
# key (a token, a case, the store revision) or already chose their generic plan (the logs'):
# tests/directory/test_index.py and tests/store/test_no_jit.py read their plans on such a
# connection.
LOOKUP_PATH = (
    "SELECT set_config('jit', 'off', false), "
    "set_config('plan_cache_mode', 'force_generic_plan', false)"
)


def closed_by_server(conn: psycopg.Connection[Any] | psycopg.AsyncConnection[Any]) -> bool:
    """Whether an idle connection is gone, found without a round trip.

    An idle connection has nothing to read; when its socket is readable (or hung up), the server
    has sent its last words (``terminating connection due to administrator command``) or closed
    it. A connection that merely lost its network path is not seen here: its next statement
    fails, once, and it is dropped.
    """
    if conn.closed or conn.broken:
        return True
    try:
        fd = conn.fileno()
    except psycopg.Error:
        return True
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(0))


# -- driver errors, translated once ----------------------------------------------------------------

_CONSTRAINT_MESSAGES = {
    "uq_realms_name": "a realm with this name already exists",
    "uq_plan_versions_in_force_effective_from": (
        "the realm already has a plan version effective at that instant"
    ),
    "uq_plan_versions_realm_id_seq": "another version was published concurrently; try again",
    "ex_plan_version_ranges_one_realm_per_address": (
        "a public address would belong to two plans at the same instant"
    ),
    "uq_plan_approvals_version_id": "this version is already approved",
    "approval_by_another_admin": "a different admin than the publisher must approve a version",
    "approval_bound_to_content": "the approval names another content hash than the version's",
    "uq_api_tokens_active_name": "a token that is not revoked already has this name",
}
# SQLSTATEs that mean "this database is not (yet) detnat's schema", not a bug of a query.
_SCHEMA_MISSING = {"42P01", "42703", "42883", "3F000"}  # table, column, function, schema


def conflict_of(orig: BaseException | None) -> Conflict:
    """A clear :class:`Conflict` for a constraint violation (never the raw driver error)."""
    diag = getattr(orig, "diag", None)
    name = getattr(diag, "constraint_name", None)
    message = _CONSTRAINT_MESSAGES.get(name or "")
    if message is None:
        primary = getattr(diag, "message_primary", None) or "constraint violated"
        message = f"refused by the store: {primary}"
    return Conflict(message)


def driver_error(orig: BaseException) -> DetnatError | None:
    """What a psycopg error means, as a domain error (None: ``orig`` is not one); see
    :func:`detnat.store.repo.domain_error`, which also takes SQLAlchemy's wrapper."""
    if not isinstance(orig, psycopg.Error):
        return None
    diag = getattr(orig, "diag", None)
    primary = getattr(diag, "message_primary", None) or " ".join(str(orig).split())
    if isinstance(orig, psycopg.IntegrityError):
        return conflict_of(orig)
    if isinstance(orig, psycopg.DataError):
        return InvalidInput(f"a value is out of range for the store ({primary})")
    if orig.sqlstate in _SCHEMA_MISSING:
        return Unavailable(
            f"the database is not migrated for this detnat ({primary}); run detnat db upgrade"
        )
    if orig.sqlstate == "42501":
        return Unavailable(f"the database refused access ({primary})")
    if isinstance(orig, psycopg.OperationalError | psycopg.InterfaceError):
        return Unavailable(f"the database is unreachable: {primary}")
    return DetnatError(f"the database refused the request: {primary}")


# -- the timeline snapshot's reads -----------------------------------------------------------------

# Plain SQL on a psycopg connection: a CLI lookup is a new process, where each ORM statement would
# be compiled (and its rows made entities) for one use (issue 12, start-up).
REVISION = "SELECT revision FROM store_revision WHERE id = 1"
_REALM_HEADS = """
SELECT r.id, coalesce(max(v.id), 0), coalesce(max(a.id), 0)
FROM realms r
LEFT JOIN plan_versions v ON v.realm_id = r.id
LEFT JOIN plan_approvals a ON a.version_id = v.id
GROUP BY r.id
"""
_TIMELINE_REALM = "SELECT id, name, session_drain FROM realms WHERE id = %(realm)s"
_TIMELINE_VERSIONS = """
SELECT v.id, v.seq, v.effective_from, v.plan, v.content_sha256, v.record_sha256, v.correction,
       a.id IS NOT NULL, a.approved_by, a.approved_at
FROM plan_versions v
LEFT JOIN plan_approvals a ON a.version_id = v.id
WHERE v.realm_id = %(realm)s AND NOT v.superseded
ORDER BY v.effective_from
"""
_TIMELINE_RANGES = """
SELECT r.version_id, lower(r.addresses), upper(r.addresses)
FROM plan_version_ranges r
JOIN plan_versions v ON v.id = r.version_id
WHERE v.realm_id = %(realm)s AND NOT v.superseded
"""


class TimelineRow(NamedTuple):
    """A version of a realm's timeline (not superseded), with its approval if it has one."""

    id: int
    seq: int
    effective_from: datetime
    plan: dict[str, Any] | None
    content_sha256: str | None
    record_sha256: str
    correction: bool
    approved: bool
    approved_by: str | None
    approved_at: datetime | None


class TimelineRows(NamedTuple):
    """What a realm's timeline is made of: the realm, its versions in effective order, and the
    public address ranges (inclusive) of each version's plan."""

    id: int
    name: str
    session_drain: timedelta
    versions: list[TimelineRow]
    ranges: dict[int, list[tuple[int, int]]]


def store_revision(conn: psycopg.Connection[Any]) -> int:
    """The store-wide revision: changes whenever a realm or version is added or changed."""
    row = conn.execute(REVISION).fetchone()
    assert row is not None, "store_revision holds one row (migration 0001)"
    return int(row[0])


def realm_heads(conn: psycopg.Connection[Any]) -> dict[int, tuple[int, int]]:
    """Each realm's newest version id and newest approval id ((0, 0) for an empty realm)."""
    with conn.cursor() as cur:
        return {r: (newest, approved) for r, newest, approved in cur.execute(_REALM_HEADS)}


def timeline_rows(conn: psycopg.Connection[Any], realm_id: int) -> TimelineRows:
    """A realm's timeline as :class:`TimelineRows` (three statements)."""
    args = {"realm": realm_id}
    with conn.cursor() as cur:
        found = cur.execute(_TIMELINE_REALM, args).fetchone()
        assert found is not None, f"realm {realm_id} is in realm_heads"
        versions = [TimelineRow(*row) for row in cur.execute(_TIMELINE_VERSIONS, args)]
        ranges: dict[int, list[tuple[int, int]]] = {}
        for version_id, lower, upper in cur.execute(_TIMELINE_RANGES, args):
            ranges.setdefault(version_id, []).append((int(lower), int(upper) - 1))
    return TimelineRows(found[0], found[1], found[2], versions, ranges)


# -- cases and tokens ------------------------------------------------------------------------------

CLAIM = """
WITH opened AS (
    INSERT INTO cases (ref, owner, role, created_at) VALUES ({ref}, {owner}, {case_role}, {at})
    ON CONFLICT DO NOTHING RETURNING owner, role
), entry AS (
    INSERT INTO audit_log (seq, at, actor, role, token_id, action, case_ref, status, request_id,
                           code_version, detail, content_sha256, prev_sha256, entry_sha256)
    SELECT 0, {at}, {actor}, {role}, {token_id}, {action}, {case_ref}, {status}, {request_id},
           {code_version}, {detail}, {content_sha256}, '', '' FROM opened
    RETURNING seq
)
SELECT owner, role, true FROM opened, entry
UNION ALL SELECT owner, role, false FROM cases WHERE ref = {ref}
"""
CLAIM_FIELDS = [
    "ref",
    "owner",
    "case_role",
    "at",
    "actor",
    "role",
    "token_id",
    "action",
    "case_ref",
    "status",
    "request_id",
    "code_version",
    "detail",
    "content_sha256",
]
_CLAIM_ASYNC = CLAIM.format(**{f: f"%({f})s" for f in CLAIM_FIELDS})


def claim_params(ref: str, owner: str, role: str, entry: dict[str, Any]) -> dict[str, Any]:
    fields = {k: v for k, v in entry.items() if k in CLAIM_FIELDS}
    return {**fields, "ref": ref, "owner": owner, "case_role": role}


class Stale(Exception):
    """The store changed (a plan published, a token revoked ...) after an answer was computed and
    before its entry was inserted: nothing was written; answer again at ``revision``."""

    def __init__(self, revision: int) -> None:
        super().__init__(f"the store is at revision {revision} now")
        self.revision = revision


async def claim_case_async(
    conn: AsyncConn, ref: str, owner: str, role: str, entry: dict[str, Any], *, revision: int
) -> tuple[str, str, bool]:
    """:func:`detnat.store.repo.claim_case` on an async autocommit connection, in one transaction
    that holds the store at ``revision`` (the one its actor was authenticated at) while the case
    is opened, else :class:`Stale` and nothing written. The sessions' side claims in the
    transaction of the revision-checked entry; here the claim commits on its own, so without the
    check a token revoked since the worker's revision opened cases (and took their references
    from other desks) before its lookup was refused."""
    params = claim_params(ref, owner, role, entry)
    params["detail"] = Jsonb(params["detail"])
    async with conn.transaction():
        cur = await conn.execute(REVISION + " FOR SHARE")  # a revocation waits, or is seen
        found = await cur.fetchone()
        assert found is not None
        if int(found[0]) != revision:
            raise Stale(int(found[0]))
        cur = await conn.execute(_CLAIM_ASYNC, params)
        row = await cur.fetchone()
    if row is None:
        cur = await conn.execute("SELECT owner, role FROM cases WHERE ref = %s", (ref,))
        row = await cur.fetchone()
        assert row is not None
        return str(row[0]), str(row[1]), False
    return str(row[0]), str(row[1]), bool(row[2])


async def token_row_async(
    conn: AsyncConn, digest: str
) -> tuple[int, str, str, datetime | None, datetime | None] | None:
    """(id, person, role, expires_at, revoked_at) of the token with this hash."""
    cur = await conn.execute(
        "SELECT id, person, role, expires_at, revoked_at FROM api_tokens WHERE token_sha256 = %s",
        (digest,),
    )
    row = await cur.fetchone()
    if row is None:
        return None
    return (int(row[0]), str(row[1]), str(row[2]), row[3], row[4])
