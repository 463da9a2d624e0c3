"""``detnat snapshot``: export the plan versions of a period as one hashed file; verify one offline.

``export`` is an identity operation (it lets workers name subscribers): it needs ``--case`` and is
in the audit log, with the snapshot's SHA-256, before the file is renamed into place.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import EXIT_BROKEN, EXIT_OK, JsonOpt, emit_json, guarded, read_input
from detnat.errors import DetnatError

if TYPE_CHECKING:
    from detnat.service import clock, snapshots, times
    from detnat.snapshot import file
else:  # loaded when a command runs (CLI start-up time)
    clock = runtime.lazy_module("detnat.service.clock")
    snapshots = runtime.lazy_module("detnat.service.snapshots")
    times = runtime.lazy_module("detnat.service.times")
    file = runtime.lazy_module("detnat.snapshot.file")

app = typer.Typer(help="Snapshots: plan versions over a period, for workers without a database.")


@app.command("export")
@guarded
def snapshot_export(
    ctx: typer.Context,
    realms: Annotated[list[str], typer.Argument(help="Realm names.")],
    start: Annotated[str, typer.Option("--from", help="Start of the period (RFC 3339).")],
    end: Annotated[str, typer.Option("--to", help="End of the period (RFC 3339).")],
    case: Annotated[str, typer.Option("--case", help="Case reference (required).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="The snapshot file to write.")],
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing file.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Write the plan versions of REALM... in force from --from to --to as one hashed file."""
    runtime.refuse_existing(output, force)
    lo = times.parse_instant(start, field="--from")
    hi = times.parse_instant(end, field="--to")
    actor = runtime.operator(ctx)
    with (
        runtime.store_session() as session,
        runtime.new_binary_file(output, force=force) as sink,
    ):
        done = snapshots.export(
            session,
            actor,
            realms,
            start=lo,
            end=hi,
            case=case,
            now=clock.utcnow(),
            request_id=runtime.request_id(),
        )
        sink.write(done.data)
        session.commit()  # audited before the file is renamed into place
    shown = {
        "file": str(output),
        "sha256": done.sha256,
        "bytes": len(done.data),
        "versions": done.versions,
        "case": case,
        "answer_id": done.answer_id,
        "audit_sha256": done.audit_sha256,
    }
    if json_out:
        emit_json(shown)
    else:
        print(
            f"{done.sha256}  {output} ({done.versions} plan versions, audit entry {done.answer_id})"
        )


@app.command("verify")
@guarded
def snapshot_verify(
    path: Annotated[Path, typer.Argument(help="Snapshot file.")],
    json_out: JsonOpt = False,
) -> None:
    """Check a snapshot offline (no database): every byte, every plan hash, every plan compiles,
    every log interval's shape. Offline, "valid" means whole and consistent; that this store
    exported it is its ``snapshot.export`` audit entry (``detnat audit show --case C``)."""
    data = read_input(path, limit=file.MAX_BYTES, what="a snapshot file")
    problems = file.check(data)
    summary: dict[str, object] = {}
    if not problems:
        try:
            summary = file.load(data).summary()
        except DetnatError as exc:  # a plan that does not compile, said as a problem
            problems = [str(exc)]
    if json_out:
        emit_json({"valid": not problems, "problems": problems, "origin_checked": False, **summary})
    elif problems:
        for problem in problems:
            print(f"detnat: snapshot: {problem}", file=sys.stderr)
    else:
        print(
            f"valid: {summary['sha256']} case {summary['case']}, realms "
            f"{', '.join(map(str, summary['realms']))}, {summary['versions']} plan versions, "  # type: ignore[call-overload]
            f"{summary['log_intervals']} log intervals (whole and consistent; its origin is its "
            f"snapshot.export audit entry in case {summary['case']})"
        )
    raise typer.Exit(EXIT_BROKEN if problems else EXIT_OK)
