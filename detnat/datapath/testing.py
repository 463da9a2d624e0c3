"""The test double of the datapath seam: a datapath that only records, and can be made to drift.

:class:`RecordingDatapath` keeps what it was told in memory (or, with ``state=FILE``, in a JSON
file, so ``detnat datapath apply`` and a later ``verify`` in another process see the same
datapath). It renders one line per subscriber, records every call in :attr:`calls`, and
:meth:`~RecordingDatapath.set_holdings` / :meth:`~RecordingDatapath.forget` change its live state
behind the plan's back, the way real datapaths drift::

    >>> from detnat.engine import compile_plan, Plan, Inside, Outside, Block
    >>> from detnat.engine.addresses import parse_prefix
    >>> inside = Inside((parse_prefix("10.0.0.0/30"),), 32)
    >>> outside = Outside((parse_prefix("192.0.2.1"),))
    >>> mapper = compile_plan(Plan("block", inside=inside, outside=outside, block=Block(ratio=4)))
    >>> dp = RecordingDatapath()
    >>> dp.apply(mapper); dp.verify(mapper).ok
    True
    >>> dp.forget(parse_prefix("10.0.0.2")); print(dp.verify(mapper).drifts[0])
    10.0.0.2/32: plan 192.0.2.1 ports 33280-49407; datapath no translation
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import ClassVar

from detnat.datapath.base import Datapath, Holding, LiveState, planned_state
from detnat.engine import Mapper, Prefix, format_ipv4, parse_prefix
from detnat.engine.addresses import parse_ipv4
from detnat.errors import InvalidInput


class RecordingDatapath(Datapath):
    """A datapath that holds exactly what it was last told, unless a test says otherwise."""

    name = "recording"
    options: ClassVar[Mapping[str, str]] = {
        "state": "JSON file that holds the live state between processes (optional)"
    }

    def __init__(self, state: str | None = None) -> None:
        self.state = Path(state) if state else None
        self.calls: list[tuple[str, str]] = []  # (operation, what it was about)
        self._live: dict[Prefix, tuple[Holding, ...]] = {}
        if self.state is not None and self.state.exists():
            self._live = _load(self.state)

    def render(self, mapper: Mapper) -> Iterator[str]:
        self.calls.append(("render", f"{mapper.subscriber_count} subscribers"))
        for index in range(mapper.subscriber_count):
            a = mapper.allocation_of(index)
            ranges = " ".join(f"{lo}-{hi}" for lo, hi in a.port_ranges)
            yield f"{a.subscriber} {format_ipv4(a.public_ip)} {ranges}\n"

    def apply(self, mapper: Mapper) -> None:
        self.calls.append(("apply", f"{mapper.subscriber_count} subscribers"))
        self._live = dict(planned_state(mapper).holdings)
        self._save()

    def read_live(self) -> LiveState:
        self.calls.append(("read_live", f"{len(self._live)} subscribers"))
        return LiveState(dict(self._live))

    # -- drift on purpose ------------------------------------------------------------------------

    def set_holdings(self, subscriber: Prefix, holdings: tuple[Holding, ...]) -> None:
        """Make the datapath translate ``subscriber`` to ``holdings``, whatever the plan says."""
        self._live[subscriber] = holdings
        self._save()

    def forget(self, subscriber: Prefix) -> None:
        """Make the live datapath stop translating ``subscriber``."""
        self._live.pop(subscriber, None)
        self._save()

    def _save(self) -> None:
        if self.state is None:
            return
        data = {
            str(sub): [[format_ipv4(h.public_ip), [list(r) for r in h.port_ranges]] for h in hs]
            for sub, hs in self._live.items()
        }
        # Replace, never rewrite in place: a reader sees the old state or the new one.
        fd, tmp = tempfile.mkstemp(dir=self.state.parent, prefix=".recording-")
        with os.fdopen(fd, "w") as out:
            json.dump(data, out)
        os.replace(tmp, self.state)


def _load(path: Path) -> dict[Prefix, tuple[Holding, ...]]:
    try:
        data = json.loads(path.read_text())
        return {
            parse_prefix(sub): tuple(
                Holding(parse_ipv4(ip), tuple((int(lo), int(hi)) for lo, hi in ranges))
                for ip, ranges in holdings
            )
            for sub, holdings in data.items()
        }
    except (OSError, ValueError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"not a recording datapath state file: {exc}", field=str(path)) from None
