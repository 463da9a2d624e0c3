"""An answer in words for someone who is not a network engineer, and its timeline strip.

Pure functions of the answer (the dict the service returns and the audit log keeps) and of the
plan versions near T (:class:`Mark`); the pages only lay them out. The strip is inline SVG drawn
with classes (styled by ``web.css``), so it needs no script and passes a strict CSP.

One module at this size: every sentence and picture that explains an answer, kept together so the
wording stays consistent.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from html import escape
from typing import Any

from markupsafe import Markup

from detnat.engine import Status
from detnat.service.times import parse_instant

REASONS = {
    "not_in_pool": "the address is not in the public pool of any plan in force then",
    "excluded_address": "the address is excluded from the pool (a network, broadcast or router "
    "address): no subscriber ever uses it",
    "reserved_port": "the port is outside the ports handed to subscribers (below the first port, "
    "excluded, or reserved by the plan)",
    "unallocated": "the port is in no subscriber's block (unused ports at the end of an address, "
    "or a block nobody owns, such as the block of a subscriber with a dedicated address)",
    "dynamic_block": "the port lies in the overflow blocks the NAT hands out on demand; which "
    "subscriber had it is only in the NAT's own logs",
    "mixed": "the plans in force refuse it for different reasons",
    "no_plan": "no realm had a plan using this address at that time",
    "after_now": "nobody can have held it yet",
    "candidates_differ": "the plan versions in force around that time name different subscribers",
    "not_logged": "no allocation in the NAT's own logs covers that port then (the logs may be "
    "incomplete)",
    "log_conflict": "the NAT's own logs give that port to two subscribers at the same time",
    "log_open_ended": "the NAT's own logs show the allocation, but not up to that time (a release "
    "or a refresh is missing)",
    "log_boundary": "the time asked crosses the start or the end of an allocation in the NAT's "
    "logs",
    "plan_and_log_disagree": "the plan names one subscriber and the NAT's own logs another",
}


def human(text: object) -> str:
    """``2026-03-14T20:07:33Z`` as ``2026-03-14 20:07:33 UTC``."""
    if not isinstance(text, str):
        return ""
    return text.replace("T", " ").replace("Z", " UTC") if text.endswith("Z") else text


def duration(seconds: float) -> str:
    """A length of time in words: ``0 s``, ``2.5 s``, ``3 min 20 s``, ``2 h``, ``5 days``."""
    value = abs(seconds)
    if value < 60:
        return f"{value:g} s"
    if value < 3600:
        minutes, rest = divmod(round(value), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if value < 86400 * 2:
        hours, rest = divmod(round(value) // 60, 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    return f"{value / 86400:.0f} days"


def _known(status: str) -> Status | None:
    try:
        return Status(status)
    except ValueError:
        return None


def _reason(code: object) -> str:
    return REASONS.get(str(code), str(code).replace("_", " "))


def _holder(candidate: dict[str, Any]) -> str:
    if candidate.get("status") == Status.MATCH:
        return f"subscriber {candidate.get('subscriber')}"
    return f"no subscriber ({_reason(candidate.get('reason'))})"


def _covers(candidate: dict[str, Any]) -> str:
    covers = candidate.get("covers") or {}
    if covers.get("in_drain_only"):
        return (
            "had already been replaced before that time, but connections opened under it can "
            "live on for the realm's session drain, so it is still a candidate"
        )
    lo, hi = covers.get("from"), covers.get("to")
    if lo == hi:
        return f"was in force at that instant ({human(lo)})"
    return f"was in force from {human(lo)} to {human(hi)}"


def explain(answer: dict[str, Any]) -> dict[str, Any]:
    """Headline, sentences and warnings for an answer (reverse: "who held A:P at T")."""
    status = str(answer.get("status"))
    candidates: list[dict[str, Any]] = list(answer.get("candidates") or [])
    where = f"{answer.get('ip')} port {answer.get('port')}"
    at = human(answer.get("time"))
    sentences: list[str] = []
    why: list[str] = []
    logged: list[dict[str, Any]] = list(answer.get("log_candidates") or [])
    from_logs = answer.get("source") == "log"
    if status == Status.MATCH and from_logs:
        held = next((c for c in logged if c.get("subscriber") == answer.get("subscriber")), {})
        sentences.append(
            f"{answer.get('subscriber')} held {where} at {at}: the NAT's own logs show the ports "
            f"{_ranges(answer.get('port_ranges'))} of {answer.get('public_ip')} allocated to it "
            f"{_span(held)}."
        )
        sentences.append(
            "The plan leaves this port to the overflow blocks the NAT hands out on demand; the "
            "log lines below are what names the subscriber."
        )
    elif status == Status.MATCH:
        sentences.append(
            f"{answer.get('subscriber')} held {where} at {at}: the plan gives it the ports "
            f"{_ranges(answer.get('port_ranges'))} of {answer.get('public_ip')}."
        )
        if len(candidates) > 1:
            sentences.append(
                f"{len(candidates)} plan versions were in force around that time and all of them "
                "give this same subscriber, address and ports."
            )
        else:
            sentences.append("One plan version was in force for the whole time searched.")
    elif status == Status.AMBIGUOUS and from_logs:
        sentences.append(
            f"detnat names no subscriber for {where} at {at}: {_reason(answer.get('reason'))}."
        )
        sentences.append(
            "Do not act on one of the allocations below alone. Check the exact time and the "
            "complainant's clock, and whether the NAT's logs for that time are complete."
        )
    elif status == Status.AMBIGUOUS:
        sentences.append(
            f"detnat names no subscriber for {where} at {at}: {len(candidates)} plan versions "
            "could have been in force, and they disagree."
        )
        why = _why_ambiguous(answer, candidates)
        sentences.append(
            "Do not act on one of them alone. Check the exact time and the complainant's clock "
            "(a smaller tolerance may settle it); otherwise only the NAT's own logs can."
        )
    elif _known(status) is not None:  # no_mapping, not_deterministic, no_plan_in_force, future
        sentences.append(
            f"Nobody can be named for {where} at {at}: {_reason(answer.get('reason'))}."
        )
    else:
        sentences.append(f"Status {status}.")
    notes = []
    for pending in answer.get("pending_approval") or []:
        notes.append(
            f"Version {pending.get('version')} of {pending.get('realm')} (from "
            f"{human(pending.get('effective_from'))}) awaits a second admin's approval; it would "
            "have been a candidate too. Answers use approved versions only."
        )
    for c in candidates:
        if c.get("correction"):
            notes.append(
                f"Version {c.get('version')} of {c.get('realm')} is a correction published after "
                "the fact; what it replaced stays in the realm's history."
            )
    nearest = answer.get("nearest_change")
    if isinstance(nearest, dict):
        seconds = float(nearest.get("seconds_from_time", 0))
        side = "after" if seconds > 0 else "before"
        notes.append(
            f"The nearest plan change is {duration(seconds)} {side} that time "
            f"({human(nearest.get('at'))}, realm {nearest.get('realm')})."
            if seconds
            else f"A plan change happened at exactly that time (realm {nearest.get('realm')})."
        )
    return {
        "status": status,
        "headline": known.headline if (known := _known(status)) else status,
        "sentences": sentences,
        "why": why,
        "notes": notes,
        "candidates": [{**c, "holder": _holder(c), "covers_text": _covers(c)} for c in candidates],
        "log_candidates": [
            {
                **c,
                "holder": f"subscriber {c.get('subscriber')}",
                "span": _span(c),
                "flags": _flags(c),
            }
            for c in logged
        ],
    }


def _span(logged: dict[str, Any]) -> str:
    """When a logged allocation held its ports, in words."""
    interval = logged.get("interval") or {}
    lo, hi = interval.get("from"), interval.get("to")
    start = f"from {human(lo)}" if lo else "from a time no line shows"
    return f"{start} to {human(hi)}" if hi else f"{start} with no end seen"


def _flags(logged: dict[str, Any]) -> list[str]:
    """What the lines of a logged allocation leave open, in words."""
    flags = []
    if logged.get("open"):
        flags.append("no release seen: the end is the realm's hold")
    if logged.get("unknown_start"):
        flags.append("no allocation seen: the start is unknown")
    if logged.get("conflict"):
        flags.append("another subscriber is logged for the same port and time")
    return flags


def _why_ambiguous(answer: dict[str, Any], candidates: list[dict[str, Any]]) -> list[str]:
    why = []
    window = answer.get("window") or {}
    tolerance = float(answer.get("tolerance_seconds") or 0)
    for c in candidates:
        covers = c.get("covers") or {}
        if covers.get("in_drain_only"):
            why.append(
                f"That time falls within the session drain after version {c.get('version')} of "
                f"{c.get('realm')} was replaced: a connection opened under it before the change "
                "may still have been using this address and port."
            )
    starts = sorted(
        {str(c.get("effective_from")) for c in candidates}
        & _inside(window.get("from"), window.get("to"), candidates)
    )
    for start in starts:
        why.append(
            f"The time searched ({human(answer.get('time'))} ± {duration(tolerance)}) spans the "
            f"plan change at {human(start)}."
        )
    if len({c.get("realm") for c in candidates}) > 1:
        why.append("Plans of more than one realm used this address in the time searched.")
    for c in candidates:
        why.append(
            f"Version {c.get('version')} of {c.get('realm')} {_covers(c)}; it says {_holder(c)}."
        )
    return why


def _inside(lo: object, hi: object, candidates: list[dict[str, Any]]) -> set[str]:
    if not isinstance(lo, str) or not isinstance(hi, str):
        return set()
    start, end = parse_instant(lo), parse_instant(hi)
    out = set()
    for c in candidates:
        text = c.get("effective_from")
        if isinstance(text, str) and start < parse_instant(text) <= end:
            out.add(text)
    return out


def _ranges(ranges: object) -> str:
    if not isinstance(ranges, list):
        return ""
    return ", ".join(
        str(a) if a == b else f"{a}–{b}"
        for a, b in (r for r in ranges if isinstance(r, list | tuple) and len(r) == 2)
    )


# -- the timeline strip ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Mark:
    """One plan version near T: when it took effect, until when, and the realm's drain."""

    realm: str
    version: int
    effective_from: datetime
    until: datetime | None
    drain: timedelta
    retired: bool = False


WIDTH, LEFT, RIGHT, TOP, ROW = 760, 120, 24, 44, 34


def strip_range(answer: dict[str, Any], marks: list[Mark]) -> tuple[datetime, datetime]:
    """The stretch of time the strip shows: T, the window, the nearest change, a drain T is in."""
    at = parse_instant(answer["time"])
    window = answer.get("window") or {}
    lo = parse_instant(window["from"]) if "from" in window else at
    hi = parse_instant(window["to"]) if "to" in window else at
    span = max((hi - lo).total_seconds() / 2, 60.0)
    nearest = answer.get("nearest_change")
    if isinstance(nearest, dict):
        gap = abs(float(nearest.get("seconds_from_time", 0)))
        if gap <= 30 * 86400:  # a change months away would squash T into a hairline
            span = max(span, gap)
    for m in marks:
        if m.until is not None and m.until <= hi and at <= m.until + m.drain:
            span = max(span, abs((m.until + m.drain - at).total_seconds()))
    pad = timedelta(seconds=span * 1.3)
    return min(lo, at - pad), max(hi, at + pad)


def _text(x: float, y: float, kind: str, content: str, anchor: str = "middle") -> str:
    return (
        f'<text class="{kind}" x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}">'
        f"{escape(content)}</text>"
    )


def _rect(kind: str, x: float, y: float, width: float, height: float, title: str) -> str:
    return (
        f'<rect class="{kind}" x="{x:.1f}" y="{y:.1f}" width="{max(width, 1):.1f}" '
        f'height="{height:.1f}"><title>{escape(title)}</title></rect>'
    )


def _line(kind: str, x1: float, y1: float, x2: float, y2: float) -> str:
    return f'<line class="{kind}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'


def _svg_open(height: int, ident: str, title: str, desc: str) -> list[str]:
    return [
        f'<svg class="strip" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {height}" '
        f'width="{WIDTH}" height="{height}" role="img" aria-labelledby="{ident}-t {ident}-d">',
        f'<title id="{ident}-t">{escape(title)}</title>',
        f'<desc id="{ident}-d">{escape(desc)}</desc>',
    ]


def timeline_svg(answer: dict[str, Any], marks: list[Mark], *, ident: str = "strip") -> Markup:
    """The plan changes around T, per realm, with the window searched and T itself."""
    at = parse_instant(answer["time"])
    start, end = strip_range(answer, marks)
    total = max((end - start).total_seconds(), 1e-6)
    realms = sorted({m.realm for m in marks})
    rows = max(len(realms), 1)
    height = TOP + ROW * rows + 36

    def x(moment: datetime) -> float:
        seconds = (min(max(moment, start), end) - start).total_seconds()
        return LEFT + seconds / total * (WIDTH - LEFT - RIGHT)

    title = f"Plan changes around {human(answer['time'])}"
    out = _svg_open(height, ident, title, _strip_text(answer, marks))
    axis_y = TOP - 14
    out.append(_line("axis", LEFT, axis_y, WIDTH - RIGHT, axis_y))
    for tick in _ticks(start, end):
        out.append(_line("tick", x(tick), axis_y - 4, x(tick), height - 30))
        out.append(_text(x(tick), axis_y - 8, "tick-label", _tick_text(tick, total)))
    window = answer.get("window") or {}
    if "from" in window and "to" in window:
        w0, w1 = parse_instant(window["from"]), parse_instant(window["to"])
        out.append(
            _rect(
                "window",
                x(w0),
                TOP - 6,
                x(w1) - x(w0),
                ROW * rows + 4,
                f"window searched: {_fmt(w0)} to {_fmt(w1)}",
            )
        )
    for row, realm in enumerate(realms):
        y = TOP + row * ROW
        out.append(_text(LEFT - 8, y + 17, "realm-label", _clip(realm, 16), "end"))
        mine = sorted((m for m in marks if m.realm == realm), key=lambda m: m.effective_from)
        for n, m in enumerate(mine):
            if m.effective_from > end or (m.until is not None and m.until < start - m.drain):
                continue
            x0 = x(m.effective_from)
            x1 = x(m.until) if m.until is not None else x(end)
            kind = "retired" if m.retired else ("even" if m.version % 2 == 0 else "odd")
            until = f" until {_fmt(m.until)}" if m.until else " on"
            out.append(
                _rect(
                    f"version {kind}",
                    x0,
                    y + 2,
                    x1 - x0,
                    22,
                    f"{realm} version {m.version}: from {_fmt(m.effective_from)}{until}",
                )
            )
            if x1 - x0 > 30:
                label = f"v{m.version}" + (" (retired)" if m.retired else "")
                out.append(_text((x0 + x1) / 2, y + 17, "version-label", label))
            if m.until is not None and m.drain > timedelta(0):
                d0, d1 = x(m.until), x(m.until + m.drain)
                if d1 > d0:
                    out.append(
                        _rect(
                            "drain",
                            d0,
                            y + 24,
                            d1 - d0,
                            6,
                            f"session drain of version {m.version}: until "
                            f"{_fmt(m.until + m.drain)}",
                        )
                    )
            if start <= m.effective_from <= end and n > 0:
                out.append(_line("change", x0, y - 2, x0, y + 30))
    bottom = TOP + ROW * rows
    out.append(_line("t-line", x(at), TOP - 10, x(at), bottom + 4))
    out.append(_text(x(at), bottom + 20, "t-label", f"T = {_fmt(at)}"))
    if not realms:
        text = "no plan version of any realm held this address then"
        out.append(_text(LEFT, TOP + 17, "empty", text, "start"))
    out.append("</svg>")
    return Markup("\n".join(out))


def _strip_text(answer: dict[str, Any], marks: list[Mark]) -> str:
    parts = [f"T is {human(answer.get('time'))}."]
    window = answer.get("window") or {}
    if window:
        parts.append(f"Window searched: {human(window.get('from'))} to {human(window.get('to'))}.")
    for m in sorted(marks, key=lambda m: (m.realm, m.effective_from)):
        text = f"{m.realm} version {m.version} from {_fmt(m.effective_from)}"
        if m.until is not None:
            text += f" until {_fmt(m.until)}"
            if m.drain:
                text += f" (drain {duration(m.drain.total_seconds())})"
        parts.append(text + ".")
    return " ".join(parts)


def _fmt(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


_STEPS = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200,
          86400, 172800, 604800, 2592000, 31536000)  # fmt: skip


def _ticks(start: datetime, end: datetime) -> list[datetime]:
    total = (end - start).total_seconds()
    step = next(
        (s for s in _STEPS if total / s <= 6), _STEPS[-1] * math.ceil(total / 6 / _STEPS[-1])
    )
    first = math.ceil(start.timestamp() / step) * step
    out = []
    value = float(first)
    while value <= end.timestamp():
        out.append(datetime.fromtimestamp(value, UTC))
        value += step
    return out


def _tick_text(moment: datetime, total: float) -> str:
    if total <= 2 * 86400:
        return moment.strftime("%H:%M:%S") if total < 600 else moment.strftime("%H:%M")
    return moment.strftime("%Y-%m-%d")


def history_svg(marks: list[Mark], now: datetime, *, ident: str = "history") -> Markup:
    """A realm's approved versions in order, one equal step each (not to scale: versions can be
    seconds or years apart), with the date each took effect and where now falls."""
    if not marks:
        return Markup("")
    marks = sorted(marks, key=lambda m: m.effective_from)
    left, top = 16, 20
    step = (WIDTH - left - RIGHT) / len(marks)
    height = top + 22 + 44
    desc = " ".join(
        f"Version {m.version}{' (retired)' if m.retired else ''} from {_fmt(m.effective_from)}"
        + (f" until {_fmt(m.until)}." if m.until else " on.")
        for m in marks
    )
    out = _svg_open(height, ident, "Plan versions in order", desc)
    for n, m in enumerate(marks):
        x0 = left + n * step
        kind = "retired" if m.retired else ("even" if m.version % 2 == 0 else "odd")
        label = f"v{m.version}" + (" retired" if m.retired else "")
        out.append(_rect(f"version {kind}", x0, top, step - 2, 22, f"version {m.version}"))
        out.append(_text(x0 + step / 2, top + 15, "version-label", label))
        out.append(_line("change", x0, top - 6, x0, top + 30))
        out.append(
            _text(
                x0 + 3, top + 42, "tick-label", m.effective_from.strftime("%Y-%m-%d %H:%M"), "start"
            )
        )
        if m.until is not None and m.drain > timedelta(0):
            out.append(
                _rect(
                    "drain",
                    x0 + step - 8,
                    top + 22,
                    6,
                    6,
                    f"then {duration(m.drain.total_seconds())} of drain",
                )
            )
        if m.effective_from <= now and (m.until is None or now < m.until):
            if m.until is None:
                share = 0.9
            else:
                share = (now - m.effective_from) / (m.until - m.effective_from)
            nx = x0 + step * min(max(share, 0.05), 0.95)
            out.append(_line("t-line", nx, top - 8, nx, top + 30))
            out.append(_text(nx, top - 10, "t-label", "now"))
    out.append("</svg>")
    return Markup("\n".join(out))
