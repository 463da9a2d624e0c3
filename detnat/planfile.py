"""Plan files: YAML (JSON is a subset) parsed strictly with pydantic into an engine :class:`Plan`.

Strict means: unknown keys refused with the key named, no type coercion (``"80"`` is not a port),
no YAML tags beyond the plain ones, no anchors/aliases (billion laughs), no duplicate keys, and
only regular files of sane size. Every error is a :class:`PlanError` whose ``field`` is a path
such as ``outside.prefixes[1]``; the engine then checks the plan as a whole
(:func:`detnat.engine.compile_plan`).
"""

from __future__ import annotations

import json
import re
import stat
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError

from detnat import strictjson
from detnat.engine import (
    Block,
    Inside,
    Mapper,
    MapRule,
    Outside,
    Plan,
    Ports,
    Prefix,
    StaticBinding,
    compile_plan,
    parse_prefix,
)
from detnat.engine.addresses import parse_ipv4
from detnat.errors import InvalidInput, PlanError

MAX_PLAN_BYTES = 1 << 20
_PORT_RANGE = re.compile(r"(0|[1-9][0-9]{0,4})(?:-(0|[1-9][0-9]{0,4}))?")


def _prefix(value: object) -> Prefix:
    if not isinstance(value, str):
        raise ValueError(f"expected a prefix as a string, got {type(value).__name__}")
    try:
        return parse_prefix(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _ipv4(value: object) -> int:
    if not isinstance(value, str):
        raise ValueError(f"expected an IPv4 address as a string, got {type(value).__name__}")
    try:
        return parse_ipv4(value)
    except InvalidInput as exc:
        raise ValueError(exc.message) from None


def _port_range(value: object) -> tuple[int, int]:
    if isinstance(value, int) and not isinstance(value, bool):
        return value, value
    if isinstance(value, str) and (match := _PORT_RANGE.fullmatch(value)):
        first = int(match[1])
        last = int(match[2]) if match[2] is not None else first
        return first, last
    raise ValueError(f"{value!r} is not a port or a port range like '5060-5061'")


PrefixField = Annotated[Prefix, BeforeValidator(_prefix)]
IPv4Field = Annotated[int, BeforeValidator(_ipv4)]
PortRangeField = Annotated[tuple[int, int], BeforeValidator(_port_range)]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, arbitrary_types_allowed=True)


class InsideModel(_Strict):
    prefixes: list[PrefixField] = Field(min_length=1)
    subscriber_prefix_length: int
    exclude: list[PrefixField] = []


class OutsideModel(_Strict):
    prefixes: list[PrefixField] = Field(min_length=1)
    exclude: list[PrefixField] = []


class PortsModel(_Strict):
    first: int = 1024
    last: int = 65535
    exclude: list[PortRangeField] = []


class BlockModel(_Strict):
    size: int | None = None
    ratio: int | None = None
    assignment: Literal["sequential", "staggered"] = "sequential"
    dynamic_blocks: int = 0


class MapModel(_Strict):
    rule_ipv6_prefix: PrefixField
    rule_ipv4_prefix: PrefixField
    ea_bits_length: int
    psid_offset: int = 6


class StaticModel(_Strict):
    subscriber: PrefixField
    address: IPv4Field


class PlanModel(_Strict):
    algorithm: Literal["block", "map"]
    inside: InsideModel | None = None
    outside: OutsideModel | None = None
    ports: PortsModel | None = None
    block: BlockModel | None = None
    map: MapModel | None = None
    static: list[StaticModel] = []

    def to_plan(self) -> Plan:
        return Plan(
            algorithm=self.algorithm,
            inside=None
            if self.inside is None
            else Inside(
                tuple(self.inside.prefixes),
                self.inside.subscriber_prefix_length,
                tuple(self.inside.exclude),
            ),
            outside=None
            if self.outside is None
            else Outside(tuple(self.outside.prefixes), tuple(self.outside.exclude)),
            ports=None
            if self.ports is None
            else Ports(self.ports.first, self.ports.last, tuple(self.ports.exclude)),
            block=None
            if self.block is None
            else Block(
                self.block.size, self.block.ratio, self.block.assignment, self.block.dynamic_blocks
            ),
            map=None
            if self.map is None
            else MapRule(
                self.map.rule_ipv6_prefix,
                self.map.rule_ipv4_prefix,
                self.map.ea_bits_length,
                self.map.psid_offset,
            ),
            static=tuple(StaticBinding(s.subscriber, s.address) for s in self.static),
        )


def _path(loc: tuple[int | str, ...]) -> str:
    out = ""
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
        elif part.startswith(("function-", "tagged-union", "nullable", "int", "str")):
            continue  # pydantic's validator names, not fields
        else:
            out += f".{part}" if out else part
    return out or "plan"


def _first_error(exc: ValidationError) -> PlanError:
    err = exc.errors(include_url=False)[0]
    loc = tuple(err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif err["type"] == "missing":
        message = "required but missing"
    elif err["type"] in ("literal_error", "int_type", "list_type", "model_type", "string_type"):
        message = f"{message} (got {err.get('input')!r})"
    return PlanError(message, field=_path(loc))


def plan_from_data(data: Any) -> Plan:
    """Validate parsed plan content (a mapping) into a :class:`Plan`."""
    if not isinstance(data, dict):
        raise PlanError(f"a plan is a mapping of keys, got {type(data).__name__}", field="plan")
    try:
        return PlanModel.model_validate(data).to_plan()
    except ValidationError as exc:
        raise _first_error(exc) from None


# YAML 1.2 core schema: the only plain scalars that are not strings.
_CORE = (
    ("tag:yaml.org,2002:null", r"^(?:~|null|Null|NULL|)$", "~nN"),
    ("tag:yaml.org,2002:bool", r"^(?:true|True|TRUE|false|False|FALSE)$", "tTfF"),
    ("tag:yaml.org,2002:int", r"^[-+]?[0-9]+$", "-+0123456789"),
    (
        "tag:yaml.org,2002:float",
        r"^(?:[-+]?(?:\.[0-9]+|[0-9]+(?:\.[0-9]*)?)(?:[eE][-+]?[0-9]+)?"
        r"|[-+]?\.(?:inf|Inf|INF)|\.(?:nan|NaN|NAN))$",
        "-+.0123456789",
    ),
)
# Plain scalars that YAML 1.2 reads as strings but YAML 1.1 readers (PyYAML's own, most tools) as
# numbers or booleans: refused, so a plan file means the same to every reader, and what it says.
_YAML11 = (
    (
        re.compile(r"y|Y|yes|Yes|YES|n|N|no|No|NO|on|On|ON|off|Off|OFF"),
        "is a boolean in YAML 1.1 and a string in YAML 1.2; write true or false, or quote it",
    ),
    (
        re.compile(r"[-+]?0[xXoObB][0-9a-fA-F_]+"),
        "is not a decimal number; write numbers in decimal, or quote it if it is text",
    ),
    (
        re.compile(r"[-+]?[0-9][0-9_]*(?::[0-5]?[0-9])+(?:\.[0-9_]*)?"),
        "is a sexagesimal number in YAML 1.1 (17:23 is 1043); quote it if it is text",
    ),
    (
        re.compile(r"[-+]?[0-9][0-9_]*_[0-9_]*(?:\.[0-9_]*)?|[-+]?[0-9][0-9]*\.[0-9]*_[0-9_]*"),
        "has an underscore, which YAML 1.1 drops (3_2 is 32); write the number without it",
    ),
)
MAX_DIGITS = 4300  # what int() converts
MAX_DEPTH = 32  # a plan is four levels deep


class _PlanLoader(yaml.SafeLoader):
    """SafeLoader reading YAML 1.2's core schema, strictly: no aliases (billion laughs), no
    duplicate keys, no explicit tags, and no plain scalar that YAML 1.1 reads otherwise."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        event: Any = self.peek_event()  # type: ignore[no-untyped-call]
        mark: Any = event.start_mark
        if isinstance(event, yaml.AliasEvent):
            raise yaml.constructor.ConstructorError(
                None, None, "anchors and aliases are not allowed in plan files", mark
            )
        if getattr(event, "tag", None) not in (None, "!"):
            raise yaml.constructor.ConstructorError(
                None,
                None,
                f"could not determine a constructor for the tag {event.tag!r} (tags are not "
                "allowed in plan files)",
                mark,
            )
        return super().compose_node(parent, index)

    def construct_document(self, node: Any) -> Any:
        _check_scalars(node)
        return super().construct_document(node)

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


_PlanLoader.yaml_implicit_resolvers = {}  # none of YAML 1.1's: only the core schema's below
for _tag, _pattern, _first in _CORE:
    _PlanLoader.add_implicit_resolver(_tag, re.compile(_pattern), list(_first))


def _check_scalars(root: Any) -> None:
    """Refuse plain scalars read differently by YAML 1.1, naming their place in the plan."""
    todo: list[tuple[Any, str, int]] = [(root, "", 0)]
    while todo:
        node, path, depth = todo.pop()
        if depth > MAX_DEPTH:
            raise PlanError(f"nested deeper than {MAX_DEPTH} levels", field=path or "plan")
        if isinstance(node, yaml.MappingNode):
            for key, value in node.value:
                name = str(key.value) if isinstance(key, yaml.ScalarNode) else "?"
                inner = f"{path}.{name}" if path else name
                todo += [(key, inner, depth + 1), (value, inner, depth + 1)]
        elif isinstance(node, yaml.SequenceNode):
            todo += [(item, f"{path}[{i}]", depth + 1) for i, item in enumerate(node.value)]
        elif node.style is None:  # a plain scalar; quoted ones are strings as written
            _check_plain(node.value, node.tag, path or "plan")


_KIND = {
    f"tag:yaml.org,2002:{name}": kind
    for name, kind in (
        ("str", "a string"),
        ("int", "a number"),
        ("float", "a number"),
        ("bool", "a boolean"),
        ("null", "null"),
        ("timestamp", "a date"),
        ("merge", "a merge key"),
        ("value", "a value key"),
    )
}
_YAML11_RESOLVER = yaml.resolver.Resolver()  # how PyYAML (YAML 1.1) would read a plain scalar


def _check_plain(text: str, tag: str, field: str) -> None:
    """Refuse a plain scalar that YAML 1.1 reads otherwise than YAML 1.2's core schema, or an
    integer that is not plainly written."""
    if tag == "tag:yaml.org,2002:int":
        digits = text.lstrip("+-")
        if len(digits) > MAX_DIGITS:
            raise PlanError(f"{text[:20]}... is longer than {MAX_DIGITS} digits", field=field)
        if len(digits) > 1 and digits[0] == "0":
            raise PlanError(
                f"{text!r} has a leading zero (YAML 1.1 reads it as octal); write the decimal "
                "number, or quote it if it is text",
                field=field,
            )
    old = _YAML11_RESOLVER.resolve(yaml.ScalarNode, text, (True, False))  # type: ignore[no-untyped-call]
    if old == tag:
        return
    why = next((why for pattern, why in _YAML11 if pattern.fullmatch(text)), None)
    if why is None:
        why = (
            f"is read as {_KIND.get(old, old)} by YAML 1.1 and as {_KIND.get(tag, tag)} by "
            "YAML 1.2; quote it, or write a plain decimal number"
        )
    raise PlanError(f"{text[:40]!r} {why}", field=field)


def read_yaml(text: str, *, source: str = "plan") -> Any:
    """The data of a YAML plan text, read as described in :class:`_PlanLoader`."""
    try:
        return yaml.load(text, Loader=_PlanLoader)  # a SafeLoader subclass
    except yaml.YAMLError as exc:
        where = getattr(exc, "problem_mark", None)
        line = f" (line {where.line + 1})" if where is not None else ""
        problem = getattr(exc, "problem", None) or str(exc).splitlines()[0]
        raise PlanError(f"not valid YAML{line}: {problem}", field=source) from None
    except RecursionError:
        raise PlanError(f"nested deeper than {MAX_DEPTH} levels", field=source) from None


def plan_from_text(text: str, *, source: str = "plan") -> Plan:
    """Parse plan text: JSON when it is a JSON object (tabs and all), else YAML."""
    if text.lstrip().startswith("{"):
        try:
            data = strictjson.loads(text, field=source)
        except InvalidInput as exc:
            raise PlanError(exc.message, field=source) from None
        return plan_from_data(data)
    return plan_from_data(read_yaml(text, source=source))


def read_plan(path: str | Path) -> Plan:
    """Read a plan file: a regular file of at most 1 MiB, YAML or JSON."""
    path = Path(path)
    try:
        info = path.stat()
    except OSError as exc:
        raise InvalidInput(f"cannot read plan file: {exc.strerror}", field=str(path)) from None
    if not stat.S_ISREG(info.st_mode):
        raise InvalidInput("not a regular file", field=str(path))
    if info.st_size > MAX_PLAN_BYTES:
        raise InvalidInput(f"larger than {MAX_PLAN_BYTES} bytes", field=str(path))
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidInput(f"cannot read plan file: {exc}", field=str(path)) from None
    return plan_from_text(text, source=str(path))


def load_mapper(path: str | Path) -> Mapper:
    """Read, validate and compile a plan file."""
    return compile_plan(read_plan(path))


def canonical_json(plan: Plan) -> str:
    """The canonical text of a plan: what the store hashes (sorted keys, no spaces)."""
    return json.dumps(plan.to_dict(), sort_keys=True, separators=(",", ":"))
