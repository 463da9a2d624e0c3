"""``detnat capacity size|check``: port budgets and addresses (``detnat plan diff`` is in
:mod:`cli.commands.plan`).

The computation is :mod:`detnat.capacity` (pure); this module reads the demand, resolves
``REALM@VERSION`` through the store (:func:`cli.runtime.load_plans`), prints, and writes charts.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer

from cli import runtime
from cli.output import Integer, Real, emit_json, guarded
from cli.output import figure_text as num
from detnat.capacity import (
    DEFAULT_SAMPLES,
    Demand,
    SizingRequest,
    evaluate,
    histogram_from_csv,
    parse_demand,
    parse_percentiles,
    size,
)
from detnat.capacity.charts import chart_panels, render
from detnat.capacity.sizing import DEFAULT_POOL_TARGET, DynamicPolicy
from detnat.engine import Ports, compile_plan
from detnat.errors import InvalidInput

app = typer.Typer(
    help="Port budgets and addresses: size a deployment, check a plan.", no_args_is_help=True
)

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
    typer.Option(
        "--target",
        click_type=Real(),
        help="Largest acceptable share of subscribers exceeding their block.",
    ),
]
SeedOpt = Annotated[
    int,
    typer.Option(
        "--seed", click_type=Integer(), help="Monte Carlo seed (same seed, same figures)."
    ),
]
SamplesOpt = Annotated[
    int,
    typer.Option(
        "--samples",
        click_type=Integer(),
        help="Subscribers drawn per Monte Carlo run (0: exact only).",
    ),
]
ChartOpt = Annotated[
    Path | None, typer.Option("--chart", help="Write the charts to FILE.svg or FILE.png.")
]
ForceOpt = Annotated[bool, typer.Option("--force", help="Overwrite existing output files.")]


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
    with runtime.new_binary_file(path, force=force) as sink:
        sink.write(data)


# -- printing --------------------------------------------------------------------------------------


def _pair(figure: object) -> str:
    assert isinstance(figure, dict)
    return f"{num(figure['analytic'])} / {num(figure['monte_carlo'])}"


def _demand_line(demand: dict[str, object]) -> str:
    pct = demand["percentiles"]
    assert isinstance(pct, dict)
    shown = ", ".join(f"p{k} {v}" if k != "100" else f"max {v}" for k, v in pct.items())
    return f"demand {demand['name']}: mean {num(demand['mean'])} ports; {shown}"


_COLUMNS: tuple[tuple[str, Callable[[dict[str, object]], str]], ...] = (
    ("block", lambda c: num(c["block_size"])),
    ("ratio", lambda c: num(c["blocks_per_address"])),
    ("dyn", lambda c: num(c["dynamic_blocks"])),
    ("addresses", lambda c: num(c["addresses"])),
    ("exceeding (exact / MC)", lambda c: _pair(c["exceeding_share"])),
    ("overflow ports", lambda c: _pair(c["overflow_ports"])),
    ("addr out of overflow", lambda c: _pair(c["addresses_out_of_overflow"])),
    ("tail/addr", lambda c: num(c["unused_tail_ports_per_address"])),
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


@app.command("size")
@guarded
def capacity_size(
    subscribers: Annotated[
        int, typer.Option("--subscribers", click_type=Integer(), help="Subscribers to serve.")
    ],
    demand: DemandOpt = None,
    percentiles: PercentilesOpt = None,
    histogram: HistogramOpt = None,
    addresses: Annotated[
        int | None,
        typer.Option("--addresses", click_type=Integer(), help="Public addresses available."),
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
            click_type=Real(),
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
            f"{num(chosen['exceeding_share']['analytic'])} of subscribers exceed their block"
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


@app.command("check")
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
    ((loaded, source),) = runtime.load_plans(plan)
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
        ("ports per subscriber", num(figures["block_size"])),
        (
            "blocks per address (dynamic)",
            f"{figures['blocks_per_address']} ({figures['dynamic_blocks']})",
        ),
        ("subscribers per address", num(figures["subscribers_per_address"])),
        ("unused tail ports per address", num(figures["unused_tail_ports_per_address"])),
        ("spare deterministic blocks", num(figures["spare_blocks"])),
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
