"""CLI commands of trust: API tokens, the audit log, evidence files.

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

from cli.output import (
    EXIT_BROKEN,
    EXIT_OK,
    emit_json,
    guarded,
    lazy_module,
    read_input,
    read_json_input,
)
from cli.store import (
    JsonOpt,
    _refuse_existing,
    _request_id,
    _write_new,
    operator,
    store_session,
)
from detnat.errors import InvalidInput

if TYPE_CHECKING:
    from detnat.service import audit, batch_lookups, evidence, integrity, tokens
    from detnat.store import repo
else:  # loaded when a command runs (CLI start-up time)
    audit = lazy_module("detnat.service.audit")
    batch_lookups = lazy_module("detnat.service.batch_lookups")
    evidence = lazy_module("detnat.service.evidence")
    integrity = lazy_module("detnat.service.integrity")
    tokens = lazy_module("detnat.service.tokens")
    repo = lazy_module("detnat.store.repo")


def register(app: typer.Typer) -> None:
    token_app = typer.Typer(help="API tokens: created once, stored as a hash, revoked.")
    audit_app = typer.Typer(help="The append-only, hash-chained audit log.")
    evidence_app = typer.Typer(help="Evidence files: check an answer offline.")
    app.add_typer(token_app, name="token")
    app.add_typer(audit_app, name="audit")
    app.add_typer(evidence_app, name="evidence")

    @token_app.command("create")
    @guarded
    def token_create(
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
        actor = operator()
        with store_session() as session:
            secret, row = tokens.create_token(
                session,
                name=name,
                role=role,
                by=actor,
                person=person,
                expires=lifetime,
                request_id=_request_id(),
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

    @token_app.command("list")
    @guarded
    def token_list(json_out: JsonOpt = False) -> None:
        """Every token (never the token itself)."""
        with store_session() as session:
            rows = [tokens.token_json(t) for t in repo.tokens(session)]
        for shown in rows:
            if json_out:
                emit_json(shown)
            else:
                print(
                    f"{shown['id']:<5} {shown['role']:<8} {shown['state']:<8} {shown['name']}  "
                    f"expires {shown['expires_at'] or 'never'}"
                )

    @token_app.command("revoke")
    @guarded
    def token_revoke(token_id: int, json_out: JsonOpt = False) -> None:
        """Revoke a token (at once, on every worker)."""
        actor = operator()
        with store_session() as session:
            row = tokens.revoke_token(session, token_id, by=actor, request_id=_request_id())
            shown = tokens.token_json(row)
        emit_json(shown) if json_out else print(f"token {token_id} revoked")

    @audit_app.command("verify")
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
        with store_session() as session:
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

    @audit_app.command("checkpoint")
    @guarded
    def audit_checkpoint(
        output: Annotated[
            Path | None, typer.Option("--output", "-o", help="Also write it to this file.")
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Record and print the head of the audit chain (keep it outside the database)."""
        if output is not None:
            _refuse_existing(output, False)
        actor = operator()
        with store_session() as session:
            shown = audit.checkpoint(session, actor, request_id=_request_id())
        if output is not None:
            _write_new(output, json.dumps(shown))
        emit_json(shown) if json_out else print(f"{shown['seq']} {shown['sha256']}")

    @audit_app.command("show")
    @guarded
    def audit_show(
        case: Annotated[str, typer.Option("--case", help="Case reference.")],
        json_out: JsonOpt = False,
    ) -> None:
        """The entries of one case."""
        audit.check_reference(case, field="--case")
        with store_session() as session:
            for entry in audit.entries(session, case=case):
                shown = audit.entry_json(entry)
                if json_out:
                    emit_json(shown)
                else:
                    print(
                        f"{shown['seq']:<7} {shown['at']}  {shown['actor']} ({shown['role']})  "
                        f"{shown['action']}  {shown['status'] or ''}"
                    )

    @audit_app.command("export")
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
            _refuse_existing(output, force)
        with store_session() as session:
            rows = [audit.entry_json(e) for e in audit.entries(session, case=case)]
        text = export_text(rows, fmt)
        if output is None:
            sys.stdout.write(text)
        else:
            _write_new(output, text.rstrip("\n"))

    @evidence_app.command("verify")
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
            emit_json(
                {"valid": not problems, "problems": problems, "recomputed": checked.recomputed}
            )
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
        raise typer.Exit(EXIT_BROKEN if problems else EXIT_OK)


MAX_EVIDENCE_BYTES = 64 << 20  # plans of at most 1 MiB each, and a few of them


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
