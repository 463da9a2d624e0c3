"""Holes a black-box probe found in the edges that need no store (issue 10): plan files, batch
files, arguments and settings. Each must be refused clearly (one line, exit 2; an InvalidInput
naming the field), never a crash, a hang or a silent change of what was written."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from cli.main import app as cli
from detnat import strictjson
from detnat.errors import InvalidInput

runner = CliRunner()


def _run(*args: str) -> Any:
    return runner.invoke(cli, list(args))


def _one_error_line(result: Any, field: str, code: int = 2) -> None:
    assert result.exit_code == code, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detnat: error:"), result.stderr
    assert field in lines[0], lines[0]


PLAN_YAML = """\
algorithm: block
inside: {prefixes: ["10.0.0.0/18"], subscriber_prefix_length: 32}
outside: {prefixes: ["1.1.1.0/30"]}
block: {ratio: 4096}
"""


@pytest.fixture
def plan_file(tmp_path: Path) -> Path:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_YAML)
    return path


# -- 2. over-long numbers in JSON ------------------------------------------------------------------


@pytest.mark.parametrize("number", ["1" * 5000, "1e400", "-1e999"])
def test_strict_json_refuses_numbers_it_cannot_keep(number: str) -> None:
    with pytest.raises(InvalidInput) as caught:
        strictjson.loads(f'{{"a": {number}}}', field="body")
    assert caught.value.field == "body"


def test_plan_check_of_a_json_plan_with_an_over_long_number_exits_2(tmp_path: Path) -> None:
    path = tmp_path / "plan.json"
    path.write_text(
        '{"algorithm": "block", "inside": {"prefixes": ["10.0.0.0/18"], '
        f'"subscriber_prefix_length": {"3" * 5000}}}, "outside": {{"prefixes": ["1.1.1.0/30"]}}, '
        '"block": {"ratio": 4096}}'
    )
    _one_error_line(_run("plan", "check", str(path)), "plan.json")
