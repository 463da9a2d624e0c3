"""The Cases page: the cases a holder may read, and one case's lookups and audit entries.

An abuse token sees only the cases it opened; another case is "not found", exactly as over the
API (``audit.may_read_case``). Subscribers are not shown here: each lookup links to its answer,
whose reading is itself audited.
"""

from __future__ import annotations

from typing import Any

from fastapi import Response
from sqlalchemy import func, select

from api.web.explain import human
from api.web.routing import Page, PageDep, router
from detnat.errors import InvalidInput, NotFound
from detnat.service import audit
from detnat.service.times import format_instant
from detnat.store.models import ApiToken, AuditEntry, Case

MAX_CASES = 200
MAX_ENTRIES = 2000


@router.get("/web/cases")
async def cases(page: PageDep) -> Response:
    ref = page.field("case")
    if not ref:
        return page.render("cases.html", cases=_cases(page), error=None, ref="")
    try:
        audit.check_reference(ref, field="case")
    except InvalidInput as exc:
        return page.render("cases.html", status=422, cases=_cases(page), error=exc.message, ref=ref)
    actor = page.actor
    assert actor is not None
    found = page.db.get(Case, ref)
    if found is None or not audit.may_read_case(page.db, actor, ref):
        raise NotFound(f"no case {ref!r} that you may read", field="case")
    entries = list(audit.entries(page.db, case=ref, limit=MAX_ENTRIES))
    lookups = [_lookup(e) for e in entries if e.action.startswith("lookup.")]
    audit.record(
        page.db, actor, "case.read", request_id=page.request_id, detail={"via": "web"}, case=ref
    )
    page.db.commit()
    return page.render(
        "case.html",
        ref=ref,
        opened=human(format_instant(found.created_at)),
        owner=_owners(page, [found.owner]).get(found.owner, found.owner),
        lookups=lookups,
        entries=[_entry(e) for e in entries],
        truncated=len(entries) == MAX_ENTRIES,
    )


def _cases(page: Page) -> list[dict[str, Any]]:
    actor = page.actor
    assert actor is not None
    query = (
        select(Case, func.count(AuditEntry.seq))
        .outerjoin(AuditEntry, AuditEntry.case_ref == Case.ref)
        .group_by(Case.ref)
        .order_by(Case.created_at.desc())
        .limit(MAX_CASES)
    )
    if actor.role == "abuse":
        query = query.where(Case.owner == actor.owner)
    rows = page.db.execute(query).all()
    names = _owners(page, [c.owner for c, _ in rows])
    return [
        {
            "ref": c.ref,
            "opened": human(format_instant(c.created_at)),
            "owner": names.get(c.owner, c.owner),
            "entries": n,
        }
        for c, n in rows
    ]


def _owners(page: Page, owners: list[str]) -> dict[str, str]:
    """``token:3`` as the token's name (and id); local operators as they are."""
    ids = {int(o.split(":", 1)[1]) for o in owners if o.startswith("token:")}
    if not ids:
        return {}
    rows = page.db.scalars(select(ApiToken).where(ApiToken.id.in_(ids)))
    return {f"token:{t.id}": f"{t.name} (token {t.id}, {t.role})" for t in rows}


def _lookup(entry: AuditEntry) -> dict[str, Any]:
    query = entry.detail.get("query") or {}
    batch = entry.detail.get("batch")
    if entry.action == "lookup.reverse":
        asked = f"{query.get('ip')} port {query.get('port')} at {query.get('time')}"
        if query.get("tz") and query.get("tz") != "UTC":
            asked += f" ({query.get('tz')})"
    elif entry.action == "lookup.forward":
        asked = f"{query.get('subscriber')} at {query.get('time')}"
    elif isinstance(batch, dict):
        asked = f"batch of {batch.get('rows')} rows ({batch.get('bad_rows')} not queries)"
    else:
        asked = entry.action
    return {
        "seq": entry.seq,
        "at": human(format_instant(entry.at)),
        "actor": entry.actor,
        "kind": entry.action.removeprefix("lookup.").replace("_", " "),
        "asked": asked,
        "status": entry.status or "",
    }


def _entry(entry: AuditEntry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "at": human(format_instant(entry.at)),
        "actor": entry.actor,
        "role": entry.role,
        "action": entry.action,
        "status": entry.status or "",
        "entry_sha256": entry.entry_sha256,
    }
