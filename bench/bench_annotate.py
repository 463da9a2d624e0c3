"""Annotating flow records from a snapshot: in-process, ``detnat annotate``, Dask, Spark.

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_annotate.py [--rows 5000000] [--file-rows 20000000]
        [--cluster-rows 8000000] [--threads 0] [--skip inproc,strings,cli,dask,spark] [--pin]
        [--reencode]

The snapshot is plan-only: one realm, 10 versions over one day (bench/plans/block.yaml with the
block size and assignment changed at each version, a 5-minute session drain), exported from an
in-memory timeline with the service's own :func:`detnat.service.snapshots.build`. Rows are random
flow records of that day (addresses of the pool as ``uint32``, ports, ``timestamp[us, UTC]``).

1. the annotator in this process (:meth:`Annotator.answer` on 1 M-row batches, one thread):
   rows/s wall and per CPU-second (target 10 M rows/s per core), with string answer columns
   and with ``dictionary=True`` (what ``detnat annotate`` writes), beside ``reverse_many``
   alone; also with the addresses as dotted-quad strings;
2. ``detnat annotate`` Parquet -> Parquet on ``--file-rows`` rows: the command's pipeline
   (:func:`detnat.snapshot.files.annotate_file`, ``--threads`` annotating threads) in a child
   process: wall time, CPU time and peak RSS (``os.wait4``); the audit entry the command adds
   is one INSERT and not timed here (target 5 M rows/s, < 1 GB). The input's column chunks are
   copied and only the answers encoded; ``--reencode`` times the pipeline that decodes and
   encodes every column instead (``copy_chunks=False``, what CSV input and row groups too large
   to copy take);
3. Dask on a LocalCluster with 1 and then 2 worker processes (one thread each): the input read
   once and persisted in the workers, a warm-up pass, then the best of three passes that
   annotate every partition and send back only its length (no shuffle): rows/s and the ratio;
4. Spark ``local[1]`` and ``local[2]``, each in a child process (``--pin``: on 1 and on 2 CPUs
   only): the input cached in 16 partitions, a warm-up pass, then three passes into the ``noop``
   sink (no shuffle), each with its wall time and the CPU time of the JVM and of the Python
   workers (``/proc``): rows/s, cores kept busy, CPU per row, and the ratio.

Wall-clock figures need a quiet machine: the script prints the load average beside them.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(ROOT))  # time this checkout's code

from detnat.engine.addresses import parse_ipv4  # noqa: E402
from detnat.planfile import plan_from_data, read_plan  # noqa: E402
from detnat.service import snapshots  # noqa: E402
from detnat.service.timelines import RealmTimeline, Timelines, make_version, to_us  # noqa: E402
from detnat.snapshot import file  # noqa: E402
from detnat.snapshot.annotate import Annotator, Columns  # noqa: E402

DAY = datetime(2026, 3, 14, tzinfo=UTC)
BATCH = 1 << 20


def snapshot_bytes() -> bytes:
    base = read_plan(str(HERE / "plans" / "block.yaml")).to_dict()
    versions = []
    for k in range(10):
        plan = dict(base)
        plan["block"] = {
            "size": (1000, 1008, 992, 1000, 960)[k % 5],
            "assignment": "sequential" if k % 2 == 0 else "staggered",
            "dynamic_blocks": 4,
        }
        plan = plan_from_data(plan).to_dict()
        versions.append(
            make_version(
                id=k + 1,
                seq=k + 1,
                effective_from=DAY + timedelta(hours=k * 2.4) - timedelta(hours=1),
                plan=plan,
                content_sha256=file.content_sha256(plan),
                record_sha256=f"{k:064x}",
                correction=False,
                ranges=plan_from_data(plan).public_ranges(),
            )
        )
    realm = RealmTimeline(1, "cgn-1", timedelta(minutes=5), tuple(versions))
    body = snapshots.build(
        Timelines(1, [realm]),
        ["cgn-1"],
        start=DAY,
        end=DAY + timedelta(days=1),
        now=DAY + timedelta(days=2),
        case="BENCH-1",
    )
    return file.encode(body)


def flows(n: int, seed: int) -> pa.Table:
    rnd = np.random.default_rng(seed)
    pools = np.array(
        [parse_ipv4(a) for a in ("192.0.2.0", "198.51.100.0", "203.0.113.0", "145.254.10.0")],
        dtype=np.int64,
    )
    ip = (pools[rnd.integers(0, 4, n)] + rnd.integers(1, 255, n)).astype(np.uint32)
    port = rnd.integers(1024, 65536, n).astype(np.int32)
    at = to_us(DAY) + rnd.integers(0, 86_400_000_000, n)
    return pa.table(
        {
            "src_addr": ip,
            "src_port": port,
            "time": pa.array(at, pa.timestamp("us", tz="UTC")),
            "bytes": rnd.integers(40, 1500, n).astype(np.int32),
        }
    )


def engine_alone(annotator: Annotator, table: pa.Table) -> float:
    """rows/s of one ``Mapper.reverse_many`` over the rows: the floor under any annotation."""
    mapper = annotator.snapshot.realms[0].versions[0].mapper
    assert mapper is not None
    parts = [
        (b.column("src_addr").to_numpy().astype(np.int64), b.column("src_port").to_numpy())
        for b in table.to_batches(max_chunksize=BATCH)
    ]
    best = float("inf")
    for _ in range(3):
        started = time.perf_counter()
        for ip, port in parts:
            mapper.reverse_many(ip, port)
        best = min(best, time.perf_counter() - started)
    return table.num_rows / best


def in_process(
    annotator: Annotator, table: pa.Table, *, strings: bool, dictionary: bool = False
) -> tuple[float, float]:
    """(rows/s wall, rows/s of this process's CPU time), best of three passes, one thread."""
    batches = table.to_batches(max_chunksize=BATCH)
    columns = []
    for b in batches:
        ip = b.column("src_addr")
        if strings:
            ints = ip.to_numpy().astype(np.int64)
            ip = pa.array(
                [f"{v >> 24}.{(v >> 16) & 255}.{(v >> 8) & 255}.{v & 255}" for v in ints.tolist()]
            )
        columns.append((ip, b.column("src_port"), b.column("time")))
    annotator.answer(*columns[0])  # warm: texts of subscribers, compiled plans
    best, best_cpu = float("inf"), float("inf")
    for _ in range(3):
        started, cpu = time.perf_counter(), time.process_time()
        for c in columns:
            annotator.answer(*c, dictionary=dictionary)
        best = min(best, time.perf_counter() - started)
        best_cpu = min(best_cpu, time.process_time() - cpu)
    return table.num_rows / best, table.num_rows / best_cpu


CHILD = """
import sys, time, json
sys.path.insert(0, {root!r})
from detnat.snapshot import file, files
from detnat.snapshot.annotate import Annotator, Columns
from detnat.snapshot.jobs import JobSummary
snap = file.read({snap!r})
worker = Annotator(snap, columns=Columns(ip="src_addr", port="src_port", time="time"))
summary = JobSummary("cli", "BENCH-1", snap.sha256, snap.case)
started, cpu = time.perf_counter(), time.process_time()
with open({out!r}, "wb") as sink:
    files.annotate_file(worker, {source!r}, sink, out_format="parquet", summary=summary{threads},
                        copy_chunks={copy})
print(json.dumps({{"seconds": time.perf_counter() - started, "cpu": time.process_time() - cpu,
                  "rows": summary.output_rows}}))
"""


def command_pipeline(
    snap: Path, source: Path, out: Path, threads: int | None, copy: bool = True
) -> tuple[float, float, float, float]:
    """(rows/s inside the pipeline, rows/s wall incl. start-up, CPU seconds inside, peak RSS in
    MB) of the command's pipeline in a child process."""
    import json

    script = CHILD.format(
        root=str(ROOT),
        snap=str(snap),
        source=str(source),
        out=str(out),
        threads=f", threads={threads}" if threads else "",
        copy=copy,
    )
    started = time.perf_counter()
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(child.pid, 0)
    wall = time.perf_counter() - started
    assert child.stdout is not None
    shown = json.loads(child.stdout.read())
    assert status == 0
    rows = shown["rows"]
    return rows / shown["seconds"], rows / wall, shown["cpu"], usage.ru_maxrss / 1024


def dask_rate(snap: Path, source: Path, workers: int) -> float:
    """rows/s of annotation alone on a LocalCluster: the input is read once and kept in the
    workers' memory, one warm-up pass loads the snapshot in every worker, then the best of three
    passes; each pass counts the statuses of each annotated partition (no shuffle, nothing sent
    back but the counts). One partition per row group, several per worker."""
    import dask.dataframe as dd
    from distributed import Client, LocalCluster, wait

    from detnat.integrations import dask as detnat_dask
    from detnat.snapshot.annotate import Columns

    chosen = Columns(ip="src_addr", port="src_port", time="time")
    with (
        LocalCluster(
            n_workers=workers, threads_per_worker=1, processes=True, dashboard_address=None
        ) as cluster,
        Client(cluster),
    ):
        frame = dd.read_parquet(str(source), dtype_backend="pyarrow", split_row_groups=True)
        frame = frame.persist()
        wait(frame)
        rows = int(frame.map_partitions(len).compute().sum())

        def counted(nonce: int) -> Any:
            # Each pass its own keys: a graph computed again at once can be answered from the
            # results the scheduler has not released yet (a pass of 8 ms instead of 1.4 s).
            fresh = frame.map_partitions(_same, nonce, meta=frame._meta)
            annotated = detnat_dask.annotate(fresh, snap, columns=chosen)
            return annotated.map_partitions(_answered, meta=(None, "int64"))

        assert int(counted(-1).compute().sum()) == rows  # warm the workers, check every row
        best = float("inf")
        for nonce in range(3):
            graph = counted(nonce)
            started = time.perf_counter()
            graph.compute()  # every partition annotated, one number back each, no shuffle
            best = min(best, time.perf_counter() - started)
        return rows / best


def _same(part: Any, nonce: int) -> Any:
    return part


def _answered(part: Any) -> Any:
    """Rows of an annotated partition with a status: reads an answer column, so that no
    optimiser can count the rows without annotating them."""
    import pandas as pd

    return pd.Series([int(part["status"].count())])


SPARK_CONF = {
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.maxRecordsPerBatch": "262144",
    "spark.python.worker.reuse": "true",
    # A heap that holds the cached input with room to spare, and a collector without concurrent
    # marking threads: with the default 1 GB and G1, marking took 10-30 % of the JVM's CPU.
    "spark.driver.memory": "4g",
    "spark.driver.extraJavaOptions": "-XX:+UseParallelGC",
}


def process_cpu() -> tuple[float, float]:
    """CPU seconds so far of this process's descendants: (the JVM, everything else -- Spark's
    Python daemon and workers), user + system, reaped children included (/proc/PID/stat)."""
    tick = os.sysconf("SC_CLK_TCK")
    children: dict[int, list[tuple[int, str, float]]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        name = text[text.index("(") + 1 : text.rindex(")")]
        fields = text[text.rindex(")") + 2 :].split()
        cpu = sum(int(x) for x in fields[11:15]) / tick  # utime stime cutime cstime
        children.setdefault(int(fields[1]), []).append((int(entry), name, cpu))
    jvm = python = 0.0
    todo = [os.getpid()]
    while todo:
        for pid, name, cpu in children.get(todo.pop(), []):
            if name == "java":
                jvm += cpu
            else:
                python += cpu
            todo.append(pid)
    return jvm, python


def spark_child(snap: Path, source: Path, cores: int, pin: bool) -> dict[str, Any]:
    """In a process of its own (a JVM outlives ``session.stop()``, and CPU affinity is inherited
    when it starts): Spark ``local[cores]``, the input cut into 16 partitions and cached first, a
    warm-up pass (the Python workers load the snapshot), then three passes into the ``noop`` sink
    (every row annotated, no shuffle, no output), each with its wall time and the CPU time of the
    JVM and of the Python workers. ``pin``: the JVM and its workers on ``cores`` CPUs only."""
    from pyspark.sql import SparkSession

    from detnat.integrations import spark as detnat_spark
    from detnat.snapshot.annotate import Columns

    if pin:
        os.sched_setaffinity(0, set(sorted(os.sched_getaffinity(0))[:cores]))
    os.environ["PYSPARK_PYTHON"] = sys.executable
    os.environ["PYTHONPATH"] = str(ROOT)  # the workers import this checkout's detnat
    builder = SparkSession.builder.master(f"local[{cores}]")
    for key, value in SPARK_CONF.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    try:
        frame = session.read.parquet(str(source)).repartition(16).cache()
        rows = frame.count()  # the shuffle and the read happen here, before timing
        chosen = Columns(ip="src_addr", port="src_port", time="time")
        annotated = detnat_spark.annotate(frame, snap, columns=chosen)
        annotated.write.format("noop").mode("overwrite").save()  # warm
        passes = []
        for _ in range(3):
            jvm, python = process_cpu()
            started = time.perf_counter()
            annotated.write.format("noop").mode("overwrite").save()
            wall = time.perf_counter() - started
            jvm_after, python_after = process_cpu()
            passes.append((wall, jvm_after - jvm, python_after - python))
        return {"rows": rows, "passes": passes}
    finally:
        session.stop()


def spark_rate(snap: Path, source: Path, cores: int, pin: bool) -> dict[str, Any]:
    """:func:`spark_child` in a child process: its rows and passes."""
    import json

    command = [sys.executable, __file__, "--spark-child", str(cores), str(snap), str(source)]
    if pin:
        command.append("--pin")
    shown = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
    found: dict[str, Any] = json.loads(shown.strip().splitlines()[-1])
    return found


def spark_report(cores: int, result: dict[str, Any]) -> float:
    """Print one local[cores] line; the best pass's rows/s."""
    rows, passes = result["rows"], result["passes"]
    wall, jvm, python = min(passes)  # the best pass
    cpu = [(j + p) / rows * 1e6 for _, j, p in passes]
    print(
        f"spark local[{cores}]: best {rows / wall / 1e6:.2f} M rows/s wall "
        f"(that pass: JVM {jvm:.2f} s, Python workers {python:.2f} s CPU, "
        f"{(jvm + python) / wall:.2f} cores busy); CPU per row over the passes "
        f"{min(cpu):.2f}-{max(cpu):.2f} us (JVM share {jvm / (jvm + python):.0%}); "
        f"load {os.getloadavg()[0]:.1f}"
    )
    return float(rows / wall)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=5_000_000)
    parser.add_argument("--file-rows", type=int, default=20_000_000)
    parser.add_argument("--cluster-rows", type=int, default=8_000_000)
    parser.add_argument("--threads", type=int, default=0, help="pipeline threads (0: cores)")
    parser.add_argument("--skip", default="", help="inproc,strings,cli,dask,spark")
    parser.add_argument(
        "--pin", action="store_true", help="Spark local[N] on N CPUs only (see docs/scale-out.md)"
    )
    parser.add_argument(
        "--reencode", action="store_true", help="pipeline: decode and encode every column"
    )
    parser.add_argument("--spark-child", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.spark_child:
        import json

        cores, snap, source = args.spark_child
        found = spark_child(Path(snap), Path(source), int(cores), args.pin)
        print(json.dumps(found))
        return
    skip = set(args.skip.split(","))
    print(f"load average at start: {os.getloadavg()}")
    data = snapshot_bytes()
    snap = file.load(data)
    print(f"snapshot: {len(snap.realms[0].versions)} versions, {len(data)} bytes")
    annotator = Annotator(snap, columns=Columns(ip="src_addr", port="src_port", time="time"))
    if "inproc" not in skip:
        table = flows(args.rows, 1)
        floor = engine_alone(annotator, table)
        print(f"Mapper.reverse_many alone, one version: {floor / 1e6:.1f} M rows/s (one thread)")
        for dictionary in (False, True):
            wall, cpu = in_process(annotator, table, strings=False, dictionary=dictionary)
            kind = "dictionary status/reason/realm" if dictionary else "string columns"
            print(
                f"in-process, uint32 addresses, {kind}: {wall / 1e6:.1f} M rows/s wall, "
                f"{cpu / 1e6:.1f} M rows/s CPU (one thread), {floor / wall:.1f}x the engine's time"
            )
        if "strings" not in skip:
            small = table.slice(0, min(args.rows, 2_000_000))
            wall, cpu = in_process(annotator, small, strings=True)
            print(
                f"in-process, dotted-quad strings: {wall / 1e6:.1f} M rows/s wall, "
                f"{cpu / 1e6:.1f} M rows/s CPU (one thread)"
            )
        del table
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        snap_path = path / "bench.detnat"
        snap_path.write_bytes(data)
        if "cli" not in skip:
            source = path / "flows.parquet"
            with pq.ParquetWriter(source, flows(1, 0).schema) as writer:
                for k in range(0, args.file_rows, 2_000_000):
                    writer.write_table(flows(min(2_000_000, args.file_rows - k), k + 2))
            size = source.stat().st_size
            print(f"input: {args.file_rows} rows, {size / 1e6:.0f} MB Parquet")
            out = path / "out.parquet"
            inside, wall, cpu, rss = command_pipeline(
                snap_path, source, out, args.threads, not args.reencode
            )
            how = "every column re-encoded" if args.reencode else "input chunks copied"
            print(
                f"detnat annotate pipeline ({how}): {inside / 1e6:.2f} M rows/s, "
                f"{wall / 1e6:.2f} M rows/s with start-up; {cpu:.1f} s CPU "
                f"({args.file_rows / cpu / 1e6:.2f} M rows per CPU-second, "
                f"{cpu / args.file_rows * 1e9:.0f} ns a row); peak RSS {rss:.0f} MB; "
                f"output {out.stat().st_size / 1e6:.0f} MB; load {os.getloadavg()[0]:.1f}"
            )
            source.unlink()
            out.unlink()
        cluster = path / "cluster.parquet"
        if not {"dask", "spark"} <= skip:
            pq.write_table(
                flows(args.cluster_rows, 99), cluster, row_group_size=args.cluster_rows // 16
            )
        if "dask" not in skip:
            one, two = dask_rate(snap_path, cluster, 1), dask_rate(snap_path, cluster, 2)
            print(
                f"dask LocalCluster: 1 worker {one / 1e6:.2f} M rows/s, 2 workers "
                f"{two / 1e6:.2f} M rows/s: x{two / one:.2f}; load {os.getloadavg()[0]:.1f}"
            )
        if "spark" not in skip:
            one = spark_report(1, spark_rate(snap_path, cluster, 1, args.pin))
            two = spark_report(2, spark_rate(snap_path, cluster, 2, args.pin))
            pinned = "pinned to 1 and 2 CPUs" if args.pin else "not pinned"
            print(f"spark local[1] -> local[2] ({pinned}): x{two / one:.2f}")
    print(
        f"this process peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MB"
    )


if __name__ == "__main__":
    main()
