"""Batch "who held A:P at T" against the store: many rows, one snapshot, the single lookup's rules.

Rows are answered a block at a time. A CSV comes in blocks of whole lines (:func:`file_blocks`
from a file, :func:`line_blocks` from decoded lines). A block of plain lines (no quote, no CR) is
read as the plan-file batch reads one (:mod:`detnat.batch`): numpy finds the lines and fields in
the raw bytes, parses every dotted quad, port and time of the block at once
(:func:`~detnat.service.times.instants_in`), and the output is the input bytes of each line plus a
``,status,reason,subscriber`` tail built by array operations (subscriber texts from
:mod:`detnat.subscriber_text`), spliced by :func:`detnat.batch.splice_rows`. Rows it cannot vouch
for (a bad ip, port or time, a cell to neutralise, too few or too many fields) are redone one by
one with the single parsers. Plain blocks are answered by two worker threads and written in order.
Any other block goes through the csv module record by record (a quoted record may read on into the
next block). Both ways write the same bytes (``tests/store/test_batch_pipeline.py`` checks every
path against the row-by-row reference of ``tests/test_batch.py``).

Answering (:func:`answer_rows`): each row's candidate versions are found with
:func:`~detnat.service.timelines.candidate_range` (the rule single lookups use), rows are grouped
by version and each group is answered by ``Mapper.reverse_many``; answers are small codes
(:data:`STATUS_WORDS`, :data:`REASON_WORDS`). A row with one candidate takes that candidate's
answer; a row with several (near a change, within a drain) is decided by
:func:`~detnat.service.lookups.verdict` from the candidates' full answers; a row with none by
:func:`~detnat.service.lookups.without_candidates`. So a batch row and a single lookup of the same
query always agree.

Input: CSV with columns ``ip,port,time`` (others kept), or a JSON array of ``{ip, port, time}``.
Output: the input columns plus ``status,reason,subscriber``; a row that is not a query gets status
``error`` with the message, reported with its line number, and the batch goes on. Cells that a
spreadsheet would read as a formula are neutralised with a leading ``'`` (the cell rules of
:mod:`detnat.batch`: :func:`~detnat.batch.cell`, :func:`~detnat.batch.error_tail`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import re
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from itertools import islice
from typing import Any, BinaryIO, Protocol, TypeAlias

import numpy as np
import numpy.typing as npt

from detnat import strictjson
from detnat.batch import (
    _BOM,
    BLOCK_BYTES,
    FORMULA_BYTE,
    FORMULA_GATE,
    BadRow,
    Bytes,
    cell,
    cpus,
    error_tail,
    parse_ip,
    parse_ipv4_many,
    parse_port,
    parse_port_many,
    read_header,
    splice_rows,
)
from detnat.batch import BatchReport as PlanBatchReport
from detnat.engine import INVALID, MATCH, REASON_CODES, STATUS_CODES, Mapper, Reason, Status
from detnat.errors import InvalidInput, QueryError
from detnat.service import lookups
from detnat.service.answers import VersionEvidence
from detnat.service.mappers import MapperCache
from detnat.service.timelines import Timelines, candidate_range, from_us, to_us
from detnat.service.times import check_window, fixed_offset_s, instants_in, parse_instants_us
from detnat.subscriber_text import SubscriberTexts

Ints: TypeAlias = npt.NDArray[np.int64]
Bools: TypeAlias = npt.NDArray[np.bool_]

CHUNK_ROWS = 1 << 15
MAX_LINE_CHARS = 16 << 20  # as detnat.batch.MAX_LINE_BYTES
MAX_BAD_ROWS = 1000
OUTPUT_COLUMNS = ("status", "reason", "subscriber")
ERROR = "error"  # the status of a row that is not a query (its reason column says why)
ERROR_WORDS = "not a query (see below)"


def status_words(status: str) -> str:
    """The words the pages show beside a row status: a :class:`Status`'s, or those of an error."""
    return ERROR_WORDS if status == ERROR else Status(status).words


REQUIRED = ("ip", "port", "time")
_SPECIAL = re.compile(r'["\r]|(?:^|,)[=+\-@\x00-\x1f\x7f\uff1d\uff0b\uff0d\uff20]', re.MULTILINE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_US = (datetime.min.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)
_MAX_US = (datetime.max.replace(tzinfo=UTC) - _EPOCH) // timedelta(microseconds=1)


@dataclass
class BatchReport(PlanBatchReport):
    """A plan-file batch's report, plus what the audit log and evidence need.

    A bad row's ``line`` is the CSV line (the header is line 1) or the JSON array index.
    """

    versions: dict[int, VersionEvidence] = field(default_factory=dict)  # id -> evidence
    output_sha256: str = ""
    answer_id: int = 0  # the audit entry of the batch (set by the edge that records it)

    def note(self, status: str) -> None:
        self.counts[status] = self.counts.get(status, 0) + 1

    def bad(self, line: int, message: str) -> None:
        self.bad_row_count += 1
        if len(self.bad_rows) < MAX_BAD_ROWS:
            self.bad_rows.append(BadRow(line, message))


@dataclass(frozen=True)
class BatchQuery:
    """What every row of a batch shares."""

    snapshot: Timelines
    now: datetime
    mappers: MapperCache
    tolerance: timedelta = timedelta(0)
    realm: str | None = None
    tz: str | None = None
    max_rows: int | None = None
    # The NAT's own logs beside the plans (detnat.service.log_answers.BatchLogs).
    logs: BatchLogsAsked | None = None
    # The subscriber directory's accounts (detnat.service.directory.BatchAccounts): set only by
    # callers that show accounts (complaints); the reverse batch outputs carry none.
    accounts: BatchAccountsAsked | None = None
    # The logs and the accounts share the caller's database session, and a batch answers blocks
    # on worker threads: one of them asks the database at a time.
    asking: threading.Lock = field(default_factory=threading.Lock, compare=False, repr=False)


# -- answering parsed rows -------------------------------------------------------------------------

# Answers are small codes: a row's status is STATUS_WORDS[code] (0: not answered, a row that is not
# a query), its reason REASON_WORDS[code] (0: none).
STATUS_WORDS: tuple[str, ...] = ("", *(status.value for status in Status), ERROR)
REASON_WORDS: tuple[str, ...] = ("", *(reason.value for reason in Reason))
_STATUS = {word: code for code, word in enumerate(STATUS_WORDS)}
_REASON = {word: code for code, word in enumerate(REASON_WORDS)}
ERROR_CODE = _STATUS[ERROR]
_FROM_ENGINE_STATUS = np.array(
    [0 if status is None else _STATUS[status.value] for status in STATUS_CODES], dtype=np.uint8
)
_FROM_ENGINE_REASON = np.array(
    [0 if reason is None else _REASON[reason.value] for reason in REASON_CODES], dtype=np.uint8
)


class BatchLogsAsked(Protocol):
    """What a batch asks of the NAT's own logs: given ips, ports, window starts and ends (µs)
    and the rows whose status is one of ``consulted`` with the plans' answers (:class:`LogsAsked`),
    the rows the logs answer otherwise, with their answers (:class:`LogsTold`; None: none)."""

    asked: bool  # the store holds logs this batch may read
    consulted: frozenset[str]

    def __call__(
        self, ips: Ints, ports: Ints, start_us: Ints, end_us: Ints, said: LogsAsked
    ) -> LogsTold | None: ...

    def sharing(self, asked: list[tuple[int, int, int]]) -> list[set[str]]:
        """For each (address, window start, window end in µs), the subscribers the logs show
        holding a port block on that address in the window."""
        ...


@dataclass(frozen=True)
class LogsAsked:
    """The rows a batch asks the logs about and what the plans answered: ``rows`` (ascending),
    their status and reason codes (:data:`STATUS_WORDS`, :data:`REASON_WORDS`);
    ``subscribers(rows)`` gives the subscriber of each of ``rows`` (those the plans matched)."""

    rows: Ints
    status: npt.NDArray[np.uint8]
    reason: npt.NDArray[np.uint8]
    subscribers: Callable[[list[int]], dict[int, str]]
    # A batch that names no realm: per row of ``rows``, the realm whose plan holds its address
    # and leaves the port to the logs (an index of ``realm_names``; -1: none, or the plan named a
    # subscriber; -2: several, in ``several``): only their logs answer it
    # (:func:`detnat.service.log_answers.answering_realms`).
    plan_realm: Ints | None = None
    realm_names: list[str] = field(default_factory=list)
    several: dict[int, frozenset[str]] = field(default_factory=dict)

    def answering_realms(self, row: int) -> frozenset[str] | None:
        """The realms whose logs answer ``row`` when the batch names none (None: any realm's)."""
        if self.plan_realm is None:
            return None
        k = int(self.plan_realm[int(np.searchsorted(self.rows, row))])
        if k == -1:
            return None
        return self.several[row] if k == -2 else frozenset((self.realm_names[k],))


@dataclass(frozen=True)
class LogsTold:
    """The rows whose answer the logs change: ``rows``, their status and reason codes, their
    subscriber (an index into ``texts``; -1: none) and, for a row the logs match, the realm of
    the allocation (an index into ``realms``; -1: not known)."""

    rows: Ints
    status: npt.NDArray[np.uint8]
    reason: npt.NDArray[np.uint8]
    subscriber: Ints
    texts: list[str]
    realm: Ints
    realms: list[str]


class BatchAccountsAsked(Protocol):
    """What a batch asks of the subscriber directory: given the matched rows (row ->
    (subscriber, realm or None)) and each row's window start and end (µs), row -> (account
    status, account)."""

    def __call__(
        self, subscribers: dict[int, tuple[str, str | None]], start_us: Ints, end_us: Ints
    ) -> dict[int, tuple[str, str]]: ...


@dataclass
class _Answers:
    """Each row's status and reason codes; the subscribers of the matched rows.

    ``matched``: rows answered ``match`` by one plan version, with that version's mapper and the
    subscriber numbers; ``texts``: the subscriber of rows decided by :func:`lookups.verdict`.
    """

    status: npt.NDArray[np.uint8]
    reason: npt.NDArray[np.uint8]
    matched: list[tuple[Ints, Mapper, Ints]] = field(default_factory=list)
    texts: dict[int, str] = field(default_factory=dict)
    # Rows the logs answered otherwise (after ``matched``, which they override; not in ``texts``).
    told: list[LogsTold] = field(default_factory=list)
    # Only when the query asks for accounts: each row's account ('' where none) and the
    # directory's status for it ('identified', 'ambiguous', 'not_covered'; '' where not asked).
    account: list[str] | None = None
    account_status: list[str] | None = None
    # The realm of matched rows: (rows, realm) per plan version answering alone, and row ->
    # realm for rows decided otherwise (several versions of one realm, or the logs of one).
    realm_rows: list[tuple[Ints, str]] = field(default_factory=list)
    realm_of: dict[int, str] = field(default_factory=dict)
    # A batch that names no realm: each row's realm whose plan holds its address (a realm index of
    # the snapshot; -1: none; -2: several, their indexes in ``plan_realms``).
    plan_realm: Ints | None = None
    plan_realms: dict[int, set[int]] = field(default_factory=dict)

    def realms_of(self, rows: list[int]) -> dict[int, str | None]:
        """The realm each of ``rows`` was matched in (None: several, or not known)."""
        out: dict[int, str | None] = dict.fromkeys(rows)
        wanted = np.array(rows, dtype=np.int64)
        for matched, realm in self.realm_rows:
            for row in matched[np.isin(matched, wanted)].tolist():
                out[row] = realm
        for row in rows:
            if row in self.realm_of:
                out[row] = self.realm_of[row]
        return out

    def subscribers(self) -> list[str]:
        """Each row's subscriber text ('' where there is none), row by row."""
        out = [""] * len(self.status)
        for rows, mapper, numbers in self.matched:
            for row, number in zip(rows.tolist(), numbers.tolist(), strict=True):
                out[row] = str(mapper.subscriber_at(number))
        for told in self.told:
            texts = [*told.texts, ""]  # index -1: none
            for row, k in zip(told.rows.tolist(), told.subscriber.tolist(), strict=True):
                out[row] = texts[k]
        for row, text in self.texts.items():
            out[row] = text
        return out

    def subscribers_of(self, rows: list[int]) -> dict[int, str]:
        """:meth:`subscribers` of ``rows`` only."""
        out = dict.fromkeys(rows, "")
        wanted = np.array(rows, dtype=np.int64)
        for matched, mapper, numbers in self.matched:
            hit = np.isin(matched, wanted)
            for row, number in zip(matched[hit].tolist(), numbers[hit].tolist(), strict=True):
                out[row] = str(mapper.subscriber_at(number))
        for told in self.told:
            texts = [*told.texts, ""]  # index -1: none
            hit = np.isin(told.rows, wanted)
            for row, k in zip(told.rows[hit].tolist(), told.subscriber[hit].tolist(), strict=True):
                out[row] = texts[k]
        for row in rows:
            if row in self.texts:
                out[row] = self.texts[row]
        return out


def answer_rows(
    query: BatchQuery,
    ips: Ints,
    ports: Ints,
    at_us: Ints,
    errors: dict[int, str],
    report: BatchReport,
) -> _Answers:
    """Answer rows (those in ``errors`` are not queries); notes used versions in ``report``.

    A row whose window leaves the calendar (years 1-9999) is not a query either: it is added to
    ``errors``, as :func:`~detnat.service.times.check_window` refuses a single lookup. So is a
    row the engine refuses (an address that is never public).
    """
    n = len(ips)
    answers = _Answers(np.zeros(n, dtype=np.uint8), np.zeros(n, dtype=np.uint8))
    status, reason = answers.status, answers.reason
    snapshot = query.snapshot
    tol = query.tolerance // timedelta(microseconds=1)
    for i in np.flatnonzero((at_us - tol < _MIN_US) | (at_us + tol > _MAX_US)).tolist():
        if i not in errors:
            try:
                check_window(from_us(int(at_us[i])), query.tolerance)
            except QueryError as exc:
                errors[i] = f"bad time: {exc.message}"
    now_us = to_us(query.now)
    start = at_us - tol
    end = np.minimum(at_us + tol, now_us)
    alive = np.ones(n, dtype=np.bool_)
    if errors:
        alive[list(errors)] = False
    future = alive & (at_us > now_us)
    status[future] = _STATUS[Status.FUTURE.value]
    reason[future] = _REASON[Reason.AFTER_NOW.value]
    alive &= ~future

    # (row, realm, version) pairs: every candidate of every row.
    pair_rows: list[Ints] = []
    pair_versions: list[tuple[int, int, Ints]] = []  # realm index, version index, rows
    retired = np.zeros(n, dtype=np.bool_)  # a retirement ended the plan that held the address
    groups = _rows_by_realm(query, ips, np.flatnonzero(alive))
    for realm_index, rows in groups:
        realm = snapshot.realms[realm_index]
        first, last = candidate_range(realm.starts_us, realm.drain_us, start[rows], end[rows])
        has = last >= first
        rows, first, last = rows[has], first[has], last[has]
        if not len(rows):
            continue
        version_runs = _runs_by_version(rows, first, last)
        for chunk_rows, version_index in version_runs:
            version = realm.versions[version_index]
            if version.plan is None:  # a retirement: no plan in force for what it ended
                ended = realm.plan_ended_by(version_index)
                if query.realm is None and ended is not None:
                    retired[chunk_rows[ended.holds_many(ips[chunk_rows])]] = True
                continue
            if query.realm is None:
                chunk_rows = chunk_rows[version.holds_many(ips[chunk_rows])]
                if not len(chunk_rows):
                    continue
            pair_rows.append(chunk_rows)
            pair_versions.append((realm_index, version_index, chunk_rows))
    counts = np.zeros(n, dtype=np.int64)
    for rows in pair_rows:
        counts[rows] += 1
    if query.realm is None:
        _plan_realms(n, pair_versions, answers)

    single = counts == 1
    for realm_index, version_index, rows in pair_versions:
        realm = snapshot.realms[realm_index]
        version = realm.versions[version_index]
        report.versions.setdefault(version.id, lookups.evidence_of(realm, version))
        mapper = query.mappers.get(version)
        mine = rows[single[rows]]
        if not len(mine):
            continue
        said = mapper.reverse_many(ips[mine], ports[mine])
        codes = said.status
        refused = codes == INVALID
        if refused.any():
            for row in mine[refused].tolist():
                errors[row] = _refusal(mapper, int(ips[row]), int(ports[row]))
            kept = ~refused
            mine, codes = mine[kept], codes[kept]
            reasons, numbers = said.reason[kept], said.subscriber[kept]
        else:
            reasons, numbers = said.reason, said.subscriber
        status[mine] = _FROM_ENGINE_STATUS[codes]
        is_match = codes == MATCH
        reason[mine] = np.where(is_match, 0, _FROM_ENGINE_REASON[reasons])
        if is_match.any():
            answers.matched.append((mine[is_match], mapper, numbers[is_match]))
            answers.realm_rows.append((mine[is_match], realm.name))

    # Several candidates: the single lookup's verdict over their full answers.
    several = np.flatnonzero(counts > 1)
    if len(several):
        members: dict[int, list[tuple[int, int]]] = {int(r): [] for r in several}
        for realm_index, version_index, rows in pair_versions:
            for row in rows[counts[rows] > 1].tolist():
                members[row].append((realm_index, version_index))
        for row, pairs in members.items():
            try:
                candidates = [
                    lookups.in_realm(
                        lookups.engine_verdict(
                            query.mappers.get(snapshot.realms[r].versions[v]).reverse(
                                int(ips[row]), int(ports[row])
                            )
                        ),
                        snapshot.realms[r].name,
                    )
                    for r, v in pairs
                ]
            except QueryError as exc:
                errors[row] = exc.message
                continue
            decided = lookups.verdict(candidates)
            status[row] = _STATUS[decided["status"]]
            reason[row] = _REASON[decided.get("reason", "")]
            if decided.get("subscriber"):
                answers.texts[row] = decided["subscriber"]
                realms = {snapshot.realms[r].name for r, _ in pairs}
                if len(realms) == 1:
                    answers.realm_of[row] = realms.pop()

    # No candidate: no plan, or an address no plan held (the rule of without_candidates).
    none = np.flatnonzero(alive & (counts == 0))
    if len(none):
        refused, not_in_pool = lookups.without_candidates_many(
            snapshot,
            ips[none],
            start[none],
            end[none],
            realm_named=query.realm is not None,
            retired=retired[none],
        )
        status[none] = _STATUS[Status.NO_PLAN_IN_FORCE.value]
        reason[none] = _REASON[Reason.NO_PLAN.value]
        status[none[not_in_pool]] = _STATUS[Status.NO_MAPPING.value]
        reason[none[not_in_pool]] = _REASON[Reason.NOT_IN_POOL.value]
        for row in none[refused].tolist():
            status[row] = reason[row] = 0
            try:
                lookups.without_candidates(
                    snapshot,
                    int(ips[row]),
                    from_us(int(start[row])),
                    from_us(int(end[row])),
                    realm_named=query.realm is not None,
                )
            except QueryError as exc:
                errors[row] = exc.message
    if query.logs is not None:
        with query.asking:
            _consult_logs(query.logs, ips, ports, start, end, answers, query)
    if query.accounts is not None:
        # the single answer's window: [at - tolerance, at + tolerance] (its "to" is not capped)
        with query.asking:
            _consult_accounts(query.accounts, start, at_us + tol, answers)
    return answers


def _consult_accounts(
    accounts: BatchAccountsAsked, start: Ints, end: Ints, answers: _Answers
) -> None:
    """Each matched row's account (:class:`detnat.service.directory.BatchAccounts`)."""
    n = len(answers.status)
    answers.account, answers.account_status = [""] * n, [""] * n
    matched = np.flatnonzero(answers.status == _STATUS[Status.MATCH.value]).tolist()
    realms = answers.realms_of(matched)
    subscribers = {r: (t, realms[r]) for r, t in answers.subscribers_of(matched).items() if t}
    for row, (status, account) in accounts(subscribers, start, end).items():
        answers.account_status[row], answers.account[row] = status, account


def _plan_realms(n: int, pair_versions: list[tuple[int, int, Ints]], answers: _Answers) -> None:
    """Each row's realm whose plan holds its address (``answers.plan_realm``), for the logs."""
    plan = np.full(n, -1, dtype=np.int64)
    for realm_index, _, rows in pair_versions:
        seen = plan[rows]
        plan[rows] = np.where((seen == -1) | (seen == realm_index), realm_index, -2)
    if (plan == -2).any():
        for realm_index, _, rows in pair_versions:
            for row in rows[plan[rows] == -2].tolist():
                answers.plan_realms.setdefault(row, set()).add(realm_index)
    answers.plan_realm = plan


def _consult_logs(
    logs: BatchLogsAsked,
    ips: Ints,
    ports: Ints,
    start: Ints,
    end: Ints,
    answers: _Answers,
    query: BatchQuery,
) -> None:
    """The rows the NAT's own logs may answer, answered by them too
    (:class:`detnat.service.log_answers.BatchLogs`, the single lookup's rule). A row the logs
    match is of the realm of the allocations that match it (the query's realm when it names one)."""
    if not logs.asked:
        return
    codes = [_STATUS[word] for word in logs.consulted]
    asked = np.flatnonzero(np.isin(answers.status, codes))
    if not len(asked):
        return
    said = LogsAsked(asked, answers.status[asked], answers.reason[asked], answers.subscribers_of)
    if answers.plan_realm is not None:
        names = [r.name for r in query.snapshot.realms]
        plan = answers.plan_realm[asked]
        # a plan's match meets every realm's logs (log_answers.answering_realms)
        plan[answers.status[asked] == _STATUS[Status.MATCH.value]] = -1
        said = replace(
            said,
            plan_realm=plan,
            realm_names=names,
            several={
                row: frozenset(names[k] for k in held) for row, held in answers.plan_realms.items()
            },
        )
    told = logs(ips, ports, start, end, said)
    if told is None or not len(told.rows):
        return
    answers.status[told.rows] = told.status
    answers.reason[told.rows] = told.reason
    answers.told.append(told)
    if answers.texts:
        for n in told.rows.tolist():
            answers.texts.pop(n, None)
    # the realm of the rows the logs match: the allocation's, or else the one asked about
    realms = [*told.realms, query.realm]  # index -1: the realm asked about (None: not known)
    matched = told.status == _STATUS[Status.MATCH.value]
    for k in np.unique(told.realm[matched]).tolist():
        known = realms[k]
        if known is not None:
            answers.realm_rows.append((told.rows[matched & (told.realm == k)], known))


def _texts_table(texts: list[str]) -> tuple[Bytes, Ints]:
    """Texts as the rows of a zero-padded byte table, and their lengths."""
    encoded = [text.encode("utf-8", "surrogateescape") for text in texts]
    size = np.fromiter(map(len, encoded), dtype=np.int64, count=len(encoded))
    table = np.zeros((len(encoded), int(size.max(initial=0))), dtype=np.uint8)
    flat = np.frombuffer(b"".join(encoded), dtype=np.uint8)
    row = np.repeat(np.arange(len(encoded)), size)
    table[row, np.arange(len(flat)) - np.repeat(np.cumsum(size) - size, size)] = flat
    return table, size


def _rows_by_realm(query: BatchQuery, ips: Ints, alive: Ints) -> Iterator[tuple[int, Ints]]:
    snapshot = query.snapshot
    if query.realm is not None:
        realm = lookups.realm_timeline(snapshot, query.realm)
        yield snapshot.realms.index(realm), alive
        return
    segment = snapshot.segment_of(ips[alive])
    # Segments are few: each realm takes the rows of its segments (in row order) through a table.
    offset = 1  # segment -1: below every pool
    present = np.flatnonzero(np.bincount(segment + offset, minlength=1)) - offset
    tables: dict[int, npt.NDArray[np.bool_]] = {}
    for seg in present.tolist():
        for realm_index in snapshot.realms_of_segment(seg):
            table = tables.get(realm_index)
            if table is None:
                table = tables[realm_index] = np.zeros(snapshot.segment_count + 1, dtype=np.bool_)
            table[seg + offset] = True
    for realm_index, table in sorted(tables.items()):
        yield realm_index, alive[table[segment + offset]]


def _runs_by_version(rows: Ints, first: Ints, last: Ints) -> list[tuple[Ints, int]]:
    """For each version that is a candidate of some row (versions ``first[i]..last[i]`` of row
    ``rows[i]``), ascending: (the rows it is a candidate of, ascending; the version).

    Most rows have one candidate: they are grouped by counting (few versions), and only the rows
    near a change (several candidates) are spread out one (row, version) pair each and sorted.
    """
    one = first == last
    if bool(one.all()):
        return _runs_of_one(rows, first)
    runs = {version: [chunk] for chunk, version in _runs_of_one(rows[one], first[one])}
    several = ~one
    rows, first, last = rows[several], first[several], last[several]
    count = last - first + 1
    row_of = np.repeat(rows, count)
    offsets = np.arange(len(row_of), dtype=np.int64) - np.repeat(np.cumsum(count) - count, count)
    version_of = np.repeat(first, count) + offsets
    order = np.argsort(version_of, kind="stable")
    version_of, row_of = version_of[order], row_of[order]
    cuts = np.flatnonzero(np.diff(version_of)) + 1
    for chunk, versions in zip(np.split(row_of, cuts), np.split(version_of, cuts), strict=True):
        if len(chunk):
            runs.setdefault(int(versions[0]), []).append(chunk)
    return [
        (chunks[0] if len(chunks) == 1 else np.sort(np.concatenate(chunks)), version)
        for version, chunks in sorted(runs.items())
    ]


def _runs_of_one(rows: Ints, version: Ints) -> list[tuple[Ints, int]]:
    """:func:`_runs_by_version` of rows with one candidate each."""
    if not len(rows):
        return []
    used = np.flatnonzero(np.bincount(version)).tolist()
    if len(used) == 1:
        return [(rows, used[0])]
    return [(rows[version == v], v) for v in used]


def _first_commas(commas: Ints, starts: Ints, ends: Ints, columns: int) -> tuple[Ints, Bools]:
    """Each line's first comma (an index into ``commas``) and which lines have not ``columns``
    fields. Most blocks have the right number on every line, checked without a search."""
    n = len(starts)
    if len(commas) == n * (columns - 1):
        grid = commas.reshape(n, columns - 1)
        if bool(np.all(grid[:, 0] > starts - 1)) and bool(np.all(grid[:, -1] < ends)):
            return np.arange(0, len(commas), columns - 1, dtype=np.int64), np.zeros(n, np.bool_)
    first = np.searchsorted(commas, starts)
    fields = np.searchsorted(commas, ends) - first + 1
    return first, fields != columns


def _refusal(mapper: Any, ip: int, port: int) -> str:
    try:
        mapper.reverse(ip, port)
    except InvalidInput as exc:
        return exc.message
    return "refused by the engine"


# -- CSV -------------------------------------------------------------------------------------------


def echoes(rows: list[list[str]], columns: int) -> list[str]:
    """The input cells of each row as output text (neutralised and quoted where needed).

    One scan of the whole chunk finds the rows that need more than joining with commas: a cell
    holding a comma, quote, CR or LF, or starting like a formula.
    """
    lines = [",".join(cells) for cells in rows]
    text = "\n".join(lines)
    plain = text.count(",") == len(lines) * (columns - 1) and text.count("\n") == len(lines) - 1
    if plain and not _SPECIAL.search(text):
        return lines
    for i, line in enumerate(lines):
        if line.count(",") != columns - 1 or "\n" in line or _SPECIAL.search(line):
            lines[i] = ",".join(map(cell, rows[i]))
    return lines


def line_blocks(lines: Iterable[str], *, rows: int = CHUNK_ROWS) -> Iterator[bytes]:
    """Decoded lines (each with its line break, as a text stream with ``newline=""`` gives
    them) as the blocks :func:`reverse_csv_blocks` reads, ``rows`` lines each: UTF-8,
    surrogates escaped back."""
    it = iter(lines)
    while part := list(islice(it, rows)):
        yield "".join(part).encode("utf-8", "surrogateescape")


def file_blocks(
    source: BinaryIO, *, limit: int = MAX_LINE_CHARS, block_bytes: int = BLOCK_BYTES
) -> Iterator[bytes]:
    """A CSV file's bytes as blocks of whole lines (about ``BLOCK_BYTES``), a leading BOM dropped.

    A line is cut at LF (or CR, the universal line ends a text stream reads); a run of more than
    ``limit`` bytes without one is refused, so a file without line breaks is never read whole.
    """
    pending = b""
    started = False  # the first bytes were checked for a BOM
    while True:
        data = source.read(block_bytes)
        pending += data
        if not started:
            if data and len(pending) < len(_BOM) and _BOM.startswith(pending):
                continue
            pending, started = pending.removeprefix(_BOM), True
        if not data:
            if pending:
                _check_first_line(pending, len(pending), limit)
                yield pending
            return
        cut = pending.rfind(b"\n") + 1
        if not cut:
            cut = pending.rfind(b"\r", 0, len(pending) - 1) + 1
        if not cut:
            _check_first_line(pending, len(pending), limit)
            continue
        _check_first_line(pending, cut, limit)
        yield pending[:cut]
        pending = pending[cut:]


_BREAK = re.compile(rb"[\r\n]")


def _check_first_line(pending: bytes, end: int, limit: int) -> None:
    """Refuse a first line longer than ``limit`` (only a line carried over reads can be: a read
    is far smaller than the limit)."""
    if end > limit:
        found = _BREAK.search(pending, 0, limit + 1)
        if found is None or found.end() > limit:
            raise InvalidInput(f"a line longer than {limit} characters", field="batch")


def reverse_csv_at(
    query: BatchQuery,
    lines: Iterable[str],
    write: Callable[[str], object],
    *,
    progress: Callable[[int], None] | None = None,
) -> BatchReport:
    """Answer a CSV (``lines`` already decoded, BOM stripped) into ``write``, block by block."""

    def write_text(data: bytes | memoryview) -> None:
        write(bytes(data).decode("utf-8", "surrogateescape"))

    return reverse_csv_blocks(query, line_blocks(lines), write_text, progress=progress)


def reverse_csv_blocks(
    query: BatchQuery,
    blocks: Iterable[bytes],
    write: Callable[[bytes | memoryview], object],
    *,
    progress: Callable[[int], None] | None = None,
    threads: int | None = None,
) -> BatchReport:
    """Answer a CSV given as blocks of whole lines (:func:`file_blocks`, :func:`line_blocks`)
    into ``write``; ``progress`` is called with the rows done after each block.

    Blocks of plain lines are answered by ``threads`` worker threads (numpy lets go of the GIL;
    default: the CPUs this process may use, at most 2) and written in input order.
    """
    return _CsvRun(query, blocks, write, progress, threads or cpus()).run()


@dataclass(frozen=True)
class _Done:
    """A block answered by a worker: its output, each row's status code, the bad rows' messages
    (by row), each row's line number within the block (its first line is 1) and the block's
    physical lines."""

    output: bytes | memoryview
    status: npt.NDArray[np.uint8]
    errors: dict[int, str]
    line_no: Ints
    lines: int


class _CsvRun:
    """One CSV batch: blocks of plain lines by numpy (:meth:`_fast`), others by the csv module
    record by record (:meth:`_slow`); both write the same bytes for the same rows."""

    def __init__(
        self,
        query: BatchQuery,
        blocks: Iterable[bytes],
        write: Callable[[bytes | memoryview], object],
        progress: Callable[[int], None] | None,
        threads: int,
    ) -> None:
        self.query = query
        self.blocks = iter(blocks)
        self.sink = write
        self.progress = progress
        self.report = BatchReport()
        self.digest = hashlib.sha256()
        self.pending: list[str] = []  # decoded lines not yet read (after a slow block)
        self.line_base = 0  # physical lines read so far
        self.naive_offset_s = fixed_offset_s(query.tz)
        self.texts: dict[int, tuple[Mapper, SubscriberTexts | None]] = {}
        self.status_seen: dict[int, int] = {}  # status code -> rows, in order of first appearance
        self.threads = threads

    def run(self) -> BatchReport:
        self._header()
        pending: deque[tuple[Future[_Done | None], bytes]] = deque()
        pool: ThreadPoolExecutor | None = None
        try:
            while (block := self._next_block()) is not None:
                if b'"' in block or b"\r" in block:
                    while pending:
                        self._deliver(*pending.popleft())
                    self._slow(block)
                    self._progress()
                    continue
                if pool is None:
                    pool = ThreadPoolExecutor(self.threads, thread_name_prefix="detnat-batch")
                pending.append((pool.submit(self._fast, block), block))
                while len(pending) > self.threads:
                    self._deliver(*pending.popleft())
            while pending:
                self._deliver(*pending.popleft())
        finally:
            if pool is not None:
                pool.shutdown(wait=True, cancel_futures=True)
        report = self.report
        report.counts = {
            STATUS_WORDS[code]: count for code, count in self.status_seen.items() if count
        }
        report.output_sha256 = self.digest.hexdigest()
        return report

    def _deliver(self, future: Future[_Done | None], block: bytes) -> None:
        """Count, write and report an answered block; blocks are delivered in input order, so
        the lines before a block are known only here."""
        done = future.result()
        if done is None:  # a line too long for the csv module: it says what is wrong
            self._slow(block)
        else:
            if len(done.status):
                self._count(len(done.status))
                self._write(done.output)
                self._note(done.status, done.errors, done.line_no + self.line_base)
            self.line_base += done.lines
        self._progress()

    def _progress(self) -> None:
        if self.progress is not None:
            self.progress(self.report.rows)

    def _write(self, data: bytes | memoryview) -> None:
        self.digest.update(data)
        self.sink(data)

    def _next_block(self) -> bytes | None:
        if self.pending:
            block = "".join(self.pending).encode("utf-8", "surrogateescape")
            self.pending = []
            return block
        return next(self.blocks, None)

    def _lines(self) -> Iterator[str]:
        """Decoded lines for the csv module: the pending ones, then the next blocks'."""
        while True:
            while self.pending:
                self.line_base += 1
                yield self.pending.pop()
            block = next(self.blocks, None)
            if block is None:
                return
            self._push(block)

    def _push(self, block: bytes) -> None:
        """Put a block's lines (split as a text stream with ``newline=""`` splits) in front."""
        lines = list(io.StringIO(block.decode("utf-8", "surrogateescape"), newline=""))
        lines.reverse()
        self.pending = lines + self.pending

    def _header(self) -> None:
        reader = csv.reader(self._lines(), strict=True)
        header = read_header(reader, REQUIRED)
        self.columns = len(header)
        self.ip_col, self.port_col, self.time_col = (header.index(name) for name in REQUIRED)
        names = ",".join(map(cell, [*header, *OUTPUT_COLUMNS])) + "\n"
        self._write(names.encode("utf-8", "surrogateescape"))
        self.pending.reverse()  # back in reading order, joined again by _next_block
        # The tails: ",status,reason," of every code pair, a subscriber after it for a match.
        prefixes = [
            f",{status},{reason},".encode() for status in STATUS_WORDS for reason in REASON_WORDS
        ]
        self.match_at = len(f",{Status.MATCH.value},,")
        width = max(max(map(len, prefixes)) + 1, self.match_at + 44)
        self.tail_table = np.zeros((len(prefixes), width), dtype=np.uint8)
        self.tail_lengths = np.zeros(len(prefixes), dtype=np.int64)
        for code, prefix in enumerate(prefixes):
            line = prefix + b"\n"
            self.tail_table[code, : len(line)] = np.frombuffer(line, dtype=np.uint8)
            self.tail_lengths[code] = len(line)

    def _count(self, rows: int) -> None:
        report = self.report
        report.rows += rows
        limit = self.query.max_rows
        if limit is not None and report.rows > limit:
            raise InvalidInput(
                f"more than {limit} rows; the limit is {limit} rows per batch", field="batch"
            )

    def _note(self, status: npt.NDArray[np.uint8], errors: dict[int, str], line_no: Ints) -> None:
        """Count the rows per status (in order of first appearance) and report the bad rows."""
        counts = np.bincount(status, minlength=len(STATUS_WORDS))
        present = np.flatnonzero(counts).tolist()
        seen = self.status_seen
        if not all(code in seen for code in present):  # new statuses: in order of appearance
            present.sort(key=lambda code: int(np.argmax(status == code)))
        for code in present:
            seen[code] = seen.get(code, 0) + int(counts[code])
        for i in sorted(errors):
            self.report.bad(int(line_no[i]), errors[i])

    def _subscriber_texts(self, mapper: Mapper, numbers: Ints) -> tuple[Bytes, Ints]:
        kept = self.texts.get(id(mapper))
        if kept is None or kept[0] is not mapper:
            kept = self.texts[id(mapper)] = (mapper, SubscriberTexts.of(mapper))
        runs = kept[1]
        if runs is not None:
            return runs.texts(numbers)
        texts = [str(mapper.subscriber_at(i)).encode() for i in numbers.tolist()]
        out = np.zeros((len(texts), max(map(len, texts))), dtype=np.uint8)
        for k, text in enumerate(texts):
            out[k, : len(text)] = np.frombuffer(text, dtype=np.uint8)
        return out, np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))

    def _tails(
        self, answers: _Answers, errors: dict[int, str]
    ) -> tuple[npt.NDArray[np.uint8], Bytes, Ints, dict[int, bytes]]:
        """(status codes, each row's tail, the tails' lengths, tails written from Python)."""
        status = answers.status
        if errors:
            status[list(errors)] = ERROR_CODE
        code = status.astype(np.intp) * len(REASON_WORDS) + answers.reason
        tails = self.tail_table[code]
        lengths = self.tail_lengths[code]
        at = self.match_at
        for rows, mapper, numbers in answers.matched:
            text, size = self._subscriber_texts(mapper, numbers)
            tails[rows, at : at + text.shape[1]] = text
            tails[rows, at + size] = 10
            lengths[rows] = at + size + 1
        written = {i: error_tail(message) for i, message in errors.items()}
        for told in answers.told:  # after the plans' matches: the logs' answer replaces theirs
            rows = told.rows
            tails[rows] = self.tail_table[code[rows]]
            lengths[rows] = self.tail_lengths[code[rows]]
            named = told.subscriber >= 0
            if not named.any():
                continue
            text, size = _texts_table(told.texts)
            if text.shape[1] > tails.shape[1] - at - 1:  # too wide for the table: from Python
                for row, k in zip(
                    rows[named].tolist(), told.subscriber[named].tolist(), strict=True
                ):
                    written[row] = f",{STATUS_WORDS[status[row]]},,{told.texts[k]}\n".encode(
                        "utf-8", "surrogateescape"
                    )
                continue
            rows, which = rows[named], told.subscriber[named]
            tails[rows, at : at + text.shape[1]] = text[which]
            tails[rows, at + size[which]] = 10
            lengths[rows] = at + size[which] + 1
        for i, subscriber in answers.texts.items():
            if i not in errors:
                written[i] = (
                    f",{STATUS_WORDS[status[i]]},{REASON_WORDS[answers.reason[i]]},{subscriber}\n"
                ).encode("utf-8", "surrogateescape")
        return status, tails, lengths, written

    # -- fast path ----------------------------------------------------------------------------

    def _fast(self, block: bytes) -> _Done | None:
        """A block without quotes or CR (line numbers from 1 at its first line): lines and fields
        found, parsed and written by numpy; rows it cannot vouch for are redone one by one.

        Runs in worker threads: it leaves the run's counts and output to :meth:`_deliver`. None:
        a line too long for the csv module, which the slow path reports.
        """
        if not block.endswith(b"\n"):
            block += b"\n"
        size = len(block)
        text = np.frombuffer(block + bytes(40), dtype=np.uint8)  # room for reads past the end
        body = text[:size]
        breaks = np.flatnonzero(body == 10)
        if np.max(np.diff(breaks, prepend=-1)) > csv.field_size_limit():
            return None
        starts = np.empty(len(breaks), dtype=np.int64)
        starts[0] = 0
        starts[1:] = breaks[:-1] + 1
        ends = breaks
        lines = len(breaks)
        line_no = np.arange(1, lines + 1, dtype=np.int64)
        filled = ends > starts
        if not filled.all():  # empty lines: no row, no output
            starts, ends, line_no = starts[filled], ends[filled], line_no[filled]
        n = len(starts)
        if n == 0:
            return _Done(b"", np.zeros(0, dtype=np.uint8), {}, line_no, lines)
        columns = self.columns
        commas = np.flatnonzero(body == 44)
        redo = np.ones(n, dtype=np.bool_)
        ips = np.zeros(n, dtype=np.int64)
        ports = np.zeros(n, dtype=np.int64)
        at_us = np.zeros(n, dtype=np.int64)
        good = np.zeros(n, dtype=np.bool_)
        if len(commas):
            first, redo = _first_commas(commas, starts, ends, columns)
            if FORMULA_GATE.search(block):
                redo |= FORMULA_BYTE[body[starts]]
                leading = commas[FORMULA_BYTE[text[commas + 1]]]
                redo[np.searchsorted(ends, leading)] = True
            last = len(commas) - 1

            def bounds(column: int) -> tuple[Ints, Ints]:
                fs = starts if column == 0 else commas[np.minimum(first + column - 1, last)] + 1
                fe = ends if column == columns - 1 else commas[np.minimum(first + column, last)]
                return fs, fe

            dots = np.flatnonzero(body == 46)
            ips, ip_ok = parse_ipv4_many(body, dots, *bounds(self.ip_col))
            ports, port_ok = parse_port_many(body, *bounds(self.port_col))
            ts, te = bounds(self.time_col)
            at_us, time_ok = instants_in(text, ts, te - ts, self.naive_offset_s)
            good = ~redo & ip_ok & port_ok & time_ok
        echoes: dict[int, bytes] = {}
        errors: dict[int, str] = {}
        bad = np.flatnonzero(~good).tolist()
        if bad:
            texts = {i: block[starts[i] : ends[i]].decode("utf-8", "surrogateescape") for i in bad}
            shown = [i for i in bad if redo[i]]
            cells = {i: texts[i].split(",") for i in bad}
            rows: list[list[str]] = []
            for i in bad:
                row = cells[i]
                if len(row) > columns:
                    errors[i] = (
                        f"{len(row)} fields, the header has {columns} "
                        "(row kept whole in the first column)"
                    )
                    row = [texts[i]] + [""] * (columns - 1)
                elif len(row) < columns:
                    row = row + [""] * (columns - len(row))
                rows.append(row)
            for i, row in zip(bad, rows, strict=True):
                cells[i] = row
            for i in shown:
                echoes[i] = ",".join(map(cell, cells[i])).encode("utf-8", "surrogateescape")
            self._parse_rows(bad, cells, ips, ports, at_us, errors)
        answers = answer_rows(self.query, ips, ports, at_us, errors, self.report)
        status, tails, lengths, written = self._tails(answers, errors)
        replaced = {i: (echoes.get(i), tail) for i, tail in written.items()}
        for i, echo in echoes.items():
            if i not in replaced:
                replaced[i] = (echo, tails[i, : lengths[i]].tobytes())
        output = splice_rows(block, text, starts, ends, tails, lengths, replaced)
        return _Done(output, status, errors, line_no, lines)

    def _parse_rows(
        self,
        rows: list[int],
        cells: dict[int, list[str]],
        ips: Ints,
        ports: Ints,
        at_us: Ints,
        errors: dict[int, str],
    ) -> None:
        """Parse the ip, port and time of ``rows`` one by one (rows in ``errors`` are skipped)."""
        asked = [i for i in rows if i not in errors]
        times, time_errors = parse_instants_us(
            [cells[i][self.time_col] for i in asked], tz=self.query.tz
        )
        for k, i in enumerate(asked):
            problems = []
            ip = parse_ip(cells[i][self.ip_col])
            port = parse_port(cells[i][self.port_col])
            if isinstance(ip, str):
                problems.append(ip)
            else:
                ips[i] = ip
            if isinstance(port, str):
                problems.append(port)
            else:
                ports[i] = port
            at_us[i] = times[k]
            message = time_errors.get(k)
            if problems:
                errors[i] = "; ".join(problems if message is None else [*problems, message])
            elif message is not None:
                errors[i] = f"bad time: {message}"

    # -- slow path ----------------------------------------------------------------------------

    def _slow(self, block: bytes) -> None:
        """A block with quotes or CR: the csv module, record by record; a record that runs on
        past the block reads on into the next."""
        self._push(block)
        stop = self.line_base + len(self.pending)
        reader = csv.reader(self._lines(), strict=True)
        columns = self.columns
        rows: list[list[str]] = []
        line_no: list[int] = []
        errors: dict[int, str] = {}
        while self.line_base < stop:
            first_line = self.line_base + 1
            try:
                cells = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                errors[len(rows)] = f"malformed CSV ({exc})"
                rows.append([""] * columns)
                line_no.append(first_line)
                continue
            if not cells:
                continue  # an empty line
            if len(cells) > columns:
                errors[len(rows)] = (
                    f"{len(cells)} fields, the header has {columns} "
                    "(row kept whole in the first column)"
                )
                cells = [",".join(cells)] + [""] * (columns - 1)
            elif len(cells) < columns:
                cells = cells + [""] * (columns - len(cells))
            rows.append(cells)
            line_no.append(first_line)
        self.pending.reverse()  # the rest of a block read on into: back in reading order
        n = len(rows)
        if not n:
            return
        self._count(n)
        ips = np.zeros(n, dtype=np.int64)
        ports = np.zeros(n, dtype=np.int64)
        at_us = np.zeros(n, dtype=np.int64)
        self._parse_rows(list(range(n)), dict(enumerate(rows)), ips, ports, at_us, errors)
        answers = answer_rows(self.query, ips, ports, at_us, errors, self.report)
        status, tails, lengths, written = self._tails(answers, errors)
        out = [
            echo.encode("utf-8", "surrogateescape")
            + (written[i] if i in written else tails[i, : lengths[i]].tobytes())
            for i, echo in enumerate(echoes(rows, columns))
        ]
        self._write(b"".join(out))
        self._note(status, errors, np.array(line_no, dtype=np.int64))


def _parse_columns(
    ip_texts: list[str], port_texts: list[str], time_texts: list[str], tz: str | None
) -> tuple[Ints, Ints, Ints, dict[int, str]]:
    n = len(ip_texts)
    ips, ip_ok = _many(ip_texts, lambda text, dots, fs, fe: parse_ipv4_many(text, dots, fs, fe))
    ports, port_ok = _many(port_texts, lambda text, dots, fs, fe: parse_port_many(text, fs, fe))
    at_us, time_errors = parse_instants_us(time_texts, tz=tz)
    errors: dict[int, str] = {}
    for i in np.flatnonzero(~(ip_ok & port_ok)).tolist():
        problems = []
        for parsed, values in ((parse_ip(ip_texts[i]), ips), (parse_port(port_texts[i]), ports)):
            if isinstance(parsed, str):
                problems.append(parsed)
            else:
                values[i] = parsed
        if problems:
            errors[i] = "; ".join(problems)
    for i, message in time_errors.items():
        errors[i] = f"{errors[i]}; {message}" if i in errors else f"bad time: {message}"
    assert len(ips) == n
    return ips, ports, at_us, errors


def _many(
    texts: list[str],
    parse: Callable[[npt.NDArray[np.uint8], Ints, Ints, Ints], tuple[Ints, npt.NDArray[np.bool_]]],
) -> tuple[Ints, npt.NDArray[np.bool_]]:
    """Apply a vectorised cell parser to ASCII texts (anything else: not ok, redone one by one)."""
    n = len(texts)
    try:
        raw = "\n".join(texts).encode("ascii")
    except UnicodeEncodeError:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.bool_)
    lens = np.fromiter(map(len, texts), dtype=np.int64, count=n)
    fs = np.zeros(n, dtype=np.int64)
    np.cumsum(lens[:-1] + 1, out=fs[1:])
    fe = fs + lens
    # Padding in front, so reads a little before a field never wrap to the end.
    pad = 8
    text = np.frombuffer(b"\n" * pad + raw + b"\n", dtype=np.uint8)
    dots = np.flatnonzero(text == 46)
    values, ok = parse(text, dots, fs + pad, fe + pad)
    return values.astype(np.int64), ok & (lens > 0)


# -- JSON ------------------------------------------------------------------------------------------


def reverse_json_at(
    query: BatchQuery, items: list[Any]
) -> tuple[list[dict[str, Any]], BatchReport]:
    """Answer a JSON array of ``{ip, port, time}`` objects; one answer object per item, in order."""
    report = BatchReport()
    if query.max_rows is not None and len(items) > query.max_rows:
        raise InvalidInput(
            f"{len(items)} rows; the limit is {query.max_rows} rows per batch", field="batch"
        )
    out: list[dict[str, Any]] = []
    for base in range(0, len(items), CHUNK_ROWS):
        chunk = items[base : base + CHUNK_ROWS]
        ip_texts: list[str] = []
        times: list[str] = []
        ports = np.zeros(len(chunk), dtype=np.int64)
        errors: dict[int, str] = {}
        for i, item in enumerate(chunk):
            ip, port, time = "", 0, "1970-01-01T00:00:00Z"
            if not isinstance(item, dict):
                errors[i] = f"item is {type(item).__name__}, want an object {{ip, port, time}}"
            elif set(item) != set(REQUIRED):
                extra = sorted(set(item) - set(REQUIRED))
                missing = sorted(set(REQUIRED) - set(item))
                errors[i] = "; ".join(
                    [f"missing {', '.join(missing)}"] * bool(missing)
                    + [f"unknown key(s) {', '.join(map(repr, extra))}"] * bool(extra)
                )
            elif not isinstance(item["ip"], str) or not isinstance(item["time"], str):
                errors[i] = "ip and time must be strings"
            elif isinstance(item["port"], bool) or not isinstance(item["port"], int):
                errors[i] = f"port must be an integer, got {item['port']!r}"[:200]
            elif not 0 <= item["port"] <= 65535:
                errors[i] = f"port {item['port']} is outside 0-65535"
            else:
                ip, port, time = item["ip"], item["port"], item["time"]
            ip_texts.append(ip)
            ports[i] = port
            times.append(time)
        ips, ip_ok = _many(ip_texts, lambda t, d, fs, fe: parse_ipv4_many(t, d, fs, fe))
        for i in np.flatnonzero(~ip_ok).tolist():
            if i in errors:
                continue
            parsed = parse_ip(ip_texts[i])
            if isinstance(parsed, str):
                errors[i] = parsed
            else:
                ips[i] = parsed
        at_us, time_errors = parse_instants_us(times)
        for i, message in time_errors.items():
            errors.setdefault(i, f"bad time: {message}")
        answers = answer_rows(query, ips, ports, at_us, errors, report)
        subscribers = answers.subscribers()
        for i, item in enumerate(chunk):
            shown = item if isinstance(item, dict) else {}
            echo = {k: shown[k] for k in REQUIRED if k in shown}
            report.rows += 1
            if i in errors:
                report.bad(base + i, errors[i])
                report.note(ERROR)
                out.append({**echo, "status": ERROR, "error": errors[i]})
                continue
            status = STATUS_WORDS[answers.status[i]]
            report.note(status)
            answer: dict[str, Any] = {**echo, "status": status}
            if answers.reason[i]:
                answer["reason"] = REASON_WORDS[answers.reason[i]]
            if subscribers[i]:
                answer["subscriber"] = subscribers[i]
            out.append(answer)
    return out, report


__all__ = [
    "BatchQuery",
    "BatchReport",
    "answer_rows",
    "cell",
    "file_blocks",
    "line_blocks",
    "reverse_csv_at",
    "reverse_csv_blocks",
    "reverse_json_at",
]


def load_json_rows(body: bytes) -> list[Any]:
    """A JSON array, strictly: no duplicate keys, no NaN/Infinity, bounded nesting."""

    data = strictjson.loads(body, field="batch")
    if not isinstance(data, list):
        raise InvalidInput("want a JSON array of {ip, port, time} objects", field="batch")
    if not data:
        raise InvalidInput("empty batch", field="batch")
    return data
