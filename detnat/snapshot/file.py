"""Snapshot files: the plan versions (and log intervals) of some realms over a period,
self-contained and hashed.

A snapshot (``.detnat``) is what the workers of a distributed job get instead of the database:
every plan version that can be a candidate for a lookup in the period ``[from, to]`` (the version
in force at ``from`` minus the realm's session drain, up to the last one effective by ``to``),
with its realm, id, seq, validity, content, hashes and the public addresses it uses; and for a
realm that has the NAT's own logs in the store (``logs``), every log interval that holds at some
instant of the period, with the references (file, line, SHA-256) of the lines behind it. With it,
:mod:`detnat.snapshot.annotate` answers as the store's ``reverse --at`` did when the snapshot
was exported (``now`` is the export's instant: later times are ``future``).

The file is two lines of ASCII::

    {"bytes":N,"format":"detnat-snapshot/1","sha256":"<hex>"}
    <body: canonical JSON of the snapshot>

The header's ``sha256`` is the SHA-256 of exactly the body bytes as stored (from the byte after
the first line feed to the end of the file, its final line feed included), and that hash names
the snapshot everywhere (audit entries, job summaries). A file is accepted only when both lines are
exactly the canonical form of what they hold (sorted keys, no spaces, ASCII, one final line
feed), so there is one byte string per snapshot and any changed byte is refused: a changed
value no longer hashes, a changed space no longer is canonical. Each plan is checked against its
``content_sha256`` and compiled, each realm's versions must follow one another.

>>> data = encode(_EXAMPLE)
>>> data.splitlines()[0].decode()[:60]
'{"bytes":421,"format":"detnat-snapshot/1","sha256":"e171056c'
>>> loaded = load(data)
>>> loaded.sha256 == sha256_of(data), [r.name for r in loaded.realms]
(True, ['lab'])
>>> load(data.replace(b'"lab"', b'"lbb"'))
Traceback (most recent call last):
...
detnat.errors.InvalidInput: snapshot: the body does not match its sha256 (changed or damaged)

Pure: standard library, the engine and the plan file reader.
"""

from __future__ import annotations

import hashlib
import ipaddress
import json
import re
from dataclasses import dataclass
from typing import Any

from detnat import strictjson
from detnat.engine import Mapper, compile_plan
from detnat.errors import DetnatError, InvalidInput
from detnat.logs.events import EventKind, LineRef
from detnat.logs.intervals import Interval, Seen
from detnat.planfile import plan_from_data

FORMAT = "detnat-snapshot/1"
FIELD = "snapshot"
MAX_BYTES = 256 << 20  # a snapshot holds plans (at most 1 MiB each): far below this

_NONE = type(None)
_BODY: dict[str, tuple[type, ...]] = {
    "format": (str,),
    "code_version": (str,),
    "case": (str,),
    "exported_at_us": (int,),
    "from_us": (int,),
    "to_us": (int,),
    "all_realms": (bool,),
    "realms": (list,),
}
_REALM: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "session_drain_us": (int,),
    "versions": (list,),
}
_REALM_LOGS = "logs"  # present exactly when the realm had logs: its intervals in the period
_INTERVAL: dict[str, tuple[type, ...]] = {
    "public": (int,),
    "port_first": (int,),
    "port_last": (int,),
    "port_step": (int,),
    "protocol": (str, _NONE),  # None: every protocol
    "inside": (str,),  # the inside key: an IPv4 address, an IPv6 address or prefix
    "start_us": (int, _NONE),  # None: no allocation seen (unknown start)
    "end_us": (int, _NONE),  # None: still held
    "open": (bool,),
    "unknown_start": (bool,),
    "conflict": (bool,),
    "lines": (list,),  # [[kind, at_us, file, line, sha256], ...]: the lines behind it
}
_KINDS = frozenset(kind.value for kind in EventKind)
_VERSION: dict[str, tuple[type, ...]] = {
    "id": (int,),
    "seq": (int,),
    "effective_from_us": (int,),
    "valid_to_us": (int, _NONE),  # when the next version took over; None: still in force
    "replaced_by": (int, _NONE),  # the seq of that next version
    "plan": (dict, _NONE),  # None: the realm is retired from effective_from on
    "content_sha256": (str, _NONE),
    "record_sha256": (str,),
    "correction": (bool,),
    "ranges": (list,),  # public addresses the plan uses; for a retirement, those it ended
}


def canonical(value: object) -> bytes:
    """The one byte string of a JSON value: sorted keys, no spaces, ASCII."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def content_sha256(plan: dict[str, Any]) -> str:
    """A stored plan's content hash (as the store computes ``content_sha256``)."""
    return hashlib.sha256(
        json.dumps(plan, sort_keys=True, separators=(",", ":")).encode()
    ).hexdigest()


def encode(body: dict[str, Any]) -> bytes:
    """The file of a snapshot body (checked by :func:`load` before it is returned)."""
    data = canonical(body) + b"\n"
    header = {"bytes": len(data), "format": FORMAT, "sha256": hashlib.sha256(data).hexdigest()}
    out = canonical(header) + b"\n" + data
    load(out)
    return out


def sha256_of(data: bytes) -> str:
    """The snapshot hash of a file's bytes (its header's ``sha256``, once :func:`load` passed)."""
    return hashlib.sha256(data[data.index(b"\n") + 1 :]).hexdigest()


@dataclass(frozen=True, eq=False)
class Version:
    """One plan version of a snapshot (instants in microseconds since the epoch, UTC)."""

    id: int
    seq: int
    effective_from_us: int
    valid_to_us: int | None
    replaced_by: int | None
    plan: dict[str, Any] | None
    content_sha256: str | None
    record_sha256: str
    correction: bool
    ranges: tuple[tuple[int, int], ...]
    mapper: Mapper | None  # compiled once at load; None for a retirement


@dataclass(frozen=True, eq=False)
class Realm:
    name: str
    session_drain_us: int
    versions: tuple[Version, ...]
    logs: tuple[Interval, ...] | None = None  # None: the realm had no logs


def interval_json(interval: Interval) -> dict[str, Any]:
    """A log interval as a snapshot holds it (:func:`interval_of` reads it back)."""
    return {
        "public": int(ipaddress.IPv4Address(interval.public)),
        "port_first": interval.port_first,
        "port_last": interval.port_last,
        "port_step": interval.port_step,
        "protocol": interval.protocol,
        "inside": interval.inside,
        "start_us": interval.start_us,
        "end_us": interval.end_us,
        "open": interval.open,
        "unknown_start": interval.unknown_start,
        "conflict": interval.conflict,
        "lines": [
            [s.kind.value, s.at_us, s.source.file, s.source.line, s.source.sha256]
            for s in interval.lines
        ],
    }


def interval_of(data: dict[str, Any]) -> Interval:
    """The log interval of :func:`interval_json`'s form (checked by :func:`check` first)."""
    return Interval(
        str(ipaddress.IPv4Address(data["public"])),
        data["port_first"],
        data["port_last"],
        data["port_step"],
        data["protocol"],
        data["inside"],
        data["start_us"],
        data["end_us"],
        data["open"],
        data["unknown_start"],
        tuple(Seen(EventKind(k), at, LineRef(f, n, sha)) for k, at, f, n, sha in data["lines"]),
        data["conflict"],
    )


@dataclass(frozen=True, eq=False)
class Snapshot:
    """A loaded, verified snapshot."""

    sha256: str
    case: str
    code_version: str
    exported_at_us: int  # "now" of every answer: later instants are the future
    from_us: int
    to_us: int
    all_realms: bool
    realms: tuple[Realm, ...]
    size: int  # bytes of the file

    def summary(self) -> dict[str, object]:
        return {
            "sha256": self.sha256,
            "case": self.case,
            "from_us": self.from_us,
            "to_us": self.to_us,
            "exported_at_us": self.exported_at_us,
            "realms": [r.name for r in self.realms],
            "versions": sum(len(r.versions) for r in self.realms),
            "log_intervals": sum(len(r.logs) for r in self.realms if r.logs is not None),
            "bytes": self.size,
        }


def read(path: str, *, limit: int = MAX_BYTES) -> Snapshot:
    """Read and :func:`load` a snapshot file."""
    try:
        with open(path, "rb") as source:
            data = source.read(limit + 1)
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field=FIELD) from None
    if len(data) > limit:
        raise InvalidInput(f"{path} is larger than {limit} bytes", field=FIELD)
    return load(data)


def load(data: bytes) -> Snapshot:
    """A snapshot from its file's bytes, every byte checked; :class:`InvalidInput` otherwise."""
    problems = check(data)
    if problems:
        raise InvalidInput(problems[0], field=FIELD)
    body = strictjson.loads(data[data.index(b"\n") + 1 :], field=FIELD)
    return _snapshot(body, sha256_of(data), len(data))


def check(data: bytes) -> list[str]:
    """What is wrong with a snapshot file (empty: nothing); no exception for a bad file."""
    try:
        return _check(data)
    except DetnatError as exc:
        return [exc.message]
    except (KeyError, TypeError, ValueError, ArithmeticError) as exc:
        return [f"malformed snapshot: {type(exc).__name__}: {exc}"]


def _check(data: bytes) -> list[str]:
    cut = data.find(b"\n")
    if cut < 0:
        return [f"not a {FORMAT} file (no header line)"]
    head, body_bytes = data[:cut], data[cut + 1 :]
    header = strictjson.loads(head, field=FIELD)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        return [f"not a {FORMAT} file (header {head[:80]!r})"]
    if set(header) != {"bytes", "format", "sha256"} or canonical(header) != head:
        return ["the header is not in canonical form (changed or damaged)"]
    if header["bytes"] != len(body_bytes):
        return [f"the body is {len(body_bytes)} bytes, the header says {header['bytes']}"]
    if hashlib.sha256(body_bytes).hexdigest() != header["sha256"]:
        return ["the body does not match its sha256 (changed or damaged)"]
    body = strictjson.loads(body_bytes, field=FIELD)
    if canonical(body) + b"\n" != body_bytes:
        return ["the body is not in canonical form"]
    problems: list[str] = []
    if _shape(body, "", _BODY, problems):
        return problems
    if body["format"] != FORMAT:
        return [f"format: {body['format']!r} is not {FORMAT}"]
    if body["from_us"] > body["to_us"]:
        problems.append("from_us is after to_us")
    names = [r.get("name") if isinstance(r, dict) else None for r in body["realms"]]
    if len(set(names)) != len(names):
        problems.append("a realm appears twice")
    for n, realm in enumerate(body["realms"]):
        where = f"realms[{n}]"
        plain = (
            {k: v for k, v in realm.items() if k != _REALM_LOGS}
            if isinstance(realm, dict)
            else realm
        )
        if _shape(plain, where, _REALM, problems):
            continue
        if _REALM_LOGS in realm:
            _check_logs(realm[_REALM_LOGS], f"{where}.logs", problems)
        previous: dict[str, Any] | None = None
        for k, version in enumerate(realm["versions"]):
            at = f"{where}.versions[{k}]"
            if _shape(version, at, _VERSION, problems):
                continue
            _check_version(version, previous, at, problems)
            previous = version
        last = previous
        if (
            last is not None
            and last["valid_to_us"] is not None
            and last["valid_to_us"] <= body["to_us"]
        ):
            problems.append(f"{where}: the versions stop before the end of the period")
    return problems


def _check_version(
    version: dict[str, Any], previous: dict[str, Any] | None, at: str, problems: list[str]
) -> None:
    plan = version["plan"]
    if plan is None:
        if version["content_sha256"] is not None:
            problems.append(f"{at}: a retirement has no content_sha256")
    elif version["content_sha256"] != content_sha256(plan):
        problems.append(f"{at}.plan: does not match its content_sha256")
    if previous is not None and (
        previous["valid_to_us"] != version["effective_from_us"]
        or previous["replaced_by"] != version["seq"]
    ):
        problems.append(f"{at}: does not follow the version before it")
    if (
        version["valid_to_us"] is not None
        and version["valid_to_us"] <= version["effective_from_us"]
    ):
        problems.append(f"{at}: valid_to_us is not after effective_from_us")
    if (version["valid_to_us"] is None) != (version["replaced_by"] is None):
        problems.append(f"{at}: valid_to_us and replaced_by go together")
    last = -1
    for pair in version["ranges"]:
        if (
            not isinstance(pair, list)
            or len(pair) != 2
            or not all(type(v) is int for v in pair)
            or not last < pair[0] <= pair[1] <= 0xFFFFFFFF
        ):
            problems.append(f"{at}.ranges: want sorted, disjoint [first, last] IPv4 ranges")
            break
        last = pair[1]


_SHA256 = re.compile(r"[0-9a-f]{64}")


def _check_logs(intervals: Any, where: str, problems: list[str]) -> None:
    if not isinstance(intervals, list):
        problems.append(f"{where}: want a list of intervals")
        return
    before = len(problems)
    for n, i in enumerate(intervals):
        at = f"{where}[{n}]"
        if _shape(i, at, _INTERVAL, problems):
            return
        if not 0 <= i["public"] <= 0xFFFFFFFF:
            problems.append(f"{at}.public: not an IPv4 address")
        if not (0 <= i["port_first"] <= i["port_last"] <= 65535 and 1 <= i["port_step"] <= 65535):
            problems.append(f"{at}: want 0 <= port_first <= port_last <= 65535, port_step >= 1")
        if (
            i["start_us"] is not None
            and i["end_us"] is not None
            and not i["start_us"] < i["end_us"]
        ):
            problems.append(f"{at}: start_us is not before end_us")
        try:
            ipaddress.ip_network(i["inside"], strict=False)
        except ValueError:
            problems.append(f"{at}.inside: not an address or prefix")
        lines = i["lines"]
        if not lines or not all(
            isinstance(line, list)
            and len(line) == 5
            and line[0] in _KINDS
            and type(line[1]) is int
            and isinstance(line[2], str)
            and type(line[3]) is int
            and line[3] >= 1
            and isinstance(line[4], str)
            and _SHA256.fullmatch(line[4])
            for line in lines
        ):
            problems.append(f"{at}.lines: want [[kind, at_us, file, line, sha256], ...], not empty")
        if len(problems) > before:  # one bad interval named is enough
            return


def _shape(value: Any, where: str, spec: dict[str, tuple[type, ...]], problems: list[str]) -> bool:
    """Append a problem (and say True) unless ``value`` is an object with exactly ``spec``."""
    prefix = f"{where}: " if where else ""
    if not isinstance(value, dict):
        problems.append(f"{prefix}want an object")
        return True
    if set(value) != set(spec):
        odd = sorted(set(value) ^ set(spec))
        problems.append(f"{prefix}unexpected or missing keys {', '.join(odd)}")
        return True
    for key, allowed in spec.items():
        item = value[key]
        if isinstance(item, bool) and bool not in allowed:
            problems.append(f"{prefix}{key} has the wrong type")
            return True
        if not isinstance(item, allowed):
            problems.append(f"{prefix}{key} has the wrong type")
            return True
    return False


def _snapshot(body: dict[str, Any], sha256: str, size: int) -> Snapshot:
    realms = []
    for realm in body["realms"]:
        versions = []
        for v in realm["versions"]:
            plan = v["plan"]
            try:
                mapper = compile_plan(plan_from_data(plan)) if plan is not None else None
            except DetnatError as exc:
                raise InvalidInput(
                    f"realm {realm['name']} version {v['seq']}: {exc}", field=FIELD
                ) from None
            versions.append(
                Version(
                    id=v["id"],
                    seq=v["seq"],
                    effective_from_us=v["effective_from_us"],
                    valid_to_us=v["valid_to_us"],
                    replaced_by=v["replaced_by"],
                    plan=plan,
                    content_sha256=v["content_sha256"],
                    record_sha256=v["record_sha256"],
                    correction=v["correction"],
                    ranges=tuple((a, b) for a, b in v["ranges"]),
                    mapper=mapper,
                )
            )
        logged = realm.get(_REALM_LOGS)
        realms.append(
            Realm(
                realm["name"],
                realm["session_drain_us"],
                tuple(versions),
                None if logged is None else tuple(interval_of(i) for i in logged),
            )
        )
    return Snapshot(
        sha256=sha256,
        case=body["case"],
        code_version=body["code_version"],
        exported_at_us=body["exported_at_us"],
        from_us=body["from_us"],
        to_us=body["to_us"],
        all_realms=body["all_realms"],
        realms=tuple(realms),
        size=size,
    )


_EXAMPLE: dict[str, Any] = {
    "format": FORMAT,
    "code_version": "0",
    "case": "DOC-1",
    "exported_at_us": 2_000_000,
    "from_us": 0,
    "to_us": 1_000_000,
    "all_realms": True,
    "realms": [
        {
            "name": "lab",
            "session_drain_us": 0,
            "versions": [
                {
                    "id": 1,
                    "seq": 1,
                    "effective_from_us": 0,
                    "valid_to_us": None,
                    "replaced_by": None,
                    "plan": None,
                    "content_sha256": None,
                    "record_sha256": "0" * 64,
                    "correction": False,
                    "ranges": [],
                }
            ],
        }
    ],
}

__all__ = [
    "FORMAT",
    "Realm",
    "Snapshot",
    "Version",
    "check",
    "encode",
    "interval_json",
    "interval_of",
    "load",
    "read",
    "sha256_of",
]
