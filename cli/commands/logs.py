"""``detnat logs``: the datapath's own port-block logs into the store, checked against the plans.

- ``ingest REALM --format FORMAT FILE...`` (``-`` is stdin, ``.gz`` is read decompressed;
  ``--follow`` tails one file through rotation and resumes after a restart; bytes that may be
  lost, a rotated file not found, are a warning on stderr);
- ``prune REALM --before T`` drops a realm's whole months before T (audited);
- ``check REALM [--from T --to T]`` names where logs and plans disagree (exit 4).
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import EXIT_CONFLICT, EXIT_OK, Integer, JsonOpt, emit_json, guarded

if TYPE_CHECKING:
    from detnat.logs import formats
    from detnat.logs.events import Refused
    from detnat.service import log_check, logs, times
else:  # loaded when a command runs (CLI start-up time)
    formats = runtime.lazy_module("detnat.logs.formats")
    logs = runtime.lazy_module("detnat.service.logs")
    log_check = runtime.lazy_module("detnat.service.log_check")
    times = runtime.lazy_module("detnat.service.times")

app = typer.Typer(help="The datapath's own port-block logs: ingest, prune, check.")


def _print_refused(item: Refused) -> None:
    print(f"detnat: {item.file}:{item.line}: refused: {item.reason}", file=sys.stderr)


def _print_gap(gap: logs.Gap) -> None:
    print(f"detnat: warning: {gap.warning}", file=sys.stderr)


def _summary_line(summary: logs.IngestSummary) -> str:
    gaps = len(summary.gaps)
    warned = f", {gaps} gaps (bytes that may be lost, on stderr)" if gaps else ""
    return (
        f"{summary.file}: {summary.lines_read} lines read, {summary.events_stored} events stored, "
        f"{summary.duplicates} duplicates, {summary.refused} refused{warned}"
    )


@app.command("ingest")
@guarded
def logs_ingest(
    ctx: typer.Context,
    realm: Annotated[str, typer.Argument(help="Realm the logs are of.")],
    files: Annotated[list[str], typer.Argument(help="Log files (- for stdin, .gz read as such).")],
    fmt: Annotated[str, typer.Option("--format", help="Log format, e.g. juniper-pba, csv.")],
    follow: Annotated[
        bool,
        typer.Option("--follow", help="Tail one file through rotation; resumes after restart."),
    ] = False,
    until_idle: Annotated[
        bool, typer.Option("--until-idle", help="With --follow: stop when nothing new is there.")
    ] = False,
    year: Annotated[
        int | None,
        typer.Option(
            "--year",
            click_type=Integer(),
            help="Year of the first syslog time that carries none; it turns with the months.",
        ),
    ] = None,
    tz: Annotated[
        str | None, typer.Option("--tz", help="IANA zone of headers that carry no offset.")
    ] = None,
    exporter: Annotated[
        str, typer.Option("--exporter", help="nfdump-json natEvent numbering: iana or juniper.")
    ] = "iana",
    log_hold: Annotated[
        str | None,
        typer.Option(
            "--log-hold",
            help="How long an allocation without a release is held (declared for the realm).",
        ),
    ] = None,
    log_interim: Annotated[
        str | None,
        typer.Option(
            "--log-interim",
            help="How often the NAT re-logs a block it still holds (declared for the realm).",
        ),
    ] = None,
    json_out: JsonOpt = False,
) -> None:
    """Store the allocation lines of FILE... (a summary per file; refused lines on stderr)."""
    from detnat.errors import InvalidInput

    if fmt not in formats.FORMATS:
        raise InvalidInput(
            f"no log format {fmt!r}; there are {', '.join(sorted(formats.FORMATS))}",
            field="--format",
        )
    if exporter not in ("iana", "juniper"):
        raise InvalidInput("must be iana or juniper", field="--exporter")
    hold = logs.check_hold(times.parse_duration(log_hold, field="--log-hold") if log_hold else None)
    interim = logs.check_interim(
        times.parse_duration(log_interim, field="--log-interim") if log_interim else None
    )
    options = formats.ParseOptions(year=year, tz=tz, exporter=exporter)
    actor = runtime.operator(ctx)

    def shown(summary: logs.IngestSummary) -> None:
        emit_json(summary.to_json()) if json_out else print(_summary_line(summary))

    if follow:
        if len(files) != 1:
            raise InvalidInput("--follow tails one file", field="--follow")
        how = logs.Follow(
            files[0],
            realm,
            fmt,
            formats.parser(fmt),
            options=options,
            log_hold=hold,
            log_interim=interim,
            until_idle=until_idle,
        )
        total = logs.follow(
            runtime.store_session,
            how,
            by=actor,
            request_id=runtime.request_id,
            on_refused=_print_refused,
            on_chunk=None if until_idle else shown,
            on_gap=_print_gap,
        )
        shown(total)
        return
    for path in files:
        reading = logs.Reading.open(path)
        try:
            items = formats.parse_lines(fmt, reading.lines(), file=reading.name, options=options)
            with runtime.store_session() as session:
                summary = logs.ingest(
                    session,
                    realm,
                    items,
                    reading,
                    fmt=fmt,
                    options=options,
                    by=actor,
                    request_id=runtime.request_id(),
                    log_hold=hold,
                    log_interim=interim,
                    on_refused=_print_refused,
                )
        finally:
            reading.close()
        shown(summary)


@app.command("prune")
@guarded
def logs_prune(
    ctx: typer.Context,
    realm: Annotated[str, typer.Argument(help="Realm whose logs are pruned.")],
    before: Annotated[
        str, typer.Option("--before", help="Drop the whole months that end at or before this.")
    ],
    json_out: JsonOpt = False,
) -> None:
    """Drop a realm's log events of the whole months before T (audited: logs.prune)."""
    moment = times.parse_instant(before, field="--before")
    with runtime.store_session() as session:
        dropped = logs.prune(
            session, realm, before=moment, by=runtime.operator(ctx), request_id=runtime.request_id()
        )
    if json_out:
        emit_json({"realm": realm, "before": times.format_instant(moment), "months": dropped})
    else:
        print(
            f"{realm}: {len(dropped)} months dropped{': ' if dropped else ''}{', '.join(dropped)}"
        )


@app.command("check")
@guarded
def logs_check(
    realm: Annotated[str, typer.Argument(help="Realm whose logs are checked against its plans.")],
    start: Annotated[str | None, typer.Option("--from", help="Check from this instant.")] = None,
    end: Annotated[str | None, typer.Option("--to", help="Check up to this instant.")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Where the logs and the plans disagree, and where the logs are thin (exit 4 if anywhere)."""
    from detnat.service.clock import utcnow

    lo = times.parse_instant(start, field="--from") if start else None
    hi = times.parse_instant(end, field="--to") if end else None
    with runtime.store_session() as session:
        found, counts = log_check.check(session, realm, start=lo, end=hi, now=utcnow())
    for finding in found:
        shown = finding.to_json(realm)
        if json_out:
            emit_json(shown)
        else:
            print(
                f"{shown['kind']}: {shown['public_ip']} ports {shown['port_ranges'][0][0]}-"
                f"{shown['port_ranges'][-1][1]} {shown['subscriber']} from {shown['from']} to "
                f"{shown['to']}: {shown['detail']} ({', '.join(shown['lines'][:3])})"
            )
    if json_out:
        emit_json({"realm": realm, **counts, "ok": not found})
    else:
        print(f"{realm}: {counts['intervals']} intervals checked, {counts['findings']} findings")
    raise typer.Exit(EXIT_CONFLICT if found else EXIT_OK)
