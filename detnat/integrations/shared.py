"""What the entry points share: one verified snapshot and annotator per worker process."""

from __future__ import annotations

import threading
from collections.abc import Callable
from pathlib import Path

from detnat.errors import InvalidInput
from detnat.snapshot import file
from detnat.snapshot.annotate import Annotator, Columns
from detnat.snapshot.jobs import JobSummary

_CACHE: dict[tuple[str, Columns, int], Annotator] = {}
_LOCK = threading.Lock()


def read_snapshot(path: str | Path) -> tuple[bytes, file.Snapshot]:
    """A snapshot file's bytes and the snapshot (checked: a changed byte is refused)."""
    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InvalidInput(f"cannot read {path}: {exc.strerror}", field=file.FIELD) from None
    return data, file.load(data)


def annotator_for(
    data: Callable[[], bytes], sha256: str, columns: Columns, tolerance_us: int
) -> Annotator:
    """The annotator of a snapshot (``data()`` gives its bytes), made once per process; refused
    unless the bytes are the snapshot the driver checked (``sha256``)."""
    key = (sha256, columns, tolerance_us)
    with _LOCK:
        found = _CACHE.get(key)
    if found is not None:
        return found
    loaded = file.load(data())
    if loaded.sha256 != sha256:
        raise InvalidInput(
            f"the workers' snapshot is {loaded.sha256}, not {sha256} as checked", field=file.FIELD
        )
    made = Annotator(loaded, columns=columns, tolerance_us=tolerance_us)
    with _LOCK:
        return _CACHE.setdefault(key, made)


def new_summary(engine: str, case: str, snapshot: file.Snapshot, tolerance_us: int) -> JobSummary:
    return JobSummary(
        engine=engine,
        case=case,
        snapshot_sha256=snapshot.sha256,
        snapshot_case=snapshot.case,
        tolerance_us=tolerance_us,
    )
