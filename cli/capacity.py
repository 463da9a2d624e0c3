"""CLI for capacity planning: ``detnat capacity size|check`` and ``detnat plan diff``.

``register(app, plan_app)`` adds them. The computation is :mod:`detnat.capacity` (pure); this module
reads files, resolves ``REALM@VERSION`` through the store, prints, and writes charts and CSV.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TextIO

import typer

from cli.output import emit_json, guarded
from detnat.capacity import (
    CSV_HEADER,
    DEFAULT_SAMPLES,
    Demand,
    SizingRequest,
    diff_plans,
    evaluate,
    histogram_from_csv,
    parse_demand,
    parse_percentiles,
    size,
)
from detnat.capacity.charts import chart_panels, render
from detnat.capacity.sizing import DEFAULT_POOL_TARGET, DynamicPolicy
from detnat.engine import Mapper, Plan, Ports, compile_plan
from detnat.errors import InvalidInput

if TYPE_CHECKING:  # the store is imported only when a command needs it (CLI start-up time)
    pass

JsonOpt = Annotated[bool, typer.Option("--json", help="One JSON object with every figure.")]
DemandOpt = Annotated[
    str | None,
    typer.Option(
        "--demand", help="Preset light|typical|heavy (default typical), constant:N, uniform:A-B."
    ),
]
PercentilesOpt = Annotated[
    str | None,
    typer.Option("--percentiles", help="Peak ports by percentile, e.g. 50=200,90=500,100=5000."),
]
HistogramOpt = Annotated[
    Path | None,
    typer.Option(
        "--histogram",
        help="CSV measured on your network: ports | ports,subscribers | ports_from,ports_to,"
        "subscribers.",
    ),
]
TargetOpt = Annotated[
    float | None,
    typer.Option("--target", help="Largest acceptable share of subscribers exceeding their block."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Monte Carlo seed (same seed, same figures).")]
SamplesOpt = Annotated[
    int, typer.Option("--samples", help="Subscribers drawn per Monte Carlo run (0: exact only).")
]
ChartOpt = Annotated[
    Path | None, typer.Option("--chart", help="Write the charts to FILE.svg or FILE.png.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]


def register(app: typer.Typer, plan_app: typer.Typer) -> None:
    capacity_app = typer.Typer(
        help="Port budgets and addresses: size a deployment, check a plan.", no_args_is_help=True
    )
    capacity_app.command("size")(capacity_size)
    capacity_app.command("check")(capacity_check)
    app.add_typer(capacity_app, name="capacity")
    plan_app.command("diff")(plan_diff)


# -- inputs ----------------------------------------------------------------------------------------


def _demand(preset: str | None, percentiles: str | None, histogram: Path | None) -> Demand:
    given = [x for x in (preset, percentiles, histogram) if x is not None]
    if len(given) > 1:
        raise InvalidInput("give one of --demand, --percentiles, --histogram", field="demand")
    if percentiles is not None:
        return parse_percentiles(percentiles)
    if histogram is not None:
        try:
            with histogram.open(encoding="utf-8", newline="") as lines:
                return histogram_from_csv(lines, source=str(histogram))
        except (OSError, UnicodeDecodeError) as exc:
            raise InvalidInput(f"cannot read: {exc}", field=str(histogram)) from None
    return parse_demand(preset or "typical")


def _dynamic(text: str) -> DynamicPolicy:
    if text in ("auto", "none"):
        return "auto" if text == "auto" else "none"
    if text.isascii() and text.isdigit():
        return int(text)
    raise InvalidInput(f"{text!r} is not auto, none or a number of blocks", field="--dynamic")


def _decimal(text: str) -> bool:
    """ASCII digits only (``int()`` would also take ``１０２４`` or ``١٠٢٤``), at most 9."""
    return 0 < len(text) <= 9 and text.isascii() and text.isdigit()


def _ports(text: str, exclude: str | None) -> Ports:
    first, sep, last = text.partition("-")
    if not (sep and _decimal(first) and _decimal(last)):
        raise InvalidInput(f"{text!r} is not FIRST-LAST (e.g. 1024-65535)", field="--ports")
    excluded: list[tuple[int, int]] = []
    for part in (p.strip() for p in (exclude or "").split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        if not _decimal(lo) or (hi and not _decimal(hi)):
            raise InvalidInput(f"{part!r} is not a port or a range", field="--exclude-ports")
        excluded.append((int(lo), int(hi or lo)))
    return Ports(int(first), int(last), tuple(excluded))


def _plans(*specs: str) -> list[tuple[Plan, dict[str, object]]]:
    """Each spec is a plan file (if it exists) or REALM[@VERSION] in the store."""
    from detnat.planfile import read_plan

    out: list[tuple[Plan, dict[str, object]] | None] = []
    refs = []
    for n, spec in enumerate(specs):
        if Path(spec).exists():
            out.append((read_plan(spec), {"file": spec}))
        else:
            from detnat.service.capacity import parse_ref

            refs.append((n, parse_ref(spec, field=spec)))
            out.append(None)
    if refs:
        from cli.store import store_session
        from detnat.service.capacity import plan_of

        with store_session() as session:
            for n, ref in refs:
                out[n] = plan_of(session, ref, field=specs[n])
    return [item for item in out if item is not None]


def _write_atomically(target: Path, force: bool, write: Callable[[TextIO], None]) -> None:
    """Write through a temporary file beside ``target``: never a half-written result."""
    if target.exists() and not force:
        raise InvalidInput("already exists; pass --force to overwrite it", field=str(target))
    fd, tmp = tempfile.mkstemp(dir=target.parent if str(target.parent) else ".", prefix=".detnat-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as sink:
            write(sink)
        os.replace(tmp, target)
    except BaseException:
        os.unlink(tmp)
        raise


def _write_chart(
    path: Path,
    force: bool,
    demand: Demand,
    *,
    subscribers: int,
    usable: int,
    marks: list[tuple[str, int, int]],
    target: float | None,
    title: str,
) -> None:
    fmt = path.suffix.lower().lstrip(".")
    if fmt not in ("svg", "png"):
        raise InvalidInput("the chart file must end in .svg or .png", field="--chart")
    panels = chart_panels(
        demand, subscribers=subscribers, usable_ports=usable, marks=marks, target=target
    )
    data = render(panels, title, fmt)
    if path.exists() and not force:
        raise InvalidInput("already exists; pass --force to overwrite it", field=str(path))
    try:
        path.write_bytes(data)
    except OSError as exc:
        raise InvalidInput(f"cannot write: {exc.strerror}", field=str(path)) from None


# -- printing --------------------------------------------------------------------------------------


def _num(value: object) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        if value == 0:
            return "0"
        if abs(value) < 0.01:
            return f"{value:.2e}"
        if abs(value) < 1:
            return f"{value:.4f}"
        return f"{value:,.0f}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


def _pair(figure: object) -> str:
    assert isinstance(figure, dict)
    return f"{_num(figure['analytic'])} / {_num(figure['monte_carlo'])}"


def _demand_line(demand: dict[str, object]) -> str:
    pct = demand["percentiles"]
    assert isinstance(pct, dict)
    shown = ", ".join(f"p{k} {v}" if k != "100" else f"max {v}" for k, v in pct.items())
    return f"demand {demand['name']}: mean {_num(demand['mean'])} ports; {shown}"


_COLUMNS: tuple[tuple[str, Callable[[dict[str, object]], str]], ...] = (
    ("block", lambda c: _num(c["block_size"])),
    ("ratio", lambda c: _num(c["blocks_per_address"])),
    ("dyn", lambda c: _num(c["dynamic_blocks"])),
    ("addresses", lambda c: _num(c["addresses"])),
    ("exceeding (exact / MC)", lambda c: _pair(c["exceeding_share"])),
    ("overflow ports", lambda c: _pair(c["overflow_ports"])),
    ("addr out of overflow", lambda c: _pair(c["addresses_out_of_overflow"])),
    ("tail/addr", lambda c: _num(c["unused_tail_ports_per_address"])),
)


def _table(candidates: list[dict[str, object]]) -> list[str]:
    rows = [[name for name, _ in _COLUMNS]] + [[f(c) for _, f in _COLUMNS] for c in candidates]
    widths = [max(len(r[i]) for r in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.rjust(w) for cell, w in zip(r, widths, strict=True)) for r in rows]
    for n, c in enumerate(candidates, start=1):
        roles = c.get("roles") or []
        assert isinstance(roles, list)
        if roles:
            lines[n] += f"  <- {', '.join(roles)}"
    return lines


# -- capacity size ---------------------------------------------------------------------------------


@guarded
def capacity_size(
    subscribers: Annotated[int, typer.Option("--subscribers", help="Subscribers to serve.")],
    demand: DemandOpt = None,
    percentiles: PercentilesOpt = None,
    histogram: HistogramOpt = None,
    addresses: Annotated[
        int | None, typer.Option("--addresses", help="Public addresses available.")
    ] = None,
    target: TargetOpt = None,
    dynamic: Annotated[
        str,
        typer.Option(
            "--dynamic", help="Dynamic overflow blocks per address: none, auto, or a number."
        ),
    ] = "none",
    pool_target: Annotated[
        float,
        typer.Option(
            "--pool-target",
            help="With --dynamic auto: largest acceptable share of addresses out of overflow.",
        ),
    ] = DEFAULT_POOL_TARGET,
    ports: Annotated[str, typer.Option("--ports", help="Port range FIRST-LAST.")] = "1024-65535",
    exclude_ports: Annotated[
        str | None, typer.Option("--exclude-ports", help="Ports never used, e.g. 1723,5060-5061.")
    ] = None,
    seed: SeedOpt = 0,
    samples: SamplesOpt = DEFAULT_SAMPLES,
    chart: ChartOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Recommend block size, dynamic blocks and addresses for N subscribers."""
    model = _demand(demand, percentiles, histogram)
    request = SizingRequest(
        subscribers=subscribers,
        demand=model,
        addresses=addresses,
        target=target,
        dynamic=_dynamic(dynamic),
        pool_target=pool_target,
        ports=_ports(ports, exclude_ports),
        seed=seed,
        samples=samples,
    )
    started = time.perf_counter()
    result = size(request)
    elapsed = time.perf_counter() - started
    candidates = result["candidates"]
    assert isinstance(candidates, list)
    if chart is not None:
        usable = result["usable_ports_per_address"]
        assert isinstance(usable, int)
        _write_chart(
            chart,
            force,
            model,
            subscribers=subscribers,
            usable=usable,
            marks=[
                (", ".join(c["roles"]) or f"{c['block_size']}", c["block_size"], c["addresses"])
                for c in candidates
                if c["roles"]
            ]
            or [(f"{c['block_size']}", c["block_size"], c["addresses"]) for c in candidates],
            target=target,
            title=f"Sizing {subscribers:,} subscribers, demand {model.name}",
        )
    if json_out:
        emit_json(result)
        return
    demand_json = result["demand"]
    assert isinstance(demand_json, dict)
    print(
        f"{subscribers:,} subscribers, {result['usable_ports_per_address']:,} usable ports per "
        "address"
    )
    print(_demand_line(demand_json))
    chosen = result["recommended"]
    if isinstance(chosen, dict):
        print(
            f"recommended: block size {chosen['block_size']} (ratio {chosen['blocks_per_address']}"
            f"), dynamic blocks {chosen['dynamic_blocks']} -> {chosen['addresses']:,} addresses, "
            f"{_num(chosen['exceeding_share']['analytic'])} of subscribers exceed their block"
        )
        print(f"  plan: block: {json.dumps(chosen['plan']['block'])}")
    else:
        print("no candidate meets every constraint")
    print()
    for line in _table(candidates):
        print(line)
    notes = result["notes"]
    assert isinstance(notes, list)
    for note in notes:
        print(f"note: {note}")
    print(
        f"\nexact / Monte Carlo ({samples:,} subscribers per candidate, seed {seed}, "
        f"{elapsed:.2f} s)"
    )
    if chart is not None:
        print(f"chart: {chart}")


# -- capacity check --------------------------------------------------------------------------------


@guarded
def capacity_check(
    plan: Annotated[str, typer.Argument(help="Plan file, or REALM[@VERSION|@current|@latest].")],
    demand: DemandOpt = None,
    percentiles: PercentilesOpt = None,
    histogram: HistogramOpt = None,
    target: TargetOpt = None,
    seed: SeedOpt = 0,
    samples: SamplesOpt = DEFAULT_SAMPLES,
    chart: ChartOpt = None,
    force: ForceOpt = False,
    json_out: JsonOpt = False,
) -> None:
    """Capacity figures of a plan file or a realm's version under a demand."""
    model = _demand(demand, percentiles, histogram)
    ((loaded, source),) = _plans(plan)
    mapper = compile_plan(loaded)
    started = time.perf_counter()
    result = {
        "source": source,
        **evaluate(mapper, model, target=target, seed=seed, samples=samples),
    }
    elapsed = time.perf_counter() - started
    figures = result["figures"]
    assert isinstance(figures, dict)
    if chart is not None:
        _write_chart(
            chart,
            force,
            model,
            subscribers=figures["subscribers"],
            usable=figures["usable_ports_per_address"],
            marks=[("this plan", figures["block_size"], figures["addresses"])],
            target=target,
            title=f"Capacity of {plan}, demand {model.name}",
        )
    if json_out:
        emit_json(result)
        return
    demand_json = result["demand"]
    assert isinstance(demand_json, dict)
    print(f"{plan}: {figures['subscribers']:,} subscribers on {figures['addresses']:,} addresses")
    print(_demand_line(demand_json))
    rows = (
        ("ports per subscriber", _num(figures["block_size"])),
        (
            "blocks per address (dynamic)",
            f"{figures['blocks_per_address']} ({figures['dynamic_blocks']})",
        ),
        ("subscribers per address", _num(figures["subscribers_per_address"])),
        ("unused tail ports per address", _num(figures["unused_tail_ports_per_address"])),
        ("spare deterministic blocks", _num(figures["spare_blocks"])),
        ("exceeding their block (exact / MC)", _pair(figures["exceeding_share"])),
        ("subscribers exceeding", _pair(figures["exceeding_subscribers"])),
        ("overflow ports needed", _pair(figures["overflow_ports"])),
        ("overflow blocks needed (logged)", _pair(figures["overflow_blocks"])),
        ("addresses out of overflow", _pair(figures["addresses_out_of_overflow"])),
        ("overflow blocks unmet", _pair(figures["overflow_blocks_unmet"])),
    )
    for name, value in rows:
        print(f"  {name:<38} {value}")
    if result["meets_target"] is not None:
        print(f"  {'meets target ' + str(target):<38} {'yes' if result['meets_target'] else 'no'}")
    notes = result["notes"]
    assert isinstance(notes, list)
    for note in notes:
        print(f"note: {note}")
    print(f"\nexact / Monte Carlo ({samples:,} samples, seed {seed}, {elapsed:.2f} s)")


# -- plan diff -------------------------------------------------------------------------------------


def _side(mapper: Mapper, source: dict[str, object]) -> str:
    where = source.get("file") or f"{source['realm']} v{source['version']}"
    s = mapper.summary()
    return (
        f"{where} ({s['algorithm']}, {_num(s['subscribers'])} subscribers, "
        f"{_num(s['ports_per_subscriber'])} ports each, {_num(s['usable_addresses'])} addresses)"
    )


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
    json_out: JsonOpt = False,
) -> None:
    """What a plan change does to subscribers: kept, ports changed, address changed; capacity."""
    (old_plan, old_source), (new_plan, new_source) = _plans(old, new)
    old_mapper, new_mapper = compile_plan(old_plan), compile_plan(new_plan)
    compared = diff_plans(old_mapper, new_mapper)
    report = {"old": old_source, "new": new_source, **compared.report()}
    if subscribers is not None:

        def write(sink: TextIO) -> None:
            writer = csv.writer(sink, lineterminator="\n")
            writer.writerow(CSV_HEADER)
            for rows in compared.rows(changed_only=changed_only):
                writer.writerows(rows)

        _write_atomically(subscribers, force, write)
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
        f"subscribers in both: {_num(s['common'])}: {_num(s['kept'])} keep their allocation, "
        f"{_num(s['ports_changed'])} change ports only, {_num(s['address_changed'])} change "
        f"address; {_num(s['added'])} added, {_num(s['removed'])} removed"
    )
    print(
        f"ports: {_num(p['gained'])} gained by {_num(p['subscribers_gaining'])} subscribers, "
        f"{_num(p['lost'])} lost by {_num(p['subscribers_losing'])}"
    )
    before, after = cap["before"], cap["after"]
    print(
        f"capacity: {_num(before['capacity'])} -> {_num(after['capacity'])} subscribers "
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
