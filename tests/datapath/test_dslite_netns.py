"""End to end through the user-space DS-Lite AFTR: two B4s, one inner address, two port sets.

Namespaces ``b4a`` and ``b4b`` each run the user-space B4 on a TUN device, with the same inner host
address 192.168.1.10; ``aftr`` runs the AFTR on its TUN device; ``srv`` records what it sees. The
B4s reach the AFTR over plain IPv6 links (no kernel tunnel module is involved). Every source address
and port the server observes must reverse, under the plan, to the B4 whose host sent the flow.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from detnat.engine import Mapper, Status
from detnat.engine.addresses import parse_prefix
from detnat.planfile import load_mapper
from tests.datapath import netns
from tests.datapath.plans import DSLITE, plan_file

SERVER = "203.0.113.1"
TCP_PORT, UDP_PORT = 7100, 7101
AFTR = "2001:db8:af::1"
HOST = "192.168.1.10"
B4S = {"b4a": ("2001:db8:b4::1", "2001:db8:a"), "b4b": ("2001:db8:b4::2", "2001:db8:b")}


@dataclass
class DsLite:
    lab: netns.Lab
    namespaces: dict[str, str]
    aftr: netns.Helper
    plan: Path
    mapper: Mapper


def _module(role: str, *args: str) -> list[str]:
    return ["-m", "detnat.datapath.dslite", role, *args]


@pytest.fixture(scope="module")
def dslite(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DsLite]:
    netns.require(need_tun=True)
    plan = plan_file(tmp_path_factory.mktemp("dslite"), "dslite", DSLITE)
    with netns.lab() as lab:
        aftr_ns, srv = lab.netns("aftr"), lab.netns("srv")
        names = {"aftr": aftr_ns, "srv": srv}
        lab.link(aftr_ns, "out0", srv, "eth0")
        lab.run(aftr_ns, "ip", "addr", "add", "203.0.113.254/24", "dev", "out0")
        lab.run(srv, "ip", "addr", "add", f"{SERVER}/24", "dev", "eth0")
        lab.run(srv, "ip", "route", "add", "192.0.2.1/32", "via", "203.0.113.254")
        for key in ("net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1"):
            lab.run(aftr_ns, "sysctl", "-qw", key)
        aftr = lab.start_module(
            aftr_ns, *_module("aftr", "--plan", str(plan), "--tun", "aftr0", "--address", AFTR)
        )
        aftr.wait_ready()
        lab.run(aftr_ns, "ip", "link", "set", "aftr0", "up")
        lab.run(aftr_ns, "ip", "-6", "route", "add", f"{AFTR}/128", "dev", "aftr0")
        lab.run(aftr_ns, "ip", "route", "add", "192.0.2.1/32", "dev", "aftr0")
        for role, (b4_address, net) in B4S.items():
            ns = names[role] = lab.netns(role)
            lab.link(ns, "eth0", aftr_ns, f"{role}0")
            lab.run(ns, "ip", "-6", "addr", "add", f"{net}::2/64", "dev", "eth0", "nodad")
            lab.run(aftr_ns, "ip", "-6", "addr", "add", f"{net}::1/64", "dev", f"{role}0", "nodad")
            lab.run(aftr_ns, "ip", "-6", "route", "add", f"{b4_address}/128", "via", f"{net}::2")
            lab.run(ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1")
            b4 = lab.start_module(
                ns, *_module("b4", "--tun", "b4tun", "--address", b4_address, "--aftr", AFTR)
            )
            b4.wait_ready()
            lab.run(ns, "ip", "link", "set", "b4tun", "up")
            lab.run(ns, "ip", "addr", "add", f"{HOST}/32", "dev", "lo")
            lab.run(ns, "ip", "route", "add", "default", "dev", "b4tun", "src", HOST)
            lab.run(ns, "ip", "-6", "route", "add", f"{b4_address}/128", "dev", "b4tun")
            lab.run(ns, "ip", "-6", "route", "add", f"{AFTR}/128", "via", f"{net}::1")
        yield DsLite(lab, names, aftr, plan, load_mapper(plan))


def _command(helper: netns.Helper, name: str) -> object:
    assert helper.proc.stdin is not None
    helper.proc.stdin.write(f"{name}\n".encode())
    helper.proc.stdin.flush()
    return json.loads(helper.line())


def test_two_b4s_with_the_same_inner_address_map_to_their_own_port_sets(dslite: DsLite) -> None:
    top = dslite
    server = top.lab.start(top.namespaces["srv"], "server.py", SERVER, str(TCP_PORT), str(UDP_PORT))
    server.wait_ready()
    clients = {}
    for role in B4S:
        flows = [[HOST, proto, 3] for proto in ("tcp", "udp", "icmp")]
        clients[role] = top.lab.start(
            top.namespaces[role],
            "client.py",
            SERVER,
            str(TCP_PORT),
            str(UDP_PORT),
            json.dumps(flows),
            role,
        )
    for role, client in clients.items():
        results = client.finish()
        assert all(r["ok"] for r in results), (role, results)
    seen = [server.json() for _ in range(2 * 3 * 3)]

    assert {s["src"] for s in seen} == {"192.0.2.1"}
    for s in seen:
        b4_address = B4S[str(s["tag"])][0]
        answer = top.mapper.reverse(str(s["src"]), int(str(s["port"])))
        assert answer.status is Status.MATCH, s
        assert answer.allocation is not None
        assert answer.allocation.subscriber == parse_prefix(b4_address), s

    bindings = _command(top.aftr, "bindings")
    assert isinstance(bindings, list)
    assert {b["inner_ip"] for b in bindings} == {HOST}
    assert {b["b4"] for b in bindings} == {a for a, _ in B4S.values()}
    counters = _command(top.aftr, "counters")
    assert isinstance(counters, dict)
    assert counters.get("dropped_malformed", 0) == 0


def test_a_large_datagram_crosses_the_softwire_in_ipv6_fragments(dslite: DsLite) -> None:
    """RFC 6333 5.3: the IPv4 packet is not fragmented; the tunnel packet is, and is reassembled."""
    top = dslite
    server = top.lab.start(top.namespaces["srv"], "server.py", SERVER, "7200", "7201")
    server.wait_ready()
    client = top.lab.start(
        top.namespaces["b4a"],
        "client.py",
        SERVER,
        "7200",
        "7201",
        json.dumps([[HOST, "udp-big", 1]]),
        "b4a",
    )
    assert [r["ok"] for r in client.finish()] == [True]
    seen = server.json()
    assert seen["proto"] == "udp" and seen["size"] == 1472
    counters = _command(top.aftr, "counters")
    assert isinstance(counters, dict)
    # Both ways the tunnel packet (1540 bytes) was split and put back together.
    assert counters["reassembled_from_b4"] >= 1
    assert counters["fragmented_to_b4"] >= 1
