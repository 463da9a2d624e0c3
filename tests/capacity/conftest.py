"""Helpers for the capacity tests: small plans as data and files, and a CLI with the commands.

The store's fixtures (a migrated throwaway Postgres database) are re-exported for the tests that
read realm versions; every other capacity test needs no database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import typer
import yaml

from cli.commands import capacity, plan
from detnat.engine import Mapper, compile_plan
from detnat.planfile import plan_from_data
from tests.store.conftest import api_tokens, database_url, engine, sessions  # noqa: F401  (fixtures)


def block_plan(
    *,
    inside: list[str] | None = None,
    outside: list[str] | None = None,
    size: int | None = None,
    ratio: int | None = None,
    assignment: str = "sequential",
    dynamic_blocks: int = 0,
    inside_exclude: list[str] | None = None,
    outside_exclude: list[str] | None = None,
    ports: dict[str, Any] | None = None,
    static: list[dict[str, str]] | None = None,
    prefix_length: int = 32,
) -> dict[str, Any]:
    """A block plan as plan-file data (defaults: 10.0.0.0/24 onto 192.0.2.0/30, ratio 64)."""
    block: dict[str, Any] = {"assignment": assignment, "dynamic_blocks": dynamic_blocks}
    if size is not None:
        block["size"] = size
    else:
        block["ratio"] = ratio or 64
    data: dict[str, Any] = {
        "algorithm": "block",
        "inside": {
            "prefixes": inside or ["10.0.0.0/24"],
            "subscriber_prefix_length": prefix_length,
            "exclude": inside_exclude or [],
        },
        "outside": {"prefixes": outside or ["192.0.2.0/30"], "exclude": outside_exclude or []},
        "block": block,
    }
    if ports is not None:
        data["ports"] = ports
    if static is not None:
        data["static"] = static
    return data


def compiled(data: dict[str, Any]) -> Mapper:
    return compile_plan(plan_from_data(data))


def write_plan(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(data))
    return path


@pytest.fixture
def cli() -> typer.Typer:
    """A ``detnat``-like app with only the plan and capacity commands (as cli.main has them)."""
    app = typer.Typer()

    @app.callback()
    def main() -> None:
        """detnat (capacity commands only)."""

    app.add_typer(plan.app, name="plan")
    app.add_typer(capacity.app, name="capacity")
    return app
