"""Holes a black-box probe found in the edges that need no store (issue 10): plan files, batch
files, arguments and settings. Each must be refused clearly (one line, exit 2; an InvalidInput
naming the field), never a crash, a hang or a silent change of what was written."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from cli.main import app as cli
from detnat import strictjson
from detnat.errors import InvalidInput, PlanError, QueryError
from detnat.planfile import read_plan, read_yaml
from detnat.service import batch_lookups
from detnat.service.times import parse_duration, parse_instant, parse_instants_us
from detnat.settings import NOT_SETTINGS, Settings, get_settings

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


# -- 4. YAML plan files mean what they say ---------------------------------------------------------


@pytest.mark.parametrize(
    ("line", "field", "words"),
    [
        ("ports: {first: 01024}", "ports.first", "leading zero"),
        ("block: {ratio: 010}", "block.ratio", "leading zero"),
        ("block: {ratio: 0x1000}", "block.ratio", "not a decimal number"),
        ("block: {ratio: 3_2}", "block.ratio", "underscore"),
        ("ports: {exclude: [17:23]}", "ports.exclude[0]", "sexagesimal"),
        ("ports: {exclude: [1723, 0o17]}", "ports.exclude[1]", "not a port"),
        ("block: {ratio: 1e3}", "block.ratio", "YAML 1.2"),
        ("block: {ratio: 64, assignment: on}", "block.assignment", "boolean in YAML 1.1"),
        ("inside: {exclude: [no]}", "inside.exclude[0]", "boolean in YAML 1.1"),
        ("yes: 1", "yes", "boolean in YAML 1.1"),
        ("block: {ratio: !!int 010}", "plan", "tags are not allowed"),
    ],
)
def test_yaml_1_1_readings_are_refused_with_the_field_named(
    tmp_path: Path, line: str, field: str, words: str
) -> None:
    lines = [x for x in PLAN_YAML.splitlines() if x.split(":")[0] != line.split(":")[0]]
    path = tmp_path / "plan.yaml"
    path.write_text("\n".join([*lines, line]) + "\n")
    result = _run("plan", "check", str(path))
    _one_error_line(result, f"{field}: " if field != "plan" else "plan.yaml")
    assert words in result.stderr


def test_a_yaml_plan_reads_the_numbers_it_shows(tmp_path: Path) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(PLAN_YAML.replace("ratio: 4096", "ratio: +4096") + "ports: {first: 1024}\n")
    assert _run("plan", "check", str(path)).exit_code == 0
    block = read_plan(path).block
    assert block is not None and block.ratio == 4096


SCALARS = st.one_of(
    st.from_regex(r"\A[-+]?[0-9_:.xXoObBeE]{1,10}\Z"),
    st.sampled_from(["yes", "No", "ON", "off", "y", "n", "true", "False", "~", "null", "=", "<<"]),
    st.sampled_from(["2026-03-14", "1.5", ".inf", "-.INF", "0", "-0", "1e3", "1.0e+3"]),
    st.integers(min_value=-(10**30), max_value=10**30).map(str),
)


@given(SCALARS)
def test_a_plain_scalar_is_read_as_yaml_1_1_reads_it_or_refused(text: str) -> None:
    """Whatever a plan reader on YAML 1.1 (PyYAML's own safe_load) makes of a scalar, detnat
    reads the same or refuses it naming the key: never a third reading, never a silent one."""
    try:
        ours = read_yaml(f"key: {text}\n")
    except PlanError as exc:
        assert exc.field in ("key", "plan")
        return
    theirs = yaml.safe_load(f"key: {text}\n")
    assert ours == theirs and type(ours["key"]) is type(theirs["key"])


# -- 5. digits are ASCII ---------------------------------------------------------------------------

WIDE = "２０２６-03-14T20:00:00Z"
ARABIC_INDIC = "٢٠٢٦-03-14T20:00:00Z"


@pytest.mark.parametrize("text", [WIDE, ARABIC_INDIC, "2026-03-14T20:00:00+٠١:00"])
def test_times_with_non_ascii_digits_are_refused(text: str) -> None:
    with pytest.raises(QueryError) as caught:
        parse_instant(text)
    assert caught.value.field == "time"
    _, errors = parse_instants_us([text, "2026-03-14T20:00:00Z"])
    assert list(errors) == [0]


@pytest.mark.parametrize("text", ["２s", "1٣s", "٥m", "１h", "５００ms"])
def test_durations_with_non_ascii_digits_are_refused(text: str) -> None:
    with pytest.raises(QueryError):
        parse_duration(text)


def test_a_batch_row_with_non_ascii_digits_is_a_bad_row(plan_file: Path, tmp_path: Path) -> None:
    batch = tmp_path / "in.csv"
    batch.write_text("ip,port\n1.1.1.1,１２７６\n1.1.1.1,1276\n1.1.1.1,١٢٧٦\n")
    result = _run("reverse", "--plan", str(plan_file), "--batch", str(batch))
    assert result.exit_code == 2
    rows = result.stdout.splitlines()
    assert [r.split(",")[2] for r in rows[1:]] == ["error", "match", "error"]


@pytest.mark.parametrize(
    "args",
    [
        ["--ports", "１０２４-65535"],
        ["--ports", "1024-٦٥٥٣٥"],
        ["--exclude-ports", "１７２３"],
    ],
)
def test_capacity_ports_with_non_ascii_digits_are_refused(args: list[str]) -> None:
    result = _run("capacity", "size", "--subscribers", "1000", "--target", "0.01", *args)
    _one_error_line(result, args[0])


# -- 7. formula neutralising covers leading control characters ------------------------------------


@pytest.mark.parametrize("lead", ["\x00", "\x01", "\x1b", "\x7f", "\t", "＝", "＋", "－", "＠"])
def test_batch_output_neutralises_cells_led_by_control_or_fullwidth_characters(
    plan_file: Path, tmp_path: Path, lead: str
) -> None:
    batch = tmp_path / "in.csv"
    rows = "".join(f"1.1.1.1,1276,{lead}cmd|x!A{i}\n" for i in range(3))
    batch.write_bytes(f"ip,port,note\n{rows}".encode())
    out = tmp_path / "out.csv"
    result = _run("reverse", "--plan", str(plan_file), "--batch", str(batch), "-o", str(out))
    assert result.exit_code == 0, result.output
    lines = out.read_bytes().decode().split("\n")[1:4]
    assert all(line.split(",")[2].startswith(f"'{lead}") for line in lines), lines


@pytest.mark.parametrize("lead", ["\x00", "\x1f", "\x7f", "＝", "=", "\r"])
def test_store_batch_cells_are_neutralised_alike(lead: str) -> None:
    assert batch_lookups.cell(f"{lead}1+1").lstrip('"').startswith(f"'{lead}")
    echoed = batch_lookups.echoes([["1.1.1.1", "1", "t", f"{lead}1+1"]], 4)
    assert f",'{lead}1+1" in echoed[0] or f",\"'{lead}1+1" in echoed[0]


# -- 8. files that never end, nesting that never ends, argv that is not text -----------------------

DEEP_JSON = "[" * 100_000 + "]" * 100_000
DEEP_YAML = "a:\n" + "".join(" " * i + "- \n" for i in range(1, 2000)) + "[" * 100_000


def test_evidence_verify_of_dev_zero_is_refused_not_hung() -> None:
    _one_error_line(_run("evidence", "verify", "/dev/zero"), "/dev/zero")


@pytest.mark.parametrize("text", [DEEP_JSON, '{"a": ' * 100_000 + "1" + "}" * 100_000])
def test_deeply_nested_evidence_files_are_refused(tmp_path: Path, text: str) -> None:
    """Read, but not evidence: exit 6 ("not valid") with one line, like any malformed file."""
    path = tmp_path / "evidence.json"
    path.write_text(text)
    result = _run("evidence", "verify", str(path))
    assert result.exit_code == 6, (result.exit_code, result.output)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "nested too deeply" in lines[0], result.stderr


@pytest.mark.parametrize(
    "text",
    ["{" + '"a": {' * 100_000 + "}" * 100_000 + "}", "a: " + "[" * 100_000, DEEP_YAML],
)
def test_deeply_nested_plan_files_are_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "plan.yaml"
    path.write_text(text)
    _one_error_line(_run("plan", "check", str(path)), "plan.yaml")


def test_plan_batch_of_dev_zero_is_refused_not_hung(plan_file: Path) -> None:
    _one_error_line(_run("reverse", "--plan", str(plan_file), "--batch", "/dev/zero"), "batch")


# -- 12. every documented DETNAT_* variable is a setting; unknown ones are refused -----------------


def test_the_web_session_secret_from_the_environment_signs_the_sessions(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api.web import sessions

    secret = "s" * 40
    monkeypatch.setenv("DETNAT_WEB_SESSION_SECRET", secret)
    monkeypatch.setenv("DETNAT_DATA_DIR", str(tmp_path))
    settings = Settings()
    assert sessions.secret_from(settings) == secret.encode()
    assert not (tmp_path / sessions.KEY_FILE).exists()  # no per-host key: hosts agree


@pytest.mark.parametrize("name", ["DETNAT_DATABSE_URL", "DETNAT_WEB_SESSION_SECRETS"])
def test_an_unknown_detnat_variable_is_refused_at_start_up(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    monkeypatch.setenv(name, "x")
    get_settings.cache_clear()
    try:
        result = _run("realm", "list")
    finally:
        get_settings.cache_clear()
    _one_error_line(result, name)


def test_every_documented_detnat_variable_is_a_setting_or_a_test_switch() -> None:
    root = Path(__file__).resolve().parents[1]
    texts = [p.read_text() for p in [root / "README.md", *sorted((root / "docs").glob("*.md"))]]
    documented = set(re.findall(r"DETNAT_[A-Z_]+[A-Z]", "\n".join(texts)))
    known = {f"DETNAT_{name.upper()}" for name in Settings.model_fields} | NOT_SETTINGS
    assert documented <= known, documented - known


def test_platformdirs_is_a_declared_dependency() -> None:
    root = Path(__file__).resolve().parents[1]
    project = tomllib.loads((root / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("platformdirs") for d in project["dependencies"])


# -- integers in arguments and options: ASCII digits only ------------------------------------------

NOT_DECIMAL = ["١", "１", "²", "1_000", " 7", "7 ", "+7", "0x10", "", "9" * 30]


def _parameters(kind: str) -> list[tuple[str, Any]]:
    """Every parameter of the whole command tree whose type is Click's ``kind`` (or a subclass)."""
    import typer.core
    import typer.main
    from typer._click import core, types  # the Click that Typer vendors

    wanted = getattr(types, kind)
    found: list[tuple[str, Any]] = []

    def walk(command: core.Command, path: str) -> None:
        for param in command.params:
            if isinstance(param.type, wanted):
                found.append((f"{path} {param.name}", param))
        if isinstance(command, typer.core.TyperGroup):
            for name, sub in command.commands.items():
                walk(sub, f"{path} {name}")

    walk(typer.main.get_command(cli), "detnat")
    return found


def _integer_parameters() -> list[tuple[str, Any]]:
    return _parameters("IntParamType")


def test_every_integer_parameter_is_found() -> None:
    names = {name for name, _ in _integer_parameters()}
    assert "detnat plan approve version" in names
    assert "detnat serve workers" in names
    assert len(names) >= 10, names


@pytest.mark.parametrize("text", NOT_DECIMAL)
def test_integer_parameters_take_ascii_decimal_digits_only(text: str) -> None:
    # int() reads '١' (Arabic-Indic one) and '１' (fullwidth) as 1: `plan approve R ١` approved
    # version 1. A number an operator did not type in plain digits is refused, never read.
    from typer._click.exceptions import BadParameter

    for name, param in _integer_parameters():
        with pytest.raises(BadParameter):
            param.type.convert(text, param, None)
        assert param.type.convert("7", param, None) == 7, name


@pytest.mark.parametrize("text", ["０.０１", "٠.٠١", "1_0.5", " 0.1", "nan", "inf", "0x1p-3", ""])
def test_number_options_take_ascii_only(text: str) -> None:
    from typer._click.exceptions import BadParameter

    found = _parameters("FloatParamType")
    assert {"detnat capacity size target", "detnat capacity size pool_target"} <= {
        n for n, _ in found
    }
    for name, param in found:
        with pytest.raises(BadParameter):
            param.type.convert(text, param, None)
        for ok, value in (("0.01", 0.01), ("1e-3", 0.001), (".5", 0.5), ("3", 3.0)):
            assert param.type.convert(ok, param, None) == value, name


def test_approve_with_a_non_ascii_version_is_refused_before_the_store() -> None:
    result = _run("plan", "approve", "aftr-1", "١")
    assert result.exit_code == 2, result.output
    assert "١" in result.output and "Traceback" not in result.output
