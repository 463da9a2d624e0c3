"""Batch "who held A:P at T" against the store: many rows, one snapshot, the single lookup's rules.

Rows are answered in chunks. For each chunk: the times are parsed at once
(:func:`~detnat.service.times.parse_instants_us`), each row's candidate versions are found with
:func:`~detnat.service.timelines.candidate_range` (the rule single lookups use), the (row, version)
pairs are grouped by version and each group is answered by ``Mapper.reverse_many``. A row with one
candidate takes that candidate's answer; a row with several (near a change, within a drain) is
decided by :func:`~detnat.service.lookups.verdict` from the candidates' full answers; a row with
none by :func:`~detnat.service.lookups.without_candidates`. So a batch row and a single lookup of
the same query always agree (``tests/store/test_batch_store.py`` checks it on random rows).

Input: CSV with columns ``ip,port,time`` (others kept), or a JSON array of ``{ip, port, time}``.
Output: the input columns plus ``status,reason,subscriber``; a row that is not a query gets status
``error`` with the message, reported with its line number, and the batch goes on. Cells that a
spreadsheet would read as a formula are neutralised with a leading ``'``.

One module at this size: the store batch (readers, grouping by plan version, writers); issue 12
merges it with the plan-file pipeline of detnat.batch.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TextIO, TypeAlias

import numpy as np
import numpy.typing as npt

from detnat import strictjson
from detnat.batch import (
    FORMULA_START,
    BadRow,
    parse_ip,
    parse_ipv4_many,
    parse_port,
    parse_port_many,
    read_header,
)
from detnat.batch import BatchReport as PlanBatchReport
from detnat.engine import REASON_CODES, STATUS_CODES, Reason, Status
from detnat.errors import InvalidInput, QueryError
from detnat.service import lookups
from detnat.service.answers import VersionEvidence
from detnat.service.plans import MapperCache
from detnat.service.timelines import Timelines, candidate_range, from_us, to_us
from detnat.service.times import check_window, parse_instants_us

Ints: TypeAlias = npt.NDArray[np.int64]

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
    # The NAT's own logs beside the plans (detnat.service.log_answers.BatchLogs): called with
    # ips, ports, window starts and ends (µs) and the answered columns, which it may change.
    logs: Callable[..., None] | None = None


# -- answering parsed rows -------------------------------------------------------------------------


@dataclass
class _Answers:
    status: list[str]
    reason: list[str]
    subscriber: list[str]


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
    ``errors``, as :func:`~detnat.service.times.check_window` refuses a single lookup.
    """
    n = len(ips)
    status = [""] * n
    reason = [""] * n
    subscriber = [""] * n
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
    for i in np.flatnonzero(future).tolist():
        status[i], reason[i] = Status.FUTURE, Reason.AFTER_NOW
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
        count = last - first + 1
        row_of = np.repeat(rows, count)
        offsets = np.arange(len(row_of), dtype=np.int64) - np.repeat(
            np.cumsum(count) - count, count
        )
        version_of = np.repeat(first, count) + offsets
        order = np.argsort(version_of, kind="stable")
        version_of, row_of = version_of[order], row_of[order]
        cuts = np.flatnonzero(np.diff(version_of)) + 1
        for chunk_rows, chunk_versions in zip(
            np.split(row_of, cuts), np.split(version_of, cuts), strict=True
        ):
            if not len(chunk_rows):
                continue
            version = realm.versions[int(chunk_versions[0])]
            if version.plan is None:  # a retirement: no plan in force for what it ended
                ended = realm.plan_ended_by(int(chunk_versions[0]))
                if query.realm is None and ended is not None:
                    retired[chunk_rows[ended.holds_many(ips[chunk_rows])]] = True
                continue
            if query.realm is None:
                chunk_rows = chunk_rows[version.holds_many(ips[chunk_rows])]
                if not len(chunk_rows):
                    continue
            pair_rows.append(chunk_rows)
            pair_versions.append((realm_index, int(chunk_versions[0]), chunk_rows))
    counts = np.zeros(n, dtype=np.int64)
    for rows in pair_rows:
        counts[rows] += 1

    single = counts == 1
    for realm_index, version_index, rows in pair_versions:
        realm = snapshot.realms[realm_index]
        version = realm.versions[version_index]
        report.versions.setdefault(version.id, lookups.evidence_of(realm, version))
        mapper = query.mappers.get(version)
        mine = rows[single[rows]]
        if not len(mine):
            continue
        answers = mapper.reverse_many(ips[mine], ports[mine])
        codes = answers.status.tolist()
        reasons = answers.reason.tolist()
        subs = answers.subscriber.tolist()
        for k, row in enumerate(mine.tolist()):
            said = STATUS_CODES[codes[k]]
            if said is None:  # INVALID
                errors[row] = _refusal(mapper, int(ips[row]), int(ports[row]))
                continue
            status[row] = said
            if said is Status.MATCH:
                subscriber[row] = str(mapper.subscriber_at(subs[k]))
            else:
                reason[row] = REASON_CODES[reasons[k]] or ""

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
                    lookups.engine_verdict(
                        query.mappers.get(snapshot.realms[r].versions[v]).reverse(
                            int(ips[row]), int(ports[row])
                        )
                    )
                    for r, v in pairs
                ]
            except QueryError as exc:
                errors[row] = exc.message
                continue
            decided = lookups.verdict(candidates)
            status[row] = decided["status"]
            reason[row] = decided.get("reason", "")
            subscriber[row] = decided.get("subscriber", "")

    # No candidate: no plan, or an address no plan held.
    for row in np.flatnonzero(alive & (counts == 0)).tolist():
        try:
            decided = lookups.without_candidates(
                snapshot,
                int(ips[row]),
                from_us(int(start[row])),
                from_us(int(end[row])),
                realm_named=query.realm is not None,
                retired=bool(retired[row]),
            )
        except QueryError as exc:
            errors[row] = exc.message
            continue
        status[row], reason[row] = decided["status"], decided.get("reason", "")
    if query.logs is not None:
        query.logs(ips, ports, start, end, status, reason, subscriber)
    return _Answers(status, reason, subscriber)


def _rows_by_realm(query: BatchQuery, ips: Ints, alive: Ints) -> Iterator[tuple[int, Ints]]:
    snapshot = query.snapshot
    if query.realm is not None:
        realm = lookups.realm_timeline(snapshot, query.realm)
        yield snapshot.realms.index(realm), alive
        return
    segment = snapshot.segment_of(ips[alive])
    order = np.argsort(segment, kind="stable")
    segment, rows = segment[order], alive[order]
    cuts = np.flatnonzero(np.diff(segment)) + 1
    by_realm: dict[int, list[Ints]] = {}
    for seg_rows, seg in zip(np.split(rows, cuts), np.split(segment, cuts), strict=True):
        if not len(seg_rows):
            continue
        for realm_index in snapshot.realms_of_segment(int(seg[0])):
            by_realm.setdefault(realm_index, []).append(seg_rows)
    for realm_index, parts in sorted(by_realm.items()):
        yield realm_index, np.sort(np.concatenate(parts))


def _refusal(mapper: Any, ip: int, port: int) -> str:
    try:
        mapper.reverse(ip, port)
    except InvalidInput as exc:
        return exc.message
    return "refused by the engine"


# -- CSV -------------------------------------------------------------------------------------------


def cell(text: str) -> str:
    """One output cell: formula starts neutralised, quoted when it holds , " CR or LF."""
    if text.startswith(FORMULA_START):
        text = "'" + text
    if any(c in text for c in ',"\r\n'):
        text = '"' + text.replace('"', '""') + '"'
    return text


def _echoes(rows: list[list[str]], columns: int) -> list[str]:
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


def bounded_lines(stream: TextIO, *, limit: int = MAX_LINE_CHARS) -> Iterator[str]:
    """The lines of a text stream, refusing one longer than ``limit`` characters: a file without
    line breaks (``/dev/zero``) is never read whole."""
    while line := stream.readline(limit + 1):
        if len(line) > limit:
            raise InvalidInput(f"a line longer than {limit} characters", field="batch")
        yield line


def reverse_csv_at(
    query: BatchQuery,
    lines: Iterable[str],
    write: Callable[[str], object],
    *,
    progress: Callable[[int], None] | None = None,
) -> BatchReport:
    """Answer a CSV (``lines`` already decoded, BOM stripped) into ``write``, chunk by chunk."""
    report = BatchReport()
    digest = hashlib.sha256()

    def emit(text: str) -> None:
        digest.update(text.encode("utf-8", "surrogateescape"))
        write(text)

    reader = csv.reader(iter(lines), strict=True)
    header = read_header(reader, REQUIRED)
    columns = len(header)
    ip_col, port_col, time_col = (header.index(name) for name in REQUIRED)
    emit(",".join(map(cell, [*header, *OUTPUT_COLUMNS])) + "\n")
    done = False
    while not done:
        rows: list[list[str]] = []
        line_no: list[int] = []
        shape_errors: dict[int, str] = {}
        while len(rows) < CHUNK_ROWS:
            first_line = reader.line_num + 1
            try:
                cells = next(reader)
            except StopIteration:
                done = True
                break
            except csv.Error as exc:
                shape_errors[len(rows)] = f"malformed CSV ({exc})"
                rows.append([""] * columns)
                line_no.append(first_line)
                continue
            if not cells:
                continue  # an empty line
            if len(cells) != columns:
                if len(cells) > columns:
                    shape_errors[len(rows)] = (
                        f"{len(cells)} fields, the header has {columns} "
                        "(row kept whole in the first column)"
                    )
                    cells = [",".join(cells)] + [""] * (columns - 1)
                else:
                    cells = cells + [""] * (columns - len(cells))
            rows.append(cells)
            line_no.append(first_line)
        if not rows:
            break
        report.rows += len(rows)
        if query.max_rows is not None and report.rows > query.max_rows:
            raise InvalidInput(
                f"more than {query.max_rows} rows; the limit is {query.max_rows} rows per batch",
                field="batch",
            )
        ips, ports, at_us, errors = _parse_columns(
            [r[ip_col] for r in rows],
            [r[port_col] for r in rows],
            [r[time_col] for r in rows],
            query.tz,
        )
        errors.update(shape_errors)
        answers = answer_rows(query, ips, ports, at_us, errors, report)
        statuses = answers.status
        for i in sorted(errors):
            report.bad(line_no[i], errors[i])
            statuses[i] = ERROR
        for status, n in Counter(statuses).items():
            report.counts[status] = report.counts.get(status, 0) + n
        echoes = _echoes(rows, columns)
        out = [
            f"{e},{s},{r},{u}\n"
            for e, s, r, u in zip(echoes, statuses, answers.reason, answers.subscriber, strict=True)
        ]
        for i, message in errors.items():
            out[i] = f"{echoes[i]},{ERROR},{cell(message)},\n"
        emit("".join(out))
        if progress is not None:
            progress(report.rows)
    report.output_sha256 = digest.hexdigest()
    return report


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
        for i, item in enumerate(chunk):
            shown = item if isinstance(item, dict) else {}
            echo = {k: shown[k] for k in REQUIRED if k in shown}
            report.rows += 1
            if i in errors:
                report.bad(base + i, errors[i])
                report.note(ERROR)
                out.append({**echo, "status": ERROR, "error": errors[i]})
                continue
            report.note(answers.status[i])
            answer: dict[str, Any] = {**echo, "status": answers.status[i]}
            if answers.reason[i]:
                answer["reason"] = answers.reason[i]
            if answers.subscriber[i]:
                answer["subscriber"] = answers.subscriber[i]
            out.append(answer)
    return out, report


__all__ = ["BatchQuery", "BatchReport", "answer_rows", "cell", "reverse_csv_at", "reverse_json_at"]


def load_json_rows(body: bytes) -> list[Any]:
    """A JSON array, strictly: no duplicate keys, no NaN/Infinity, bounded nesting."""

    data = strictjson.loads(body, field="batch")
    if not isinstance(data, list):
        raise InvalidInput("want a JSON array of {ip, port, time} objects", field="batch")
    if not data:
        raise InvalidInput("empty batch", field="batch")
    return data
