"""The deterministic mapping engine: pure arithmetic, no I/O, clock or environment.

Algorithms (``block``, ``map``, ...) are declared in the registry, :mod:`.algorithms`: each brings
its plan class (its part of the plan file schema), its mapper and its capabilities, and
:func:`compile_plan` asks the registry which mapper a plan gets. The registry's docstring adds a
toy algorithm, as a worked example.

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
from detnat.engine.algorithms import (
    CAPACITY,
    ENFORCE,
    EXPORT,
    Algorithm,
    Capabilities,
    algorithm_named,
    algorithm_of,
    algorithms,
    compile_plan,
    refusal,
)
from detnat.engine.mapper import (
    INVALID,
    MATCH,
    NO_MAPPING,
    NOT_DETERMINISTIC,
    REASON_CODES,
    STATUS_CODES,
    BulkAnswers,
    KeyRun,
    Mapper,
    PortSharing,
    check_port,
    non_public_many,
    non_public_reason,
    parse_public_address,
)
from detnat.engine.plan import Block, Inside, MapRule, Outside, Plan, Ports, StaticBinding
from detnat.engine.results import Allocation, Reason, ReverseAnswer, Status

__all__ = [
    "CAPACITY",
    "ENFORCE",
    "EXPORT",
    "INVALID",
    "MATCH",
    "NOT_DETERMINISTIC",
    "NO_MAPPING",
    "REASON_CODES",
    "STATUS_CODES",
    "Algorithm",
    "Allocation",
    "Block",
    "BulkAnswers",
    "Capabilities",
    "Inside",
    "KeyRun",
    "MapRule",
    "Mapper",
    "Outside",
    "Plan",
    "PortSharing",
    "Ports",
    "Prefix",
    "Reason",
    "ReverseAnswer",
    "StaticBinding",
    "Status",
    "algorithm_named",
    "algorithm_of",
    "algorithms",
    "check_port",
    "compile_plan",
    "format_address",
    "format_ipv4",
    "non_public_many",
    "non_public_reason",
    "parse_address",
    "parse_prefix",
    "parse_public_address",
    "refusal",
]
