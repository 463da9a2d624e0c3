"""Batch reverse end to end: the real ``detnat`` command on a 1,000,000-row CSV.

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_batch.py [--rows 1000000] [--kind plain|abuse]
                                          [--plan block|map|dslite|PATH] [--keep DIR]

It writes a CSV of ``--rows`` queries against ``--plan`` (a name in bench/plans, block.yaml unless
told) into a temporary folder
(``plain``: ``ip,port``; ``abuse``: ``ip,port,time,case,url`` with quoted fields, CRLF and 1% bad
rows, as complaint exports come), then times, each best of ``--repeat``:

1. ``detnat reverse --plan PLAN --batch IN.csv -o OUT.csv`` as a subprocess: wall time,
   rows/s, peak RSS of the child (``os.wait4``), and the command's start-up alone
   (``detnat --version``) for scale;
2. :func:`detnat.batch.reverse_csv` in this process;
3. the plain way in this process: csv module + ipaddress + ``Mapper.reverse`` per row;

checks that all three wrote the same answers, and prints the ratios. The targets: 1,000,000
rows/s end to end, 5x the plain way, peak RSS under 300 MB whatever the size.
"""

from __future__ import annotations

import argparse
import csv
import ipaddress
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
# Time this checkout's code, not whichever checkout the virtualenv was installed from: the
# package is installed editable, so without this a worktree would measure another tree.
sys.path.insert(0, str(ROOT))

import detnat  # noqa: E402
from detnat.batch import reverse_csv  # noqa: E402
from detnat.engine import Mapper  # noqa: E402
from detnat.errors import InvalidInput  # noqa: E402
from detnat.planfile import load_mapper  # noqa: E402
from detnat.subscriber_text import format_ipv4_many  # noqa: E402

assert Path(detnat.__file__).resolve().parent == ROOT / "detnat", "timing another checkout"

PLANS = HERE / "plans"
DETNAT = Path(sys.executable).with_name("detnat")


# -- input ---------------------------------------------------------------------------------------


def generate(path: Path, rows: int, kind: str, mapper: Mapper, seed: int = 5) -> None:
    """Queries as complaints bring them: mostly the plan's pool, some other public addresses."""
    rng = np.random.default_rng(seed)
    assert mapper.plan.outside is not None
    nets = mapper.plan.outside.prefixes
    starts = np.array([n.network for n in nets], dtype=np.int64)
    sizes = np.array([1 << (32 - n.length) for n in nets], dtype=np.int64)
    with path.open("wb") as out:
        out.write(b"ip,port\n" if kind == "plain" else b"ip,port,time,case,url\r\n")
        done = 0
        while done < rows:
            n = min(200_000, rows - done)
            which = rng.integers(0, len(nets), n)
            addresses = starts[which] + rng.integers(0, 1 << 30, n) % sizes[which]
            elsewhere = rng.random(n) < 0.1  # not in this plan's pool: answered not_in_pool
            addresses[elsewhere] = 0x5DB8D800 + rng.integers(0, 256, int(elsewhere.sum()))
            text, lengths = format_ipv4_many(addresses, b"")
            ips = [
                row[:k].tobytes().decode() for row, k in zip(text, lengths.tolist(), strict=True)
            ]
            ports = rng.integers(0, 65536, n).tolist()
            if kind == "plain":
                lines = [f"{ip},{port}\n" for ip, port in zip(ips, ports, strict=True)]
            else:
                bad = rng.random(n) < 0.01
                lines = []
                for i, (ip, port) in enumerate(zip(ips, ports, strict=True)):
                    if bad[i]:
                        ip = ("1.2.3", "01.2.3.4", "::ffff:192.0.2.1", "10.0.0.1")[i % 4]
                    seconds = (done + i) % 86400
                    lines.append(
                        f"{ip},{port},2026-03-01T{seconds // 3600:02}:{seconds // 60 % 60:02}:"
                        f'{seconds % 60:02}Z,CASE-{done + i},"http://example.com/a,b?{i}"\r\n'
                    )
            out.write("".join(lines).encode())
            done += n


# -- the three ways ------------------------------------------------------------------------------


def _child_env() -> dict[str, str]:
    """The environment of the CLI child: this checkout first on its import path."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def run_cli(plan: Path, source: Path, target: Path) -> tuple[float, int]:
    """(wall seconds, peak RSS bytes) of one ``detnat reverse --batch`` run."""
    target.unlink(missing_ok=True)
    start = time.perf_counter()
    process = subprocess.Popen(
        [str(DETNAT), "reverse", "--plan", str(plan), "--batch", str(source), "-o", str(target)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=_child_env(),
    )
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.stderr is not None
    message = process.stderr.read().decode(errors="replace")
    process.stderr.close()
    if process.returncode not in (0, 2) or not target.exists():  # 2: the file had bad rows
        raise SystemExit(f"detnat failed ({process.returncode}): {message}")
    return wall, usage.ru_maxrss * 1024


def startup() -> float:
    start = time.perf_counter()
    subprocess.run([str(DETNAT), "--version"], check=True, capture_output=True, env=_child_env())
    return time.perf_counter() - start


def run_inprocess(mapper: Mapper, source: Path, target: Path) -> float:
    start = time.perf_counter()
    with source.open("rb") as reader, target.open("wb") as writer:
        reverse_csv(mapper, reader, writer)
    return time.perf_counter() - start


def run_plain(mapper: Mapper, source: Path, target: Path) -> float:
    """What one writes without detnat.batch: csv in, ipaddress, reverse per row, csv out."""
    start = time.perf_counter()
    with (
        source.open(newline="", encoding="utf-8-sig") as reader,
        target.open("w", newline="", encoding="utf-8") as writer,
    ):
        rows = csv.reader(reader)
        out = csv.writer(writer, lineterminator="\n")
        header = next(rows)
        ip_at, port_at = header.index("ip"), header.index("port")
        out.writerow([*header, "status", "reason", "subscriber"])
        for row in rows:
            if not row:
                continue
            try:
                address = int(ipaddress.IPv4Address(row[ip_at]))
                port = int(row[port_at])
                answer = mapper.reverse(address, port)
            except (ValueError, InvalidInput) as exc:
                out.writerow([*row, "error", str(exc), ""])
                continue
            out.writerow(
                [
                    *row,
                    answer.status.value,
                    answer.reason.value if answer.reason else "",
                    str(answer.allocation.subscriber) if answer.allocation else "",
                ]
            )
    return time.perf_counter() - start


def answers(path: Path) -> list[tuple[str, ...]]:
    """(status, subscriber) of every row, and the reason of answered rows (errors are worded
    differently by the plain way)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        next(rows)
        return [(r[-3], r[-1]) if r[-3] == "error" else (r[-3], r[-2], r[-1]) for r in rows if r]


# -- report --------------------------------------------------------------------------------------


def best_of(repeat: int, run: Any, *args: Any) -> Any:
    results = [run(*args) for _ in range(repeat)]
    return min(results, key=lambda r: r[0] if isinstance(r, tuple) else r)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--kind", choices=("plain", "abuse"), default="plain")
    parser.add_argument(
        "--plan",
        default="block",
        help="a plan of bench/plans by name (block, map, dslite) or a plan file's path",
    )
    parser.add_argument("--repeat", type=int, default=3, help="runs per way; the best counts")
    parser.add_argument("--no-plain", action="store_true", help="skip the slow plain way")
    parser.add_argument("--keep", type=Path, help="write the files here and keep them")
    args = parser.parse_args(argv)

    plan = PLANS / f"{args.plan}.yaml" if "/" not in args.plan else Path(args.plan)
    mapper = load_mapper(plan)
    folder = Path(tempfile.mkdtemp(prefix="detnat-bench-")) if args.keep is None else args.keep
    folder.mkdir(parents=True, exist_ok=True)
    try:
        source = folder / "in.csv"
        generate(source, args.rows, args.kind, mapper)
        size = source.stat().st_size
        print(
            f"python {platform.python_version()}, numpy {np.__version__}, {os.cpu_count()} CPUs; "
            f"{args.rows:,} rows ({args.kind}), {size / 1e6:.1f} MB, plan {plan.name}"
        )
        rows = args.rows

        if DETNAT.exists():
            wall, rss = best_of(args.repeat, run_cli, plan, source, folder / "cli.csv")
            boot = min(startup() for _ in range(args.repeat))
            print(
                f"  detnat CLI (subprocess)  {wall:6.2f} s  {rows / wall:12,.0f} rows/s  "
                f"peak RSS {rss / 2**20:5.0f} MB   (of which start-up {boot:.2f} s)"
            )
        else:
            wall = None
            print(f"  detnat CLI               not found at {DETNAT}: skipped")

        inproc = best_of(args.repeat, run_inprocess, mapper, source, folder / "inprocess.csv")
        print(f"  reverse_csv (in-process) {inproc:6.2f} s  {rows / inproc:12,.0f} rows/s")
        if (
            wall is not None
            and (folder / "cli.csv").read_bytes() != (folder / "inprocess.csv").read_bytes()
        ):
            raise SystemExit("the CLI and reverse_csv wrote different files")

        if not args.no_plain:
            plain = run_plain(mapper, source, folder / "plain.csv")
            print(f"  plain csv+ipaddress      {plain:6.2f} s  {rows / plain:12,.0f} rows/s")
            if answers(folder / "plain.csv") != answers(folder / "inprocess.csv"):
                raise SystemExit("the plain way and reverse_csv answered differently")
            print("  all ways gave the same answers")
            print(f"  reverse_csv is {plain / inproc:.1f}x the plain way in-process", end="")
            if wall is not None:
                print(f"; the CLI end to end is {plain / wall:.1f}x it", end="")
            print()
        if wall is not None:
            verdict = "meets" if rows / wall >= 1e6 else "BELOW"
            print(f"  end to end {rows / wall:,.0f} rows/s: {verdict} the 1,000,000 rows/s target")
    finally:
        if args.keep is None:
            shutil.rmtree(folder)


if __name__ == "__main__":
    main()
