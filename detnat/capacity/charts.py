"""Charts of a sizing or a plan check: SVG text with no dependency, or PNG bytes via matplotlib.

Three panels, the same in both formats (and on the web pages later, which can embed the SVG):

1. **Peak demand against block sizes** — the share of subscribers per band of peak ports (log
   bands), with the candidate block sizes marked;
2. **Exceedance curve** — P(peak > block size) against block size, log-log, with the target;
3. **Addresses needed against ports per subscriber** — for the N subscribers, without dynamic
   blocks, with the candidates' own figures (dynamic blocks included) as points.

:func:`chart_panels` computes the data; :func:`render_svg` and :func:`render_png` draw it.
"""

from __future__ import annotations

import io
import itertools
import math
from dataclasses import dataclass, field
from html import escape

import numpy as np

from detnat.capacity.demand import Demand
from detnat.capacity.model import addresses_needed
from detnat.errors import InvalidInput, Unavailable

Point = tuple[float, float]
FLOOR = 1e-7  # where log axes stop (a share of 0 is drawn there)


@dataclass
class Panel:
    title: str
    x_label: str
    y_label: str
    lines: list[tuple[str, list[Point]]] = field(default_factory=list)
    points: list[tuple[str, Point]] = field(default_factory=list)
    vertical: list[tuple[str, float]] = field(default_factory=list)
    horizontal: list[tuple[str, float]] = field(default_factory=list)
    y_log: bool = True


def chart_panels(
    demand: Demand,
    *,
    subscribers: int,
    usable_ports: int,
    marks: list[tuple[str, int, int]],
    target: float | None = None,
) -> list[Panel]:
    """The three panels; ``marks`` are (label, block size, addresses) of candidates or the plan."""
    top = max(demand.max_ports, max((s for _, s, _ in marks), default=1), 2)
    edges = np.unique(np.round(np.geomspace(1, top + 1, 48)).astype(np.int64))
    cdf = np.concatenate([[0.0], np.cumsum(demand.pmf)])
    share = [
        (float(lo), float(cdf[min(hi, len(cdf) - 1)] - cdf[min(lo, len(cdf) - 1)]))
        for lo, hi in itertools.pairwise(edges)
    ]
    if demand.pmf[0] > 0:
        share.insert(0, (0.5, float(demand.pmf[0])))
    share = [(x, y) for x, y in share if y > 0]  # log axes: empty bands are left out
    sizes = np.unique(np.round(np.geomspace(1, max(top, usable_ports), 200)).astype(np.int64))
    exceed = [(float(s), demand.survival(int(s))) for s in sizes]
    exceed = [(x, y) for x, y in exceed if y > 0] or [(1.0, FLOOR)]
    needed = [
        (float(s), float(addresses_needed(subscribers, usable_ports // int(s))))
        for s in sizes
        if s <= usable_ports
    ]
    vertical = [(label, float(s)) for label, s, _ in marks]
    demand_panel = Panel(
        f"Peak demand ({demand.name}) against block sizes",
        "peak concurrent ports per subscriber",
        "share of subscribers per band",
        lines=[("demand", share)],
        vertical=vertical,
    )
    exceed_panel = Panel(
        "Exceedance: share of subscribers whose peak exceeds the block",
        "block size (ports per subscriber)",
        "P(peak > block)",
        lines=[("P(peak > block)", exceed)],
        vertical=vertical,
        horizontal=[(f"target {target:g}", target)] if target else [],
    )
    address_panel = Panel(
        f"Public addresses needed for {subscribers:,} subscribers",
        "ports per subscriber",
        "addresses",
        lines=[("without dynamic blocks", needed)],
        points=[(label, (float(s), float(a))) for label, s, a in marks],
    )
    return [demand_panel, exceed_panel, address_panel]


# -- SVG -------------------------------------------------------------------------------------------

WIDTH, PANEL_HEIGHT = 760, 280
LEFT, RIGHT, TOP, BOTTOM = 80, 24, 34, 46
COLOURS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2")


def _log_ticks(lo: float, hi: float) -> list[float]:
    return [10.0**e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)]


def _tick_text(value: float) -> str:
    if value >= 1:
        return f"{value:,.0f}"
    return f"{value:.0e}".replace("e-0", "e-")


def _bounds(panel: Panel) -> tuple[float, float, float, float]:
    xs = [x for _, pts in panel.lines for x, _ in pts] + [x for _, (x, _) in panel.points]
    xs += [x for _, x in panel.vertical]
    ys = [y for _, pts in panel.lines for _, y in pts] + [y for _, (_, y) in panel.points]
    ys += [y for _, y in panel.horizontal]
    x_lo, x_hi = max(min(xs), 0.5), max(xs)
    y_lo, y_hi = max(min(ys), FLOOR), max(ys)
    x_lo, x_hi = 10 ** math.floor(math.log10(x_lo)), 10 ** math.ceil(math.log10(x_hi))
    y_lo, y_hi = (
        10 ** math.floor(math.log10(y_lo)),
        10 ** math.ceil(math.log10(max(y_hi, y_lo * 10))),
    )
    return x_lo, x_hi, y_lo, y_hi


def render_svg(panels: list[Panel], title: str) -> str:
    """All panels stacked, log-log axes, as one standalone SVG document."""
    height = 40 + PANEL_HEIGHT * len(panels)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="24" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for n, panel in enumerate(panels):
        out.extend(_svg_panel(panel, 40 + n * PANEL_HEIGHT))
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _svg_panel(panel: Panel, top: float) -> list[str]:
    x_lo, x_hi, y_lo, y_hi = _bounds(panel)
    x0, x1 = LEFT, WIDTH - RIGHT
    y0, y1 = top + TOP, top + PANEL_HEIGHT - BOTTOM

    def px(x: float) -> float:
        x = min(max(x, x_lo), x_hi)
        return x0 + (math.log10(x) - math.log10(x_lo)) / (math.log10(x_hi / x_lo)) * (x1 - x0)

    def py(y: float) -> float:
        y = min(max(y, y_lo), y_hi)
        return y1 - (math.log10(y) - math.log10(y_lo)) / (math.log10(y_hi / y_lo)) * (y1 - y0)

    out = [
        f'<text x="{x0}" y="{top + 20}" font-size="13">{escape(panel.title)}</text>',
        f'<rect x="{x0}" y="{y0}" width="{x1 - x0}" height="{y1 - y0}" fill="none" stroke="#444"/>',
    ]
    for tick in _log_ticks(x_lo, x_hi):
        if x_lo <= tick <= x_hi:
            x = px(tick)
            out.append(f'<line x1="{x:.1f}" y1="{y0}" x2="{x:.1f}" y2="{y1}" stroke="#eee"/>')
            out.append(
                f'<text x="{x:.1f}" y="{y1 + 14}" text-anchor="middle">{_tick_text(tick)}</text>'
            )
    for tick in _log_ticks(y_lo, y_hi):
        if y_lo <= tick <= y_hi:
            y = py(tick)
            out.append(f'<line x1="{x0}" y1="{y:.1f}" x2="{x1}" y2="{y:.1f}" stroke="#eee"/>')
            out.append(
                f'<text x="{x0 - 6}" y="{y + 4:.1f}" text-anchor="end">{_tick_text(tick)}</text>'
            )
    centre = (x0 + x1) / 2
    out.append(
        f'<text x="{centre}" y="{y1 + 32}" text-anchor="middle">{escape(panel.x_label)}</text>'
    )
    mid = (y0 + y1) / 2
    out.append(
        f'<text x="16" y="{mid}" text-anchor="middle" transform="rotate(-90 16 {mid})">'
        f"{escape(panel.y_label)}</text>"
    )
    for n, (label, pts) in enumerate(panel.lines):
        path = " ".join(f"{px(x):.1f},{py(y):.1f}" for x, y in pts)
        colour = COLOURS[n % len(COLOURS)]
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2">'
            f"<title>{escape(label)}</title></polyline>"
        )
    for n, (label, x) in enumerate(panel.vertical):
        colour = COLOURS[(n + 1) % len(COLOURS)]
        out.append(
            f'<line x1="{px(x):.1f}" y1="{y0}" x2="{px(x):.1f}" y2="{y1}" stroke="{colour}" '
            f'stroke-dasharray="4 3"><title>{escape(label)}</title></line>'
        )
        right = px(x) > (x0 + x1) / 2  # keep the label inside the panel
        anchor, at = ("end", px(x) - 3) if right else ("start", px(x) + 3)
        out.append(
            f'<text x="{at:.1f}" y="{y0 + 12 + 12 * (n % 4)}" fill="{colour}" '
            f'text-anchor="{anchor}">{escape(label)}</text>'
        )
    for label, y in panel.horizontal:
        out.append(
            f'<line x1="{x0}" y1="{py(y):.1f}" x2="{x1}" y2="{py(y):.1f}" stroke="#d62728" '
            f'stroke-dasharray="6 3"/><text x="{x1 - 4}" y="{py(y) - 4:.1f}" text-anchor="end" '
            f'fill="#d62728">{escape(label)}</text>'
        )
    for n, (label, (x, y)) in enumerate(panel.points):
        colour = COLOURS[(n + 1) % len(COLOURS)]
        out.append(
            f'<circle cx="{px(x):.1f}" cy="{py(y):.1f}" r="4" fill="{colour}">'
            f"<title>{escape(label)}: {y:,.0f}</title></circle>"
        )
    return out


# -- PNG -------------------------------------------------------------------------------------------


def render_png(panels: list[Panel], title: str) -> bytes:
    """The same panels drawn by matplotlib (an optional dependency) as PNG bytes."""
    try:
        from matplotlib.figure import Figure
    except ImportError:  # pragma: no cover - depends on the installation
        raise Unavailable(
            "PNG charts need matplotlib (pip install matplotlib); SVG needs nothing", field="chart"
        ) from None
    figure = Figure(figsize=(WIDTH / 100, (PANEL_HEIGHT * len(panels) + 40) / 100), dpi=100)
    figure.suptitle(title)
    for n, panel in enumerate(panels):
        axes = figure.add_subplot(len(panels), 1, n + 1)
        axes.set_xscale("log")
        axes.set_yscale("log")
        axes.set_title(panel.title, fontsize=10, loc="left")
        axes.set_xlabel(panel.x_label, fontsize=9)
        axes.set_ylabel(panel.y_label, fontsize=9)
        for label, pts in panel.lines:
            axes.plot([x for x, _ in pts], [y for _, y in pts], label=label)
        for m, (label, x) in enumerate(panel.vertical):
            axes.axvline(x, linestyle="--", color=COLOURS[(m + 1) % len(COLOURS)], label=label)
        for label, y in panel.horizontal:
            axes.axhline(y, linestyle="--", color="#d62728", label=label)
        for m, (label, (x, y)) in enumerate(panel.points):
            axes.plot([x], [y], "o", color=COLOURS[(m + 1) % len(COLOURS)], label=label)
        axes.grid(True, which="major", alpha=0.3)
        axes.legend(fontsize=7, loc="best")
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def render(panels: list[Panel], title: str, fmt: str) -> bytes:
    """``svg`` or ``png`` bytes."""
    if fmt == "svg":
        return render_svg(panels, title).encode()
    if fmt == "png":
        return render_png(panels, title)
    raise InvalidInput(f"{fmt!r} is not a chart format (svg or png)", field="chart")
