"""Demand models: exact figures with known answers, presets, and measured histograms as CSV."""

from __future__ import annotations

import io

import numpy as np
import pytest

from detnat.capacity.demand import (
    PRESETS,
    Demand,
    histogram_from_csv,
    parse_demand,
    parse_percentiles,
    preset,
)
from detnat.errors import InvalidInput


def test_constant_demand_exceeds_every_smaller_block_and_no_larger_one() -> None:
    d = Demand.constant(300)
    assert d.survival(299) == 1.0
    assert d.survival(300) == 0.0
    assert d.expected_excess(256) == 44.0
    assert d.expected_excess(300) == 0.0
    # 300 ports in blocks of 100: the own block and 2 more.
    assert d.overflow_blocks_pmf(100).tolist() == [0.0, 0.0, 1.0]


def test_uniform_demand_has_the_textbook_tail_and_mean_excess() -> None:
    d = Demand.uniform(1, 1000)  # each of 1..1000 with probability 1/1000
    for s in (0, 1, 250, 999, 1000, 5000):
        assert d.survival(s) == pytest.approx(max(1000 - s, 0) / 1000 if s >= 1 else 1.0)
    # E[(X - s)+] = sum_{k=1}^{1000-s} k / 1000 = (1000-s)(1001-s) / 2000
    for s in (0, 100, 500, 999):
        assert d.expected_excess(s) == pytest.approx((1000 - s) * (1001 - s) / 2000)
    assert d.mean() == pytest.approx(500.5)


def test_percentiles_hold_exactly_at_every_point_given() -> None:
    d = Demand.from_percentiles({50: 200, 90: 500, 99: 1500, 100: 5000})
    assert d.survival(200) == pytest.approx(0.5)
    assert d.survival(500) == pytest.approx(0.1)
    assert d.survival(1500) == pytest.approx(0.01)
    assert d.survival(5000) == 0.0
    assert d.warnings == ()
    # Uniform inside a band: halfway from 200 to 500 is halfway from 50 % to 90 %.
    assert d.survival(350) == pytest.approx(0.3)


def test_percentiles_without_a_maximum_warn_that_the_tail_is_cut() -> None:
    d = parse_percentiles("50=200,90=500")
    assert d.survival(500) == 0.0
    assert "100th percentile" in d.warnings[0]


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("50=200,90=100", "demand.percentiles[90]"),
        ("50:200", "demand.percentiles[0]"),
        ("150=3", "demand.percentiles[150]"),
        ("50=70000", "demand.percentiles[50]"),
    ],
)
def test_bad_percentiles_are_refused_naming_the_point(text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        parse_percentiles(text)
    assert caught.value.field == field


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_put_their_published_anchors_where_they_say(name: str) -> None:
    d = preset(name)
    for q, ports in PRESETS[name].percentiles:
        assert d.survival(ports) == pytest.approx(1 - q / 100, abs=1e-12)
    assert d.max_ports == PRESETS[name].percentiles[-1][1]


def test_presets_are_ordered_light_typical_heavy() -> None:
    light, typical, heavy = (preset(n) for n in ("light", "typical", "heavy"))
    assert light.mean() < typical.mean() < heavy.mean()
    for block in (256, 1008, 2016):
        assert light.survival(block) <= typical.survival(block) <= heavy.survival(block)


def test_spec_strings_name_presets_constants_and_uniform_ranges() -> None:
    assert parse_demand("constant:42").survival(41) == 1.0
    assert parse_demand("uniform:10-19").survival(14) == pytest.approx(0.5)
    with pytest.raises(InvalidInput, match="light, typical, heavy"):
        parse_demand("average")


def test_histogram_of_one_peak_per_subscriber() -> None:
    d = histogram_from_csv(io.StringIO("ports\n100\n300\n300\n500\n"))
    assert d.survival(299) == pytest.approx(0.75)
    assert d.survival(300) == pytest.approx(0.25)


def test_histogram_of_counts_per_value_ignores_other_columns() -> None:
    d = histogram_from_csv(io.StringIO("ports,subscribers,note\n100,3,a\n1000,1,b\n"))
    assert d.survival(100) == pytest.approx(0.25)
    assert d.mean() == pytest.approx((3 * 100 + 1000) / 4)


def test_histogram_bins_spread_evenly_inside_each_bin() -> None:
    d = histogram_from_csv(io.StringIO("ports_from,ports_to,subscribers\n1,100,50\n101,200,50\n"))
    assert d.survival(100) == pytest.approx(0.5)
    assert d.survival(150) == pytest.approx(0.25)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty file"),
        ("sessions\n3\n", "'ports' column"),
        ("ports\n10\nx\n", "line 3"),
        ("ports,subscribers\n70000,1\n", "line 2: 70000 ports"),
        ("ports_from,ports_to\n1,2\n", "'subscribers' column"),
        ("ports_from,ports_to,subscribers\n9,2,1\n", "line 2: bin 9-2 is reversed"),
        ("ports\n", "no data rows"),
    ],
)
def test_bad_histograms_are_refused_with_the_line(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        histogram_from_csv(io.StringIO(text), source="peaks.csv")


def test_sampling_follows_the_distribution_and_is_reproducible() -> None:
    d = Demand.from_percentiles({50: 100, 100: 200})
    a = d.sample(np.random.default_rng(7), 200_000)
    b = d.sample(np.random.default_rng(7), 200_000)
    assert np.array_equal(a, b)
    assert a.min() >= 0 and a.max() <= 200
    assert float((a > 100).mean()) == pytest.approx(0.5, abs=0.01)
