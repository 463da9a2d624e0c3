"""``--follow`` through logrotate's other ways, with real files: what the stored start tells.

A follow stores, beside the offset it reached, the SHA-256 of the file's first bytes as it read
them. Found by a careless-operator review: logrotate with ``compress`` (no ``delaycompress``)
while detnat is down renames the file and gzips it (a new inode), so the followed identity is gone
and the lines written after the stored offset were skipped without a word; ``copytruncate`` keeps
the identity but empties the file (its unread tail only in the copy). Now the rotated file is found
beside the followed one by its start (compressed or not, under logrotate's names) and read on from
the offset; where none is, the bytes that may be lost are said on stderr, in the summary and in the
ingest's audit entry, never silently.
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import shutil
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import select, text
from typer.testing import CliRunner

from detnat.logs.events import EventKind, LogEvent, Refused
from detnat.logs.formats import ParseOptions
from detnat.service import integrity, logs, plans
from detnat.store.db import SessionFactory, unit_of_work
from detnat.store.models import AuditEntry, LogIngest
from tests.logs import made_format
from tests.logs.conftest import OPS, new_realm
from tests.logs.test_cli_logs import lines, run, summary

pytestmark = pytest.mark.postgres

A = EventKind.ALLOCATE


def line(k: int) -> bytes:
    """Line ``k`` of the tests' logs: each its own subscriber, instant and block."""
    return lines((A, k, f"100.64.{k // 200}.{k % 200 + 1}", 1024 + 512 * (k % 120)))


def made(ks: Iterable[int]) -> bytes:
    return b"".join(line(k) for k in ks)


def follow(cli: CliRunner, realm: str, log: Path) -> Any:
    args = ("logs", "ingest", realm, "--format", "test-made", "--follow", "--until-idle")
    result = run(cli, *args, "--json", str(log))
    assert result.exit_code == 0, result.output
    return result


def counts(result: Any) -> tuple[int, int, int]:
    told = summary(result)
    return told["lines_read"], told["events_stored"], told["duplicates"]


def stored(sessions: SessionFactory, realm: str) -> list[tuple[int, str]]:
    """(line number, text) of every event the realm stored, in the order of their lines' texts."""
    with sessions() as s:
        realm_id = plans.get_realm(s, realm).id
        rows = s.execute(
            text("SELECT line, raw FROM log_events WHERE realm_id = :r ORDER BY raw"),
            {"r": realm_id},
        )
        return [(int(n), str(raw)) for n, raw in rows]


def as_read(*files: Sequence[int]) -> list[tuple[int, str]]:
    """What the store holds once the files (each a range of line keys, the followed file before
    and after each rotation) were each read once: numbered from 1 in each."""
    want = [
        (n, line(k).decode().rstrip("\n")) for keys in files for n, k in enumerate(keys, start=1)
    ]
    return sorted(want, key=lambda x: x[1])


def whole(sessions: SessionFactory) -> None:
    with sessions() as s:
        assert [str(b) for b in integrity.verify(s)[0]] == []


def _gz(path: Path, data: bytes) -> None:
    path.write_bytes(gzip.compress(data))


def _bz2(path: Path, data: bytes) -> None:
    path.write_bytes(bz2.compress(data))


def _xz(path: Path, data: bytes) -> None:
    path.write_bytes(lzma.compress(data))


def rotate_compressed(log: Path, name: str, pack: Callable[[Path, bytes], None]) -> None:
    """logrotate ``compress`` without ``delaycompress``: rename, compress, a new empty file."""
    rotated = log.with_name(name.removesuffix(Path(name).suffix))
    os.rename(log, rotated)
    pack(log.with_name(name), rotated.read_bytes())
    rotated.unlink()
    log.write_bytes(b"")


@pytest.mark.parametrize(
    ("name", "pack"),
    [
        ("pba.log.1.gz", _gz),
        ("pba.log-20260314.gz", _gz),
        ("pba-20260314.log.gz", _gz),  # logrotate's `extension .log`
        ("pba.log.1.bz2", _bz2),
        ("pba.log.1.xz", _xz),
    ],
)
@pytest.mark.parametrize("first", [2, 40], ids=["start-shorter-than-head", "start-longer"])
def test_rotated_and_compressed_while_down_is_read_on_from_the_offset(
    cli: CliRunner,
    realm: str,
    tmp_path: Path,
    sessions: SessionFactory,
    name: str,
    pack: Callable[[Path, bytes], None],
    first: int,
) -> None:
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(first)))
    assert counts(follow(cli, realm, log)) == (first, first, 0)
    with log.open("ab") as f:  # written after the last read, then rotated while detnat is down
        f.write(made(range(first, first + 5)))
    # a file rotated before, of other lines, touched later: tried first, and not taken
    older = tmp_path / name.replace("1", "2").replace("20260314", "20260313")
    pack(older, made(range(500, 540)))
    rotate_compressed(log, name, pack)
    os.utime(older, ns=(os.stat(log).st_mtime_ns + 10**9,) * 2)
    with log.open("ab") as f:
        f.write(made(range(100, 103)))
    again = follow(cli, realm, log)
    assert counts(again) == (8, 8, 0)
    assert summary(again)["warnings"] == []
    assert "warning" not in again.stderr
    assert counts(follow(cli, realm, log)) == (0, 0, 0)
    assert stored(sessions, realm) == as_read(range(first + 5), range(100, 103))
    whole(sessions)


def test_a_rotated_file_not_found_is_warned_and_the_warning_audited(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(30)))
    read_to = log.stat().st_size
    assert counts(follow(cli, realm, log)) == (30, 30, 0)
    with log.open("ab") as f:
        f.write(made(range(30, 33)))  # these three lines are lost with the rotated file
    rotate_compressed(log, "pba.log.1.gz", _gz)
    (tmp_path / "pba.log.1.gz").rename(tmp_path / "elsewhere.gz")  # olddir, or deleted
    _gz(tmp_path / "pba.log.2.gz", made(range(500, 540)))  # rotated before: another start
    log.write_bytes(made(range(100, 102)))
    warned = follow(cli, realm, log)
    assert counts(warned) == (2, 2, 0)
    [said] = summary(warned)["warnings"]
    assert said.startswith(f"{log}: the file read up to byte {read_to} ")
    assert f"detnat: warning: {said}" in warned.stderr.splitlines()
    with sessions() as s:
        realm_id = plans.get_realm(s, realm).id
        entries = s.scalars(select(AuditEntry).where(AuditEntry.action == "logs.ingest"))
        gaps = [
            e.detail["gaps"]
            for e in entries
            if e.detail["record"]["realm"] == realm and "gaps" in e.detail
        ]
        first_new = s.scalars(
            select(LogIngest)
            .where(LogIngest.realm_id == realm_id, LogIngest.offset_from == 0)
            .order_by(LogIngest.id.desc())
        ).first()
    assert first_new is not None and first_new.lines_read == 2
    [[gap]] = gaps
    assert (gap["file"], gap["read_to"], gap["warning"]) == (str(log), read_to, said)
    # told once: the ingest that recorded it moved the position to the new file
    quiet = follow(cli, realm, log)
    assert (counts(quiet), summary(quiet)["warnings"], quiet.stderr) == ((0, 0, 0), [], "")
    assert stored(sessions, realm) == as_read(range(30), range(100, 102))
    whole(sessions)


def test_the_move_to_the_new_file_is_stored_before_it_has_a_line(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    """Rotated while down, the new file still empty: the follow that reads the rotated file's
    tail stores that it went on to the new one, so when the rotated file is later deleted
    (``rotate N``) the next start neither looks for it nor warns."""
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(10)))
    follow(cli, realm, log)
    with log.open("ab") as f:
        f.write(made(range(10, 12)))
    rotate_compressed(log, "pba.log.1.gz", _gz)
    assert counts(follow(cli, realm, log)) == (2, 2, 0)
    (tmp_path / "pba.log.1.gz").unlink()
    log.write_bytes(made(range(100, 103)))
    later = follow(cli, realm, log)
    assert (counts(later), summary(later)["warnings"]) == ((3, 3, 0), [])
    assert stored(sessions, realm) == as_read(range(12), range(100, 103))
    whole(sessions)


def test_text_summary_counts_the_warnings(cli: CliRunner, realm: str, tmp_path: Path) -> None:
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(3)))
    follow(cli, realm, log)
    log.unlink()  # rotated away for good (rotate 0)
    log.write_bytes(made(range(10, 11)))
    args = ("logs", "ingest", realm, "--format", "test-made", "--follow", "--until-idle")
    result = run(cli, *args, str(log))
    assert result.exit_code == 0, result.output
    assert result.stdout.strip().endswith(
        "1 lines read, 1 events stored, 0 duplicates, 0 refused, "
        "1 gaps (bytes that may be lost, on stderr)"
    )


@pytest.mark.parametrize("packed", [False, True], ids=["copy", "copy-compressed"])
def test_copytruncate_while_down_reads_the_copys_tail_then_the_file_from_its_start(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory, packed: bool
) -> None:
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(30)))
    assert counts(follow(cli, realm, log)) == (30, 30, 0)
    with log.open("ab") as f:
        f.write(made(range(30, 34)))
    copy = tmp_path / "pba.log.1"
    shutil.copyfile(log, copy)
    if packed:  # compress without delaycompress
        _gz(tmp_path / "pba.log.1.gz", copy.read_bytes())
        copy.unlink()
    with log.open("r+b") as f:
        f.truncate(0)
    with log.open("ab") as f:  # the new lines: more bytes than the old offset
        f.write(made(range(100, 150)))
    assert counts(follow(cli, realm, log)) == (54, 54, 0)
    assert counts(follow(cli, realm, log)) == (0, 0, 0)
    assert stored(sessions, realm) == as_read(range(34), range(100, 150))
    whole(sessions)


def test_a_file_rewritten_in_place_past_the_offset_is_read_from_its_start(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    """The same identity, other bytes, longer than the offset (as a new file on a freed inode
    is): only its start tells it from the file read. Nothing kept of the old one: warned."""
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(3)))
    assert counts(follow(cli, realm, log)) == (3, 3, 0)
    with log.open("r+b") as f:
        f.truncate(0)
        f.write(made(range(200, 230)))
    rewritten = follow(cli, realm, log)
    assert counts(rewritten) == (30, 30, 0)
    assert len(summary(rewritten)["warnings"]) == 1
    assert stored(sessions, realm) == as_read(range(3), range(200, 230))
    whole(sessions)


def test_a_restart_without_rotation_counts_nothing_twice(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(2)))
    assert counts(follow(cli, realm, log)) == (2, 2, 0)
    for keys in (range(2, 40), range(40, 41), range(41, 41), range(41, 60)):
        with log.open("ab") as f:
            f.write(made(keys))
        assert counts(follow(cli, realm, log)) == (len(keys), len(keys), 0)
        assert counts(follow(cli, realm, log)) == (0, 0, 0)
    assert stored(sessions, realm) == as_read(range(60))
    with sessions() as s:  # no ingest read a byte twice: each began where the one before ended
        realm_id = plans.get_realm(s, realm).id
        spans = s.execute(
            select(LogIngest.offset_from, LogIngest.offset_to)
            .where(LogIngest.realm_id == realm_id)
            .order_by(LogIngest.id)
        ).all()
    assert [a for a, _ in spans] == [0] + [b for _, b in spans[:-1]]
    whole(sessions)


# -- while following (the service, its parser the tests' own) ------------------------------------


def _follow_with(
    sessions: SessionFactory,
    realm: str,
    log: Path,
    *,
    parse: Callable[[Iterable[bytes], str, ParseOptions], Iterable[LogEvent | Refused]]
    | None = None,
    on_chunk: Callable[[logs.IngestSummary], None] | None = None,
) -> logs.IngestSummary:
    how = logs.Follow(
        str(log),
        realm,
        "test-made",
        parse or made_format.parse,
        until_idle=True,
    )
    return logs.follow(
        lambda: unit_of_work(sessions), how, by=OPS, request_id=lambda: "t", on_chunk=on_chunk
    )


def copytruncate(log: Path, then: bytes) -> None:
    shutil.copyfile(log, log.with_name(log.name + ".1"))
    with log.open("r+b") as f:
        f.truncate(0)
    with log.open("ab") as f:
        f.write(then)


def test_copytruncate_while_followed_reads_the_copys_tail_then_the_new_lines(
    realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(30)))
    rotations = []

    def rotate_once(done: logs.IngestSummary) -> None:
        if not rotations:  # after the first chunk's commit: more lines, then logrotate
            rotations.append(done.lines_read)
            with log.open("ab") as f:
                f.write(made(range(30, 33)))
            copytruncate(log, made(range(100, 140)))

    total = _follow_with(sessions, realm, log, on_chunk=rotate_once)
    assert rotations == [30]
    assert (total.lines_read, total.events_stored, total.duplicates, total.gaps) == (73, 73, 0, [])
    assert stored(sessions, realm) == as_read(range(33), range(100, 140))
    whole(sessions)


@pytest.mark.parametrize("read", [False, True], ids=["before-the-read", "after-the-read"])
def test_copytruncate_during_an_ingest_rolls_it_back_and_reads_the_chunk_from_the_copy(
    realm: str, tmp_path: Path, sessions: SessionFactory, read: bool
) -> None:
    """Emptied and written again once the file was checked, before its chunk is read (the old
    offset then falls in the new lines) or before the chunk is committed: the ingest is rolled
    back, and the chunk read from the copy."""
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(20)))
    _follow_with(sessions, realm, log)
    with log.open("ab") as f:
        f.write(made(range(20, 25)))
    rotations = []

    def rotating(
        lines: Iterable[bytes], name: str, options: ParseOptions
    ) -> Iterator[LogEvent | Refused]:
        if not rotations and not read:
            rotations.append(name)
            copytruncate(log, made(range(100, 130)))
        yield from made_format.parse(lines, name, options)
        if not rotations:
            rotations.append(name)
            copytruncate(log, made(range(100, 130)))

    total = _follow_with(sessions, realm, log, parse=rotating)
    assert rotations == [str(log)]
    assert (total.lines_read, total.events_stored, total.duplicates, total.gaps) == (35, 35, 0, [])
    assert stored(sessions, realm) == as_read(range(25), range(100, 130))
    whole(sessions)


def test_a_copy_being_compressed_is_passed_over_for_the_whole_copy(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    """``copytruncate`` + ``compress`` caught half way: the copy is whole, its .gz not yet."""
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(10)))
    follow(cli, realm, log)
    with log.open("ab") as f:
        f.write(made(range(10, 400)))
    copytruncate(log, b"")
    packed = gzip.compress((tmp_path / "pba.log.1").read_bytes())
    (tmp_path / "pba.log.1.gz").write_bytes(packed[: len(packed) * 2 // 3])
    assert counts(follow(cli, realm, log)) == (390, 390, 0)
    assert stored(sessions, realm) == as_read(range(400))
    whole(sessions)


def test_a_rotated_file_that_cannot_be_read_on_stops_the_follow_naming_it(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    """Its start is the one read but it breaks off (still being compressed, or damaged): the
    follow stops and says which file (nothing of it is stored), rather than skip it; once the
    operator has moved it away, the loss is warned of."""
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(10)))
    follow(cli, realm, log)
    with log.open("ab") as f:
        f.write(made(range(10, 400)))
    rotate_compressed(log, "pba.log.1.gz", _gz)
    broken = tmp_path / "pba.log.1.gz"
    broken.write_bytes(broken.read_bytes()[:-200])
    args = ("logs", "ingest", realm, "--format", "test-made", "--follow", "--until-idle")
    stopped = run(cli, *args, str(log))
    assert stopped.exit_code == 2
    assert f"{broken}: cannot read on" in stopped.stderr
    assert len(stored(sessions, realm)) == 10
    broken.rename(tmp_path / "kept-aside")
    warned = follow(cli, realm, log)
    assert (counts(warned), len(summary(warned)["warnings"])) == ((0, 0, 0), 1)
    whole(sessions)


def test_a_file_cut_shorter_than_the_offset_is_read_from_its_start(
    cli: CliRunner, realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    """Cut (not emptied) below the offset and written on: its start is still the one read, its
    length is not. Read again from its start (the lines kept are duplicates, stored once), the
    rest of the old file warned of."""
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(40)))
    assert counts(follow(cli, realm, log)) == (40, 40, 0)
    with log.open("r+b") as f:
        f.truncate(len(made(range(20))))
    with log.open("ab") as f:
        f.write(made(range(100, 105)))
    cut = follow(cli, realm, log)
    assert counts(cut) == (25, 5, 20)
    assert len(summary(cut)["warnings"]) == 1
    assert len(stored(sessions, realm)) == 45
    whole(sessions)


def test_follow_resumes_from_its_stored_start_after_a_copy_is_read(
    realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    """Killed between the copy's tail and the new file's first line: the next start reads the
    copy's tail no more (its rows carry the old start) and the new file from its start."""
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(20)))
    _follow_with(sessions, realm, log)
    with log.open("ab") as f:
        f.write(made(range(20, 22)))
    copytruncate(log, b"")
    first = _follow_with(sessions, realm, log)
    assert (first.lines_read, first.gaps) == (2, [])
    with log.open("ab") as f:
        f.write(made(range(100, 104)))
    then = _follow_with(sessions, realm, log)
    assert (then.lines_read, then.duplicates, then.gaps) == (4, 0, [])
    assert stored(sessions, realm) == as_read(range(22), range(100, 104))
    whole(sessions)


def test_the_predecessors_lines_keep_their_numbers_and_name(
    realm: str, tmp_path: Path, sessions: SessionFactory
) -> None:
    log = tmp_path / "pba.log"
    log.write_bytes(made(range(5)) + b"not a line\n")
    _follow_with(sessions, realm, log)
    with log.open("ab") as f:
        f.write(b"nor this\n" + made(range(5, 7)))
    rotate_compressed(log, "pba.log.1.gz", _gz)
    refused: list[Refused] = []
    how = logs.Follow(
        str(log),
        realm,
        "test-made",
        made_format.parse,
        until_idle=True,
    )
    logs.follow(
        lambda: unit_of_work(sessions),
        how,
        by=OPS,
        request_id=lambda: "t",
        on_refused=refused.append,
    )
    assert [(r.file, r.line) for r in refused] == [(str(log), 7)]
    with sessions() as s:
        realm_id = plans.get_realm(s, realm).id
        rows = s.execute(
            text("SELECT file, line FROM log_events WHERE realm_id = :r ORDER BY line"),
            {"r": realm_id},
        ).all()
    assert [tuple(r) for r in rows] == [(str(log), n) for n in (1, 2, 3, 4, 5, 8, 9)]
    whole(sessions)


# -- any order of writes, restarts and rotations (a property) -------------------------------------

_ROTATIONS = ("rename", "rename-gz", "copytruncate", "copytruncate-gz")


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 25),  # lines written
            st.booleans(),  # and half of one more
            st.booleans(),  # then a follow (started, run until idle, stopped)
            st.sampled_from((None, *_ROTATIONS)),  # then a rotation, while down
        ),
        max_size=6,
    )
)
def test_any_writes_restarts_and_rotations_store_every_line_once(
    sessions: SessionFactory, rounds: list[tuple[int, bool, bool, str | None]]
) -> None:
    """Lines written (a half line now and then), follows started and stopped, and the file
    rotated while detnat is down in logrotate's four ways, the rotated files kept: every complete
    line is stored once, numbered in its file, and nothing is warned of. (A rotation waits for a
    line of the file to have been read: a file never read a byte of has no start to be found by,
    and for a line to be whole: logrotate's copy cuts no line here.)"""
    realm = new_realm(sessions)
    with tempfile.TemporaryDirectory() as folder:
        log = Path(folder) / "pba.log"
        log.write_bytes(b"")
        files: list[list[int]] = [[]]  # the keys of each file's complete lines, oldest first
        half, half_key = b"", -1  # the rest of a line half written, and its key
        seen = 0  # lines of the current file a follow has read
        keys = iter(range(10**6))
        for n, (count, halved, follows, rotation) in enumerate(rounds):
            data, half = half, b""
            if data:
                files[-1].append(half_key)
            written = [next(keys) for _ in range(count)]
            files[-1] += written
            data += made(written)
            if halved:
                half_key = next(keys)
                data, half = data + line(half_key)[:9], line(half_key)[9:]
            with log.open("ab") as f:
                f.write(data)
            if follows:
                assert _follow_with(sessions, realm, log).gaps == []
                seen = len(files[-1])
            if rotation is None or half or not seen:
                continue
            rotated = log.with_name(f"pba.log-{n}")
            if rotation.startswith("rename"):
                os.rename(log, rotated)
                log.write_bytes(b"")
            else:
                shutil.copyfile(log, rotated)
                with log.open("r+b") as f:
                    f.truncate(0)
            if rotation.endswith("-gz"):
                _gz(rotated.with_name(rotated.name + ".gz"), rotated.read_bytes())
                rotated.unlink()
            files.append([])
            seen = 0
        last = _follow_with(sessions, realm, log)
    assert last.gaps == []
    assert stored(sessions, realm) == as_read(*files)
    whole(sessions)


CEF_A10 = (
    "<134>{} a10 CEF:0|A10|CFW|6.0.0-P1|CGN 106|Nat Port Batch Pool Allocated|5|proto=UDP "
    "src=100.65.140.{} sourceTranslatedAddress=99.99.99.12 sourceTranslatedPort={} cn3={}\n"
)


def test_a_follow_dates_a_chunk_after_the_new_year_in_the_new_year(
    sessions: SessionFactory, realm: str, tmp_path: Path
) -> None:
    """The year of a year-less time turns across a follow's chunks, as within one: lines after
    New Year that arrive while a follow runs are of the next year, not of ``--year``."""
    from detnat.logs.formats import parser

    log = tmp_path / "a10.log"
    log.write_bytes(CEF_A10.format("Dec 31 23:59:59", 73, 22016, 22271).encode())
    appended: list[bool] = []

    def parse(
        lines: Iterable[bytes], name: str, options: ParseOptions
    ) -> Iterator[LogEvent | Refused]:
        yield from parser("a10-cef")(lines, name, options)
        if not appended:  # the next chunk arrives once this one is read
            appended.append(True)
            with log.open("ab") as f:
                f.write(CEF_A10.format("Jan  1 00:00:01", 74, 22272, 22527).encode())

    how = logs.Follow(
        str(log),
        realm,
        "a10-cef",
        parse,
        options=ParseOptions(year=2025, tz="UTC"),
        until_idle=True,
    )
    done = logs.follow(lambda: unit_of_work(sessions), how, by=OPS, request_id=lambda: "t")
    assert done.events_stored == 2
    with sessions() as s:
        times = s.execute(
            text("SELECT inside, at FROM log_events WHERE realm_id = :r ORDER BY at"),
            {"r": plans.get_realm(s, realm).id},
        ).all()
    assert [(i, t.isoformat()) for i, t in times] == [
        ("100.65.140.73", "2025-12-31T23:59:59+00:00"),
        ("100.65.140.74", "2026-01-01T00:00:01+00:00"),
    ]
