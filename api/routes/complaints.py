"""Complaints: upload notices (a mailbox export, mails, XARF JSON, ACNS XML, CSV), get one answer
per notice and the repeat-offender summary — one audited batch inquiry.

The files are answered whole off the event loop (:func:`detnat.service.complaints.answer_audited`),
audited and committed; only then does the answer leave: JSON (the rows, the verdict counts and the
summary) or, with ``Accept: text/csv``, the answers CSV itself (the bytes whose SHA-256 the audit
entry holds).
"""

from __future__ import annotations

import io
from typing import Annotated, Any, Literal

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import BaseModel, ConfigDict, Field
from starlette.concurrency import run_in_threadpool

from api.deps import Ctx, CtxDep, InquiriesDep, SettingsDep
from api.http import json_response
from api.policy import REVERSE, declare
from detnat import complaints as intake
from detnat.complaints import tables
from detnat.errors import InvalidInput
from detnat.service import batch_lookups, complaints, inquiry, plans, times

router = APIRouter(tags=["complaints"])
PATH = "/v1/complaints/answer"


class Offender(BaseModel):
    model_config = ConfigDict(extra="forbid")
    account: str | None = None
    subscriber: str | None = None
    complaints: int
    first_seen: str
    last_seen: str
    categories: dict[str, int]


class ComplaintsAnswered(BaseModel):
    """The answers to one upload: one row per notice (the columns of the CSV), in input order."""

    model_config = ConfigDict(extra="forbid")
    case: str
    answer_id: int = Field(description="The batch's audit entry.")
    audit_sha256: str
    complaints: int
    counts: dict[str, int] = Field(description="Complaints per verdict.")
    input_sha256: str
    output_sha256: str = Field(description="SHA-256 of the answers CSV (Accept: text/csv).")
    answers: list[dict[str, str]]
    summary: list[Offender] = Field(description="Identified complaints per account or subscriber.")


Format = Literal["auto", "xarf", "arf", "acns", "shadowserver", "csv"]


@router.post(
    PATH,
    summary="Answer uploaded complaints (mbox, .eml, XARF JSON, ACNS XML, Shadowserver or CSV)",
    response_model=ComplaintsAnswered,
    responses={200: {"content": {"text/csv": {"schema": {"type": "string"}}}}},
)
@declare(REVERSE, store="append", identity=True)
async def answer_complaints(
    request: Request,
    ctx: CtxDep,
    kept: InquiriesDep,
    settings: SettingsDep,
    files: Annotated[list[UploadFile], File(description="One or more complaint files.")],
    case: Annotated[str, Form()],
    fmt: Annotated[Format, Form(alias="format")] = "auto",
    mapping: Annotated[
        str | None, Form(alias="map", description="ip=COL,port=COL,time=COL for a CSV")
    ] = None,
    tz: Annotated[str | None, Form(description="Zone of CSV times without an offset")] = None,
    tolerance_seconds: Annotated[float, Form(ge=0, le=86400, allow_inf_nan=False)] = 0,
    realm: Annotated[str | None, Form()] = None,
    legal_basis: Annotated[str | None, Form()] = None,
    requested_by: Annotated[str | None, Form()] = None,
) -> Response:
    options = intake.Options(fmt, tables.parse_map(mapping) if mapping else None, tz or None)
    ask = inquiry.BatchAsk(
        inquiry.Identity(case, legal_basis, requested_by),
        "api",
        tz=tz or None,
        tolerance=times.tolerance_seconds(tolerance_seconds),
        realm=realm or None,
        file=", ".join(f.filename or "upload" for f in files),
    )
    uploads = [(f.filename or f"upload-{n}", await f.read()) for n, f in enumerate(files, 1)]
    limit = min(settings.max_batch_rows, settings.batch_rows_for(ctx.actor.role))
    done = await run_in_threadpool(_answer, request, ctx, kept, ask, options, uploads, limit)
    output, report, audit_sha256, rows = done
    if "text/csv" in request.headers.get("accept", ""):
        headers = {
            "X-Detnat-Complaints": str(report.rows),
            "X-Detnat-Output-Sha256": report.output_sha256,
            "X-Detnat-Answer-Id": str(report.answer_id),
        }
        return Response(output, media_type="text/csv", headers=headers)
    return json_response(
        {
            "case": case,
            "answer_id": report.answer_id,
            "audit_sha256": audit_sha256,
            "complaints": report.rows,
            "counts": report.counts,
            "input_sha256": report.input_sha256,
            "output_sha256": report.output_sha256,
            "answers": rows,
            "summary": [o.to_json() for o in report.summary()],
        }
    )


def _answer(
    request: Request,
    ctx: Ctx,
    kept: inquiry.Inquiries,
    ask: inquiry.BatchAsk,
    options: intake.Options,
    uploads: list[tuple[str, bytes]],
    limit: int,
) -> tuple[bytes, complaints.ComplaintsReport, str, list[dict[str, Any]]]:
    if not uploads or not any(data.strip() for _, data in uploads):
        raise InvalidInput("no complaints: the files are empty", field="files")
    query = batch_lookups.BatchQuery(
        snapshot=request.app.state.timelines.get(ctx.session, ctx.revision),
        now=plans.utcnow(),
        mappers=request.app.state.mappers,
        tolerance=ask.tolerance,
        realm=ask.realm,
        max_rows=limit,
    )
    chunks: list[str] = []
    rows: list[dict[str, Any]] = []
    report, entry = complaints.answer_audited(
        ctx.session,
        ctx.actor,
        ask,
        query,
        [(name, io.BytesIO(data)) for name, data in uploads],
        options,
        chunks.append,
        kept=kept,
        request_id=ctx.request_id,
        on_row=lambda row: rows.append(row.to_json()),
    )
    ctx.session.commit()  # audited before any answer leaves
    output = "".join(chunks).encode("utf-8", "surrogateescape")
    return output, report, entry.entry_sha256, rows
