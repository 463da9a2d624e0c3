"""The ``detnat`` command: the nouns and verbs of :mod:`cli.commands`, composed.

``detnat --as NAME`` names the operator of this one invocation (:class:`cli.runtime.Invocation`
on the Typer context); ``--version`` prints the version. Everything else is a command module.

A command's module, a verb's (``forward``, ``reverse``, ``serve``, ``annotate``) as a noun's
(``plan``, ``capacity``, ``datapath`` ...), is imported only when the command line names it, or
when ``--help`` lists them all: one ``detnat reverse`` does not pay for the imports and the Typer
introspection of forty commands it does not run, and ``detnat --version`` for none of them.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Iterator, MutableMapping
from contextlib import contextmanager
from typing import Annotated, Any

import typer
import typer.main
from typer import _click  # the Click that Typer vendors: the type of its commands

from cli.runtime import Invocation
from detnat import __version__

# The verbs, in the order of `detnat --help`, each with its module: a command of that module's
# `app` (`cli.commands.<module>.app`), at the top level.
VERBS = {"forward": "lookups", "reverse": "lookups", "serve": "serve", "annotate": "annotate"}
# The nouns, in the order of `detnat --help` (after the verbs); each is `cli.commands.<noun>.app`.
NOUNS = (
    "plan", "realm", "db", "token", "audit", "evidence", "snapshot", "capacity", "datapath",
    "complaints", "logs", "directory",
)  # fmt: skip


def _verb_command(name: str) -> _click.Command:
    """The Click command of one verb, built as ``app.add_typer(module.app)`` builds it."""
    module = importlib.import_module(f"cli.commands.{VERBS[name]}")
    for info in module.app.registered_commands:
        command = typer.main.get_command_from_info(
            info,
            pretty_exceptions_short=app.pretty_exceptions_short,
            rich_markup_mode=app.rich_markup_mode,
        )
        if command.name == name:
            return command
    raise KeyError(name)


def _noun_group(name: str) -> _click.Command:
    """The Click group of one noun, built as ``app.add_typer(module.app, name=name)`` builds it."""
    module = importlib.import_module(f"cli.commands.{name}")
    holder = typer.Typer()
    holder.add_typer(module.app, name=name)
    return typer.main.get_group_from_info(
        holder.registered_groups[0],
        pretty_exceptions_short=app.pretty_exceptions_short,
        suggest_commands=app.suggest_commands,
        rich_markup_mode=app.rich_markup_mode,
    )


class _Commands(MutableMapping[str, _click.Command]):
    """The top-level commands: each verb and noun built when looked up (and any command Typer
    built itself, first)."""

    def __init__(self, commands: MutableMapping[str, _click.Command]) -> None:
        self._built = dict(commands)
        self._names = [*commands, *(n for n in (*VERBS, *NOUNS) if n not in commands)]

    def __getitem__(self, name: str) -> _click.Command:
        if name not in self._built:
            if name in VERBS:
                self._built[name] = _verb_command(name)
            elif name in NOUNS:
                self._built[name] = _noun_group(name)
            else:
                raise KeyError(name)
        return self._built[name]

    def __setitem__(self, name: str, command: _click.Command) -> None:
        self._built[name] = command
        if name not in self._names:
            self._names.append(name)

    def __delitem__(self, name: str) -> None:
        self._names.remove(name)
        self._built.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter(self._names)

    def __len__(self) -> int:
        return len(self._names)


class _Detnat(typer.core.TyperGroup):
    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.commands = _Commands(self.commands)

    def make_context(
        self,
        info_name: str | None,
        args: list[str],
        parent: _click.Context | None = None,
        **extra: Any,
    ) -> _click.Context:
        with _one_line_usage_errors():
            return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: _click.Context) -> Any:
        with _one_line_usage_errors():
            return super().invoke(ctx)


@contextmanager
def _one_line_usage_errors() -> Iterator[None]:
    """A command line Click cannot parse (an unknown option, ``1e9`` for an integer) is one line
    on stderr and exit 2, as every other bad input is -- not a framed box of three lines."""
    try:
        yield
    except _click.exceptions.NoArgsIsHelpError:
        raise
    except _click.exceptions.UsageError as exc:
        where = f" (see {exc.ctx.command_path} --help)" if exc.ctx is not None else ""
        print(f"detnat: error: {exc.format_message()}{where}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None


app = typer.Typer(
    name="detnat",
    help="Who held public address A, port P, at time T? Deterministic CGNAT, DS-Lite and MAP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    cls=_Detnat,
)


def _version(value: bool) -> None:
    if value:
        print(f"detnat {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    ctx: typer.Context,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    as_: Annotated[
        str | None,
        typer.Option("--as", help="Record store actions under this name (default: OS user)."),
    ] = None,
) -> None:
    """detnat: deterministic NAT mapping, forward and reverse, now and at any time T."""
    ctx.obj = Invocation(operator_name=as_)
