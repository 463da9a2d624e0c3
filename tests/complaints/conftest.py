"""The store's fixtures (a migrated throwaway Postgres database, tokens, an in-process API), and a
world for the complaints: one realm whose plan changed ten days before T0."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

import pytest

from detnat.engine import Mapper, compile_plan
from detnat.service import plans
from detnat.service.audit import Actor
from detnat.store.db import SessionFactory, unit_of_work
from tests.store.conftest import (  # noqa: F401  (fixtures)
    T0,
    api,
    api_tokens,
    clock_at,
    database_url,
    engine,
    fresh_pool,
    realm_name,
    sessions,
    small_plan,
)

V1_FROM = T0 - timedelta(days=30)
V2_FROM = T0 - timedelta(days=10)


@dataclass(frozen=True)
class World:
    realm: str
    pool: str
    ip: str  # the pool's first address
    v1: Mapper  # in force from V1_FROM
    v2: Mapper  # in force from V2_FROM (a different sharing: other subscribers per port)


@pytest.fixture
def world(sessions: SessionFactory, realm_name: str) -> World:  # noqa: F811
    pool = fresh_pool()
    first, second = small_plan(pool), small_plan(pool, ratio=8192, inside="10.0.0.0/17")
    with unit_of_work(sessions) as s:
        plans.create_realm(
            s, realm_name, by=Actor("tester", "admin"), session_drain=timedelta(0),
            single_approver=True,
        )  # fmt: skip
    for plan, at in ((first, V1_FROM), (second, V2_FROM)):
        with unit_of_work(sessions) as s:
            plans.publish(
                s, realm_name, plan, effective_from=at, reason="CHG", by=Actor("t", "admin"),
                clock=clock_at(V1_FROM - timedelta(days=1)),
            )  # fmt: skip
    return World(realm_name, pool, pool.split("/")[0], compile_plan(first), compile_plan(second))
