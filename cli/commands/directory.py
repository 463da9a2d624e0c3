"""``detnat directory ingest``: read who held which inside prefix when, into the store (audited).

The CLI is the local operator (admin rights), recorded under ``detnat --as NAME`` or the OS user.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import JsonOpt, emit_json, guarded, read_input

if TYPE_CHECKING:
    from detnat.service import directory, times
else:  # loaded when a command runs (CLI start-up time)
    directory = runtime.lazy_module("detnat.service.directory")
    times = runtime.lazy_module("detnat.service.times")

app = typer.Typer(help="The subscriber directory: which account held a prefix when.")

MAX_FILE_BYTES = 4 << 30
SHOWN = 20  # refused records printed one by one; the rest are counted


@app.command("ingest")
@guarded
def directory_ingest(
    ctx: typer.Context,
    files: Annotated[list[Path], typer.Argument(help="Files to read (all of one format).")],
    fmt: Annotated[
        str,
        typer.Option(
            "--format", help="freeradius-detail, kea-lease6 (memfile CSV or forensic log), csv."
        ),
    ],
    tz: Annotated[
        str | None,
        typer.Option("--tz", help="The zone local times are written in (e.g. Europe/Berlin)."),
    ] = None,
    realm: Annotated[
        str | None,
        typer.Option(
            "--realm",
            help="The realm (NAT) these subscribers sit behind. Needed for private inside "
            "addresses (10/8, 100.64/10 ...) in a store of several realms: each NAT reuses them.",
        ),
    ] = None,
    interim: Annotated[
        str | None,
        typer.Option(
            "--interim",
            help="freeradius-detail: the NAS sends an Interim-Update at least this often "
            "(e.g. 15m); a session silent for longer ended one period after it was last heard.",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Parse the files, append their intervals, record one audit entry; print a summary."""
    period = times.parse_duration(interim, field="--interim") if interim else None
    read = [
        directory.InputFile(str(f), read_input(f, limit=MAX_FILE_BYTES, what="a directory file"))
        for f in files
    ]
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        done = directory.ingest(
            session,
            actor,
            fmt,
            read,
            tz=tz,
            realm=realm,
            interim=period,
            request_id=runtime.request_id(),
        )
    if json_out:
        emit_json(done.to_json())
        return
    for refused in done.refused[:SHOWN]:
        print(f"detnat: refused: {refused}", file=sys.stderr)
    if len(done.refused) > SHOWN:
        print(f"detnat: refused: {len(done.refused) - SHOWN} more", file=sys.stderr)
    print(
        f"ingest {done.ingest}: {done.records} records read, {done.intervals} intervals stored, "
        f"{done.duplicates} duplicates, {len(done.refused)} refused"
    )
