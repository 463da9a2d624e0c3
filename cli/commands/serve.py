"""``detnat serve``: the REST API and the pages, under uvicorn."""

from __future__ import annotations

import os
import signal
from typing import Annotated, Any

import typer

from cli.output import Integer, guarded
from detnat.errors import Unavailable
from detnat.settings import get_settings

app = typer.Typer()


@app.command()
@guarded
def serve(
    host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", click_type=Integer(min=0, max=65535))] = 8000,
    workers: Annotated[int, typer.Option("--workers", click_type=Integer(min=1))] = 1,
    access_log: Annotated[
        bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")
    ] = False,
) -> None:
    """Run the REST API (uvicorn)."""
    import uvicorn

    from detnat.store.embedded import database_url

    settings = get_settings()
    # Stopped by SIGTERM (systemd, docker, kill), uvicorn shuts down and then raises the signal
    # again: with Python's default action the process would end without its exit handlers, and
    # the embedded Postgres would run on. As an exception, they run (exit status 128 + 15).
    signal.signal(signal.SIGTERM, _exit_on)
    database_url(settings)  # start/migrate the store once, before the workers
    # Rate limits are kept per worker: give each its share of the configured one.
    os.environ["DETNAT_RATE_LIMIT_PER_SECOND"] = str(settings.rate_limit_per_second / workers)
    os.environ["DETNAT_RATE_LIMIT_BURST"] = str(max(1.0, settings.rate_limit_burst / workers))
    config = uvicorn.Config(
        "api.app:app_from_environment",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level="info",
        access_log=access_log,  # identity lookups are in the audit log either way
    )
    if workers == 1:
        uvicorn.Server(config).run()
        return
    from uvicorn.supervisors import Multiprocess

    Multiprocess(config, sockets=[_listening_socket(host, port)]).run()


def _exit_on(signum: int, frame: object) -> None:
    raise SystemExit(128 + signum)


def _listening_socket(host: str, port: int) -> Any:
    """The workers' shared listener, made with ``IPPROTO_TCP`` so accepted connections get
    ``TCP_NODELAY`` (uvicorn's own leaves proto 0, and every keep-alive response then waits
    ~40 ms on the client's delayed ACK: Kludex/uvicorn#3149)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock
