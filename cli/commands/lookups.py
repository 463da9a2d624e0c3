"""``detnat forward`` and ``detnat reverse``: the two questions, from a plan file or the store.

With ``--plan FILE`` the engine answers here, with no database; with ``--at TIME`` (or a batch
without ``--plan``) :mod:`cli.commands.lookups_store` asks the audited service. The JSON Lines, the
columns of a batch and the exit codes are a contract other tools rely on (docs: design "Surfaces").
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, BinaryIO, TypeVar

import typer

from cli import runtime
from cli.commands import lookups_store
from cli.output import EXIT_INVALID, EXIT_OK, emit_json, error_json, fail_line, guarded, ranges_text
from detnat.engine import Allocation, Mapper, ReverseAnswer, format_ipv4
from detnat.errors import DetnatError, InvalidInput
from detnat.planfile import load_mapper

if TYPE_CHECKING:
    from detnat.batch import BatchReport

app = typer.Typer()

PlanOpt = Annotated[
    Path | None, typer.Option("--plan", help="Compute from this plan file (no database).")
]
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON Lines: one object per query.")]
AtOpt = Annotated[
    str | None, typer.Option("--at", help="Instant (RFC 3339 with offset) to ask the store about.")
]
TzOpt = Annotated[
    str | None, typer.Option("--tz", help="Zone of naive --at times, e.g. Europe/Berlin.")
]
RealmOpt = Annotated[str | None, typer.Option("--realm", help="Only this realm.")]
CaseOpt = Annotated[str | None, typer.Option("--case", help="Case reference for the record.")]
LegalBasisOpt = Annotated[
    str | None, typer.Option("--legal-basis", help="Legal basis of the request (recorded).")
]
RequestedByOpt = Annotated[
    str | None, typer.Option("--requested-by", help="Who asked (recorded), e.g. a court.")
]


def _need_one_source(plan: Path | None, at: str | None) -> None:
    if (plan is None) == (at is None):
        raise InvalidInput("give either --plan FILE (no database) or --at TIME (the store)")


# -- forward ---------------------------------------------------------------------------------------


@app.command()
@guarded
def forward(
    ctx: typer.Context,
    queries: Annotated[list[str], typer.Argument(help="Subscriber addresses or prefixes.")],
    plan: PlanOpt = None,
    at: AtOpt = None,
    tz: TzOpt = None,
    realm: RealmOpt = None,
    case: CaseOpt = None,
    legal_basis: LegalBasisOpt = None,
    requested_by: RequestedByOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Public address and port set of each subscriber."""
    _need_one_source(plan, at)
    if at is not None:
        raise typer.Exit(
            lookups_store.forward_at(
                runtime.operator(ctx),
                queries,
                at=at,
                tz=tz,
                realm=realm,
                case=case,
                as_json=json_out,
                legal_basis=legal_basis,
                requested_by=requested_by,
            )
        )
    assert plan is not None
    mapper = load_mapper(plan)

    def show(query: str, allocation: Allocation) -> str:
        static = " (static: all ports)" if allocation.static else ""
        return (
            f"{allocation.subscriber}  {format_ipv4(allocation.public_ip)}  "
            f"ports {ranges_text(allocation.port_ranges)}{static}"
        )

    raise typer.Exit(_answer_each(queries, mapper.forward, show, json_out))


Answer = TypeVar("Answer", Allocation, ReverseAnswer)


def _answer_each(
    queries: list[str],
    answer: Callable[[str], Answer],
    show: Callable[[str, Answer], str],
    json_out: bool,
) -> int:
    """Answer every query in order; a bad one is an error line (and a JSON error object in its
    place), and the others are still answered. Exit code 2 if any query was bad."""
    failed = False
    for query in queries:
        try:
            result = answer(query)
        except DetnatError as exc:
            failed = True
            fail_line(exc)
            if json_out:
                emit_json(error_json(query, exc))
            continue
        if json_out:
            emit_json({"query": query, **result.to_json()})
        else:
            print(show(query, result))
    return EXIT_INVALID if failed else EXIT_OK


# -- reverse ---------------------------------------------------------------------------------------


@app.command()
@guarded
def reverse(
    ctx: typer.Context,
    queries: Annotated[
        list[str] | None, typer.Argument(help="Public ADDRESS:PORT pairs.", show_default=False)
    ] = None,
    plan: PlanOpt = None,
    batch: Annotated[
        Path | None,
        typer.Option("--batch", help="CSV with columns ip,port (and time against the store)."),
    ] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Batch output CSV (default stdout).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing -o file.")] = False,
    at: AtOpt = None,
    tz: TzOpt = None,
    tolerance: Annotated[
        str | None, typer.Option("--tolerance", help="Clock skew of the complainant, e.g. 2s.")
    ] = None,
    realm: RealmOpt = None,
    case: CaseOpt = None,
    legal_basis: LegalBasisOpt = None,
    requested_by: RequestedByOpt = None,
    evidence: Annotated[
        Path | None,
        typer.Option("--evidence", help="Write the evidence file of the answer (store only)."),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Who holds each public ADDRESS:PORT (one query, several, or a CSV batch)."""
    if batch is not None:
        if queries:
            raise InvalidInput("give queries or --batch, not both")
        if output is not None:
            runtime.refuse_existing(output, force)
        if plan is None:
            raise typer.Exit(
                lookups_store.reverse_batch_at(
                    runtime.operator(ctx),
                    batch,
                    output,
                    tz=tz,
                    tolerance=tolerance,
                    realm=realm,
                    case=case,
                    as_json=json_out,
                    force=force,
                )
            )
        raise typer.Exit(_reverse_batch(load_mapper(plan), batch, output, json_out, force))
    if not queries:
        raise InvalidInput("give ADDRESS:PORT queries or --batch FILE")
    _need_one_source(plan, at)
    if at is not None:
        raise typer.Exit(
            lookups_store.reverse_at(
                runtime.operator(ctx),
                queries,
                at=at,
                tz=tz,
                tolerance=tolerance,
                realm=realm,
                case=case,
                as_json=json_out,
                legal_basis=legal_basis,
                requested_by=requested_by,
                evidence_file=evidence,
                force=force,
            )
        )
    if evidence is not None:
        raise InvalidInput("evidence files are made against the store (--at)", field="--evidence")
    assert plan is not None
    mapper = load_mapper(plan)

    def ask(query: str) -> ReverseAnswer:
        return mapper.reverse(*runtime.parse_endpoint(query))

    def show(query: str, answer: ReverseAnswer) -> str:
        if answer.allocation is None:
            return f"{query}  {answer.status.value}  {answer.reason.value if answer.reason else ''}"
        a = answer.allocation
        return (
            f"{query}  match  {a.subscriber}  "
            f"(holds {format_ipv4(a.public_ip)} ports {ranges_text(a.port_ranges)})"
        )

    raise typer.Exit(_answer_each(queries, ask, show, json_out))


def _reverse_batch(
    mapper: Mapper, batch: Path, output: Path | None, json_out: bool, force: bool
) -> int:
    try:
        source = batch.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read: {exc.strerror}", field=str(batch)) from None
    with source:
        total = os.fstat(source.fileno()).st_size
        if output is None:
            report = _with_progress(mapper, source, sys.stdout.buffer, total)
        else:
            with runtime.new_binary_file(output, force=force) as sink:
                report = _with_progress(mapper, source, sink, total)
    runtime.print_bad_rows(batch, report.bad_rows, report.bad_row_count)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
    summary = {"rows": report.rows, "counts": report.counts, "bad_rows": report.bad_row_count}
    if json_out and output is not None:
        emit_json(summary)
    else:
        print(f"detnat: {report.rows} rows: {counts or 'nothing'}", file=sys.stderr)
    return EXIT_INVALID if report.bad_row_count else EXIT_OK


def _with_progress(mapper: Mapper, source: BinaryIO, sink: BinaryIO, total: int) -> BatchReport:
    """Run the batch, with a progress bar (bytes read of ``total``) when stderr is a terminal."""
    from detnat.batch import reverse_csv  # a batch's module: single lookups start without it

    if not sys.stderr.isatty():
        return reverse_csv(mapper, source, sink)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("reverse", total=total)
        return reverse_csv(
            mapper, source, sink, progress=lambda done: progress.update(task, completed=done)
        )
