"""``detnat token``: API tokens, created once (only a hash is stored), listed, revoked."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import Integer, JsonOpt, emit_json, guarded

if TYPE_CHECKING:
    from detnat.service import tokens
    from detnat.store import repo
else:  # loaded when a command runs (CLI start-up time)
    tokens = runtime.lazy_module("detnat.service.tokens")
    repo = runtime.lazy_module("detnat.store.repo")

app = typer.Typer(help="API tokens: created once, stored as a hash, revoked.")


@app.command("create")
@guarded
def token_create(
    ctx: typer.Context,
    name: Annotated[str, typer.Option("--name", help="Whose token (a person or desk).")],
    role: Annotated[str, typer.Option("--role", help="abuse, legal, planner, admin, auditor")],
    expires: Annotated[
        str | None, typer.Option("--expires", help="Lifetime, e.g. 90d, 12h.")
    ] = None,
    person: Annotated[
        str | None,
        typer.Option("--person", help="Who holds it (default: --name); four eyes compares it."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Create a token and print it once (only its SHA-256 is stored)."""
    lifetime = tokens.parse_expiry(expires) if expires else None
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        secret, row = tokens.create_token(
            session,
            name=name,
            role=role,
            by=actor,
            person=person,
            expires=lifetime,
            request_id=runtime.request_id(),
        )
        shown = tokens.token_json(row)
    if json_out:
        emit_json({"token": secret, "id": shown["id"], "role": shown["role"]})
    else:
        print(secret)
        print(
            f"detnat: token {shown['id']} ({role}) for {name}; shown once, keep it safe",
            file=sys.stderr,
        )


@app.command("list")
@guarded
def token_list(json_out: JsonOpt = False) -> None:
    """Every token (never the token itself)."""
    with runtime.store_session() as session:
        rows = [tokens.token_json(t) for t in repo.tokens(session)]
    for shown in rows:
        if json_out:
            emit_json(shown)
        else:
            print(
                f"{shown['id']:<5} {shown['role']:<8} {shown['state']:<8} {shown['name']}  "
                f"expires {shown['expires_at'] or 'never'}"
            )


@app.command("revoke")
@guarded
def token_revoke(
    ctx: typer.Context,
    token_id: Annotated[int, typer.Argument(click_type=Integer())],
    json_out: JsonOpt = False,
) -> None:
    """Revoke a token (at once, on every worker)."""
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        row = tokens.revoke_token(session, token_id, by=actor, request_id=runtime.request_id())
        shown = tokens.token_json(row)
    emit_json(shown) if json_out else print(f"token {token_id} revoked")
