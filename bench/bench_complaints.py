"""A mailbox export of 100,000 complaints of mixed formats, answered end to end (target ≤ 60 s).

Run by hand (not part of the tests)::

    .venv/bin/python bench/bench_complaints.py [--messages 100000] [--runs 2]

Creates a throwaway database on the Postgres of ``DETNAT_TEST_DATABASE_URL`` (default the local
one, 127.0.0.1:5432), publishes ``plans/block.yaml`` into one realm through the CLI, writes an
mbox whose messages are, in turn: ARF feedback reports with a source port (30 %), X-ARF 0.2 mails
(service port 22: 15 %), Abusix XARF JSON mails (20 %), XARF 4.0.0 JSON attachments in
``multipart/report`` mails (10 %), ACNS notices in mail text (20 %, one in ten with a disagreeing
text timestamp and an unescaped ``&``) and mails that are no complaint (5 %); addresses from the
plan's pool, times over 2021. Then it times ``detnat complaints answer BOX --case C -o OUT.csv
--summary`` as a subprocess of this checkout (audit included), and the readers alone in-process
(parse only, no store) and reading plus answering in-process on one core (CPU seconds: the
figure that does not move with the machine's load), best of ``--runs``. The database is dropped
at the end.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.bench_store_cli import PLAN, detnat, throwaway_database  # noqa: E402


def _when(rnd: random.Random) -> tuple[str, str]:
    day, hour, minute, second = (
        rnd.randrange(1, 29), rnd.randrange(24), rnd.randrange(60), rnd.randrange(60),
    )  # fmt: skip
    month = rnd.randrange(1, 13)
    iso = f"2021-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}Z"
    names = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]
    mail = f"{day:02} {names[month - 1]} 2021 {hour:02}:{minute:02}:{second:02} +0000"
    return iso, mail


def message(n: int, rnd: random.Random) -> bytes:
    ip = f"{rnd.choice(('192.0.2', '198.51.100', '203.0.113'))}.{rnd.randrange(1, 255)}"
    port = rnd.randrange(1024, 65536)
    iso, mail = _when(rnd)
    kind = n % 20
    if kind < 6:  # ARF
        return (
            f"From: fbl@example.com\nMessage-ID: <{n}@example.com>\n"
            'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nAn abuse report.\n--b\n"
            "Content-Type: message/feedback-report\n\nFeedback-Type: abuse\n"
            f"User-Agent: Bench/1\nVersion: 1\nArrival-Date: Mon, {mail}\nSource-IP: {ip}\n"
            f"Source-Port: {port}\n\n--b--\n"
        ).encode()
    if kind < 9:  # X-ARF 0.2
        return (
            f"From: x@example.org\nX-XARF: PLAIN\nContent-Type: multipart/mixed; boundary=q\n\n"
            "--q\nContent-Type: text/plain\n\nLogin attacks.\n--q\nContent-Type: text/plain\n\n"
            "Reported-From: x@example.org\nCategory: abuse\nReport-Type: login-attack\n"
            f"Service: ssh\nVersion: 0.2\nDate: {mail}\nSource-Type: ip-address\n"
            f"Source: {ip}\nPort: 22\nReport-ID: {n}@example.org\n--q--\n"
        ).encode()
    if kind < 13:  # Abusix XARF JSON
        report = {
            "ReporterInfo": {"ReporterOrg": "Bench"}, "Disclosure": True,
            "Report": {"ReportClass": "Activity", "ReportType": "LoginAttack", "Date": iso,
                       "SourceIp": ip, "SourcePort": port},
        }  # fmt: skip
        return b"Content-Type: application/json\n\n" + json.dumps(report).encode() + b"\n"
    if kind < 15:  # XARF 4.0.0 in a multipart/report
        report = {
            "xarf_version": "4.0.0", "report_id": f"r-{n}", "timestamp": iso,
            "source_identifier": ip, "source_port": port, "category": "connection",
            "type": "login_attack",
        }  # fmt: skip
        return (
            'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\n\n'
            "--b\nContent-Type: text/plain\n\nsee the report\n--b\n"
            "Content-Type: application/json; name=report.json\n\n"
            + json.dumps(report)
            + "\n--b--\n"
        ).encode()
    if kind < 19:  # ACNS
        odd = n % 10 == 0
        said = "Initial Infringement Timestamp: 2021-01-01T00:00:00Z\n" if odd else ""
        title = "Tom & Jerry" if odd else "Big Buck Bunny"
        return (
            "Subject: Notice\nContent-Type: text/plain; charset=utf-8\n\n"
            f'Dear ISP,\n{said}\n<?xml version="1.0"?>\n'
            '<Infringement xmlns="http://www.acns.net/ACNS"><Case><ID>'
            f"A-{n}</ID></Case><Source><TimeStamp>{iso}</TimeStamp><IP_Address>{ip}"
            f"</IP_Address><Port>{port}</Port><Type>BitTorrent</Type></Source><Content><Item>"
            f"<Title>{title}</Title></Item></Content></Infringement>\n"
        ).encode()
    return b"Subject: out of office\n\nBack on Monday.\n"


def write_box(path: Path, messages: int) -> None:
    rnd = random.Random(14)
    with path.open("wb") as out:
        for n in range(messages):
            out.write(b"From bench@example.net Mon Jan  4 10:00:00 2021\n")
            out.write(message(n, rnd) + b"\n")


def read_only(path: Path) -> tuple[float, Counter[str]]:
    """Seconds of CPU (this process, one core) to read every message."""
    from detnat import complaints as intake

    start = time.process_time()
    with path.open("rb") as box:
        kinds = Counter(
            r.format if isinstance(r, intake.Complaint) else "unreadable"
            for r in intake.read(box, path.name)
        )
    return time.process_time() - start, kinds


def in_process(url: str, path: Path) -> tuple[float, float]:
    """(CPU seconds, wall seconds) of reading and answering every message in this process, one
    core (``answer_files`` with one reader; no audit entry, no CLI start-up)."""
    from detnat import complaints as intake
    from detnat.service import complaints, plans, timelines
    from detnat.service.batch_lookups import BatchQuery
    from detnat.store.db import make_engine, make_sessions, unit_of_work

    engine = make_engine(url, pool_size=1)
    try:
        with unit_of_work(make_sessions(engine)) as session:
            snapshot = timelines.TimelineCache().get(session)
    finally:
        engine.dispose()
    query = BatchQuery(snapshot=snapshot, now=plans.utcnow(), mappers=plans.MapperCache())
    sink: list[str] = []
    cpu, wall = time.process_time(), time.perf_counter()
    with path.open("rb") as box:
        complaints.answer_files(query, [(path.name, box)], intake.Options(), sink.append)
    return time.process_time() - cpu, time.perf_counter() - wall


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    with throwaway_database() as url, tempfile.TemporaryDirectory() as folder:
        detnat(url, "db", "upgrade")
        detnat(url, "realm", "create", "bench", "--single-approver")
        detnat(
            url, "plan", "publish", "bench", str(PLAN), "--effective-from",
            "2020-01-01T00:00:00Z", "--reason", "CHG-1", "--correction",
        )  # fmt: skip
        box = Path(folder) / "export.mbox"
        write_box(box, args.messages)
        size = box.stat().st_size
        parse, kinds = min(read_only(box) for _ in range(args.runs))
        inside = min(in_process(url, box) for _ in range(args.runs))
        ends, cpus = [], []
        for run in range(args.runs):
            out = Path(folder) / f"out{run}.csv"
            command = ["complaints", "answer", str(box), "--case", "BENCH-C", "-o", str(out)]
            used = _children_cpu()
            start = time.perf_counter()
            done = detnat(url, *command, "--summary")
            ends.append(time.perf_counter() - start)
            cpus.append(_children_cpu() - used)
        with out.open(newline="") as answers:
            verdicts = Counter(row["verdict"] for row in csv.DictReader(answers))
        counts = done.stderr.strip().splitlines()[-1]
    print(f"python {sys.version.split()[0]}; {args.messages:,} messages, {size / 2**20:.1f} MiB")
    print(f"  formats read: {dict(sorted(kinds.items()))}")
    print(f"  verdicts: {dict(sorted(verdicts.items()))}")
    print(f"  CLI: {counts}")
    best = min(ends)
    rate = f"{args.messages / best:>9,.0f} complaints/s"
    print(f"  end to end  best {best:6.2f} s  {rate}  (target ≤ 60 s)")
    print(f"  CPU of the CLI (its reader processes are not all counted): {min(cpus):6.2f} s")
    print(
        f"  in-process, one core: read and answer {inside[0]:6.2f} s CPU ({inside[1]:.2f} s wall)"
    )
    print(f"  read only   best {parse:6.2f} s CPU  {args.messages / parse:>9,.0f} messages/s")
    print(f"  load average while measuring: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")


def _children_cpu() -> float:
    import resource

    used = resource.getrusage(resource.RUSAGE_CHILDREN)
    return used.ru_utime + used.ru_stime


if __name__ == "__main__":
    os.environ.setdefault("PYTHONHASHSEED", "0")
    main()
