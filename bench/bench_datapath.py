"""Datapath benchmarks (run by hand, as root for the kernel parts):

    .venv/bin/python bench/bench_datapath.py [--plan bench/plans/block.yaml] [--packets 200000]

- nftables: render the ruleset of a NAT44 plan (subscribers/s, file size), load it with
  ``nft -f`` into a scratch network namespace, read it back and verify it (``nft -j list
  ruleset`` + drift comparison);
- DS-Lite AFTR, packet function only (no I/O): packets/s translated outbound (B4 -> Internet,
  bindings existing), inbound (Internet -> B4), and new bindings/s;
- DS-Lite AFTR process end to end on TUN devices: a generator TUN writes B4 tunnel packets, the
  kernel routes them to the AFTR's TUN, the AFTR process translates, the kernel routes the IPv4
  result back to the generator, which counts. Packets/s over a window of packets in flight.

Prints one line per figure. Parts that need root, ``nft`` or ``/dev/net/tun`` say so and are
skipped when those are missing.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

from detnat.datapath.dslite.packets import UDP, checksum, pseudo_header_sum
from detnat.datapath.dslite.softwire import B4, Aftr, ipv4_packet
from detnat.datapath.dslite.tun import open_tun
from detnat.datapath.nftables import NftablesDatapath, render_ruleset
from detnat.engine.addresses import parse_address
from detnat.planfile import load_mapper, plan_from_text

ROOT = Path(__file__).resolve().parent.parent
DSLITE = """\
algorithm: block
inside: {prefixes: ["2001:db8:b4::/116"], subscriber_prefix_length: 128}
outside: {prefixes: ["192.0.2.0/28"]}
block: {ratio: 256}
"""
AFTR6 = parse_address("2001:db8:af::1")[1]
B4_BASE = parse_address("2001:db8:b4::")[1]
HOST, SERVER = 0xC0A8010A, 0xCB007101


def say(what: str, value: float, unit: str, extra: str = "") -> None:
    print(f"{what:<58} {value:>14,.0f} {unit}{'  ' + extra if extra else ''}", flush=True)


def udp(src: int, dst: int, sport: int, dport: int, data: bytes = b"x" * 18) -> bytes:
    length = 8 + len(data)
    seg = bytearray(struct.pack("!HHHH", sport, dport, length, 0) + data)
    struct.pack_into(
        "!H", seg, 6, checksum(seg, pseudo_header_sum(src, dst, UDP, length)) or 0xFFFF
    )
    return ipv4_packet(src=src, dst=dst, protocol=UDP, payload=bytes(seg))


def can_use_netns() -> str | None:
    if os.geteuid() != 0:
        return "not root"
    if shutil.which("ip") is None:
        return "no ip (iproute2)"
    return None


def setns(fd: int) -> None:
    """Move this (single-threaded) process into the network namespace ``fd`` (os.setns is 3.12+)."""
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.setns(fd, 0x40000000) != 0:  # CLONE_NEWNET
        raise OSError(ctypes.get_errno(), "setns")


def ip_netns(*args: str) -> None:
    subprocess.run(["ip", "netns", *args], check=True, capture_output=True)


# -- nftables -------------------------------------------------------------------------------------


def bench_nftables(plan: Path) -> None:
    mapper = load_mapper(plan)
    started = time.perf_counter()
    text = "".join(render_ruleset(mapper))
    took = time.perf_counter() - started
    n = mapper.subscriber_count
    say(
        f"nftables render ({n:,} subscribers)",
        n / took,
        "subscribers/s",
        f"{took:.2f} s, {len(text) / 1e6:.1f} MB",
    )
    why = can_use_netns() or (None if shutil.which("nft") else "no nft")
    if why:
        print(f"nftables load/verify: skipped ({why})")
        return
    netns = f"dnbench-{uuid.uuid4().hex[:6]}"
    ip_netns("add", netns)
    try:
        dp = NftablesDatapath(netns=netns)
        started = time.perf_counter()
        dp.apply(mapper)
        took = time.perf_counter() - started
        say(
            "nftables apply (render + nft -f, one transaction)",
            n / took,
            "subscribers/s",
            f"{took:.2f} s",
        )
        started = time.perf_counter()
        report = dp.verify(mapper)
        took = time.perf_counter() - started
        assert report.ok, report.problems or report.drifts[:3]
        say(
            "nftables verify (nft -j list ruleset + compare)",
            n / took,
            "subscribers/s",
            f"{took:.2f} s",
        )
    finally:
        ip_netns("del", netns)


# -- DS-Lite AFTR, packet function ----------------------------------------------------------------


def bench_aftr_function(packets: int) -> None:
    mapper = plan_from_text(DSLITE)
    from detnat.engine import compile_plan

    aftr = Aftr(compile_plan(mapper), address=AFTR6)
    b4s = [B4(address=B4_BASE + n, aftr=AFTR6) for n in range(1, 65)]
    flows = [(b4, 10000 + port) for b4 in b4s for port in range(16)]  # 1024 bindings
    tunnel = [b4.handle(udp(HOST, SERVER, port, 53), 0.0)[0] for b4, port in flows]
    outbound = [aftr.handle(p, 0.0)[0] for p in tunnel]  # make the bindings
    replies = [
        udp(SERVER, struct.unpack_from("!I", o, 12)[0], 53, struct.unpack_from("!H", o, 20)[0])
        for o in outbound
    ]

    rounds = max(1, packets // len(tunnel))
    started = time.perf_counter()
    for _ in range(rounds):
        for p in tunnel:
            aftr.handle(p, 1.0)
    took = time.perf_counter() - started
    say(
        "AFTR outbound, existing bindings (decap + NAT + checksums)",
        rounds * len(tunnel) / took,
        "packets/s",
    )

    started = time.perf_counter()
    for _ in range(rounds):
        for p in replies:
            aftr.handle(p, 1.0)
    took = time.perf_counter() - started
    say("AFTR inbound (NAT + checksums + encap)", rounds * len(replies) / took, "packets/s")

    fresh = Aftr(compile_plan(mapper), address=AFTR6)
    new = [b4.handle(udp(HOST, SERVER, 20000 + k, 53), 0.0)[0] for b4 in b4s for k in range(200)]
    started = time.perf_counter()
    for p in new:
        fresh.handle(p, 0.0)
    took = time.perf_counter() - started
    say("AFTR new bindings (port picked from the B4's block)", len(new) / took, "bindings/s")


# -- DS-Lite AFTR process on TUN ------------------------------------------------------------------


def bench_aftr_tun(packets: int, window: int) -> None:
    why = can_use_netns() or (None if os.path.exists("/dev/net/tun") else "no /dev/net/tun")
    if why:
        print(f"AFTR on TUN: skipped ({why})")
        return
    netns = f"dnbench-{uuid.uuid4().hex[:6]}"
    ip_netns("add", netns)
    plan = Path(tempfile.mkdtemp()) / "dslite.yaml"
    plan.write_text(DSLITE)
    aftr = subprocess.Popen(
        [
            "ip",
            "netns",
            "exec",
            netns,
            sys.executable,
            "-m",
            "detnat.datapath.dslite",
            "aftr",
            "--plan",
            str(plan),
            "--tun",
            "aftr0",
            "--address",
            "2001:db8:af::1",
        ],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert aftr.stdout is not None and aftr.stdout.readline().strip() == "ready"
        # The generator's TUN lives in the same namespace: enter it for this process.
        fd_ns = os.open(f"/run/netns/{netns}", os.O_RDONLY)
        original = os.open("/proc/self/ns/net", os.O_RDONLY)
        setns(fd_ns)
        try:
            gen, _ = open_tun("gen0")
        finally:
            setns(original)
        run = lambda *a: subprocess.run(["ip", "netns", "exec", netns, *a], check=True)  # noqa: E731
        for dev in ("lo", "aftr0", "gen0"):
            run("ip", "link", "set", dev, "up")
        run("sysctl", "-qw", "net.ipv4.ip_forward=1")
        run("sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
        run("ip", "-6", "route", "add", "2001:db8:af::1/128", "dev", "aftr0")
        run("ip", "-6", "route", "add", "2001:db8:b4::/116", "dev", "gen0")
        run("ip", "route", "add", "192.0.2.0/28", "dev", "aftr0")
        run("ip", "route", "add", "203.0.113.0/24", "dev", "gen0")
        b4s = [B4(address=B4_BASE + n, aftr=AFTR6) for n in range(1, 65)]
        tunnel = [
            b4.handle(udp(HOST, SERVER, 10000 + k, 53), 0.0)[0] for b4 in b4s for k in range(16)
        ]
        sent = received = 0
        started = time.perf_counter()
        deadline = started + 60
        while received < packets and time.perf_counter() < deadline:
            burst = min(window, packets - sent)
            for k in range(burst):
                os.write(gen, tunnel[(sent + k) % len(tunnel)])
            sent += burst
            got = 0
            while got < burst:
                ready, _, _ = select.select([gen], [], [], 1.0)
                if not ready:
                    break  # lost packets: count what came back
                try:
                    while True:
                        packet = os.read(gen, 65535)
                        if packet[0] >> 4 == 4:
                            got += 1
                except BlockingIOError:
                    pass
            received += got
        took = time.perf_counter() - started
        say(
            f"AFTR process on TUN, end to end (window {window})",
            received / took,
            "packets/s",
            f"{received:,} of {sent:,} back in {took:.2f} s",
        )
        os.close(gen)
    finally:
        aftr.terminate()
        aftr.wait()
        ip_netns("del", netns)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--plan", type=Path, default=ROOT / "bench" / "plans" / "block.yaml")
    parser.add_argument("--packets", type=int, default=200_000)
    parser.add_argument("--window", type=int, default=64, help="TUN bench: packets in flight")
    args = parser.parse_args()
    bench_nftables(args.plan)
    bench_aftr_function(args.packets)
    bench_aftr_tun(args.packets, args.window)


if __name__ == "__main__":
    main()
