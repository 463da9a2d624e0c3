"""Fixtures of the log tests: a store of their own, realms, and events made by hand.

Events are built directly (``LogEvent``), as a parser would yield them, so these tests do not
depend on any format's parser; ``lines`` renders them as the lines they stand for.
"""

from __future__ import annotations

import io
import itertools
import uuid
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime, timedelta

import pytest
from typer.testing import CliRunner

from detnat.logs.events import EventKind, LineRef, LogEvent
from detnat.logs.formats import ParseOptions
from detnat.service import audit, logs, plans
from detnat.store.db import SessionFactory, make_engine, make_sessions, unit_of_work
from tests.store.conftest import throwaway_database

T0 = datetime(2026, 3, 14, 20, 0, 0, tzinfo=UTC)
T0_US = (T0 - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1)
OPS = audit.Actor("ops", "admin")
_names = itertools.count(1)


@pytest.fixture(scope="session")
def sessions() -> Iterator[SessionFactory]:
    with throwaway_database() as url:
        engine = make_engine(url, pool_size=2)
        yield make_sessions(engine)
        engine.dispose()


@pytest.fixture(scope="session")
def database_url(sessions: SessionFactory) -> str:
    bind = sessions.kw["bind"]
    return bind.url.render_as_string(hide_password=False)


@pytest.fixture(autouse=True)
def made_log_format(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' own log format (``test-made``) is one detnat reads: the lines :func:`ingest`
    stores in it are read again in it when an evidence file is verified."""
    from detnat.logs import formats
    from tests.logs import made_format

    monkeypatch.setitem(formats.FORMATS, made_format.NAME, made_format.TARGET)


@pytest.fixture
def cli(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    """The CLI over this store (the tests' own log format registered: ``made_log_format``)."""
    from detnat.settings import get_settings

    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    yield CliRunner()
    get_settings.cache_clear()


def new_realm(sessions: SessionFactory) -> str:
    name = f"logs-{next(_names)}-{uuid.uuid4().hex[:6]}"
    with unit_of_work(sessions) as s:
        plans.create_realm(s, name, session_drain=timedelta(0), by=OPS, single_approver=True)
    return name


@pytest.fixture
def realm(sessions: SessionFactory) -> str:
    return new_realm(sessions)


def line_of(
    kind: EventKind,
    at_us: int,
    inside: str,
    public: str,
    first: int,
    last: int,
    step: int = 1,
    protocol: str | None = None,
) -> bytes:
    """The line an event stands for (the csv shape: time,event,subscriber,public,first,last)."""
    fields = [
        str(at_us),
        kind.value,
        inside,
        public,
        str(first),
        str(last),
        str(step),
        protocol or "",
    ]
    return (",".join(fields) + "\n").encode()


def event(
    kind: EventKind,
    at_us: int,
    inside: str,
    public: str,
    first: int,
    last: int,
    *,
    step: int = 1,
    protocol: str | None = None,
    file: str = "made.log",
    line: int = 1,
) -> LogEvent:
    raw = line_of(kind, at_us, inside, public, first, last, step, protocol)
    return LogEvent(
        kind, at_us, inside, public, first, last, protocol, LineRef.of(file, line, raw), step
    )


def as_file(
    events: Sequence[LogEvent], name: str = "made.log"
) -> tuple[logs.Reading, list[LogEvent]]:
    """A reading over the lines of ``events`` and the events renumbered as read from it."""
    raws = [
        line_of(
            e.kind, e.at_us, e.inside, e.public, e.port_first, e.port_last, e.port_step, e.protocol
        )
        for e in events
    ]
    reading = logs.Reading(io.BytesIO(b"".join(raws)), name=name)
    renumbered = [
        LogEvent(
            e.kind,
            e.at_us,
            e.inside,
            e.public,
            e.port_first,
            e.port_last,
            e.protocol,
            LineRef.of(name, n, raw),
            e.port_step,
        )
        for n, (e, raw) in enumerate(zip(events, raws, strict=True), start=1)
    ]
    return reading, renumbered


def feed(reading: logs.Reading, events: Sequence[LogEvent]) -> Iterator[LogEvent]:
    """The events, each yielded after its line was read (as a parser does)."""
    lines = reading.lines()
    for e in events:
        next(lines)
        yield e
    for _ in lines:
        pass


def ingest(
    sessions: SessionFactory,
    realm: str,
    events: Sequence[LogEvent],
    *,
    name: str = "made.log",
    hold: timedelta | None = None,
    interim: timedelta | None = None,
    by: audit.Actor = OPS,
) -> logs.IngestSummary:
    from tests.logs import made_format

    reading, renumbered = as_file(events, name)
    with unit_of_work(sessions) as s:
        return logs.ingest(
            s,
            realm,
            feed(reading, renumbered),
            reading,
            fmt=made_format.NAME,  # the lines line_of writes
            options=ParseOptions(),
            by=by,
            request_id="test",
            log_hold=hold,
            log_interim=interim,
        )


from tests.store.conftest import api, api_tokens  # noqa: E402,F401 - the API over this store
