"""Evidence files refuse forgeries: every leaf changed, keys duplicated, added or removed, files cut
short or replaced by garbage -- each is "not valid" (exit 6), never a valid answer nor a crash.

The genuine files are made the way users make them: through the store and the real lookup path
(``detnat reverse ... --evidence FILE`` and ``GET /v1/answers/{id}/evidence``).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from api.app import create_app
from cli.main import app
from detnat.service import evidence
from detnat.settings import Settings, get_settings
from tests.store.conftest import fresh_pool
from tests.store.test_trust_api import Api

pytestmark = pytest.mark.postgres

Path_ = tuple[str | int, ...]
MARK = "forged"


@pytest.fixture
def detnat(database_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Any]]:
    monkeypatch.setenv("DETNAT_DATABASE_URL", database_url)
    get_settings.cache_clear()
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args))

    yield run
    get_settings.cache_clear()


def _publish(
    detnat: Callable[..., Any], tmp_path: Path, realm: str, pool: str, block: str, when: str
) -> None:
    plan = tmp_path / "plan.yaml"
    plan.write_text(
        "algorithm: block\ninside: {prefixes: ['10.0.0.0/18'], subscriber_prefix_length: 32}\n"
        f"outside: {{prefixes: ['{pool}']}}\nblock: {block}\n"
    )
    published = detnat(
        "--as", "alice", "plan", "publish", realm, str(plan), "--effective-from", when,
        "--reason", f"CHG {when}", "--correction", "--json",
    )  # fmt: skip
    assert published.exit_code == 0, published.output
    seq = str(json.loads(published.stdout)["version"])
    approved = detnat("--as", "bob", "plan", "approve", realm, seq)
    assert approved.exit_code == 0, approved.output


@pytest.fixture
def genuine(detnat: Callable[..., Any], realm_name: str, tmp_path: Path) -> Path:
    """An ambiguous answer across a plan change (with drain), from a corrected timeline."""
    pool = fresh_pool()
    made = detnat("--as", "alice", "realm", "create", realm_name, "--session-drain", "90s")
    assert made.exit_code == 0, made.output
    change = "2020-06-01T00:00:30Z"
    for block, when in [
        ("{ratio: 4096}", "2020-01-01T00:00:00Z"),
        ("{ratio: 4096, assignment: staggered}", change),
        ("{size: 15, assignment: staggered}", change),  # a correction: supersedes the one before
        ("{ratio: 4096}", "2020-09-01T00:00:00Z"),  # the first version after the window
    ]:
        _publish(detnat, tmp_path, realm_name, pool, block, when)
    proof = tmp_path / "evidence.json"
    answered = detnat(
        "reverse", f"{pool.split('/')[0]}:1100", "--at", "2020-06-01T00:00:00Z",
        "--tolerance", "45s", "--realm", realm_name, "--case", "LEGAL-9",
        "--legal-basis", "court order 12/26", "--evidence", str(proof), "--json",
    )  # fmt: skip
    assert answered.exit_code == 0, answered.output
    assert json.loads(answered.stdout)["status"] == "ambiguous"
    return proof


def _leaves(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, dict):
        for key, item in value.items():
            yield from _leaves(item, (*path, key))
    elif isinstance(value, list) and value:
        for n, item in enumerate(value):
            yield from _leaves(item, (*path, n))
    else:
        yield path


def _objects(value: Any, path: Path_ = ()) -> Iterator[Path_]:
    if isinstance(value, dict):
        yield path
        for key, item in value.items():
            yield from _objects(item, (*path, key))
    elif isinstance(value, list):
        for n, item in enumerate(value):
            yield from _objects(item, (*path, n))


def _at(document: Any, path: Path_) -> Any:
    for step in path:
        document = document[step]
    return document


def _replaced(document: Any, path: Path_, value: Any) -> Any:
    changed = copy.deepcopy(document)
    _at(changed, path[:-1])[path[-1]] = value
    return changed


def _mutations(value: Any) -> list[Any]:
    """Other values for one leaf: a changed string, a bumped number, a flipped bool, a null."""
    if value is None:
        return [0, MARK]
    if isinstance(value, bool):
        return [not value, None]
    if isinstance(value, int | float):
        return [value + 1, None, str(value)]
    if isinstance(value, str):
        flipped = value[:-1] + ("0" if value[-1:] != "0" else "1") if value else MARK
        return [flipped, value + " ", None]
    assert value == [], value
    return [[0], None]


def _verdict(detnat: Callable[..., Any], tmp_path: Path, text: str) -> tuple[int, str]:
    path = tmp_path / "candidate.json"
    path.write_text(text, encoding="utf-8")
    result = detnat("evidence", "verify", str(path))
    return result.exit_code, result.stderr


def test_a_genuine_evidence_file_verifies(detnat: Callable[..., Any], genuine: Path) -> None:
    checked = detnat("evidence", "verify", str(genuine))
    assert checked.exit_code == 0, checked.output
    assert checked.stdout.startswith("valid:")
    document = json.loads(genuine.read_text())
    assert document["format"] == "detnat-evidence/4"
    assert document["logs"] == {"ingests": [], "lines": []}  # no log line to read again
    assert document["directory"] == {"ingests": [], "held": []}  # no account to read again
    versions = next(iter(document["realms"].values()))["versions"]
    assert [v["approved_by"] for v in versions] == ["bob"] * len(versions) and len(versions) == 3


def test_every_leaf_changed_makes_the_evidence_invalid(
    detnat: Callable[..., Any], genuine: Path, tmp_path: Path
) -> None:
    document = json.loads(genuine.read_text())
    accepted, crashed, tried = [], [], 0
    for path in _leaves(document):
        for value in _mutations(_at(document, path)):
            tried += 1
            code, err = _verdict(detnat, tmp_path, json.dumps(_replaced(document, path, value)))
            if code == 0:
                accepted.append((path, value))
            elif code != 6 or not err.startswith("detnat: evidence: "):
                crashed.append((path, value, code, err[:200]))
    assert tried > 300
    assert not accepted, f"forgeries that verify: {accepted}"
    assert not crashed, f"forgeries not refused as invalid (exit 6): {crashed}"


def test_the_first_line_names_the_forged_field(
    detnat: Callable[..., Any], genuine: Path, tmp_path: Path
) -> None:
    document = json.loads(genuine.read_text())
    realm = next(iter(document["realms"]))
    cases: list[tuple[Path_, Any, str]] = [
        (("realms", realm, "versions", 0, "approved_by"), "mallory", "approved_by"),
        (("realms", realm, "versions", 1, "id"), 10**6, ".id"),
        (("realms", realm, "session_drain_us"), 0, "session_drain_us"),
        (("code_version",), "0.0.0", "code_version"),
        (("query", "realm"), "elsewhere", "query.realm"),
    ]
    for path, value, named in cases:
        code, err = _verdict(detnat, tmp_path, json.dumps(_replaced(document, path, value)))
        assert code == 6, (path, err)
        assert named in err.splitlines()[0], (path, err)


def test_a_key_added_or_removed_anywhere_makes_the_evidence_invalid(
    detnat: Callable[..., Any], genuine: Path, tmp_path: Path
) -> None:
    document = json.loads(genuine.read_text())
    accepted = []
    for path in _objects(document):
        added = copy.deepcopy(document)
        _at(added, path)["zz_extra"] = 1
        if _verdict(detnat, tmp_path, json.dumps(added))[0] != 6:
            accepted.append(("added", path))
        for key in list(_at(document, path)):
            removed = copy.deepcopy(document)
            del _at(removed, path)[key]
            if _verdict(detnat, tmp_path, json.dumps(removed))[0] != 6:
                accepted.append(("removed", (*path, key)))
    assert not accepted, accepted


def _dump_duplicating(value: Any, target: Path_, forged_first: bool, path: Path_ = ()) -> str:
    """JSON text of ``value`` where the object at ``target`` says its first key twice."""
    if isinstance(value, dict):
        parts = [
            f"{json.dumps(k)}:{_dump_duplicating(v, target, forged_first, (*path, k))}"
            for k, v in value.items()
        ]
        if path == target and value:
            key, genuine_value = next(iter(value.items()))
            leaf = not isinstance(genuine_value, dict | list) or genuine_value == []
            forged = _mutations(genuine_value)[0] if leaf else MARK
            parts.insert(0 if forged_first else 1, f"{json.dumps(key)}:{json.dumps(forged)}")
        return "{" + ",".join(parts) + "}"
    if isinstance(value, list):
        items = [
            _dump_duplicating(v, target, forged_first, (*path, n)) for n, v in enumerate(value)
        ]
        return "[" + ",".join(items) + "]"
    return json.dumps(value)


def test_a_duplicated_key_makes_the_evidence_invalid(
    detnat: Callable[..., Any], genuine: Path, tmp_path: Path
) -> None:
    document = json.loads(genuine.read_text())
    assert json.loads(_dump_duplicating(document, ("nowhere",), True)) == document
    accepted = []
    for path in _objects(document):
        for forged_first in (True, False):  # last wins: the genuine value, or the forged one
            code, err = _verdict(detnat, tmp_path, _dump_duplicating(document, path, forged_first))
            if code != 6 or "duplicate key" not in err:
                accepted.append((path, forged_first, code))
    assert not accepted, accepted


def test_truncated_and_garbage_files_are_invalid(
    detnat: Callable[..., Any], genuine: Path, tmp_path: Path
) -> None:
    text = genuine.read_text()
    candidates = [text[:n] for n in (0, 1, len(text) // 3, len(text) // 2, len(text) - 2)]
    candidates += ["null", "[]", "{}", "42", '"detnat-evidence/2"', "garbage", text + "{}"]
    candidates += [text.replace(evidence.FORMAT, "detnat-evidence/1")]
    candidates += [text.replace('"seq": 1,', '"seq": NaN,', 1)]
    for candidate in candidates:
        code, err = _verdict(detnat, tmp_path, candidate)
        assert code == 6 and err.startswith("detnat: evidence: "), (candidate[:60], code, err)
    (tmp_path / "binary.json").write_bytes(b"\xff\xfe{\x00}")
    binary = detnat("evidence", "verify", str(tmp_path / "binary.json"))
    assert binary.exit_code == 6, binary.output


def test_an_old_format_file_is_refused_with_a_clear_message(
    detnat: Callable[..., Any], genuine: Path, tmp_path: Path
) -> None:
    old = json.loads(genuine.read_text())
    old["format"] = "detnat-evidence/1"
    code, err = _verdict(detnat, tmp_path, json.dumps(old))
    assert code == 6 and "detnat-evidence/1" in err and evidence.FORMAT in err, err


def test_a_previous_format_file_without_log_lines_still_verifies(
    detnat: Callable[..., Any], genuine: Path, tmp_path: Path
) -> None:
    """A detnat-evidence/2 file is the /4 file without ``logs`` and ``directory``, a /3 file
    without ``directory``: with no log or directory line to read again, each is checked in full
    and valid; with the parts its format lacks kept, it is not a file of that format."""
    for shown, dropped in (
        ("detnat-evidence/2", ("logs", "directory")),
        ("detnat-evidence/3", ("directory",)),
    ):
        previous = json.loads(genuine.read_text())
        previous["format"] = shown
        kept = json.dumps(previous)
        for part in dropped:
            del previous[part]
        path = tmp_path / "previous.json"
        path.write_text(json.dumps(previous))
        checked = detnat("evidence", "verify", str(path))
        assert checked.exit_code == 0, checked.output
        code, err = _verdict(detnat, tmp_path, kept)
        assert code == 6 and f"{dropped[0]}: not a field of {shown}" in err, err


# -- the API's evidence file -----------------------------------------------------------------------


@pytest.fixture
def api(database_url: str, api_tokens: dict[str, str]) -> Iterator[Api]:
    client = Api(create_app(Settings(database_url=database_url)), api_tokens)
    yield client
    client.close()


def test_every_leaf_of_an_api_evidence_file_is_covered(api: Api, realm_name: str) -> None:
    pool = fresh_pool()
    created = api(
        "POST", "/v1/realms", "admin",
        {"name": realm_name, "session_drain": "30s", "single_approver": False},
    )  # fmt: skip
    assert created.status_code == 201, created.text
    plan = {
        "algorithm": "block",
        "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
        "outside": {"prefixes": [pool]},
        "block": {"ratio": 4096},
    }
    body = {"plan": plan, "effective_from": "2020-01-01T00:00:00Z", "reason": "CHG-1"}
    published = api(
        "POST", f"/v1/realms/{realm_name}/versions", "admin", {**body, "correction": True}
    )
    assert published.status_code == 201, published.text
    approved = api("POST", f"/v1/realms/{realm_name}/versions/1/approval", "admin2", {})
    assert approved.status_code == 201, approved.text
    query = {"ip": pool.split("/")[0], "port": 1100, "time": "2020-01-01T00:00:01Z"}
    answer = api("POST", "/v1/lookups/reverse", "legal", {**query, "case": "CASE-API-EVIDENCE"})
    assert answer.status_code == 200, answer.text
    got = api("GET", f"/v1/answers/{answer.json()['answer_id']}/evidence", "legal")
    document = got.json()
    assert evidence.verify(copy.deepcopy(document))[0] == []
    accepted = []
    for path in _leaves(document):
        for value in _mutations(_at(document, path)):
            problems, _ = evidence.verify(_replaced(document, path, value))
            if not problems:
                accepted.append((path, value))
    assert not accepted, accepted
