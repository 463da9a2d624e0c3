"""Demand models: how many ports one subscriber holds at the same time at peak.

A :class:`Demand` is a probability mass over 0 ... 65536 concurrent ports (one public address has no
more ports than that, so a subscriber can never usefully hold more). Every way of describing demand
ends up as that one array, so every figure computed from it is exact arithmetic over it, and a
Monte Carlo run samples it by inverse transform:

- a **preset** (``light``, ``typical``, ``heavy``): percentile tables anchored on published operator
  figures, see :data:`PRESETS` and ``docs/capacity.md`` for the sources and how each number was
  chosen;
- **percentiles** (``{50: 200, 90: 500, 99: 1500, 100: 5000}``): the quantile function runs linearly
  between the given points, so demand is uniform inside each band and ``P(X <= v) = p`` exactly at
  every point given;
- a **histogram** measured on a real network (a CGN's per-subscriber peak session counts): one value
  per subscriber, counts per value, or counts per ``[from, to]`` bin (uniform inside the bin);
- ``constant:N`` and ``uniform:A-B`` for what-if questions and for tests with known answers.

>>> d = Demand.from_percentiles({50: 200, 90: 500, 100: 1000})
>>> round(d.survival(500), 6), round(d.survival(200), 6)
(0.1, 0.5)
>>> Demand.constant(300).expected_excess(256)
44.0

One module at this size: demand presets, percentiles and histograms are one model read together.
"""

from __future__ import annotations

import csv
import itertools
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from detnat.errors import InvalidInput

MAX_PORTS = 65536  # all ports of one public address
MAX_COUNT = 1 << 40  # subscribers in one histogram row (capacity sizing takes at most 2**40)
FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Preset:
    name: str
    description: str
    percentiles: tuple[tuple[float, int], ...]
    basis: str  # where the numbers come from (docs/capacity.md has the references)


# Planning assumptions, not measurements: each table puts the published operator figures at the
# percentiles they describe. docs/capacity.md lists the sources and the reasoning per number.
PRESETS: dict[str, Preset] = {
    preset.name: preset
    for preset in (
        Preset(
            "light",
            "browsing, video, messaging: the 'average subscriber' of operator guides",
            ((0, 0), (50, 50), (75, 100), (90, 200), (99, 500), (99.9, 1000), (100, 2000)),
            "median at the published average of 50-60 concurrent sessions; a torrent-class "
            "subscriber (up to 1,000 at peak) only in the top 0.1 %",
        ),
        Preset(
            "typical",
            "a residential mix at the evening peak",
            ((0, 0), (25, 60), (50, 200), (90, 500), (99, 1500), (99.9, 3000), (100, 5000)),
            "the published 200-500 concurrent ports of a typical residential subscriber at peak "
            "as the 50th-90th percentile band; heavy users (over 1,000, up to 5,000) in the "
            "top 1 %",
        ),
        Preset(
            "heavy",
            "many P2P and gaming households",
            ((0, 0), (25, 200), (50, 500), (75, 1000), (90, 2000), (99, 4000), (100, 5000)),
            "a quarter of subscribers above 1,000 concurrent ports and the published maximum of "
            "5,000 as the top",
        ),
    )
}


@dataclass(frozen=True, eq=False)
class Demand:
    """Peak concurrent ports per subscriber as a probability mass over 0 ... 65536."""

    name: str
    pmf: FloatArray
    warnings: tuple[str, ...] = ()
    _tail0: FloatArray = field(init=False, repr=False)  # P(X > s)
    _tail1: FloatArray = field(init=False, repr=False)  # sum over x > s of x P(X = x)
    _cdf: FloatArray = field(init=False, repr=False)

    def __post_init__(self) -> None:
        pmf = np.asarray(self.pmf, dtype=np.float64)
        if pmf.ndim != 1 or not 1 <= len(pmf) <= MAX_PORTS + 1:
            raise InvalidInput("a demand covers 0 to 65536 ports", field="demand")
        total = float(pmf.sum())
        if not math.isfinite(total) or total <= 0 or bool((pmf < 0).any()):
            raise InvalidInput("a demand needs a positive total weight", field="demand")
        last = int(np.flatnonzero(pmf)[-1])
        pmf = pmf[: last + 1] / total
        at_least = np.cumsum(pmf[::-1])[::-1]  # P(X >= s)
        weighted = np.cumsum((pmf * np.arange(len(pmf)))[::-1])[::-1]
        object.__setattr__(self, "pmf", pmf)
        object.__setattr__(self, "_tail0", np.append(at_least[1:], 0.0))
        object.__setattr__(self, "_tail1", np.append(weighted[1:], 0.0))
        cdf = np.cumsum(pmf)
        cdf[-1] = 1.0
        object.__setattr__(self, "_cdf", cdf)

    # -- constructors -----------------------------------------------------------------------------

    @classmethod
    def constant(cls, ports: int) -> Demand:
        """Every subscriber holds exactly ``ports`` at peak."""
        _check_ports(ports, "demand")
        pmf = np.zeros(ports + 1)
        pmf[ports] = 1.0
        return cls(f"constant:{ports}", pmf)

    @classmethod
    def uniform(cls, low: int, high: int) -> Demand:
        """Each of ``low`` ... ``high`` ports (inclusive) equally likely."""
        _check_ports(low, "demand")
        _check_ports(high, "demand")
        if low > high:
            raise InvalidInput(f"uniform range {low}-{high} is reversed", field="demand")
        pmf = np.zeros(high + 1)
        pmf[low:] = 1.0
        return cls(f"uniform:{low}-{high}", pmf)

    @classmethod
    def from_percentiles(
        cls,
        points: Mapping[float, int] | Sequence[tuple[float, int]],
        *,
        name: str = "percentiles",
    ) -> Demand:
        """Demand with ``P(X <= ports) = percentile / 100`` at each point, uniform in between.

        Below the lowest point demand runs down to 0 ports (unless the 0th percentile is given);
        above the highest point there is no information, so without a 100th percentile the top
        band is taken to end at the highest value given, with a warning.
        """
        pairs = sorted(points.items() if isinstance(points, Mapping) else points)
        if not pairs:
            raise InvalidInput("give at least one percentile", field="demand.percentiles")
        warnings: list[str] = []
        previous_q, previous_v = -1.0, -1
        for q, v in pairs:
            where = f"demand.percentiles[{_fmt_q(q)}]"
            if isinstance(q, bool) or not isinstance(q, int | float) or not 0 <= q <= 100:
                raise InvalidInput(f"percentile {q!r} is outside 0-100", field=where)
            _check_ports(v, where)
            if q == previous_q:
                raise InvalidInput(f"percentile {_fmt_q(q)} is given twice", field=where)
            if v < previous_v:
                raise InvalidInput(
                    f"{v} ports at the {_fmt_q(q)}th percentile is below {previous_v} at a lower "
                    "percentile; percentiles never decrease",
                    field=where,
                )
            previous_q, previous_v = q, v
        anchors = [(float(q) / 100, int(v)) for q, v in pairs]
        if anchors[0][0] > 0:
            anchors.insert(0, (0.0, 0))
        if anchors[-1][0] < 1:
            top_q, top_v = anchors[-1]
            warnings.append(
                f"no 100th percentile given: the top {100 - top_q * 100:g} % of subscribers are "
                f"assumed to hold {top_v} ports at most; give the maximum to model the tail"
            )
            anchors.append((1.0, top_v))
        pmf = np.zeros(anchors[-1][1] + 1)
        pmf[anchors[0][1]] += anchors[0][0]
        for (q0, v0), (q1, v1) in itertools.pairwise(anchors):
            mass = q1 - q0
            if v1 == v0:
                pmf[v1] += mass
            else:
                pmf[v0 + 1 : v1 + 1] += mass / (v1 - v0)
        return cls(name, pmf, tuple(warnings))

    @classmethod
    def from_counts(
        cls, values: Iterable[int], counts: Iterable[int] | None = None, *, name: str = "histogram"
    ) -> Demand:
        """Measured peaks: ``values[i]`` ports held by ``counts[i]`` subscribers (default 1)."""
        v = _int64s(values, MAX_PORTS, "ports", "demand.histogram")
        c = (
            np.ones(len(v), dtype=np.int64)
            if counts is None
            else _int64s(counts, MAX_COUNT, "subscriber count", "demand.histogram")
        )
        if len(v) == 0:
            raise InvalidInput("the histogram has no rows", field="demand.histogram")
        if len(c) != len(v):
            raise InvalidInput("values and counts differ in length", field="demand.histogram")
        if bool((v < 0).any()) or bool((v > MAX_PORTS).any()):
            raise InvalidInput(f"ports must be within 0-{MAX_PORTS}", field="demand.histogram")
        if bool((c < 0).any()) or int(c.sum()) == 0:
            raise InvalidInput(
                "subscriber counts must be >= 0 and not all 0", field="demand.histogram"
            )
        pmf = np.bincount(v, weights=c.astype(np.float64), minlength=1).astype(np.float64)
        return cls(name, pmf)

    @classmethod
    def from_bins(cls, bins: Iterable[tuple[int, int, int]], *, name: str = "histogram") -> Demand:
        """Measured peaks in bins: ``(from, to, subscribers)``, uniform inside each bin."""
        rows = list(bins)
        if not rows:
            raise InvalidInput("the histogram has no rows", field="demand.histogram")
        top = max(hi for _, hi, _ in rows)
        _check_ports(top, "demand.histogram")
        pmf = np.zeros(top + 1)
        for n, (lo, hi, count) in enumerate(rows):
            where = f"demand.histogram[{n}]"
            _check_ports(lo, where)
            if lo > hi:
                raise InvalidInput(f"bin {lo}-{hi} is reversed", field=where)
            if isinstance(count, bool) or not isinstance(count, int) or not 0 <= count <= MAX_COUNT:
                raise InvalidInput(f"a subscriber count is within 0-{MAX_COUNT}", field=where)
            pmf[lo : hi + 1] += count / (hi - lo + 1)
        if pmf.sum() == 0:
            raise InvalidInput("every bin is empty", field="demand.histogram")
        return cls(name, pmf)

    # -- exact figures ----------------------------------------------------------------------------

    @property
    def max_ports(self) -> int:
        return len(self.pmf) - 1

    def survival(self, ports: int) -> float:
        """P(X > ports): the share of subscribers whose peak exceeds a block of ``ports``."""
        return float(self._tail0[ports]) if ports < len(self._tail0) else 0.0

    def survival_many(self, ports: IntArray) -> FloatArray:
        ports = np.asarray(ports, dtype=np.int64)
        out = np.zeros(ports.shape)
        inside = ports < len(self._tail0)
        out[inside] = self._tail0[ports[inside]]
        return out

    def expected_excess(self, ports: int) -> float:
        """E[(X - ports)+]: overflow ports one subscriber needs beyond a block of ``ports``."""
        if ports >= len(self._tail0):
            return 0.0
        return max(float(self._tail1[ports] - ports * self._tail0[ports]), 0.0)

    def overflow_blocks_pmf(self, size: int) -> FloatArray:
        """Distribution of extra blocks of ``size`` one subscriber needs: max(ceil(X/S) - 1, 0)."""
        x = np.arange(len(self.pmf))
        extra = np.maximum(-(-x // size) - 1, 0)
        return np.bincount(extra, weights=self.pmf, minlength=1).astype(np.float64)

    def mean(self) -> float:
        return float(self._tail1[0] if len(self._tail1) else 0.0)

    def quantile(self, q: float) -> int:
        """The smallest port count ``v`` with P(X <= v) >= q."""
        found = int(np.searchsorted(self._cdf, q - 1e-12, side="left"))
        return min(found, self.max_ports)

    def sample(self, rng: np.random.Generator, count: int) -> IntArray:
        """``count`` independent draws (inverse transform over the CDF)."""
        u = rng.random(count)
        drawn = np.searchsorted(self._cdf, u, side="right")
        return np.minimum(drawn, self.max_ports).astype(np.int64)

    def to_json(self) -> dict[str, object]:
        return {
            "name": self.name,
            "mean": round(self.mean(), 3),
            "percentiles": {_fmt_q(q): self.quantile(q / 100) for q in (50, 90, 99, 99.9, 100)},
            "warnings": list(self.warnings),
        }


def _fmt_q(q: float) -> str:
    return f"{q:g}"


def _int64s(values: Iterable[int], top: int, what: str, field: str) -> npt.NDArray[np.int64]:
    """Whole numbers 0 to ``top`` as an array (numpy would overflow on larger ones)."""
    out = list(values)
    for value in out:
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= top:
            raise InvalidInput(f"{what} {str(value)[:20]} is outside 0-{top}", field=field)
    return np.array(out, dtype=np.int64)


def _check_ports(value: object, field: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"ports must be a whole number, got {value!r}", field=field)
    if not 0 <= value <= MAX_PORTS:
        raise InvalidInput(f"{value} ports is outside 0-{MAX_PORTS}", field=field)


# -- parsing ---------------------------------------------------------------------------------------

_UNIFORM = re.compile(r"uniform:(\d{1,5})-(\d{1,5})")
_CONSTANT = re.compile(r"constant:(\d{1,5})")


def preset(name: str) -> Demand:
    found = PRESETS.get(name)
    if found is None:
        raise InvalidInput(
            f"{name!r} is not a preset ({', '.join(PRESETS)}), constant:N or uniform:A-B",
            field="demand",
        )
    return Demand.from_percentiles(found.percentiles, name=found.name)


def parse_demand(spec: str) -> Demand:
    """``typical`` / ``light`` / ``heavy``, ``constant:300`` or ``uniform:100-600``."""
    spec = spec.strip()
    if match := _CONSTANT.fullmatch(spec):
        return Demand.constant(int(match[1]))
    if match := _UNIFORM.fullmatch(spec):
        return Demand.uniform(int(match[1]), int(match[2]))
    return preset(spec)


def parse_percentiles(text: str) -> Demand:
    """``50=200,90=500,99=1500,100=5000`` (percentile=ports, comma separated)."""
    points: list[tuple[float, int]] = []
    for n, part in enumerate(p for p in text.split(",") if p.strip()):
        q_text, sep, v_text = part.partition("=")
        try:
            if not sep:
                raise ValueError
            points.append((float(q_text), int(v_text)))
        except ValueError:
            raise InvalidInput(
                f"{part.strip()!r} is not PERCENTILE=PORTS (e.g. 90=500)",
                field=f"demand.percentiles[{n}]",
            ) from None
    return Demand.from_percentiles(points)


def histogram_from_csv(lines: Iterable[str], *, source: str = "histogram") -> Demand:
    """A measured histogram as CSV with a header naming its shape:

    - ``ports`` — one row per subscriber (its peak concurrent ports);
    - ``ports,subscribers`` — how many subscribers peaked at each port count;
    - ``ports_from,ports_to,subscribers`` — counts per bin, spread evenly inside the bin.

    Other columns are ignored. Errors name the line.
    """
    reader = csv.reader(lines)
    header = next(reader, None)
    if header is None:
        raise InvalidInput(
            "empty file; expected a header such as 'ports,subscribers'", field=source
        )
    names = [h.strip().lower() for h in header]
    binned = "ports_from" in names and "ports_to" in names
    if not binned and "ports" not in names:
        raise InvalidInput(
            "the header needs a 'ports' column (or 'ports_from,ports_to'), "
            "and optionally 'subscribers'",
            field=source,
        )
    count_at = names.index("subscribers") if "subscribers" in names else None
    if binned and count_at is None:
        raise InvalidInput("binned histograms need a 'subscribers' column", field=source)
    columns = (
        [names.index("ports_from"), names.index("ports_to")] if binned else [names.index("ports")]
    )
    values: list[int] = []
    highs: list[int] = []
    counts: list[int] = []
    for line, row in enumerate(reader, start=2):
        if not row or all(not cell.strip() for cell in row):
            continue
        try:
            cells = [row[i].strip() for i in columns]
            numbers = [_whole(c) for c in cells]
            count = _whole(row[count_at].strip()) if count_at is not None else 1
        except (IndexError, ValueError):
            raise InvalidInput(
                f"line {line}: not whole numbers in the named columns", field=source
            ) from None
        if count > MAX_COUNT:
            raise InvalidInput(f"line {line}: more than {MAX_COUNT} subscribers", field=source)
        for number in numbers:
            if not 0 <= number <= MAX_PORTS:
                raise InvalidInput(
                    f"line {line}: {number} ports is outside 0-{MAX_PORTS}", field=source
                )
        if binned and numbers[0] > numbers[1]:
            raise InvalidInput(
                f"line {line}: bin {numbers[0]}-{numbers[1]} is reversed", field=source
            )
        values.append(numbers[0])
        if binned:
            highs.append(numbers[1])
        counts.append(count)
    if not values:
        raise InvalidInput("no data rows", field=source)
    if binned:
        return Demand.from_bins(zip(values, highs, counts, strict=True), name=source)
    return Demand.from_counts(values, counts, name=source)


def _whole(text: str) -> int:
    if not text.isascii() or not text.isdigit():
        raise ValueError(text)
    return int(text)
