"""Trust from the CLI: tokens, four eyes under --as, case references, the audit log, evidence."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from detnat.settings import get_settings
from tests.store.conftest import fresh_pool

pytestmark = pytest.mark.postgres


@pytest.fixture
def detnat(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator:  # type: ignore[type-arg]
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str):  # type: ignore[no-untyped-def]
        return runner.invoke(app, list(args))

    yield run
    get_settings.cache_clear()


def _plan(tmp_path: Path) -> tuple[Path, str]:
    pool = fresh_pool()
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "algorithm: block\ninside: {prefixes: ['10.0.0.0/18'], subscriber_prefix_length: 32}\n"
        f"outside: {{prefixes: ['{pool}']}}\nblock: {{ratio: 4096}}\n"
    )
    return plan, pool.split("/")[0]


def test_tokens_from_the_cli(detnat) -> None:  # type: ignore[no-untyped-def]
    made = detnat(
        "token", "create", "--name", "desk-1", "--role", "abuse", "--expires", "90d", "--json"
    )
    assert made.exit_code == 0, made.output
    shown = json.loads(made.stdout)
    assert set(shown) == {"token", "id", "role"} and shown["token"].startswith("dnt_")
    assert detnat("token", "create", "--name", "x", "--role", "root").exit_code == 2
    listed = detnat("token", "list", "--json")
    assert shown["token"] not in listed.stdout
    assert detnat("token", "revoke", str(shown["id"])).exit_code == 0
    assert detnat("token", "revoke", str(shown["id"])).exit_code == 4
    rows = [json.loads(line) for line in listed.stdout.splitlines()]
    assert any(r["id"] == shown["id"] and r["role"] == "abuse" for r in rows)


def test_four_eyes_evidence_and_audit_from_the_cli(
    detnat,
    realm_name: str,
    tmp_path: Path,  # type: ignore[no-untyped-def]
) -> None:
    plan, ip = _plan(tmp_path)
    assert (
        detnat("--as", "alice", "realm", "create", realm_name, "--session-drain", "0s").exit_code
        == 0
    )
    published = detnat(
        "--as",
        "alice",
        "plan",
        "publish",
        realm_name,
        str(plan),
        "--effective-from",
        "2020-01-01T00:00:00Z",
        "--reason",
        "CHG-7",
        "--correction",
        "--json",
    )
    assert published.exit_code == 0, published.output
    assert json.loads(published.stdout)["approved"] is False
    query = [f"{ip}:1100", "--at", "2020-06-01T00:00:00Z", "--realm", realm_name]
    no_case = detnat("reverse", *query)
    assert no_case.exit_code == 2 and "--case" in no_case.stderr
    pending = detnat("reverse", *query, "--case", '=HYPERLINK("x")', "--json")
    assert json.loads(pending.stdout)["status"] == "no_plan_in_force"
    assert detnat("--as", "alice", "plan", "approve", realm_name, "1").exit_code == 4
    approved = detnat("--as", "bob", "plan", "approve", realm_name, "1")
    assert approved.exit_code == 0, approved.output

    proof = tmp_path / "evidence.json"
    answered = detnat(
        "reverse",
        *query,
        "--case",
        '=HYPERLINK("x")',
        "--evidence",
        str(proof),
        "--legal-basis",
        "court order 12/26",
        "--json",
    )
    assert answered.exit_code == 0, answered.output
    assert json.loads(answered.stdout)["subscriber"] == "10.0.0.5/32"
    again = detnat("reverse", *query, "--case", "C-2", "--evidence", str(proof))
    assert again.exit_code == 2 and "never overwritten" in again.stderr
    checked = detnat("evidence", "verify", str(proof))
    assert checked.exit_code == 0 and checked.stdout.startswith("valid:")
    document = json.loads(proof.read_text())
    assert document["realms"][realm_name]["versions"][0]["approved_by"] == "bob"
    broken = proof.read_text().replace('"ratio": 4096', '"ratio": 4095')
    assert broken != proof.read_text()
    (tmp_path / "broken.json").write_text(broken)
    assert detnat("evidence", "verify", str(tmp_path / "broken.json")).exit_code == 6

    exported = detnat("audit", "export", "--case", '=HYPERLINK("x")', "--format", "csv")
    assert exported.exit_code == 0
    rows = list(csv.reader(io.StringIO(exported.stdout)))
    assert rows[0][:3] == ["seq", "at", "actor"]
    assert all(r[5] == '\'=HYPERLINK("x")' for r in rows[1:]) and len(rows) == 4
    assert [r[4] for r in rows[1:]] == ["case.open", "lookup.reverse", "lookup.reverse"]
    assert all(not c.startswith(("=", "+", "-", "@")) for r in rows for c in r)
    shown = detnat("audit", "show", "--case", '=HYPERLINK("x")', "--json")
    actions = [json.loads(line)["action"] for line in shown.stdout.splitlines()]
    assert actions == ["case.open", "lookup.reverse", "lookup.reverse"]

    mark = tmp_path / "checkpoint.json"
    assert detnat("audit", "checkpoint", "-o", str(mark)).exit_code == 0
    verified = detnat("audit", "verify", "--checkpoint", str(mark), "--json")
    assert verified.exit_code == 0, verified.output
    summary = json.loads(verified.stdout)
    assert summary["ok"] is True and summary["checkpoints_checked"] == 2
    history = detnat("audit", "show", "--case", "nothing-here")
    assert history.exit_code == 0 and history.stdout == ""
