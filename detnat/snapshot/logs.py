"""The NAT's own logs in a snapshot, heard by the annotator as the store's lookups hear them.

A snapshot carries, for each realm that had logs, the log intervals that held in its period
(:mod:`detnat.snapshot.file`). :class:`SnapshotLogs` changes the annotator's plan answers by the
one rule of :func:`detnat.logs.settle.settle`, asked as ``detnat reverse --at`` asks it with no
realm named: the intervals of every realm of the snapshot, and ``not_logged`` for a dynamic port
no interval holds (once any realm of the snapshot has logs).

The rows whose address and port some log interval holds (at any time) are settled one by one (the
rule is the service's own Python), with only those intervals; every other row is settled by array
operations: a dynamic port no interval holds is ``no_mapping`` / ``not_logged``, the rest stand.
The ``realm`` and ``version`` columns stay the plans' (the candidates of the window), as the single
lookup's candidates do.

Pure: numpy, pyarrow, the logs' rule.
"""

from __future__ import annotations

import bisect
import ipaddress
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from detnat.engine.results import Reason, Status
from detnat.logs.intervals import Interval
from detnat.logs.settle import settle
from detnat.snapshot.file import Snapshot

_STATUS = {s.value: s for s in Status}
_REASON = {r.value: r for r in Reason}
# A plan answer the logs may change besides a match and a dynamic port: no plan holds the address
# (``no_plan_in_force`` / ``no_plan``, ``no_mapping`` / ``not_in_pool``).
_NO_PLAN = pa.array([Reason.NO_PLAN.value, Reason.NOT_IN_POOL.value], pa.string())


class SnapshotLogs:
    """The log intervals of a snapshot's realms, by public address."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.asked = any(r.logs is not None for r in snapshot.realms)
        by_ip: dict[int, list[tuple[str, Interval]]] = {}
        for realm in snapshot.realms:
            for interval in realm.logs or ():
                key = int(ipaddress.IPv4Address(interval.public))
                by_ip.setdefault(key, []).append((realm.name, interval))
        # Per address: its intervals by first port, with the largest last port up to each, so
        # the intervals that may hold a port are found without looking at the others.
        self._by_ip: dict[int, tuple[list[int], list[int], list[tuple[str, Interval]]]] = {}
        spans: list[tuple[int, int]] = []  # every (address, port) some interval may hold
        for key, intervals in by_ip.items():
            intervals.sort(key=lambda found: (found[1].port_first, found[1].port_last))
            reach, most = [], -1
            for _, i in intervals:
                most = max(most, i.port_last)
                reach.append(most)
                spans.append((key * 65536 + i.port_first, key * 65536 + i.port_last))
            self._by_ip[key] = ([i.port_first for _, i in intervals], reach, intervals)
        merged: list[list[int]] = []
        for lo, hi in sorted(spans):
            if merged and lo <= merged[-1][1] + 1:
                merged[-1][1] = max(merged[-1][1], hi)
            else:
                merged.append([lo, hi])
        self._span_lo = np.array([m[0] for m in merged], dtype=np.int64)
        self._span_hi = np.array([m[1] for m in merged], dtype=np.int64)

    def _covered(
        self, ip: npt.NDArray[np.int64], port: npt.NDArray[np.int64]
    ) -> npt.NDArray[np.bool_]:
        """Whether some interval's port range (at any time) holds each row's address and port."""
        if not len(self._span_lo):
            return np.zeros(len(ip), dtype=np.bool_)
        key = ip * 65536 + port
        at = np.searchsorted(self._span_lo, key, side="right") - 1
        return (at >= 0) & (key <= self._span_hi[np.maximum(at, 0)])

    def _holding(self, ip: int, port: int) -> list[tuple[str, Interval]]:
        """The (realm, interval) of ``ip`` whose port range holds ``port`` (at any time)."""
        firsts, reach, intervals = self._by_ip[ip]
        out = []
        k = bisect.bisect_right(firsts, port) - 1
        while k >= 0 and reach[k] >= port:
            if intervals[k][1].port_last >= port:
                out.append(intervals[k])
            k -= 1
        return out

    def apply(
        self,
        arrays: list[pa.Array],
        ip: npt.NDArray[np.int64],
        port: npt.NDArray[np.int64],
        lo: npt.NDArray[np.int64],
        hi: npt.NDArray[np.int64],
        realms_of_row: dict[int, frozenset[str]] | None = None,
    ) -> list[pa.Array]:
        """The annotator's five answer arrays (subscriber, status, reason, realm, version) for
        rows ``ip``, ``port`` and windows ``[lo, hi]`` (µs), with the logs heard;
        ``realms_of_row``: the realms of the candidates of each row whose candidates are of
        several realms (its ``realm`` is null), as the single lookup's candidates name them."""
        several = realms_of_row or {}
        if not self.asked or not len(ip):
            return arrays
        subscriber, status, reason, realm, version = arrays
        # The rows the logs may change (settle's own conditions, before it looks at intervals):
        # a dynamic port, a plan's match, an address no plan holds.
        dynamic = _numpy(pc.equal(status, Status.NOT_DETERMINISTIC.value))
        heard = (
            dynamic
            | _numpy(pc.equal(status, Status.MATCH.value))
            | _numpy(pc.is_in(reason, value_set=_NO_PLAN))
        )
        covered = self._covered(ip, port)
        changed: dict[int, tuple[str, str | None, str | None]] = {}
        for n in np.flatnonzero(dynamic & ~covered).tolist():  # no interval holds the port
            changed[n] = (Status.NO_MAPPING.value, Reason.NOT_LOGGED.value, None)
        asked = np.flatnonzero(heard & covered)
        if len(asked):
            take = pa.array(asked, pa.int64())
            said = zip(
                asked.tolist(),
                status.take(take).to_pylist(),
                reason.take(take).to_pylist(),
                subscriber.take(take).to_pylist(),
                realm.take(take).to_pylist(),
                strict=True,
            )
            for n, word, why, held, planned in said:
                # a port the plan of the address leaves to the logs is answered by that realm's
                # logs alone (the single lookup's log_answers.answering_realms)
                answering = (
                    None
                    if word == Status.MATCH.value
                    else several.get(n)
                    if planned is None
                    else frozenset((planned,))
                )
                found = [
                    (name, interval)
                    for name, interval in self._holding(int(ip[n]), int(port[n]))
                    if answering is None or name in answering
                ]
                settled = settle(
                    _STATUS[word],
                    None if why is None else _REASON[why],
                    held,
                    found,
                    int(port[n]),
                    int(lo[n]),
                    int(hi[n]),
                    logs_asked=False,
                )
                if settled is None or (settled.source == "plan" and settled.status is Status.MATCH):
                    continue  # the plan's answer stands
                now = (
                    settled.status.value,
                    None if settled.reason is None else settled.reason.value,
                    settled.subscriber if settled.status is Status.MATCH else None,
                )
                if now != (word, why, held):
                    changed[n] = now
        if not changed:
            return arrays
        rows = sorted(changed)
        mask = np.zeros(len(ip), dtype=np.bool_)
        mask[rows] = True
        return [
            _replace(subscriber, mask, [changed[n][2] for n in rows]),
            _replace(status, mask, [changed[n][0] for n in rows]),
            _replace(reason, mask, [changed[n][1] for n in rows]),
            realm,
            version,
        ]


def _numpy(values: Any) -> npt.NDArray[np.bool_]:
    return np.asarray(values.to_numpy(zero_copy_only=False), dtype=np.bool_)


def _replace(array: pa.Array, mask: npt.NDArray[np.bool_], values: list[str | None]) -> pa.Array:
    """``array`` with the rows of ``mask`` set to ``values`` (in row order); a dictionary array
    stays one, on its own dictionary (which holds every status and reason word)."""
    if not pa.types.is_dictionary(array.type):
        return pc.replace_with_mask(array, pa.array(mask), pa.array(values, pa.string()))
    place = {word: k for k, word in enumerate(array.dictionary.to_pylist())}
    indices = array.indices.fill_null(0).to_numpy(zero_copy_only=False).copy()
    valid = np.asarray(array.is_valid().to_numpy(zero_copy_only=False), dtype=np.bool_)
    rows = np.flatnonzero(mask)
    indices[rows] = [0 if v is None else place[v] for v in values]
    valid[rows] = [v is not None for v in values]
    return pa.DictionaryArray.from_arrays(
        pa.array(indices, array.indices.type, mask=None if valid.all() else ~valid),
        array.dictionary,
    )
