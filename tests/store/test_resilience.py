"""The service over real HTTP while its database connections die (issue 10).

A uvicorn server in a thread serves the app against a database of its own; "a database restart" is
``pg_terminate_backend`` of every connection to that database (the shared server keeps running).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import psycopg
import pytest
import uvicorn
from sqlalchemy.engine import make_url

from api.app import create_app
from detnat.settings import Settings
from detnat.store.async_db import libpq_url
from detnat.store.db import make_engine, make_sessions
from tests.store.conftest import _admin_conninfo, make_tokens, throwaway_database

pytestmark = pytest.mark.postgres

POOL_SIZE = 3
QUERY = {"ip": "8.8.8.8", "port": 1100, "time": "2020-01-01T00:00:00Z", "case": "OPS-1"}


class _Errors(logging.Handler):
    """Every ERROR the server logs (uvicorn's and the app's)."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def messages(self) -> list[str]:
        return [
            f"{r.getMessage()} {r.exc_info[1] if r.exc_info else ''}".strip() for r in self.records
        ]


@dataclass
class Served:
    client: httpx.Client
    url: str
    tokens: dict[str, str]
    errors: _Errors

    def kill_connections(self) -> int:
        """Terminate every server process connected to the service's database."""
        name = make_url(self.url).database
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            row = admin.execute(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE datname = %s AND pid <> pg_backend_pid()",
                (name,),
            ).fetchone()
            assert row is not None
            # Wait (with a deadline) until they are gone, as after a restart.
            deadline = time.monotonic() + 10
            while admin.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (name,)
            ).fetchone() != (0,):
                assert time.monotonic() < deadline, "backends did not exit"
        return int(row[0])

    def lookup(self) -> httpx.Response:
        return self.client.post("/v1/lookups/reverse", json=QUERY, headers=self.auth("legal"))

    def auth(self, holder: str) -> dict[str, str]:
        return {"authorization": f"Bearer {self.tokens[holder]}"}

    def audited_lookups(self) -> int:
        with psycopg.connect(libpq_url(self.url)) as conn:
            row = conn.execute(
                "SELECT count(*) FROM audit_log WHERE action = 'lookup.reverse'"
            ).fetchone()
        assert row is not None
        return int(row[0])


@pytest.fixture
def served() -> Iterator[Served]:
    errors = _Errors()
    loggers = [logging.getLogger(n) for n in ("uvicorn.error", "uvicorn", "fastapi")]
    for logger in loggers:
        logger.addHandler(errors)
    with throwaway_database() as url:
        engine = make_engine(url)
        tokens = make_tokens(make_sessions(engine))
        engine.dispose()
        app = create_app(Settings(database_url=url, database_pool_size=POOL_SIZE))
        config = uvicorn.Config(app, host="127.0.0.1", port=0, log_config=None, lifespan="on")
        server = uvicorn.Server(config)
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 20
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
                yield Served(client, url, tokens, errors)
        finally:
            server.should_exit = True
            thread.join(20)
            for logger in loggers:
                logger.removeHandler(errors)


def test_lookups_answer_after_every_database_connection_was_killed(served: Served) -> None:
    # Round-robin over the FIFO pool: every slot gets its connection.
    assert [served.lookup().status_code for _ in range(2 * POOL_SIZE)] == [200] * 2 * POOL_SIZE
    before = served.audited_lookups()
    assert served.kill_connections() >= POOL_SIZE
    answers = [served.lookup() for _ in range(2 * POOL_SIZE)]
    assert [r.status_code for r in answers] == [200] * 2 * POOL_SIZE, answers[0].text
    # Each answer has its own audit entry, written once.
    assert served.audited_lookups() == before + len(answers)
    assert len({r.json()["answer_id"] for r in answers}) == len(answers)


def test_other_routes_answer_after_every_database_connection_was_killed(served: Served) -> None:
    for _ in range(3):
        assert served.client.get("/v1/realms", headers=served.auth("admin")).status_code == 200
    served.kill_connections()
    shown = [served.client.get("/v1/realms", headers=served.auth("admin")) for _ in range(3)]
    assert [r.status_code for r in shown] == [200] * 3, shown[0].text
    assert served.client.get("/readyz").status_code == 200


def _plan(inside: str, pool: str) -> dict[str, object]:
    return {
        "algorithm": "block",
        "inside": {"prefixes": [inside], "subscriber_prefix_length": 32},
        "outside": {"prefixes": [pool]},
        "block": {"ratio": 4096},
    }


def test_a_connection_dying_while_a_response_streams_is_no_server_error(served: Served) -> None:
    # 262,144 rows (~10 MB): more than the sockets buffer, so the server is still sending (and
    # the request's session still open) when its database connection is killed.
    body = {
        "old": {"plan": _plan("10.0.0.0/14", "198.18.0.0/26")},
        "new": {"plan": _plan("10.0.0.0/14", "198.18.0.64/26")},
    }
    headers = {**served.auth("planner"), "accept": "text/csv"}
    with served.client.stream("POST", "/v1/plans/diff", json=body, headers=headers) as streamed:
        assert streamed.status_code == 200
        served.kill_connections()
        rows = sum(chunk.count(b"\n") for chunk in streamed.iter_bytes())
    assert rows == (1 << 18) + 1
    assert served.client.get("/v1/realms", headers=served.auth("admin")).status_code == 200
    assert served.errors.messages() == []


def test_a_connection_dying_while_a_batch_streams_is_no_server_error(served: Served) -> None:
    rows = 300_000  # ~14 MB of answers: still streaming when the connections are killed
    batch = "ip,port,time\n" + "8.8.8.8,1100,2020-01-01T00:00:00Z\n" * rows
    headers = {**served.auth("legal"), "content-type": "text/csv"}
    url = "/v1/lookups/reverse/batch?case=OPS-2"
    with served.client.stream("POST", url, content=batch.encode(), headers=headers) as streamed:
        assert streamed.status_code == 200
        answer_id = int(streamed.headers["x-detnat-answer-id"])
        served.kill_connections()
        lines = sum(chunk.count(b"\n") for chunk in streamed.iter_bytes())
    assert lines == rows + 1
    assert served.errors.messages() == []
    # The batch's audit entry was committed before the first byte.
    with psycopg.connect(libpq_url(served.url)) as conn:
        found = conn.execute("SELECT action FROM audit_log WHERE seq = %s", (answer_id,))
        assert found.fetchone() == ("lookup.reverse_batch",)
