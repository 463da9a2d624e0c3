"""The worked examples in docstrings run with the suite: ``pytest`` with no arguments (what
``./scripts/test`` runs) collects the engine's doctests, through pyproject's addopts/testpaths."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).parents[1]


def test_the_plain_test_command_collects_the_engines_doctests() -> None:
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider"],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert run.returncode == 0, run.stdout[-3000:] + run.stderr[-2000:]
    collected = set(run.stdout.splitlines())
    assert "detnat/engine/addresses.py::detnat.engine.addresses.Prefix" in collected
    assert "detnat/engine/ranges.py::detnat.engine.ranges" in collected
    assert "detnat/engine/__init__.py::detnat.engine" in collected
