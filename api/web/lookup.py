"""The Lookup page ("who held A:P at T"), past answers and their evidence files.

A lookup from the page is the same act as ``POST /v1/lookups/reverse``: the case is opened or
checked (an abuse token only uses its own cases), the answer is computed by the service and
written to the audit log — committed — before the page shows it.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Response

from api.web import access
from api.web.explain import Mark, explain, human, timeline_svg
from api.web.routing import Page, PageDep, check_lookup_fields, router
from detnat.errors import DetnatError, InvalidInput, NotFound
from detnat.service import audit, evidence, inquiry, plans
from detnat.service.times import format_instant, parse_instant
from detnat.store import repo
from detnat.store.models import AuditEntry

AnswerId = Annotated[int, PathParam(ge=1, le=2**63 - 1)]
FIELDS = ("ip", "port", "time", "tz", "tolerance", "case", "legal_basis", "requested_by", "realm")


def _values(page: Page) -> dict[str, str]:
    values = {name: page.field(name) for name in FIELDS}
    if not values["tz"]:
        values["tz"] = "UTC"
    if not values["tolerance"]:
        values["tolerance"] = "0"
    # "192.0.2.1:1100" pasted whole into the address field.
    if not values["port"] and values["ip"].count(":") == 1:
        values["ip"], values["port"] = values["ip"].split(":")
    return values


@router.get("/web/lookup")
async def lookup_form(page: PageDep) -> Response:
    return _render(page, _values(page), {})


@router.post("/web/lookup")
async def lookup(page: PageDep) -> Response:
    values = _values(page)
    errors: dict[str, str] = {}
    if page.field("action") == "preview":  # only the time: nothing is looked up or recorded
        at = _instant(values, errors)
        return _render(page, values, errors, status=422 if errors else 200, instant=at)
    parsed = _parse(values, errors)
    if errors or parsed is None:
        return _render(page, values, errors, status=422)
    at, tolerance, port = parsed
    actor = page.actor
    assert actor is not None
    identity = inquiry.Identity(
        values["case"], values["legal_basis"] or None, values["requested_by"] or None
    )
    asked = inquiry.ReverseQuery(
        values["ip"],
        port,
        values["time"],
        identity,
        "web",
        tz=zone_given(page, values),
        tolerance=tolerance,
        realm=values["realm"] or None,
    )
    try:
        answered = inquiry.ask(
            page.db,
            actor,
            asked,
            snapshot=page.state.timelines.get(page.db),
            kept=page.state.inquiries,
            now=plans.utcnow(),
            request_id=page.request_id,
        )
    except DetnatError as exc:
        status = refused(page, "POST /web/lookup", exc)
        errors[exc.field if exc.field in FIELDS else "ip"] = exc.message
        return _render(page, values, errors, status=status, instant=at)
    page.db.commit()  # audited before the answer leaves
    result = _result(
        page,
        dict(answered.answer),
        answered.trace,
        answered.answer_id,
        answered.audit_sha256,
        answered.case,
    )
    return _render(page, values, {}, instant=at, result=result)


def zone_given(page: Page, values: dict[str, str]) -> str | None:
    """The zone as the question gives it: the form's field, or UTC for a time without an offset
    when the field was left empty (what the page reads it in); None when the time has an offset."""
    if page.field("tz"):
        return values["tz"]
    try:
        parse_instant(values["time"], field="time")
    except InvalidInput:
        return "UTC"
    return None


def refused(page: Page, route: str, exc: DetnatError) -> int:
    """Roll the request back, record the refusal (ASVS 16.3.2), and give its HTTP status."""
    status = 403 if exc.code == "forbidden" else 404 if exc.code == "not_found" else 422
    page.db.rollback()
    assert page.actor is not None
    audit.record_refusal(
        page.db,
        page.actor,
        request_id=page.request_id,
        route=route,
        status=status,
        code=exc.code,
        message=exc.message,
        field=exc.field,
    )
    page.db.commit()
    return status


def _parse(
    values: dict[str, str], errors: dict[str, str]
) -> tuple[datetime, timedelta, int] | None:
    """The instant, tolerance and port of the form; problems go to ``errors`` by field."""
    tolerance: timedelta | None = None
    port: int | None = None
    if not values["ip"]:
        errors["ip"] = "Give the public IPv4 address from the complaint."
    text = values["port"]
    if not (text.isascii() and text.isdigit() and int(text) <= 65535):
        errors["port"] = "Give the port as a number from 0 to 65535."
    else:
        port = int(text)
    at = _instant(values, errors)
    tolerance = check_lookup_fields(values, errors, "lookup")
    if at is None or tolerance is None or port is None:
        return None
    return at, tolerance, port


def _instant(values: dict[str, str], errors: dict[str, str]) -> datetime | None:
    if not values["time"]:
        errors["time"] = "Give the time from the complaint."
        return None
    try:
        return parse_instant(values["time"], tz=values["tz"], field="time")
    except InvalidInput as exc:
        errors["tz" if exc.field == "tz" else "time"] = exc.message
        return None


def _render(
    page: Page,
    values: dict[str, str],
    errors: dict[str, str],
    *,
    status: int = 200,
    instant: datetime | None = None,
    result: dict[str, Any] | None = None,
) -> Response:
    realms: list[str] = []
    if page.may(access.REALMS):
        realms = [r.name for r in repo.realms(page.db)]
    return page.render(
        "lookup.html",
        status=status,
        values=values,
        errors=errors,
        instant=format_instant(instant) if instant is not None else None,
        offset_given=_has_offset(values["time"]),
        realms=realms,
        zones=_zones(),
        result=result,
    )


def _has_offset(text: str) -> bool:
    tail = text.strip()[-6:]
    return tail.endswith(("Z", "z")) or (len(tail) == 6 and tail[0] in "+-" and tail[3] == ":")


def _zones() -> list[str]:
    from zoneinfo import available_timezones

    return sorted(z for z in available_timezones() if "/" in z or z == "UTC")


def marks(page: Page, trace: dict[str, Any]) -> list[Mark]:
    """The plan versions the answer was computed from (its trace), for the timeline strip."""
    realms = trace.get("realms") or {}
    ids = {int(i) for part in realms.values() for i in part.get("version_ids", [])}
    rows = repo.versions_by_id(page.db, ids) if ids else {}
    out: list[Mark] = []
    for name, part in realms.items():
        drain = timedelta(seconds=float(part.get("session_drain_seconds", 0)))
        versions = sorted(
            (rows[i] for i in part.get("version_ids", []) if i in rows),
            key=lambda v: v.effective_from,
        )
        for n, v in enumerate(versions):
            until = versions[n + 1].effective_from if n + 1 < len(versions) else None
            out.append(Mark(name, v.seq, v.effective_from, until, drain, v.plan is None))
    return out


def _result(
    page: Page,
    answer: dict[str, Any],
    trace: dict[str, Any],
    answer_id: int,
    audit_sha256: str,
    case: str | None,
) -> dict[str, Any]:
    return {
        "answer": answer,
        "explained": explain(answer),
        "strip": timeline_svg(answer, marks(page, trace), ident=f"strip-{answer_id}"),
        "answer_id": answer_id,
        "audit_sha256": audit_sha256,
        "case": case,
        "evidence": page.may(access.EVIDENCE),
        "json": json.dumps(answer, indent=2, ensure_ascii=False),
    }


# -- past answers ----------------------------------------------------------------------------------


def readable_entry(page: Page, answer_id: int) -> AuditEntry:
    """A lookup's audit entry the signed-in holder may read (else 404: no hint it exists)."""
    actor = page.actor
    assert actor is not None
    entry = evidence.lookup_entry(page.db, answer_id)
    if not audit.may_read_case(page.db, actor, entry.case_ref):
        raise NotFound(f"no answer {answer_id}", field="answer_id")
    return entry


@router.get("/web/answers/{answer_id}")
async def show_answer(answer_id: AnswerId, page: PageDep) -> Response:
    entry = readable_entry(page, answer_id)
    actor = page.actor
    assert actor is not None
    audit.record(
        page.db,
        actor,
        "answer.read",
        request_id=page.request_id,
        detail={"answer_id": answer_id, "via": "web"},
        case=entry.case_ref,
    )
    page.db.commit()
    detail = entry.detail
    result = None
    if entry.action == "lookup.reverse":
        result = _result(
            page,
            detail["answer"],
            detail.get("trace") or {},
            entry.seq,
            entry.entry_sha256,
            entry.case_ref,
        )
    return page.render(
        "answer.html",
        entry=entry,
        at=human(format_instant(entry.at)),
        result=result,
        query=detail.get("query") or {},
        other=json.dumps(detail.get("answer", detail.get("batch")), indent=2, ensure_ascii=False),
    )


@router.get("/web/answers/{answer_id}/evidence")
async def evidence_file(answer_id: AnswerId, page: PageDep) -> Response:
    entry = readable_entry(page, answer_id)
    actor = page.actor
    assert actor is not None
    document = evidence.build(page.db, answer_id)
    audit.record(
        page.db,
        actor,
        "evidence.read",
        request_id=page.request_id,
        detail={"answer_id": answer_id, "via": "web"},
        case=entry.case_ref,
    )
    page.db.commit()
    return Response(
        json.dumps(document, indent=2, ensure_ascii=False) + "\n",
        media_type="application/json",
        headers={"content-disposition": f'attachment; filename="evidence-{answer_id}.json"'},
    )
