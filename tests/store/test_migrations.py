"""The migrations build the schema, undo it, rebuild it, and match the models."""

from __future__ import annotations

import json
import uuid
from typing import Any

import psycopg
import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from detnat.store import migrate
from detnat.store.db import make_engine
from detnat.store.models import Base
from tests.postgres import url_of
from tests.store.conftest import _admin_conninfo

pytestmark = pytest.mark.postgres


def test_upgrade_downgrade_upgrade_on_a_fresh_database() -> None:
    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_of(name)
    try:
        migrate.upgrade(url)
        migrate.downgrade(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            tables = conn.exec_driver_sql(
                "select count(*) from pg_tables where schemaname='public' "
                "and tablename <> 'alembic_version'"
            ).scalar()
            assert tables == 0
        migrate.upgrade(url)
        assert migrate.is_current(engine)
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_models_match_the_migrated_schema(database_url: str) -> None:
    engine = make_engine(database_url)
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    engine.dispose()
    assert diff == []


def test_rows_made_before_0004_are_recorded_by_its_baseline() -> None:
    """A store of revision 0003 with a realm, a version, its approval, tokens (one revoked) and a
    case upgrades to a store that ``audit verify`` finds whole; down and up again, still whole."""
    from datetime import UTC, datetime

    from sqlalchemy import text

    from detnat.service import integrity, plans
    from detnat.store.db import make_sessions
    from detnat.store.models import PlanVersion

    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_of(name)
    try:
        migrate.upgrade(url, "0003")
        at = datetime(2026, 1, 1, tzinfo=UTC)
        plan = {
            "algorithm": "block",
            "inside": {"prefixes": ["10.0.0.0/30"], "subscriber_prefix_length": 32},
            "outside": {"prefixes": ["198.18.9.0/30"]},
            "block": {"ratio": 4},
            "ports": {"first": 1024, "last": 65535, "exclude": []},
        }
        version = PlanVersion(
            seq=1,
            effective_from=at,
            content_sha256=plans.content_hash(plan),
            prev_sha256=None,
            published_at=at,
            published_by="alice",
            reason="CHG-0",
            correction=False,
        )
        record = plans.record_hash(version, "old-realm", None)
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                text(
                    "insert into realms (name, session_drain) values ('old-realm', "
                    "interval '90 seconds')"
                )
            )
            conn.execute(
                text(
                    "insert into plan_versions (realm_id, seq, effective_from, plan, "
                    "content_sha256, record_sha256, published_at, published_by, reason, "
                    "correction) select id, 1, :at, cast(:plan as jsonb), :c, :r, :at, 'alice', "
                    "'CHG-0', false from realms"
                ),
                {
                    "at": at,
                    "plan": __import__("json").dumps(plan),
                    "c": version.content_sha256,
                    "r": record,
                },
            )
            conn.execute(
                text(
                    "insert into plan_version_ranges (version_id, realm_id, addresses, "
                    "validity) select v.id, v.realm_id, int8range(3323070720, "
                    "3323070724), tstzrange(:at, null) from plan_versions v"
                ),
                {"at": at},
            )
            conn.execute(
                text(
                    "insert into plan_approvals (version_id, content_sha256, "
                    "approved_by, approved_at, single_approver) select id, "
                    "content_sha256, 'bob', :at, false from plan_versions"
                ),
                {"at": at},
            )
            for n, revoked in ((1, False), (2, True)):
                conn.execute(
                    text(
                        "insert into api_tokens (name, role, token_sha256, created_at, "
                        "created_by, revoked_at, revoked_by) values (:n, 'abuse', :h, :at, "
                        "'ops', :rev, :by)"
                    ),
                    {
                        "n": f"desk-{n}",
                        "h": f"{n:064d}",
                        "at": at,
                        "rev": at if revoked else None,
                        "by": "ops" if revoked else None,
                    },
                )
            conn.execute(
                text(
                    "insert into cases (ref, owner, created_at) select 'OLD-1', "
                    "'token:' || min(id), :at from api_tokens"
                ),
                {"at": at},
            )
        migrate.upgrade(url)
        sessions = make_sessions(engine)
        with sessions() as s:
            assert [str(b) for b in integrity.verify(s)[0]] == []
            role = s.execute(text("select role from cases where ref = 'OLD-1'")).scalar_one()
            assert role == "abuse"
        migrate.downgrade(url, "0003")
        migrate.upgrade(url)
        with sessions() as s:
            assert [str(b) for b in integrity.verify(s)[0]] == []
            s.execute(text("set local session_replication_role = replica"))
            s.execute(text("update realms set session_drain = interval '0'"))
            assert any("session_drain_us differs" in str(b) for b in integrity.verify(s)[0])
            s.rollback()
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0008_keeps_a_store_with_logs_whole_down_and_up() -> None:
    """Logs ingested at head (no interim period) survive 0008 down to 0007 and up again: the
    intervals read back as they were (``interim_deadline`` false) and ``audit verify`` finds the
    store whole; an ingest that then declares a period flags the open interval."""
    from datetime import timedelta

    from detnat.logs.events import EventKind
    from detnat.service import integrity, logs, plans
    from detnat.store import logs as log_store
    from detnat.store.db import make_sessions, unit_of_work
    from tests.logs.conftest import OPS, T0_US, event, ingest

    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_of(name)
    hour, s30 = timedelta(hours=1), timedelta(seconds=30)
    block = ("100.64.0.1", "198.18.9.1", 1024, 1535)

    def stored(sessions: Any) -> list[Any]:
        with sessions() as s:
            realm_id = plans.get_realm(s, "old-logs").id
            return [logs.interval_of(r) for r in log_store.all_intervals(s, realm_id)]

    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        with unit_of_work(sessions) as s:
            plans.create_realm(
                s, "old-logs", session_drain=timedelta(0), by=OPS, single_approver=True
            )
        ingest(sessions, "old-logs", [event(EventKind.ALLOCATE, T0_US, *block)], hold=hour)
        before = stored(sessions)
        assert [(i.end_us, i.interim_deadline) for i in before] == [(T0_US + 3600 * 10**6, False)]
        migrate.downgrade(url, "0007")
        migrate.upgrade(url)
        assert stored(sessions) == before
        with sessions() as s:
            assert [str(b) for b in integrity.verify(s)[0]] == []
        refreshed = event(EventKind.INTERIM, T0_US + 10**6, *block)
        ingest(sessions, "old-logs", [refreshed], name="later.log", interim=s30)
        assert [(i.end_us, i.interim_deadline) for i in stored(sessions)] == [
            (T0_US + 31 * 10**6, True)
        ]
        with sessions() as s:
            assert [str(b) for b in integrity.verify(s)[0]] == []
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0009_keeps_the_directory_answering_alike_down_and_up() -> None:
    """A directory ingested at head (B-tree) answers the same single and batch asks at 0008
    (GiST again) and back at head; ``audit verify`` finds the store whole throughout."""
    from datetime import UTC, datetime, timedelta

    from detnat.service import directory, integrity
    from detnat.store import directory as rows_repo
    from detnat.store.db import make_sessions, unit_of_work
    from tests.directory.lab import OPS

    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_of(name)
    rows = (
        "subscriber,account,from,to\n"
        "10.0.0.5,alice,2026-03-01T00:00:00Z,2026-03-01T01:00:00Z\n"
        "10.0.0.5,bob,2026-03-01T01:00:00Z,\n"
        "10.0.0.5,carol,2026-03-01T05:00:00Z,\n"
        "10.0.0.4/30,block,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"
        "2001:db8:1::/48,isp,2026-02-01T00:00:00Z,\n"
        "2001:db8:1:100::/56,dave,2026-03-01T00:00:00Z,\n"
        "2001:db8:1:100::1/128,b4,2026-03-01T00:00:00Z,2026-03-01T02:00:00Z\n"
    )
    t0 = datetime(2026, 3, 1, tzinfo=UTC)
    nets = ["10.0.0.5/32", "10.0.0.4/30", "10.0.0.0/24", "10.0.0.9/32", "2001:db8:1::/48"]
    nets += ["2001:db8:1:100::/56", "2001:db8:1:100::1/128", "2001:db8:2::/56"]
    windows = [(t0 + timedelta(hours=h), t0 + timedelta(hours=h + w)) for h, w in [(0, 0), (3, 4)]]
    windows += [(t0 + timedelta(hours=30), t0 + timedelta(hours=30))]

    def index() -> list[str]:
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                "select indexdef from pg_indexes where tablename = 'directory_intervals' "
                "and indexname <> 'pk_directory_intervals'"
            )
            return [row[0] for row in found]

    def answers() -> tuple[list[Any], list[Any]]:
        single, batch = [], []
        with sessions() as s:
            for realm, scoped in ((None, False), ("old-dir", True)):
                for lo, hi in windows:
                    for net in nets:
                        found = rows_repo.around(s, net, lo, hi, realm=realm, scoped=scoped)
                        # the sources as their JSON text at head (0011), as JSONB at 0008
                        decoded = [
                            (*r[:5], json.loads(r[5]) if isinstance(r[5], str) else r[5], *r[6:])
                            for r in found
                        ]
                        single.append((net, lo, realm, decoded))
                    us = [int(lo.timestamp() * 10**6)] * len(nets)
                    ends = [int(hi.timestamp() * 10**6)] * len(nets)
                    asked = [realm] * len(nets), [scoped] * len(nets)
                    batch.append(sorted(rows_repo.around_nets(s, nets, us, ends, *asked)))
            # head code reads log_ingests as 0012 made it: the store is verified at head
            if migrate.is_current(engine):
                assert [str(b) for b in integrity.verify(s)[0]] == []
        return single, batch

    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        from detnat.service import plans

        with unit_of_work(sessions) as s:
            plans.create_realm(
                s, "old-dir", session_drain=timedelta(0), by=OPS, single_approver=True
            )
        for realm in (None, "old-dir"):
            with unit_of_work(sessions) as s:
                files = [directory.InputFile("dir.csv", rows.encode())]
                directory.ingest(s, OPS, "csv", files, tz=None, request_id="t", realm=realm)
        assert index() == [
            "CREATE INDEX ix_directory_intervals_prefix_start ON public.directory_intervals "
            "USING btree (prefix, lower(during))"
        ]
        before = answers()
        held = [len(found) for *_, found in before[0]]
        assert sum(held) > 40 and sum(map(len, before[1])) > 40  # rows were found, nested too
        migrate.downgrade(url, "0008")
        assert ["gist (prefix inet_ops, during)" in i for i in index()] == [True]
        assert answers() == before
        migrate.upgrade(url)
        assert ["btree (prefix, lower(during))" in i for i in index()] == [True]
        assert answers() == before
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0010_keeps_batch_log_answers_alike_down_and_up() -> None:
    """Logs ingested at head (two realms, blocks of two spans, a strided one) answer the same
    batch questions at 0009 (no B-tree: the statement reads the table) and back at head; the
    index is dropped and made again, and ``audit verify`` finds the store whole throughout."""
    from datetime import timedelta

    import numpy as np

    from detnat.logs.events import EventKind
    from detnat.service import batch_lookups, integrity, log_answers, plans
    from detnat.store.db import make_sessions, unit_of_work
    from tests.logs.conftest import OPS, T0_US, event, ingest

    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_of(name)
    s = 10**6
    a, r = EventKind.ALLOCATE, EventKind.RELEASE
    made = [
        event(a, T0_US, "100.64.0.1", "198.18.9.1", 1024, 1535),
        event(r, T0_US + 60 * s, "100.64.0.1", "198.18.9.1", 1024, 1535, line=2),
        event(a, T0_US + 61 * s, "100.64.0.2", "198.18.9.1", 1024, 1535, line=3),
        event(a, T0_US + 5 * s, "100.64.0.3", "198.18.9.1", 2048, 4095, step=4, line=4),
        event(a, T0_US + 7 * s, "100.64.0.4", "198.18.9.2", 1024, 2047, line=5),
    ]
    ips = np.array([(198 << 24) | (18 << 16) | (9 << 8) | (1 + k % 2) for k in range(40)])
    ports = np.array([1024, 1535, 2048, 2049, 2052, 4092, 1500, 2047] * 5)
    at = np.array([T0_US + k * 3 * s for k in range(40)])

    def index() -> list[str]:
        with engine.connect() as conn:
            found = conn.exec_driver_sql(
                "select indexname from pg_indexes where tablename = 'log_intervals' "
                "order by indexname"
            )
            return [row[0] for row in found]

    def answers() -> list[Any]:
        found = []
        with sessions() as session:
            for realm in (None, "logs-a", "logs-b"):
                said = batch_lookups.LogsAsked(
                    np.arange(len(ips)),
                    np.full(
                        len(ips), batch_lookups.STATUS_WORDS.index("no_plan_in_force"), np.uint8
                    ),
                    np.full(len(ips), batch_lookups.REASON_WORDS.index("no_plan"), np.uint8),
                    lambda rows: dict.fromkeys(rows, ""),
                )
                told = log_answers.BatchLogs(session, realm)(ips, ports, at, at, said)
                decided = {}
                if told is not None:
                    texts = [*told.texts, ""]
                    realms = [*told.realms, None]
                    for n, status, reason, text, known in zip(
                        told.rows.tolist(),
                        told.status.tolist(),
                        told.reason.tolist(),
                        told.subscriber.tolist(),
                        told.realm.tolist(),
                        strict=True,
                    ):
                        decided[n] = (
                            batch_lookups.STATUS_WORDS[status],
                            batch_lookups.REASON_WORDS[reason],
                            texts[text],
                            realms[known],
                        )
                found.append(sorted(decided.items()))
            # head code reads log_ingests as 0012 made it: the store is verified at head
            if migrate.is_current(engine):
                assert [str(b) for b in integrity.verify(session)[0]] == []
        return found

    try:
        migrate.upgrade(url)
        engine = make_engine(url)
        sessions = make_sessions(engine)
        for realm in ("logs-a", "logs-b"):
            with unit_of_work(sessions) as session:
                plans.create_realm(
                    session, realm, session_drain=timedelta(0), by=OPS, single_approver=True
                )
            ingest(sessions, realm, made, hold=timedelta(hours=1))
        assert "ix_log_intervals_block_time" in index()
        before = answers()
        assert sum(len(found) for found in before) > 40  # rows were answered
        assert any(status == "match" for *_, (status, *_) in before[1])
        migrate.downgrade(url, "0009")
        assert "ix_log_intervals_block_time" not in index()
        assert answers() == before
        migrate.upgrade(url)
        assert "ix_log_intervals_block_time" in index()
        assert answers() == before
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


# a csv whose lines and file name hold what JSON escapes (quote, backslash, tab, control
# characters) and what it leaves as is (non-ASCII, U+2028, DEL, an astral character)
_ODD_CSV = (
    'odd "\u00e9" \\ \u2603.csv',
    "subscriber,account,from,to\n"
    '10.0.0.7,"q ""x"" \\ \t \u00e9 \u2028 \x7f \U0001f600",2026-03-01T00:00:00Z,\n'
    "10.0.0.8,ctl \x01\x1f\x08\x0c,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n",
)


def test_0011_stores_the_sources_as_the_text_its_digest_hashed_down_and_up() -> None:
    """Rows ingested at 0010 (sources as JSONB: RADIUS records of many lines, kea and csv rows,
    characters JSON escapes and leaves) become at 0011 the canonical JSON text their digests
    covered: ``audit verify`` finds the store whole, the stored text is that JSON and the
    lookups give the same sources; rows ingested at 0011 go back to JSONB and up again, still
    whole. A row of a shape no ingest stores stops the upgrade."""
    from datetime import UTC, datetime

    from detnat.service import audit, directory, integrity
    from detnat.store import directory as rows_repo
    from detnat.store.db import make_sessions, unit_of_work
    from tests.directory.lab import OPS
    from tests.directory.samples import KEA_3
    from tests.directory.test_ingest_golden import CSV, RADIUS

    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_of(name)
    inputs = [
        ("freeradius-detail", RADIUS, "Europe/Berlin"),
        ("kea-lease6", [("kea-3.csv", KEA_3)], None),
        ("csv", [*CSV, _ODD_CSV], "Europe/Berlin"),
    ]

    def ingest_all() -> None:
        for fmt, files, tz in inputs:
            with unit_of_work(sessions) as s:
                given = [directory.InputFile(n, body.encode()) for n, body in files]
                directory.ingest(s, OPS, fmt, given, tz=tz, request_id="t")

    def column() -> str:
        with engine.connect() as conn:
            return str(
                conn.exec_driver_sql(
                    "select data_type from information_schema.columns "
                    "where table_name = 'directory_intervals' and column_name = 'sources'"
                ).scalar()
            )

    def stored() -> tuple[list[Any], list[Any]]:
        """Every row's sources (decoded) and every prefix's lookup, the store verified whole."""
        lo, hi = datetime(2020, 1, 1, tzinfo=UTC), datetime(2030, 1, 1, tzinfo=UTC)
        with sessions() as s:
            # head code reads log_ingests as 0012 made it: the store is verified at head
            if migrate.is_current(engine):
                assert [str(b) for b in integrity.verify(s)[0]] == []
            rows = []
            for ingest, n, *_, sources, _ in rows_repo.all_rows(s):
                if isinstance(sources, str):  # the text is the canonical JSON of what it holds
                    assert sources == audit.canonical(json.loads(sources))
                    sources = json.loads(sources)
                rows.append((ingest, n, sources))
            prefixes = s.connection().exec_driver_sql(
                "select distinct prefix::text from directory_intervals order by 1"
            )
            asked = []
            for (net,) in prefixes.all():
                found = rows_repo.around(s, net, lo, hi, realm=None, scoped=False)
                for r in found:
                    asked.append((*r[:5], json.loads(r[5]) if isinstance(r[5], str) else r[5]))
        return rows, asked

    try:
        migrate.upgrade(url, "0010")
        engine = make_engine(url)
        sessions = make_sessions(engine)
        ingest_all()
        assert column() == "jsonb"
        before = stored()
        assert len(before[0]) > 15
        assert any("\n" in line["text"] for *_, lines in before[0] for line in lines)
        migrate.upgrade(url)
        assert column() == "text"
        assert stored() == before
        ingest_all()  # rows written as text
        after = stored()
        assert len(after[0]) == 2 * len(before[0])
        migrate.downgrade(url, "0010")
        assert column() == "jsonb"
        assert stored() == after
        migrate.upgrade(url)
        assert stored() == after
        migrate.downgrade(url, "0010")
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "insert into directory_intervals (ingest, n, prefix, during, account, closed, "
                "sources) values (1, 1000, '10.9.9.9/32', '[2026-01-01,)', 'x', 'given', "
                """'[{"file": "f", "line": 1}]')"""
            )
        with pytest.raises(Exception, match="ingest 1 row 1000: sources not of the shape"):
            migrate.upgrade(url)
        assert column() == "jsonb"
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_0012_resumes_follows_stored_before_it_and_after_a_downgrade(tmp_path: Any) -> None:
    """A follow position stored at 0011 (identity and offset, no start) resumes at its offset
    after the upgrade, no line read twice, and ``audit verify`` finds the store whole. Rows
    ingested at 0012 carry their file's start; down at 0011 the columns are gone, and back at
    0012 a follow resumes those rows as before 0012 (by identity and length), while ``audit
    verify`` names the rows whose start their audit entries recorded and the downgrade dropped."""
    import hashlib
    import os
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    from detnat.logs.events import EventKind
    from detnat.service import audit, integrity, logs, plans
    from detnat.store.db import make_sessions, unit_of_work
    from detnat.store.models import LogIngest
    from tests.logs import made_format
    from tests.logs.conftest import OPS, T0_US, line_of

    name = f"detnat_mig_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    url = url_of(name)
    log = tmp_path / "pba.log"

    def made(keys: range) -> bytes:
        return b"".join(
            line_of(
                EventKind.ALLOCATE, T0_US + k * 10**6, f"100.64.0.{k + 1}", "198.18.9.1", 1024, 1535
            )
            for k in keys
        )

    def follow() -> tuple[int, int]:
        how = logs.Follow(
            str(log),
            "old-follow",
            "test-made",
            made_format.parse,
            until_idle=True,
        )
        done = logs.follow(lambda: unit_of_work(sessions), how, by=OPS, request_id=lambda: "t")
        return done.lines_read, done.duplicates

    def broken() -> list[str]:
        with sessions() as s:
            return [str(b) for b in integrity.verify(s)[0]]

    try:
        migrate.upgrade(url, "0011")
        engine = make_engine(url)
        sessions = make_sessions(engine)
        log.write_bytes(made(range(3)))
        st = os.stat(log)
        with unit_of_work(sessions) as s:
            realm = plans.create_realm(
                s, "old-follow", session_drain=timedelta(0), by=OPS, single_approver=True
            )
            # what a follow at 0011 stored of a chunk of three lines (refused ones: no events)
            row = LogIngest(
                id=int(s.scalar(text("SELECT nextval('log_ingests_id_seq')")) or 0),
                realm_id=realm.id,
                at=datetime(2026, 12, 1, tzinfo=UTC),
                by=OPS.name,
                format="test-made",
                file=str(log),
                file_identity=f"{st.st_dev}:{st.st_ino}",
                offset_from=0,
                offset_to=st.st_size,
                bytes_sha256=hashlib.sha256(log.read_bytes()).hexdigest(),
                lines_read=3,
                events_stored=0,
                duplicates=0,
                refused=3,
                log_hold=None,
                log_interim=None,
                months={},
            )
            s.execute(
                text(
                    "INSERT INTO log_ingests (id, realm_id, at, by, format, file, file_identity, "
                    "offset_from, offset_to, bytes_sha256, lines_read, events_stored, "
                    "duplicates, refused, months) VALUES (:id, :realm_id, :at, :by, :format, "
                    ":file, :file_identity, :offset_from, :offset_to, :bytes_sha256, "
                    ":lines_read, :events_stored, :duplicates, :refused, '{}')"
                ),
                {c.name: getattr(row, c.name) for c in LogIngest.__table__.columns},
            )
            record = logs.ingest_record("old-follow", row)
            del record["head_sha256"], record["head_bytes"]  # 0011 recorded neither
            audit.record(s, OPS, "logs.ingest", request_id="t", detail={"record": record})
        migrate.upgrade(url)
        assert broken() == []
        with log.open("ab") as f:
            f.write(made(range(3, 5)))
        assert follow() == (2, 0)  # resumed at the offset stored at 0011
        assert follow() == (0, 0)
        assert broken() == []
        with sessions() as s:
            heads = s.execute(text("SELECT head_bytes FROM log_ingests ORDER BY id")).all()
        assert [h for (h,) in heads] == [None, len(made(range(5)))]
        migrate.downgrade(url, "0011")
        with engine.connect() as conn:
            columns = conn.exec_driver_sql(
                "SELECT column_name FROM information_schema.columns "
                "WHERE table_name = 'log_ingests' AND column_name IN ('head_sha256', 'head_bytes')"
            ).all()
        assert columns == []
        migrate.upgrade(url)
        [said] = broken()
        assert "head_bytes, head_sha256 differs from audit entry" in said
        with log.open("ab") as f:
            f.write(made(range(5, 6)))
        assert follow() == (1, 0)  # by identity and length, as before 0012
        with log.open("r+b") as f:  # emptied in place and written again: told by its length
            f.truncate(0)
            f.write(made(range(10, 11)))
        assert follow() == (1, 0)
        engine.dispose()
    finally:
        with psycopg.connect(_admin_conninfo(), autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
