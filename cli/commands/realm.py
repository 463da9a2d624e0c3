"""``detnat realm``: NAT realms, each with its own timeline of plan versions."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import JsonOpt, emit_json, guarded

if TYPE_CHECKING:
    from detnat.service import plans, times
else:  # loaded when a command runs (CLI start-up time)
    plans = runtime.lazy_module("detnat.service.plans")
    times = runtime.lazy_module("detnat.service.times")

app = typer.Typer(help="NAT realms: each has its own timeline of plan versions.")


@app.command("create")
@guarded
def realm_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Argument(help="Realm name, e.g. aftr-fra-1.")],
    session_drain: Annotated[
        str, typer.Option("--session-drain", help="How long old sessions live after a change.")
    ] = "2h",
    description: Annotated[str, typer.Option("--description")] = "",
    single_approver: Annotated[
        bool,
        typer.Option(
            "--single-approver",
            help="Labs only: versions take effect without a second admin's approval.",
        ),
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Create a realm (four-eyes publishing unless --single-approver)."""
    drain = times.parse_duration(session_drain, field="--session-drain")
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        realm = plans.create_realm(
            session,
            name,
            session_drain=drain,
            by=actor,
            request_id=runtime.request_id(),
            description=description,
            single_approver=single_approver,
        )
        shown = plans.realm_json(session, realm)
    emit_json(shown) if json_out else print(f"realm {name} created")


@app.command("list")
@guarded
def realm_list(json_out: JsonOpt = False) -> None:
    """All realms."""
    with runtime.store_session() as session:
        for realm in plans.list_realms(session):
            shown = plans.realm_json(session, realm)
            if json_out:
                emit_json(shown)
            else:
                print(f"{realm.name}  drain {shown['session_drain']}  versions {shown['versions']}")


@app.command("show")
@guarded
def realm_show(name: str, json_out: JsonOpt = False) -> None:
    """One realm."""
    with runtime.store_session() as session:
        shown = plans.realm_json(session, plans.get_realm(session, name))
    if json_out:
        emit_json(shown)
    else:
        for key, value in shown.items():
            print(f"{key:<22} {value}")
