"""Compiled plans, cached: :class:`MapperCache` (every lookup and batch compiles through it)."""

from __future__ import annotations

import threading
from collections import OrderedDict
from typing import Any, Protocol

from detnat.engine import Mapper, compile_plan
from detnat.planfile import plan_from_data


class HasPlan(Protocol):
    @property
    def id(self) -> int: ...
    @property
    def plan(self) -> dict[str, Any] | None: ...
    @property
    def content_sha256(self) -> str | None: ...


class MapperCache:
    """Compiled plans by version id and content hash. Versions are immutable, so entries never
    go stale; the hash keeps a process that talks to two stores (the same ids, other plans)
    from answering one store's version with the other's plan."""

    def __init__(self, size: int = 512) -> None:
        self._size = size
        self._items: OrderedDict[tuple[int, str | None], Mapper] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, version: HasPlan) -> Mapper:
        key = (version.id, version.content_sha256)
        with self._lock:
            mapper = self._items.get(key)
            if mapper is not None:
                self._items.move_to_end(key)
                return mapper
        assert version.plan is not None
        mapper = compile_plan(plan_from_data(version.plan))
        with self._lock:
            self._items[key] = mapper
            while len(self._items) > self._size:
                self._items.popitem(last=False)
        return mapper
