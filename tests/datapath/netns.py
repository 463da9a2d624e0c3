"""Network namespaces for end-to-end datapath tests: creation, veth links, helper processes.

Every namespace name carries a per-run token, so parallel or crashed runs never collide, and
:class:`Lab` deletes what it made even when the test fails. Helper processes signal readiness by
printing a line; :class:`Helper` waits for lines with a deadline (``select``), never by sleeping.

Without root, ``ip`` or network namespaces the tests are skipped with the reason; with
``DETNAT_REQUIRE_NETNS=1`` (CI) they fail instead, so a CI machine cannot silently lose them.
"""

from __future__ import annotations

import json
import os
import select
import shutil
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

HELPERS = Path(__file__).with_name("helpers")


def unavailable(
    *, need_nft: bool = False, need_tun: bool = False, need_conntrack: bool = False
) -> str | None:
    """Why namespace tests cannot run here, or None."""
    if sys.platform != "linux":
        return "network namespaces need Linux"
    if os.geteuid() != 0:
        return "network namespaces need root (run the datapath tests as root)"
    if shutil.which("ip") is None:
        return "the ip program (iproute2) is not installed"
    if need_nft and shutil.which("nft") is None:
        return "the nft program is not installed (apt-get install nftables)"
    if need_conntrack and shutil.which("conntrack") is None:
        return "the conntrack program is not installed (apt-get install conntrack)"
    if need_tun and not os.path.exists("/dev/net/tun"):
        return "/dev/net/tun does not exist (TUN devices are not available)"
    probe = f"dnp-{uuid.uuid4().hex[:8]}"
    made = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True)
    if made.returncode != 0:
        return f"cannot create a network namespace: {made.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", probe], capture_output=True)
    return None


def require(
    *, need_nft: bool = False, need_tun: bool = False, need_conntrack: bool = False
) -> None:
    why = unavailable(need_nft=need_nft, need_tun=need_tun, need_conntrack=need_conntrack)
    if why is None:
        return
    message = f"END-TO-END DATAPATH TEST NOT RUN: {why}"
    if os.environ.get("DETNAT_REQUIRE_NETNS"):
        pytest.fail(message + " (DETNAT_REQUIRE_NETNS is set)")
    pytest.skip(message)


def sh(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(list(args), capture_output=True, text=True, timeout=30)
    if check and done.returncode != 0:
        raise AssertionError(f"{' '.join(args)} failed: {done.stderr.strip()}")
    return done


class Helper:
    """A Python helper script running in a namespace, talking JSON lines on stdout."""

    def __init__(self, netns: str, *args: str) -> None:
        command = ["ip", "netns", "exec", netns, sys.executable, "-u", *args]
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        self._buffer = b""

    def line(self, timeout: float = 10.0) -> str:
        """The next stdout line, waiting at most ``timeout`` seconds."""
        assert self.proc.stdout is not None
        deadline = time.monotonic() + timeout
        while b"\n" not in self._buffer:
            left = deadline - time.monotonic()
            ready, _, _ = select.select([self.proc.stdout], [], [], max(left, 0))
            if not ready:
                raise AssertionError(f"helper printed nothing within {timeout}s{self._stderr()}")
            chunk = os.read(self.proc.stdout.fileno(), 65536)
            if not chunk:
                raise AssertionError(f"helper exited ({self.proc.wait()}){self._stderr()}")
            self._buffer += chunk
        line, _, self._buffer = self._buffer.partition(b"\n")
        return line.decode()

    def json(self, timeout: float = 10.0) -> dict[str, object]:
        value = json.loads(self.line(timeout))
        assert isinstance(value, dict)
        return value

    def wait_ready(self, timeout: float = 10.0) -> None:
        first = self.line(timeout)
        assert first == "ready", f"helper said {first!r} instead of ready{self._stderr()}"

    def finish(self, timeout: float = 20.0) -> list[dict[str, object]]:
        """Wait for a helper that ends by itself; its remaining JSON lines."""
        assert self.proc.stdout is not None
        out, err = self.proc.communicate(timeout=timeout)
        rest = (self._buffer + out).decode().splitlines()
        assert self.proc.returncode == 0, f"helper failed ({self.proc.returncode}): {err.decode()}"
        return [json.loads(x) for x in rest if x.strip()]

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for stream in (self.proc.stdin, self.proc.stdout, self.proc.stderr):
            if stream is not None:
                stream.close()

    def _stderr(self) -> str:
        if self.proc.poll() is None or self.proc.stderr is None:
            return ""
        return f"; stderr: {self.proc.stderr.read().decode().strip()}"


class Lab:
    """Namespaces and links made for one test run, all removed by :meth:`close`."""

    def __init__(self) -> None:
        self.token = uuid.uuid4().hex[:6]
        self.namespaces: list[str] = []
        self.links: list[str] = []  # veth ends made in the root namespace (gone once moved)
        self.helpers: list[Helper] = []

    def netns(self, role: str) -> str:
        name = f"dn{self.token}-{role}"
        sh("ip", "netns", "add", name)
        self.namespaces.append(name)
        self.run(name, "ip", "link", "set", "lo", "up")
        return name

    def run(self, netns: str, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return sh("ip", "netns", "exec", netns, *args, check=check)

    def link(self, a: str, a_if: str, b: str, b_if: str) -> None:
        """A veth pair from namespace ``a`` (``a_if``) to namespace ``b`` (``b_if``), both up."""
        tmp_a, tmp_b = f"v{self.token}a{len(self.links)}", f"v{self.token}b{len(self.links)}"
        sh("ip", "link", "add", tmp_a, "type", "veth", "peer", "name", tmp_b)
        self.links.append(tmp_a)
        sh("ip", "link", "set", tmp_a, "netns", a, "name", a_if)
        sh("ip", "link", "set", tmp_b, "netns", b, "name", b_if)
        self.run(a, "ip", "link", "set", a_if, "up")
        self.run(b, "ip", "link", "set", b_if, "up")

    def start(self, netns: str, script: str, *args: str) -> Helper:
        """Run helper ``script`` (of ``helpers/``) in ``netns``."""
        return self.start_module(netns, str(HELPERS / script), *args)

    def start_module(self, netns: str, *args: str) -> Helper:
        """Run ``python -u ARGS...`` (a script, or ``-m module``) in ``netns``."""
        helper = Helper(netns, *args)
        self.helpers.append(helper)
        return helper

    def close(self) -> None:
        for helper in self.helpers:
            helper.stop()
        for name in reversed(self.namespaces):
            sh("ip", "netns", "del", name, check=False)
        for link in self.links:  # only still there if a test failed before moving it
            if os.path.exists(f"/sys/class/net/{link}"):
                sh("ip", "link", "del", link, check=False)


@contextmanager
def lab() -> Iterator[Lab]:
    made = Lab()
    try:
        yield made
    finally:
        made.close()
