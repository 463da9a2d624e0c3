"""Identity lookups: who held A:P at T (single, batch), what did S get at T — one inquiry each.

Each route parses its request into a typed question, calls the inquiry of
:mod:`detnat.service.inquiry` (which checks the case, answers and writes the audit entry), and
renders the audited answer. Single lookups run on the event loop with an async connection: a few
sub-millisecond queries and arithmetic cost less than the thread hops of a sync route. A batch is
answered whole off the loop, audited and committed, and only then streamed.
"""

from __future__ import annotations

import hashlib
import io
import json
from typing import Annotated, Any

from fastapi import APIRouter, FastAPI, Query, Request
from fastapi.responses import Response, StreamingResponse
from starlette.concurrency import run_in_threadpool

from api.deps import Ctx, CtxDep, InquiriesDep, Lookup, SettingsDep
from api.http import json_response, problem
from api.policy import FORWARD, REVERSE, declare
from api.schemas import (
    AuditedForwardAnswer,
    AuditedReverseAnswer,
    ForwardIn,
    ReverseIn,
    _Identity,
)
from detnat.engine import Status
from detnat.errors import Unavailable
from detnat.service import batch_lookups, inquiry, log_answers, plans, times
from detnat.store.async_db import Stale

router = APIRouter(tags=["lookups"])
BATCH_PATH = "/v1/lookups/reverse/batch"

BATCH_BODY: dict[str, Any] = {
    "required": True,
    "content": {
        "text/csv": {
            "schema": {"type": "string"},
            "example": "ip,port,time\n192.0.2.1,1100,2026-03-14T21:07:33+01:00\n",
        },
        "application/json": {
            "schema": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "ip": {"type": "string"},
                        "port": {"type": "integer"},
                        "time": {"type": "string"},
                    },
                    "required": ["ip", "port", "time"],
                    "additionalProperties": False,
                },
            },
            "example": [{"ip": "192.0.2.1", "port": 1100, "time": "2026-03-14T21:07:33+01:00"}],
        },
    },
}


# A batch answers in the format it was sent: CSV with the input columns plus status,reason,
# subscriber; JSON with one object per item (the item's ip, port, time as given).
BATCH_ANSWERS: dict[str, Any] = {
    "description": "The answers, in the format of the request",
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {
            "schema": {
                "type": "array",
                "items": {
                    "type": "object",
                    "properties": {
                        "ip": {},
                        "port": {},
                        "time": {},
                        "status": {"type": "string", "enum": [*Status, batch_lookups.ERROR]},
                        "reason": {"type": "string"},
                        "subscriber": {"type": "string"},
                        "error": {"type": "string", "description": "why the item is no query"},
                    },
                    "required": ["status"],
                    "additionalProperties": False,
                },
            }
        },
    },
}


# The answers are documented (response_model) but not validated per request: the route returns
# its JSON itself, and the tests hold every answer to the schema (tests/store/test_contract.py).
@router.post("/v1/lookups/reverse", response_model=AuditedReverseAnswer)
@declare(REVERSE, store="lookup", identity=True)
async def reverse(body: ReverseIn, request: Request) -> Response:
    return json_response(await _asked(reverse_query(body), request))


@router.post("/v1/lookups/forward", response_model=AuditedForwardAnswer)
@declare(FORWARD, store="lookup", identity=True)
async def forward(body: ForwardIn, request: Request) -> Response:
    return json_response(await _asked(forward_query(body), request))


def reverse_query(body: ReverseIn) -> inquiry.ReverseQuery:
    return inquiry.ReverseQuery(
        body.ip,
        body.port,
        body.time,
        _identity(body),
        "api",
        tz=body.tz,
        tolerance=times.tolerance_seconds(body.tolerance_seconds),
        realm=body.realm,
    )


def forward_query(body: ForwardIn) -> inquiry.ForwardQuery:
    return inquiry.ForwardQuery(
        body.subscriber, body.time, _identity(body), "api", tz=body.tz, realm=body.realm
    )


@router.post(
    BATCH_PATH,
    summary="Many reverse lookups at once (CSV or JSON), answered in the same format",
    openapi_extra={"requestBody": BATCH_BODY},
    responses={200: BATCH_ANSWERS},
    response_model=None,
)
@declare(REVERSE, store="append", identity=True)
async def reverse_batch(
    request: Request,
    ctx: CtxDep,
    kept: InquiriesDep,
    settings: SettingsDep,
    case: str,
    tolerance_seconds: Annotated[float, Query(ge=0, le=86400, allow_inf_nan=False)] = 0,
    realm: str | None = None,
    legal_basis: str | None = None,
    requested_by: str | None = None,
) -> Response:
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("text/csv", "application/json"):
        return problem(
            415,
            "unsupported_media_type",
            "send the batch as text/csv (columns ip,port,time) or application/json "
            "(an array of {ip, port, time})",
        )
    ask = inquiry.BatchAsk(
        inquiry.Identity(case, legal_basis, requested_by),
        "api",
        tolerance=times.tolerance_seconds(tolerance_seconds),
        realm=realm,
    )
    await run_in_threadpool(
        inquiry.open_batch, ctx.session, ctx.actor, ask, kept=kept, request_id=ctx.request_id
    )
    limit = min(settings.max_batch_rows, settings.batch_rows_for(ctx.actor.role))
    body = await request.body()
    payload, report = await run_in_threadpool(_run_batch, request.app, ctx, body, kind, ask, limit)
    headers = {
        "X-Detnat-Rows": str(report.rows),
        "X-Detnat-Bad-Rows": str(report.bad_row_count),
        "X-Detnat-Output-Sha256": report.output_sha256,
        "X-Detnat-Answer-Id": str(report.answer_id),
    }
    return StreamingResponse(iter(payload), media_type=kind, headers=headers)


async def _asked(
    asked: inquiry.ReverseQuery | inquiry.ForwardQuery, request: Request
) -> dict[str, object]:
    """The guard's lookup and the app's inquiries are read off the request, not taken as FastAPI
    dependencies: each dependency costs a solving pass per request on the hottest route."""
    return await ask(asked, request.state.lookup, request.app.state.inquiries)


async def ask(
    asked: inquiry.ReverseQuery | inquiry.ForwardQuery, look: Lookup, kept: inquiry.Inquiries
) -> dict[str, object]:
    """Ask on the async store; the answer (as it leaves) is returned once its entry's group has
    committed. If the store moved on before the entry was written, ask again at its new revision.
    The route above and :class:`api.lookup_path.LookupPath` both answer through this."""
    for _ in range(inquiry.STALE_TRIES):
        try:
            answered = await inquiry.ask_async(
                look.store,
                look.actor,
                asked,
                snapshot=look.snapshot,
                kept=kept,
                now=plans.utcnow(),
                request_id=look.request_id,
            )
        except Stale as moved:
            look = await look.at(moved.revision)
        else:
            return answered.to_json()
    raise Unavailable("the store kept changing while this lookup was answered; try again")


def _identity(body: _Identity) -> inquiry.Identity:
    return inquiry.Identity(body.case, body.legal_basis, body.requested_by)


def _run_batch(
    app: FastAPI, ctx: Ctx, body: bytes, kind: str, ask: inquiry.BatchAsk, limit: int
) -> tuple[list[bytes], batch_lookups.BatchReport]:
    """Answer the whole batch, audit it (rows, input and output SHA-256), commit; then send."""
    query = batch_lookups.BatchQuery(
        snapshot=app.state.timelines.get(ctx.session, ctx.revision),
        now=plans.utcnow(),
        mappers=app.state.mappers,
        tolerance=ask.tolerance,
        realm=ask.realm,
        max_rows=limit,
        logs=log_answers.BatchLogs(ctx.session, ask.realm),
    )
    chunks: list[bytes] = []
    if kind == "application/json":
        answers, report = batch_lookups.reverse_json_at(query, batch_lookups.load_json_rows(body))
        data = json.dumps(answers, separators=(",", ":"), ensure_ascii=False).encode()
        report.output_sha256 = hashlib.sha256(data).hexdigest()
        chunks.append(data)
    else:
        text = body.decode("utf-8-sig", "surrogateescape")
        report = batch_lookups.reverse_csv_at(
            query,
            io.StringIO(text, newline=""),
            lambda part: chunks.append(part.encode("utf-8", "surrogateescape")),
        )
    inquiry.record_batch(
        ctx.session,
        ctx.actor,
        ask,
        report,
        kind=kind,
        input_sha256=hashlib.sha256(body).hexdigest(),
        request_id=ctx.request_id,
    )
    ctx.session.commit()
    ctx.session.close()  # nothing touches the database while the answer streams
    return chunks, report
