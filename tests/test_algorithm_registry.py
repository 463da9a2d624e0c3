"""The algorithm registry is the one place an algorithm is declared.

``toy`` is registered here and nowhere else: a block-like algorithm with its own plan section
(``toy.per_address`` subscribers per address, ports 1024-65535). Plan files, compile, forward,
reverse and capacity take it without any other module knowing its name; what it does not declare
(nftables, det44, capacity compare) is refused, saying so.
"""

from __future__ import annotations

import ast
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from detnat.capacity import Demand, evaluate
from detnat.capacity.layout import Allocations, PortSets
from detnat.datapath import NotExpressible
from detnat.datapath.dslite.nat import BindingTable
from detnat.datapath.exports import export
from detnat.datapath.nftables import NftablesDatapath, layout
from detnat.engine import (
    Block,
    Inside,
    Outside,
    Plan,
    Status,
    algorithm_named,
    compile_plan,
)
from detnat.engine.algorithms import Algorithm, Capabilities, registered
from detnat.engine.block import BlockMapper, BlockPlan
from detnat.errors import InvalidInput, PlanError
from detnat.planfile import canonical_json, plan_from_text


@dataclass(frozen=True)
class ToySection:
    per_address: int = 4


@dataclass(frozen=True)
class ToyPlan(Plan):
    algorithm: Literal["toy"] = "toy"
    inside: Inside | None = None
    outside: Outside | None = None
    toy: ToySection = ToySection()

    def _pool_ranges(self) -> list[tuple[int, int]]:
        assert self.outside is not None
        return [(p.first, p.last) for p in self.outside.prefixes]


class ToyMapper(BlockMapper):
    """A thin wrapper: the block arithmetic with ``ratio`` = ``toy.per_address``."""

    def __init__(self, plan: Plan) -> None:
        assert isinstance(plan, ToyPlan)  # its own module may know its own plan class
        block = Block(ratio=plan.toy.per_address)
        super().__init__(
            BlockPlan(inside=plan.inside, outside=plan.outside, block=block, static=plan.static)
        )
        self.plan = plan  # type: ignore[assignment]


TOY = Algorithm(
    "toy",
    ToyPlan,
    ToyMapper,
    Capabilities(capacity={"evaluate"}, refusals={"det44": "a toy is not for routers"}),
    description="block-like, a fixed number of subscribers per address",
)

TOY_FILE = """\
algorithm: toy
inside: {prefixes: ["10.0.0.0/29"], subscriber_prefix_length: 32}
outside: {prefixes: ["192.0.2.0/31"]}
toy: {per_address: 4}
"""


@pytest.fixture
def toy() -> Iterator[Algorithm]:
    with registered(TOY) as algorithm:
        yield algorithm


def test_a_registered_algorithm_is_read_from_a_plan_file(toy: Algorithm) -> None:
    plan = plan_from_text(TOY_FILE)
    assert isinstance(plan, ToyPlan) and plan.toy == ToySection(4)
    assert canonical_json(plan) == (
        '{"algorithm":"toy","inside":{"exclude":[],"prefixes":["10.0.0.0/29"],'
        '"subscriber_prefix_length":32},"outside":{"exclude":[],"prefixes":["192.0.2.0/31"]},'
        '"static":[],"toy":{"per_address":4}}'
    )
    assert plan_from_text(canonical_json(plan)) == plan
    assert Plan("toy", inside=plan.inside, outside=plan.outside) == plan  # the default section


@pytest.mark.parametrize(
    ("text", "field", "message"),
    [
        (TOY_FILE.replace("per_address", "per_adress"), "toy.per_adress", "unknown key"),
        (TOY_FILE.replace("4}", "'4'}"), "toy.per_address", "valid integer"),
        (TOY_FILE + "block: {ratio: 4}\n", "block", "not used by algorithm toy"),
        (TOY_FILE.replace("toy\n", "tpy\n", 1), "algorithm", "'block', 'map' or 'toy'"),
    ],
)
def test_a_registered_algorithms_plan_file_errors_are_as_clear(
    toy: Algorithm, text: str, field: str, message: str
) -> None:
    with pytest.raises(PlanError) as caught:
        plan_from_text(text)
    assert caught.value.field == field
    assert message in caught.value.message


def test_a_registered_algorithm_compiles_and_maps_both_ways(toy: Algorithm) -> None:
    mapper = compile_plan(plan_from_text(TOY_FILE))
    allocation = mapper.forward("10.0.0.5")
    # 64512 ports / 4 = 16128 each; subscriber 5 is address 1, block 1.
    assert allocation.to_json() == {
        "subscriber": "10.0.0.5/32",
        "public_ip": "192.0.2.1",
        "port_ranges": [[17152, 33279]],
    }
    answer = mapper.reverse("192.0.2.1", 20000)
    assert answer.status is Status.MATCH and answer.allocation == allocation
    assert mapper.reverse_many([0xC0000201], [20000]).subscriber.tolist() == [5]
    assert mapper.plan.public_ranges() == [(0xC0000200, 0xC0000201)]
    assert algorithm_named("toy") is toy


def test_a_capability_an_algorithm_does_not_declare_is_refused_saying_so(toy: Algorithm) -> None:
    mapper = compile_plan(plan_from_text(TOY_FILE))
    with pytest.raises(NotExpressible) as caught:
        list(export(mapper, "nftables"))
    assert "algorithm toy: cannot be exported as nftables (it declares no export formats)" in str(
        caught.value
    )
    with pytest.raises(NotExpressible, match="cannot be enforced by the nftables datapath"):
        layout(mapper)
    with pytest.raises(NotExpressible, match="cannot be enforced by the nftables datapath"):
        list(NftablesDatapath().render(mapper))
    with pytest.raises(NotExpressible, match="algorithm toy: a toy is not for routers"):
        list(export(mapper, "det44"))
    with pytest.raises(NotExpressible, match="algorithm toy: cannot be exported as snabb"):
        list(export(mapper, "snabb", br_address="2001:db8::1"))
    with pytest.raises(NotExpressible, match="cannot be enforced by the dslite datapath"):
        BindingTable(mapper)
    with pytest.raises(InvalidInput, match="cannot be planned by capacity compare"):
        Allocations(mapper, PortSets())
    figures = evaluate(mapper, Demand.constant(20), samples=0)
    assert figures["subscribers_per_address"] == {"min": 4, "max": 4}


def test_an_unregistered_algorithm_is_refused_again() -> None:
    with registered(TOY):
        plan_from_text(TOY_FILE)
    with pytest.raises(PlanError, match=r"should be 'block' or 'map' \(got 'toy'\)"):
        plan_from_text(TOY_FILE)


ROOT = Path(__file__).resolve().parent.parent
ALGORITHM_TYPES = {"BlockMapper", "MapMapper", "BlockPlan", "MapPlan"}
OWN_MODULES = {"detnat/engine/block.py", "detnat/engine/map_rule.py"}


def test_no_module_but_the_algorithms_own_asks_isinstance_of_an_algorithm() -> None:
    asked = []
    for path in sorted((ROOT / "detnat").rglob("*.py")) + sorted((ROOT / "api").rglob("*.py")):
        name = path.relative_to(ROOT).as_posix()
        if name in OWN_MODULES:
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Name)
                and node.func.id == "isinstance"
                and len(node.args) == 2
                and ALGORITHM_TYPES
                & {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            ):
                asked.append(f"{name}:{node.lineno}")
    assert asked == []
