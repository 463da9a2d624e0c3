"""An ingest and a lookup's case claim take the store's two locks in one order.

A claim on the lookup path holds ``store_revision`` (FOR SHARE) and then writes its
``case.open`` entry (the audit head). An ingest locks the audit head for its rows' seq and its
COPY's trigger then bumps ``store_revision``: taken in the other order, the two deadlocked and
Postgres aborted the ingest. The ingest now locks ``store_revision`` first, as every other
writer does.
"""

from __future__ import annotations

import threading
import time
from typing import Any

import psycopg
import pytest
from sqlalchemy import text

from detnat.service import audit, integrity
from detnat.store.lean import REVISION, libpq_url
from tests.directory.lab import OPS, ingest_csv, lab_store

CSV = "subscriber,account,from,to\n100.64.0.1,acct-1,2026-03-01T00:00:00Z,2026-03-02T00:00:00Z\n"


def _wait_until_blocked_by(url: str, pid: int) -> None:
    """Until a backend waits on a lock ``pid`` holds (a condition polled, not a guess)."""
    with psycopg.connect(libpq_url(url), autocommit=True) as watch:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            row = watch.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (pid,),
            ).fetchone()
            if row and row[0]:
                return
            time.sleep(0.01)
    raise AssertionError("the ingest never waited on the claim's lock")


@pytest.mark.postgres
def test_an_ingest_waits_for_a_claim_instead_of_deadlocking_with_it() -> None:
    with lab_store() as lab:
        claim = lab.sessions()
        try:
            claim.execute(text(REVISION + " FOR SHARE"))
            pid = claim.execute(text("SELECT pg_backend_pid()")).scalar_one()
            done: dict[str, Any] = {}

            def ingest() -> None:
                try:
                    done["summary"] = ingest_csv(lab, CSV)
                except Exception as exc:  # the deadlock's victim, on the old code
                    done["error"] = exc

            worker = threading.Thread(target=ingest)
            worker.start()
            _wait_until_blocked_by(lab.url, pid)
            audit.record(claim, OPS, "case.open", request_id="t", detail={}, status="opened")
            claim.commit()
        finally:
            claim.close()
        worker.join(60)
        assert "error" not in done, done["error"]
        assert done["summary"].intervals == 1
        with lab.sessions() as s:
            assert [str(b) for b in integrity.verify(s)[0]] == []
