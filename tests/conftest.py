"""Suite-wide settings. ``HYPOTHESIS_PROFILE=ci`` (set by .ci/run) makes property tests
derandomized, so CI is reproducible; run without it locally to keep exploring new examples.

The Postgres server of the tests (``tests/postgres.py``) is named in the header, and the embedded
one, if the session started it, stopped at its end.
"""

from __future__ import annotations

import os

import pytest
from hypothesis import settings

from tests import postgres

settings.register_profile("ci", derandomize=True, database=None, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))

# Scripts the datapath tests run inside network namespaces: importing one runs it, so
# --doctest-modules must not collect them.
collect_ignore = ["datapath/helpers"]

_stopped: list[str] = []


def pytest_report_header() -> str:
    return postgres.describe()


def pytest_sessionfinish() -> None:
    _stopped.extend(postgres.stop_embedded())


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    for line in _stopped:
        terminalreporter.write_line(line)
