"""End to end on real packets: the kernel, with our ruleset loaded, translates as detnat says.

Three namespaces: ``sub`` holds the subscribers' inside addresses, ``nat`` runs the nftables
ruleset, ``srv`` records what it sees. Whatever source address and port the server observes,
``detnat reverse`` on it must name the subscriber that sent the flow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from detnat.datapath.nftables import NftablesDatapath
from detnat.engine import Mapper, Status, format_ipv4
from detnat.engine.addresses import parse_prefix
from detnat.planfile import load_mapper
from tests.datapath import netns
from tests.datapath.plans import SPLIT_BLOCKS, VPP, plan_file

SERVER = "203.0.113.1"
TCP_PORT, UDP_PORT = 7000, 7001
SUBSCRIBERS = ["10.0.0.1", "10.0.0.2", "10.0.0.5", "10.0.0.6", "10.0.0.13", "10.0.0.14"]
EXCLUDED = "10.0.0.15"


@dataclass
class Topology:
    lab: netns.Lab
    sub: str
    nat: str
    srv: str
    plan: Path
    mapper: Mapper

    def datapath(self) -> NftablesDatapath:
        return NftablesDatapath(netns=self.nat, oifname="out0")


@pytest.fixture(scope="module")
def topology(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    netns.require(need_nft=True)
    plan = plan_file(tmp_path_factory.mktemp("nft"), "split", SPLIT_BLOCKS)
    with netns.lab() as lab:
        sub, nat, srv = lab.netns("sub"), lab.netns("nat"), lab.netns("srv")
        lab.link(sub, "eth0", nat, "in0")
        lab.link(nat, "out0", srv, "eth0")
        for n in range(1, 16):
            lab.run(sub, "ip", "addr", "add", f"10.0.0.{n}/24", "dev", "eth0")
        lab.run(sub, "ip", "route", "add", "default", "via", "10.0.0.254")
        lab.run(nat, "ip", "addr", "add", "10.0.0.254/24", "dev", "in0")
        lab.run(nat, "ip", "addr", "add", "203.0.113.254/24", "dev", "out0")
        lab.run(nat, "sysctl", "-qw", "net.ipv4.ip_forward=1")
        lab.run(srv, "ip", "addr", "add", f"{SERVER}/24", "dev", "eth0")
        for pool in ("192.0.2.0/30", "198.51.100.7/32"):
            lab.run(srv, "ip", "route", "add", pool, "via", "203.0.113.254")
        yield Topology(lab, sub, nat, srv, plan, load_mapper(plan))


def _drop_counter(top: Topology) -> int:
    ruleset = top.datapath().read_ruleset()
    for item in ruleset["nftables"]:
        rule = item.get("rule")
        if rule and rule["table"] == "detnat" and any("drop" in e for e in rule["expr"]):
            return int(next(e["counter"]["packets"] for e in rule["expr"] if "counter" in e))
    raise AssertionError("no drop rule in the live ruleset")


def test_every_flow_through_the_nat_reverses_to_the_subscriber_that_sent_it(
    topology: Topology,
) -> None:
    top = topology
    top.datapath().apply(top.mapper)
    assert top.datapath().verify(top.mapper).ok
    dropped_before = _drop_counter(top)

    server = top.lab.start(top.srv, "server.py", SERVER, str(TCP_PORT), str(UDP_PORT))
    server.wait_ready()
    flows = [[s, proto, 3] for s in SUBSCRIBERS for proto in ("tcp", "udp", "icmp")]
    flows.append([EXCLUDED, "udp-noreply", 1])
    client = top.lab.start(
        top.sub, "client.py", SERVER, str(TCP_PORT), str(UDP_PORT), json.dumps(flows)
    )
    results = client.finish()
    assert all(r["ok"] for r in results), [r for r in results if not r["ok"]]
    expected = 3 * 3 * len(SUBSCRIBERS)
    seen = [server.json() for _ in range(expected)]

    # The excluded subscriber's datagram was dropped by the NAT, not sent untranslated.
    deadline = time.monotonic() + 5
    while _drop_counter(top) == dropped_before:
        assert time.monotonic() < deadline, "the excluded subscriber's datagram was not dropped"
    assert {s["tag"] for s in seen} == set(SUBSCRIBERS)

    for s in seen:
        answer = top.mapper.reverse(str(s["src"]), int(str(s["port"])))
        assert answer.status is Status.MATCH, s
        assert answer.allocation is not None
        assert answer.allocation.subscriber == parse_prefix(str(s["tag"])), s
    # Several flows of one subscriber got several ports, all its own: the NAT really chose them.
    ports_of_first = {s["port"] for s in seen if s["tag"] == "10.0.0.1" and s["proto"] == "tcp"}
    assert len(ports_of_first) == 3
    static = [s for s in seen if s["tag"] == "10.0.0.14"]
    assert {s["src"] for s in static} == {"198.51.100.7"}

    # The same through the command line, as the abuse desk would ask.
    queries = [f"{s['src']}:{s['port']}" for s in seen]
    detnat = Path(sys.executable).with_name("detnat")
    done = subprocess.run(
        [str(detnat), "reverse", "--plan", str(top.plan), "--json", *queries],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    answers = [json.loads(line) for line in done.stdout.splitlines()]
    assert [a["subscriber"] for a in answers] == [f"{s['tag']}/32" for s in seen]

    assert top.datapath().verify(top.mapper).ok


def test_verify_names_each_subscriber_whose_live_mapping_was_changed(topology: Topology) -> None:
    top = topology
    dp = top.datapath()
    dp.apply(top.mapper)
    a = top.mapper.forward("10.0.0.6")
    wrong = f"{format_ipv4(a.public_ip)} . {a.port_ranges[0][0]}-{a.port_ranges[0][1] + 1}"
    top.lab.run(top.nat, "nft", "delete", "element", "ip", "detnat", "snat_0", "{ 10.0.0.6 }")
    top.lab.run(
        top.nat, "nft", "add", "element", "ip", "detnat", "snat_0", f"{{ 10.0.0.6 : {wrong} }}"
    )
    top.lab.run(top.nat, "nft", "delete", "element", "ip", "detnat", "static", "{ 10.0.0.14 }")

    report = dp.verify(top.mapper)

    assert [str(d.subscriber) for d in report.drifts] == ["10.0.0.6/32", "10.0.0.14/32"]
    six, fourteen = report.drifts
    assert six.plan[0].port_ranges == a.port_ranges
    assert six.datapath[0].port_ranges == ((a.port_ranges[0][0], a.port_ranges[0][1] + 1),)
    assert fourteen.datapath == ()
    assert report.problems == ()
    dp.apply(top.mapper)
    assert dp.verify(top.mapper).ok


def test_a_missing_rule_is_drift_for_every_subscriber_it_served(topology: Topology) -> None:
    top = topology
    dp = top.datapath()
    dp.apply(top.mapper)
    listing = top.lab.run(
        top.nat, "nft", "-j", "-a", "list", "chain", "ip", "detnat", "postrouting"
    )
    handles = [
        item["rule"]["handle"] for item in json.loads(listing.stdout)["nftables"] if "rule" in item
    ]
    top.lab.run(
        top.nat, "nft", "delete", "rule", "ip", "detnat", "postrouting", "handle", str(handles[0])
    )

    report = dp.verify(top.mapper)

    assert any("rules differ" in p for p in report.problems)
    # Rule 0 served range 0 of every block; only the split blocks lose ports by it.
    split = {str(d.subscriber) for d in report.drifts}
    assert split == {"10.0.0.1/32", "10.0.0.5/32", "10.0.0.9/32", "10.0.0.13/32"}
    dp.apply(top.mapper)
    assert dp.verify(top.mapper).ok


def test_applying_another_plan_replaces_the_table_whole(topology: Topology, tmp_path: Path) -> None:
    top = topology
    dp = top.datapath()
    dp.apply(top.mapper)
    other = load_mapper(plan_file(tmp_path, "vpp", VPP))
    dp.apply(other)

    assert dp.verify(other).ok
    stale = dp.verify(top.mapper)
    assert len(stale.drifts) == stale.checked  # everybody moved, nobody left over
    dp.apply(top.mapper)
