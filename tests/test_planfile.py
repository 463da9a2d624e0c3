"""Plan files: strict YAML/JSON parsing, every error naming its field."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from detnat.engine import compile_plan
from detnat.errors import InvalidInput, PlanError
from detnat.planfile import canonical_json, plan_from_data, plan_from_text, read_plan

VPP = """
algorithm: block
inside: {prefixes: ["10.0.0.0/18"], subscriber_prefix_length: 32}
outside: {prefixes: ["1.1.1.0/30"]}
block: {ratio: 4096}
"""


def error_of(text: str) -> PlanError:
    with pytest.raises(PlanError) as caught:
        compile_plan(plan_from_text(text))
    return caught.value


def test_json_is_accepted_and_means_the_same_plan_as_yaml() -> None:
    as_json = json.dumps(
        {
            "algorithm": "block",
            "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
            "outside": {"prefixes": ["1.1.1.0/30"]},
            "block": {"ratio": 4096},
        }
    )
    assert canonical_json(plan_from_text(as_json)) == canonical_json(plan_from_text(VPP))


def test_canonical_json_writes_defaults_and_canonical_prefixes() -> None:
    content = json.loads(canonical_json(plan_from_text(VPP)))
    explicit = VPP + "ports: {first: 1024, last: 65535, exclude: []}\n"
    assert canonical_json(plan_from_text(explicit)) == canonical_json(plan_from_text(VPP))
    assert content["ports"] == {"first": 1024, "last": 65535, "exclude": []}
    assert content["block"] == {"ratio": 4096, "assignment": "sequential", "dynamic_blocks": 0}
    v6 = plan_from_data(
        {
            "algorithm": "map",
            "map": {
                "rule_ipv6_prefix": "2001:DB8:0::/40",
                "rule_ipv4_prefix": "192.0.2.0/24",
                "ea_bits_length": 16,
            },
        }
    )
    assert v6.to_dict()["map"] == {
        "rule_ipv6_prefix": "2001:db8::/40",
        "rule_ipv4_prefix": "192.0.2.0/24",
        "ea_bits_length": 16,
        "psid_offset": 6,
    }


@pytest.mark.parametrize(
    ("text", "field", "words"),
    [
        (VPP + "colour: blue\n", "colour", "unknown key"),
        (VPP.replace("ratio: 4096", "ratio: 4096, sise: 3"), "block.sise", "unknown key"),
        (VPP.replace("algorithm: block", "algorithm: nat46"), "algorithm", "block"),
        (VPP.replace("ratio: 4096", 'ratio: "4096"'), "block.ratio", "integer"),
        (VPP.replace("ratio: 4096", "ratio: true"), "block.ratio", "integer"),
        (VPP.replace("ratio: 4096", "ratio: 40.5"), "block.ratio", "integer"),
        (VPP.replace('"1.1.1.0/30"', '"1.1.1.1/30"'), "outside.prefixes[0]", "host bits"),
        (VPP.replace('"1.1.1.0/30"', '"1.1.1.0/33"'), "outside.prefixes[0]", "longer than 32"),
        (VPP.replace('"1.1.1.0/30"', '"1.1.1.0/-1"'), "outside.prefixes[0]", "decimal"),
        (VPP.replace('"1.1.1.0/30"', '"01.1.1.0/30"'), "outside.prefixes[0]", "leading zero"),
        (VPP.replace('"1.1.1.0/30"', "16843008"), "outside.prefixes[0]", "string"),
        (VPP.replace('"10.0.0.0/18"', '"fe80::%eth0/64"'), "inside.prefixes[0]", "zone"),
        (
            VPP.replace('["1.1.1.0/30"]', '["1.1.1.0/30", "1.1.1.0/29"]'),
            "outside.prefixes[1]",
            "overlaps outside.prefixes[0] 1.1.1.0/30",
        ),
        (
            VPP.replace('["10.0.0.0/18"]', '["10.0.0.0/18", "2001:db8::/64"]'),
            "inside.prefixes[1]",
            "one family",
        ),
        (VPP.replace('["1.1.1.0/30"]', '["2001:db8::/126"]'), "outside.prefixes[0]", "IPv4"),
        (VPP.replace("ratio: 4096", "ratio: 4095"), "block", "short by 4"),
        (VPP.replace("ratio: 4096", "ratio: 70000"), "block.ratio", "empty blocks"),
        (VPP.replace("ratio: 4096", "size: 0"), "block.size", "at least 1"),
        (VPP.replace("ratio: 4096", "size: 70000"), "block.size", "larger than"),
        (VPP.replace("ratio: 4096", "ratio: 4096, size: 15"), "block", "exactly one"),
        (
            VPP.replace("ratio: 4096", "ratio: 4096, dynamic_blocks: 4096"),
            "block.dynamic_blocks",
            "no deterministic",
        ),
        (VPP + "ports: {first: 2000, last: 1999}\n", "ports.first", "above last"),
        (VPP + "ports: {last: 65536}\n", "ports.last", "0-65535"),
        (VPP + "ports: {exclude: ['80']}\n", "ports.exclude[0]", "outside the port range"),
        (VPP + "ports: {exclude: ['2000-1999']}\n", "ports.exclude[0]", "reversed"),
        (VPP + "ports: {exclude: ['x']}\n", "ports.exclude[0]", "not a port"),
        (
            VPP.replace('["1.1.1.0/30"]', '["1.1.1.0/30"], exclude: ["1.1.2.0/32"]'),
            "outside.exclude[0]",
            "not inside any outside prefix",
        ),
        (
            VPP + "static: [{subscriber: '10.0.0.1', address: '1.1.1.1'}]\n",
            "static[0].address",
            "in the pool",
        ),
        (
            VPP + "static: [{subscriber: '10.9.0.1', address: '9.9.9.9'}]\n",
            "static[0].subscriber",
            "inside key space",
        ),
        (
            "algorithm: map\nmap: {rule_ipv6_prefix: '2001:db8::/40', rule_ipv4_prefix: "
            "'192.0.2.0/24', ea_bits_length: 4}\n",
            "map.ea_bits_length",
            "suffix",
        ),
        (
            "algorithm: map\nmap: {rule_ipv6_prefix: '2001:db8::/40', rule_ipv4_prefix: "
            "'192.0.2.0/24', ea_bits_length: 16, psid_offset: 9}\n",
            "map.ea_bits_length",
            "exceeds 16",
        ),
        (
            "algorithm: map\nmap: {rule_ipv6_prefix: '2001:db8::/40', rule_ipv4_prefix: "
            "'192.0.2.0/24', ea_bits_length: 16}\n" + VPP.split("\n", 2)[2],
            "inside",
            "not used by algorithm map",
        ),
        (
            VPP + "map: {rule_ipv6_prefix: '2001:db8::/40', rule_ipv4_prefix: '192.0.2.0/24', "
            "ea_bits_length: 16}\n",
            "map",
            "not used by algorithm block",
        ),
        ("- algorithm\n", "plan", "mapping"),
    ],
)
def test_bad_plans_are_refused_naming_the_field(text: str, field: str, words: str) -> None:
    error = error_of(text)
    assert error.field == field, str(error)
    assert words in error.message, str(error)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("a: &x [1, 2]\nb: *x\n", "aliases"),
        ("algorithm: block\nalgorithm: map\n", "duplicate key"),
        ("!!python/object/apply:os.system ['true']\n", "constructor"),
        ("algorithm: [block\n", "line"),
    ],
)
def test_unsafe_or_broken_yaml_is_refused(text: str, words: str) -> None:
    assert words in error_of(text).message


def test_plan_files_must_be_regular_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_plan(tmp_path)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InvalidInput, match="not a regular file"):
        read_plan(fifo)
    with pytest.raises(InvalidInput, match="No such file"):
        read_plan(tmp_path / "missing.yaml")
    big = tmp_path / "big.yaml"
    big.write_text("#" * (2 << 20))
    with pytest.raises(InvalidInput, match="larger than"):
        read_plan(big)


def test_ipv4_mapped_ipv6_prefixes_are_written_as_rfc_5952_section_5_recommends() -> None:
    from detnat.engine import parse_prefix

    assert str(parse_prefix("::FFFF:102:304/128")) == "::ffff:1.2.3.4/128"
    assert str(parse_prefix("::ffff:0:0/96")) == "::ffff:0.0.0.0/96"


@pytest.mark.parametrize("indent", [None, 2, "\t"])
def test_json_plans_are_read_as_json_whatever_their_indentation(indent: int | str | None) -> None:
    data = {
        "algorithm": "block",
        "inside": {"prefixes": ["10.0.0.0/18"], "subscriber_prefix_length": 32},
        "outside": {"prefixes": ["1.1.1.0/30"]},
        "block": {"ratio": 4096},
    }
    assert plan_from_text(json.dumps(data, indent=indent)) == plan_from_text(VPP)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"algorithm": "block", "algorithm": "map"}', "duplicate key 'algorithm'"),
        ('{"algorithm": "block", "block": {"ratio": NaN}}', "NaN"),
        ('{"algorithm": "block",}', "line 1"),
    ],
)
def test_bad_json_plans_are_refused(text: str, words: str) -> None:
    with pytest.raises(PlanError, match=words):
        plan_from_text(text)
