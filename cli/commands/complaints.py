"""``detnat complaints answer``: complaint files in (a mailbox export ...), one row per notice out.

The files are read (:mod:`detnat.complaints`), every complaint is answered against the store as
one audited batch inquiry (:mod:`detnat.service.complaints`), and the answers leave — to ``-o``
or stdout — only after the audit entry is committed. ``--summary`` adds the repeat-offender list
(to stdout with ``-o``, else to stderr so the CSV on stdout stays clean). Unreadable notices are
rows (verdict ``unreadable``, with the reason), not a failure of the command.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
from contextlib import ExitStack
from datetime import timedelta
from io import TextIOWrapper
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import EXIT_OK, JsonOpt, emit_json, guarded
from detnat.errors import InvalidInput

if TYPE_CHECKING:
    from detnat import complaints as intake
    from detnat.complaints import tables
    from detnat.service import batch_lookups, complaints, inquiry, plans, timelines, times
else:  # loaded when the command runs (CLI start-up time)
    intake = runtime.lazy_module("detnat.complaints")
    tables = runtime.lazy_module("detnat.complaints.tables")
    complaints = runtime.lazy_module("detnat.service.complaints")
    inquiry = runtime.lazy_module("detnat.service.inquiry")
    plans = runtime.lazy_module("detnat.service.plans")
    timelines = runtime.lazy_module("detnat.service.timelines")
    times = runtime.lazy_module("detnat.service.times")
    batch_lookups = runtime.lazy_module("detnat.service.batch_lookups")

app = typer.Typer(help="Complaints: answer abuse notices (XARF, ARF, ACNS, Shadowserver, CSV).")


@app.command("answer")
@guarded
def answer(
    ctx: typer.Context,
    files: Annotated[
        list[Path], typer.Argument(help="Mailbox exports (mbox), .eml, JSON, XML or CSV files.")
    ],
    case: Annotated[
        str | None, typer.Option("--case", help="Case reference (required).", show_default=False)
    ] = None,
    fmt: Annotated[
        str, typer.Option("--format", help="auto, xarf, arf, acns, shadowserver or csv.")
    ] = "auto",
    mapping: Annotated[
        str | None,
        typer.Option("--map", help="CSV columns: ip=COL,port=COL,time=COL[,id=COL,category=COL]."),
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="Zone of CSV times without an offset.")
    ] = None,
    tolerance: Annotated[
        str | None, typer.Option("--tolerance", help="Clock skew of the complainants, e.g. 2s.")
    ] = None,
    realm: Annotated[str | None, typer.Option("--realm", help="Only this realm.")] = None,
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Answers CSV (default stdout).")
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing -o file.")] = False,
    summary: Annotated[
        bool, typer.Option("--summary", help="Also list complaints per account (or subscriber).")
    ] = False,
    json_out: JsonOpt = False,
) -> None:
    """Answer every complaint of FILES: who held the address and source port at the time."""
    if case is None:
        raise InvalidInput("required (a case reference)", field="--case")
    options = intake.Options(
        fmt, tables.parse_map(mapping) if mapping else None, tz, workers=os.cpu_count() or 1
    )
    if tz is not None:
        times.check_zone(tz, field="--tz")
    if output is not None:
        runtime.refuse_existing(output, force)
    window = (
        times.check_tolerance(
            times.parse_duration(tolerance, field="--tolerance"), field="--tolerance"
        )
        if tolerance
        else timedelta(0)
    )
    ask = inquiry.BatchAsk(
        inquiry.Identity(case).checked("cli"),
        "cli",
        tz=tz,
        tolerance=window,
        realm=realm,
        file=", ".join(f.name for f in files),
    )
    actor = runtime.operator(ctx)
    with ExitStack() as stack, runtime.store_session() as session:
        opened = []
        for path in files:
            try:
                opened.append((str(path), stack.enter_context(path.open("rb"))))
            except OSError as exc:
                raise InvalidInput(f"cannot read: {exc.strerror}", field=str(path)) from None
        kept = inquiry.Inquiries(plans.MapperCache())
        query = batch_lookups.BatchQuery(
            snapshot=timelines.TimelineCache().get(session),
            now=plans.utcnow(),
            mappers=kept.mappers,
            tolerance=window,
            realm=realm,
            tz=tz,
        )
        held = stack.enter_context(tempfile.TemporaryFile())
        text = TextIOWrapper(held, encoding="utf-8", errors="surrogateescape", newline="")
        report, _ = complaints.answer_audited(
            session,
            actor,
            ask,
            query,
            opened,
            options,
            text.write,
            kept=kept,
            request_id=runtime.request_id(),
        )
        session.commit()  # audited before any answer leaves
        text.flush()
        text.detach()
        held.seek(0)
        if output is not None:
            with runtime.new_binary_file(output, force=force) as sink:
                shutil.copyfileobj(held, sink)
        else:
            shutil.copyfileobj(held, sys.stdout.buffer)
            sys.stdout.flush()
    _report(report, case, output, summary=summary, as_json=json_out)
    raise typer.Exit(EXIT_OK)


def _report(
    report: complaints.ComplaintsReport,
    case: str,
    output: Path | None,
    *,
    summary: bool,
    as_json: bool,
) -> None:
    for bad in report.bad_rows[:20]:
        print(f"detnat: complaint {bad.line}: unreadable: {bad.message}", file=sys.stderr)
    if report.bad_row_count > 20:
        print(f"detnat: ... and {report.bad_row_count - 20} more unreadable", file=sys.stderr)
    counts = ", ".join(f"{n} {verdict}" for verdict, n in sorted(report.counts.items()))
    print(f"detnat: {report.rows} complaints: {counts or 'none'}", file=sys.stderr)
    if as_json and output is not None:
        emit_json(
            {
                "complaints": report.rows,
                "counts": report.counts,
                "case": case,
                "answer_id": report.answer_id,
                "input_sha256": report.input_sha256,
                "output_sha256": report.output_sha256,
                **({"summary": [o.to_json() for o in report.summary()]} if summary else {}),
            }
        )
    elif summary:
        where = sys.stdout if output is not None else sys.stderr
        lines = complaints.summary_lines(report)
        print("repeat offenders (identified complaints per account or subscriber):", file=where)
        for line in lines or ["(none identified)"]:
            print(f"  {line}", file=where)
