"""The deterministic mapping engine: pure arithmetic, no I/O, clock or environment.

>>> from detnat.engine import compile_plan, Plan, Inside, Outside, Block
>>> from detnat.engine.addresses import parse_prefix
>>> plan = Plan("block", inside=Inside((parse_prefix("10.0.0.0/18"),), 32),
...             outside=Outside((parse_prefix("1.1.1.0/30"),)), block=Block(ratio=4096))
>>> mapper = compile_plan(plan)
>>> mapper.forward("10.0.0.2").to_json()
{'subscriber': '10.0.0.2/32', 'public_ip': '1.1.1.0', 'port_ranges': [[1054, 1068]]}
>>> mapper.reverse("1.1.1.1", 1276).to_json()["subscriber"]
'10.0.16.16/32'
"""

from __future__ import annotations

from detnat.engine.addresses import Prefix, format_address, format_ipv4, parse_address, parse_prefix
from detnat.engine.block import BlockMapper
from detnat.engine.map_rule import MapMapper
from detnat.engine.mapper import (
    INVALID,
    MATCH,
    NO_MAPPING,
    NOT_DETERMINISTIC,
    REASON_CODES,
    STATUS_CODES,
    BulkAnswers,
    Mapper,
    check_port,
    non_public_reason,
    parse_public_address,
)
from detnat.engine.plan import Block, Inside, MapRule, Outside, Plan, Ports, StaticBinding
from detnat.engine.results import Allocation, Reason, ReverseAnswer, Status


def compile_plan(plan: Plan) -> Mapper:
    """Check ``plan`` as a whole and build its mapper; :class:`PlanError` names what is wrong."""
    if plan.algorithm == "block":
        return BlockMapper(plan)
    return MapMapper(plan)


__all__ = [
    "INVALID",
    "MATCH",
    "NOT_DETERMINISTIC",
    "NO_MAPPING",
    "REASON_CODES",
    "STATUS_CODES",
    "Allocation",
    "Block",
    "BulkAnswers",
    "Inside",
    "MapRule",
    "Mapper",
    "Outside",
    "Plan",
    "Ports",
    "Prefix",
    "Reason",
    "ReverseAnswer",
    "StaticBinding",
    "Status",
    "check_port",
    "compile_plan",
    "format_address",
    "format_ipv4",
    "non_public_reason",
    "parse_address",
    "parse_prefix",
    "parse_public_address",
]
