"""Realms and their plan versions: create, read, publish, approve (four eyes)."""

from __future__ import annotations

from fastapi import APIRouter

from api.deps import CtxDep
from api.policy import ADMINS, READ_PLANS, declare
from api.schemas import ApprovalIn, Int32, RealmIn, RealmOut, VersionIn, VersionOut
from detnat.planfile import plan_from_data
from detnat.service import plans
from detnat.service.times import parse_duration, parse_instant

router = APIRouter()


@router.get("/v1/realms", tags=["realms"], response_model=list[RealmOut])
@declare(READ_PLANS)
def list_realms(ctx: CtxDep) -> list[dict[str, object]]:
    return [plans.realm_json(ctx.session, r) for r in plans.list_realms(ctx.session)]


@router.post("/v1/realms", tags=["realms"], status_code=201, response_model=RealmOut)
@declare(ADMINS)
def create_realm(body: RealmIn, ctx: CtxDep) -> dict[str, object]:
    realm = plans.create_realm(
        ctx.session,
        body.name,
        session_drain=parse_duration(body.session_drain, field="session_drain"),
        by=ctx.actor,
        request_id=ctx.request_id,
        description=body.description,
        single_approver=body.single_approver,
    )
    shown = plans.realm_json(ctx.session, realm)
    ctx.session.commit()
    return shown


@router.get("/v1/realms/{realm}", tags=["realms"], response_model=RealmOut)
@declare(READ_PLANS)
def show_realm(realm: str, ctx: CtxDep) -> dict[str, object]:
    return plans.realm_json(ctx.session, plans.get_realm(ctx.session, realm))


@router.get("/v1/realms/{realm}/versions", tags=["versions"], response_model=list[VersionOut])
@declare(READ_PLANS)
def list_versions(realm: str, ctx: CtxDep) -> list[dict[str, object]]:
    row = plans.get_realm(ctx.session, realm)
    return [plans.version_json(ctx.session, row, v) for v in plans.history(ctx.session, row)]


@router.post(
    "/v1/realms/{realm}/versions", tags=["versions"], status_code=201, response_model=VersionOut
)
@declare(ADMINS)
def publish(realm: str, body: VersionIn, ctx: CtxDep) -> dict[str, object]:
    version = plans.publish(
        ctx.session,
        realm,
        plan_from_data(body.plan) if body.plan is not None else None,
        effective_from=parse_instant(body.effective_from, field="effective_from"),
        reason=body.reason,
        by=ctx.actor,
        request_id=ctx.request_id,
        correction=body.correction,
    )
    shown = plans.version_json(ctx.session, plans.get_realm(ctx.session, realm), version)
    ctx.session.commit()
    return shown


@router.get("/v1/realms/{realm}/versions/{n}", tags=["versions"], response_model=VersionOut)
@declare(READ_PLANS)
def show_version(realm: str, n: Int32, ctx: CtxDep) -> dict[str, object]:
    row = plans.get_realm(ctx.session, realm)
    version = plans.get_version(ctx.session, row, n)
    return plans.version_json(ctx.session, row, version, with_plan=True)


@router.post(
    "/v1/realms/{realm}/versions/{n}/approval",
    tags=["versions"],
    status_code=201,
    response_model=VersionOut,
)
@declare(ADMINS)
def approve(realm: str, n: Int32, body: ApprovalIn, ctx: CtxDep) -> dict[str, object]:
    plans.approve(
        ctx.session,
        realm,
        n,
        by=ctx.actor,
        request_id=ctx.request_id,
        content_sha256=body.content_sha256,
    )
    row = plans.get_realm(ctx.session, realm)
    shown = plans.version_json(ctx.session, row, plans.get_version(ctx.session, row, n))
    ctx.session.commit()
    return shown
