"""Plan files: YAML (JSON is a subset) parsed strictly with pydantic into an engine :class:`Plan`.

The schema is not written here: it is the engine's plan classes, one per registered algorithm
(:mod:`detnat.engine.algorithms`), validated as one pydantic union discriminated by ``algorithm``.

Strict means: unknown keys refused with the key named, no type coercion (``"80"`` is not a port),
no YAML tags beyond the plain ones, no anchors/aliases (billion laughs), no duplicate keys, and
only regular files of sane size. Every error is a :class:`PlanError` whose ``field`` is a path
such as ``outside.prefixes[1]``; the engine then checks the plan as a whole
(:func:`detnat.engine.compile_plan`).

One module at this size: the strict reader (JSON, YAML 1.2 core) and the plan models it checks
against are one contract with the user's file. PyYAML is imported when a YAML text is first read:
the store's plans (JSON) are checked without it.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import stat
from pathlib import Path
from types import UnionType
from typing import Annotated, Any, Union, cast, get_args, get_origin

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    TypeAdapter,
    ValidationError,
    create_model,
)

from detnat import strictjson
from detnat.engine import (
    Algorithm,
    Mapper,
    Plan,
    Prefix,
    algorithm_named,
    algorithms,
    compile_plan,
    parse_prefix,
)
from detnat.engine.addresses import parse_ipv4
from detnat.engine.plan import MISSING, Spelling, plan_fields
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


# -- the schema: the engine's plan classes, as pydantic sees them ---------------------------------
#
# The plan file schema is written once, as the engine's plan dataclasses (one per algorithm, from
# the registry). Here each becomes a strict pydantic model with the same fields, defaults and
# types: a prefix is parsed from its one spelling, a tuple is a list in the file, and the marks of
# :class:`Spelling` say how an address or a port range is written.


def _annotation(hint: Any) -> Any:
    """The pydantic annotation of an engine type hint."""
    origin, args = get_origin(hint), get_args(hint)
    if origin is Annotated:
        base, *marks = args
        if Spelling.IPV4_ADDRESS in marks:
            return IPv4Field
        if Spelling.PORT_RANGE in marks:
            return PortRangeField
        if Spelling.NON_EMPTY in marks:
            return Annotated[_annotation(base), Field(min_length=1)]
        return _annotation(base)
    if hint is Prefix:
        return PrefixField
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return list[_annotation(args[0])]  # type: ignore[misc]
    if origin in (Union, UnionType):
        return Union[tuple(_annotation(a) for a in args)]  # noqa: UP007
    if dataclasses.is_dataclass(hint):
        return _model_of(cast(type, hint))
    return hint  # int, str, a Literal


_MODELS: dict[type, type[_Strict]] = {}
_ENGINE_CLASS: dict[type[BaseModel], type] = {}


def _model_of(cls: type) -> type[_Strict]:
    """The strict pydantic model of an engine plan dataclass."""
    found = _MODELS.get(cls)
    if found is None:
        definitions: dict[str, Any] = {}
        for name, hint, default in plan_fields(cls):
            if name == "algorithm":
                default = MISSING  # the tag is always written
            elif isinstance(default, tuple):
                default = list(default)
            definitions[name] = (_annotation(hint), ... if default is MISSING else default)
        found = create_model(f"{cls.__name__}File", __base__=_Strict, **definitions)
        _MODELS[cls] = found
        _ENGINE_CLASS[found] = cls
    return found


def _engine_value(value: Any) -> Any:
    """A validated model value as the engine's: models to dataclasses, lists to tuples."""
    if isinstance(value, BaseModel):
        cls = _ENGINE_CLASS[type(value)]
        return cls(
            **{name: _engine_value(getattr(value, name)) for name in type(value).model_fields}
        )
    if isinstance(value, list):
        return tuple(_engine_value(item) for item in value)
    return value


@functools.lru_cache(maxsize=8)
def _schema(registered: tuple[Algorithm, ...]) -> TypeAdapter[Any]:
    """The plan file schema: the registered plan classes, one union discriminated by algorithm."""
    models = tuple(_model_of(algorithm.plan) for algorithm in registered)
    union = models[0] if len(models) == 1 else Union[models]  # noqa: UP007
    schema: Any = Annotated[union, Field(discriminator="algorithm")]
    return TypeAdapter(schema)


def plan_schema() -> TypeAdapter[Any]:
    """The validator of plan files for the algorithms registered now."""
    return _schema(algorithms())


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


def _message(err: Any) -> str:
    loc = tuple(err["loc"])
    message = str(err["msg"]).removeprefix("Value error, ")
    if err["type"] == "extra_forbidden":
        message = f"unknown key {loc[-1]!r}"
    elif err["type"] == "missing":
        message = "required but missing"
    elif err["type"] in ("literal_error", "int_type", "list_type", "model_type", "string_type"):
        message = f"{message} (got {err.get('input')!r})"
    return message


def _first_error(exc: ValidationError, data: dict[Any, Any]) -> PlanError:
    errors = exc.errors(include_url=False)
    tag = data.get("algorithm")
    first = errors[0]
    if first["type"] in ("union_tag_not_found", "union_tag_invalid"):
        if "algorithm" not in data:
            return PlanError("required but missing", field="algorithm")
        return algorithm_named_error(tag)
    # Errors inside the algorithm's plan come under the tag: drop it from the path.
    located = [(tuple(e["loc"])[1:], e) for e in errors]
    algorithm = algorithm_named(tag)
    sections = {name for a in algorithms() for name, _, _ in plan_fields(a.plan)}

    def unused(loc: tuple[Any, ...], err: Any) -> bool:
        return err["type"] == "extra_forbidden" and len(loc) == 1 and loc[0] in sections

    # A section the algorithm does not use is said last, as the engine said it before the schema
    # was one union: what is wrong inside the sections it uses comes first.
    loc, err = next(((loc, e) for loc, e in located if not unused(loc, e)), located[0])
    if unused(loc, err):
        return PlanError(
            f"not used by algorithm {algorithm.name}{algorithm.unused_hint}", field=str(loc[0])
        )
    return PlanError(_message({**err, "loc": loc}), field=_path(loc))


def algorithm_named_error(tag: Any) -> PlanError:
    try:
        algorithm_named(tag)
    except PlanError as exc:
        return exc
    raise AssertionError(f"{tag!r} is registered")  # pragma: no cover


def plan_from_data(data: Any) -> Plan:
    """Validate parsed plan content (a mapping) into a :class:`Plan`."""
    if not isinstance(data, dict):
        raise PlanError(f"a plan is a mapping of keys, got {type(data).__name__}", field="plan")
    try:
        model = plan_schema().validate_python(data)
    except ValidationError as exc:
        raise _first_error(exc, data) from None
    plan = _engine_value(model)
    assert isinstance(plan, Plan)
    return plan


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


@functools.cache
def _plan_loader() -> Any:
    """The loader class of plan files (PyYAML is imported when a YAML plan is first read)."""
    import yaml

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
    for tag, pattern, first in _CORE:
        _PlanLoader.add_implicit_resolver(tag, re.compile(pattern), list(first))
    return _PlanLoader


def _check_scalars(root: Any) -> None:
    """Refuse plain scalars read differently by YAML 1.1, naming their place in the plan."""
    import yaml

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


@functools.cache
def _yaml11_resolver() -> Any:
    """How PyYAML (YAML 1.1) would read a plain scalar."""
    import yaml

    return yaml.resolver.Resolver()


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
    import yaml

    old = _yaml11_resolver().resolve(yaml.ScalarNode, text, (True, False))
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
    """The data of a YAML plan text, read as described in :func:`_plan_loader`."""
    import yaml

    try:
        return yaml.load(text, Loader=_plan_loader())  # a SafeLoader subclass
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
