"""XARF: the JSON reports (XARF 4.0.0 and Abusix's XARF) and X-ARF 0.2's YAML mail parts.

Three shapes, one question each:

- **XARF 4.0.0** (xarf/xarf-spec, snake_case): ``source_identifier``, ``source_port`` (the source
  port: reports without one, such as copyright samples, name no port), ``timestamp``,
  ``category``/``type``, ``report_id``.
- **Abusix XARF** (abusix/xarf, "v4" in CamelCase under ``Report``): ``Report.SourceIp``,
  ``Report.SourcePort``, ``Report.Date``, ``ReportClass``/``ReportType``.
- **X-ARF 0.2** (x-arf.org; a mail with ``X-XARF: PLAIN`` whose second part is YAML):
  ``Source`` (with ``Source-Type: ip-address``), ``Date``, ``Report-Type``. Its ``Port`` is the
  port of the *reported service* (``Service: ssh``, ``Port: 22``), so it is kept as a service port
  and never identifies anyone.

Why not the ``xarf`` package (PyPI, 1.0.0): it validates the whole report against JSON Schemas
(``jsonschema``, ``referencing``, ``email-validator``: four more dependencies) when three fields
are needed, and would refuse notices the desk still has to answer; it reads JSON with
``json.loads`` (duplicate keys: the last one wins; ``NaN`` accepted) where detnat reads JSON
strictly; it converts Abusix reports with a ``warnings.warn`` per report; and it keeps
``timestamp`` as text, so the instant rules would be ours anyway.
"""

from __future__ import annotations

import re
from email.message import Message
from typing import Any

import yaml

from detnat import strictjson
from detnat.complaints.records import (
    SERVICE,
    SOURCE,
    BadTime,
    Complaint,
    PortKind,
    Record,
    Ref,
    Unreadable,
    iso_instant,
    mail_instant,
    port_of,
)
from detnat.errors import InvalidInput


def looks_like_json(data: Any) -> bool:
    """A decoded JSON object is an XARF report (4.0.0 or Abusix)."""
    return isinstance(data, dict) and (
        "xarf_version" in data
        or "source_identifier" in data
        or isinstance(data.get("Report"), dict)
    )


def from_json_text(text: str | bytes, ref: Ref) -> Record:
    """One XARF JSON report (4.0.0 or Abusix), read strictly."""
    try:
        data = strictjson.loads(text, field="xarf")
    except InvalidInput as exc:
        return Unreadable(ref, "xarf", f"XARF JSON: {exc.message}")
    return from_json(data, ref)


def from_json(data: Any, ref: Ref) -> Record:
    if not looks_like_json(data):
        return Unreadable(ref, "xarf", "JSON, but not an XARF report (no xarf_version or Report)")
    if isinstance(data.get("Report"), dict) and "source_identifier" not in data:
        return _abusix(data, ref)
    return _v4(data, ref)


def _v4(data: dict[str, Any], ref: Ref) -> Record:
    report_id = _text(data.get("report_id"))
    ip = data.get("source_identifier")
    when = data.get("timestamp")
    category = "/".join(_text(data.get(k)) for k in ("category", "type") if data.get(k))
    return _complaint(
        ref, "xarf-4", report_id, ip, "source_identifier", data.get("source_port"), "source_port",
        when, "timestamp", category,
    )  # fmt: skip


def _abusix(data: dict[str, Any], ref: Ref) -> Record:
    report = data["Report"]
    report_id = _text(report.get("ReportId") or data.get("ReportId") or "")
    category = "/".join(
        _text(report.get(k)) for k in ("ReportClass", "ReportType") if report.get(k)
    )
    return _complaint(
        ref, "xarf-abusix", report_id, report.get("SourceIp"), "Report.SourceIp",
        report.get("SourcePort"), "Report.SourcePort", report.get("Date"), "Report.Date", category,
    )  # fmt: skip


def _complaint(
    ref: Ref,
    fmt: str,
    report_id: str,
    ip: object,
    ip_field: str,
    port: object,
    port_field: str,
    when: object,
    when_field: str,
    category: str,
) -> Record:
    if not isinstance(ip, str) or not ip:
        return Unreadable(ref, fmt, f"no {ip_field}", report_id)
    number = None
    if port is not None:
        number = port_of(port)
        if number is None:
            return Unreadable(ref, fmt, f"{port_field} {str(port)[:20]!r} is not a port", report_id)
    if not isinstance(when, str):
        return Unreadable(ref, fmt, f"no {when_field} (text)", report_id)
    try:
        at_us, zone = iso_instant(when)
    except BadTime as exc:
        return Unreadable(ref, fmt, f"{when_field}: {exc}", report_id)
    kind: PortKind | None = SOURCE if number is not None else None
    return Complaint(
        ref, fmt, report_id or str(ref), ip, number, kind, at_us, when, zone, category or "xarf"
    )


# -- X-ARF 0.2 -------------------------------------------------------------------------------------


# libyaml when PyYAML has it (ten times faster on a mailbox of reports), the Python one otherwise.
_BASE_LOADER: Any = getattr(yaml, "CBaseLoader", yaml.BaseLoader)


# A line of the flat "Key: value" form X-ARF reports take: a plain scalar with none of YAML's
# indicators, so YAML would read exactly the text after ": " (trailing blanks dropped).
_PLAIN_LINE = re.compile(
    r"([A-Za-z][A-Za-z0-9_-]*): +([A-Za-z0-9(./+](?:(?!: )[^'\"{}\[\],&*!|>%@`#\x00-\x1f\x7f])*)"
)


def load_yaml(text: str) -> Any:
    """YAML with every scalar as text (no YAML 1.1 guessing: ``0.2`` stays ``"0.2"``) and no
    anchors or aliases (a billion laughs in a notice is refused, not expanded).

    A report of flat ``Key: value`` lines with plain values (the X-ARF samples) is read without
    the YAML machinery: what YAML would give, checked against it in the tests.
    """
    lines = text.splitlines()
    flat: dict[str, str] = {}
    for line in lines:
        found = _PLAIN_LINE.fullmatch(line.rstrip(" "))
        if found is None or found[1] in flat or found[2].endswith(":"):
            break
        flat[found[1]] = found[2]
    else:
        if flat:
            return flat
    for event in yaml.parse(text, Loader=_BASE_LOADER):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise yaml.YAMLError("anchors and aliases are not allowed")
    return yaml.load(text, Loader=_BASE_LOADER)


def is_xarf_mail(message: Message) -> bool:
    # str(): the standard library gives a Header, not a str, for a field with 8-bit bytes
    xarf = str(message.get("X-XARF", "")).strip().upper()
    return xarf == "PLAIN" or message.get("X-ARF") is not None


def from_xarf_mail(message: Message, ref: Ref) -> Record:
    """An X-ARF 0.2 mail: the YAML part (the second MIME part by the spec; any that parses)."""
    parts = [p for p in message.walk() if not p.is_multipart()]
    for part in parts[1:] + parts[:1]:
        payload = part.get_payload(decode=True)
        if not isinstance(payload, bytes) or b":" not in payload:
            continue
        text = text_of(payload, part.get_content_charset())
        try:
            data = load_yaml(text)
        except yaml.YAMLError:
            continue
        if isinstance(data, dict) and ("Source" in data or "Report-Type" in data):
            return from_xarf_yaml(data, ref)
    return Unreadable(ref, "x-arf-0.2", "X-XARF mail without a YAML report part")


def from_xarf_yaml(data: dict[str, Any], ref: Ref) -> Record:
    fmt = "x-arf-0.2"
    report_id = _text(data.get("Report-ID"))
    source = data.get("Source")
    kind = _text(data.get("Source-Type")) or "ip-address"
    if kind.lower() not in ("ip-address", "ipv4", "ip"):
        return Unreadable(ref, fmt, f"Source-Type {kind[:40]!r} is not an IP address", report_id)
    if not isinstance(source, str) or not source:
        return Unreadable(ref, fmt, "no Source", report_id)
    when = data.get("Date")
    if not isinstance(when, str):
        return Unreadable(ref, fmt, "no Date", report_id)
    try:
        at_us, zone = mail_instant(when)
    except BadTime:
        try:
            at_us, zone = iso_instant(when)
        except BadTime as exc:
            return Unreadable(ref, fmt, f"Date: {exc}", report_id)
    port: int | None = None
    port_kind: PortKind | None = None
    flags: list[str] = []
    if data.get("Source-Port") is not None:
        port, port_kind = port_of(data["Source-Port"]), SOURCE
    elif data.get("Port") is not None:
        port, port_kind = port_of(data["Port"]), SERVICE
        service = _text(data.get("Service")) or "the reported service"
        flags.append(f"Port {port} is the port of {service}, not a source port")
    if port is None:
        port_kind = None
    category = "/".join(_text(data.get(k)) for k in ("Category", "Report-Type") if data.get(k))
    return Complaint(
        ref, fmt, report_id or str(ref), source, port, port_kind, at_us, when, zone,
        category or "x-arf", tuple(flags),
    )  # fmt: skip


def text_of(payload: bytes, charset: str | None) -> str:
    """A part's bytes as text in its charset: UTF-8 when it names none, or none Python knows as
    a text encoding (``no-such-charset``, ``zlib``)."""
    try:
        return payload.decode(charset or "utf-8", "replace")
    except LookupError:
        return payload.decode("utf-8", "replace")


def _text(value: object) -> str:
    return value if isinstance(value, str) else "" if value is None else str(value)
