"""CLI commands against the plan store (realms, publishing, lookups at time T).

``register(app, plan_app)`` adds the store's commands; ``forward_at`` / ``reverse_at`` /
``reverse_batch_at`` answer lookups at an instant and return the exit code. Every command opens one
unit of work and commits it at the end (the edge commits; the service only flushes).
"""

from __future__ import annotations

import getpass
import hashlib
import io
import json
import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, BinaryIO, TypeVar

import typer

from cli.output import (
    EXIT_INVALID,
    EXIT_OK,
    emit_json,
    error_json,
    fail_line,
    guarded,
    lazy_module,
    ranges_text,
)
from detnat.errors import DetnatError, InvalidInput, QueryError, Unavailable
from detnat.planfile import read_plan
from detnat.settings import get_settings

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from detnat.service import audit, inquiry, lookups, plans, times
else:  # loaded when a store command runs: `--plan` commands start without SQLAlchemy
    audit = lazy_module("detnat.service.audit")
    inquiry = lazy_module("detnat.service.inquiry")
    lookups = lazy_module("detnat.service.lookups")
    plans = lazy_module("detnat.service.plans")
    times = lazy_module("detnat.service.times")

R = TypeVar("R")
JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (one object per line).")]


@contextmanager
def store_session() -> Iterator[Session]:
    """One unit of work on the configured (or embedded) store, for one CLI command."""
    from sqlalchemy.exc import OperationalError

    from detnat.store.db import make_engine, make_sessions, unit_of_work
    from detnat.store.embedded import database_url

    engine = make_engine(database_url(get_settings()), pool_size=1)
    try:
        with unit_of_work(make_sessions(engine)) as session:
            yield session
    except OperationalError as exc:
        raise Unavailable(f"the database is unreachable: {str(exc.orig).strip()}") from None
    finally:
        engine.dispose()


def _tolerance(text: str | None) -> timedelta:
    return times.check_tolerance(times.parse_duration(text)) if text else timedelta(0)


def _answer_line(query: str, answer: dict[str, object]) -> str:
    status = answer["status"]
    if status == "match":
        ranges = answer["port_ranges"]
        assert isinstance(ranges, list)
        line = (
            f"{query}  match  {answer['subscriber']}  (holds {answer['public_ip']} ports "
            f"{ranges_text(ranges)})"
        )
    else:
        line = f"{query}  {status}  {answer.get('reason', '')}"
    candidates = answer.get("candidates") or []
    assert isinstance(candidates, list)
    for c in candidates:
        who = c.get("subscriber") or c.get("reason", "")
        line += (
            f"\n    {c['realm']} v{c['version']} ({str(c['content_sha256'])[:12]}) "
            f"{c['status']} {who}"
        )
    return line


OPERATOR: dict[str, str] = {}  # "name": set by ``detnat --as NAME`` (default: the OS user)


def operator() -> audit.Actor:
    """The local operator: admin rights, recorded under ``--as NAME`` or the OS user name."""
    return audit.local_operator(OPERATOR.get("name") or getpass.getuser())


def _request_id() -> str:
    return "cli-" + uuid.uuid4().hex


def _identity(
    case: str | None, legal_basis: str | None, requested_by: str | None
) -> inquiry.Identity:
    if case is None:
        raise InvalidInput(
            "required for lookups against the store (a case reference)", field="--case"
        )
    return inquiry.Identity(case, legal_basis, requested_by).checked("cli")


def _kept() -> inquiry.Inquiries:
    return inquiry.Inquiries(lookups.DEFAULT_MAPPERS, audit.CaseOwners())


def forward_at(
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
    actor, kept = operator(), _kept()
    failed = False
    with store_session() as session:
        for query in queries:
            asked = inquiry.ForwardQuery(query, at, identity, "cli", tz=tz, realm=realm)
            try:
                answered = inquiry.forward(
                    session,
                    actor,
                    asked,
                    snapshot=lookups.DEFAULT_TIMELINES.get(session),
                    kept=kept,
                    now=plans.utcnow(),
                    request_id=_request_id(),
                )
            except QueryError as exc:
                session.rollback()
                failed = True
                fail_line(exc)
                if as_json:
                    emit_json(error_json(query, exc))
                continue
            session.commit()  # audited before the answer leaves
            answer = answered.to_json()
            if as_json:
                emit_json(answer)
            elif answer["status"] == "match":
                ranges = answer["port_ranges"]
                assert isinstance(ranges, list)
                print(f"{answer['subscriber']}  {answer['public_ip']}  ports {ranges_text(ranges)}")
            else:
                print(_answer_line(query, answer))
    return EXIT_INVALID if failed else EXIT_OK


def reverse_at(
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
    from cli.main import parse_endpoint

    times.parse_instant(at, tz=tz, field="--at")
    window = _tolerance(tolerance)
    identity = _identity(case, legal_basis, requested_by)
    if evidence_file is not None:
        if len(queries) != 1:
            raise InvalidInput("one query per evidence file", field="--evidence")
        _refuse_existing(evidence_file, force)
    actor, kept = operator(), _kept()
    failed = False
    with store_session() as session:
        for query in queries:
            try:
                address, port = parse_endpoint(query)
                asked = inquiry.ReverseQuery(
                    address, port, at, identity, "cli", tz=tz, tolerance=window, realm=realm
                )
                answered = inquiry.reverse(
                    session,
                    actor,
                    asked,
                    snapshot=lookups.DEFAULT_TIMELINES.get(session),
                    kept=kept,
                    now=plans.utcnow(),
                    request_id=_request_id(),
                )
            except InvalidInput as exc:
                session.rollback()
                failed = True
                fail_line(exc)
                if as_json:
                    emit_json(error_json(query, exc))
                continue
            session.commit()  # audited before the answer leaves
            if evidence_file is not None:
                from detnat.service import evidence

                document = evidence.build(session, answered.answer_id)
                _write_new(evidence_file, json.dumps(document, indent=2))
            answer = answered.to_json()
            if as_json:
                emit_json({"query": query, **answer})
            else:
                print(_answer_line(query, answer))
    return EXIT_INVALID if failed else EXIT_OK


def _refuse_existing(path: Path, force: bool) -> None:
    if path.exists() and not force:
        raise InvalidInput(
            "already exists; evidence is never overwritten silently", field=str(path)
        )


def _write_new(path: Path, text: str) -> None:
    """Write beside ``path`` and rename into place: never a half-written file."""
    fd, tmp = tempfile.mkstemp(dir=path.parent or Path("."), prefix=".detnat-")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text + "\n")
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise


def reverse_batch_at(
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
    with the vectorised engine (:mod:`detnat.service.batch_lookups`).
    """
    from detnat.service import batch_lookups

    ask = inquiry.BatchAsk(
        _identity(case, None, None),
        "cli",
        tz=tz,
        tolerance=_tolerance(tolerance),
        realm=realm,
        file=batch.name,
    )
    actor = operator()
    try:
        raw = batch.open("rb")
    except OSError as exc:
        raise InvalidInput(f"cannot read: {exc.strerror}", field=str(batch)) from None
    with raw, store_session() as session:
        inquiry.open_batch(session, actor, ask, kept=_kept(), request_id=_request_id())
        total = os.fstat(raw.fileno()).st_size
        counted = _Counted(raw)
        lines = batch_lookups.bounded_lines(
            io.TextIOWrapper(
                io.BufferedReader(counted),
                encoding="utf-8-sig",
                errors="surrogateescape",
                newline="",
            )
        )
        query = batch_lookups.BatchQuery(
            snapshot=lookups.DEFAULT_TIMELINES.get(session),
            now=plans.utcnow(),
            mappers=lookups.DEFAULT_MAPPERS,
            tolerance=ask.tolerance,
            realm=realm,
            tz=tz,
        )
        report = _write_atomically(
            output,
            lambda write, progress: batch_lookups.reverse_csv_at(
                query, lines, write, progress=lambda _: progress(counted.done)
            ),
            total,
            before_commit=lambda report: _audit_batch(session, actor, ask, counted, report),
        )
    for bad in report.bad_rows[:20]:
        print(f"detnat: {batch}:{bad.line}: {bad.message}", file=sys.stderr)
    if report.bad_row_count > 20:
        print(f"detnat: ... and {report.bad_row_count - 20} more bad rows", file=sys.stderr)
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


def _audit_batch(
    session: Session, actor: audit.Actor, ask: inquiry.BatchAsk, counted: _Counted, report: Any
) -> None:
    inquiry.record_batch(
        session,
        actor,
        ask,
        report,
        kind="text/csv",
        input_sha256=counted.sha256.hexdigest(),
        request_id=_request_id(),
    )
    session.commit()


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


def _write_atomically(
    output: Path | None,
    run: Callable[[Callable[[str], object], Callable[[int], None]], R],
    total: int,
    before_commit: Callable[[R], None],
) -> R:
    """Run ``run(write, progress)`` into a temporary file, audit it (``before_commit``), then
    move it to ``output`` or copy it to stdout: nothing leaves before the audit entry is in."""
    with _progress(total) as progress:
        fd, tmp_name = tempfile.mkstemp(
            dir=output.parent if output is not None else None, prefix=".detnat-"
        )
        try:
            with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape", newline="") as f:
                result = run(f.write, progress)
            before_commit(result)
            if output is None:
                with open(tmp_name, "rb") as f:
                    shutil.copyfileobj(f, sys.stdout.buffer)
                sys.stdout.flush()
                os.unlink(tmp_name)
                return result
            os.replace(tmp_name, output)
        except BaseException:
            os.unlink(tmp_name)
            raise
        return result


@contextmanager
def _progress(total: int) -> Iterator[Callable[[int], None]]:
    if not sys.stderr.isatty():
        yield lambda done: None
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task("reverse", total=total)
        yield lambda done: bar.update(task, completed=done)


def register(app: typer.Typer, plan_app: typer.Typer) -> None:
    """Add the store's commands (realm, db, serve, plan publish/history/show)."""
    realm_app = typer.Typer(help="NAT realms: each has its own timeline of plan versions.")
    db_app = typer.Typer(help="The database of the plan store.")
    app.add_typer(realm_app, name="realm")
    app.add_typer(db_app, name="db")

    @realm_app.command("create")
    @guarded
    def realm_create(
        name: Annotated[str, typer.Argument(help="Realm name, e.g. aftr-fra-1.")],
        session_drain: Annotated[
            str, typer.Option("--session-drain", help="How long old sessions live after a change.")
        ] = "2h",
        description: Annotated[str, typer.Option("--description")] = "",
        single_approver: Annotated[
            bool,
            typer.Option(
                "--single-approver",
                help="Labs only: versions take effect without a second admin's approval.",
            ),
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Create a realm (four-eyes publishing unless --single-approver)."""
        drain = times.parse_duration(session_drain, field="--session-drain")
        actor = operator()
        with store_session() as session:
            realm = plans.create_realm(
                session,
                name,
                session_drain=drain,
                by=actor,
                request_id=_request_id(),
                description=description,
                single_approver=single_approver,
            )
            shown = plans.realm_json(session, realm)
        emit_json(shown) if json_out else print(f"realm {name} created")

    @realm_app.command("list")
    @guarded
    def realm_list(json_out: JsonOpt = False) -> None:
        """All realms."""
        with store_session() as session:
            for realm in plans.list_realms(session):
                shown = plans.realm_json(session, realm)
                if json_out:
                    emit_json(shown)
                else:
                    print(
                        f"{realm.name}  drain {shown['session_drain']}  "
                        f"versions {shown['versions']}"
                    )

    @realm_app.command("show")
    @guarded
    def realm_show(name: str, json_out: JsonOpt = False) -> None:
        """One realm."""
        with store_session() as session:
            shown = plans.realm_json(session, plans.get_realm(session, name))
        if json_out:
            emit_json(shown)
        else:
            for key, value in shown.items():
                print(f"{key:<22} {value}")

    @plan_app.command("publish")
    @guarded
    def plan_publish(
        realm: Annotated[str, typer.Argument(help="Realm to publish into.")],
        file: Annotated[
            Path | None, typer.Argument(help="Plan file; omit with --retire.", show_default=False)
        ] = None,
        effective_from: Annotated[
            str, typer.Option("--effective-from", help="RFC 3339 instant, or 'now'.")
        ] = "",
        tz: Annotated[str | None, typer.Option("--tz", help="Zone of a naive time.")] = None,
        reason: Annotated[str, typer.Option("--reason", help="Change reference.")] = "",
        correction: Annotated[
            bool, typer.Option("--correction", help="Publish in the past (a correction).")
        ] = False,
        retire: Annotated[
            bool, typer.Option("--retire", help="No plan from this instant on.")
        ] = False,
        json_out: JsonOpt = False,
    ) -> None:
        """Append a plan version to a realm's timeline."""
        if (file is None) != retire:
            raise InvalidInput("give a plan FILE, or --retire")
        if not effective_from:
            raise InvalidInput("required", field="--effective-from")
        plan = read_plan(file) if file is not None else None
        actor = operator()
        with store_session() as session:
            when = (
                None  # the publish's own clock reading: "now" is never "in the past"
                if effective_from == "now"
                else times.parse_instant(effective_from, tz=tz, field="--effective-from")
            )
            version = plans.publish(
                session,
                realm,
                plan,
                effective_from=when,
                reason=reason,
                by=actor,
                request_id=_request_id(),
                correction=correction,
            )
            shown = plans.version_json(session, plans.get_realm(session, realm), version)
        if json_out:
            emit_json(shown)
        else:
            pending = "" if shown["approved"] else " (pending: a second admin must approve it)"
            print(
                f"{realm} version {shown['version']} effective {shown['effective_from']} "
                f"sha256 {shown['content_sha256']}{pending}"
            )

    @plan_app.command("approve")
    @guarded
    def plan_approve(
        realm: Annotated[str, typer.Argument(help="Realm.")],
        version: Annotated[int, typer.Argument(help="Version number to approve.")],
        content_sha256: Annotated[
            str | None,
            typer.Option("--content-sha256", help="The content hash you reviewed (checked)."),
        ] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Approve a published version (four eyes: not by its publisher); lookups then use it."""
        actor = operator()
        with store_session() as session:
            plans.approve(
                session,
                realm,
                version,
                by=actor,
                request_id=_request_id(),
                content_sha256=content_sha256,
            )
            row = plans.get_realm(session, realm)
            shown = plans.version_json(session, row, plans.get_version(session, row, version))
        if json_out:
            emit_json(shown)
        else:
            print(f"{realm} version {version} approved by {actor.name}")

    @plan_app.command("history")
    @guarded
    def plan_history(realm: str, json_out: JsonOpt = False) -> None:
        """Every version of a realm, in publication order; "pending-approval" marks a version
        lookups do not use until a second admin approves it (JSON: ``pending_approval``)."""
        with store_session() as session:
            row = plans.get_realm(session, realm)
            for version in plans.history(session, row):
                shown = plans.version_json(session, row, version)
                # A superseded version is never approved: a correction took its place.
                shown["pending_approval"] = not shown["approved"] and not shown["superseded"]
                if json_out:
                    emit_json(shown)
                    continue
                marks = "pending-approval " if shown["pending_approval"] else ""
                marks += "retired " if shown["retired"] else ""
                marks += "correction " if shown["correction"] else ""
                marks += "superseded " if shown["superseded"] else ""
                print(
                    f"v{shown['version']:<4} {shown['effective_from']}  "
                    f"{str(shown['content_sha256'] or '-')[:12]}  {marks}{shown['reason']}"
                )

    @plan_app.command("show")
    @guarded
    def plan_show(
        realm: str,
        version: Annotated[int | None, typer.Argument(help="Version (default: latest).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """One version with its plan."""
        import json

        with store_session() as session:
            row = plans.get_realm(session, realm)
            shown = plans.version_json(
                session, row, plans.get_version(session, row, version), with_plan=True
            )
        if json_out:
            emit_json(shown)
        else:
            print(json.dumps(shown, indent=2))

    register_trust(app)

    @db_app.command("upgrade")
    @guarded
    def db_upgrade() -> None:
        """Apply the migrations (the embedded database migrates itself on first use)."""
        from detnat.store import migrate
        from detnat.store.embedded import database_url

        url = database_url(get_settings(), run_migrations=False)
        try:
            migrate.upgrade(url)
        except DetnatError:
            raise
        except Exception as exc:
            raise Unavailable(f"cannot migrate the database: {exc}") from None
        print(f"database at revision {migrate.head_revision()}")

    @app.command()
    @guarded
    def serve(
        host: Annotated[str, typer.Option("--host")] = "127.0.0.1",
        port: Annotated[int, typer.Option("--port")] = 8000,
        workers: Annotated[int, typer.Option("--workers", min=1)] = 1,
        access_log: Annotated[
            bool, typer.Option("--access-log", help="Log every request (uvicorn's access log).")
        ] = False,
    ) -> None:
        """Run the REST API (uvicorn)."""
        import uvicorn

        from detnat.store.embedded import database_url

        settings = get_settings()
        database_url(settings)  # start/migrate the store once, before the workers
        # Rate limits are kept per worker: give each its share of the configured one.
        os.environ["DETNAT_RATE_LIMIT_PER_SECOND"] = str(settings.rate_limit_per_second / workers)
        os.environ["DETNAT_RATE_LIMIT_BURST"] = str(max(1.0, settings.rate_limit_burst / workers))
        config = uvicorn.Config(
            "api.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
            access_log=access_log,  # identity lookups are in the audit log either way
        )
        if workers == 1:
            uvicorn.Server(config).run()
            return
        from uvicorn.supervisors import Multiprocess

        Multiprocess(config, sockets=[_listening_socket(host, port)]).run()


def _listening_socket(host: str, port: int) -> Any:
    """The workers' shared listener, made with ``IPPROTO_TCP`` so accepted connections get
    ``TCP_NODELAY`` (uvicorn's own leaves proto 0, and every keep-alive response then waits
    ~40 ms on the client's delayed ACK: Kludex/uvicorn#3149)."""
    import socket

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise Unavailable(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.set_inheritable(True)
    return sock


def register_trust(app: typer.Typer) -> None:
    """Tokens, the audit log, evidence files."""
    from cli import trust

    trust.register(app)
