"""``--follow`` through a rotation that keeps the file's identity: ``copytruncate``.

Found by a careless-operator review: the position a follow resumes from was keyed by the file's
identity (device:inode) alone, so a file rotated by logrotate's ``copytruncate`` (the same inode,
emptied, then written again) was read from the old offset: every line written before the file
grew past it was lost, and the first line read after was read from its middle. (A new file that
reuses a deleted file's inode -- ext4 hands freed inodes out again -- is the same case.) The start
of the file as read is now stored beside the position (see ``test_follow_rotation.py``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from typer.testing import CliRunner

from detnat.logs.events import EventKind
from tests.logs.test_cli_logs import lines, run, summary

pytestmark = pytest.mark.postgres

A, R = EventKind.ALLOCATE, EventKind.RELEASE


def test_follow_reads_a_file_truncated_in_place_from_its_start(
    cli: CliRunner, realm: str, tmp_path: Path
) -> None:
    log = tmp_path / "pba.log"
    follow = ("logs", "ingest", realm, "--format", "test-made", "--follow", "--until-idle")
    log.write_bytes(
        lines((A, 0, "100.64.0.1", 1024), (A, 1, "100.64.0.2", 1536), (R, 5, "100.64.0.1", 1024))
    )
    first = run(cli, *follow, "--json", str(log))
    assert summary(first)["lines_read"] == 3
    shutil.copyfile(log, tmp_path / "pba.log.1")  # logrotate copytruncate: copy, then truncate
    with log.open("r+b") as f:
        f.truncate(0)
    with log.open("ab") as f:
        f.write(lines((R, 7, "100.64.0.2", 1536)))
    second = run(cli, *follow, "--json", str(log))
    assert second.exit_code == 0, second.output
    assert (summary(second)["lines_read"], summary(second)["events_stored"]) == (1, 1)
