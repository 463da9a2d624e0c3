"""``detnat db``: the database of the plan store."""

from __future__ import annotations

import typer

from cli.output import guarded
from detnat.errors import DetnatError, Unavailable
from detnat.settings import get_settings

app = typer.Typer(help="The database of the plan store.")


@app.command("upgrade")
@guarded
def db_upgrade() -> None:
    """Apply the migrations (the embedded database migrates itself on first use)."""
    from detnat.store import migrate
    from detnat.store.embedded import database_url

    url = database_url(get_settings(), run_migrations=False)
    try:
        migrate.upgrade(url)
    except DetnatError:
        raise
    except Exception as exc:
        raise Unavailable(f"cannot migrate the database: {exc}") from None
    print(f"database at revision {migrate.head_revision()}")
