"""The subscriber directory in the store: audited ingests, and the account behind an answer.

**Ingest** (:func:`ingest`): the files are parsed (:mod:`detnat.directory`), the intervals
appended to ``directory_intervals`` with COPY, and one ``directory.ingest`` audit entry records
the format, each file's name, size and SHA-256, the counts, the records refused (file:line) and
the SHA-256 of the rows as stored (:func:`rows_digest`). The rows carry that entry's ``seq``
(``ingest``), so ``audit verify`` holds each ingest's rows against its entry
(:func:`check_store`): a row changed, removed or added behind detnat is named. The rows are
written as the parsers give them (:func:`detnat.directory.stream`), before the entry that
counts them: its ``seq`` is fixed first by locking the audit head for the transaction.

**Accounts** (:func:`add_account`, :func:`add_account_async`): a reverse answer that names a
subscriber gains ``account`` — the directory's intervals touching that subscriber within the
answer's window, resolved by :func:`detnat.directory.resolve.account_of` — or ``account: null``
with ``account_reason``. What each role is shown (``docs/directory.md``): ``legal`` and the local
operator see the account and the source lines; ``abuse`` the account and its intervals without
the lines; any other role no ``account`` at all. The audit entry records what was shown.
"""

from __future__ import annotations

import hashlib
import itertools
import json
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeAlias

from detnat.directory import FORMATS, NEEDS_TZ, Interval, Refused, SourceLine, stream
from detnat.directory.model import Batches, collector_pause, network_text, reused
from detnat.directory.reread import Reading, check_row
from detnat.directory.resolve import SHOWN, Account, account_of, instant_text
from detnat.directory.zones import epoch_us
from detnat.errors import InvalidInput, NotFound
from detnat.service import audit, revisions
from detnat.store import directory as rows_repo

if TYPE_CHECKING:
    # a single lookup starts without numpy
    import numpy as np
    import numpy.typing as npt
    from sqlalchemy.orm import Session

_string = json.encoder.encode_basestring  # C; the ensure_ascii=False one
ACTION = "directory.ingest"
SHOW_ACCOUNTS = frozenset({"abuse", "legal", "admin"})
SHOW_SOURCES = frozenset({"legal", "admin"})
Ints: TypeAlias = "npt.NDArray[np.int64]"
REFUSED_KEPT = 100  # refused records named in the audit entry (the rest are counted)


@dataclass(frozen=True)
class InputFile:
    """A file as given: its name (as the operator wrote it) and its bytes."""

    name: str
    data: bytes


@dataclass
class IngestSummary:
    """What one ingest read and stored (the CLI prints it; the audit entry records it)."""

    format: str
    ingest: int
    files: list[dict[str, Any]]
    records: int
    intervals: int
    duplicates: int
    refused: list[Refused] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "ingest": self.ingest,
            "files": self.files,
            "records": self.records,
            "intervals": self.intervals,
            "duplicates": self.duplicates,
            "refused": len(self.refused),
            "refused_records": [str(r) for r in self.refused[:REFUSED_KEPT]],
        }


def _row_text(
    n: int,
    prefix: str,
    start: int,
    end: int | None,
    account: str,
    closed: str,
    sources: str,
    realm_id: int | None,
) -> str:
    """A stored row as its ingest's digest hashes it; the realm only when the ingest named one
    (migration 0007: the rows of earlier ingests hash as they did)."""
    text = f"{n}\t{prefix}\t{start}\t{'' if end is None else end}\t{account}\t{closed}\t{sources}"
    return text if realm_id is None else f"{text}\t{realm_id}"


def _safe(text: str) -> str:
    """Postgres text holds no NUL (and the parsers decode bytes with replacement, so
    there are no lone surrogates): what is stored is what is hashed."""
    return text.replace("\x00", "\ufffd") if "\x00" in text else text


def _source_json(line: SourceLine) -> str:
    """:func:`audit.canonical` of ``line.to_json()``, written directly
    (keys in order, no spaces, non-ASCII as is): an ingest writes millions."""
    return (
        f'{{"file":{_string(_safe(line.file))},"line":{line.line},"sha256":"{line.sha256}",'
        f'"text":{_string(_safe(line.text))}}}'
    )


def _stored(iv: Interval) -> tuple[str, str, str]:
    """(account, closed, sources JSON) as the text columns keep them (``sources``: its canonical
    JSON, migration 0011)."""
    return _safe(iv.account), iv.closed, "[" + ",".join(map(_source_json, iv.sources)) + "]"


def rows_digest(texts: Iterable[str]) -> str:
    digest = hashlib.sha256()
    for line in texts:
        digest.update(line.encode("utf-8", "surrogatepass"))
        digest.update(b"\n")
    return digest.hexdigest()


def ingest(
    session: Session,
    actor: audit.Actor,
    fmt: str,
    files: Sequence[InputFile],
    *,
    tz: str | None,
    request_id: str,
    realm: str | None = None,
    interim: timedelta | None = None,
) -> IngestSummary:
    """Parse, store (COPY) and audit one ingest; flushed, the edge commits. ``realm``: the NAT
    the files' subscribers sit behind (their private addresses answer only there), or None;
    ``interim``: the NAS's interim period (RADIUS sessions silent for longer ended)."""
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: one of {', '.join(FORMATS)}", field="--format")
    if fmt in NEEDS_TZ and not tz:
        raise InvalidInput(f"{fmt} files write local times: name their zone", field="--tz")
    if not files:
        raise InvalidInput("give at least one file", field="FILE")
    realm_id = None
    if realm is not None:
        from detnat.store import repo as realms_repo  # an ingest's side: sessions

        found = realms_repo.realm_by_name(session, realm)
        if found is None:
            raise NotFound(f"no realm named {realm!r}", field="--realm")
        realm_id = found.id
    # NUL cannot be stored (text): replaced before parsing, so the lines' hashes hold
    texts = [(f.name, _safe(f.data.decode("utf-8", "replace"))) for f in files]
    interim_us = None if interim is None else interim // timedelta(microseconds=1)
    parsed, batches = stream(fmt, texts, tz=tz, interim_us=interim_us)
    outside: list[Refused] = []
    if realm is not None and realm_id is not None:
        batches = _kept(batches, _inside_check(session, realm_id), realm, outside)
    digest = hashlib.sha256()
    with collector_pause():  # what the parse makes lives until its rows are written
        lines = _row_batches(batches, realm_id, digest)
        # The rows are written as they are made, so that the server stores them while the
        # files are still read (issue 14): they carry the seq of the audit entry written after
        # them (it records their count and digest), taken and held by locking the audit head.
        first = next(lines, [])  # RADIUS: every record read, before the lock is taken
        seq = rows_repo.lock_next_seq(session)
        count = rows_repo.copy_lines(session, seq, itertools.chain((first,), lines))
    parsed.refused += outside
    per_file: dict[str, int] = {}
    for r in parsed.refused:
        per_file[r.file] = per_file.get(r.file, 0) + 1
    shown = [
        {
            "name": f.name[:300],
            "bytes": len(f.data),
            "sha256": hashlib.sha256(f.data).hexdigest(),
            "refused": per_file.get(f.name, 0),
        }
        for f in files
    ]
    detail = {
        "record": {
            "format": fmt,
            "tz": tz,
            "realm": realm,
            "interim_seconds": None if interim is None else interim.total_seconds(),
            "files": shown,
            "records": parsed.records,
            "duplicates": parsed.duplicates,
            "refused": len(parsed.refused),
            "refused_records": [str(r)[:300] for r in parsed.refused[:REFUSED_KEPT]],
            "rows": count,
            "rows_sha256": digest.hexdigest(),
        }
    }
    entry = audit.record(
        session, actor, ACTION, request_id=request_id, detail=detail, status="ingested"
    )
    if entry.seq != seq:  # the head is locked by this transaction: cannot happen
        raise RuntimeError(f"the ingest's rows carry {seq}, its audit entry is {entry.seq}")
    rows_repo.analyze(session)
    return IngestSummary(
        fmt, entry.seq, shown, parsed.records, count, parsed.duplicates, parsed.refused
    )


def _inside_check(session: Session, realm_id: int) -> Callable[[str], bool]:
    """Whether a row's key may be ingested under the realm ``realm_id`` (:func:`_kept`)."""
    from detnat.engine.addresses import WIDTH, parse_prefix
    from detnat.errors import QueryError
    from detnat.service.mappers import MapperCache
    from detnat.store import repo as realms_repo

    cache = MapperCache()
    mappers = [cache.get(v) for v in realms_repo.history(session, realm_id) if v.plan is not None]
    known: dict[str, bool] = {}

    def inside(key: str) -> bool:
        prefix = parse_prefix(key)
        ours = [m for m in mappers if m.family == prefix.family]
        if not ours:
            return True
        first = prefix._replace(length=WIDTH[prefix.family])
        for mapper in ours:
            try:
                mapper.subscriber_number(first)
            except QueryError:
                continue
            return True
        return False

    def ok(key: str) -> bool:
        found = known.get(key)
        if found is None:
            found = known[key] = not reused(key) or inside(key)
        return found

    return ok


def _kept(
    batches: Batches, ok: Callable[[str], bool], realm: str, refused: list[Refused]
) -> Batches:
    """The intervals of ``batches`` whose key is one another NAT may reuse
    (:func:`~detnat.directory.model.reused`: private IPv4, ULA ...) and whose address no plan
    of the ingest's realm ever counted as a subscriber's are refused (into ``refused``, to
    follow the parse's): a file of another NAT ingested under the wrong ``--realm`` would name
    this realm's subscribers' accounts. A family none of the realm's plans uses (a realm
    answered by its logs alone) cannot be checked: its rows are kept. ``ok``:
    :func:`_inside_check`."""
    for batch in batches:
        kept = [iv for iv in batch if ok(iv.subscriber)]
        if len(kept) < len(batch):
            for iv in batch:
                if not ok(iv.subscriber):
                    source = iv.sources[0]
                    refused.append(
                        Refused(
                            source.file,
                            source.line,
                            f"{iv.subscriber} is not an inside address of any plan of realm "
                            f"{realm!r}: are these the subscribers of that NAT "
                            "(--realm)?",
                        )
                    )
        if kept:
            yield kept


def _rows(intervals: Sequence[Interval], realm_id: int | None) -> tuple[str, list[str]]:
    """The SHA-256 of the rows as stored (:func:`rows_digest` of each row's :func:`_row_text`)
    and each row's COPY line after its ``ingest`` field (:func:`_row_batches` at once)."""
    digest = hashlib.sha256()
    with collector_pause():
        made = _row_batches([intervals], realm_id, digest)
        lines = [line for batch in made for line in batch]
    return digest.hexdigest(), lines


def _row_batches(
    batches: Iterable[Sequence[Interval]], realm_id: int | None, digest: Any
) -> Iterator[list[str]]:
    """For each batch of intervals, each row's COPY line after its ``ingest`` field
    (:func:`detnat.store.directory.copy_lines`), the rows numbered from 1 across the batches;
    ``digest`` (a SHA-256) is fed each row's :func:`_row_text` and a newline, as
    :func:`rows_digest` hashes them.

    The client's share of an ingest (issue 14), so what repeats is made once: a row's sources
    as JSON when the row before had the same (a RADIUS session's Start and Stop are the sources
    of each of its keys' rows, made one after the other; a source line of a csv or kea row is
    in no other row, so nothing is kept of them), an account's stored and COPY forms, a file
    name's JSON, and the date and minute of an instant (the text of :func:`instant_text`, of
    which a row writes two)."""
    realm_tail = "" if realm_id is None else f"\t{realm_id}"
    realm_field = "\\N" if realm_id is None else str(realm_id)
    file_json: dict[str, str] = {}
    accounts: dict[str, tuple[str, str]] = {}  # account -> (as stored, as a COPY field)
    minutes: dict[int, str] = {}  # minute since the epoch -> "YYYY-MM-DDTHH:MM:"
    seconds = [f"{s:02d}" for s in range(60)]

    def when(us: int) -> str:
        minute, rest = divmod(us, 60_000_000)
        head = minutes.get(minute)
        if head is None:
            head = minutes[minute] = instant_text(minute * 60_000_000)[:-3]
        second, frac = divmod(rest, 1_000_000)
        if frac:
            return f"{head}{seconds[second]}.{frac:06d}Z"
        return f"{head}{seconds[second]}Z"

    # the sources of the row before, and (their JSON, as a COPY field)
    last: tuple[SourceLine, ...] | None = None
    sources = copied = ""
    n = 0
    for batch in batches:
        texts: list[str] = []
        lines: list[str] = []
        for iv in batch:
            n += 1
            if iv.sources != last:
                parts = []
                for line in iv.sources:
                    name = file_json.get(line.file)
                    if name is None:
                        name = file_json[line.file] = _string(_safe(line.file))
                    parts.append(
                        f'{{"file":{name},"line":{line.line},"sha256":"{line.sha256}",'
                        f'"text":{_string(_safe(line.text))}}}'
                    )
                sources = "[" + ",".join(parts) + "]"
                copied = rows_repo.copy_json(sources)
                last = iv.sources
            stored = accounts.get(iv.account)
            if stored is None:
                account = _safe(iv.account)
                stored = accounts[iv.account] = (account, rows_repo.copy_text(account))
            start, end = iv.start, iv.end
            prefix, closed = iv.subscriber, iv.closed
            if end is None:
                texts.append(
                    f"{n}\t{prefix}\t{start}\t\t{stored[0]}\t{closed}\t{sources}{realm_tail}"
                )
                during = f"[{when(start)},)"
            else:
                texts.append(
                    f"{n}\t{prefix}\t{start}\t{end}\t{stored[0]}\t{closed}\t{sources}{realm_tail}"
                )
                during = f"[{when(start)},{when(end)})"
            lines.append(
                f"{n}\t{prefix}\t{during}\t{stored[1]}\t{closed}\t{copied}\t{realm_field}\n"
            )
        if texts:
            texts.append("")
            digest.update("\n".join(texts).encode("utf-8", "surrogatepass"))
        yield lines


# -- audit verify ----------------------------------------------------------------------------------


def check_store(session: Session, recorded: dict[int, Any]) -> Iterator[tuple[str, str]]:
    """(key, why) for each ingest whose rows are not what its entry (``recorded``: seq ->
    the entry's ``detail.record``) says it stored."""
    found: dict[int, tuple[int, str]] = {}
    for ingest, rows in _by_ingest(rows_repo.all_rows(session)):
        found[ingest] = (len(rows), rows_digest(rows))
    for seq in sorted(recorded.keys() | found.keys()):
        record = recorded.get(seq)
        if record is None:
            yield f"ingest {seq}", "rows that no directory.ingest audit entry made (behind detnat?)"
            continue
        if not isinstance(record, dict) or "rows" not in record or "rows_sha256" not in record:
            yield f"ingest {seq}", f"audit entry {seq}: record malformed"
            continue
        count, digest = found.get(seq, (0, rows_digest(())))
        if count != record["rows"]:
            yield f"ingest {seq}", f"{count} rows stored, audit entry {seq} says {record['rows']}"
        elif digest != record["rows_sha256"]:
            yield f"ingest {seq}", f"rows differ from what audit entry {seq} recorded"


def _by_ingest(rows: Iterable[tuple[Any, ...]]) -> Iterator[tuple[int, list[str]]]:
    """Each ingest's rows as its digest hashes them: the sources as stored, the JSON text of the
    column itself (migration 0011), not a rendering of what it decodes to (a store not migrated
    yet gives its JSONB decoded: its canonical JSON is what was hashed)."""
    current: int | None = None
    texts: list[str] = []
    for ingest, n, prefix, lower, upper, account, closed, sources, realm_id in rows:
        if ingest != current:
            if current is not None:
                yield current, texts
            current, texts = ingest, []
        net = network_text(prefix)
        if lower is None:  # an empty range: its bounds are not stored, so the row cannot match
            texts.append(f"{n}\t{net}\tempty")
            continue
        end = None if upper is None else epoch_us(upper)
        text = sources if isinstance(sources, str) else audit.canonical(sources)
        texts.append(_row_text(n, net, epoch_us(lower), end, account, closed, text, realm_id))
    if current is not None:
        yield current, texts


# -- accounts on answers ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Asked:
    """What an answer asks of the directory: its subscriber, in which realm (None: its
    candidates are of several), over which window. Rows of a realm answer only answers in it;
    ``scoped``: the subscriber's key may be another line behind another NAT (:func:`reused`), so
    rows of no realm answer it only in a store of one realm."""

    subscriber: str
    realm: str | None
    lo: datetime
    hi: datetime

    @property
    def scoped(self) -> bool:
        return reused(self.subscriber)


def _window(answer: Any) -> _Asked | None:
    if answer.get("status") != "match" or "subscriber" not in answer or "window" not in answer:
        return None  # not a matched reverse answer (a forward answer has no window)
    window = answer["window"]
    lo = datetime.fromisoformat(window["from"].replace("Z", "+00:00"))
    hi = datetime.fromisoformat(window["to"].replace("Z", "+00:00"))
    return _Asked(answer["subscriber"], _realm_of(answer), lo, hi)


def _realm_of(answer: Any) -> str | None:
    """The realm of a matched answer: its candidates' (matched from the NAT's logs: the logged
    allocations'); None when they are of several realms."""
    shown = answer.get("log_candidates") if answer.get("source") == "log" else None
    realms = {c.get("realm") for c in shown or answer.get("candidates") or ()}
    realm = realms.pop() if len(realms) == 1 else None
    return realm if isinstance(realm, str) else None


def _intervals(found: Sequence[rows_repo.Candidate], *, sources: bool) -> list[Interval]:
    """The rows as intervals; their source lines only when they will be shown (``sources``):
    decoding them is most of the work for a role that may not see them."""
    out = []
    lines: tuple[SourceLine, ...] = ()
    for prefix, lower, upper, account, closed, stored, taken, realm in found:
        end = upper if upper is not None else taken
        how = closed if upper is not None or taken is None else "takeover"
        if sources:
            shown = json.loads(stored) if isinstance(stored, str) else stored
            lines = tuple(SourceLine(s["file"], s["line"], s["sha256"], s["text"]) for s in shown)
        out.append(
            Interval(
                network_text(prefix),
                account,
                epoch_us(lower),
                None if end is None else epoch_us(end),
                how,
                lines,
                realm,
            )
        )
    return out


def account_json(found: Account, *, sources: bool) -> dict[str, Any] | None:
    """The ``account`` of an answer (None when the directory does not cover the subscriber)."""
    if found.status == "not_covered":
        return None
    held = []
    for iv in found.held:
        shown: dict[str, Any] = {
            "account": iv.account,
            "subscriber": iv.subscriber,
            "from": instant_text(iv.start),
            "to": None if iv.end is None else instant_text(iv.end),
            "closed": iv.closed,
        }
        if iv.realm is not None:
            shown["realm"] = iv.realm
        if sources:
            shown["sources"] = [s.to_json() for s in iv.sources]
        held.append(shown)
    return {"status": found.status, "account": found.account, "held": held}


def _attach(answer: Any, detail: dict[str, Any], found: Account, role: str) -> None:
    fields = {
        "account": account_json(found, sources=role in SHOW_SOURCES),
        "account_reason": found.reason,
    }
    if found.status == "ambiguous":
        fields["account_reason"] = (
            found.reason or "the subscriber changed hands within the window: see held"
        )
    answer.update(fields)
    inner = detail.get("answer")
    if isinstance(inner, dict) and inner is not answer:
        inner.update(fields)


def add_account(
    session: Session,
    actor: audit.Actor,
    answer: Any,
    detail: dict[str, Any],
    *,
    revision: int | None = None,
) -> None:
    """Give a matched reverse answer (and its audit detail) its ``account``, as ``actor``'s role
    may see it; nothing for a role that sees no accounts, an answer without a subscriber, or a
    store whose directory is empty. ``revision``: the store revision the answer was made at (the
    directory's prefix lengths are remembered per revision)."""
    asked = _window(answer) if actor.role in SHOW_ACCOUNTS else None
    if asked is None:
        return
    near = rows_repo.around(
        session,
        asked.subscriber,
        asked.lo,
        asked.hi,
        realm=asked.realm,
        scoped=asked.scoped,
        revision=revision,
    )
    if not near and not rows_repo.any_rows(session):
        return  # no directory in this store: answers stay as they were
    several = bool(not near and asked.scoped and rows_repo.realm_count(session) > 1)
    _attach(answer, detail, _resolved(near, asked, actor.role, several_realms=several), actor.role)


def _resolved(
    near: Sequence[rows_repo.Candidate],
    asked: _Asked,
    role: str,
    *,
    several_realms: bool = False,
) -> Account:
    """The account from the rows one (subscriber, window) query gave (one more than
    :data:`~detnat.store.directory.LIMIT` when there are more), with the source lines only for a
    ``role`` that sees them. ``several_realms``: the subscriber's key is scoped and the store holds
    several realms (said when no row answers)."""
    more = len(near) > rows_repo.LIMIT
    found = _intervals(near[: rows_repo.LIMIT], sources=role in SHOW_SOURCES)
    lo, hi = epoch_us(asked.lo), epoch_us(asked.hi)
    resolved = account_of(found, lo, hi, subscriber=asked.subscriber, more=more)
    if resolved.status == "not_covered" and several_realms:
        return Account("not_covered", None, (), _unscoped_reason(asked.subscriber, asked.realm))
    return resolved


def _unscoped_reason(subscriber: str, realm: str | None) -> str:
    if realm is None:
        return (
            f"the answer's candidates are of several realms: {subscriber} may be another line "
            "behind each NAT, so no directory row answers it"
        )
    return (
        f"the directory holds no interval of realm {realm} covering {subscriber}: a private "
        "address (every IPv4 key) is reused behind each NAT, so in a store of several realms "
        "only rows ingested with that realm (directory ingest --realm) answer it"
    )


# Whether the store held a directory, per revision (an ingest bumps it, migration 0006).
_ANY_ROWS = revisions.Facts()


async def add_account_async(
    db: Any, actor: audit.Actor, answer: Any, detail: dict[str, Any], *, revision: int | None = None
) -> None:
    """:func:`add_account` on the lookup path (``db``: its AsyncStore; ``revision``: the store
    revision the answer was made at). A connection is taken only for an answer that may carry
    an account, in a store that held a directory at that revision."""
    asked = _window(answer) if actor.role in SHOW_ACCOUNTS else None
    if asked is None:
        return
    at = revisions.key(db.name, revision)
    if _ANY_ROWS.known(at) is False:
        return
    if at is not None and _ANY_ROWS.known(at) is None:
        async with db.connection() as conn:
            if not _ANY_ROWS.learn(at, await rows_repo.any_rows_async(conn)):
                return
    # with the lookups in flight beside it: one statement (AsyncStore.grouped)
    near = await db.grouped(rows_repo.around_many_async).ask(
        (asked.subscriber, asked.lo, asked.hi, asked.realm, asked.scoped, revision)
    )
    several = False
    if not near:
        async with db.connection() as conn:
            if not await rows_repo.any_rows_async(conn):
                return
            several = asked.scoped and await rows_repo.realm_count_async(conn) > 1
    _attach(answer, detail, _resolved(near, asked, actor.role, several_realms=several), actor.role)


class BatchAccounts:
    """Accounts for a batch's matched rows (:class:`detnat.service.batch_lookups.BatchQuery`'s
    ``accounts``): per chunk, the directory's rows touching every subscriber asked (over the span
    of all its windows) come in one query (:func:`detnat.store.directory.around_nets`); each
    distinct (subscriber, window) takes the rows :func:`add_account`'s query would give it (the
    same match, order and limit) and is resolved by :func:`~detnat.directory.resolve.account_of`,
    the single lookup's rule. A row's answer is ``(status, account)``: ``identified`` with the
    account, ``ambiguous`` (the prefix changed hands within the window: no account named) or
    ``not_covered``. A role that sees no accounts (not in :data:`SHOW_ACCOUNTS`), or a store
    without a directory, gets none."""

    def __init__(self, session: Session, role: str) -> None:
        self.session = session
        self.asked = role in SHOW_ACCOUNTS and rows_repo.any_rows(session)

    def __call__(
        self, subscribers: dict[int, tuple[str, str | None]], start_us: Ints, end_us: Ints
    ) -> dict[int, tuple[str, str]]:
        if not self.asked or not subscribers:
            return {}
        rows = list(subscribers)
        starts, ends = start_us[rows].tolist(), end_us[rows].tolist()
        keys: dict[tuple[tuple[str, str | None], int, int], list[int]] = {}
        # (subscriber, realm) -> [earliest start, latest end]
        span: dict[tuple[str, str | None], list[int]] = {}
        for row, lo, hi in zip(rows, starts, ends, strict=True):
            asked = subscribers[row]
            keys.setdefault((asked, lo, hi), []).append(row)
            seen = span.get(asked)
            if seen is None:
                span[asked] = [lo, hi]
            else:
                seen[0], seen[1] = min(seen[0], lo), max(seen[1], hi)
        nets = list(span)
        near: list[list[rows_repo.Near]] = [[] for _ in nets]
        for found in rows_repo.around_nets(
            self.session,
            [n for n, _ in nets],
            [span[n][0] for n in nets],
            [span[n][1] for n in nets],
            [r for _, r in nets],
            [reused(n) for n, _ in nets],
        ):
            near[found[0]].append(found)
        of_net = dict(zip(nets, near, strict=True))
        out: dict[int, tuple[str, str]] = {}
        for (asked, lo, hi), asked_rows in keys.items():
            subscriber = asked[0]
            touching = _touching(of_net[asked], lo, hi)
            account = account_of(
                touching[: rows_repo.LIMIT],
                lo,
                hi,
                subscriber=subscriber,
                more=len(touching) > rows_repo.LIMIT,
            )
            said = (account.status, account.account or "")
            for row in asked_rows:
                out[row] = said
        return out


def _touching(found: list[rows_repo.Near], lo: int, hi: int) -> list[Interval]:
    """The rows :data:`detnat.store.directory._AROUND` gives for ``[lo, hi]`` (``during`` overlaps
    the window, not an open row taken over before it; by start, ingest and place; at most
    ``LIMIT + 1``), as :func:`_intervals` makes them."""
    picked = sorted(
        (
            r
            for r in found
            if r[4] <= hi
            and (r[5] is None or r[5] > lo)
            and not (r[5] is None and r[8] is not None and r[8] <= lo)  # taken over before
        ),
        key=lambda r: (r[4], r[1], r[2]),
    )[: rows_repo.LIMIT + 1]
    out = []
    for _, _, _, prefix, start, upper, account, closed, taken in picked:
        end = upper if upper is not None else taken
        how = closed if upper is not None or taken is None else "takeover"
        out.append(Interval(network_text(prefix), account, start, end, how, ()))
    return out


# -- evidence --------------------------------------------------------------------------------------

ACCOUNT_KEYS = ("account", "account_reason")


def check_account(answer: dict[str, Any]) -> list[str]:
    """Offline (evidence files): each source line carried is the text its SHA-256 says, and the
    account follows from the intervals carried by the rule of :mod:`detnat.directory.resolve`."""
    if "account" not in answer:
        return []
    shown = answer["account"]
    if shown is None:
        return [] if answer.get("account_reason") else ["answer.account: null without a reason"]
    problems = []
    realm = _realm_of(answer)
    try:
        held = []
        for n, h in enumerate(shown["held"]):
            if "realm" in h and h["realm"] != realm:
                problems.append(
                    f"answer.account.held[{n}]: a row of realm {h['realm']} does not answer "
                    f"an answer {'of several realms' if realm is None else f'in realm {realm}'}"
                )
            for s in h.get("sources", []):
                if SourceLine.of(s["file"], s["line"], s["text"]).sha256 != s["sha256"]:
                    problems.append(
                        f"answer.account.held[{n}]: {s['file']}:{s['line']} is not the line its "
                        "SHA-256 names"
                    )
            start = epoch_us(_instant(h["from"]))
            end = None if h["to"] is None else epoch_us(_instant(h["to"]))
            held.append(Interval(h["subscriber"], h["account"], start, end, h["closed"], ()))
        lo, hi = (epoch_us(_instant(answer["window"][k])) for k in ("from", "to"))
    except (KeyError, TypeError, ValueError, AttributeError):
        return ["answer.account: malformed"]
    again = account_of(held, lo, hi)
    # An answer carries at most SHOWN intervals: when it names no account and carries that many,
    # the ones left out may be what made it ambiguous (it names no one either way).
    cut = shown.get("status") == "ambiguous" and shown.get("account") is None
    cut = cut and len(held) >= SHOWN
    if not cut and (again.status, again.account) != (shown.get("status"), shown.get("account")):
        problems.append("answer.account: the intervals carried do not give this account")
    return problems


def _instant(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def held_rows(answer: dict[str, Any]) -> list[dict[str, Any]]:
    """The intervals an answer's account shows (none without an account)."""
    shown = answer.get("account")
    return list(shown["held"]) if isinstance(shown, dict) else []


def ingests_of_held(session: Session, answer: dict[str, Any]) -> list[int | None]:
    """For each interval the answer's account shows, the ingest (the seq of its
    ``directory.ingest`` audit entry) that made its row from the lines it shows; None: shown
    without lines, or no such row (the first such ingest when several read the same lines)."""
    found: list[int | None] = []
    for h in held_rows(answer):
        lines = h.get("sources")
        rows = (
            rows_repo.rows_at(session, h["subscriber"], _instant(h["from"]), h["account"],
                              h.get("realm"))
            if lines
            else []
        )  # fmt: skip
        same = (i for i, sources in rows if _source_list(sources) == lines)
        found.append(next(same, None))
    return found


def _source_list(sources: Any) -> Any:
    return json.loads(sources) if isinstance(sources, str) else sources


def check_lines(answer: dict[str, Any], readings: Sequence[Reading | None]) -> list[str]:
    """Offline (evidence files): each interval the account shows, against what its source lines
    say read again as their ingest read them (``readings``, one per interval: None when it cannot
    be, and the caller said why). :mod:`detnat.directory.reread` has the rules."""
    problems = []
    for n, (h, reading) in enumerate(zip(held_rows(answer), readings, strict=True)):
        if reading is None:
            continue
        try:
            start = epoch_us(_instant(h["from"]))
            end = None if h["to"] is None else epoch_us(_instant(h["to"]))
            lines = tuple(
                SourceLine(s["file"], s["line"], s["sha256"], s["text"])
                for s in h.get("sources", [])
            )
            row = Interval(h["subscriber"], h["account"], start, end, h["closed"], lines)
        except (KeyError, TypeError, ValueError, AttributeError):
            problems.append(f"answer.account.held[{n}]: malformed")
            continue
        problems += [f"answer.account.held[{n}]: {p}" for p in check_row(row, reading)]
    return problems


__all__ = [
    "ACTION",
    "BatchAccounts",
    "IngestSummary",
    "InputFile",
    "Reading",
    "account_json",
    "add_account",
    "add_account_async",
    "check_account",
    "check_lines",
    "check_store",
    "held_rows",
    "ingest",
    "ingests_of_held",
]
