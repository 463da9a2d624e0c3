"""``detnat datapath``: render, apply and verify a plan on a datapath backend; export it for others.

The plan comes from a file (``--plan``) or from the store
(``--realm R``: the version of R in force now). ``verify`` exits 0 when the datapath agrees with
the plan and 4 (conflict) on drift, after naming every subscriber that differs.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Annotated

import typer

from cli import runtime
from cli.output import EXIT_CONFLICT, EXIT_OK, Integer, emit_json, guarded
from detnat.datapath import Datapath, DriftReport, available, load_backend
from detnat.datapath.exports import FORMATS, export
from detnat.engine import Mapper, compile_plan
from detnat.errors import InvalidInput, NotFound
from detnat.planfile import load_mapper

PlanOpt = Annotated[
    Path | None, typer.Option("--plan", help="The plan file to enforce (no database).")
]
RealmOpt = Annotated[
    str | None, typer.Option("--realm", help="The plan of this realm in force now (the store).")
]
BackendOpt = Annotated[
    str, typer.Option("--backend", help="Datapath backend (see `detnat datapath backends`).")
]
OptionOpt = Annotated[
    list[str] | None,
    typer.Option("--option", help="Backend setting KEY=VALUE (repeatable), e.g. table=detnat."),
]
app = typer.Typer(
    help="Enforce a plan on a datapath (nftables ...), check it agrees, export it.",
    no_args_is_help=True,
)

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output.")]
OutputOpt = Annotated[
    Path | None, typer.Option("--output", "-o", help="Write to this file (default stdout).")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite an existing -o file.")]


def _options(pairs: list[str] | None) -> dict[str, str]:
    options: dict[str, str] = {}
    for pair in pairs or []:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise InvalidInput(f"{pair!r} is not KEY=VALUE", field="--option")
        if key in options:
            raise InvalidInput(f"option {key!r} given twice", field="--option")
        options[key] = value
    return options


def _backend(name: str, pairs: list[str] | None) -> Datapath:
    return load_backend(name).from_options(_options(pairs))


def _realm_mapper(realm: str) -> Mapper:
    """The plan of ``realm`` in force now, as lookups see it (approved versions only).

    Read from the same timeline snapshot the lookups answer from, so the datapath enforces
    exactly the version a "who held A:P at T" answer would name; nothing is written.
    """
    from detnat.planfile import plan_from_data
    from detnat.service.lookups import realm_timeline
    from detnat.service.plans import utcnow
    from detnat.service.timelines import TimelineCache

    with runtime.store_session() as session:
        timeline = realm_timeline(TimelineCache().get(session), realm)
        session.rollback()  # read only
    index = timeline.in_force_at(utcnow())
    if index < 0:
        raise NotFound(f"realm {realm!r} has no approved plan in force now", field="--realm")
    version = timeline.versions[index]
    if version.plan is None:
        raise NotFound(
            f"realm {realm!r} is retired (version {version.seq}): no plan to enforce",
            field="--realm",
        )
    print(
        f"detnat: realm {realm} version {version.seq} (content sha256 {version.content_sha256}), "
        f"in force since {version.effective_from.isoformat()}",
        file=sys.stderr,
    )
    return compile_plan(plan_from_data(version.plan))


def _mapper(plan: Path | None, realm: str | None) -> Mapper:
    if (plan is None) == (realm is None):
        raise InvalidInput("give either --plan FILE or --realm REALM")
    if plan is not None:
        return load_mapper(plan)
    assert realm is not None
    return _realm_mapper(realm)


def _write(chunks: Iterable[str], output: Path | None, force: bool) -> None:
    if output is None:
        sys.stdout.writelines(chunks)
        sys.stdout.flush()
        return
    with runtime.new_file(output, force=force) as out:  # never a half-written configuration
        out.writelines(chunks)


def _print_report(name: str, report: DriftReport, limit: int) -> None:
    shown = report.drifts[:limit] if limit else report.drifts
    for drift in shown:
        print(f"drift  {drift}")
    if len(report.drifts) > len(shown):
        print(f"drift  ... and {len(report.drifts) - len(shown)} more (--limit 0 shows all)")
    for problem in report.problems:
        print(f"problem  {problem}")
    verdict = "agrees with the plan" if report.ok else "DIFFERS from the plan"
    print(
        f"{name}: {verdict}: {report.checked} subscribers checked, {len(report.drifts)} differ, "
        f"{len(report.problems)} problem(s)"
    )


@app.command("backends")
@guarded
def backends(json_out: JsonOpt = False) -> None:
    """The datapath backends there are, and their options."""
    for backend in available().values():
        options = load_backend(backend.name).options
        if json_out:
            emit_json(
                {
                    "name": backend.name,
                    "target": backend.target,
                    "source": backend.source,
                    "options": dict(options),
                }
            )
            continue
        print(f"{backend.name}  ({backend.target}, {backend.source})")
        for key, meaning in options.items():
            print(f"    --option {key}=...  {meaning}")


@app.command("render")
@guarded
def render(
    backend: BackendOpt,
    plan: PlanOpt = None,
    realm: RealmOpt = None,
    option: OptionOpt = None,
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """Print the datapath configuration for the plan (nothing is loaded)."""
    datapath = _backend(backend, option)
    _write(datapath.render(_mapper(plan, realm)), output, force)


@app.command("apply")
@guarded
def apply(
    backend: BackendOpt,
    plan: PlanOpt = None,
    realm: RealmOpt = None,
    option: OptionOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Load the plan into the datapath, atomically, then verify it took."""
    datapath = _backend(backend, option)
    mapper = _mapper(plan, realm)
    datapath.apply(mapper)
    report = datapath.verify(mapper)
    if json_out:
        emit_json({"applied": True, **report.to_json()})
    else:
        _print_report(backend, report, limit=50)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_CONFLICT)


@app.command("verify")
@guarded
def verify(
    backend: BackendOpt,
    plan: PlanOpt = None,
    realm: RealmOpt = None,
    option: OptionOpt = None,
    limit: Annotated[
        int,
        typer.Option(
            "--limit", click_type=Integer(), help="Show at most this many drifts (0: all)."
        ),
    ] = 50,
    json_out: JsonOpt = False,
) -> None:
    """Compare the live datapath with the plan; exit 4 naming every subscriber that differs."""
    datapath = _backend(backend, option)
    report = datapath.verify(_mapper(plan, realm))
    if json_out:
        emit_json(report.to_json())
    else:
        _print_report(backend, report, limit)
    raise typer.Exit(EXIT_OK if report.ok else EXIT_CONFLICT)


@app.command("export")
@guarded
def export_command(
    format_name: Annotated[str, typer.Option("--format", help=f"One of: {', '.join(FORMATS)}.")],
    plan: PlanOpt = None,
    realm: RealmOpt = None,
    br_address: Annotated[
        str | None,
        typer.Option("--br-address", help="snabb: the AFTR's IPv6 address (br-address)."),
    ] = None,
    table: Annotated[str, typer.Option("--table", help="nftables: the table name.")] = "detnat",
    output: OutputOpt = None,
    force: ForceOpt = False,
) -> None:
    """The plan for another datapath: VPP det44 commands, Snabb binding table, nftables file."""
    if format_name not in FORMATS:
        raise InvalidInput(f"{format_name!r} is not one of {', '.join(FORMATS)}", field="--format")
    mapper = _mapper(plan, realm)
    chunks = export(mapper, format_name, br_address=br_address, table=table)
    # Render the first chunk before opening the output: a refusal leaves no file behind.
    iterator = iter(chunks)
    first = next(iterator, "")
    _write(_chain(first, iterator), output, force)


def _chain(first: str, rest: Iterable[str]) -> Iterable[str]:
    yield first
    yield from rest
