"""The Capacity page: size a deployment (or check a realm's plan) under a demand, with charts.

A GET form: sizing changes nothing, so the figures are bookmarkable and need no CSRF token. The
numbers are :func:`detnat.capacity.size` / :func:`~detnat.capacity.evaluate`, the charts
:mod:`detnat.capacity.charts`' SVG, embedded in the page.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from markupsafe import Markup
from starlette.concurrency import run_in_threadpool

from api.web.routing import Page, PageDep, router
from detnat.capacity import (
    DEFAULT_SAMPLES,
    PRESETS,
    Demand,
    SizingRequest,
    evaluate,
    parse_demand,
    parse_percentiles,
    size,
)
from detnat.capacity.charts import chart_panels, render_svg
from detnat.capacity.sizing import DEFAULT_POOL_TARGET, DynamicPolicy
from detnat.engine import Ports, compile_plan
from detnat.errors import DetnatError, InvalidInput

FIELDS = (
    "mode",
    "subscribers",
    "demand",
    "percentiles",
    "addresses",
    "target",
    "dynamic",
    "pool_target",
    "ports",
    "exclude_ports",
    "samples",
    "seed",
    "plan",
)
DEFAULTS = {
    "mode": "size",
    "demand": "typical",
    "target": "0.01",
    "dynamic": "none",
    "pool_target": str(DEFAULT_POOL_TARGET),
    "ports": "1024-65535",
    "samples": str(DEFAULT_SAMPLES),
    "seed": "0",
}


@router.get("/web/capacity")
async def capacity(page: PageDep) -> Response:
    given = page.request.query_params
    # A field sent empty stays empty (no target, say); one not sent at all takes its default.
    values = {name: page.field(name, DEFAULTS.get(name, "")) for name in FIELDS}
    asked = "subscribers" in given or "plan" in given
    if not asked:
        return _render(page, values, {})
    errors: dict[str, str] = {}
    try:
        if values["mode"] == "check":
            result = await run_in_threadpool(_check, page, values, errors)
        else:
            result = await run_in_threadpool(_size, values, errors)
    except DetnatError as exc:
        field = (exc.field or "").split(".")[0].split("[")[0]
        errors[field if field in FIELDS else "general"] = exc.message
        result = None
    if errors or result is None:
        return _render(page, values, errors, status=422)
    return _render(page, values, {}, result=result)


def _render(
    page: Page,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
    result: dict[str, Any] | None = None,
) -> Response:
    return page.render(
        "capacity.html",
        status=status,
        values=values,
        errors=errors,
        presets=list(PRESETS),
        result=result,
    )


def _decimal(text: str, digits: int = 9) -> bool:
    """ASCII digits only (``int()`` would also take ``１０２４`` or ``١٠٢٤``), not too many."""
    return 0 < len(text) <= digits and text.isascii() and text.isdigit()


def _int(values: dict[str, str], name: str, errors: dict[str, str]) -> int | None:
    text = values[name].replace(",", "").replace("_", "")
    if not text:
        return None
    if not _decimal(text, 30):
        errors[name] = "Give a whole number."
        return None
    return int(text)


def _float(values: dict[str, str], name: str, errors: dict[str, str]) -> float | None:
    if not values[name]:
        return None
    try:
        if not values[name].isascii():  # float() would take ٠٫٠١ and other digits
            raise ValueError(values[name])
        value = float(values[name])
    except ValueError:
        errors[name] = "Give a number such as 0.01."
        return None
    if value != value or value in (float("inf"), float("-inf")):
        errors[name] = "Give a finite number."
        return None
    return value


def _demand(values: dict[str, str], errors: dict[str, str]) -> Demand | None:
    try:
        if values["demand"] == "percentiles":
            return parse_percentiles(values["percentiles"])
        return parse_demand(values["demand"])
    except InvalidInput as exc:
        errors["percentiles" if values["demand"] == "percentiles" else "demand"] = exc.message
        return None


def _ports(values: dict[str, str], errors: dict[str, str]) -> Ports | None:
    first, sep, last = values["ports"].partition("-")
    first, last = first.strip(), last.strip()
    if not (sep and _decimal(first) and _decimal(last)):
        errors["ports"] = "Give the port range as FIRST-LAST, e.g. 1024-65535."
        return None
    excluded: list[tuple[int, int]] = []
    for part in (p.strip() for p in values["exclude_ports"].split(",") if p.strip()):
        lo, _, hi = part.partition("-")
        if not _decimal(lo) or (hi and not _decimal(hi)):
            errors["exclude_ports"] = f"{part!r} is not a port or a range (e.g. 1723,5060-5061)."
            return None
        excluded.append((int(lo), int(hi or lo)))
    return Ports(int(first), int(last), tuple(excluded))


def _dynamic(values: dict[str, str], errors: dict[str, str]) -> DynamicPolicy:
    text = values["dynamic"]
    if text == "auto":
        return "auto"
    if text in ("", "none"):
        return "none"
    if text.isascii() and text.isdigit():
        return int(text)
    errors["dynamic"] = "Give none, auto or a number of blocks."
    return "none"


def _size(values: dict[str, str], errors: dict[str, str]) -> dict[str, Any] | None:
    subscribers = _int(values, "subscribers", errors)
    addresses = _int(values, "addresses", errors)
    target = _float(values, "target", errors)
    pool_target = _float(values, "pool_target", errors)
    samples = _int(values, "samples", errors)
    seed = _int(values, "seed", errors)
    demand = _demand(values, errors)
    ports = _ports(values, errors)
    dynamic = _dynamic(values, errors)
    if subscribers is None and "subscribers" not in errors:
        errors["subscribers"] = "Give the number of subscribers to serve."
    if errors or subscribers is None or demand is None or ports is None:
        return None
    result = size(
        SizingRequest(
            subscribers=subscribers,
            demand=demand,
            addresses=addresses,
            target=target,
            dynamic=dynamic,
            pool_target=pool_target if pool_target is not None else DEFAULT_POOL_TARGET,
            ports=ports,
            seed=seed or 0,
            samples=samples if samples is not None else DEFAULT_SAMPLES,
        )
    )
    candidates: list[dict[str, Any]] = list(result["candidates"])  # type: ignore[call-overload]
    marks = [
        (", ".join(c["roles"]) or str(c["block_size"]), c["block_size"], c["addresses"])
        for c in candidates
        if c["roles"]
    ] or [(str(c["block_size"]), c["block_size"], c["addresses"]) for c in candidates]
    usable = int(result["usable_ports_per_address"])  # type: ignore[call-overload]
    chart = _chart(
        demand,
        subscribers,
        usable,
        marks,
        target,
        f"Sizing {subscribers:,} subscribers, demand {demand.name}",
    )
    return {"mode": "size", "sizing": result, "chart": chart}


def _check(page: Page, values: dict[str, str], errors: dict[str, str]) -> dict[str, Any] | None:
    from detnat.service.capacity import parse_ref, plan_of

    target = _float(values, "target", errors)
    samples = _int(values, "samples", errors)
    seed = _int(values, "seed", errors)
    demand = _demand(values, errors)
    if not values["plan"]:
        errors["plan"] = "Give a realm, e.g. aftr-fra-1 or aftr-fra-1@3."
    if errors or demand is None:
        return None
    plan, source = plan_of(page.db, parse_ref(values["plan"], field="plan"), field="plan")
    figures = evaluate(
        compile_plan(plan),
        demand,
        target=target,
        seed=seed or 0,
        samples=samples if samples is not None else DEFAULT_SAMPLES,
    )
    shown: dict[str, Any] = figures["figures"]  # type: ignore[assignment]
    chart = _chart(
        demand,
        int(shown["subscribers"]),
        int(shown["usable_ports_per_address"]),
        [("this plan", int(shown["block_size"]), int(shown["addresses"]))],
        target,
        f"Capacity of {values['plan']}, demand {demand.name}",
    )
    return {"mode": "check", "check": figures, "source": source, "chart": chart}


def _chart(
    demand: Demand,
    subscribers: int,
    usable: int,
    marks: list[tuple[str, int, int]],
    target: float | None,
    title: str,
) -> Markup:
    """The charts' SVG (our own text, labels escaped by the renderer), labelled for readers."""
    svg = render_svg(
        chart_panels(
            demand, subscribers=subscribers, usable_ports=usable, marks=marks, target=target
        ),
        title,
    )
    return Markup(
        svg.replace("<svg ", '<svg class="chart" role="img" aria-labelledby="chart-caption" ', 1)
    )
