"""``detnat audit``: the append-only, hash-chained audit log: verify, checkpoint, show, export.

The CLI is the local operator (admin rights), recorded under ``detnat --as NAME`` or the OS user.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from cli import runtime
from cli.output import (
    EXIT_BROKEN,
    EXIT_OK,
    JsonOpt,
    emit_json,
    guarded,
    read_input,
    read_json_input,
)
from detnat.errors import InvalidInput

if TYPE_CHECKING:
    from detnat.service import audit, batch_lookups, integrity, snapshots
    from detnat.snapshot import jobs
else:  # loaded when a command runs (CLI start-up time)
    snapshots = runtime.lazy_module("detnat.service.snapshots")
    jobs = runtime.lazy_module("detnat.snapshot.jobs")
    audit = runtime.lazy_module("detnat.service.audit")
    batch_lookups = runtime.lazy_module("detnat.service.batch_lookups")
    integrity = runtime.lazy_module("detnat.service.integrity")

app = typer.Typer(help="The append-only, hash-chained audit log.")


@app.command("verify")
@guarded
def audit_verify(
    checkpoint: Annotated[
        Path | None,
        typer.Option("--checkpoint", help="A checkpoint file from `audit checkpoint -o`."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Walk the chains, hold the store against the audit log; name every broken link."""
    mark = _read_checkpoint(checkpoint) if checkpoint is not None else None
    with runtime.store_session() as session:
        broken, summary = integrity.verify(session, checkpoint=mark)
    if json_out:
        emit_json({**summary, "broken": [str(b) for b in broken]})
    else:
        for link in broken:
            print(f"detnat: broken: {link}", file=sys.stderr)
        if not broken:
            print(
                f"ok: {summary['realms']} realms, {summary['plan_versions']} plan versions, "
                f"{summary['audit_entries']} audit entries; head {summary['head']['seq']} "
                f"{summary['head']['sha256']}"
            )
    raise typer.Exit(EXIT_BROKEN if broken else EXIT_OK)


@app.command("checkpoint")
@guarded
def audit_checkpoint(
    ctx: typer.Context,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Also write it to this file.")
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Record and print the head of the audit chain (keep it outside the database)."""
    if output is not None:
        runtime.refuse_existing(output, False, hint=runtime.KEPT_HINT)
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        shown = audit.checkpoint(session, actor, request_id=runtime.request_id())
    if output is not None:
        runtime.write_new(output, json.dumps(shown) + "\n", force=False, hint=runtime.KEPT_HINT)
    emit_json(shown) if json_out else print(f"{shown['seq']} {shown['sha256']}")


@app.command("show")
@guarded
def audit_show(
    case: Annotated[str, typer.Option("--case", help="Case reference.")],
    json_out: JsonOpt = False,
) -> None:
    """The entries of one case."""
    audit.check_reference(case, field="--case")
    with runtime.store_session() as session:
        for entry in audit.entries(session, case=case):
            shown = audit.entry_json(entry)
            if json_out:
                emit_json(shown)
            else:
                print(
                    f"{shown['seq']:<7} {shown['at']}  {shown['actor']} ({shown['role']})  "
                    f"{shown['action']}  {shown['status'] or ''}"
                )


@app.command("export")
@guarded
def audit_export(
    case: Annotated[str, typer.Option("--case", help="Case reference.")],
    fmt: Annotated[str, typer.Option("--format", help="csv or json")] = "csv",
    output: Annotated[Path | None, typer.Option("--output", "-o")] = None,
    force: Annotated[bool, typer.Option("--force")] = False,
) -> None:
    """Export one case's entries (CSV cells that could run as formulas are neutralised)."""
    audit.check_reference(case, field="--case")
    if fmt not in ("csv", "json"):
        raise InvalidInput("csv or json", field="--format")
    if output is not None:
        runtime.refuse_existing(output, force, hint=runtime.KEPT_HINT)
    with runtime.store_session() as session:
        rows = [audit.entry_json(e) for e in audit.entries(session, case=case)]
    text = export_text(rows, fmt)
    if output is None:
        sys.stdout.write(text)
    else:
        runtime.write_new(output, text.rstrip("\n") + "\n", force=force, hint=runtime.KEPT_HINT)


@app.command("record-job")
@guarded
def audit_record_job(
    ctx: typer.Context,
    summary_file: Annotated[
        Path, typer.Argument(help="A job summary (JSON) from a Spark, Dask, DuckDB or Polars job.")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Record one annotation job: its case, snapshot hash, rows and hashes (one audit entry).

    Refused unless the snapshot was exported from this store.
    """
    data = read_input(summary_file, limit=1 << 20, what="a job summary")
    summary = jobs.parse_summary(data, field=str(summary_file))
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        entry = snapshots.record_job(session, actor, summary, request_id=runtime.request_id())
    shown = {"answer_id": entry.seq, "audit_sha256": entry.entry_sha256, "case": summary.case}
    if json_out:
        emit_json(shown)
    else:
        print(f"recorded: audit entry {entry.seq} {entry.entry_sha256} (case {summary.case})")


def _read_checkpoint(path: Path) -> integrity.Checkpoint:
    data: Any = read_json_input(path, limit=1 << 20, what="a checkpoint file")
    try:
        seq, sha = data["seq"], data["sha256"]
        heads = data.get("plan_heads", {})
    except (KeyError, TypeError, AttributeError) as exc:
        raise InvalidInput(f"not a checkpoint file ({exc})", field=str(path)) from None
    if (
        not isinstance(seq, int)
        or not isinstance(sha, str)
        or not isinstance(heads, dict)
        or not all(isinstance(h, dict) for h in heads.values())
    ):
        raise InvalidInput("not a checkpoint file", field=str(path))
    return integrity.Checkpoint(seq, sha, heads)


EXPORT_COLUMNS = ("seq", "at", "actor", "role", "action", "case", "status", "request_id")


def export_text(rows: list[dict[str, Any]], fmt: str) -> str:
    """JSON Lines, or CSV with every cell neutralised against formula injection."""
    if fmt == "json":
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow([*EXPORT_COLUMNS, "detail", "entry_sha256"])
    for r in rows:
        cells = [str(r[c]) if r[c] is not None else "" for c in EXPORT_COLUMNS]
        cells += [json.dumps(r["detail"], ensure_ascii=False), r["entry_sha256"]]
        writer.writerow([_neutral(c) for c in cells])
    return out.getvalue()


def _neutral(text: str) -> str:
    """A leading ' for cells a spreadsheet would run (csv quotes the rest)."""
    quoted = batch_lookups.cell(text)
    return quoted[1:-1].replace('""', '"') if quoted.startswith('"') else quoted
