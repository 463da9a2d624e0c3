"""The worked examples in ``docs/examples.md`` are true: every command shown prints what is shown.

``docs/examples.md`` is the machine-readable source of the expected answers, so the page and the
tests cannot drift apart. Each ``## `` section documents one plan file of ``docs/examples/``
(linked as ``(examples/NAME.yaml)``); in it

- a ```` ```yaml ```` block must be that plan file, byte for byte;
- a ```` ```console ```` block holds ``$ detnat …`` commands, each followed by the lines it
  prints. The command is run (in-process, from the repository root) and its output compared:
  JSON lines as JSON, other lines as text; ``detnat: error: …`` lines are the error on stderr
  with a non-zero exit.

Independently of the CLI, every ``--json`` answer of ``forward``/``reverse`` and every documented
query error is recomputed with the engine. Console blocks of ``docs/plan-file.md`` that run a plan
of ``docs/examples/`` are checked the same way (``text`` blocks there are illustrations).
"""

from __future__ import annotations

import json
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app
from detnat.errors import QueryError
from detnat.planfile import load_mapper

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "examples.md"
REFERENCE = ROOT / "docs" / "plan-file.md"
EXAMPLES = ROOT / "docs" / "examples"
ERROR_PREFIX = "detnat: error: "
_PLAN_LINK = re.compile(r"\]\(examples/([\w.-]+\.ya?ml)\)")
_PLAN_ARG = re.compile(r"docs/examples/[\w.-]+\.ya?ml")


@dataclass(frozen=True)
class Block:
    lang: str
    text: str
    line: int  # of the opening fence, 1-based


@dataclass(frozen=True)
class Command:
    section: str
    plan: str  # the docs/examples/ plan it runs, relative to the repository root
    argv: tuple[str, ...]  # without the leading "detnat"
    expected: tuple[str, ...]
    line: int

    @property
    def is_json(self) -> bool:
        return "--json" in self.argv

    @property
    def is_error(self) -> bool:
        return bool(self.expected) and self.expected[0].startswith(ERROR_PREFIX)

    @property
    def verb(self) -> str:
        return self.argv[0] if self.argv[0] != "plan" else " ".join(self.argv[:2])

    def queries(self) -> list[str]:
        """Positional queries of forward/reverse (the only options used: --plan, --json)."""
        rest = list(self.argv[1:])
        out: list[str] = []
        while rest:
            arg = rest.pop(0)
            if arg == "--plan":
                rest.pop(0)
            elif arg == "--json":
                continue
            else:
                assert not arg.startswith("--"), f"line {self.line}: unexpected option {arg}"
                out.append(arg)
        return out


def _blocks(lines: list[str], offset: int) -> list[Block]:
    blocks: list[Block] = []
    fence: tuple[str, int] | None = None
    body: list[str] = []
    for number, line in enumerate(lines, start=offset):
        if fence is None and line.startswith("```"):
            fence = (line[3:].strip(), number)
            body = []
        elif fence is not None and line.rstrip() == "```":
            blocks.append(Block(fence[0], "".join(f"{b}\n" for b in body), fence[1]))
            fence = None
        elif fence is not None:
            body.append(line)
    assert fence is None, f"docs/examples.md: unclosed code block at line {fence[1]}"
    return blocks


def _sections(doc: Path) -> list[tuple[str, list[Block], set[str]]]:
    lines = doc.read_text(encoding="utf-8").splitlines()
    starts = [n for n, line in enumerate(lines) if line.startswith("## ")]
    out = []
    for start, end in zip(starts, [*starts[1:], len(lines)], strict=True):
        body = lines[start:end]
        plans = set(_PLAN_LINK.findall("\n".join(body)))
        out.append((lines[start][3:].strip(), _blocks(body, start + 1), plans))
    return out


def _commands(doc: Path, *, one_plan_per_section: bool) -> list[Command]:
    """The ``$ detnat`` commands of ``doc``'s console blocks, each with the lines it prints."""
    commands: list[Command] = []
    for title, blocks, plans in _sections(doc):
        for block in blocks:
            if block.lang != "console":
                continue
            current: list[str] | None = None
            for number, line in enumerate(block.text.splitlines(), start=block.line + 1):
                where = f"{doc.name} line {number}"
                if line.startswith("$ "):
                    argv = shlex.split(line[2:])
                    assert argv[0] == "detnat", f"{where}: not a detnat command"
                    used = [a for a in argv if _PLAN_ARG.fullmatch(a)]
                    assert len(used) == 1, f"{where}: name one plan of docs/examples/"
                    if one_plan_per_section:
                        assert used[0] in {f"docs/examples/{p}" for p in plans}, (
                            f"{where}: use the plan the section {title!r} links to"
                        )
                    current = []
                    commands.append(Command(title, used[0], tuple(argv[1:]), (), number))
                    continue
                assert current is not None, f"{where}: output before any command"
                last = commands[-1]
                commands[-1] = Command(
                    last.section, last.plan, last.argv, (*last.expected, line), last.line
                )
    return commands


SECTIONS = _sections(DOC)
COMMANDS = _commands(DOC, one_plan_per_section=True)
REFERENCE_COMMANDS = _commands(REFERENCE, one_plan_per_section=False)
runner = CliRunner()


def _id(command: Command) -> str:
    doc = "examples.md" if command in COMMANDS else "plan-file.md"
    return f"{doc} line {command.line}: detnat {' '.join(command.argv)}"[:120]


def _answers() -> list[tuple[Command, str, dict[str, object]]]:
    out = []
    for command in COMMANDS:
        if command.verb in ("forward", "reverse") and command.is_json and not command.is_error:
            queries = command.queries()
            assert len(command.expected) == len(queries), f"line {command.line}: one line/query"
            out += [
                (command, q, json.loads(e)) for q, e in zip(queries, command.expected, strict=True)
            ]
    return out


ANSWERS = _answers()


# -- the page documents every plan, and shows them as they are ----------------------------------


def test_every_example_plan_is_documented_with_checked_answers() -> None:
    files = {path.name for path in EXAMPLES.glob("*.yaml")}
    documented = {plan for _, _, plans in SECTIONS for plan in plans}
    assert files, "docs/examples/ holds no plan"
    assert documented == files
    for name in files:
        mine = [c for c in COMMANDS if c.plan == f"docs/examples/{name}"]
        assert any(c.verb == "forward" for c in mine), f"{name}: no forward example"
        assert any(c.verb == "reverse" for c in mine), f"{name}: no reverse example"
        assert any(c.plan.endswith(name) for c, _, _ in ANSWERS), f"{name}: no --json answer"


def test_the_page_is_not_vacuous() -> None:
    # Guards against a reformatted page that silently parses into nothing.
    assert len(COMMANDS) >= 20
    assert len(ANSWERS) >= 40
    assert sum(c.is_error for c in COMMANDS) >= 4


@pytest.mark.parametrize("name", sorted(p.name for p in EXAMPLES.glob("*.yaml")))
def test_example_plan_is_valid(name: str) -> None:
    mapper = load_mapper(EXAMPLES / name)
    assert mapper.subscriber_count > 0


@pytest.mark.parametrize(
    ("plan", "block"),
    [
        pytest.param(plan, block, id=f"{plan} (line {block.line})")
        for _, blocks, plans in SECTIONS
        for plan in plans
        for block in blocks
        if block.lang == "yaml"
    ],
)
def test_yaml_shown_is_the_plan_file(plan: str, block: Block) -> None:
    assert block.text == (EXAMPLES / plan).read_text(encoding="utf-8")


# -- what the CLI prints ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "command", [pytest.param(c, id=_id(c)) for c in [*COMMANDS, *REFERENCE_COMMANDS]]
)
def test_documented_command_prints_what_is_documented(
    command: Command, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(ROOT)
    result = runner.invoke(app, list(command.argv))
    if command.is_error:
        assert result.exit_code != 0
        assert result.stdout == ""
        assert result.stderr.splitlines() == list(command.expected)
        return
    assert result.exit_code == 0, result.output
    got = result.stdout.splitlines()
    assert len(got) == len(command.expected), result.stdout
    for printed, documented in zip(got, command.expected, strict=True):
        if command.is_json:
            assert json.loads(printed) == json.loads(documented)
        else:
            assert printed.rstrip() == documented.rstrip()


# -- the same answers from the engine, without the CLI --------------------------------------------


@pytest.mark.parametrize(
    ("command", "query", "documented"),
    [pytest.param(c, q, d, id=f"{c.plan.rsplit('/', 1)[1]}: {c.verb} {q}") for c, q, d in ANSWERS],
)
def test_documented_json_answer_is_the_engine_answer(
    command: Command, query: str, documented: dict[str, object]
) -> None:
    mapper = load_mapper(ROOT / command.plan)
    if command.verb == "forward":
        answer = mapper.forward(query).to_json()
    else:
        address, _, port = query.rpartition(":")
        answer = mapper.reverse(address, int(port)).to_json()
    assert {"query": query, **answer} == documented


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(c, id=_id(c))
        for c in COMMANDS
        if c.is_error and c.verb in ("forward", "reverse")
    ],
)
def test_documented_query_error_is_the_engine_error(command: Command) -> None:
    mapper = load_mapper(ROOT / command.plan)
    (query,) = command.queries()
    with pytest.raises(QueryError) as info:
        if command.verb == "forward":
            mapper.forward(query)
        else:
            address, _, port = query.rpartition(":")
            mapper.reverse(address, int(port))
    assert f"{ERROR_PREFIX}{info.value}" == command.expected[0]
