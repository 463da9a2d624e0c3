"""What the CLI's commands share (:mod:`cli.runtime`): result files are never half-written and never
replace a file without ``--force``; ``--as`` names the operator of one invocation only; ``--plan``
commands start without the store's libraries."""

from __future__ import annotations

import doctest
import os
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

import cli.output
import cli.runtime
from cli import main, runtime
from detnat.errors import InvalidInput

ROOT = Path(__file__).parents[1]
EXAMPLE_PLAN = ROOT / "docs" / "examples" / "vpp-det44.yaml"


def test_the_worked_examples_in_the_cli_docstrings_hold() -> None:
    for module in (cli.runtime, cli.output):
        failed, attempted = doctest.testmod(module)
        assert attempted and not failed, module.__name__


def test_a_new_file_appears_whole_with_its_text(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with runtime.new_file(target, force=False) as sink:
        sink.write("ip,port\n")
        assert not target.exists()  # nothing at the target until the block ends
    assert target.read_text() == "ip,port\n"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_an_existing_file_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    target = tmp_path / "evidence.json"
    target.write_text("the first answer")
    with (
        pytest.raises(InvalidInput, match="already exists; pass --force"),
        runtime.new_binary_file(target, force=False),
    ):
        pytest.fail("the block must not run")
    assert target.read_text() == "the first answer"
    assert os.listdir(tmp_path) == ["evidence.json"]


def test_force_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "chart.svg"
    target.write_text("old")
    runtime.write_new(target, "new", force=True)
    assert target.read_text() == "new"
    assert os.listdir(tmp_path) == ["chart.svg"]


def test_a_file_that_appears_while_writing_is_not_replaced(tmp_path: Path) -> None:
    target = tmp_path / "checkpoint.json"
    with (
        pytest.raises(InvalidInput, match="never overwritten"),
        runtime.new_file(target, force=False, hint=runtime.KEPT_HINT) as sink,
    ):
        sink.write("ours")
        target.write_text("someone else's")
    assert target.read_text() == "someone else's"
    assert os.listdir(tmp_path) == ["checkpoint.json"]


def test_a_failure_while_writing_leaves_no_file_behind(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    with pytest.raises(RuntimeError), runtime.new_file(target, force=False) as sink:
        sink.write("half a row,")
        raise RuntimeError("the batch broke off")
    assert os.listdir(tmp_path) == []


def test_a_failure_while_forcing_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "out.csv"
    target.write_text("complete")
    with pytest.raises(KeyboardInterrupt), runtime.new_binary_file(target, force=True) as sink:
        sink.write(b"half")
        raise KeyboardInterrupt
    assert target.read_text() == "complete"
    assert os.listdir(tmp_path) == ["out.csv"]


def test_a_folder_that_does_not_exist_is_invalid_input(tmp_path: Path) -> None:
    with (
        pytest.raises(InvalidInput, match="cannot write"),
        runtime.new_file(tmp_path / "missing" / "out.csv", force=False),
    ):
        pytest.fail("the block must not run")


def test_bad_rows_are_listed_up_to_the_limit_then_counted(
    capsys: pytest.CaptureFixture[str],
) -> None:
    class Row:
        def __init__(self, line: int) -> None:
            self.line, self.message = line, f"bad port on line {line}"

    runtime.print_bad_rows(Path("in.csv"), [Row(n) for n in range(2, 6)], 25, limit=3)
    assert capsys.readouterr().err.splitlines() == [
        "detnat: in.csv:2: bad port on line 2",
        "detnat: in.csv:3: bad port on line 3",
        "detnat: in.csv:4: bad port on line 4",
        "detnat: ... and 22 more bad rows",
    ]


def _probe() -> typer.Typer:
    """``detnat``'s own top-level callback over one command that names its operator."""
    app = typer.Typer()
    app.callback()(main.main)

    @app.command()
    def who(ctx: typer.Context) -> None:
        print(runtime.operator(ctx).name)

    @app.command()
    def other() -> None:
        """A second command, so that `who` stays a subcommand."""

    return app


def test_as_names_the_operator_of_one_invocation_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.getpass, "getuser", lambda: "os-user")
    app, runner = _probe(), CliRunner()
    assert runner.invoke(app, ["--as", "alice", "who"]).output == "alice\n"
    assert runner.invoke(app, ["who"]).output == "os-user\n"  # alice does not linger
    assert runner.invoke(app, ["--as", "bob", "who"]).output == "bob\n"


def test_a_sub_app_mounted_alone_runs_as_the_os_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(runtime.getpass, "getuser", lambda: "os-user")
    app = typer.Typer()

    @app.command()
    def who(ctx: typer.Context) -> None:
        print(runtime.operator(ctx).name)

    assert CliRunner().invoke(app, []).output == "os-user\n"


def test_reverse_from_a_plan_file_loads_no_store_libraries() -> None:
    script = (
        "import sys\n"
        "from cli.main import app\n"
        "try:\n"
        f"    app(['reverse', '--plan', {str(EXAMPLE_PLAN)!r}, '--json', '1.1.1.1:2000'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
        "loaded = sorted({m.partition('.')[0] for m in sys.modules} & "
        "{'sqlalchemy', 'psycopg', 'alembic', 'fastapi', 'uvicorn'})\n"
        "print('loaded:', loaded)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "loaded: []", run.stdout


def test_version_imports_no_command_module_and_no_library_of_theirs() -> None:
    script = (
        "import sys\n"
        "from cli.main import app\n"
        "try:\n"
        "    app(['--version'])\n"
        "except SystemExit as exit:\n"
        "    assert exit.code in (0, None), exit.code\n"
        "ours = sorted(m for m in sys.modules if m.startswith('cli.commands.'))\n"
        "theirs = sorted({m.partition('.')[0] for m in sys.modules} & "
        "{'numpy', 'pydantic', 'yaml', 'sqlalchemy', 'psycopg'})\n"
        "print('loaded:', ours, theirs)\n"
    )
    run = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=120
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.splitlines()[-1] == "loaded: [] []", run.stdout
