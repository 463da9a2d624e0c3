"""Running the AFTR or the B4 on a Linux TUN device: the only part of :mod:`.dslite` that does I/O.

One TUN device carries both families ("one-armed"): the kernel routes to it the AFTR's IPv6
softwire address and the public IPv4 pool (for the B4: its own IPv6 address and the IPv4 default
route), the process reads each packet, asks the packet function what to send, and writes that
back; the kernel routes it onwards. Who configures addresses and routes on the device is the
operator's business (``ip route add 192.0.2.0/24 dev aftr0``), not this process's.

The process prints ``ready`` once the device exists, and answers one-line commands on stdin with
one JSON line on stdout: ``counters``, ``bindings`` (the AFTR's binding table), ``expire``.
End of input stops it.
"""

from __future__ import annotations

import fcntl
import json
import os
import select
import struct
import sys
import time
from collections import Counter
from collections.abc import Callable
from typing import IO, Protocol

from detnat.datapath.dslite.softwire import Aftr
from detnat.engine import format_address, format_ipv4
from detnat.engine.addresses import V6
from detnat.errors import Unavailable

TUNSETIFF = 0x400454CA
IFF_TUN, IFF_NO_PI = 0x0001, 0x1000
READ_SIZE = 65535
BATCH = 64  # packets read per wakeup before looking at timers and commands again


class PacketFunction(Protocol):
    counters: Counter[str]

    def handle(self, packet: bytes, now: float) -> list[bytes]: ...


def open_tun(name: str) -> tuple[int, str]:
    """Create (or attach to) TUN device ``name``, without packet information headers."""
    try:
        fd = os.open("/dev/net/tun", os.O_RDWR)
    except OSError as exc:
        raise Unavailable(f"cannot open /dev/net/tun: {exc.strerror}") from None
    try:
        answer = fcntl.ioctl(fd, TUNSETIFF, struct.pack("16sH", name.encode(), IFF_TUN | IFF_NO_PI))
    except OSError as exc:
        os.close(fd)
        raise Unavailable(f"cannot create TUN device {name!r}: {exc.strerror}") from None
    os.set_blocking(fd, False)
    return fd, answer[:16].rstrip(b"\0").decode()


def bindings_json(aftr: Aftr) -> list[dict[str, object]]:
    return [
        {
            "b4": format_address(V6, b.b4),
            "subscriber": str(b.subscriber.prefix),
            "inner_ip": format_ipv4(b.inner_ip),
            "inner_port": b.inner_port,
            "protocol": b.protocol,
            "public_ip": format_ipv4(b.public_ip),
            "public_port": b.public_port,
            "tcp_state": b.tcp.name.lower() if b.protocol == 6 else None,
        }
        for b in aftr.table.bindings()
    ]


def serve(
    fd: int,
    function: PacketFunction,
    *,
    expire: Callable[[float], object] = lambda now: None,
    commands: IO[str] | None = None,
    out: IO[str] = sys.stdout,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Read packets from ``fd`` until ``commands`` reaches end of input (forever without it)."""
    watch = [fd] + ([commands.fileno()] if commands is not None else [])
    next_sweep = clock() + 1.0
    while True:
        ready, _, _ = select.select(watch, [], [], max(0.0, next_sweep - clock()))
        now = clock()
        if fd in ready:
            for _ in range(BATCH):
                try:
                    packet = os.read(fd, READ_SIZE)
                except BlockingIOError:
                    break
                for reply in function.handle(packet, now):
                    try:
                        os.write(fd, reply)
                    except OSError:
                        function.counters["write_failed"] += 1
        if commands is not None and commands.fileno() in ready:
            line = commands.readline()
            if not line:
                return
            out.write(json.dumps(_command(line.strip(), function, expire, now)) + "\n")
            out.flush()
        if now >= next_sweep:
            expire(now)
            next_sweep = now + 1.0


def _command(
    name: str, function: PacketFunction, expire: Callable[[float], object], now: float
) -> object:
    if name == "counters":
        return dict(function.counters)
    if name == "bindings" and isinstance(function, Aftr):
        return bindings_json(function)
    if name == "expire":
        return {"expired": expire(now)}
    return {"error": f"unknown command {name!r} (counters, bindings, expire)"}
