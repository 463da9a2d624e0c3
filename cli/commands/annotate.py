"""``detnat annotate``: flow records (Parquet or CSV) in, the same rows with who held each out.

Answers come from a snapshot file (``detnat snapshot export``), never from the database row by
row; the database only opens (or checks) the case and records the job's one audit entry (case,
snapshot hash, rows in and out, input and output SHA-256) before the output is renamed into place.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import EXIT_OK, Integer, JsonOpt, emit_json, guarded

if TYPE_CHECKING:
    from detnat.service import audit, snapshots, times
    from detnat.snapshot import annotate as annotator
    from detnat.snapshot import file, files, jobs
else:  # loaded when the command runs (CLI start-up time)
    audit = runtime.lazy_module("detnat.service.audit")
    snapshots = runtime.lazy_module("detnat.service.snapshots")
    times = runtime.lazy_module("detnat.service.times")
    annotator = runtime.lazy_module("detnat.snapshot.annotate")
    file = runtime.lazy_module("detnat.snapshot.file")
    files = runtime.lazy_module("detnat.snapshot.files")
    jobs = runtime.lazy_module("detnat.snapshot.jobs")

app = typer.Typer()


@app.command()
@guarded
def annotate(
    ctx: typer.Context,
    source: Annotated[Path, typer.Argument(help="Input: .parquet or .csv.")],
    snapshot: Annotated[Path, typer.Option("--snapshot", help="Snapshot file (snapshot export).")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Output: .parquet or .csv.")],
    case: Annotated[str, typer.Option("--case", help="Case reference (required).")],
    columns: Annotated[
        str | None,
        typer.Option("--columns", help="Input column names: ip=NAME,port=NAME,time=NAME."),
    ] = None,
    time_unit: Annotated[
        str | None,
        typer.Option("--time-unit", help="Integer times: s or ms since the epoch, UTC."),
    ] = None,
    tolerance: Annotated[
        str | None, typer.Option("--tolerance", help="Clock skew around each time (e.g. 2s).")
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(
            "--threads",
            click_type=Integer(min=1),
            help="Threads annotating (default: the usable cores).",
        ),
    ] = None,
    force: Annotated[bool, typer.Option("--force", help="Overwrite an existing output.")] = False,
    json_out: JsonOpt = False,
) -> None:
    """Add subscriber, status, reason, realm and version to every row, as `reverse --at` answers."""
    audit.check_reference(case, field="--case")
    out_format = files.format_of(str(output))
    files.format_of(str(source))
    runtime.refuse_existing(output, force)
    loaded = file.read(str(snapshot))
    skew = times.check_tolerance(times.parse_duration(tolerance)) if tolerance else None
    worker = annotator.Annotator(
        loaded,
        columns=annotator.Columns.parse(columns, time_unit=time_unit),
        tolerance_us=int(skew.total_seconds() * 1_000_000) if skew else 0,
    )
    summary = jobs.JobSummary(
        engine="cli",
        case=case,
        snapshot_sha256=loaded.sha256,
        snapshot_case=loaded.case,
        tolerance_us=worker.tolerance_us,
        source=source.name,
        destination=output.name,
    )
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        cases = audit.CaseOwners()
        cases.claim(session, case, actor, request_id=runtime.request_id())
        session.commit()
        with (
            runtime.new_binary_file(output, force=force) as sink,
            _progress(files.count_rows(str(source))) as progress,
        ):
            files.annotate_file(
                worker,
                str(source),
                sink,
                out_format=out_format,
                summary=summary,
                progress=progress,
                threads=threads,
            )
            sink.flush()
            entry = snapshots.record_job(
                session, actor, summary, request_id=runtime.request_id(), cases=cases
            )
            session.commit()  # audited before the output is renamed into place
    shown = {**summary.to_json(), "answer_id": entry.seq, "audit_sha256": entry.entry_sha256}
    if json_out:
        emit_json(shown)
    else:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(summary.counts.items()))
        print(
            f"detnat: {summary.output_rows} rows: {counts or 'nothing'}; audit entry {entry.seq}",
            file=sys.stderr,
        )
    raise typer.Exit(EXIT_OK)


@contextmanager
def _progress(total: int | None) -> Iterator[Callable[[int], None]]:
    """Rows done on stderr: a bar on a terminal, else a line every 10 M rows."""
    if not sys.stderr.isatty():
        step = [10_000_000]

        def line(done: int) -> None:
            if done >= step[0]:
                print(f"detnat: annotate: {done} rows", file=sys.stderr, flush=True)
                step[0] += 10_000_000

        yield line
        return
    from rich.console import Console
    from rich.progress import Progress

    with Progress(transient=True, console=Console(stderr=True)) as bar:
        task = bar.add_task("annotate", total=total)
        yield lambda done: bar.update(task, completed=done)
