"""``detnat capacity size|check`` and ``detnat plan diff`` through Typer's runner."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from tests.capacity.conftest import block_plan, write_plan

runner = CliRunner()


def test_size_json_recommends_and_lists_candidates(cli: typer.Typer) -> None:
    result = runner.invoke(
        cli,
        [
            "capacity",
            "size",
            "--subscribers",
            "10000",
            "--demand",
            "constant:700",
            "--target",
            "0",
            "--samples",
            "20000",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["recommended"]["block_size"] == 701
    assert out["feasible"] is True
    assert {c["block_size"] for c in out["candidates"]} >= {256, 1008, 2016, 701}


def test_size_text_shows_the_table_and_writes_an_svg_chart(
    cli: typer.Typer, tmp_path: Path
) -> None:
    chart = tmp_path / "sizing.svg"
    result = runner.invoke(
        cli,
        [
            "capacity",
            "size",
            "--subscribers",
            "50000",
            "--percentiles",
            "50=200,90=500,100=3000",
            "--addresses",
            "1000",
            "--samples",
            "50000",
            "--chart",
            str(chart),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "recommended: block size 1290" in result.stdout
    assert "largest block that fits 1000 addresses" in result.stdout
    svg = chart.read_text()
    assert svg.startswith("<svg") and svg.count("<polyline") == 3
    assert "Exceedance" in svg and "Public addresses needed for 50,000 subscribers" in svg
    again = runner.invoke(
        cli, ["capacity", "size", "--subscribers", "5", "--target", "0.1", "--chart", str(chart)]
    )
    assert again.exit_code == 2 and "--force" in again.stderr


def test_png_chart_is_a_png(cli: typer.Typer, tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    chart = tmp_path / "sizing.png"
    result = runner.invoke(
        cli,
        [
            "capacity",
            "size",
            "--subscribers",
            "5000",
            "--target",
            "0.05",
            "--samples",
            "0",
            "--chart",
            str(chart),
        ],
    )
    assert result.exit_code == 0, result.output
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_size_from_a_measured_histogram(cli: typer.Typer, tmp_path: Path) -> None:
    peaks = tmp_path / "peaks.csv"
    peaks.write_text("ports,subscribers\n100,90\n2000,10\n")
    result = runner.invoke(
        cli,
        [
            "capacity",
            "size",
            "--subscribers",
            "1000",
            "--histogram",
            str(peaks),
            "--target",
            "0.05",
            "--samples",
            "0",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["recommended"]["block_size"] >= 2000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--subscribers", "10"], "give the addresses available"),
        (["--subscribers", "10", "--target", "0.1", "--demand", "x"], "'x' is not a preset"),
        (["--subscribers", "10", "--target", "0.1", "--ports", "9-1"], "ports.first"),
        (
            [
                "--subscribers",
                "10",
                "--target",
                "0.1",
                "--demand",
                "light",
                "--percentiles",
                "50=1",
            ],
            "give one of",
        ),
        (["--subscribers", "10", "--target", "0.1", "--dynamic", "lots"], "--dynamic"),
    ],
)
def test_bad_size_input_is_one_line_and_exit_2(
    cli: typer.Typer, args: list[str], message: str
) -> None:
    result = runner.invoke(cli, ["capacity", "size", *args])
    assert result.exit_code == 2
    assert result.stderr.startswith("detnat: error:") and message in result.stderr


def test_check_a_plan_file(cli: typer.Typer, tmp_path: Path) -> None:
    plan = write_plan(tmp_path / "plan.yaml", block_plan(ratio=64))
    result = runner.invoke(
        cli,
        [
            "capacity",
            "check",
            str(plan),
            "--demand",
            "constant:2000",
            "--target",
            "0.01",
            "--json",
            "--samples",
            "1000",
        ],
    )
    assert result.exit_code == 0, result.output
    out = json.loads(result.stdout)
    assert out["source"] == {"file": str(plan)}
    assert out["figures"]["block_size"] == 1008
    assert out["figures"]["exceeding_share"] == {"analytic": 1.0, "monte_carlo": 1.0, "stderr": 0.0}
    assert out["meets_target"] is False
    text = runner.invoke(cli, ["capacity", "check", str(plan), "--samples", "0"])
    assert text.exit_code == 0 and "exceeding their block" in text.stdout


def test_check_of_something_that_is_neither_file_nor_realm(cli: typer.Typer) -> None:
    result = runner.invoke(cli, ["capacity", "check", "no/such/plan.yaml"])
    assert result.exit_code == 2 and "neither a plan file nor REALM@VERSION" in result.stderr


def test_plan_diff_summary_warning_and_subscriber_csv(cli: typer.Typer, tmp_path: Path) -> None:
    old = write_plan(tmp_path / "old.yaml", block_plan())
    new = write_plan(tmp_path / "new.yaml", block_plan(outside=["198.51.100.0/30", "192.0.2.0/30"]))
    out_csv = tmp_path / "subscribers.csv"
    result = runner.invoke(
        cli, ["plan", "diff", str(old), str(new), "--subscribers", str(out_csv), "--json"]
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["subscribers"]["address_changed"] == 256
    assert report["warnings"][0]["alternative"]["moved"] == 0
    rows = list(csv.DictReader(out_csv.read_text().splitlines()))
    assert len(rows) == 256 and rows[0]["change"] == "address"
    assert rows[0]["old_public_ip"] == "192.0.2.0" and rows[0]["new_public_ip"] == "198.51.100.0"
    text = runner.invoke(cli, ["plan", "diff", str(old), str(new)])
    assert text.exit_code == 0
    assert "0 keep their allocation, 0 change ports only, 256 change address" in text.stdout
    assert "warning: this change moves 256 of 256 subscribers" in text.stderr
    assert "instead, append the new outside prefixes" in text.stderr
    refused = runner.invoke(
        cli, ["plan", "diff", str(old), str(new), "--subscribers", str(out_csv)]
    )
    assert refused.exit_code == 2


def test_plan_diff_of_an_invalid_plan_names_the_field(cli: typer.Typer, tmp_path: Path) -> None:
    old = write_plan(tmp_path / "old.yaml", block_plan())
    bad = write_plan(tmp_path / "bad.yaml", block_plan(ratio=1))
    result = runner.invoke(cli, ["plan", "diff", str(old), str(bad)])
    assert result.exit_code == 2 and "detnat: error: block:" in result.stderr
