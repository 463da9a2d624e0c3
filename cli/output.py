"""How the CLI speaks: exit codes, the one error line, JSON Lines, ranges and figures for people."""

from __future__ import annotations

import functools
import json
import os
import re
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any, ParamSpec, TypeVar

import typer
from typer._click import types as click_types  # the Click that Typer vendors

from detnat import strictjson
from detnat.errors import (
    DetnatError,
    InvalidInput,
    outcome_of,
)

# 0 answered; 1 internal error; 2 invalid input; 3 not found; 4 conflict (or datapath drift);
# 5 unavailable; 6 a broken hash-chain link (audit / evidence verify); 7 not allowed.
# The store commands' ``--json``: one JSON object per line.
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (one object per line).")]


def _decimal(value: object) -> int:
    """``value`` as written in ASCII decimal digits (an optional ``-``, at most 18 digits)."""
    if isinstance(value, int):
        return value
    text = str(value)
    digits = text[1:] if text.startswith("-") else text
    if not (0 < len(digits) <= 18 and digits.isascii() and digits.isdigit()):
        raise ValueError(text)
    return int(text)


class Integer(click_types.IntRange):
    """An integer argument or option: ASCII digits only. Click's ``INT`` is Python's ``int()``,
    which reads ``١`` (Arabic-Indic), ``１`` (fullwidth), ``1_000`` and `` 7 `` as numbers: a
    version to approve or a port to listen on that the operator did not type in plain digits is
    refused, not read. Give every ``int`` parameter ``click_type=Integer(...)`` (with its bounds:
    Typer's ``min=`` is not applied beside a ``click_type``)."""

    name = "integer"
    _number_class = staticmethod(_decimal)  # type: ignore[assignment]


_REAL = re.compile(r"-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][-+]?[0-9]{1,3})?")


def _real(value: object) -> float:
    """``value`` as written in ASCII: digits, a point, an exponent (no ``nan``, ``inf``, ``_``)."""
    if isinstance(value, float | int):
        return float(value)
    text = str(value)
    if len(text) > 40 or not text.isascii() or _REAL.fullmatch(text) is None:
        raise ValueError(text)
    return float(text)


class Real(click_types.FloatParamType):
    """A number option (a share, a fraction): ASCII digits only, as :class:`Integer`."""

    name = "number"
    _number_class = staticmethod(_real)  # type: ignore[assignment]


EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_INVALID = 2
EXIT_NOT_FOUND = 3
EXIT_CONFLICT = 4
EXIT_UNAVAILABLE = 5
EXIT_BROKEN = 6
EXIT_FORBIDDEN = 7


def exit_code_for(error: DetnatError) -> int:
    """The exit code of ``error``'s kind (the one table: :data:`detnat.errors.OUTCOMES`)."""
    return outcome_of(error).exit_code


def fail_line(error: DetnatError) -> None:
    """The one clear line on stderr."""
    text = str(error).replace("\n", " ").replace("\r", " ")
    print(f"detnat: error: {text}", file=sys.stderr)


def _driver_error(exc: Exception) -> DetnatError | None:
    """A database driver error that escaped the store's unit of work, as the store translates it
    (loaded only then: ``--plan`` commands never import the store)."""
    if type(exc).__module__.partition(".")[0] not in ("sqlalchemy", "psycopg"):
        return None
    from detnat.store.repo import domain_error

    return domain_error(exc)


P = ParamSpec("P")
R = TypeVar("R")


def guarded(command: Callable[P, R]) -> Callable[P, R]:
    """Turn domain errors into one line and an exit code; hide tracebacks of the unexpected."""

    @functools.wraps(command)
    def run(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            _check_text(kwargs)
            return command(*args, **kwargs)
        except DetnatError as exc:
            fail_line(exc)
            raise typer.Exit(exit_code_for(exc)) from None
        except (typer.Exit, typer.Abort, KeyboardInterrupt):
            raise
        except BrokenPipeError:
            # The reader went away (`detnat plan table ... | head`): not our failure.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_OK) from None
        except Exception as exc:
            if os.environ.get("DETNAT_DEBUG"):
                raise
            translated = _driver_error(exc)
            if translated is not None:
                fail_line(translated)
                raise typer.Exit(exit_code_for(translated)) from None
            # One line: SQLAlchemy's errors go on with the statement and its parameters.
            first = (str(exc).splitlines() or [""])[0]
            print(
                f"detnat: internal error: {type(exc).__name__}: {first} "
                "(set DETNAT_DEBUG=1 for the traceback)",
                file=sys.stderr,
            )
            raise typer.Exit(EXIT_INTERNAL) from None

    return run


def _check_text(arguments: dict[str, object]) -> None:
    """Refuse argument text that is not UTF-8: Python hands over the bytes it cannot decode as
    lone surrogates, which no store, log or output can hold (paths may have them: they are not
    text)."""
    for name, value in arguments.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str) and not _is_utf8(item):
                raise InvalidInput(f"{item!r} is not valid UTF-8 text", field=name)


def _is_utf8(text: str) -> bool:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def read_input(path: Path, *, limit: int, what: str) -> bytes:
    """The bytes of an input file, refused past ``limit`` bytes: a device such as ``/dev/zero``
    or a runaway pipe never ends, so it is never read whole."""
    try:
        with path.open("rb") as source:
            data = source.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read {what}: {exc.strerror}", field=str(path)) from None
    if len(data) > limit:
        raise InvalidInput(f"larger than {limit} bytes: not {what}", field=str(path))
    return data


def read_json_input(path: Path, *, limit: int, what: str) -> Any:
    """A JSON input file, size-bounded and read strictly (:mod:`detnat.strictjson`)."""
    return strictjson.loads(read_input(path, limit=limit, what=what), field=str(path))


def emit_json(obj: object) -> None:
    """One JSON object per line (JSON Lines), flushed so pipelines see answers as they come."""
    sys.stdout.write(json.dumps(obj, separators=(",", ":"), ensure_ascii=False) + "\n")
    sys.stdout.flush()


def error_json(query: str, error: DetnatError) -> dict[str, object]:
    return {
        "query": query,
        "status": "error",
        "error": {"code": error.code, "field": error.field, "message": error.message},
    }


def ranges_text(ranges: Sequence[Sequence[int]], *, limit: int = 6) -> str:
    """``1054-1068`` / ``1232-1235, 2256-2259, ... 64720-64723 (63 ranges, 252 ports)``."""
    parts = [f"{a}-{b}" if a != b else f"{a}" for a, b in ranges]
    count = sum(b - a + 1 for a, b in ranges)
    if len(parts) > limit:
        shown = ", ".join([*parts[: limit - 1], "...", parts[-1]])
        return f"{shown} ({len(parts)} ranges, {count} ports)"
    suffix = f" ({count} ports)" if len(parts) > 1 else ""
    return ", ".join(parts) + suffix


def figure_text(value: object) -> str:
    """A figure for people: ``-`` for none, thousands separated, small shares readable.

    >>> [figure_text(v) for v in (None, 0.0, 0.004, 0.25, 12345.6, 65536, "auto")]
    ['-', '0', '4.00e-03', '0.2500', '12,346', '65,536', 'auto']
    """
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 0.01:
            return f"{value:.2e}"
        if abs(value) < 1:
            return f"{value:.4f}"
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)
