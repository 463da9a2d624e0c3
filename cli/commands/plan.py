"""``detnat plan``: plan files (check, table, canonical), their versions in the store (publish,
approve, history, show), and what a change does to subscribers (diff).

File commands need no database; ``diff`` takes files or ``REALM@VERSION``
(:func:`cli.runtime.load_plans`); its figures are :mod:`detnat.capacity`'s.
"""

from __future__ import annotations

import csv
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from cli import runtime
from cli.output import Integer, emit_json, guarded
from cli.output import figure_text as num
from detnat.capacity import CSV_HEADER, diff_plans
from detnat.engine import Mapper, compile_plan, format_ipv4
from detnat.errors import InvalidInput
from detnat.planfile import canonical_json, load_mapper, read_plan

if TYPE_CHECKING:
    from detnat.service import plans, times
else:  # loaded when a store command runs: file commands start without SQLAlchemy
    plans = runtime.lazy_module("detnat.service.plans")
    times = runtime.lazy_module("detnat.service.times")

app = typer.Typer(help="Check plan files, list their allocations, manage them in the store.")

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON Lines: one object per query.")]
StoreJsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (one object per line).")]
DiffJsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object with every figure.")]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]


# -- plan files ------------------------------------------------------------------------------------


@app.command("check")
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


@app.command("table")
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


@app.command("canonical")
@guarded
def plan_canonical(file: Annotated[Path, typer.Argument(help="Plan file (YAML or JSON).")]) -> None:
    """The plan's canonical JSON (what the store hashes)."""
    print(canonical_json(read_plan(file)))


# -- versions in the store -------------------------------------------------------------------------


@app.command("publish")
@guarded
def plan_publish(
    ctx: typer.Context,
    realm: Annotated[str, typer.Argument(help="Realm to publish into.")],
    file: Annotated[
        Path | None, typer.Argument(help="Plan file; omit with --retire.", show_default=False)
    ] = None,
    effective_from: Annotated[
        str, typer.Option("--effective-from", help="RFC 3339 instant, or 'now'.")
    ] = "",
    tz: Annotated[str | None, typer.Option("--tz", help="Zone of a naive time.")] = None,
    reason: Annotated[str, typer.Option("--reason", help="Change reference.")] = "",
    correction: Annotated[
        bool, typer.Option("--correction", help="Publish in the past (a correction).")
    ] = False,
    retire: Annotated[bool, typer.Option("--retire", help="No plan from this instant on.")] = False,
    json_out: StoreJsonOpt = False,
) -> None:
    """Append a plan version to a realm's timeline."""
    if (file is None) != retire:
        raise InvalidInput("give a plan FILE, or --retire")
    if not effective_from:
        raise InvalidInput("required", field="--effective-from")
    plan = read_plan(file) if file is not None else None
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        when = (
            None  # the publish's own clock reading: "now" is never "in the past"
            if effective_from == "now"
            else times.parse_instant(effective_from, tz=tz, field="--effective-from")
        )
        version = plans.publish(
            session,
            realm,
            plan,
            effective_from=when,
            reason=reason,
            by=actor,
            request_id=runtime.request_id(),
            correction=correction,
        )
        shown = plans.version_json(session, plans.get_realm(session, realm), version)
    if json_out:
        emit_json(shown)
    else:
        pending = "" if shown["approved"] else " (pending: a second admin must approve it)"
        print(
            f"{realm} version {shown['version']} effective {shown['effective_from']} "
            f"sha256 {shown['content_sha256']}{pending}"
        )


@app.command("approve")
@guarded
def plan_approve(
    ctx: typer.Context,
    realm: Annotated[str, typer.Argument(help="Realm.")],
    version: Annotated[
        int, typer.Argument(click_type=Integer(), help="Version number to approve.")
    ],
    content_sha256: Annotated[
        str | None,
        typer.Option("--content-sha256", help="The content hash you reviewed (checked)."),
    ] = None,
    json_out: StoreJsonOpt = False,
) -> None:
    """Approve a published version (four eyes: not by its publisher); lookups then use it."""
    actor = runtime.operator(ctx)
    with runtime.store_session() as session:
        plans.approve(
            session,
            realm,
            version,
            by=actor,
            request_id=runtime.request_id(),
            content_sha256=content_sha256,
        )
        row = plans.get_realm(session, realm)
        shown = plans.version_json(session, row, plans.get_version(session, row, version))
    if json_out:
        emit_json(shown)
    else:
        print(f"{realm} version {version} approved by {actor.name}")


@app.command("history")
@guarded
def plan_history(realm: str, json_out: StoreJsonOpt = False) -> None:
    """Every version of a realm, in publication order; "pending-approval" marks a version
    lookups do not use until a second admin approves it (JSON: ``pending_approval``)."""
    with runtime.store_session() as session:
        row = plans.get_realm(session, realm)
        for version in plans.history(session, row):
            shown = plans.version_json(session, row, version)
            # A superseded version is never approved: a correction took its place.
            shown["pending_approval"] = not shown["approved"] and not shown["superseded"]
            if json_out:
                emit_json(shown)
                continue
            marks = "pending-approval " if shown["pending_approval"] else ""
            marks += "retired " if shown["retired"] else ""
            marks += "correction " if shown["correction"] else ""
            marks += "superseded " if shown["superseded"] else ""
            print(
                f"v{shown['version']:<4} {shown['effective_from']}  "
                f"{str(shown['content_sha256'] or '-')[:12]}  {marks}{shown['reason']}"
            )


@app.command("show")
@guarded
def plan_show(
    realm: str,
    version: Annotated[
        int | None, typer.Argument(click_type=Integer(), help="Version (default: latest).")
    ] = None,
    json_out: StoreJsonOpt = False,
) -> None:
    """One version with its plan."""
    with runtime.store_session() as session:
        row = plans.get_realm(session, realm)
        shown = plans.version_json(
            session, row, plans.get_version(session, row, version), with_plan=True
        )
    if json_out:
        emit_json(shown)
    else:
        print(json.dumps(shown, indent=2))


# -- diff ------------------------------------------------------------------------------------------


def _side(mapper: Mapper, source: dict[str, object]) -> str:
    where = source.get("file") or f"{source['realm']} v{source['version']}"
    s = mapper.summary()
    return (
        f"{where} ({s['algorithm']}, {num(s['subscribers'])} subscribers, "
        f"{num(s['ports_per_subscriber'])} ports each, {num(s['usable_addresses'])} addresses)"
    )


@app.command("diff")
@guarded
def plan_diff(
    old: Annotated[str, typer.Argument(help="Old plan: file or REALM@VERSION.")],
    new: Annotated[str, typer.Argument(help="New plan: file or REALM@VERSION.")],
    subscribers: Annotated[
        Path | None,
        typer.Option("--subscribers", help="Write every subscriber's change to this CSV."),
    ] = None,
    changed_only: Annotated[
        bool, typer.Option("--changed-only", help="In --subscribers, only those that change.")
    ] = False,
    force: ForceOpt = False,
    json_out: DiffJsonOpt = False,
) -> None:
    """What a plan change does to subscribers: kept, ports changed, address changed; capacity."""
    (old_plan, old_source), (new_plan, new_source) = runtime.load_plans(old, new)
    old_mapper, new_mapper = compile_plan(old_plan), compile_plan(new_plan)
    compared = diff_plans(old_mapper, new_mapper)
    report = {"old": old_source, "new": new_source, **compared.report()}
    if subscribers is not None:
        with runtime.new_file(subscribers, force=force) as sink:
            writer = csv.writer(sink, lineterminator="\n")
            writer.writerow(CSV_HEADER)
            for rows in compared.rows(changed_only=changed_only):
                writer.writerows(rows)
    if json_out:
        emit_json(report)
        return
    s = report["subscribers"]
    p = report["ports"]
    cap = report["capacity"]
    assert isinstance(s, dict) and isinstance(p, dict) and isinstance(cap, dict)
    print(f"old: {_side(old_mapper, old_source)}")
    print(f"new: {_side(new_mapper, new_source)}")
    print(
        f"subscribers in both: {num(s['common'])}: {num(s['kept'])} keep their allocation, "
        f"{num(s['ports_changed'])} change ports only, {num(s['address_changed'])} change "
        f"address; {num(s['added'])} added, {num(s['removed'])} removed"
    )
    print(
        f"ports: {num(p['gained'])} gained by {num(p['subscribers_gaining'])} subscribers, "
        f"{num(p['lost'])} lost by {num(p['subscribers_losing'])}"
    )
    before, after = cap["before"], cap["after"]
    print(
        f"capacity: {num(before['capacity'])} -> {num(after['capacity'])} subscribers "
        f"(utilisation {before['utilisation']:.1%} -> {after['utilisation']:.1%})"
    )
    changes = report["changes"]
    assert isinstance(changes, list)
    for change in changes:
        print(f"change: {change}")
    warnings = report["warnings"]
    assert isinstance(warnings, list)
    for warning in warnings:
        print(f"warning: {warning['message']}", file=sys.stderr)
    if subscribers is not None:
        print(f"per subscriber: {subscribers}")
