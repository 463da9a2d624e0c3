"""CLI commands against the plan store (realms, publishing, lookups at time T).

``register(app, plan_app)`` adds the store's commands; ``forward_at`` / ``reverse_at`` /
``reverse_batch_at`` answer lookups at an instant and return the exit code. Every command opens one
unit of work and commits it at the end (the edge commits; the service only flushes).
"""

from __future__ import annotations

import csv
import getpass
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Annotated

import typer
from sqlalchemy.orm import Session

from cli.output import EXIT_INVALID, EXIT_OK, emit_json, error_json, fail_line, guarded, ranges_text
from detnat.errors import DetnatError, InvalidInput, QueryError, Unavailable
from detnat.planfile import read_plan
from detnat.service import lookups, plans
from detnat.service.times import check_tolerance, parse_duration, parse_instant
from detnat.settings import get_settings

JsonOpt = Annotated[bool, typer.Option("--json", help="JSON output (one object per line).")]


@contextmanager
def _unit_of_work() -> Iterator[Session]:
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
    return check_tolerance(parse_duration(text)) if text else timedelta(0)


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


def forward_at(
    queries: list[str],
    *,
    at: str,
    tz: str | None,
    realm: str | None,
    case: str | None,
    as_json: bool,
) -> int:
    moment = parse_instant(at, tz=tz, field="--at")
    failed = False
    with _unit_of_work() as session:
        for query in queries:
            try:
                answer = lookups.forward_at(session, query, at=moment, realm=realm)
            except QueryError as exc:
                failed = True
                fail_line(exc)
                if as_json:
                    emit_json(error_json(query, exc))
                continue
            if case:
                answer["case"] = case
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
) -> int:
    from cli.main import parse_endpoint

    moment = parse_instant(at, tz=tz, field="--at")
    window = _tolerance(tolerance)
    failed = False
    with _unit_of_work() as session:
        for query in queries:
            try:
                address, port = parse_endpoint(query)
                answer = lookups.reverse_at(
                    session, address, port, at=moment, tolerance=window, realm=realm
                )
            except InvalidInput as exc:
                failed = True
                fail_line(exc)
                if as_json:
                    emit_json(error_json(query, exc))
                continue
            if case:
                answer["case"] = case
            if as_json:
                emit_json({"query": query, **answer})
            else:
                print(_answer_line(query, answer))
    return EXIT_INVALID if failed else EXIT_OK


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
    """Rows ``ip,port,time`` answered one by one, streamed; adds status,reason,subscriber."""
    window = _tolerance(tolerance)
    try:
        source = batch.open(newline="", encoding="utf-8-sig")
    except OSError as exc:
        raise InvalidInput(f"cannot read: {exc.strerror}", field=str(batch)) from None
    sink = sys.stdout if output is None else output.open("w", newline="", encoding="utf-8")
    bad = rows = 0
    try:
        reader = csv.DictReader(source)
        missing = {"ip", "port", "time"} - set(reader.fieldnames or [])
        if missing:
            raise InvalidInput(f"missing columns: {', '.join(sorted(missing))}", field=str(batch))
        fields = [*(reader.fieldnames or []), "status", "reason", "subscriber"]
        writer = csv.DictWriter(sink, fieldnames=fields, lineterminator="\n")
        writer.writeheader()
        with _unit_of_work() as session:
            for row in reader:
                rows += 1
                try:
                    port_text = row["port"] or ""
                    if not port_text.isascii() or not port_text.isdigit():
                        raise QueryError(f"{port_text!r} is not a port number", field="port")
                    answer = lookups.reverse_at(
                        session,
                        row["ip"] or "",
                        int(port_text),
                        at=parse_instant(row["time"], tz=tz),
                        tolerance=window,
                        realm=realm,
                    )
                    out = {
                        "status": answer["status"],
                        "reason": answer.get("reason", ""),
                        "subscriber": answer.get("subscriber", ""),
                    }
                except InvalidInput as exc:
                    bad += 1
                    print(f"detnat: {batch}:{reader.line_num}: {exc}", file=sys.stderr)
                    out = {"status": "error", "reason": exc.code, "subscriber": ""}
                writer.writerow({**row, **out})
    finally:
        source.close()
        if output is not None:
            sink.close()
    summary = {"rows": rows, "bad_rows": bad, "case": case}
    if as_json and output is not None:
        emit_json(summary)
    else:
        print(f"detnat: {rows} rows, {bad} bad", file=sys.stderr)
    return EXIT_INVALID if bad else EXIT_OK


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
        json_out: JsonOpt = False,
    ) -> None:
        """Create a realm."""
        drain = parse_duration(session_drain, field="--session-drain")
        with _unit_of_work() as session:
            realm = plans.create_realm(session, name, session_drain=drain, description=description)
            shown = plans.realm_json(session, realm)
        emit_json(shown) if json_out else print(f"realm {name} created")

    @realm_app.command("list")
    @guarded
    def realm_list(json_out: JsonOpt = False) -> None:
        """All realms."""
        with _unit_of_work() as session:
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
        with _unit_of_work() as session:
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
        by: Annotated[str | None, typer.Option("--by", help="Publisher (default: you).")] = None,
        json_out: JsonOpt = False,
    ) -> None:
        """Append a plan version to a realm's timeline."""
        if (file is None) != retire:
            raise InvalidInput("give a plan FILE, or --retire")
        if not effective_from:
            raise InvalidInput("required", field="--effective-from")
        plan = read_plan(file) if file is not None else None
        with _unit_of_work() as session:
            when = (
                plans.utcnow()
                if effective_from == "now"
                else parse_instant(effective_from, tz=tz, field="--effective-from")
            )
            version = plans.publish(
                session,
                realm,
                plan,
                effective_from=when,
                reason=reason,
                published_by=by or getpass.getuser(),
                correction=correction,
            )
            shown = plans.version_json(session, plans.get_realm(session, realm), version)
        if json_out:
            emit_json(shown)
        else:
            print(
                f"{realm} version {shown['version']} effective {shown['effective_from']} "
                f"sha256 {shown['content_sha256']}"
            )

    @plan_app.command("history")
    @guarded
    def plan_history(realm: str, json_out: JsonOpt = False) -> None:
        """Every version of a realm, in publication order."""
        with _unit_of_work() as session:
            row = plans.get_realm(session, realm)
            for version in plans.history(session, row):
                shown = plans.version_json(session, row, version)
                if json_out:
                    emit_json(shown)
                    continue
                marks = "retired " if shown["retired"] else ""
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

        with _unit_of_work() as session:
            row = plans.get_realm(session, realm)
            shown = plans.version_json(
                session, row, plans.get_version(session, row, version), with_plan=True
            )
        if json_out:
            emit_json(shown)
        else:
            print(json.dumps(shown, indent=2))

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
    ) -> None:
        """Run the REST API (uvicorn)."""
        import uvicorn

        from detnat.store.embedded import database_url

        database_url(get_settings())  # start/migrate the store once, before the workers
        uvicorn.run(
            "api.app:app_from_environment",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level="info",
        )
