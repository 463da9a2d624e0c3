"""``detnat evidence verify``: check an evidence file offline (no database)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import EXIT_BROKEN, EXIT_OK, JsonOpt, emit_json, guarded, read_input

if TYPE_CHECKING:
    from detnat.service import evidence
else:  # loaded when the command runs (CLI start-up time)
    evidence = runtime.lazy_module("detnat.service.evidence")

app = typer.Typer(help="Evidence files: check an answer offline.")


MAX_EVIDENCE_BYTES = 64 << 20  # plans of at most 1 MiB each, and a few of them


@app.command("verify")
@guarded
def evidence_verify(
    file: Annotated[Path, typer.Argument(help="Evidence file (JSON).")],
    json_out: JsonOpt = False,
) -> None:
    """Recompute the answer from the embedded plans and check every hash (no database).

    A valid file is consistent with its audit entry; whether that entry is the store's is
    checked against the store or an audit checkpoint (its entry_sha256 is printed).
    """
    data = read_input(file, limit=MAX_EVIDENCE_BYTES, what="an evidence file")
    checked = evidence.verify_bytes(data)
    problems, document = checked.problems, checked.document
    if json_out:
        emit_json({"valid": not problems, "problems": problems, "recomputed": checked.recomputed})
    elif problems:
        for problem in problems:
            print(f"detnat: evidence: {problem}", file=sys.stderr)
    else:
        answer, entry = document["answer"], document["audit_entry"]
        print(
            f"valid: {answer['ip']}:{answer['port']} at {answer['time']} -> "
            f"{answer['status']} {answer.get('subscriber', answer.get('reason', ''))}; "
            f"{sum(len(r['versions']) for r in document['realms'].values())} plan versions "
            f"and audit entry {entry['seq']} check out"
        )
        print(
            f"offline only: compare entry_sha256 {entry['entry_sha256']} of audit entry "
            f"{entry['seq']} with the store or an audit checkpoint to rule out a forgery "
            "rewritten as a whole"
        )
        for ingest in document.get("logs", {}).get("ingests", []):
            print(
                f"offline only: likewise entry_sha256 {ingest['entry_sha256']} of audit entry "
                f"{ingest['seq']} (logs.ingest: how the log lines were read)"
            )
        for ingest in document.get("directory", {}).get("ingests", []):
            print(
                f"offline only: likewise entry_sha256 {ingest['entry_sha256']} of audit entry "
                f"{ingest['seq']} (directory.ingest: how the account's lines were read)"
            )
    raise typer.Exit(EXIT_BROKEN if problems else EXIT_OK)
