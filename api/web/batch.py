"""The Batch pages: upload a CSV of complaints, get the answers and the rows that failed; or upload
a mailbox export of complaint notices (``/web/complaints``), get one answer per notice and the
repeat-offender summary.

The same act as ``POST /v1/lookups/reverse/batch`` with a CSV: the whole file is answered from one
timeline snapshot, audited (rows, counts, SHA-256 of input and output, plan versions used) and
committed before anything is shown. The result page carries the answers file itself (a ``data:``
link that ``batch.js`` turns into a download of any size), so no answer is kept on the server.
"""

from __future__ import annotations

import base64
import hashlib
import io
import re
from dataclasses import dataclass
from datetime import timedelta

from fastapi import Response
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from api.web.lookup import refused
from api.web.routing import Page, PageDep, check_lookup_fields, router
from detnat import complaints as intake
from detnat.complaints import tables
from detnat.errors import DetnatError, InvalidInput
from detnat.service import batch_lookups, complaints, inquiry, log_answers, plans

FIELDS = ("case", "tolerance", "tz", "realm", "legal_basis", "requested_by")


@dataclass
class Answered:
    output: bytes
    report: batch_lookups.BatchReport
    answer_id: int
    audit_sha256: str
    input_sha256: str


@router.get("/web/batch")
async def batch_form(page: PageDep) -> Response:
    return _render(page, _values(page), {})


@router.post("/web/batch")
async def batch(page: PageDep) -> Response:
    values = _values(page)
    errors: dict[str, str] = {}
    tolerance = _check(values, errors)
    data, filename = await _upload(
        page,
        errors,
        "Choose the CSV file of complaints (columns ip, port, time).",
        "complaints.csv",
    )
    if errors or tolerance is None:
        return _render(page, values, errors, status=422)
    try:
        answered = await run_in_threadpool(
            _answer, page, values, data, filename, tolerance, _limit(page)
        )
    except DetnatError as exc:
        status = refused(page, "POST /web/batch", exc)
        errors[exc.field if exc.field in FIELDS else "file"] = exc.message
        return _render(page, values, errors, status=status)
    report = answered.report
    counts = sorted(report.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return page.render(
        "batch_result.html",
        values=values,
        filename=filename,
        download=_download_name(filename),
        href=_href(answered.output),
        size=len(answered.output),
        report=report,
        counts=[(status, n, batch_lookups.status_words(status)) for status, n in counts],
        answer_id=answered.answer_id,
        audit_sha256=answered.audit_sha256,
        input_sha256=answered.input_sha256,
        more_bad=report.bad_row_count - len(report.bad_rows),
    )


async def _upload(
    page: Page, errors: dict[str, str], missing: str, default: str
) -> tuple[bytes, str]:
    """The uploaded file's bytes and name; ``errors["file"]`` says ``missing`` or that it is
    empty."""
    upload = page.form.get("file") if page.form is not None else None
    if not isinstance(upload, UploadFile) or not upload.filename:
        errors["file"] = missing
        return b"", default
    data = await upload.read()
    if not data.strip():
        errors["file"] = "That file is empty."
    return data, upload.filename


def _limit(page: Page) -> int:
    """The most rows the signed-in role may send in one file."""
    return min(page.settings.max_batch_rows, page.settings.batch_rows_for(page.role or ""))


def _href(output: bytes) -> str:
    """The answers file as a ``data:`` link (``batch.js`` turns it into a download)."""
    return "data:text/csv;charset=utf-8;base64," + base64.b64encode(output).decode()


def _values(page: Page) -> dict[str, str]:
    values = {name: page.field(name) for name in FIELDS}
    values["tolerance"] = values["tolerance"] or "0"
    return values


def _check(values: dict[str, str], errors: dict[str, str]) -> timedelta | None:
    return check_lookup_fields(values, errors, "batch")


def _answer(
    page: Page,
    values: dict[str, str],
    data: bytes,
    filename: str,
    tolerance: timedelta,
    limit: int,
) -> Answered:
    """Answer the whole file, audit it, commit (in a worker thread: it is CPU work)."""
    actor = page.actor
    assert actor is not None
    db = page.db
    ask = inquiry.BatchAsk(
        inquiry.Identity(
            values["case"], values["legal_basis"] or None, values["requested_by"] or None
        ),
        "web",
        tz=values["tz"] or None,
        tolerance=tolerance,
        realm=values["realm"] or None,
        file=filename,
    )
    inquiry.open_batch(db, actor, ask, kept=page.state.inquiries, request_id=page.request_id)
    query = batch_lookups.BatchQuery(
        snapshot=page.state.timelines.get(db),
        now=plans.utcnow(),
        mappers=page.state.mappers,
        tolerance=tolerance,
        realm=ask.realm,
        tz=ask.tz,
        max_rows=limit,
        logs=log_answers.BatchLogs(db, ask.realm),
    )
    if query.realm is not None and query.realm not in query.snapshot.by_name:
        raise InvalidInput(f"no realm named {query.realm!r}", field="realm")
    chunks: list[str] = []
    text = data.decode("utf-8-sig", "surrogateescape")
    report = batch_lookups.reverse_csv_at(query, io.StringIO(text, newline=""), chunks.append)
    output = "".join(chunks).encode("utf-8", "surrogateescape")
    input_sha256 = hashlib.sha256(data).hexdigest()
    entry = inquiry.record_batch(
        db,
        actor,
        ask,
        report,
        kind="text/csv",
        input_sha256=input_sha256,
        request_id=page.request_id,
    )
    db.commit()  # audited before the answers leave
    return Answered(output, report, entry.seq, entry.entry_sha256, input_sha256)


def _download_name(filename: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", filename.rsplit("/", 1)[-1]).strip("._") or "batch"
    stem = stem[:80].removesuffix(".csv")
    return f"{stem}-answers.csv"


def _render(
    page: Page, values: dict[str, str], errors: dict[str, str], *, status: int = 200
) -> Response:
    return page.render(
        "batch.html",
        status=status,
        values=values,
        errors=errors,
        limit=_limit(page),
        max_bytes=page.settings.max_batch_body_bytes,
    )


# -- complaints: a mailbox export in, the answers and the repeat offenders out --------------------

COMPLAINT_FIELDS = (*FIELDS, "format", "map")


@router.get("/web/complaints")
async def complaints_form(page: PageDep) -> Response:
    return _render_complaints(page, _complaint_values(page), {})


@router.post("/web/complaints")
async def complaints_answer(page: PageDep) -> Response:
    """The same act as ``POST /v1/complaints/answer``: answered whole, audited, committed, shown."""
    values = _complaint_values(page)
    errors: dict[str, str] = {}
    tolerance = _check(values, errors)
    if values["format"] not in intake.FORMATS:
        errors["format"] = f"Choose one of {', '.join(intake.FORMATS)}."
    data, filename = await _upload(
        page, errors, "Choose the mailbox export (mbox) or complaint file.", "complaints.mbox"
    )
    if errors or tolerance is None:
        return _render_complaints(page, values, errors, status=422)
    try:
        answered = await run_in_threadpool(
            _answer_complaints, page, values, data, filename, tolerance, _limit(page)
        )
    except DetnatError as exc:
        status = refused(page, "POST /web/complaints", exc)
        field = exc.field.lstrip("-") if exc.field else "file"
        errors[field if field in COMPLAINT_FIELDS else "file"] = exc.message
        return _render_complaints(page, values, errors, status=status)
    report = answered.report
    assert isinstance(report, complaints.ComplaintsReport)
    counts = sorted(report.counts.items(), key=lambda kv: (-kv[1], kv[0]))
    return page.render(
        "complaints_result.html",
        values=values,
        filename=filename,
        download=_download_name(filename.rsplit(".", 1)[0] + ".csv"),
        href=_href(answered.output),
        size=len(answered.output),
        report=report,
        counts=[(v, n, complaints.WORDS[complaints.Verdict(v)]) for v, n in counts],
        offenders=[o.to_json() | {"key": o.key, "kind": o.kind} for o in report.summary()],
        answer_id=answered.answer_id,
        audit_sha256=answered.audit_sha256,
        input_sha256=answered.input_sha256,
        more_bad=report.bad_row_count - len(report.bad_rows),
    )


def _complaint_values(page: Page) -> dict[str, str]:
    values = _values(page)
    values["format"] = page.field("format") or "auto"
    values["map"] = page.field("map")
    return values


def _answer_complaints(
    page: Page,
    values: dict[str, str],
    data: bytes,
    filename: str,
    tolerance: timedelta,
    limit: int,
) -> Answered:
    actor = page.actor
    assert actor is not None
    db = page.db
    options = intake.Options(
        values["format"],
        tables.parse_map(values["map"]) if values["map"] else None,
        values["tz"] or None,
    )
    ask = inquiry.BatchAsk(
        inquiry.Identity(
            values["case"], values["legal_basis"] or None, values["requested_by"] or None
        ),
        "web",
        tz=values["tz"] or None,
        tolerance=tolerance,
        realm=values["realm"] or None,
        file=filename,
    )
    query = batch_lookups.BatchQuery(
        snapshot=page.state.timelines.get(db),
        now=plans.utcnow(),
        mappers=page.state.mappers,
        tolerance=tolerance,
        realm=ask.realm,
        max_rows=limit,
    )
    chunks: list[str] = []
    report, entry = complaints.answer_audited(
        db,
        actor,
        ask,
        query,
        [(filename, io.BytesIO(data))],
        options,
        chunks.append,
        kept=page.state.inquiries,
        request_id=page.request_id,
    )
    db.commit()  # audited before the answers leave
    output = "".join(chunks).encode("utf-8", "surrogateescape")
    return Answered(output, report, entry.seq, entry.entry_sha256, report.input_sha256)


def _render_complaints(
    page: Page, values: dict[str, str], errors: dict[str, str], *, status: int = 200
) -> Response:
    return page.render(
        "complaints.html",
        status=status,
        values=values,
        errors=errors,
        formats=intake.FORMATS,
        limit=_limit(page),
        max_bytes=page.settings.max_batch_body_bytes,
    )
