"""Test client: opens flows from given inside source addresses and waits for each answer.

Usage: client.py SERVER TCP_PORT UDP_PORT FLOWS_JSON [TAG], FLOWS_JSON a list of
``[source_address, proto, count]`` (proto ``tcp``, ``udp``, ``icmp``, ``udp-noreply`` for a
datagram whose answer is not awaited, ``udp-big`` for a 1472-byte datagram: a full 1500-byte IPv4
packet). Each flow's payload starts with TAG (default: its source address) and ``|``. Every socket
stays open until all flows are done, so the NAT holds all their translations at once. Prints one
JSON line per flow, then exits.
"""

import json
import socket
import struct
import sys
import time

TIMEOUT = 5.0


def checksum(data: bytes) -> int:
    if len(data) % 2:
        data += b"\0"
    total = sum(struct.unpack(f"!{len(data) // 2}H", data))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ping(src: str, server: str, ident: int, tag: bytes) -> bool:
    sock = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    sock.bind((src, 0))
    header = struct.pack("!BBHHH", 8, 0, 0, ident, 1)
    header = struct.pack("!BBHHH", 8, 0, checksum(header + tag), ident, 1)
    sock.sendto(header + tag, (server, 0))
    deadline = time.monotonic() + TIMEOUT
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            packet = sock.recv(65535)
        except TimeoutError:
            break
        start = (packet[0] & 0x0F) * 4
        kind, _, _, got_ident, _ = struct.unpack("!BBHHH", packet[start : start + 8])
        if kind == 0 and got_ident == ident and packet[start + 8 :] == tag:
            sock.close()
            return True
    sock.close()
    return False


def main() -> None:
    server, tcp_port, udp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    flows = json.loads(sys.argv[4])
    fixed_tag = sys.argv[5] if len(sys.argv) > 5 else None
    keep = []
    ident = 0x7000
    for src, proto, count in flows:
        for _ in range(count):
            ok = False
            tag = f"{fixed_tag or src}|".encode()
            if proto == "udp-big":
                tag += b"x" * (1472 - len(tag))
            if proto == "tcp":
                sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                sock.settimeout(TIMEOUT)
                sock.bind((src, 0))
                sock.connect((server, tcp_port))
                sock.sendall(tag)
                ok = sock.recv(256) == tag
                keep.append(sock)
            elif proto in ("udp", "udp-noreply", "udp-big"):
                sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                sock.settimeout(TIMEOUT)
                sock.bind((src, 0))
                sock.sendto(tag, (server, udp_port))
                ok = proto == "udp-noreply" or sock.recv(65535) == tag
                keep.append(sock)
            elif proto == "icmp":
                ident += 1
                ok = ping(src, server, ident, tag)
            print(json.dumps({"src": src, "proto": proto, "ok": ok}), flush=True)
    for sock in keep:
        sock.close()


main()
