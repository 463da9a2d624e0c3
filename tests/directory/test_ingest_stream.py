"""An ingest writes its rows while the files are read (issue 14): the parsers' streams give the
intervals :func:`detnat.directory.parse` gives, batch by batch, and the rows made batch by batch
are the rows made at once; stored, they are what the audit entry says, and an ingest that fails
while its COPY runs stores nothing."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import text

from detnat.directory import kea, model, parse, radius, stream, table
from detnat.service import audit, directory, integrity
from detnat.store import directory as rows_repo
from detnat.store.db import unit_of_work
from tests.directory.lab import OPS, Lab, lab_store
from tests.directory.samples import KEA_2, KEA_3, KEA_OLD
from tests.directory.test_ingest_golden import CASES

SIZES = (1, 2, 3, 7, model.BATCH)


def _batched(monkeypatch: pytest.MonkeyPatch, size: int) -> None:
    for module in (radius, kea, table):
        monkeypatch.setattr(module, "BATCH", size)


@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("case", sorted(CASES))
def test_a_stream_gives_what_a_parse_gives(
    case: str, size: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt, files, tz, interim_us, realm_id = CASES[case]
    texts = [(name, directory._safe(body)) for name, body in files]
    whole = parse(fmt, texts, tz=tz, interim_us=interim_us)
    _batched(monkeypatch, size)
    parsed, batches = stream(fmt, texts, tz=tz, interim_us=interim_us)
    got = list(batches)
    assert all(got) and (size > 1 or len(got) > 1)  # no batch empty; given as they come
    assert [iv for b in got for iv in b] == whole.intervals
    assert (parsed.records, parsed.duplicates, parsed.refused) == (
        whole.records,
        whole.duplicates,
        whole.refused,
    )
    digest = hashlib.sha256()
    lines = [line for b in directory._row_batches(got, realm_id, digest) for line in b]
    assert (digest.hexdigest(), lines) == directory._rows(whole.intervals, realm_id)


@pytest.fixture
def lab() -> Iterator[Lab]:
    with lab_store() as made:
        yield made


# the golden cases (each used to hold a row Postgres could not keep as it was hashed: the kea case
# renewed a lease with an older row, an interval ending before its start, whose range Postgres
# refused; the RADIUS cases a session ended at the instant it began, stored as an empty range
# whose bounds `audit verify` could not read back), and the kea samples
STORED = {
    name: CASES[name][:4] for name in ("radius", "radius-interim", "radius-utc-realm", "csv", "kea")
} | {
    "kea-samples": (
        "kea-lease6",
        [("kea-old.csv", KEA_OLD), ("kea-2.csv", KEA_2), ("kea-3.csv", KEA_3)],
        None,
        None,
    )
}


@pytest.mark.postgres
@pytest.mark.parametrize("case", sorted(STORED))
def test_a_streamed_ingest_stores_and_audits_the_rows_of_a_parse(
    lab: Lab, case: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fmt, files, tz, interim_us = STORED[case]
    texts = [(name, directory._safe(body)) for name, body in files]
    whole = parse(fmt, texts, tz=tz, interim_us=interim_us)
    digest, lines = directory._rows(whole.intervals, None)
    _batched(monkeypatch, 3)  # many writes to one COPY
    interim = None if interim_us is None else timedelta(microseconds=interim_us)
    with unit_of_work(lab.sessions) as s:
        inputs = [directory.InputFile(name, body.encode()) for name, body in files]
        done = directory.ingest(s, OPS, fmt, inputs, tz=tz, request_id="t", interim=interim)
    with lab.sessions() as s:
        (entry,) = [e for e in audit.entries(s, after=done.ingest - 1, limit=1)]
        record = entry.detail["record"]
        stored, empty = s.execute(
            text(
                "SELECT count(*), count(*) FILTER (WHERE isempty(during)) "
                "FROM directory_intervals WHERE ingest = :i"
            ),
            {"i": done.ingest},
        ).one()
        assert empty == 0  # a row [t, t) would be stored as a range without its bounds
        assert [str(b) for b in integrity.verify(s)[0]] == []  # the rows are what it says
    assert entry.seq == done.ingest
    assert (record["rows"], record["rows_sha256"], stored) == (len(lines), digest, len(lines))
    assert record["refused_records"] == [str(r)[:300] for r in whole.refused[:100]]
    assert (record["records"], record["duplicates"]) == (whole.records, whole.duplicates)
    assert (done.intervals, done.refused) == (len(lines), whole.refused)


@pytest.mark.postgres
def test_an_ingest_that_fails_while_its_rows_are_written_stores_nothing(lab: Lab) -> None:
    def failing() -> Iterator[list[str]]:
        yield ["1\t10.9.9.9/32\t[2026-03-01T00:00:00Z,)\tx\tgiven\t[]\t\\N\n"]
        raise RuntimeError("the files could not be read")

    with lab.sessions() as s:
        head = s.execute(text("SELECT seq FROM audit_head")).scalar_one()
    with pytest.raises(RuntimeError, match="could not be read"), unit_of_work(lab.sessions) as s:
        seq = rows_repo.lock_next_seq(s)
        assert seq == head + 1
        rows_repo.copy_lines(s, seq, failing())
    with lab.sessions() as s:
        assert s.execute(text("SELECT seq FROM audit_head")).scalar() == head
        assert not s.execute(
            text("SELECT count(*) FROM directory_intervals WHERE prefix = '10.9.9.9/32'")
        ).scalar()
        assert [str(b) for b in integrity.verify(s)[0]] == []
