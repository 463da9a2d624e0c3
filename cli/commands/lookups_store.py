"""``forward`` / ``reverse`` against the store at time T: through the audited inquiries.

Each function answers for :mod:`cli.commands.lookups` and returns the exit code. Every answer is
in the audit log (committed) before it is printed; a batch's output leaves (file or stdout) only
after its audit entry is in.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from cli import runtime
from cli.output import EXIT_INVALID, EXIT_OK, emit_json, error_json, fail_line, ranges_text
from detnat.engine import Status
from detnat.errors import InvalidInput

if TYPE_CHECKING:
    import asyncio

    from detnat.service import audit, inquiry, mappers, timelines, times
    from detnat.store.async_db import AsyncStore
else:  # loaded when a store command runs: `--plan` commands start without SQLAlchemy
    audit = runtime.lazy_module("detnat.service.audit")
    inquiry = runtime.lazy_module("detnat.service.inquiry")
    mappers = runtime.lazy_module("detnat.service.mappers")
    timelines = runtime.lazy_module("detnat.service.timelines")
    times = runtime.lazy_module("detnat.service.times")


def _tolerance(text: str | None) -> timedelta:
    return times.check_tolerance(times.parse_duration(text)) if text else timedelta(0)


def _identity(
    case: str | None, legal_basis: str | None, requested_by: str | None
) -> inquiry.Identity:
    if case is None:
        raise InvalidInput(
            "required for lookups against the store (a case reference)", field="--case"
        )
    return inquiry.Identity(case, legal_basis, requested_by).checked("cli")


def _kept() -> inquiry.Inquiries:
    # Fresh for each command: caches keyed by version ids and revisions belong to one database.
    return inquiry.Inquiries(mappers.MapperCache(), audit.CaseOwners())


def _answer_line(query: str, answer: dict[str, object]) -> str:
    status = answer["status"]
    if status == Status.MATCH:
        ranges = answer["port_ranges"]
        assert isinstance(ranges, list)
        line = (
            f"{query}  match  {answer['subscriber']}  (holds {answer['public_ip']} ports "
            f"{ranges_text(ranges)})"
        )
    else:
        line = f"{query}  {status}  {answer.get('reason', '')}"
    if "account" in answer:  # the subscriber directory (docs/directory.md)
        held = answer["account"]
        if not isinstance(held, dict):
            line += f"\n    account: none ({answer.get('account_reason')})"
        else:
            names = sorted({str(h["account"]) for h in held["held"]})
            line += f"\n    account: {held['status']} {', '.join(names)}"
    candidates = answer.get("candidates") or []
    assert isinstance(candidates, list)
    for c in candidates:
        who = c.get("subscriber") or c.get("reason", "")
        line += (
            f"\n    {c['realm']} v{c['version']} ({str(c['content_sha256'])[:12]}) "
            f"{c['status']} {who}"
        )
    return line


async def _ask_each(
    actor: audit.Actor,
    queries: list[str],
    asked_of: Callable[[str], inquiry.ReverseQuery | inquiry.ForwardQuery],
    show: Callable[[str, inquiry.Answered], None],
    *,
    as_json: bool,
) -> int:
    """Each query: asked (audited, committed), then shown; a bad one is a line and exit 2.

    The API's lookup path (:func:`~detnat.service.inquiry.ask_async`), on psycopg alone: the
    snapshot read in one repeatable-read transaction, the audit entry written by the store's
    writer and committed before the answer is shown. A lookup is a new process, and SQLAlchemy
    would be a third of its start-up (``bench/README.md``)."""
    from detnat.errors import Unavailable
    from detnat.service.clock import utcnow
    from detnat.settings import get_settings
    from detnat.store.async_db import AsyncStore, Stale
    from detnat.store.embedded import database_url

    url = database_url(get_settings())
    kept, snapshots, failed = _kept(), timelines.TimelineCache(), False
    snapshot = _snapshot(url, snapshots)
    store = AsyncStore(url, 1)
    try:
        for query in queries:
            try:
                asked = asked_of(query)
                for _ in range(inquiry.STALE_TRIES):
                    try:
                        answered = await inquiry.ask_async(
                            store,
                            actor,
                            asked,
                            snapshot=snapshot,
                            kept=kept,
                            now=utcnow(),
                            request_id=runtime.request_id(),
                        )
                        break
                    except Stale:
                        snapshot = _snapshot(url, snapshots)
                else:
                    raise Unavailable(
                        "the store kept changing while this lookup was answered; try again"
                    )
            except InvalidInput as exc:
                failed = True
                fail_line(exc)
                if as_json:
                    emit_json(error_json(query, exc))
                continue
            show(query, answered)  # its audit entry is committed
    finally:
        await store.close()
    return EXIT_INVALID if failed else EXIT_OK


def _snapshot(url: str, snapshots: timelines.TimelineCache) -> timelines.Timelines:
    """The timeline snapshot, read in one repeatable-read transaction (the revision and the
    rows it names alike)."""
    import psycopg

    from detnat.store.lean import libpq_url

    with psycopg.connect(libpq_url(url), connect_timeout=5) as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        return snapshots.load(conn)


def forward_at(
    actor: audit.Actor,
    queries: list[str],
    *,
    at: str,
    tz: str | None,
    realm: str | None,
    case: str | None,
    as_json: bool,
    legal_basis: str | None = None,
    requested_by: str | None = None,
) -> int:
    identity = _identity(case, legal_basis, requested_by)
    times.parse_instant(at, tz=tz, field="--at")

    def show(query: str, answered: inquiry.Answered) -> None:
        answer = answered.to_json()
        if as_json:
            emit_json(answer)
        elif answer["status"] == Status.MATCH:
            ranges = answer["port_ranges"]
            assert isinstance(ranges, list)
            print(f"{answer['subscriber']}  {answer['public_ip']}  ports {ranges_text(ranges)}")
        else:
            print(_answer_line(query, answer))

    import asyncio  # a store command's: `--plan` lookups start without it

    return asyncio.run(
        _ask_each(
            actor,
            queries,
            lambda query: inquiry.ForwardQuery(query, at, identity, "cli", tz=tz, realm=realm),
            show,
            as_json=as_json,
        )
    )


def reverse_at(
    actor: audit.Actor,
    queries: list[str],
    *,
    at: str,
    tz: str | None,
    tolerance: str | None,
    realm: str | None,
    case: str | None,
    as_json: bool,
    legal_basis: str | None = None,
    requested_by: str | None = None,
    evidence_file: Path | None = None,
    force: bool = False,
) -> int:
    times.parse_instant(at, tz=tz, field="--at")
    window = _tolerance(tolerance)
    identity = _identity(case, legal_basis, requested_by)
    if evidence_file is not None:
        if len(queries) != 1:
            raise InvalidInput("one query per evidence file", field="--evidence")
        runtime.refuse_existing(evidence_file, force, hint=runtime.KEPT_HINT)

    def asked_of(query: str) -> inquiry.ReverseQuery:
        address, port = runtime.parse_endpoint(query)
        return inquiry.ReverseQuery(
            address, port, at, identity, "cli", tz=tz, tolerance=window, realm=realm
        )

    def show(query: str, answered: inquiry.Answered) -> None:
        if evidence_file is not None:
            from detnat.service import evidence

            with runtime.store_session() as session:
                document = evidence.build(session, answered.answer_id)
            text = json.dumps(document, indent=2) + "\n"
            runtime.write_new(evidence_file, text, force=force, hint=runtime.KEPT_HINT)
        answer = answered.to_json()
        if as_json:
            emit_json({"query": query, **answer})
        else:
            print(_answer_line(query, answer))

    import asyncio

    return asyncio.run(_ask_each(actor, queries, asked_of, show, as_json=as_json))


def reverse_batch_at(
    actor: audit.Actor,
    batch: Path,
    output: Path | None,
    *,
    tz: str | None,
    tolerance: str | None,
    realm: str | None,
    case: str | None,
    as_json: bool,
    force: bool,
) -> int:
    """Rows ``ip,port,time`` against the store, streamed; adds status,reason,subscriber.

    One snapshot of the timelines for the whole batch; rows grouped by plan version and answered
    with the vectorised engine (:mod:`detnat.service.batch_lookups`). On psycopg alone, as the
    single lookups (:func:`_ask_each`): the case claimed (a new one's ``case.open`` committed)
    before any row is read, the snapshot read in one repeatable-read transaction, the batch's
    entry written by the store's writer and committed before the output leaves. SQLAlchemy is
    loaded only for a store that holds logs (their batch queries run on a session).
    """
    import asyncio  # a store command's: `--plan` batches start without it
    from concurrent.futures import ThreadPoolExecutor

    from detnat.service.clock import utcnow
    from detnat.settings import get_settings
    from detnat.store.async_db import AsyncStore
    from detnat.store.embedded import database_url

    ask = inquiry.BatchAsk(
        _identity(case, None, None),
        "cli",
        tz=tz,
        tolerance=_tolerance(tolerance),
        realm=realm,
        file=batch.name,
    )
    try:
        raw = batch.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read: {exc.strerror}", field=str(batch)) from None
    url = database_url(get_settings())
    kept, snapshots = _kept(), timelines.TimelineCache()
    with raw, asyncio.Runner() as loop, ExitStack() as held:
        store = AsyncStore(url, 1)
        held.callback(loop.run, store.close())
        # The store's side of the start-up (the snapshot, the case claimed at its revision and
        # committed, whether the store holds logs: mostly waiting for Postgres) on a thread of its
        # own, while this one imports the batch's modules (numpy ...); no row is read before it
        # is done.
        with ThreadPoolExecutor(1, thread_name_prefix="detnat-open") as opener:
            opened = opener.submit(_open_batch, loop, store, actor, ask, kept, url, snapshots)
            from detnat.service import batch_lookups

            has_logs, snapshot = opened.result()
        total = os.fstat(raw.fileno()).st_size
        counted = _Counted(raw)
        blocks = batch_lookups.file_blocks(io.BufferedReader(counted))
        query = batch_lookups.BatchQuery(
            snapshot=snapshot,
            now=utcnow(),
            mappers=kept.mappers,
            tolerance=ask.tolerance,
            realm=realm,
            tz=tz,
            logs=_batch_logs(held, realm) if has_logs else None,
        )
        # Nothing leaves before the audit entry is in: the file is renamed into place, or the
        # rows copied to stdout, only after `record_batch_async` returned (committed).
        with _progress(total) as progress, _held_output(output, force) as sink:
            report = batch_lookups.reverse_csv_blocks(
                query, blocks, sink.write, progress=lambda _: progress(counted.done)
            )
            loop.run(
                inquiry.record_batch_async(
                    store,
                    actor,
                    ask,
                    report,
                    kind="text/csv",
                    input_sha256=counted.sha256.hexdigest(),
                    request_id=runtime.request_id(),
                )
            )
    runtime.print_bad_rows(batch, report.bad_rows, report.bad_row_count)
    summary = {
        "rows": report.rows,
        "counts": report.counts,
        "bad_rows": report.bad_row_count,
        "case": case,
        "output_sha256": report.output_sha256,
    }
    if as_json and output is not None:
        emit_json(summary)
    else:
        counts = ", ".join(f"{n} {status}" for status, n in sorted(report.counts.items()))
        print(f"detnat: {report.rows} rows: {counts or 'nothing'}", file=sys.stderr)
    return EXIT_INVALID if report.bad_row_count else EXIT_OK


def _open_batch(
    loop: asyncio.Runner,
    store: AsyncStore,
    actor: audit.Actor,
    ask: inquiry.BatchAsk,
    kept: inquiry.Inquiries,
    url: str,
    snapshots: timelines.TimelineCache,
) -> tuple[bool, timelines.Timelines]:
    """The timeline snapshot; the batch's case claimed (committed) while the store is still at
    its revision (else the snapshot is read again, as a single lookup's); whether the store
    holds logs the batch may read."""
    from detnat.errors import Unavailable
    from detnat.store import logs as log_rows
    from detnat.store.async_db import Stale

    async def claim(revision: int) -> bool:
        await inquiry.open_batch_async(
            store, actor, ask, kept=kept, request_id=runtime.request_id(), revision=revision
        )
        async with store.connection() as conn:
            return await log_rows.has_logs_async(conn, ask.realm)

    for _ in range(inquiry.STALE_TRIES):
        snapshot = _snapshot(url, snapshots)
        try:
            return loop.run(claim(snapshot.revision)), snapshot
        except Stale:
            continue
    raise Unavailable("the store kept changing while this batch was opened; try again")


def _batch_logs(held: ExitStack, realm: str | None) -> Any:
    """The NAT's own logs for the batch (:class:`~detnat.service.log_answers.BatchLogs`), on a
    session held until the batch ends: only a store with logs loads their modules."""
    from detnat.service import log_answers

    return log_answers.BatchLogs(held.enter_context(runtime.store_session()), realm)


@contextmanager
def _held_output(output: Path | None, force: bool) -> Iterator[BinaryIO]:
    """Where the batch's rows go (bytes), held back until the block ends: ``output`` (a new file,
    see :func:`cli.runtime.new_binary_file`), or a temporary file copied to stdout."""
    if output is not None:
        with runtime.new_binary_file(output, force=force) as sink:
            yield sink
        return
    with tempfile.TemporaryFile() as held:
        yield held
        held.seek(0)
        sys.stdout.flush()
        shutil.copyfileobj(held, sys.stdout.buffer)
    sys.stdout.flush()


class _Counted(io.RawIOBase):
    """A binary file that counts and hashes the bytes read from it."""

    def __init__(self, raw: BinaryIO) -> None:
        self.raw, self.done = raw, 0
        self.sha256 = hashlib.sha256()

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        n = int(self.raw.readinto(buffer) or 0)  # type: ignore[attr-defined]
        self.done += n
        self.sha256.update(memoryview(buffer)[:n])
        return n


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("reverse", total=total)
        yield lambda done: bar.update(task, completed=done)
