"""Annotate Arrow record batches of flow records with who held each public address and port.

:class:`Annotator` takes a loaded :class:`~detnat.snapshot.file.Snapshot` and answers, for every
row of a batch, what the store's ``detnat reverse --at TIME`` (no realm named) answered when the
snapshot was exported -- vectorised from end to end: the rows are never visited one by one in
Python, only the snapshot's plan versions are. Five columns are added:

- ``subscriber`` (string): the subscriber's canonical prefix for a ``match``, else null;
- ``status`` (string): ``match``, ``ambiguous``, ``no_mapping``, ``not_deterministic``,
  ``no_plan_in_force``, ``future`` (:class:`~detnat.engine.results.Status`), or ``error`` for a
  row that is not a query;
- ``reason`` (string): the :class:`~detnat.engine.results.Reason` of a status other than
  ``match``; for ``error`` one of :data:`ERROR_REASONS` (``invalid_query``: an address, port or
  time that is null or not valid, a never-public address; ``outside_snapshot``: the window
  searched is not inside the snapshot's period);
- ``realm`` (string): the realm of the candidate versions when they are all of one realm;
- ``version`` (int32): the seq of the plan version when the answer rests on exactly one.

The rules are the single lookup's (:mod:`detnat.service.lookups`): the window is
``[T - tolerance, T + tolerance]`` capped at the export's instant; a version is a candidate when
it was in force in the window widened backwards by its realm's session drain and its plan held
the address; one candidate gives its answer, several the verdict (``match`` only if all name the
same subscriber with the same port set; else ``ambiguous`` / ``not_deterministic`` /
``no_mapping`` with one reason or ``mixed``); none gives ``no_plan_in_force`` (a retirement ended
the plan that held the address, or no plan was in force anywhere) or ``no_mapping`` /
``not_in_pool``. Where the snapshot carries the NAT's own logs, they are heard as the store's
lookups hear them (:mod:`detnat.snapshot.logs`): a dynamic port is answered from the log
intervals, a plan's match that a log contradicts is ``ambiguous``.
``tests/scale/test_annotate_oracle.py`` holds the two against each other.

Times: timestamps with a zone (any unit; a nanosecond part must be zero, as the store refuses
finer instants than microseconds), integers declared as epoch seconds or milliseconds UTC
(``Columns(time_unit="s")``), or RFC 3339 strings with an offset (others are ``invalid_query``).
Timestamps without a zone are refused: name the zone upstream. Addresses: integers (IPv4 as an
unsigned 32-bit number) or dotted quads. Ports: integers.

With ``dictionary=True``, ``status``, ``reason`` and ``realm`` come as Arrow dictionary arrays
(:data:`DICTIONARY_FIELDS`): the same values, without a word copied per row; with
``subscriber_dictionary=True`` as well, ``subscriber`` is one too (:data:`ENCODED_FIELDS`), its
dictionary the distinct texts of the batch: what a Parquet writer stores as a dictionary page and
indices, without hashing a text per row.

How (see docs/scale-out.md, section 2): a table of time slots names, for most rows, the one
version they can rest on (or a version and the next, within a drain); rows are grouped by it with
one radix sort and each group goes to ``reverse_many`` once; only rows near changes take the
general search over (row, candidate version) pairs. The oracle test also holds the short cuts
against the general search alone.

Pure: numpy, pyarrow, the engine. One Annotator is safe to share between threads.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from detnat.batch import parse_ipv4_many
from detnat.engine import REASON_CODES, STATUS_CODES, Reason, Status
from detnat.engine.addresses import reused
from detnat.engine.bulk import IndexOfMany
from detnat.engine.mapper import _NON_PUBLIC  # the engine's one table of never-public space
from detnat.engine.results import ENGINE_REASONS
from detnat.errors import InvalidInput
from detnat.snapshot.file import Snapshot, Version
from detnat.snapshot.logs import SnapshotLogs
from detnat.subscriber_text import SubscriberTexts

Ints: TypeAlias = npt.NDArray[np.int64]
Bools: TypeAlias = npt.NDArray[np.bool_]
I32: TypeAlias = npt.NDArray[np.int32]

OUTPUT_COLUMNS = ("subscriber", "status", "reason", "realm", "version")
OUTPUT_FIELDS = (
    pa.field("subscriber", pa.string()),
    pa.field("status", pa.string()),
    pa.field("reason", pa.string()),
    pa.field("realm", pa.string()),
    pa.field("version", pa.int32()),
)
DICTIONARY_FIELDS = (
    pa.field("subscriber", pa.string()),
    pa.field("status", pa.dictionary(pa.int8(), pa.string())),
    pa.field("reason", pa.dictionary(pa.int8(), pa.string())),
    pa.field("realm", pa.dictionary(pa.int32(), pa.string())),
    pa.field("version", pa.int32()),
)
# ``subscriber_dictionary=True`` as well: each batch's subscribers once, the rows as indices.
ENCODED_FIELDS = (
    pa.field("subscriber", pa.dictionary(pa.int32(), pa.string())),
    *DICTIONARY_FIELDS[1:],
)
ERROR = "error"
INVALID_QUERY = "invalid_query"
OUTSIDE_SNAPSHOT = "outside_snapshot"
ERROR_REASONS = (INVALID_QUERY, OUTSIDE_SNAPSHOT)

STATUS_WORDS: tuple[str, ...] = (*(s.value for s in Status), ERROR)
REASON_WORDS: tuple[str, ...] = (*(r.value for r in Reason), *ERROR_REASONS)
_S = {word: code for code, word in enumerate(STATUS_WORDS)}
_R = {word: code for code, word in enumerate(REASON_WORDS)}
NO_REASON = len(REASON_WORDS)  # the null reason
_STATUS_ARRAY = pa.array(STATUS_WORDS, pa.string())
_REASON_ARRAY = pa.array([*REASON_WORDS, None], pa.string())
_REASON_WORDS_ARRAY = pa.array(REASON_WORDS, pa.string())
# The engine's vectorised codes in this module's codes.
_ENGINE_STATUS = np.array(
    [_S[ERROR] if s is None else _S[s.value] for s in STATUS_CODES], dtype=np.int8
)
_ENGINE_REASON = np.array(
    [NO_REASON if r is None else _R[r.value] for r in REASON_CODES], dtype=np.int8
)
# An outcome: a row's status code and reason code in one byte (one array to fill, not two).
U8: TypeAlias = npt.NDArray[np.uint8]
_SHIFT = 5
_LOW = (1 << _SHIFT) - 1
assert len(STATUS_WORDS) <= 1 << (8 - _SHIFT) and NO_REASON <= _LOW


def _o(status: str, reason: int) -> int:
    return _S[status] << _SHIFT | reason


def _verdict(
    same: npt.NDArray[np.bool_],
    any_match: npt.NDArray[np.bool_],
    dynamic: npt.NDArray[np.bool_],
    invalid: npt.NDArray[np.bool_],
    no_match_reason: npt.NDArray[np.int8],
) -> npt.NDArray[np.uint8]:
    """:func:`detnat.service.lookups.verdict` over several candidates, row by row, packed: all
    agree on a match -> match; some match -> ambiguous (candidates differ); else a dynamic block
    -> not_deterministic; else no_mapping with ``no_match_reason``; an invalid query -> error."""
    status = np.where(
        same,
        _S[Status.MATCH],
        np.where(
            any_match,
            _S[Status.AMBIGUOUS],
            np.where(dynamic, _S[Status.NOT_DETERMINISTIC], _S[Status.NO_MAPPING]),
        ),
    ).astype(np.int8)
    reason = np.where(
        same,
        NO_REASON,
        np.where(
            any_match,
            _R[Reason.CANDIDATES_DIFFER],
            np.where(dynamic, _R[Reason.DYNAMIC_BLOCK], no_match_reason),
        ),
    ).astype(np.int8)
    status[invalid] = _S[ERROR]
    reason[invalid] = _R[INVALID_QUERY]
    return _pack(status, reason)


def _pack(status: npt.NDArray[np.int8], reason: npt.NDArray[np.int8]) -> U8:
    packed: U8 = (status.astype(np.uint8) << np.uint8(_SHIFT)) | reason.astype(np.uint8)
    return packed


_INVALID_QUERY = _o(ERROR, _R[INVALID_QUERY])
# Engine reason codes that say the address is outside the plan's pool (so not held).
_HELD_REASON = np.ones(len(REASON_CODES), dtype=np.bool_)
_HELD_REASON[
    [REASON_CODES.index(Reason.NOT_IN_POOL), REASON_CODES.index(Reason.EXCLUDED_ADDRESS)]
] = False
_ENGINE_INVALID = STATUS_CODES.index(None)
# The outcome of each engine reason code (the engine's status follows from its reason, but for
# an invalid query, which this table does not hold).
_ENGINE_OUTCOME = np.array(
    [
        _o(Status.MATCH if r is None else ENGINE_REASONS[r], int(_ENGINE_REASON[code]))
        for code, r in enumerate(REASON_CODES)
    ],
    dtype=np.uint8,
)
_FOREVER = np.iinfo(np.int64).max
_NONE = -2  # a time slot in which no version of any realm is a candidate
_SEVERAL = -1  # ... in which a row may have several candidates (or the slot spans a change)
SLOTS = 1 << 16  # at most this many time slots per snapshot
_TEXT_WIDTH = 48  # the widest prefix text: an IPv6 /128 written in full, 43 bytes
_RFC3339 = (
    r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d{1,9})?([Zz]|[+-](0\d|1\d|2[0-3]):[0-5]\d)$"
)
MAX_KEPT_TEXTS = 1 << 22  # subscribers of all versions whose texts are made once and kept
_US = {"s": 1_000_000, "ms": 1_000, "us": 1, "ns": 1}
_FIRST_S, _LAST_S = -62_135_596_800, 253_402_300_799  # 0001-01-01T00:00:00Z, 9999-12-31T23:59:59Z


@dataclass(frozen=True)
class Columns:
    """Which input columns hold the address, port and time; how integer times count."""

    ip: str = "ip"
    port: str = "port"
    time: str = "time"
    time_unit: Literal["s", "ms"] | None = None  # integer times: epoch seconds or ms, UTC

    @classmethod
    def parse(cls, text: str | None, *, time_unit: str | None = None) -> Columns:
        """``ip=src_addr,port=src_port,time=ts`` (any of the three) as Columns.

        >>> Columns.parse("ip=src,time=ts", time_unit="ms")
        Columns(ip='src', port='port', time='ts', time_unit='ms')
        """
        names: dict[str, str] = {}
        for part in (text or "").split(","):
            if not part.strip():
                continue
            key, sep, value = part.partition("=")
            key = key.strip()
            if not sep or key not in ("ip", "port", "time") or not value or key in names:
                raise InvalidInput(
                    f"want ip=NAME,port=NAME,time=NAME, got {part!r}", field="columns"
                )
            names[key] = value
        if time_unit not in (None, "s", "ms"):
            raise InvalidInput("s or ms (epoch seconds or milliseconds, UTC)", field="time_unit")
        return cls(**names, time_unit=time_unit)  # type: ignore[arg-type]


@dataclass(frozen=True, eq=False)
class _Version:
    """One version of the snapshot, ready for arrays."""

    number: int  # its place in Annotator.versions
    realm: int
    version: Version
    firsts: Ints
    lasts: Ints
    table: IndexOfMany | None  # for more than a few ranges: a table of /16s (see _held)
    # The version's ranges are its plan's pool and static addresses (public_ranges): an
    # address is held exactly when the engine's answer is not "not in the pool" / "excluded"
    # (nor a never-public address), so _one_version reads it from reverse_many's answers.
    pool_held: bool = False


class Annotator:
    """Answers rows from a snapshot; see the module docstring.

    ``tolerance_us``: the clock skew allowed around each row's time (0 to one day).
    """

    def __init__(
        self, snapshot: Snapshot, *, columns: Columns | None = None, tolerance_us: int = 0
    ) -> None:
        if not 0 <= tolerance_us <= 86_400_000_000:
            raise InvalidInput("must be between 0 and one day", field="tolerance")
        self.snapshot = snapshot
        self.columns = columns or Columns()
        self.tolerance_us = tolerance_us
        self.versions: list[_Version] = []
        self._realm_starts: list[Ints] = []
        self._realm_first: list[int] = []  # number of each realm's first version
        for r, realm in enumerate(snapshot.realms):
            self._realm_first.append(len(self.versions))
            self._realm_starts.append(
                np.array([v.effective_from_us for v in realm.versions], dtype=np.int64)
            )
            for v in realm.versions:
                spans = np.array(v.ranges, dtype=np.int64).reshape(-1, 2)
                firsts, lasts = spans[:, 0], spans[:, 1]
                table = IndexOfMany((firsts, lasts, firsts)) if len(firsts) > FEW else None
                pool_held = (
                    v.mapper is not None
                    and [tuple(span) for span in v.ranges] == v.mapper.plan.public_ranges()
                )
                self.versions.append(
                    _Version(len(self.versions), r, v, firsts, lasts, table, pool_held)
                )
        self._realm_names = pa.array([r.name for r in snapshot.realms], pa.string())
        self._seqs = np.array([v.version.seq for v in self.versions], dtype=np.int32)
        # A row's version code (-2 - r: realm r only; -1: none; v >= 0: version v) plus the
        # number of realms + 1, to its realm (-1: none) and its version's seq (0: none).
        self._version_realm = np.array(
            [*reversed(range(len(snapshot.realms))), -1, *(v.realm for v in self.versions)],
            dtype=np.int32,
        )
        self._version_seq = np.concatenate(
            [np.zeros(len(snapshot.realms) + 1, dtype=np.int32), self._seqs]
        )
        self._realm_of = np.array([v.realm for v in self.versions], dtype=np.int64)
        self._drains = [r.session_drain_us for r in snapshot.realms]
        cover = sorted(
            (v.effective_from_us, _FOREVER if v.valid_to_us is None else v.valid_to_us)
            for realm in snapshot.realms
            for v in realm.versions
            if v.plan is not None
        )
        merged: list[list[int]] = []
        for lo, hi in cover:  # [lo, hi): a plan in force somewhere
            if merged and lo <= merged[-1][1]:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self._cover_lo = np.array([m[0] for m in merged], dtype=np.int64)
        self._cover_hi = np.array([m[1] for m in merged], dtype=np.int64)
        self._slot_shift, self._slot_code = self._slots()
        self._texts: dict[int, SubscriberTexts | None] = {}
        self._sets: dict[int, Ints] = {}
        self._set_ids: dict[tuple[tuple[int, int], ...], int] = {((0, 65535),): 0}
        self._lock = threading.RLock()
        self._table: pa.Array | None = None
        self._table_made = False
        self._logs = SnapshotLogs(snapshot)
        self._ids: list[I32] = []
        self._repeats: dict[str, pa.Array] = {}  # see _repeated

    def _slots(self) -> tuple[int, npt.NDArray[np.int16] | npt.NDArray[np.int32]]:
        """The snapshot's period cut into at most SLOTS slots of 2**shift microseconds; for each
        slot, the number of the one version every row timed in it can rest on, that number
        plus the number of versions when it is a version and the next of its realm (a change
        within the drain), _NONE when no version of any realm can, _SEVERAL otherwise (more
        candidates, or not the same for the whole slot: those rows take the general search).

        A row's candidates of a realm are its versions from the last begun by ``lo - drain``
        to the last begun by ``hi``; both ends grow with the row's time, so they are the same
        for the whole slot when they are at its first and last microsecond.
        """
        snap = self.snapshot
        span = max(snap.to_us - snap.from_us, 0)
        shift = 0
        while (span >> shift) >= SLOTS:
            shift += 1
        first = snap.from_us + (np.arange((span >> shift) + 1, dtype=np.int64) << shift)
        last = np.minimum(first + ((1 << shift) - 1), snap.to_us)
        now, tolerance = snap.exported_at_us, self.tolerance_us
        code = np.full(len(first), _NONE, dtype=np.int64)
        for r, starts in enumerate(self._realm_starts):
            if not len(starts):
                continue
            ends = []
            for at in (first, last):
                lo = at - tolerance - self._drains[r]
                hi = np.minimum(at + tolerance, now)
                low = np.maximum(np.searchsorted(starts, lo, side="right") - 1, 0)
                ends.append((low, np.searchsorted(starts, hi, side="right") - 1))
            (low, high), (low_end, high_end) = ends
            same = (low == low_end) & (high == high_end)
            mine = np.where(
                same & (high == low),
                low + self._realm_first[r],
                np.where(
                    same & (high == low + 1),
                    low + self._realm_first[r] + len(self.versions),  # a version and the next
                    np.where(same & (high < low), _NONE, _SEVERAL),
                ),
            )
            code = np.where(code == _NONE, mine, np.where(mine == _NONE, code, _SEVERAL))
        narrow = 2 * len(self.versions) < np.iinfo(np.int16).max
        return shift, code.astype(np.int16) if narrow else code.astype(np.int32)

    # -- schema ---------------------------------------------------------------------------------

    def output_schema(self, schema: pa.Schema, *, dictionary: bool = False) -> pa.Schema:
        """The schema of annotated batches: the input's, then :data:`OUTPUT_FIELDS`
        (:data:`DICTIONARY_FIELDS` with ``dictionary``)."""
        taken = [name for name in OUTPUT_COLUMNS if name in schema.names]
        if taken:
            raise InvalidInput(
                f"the input already has column(s) {', '.join(taken)}; rename them", field="columns"
            )
        for name in (self.columns.ip, self.columns.port, self.columns.time):
            if name not in schema.names:
                raise InvalidInput(
                    f"no column {name!r} (columns are {', '.join(schema.names)})", field="columns"
                )
        out = schema
        for f in DICTIONARY_FIELDS if dictionary else OUTPUT_FIELDS:
            out = out.append(f)
        return out

    # -- the batch ------------------------------------------------------------------------------

    def annotate(self, batch: pa.RecordBatch, *, dictionary: bool = False) -> pa.RecordBatch:
        """``batch`` with the five answer columns added (see the module docstring).

        ``dictionary``: ``status``, ``reason`` and ``realm`` as dictionary arrays (int8 /
        int32 indices into the few words) -- the same values, without copying a word per row;
        for writers that keep dictionaries as they are (Parquet).
        """
        schema = self.output_schema(batch.schema, dictionary=dictionary)
        added = self.answer(
            batch.column(self.columns.ip),
            batch.column(self.columns.port),
            batch.column(self.columns.time),
            dictionary=dictionary,
        )
        return pa.RecordBatch.from_arrays([*batch.columns, *added], schema=schema)

    def answer(
        self,
        ip_column: pa.Array,
        port_column: pa.Array,
        time_column: pa.Array,
        *,
        dictionary: bool = False,
        subscriber_dictionary: bool = False,
    ) -> list[pa.Array]:
        """The five answer arrays for three input arrays of one length (``subscriber_dictionary``
        needs ``dictionary``; see the module docstring)."""
        ip, ip_ok = addresses(ip_column)
        port, port_ok = ports(port_column)
        at, at_ok = instants(time_column, self.columns.time_unit, field=self.columns.time)
        return self._answer(
            ip,
            port,
            at,
            ip_ok & port_ok & at_ok,
            dictionary=dictionary,
            subscriber_dictionary=subscriber_dictionary,
        )

    def _answer(
        self,
        ip: Ints,
        port: Ints,
        at: Ints,
        ok: Bools,
        *,
        dictionary: bool = False,
        subscriber_dictionary: bool = False,
    ) -> list[pa.Array]:
        n = len(ip)
        snap = self.snapshot
        now, tolerance = snap.exported_at_us, self.tolerance_us
        outcome = np.full(n, _INVALID_QUERY, dtype=np.uint8)  # status and reason (_o)
        # The one candidate version's number; -1 for none; -2 - r: none, but all of realm r.
        version = np.full(n, -1, dtype=np.int32)
        # (rows, or None for every row; version number; subscriber numbers, -1 for none)
        sub_rows: list[tuple[Ints | None, int, Ints]] = []
        # rows whose candidate versions are of several realms: those realms (the logs heard)
        realms_of_row: dict[int, frozenset[str]] = {}
        if not n:
            return self._arrays(n, outcome, version, sub_rows, dictionary, subscriber_dictionary)

        # The common case first: every row a valid query inside the snapshot, no masks at all.
        every = bool(ok.all())
        if every:
            earliest, latest = int(at.min()), int(at.max())
            every = (
                latest <= now
                and earliest - tolerance >= snap.from_us
                and min(latest + tolerance, now) <= snap.to_us
            )
        if every:
            rows: Ints | None = None
            at_live = at
        else:
            future = ok & (at > now)
            outcome[future] = _o(Status.FUTURE, _R[Reason.AFTER_NOW])
            live = ok & ~future
            outside = live & (
                (at - tolerance < snap.from_us) | (np.minimum(at + tolerance, now) > snap.to_us)
            )
            outcome[outside] = _o(ERROR, _R[OUTSIDE_SNAPSHOT])
            live &= ~outside
            rows = np.flatnonzero(live)
            at_live = at[rows]

        # Which version each live row's window can rest on, from a table of short time slots
        # (see _slots): one version, none, or "several / near a change" (the general search).
        code = self._slot_code[(at_live - snap.from_us) >> self._slot_shift]
        tally = np.bincount(code.astype(np.intp) + 2, minlength=2 * len(self.versions) + 2)
        nobody: list[Ints] = []  # rows without a candidate version
        ended: list[Ints] = []  # ... of which a retirement ended the plan that held the address
        if rows is None and int(tally.max()) == n and int(code[0]) >= 0:
            parts: list[tuple[int, Ints | None]] = [(int(code[0]), None)]  # no gathers at all
        else:  # the rows grouped by code (a radix sort, stable: rows ascend within a group)
            order = np.argsort(code, kind="stable")
            grouped = order if rows is None else rows[order]
            edges = np.concatenate([[0], np.cumsum(tally)]).tolist()
            parts = [
                (c - 2, grouped[edges[c] : edges[c + 1]]) for c in np.flatnonzero(tally).tolist()
            ]
        # Address and port in one integer: one gather per group instead of two (two gathers
        # from two arrays cost several times one from one; see bench/README.md).
        key = (ip << 16) | port if rows is not None or len(parts) > 1 else None
        for number, mine in parts:
            if number == _NONE:  # no version of any realm in force in the window
                assert mine is not None
                nobody.append(mine)
            elif number == _SEVERAL:
                assert mine is not None
                self._several(
                    mine, ip, port, at, outcome, version, sub_rows, nobody, ended, realms_of_row
                )
            elif number >= len(self.versions):
                self._two_versions(
                    number - len(self.versions),
                    np.arange(n, dtype=np.int64) if mine is None else mine,
                    ip,
                    port,
                    key,
                    at,
                    outcome,
                    version,
                    sub_rows,
                    nobody,
                    ended,
                    realms_of_row,
                )
            else:
                self._one_version(
                    self.versions[number],
                    mine,
                    ip,
                    port,
                    key,
                    outcome,
                    version,
                    sub_rows,
                    nobody,
                    ended,
                )
        if nobody:
            self._without_candidates(
                np.concatenate(nobody),
                np.concatenate(ended) if ended else np.zeros(0, np.int64),
                ip,
                at,
                outcome,
            )
        arrays = self._arrays(n, outcome, version, sub_rows, dictionary, subscriber_dictionary)
        if not self._logs.asked:
            return arrays
        if subscriber_dictionary:  # the logs may name subscribers the batch's dictionary lacks
            arrays[0] = arrays[0].dictionary_decode()
        heard = self._logs.apply(
            arrays, ip, port, at - tolerance, np.minimum(at + tolerance, now), realms_of_row
        )
        if subscriber_dictionary:
            heard[0] = heard[0].dictionary_encode()
        return heard

    def _one_version(
        self,
        v: _Version,
        mine: Ints | None,
        ip: Ints,
        port: Ints,
        key: Ints | None,
        outcome: U8,
        version: I32,
        sub_rows: list[tuple[Ints | None, int, Ints]],
        nobody: list[Ints],
        ended: list[Ints],
    ) -> None:
        """Rows (None: every row) whose only candidate, if it held the address, is ``v``.
        ``key``: ``ip << 16 | port`` (None when ``mine`` is)."""
        if mine is None:
            ips, ports_ = ip, port
        else:
            assert key is not None
            ips, ports_ = _split(key[mine])
        if not v.pool_held:
            inside = _held(v, ips)
            if not inside.all():  # the version's plan did not hold the address: no candidate
                every = np.arange(len(ip), dtype=np.int64) if mine is None else mine
                nobody.append(every[~inside])
                mine, ips, ports_ = every[inside], ips[inside], ports_[inside]
        if v.version.mapper is None:  # a retirement of the plan that held the address
            held = np.arange(len(ip), dtype=np.int64) if mine is None else mine
            nobody.append(held)
            ended.append(held)
            return
        answers = v.version.mapper.reverse_many(ips, ports_)
        reason, sub = answers.reason, answers.subscriber  # sub: -1 where the answer is no match
        invalid = answers.status == _ENGINE_INVALID
        any_invalid = bool(invalid.any())
        if v.pool_held:  # held: what the engine found in its pool or a static binding
            inside = _HELD_REASON[reason]
            if any_invalid:  # a never-public address outside the pool
                inside &= ~invalid
            if not inside.all():
                every = np.arange(len(ip), dtype=np.int64) if mine is None else mine
                nobody.append(every[~inside])
                mine, reason, sub, invalid = (
                    every[inside],
                    reason[inside],
                    sub[inside],
                    invalid[inside],
                )
                any_invalid = bool(invalid.any())
        got = _ENGINE_OUTCOME[reason]
        if any_invalid:
            got[invalid] = _INVALID_QUERY
        if mine is None:
            outcome[:] = got
            version[:] = v.number
        else:
            outcome[mine] = got
            version[mine] = v.number
        sub_rows.append((mine, v.number, sub))

    def _two_versions(
        self,
        number: int,
        rows: Ints,
        ip: Ints,
        port: Ints,
        key: Ints | None,
        at: Ints,
        outcome: U8,
        version: I32,
        sub_rows: list[tuple[Ints | None, int, Ints]],
        nobody: list[Ints],
        ended: list[Ints],
        realms_of_row: dict[int, frozenset[str]],
    ) -> None:
        """Rows whose candidates are version ``number`` and the next of its realm (a change
        within the drain): :meth:`_decide`'s verdict for two candidates, without its sorts.
        Rows where one plan did not hold the address, or one version is a retirement, take
        the general search."""
        first, second = self.versions[number], self.versions[number + 1]
        general = (
            first.version.mapper is None
            or second.version.mapper is None
            or self._all_texts() is None
        )
        if not general:
            ips, ports_ = (ip, port) if key is None else _split(key[rows])
            both = _held(first, ips) & _held(second, ips)
            if not both.all():
                self._several(
                    rows[~both],
                    ip,
                    port,
                    at,
                    outcome,
                    version,
                    sub_rows,
                    nobody,
                    ended,
                    realms_of_row,
                )
                rows, ips, ports_ = rows[both], ips[both], ports_[both]
        if general or not len(rows):
            if general:
                self._several(
                    rows, ip, port, at, outcome, version, sub_rows, nobody, ended, realms_of_row
                )
            return
        a = first.version.mapper.reverse_many(ips, ports_)  # type: ignore[union-attr]
        b = second.version.mapper.reverse_many(ips, ports_)  # type: ignore[union-attr]
        st_a, st_b = _ENGINE_STATUS[a.status], _ENGINE_STATUS[b.status]
        why_a, why_b = _ENGINE_REASON[a.reason], _ENGINE_REASON[b.reason]
        match_a, match_b = st_a == _S[Status.MATCH], st_b == _S[Status.MATCH]
        sub_a, sub_b = a.subscriber, b.subscriber  # -1 where not a match
        same = (
            match_a & match_b & (self._ids[first.number][sub_a] == self._ids[second.number][sub_b])
        )
        if same.any():  # the same subscriber: the same port set too?
            at_same = np.flatnonzero(same)
            same[at_same] = self._port_sets(first, ips[at_same], sub_a[at_same]) == (
                self._port_sets(second, ips[at_same], sub_b[at_same])
            )
        any_match = match_a | match_b
        invalid = (st_a == _S[ERROR]) | (st_b == _S[ERROR])
        dynamic = (st_a == _S[Status.NOT_DETERMINISTIC]) | (st_b == _S[Status.NOT_DETERMINISTIC])
        outcome[rows] = _verdict(
            same, any_match, dynamic, invalid, np.where(why_a == why_b, why_a, _R[Reason.MIXED])
        )
        version[rows] = -2 - first.realm  # no one version: the answer rests on two of a realm
        sub_rows.append((rows, first.number, np.where(same & ~invalid, sub_a, -1)))

    def _several(
        self,
        rows: Ints,
        ip: Ints,
        port: Ints,
        at: Ints,
        outcome: U8,
        version: I32,
        sub_rows: list[tuple[Ints | None, int, Ints]],
        nobody: list[Ints],
        ended: list[Ints],
        realms_of_row: dict[int, frozenset[str]],
    ) -> None:
        """The general search, for rows near a change: every (row, candidate version) pair;
        ``realms_of_row`` gets the realms of each row whose candidates are of several."""
        n = len(ip)
        now = self.snapshot.exported_at_us
        lo_live = at[rows] - self.tolerance_us
        hi_live = np.minimum(at[rows] + self.tolerance_us, now)
        pair_row: list[Ints] = []
        pair_version: list[Ints] = []
        for r, starts in enumerate(self._realm_starts):
            if not len(starts):
                continue
            drain = self._drains[r]
            first = np.maximum(_rank(starts, lo_live - drain if drain else lo_live) - 1, 0)
            last = _rank(starts, hi_live) - 1
            count = np.maximum(last - first + 1, 0)
            base = self._realm_first[r]
            one = count == 1
            pair_row.append(rows[one])
            pair_version.append(first[one] + base)
            many = np.flatnonzero(count > 1)
            if len(many):  # near a change: several versions of the realm
                c = count[many]
                offsets = np.arange(int(c.sum())) - np.repeat(np.cumsum(c) - c, c)
                pair_row.append(np.repeat(rows[many], c))
                pair_version.append(np.repeat(first[many], c) + offsets + base)
        all_rows = np.concatenate(pair_row) if pair_row else np.zeros(0, np.int64)
        all_versions = np.concatenate(pair_version) if pair_version else np.zeros(0, np.int64)
        order = np.argsort(all_versions.astype(np.int32), kind="stable")
        all_rows, all_versions = all_rows[order], all_versions[order]
        cuts = np.flatnonzero(np.diff(all_versions)) + 1
        starts_at = np.concatenate([[0], cuts]) if len(all_versions) else np.zeros(0, np.int64)

        retired = np.zeros(n, dtype=np.bool_)
        held: list[tuple[_Version, Ints, npt.NDArray[np.int8], npt.NDArray[np.int8], Ints]] = []
        count = np.zeros(n, dtype=np.int32)
        for k, begin in enumerate(starts_at.tolist()):
            end = int(cuts[k]) if k < len(cuts) else len(all_rows)
            v = self.versions[int(all_versions[begin])]
            mine = all_rows[begin:end]
            ips = ip[mine]
            inside = _held(v, ips)
            if not inside.all():
                mine, ips = mine[inside], ips[inside]
            if not len(mine):
                continue
            if v.version.mapper is None:  # a retirement of the plan that held the address
                retired[mine] = True
                continue
            answers = v.version.mapper.reverse_many(ips, port[mine])
            held.append(
                (
                    v,
                    mine,
                    _ENGINE_STATUS[answers.status],
                    _ENGINE_REASON[answers.reason],
                    answers.subscriber,
                )
            )
            count[mine] += 1  # rows are distinct within one version

        for v, mine, st, why, sub in held:
            single = count[mine] == 1
            rows1 = mine[single]
            outcome[rows1] = _pack(st[single], why[single])
            version[rows1] = v.number
            matched = single & (st == _S[Status.MATCH])
            if matched.any():
                sub_rows.append((mine[matched], v.number, sub[matched]))

        if (count > 1).any():
            self._decide(held, count, ip, outcome, version, sub_rows, realms_of_row)

        none = rows[count[rows] == 0]
        if len(none):
            nobody.append(none)
            ended.append(none[retired[none]])

    def _decide(
        self,
        held: list[tuple[_Version, Ints, npt.NDArray[np.int8], npt.NDArray[np.int8], Ints]],
        count: I32,
        ip: Ints,
        outcome: U8,
        version: I32,
        sub_rows: list[tuple[Ints | None, int, Ints]],
        realms_of_row: dict[int, frozenset[str]],
    ) -> None:
        """Rows with several candidates: the single lookup's verdict, all rows at once."""
        table = self._all_texts()
        parts: list[tuple[Ints, Ints, Any, Any, Ints, Any, Ints]] = []
        for v, mine, st, why, sub in held:
            several = count[mine] > 1
            if not several.any():
                continue
            rows = mine[several]
            st, why, sub = st[several], why[several], sub[several]
            port_set = np.full(len(rows), -1, dtype=np.int64)
            match = np.flatnonzero(st == _S[Status.MATCH])
            if table is not None:  # the same subscriber: the same text, so the same place
                key = self._ids[v.number][np.where(st == _S[Status.MATCH], sub, -1)][:, None]
            else:
                text = np.zeros((len(rows), _TEXT_WIDTH), dtype=np.uint8)
                if len(match):
                    made, _ = self._subscriber_texts(v, sub[match])
                    text[match, : made.shape[1]] = made
                key = text.view(np.int64)
            if len(match):
                port_set[match] = self._port_sets(v, ip[rows[match]], sub[match])
            parts.append((rows, np.full(len(rows), v.number), st, why, sub, key, port_set))
        rows = np.concatenate([p[0] for p in parts])
        number = np.concatenate([p[1] for p in parts])
        st = np.concatenate([p[2] for p in parts])
        why = np.concatenate([p[3] for p in parts])
        sub = np.concatenate([p[4] for p in parts])
        text = np.concatenate([p[5] for p in parts])
        port_set = np.concatenate([p[6] for p in parts])
        order = np.argsort(rows, kind="stable")
        rows, number, sub, port_set = rows[order], number[order], sub[order], port_set[order]
        st, why, text = st[order], why[order], text[order]
        firsts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        size = np.diff(np.r_[firsts, len(rows)])
        head = np.repeat(firsts, size)
        is_match = st == _S[Status.MATCH]
        same = is_match & (text == text[head]).all(axis=1) & (port_set == port_set[head])
        realm_of = self._realm_of[number]
        across = np.flatnonzero(same & (realm_of != realm_of[head]))
        if len(across):  # a reused key behind two NATs is two lines (lookups.verdict)
            same[across] = [not self._reused(int(number[k]), int(sub[k])) for k in across]
        all_same = np.minimum.reduceat(same, firsts)
        any_match = np.maximum.reduceat(is_match, firsts)
        any_invalid = np.maximum.reduceat(st == _S[ERROR], firsts)
        any_dynamic = np.maximum.reduceat(st == _S[Status.NOT_DETERMINISTIC], firsts)
        one_reason = np.minimum.reduceat(why == why[head], firsts)
        one_realm = np.minimum.reduceat(realm_of == realm_of[head], firsts)
        out_rows = rows[firsts]
        outcome[out_rows] = _verdict(
            all_same,
            any_match,
            any_dynamic,
            any_invalid,
            np.where(one_reason, why[firsts], _R[Reason.MIXED]),
        )
        version[out_rows] = np.where(one_realm, -2 - realm_of[firsts], -1)
        names = self.snapshot.realms
        for k in np.flatnonzero(~one_realm).tolist():  # rare: an address two realms' plans hold
            start, stop = int(firsts[k]), int(firsts[k] + size[k])
            realms_of_row[int(out_rows[k])] = frozenset(
                names[r].name for r in realm_of[start:stop].tolist()
            )
        agreed = all_same & ~any_invalid
        if agreed.any():
            pick = firsts[agreed]
            for n in np.unique(number[pick]).tolist():
                mine = pick[number[pick] == n]
                sub_rows.append((rows[mine], n, sub[mine]))

    def _without_candidates(
        self,
        rows: Ints,
        ended: Ints,
        ip: Ints,
        at: Ints,
        outcome: U8,
    ) -> None:
        """No candidate: ended by a retirement, a never-public address, not in a pool, no plan.

        ``ended``: the rows of ``rows`` whose address a retirement's plan held.
        """
        if len(ended):
            rows = np.setdiff1d(rows, ended, assume_unique=True)
            outcome[ended] = _o(Status.NO_PLAN_IN_FORCE, _R[Reason.NO_PLAN])
        values = ip[rows]
        never = np.zeros(len(rows), dtype=np.bool_)
        for first, last, _ in _NON_PUBLIC:
            never |= (values >= first) & (values <= last)
        outcome[rows[never]] = _INVALID_QUERY
        rows = rows[~never]
        lo = at[rows] - self.tolerance_us
        hi = np.minimum(at[rows] + self.tolerance_us, self.snapshot.exported_at_us)
        pos = np.searchsorted(self._cover_lo, hi, side="right") - 1
        covered = (
            (pos >= 0) & (self._cover_hi[np.maximum(pos, 0)] > lo)
            if len(self._cover_lo)
            else pos < -1
        )
        outcome[rows] = np.where(
            covered,
            _o(Status.NO_MAPPING, _R[Reason.NOT_IN_POOL]),
            _o(Status.NO_PLAN_IN_FORCE, _R[Reason.NO_PLAN]),
        )

    # -- subscribers and port sets ----------------------------------------------------------------

    def _reused(self, number: int, sub: int) -> bool:
        """Whether subscriber ``sub`` of version ``number`` may be another line behind another
        NAT (:func:`detnat.engine.addresses.reused`): asked only of candidates of two realms
        that name the same subscriber, which are few."""
        mapper = self.versions[number].version.mapper
        assert mapper is not None
        return reused(mapper.subscriber_at(sub))

    def _subscriber_texts(self, v: _Version, sub: Ints) -> tuple[npt.NDArray[np.uint8], Ints]:
        mapper = v.version.mapper
        assert mapper is not None
        with self._lock:
            if v.number not in self._texts:
                self._texts[v.number] = SubscriberTexts.of(mapper)
            texts = self._texts[v.number]
        if texts is not None:
            return texts.texts(sub)
        # Plans whose key runs cannot be used: one text per distinct subscriber, not per row.
        unique, back = np.unique(sub, return_inverse=True)
        words = [str(mapper.subscriber_at(int(i))).encode() for i in unique.tolist()]
        table = np.zeros((len(words), _TEXT_WIDTH), dtype=np.uint8)
        for k, word in enumerate(words):
            table[k, : len(word)] = np.frombuffer(word, dtype=np.uint8)
        lengths = np.array([len(w) for w in words], dtype=np.int64)
        return table[back], lengths[back]

    def _port_sets(self, v: _Version, ip: Ints, sub: Ints) -> Ints:
        """An id per distinct port set (equal sets of two versions get one id); 0: all ports."""
        mapper = v.version.mapper
        assert mapper is not None
        with self._lock:
            table = self._sets.get(v.number)
            if table is None:
                table = np.array(
                    [
                        self._set_ids.setdefault(tuple(s), len(self._set_ids))
                        for s in mapper.pool_port_sets()
                    ],
                    dtype=np.int64,
                )
                self._sets[v.number] = table
        statics = np.array(sorted(s.address for s in mapper.plan.static), dtype=np.int64)
        _, number = mapper.pool_allocations(sub)
        ids = (
            table[np.clip(number, 0, max(len(table) - 1, 0))] if len(table) else np.zeros_like(sub)
        )
        if len(statics):
            ids = np.where(np.isin(ip, statics), 0, ids)
        return ids

    # -- Arrow ----------------------------------------------------------------------------------

    def _all_texts(self) -> pa.Array | None:
        """Every distinct subscriber text of every version, then one null (None: too many to
        keep); ``self._ids[number]`` maps a version's subscriber numbers to places in it, its
        last entry (index -1: "no subscriber") to the trailing null.

        Versions of one realm mostly name the same subscribers, so the distinct texts are few
        and the one ``take`` that makes the column reads a table that stays in the caches. The
        trailing null is the text of rows without a subscriber: a take without a validity
        mask on its indices is about twice as fast as one with.
        """
        with self._lock:
            if self._table_made:
                return self._table
            counts = [
                v.version.mapper.subscriber_count if v.version.mapper else 0 for v in self.versions
            ]
            if sum(counts) <= MAX_KEPT_TEXTS:
                parts = [
                    _string_array(*self._subscriber_texts(v, np.arange(c, dtype=np.int64)))
                    if c
                    else pa.array([], pa.string())
                    for v, c in zip(self.versions, counts, strict=True)
                ]
                every = pa.concat_arrays([pa.array([], pa.string()), *parts]).dictionary_encode()
                null = len(every.dictionary)
                ids = np.asarray(every.indices.to_numpy(zero_copy_only=False), dtype=np.int32)
                bounds = np.cumsum([0, *counts]).tolist()
                self._ids = [
                    np.append(ids[bounds[k] : bounds[k + 1]], np.int32(null))
                    for k in range(len(counts))
                ]
                self._table = pa.concat_arrays([every.dictionary, pa.nulls(1, pa.string())])
            self._table_made = True
            return self._table

    def _texts_of_rows(self, n: int, sub_rows: list[tuple[Ints | None, int, Ints]]) -> pa.Array:
        lengths = np.zeros(n, dtype=np.int64)
        made: list[tuple[Ints, npt.NDArray[np.uint8], Ints]] = []
        for rows, number, sub in sub_rows:
            if rows is None:
                rows = np.arange(n, dtype=np.int64)
            matched = sub >= 0
            rows, sub = rows[matched], sub[matched]
            text, size = self._subscriber_texts(self.versions[number], sub)
            made.append((rows, text, size))
            lengths[rows] = size
        offsets = np.zeros(n + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        data = np.zeros(int(offsets[-1]), dtype=np.uint8)
        for rows, text, size in made:
            width = text.shape[1]
            keep = np.arange(width) < size[:, None]
            at = offsets[rows][:, None] + np.arange(width)
            data[at[keep]] = text[keep]
        has = lengths > 0
        return pa.LargeStringArray.from_buffers(
            n,
            pa.py_buffer(offsets),
            pa.py_buffer(data),
            pa.py_buffer(np.packbits(has, bitorder="little")) if not has.all() else None,
        ).cast(pa.string())

    def _arrays(
        self,
        n: int,
        outcome: U8,
        version: I32,
        sub_rows: list[tuple[Ints | None, int, Ints]],
        dictionary: bool,
        subscriber_dictionary: bool = False,
    ) -> list[pa.Array]:
        table = self._all_texts()
        if table is not None:  # one take from every subscriber's text (made once)
            null = len(table) - 1  # the trailing null
            code: I32 | None = None
            for rows, number, sub in sub_rows:
                values = self._ids[number][sub]  # sub -1: the last entry, the null
                if rows is None:
                    code = values
                else:
                    if code is None:
                        code = np.full(n, null, dtype=np.int32)
                    code[rows] = values
            if subscriber_dictionary:
                subscriber = _texts_used(
                    table, np.full(n, null, np.int32) if code is None else code
                )
            elif code is None:
                subscriber = pa.nulls(n, pa.string())
            else:
                subscriber = pc.take(table, _valued(code, pa.int32()), boundscheck=False)
        else:
            subscriber = self._texts_of_rows(n, sub_rows)
            if subscriber_dictionary:
                subscriber = subscriber.dictionary_encode()
        status = (outcome >> _SHIFT).view(np.int8)
        reason = (outcome & _LOW).view(np.int8)
        place = version + (len(self.snapshot.realms) + 1)  # see _version_realm
        realm = self._version_realm[place]
        seqs = self._version_seq[place]
        named = realm >= 0
        one = version >= 0
        version_array = _valued(seqs, pa.int32(), None if one.all() else one)
        if dictionary:  # the words once, the rows as indices into them: no word copied per row
            some = reason != NO_REASON
            return [
                subscriber,
                pa.DictionaryArray.from_arrays(_valued(status, pa.int8()), _STATUS_ARRAY),
                pa.DictionaryArray.from_arrays(
                    _valued(np.where(some, reason, 0), pa.int8(), None if some.all() else some),
                    _REASON_WORDS_ARRAY,
                ),
                pa.DictionaryArray.from_arrays(
                    _valued(np.maximum(realm, 0), pa.int32(), None if named.all() else named),
                    self._realm_names,
                ),
                version_array,
            ]
        return [
            subscriber,
            _words(_STATUS_ARRAY, status, repeats=self._repeats),
            _words(_REASON_ARRAY, reason),
            _words(self._realm_names, realm, None if named.all() else named, self._repeats),
            version_array,
        ]


def _split(key: Ints) -> tuple[Ints, Ints]:
    """``ip << 16 | port`` back to addresses and ports."""
    return key >> 16, key & 0xFFFF


SMALL = 16  # sorted arrays this short are searched by comparisons (no branches), not bisection


def _rank(edges: Ints, values: Ints) -> Ints:
    """``np.searchsorted(edges, values, side="right")``: how many edges are <= each value."""
    if len(edges) > SMALL:
        return np.searchsorted(edges, values, side="right")
    # Counted in int8 (at most SMALL edges): adding booleans into int64 costs ten times more.
    out = np.zeros(len(values), dtype=np.int8)
    above = np.empty(len(values), dtype=np.bool_)
    for edge in edges.tolist():
        np.greater_equal(values, edge, out=above)
        out += above.view(np.int8)
    return out.astype(np.int64)


FEW = 2  # a version's ranges: up to this many compared, more looked up by /16 (IndexOfMany)


def _held(v: _Version, values: Ints) -> Bools:
    """Which addresses (valid IPv4, ``[0, 2**32)``) lie in the version's ranges."""
    if v.table is not None and v.table.steps >= 0:
        return v.table.contains(values)
    return _within(v.firsts, v.lasts, values)


def _within(firsts: Ints, lasts: Ints, values: Ints) -> Bools:
    """Which values lie in one of the sorted, disjoint ranges ``[firsts[i], lasts[i]]``."""
    if len(firsts) > SMALL:
        pos = np.searchsorted(firsts, values, side="right") - 1
        inside: Bools = (pos >= 0) & (values <= lasts[np.maximum(pos, 0)])
        return inside
    found = np.zeros(len(values), dtype=np.bool_)
    for first, last in zip(firsts.tolist(), lasts.tolist(), strict=True):
        found |= (values >= first) & (values <= last)
    return found


def _valued(values: npt.NDArray[Any], kind: pa.DataType, valid: Bools | None = None) -> pa.Array:
    """A numpy array as an Arrow array of ``kind`` (its dtype), null where not ``valid``: the
    validity bitmap packed by numpy (``pa.array(..., mask=)`` costs ten times more for int8)."""
    values = np.ascontiguousarray(values, dtype=kind.to_pandas_dtype())
    bitmap = None if valid is None else pa.py_buffer(np.packbits(valid, bitorder="little"))
    return pa.Array.from_buffers(kind, len(values), [bitmap, pa.py_buffer(values)])


def _texts_used(table: pa.Array, code: I32) -> pa.DictionaryArray:
    """``table.take(code)`` as a dictionary array whose dictionary is the texts the rows use,
    in ``table``'s order (``table``'s last entry is its null: rows with it are null)."""
    null = len(table) - 1
    used = np.zeros(len(table), dtype=np.bool_)
    used[code] = True
    nobody = bool(used[null])
    used[null] = False
    renumbered = np.cumsum(used, dtype=np.int32) - 1
    indices = renumbered[code]
    valid = None
    if nobody:
        valid = code != null
        indices[~valid] = 0
    return pa.DictionaryArray.from_arrays(
        _valued(indices, pa.int32(), valid), table.take(pa.array(np.flatnonzero(used)))
    )


def _words(
    words: pa.Array,
    codes: npt.NDArray[Any],
    valid: Bools | None = None,
    repeats: dict[str, pa.Array] | None = None,
) -> pa.Array:
    """``words.take(codes)`` (null where not ``valid``; every code a place in ``words``); one
    word repeated without a take, from ``repeats`` (kept between batches) when it is there."""
    n = len(codes)
    if n and valid is None and int(codes.min()) == int(codes.max()):
        return _repeated(words[int(codes[0])].as_py(), n, {} if repeats is None else repeats)
    if n and valid is not None and not valid.any():
        return pa.nulls(n, pa.string())
    indices = _valued(codes, pa.from_numpy_dtype(codes.dtype), valid)
    return pc.take(words, indices, boundscheck=False)


MAX_REPEAT_BYTES = 1 << 24  # a repeated word kept for the next batches: at most 16 MB of it
MAX_REPEATS = 4  # ... and at most this many words (64 MB in all)


def _repeated(word: str | None, n: int, repeats: dict[str, pa.Array]) -> pa.Array:
    """``n`` times ``word`` (or null) as a string array: a slice of one kept in ``repeats``
    (made once for batches of up to that many rows; slices share the immutable buffers)."""
    if word is None:
        return pa.nulls(n, pa.string())
    kept = repeats.get(word)
    if kept is not None and len(kept) >= n:
        return kept if len(kept) == n else kept.slice(0, n)
    data = word.encode()
    if n * len(data) >= 1 << 31:  # beyond 32-bit offsets: the general path
        return pa.array([word], pa.string()).take(pa.array(np.zeros(n, dtype=np.int32)))
    offsets = np.arange(0, (n + 1) * len(data), len(data), dtype=np.int32)
    made = pa.StringArray.from_buffers(n, pa.py_buffer(offsets), pa.py_buffer(data * n))
    if n * (len(data) + 4) <= MAX_REPEAT_BYTES and (word in repeats or len(repeats) < MAX_REPEATS):
        repeats[word] = made  # one assignment: safe between threads
    return made


def _string_array(rows: npt.NDArray[np.uint8], lengths: Ints) -> pa.Array:
    """Texts given as zero-padded rows and lengths, as one Arrow string array."""
    offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])
    data = rows[np.arange(rows.shape[1]) < lengths[:, None]]
    return pa.LargeStringArray.from_buffers(
        len(lengths), pa.py_buffer(offsets), pa.py_buffer(np.ascontiguousarray(data))
    ).cast(pa.string())


# -- columns to numpy -----------------------------------------------------------------------------


def _valid(column: pa.Array) -> Bools:
    if column.null_count == 0:
        return np.ones(len(column), dtype=np.bool_)
    return np.asarray(column.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)


def _integers(column: pa.Array) -> tuple[Ints, Bools]:
    ok = _valid(column)
    filled = column.fill_null(0) if column.null_count else column
    values = filled.to_numpy(zero_copy_only=False)
    if values.dtype == np.uint64:
        big = values > np.iinfo(np.int64).max
        ok &= ~big
        values = np.where(big, 0, values)
    return values.astype(np.int64, copy=False), ok


def _in_range(column: pa.Array, values: Ints, ok: Bools, top: int) -> Ints:
    """``ok`` narrowed to the values in ``0..top`` (in place); values outside made 0. No pass
    over the values when their type cannot hold one outside."""
    kind = column.type
    if (
        pa.types.is_unsigned_integer(kind)
        and kind.bit_width <= 32
        and (1 << kind.bit_width) <= top + 1
    ):
        return values
    inside = values.view(np.uint64) <= top  # negative values are huge as unsigned
    if inside.all():
        return values
    ok &= inside
    return np.where(ok, values, 0)


def addresses(column: pa.Array) -> tuple[Ints, Bools]:
    """IPv4 addresses as integers (and which rows hold one): integer or dotted-quad columns."""
    column = _plain(column, pa.uint32())
    kind = column.type
    if pa.types.is_integer(kind):
        values, ok = _integers(column)
        return _in_range(column, values, ok, 0xFFFFFFFF), ok
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        return _dotted(column)
    raise InvalidInput(f"the address column is {kind}; want integers or dotted quads", field="ip")


def _dotted(column: pa.Array) -> tuple[Ints, Bools]:
    n = len(column)
    _, offsets_buffer, data_buffer = column.buffers()
    wide = pa.types.is_large_string(column.type)
    raw = np.frombuffer(offsets_buffer, dtype=np.int64 if wide else np.int32)
    offsets: Ints = raw[column.offset : column.offset + n + 1].astype(np.int64)
    if data_buffer is None or offsets[-1] == offsets[0]:
        return np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.bool_)
    text = np.frombuffer(data_buffer, dtype=np.uint8)[: int(offsets[-1])]
    dots = np.flatnonzero(text == 46)
    values, ok = parse_ipv4_many(text, dots, offsets[:-1], offsets[1:])
    ok = ok & _valid(column)
    return np.where(ok, values, 0), ok


def ports(column: pa.Array) -> tuple[Ints, Bools]:
    """Ports as integers (and which rows hold one in 0-65535)."""
    column = _plain(column, pa.uint16())
    if not pa.types.is_integer(column.type):
        raise InvalidInput(f"the port column is {column.type}; want integers", field="port")
    values, ok = _integers(column)
    return _in_range(column, values, ok, 65535), ok


def instants(column: pa.Array, unit: str | None, *, field: str = "time") -> tuple[Ints, Bools]:
    """Microseconds since the epoch, UTC (and which rows hold a valid instant)."""
    column = _plain(column, pa.string())
    kind = column.type
    if pa.types.is_string(kind) or pa.types.is_large_string(kind):
        ok = np.asarray(
            pc.match_substring_regex(column, _RFC3339)
            .fill_null(False)
            .to_numpy(zero_copy_only=False),
            dtype=np.bool_,
        )
        if not ok.all():
            column = pc.if_else(pa.array(ok), column, pa.scalar(None, kind))
        try:
            column = pc.cast(column, pa.timestamp("ns", tz="UTC"))
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            raise InvalidInput(f"a time that is not a date: {exc}", field=field) from None
        kind = column.type
    if pa.types.is_timestamp(kind):
        if kind.tz is None:
            raise InvalidInput(
                "timestamps without a zone are refused; store them with a zone (UTC)", field=field
            )
        values, ok = _integers(column.cast(pa.int64()))
        scale = _US[kind.unit]
        if kind.unit == "ns":
            ok &= values % 1000 == 0  # the store refuses instants finer than a microsecond
            return np.where(ok, values // 1000, 0), ok
        # years 1 to 9999, as the store reads times: beyond, seconds and milliseconds times
        # their microseconds wrap around int64 and would name an instant of today
        per_second = 1_000_000 // scale
        ok &= (values >= _FIRST_S * per_second) & (values <= _LAST_S * per_second)
        values = np.where(ok, values, 0)
        return (values * scale if scale != 1 else values), ok
    if pa.types.is_integer(kind):
        if unit is None:
            raise InvalidInput(
                "integer times need their unit: epoch seconds or milliseconds (UTC)", field=field
            )
        values, ok = _integers(column)
        limit = _LAST_S * (1 if unit == "s" else 1000)
        ok &= (values >= 0) & (values <= limit)
        return np.where(ok, values, 0) * _US[unit], ok
    raise InvalidInput(f"the time column is {kind}", field=field)


def _plain(column: pa.Array | pa.ChunkedArray, absent: pa.DataType) -> pa.Array:
    """``column`` as one plain array; a column typed ``null`` (every value absent: pyarrow infers
    it from a CSV block of empty fields, or a pandas column of None) as ``absent``'s nulls."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    if pa.types.is_null(column.type):
        return pa.nulls(len(column), absent)
    if pa.types.is_dictionary(column.type):
        column = column.dictionary_decode()
    if pa.types.is_string_view(column.type):  # Polars' strings
        column = column.cast(pa.large_string())
    return column


__all__ = [
    "DICTIONARY_FIELDS",
    "ERROR",
    "ERROR_REASONS",
    "OUTPUT_COLUMNS",
    "OUTPUT_FIELDS",
    "Annotator",
    "Columns",
    "addresses",
    "instants",
    "ports",
]
