"""The ``detnat`` command: thin over the engine (``--plan``) and the service layer (``--at``)."""

from __future__ import annotations

import csv
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, BinaryIO, TypeVar

import typer

from cli import capacity, datapath, store
from cli.output import (
    EXIT_INVALID,
    EXIT_OK,
    emit_json,
    error_json,
    fail_line,
    guarded,
    ranges_text,
)
from detnat import __version__
from detnat.batch import BatchReport, reverse_csv
from detnat.engine import Allocation, Mapper, ReverseAnswer, compile_plan, format_ipv4
from detnat.errors import DetnatError, InvalidInput
from detnat.planfile import canonical_json, load_mapper, read_plan

app = typer.Typer(
    name="detnat",
    help="Who held public address A, port P, at time T? Deterministic CGNAT, DS-Lite and MAP.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
plan_app = typer.Typer(help="Check plan files, list their allocations, manage them in the store.")
app.add_typer(plan_app, name="plan")

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


def _version(value: bool) -> None:
    if value:
        print(f"detnat {__version__}")
        raise typer.Exit()


@app.callback()
def main(
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = False,
    as_: Annotated[
        str | None,
        typer.Option("--as", help="Record store actions under this name (default: OS user)."),
    ] = None,
) -> None:
    """detnat: deterministic NAT mapping, forward and reverse, now and at any time T."""
    if as_ is not None:
        store.OPERATOR["name"] = as_


def _need_one_source(plan: Path | None, at: str | None) -> None:
    if (plan is None) == (at is None):
        raise InvalidInput("give either --plan FILE (no database) or --at TIME (the store)")


def parse_endpoint(text: str) -> tuple[str, int]:
    """``192.0.2.1:80`` (or ``[addr]:port``) -> (address text, port)."""
    if text.startswith("["):
        address, sep, port_text = text[1:].partition("]:")
    else:
        address, sep, port_text = text.rpartition(":")
    if not sep or not address:
        raise InvalidInput(f"{text!r} is not ADDRESS:PORT", field="query")
    if (
        not port_text.isascii()
        or not port_text.isdigit()
        or (len(port_text) > 1 and port_text[0] == "0")
    ):
        raise InvalidInput(f"{port_text!r} is not a port number", field="query")
    port = int(port_text)
    if port > 65535:
        raise InvalidInput(f"port {port} is outside 0-65535", field="query")
    return address, port


# -- forward ---------------------------------------------------------------------------------------


@app.command()
@guarded
def forward(
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
            store.forward_at(
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
        _refuse_overwrite(output, force)
        if plan is None:
            raise typer.Exit(
                store.reverse_batch_at(
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
        raise typer.Exit(_reverse_batch(load_mapper(plan), batch, output, json_out))
    if not queries:
        raise InvalidInput("give ADDRESS:PORT queries or --batch FILE")
    _need_one_source(plan, at)
    if at is not None:
        raise typer.Exit(
            store.reverse_at(
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
        return mapper.reverse(*parse_endpoint(query))

    def show(query: str, answer: ReverseAnswer) -> str:
        if answer.allocation is None:
            return f"{query}  {answer.status.value}  {answer.reason.value if answer.reason else ''}"
        a = answer.allocation
        return (
            f"{query}  match  {a.subscriber}  "
            f"(holds {format_ipv4(a.public_ip)} ports {ranges_text(a.port_ranges)})"
        )

    raise typer.Exit(_answer_each(queries, ask, show, json_out))


def _refuse_overwrite(output: Path | None, force: bool) -> None:
    if output is not None and output.exists() and not force:
        raise InvalidInput("already exists; pass --force to overwrite it", field=str(output))


def _reverse_batch(mapper: Mapper, batch: Path, output: Path | None, json_out: bool) -> int:
    try:
        source = batch.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read: {exc.strerror}", field=str(batch)) from None
    with source:
        total = os.fstat(source.fileno()).st_size
        if output is None:
            report = _with_progress(mapper, source, sys.stdout.buffer, total)
        else:
            # Write beside the target and rename at the end: never a half-written result file.
            fd, tmp_name = tempfile.mkstemp(dir=output.parent or Path("."), prefix=".detnat-")
            try:
                with os.fdopen(fd, "wb") as sink:
                    report = _with_progress(mapper, source, sink, total)
                os.replace(tmp_name, output)
            except BaseException:
                os.unlink(tmp_name)
                raise
    for bad in report.bad_rows[:20]:
        print(f"detnat: {batch}:{bad.line}: {bad.message}", file=sys.stderr)
    if report.bad_row_count > 20:
        print(f"detnat: ... and {report.bad_row_count - 20} more bad rows", file=sys.stderr)
    counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
    summary = {"rows": report.rows, "counts": report.counts, "bad_rows": report.bad_row_count}
    if json_out and output is not None:
        emit_json(summary)
    else:
        print(f"detnat: {report.rows} rows: {counts or 'nothing'}", file=sys.stderr)
    return EXIT_INVALID if report.bad_row_count else EXIT_OK


def _with_progress(mapper: Mapper, source: BinaryIO, sink: BinaryIO, total: int) -> BatchReport:
    """Run the batch, with a progress bar (bytes read of ``total``) when stderr is a terminal."""
    if not sys.stderr.isatty():
        return reverse_csv(mapper, source, sink)
    from rich.progress import Progress

    with Progress(transient=True) as progress:
        task = progress.add_task("reverse", total=total)
        return reverse_csv(
            mapper, source, sink, progress=lambda done: progress.update(task, completed=done)
        )


# -- plan ------------------------------------------------------------------------------------------


@plan_app.command("check")
@guarded
def plan_check(
    file: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")],
    json_out: JsonOpt = False,
) -> None:
    """Validate a plan file and summarise it: subscribers, addresses, ports, capacity."""
    plan = read_plan(file)
    summary = compile_plan(plan).summary()
    if json_out:
        emit_json({"valid": True, **summary})
        return
    print(f"{file}: valid {summary['algorithm']} plan")
    for key, value in summary.items():
        if key == "algorithm":
            continue
        shown = f"{value:.2%}" if isinstance(value, float) else value
        print(f"  {key.replace('_', ' '):<36} {shown}")


@plan_app.command("table")
@guarded
def plan_table(
    file: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")],
    json_out: JsonOpt = False,
) -> None:
    """The whole allocation table, streamed: subscriber, public_ip, port_ranges."""
    mapper = load_mapper(file)
    out = sys.stdout
    writer = csv.writer(out, lineterminator="\n")
    if not json_out:
        writer.writerow(["subscriber", "public_ip", "port_ranges"])
    for index in range(mapper.subscriber_count):
        allocation = mapper.allocation_of(index)
        if json_out:
            emit_json(allocation.to_json())
        else:
            ranges = " ".join(f"{a}-{b}" for a, b in allocation.port_ranges)
            writer.writerow([allocation.subscriber, format_ipv4(allocation.public_ip), ranges])


@plan_app.command("canonical")
@guarded
def plan_canonical(file: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")]) -> None:
    """The plan's canonical JSON (what the store hashes)."""
    print(canonical_json(read_plan(file)))


store.register(app, plan_app)
capacity.register(app, plan_app)
datapath.register(app)
