"""The ``detnat`` command: the nouns and verbs of :mod:`cli.commands`, composed.

``detnat --as NAME`` names the operator of this one invocation (:class:`cli.runtime.Invocation`
on the Typer context); ``--version`` prints the version. Everything else is a command module.
"""

from __future__ import annotations

from typing import Annotated

import typer

from cli.commands import (
    audit,
    capacity,
    datapath,
    db,
    evidence,
    lookups,
    plan,
    realm,
    serve,
    token,
)
from cli.runtime import Invocation
from detnat import __version__

app = typer.Typer(
    name="detnat",
    help="Who held public address A, port P, at time T? Deterministic CGNAT, DS-Lite and MAP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
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


# The order is the order of `detnat --help`: the top-level verbs, then the nouns.
app.add_typer(lookups.app)  # forward, reverse
app.add_typer(serve.app)  # serve
app.add_typer(plan.app, name="plan")
app.add_typer(realm.app, name="realm")
app.add_typer(db.app, name="db")
app.add_typer(token.app, name="token")
app.add_typer(audit.app, name="audit")
app.add_typer(evidence.app, name="evidence")
app.add_typer(capacity.app, name="capacity")
app.add_typer(datapath.app, name="datapath")
