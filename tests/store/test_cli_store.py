"""The store's CLI commands through Typer's runner, against the test database."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from detnat.settings import get_settings
from tests.store.conftest import fresh_pool

pytestmark = pytest.mark.postgres


def test_realm_publish_history_and_lookups(
    database_url: str, realm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    pool = fresh_pool()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "algorithm: block\ninside: {prefixes: ['10.0.0.0/18'], subscriber_prefix_length: 32}\n"
        f"outside: {{prefixes: ['{pool}']}}\nblock: {{ratio: 4096}}\n"
    )
    run = CliRunner().invoke
    try:
        assert (
            run(
                app, ["realm", "create", realm_name, "--session-drain", "1s", "--single-approver"]
            ).exit_code
            == 0
        )
        past = run(
            app,
            [
                "plan",
                "publish",
                realm_name,
                str(plan),
                "--effective-from",
                "2020-01-01T00:00:00Z",
                "--reason",
                "CHG-1",
            ],
        )
        assert past.exit_code == 2
        ok = run(
            app,
            [
                "plan",
                "publish",
                realm_name,
                str(plan),
                "--effective-from",
                "2020-01-01T00:00:00Z",
                "--reason",
                "CHG-1",
                "--correction",
                "--json",
            ],
        )
        assert ok.exit_code == 0, ok.output
        again = run(app, ["realm", "create", realm_name])
        assert again.exit_code == 4
        answer = run(
            app,
            [
                "reverse",
                f"{pool.split('/')[0]}:1100",
                "--at",
                "2020-06-01T00:00:00+02:00",
                "--realm",
                realm_name,
                "--case",
                "CASE-CLI-1",
                "--json",
            ],
        )
        assert answer.exit_code == 0, answer.output
        line = json.loads(answer.stdout)
        assert line["status"] == "match" and line["subscriber"] == "10.0.0.5/32"
        assert line["window"] and line["candidates"][0]["version"] == 1
        history = run(app, ["plan", "history", realm_name, "--json"])
        assert json.loads(history.stdout)["correction"] is True
        missing = run(app, ["realm", "show", "no-such-realm"])
        assert missing.exit_code == 3
    finally:
        get_settings.cache_clear()


def test_cli_as_a_subprocess_batch_and_single_with_a_case(
    database_url: str, realm_name: str, tmp_path: Path
) -> None:
    import os
    import subprocess
    import sys

    pool = fresh_pool()
    ip = pool.split("/")[0]
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "algorithm: block\ninside: {prefixes: ['10.0.0.0/18'], subscriber_prefix_length: 32}\n"
        f"outside: {{prefixes: ['{pool}']}}\nblock: {{ratio: 4096}}\n"
    )
    batch = tmp_path / "in.csv"
    batch.write_text(f"ip,port,time\n{ip},1100,2020-06-01T00:00:00Z\n{ip},x,2020-06-01T00:00:00Z\n")
    out = tmp_path / "out.csv"
    env = {**os.environ, "DETNAT_DATABASE_URL": database_url}

    def detnat(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", "from cli.main import app; app()", *args],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )

    assert (
        detnat(
            "realm", "create", realm_name, "--session-drain", "0s", "--single-approver"
        ).returncode
        == 0
    )
    published = detnat(
        "plan",
        "publish",
        realm_name,
        str(plan),
        "--effective-from",
        "2020-01-01T00:00:00Z",
        "--reason",
        "CHG-1",
        "--correction",
    )
    assert published.returncode == 0, published.stderr
    single = detnat(
        "reverse", f"{ip}:1100", "--at", "2020-06-01T00:00:00Z", "--case", "CASE-1", "--json"
    )
    assert single.returncode == 0, single.stderr
    assert json.loads(single.stdout)["subscriber"] == "10.0.0.5/32"
    bad_case = detnat("reverse", f"{ip}:1100", "--at", "2020-06-01T00:00:00Z", "--case", "a\nb")
    assert bad_case.returncode == 2 and "case" in bad_case.stderr
    ran = detnat("reverse", "--batch", str(batch), "-o", str(out), "--case", "CASE-1")
    assert ran.returncode == 2  # one bad row; the batch is still complete
    assert f"{batch}:3:" in ran.stderr
    rows = out.read_text().splitlines()
    assert rows[1] == f"{ip},1100,2020-06-01T00:00:00Z,match,,10.0.0.5/32"
    assert rows[2].startswith(f"{ip},x,2020-06-01T00:00:00Z,error,")
    again = detnat("reverse", "--batch", str(batch), "-o", str(out))
    assert again.returncode == 2 and "already exists" in again.stderr


def test_publish_effective_now_is_not_a_correction(
    database_url: str, realm_name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "algorithm: block\ninside: {prefixes: ['10.0.0.0/18'], subscriber_prefix_length: 32}\n"
        f"outside: {{prefixes: ['{fresh_pool()}']}}\nblock: {{ratio: 4096}}\n"
    )
    run = CliRunner().invoke
    try:
        created = run(app, ["realm", "create", realm_name, "--single-approver"])
        assert created.exit_code == 0, created.output
        now = run(
            app,
            ["plan", "publish", realm_name, str(plan), "--effective-from", "now", "--reason", "C"],
        )
        assert now.exit_code == 0, now.output
    finally:
        get_settings.cache_clear()
