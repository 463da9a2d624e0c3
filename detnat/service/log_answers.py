"""The logs beside the plans: one reverse answer from both, and where they disagree, both.

A reverse answer from the plans (:mod:`detnat.service.lookups`) is handed to :func:`consult`,
which asks the stored log intervals that hold the port in the window
(:func:`detnat.logs.intervals.decide`) when

- the plan in force says the port is in a dynamic block (``not_deterministic``): the logs answer
  (``match`` with ``source: "log"``, ``ambiguous`` with a ``log_*`` reason, or ``no_mapping`` /
  ``not_logged``);
- no plan holds the address (``no_plan_in_force``, ``not_in_pool``) and the realm asked about has
  logs (or, with no realm named, some realm's logs hold the port in the window): likewise;
- the plan names a subscriber: a log interval that names another inside key at the same port and
  time makes the answer ``ambiguous`` / ``plan_and_log_disagree``, with both candidates.

The log intervals consulted are in ``log_candidates`` with their lines (text included), so the
evidence file can be checked offline: each line read again with its ingest's format and options
says what its candidate shows (:func:`check_lines`), and the intervals and the answer follow from
the lines (:func:`rederive`). :func:`combine` is the pure rule both use.

Example::

    answer = lookups.reverse_in(snapshot, "192.0.2.1", 1100, at=..., ...)
    answer = log_answers.consult(session, answer, realm=None, now=now)
"""

from __future__ import annotations

import functools
import hashlib
import ipaddress
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from detnat.engine import parse_public_address
from detnat.errors import DetnatError
from detnat.logs.events import EventKind, LineRef, LogEvent, Refused
from detnat.logs.formats import FORMATS, ParseOptions, parse_lines
from detnat.logs.intervals import Interval, Seen, derive, port_ranges
from detnat.logs.settle import CONSULTED, settle, subscriber_of, within
from detnat.service import answers, lookups, revisions
from detnat.service.answers import Reason, Status
from detnat.service.times import format_instant, parse_instant
from detnat.store import logs as store

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from detnat.service.batch_lookups import LogsAsked, LogsTold

US = timedelta(microseconds=1)


def interval_of(row: Any) -> Interval:
    """A stored interval row as the interval it is (ValueError/TypeError/KeyError: not one)."""
    during = row.during
    return Interval(
        store.ipv4_text(row.public),
        row.port_first,
        row.port_last,
        row.port_step,
        None if row.protocol == "all" else row.protocol,
        row.inside,
        None if during.lower is None else store.micros(during.lower),
        None if during.upper is None else store.micros(during.upper),
        row.open,
        row.unknown_start,
        tuple(Seen(EventKind(k), at, LineRef(f, n, sha)) for k, at, f, n, sha in row.lines),
        row.conflict,
        row.interim_deadline,
    )


def _instant(at_us: int | None) -> str | None:
    return None if at_us is None else format_instant(store.instant(at_us))


def candidate(realm: str, interval: Interval, texts: dict[str, str]) -> answers.LogCandidate:
    """One interval as the answer shows it, with its lines (``interim_deadline`` only when set:
    answers made before a realm could declare an interim period stay as they were)."""
    shown: answers.LogCandidate = {
        "source": "log",
        "realm": realm,
        "subscriber": subscriber_of(interval.inside),
        "public_ip": interval.public,
        "port_ranges": interval.port_ranges(),
        "port_step": interval.port_step,
        "protocol": interval.protocol,
        "interval": {"from": _instant(interval.start_us), "to": _instant(interval.end_us)},
        "seen": {
            "from": _instant(interval.seen_from_us),
            "to": _instant(interval.seen_to_us),
        },
        "open": interval.open,
        "unknown_start": interval.unknown_start,
        "conflict": interval.conflict,
        "lines": [
            {
                "kind": seen.kind.value,
                "at": format_instant(store.instant(seen.at_us)),
                "file": seen.source.file,
                "line": seen.source.line,
                "sha256": seen.source.sha256,
                "text": texts.get(seen.source.sha256, ""),
            }
            for seen in interval.lines
        ],
    }
    if interval.interim_deadline:
        shown["interim_deadline"] = True
    return shown


def _set_verdict(answer: answers.ReverseAnswer, decided: answers.Verdict) -> None:
    for key in ("reason", "subscriber", "public_ip", "port_ranges"):
        answer.pop(key, None)  # type: ignore[misc]
    lookups.with_verdict(answer, decided)


def combine(
    answer: answers.ReverseAnswer,
    found: Sequence[tuple[str, Interval]],
    texts: dict[str, str],
    holds_us: dict[str, int | None],
    *,
    window_us: tuple[int, int],
    logs_asked: bool,
    interims_us: dict[str, int | None] | None = None,
) -> answers.ReverseAnswer:
    """``answer`` (from the plans) with what the intervals ``found`` say (see the module
    docstring). ``logs_asked``: the realm asked about has logs (a ``not_logged`` can be said).
    ``holds_us`` / ``interims_us``: each realm's log hold and interim period the intervals were
    derived with (``log_interims_us`` is shown only when some realm declares a period)."""
    settled = settle(
        answer["status"],
        answer.get("reason"),
        answer.get("subscriber"),
        found,
        answer["port"],
        *window_us,
        logs_asked=logs_asked,
    )
    if settled is None:
        return answer
    realm_of = {id(i): r for r, i in found}
    answer["log_candidates"] = [
        candidate(realm_of[id(i)], i, texts) for i in settled.decided.intervals
    ]
    answer["log_holds_us"] = holds_us
    if interims_us and any(v is not None for v in interims_us.values()):
        answer["log_interims_us"] = interims_us
    if settled.source == "log" and settled.status is Status.MATCH:
        interval = settled.decided.intervals[0]
        _set_verdict(
            answer,
            {
                "status": Status.MATCH,
                "subscriber": subscriber_of(interval.inside),
                "public_ip": interval.public,
                "port_ranges": interval.port_ranges(),
            },
        )
    elif settled.source == "log" or settled.status is not answer["status"]:
        assert settled.reason is not None  # the logs' own verdict, or the two disagree
        _set_verdict(answer, {"status": settled.status, "reason": settled.reason})
    if settled.source == "log":
        answer["source"] = "log"
    return answer


@dataclass(frozen=True)
class Fetched:
    """What the stored logs hold for one question: the intervals found and what shows them."""

    found: list[tuple[str, Interval]]
    texts: dict[str, str]
    holds_us: dict[str, int | None]
    window_us: tuple[int, int]
    logs_asked: bool
    interims_us: dict[str, int | None] = field(default_factory=dict)


def _wanted(answer: answers.ReverseAnswer) -> bool:
    return answer["status"] in CONSULTED


def _question(answer: answers.ReverseAnswer, now: datetime) -> tuple[int, int, datetime, datetime]:
    at = parse_instant(answer["time"])
    start, end = lookups.window(at, timedelta(seconds=answer["tolerance_seconds"]), now)
    return parse_public_address(answer["ip"], field="ip"), answer["port"], start, end


def answering_realms(answer: answers.ReverseAnswer, realm: str | None) -> frozenset[str] | None:
    """The realms whose logs answer ``answer``'s question: the realm asked about; with none
    named and a plan that leaves the port to the logs, the realms whose plans in force hold the
    address (its candidates): an allocation another realm's logs show on an address a plan holds
    names another NAT's subscriber (or a file ingested under the wrong realm), not the holder of
    this one. None: every realm's (no plan holds the address; or the plans name a subscriber,
    which any realm's log naming another makes ``plan_and_log_disagree``)."""
    if realm is not None:
        return frozenset((realm,))
    if answer["status"] is Status.MATCH:
        return None
    return frozenset(c["realm"] for c in answer.get("candidates", ())) or None


def _fetched(
    rows: list[Any],
    realm: str | None,
    window: tuple[datetime, datetime],
    *,
    has_logs: bool,
    realms: frozenset[str] | None,
) -> Fetched | None:
    """``rows`` of the ``realms`` that answer (:func:`answering_realms`) as what was fetched;
    ``realm``: the realm asked about."""
    rows = [r for r in rows if realms is None or r.realm_name in realms]
    if not rows and not has_logs:
        return None
    texts: dict[str, str] = {}
    holds: dict[str, int | None] = {}
    interims: dict[str, int | None] = {}
    for row in rows:
        texts.update(row.texts)
        holds[row.realm_name] = None if row.hold is None else row.hold // US
        interims[row.realm_name] = None if row.interim is None else row.interim // US
    start, end = window
    found = [(r.realm_name, interval_of(r)) for r in rows]
    window_us = (store.micros(start), store.micros(end))
    return Fetched(found, texts, holds, window_us, realm is not None, interims)


# Whether the store held any logs, per revision (an ingest or a prune bumps it).
_ANY_LOGS = revisions.Facts()


def _database(info: Any) -> str:
    return f"{info.host}:{info.port}/{info.dbname}"


def fetch(
    session: Session,
    answer: answers.ReverseAnswer,
    *,
    realm: str | None,
    now: datetime,
    revision: int | None = None,
) -> Fetched | None:
    """The stored logs for ``answer``'s question (None: nothing the logs can say). One round
    trip; a second only when no interval is found for a question the logs would answer.
    ``revision``: the store revision of the caller's snapshot (a store without logs then: no
    query)."""
    if not _wanted(answer):
        return None
    at = revisions.key(_database(store.raw_connection(session).info), revision)
    known = _ANY_LOGS.known(at)
    if known is None and at is not None:
        known = _ANY_LOGS.learn(at, store.has_logs(session, None))
    if known is False:
        return None
    public, port, start, end = _question(answer, now)
    rows = store.answering(session, public, port, start, end)
    realms = answering_realms(answer, realm)
    found = any(realms is None or r.realm_name in realms for r in rows)
    asked = found or (answer["status"] is not Status.MATCH and store.has_logs(session, realm))
    return _fetched(rows, realm, (start, end), has_logs=asked, realms=realms)


async def fetch_async(
    db: Any,
    answer: answers.ReverseAnswer,
    *,
    realm: str | None,
    now: datetime,
    revision: int | None = None,
) -> Fetched | None:
    """:func:`fetch` on the lookup path (``db``: its :class:`~detnat.store.async_db.AsyncStore`):
    a connection is taken only when the logs can say something."""
    if not _wanted(answer):
        return None
    at = revisions.key(db.name, revision)
    if _ANY_LOGS.known(at) is False:
        return None
    async with db.connection() as conn:
        if (
            at is not None
            and _ANY_LOGS.known(at) is None
            and not _ANY_LOGS.learn(at, await store.has_logs_async(conn, None))
        ):
            return None
        public, port, start, end = _question(answer, now)
        rows = await store.answering_async(conn, public, port, start, end)
        realms = answering_realms(answer, realm)
        found = any(realms is None or r.realm_name in realms for r in rows)
        asked = found or (
            answer["status"] is not Status.MATCH and await store.has_logs_async(conn, realm)
        )
    return _fetched(rows, realm, (start, end), has_logs=asked, realms=realms)


def apply(answer: answers.ReverseAnswer, fetched: Fetched | None) -> answers.ReverseAnswer:
    """``answer`` with what was fetched of the logs (unchanged when nothing was)."""
    if fetched is None:
        return answer
    return combine(
        answer,
        fetched.found,
        fetched.texts,
        fetched.holds_us,
        window_us=fetched.window_us,
        logs_asked=fetched.logs_asked,
        interims_us=fetched.interims_us,
    )


def consult(
    session: Session,
    answer: answers.ReverseAnswer,
    *,
    realm: str | None,
    now: datetime,
    revision: int | None = None,
) -> answers.ReverseAnswer:
    """``answer`` with the stored logs consulted when they can say something (module docstring)."""
    return apply(answer, fetch(session, answer, realm=realm, now=now, revision=revision))


# -- batches ---------------------------------------------------------------------------------------


class BatchLogs:
    """The logs asked for a batch's answered rows, one query per chunk, by the single lookup's
    rule (:func:`combine`): given to :class:`detnat.service.batch_lookups.BatchQuery` as
    ``logs``. Rows it changes take the logs' status, reason and subscriber.

    The query (:func:`detnat.store.logs.deciding`) returns, for each row, what decides the
    answer of each interval that holds it (the questions deduplicated and counted with numpy);
    rows held by no interval or by one are decided from those tuples by the rule of
    :func:`~detnat.logs.intervals.decide` and :func:`combine` for one interval, written out in
    :meth:`_decided` (no interval or answer is built), rows held by several by :func:`combine`
    itself over the full intervals (a second query for those rows only). The batch's worker
    threads share the session: one query at a time (``tests/logs/test_batch_answers.py`` holds
    every row to the single lookup).
    """

    def __init__(self, session: Session, realm: str | None) -> None:
        self.session = session
        self.realm = realm
        self.asked = store.has_logs(session, realm)
        self._lock = threading.Lock()
        self._subscribers: dict[str, str] = {}  # inside key -> subscriber prefix
        self._within: dict[tuple[str, str], bool] = {}
        self._realms: dict[int, str] = {}  # realm id -> name

    consulted = frozenset(status.value for status in CONSULTED)  # the statuses logs may change

    def __call__(
        self, ips: Any, ports: Any, start_us: Any, end_us: Any, said: LogsAsked
    ) -> LogsTold | None:
        """What the logs say of the rows of ``said`` (their status one of :attr:`consulted`):
        the rows whose answer they change, with their answers and, for a row the logs match, the
        realm of the allocation."""
        if not self.asked or not len(said.rows):
            return None
        import numpy as np  # batches only: a single lookup starts without it

        from detnat.service.batch_lookups import LogsTold

        codes = _Codes.get()
        # Rows the logs cannot change (combine): a plan's no_mapping for another reason.
        wanted = np.isin(said.status, codes.always) | (
            np.isin(said.status, codes.if_status) & np.isin(said.reason, codes.if_reason)
        )
        rows, status, reason = said.rows[wanted], said.status[wanted], said.reason[wanted]
        if not len(rows):
            return None
        key = (
            np.asarray(ips, dtype=np.int64)[rows] * 65536 + np.asarray(ports, dtype=np.int64)[rows]
        )
        start = np.asarray(start_us, dtype=np.int64)[rows]
        end = np.asarray(end_us, dtype=np.int64)[rows]
        # The same question twice is asked once, the questions in order of address and port.
        order = np.lexsort((end, start, key))
        key, start, end = key[order], start[order], end[order]
        fresh = np.ones(len(order), dtype=bool)
        fresh[1:] = (key[1:] != key[:-1]) | (start[1:] != start[:-1]) | (end[1:] != end[:-1])
        first = np.flatnonzero(fresh)
        back = np.empty(len(order), dtype=np.int64)
        back[order] = np.cumsum(fresh) - 1  # row k of ``rows`` asks question back[k]
        asked = len(first)
        with self._lock:
            # the session's connection now (a commit between chunks may have changed it)
            conn = store.raw_connection(self.session)
            store.without_jit(conn)
            found = store.deciding(conn, self.realm, key[first], start[first], end[first])
            if not set(np.unique(found.realm_id).tolist()) <= self._realms.keys():
                self._realms = store.realm_names(conn)
        if self.realm is None and said.plan_realm is not None:
            found = self._of_plan_realms(found, said, rows[order][first], wanted)
        # Per question held by one interval: the answer of decide for it, its inside key, realm.
        q, inside, opened, unknown, conflict, seen_from, seen_to, realm_id = found
        hits = np.bincount(q, minlength=asked)
        one = hits[q] == 1
        q, inside = q[one], [x for x, alone in zip(inside, one.tolist(), strict=True) if alone]
        index: dict[str, int] = {}
        inside_of = np.full(asked, -1, dtype=np.int64)
        inside_of[q] = [index.setdefault(x, len(index)) for x in inside]
        insides = list(index)
        texts = [self._subscriber(x) for x in insides]
        covers = (seen_from[one] <= start[first][q]) & (end[first][q] <= seen_to[one])
        decided = np.where(
            conflict[one],
            codes.conflict,
            np.where(
                covers,
                codes.match,
                np.where(opened[one] | unknown[one], codes.open_ended, codes.boundary),
            ),
        )
        now_status = np.zeros(asked, dtype=np.uint8)
        now_reason = np.zeros(asked, dtype=np.uint8)
        now_status[q] = codes.status_of[decided]
        now_reason[q] = codes.reason_of[decided]
        realm_ids = sorted(set(realm_id[one].tolist()))
        realm_of = np.full(asked, -1, dtype=np.int64)
        realm_of[q] = np.searchsorted(np.array(realm_ids, dtype=np.int64), realm_id[one])
        realms = [self._realms[r] for r in realm_ids]

        count = hits[back]
        u = back
        plan_match = status == codes.match_status
        new_status, new_reason = status.copy(), reason.copy()
        # held by none: not logged, when the realm asked has logs or the plan says dynamic
        unlogged = (count == 0) & ~plan_match
        if self.realm is None:
            unlogged &= status == codes.not_deterministic
        new_status[unlogged], new_reason[unlogged] = codes.not_logged
        # held by one: the interval's answer; a plan's match it names another key: disagree
        alone = (count == 1) & ~plan_match
        new_status[alone], new_reason[alone] = now_status[u[alone]], now_reason[u[alone]]
        checked = np.flatnonzero((count == 1) & plan_match)
        if len(checked):
            subscribers = said.subscribers(rows[checked].tolist())
            disagree = [
                k
                for k, n, held in zip(
                    checked.tolist(),
                    rows[checked].tolist(),
                    inside_of[u[checked]].tolist(),
                    strict=True,
                )
                if not self._agrees(insides[held], subscribers[n])
            ]
            new_status[disagree], new_reason[disagree] = codes.disagree
        changed = (new_status != status) | (new_reason != reason)
        subscriber = np.where(new_status == codes.match_status, inside_of[u], -1)
        realm = np.where(new_status == codes.match_status, realm_of[u], -1)
        out = (rows[changed], new_status[changed], new_reason[changed])
        told = LogsTold(*out, subscriber[changed], texts, realm[changed], realms)
        several = np.flatnonzero(count > 1)
        if len(several):
            told = self._slowly(
                told,
                rows[several],
                status[several],
                reason[several],
                ips,
                ports,
                start_us,
                end_us,
                said,
            )
        return told

    def _of_plan_realms(
        self, found: store.Decided, said: LogsAsked, first_rows: Any, wanted: Any
    ) -> store.Decided:
        """``found`` without the intervals of realms whose logs do not answer their question
        (:func:`answering_realms`: a realm-less question on an address a plan holds, whose port
        the plan leaves to the logs, is answered by that plan's realm's logs); ``first_rows``:
        each question's first row."""
        import numpy as np

        assert said.plan_realm is not None
        ids = {name: realm_id for realm_id, name in self._realms.items()}
        # per question: the id of the realm whose plan holds it; -1: none; -2: several
        plan = said.plan_realm[wanted][np.searchsorted(said.rows[wanted], first_rows)]
        named = plan >= 0
        want = plan.copy()
        want[named] = [ids.get(said.realm_names[k], -3) for k in plan[named].tolist()]
        q = found.n
        keep = (want[q] == -1) | (found.realm_id == want[q])
        for k in np.flatnonzero(want[q] == -2).tolist():
            held = said.several[int(first_rows[q[k]])]
            keep[k] = self._realms.get(int(found.realm_id[k])) in held
        if keep.all():
            return found
        inside = [x for x, kept in zip(found.inside, keep.tolist(), strict=True) if kept]
        return store.Decided(*(c[keep] if k != 1 else inside for k, c in enumerate(found)))

    def sharing(self, asked: list[tuple[int, int, int]]) -> list[set[str]]:
        """For each (address, window start, window end in µs) of ``asked``, the subscribers the
        logs show holding a port block on that address in the window: one query."""
        shared: list[set[str]] = [set() for _ in asked]
        if not self.asked or not asked:
            return shared
        ips, starts, ends = (list(column) for column in zip(*asked, strict=True))
        with self._lock:
            conn = store.raw_connection(self.session)
            found = store.sharing(conn, self.realm, ips, starts, ends)
        for n, inside in found:
            text = self._subscribers.get(inside)
            if text is None:
                text = self._subscribers[inside] = subscriber_of(inside)
            shared[n].add(text)
        return shared

    def _agrees(self, inside: str, subscriber: str) -> bool:
        pair = (inside, subscriber)
        agrees = self._within.get(pair)
        if agrees is None:
            agrees = self._within[pair] = within(inside, subscriber)
        return agrees

    def _subscriber(self, inside: str) -> str:
        text = self._subscribers.get(inside)
        if text is None:
            text = self._subscribers[inside] = subscriber_text(inside)
        return text

    def _slowly(
        self,
        told: LogsTold,
        wanted: Any,
        status: Any,
        reason: Any,
        ips: Any,
        ports: Any,
        start_us: Any,
        end_us: Any,
        said: LogsAsked,
    ) -> LogsTold:
        """``told`` and the rows ``wanted`` held by several intervals (their plans' ``status``
        and ``reason`` codes): :func:`combine` over the full intervals."""
        import numpy as np

        from detnat.service.batch_lookups import REASON_WORDS, STATUS_WORDS, LogsTold

        rows = wanted.tolist()
        with self._lock:
            found = store.answering_many(
                self.session,
                rows,
                [int(ips[n]) * 65536 + int(ports[n]) for n in rows],
                [int(start_us[n]) for n in rows],
                [int(end_us[n]) for n in rows],
                [int(ports[n]) for n in rows],
            )
        by_row: dict[int, list[Any]] = {}
        for row in found:
            by_row.setdefault(row.n, []).append(row)
        subscribers = said.subscribers(rows)
        codes = _Codes.get()
        texts, realms = list(told.texts), list(told.realms)
        changed: list[tuple[int, int, int, int, int]] = []
        for n, plan_status, plan_reason in zip(rows, status.tolist(), reason.tolist(), strict=True):
            before = (STATUS_WORDS[plan_status], REASON_WORDS[plan_reason], subscribers[n])
            answer: dict[str, Any] = {"status": Status(before[0]), "port": int(ports[n])}
            if before[1]:
                answer["reason"] = Reason(before[1])
            if before[2]:
                answer["subscriber"] = before[2]
            window = (store.instant(int(start_us[n])), store.instant(int(end_us[n])))
            answering = (
                frozenset((self.realm,)) if self.realm is not None else said.answering_realms(n)
            )
            held = [r for r in by_row.get(n, []) if answering is None or r.realm_name in answering]
            asked = bool(held) or answer["status"] is not Status.MATCH
            fetched = _fetched(held, self.realm, window, has_logs=asked, realms=answering)
            combined = apply(cast(answers.ReverseAnswer, answer), fetched)
            now = (
                str(combined["status"]),
                str(combined.get("reason", "")),
                combined.get("subscriber", ""),
            )
            if now == before:
                continue
            text = realm = -1
            if now[0] == _MATCH:
                text = len(texts)
                texts.append(now[2])
                known = {c["realm"] for c in combined.get("log_candidates", ())}
                if len(known) == 1:
                    realm = len(realms)
                    realms.append(known.pop())
            changed.append((n, codes.status[now[0]], codes.reason[now[1]], text, realm))
        if not changed:
            return told
        new_rows, st, re, texts_of, realm_of = (
            np.array(c, dtype=np.int64) for c in zip(*changed, strict=True)
        )
        return LogsTold(
            np.concatenate((told.rows, new_rows)),
            np.concatenate((told.status, st.astype(np.uint8))),
            np.concatenate((told.reason, re.astype(np.uint8))),
            np.concatenate((told.subscriber, texts_of)),
            texts,
            np.concatenate((told.realm, realm_of)),
            realms,
        )


_OCTET = r"(?:25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])"
_DOTTED_QUAD = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


def subscriber_text(inside: str) -> str:
    """:func:`~detnat.logs.settle.subscriber_of`, an IPv4 address in canonical text (most inside
    keys of a CGN) without parsing it: the address and ``/32``."""
    if _DOTTED_QUAD.fullmatch(inside):
        return inside + "/32"
    return subscriber_of(inside)


# The words of the rows BatchLogs decides by arrays (the rule of combine, spelt out).
_MATCH, _NOT_DETERMINISTIC = Status.MATCH.value, Status.NOT_DETERMINISTIC.value
_PLAN_ANSWERS_ALWAYS = (_MATCH, _NOT_DETERMINISTIC)
_PLAN_ANSWERS_IF = (Status.NO_PLAN_IN_FORCE.value, Status.NO_MAPPING.value)
_IF = (Reason.NO_PLAN.value, Reason.NOT_IN_POOL.value)
_NOT_LOGGED = (Status.NO_MAPPING.value, Reason.NOT_LOGGED.value)
_DISAGREE = (Status.AMBIGUOUS.value, Reason.PLAN_AND_LOG_DISAGREE.value)
# decide for one interval that holds the port: these, in this order (_Codes.status_of / reason_of)
_DECIDED = (
    (Status.AMBIGUOUS.value, Reason.LOG_CONFLICT.value),
    (_MATCH, ""),
    (Status.AMBIGUOUS.value, Reason.LOG_OPEN_ENDED.value),
    (Status.AMBIGUOUS.value, Reason.LOG_BOUNDARY.value),
)


@dataclass(frozen=True)
class _Codes:
    """The words above as the batch's codes (:data:`~detnat.service.batch_lookups.STATUS_WORDS`,
    ``REASON_WORDS``), made once."""

    status: dict[str, int]
    reason: dict[str, int]
    always: Any
    if_status: Any
    if_reason: Any
    match_status: int
    not_deterministic: int
    not_logged: tuple[int, int]
    disagree: tuple[int, int]
    status_of: Any  # of the answers of decide, in the order of _DECIDED
    reason_of: Any
    conflict: int = 0
    match: int = 1
    open_ended: int = 2
    boundary: int = 3

    @staticmethod
    @functools.cache
    def get() -> _Codes:
        import numpy as np

        from detnat.service.batch_lookups import REASON_WORDS, STATUS_WORDS

        status = {word: code for code, word in enumerate(STATUS_WORDS)}
        reason = {word: code for code, word in enumerate(REASON_WORDS)}

        def both(pair: tuple[str, str]) -> tuple[int, int]:
            return status[pair[0]], reason[pair[1]]

        return _Codes(
            status,
            reason,
            np.array([status[w] for w in _PLAN_ANSWERS_ALWAYS], dtype=np.uint8),
            np.array([status[w] for w in _PLAN_ANSWERS_IF], dtype=np.uint8),
            np.array([reason[w] for w in _IF], dtype=np.uint8),
            status[_MATCH],
            status[_NOT_DETERMINISTIC],
            both(_NOT_LOGGED),
            both(_DISAGREE),
            np.array([status[s] for s, _ in _DECIDED], dtype=np.uint8),
            np.array([reason[r] for _, r in _DECIDED], dtype=np.uint8),
        )


# -- forward: a subscriber's logged blocks --------------------------------------------------------


def _prefix_of(answer: answers.ForwardAnswer) -> str | None:
    if answer.get("subscriber"):
        return answer["subscriber"]
    try:
        return subscriber_of(answer["query"])
    except ValueError:
        return None


def _with_blocks(
    answer: answers.ForwardAnswer, rows: list[Any], realm: str | None
) -> answers.ForwardAnswer:
    shown = [
        candidate(r.realm_name, interval_of(r), dict(r.texts))
        for r in rows
        if realm is None or r.realm_name == realm
    ]
    if shown:
        answer["log_blocks"] = shown
    return answer


def forward_blocks(
    session: Session, answer: answers.ForwardAnswer, *, realm: str | None
) -> answers.ForwardAnswer:
    """``answer`` with the blocks the logs give its subscriber at its instant (``log_blocks``)."""
    prefix = _prefix_of(answer)
    if prefix is None:
        return answer
    rows = store.held_by(session, prefix, parse_instant(answer["time"]))
    return _with_blocks(answer, rows, realm)


async def forward_blocks_async(
    db: Any, answer: answers.ForwardAnswer, *, realm: str | None
) -> answers.ForwardAnswer:
    """:func:`forward_blocks` on the lookup path (``db``: its AsyncStore)."""
    prefix = _prefix_of(answer)
    if prefix is None:
        return answer
    async with db.connection() as conn:
        rows = await store.held_by_async(conn, prefix, parse_instant(answer["time"]))
    return _with_blocks(answer, rows, realm)


# -- offline: the evidence file --------------------------------------------------------------------


@dataclass(frozen=True)
class LineReading:
    """How an ingest read a log line: its format and parse options. ``recorded``: the ingest
    recorded its options; if not (ingests made before they were), the line is read with none, so a
    line that needs ``--year``/``--tz`` is refused, never read in another year or zone.
    ``months``: the months its ingest stored events in (a syslog time without a year may be of a
    year the ingest turned to: :func:`_turned_year`)."""

    format: str
    options: ParseOptions
    recorded: bool = True
    months: frozenset[str] = frozenset()  # "YYYY-MM" (UTC) its ingest stored events in


def check_lines(
    shown: dict[str, Any], readings: Sequence[Sequence[LineReading | None]]
) -> list[str]:
    """Problems with the lines of the log candidates ``shown``, each read again as its ingest read
    it (``readings``, per candidate and line; None: not read, the caller said why): the event the
    line says -- kind, instant, inside key, public address, ports and stride, protocol -- must be
    the one its line entry (kind, at) and its candidate (subscriber, public_ip, port_ranges,
    port_step, protocol) show. A line may say several events (an nfdump array): one must be it.

    So an answer whose candidate names a subscriber, address, port, time or kind its lines do not
    say is refused, whatever its hashes: the answer follows from the lines, not from itself."""
    problems: list[str] = []
    for n, (c, read) in enumerate(zip(shown.get("log_candidates", []), readings, strict=True)):
        for m, (line, reading) in enumerate(zip(c["lines"], read, strict=True)):
            if reading is None:
                continue
            found = _read_again(c, line, reading)
            if found is not None:
                where = f"answer.log_candidates[{n}].lines[{m}]"
                problems.append(f"{where}: line {line['file']}:{line['line']} {found}")
    return problems


def _read_again(c: dict[str, Any], line: dict[str, Any], reading: LineReading) -> str | None:
    """What is wrong with ``line`` of candidate ``c`` read again (None: it says what is shown)."""
    how = f"as {reading.format}"
    if not reading.recorded:
        how += " (its ingest recorded no --year/--tz/--exporter: read with none)"
        if reading.format == "nfdump-json":
            return f"cannot be read again {how}: which natEvent numbering it has is not known"
    if reading.format not in FORMATS:
        return f"cannot be read again: this detnat reads no log format {reading.format!r}"
    said = _said(line, reading.format, reading.options)
    if isinstance(said, str):
        return f"cannot be read again {how}: {said}"
    if not said[0]:
        why = f": refused: {said[1][0]}" if said[1] else ": it says no port-block event"
        return f"does not read again {how} as an event of its own text{why}"
    shown_event = (
        line["kind"],
        line["at"],
        c["subscriber"],
        c["public_ip"],
        c["port_ranges"],
        c["port_step"],
        c["protocol"],
    )
    shown = _json(shown_event)  # types too: true is not 1, 1.0 is not 1
    if shown in map(_json, said[0]):
        return None
    turned = _turned_year(line["at"], reading)
    if turned is not None:
        again = _said(line, reading.format, replace(reading.options, year=turned))
        if not isinstance(again, str) and shown in map(_json, again[0]):
            return None
    nearest = next((e for e in said[0] if e[1] == line["at"]), said[0][0])
    names = ("kind", "at", "subscriber", "public_ip", "port_ranges", "port_step", "protocol")
    differ = [
        f"{name} {_short(a)}, not {_short(b)}"
        for name, a, b in zip(names, nearest, shown_event, strict=True)
        if _json(a) != _json(b)
    ]
    found = f"read again {how} says " + "; ".join(differ)
    year = reading.options.year
    if year is not None and nearest[1] != line["at"]:
        later = _said(line, reading.format, replace(reading.options, year=year + 1))
        if not isinstance(later, str) and [e[1] for e in later[0]] != [e[1] for e in said[0]]:
            found += (
                f" (its time names no year: read in --year {year}, or a year its ingest turned "
                "to in a month it stored events in)"
            )
    return found


def _said(
    line: dict[str, Any], fmt: str, options: ParseOptions
) -> tuple[list[tuple[Any, ...]], list[str]] | str:
    """The events ``line``'s own text says read as ``fmt`` with ``options`` (as shown: see
    :func:`_as_shown`) and the reasons of the lines refused; a string: the options are refused."""
    text: str = line["text"]
    try:
        items = list(
            parse_lines(
                fmt,
                text.encode("utf-8").split(b"\n"),  # a record spread over lines (nfdump -o json)
                file=line["file"],
                options=options,
            )
        )
    except DetnatError as exc:
        return str(exc)
    events = [e for e in items if isinstance(e, LogEvent) and e.source.sha256 == line["sha256"]]
    return [_as_shown(e) for e in events], [i.reason for i in items if isinstance(i, Refused)]


def _turned_year(at: str, reading: LineReading) -> int | None:
    """The year a syslog time without one may have been read in, other than ``--year``, for a
    line shown at ``at``: read alone, such a time is of ``--year``; in its file, of a year the
    ingest turned to as the months went round (the year after each December, the one before for
    a straggler: see :meth:`detnat.logs.formats._common.Clock.year_of`). It is the year of the
    instant shown in ``--tz``, taken only if the ingest may have turned to it (no earlier than
    ``--year`` less one) and stored events in its month (the ingest's record). None: none such."""
    options = reading.options
    if options.year is None or options.tz is None:
        return None
    try:
        moment = parse_instant(at)
        year = moment.astimezone(ZoneInfo(options.tz)).year
    except (ValueError, DetnatError, ZoneInfoNotFoundError):
        return None
    month = moment.astimezone(UTC).strftime("%Y-%m")
    if year == options.year or year < options.year - 1 or month not in reading.months:
        return None
    return year


def _as_shown(event: LogEvent) -> tuple[Any, ...]:
    """A line's event as a candidate and its line entry show it."""
    return (
        event.kind.value,
        format_instant(store.instant(event.at_us)),
        subscriber_of(event.inside),
        event.public,
        port_ranges(event.port_first, event.port_last, event.port_step),
        event.port_step,
        event.protocol,
    )


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True)


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def rederive(
    recomputed: answers.ReverseAnswer,
    shown: dict[str, Any],
    problems: list[str],
    *,
    now: datetime,
) -> answers.ReverseAnswer:
    """The plans' answer ``recomputed`` offline, with the log candidates ``shown`` re-derived from
    their embedded lines: each line's SHA-256 is its text's; each interval's flags, its seen part
    and its bounds set by its own lines follow from them, an open end at its next interim
    deadline from its last line and the realm's interim period (``log_interims_us``); a bound set
    by a line not embedded -- an open end cut by the hold or another allocation, an unknown start,
    a conflict with a block on other ports -- is taken as shown (an end cut by another allocation
    comes before the interim deadline); then the answer is decided again by :func:`combine`."""
    if "log_candidates" not in shown:
        return recomputed
    holds: dict[str, int | None] = dict(shown.get("log_holds_us") or {})
    interims: dict[str, int | None] = dict(shown.get("log_interims_us") or {})
    found: list[tuple[str, Interval]] = []
    texts: dict[str, str] = {}
    for n, c in enumerate(shown["log_candidates"]):
        where = f"answer.log_candidates[{n}]"
        events = []
        for line in c["lines"]:
            text = line["text"]
            if hashlib.sha256(text.encode("utf-8")).hexdigest() != line["sha256"]:
                problems.append(f"{where}: line {line['file']}:{line['line']} is not its SHA-256")
            texts[line["sha256"]] = text
            events.append(
                LogEvent(
                    EventKind(line["kind"]),
                    store.micros(parse_instant(line["at"])),
                    str(ipaddress.ip_network(c["subscriber"]).network_address)
                    if c["subscriber"].endswith(("/32", "/128"))
                    else c["subscriber"],
                    c["public_ip"],
                    c["port_ranges"][0][0],
                    c["port_ranges"][-1][1],
                    c["protocol"],
                    LineRef(line["file"], line["line"], line["sha256"]),
                    c["port_step"],
                )
            )
        made = derive(events, hold_us=holds.get(c["realm"]), interim_us=interims.get(c["realm"]))
        if len(made) != 1:
            problems.append(f"{where}: its lines make {len(made)} intervals, not one")
            continue
        interval = made[0]
        start = c["interval"]["from"]
        end = c["interval"]["to"]
        if interval.open != c["open"] or interval.unknown_start != c["unknown_start"]:
            problems.append(f"{where}: its lines do not make it open/of unknown start as shown")
        if not interval.unknown_start and _instant(interval.start_us) != start:
            problems.append(f"{where}.interval.from: not its allocation's instant")
        if not interval.open and _instant(interval.end_us) != end:
            problems.append(f"{where}.interval.to: not its release's instant")
        at_deadline = c.get("interim_deadline", False) is True
        problems.extend(_deadline_problems(where, interval, at_deadline, end))
        interval = Interval(
            interval.public,
            interval.port_first,
            interval.port_last,
            interval.port_step,
            interval.protocol,
            interval.inside,
            None if start is None else store.micros(parse_instant(start)),
            None if end is None else store.micros(parse_instant(end)),
            interval.open,
            interval.unknown_start,
            interval.lines,
            bool(c["conflict"]),
            at_deadline,
        )
        found.append((c["realm"], interval))
    window = shown["window"]
    start_us = store.micros(parse_instant(window["from"]))
    end_us = store.micros(min(parse_instant(window["to"]), now))
    return combine(
        recomputed,
        found,
        texts,
        holds,
        window_us=(start_us, end_us),
        logs_asked=shown.get("source") == "log" or bool(found),
        interims_us=interims,
    )


def _deadline_problems(
    where: str, derived: Interval, at_deadline: bool, end: str | None
) -> list[str]:
    """What is wrong with an interval shown ending (``at_deadline``) or not at its next interim
    deadline, against the interval its own lines make with the realm's shown interim period
    (``derived``): shown there, it ends exactly there; not shown there while its lines and the
    period end it there, it ends before (another allocation of its ports cut it)."""
    if at_deadline and not derived.interim_deadline:
        return [
            f"{where}.interim_deadline: its lines and the realm's interim period "
            "(log_interims_us) do not end it at an interim deadline"
        ]
    if at_deadline and _instant(derived.end_us) != end:
        return [f"{where}.interval.to: not its next interim deadline (log_interims_us)"]
    if (
        not at_deadline
        and derived.interim_deadline
        and derived.end_us is not None
        and (end is None or store.micros(parse_instant(end)) >= derived.end_us)
    ):
        return [f"{where}.interval.to: past its next interim deadline (log_interims_us)"]
    return []
