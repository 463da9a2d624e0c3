"""What every command of one ``detnat`` invocation shares: who runs it, the store, files.

- :class:`Invocation` is put on the Typer context (``ctx.obj``) by the top-level callback: the
  operator ``--as NAME`` names lives there, so nothing of one invocation outlives it (two
  invocations in one process, as in the tests, never see each other's operator).
- :func:`store_session` is the one unit of work of a command against the store.
- :func:`new_binary_file` (and its text view :func:`new_file`) is the one way a command writes a
  result file: beside the target, renamed into place at the end, never over an existing file
  unless ``--force`` (evidence, batch outputs, exports, checkpoints, charts, datapath files).
- :func:`print_bad_rows` prints the ``FILE:LINE: message`` lines of a batch and the tail.
- :func:`parse_endpoint` reads ``ADDRESS:PORT``; :func:`request_id` names one store action.

The store is imported only when a command reaches it: ``detnat reverse --plan`` starts without
SQLAlchemy (:func:`lazy_module`).
"""

from __future__ import annotations

import getpass
import importlib.util
import io
import os
import sys
import tempfile
import types
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, Protocol, TextIO

import typer

from detnat.errors import InvalidInput, Unavailable

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from detnat.engine import Plan
    from detnat.service.audit import Actor


def lazy_module(name: str) -> types.ModuleType:
    """``name``, executed on first attribute access (importlib's LazyLoader recipe).

    The store and service layers pull in SQLAlchemy and friends; ``detnat reverse --plan`` needs
    none of them, so the CLI starts without them and loads them when a store command runs.
    """
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.find_spec(name)
    assert spec is not None and spec.loader is not None, name
    loader = importlib.util.LazyLoader(spec.loader)
    spec.loader = loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    loader.exec_module(module)
    return module


# -- the operator ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invocation:
    """One run of ``detnat``: ``operator_name`` is what ``--as NAME`` gave (None: the OS user)."""

    operator_name: str | None = None


def operator(ctx: typer.Context) -> Actor:
    """The local operator: admin rights, recorded under ``--as NAME`` or the OS user name."""
    from detnat.service.audit import local_operator

    invocation = ctx.find_object(Invocation)  # absent when a test mounts a sub-app alone
    name = invocation.operator_name if invocation is not None else None
    return local_operator(name or getpass.getuser())


def request_id() -> str:
    return "cli-" + uuid.uuid4().hex


# -- the store -------------------------------------------------------------------------------------


@contextmanager
def store_session() -> Iterator[Session]:
    """One unit of work on the configured (or embedded) store, for one CLI command: committed when
    the block succeeds (the edge commits; the service only flushes)."""
    from sqlalchemy.exc import OperationalError

    from detnat.settings import get_settings
    from detnat.store.db import make_engine, make_sessions, unit_of_work
    from detnat.store.embedded import database_url

    engine = make_engine(database_url(get_settings()), pool_size=1)
    try:
        with unit_of_work(make_sessions(engine)) as session:
            yield session
    except OperationalError as exc:
        raise Unavailable(f"the database is unreachable: {str(exc.orig).strip()}") from None
    finally:
        engine.dispose()


def load_plans(*specs: str) -> list[tuple[Plan, dict[str, object]]]:
    """Each spec is a plan file (if it exists) or REALM[@VERSION] in the store; with the source
    of each (``{"file": ...}`` or the realm and version)."""
    from detnat.planfile import read_plan

    out: list[tuple[Plan, dict[str, object]] | None] = []
    refs = []
    for n, spec in enumerate(specs):
        if Path(spec).exists():
            out.append((read_plan(spec), {"file": spec}))
        else:
            from detnat.service.capacity import parse_ref

            refs.append((n, parse_ref(spec, field=spec)))
            out.append(None)
    if refs:
        from detnat.service.capacity import plan_of

        with store_session() as session:
            for n, ref in refs:
                out[n] = plan_of(session, ref, field=specs[n])
    return [item for item in out if item is not None]


# -- inputs ----------------------------------------------------------------------------------------


def parse_endpoint(text: str) -> tuple[str, int]:
    """``192.0.2.1:80`` (or ``[addr]:port``) -> (address text, port).

    >>> parse_endpoint("192.0.2.1:80")
    ('192.0.2.1', 80)
    >>> parse_endpoint("[2001:db8::1]:443")
    ('2001:db8::1', 443)
    """
    if text.startswith("["):
        address, sep, port_text = text[1:].partition("]:")
    else:
        address, sep, port_text = text.rpartition(":")
    if not sep or not address:
        raise InvalidInput(f"{text!r} is not ADDRESS:PORT", field="query")
    if (
        not port_text.isascii()
        or not port_text.isdigit()
        or (len(port_text) > 1 and port_text[0] == "0")
    ):
        raise InvalidInput(f"{port_text!r} is not a port number", field="query")
    port = int(port_text)
    if port > 65535:
        raise InvalidInput(f"port {port} is outside 0-65535", field="query")
    return address, port


class BadRow(Protocol):
    @property
    def line(self) -> int: ...
    @property
    def message(self) -> str: ...


def print_bad_rows(
    source: Path, bad_rows: Sequence[BadRow], count: int, *, limit: int = 20
) -> None:
    """``detnat: FILE:LINE: message`` for the first ``limit`` bad rows, then how many more."""
    for bad in bad_rows[:limit]:
        print(f"detnat: {source}:{bad.line}: {bad.message}", file=sys.stderr)
    if count > limit:
        print(f"detnat: ... and {count - limit} more bad rows", file=sys.stderr)


# -- result files ----------------------------------------------------------------------------------

OVERWRITE_HINT = "pass --force to overwrite it"
KEPT_HINT = "evidence is never overwritten silently"  # evidence files, audit checkpoints, exports


def refuse_existing(path: Path, force: bool, *, hint: str = OVERWRITE_HINT) -> None:
    """Refuse early, before any work, to replace ``path`` (unless ``force``)."""
    if not force and path.exists():
        raise InvalidInput(f"already exists; {hint}", field=str(path))


@contextmanager
def new_binary_file(path: Path, *, force: bool, hint: str = OVERWRITE_HINT) -> Iterator[BinaryIO]:
    """Write ``path`` through a temporary file beside it, renamed into place when the block ends
    without an error: a reader never sees a half-written file, and a failure leaves none behind.

    Without ``force`` an existing ``path`` is refused, also one that appeared while the block ran
    (the rename is then a hard link, which never replaces a file).
    """
    refuse_existing(path, force, hint=hint)
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".detnat-")
    except OSError as exc:
        raise InvalidInput(f"cannot write: {exc.strerror}", field=str(path)) from None
    try:
        with os.fdopen(fd, "wb") as sink:
            yield sink
        _move_into_place(tmp, path, force=force, hint=hint)
    except BaseException:
        os.unlink(tmp)
        raise


@contextmanager
def new_file(
    path: Path, *, force: bool, errors: str = "strict", hint: str = OVERWRITE_HINT
) -> Iterator[TextIO]:
    """:func:`new_binary_file` as UTF-8 text with ``\\n`` line ends."""
    with (
        new_binary_file(path, force=force, hint=hint) as raw,
        io.TextIOWrapper(raw, encoding="utf-8", errors=errors, newline="") as text,
    ):
        yield text


def _move_into_place(tmp: str, path: Path, *, force: bool, hint: str) -> None:
    if force:
        os.replace(tmp, path)
        return
    try:
        os.link(tmp, path)  # fails if path exists: never replaces a file that came meanwhile
    except FileExistsError:
        raise InvalidInput(f"already exists; {hint}", field=str(path)) from None
    except OSError:  # a file system without hard links: check, then rename
        refuse_existing(path, force, hint=hint)
        os.replace(tmp, path)
        return
    os.unlink(tmp)


def write_new(path: Path, text: str, *, force: bool, hint: str = OVERWRITE_HINT) -> None:
    """:func:`new_file` with all of its ``text`` at hand."""
    with new_file(path, force=force, hint=hint) as sink:
        sink.write(text)
