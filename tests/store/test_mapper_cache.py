"""The compiled-plan cache is keyed by version id *and* content hash: two stores (a test run's
throwaway databases, a server pointed at a restored copy) number their versions alike, and a
cache keyed by the id alone answered one store's version 1 with the other's plan."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from detnat.service.plans import MapperCache, content_hash
from tests.store.conftest import small_plan


@dataclass(frozen=True)
class _Version:
    id: int
    plan: dict[str, Any] | None
    content_sha256: str | None


def _version(pool: str) -> _Version:
    plan = small_plan(pool).to_dict()
    return _Version(1, plan, content_hash(plan))


def test_the_same_version_id_in_two_stores_gets_each_its_own_plan() -> None:
    cache = MapperCache()
    here, there = _version("198.18.9.0/30"), _version("203.0.113.0/30")
    assert cache.get(here) is cache.get(here)  # cached
    first_here = cache.get(here).reverse(0xC6120900, 1099)
    first_there = cache.get(there).reverse(0xCB007100, 1099)
    assert first_here.allocation is not None and first_there.allocation is not None
    assert first_here.allocation.public_ip == 0xC6120900
    assert first_there.allocation.public_ip == 0xCB007100
