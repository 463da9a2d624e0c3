"""The Realms pages: each realm's timeline of plan versions, a version's summary and what it
changed from the version before (``detnat.capacity``'s plan diff), and approvals for admins.

Approving is the same act as ``POST /v1/realms/{realm}/versions/{n}/approval``: bound to the
content hash the approver was shown, refused to the version's own publisher (four eyes), audited.
"""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Annotated, Any

from fastapi import Path as PathParam
from fastapi import Response
from fastapi.responses import RedirectResponse
from starlette.concurrency import run_in_threadpool

from api.capacity import MAX_DIFF_SUBSCRIBERS
from api.web import access
from api.web.explain import Mark, history_svg, human
from api.web.routing import Page, PageDep, router
from detnat.capacity import diff_plans
from detnat.engine import Mapper
from detnat.errors import Conflict, DetnatError
from detnat.service import audit, plans
from detnat.service.times import format_instant
from detnat.store import repo
from detnat.store.models import PlanVersion, Realm

Seq = Annotated[int, PathParam(ge=1, le=2**31 - 1)]


@router.get("/web/realms")
async def realms(page: PageDep) -> Response:
    db = page.db
    now = plans.utcnow()
    shown = []
    pending: list[dict[str, Any]] = []
    for realm in plans.list_realms(db):
        timeline = repo.in_force_versions(db, realm.id)
        # What lookups use now: the last approved version that has taken effect.
        current = next((v for v, ok in reversed(timeline) if ok and v.effective_from <= now), None)
        waiting = [v for v, approved in timeline if not approved]
        shown.append(
            {
                **plans.realm_json(db, realm),
                "current": current.seq if current is not None else None,
                "retired": current is not None and current.plan is None,
                "pending": len(waiting),
            }
        )
        pending += [_version_row(page, realm, v) for v in waiting]
    return page.render(
        "realms.html",
        realms=shown,
        pending=pending if page.may(access.APPROVE) else [],
    )


@router.get("/web/realms/{realm}")
async def realm_page(realm: str, page: PageDep) -> Response:
    db = page.db
    row = plans.get_realm(db, realm)
    history = plans.history(db, row)
    approved = {v.id for v, ok in repo.in_force_versions(db, row.id) if ok}
    timeline = sorted(
        (v for v in history if not v.superseded and v.id in approved),
        key=lambda v: v.effective_from,
    )
    marks = [
        Mark(
            row.name,
            v.seq,
            v.effective_from,
            timeline[n + 1].effective_from if n + 1 < len(timeline) else None,
            row.session_drain,
            v.plan is None,
        )
        for n, v in enumerate(timeline)
    ]
    return page.render(
        "realm.html",
        realm=plans.realm_json(db, row),
        versions=[_version_row(page, row, v) for v in reversed(history)],
        strip=history_svg(marks, plans.utcnow()),
    )


@router.get("/web/realms/{realm}/versions/{n}")
async def version_page(realm: str, n: Seq, page: PageDep) -> Response:
    return await _version(page, realm, n)


@router.post("/web/realms/{realm}/versions/{n}/approval")
async def approve(realm: str, n: Seq, page: PageDep) -> Response:
    actor = page.actor
    assert actor is not None
    db = page.db
    try:
        plans.approve(
            db,
            realm,
            n,
            by=actor,
            request_id=page.request_id,
            content_sha256=page.field("content_sha256") or None,
        )
        db.commit()
    except Conflict as exc:
        db.rollback()
        return await _version(page, realm, n, error=exc.message, status=409)
    return RedirectResponse(f"/web/realms/{realm}/versions/{n}?approved=1", status_code=303)


async def _version(
    page: Page, realm: str, n: int, *, error: str | None = None, status: int = 200
) -> Response:
    db = page.db
    row = plans.get_realm(db, realm)
    version = plans.get_version(db, row, n)
    shown = plans.version_json(db, row, version, with_plan=True)
    previous = _previous(db, row, version)
    summary: dict[str, object] | None = None
    diff: dict[str, Any] | None = None
    diff_note = None
    if version.plan is not None:
        mapper = page.state.mappers.get(version)
        summary = mapper.summary()
        if previous is None:
            diff_note = "This is the realm's first plan: there is nothing to compare it with."
        elif previous.plan is None:
            diff_note = f"Version {previous.seq} retired the realm: every subscriber is new here."
        else:
            diff, diff_note = await run_in_threadpool(
                _diff, page.state.mappers.get(previous), mapper
            )
    elif previous is not None:
        diff_note = f"This version retires the realm: from {human(shown['effective_from'])} on, "
        diff_note += "lookups there answer that no plan was in force."
    return page.render(
        "version.html",
        status=status,
        realm=plans.realm_json(db, row),
        version=shown,
        previous=previous.seq if previous is not None else None,
        summary=summary,
        diff=diff,
        diff_note=diff_note,
        plan_json=json.dumps(version.plan, indent=2) if version.plan is not None else None,
        may_approve=page.may(access.APPROVE) and not shown["approved"] and not version.superseded,
        own=page.actor is not None
        and audit.same_person(version.published_by, page.actor.name)
        and not row.single_approver,
        error=error,
        approved_now=page.field("approved") == "1" and error is None,
    )


def _diff(old: Mapper, new: Mapper) -> tuple[dict[str, Any] | None, str | None]:
    for side, mapper in (("the previous", old), ("this", new)):
        if mapper.subscriber_count > MAX_DIFF_SUBSCRIBERS:
            return None, (
                f"{side} plan has {mapper.subscriber_count:,} subscribers; the pages compare "
                f"plans of up to {MAX_DIFF_SUBSCRIBERS:,} (use detnat plan diff for larger ones)."
            )
    try:
        return diff_plans(old, new).report(), None
    except DetnatError as exc:
        return None, f"The plans cannot be compared: {exc}"


def _previous(db: Any, realm: Realm, version: PlanVersion) -> PlanVersion | None:
    """The version this one took over from: the one in force just before it took effect."""
    return repo.in_force_at(db, realm.id, version.effective_from - timedelta(microseconds=1))


def _version_row(page: Page, realm: Realm, version: PlanVersion) -> dict[str, Any]:
    approval = repo.approval_of(page.db, version.id)
    return {
        "realm": realm.name,
        "version": version.seq,
        "effective_from": human(format_instant(version.effective_from)),
        "published_by": version.published_by,
        "published_at": human(format_instant(version.published_at)),
        "reason": version.reason,
        "retired": version.plan is None,
        "correction": version.correction,
        "superseded": version.superseded,
        "approved": approval is not None,
        "approved_by": approval.approved_by if approval is not None else None,
        "content_sha256": version.content_sha256,
        "own": page.actor is not None
        and audit.same_person(version.published_by, page.actor.name)
        and not realm.single_approver,
    }
