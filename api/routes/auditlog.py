"""The audit log: read it, verify it (chains and the store against them), record checkpoints."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query

from api.deps import CtxDep
from api.policy import AUDITORS, CHECKPOINTS, declare
from api.schemas import AuditEntryOut, CheckpointOut, VerifyOut
from detnat.service import audit, integrity

router = APIRouter(tags=["audit"])


@router.get("/v1/audit", response_model=list[AuditEntryOut])
@declare(AUDITORS)
def read_audit(
    ctx: CtxDep,
    case: str | None = None,
    after: Annotated[int, Query(ge=0, le=2**63 - 1)] = 0,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, object]]:
    if case is not None:
        audit.check_reference(case, field="case")
    found = audit.entries(ctx.session, case=case, after=after, limit=limit)
    return [audit.entry_json(e) for e in found]


@router.get("/v1/audit/verify", response_model=VerifyOut)
@declare(AUDITORS)
def verify_audit(ctx: CtxDep) -> dict[str, object]:
    broken, summary = integrity.verify(ctx.session)
    return {**summary, "broken": [str(b) for b in broken]}


@router.post("/v1/audit/checkpoints", status_code=201, response_model=CheckpointOut)
@declare(CHECKPOINTS)
def audit_checkpoint(ctx: CtxDep) -> dict[str, object]:
    shown = audit.checkpoint(ctx.session, ctx.actor, request_id=ctx.request_id)
    ctx.session.commit()
    return shown
