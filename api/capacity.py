"""Capacity routes: sizing, plan checks and plan diffs (thin over :mod:`detnat.capacity`).

``router`` is included by ``create_app``; errors are :class:`~detnat.errors.DetnatError` and render
as problem+json through the app's handlers. A plan is given inline (``plan``: the plan file's
content as JSON) or as a store reference (``realm``: ``REALM``, ``REALM@N``, ``REALM@current``,
``REALM@latest``). ``POST /v1/plans/diff`` answers per-subscriber CSV when asked for ``text/csv``.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, Literal

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

from api.policy import PLANNING, declare
from detnat.capacity import (
    CSV_HEADER,
    DEFAULT_SAMPLES,
    Demand,
    SizingRequest,
    diff_plans,
    evaluate,
    histogram_from_csv,
    parse_demand,
    size,
)
from detnat.capacity.sizing import DEFAULT_POOL_TARGET
from detnat.engine import Plan, Ports, compile_plan
from detnat.errors import InvalidInput, Unavailable
from detnat.planfile import plan_from_data

router = APIRouter()
MAX_DIFF_SUBSCRIBERS = 1 << 24  # per plan, for one request


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class DemandIn(_Body):
    """Exactly one of: a preset, percentiles, a histogram (rows) or a histogram as CSV text."""

    preset: str | None = Field(
        default=None, description="light, typical, heavy, constant:N or uniform:A-B"
    )
    percentiles: dict[str, int] | None = Field(
        default=None, examples=[{"50": 200, "90": 500, "99": 1500, "100": 5000}]
    )
    histogram: list[list[int]] | None = Field(
        default=None,
        description="[[ports, subscribers], ...] or [[ports_from, ports_to, subscribers], ...]",
    )
    histogram_csv: str | None = Field(
        default=None, description="CSV with header ports | ports,subscribers | ports_from,..."
    )

    def to_demand(self) -> Demand:
        given = [
            k for k in ("preset", "percentiles", "histogram", "histogram_csv") if getattr(self, k)
        ]
        if len(given) > 1:
            raise InvalidInput(f"give one of them, not {' and '.join(given)}", field="demand")
        if self.percentiles is not None:
            points: list[tuple[float, int]] = []
            for key, ports in self.percentiles.items():
                try:
                    points.append((float(key), ports))
                except ValueError:
                    raise InvalidInput(
                        f"{key!r} is not a percentile", field="demand.percentiles"
                    ) from None
            return Demand.from_percentiles(points)
        if self.histogram is not None:
            rows = self.histogram
            if rows and all(len(r) == 2 for r in rows):
                return Demand.from_counts((r[0] for r in rows), (r[1] for r in rows))
            if rows and all(len(r) == 3 for r in rows):
                return Demand.from_bins((r[0], r[1], r[2]) for r in rows)
            raise InvalidInput(
                "rows are [ports, subscribers] or [from, to, subscribers], all alike",
                field="demand.histogram",
            )
        if self.histogram_csv is not None:
            return histogram_from_csv(
                io.StringIO(self.histogram_csv), source="demand.histogram_csv"
            )
        return parse_demand(self.preset or "typical")


class PortsIn(_Body):
    first: int = 1024
    last: int = 65535
    exclude: list[list[int]] = Field(default=[], description="[[first, last], ...]")

    def to_ports(self) -> Ports:
        ranges = []
        for n, pair in enumerate(self.exclude):
            if len(pair) not in (1, 2):
                raise InvalidInput("a port [p] or range [first, last]", field=f"ports.exclude[{n}]")
            ranges.append((pair[0], pair[-1]))
        return Ports(self.first, self.last, tuple(ranges))


class SizeIn(_Body):
    subscribers: int = Field(examples=[1_000_000])
    demand: DemandIn = DemandIn()
    addresses: int | None = Field(default=None, examples=[16384])
    target: float | None = Field(default=None, examples=[0.01])
    dynamic: Literal["auto", "none"] | int = "none"
    pool_target: float = DEFAULT_POOL_TARGET
    ports: PortsIn = PortsIn()
    seed: int = 0
    samples: int = DEFAULT_SAMPLES


class CheckIn(_Body):
    plan: dict[str, Any] | None = None
    realm: str | None = Field(default=None, examples=["aftr-fra-1@current"])
    demand: DemandIn = DemandIn()
    target: float | None = None
    seed: int = 0
    samples: int = DEFAULT_SAMPLES


class PlanRefIn(_Body):
    plan: dict[str, Any] | None = None
    realm: str | None = Field(default=None, examples=["aftr-fra-1@7"])


class DiffIn(_Body):
    old: PlanRefIn
    new: PlanRefIn
    changed_only: bool = Field(default=False, description="CSV: only subscribers that change.")


@contextmanager
def _session(request: Request) -> Iterator[Session]:
    sessions = getattr(request.app.state, "sessions", None)
    if sessions is None:
        raise Unavailable("the plan store is not available in this process")
    with sessions() as session:
        yield session


def _plans(request: Request, *refs: tuple[str, PlanRefIn | CheckIn]) -> list[tuple[Plan, object]]:
    out: list[tuple[Plan, object]] = []
    for name, ref in refs:
        if (ref.plan is None) == (ref.realm is None):
            raise InvalidInput("give either plan (inline) or realm (REALM@VERSION)", field=name)
        if ref.plan is not None:
            out.append((plan_from_data(ref.plan), {"inline": True}))
            continue
        from detnat.service.capacity import parse_ref, plan_of

        assert ref.realm is not None
        with _session(request) as session:
            plan, source = plan_of(session, parse_ref(ref.realm, field=f"{name}.realm"))
        out.append((plan, source))
    return out


@router.post("/v1/capacity/size", tags=["capacity"])
@declare(PLANNING)
def capacity_size(body: SizeIn) -> dict[str, object]:
    """Recommend block size, dynamic blocks and addresses for N subscribers under a demand."""
    request = SizingRequest(
        subscribers=body.subscribers,
        demand=body.demand.to_demand(),
        addresses=body.addresses,
        target=body.target,
        dynamic=body.dynamic,
        pool_target=body.pool_target,
        ports=body.ports.to_ports(),
        seed=body.seed,
        samples=body.samples,
    )
    return size(request)


@router.post("/v1/capacity/check", tags=["capacity"])
@declare(PLANNING)
def capacity_check(body: CheckIn, request: Request) -> dict[str, object]:
    """Capacity figures of a plan (inline or a realm's version) under a demand."""
    demand = body.demand.to_demand()
    ((plan, source),) = _plans(request, ("plan", body))
    figures = evaluate(
        compile_plan(plan), demand, target=body.target, seed=body.seed, samples=body.samples
    )
    return {"source": source, **figures}


@router.post(
    "/v1/plans/diff",
    tags=["versions"],
    responses={200: {"content": {"text/csv": {}}, "description": "JSON summary, or CSV rows"}},
)
@declare(PLANNING)
def plans_diff(body: DiffIn, request: Request) -> Any:
    """What changing from ``old`` to ``new`` does to subscribers; per subscriber as ``text/csv``."""
    (old_plan, old_source), (new_plan, new_source) = _plans(
        request, ("old", body.old), ("new", body.new)
    )
    old, new = compile_plan(old_plan), compile_plan(new_plan)
    for name, mapper in (("old", old), ("new", new)):
        if mapper.subscriber_count > MAX_DIFF_SUBSCRIBERS:
            raise InvalidInput(
                f"{mapper.subscriber_count} subscribers; the API compares plans of up to "
                f"{MAX_DIFF_SUBSCRIBERS} (use detnat plan diff for larger ones)",
                field=name,
            )
    compared = diff_plans(old, new)
    if "text/csv" in request.headers.get("accept", ""):
        rows = compared.rows(changed_only=body.changed_only)
        return StreamingResponse(_csv(rows), media_type="text/csv")
    return {"old": old_source, "new": new_source, **compared.report()}


def _csv(chunks: Iterator[list[tuple[str, ...]]]) -> Iterator[str]:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(CSV_HEADER)
    for rows in chunks:
        for start in range(0, len(rows), 10_000):
            writer.writerows(rows[start : start + 10_000])
            yield buffer.getvalue()
            buffer.seek(0)
            buffer.truncate()
    yield buffer.getvalue()
