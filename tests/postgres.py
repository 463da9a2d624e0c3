"""The Postgres server the tests create their throwaway databases on, chosen once per session.

1. ``DETNAT_TEST_DATABASE_URL`` when it is set (a server URL; its database only serves to create
   ours);
2. else the local server at 127.0.0.1:5432 as user ``postgres``, when that port answers;
3. else one embedded Postgres (``pgserver``, the server ``detnat serve`` starts when no database
   is configured) in a temporary directory: started when a test first needs a database, shared
   by every test module of the session, stopped and deleted when the session ends. So
   ``./scripts/test`` needs no Postgres on the machine.

``DETNAT_TEST_POSTGRES_PORT`` replaces 5432, for testing only: the suite points it at a closed
port to run a few tests on the embedded fallback (``tests/store/test_embedded_fallback.py``).
The choice is the first line of pytest's header (``postgres: ...``).
"""

from __future__ import annotations

import os
import shutil
import socket
import tempfile
import warnings
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from detnat.store.db import normalise_url

URL_VARIABLE = "DETNAT_TEST_DATABASE_URL"
PORT_VARIABLE = "DETNAT_TEST_POSTGRES_PORT"
LOCAL_HOST = "127.0.0.1"
EMBEDDED_PREFIX = "detnat-tests-pg-"

# The embedded servers this process started: (server, its temporary directory). One at most.
_embedded: list[tuple[Any, Path]] = []
_failed: list[str] = []  # why the embedded server did not start: tried once per session


class ServerUnavailable(Exception):
    """No test server: the configured one is unreachable, or the embedded one did not start."""


def local_port() -> int:
    return int(os.environ.get(PORT_VARIABLE, "5432"))


def local_url() -> str:
    return f"postgresql+psycopg://postgres@{LOCAL_HOST}:{local_port()}/postgres"


@cache
def _local_answers() -> bool:
    try:
        with socket.create_connection((LOCAL_HOST, local_port()), timeout=2):
            return True
    except OSError:
        return False


def uses_embedded() -> bool:
    return not os.environ.get(URL_VARIABLE) and not _local_answers()


def describe() -> str:
    """Which server the tests use, in one line (passwords hidden)."""
    configured = os.environ.get(URL_VARIABLE)
    if configured:
        shown = make_url(normalise_url(configured)).render_as_string(hide_password=True)
        return f"postgres: {shown} (from {URL_VARIABLE})"
    if not uses_embedded():
        return f"postgres: the local server at {LOCAL_HOST}:{local_port()}"
    return (
        f"postgres: nothing answers at {LOCAL_HOST}:{local_port()} and {URL_VARIABLE} is unset: "
        "an embedded Postgres (pgserver) in a temporary directory, started on first use"
    )


@cache
def server_url() -> str:
    """The URL of the server's maintenance database (starting the embedded server if needed)."""
    configured = os.environ.get(URL_VARIABLE)
    if configured:
        return configured
    if not uses_embedded():
        return local_url()
    if _failed:
        raise ServerUnavailable(_failed[0])
    try:
        return normalise_url(_start_embedded())
    except ServerUnavailable as exc:
        _failed.append(str(exc))
        raise


def url_of(database: str) -> str:
    """The URL of one database on the test server."""
    url = make_url(normalise_url(server_url())).set(database=database)
    return url.render_as_string(hide_password=False)


def admin_conninfo() -> str:
    """libpq's form of :func:`server_url`, to create and drop databases with psycopg."""
    url = make_url(normalise_url(server_url()))
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def _start_embedded() -> str:
    directory = Path(tempfile.mkdtemp(prefix=EMBEDDED_PREFIX))
    path = os.environ.get("PATH", "")
    try:
        with warnings.catch_warnings():
            # platformdirs warns when XDG_RUNTIME_DIR is unset (pgserver keeps its lock there).
            warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
            import pgserver

        if os.geteuid() == 0:
            # As root pgserver runs Postgres as a user it makes with useradd, in /usr/sbin.
            os.environ["PATH"] = os.pathsep.join([path, "/usr/sbin", "/sbin"])
        # pgserver takes a lock shared by every pgserver on the machine: the first start (initdb)
        # can wait for others. "delete": stopping it removes the data folder.
        server = pgserver.get_server(directory / "pgdata", cleanup_mode="delete")  # type: ignore[attr-defined]
    except Exception as exc:
        shutil.rmtree(directory, ignore_errors=True)
        raise ServerUnavailable(
            f"cannot start the embedded Postgres in {directory}: {exc!r}; start a Postgres at "
            f"{LOCAL_HOST}:{local_port()} or set {URL_VARIABLE}"
        ) from exc
    finally:
        os.environ["PATH"] = path
    _embedded.append((server, directory))
    uri: str = server.get_uri()
    return uri


def stop_embedded() -> list[str]:
    """Stop and delete the embedded server, if this session started one; what was done."""
    done = []
    while _embedded:
        server, directory = _embedded.pop()
        server.cleanup()
        shutil.rmtree(directory, ignore_errors=True)
        done.append(f"postgres: stopped the embedded server and removed {directory}")
    return done
