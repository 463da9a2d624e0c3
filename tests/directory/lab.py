"""The store the directory tests answer from: a database of their own with realm ``lab`` (the
small plan on 198.18.9.0/30 from a day before T0) and, when given, a directory ingested as CSV.

A database of its own: its intervals must not give other tests' answers an account.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from detnat.service import audit, directory, plans
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.store.conftest import make_tokens, small_plan, throwaway_database

T0 = datetime(2026, 3, 1, tzinfo=UTC)
OPS = audit.Actor("ops", "admin")


@dataclass
class Lab:
    url: str
    sessions: SessionFactory
    tokens: dict[str, str]


def ingest_csv(lab: Lab, text: str) -> directory.IngestSummary:
    """``text`` ingested as a ``csv`` directory file named dir.csv."""
    with unit_of_work(lab.sessions) as s:
        files = [directory.InputFile("dir.csv", text.encode())]
        return directory.ingest(s, OPS, "csv", files, tz=None, request_id="t")


@contextmanager
def lab_store() -> Iterator[Lab]:
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        sessions = make_sessions(engine)
        tokens = make_tokens(sessions)
        with unit_of_work(sessions) as s:
            plans.create_realm(s, "lab", by=OPS, session_drain=timedelta(0), single_approver=True)
            plans.publish(
                s,
                "lab",
                small_plan("198.18.9.0/30"),
                effective_from=T0 - timedelta(days=1),
                reason="LAB",
                by=OPS,
                clock=lambda: T0 - timedelta(days=2),
            )
        try:
            yield Lab(url, sessions, tokens)
        finally:
            engine.dispose()
