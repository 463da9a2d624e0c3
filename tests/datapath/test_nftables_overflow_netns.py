"""End to end with overflow in use: the kernel hands out dynamic ports, conntrack logs them, and
every port the receiver saw is answered with the subscriber that sent it, from one store.

Three namespaces as in ``test_nftables_netns``: ``sub`` holds the subscribers, ``nat`` runs the
nftables ruleset rendered with ``overflow=on``, ``srv`` records the source address and port of
every flow it receives. While the traffic runs, ``conntrack -E -o timestamp`` (the real tool, in
the ``nat`` namespace) writes the tracker's events to a file. Subscribers that open more flows
than their block has ports spill into the dynamic block of their address. Then:

- the plan is published into a realm of a real store, and the capture is ingested with the real
  ``detnat logs ingest REALM --format conntrack``;
- every address:port the receiver saw is asked of the real ``detnat reverse --realm``: a port of
  a deterministic block is answered by the plan, a port of the dynamic block by the logs
  (``source: "log"``), each with the subscriber that sent the flow (the receiver knows it from
  the flow's payload).

The instant asked is the moment the receiver reports its observations: after the capture holds
every flow's ``[NEW]`` and before the flows end. (The conntrack tool stamps an event when it reads
it from the kernel, a few milliseconds after the packet; a receiver's own stamp of the first
packet can precede that, and a question whose window crosses an allocation's start is rightly
``ambiguous``.) The flows are then ended by flushing the tracker (``conntrack -F``): each
``[DESTROY]`` closes its flow's interval, so the logs prove the whole window.
"""

from __future__ import annotations

import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO

import pytest

from detnat.datapath.nftables import NftablesDatapath
from detnat.engine import Mapper
from detnat.planfile import load_mapper
from detnat.service import plans
from detnat.service.audit import Actor
from detnat.store.db import make_engine, make_sessions, unit_of_work
from tests.datapath import netns
from tests.datapath.plans import plan_file
from tests.store.conftest import throwaway_database

pytestmark = pytest.mark.postgres

# 6 subscribers (10.0.0.1-10.0.0.6) on 2 addresses, 4 deterministic blocks of 20 ports each
# (2000-2079); ports 2080-2099 of each address are the dynamic overflow block.
OVERFLOW = """\
algorithm: block
inside:
  prefixes: ["10.0.0.0/29"]
  subscriber_prefix_length: 32
  exclude: ["10.0.0.0/32", "10.0.0.7/32"]
outside: {prefixes: ["192.0.2.0/31"]}
ports: {first: 2000, last: 2099}
block: {size: 20, dynamic_blocks: 1}
"""
DYNAMIC = range(2080, 2100)
SERVER = "203.0.113.1"
TCP_PORT, UDP_PORT = 7000, 7001
# 10.0.0.1 and 10.0.0.2 (both on 192.0.2.0) overflow with tcp, sharing that address's dynamic
# block; 10.0.0.5 (on 192.0.2.1) overflows with udp and icmp; the others stay in their blocks.
FLOWS = [
    ["10.0.0.1", "tcp", 24],
    ["10.0.0.2", "tcp", 23],
    ["10.0.0.3", "tcp", 2],
    ["10.0.0.3", "udp", 2],
    ["10.0.0.3", "icmp", 2],
    ["10.0.0.5", "udp", 21],
    ["10.0.0.5", "icmp", 2],
    ["10.0.0.6", "tcp", 3],
]
OPS = Actor("ops", "admin")
DETNAT = Path(sys.executable).with_name("detnat")


class Capture:
    """``conntrack -E -o timestamp`` running in a namespace, its lines kept in order."""

    def __init__(self, netns_name: str, file: Path) -> None:
        self.file = file
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", netns_name, "conntrack", "-E", "-o", "timestamp"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.lines: list[str] = []
        self._buffer = b""

    def _read(self, timeout: float) -> None:
        out: IO[bytes] | None = self.proc.stdout
        assert out is not None
        ready, _, _ = select.select([out], [], [], max(timeout, 0))
        if not ready:
            return
        chunk = os.read(out.fileno(), 65536)
        if not chunk:
            raise AssertionError(f"conntrack -E exited: {self._stderr()}")
        self._buffer += chunk
        *done, self._buffer = self._buffer.split(b"\n")
        self.lines.extend(x.decode() for x in done)

    def has(self, wanted: set[str], event: str, timeout: float = 20.0) -> set[str]:
        """Read until every text of ``wanted`` is in some ``[event]`` line; those still missing."""
        deadline = time.monotonic() + timeout
        while True:
            missing = {
                w for w in wanted if not any(f"[{event}]" in x and w in x for x in self.lines)
            }
            left = deadline - time.monotonic()
            if not missing or left <= 0:
                return missing
            self._read(left)

    def wait_for(self, wanted: set[str], event: str, timeout: float = 20.0) -> None:
        missing = self.has(wanted, event, timeout)
        assert not missing, f"no [{event}] within {timeout}s for {sorted(missing)[:5]}"

    def stop(self) -> Path:
        """Stop the tool; the file of every complete line it printed, as it printed them."""
        self.proc.terminate()
        out, _ = self.proc.communicate(timeout=10)
        self._buffer += out
        self.lines.extend(x.decode() for x in self._buffer.split(b"\n") if x)
        self._buffer = b""
        self.file.write_text("".join(x + "\n" for x in self.lines))
        return self.file

    def _stderr(self) -> str:
        self.proc.wait(timeout=5)
        assert self.proc.stderr is not None
        return self.proc.stderr.read().decode().strip()


@pytest.fixture(scope="module")
def database_url() -> Iterator[str]:
    netns.require(need_nft=True, need_conntrack=True)  # before making a database for nothing
    with throwaway_database() as url:
        yield url


def _realm(url: str, mapper: Mapper) -> str:
    engine = make_engine(url, pool_size=1)
    try:
        sessions = make_sessions(engine)
        name = f"nft-overflow-{os.getpid()}"
        with unit_of_work(sessions) as s:
            plans.create_realm(s, name, session_drain=timedelta(0), by=OPS, single_approver=True)
        with unit_of_work(sessions) as s:
            plans.publish(s, name, mapper.plan, effective_from=None, reason="CHG-NETNS", by=OPS)
    finally:
        engine.dispose()
    return name


def _detnat(url: str, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DETNAT_DATABASE_URL": url}
    return subprocess.run(
        [str(DETNAT), *args], capture_output=True, text=True, timeout=120, env=env, check=False
    )


def _reply(seen: dict[str, object]) -> str:
    """How conntrack prints the reply tuple of the flow the receiver saw."""
    if seen["proto"] == "icmp":
        return f"src={SERVER} dst={seen['src']} type=0 code=0 id={seen['port']}"
    server_port = TCP_PORT if seen["proto"] == "tcp" else UDP_PORT
    return f"src={SERVER} dst={seen['src']} sport={server_port} dport={seen['port']}"


def test_every_port_seen_is_answered_from_the_plan_or_from_conntracks_logs(
    tmp_path: Path, database_url: str
) -> None:
    netns.require(need_nft=True, need_conntrack=True)
    plan = plan_file(tmp_path, "overflow", OVERFLOW)
    mapper = load_mapper(plan)
    realm = _realm(database_url, mapper)

    with netns.lab() as lab:
        sub, nat, srv = lab.netns("sub"), lab.netns("nat"), lab.netns("srv")
        lab.link(sub, "eth0", nat, "in0")
        lab.link(nat, "out0", srv, "eth0")
        for n in range(1, 8):
            lab.run(sub, "ip", "addr", "add", f"10.0.0.{n}/24", "dev", "eth0")
        lab.run(sub, "ip", "route", "add", "default", "via", "10.0.0.254")
        lab.run(nat, "ip", "addr", "add", "10.0.0.254/24", "dev", "in0")
        lab.run(nat, "ip", "addr", "add", "203.0.113.254/24", "dev", "out0")
        lab.run(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.run(srv, "ip", "addr", "add", f"{SERVER}/24", "dev", "eth0")
        lab.run(srv, "ip", "route", "add", "192.0.2.0/31", "via", "203.0.113.254")
        datapath = NftablesDatapath(netns=nat, oifname="out0", overflow="on")
        datapath.apply(mapper)
        assert datapath.verify(mapper).ok

        capture = Capture(nat, tmp_path / "conntrack.log")
        try:
            # conntrack says nothing once it listens: a flow of the NAT's own (not translated,
            # so not a port event) shows that it does
            for attempt in range(20):
                send = (
                    f"import socket; socket.socket(2, 2).sendto(b'x', ('{SERVER}', {9 + attempt}))"
                )
                lab.run(nat, sys.executable, "-c", send)
                if not capture.has({f"dst={SERVER} sport="}, "NEW", timeout=1.0):
                    break
            else:
                raise AssertionError("conntrack -E printed no event of the NAT's own flows")
            server = lab.start(srv, "server.py", SERVER, str(TCP_PORT), str(UDP_PORT))
            server.wait_ready()
            client = lab.start(
                sub, "client.py", SERVER, str(TCP_PORT), str(UDP_PORT), json.dumps(FLOWS)
            )
            results = client.finish(timeout=60)
            assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
            seen = [server.json() for _ in range(sum(count for _, _, count in FLOWS))]
            capture.wait_for({_reply(s) for s in seen}, "NEW")
            asked_at = datetime.now(UTC)
            lab.run(nat, "conntrack", "-F")
            capture.wait_for({_reply(s) for s in seen}, "DESTROY")
        finally:
            log = capture.stop()

    # The traffic did what the test is about: overflow ports in use, shared by two subscribers
    # of one address, for tcp, udp and icmp.
    overflowed = {(s["tag"], s["proto"]) for s in seen if s["port"] in DYNAMIC}
    assert overflowed == {
        ("10.0.0.1", "tcp"),
        ("10.0.0.2", "tcp"),
        ("10.0.0.5", "udp"),
        ("10.0.0.5", "icmp"),
    }
    assert sum(1 for s in seen if s["port"] in DYNAMIC) == 4 + 3 + 1 + 2

    ingested = _detnat(
        database_url,
        "logs",
        "ingest",
        realm,
        "--format",
        "conntrack",
        "--log-hold",
        "1h",
        "--json",
        str(log),
    )
    assert ingested.returncode == 0, ingested.stderr
    summary = json.loads(ingested.stdout.strip().splitlines()[-1])
    assert summary["refused"] == 0, summary["refusals"]
    # NEW and DESTROY of every flow through the NAT at least; UPDATEs are interim refreshes
    assert summary["events_stored"] >= 2 * len(seen)

    queries = [f"{s['src']}:{s['port']}" for s in seen]
    asked = _detnat(
        database_url,
        "reverse",
        *queries,
        "--realm",
        realm,
        "--at",
        asked_at.isoformat(),
        "--case",
        "NETNS-1",
        "--json",
    )
    assert asked.returncode == 0, asked.stderr
    answers = [json.loads(line) for line in asked.stdout.splitlines()]
    assert len(answers) == len(seen)
    for s, answer in zip(seen, answers, strict=True):
        where = (s, {k: answer.get(k) for k in ("status", "reason", "source", "subscriber")})
        assert answer["status"] == "match", where
        assert answer["subscriber"] == f"{s['tag']}/32", where
        assert answer["public_ip"] == s["src"], where
        if s["port"] in DYNAMIC:
            assert answer["source"] == "log", where
            assert answer["port_ranges"] == [[s["port"], s["port"]]], where
            # The question names no protocol: the same subscriber's udp flow and icmp echo may
            # hold the same number at once (each candidate shown, the answer still one holder).
            logged = answer["log_candidates"]
            assert {c["subscriber"] for c in logged} == {f"{s['tag']}/32"}, where
            (candidate,) = [c for c in logged if c["protocol"] == s["proto"]]
            kinds = [line["kind"] for line in candidate["lines"]]
            assert kinds[0] == "allocate" and kinds[-1] == "release", where
        else:
            assert answer.get("source", "plan") == "plan", where
            assert [s["port"], s["port"]] in _expand(answer["port_ranges"]), where


def _expand(ranges: list[list[int]]) -> list[list[int]]:
    return [[p, p] for first, last in ranges for p in range(first, last + 1)]
