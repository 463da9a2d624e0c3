"""Answers already given: one answer, its evidence file, a case's answers — each reading audited.

An abuse token reads only the answers of cases it opened; any other is "not found", exactly like
an answer that does not exist (BOLA).
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from api.deps import Ctx, CtxDep
from api.policy import ANSWERS, EVIDENCE, declare
from api.schemas import AnswerId, AnswerOut, CaseAnswerOut, EvidenceFileOut
from detnat.errors import NotFound
from detnat.service import audit, evidence
from detnat.service.times import format_instant
from detnat.store.models import AuditEntry

router = APIRouter(tags=["answers"])


@router.get("/v1/answers/{answer_id}", response_model=AnswerOut)
@declare(ANSWERS, store="append", identity=True)
def show_answer(answer_id: AnswerId, ctx: CtxDep) -> dict[str, object]:
    entry = _readable(ctx, answer_id)
    _record(ctx, "answer.read", {"answer_id": answer_id}, entry.case_ref)
    return {
        "answer_id": entry.seq,
        "case": entry.case_ref,
        "at": format_instant(entry.at),
        "action": entry.action,
        "query": entry.detail.get("query"),
        "answer": entry.detail.get("answer", entry.detail.get("batch")),
        "audit_sha256": entry.entry_sha256,
    }


@router.get("/v1/answers/{answer_id}/evidence", response_model=EvidenceFileOut)
@declare(EVIDENCE, store="append", identity=True)
def answer_evidence(answer_id: AnswerId, ctx: CtxDep) -> dict[str, Any]:
    entry = _readable(ctx, answer_id)
    document = evidence.build(ctx.session, answer_id)
    _record(ctx, "evidence.read", {"answer_id": answer_id}, entry.case_ref)
    return document


@router.get("/v1/cases/{case}/answers", response_model=list[CaseAnswerOut])
@declare(ANSWERS, identity=True)
def case_answers(case: str, ctx: CtxDep) -> list[dict[str, object]]:
    audit.check_reference(case, field="case")
    if not audit.may_read_case(ctx.session, ctx.actor, case):
        raise NotFound(f"no case {case!r}", field="case")
    _record(ctx, "case.read", {"case": case}, case)
    return [
        {
            "answer_id": e.seq,
            "at": format_instant(e.at),
            "action": e.action,
            "status": e.status,
            "actor": e.actor,
        }
        for e in audit.entries(ctx.session, case=case)
        if e.action.startswith("lookup.")
    ]


def _readable(ctx: Ctx, answer_id: int) -> AuditEntry:
    """The audit entry of an answer the caller may read (else 404: no hint that it exists)."""
    entry = evidence.lookup_entry(ctx.session, answer_id)
    if not audit.may_read_case(ctx.session, ctx.actor, entry.case_ref):
        raise NotFound(f"no answer {answer_id}", field="answer_id")
    return entry


def _record(ctx: Ctx, action: str, detail: dict[str, Any], case: str | None) -> None:
    """Record the reading, committed before what was read leaves."""
    audit.record(
        ctx.session, ctx.actor, action, request_id=ctx.request_id, detail=detail, case=case
    )
    ctx.session.commit()
