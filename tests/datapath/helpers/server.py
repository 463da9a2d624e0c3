"""Test server: records the source address and port of every TCP, UDP and ICMP echo it receives.

Usage: server.py ADDRESS TCP_PORT UDP_PORT. Prints ``ready`` once listening, then one JSON line per
observation: ``{"proto": ..., "src": ..., "port": ..., "tag": ..., "size": ...}`` where ``tag`` is
the payload up to ``|`` (the client's tag), ``port`` the source port, or the ICMP echo identifier,
and ``size`` the payload length.
TCP and UDP are echoed back; the kernel answers ICMP echo itself.
"""

import json
import socket
import struct
import sys
import threading

lock = threading.Lock()


def say(**record: object) -> None:
    with lock:
        sys.stdout.write(json.dumps(record) + "\n")
        sys.stdout.flush()


def tag_of(data: bytes) -> str:
    return data.split(b"|", 1)[0].decode()


def serve_tcp(listener: socket.socket) -> None:
    while True:
        conn, (src, port) = listener.accept()
        with conn:
            data = conn.recv(256)
            say(proto="tcp", src=src, port=port, tag=tag_of(data), size=len(data))
            conn.sendall(data)


def serve_udp(sock: socket.socket) -> None:
    while True:
        data, (src, port) = sock.recvfrom(65535)
        say(proto="udp", src=src, port=port, tag=tag_of(data), size=len(data))
        sock.sendto(data, (src, port))


def serve_icmp(sock: socket.socket, address: str) -> None:
    while True:
        packet, (src, _) = sock.recvfrom(65535)
        header = (packet[0] & 0x0F) * 4
        dst = socket.inet_ntoa(packet[16:20])
        kind, _, _, ident, _ = struct.unpack("!BBHHH", packet[header : header + 8])
        if kind == 8 and dst == address:
            data = packet[header + 8 :]
            say(proto="icmp", src=src, port=ident, tag=tag_of(data), size=len(data))


def main() -> None:
    address, tcp_port, udp_port = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    tcp.bind((address, tcp_port))
    tcp.listen(128)
    udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    udp.bind((address, udp_port))
    icmp = socket.socket(socket.AF_INET, socket.SOCK_RAW, socket.IPPROTO_ICMP)
    for target, arg in ((serve_tcp, (tcp,)), (serve_udp, (udp,)), (serve_icmp, (icmp, address))):
        threading.Thread(target=target, args=arg, daemon=True).start()
    print("ready", flush=True)
    sys.stdin.read()  # run until the test closes our stdin (or terminates us)


main()
