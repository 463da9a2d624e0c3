"""ACNS: Automated Copyright Notice System notices (``<Infringement>`` XML), alone or in a mail.

ACNS 1.2 uses the namespace ``http://www.acns.net/ACNS``; 1.0 and 1.1 used
``http://www.movielabs.com/ACNS``; both are read (and a notice without a namespace). The question
is ``Source/IP_Address``, ``Source/Port`` (the port the monitor saw on that address: a source
port), ``Source/TimeStamp``; ``Case/ID`` names the notice, ``Source/Type`` its category.

Real notices are not always well-formed: some senders do not escape ``&`` (a title such as
``Tom & Jerry``); a bare ``&`` that starts no entity is read as ``&amp;`` and the row says so. The
XML is parsed with ``defusedxml`` (no entity expansion, no external entities, no DTD tricks).

A notice's mail text often repeats the time ("Initial Infringement Timestamp: ...") and may
disagree with the XML: that is reported with both instants (``flags``, ``also_at_us``), never
settled by picking one.
"""

from __future__ import annotations

import re
from xml.etree.ElementTree import Element, ParseError

from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring

from detnat.complaints.records import (
    SOURCE,
    BadTime,
    Complaint,
    Record,
    Ref,
    Unreadable,
    iso_instant,
    port_of,
)

FORMAT = "acns"
NAMESPACES = ("http://www.acns.net/ACNS", "http://www.movielabs.com/ACNS")
# The first <Infringement ...> and the first closing tag after it, found in two linear searches
# (one lazy ``<open>.*?</close>`` pattern is tried from every opening tag to the end of the text:
# quadratic, hours on a 1 MB notice of opening tags only).
_OPEN = re.compile(r"<(?:[A-Za-z_][\w.-]*:)?Infringement\b")
_CLOSE = re.compile(r"</(?:[A-Za-z_][\w.-]*:)?Infringement\s*>")
_BARE_AMP = re.compile(r"&(?!(?:[A-Za-z_][\w.-]*|#[0-9]+|#x[0-9A-Fa-f]+);)")
_TEXT_TIME = re.compile(  # "Initial Infringement Timestamp: 2019-02-27T08:06:44Z" in the text
    r"(?im)^[^\S\n]*(?:[A-Za-z][\w ]*\s)?Time\s?stamp\s*:\s*"
    r"(\S+(?:[ T]\d\d:\d\d:\d\d\S*)?(?: ?(?:Z|UTC|GMT))?)"
)


def _block(text: str) -> tuple[int, int] | None:
    """Where the notice's ``<Infringement>`` element is in ``text`` (start, end), or None: the
    first opening tag to the first closing tag after it (no closing tag after the first opening
    one: none after a later one either)."""
    opened = _OPEN.search(text)
    if opened is None:
        return None
    closed = _CLOSE.search(text, opened.end())
    return None if closed is None else (opened.start(), closed.end())


def contains(text: str) -> bool:
    return _block(text) is not None


def from_text(text: str, ref: Ref) -> Record:
    """The notice in ``text`` (an XML document, or a mail body with the XML inside)."""
    found = _block(text)
    if found is None:
        return Unreadable(ref, FORMAT, "no <Infringement> element")
    start, end = found
    xml = text[start:end]
    flags: list[str] = []
    fixed = _BARE_AMP.sub("&amp;", xml)
    if fixed != xml:
        flags.append("unescaped & in the XML read as &amp;")
    try:
        root = fromstring(fixed)
    except (ParseError, DefusedXmlException) as exc:
        return Unreadable(ref, FORMAT, f"ACNS XML: {str(exc)[:160]}")
    namespace = root.tag[1:].partition("}")[0] if root.tag.startswith("{") else ""
    if namespace and namespace not in NAMESPACES:
        return Unreadable(ref, FORMAT, f"<Infringement> in namespace {namespace[:80]!r}")
    if namespace == NAMESPACES[1]:
        flags.append("ACNS 1.0/1.1 namespace (movielabs)")
    case_id = _find(root, "Case", "ID")
    ip = _find(root, "Source", "IP_Address")
    stamp = _find(root, "Source", "TimeStamp")
    port_text = _find(root, "Source", "Port")
    if not ip:
        return Unreadable(ref, FORMAT, "no Source/IP_Address", case_id)
    if not stamp:
        return Unreadable(ref, FORMAT, "no Source/TimeStamp", case_id)
    try:
        at_us, zone = iso_instant(stamp)
    except BadTime as exc:
        return Unreadable(ref, FORMAT, f"Source/TimeStamp: {exc}", case_id)
    port = None
    if port_text:
        port = port_of(port_text)
        if port is None:
            return Unreadable(ref, FORMAT, f"Source/Port {port_text[:20]!r} is not a port", case_id)
    also = None
    outside = text[:start] + text[end:]
    said = _TEXT_TIME.search(outside)
    if said is not None:
        try:
            text_us, _ = iso_instant(said.group(1))
        except BadTime:
            flags.append(f"the notice's text time {said.group(1)[:40]!r} is not readable")
        else:
            if text_us != at_us:
                also = text_us
                flags.append(
                    f"the notice's text says {said.group(1)} but its XML TimeStamp says {stamp}"
                )
    kind = _find(root, "Source", "Type") or "unknown"
    return Complaint(
        ref, FORMAT, case_id or str(ref), ip, port, SOURCE if port is not None else None,
        at_us, stamp, zone, f"copyright/{kind}", tuple(flags), also,
    )  # fmt: skip


def _find(root: Element, *path: str) -> str:
    node: Element | None = root
    for name in path:
        assert node is not None
        node = next((c for c in node if c.tag.rpartition("}")[2] == name), None)
        if node is None:
            return ""
    return (node.text or "").strip() if node is not None else ""
