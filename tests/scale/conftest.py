"""A snapshot of a fixed timeline and flow records to annotate, shared by the scale tests.

The database fixtures are the store tests' (for the CLI, which audits every job).
"""

from __future__ import annotations

import random
from datetime import timedelta
from pathlib import Path

import pyarrow as pa
import pytest

from detnat.service.timelines import to_us
from detnat.snapshot import file
from detnat.snapshot.annotate import Annotator
from tests.scale.timelines import T0, Change, block_plan, snapshot_bytes, timelines_of
from tests.store.conftest import database_url, engine, realm_name, sessions  # noqa: F401

NOW = T0 + timedelta(hours=2)
START = T0 - timedelta(hours=1)
END = T0 + timedelta(hours=1, minutes=30)
CHANGES = [
    Change(0, -1800, block_plan("192.0.2.0/29", ratio=64, dynamic=2, static=True, first_port=1024)),
    Change(0, 600, block_plan("192.0.2.0/29", ratio=128, dynamic=0, static=False, first_port=1024)),
    Change(0, 3000, None),
    Change(1, 0, block_plan("198.51.100.0/29", ratio=64, dynamic=0, static=False, first_port=2000)),
    Change(
        1, 3000, block_plan("192.0.2.0/29", ratio=256, dynamic=8, static=False, first_port=1024)
    ),
]
DRAINS = [300, 30]


def flows(n: int, seed: int = 7) -> pa.Table:
    """Random flow records around the changes (some outside the period, some bad)."""
    rnd = random.Random(seed)
    ips, ports, times = [], [], []
    marks = [to_us(T0) + c.at_s * 1_000_000 for c in CHANGES]
    for _ in range(n):
        ips.append(
            rnd.choice(
                [
                    f"192.0.2.{rnd.randrange(8)}",
                    f"198.51.100.{rnd.randrange(8)}",
                    *("203.0.113.7", "8.8.8.8", "10.0.0.1", "1.2.3", None),
                ]
            )
        )
        ports.append(rnd.choice([rnd.randrange(1024, 65536)] * 6 + [80, 65535, None]))
        if rnd.random() < 0.5:
            times.append(rnd.choice(marks) + rnd.randrange(-400_000_000, 400_000_000))
        else:
            times.append(rnd.randrange(to_us(START) - 600_000_000, to_us(NOW) + 600_000_000))
    return pa.table(
        {
            "id": pa.array(range(n), pa.int64()),
            "ip": pa.array(ips, pa.string()),
            "port": pa.array(ports, pa.int64()),
            "time": pa.array(times, pa.timestamp("us", tz="UTC")),
        }
    )


@pytest.fixture(scope="session")
def snapshot_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    view = timelines_of(DRAINS, CHANGES)
    path = tmp_path_factory.mktemp("snap") / "flows.detnat"
    path.write_bytes(snapshot_bytes(view, start=START, end=END, now=NOW))
    return path


@pytest.fixture(scope="session")
def flow_table() -> pa.Table:
    return flows(3000)


@pytest.fixture(scope="session")
def expected(snapshot_path: Path, flow_table: pa.Table) -> pa.Table:
    """The five answer columns as the annotator gives them in-process."""
    annotator = Annotator(file.read(str(snapshot_path)))
    done = [annotator.annotate(b) for b in flow_table.to_batches(max_chunksize=700)]
    table = pa.Table.from_batches(done)
    return table.select(["id", "subscriber", "status", "reason", "realm", "version"])


def tampered(path: Path, tmp: Path, at: int) -> Path:
    """A copy of ``path`` with the byte at ``at`` changed."""
    data = bytearray(path.read_bytes())
    data[at] = (data[at] + 1) % 256 if data[at] != ord("\n") - 1 else ord("x")
    out = tmp / f"tampered-{at}.detnat"
    out.write_bytes(bytes(data))
    return out
