"""CLI commands against the plan store (realms, publishing, lookups at time T).

``register(app, plan_app)`` adds the store's commands; ``forward_at`` / ``reverse_at`` /
``reverse_batch_at`` answer lookups at an instant and return the exit code.
"""

from __future__ import annotations

from pathlib import Path

import typer

from detnat.errors import Unavailable


def _not_yet() -> Unavailable:
    return Unavailable(
        "lookups against the store (--at) are not available in this build; use --plan"
    )


def forward_at(
    queries: list[str],
    *,
    at: str,
    tz: str | None,
    realm: str | None,
    case: str | None,
    as_json: bool,
) -> int:
    raise _not_yet()


def reverse_at(
    queries: list[str],
    *,
    at: str,
    tz: str | None,
    tolerance: str | None,
    realm: str | None,
    case: str | None,
    as_json: bool,
) -> int:
    raise _not_yet()


def reverse_batch_at(
    batch: Path,
    output: Path | None,
    *,
    tz: str | None,
    tolerance: str | None,
    realm: str | None,
    case: str | None,
    as_json: bool,
    force: bool,
) -> int:
    raise _not_yet()


def register(app: typer.Typer, plan_app: typer.Typer) -> None:
    """Add the store's commands (realm, db, serve, plan publish/history/show/diff)."""
