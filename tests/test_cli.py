"""The stateless CLI: the design's contract (JSON Lines, exit codes, one error line)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from cli.main import app

VPP = """\
algorithm: block
inside: {prefixes: ["10.0.0.0/18"], subscriber_prefix_length: 32}
outside: {prefixes: ["1.1.1.0/30"]}
block: {ratio: 4096}
"""
MAP = """\
algorithm: map
map: {rule_ipv6_prefix: "2001:db8::/40", rule_ipv4_prefix: "192.0.2.0/24",
      ea_bits_length: 16, psid_offset: 6}
"""

runner = CliRunner()


@pytest.fixture
def vpp(tmp_path: Path) -> Path:
    path = tmp_path / "vpp.yaml"
    path.write_text(VPP)
    return path


@pytest.fixture
def map_plan(tmp_path: Path) -> Path:
    path = tmp_path / "map.yaml"
    path.write_text(MAP)
    return path


def lines(output: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in output.splitlines()]


def test_forward_json_is_one_object_per_query_in_order(vpp: Path) -> None:
    result = runner.invoke(
        app, ["forward", "--plan", str(vpp), "--json", "10.0.0.2", "10.0.16.16/32"]
    )
    assert result.exit_code == 0, result.output
    first, second = lines(result.stdout)
    assert first == {
        "query": "10.0.0.2",
        "subscriber": "10.0.0.2/32",
        "public_ip": "1.1.1.0",
        "port_ranges": [[1054, 1068]],
    }
    assert second["public_ip"] == "1.1.1.1"
    assert second["port_ranges"] == [[1264, 1278]]


def test_forward_of_an_ipv6_address_names_its_subscriber_prefix(map_plan: Path) -> None:
    result = runner.invoke(
        app, ["forward", "--plan", str(map_plan), "--json", "2001:DB8:12:34FF::1"]
    )
    assert result.exit_code == 0, result.output
    (answer,) = lines(result.stdout)
    assert answer["subscriber"] == "2001:db8:12:3400::/56"
    assert answer["public_ip"] == "192.0.2.18"
    assert [1232, 1235] in answer["port_ranges"]  # type: ignore[operator]


def test_reverse_json_statuses_and_reasons(vpp: Path) -> None:
    queries = ["1.1.1.1:1276", "1.1.1.1:80", "1.1.1.1:65535", "198.51.100.1:2000"]
    result = runner.invoke(app, ["reverse", "--plan", str(vpp), "--json", *queries])
    assert result.exit_code == 0, result.output
    answers = lines(result.stdout)
    assert [a["query"] for a in answers] == queries
    assert answers[0]["status"] == "match"
    assert answers[0]["subscriber"] == "10.0.16.16/32"
    assert answers[0]["port_ranges"] == [[1264, 1278]]
    assert (answers[1]["status"], answers[1]["reason"]) == ("no_mapping", "reserved_port")
    # 64512 usable ports / 4096 = 15 per block: ports 62464-65535 are the unused tail, and VPP
    # would extrapolate a subscriber there. We do not.
    assert (answers[2]["status"], answers[2]["reason"]) == ("no_mapping", "unallocated")
    assert (answers[3]["status"], answers[3]["reason"]) == ("no_mapping", "not_in_pool")
    assert "subscriber" not in answers[1]


def test_a_bad_query_is_one_error_line_and_exit_2_while_the_others_are_answered(
    vpp: Path,
) -> None:
    result = runner.invoke(
        app, ["reverse", "--plan", str(vpp), "--json", "1.1.1.1:1276", "1.1.1.1:99999", "x"]
    )
    assert result.exit_code == 2
    answers = lines(result.stdout)
    assert [a["status"] for a in answers] == ["match", "error", "error"]
    assert len(result.stderr.strip().splitlines()) == 2
    assert all(line.startswith("detnat: error: ") for line in result.stderr.splitlines())


@pytest.mark.parametrize(
    ("query", "words"),
    [
        ("::ffff:192.0.2.1:80", "IPv4-mapped"),
        ("[64:ff9b::192.0.2.1]:80", "NAT64"),
        ("100.64.0.1:80", "shared address space"),
        ("10.0.0.1:80", "RFC 1918"),
        ("01.1.1.1:80", "leading zero"),
        ("1.1.1.1:080", "not a port"),
        ("1.1.1.1:-1", "not a port"),
        ("1.1.1.1", "ADDRESS:PORT"),
        ("１.１.１.１:80", "not an IPv4 address"),
    ],
)
def test_reverse_refuses_bad_queries(vpp: Path, query: str, words: str) -> None:
    result = runner.invoke(app, ["reverse", "--plan", str(vpp), query])
    assert result.exit_code == 2
    assert words in result.stderr
    assert result.stderr.count("\n") == 1


def test_forward_outside_the_key_space_is_an_error(vpp: Path) -> None:
    result = runner.invoke(app, ["forward", "--plan", str(vpp), "10.0.64.0"])
    assert result.exit_code == 2
    assert "not in the plan's inside key space" in result.stderr


def test_invalid_plan_is_exit_2_with_the_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(VPP.replace("ratio: 4096", "ratio: 4000"))
    result = runner.invoke(app, ["plan", "check", str(bad)])
    assert result.exit_code == 2
    assert result.stderr.startswith("detnat: error: block: ")
    assert "short by 384" in result.stderr


def test_plan_check_summarises(vpp: Path) -> None:
    result = runner.invoke(app, ["plan", "check", "--json", str(vpp)])
    assert result.exit_code == 0
    (summary,) = lines(result.stdout)
    assert summary["subscribers"] == 16384
    assert summary["ports_per_subscriber"] == 15
    assert summary["unused_tail_ports_per_address"] == 64512 - 4096 * 15
    assert summary["utilisation"] == 1.0


def test_plan_table_lists_every_subscriber_as_forward_does(tmp_path: Path) -> None:
    plan = tmp_path / "small.yaml"
    plan.write_text(
        "algorithm: block\n"
        "inside: {prefixes: ['100.64.0.0/29'], subscriber_prefix_length: 32}\n"
        "outside: {prefixes: ['192.0.2.1/32', '192.0.2.2/32']}\n"
        "ports: {first: 40000, last: 60000, exclude: ['45000']}\n"
        "block: {size: 5000}\n"
    )
    result = runner.invoke(app, ["plan", "table", str(plan)])
    assert result.exit_code == 0, result.output
    rows = result.stdout.splitlines()
    assert rows[0] == "subscriber,public_ip,port_ranges"
    assert rows[1] == "100.64.0.0/32,192.0.2.1,40000-44999"
    assert rows[2] == "100.64.0.1/32,192.0.2.1,45001-50000"
    assert len(rows) == 9


def test_store_lookups_need_a_source(vpp: Path) -> None:
    result = runner.invoke(app, ["reverse", "1.1.1.1:1276"])
    assert result.exit_code == 2
    assert "--plan" in result.stderr


def test_the_installed_command_speaks_the_contract(vpp: Path) -> None:
    detnat = Path(sys.executable).parent / "detnat"
    done = subprocess.run(
        [str(detnat), "reverse", "--plan", str(vpp), "--json", "1.1.1.1:1276"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["subscriber"] == "10.0.16.16/32"
    done = subprocess.run(
        [str(detnat), "forward", "--plan", str(vpp / "nope"), "10.0.0.1"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "Traceback" not in done.stderr
    assert done.stderr.count("\n") == 1


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (["capacity", "size", "--subscribers", "1e9"], "Invalid value for '--subscribers'"),
        (["plan", "check", "--bogus"], "No such option: --bogus"),
        (["--bogus"], "No such option: --bogus"),
        (["plan", "bogus"], "No such command 'bogus'"),
    ],
)
def test_a_command_line_that_does_not_parse_is_one_line_and_exit_2(
    args: list[str], said: str
) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("detnat: error: ") and said in lines[0], lines
