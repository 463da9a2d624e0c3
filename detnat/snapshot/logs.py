"""The NAT's own logs in a snapshot, heard by the annotator as the store's lookups hear them.

A snapshot carries, for each realm that had logs, the log intervals that held in its period
(:mod:`detnat.snapshot.file`). :class:`SnapshotLogs` changes the annotator's plan answers by the
one rule of :func:`detnat.logs.settle.settle`, asked as ``detnat reverse --at`` asks it with no
realm named: the intervals of every realm of the snapshot, and ``not_logged`` for a dynamic port
no interval holds (once any realm of the snapshot has logs).

The rows whose address has log intervals are settled one by one (the rule is the service's own
Python); every other row is settled by array operations: a dynamic port on an address without
intervals is ``no_mapping`` / ``not_logged``, the rest stand. The ``realm`` and ``version``
columns stay the plans' (the candidates of the window), as the single lookup's candidates do.

Pure: numpy, pyarrow, the logs' rule.
"""

from __future__ import annotations

import ipaddress
from typing import Any

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc

from detnat.engine.results import Reason, Status
from detnat.logs.intervals import Interval
from detnat.logs.settle import CONSULTED, settle
from detnat.snapshot.file import Snapshot

_CONSULTED = pa.array([s.value for s in CONSULTED], pa.string())


class SnapshotLogs:
    """The log intervals of a snapshot's realms, by public address."""

    def __init__(self, snapshot: Snapshot) -> None:
        self.asked = any(r.logs is not None for r in snapshot.realms)
        by_ip: dict[int, list[Interval]] = {}
        for realm in snapshot.realms:
            for interval in realm.logs or ():
                by_ip.setdefault(int(ipaddress.IPv4Address(interval.public)), []).append(interval)
        self._by_ip = by_ip
        self._keys = np.array(sorted(by_ip), dtype=np.int64)

    def apply(
        self,
        arrays: list[pa.Array],
        ip: npt.NDArray[np.int64],
        port: npt.NDArray[np.int64],
        lo: npt.NDArray[np.int64],
        hi: npt.NDArray[np.int64],
    ) -> list[pa.Array]:
        """The annotator's five answer arrays (subscriber, status, reason, realm, version) for
        rows ``ip``, ``port`` and windows ``[lo, hi]`` (µs), with the logs heard."""
        if not self.asked or not len(ip):
            return arrays
        subscriber, status, reason, realm, version = arrays
        consulted = _numpy(pc.is_in(status, value_set=_CONSULTED))
        logged = np.isin(ip, self._keys) if len(self._keys) else np.zeros(len(ip), np.bool_)
        dynamic = _numpy(pc.equal(status, Status.NOT_DETERMINISTIC.value))
        changed: dict[int, tuple[str, str | None, str | None]] = {}
        for n in np.flatnonzero(dynamic & ~logged).tolist():  # nothing logged on the address
            changed[n] = (Status.NO_MAPPING.value, Reason.NOT_LOGGED.value, None)
        asked = np.flatnonzero(consulted & logged)
        if len(asked):
            take = pa.array(asked, pa.int64())
            said = zip(
                asked.tolist(),
                status.take(take).to_pylist(),
                reason.take(take).to_pylist(),
                subscriber.take(take).to_pylist(),
                strict=True,
            )
            for n, word, why, held in said:
                settled = settle(
                    Status(word),
                    None if why is None else Reason(why),
                    held,
                    self._by_ip[int(ip[n])],
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
    """``array`` with the rows of ``mask`` set to ``values`` (in row order)."""
    plain = array.cast(pa.string()) if pa.types.is_dictionary(array.type) else array
    return pc.replace_with_mask(plain, pa.array(mask), pa.array(values, pa.string()))
