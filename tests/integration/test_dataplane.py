"""The data plane roost programs, end to end: two roost hosts, each with a Calico-style
container, and a container-to-container ping over the routes roost installed.

No route in these tests is written by hand except each host's own container route
(`172.17.8.2 dev cali-ca scope link`, what Calico's CNI plugin adds) and the hosts'
default route: roost learns the other host's block over BGP and installs it.

1. Same subnet (192.168.100.100 and .101 on one bridge), `tunnel = "cross-subnet"`:
   `172.17.9.0/24 via 192.168.100.101 dev eth0 proto bird metric 1024 onlink`, plain IP.
2. Different subnets joined by a router, the iBGP session multihop across it,
   `tunnel = "cross-subnet"`: `172.17.9.0/24 via 192.168.200.101 dev tunl0 proto bird
   metric 1024 onlink`, and the router sees IP protocol 4 (IPIP) 192.168.100.100 >
   192.168.200.101. Needs a kernel with ipip: in CI it runs in the VM
   (tests/vm/run-in-vm.sh ... pytest -m needs_kernel); elsewhere it skips with the reason.

Container wiring as Calico does it (lab/vm/ipip-dataplane.sh): container eth0 ADDR/32,
`169.254.1.1 dev eth0 scope link`, `default via 169.254.1.1 dev eth0`; the host side of
the veth (`cali-X`) has no address, proxy_arp=1 and proxy_delay=0, and the host needs a
default route on another interface for proxy ARP to answer.
"""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.harness.netns import Host, Lab, require_netns, wait_for
from tests.integration.roost_node import RoostNode
from tests.kernel.conftest import ipip_unavailable

pytestmark = pytest.mark.needs_root

#: Under the VM's software emulation Python runs ~20x slower: roost needs ~10-30 s to
#: start there instead of under a second.
SLOW = 15.0 if os.environ.get("RUN_IN_VM") == "1" else 1.0

BLOCK_A, BLOCK_B = "172.17.8.0/24", "172.17.9.0/24"
CONTAINER_A, CONTAINER_B = "172.17.8.2", "172.17.9.2"


def sysctl(host: Host, *settings: str) -> None:
    host.run(["sysctl", "-qw", *settings])


def add_container(lab: Lab, host: Host, name: str, addr: str) -> Host:
    """A container namespace behind veth `cali-NAME` of `host`, wired the way Calico does."""
    ns = lab.ns(name)
    subprocess.run(["ip", "netns", "add", ns], check=True)
    lab.namespaces.append(ns)  # deleted by lab.close()
    hif = f"cali-{name}"
    veth = f"ip link add {hif} netns {host.netns} type veth peer name eth0 netns {ns}"
    subprocess.run(veth.split(), check=True)
    c = Host(lab, name, ns, addr4=addr, cidr4=f"{addr}/32")
    for args in (
        ("link", "set", "lo", "up"),
        ("addr", "add", f"{addr}/32", "dev", "eth0"),
        ("link", "set", "eth0", "up"),
        ("route", "add", "169.254.1.1", "dev", "eth0", "scope", "link"),
        ("route", "add", "default", "via", "169.254.1.1", "dev", "eth0"),
    ):
        c.ip(*args)
    sysctl(host, f"net.ipv4.conf.{hif}.proxy_arp=1", f"net.ipv4.neigh.{hif}.proxy_delay=0")
    host.ip("link", "set", hif, "up")
    host.ip("route", "add", addr, "dev", hif, "scope", "link")  # the CNI plugin's route
    return c


def roost_config(host: Host, block: str, peer: str, *, multihop: bool) -> str:
    return f"""\
[router]
asn = 64512
id = "{host.addr4}"
listen = "{host.addr4}"
prefixes = ["{block}"]
connect_retry_time = 1

[kernel]
tunnel = "cross-subnet"

[mesh]
nodes = ["{host.addr4}", "{peer}"]
""" + ("multihop = true\n" if multihop else "")


@dataclass
class Pair:
    lab: Lab
    a: RoostNode
    b: RoostNode
    ca: Host
    cb: Host
    router: Host | None = None

    def diag(self) -> str:
        parts = []
        for node in (self.a, self.b):
            parts.append(f"{node.name} routes: " + "; ".join(node.host.routes()))
            parts.append(node.log_tail(25))
        return "\n".join(parts)


def _start(lab: Lab, host_a: Host, host_b: Host, *, multihop: bool) -> Pair:
    for h in (host_a, host_b):
        sysctl(h, "net.ipv4.ip_forward=1")
    ca = add_container(lab, host_a, "ca", CONTAINER_A)
    cb = add_container(lab, host_b, "cb", CONTAINER_B)
    assert host_b.addr4 is not None and host_a.addr4 is not None
    a = RoostNode(host_a, roost_config(host_a, BLOCK_A, host_b.addr4, multihop=multihop))
    b = RoostNode(host_b, roost_config(host_b, BLOCK_B, host_a.addr4, multihop=multihop))
    a.start()
    b.start()
    return Pair(lab, a, b, ca, cb)


def _stop(pair: Pair) -> None:
    for node in (pair.a, pair.b):
        if node.proc is not None:
            node.stop(timeout=10 * SLOW)


@pytest.fixture
def same_subnet(tmp_path: Path) -> Iterator[Pair]:
    """hostA 192.168.100.100/24 and hostB .101/24 on one bridge (gateway .1 on the bridge)."""
    require_netns()
    with Lab(tmp_path) as lab:
        sw = lab.switch("sw")
        subprocess.run(
            ["ip", "-n", sw.netns, "addr", "add", "192.168.100.1/24", "dev", "br0"], check=True
        )
        host_a = lab.host("hostA", "sw", "192.168.100.100/24", gateway="192.168.100.1")
        host_b = lab.host("hostB", "sw", "192.168.100.101/24", gateway="192.168.100.1")
        pair = _start(lab, host_a, host_b, multihop=False)
        try:
            yield pair
        finally:
            _stop(pair)


@pytest.fixture
def across_router(tmp_path: Path) -> Iterator[Pair]:
    """hostA 192.168.100.100/24 -- router (.1 | .1, forwarding) -- hostB 192.168.200.101/24."""
    if (why := ipip_unavailable()) is not None:
        pytest.skip(f"{why}; run it in the VM: tests/vm/run-in-vm.sh ... pytest -m needs_kernel")
    with Lab(tmp_path) as lab:
        router = lab.router("router", ("swa", "192.168.100.1/24"), ("swb", "192.168.200.1/24"))
        host_a = lab.host("hostA", "swa", "192.168.100.100/24", gateway="192.168.100.1")
        host_b = lab.host("hostB", "swb", "192.168.200.101/24", gateway="192.168.200.1")
        pair = _start(lab, host_a, host_b, multihop=True)
        pair.router = router
        try:
            yield pair
        finally:
            _stop(pair)


def _wait_routes(pair: Pair, want_a: str, want_b: str) -> None:
    def ready() -> bool:
        ra, rb = pair.a.kernel_routes(), pair.b.kernel_routes()
        return want_a in ra and want_b in rb

    wait_for(
        ready,
        30 * SLOW,
        interval=0.2,
        what="roost to install the learned routes",
        on_timeout=pair.diag,
    )
    own_a = f"blackhole {BLOCK_A} proto bird metric 1024"
    own_b = f"blackhole {BLOCK_B} proto bird metric 1024"
    assert sorted(pair.a.kernel_routes()) == sorted([want_a, own_a]), pair.diag()
    assert sorted(pair.b.kernel_routes()) == sorted([want_b, own_b]), pair.diag()


def test_same_subnet_routes_go_direct_and_containers_talk(same_subnet: Pair) -> None:
    pair = same_subnet
    _wait_routes(
        pair,
        f"{BLOCK_B} via 192.168.100.101 dev eth0 proto bird metric 1024 onlink",
        f"{BLOCK_A} via 192.168.100.100 dev eth0 proto bird metric 1024 onlink",
    )
    assert pair.ca.ping(CONTAINER_B, count=3, timeout=5), pair.diag()
    assert pair.cb.ping(CONTAINER_A, count=1, timeout=5), pair.diag()


def _capture(router: Host, workdir: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """`tcpdump -n -i eth0 --immediate-mode ip proto 4` on the router's leg to hostA."""
    log = workdir / "tcpdump.log"
    proc = router.popen(
        ["tcpdump", "-n", "-l", "-i", "eth0", "--immediate-mode", "ip", "proto", "4"], log
    )
    wait_for(
        lambda: "listening on" in log.read_text(errors="replace"),
        20 * SLOW,
        what="tcpdump to start",
        on_timeout=lambda: log.read_text(errors="replace"),
    )
    return proc, log


@pytest.mark.needs_kernel
def test_cross_subnet_routes_go_over_ipip_and_containers_talk(
    across_router: Pair, tmp_path: Path
) -> None:
    pair = across_router
    assert pair.router is not None
    _wait_routes(
        pair,
        f"{BLOCK_B} via 192.168.200.101 dev tunl0 proto bird metric 1024 onlink",
        f"{BLOCK_A} via 192.168.100.100 dev tunl0 proto bird metric 1024 onlink",
    )
    # The router has no route to 172.17.0.0/16: only the tunnel can carry the ping.
    assert not [r for r in pair.router.routes() if r.startswith("172.17.")]
    proc, log = _capture(pair.router, tmp_path)
    try:
        ok = pair.ca.ping(CONTAINER_B, count=3, timeout=5 * SLOW)
        time.sleep(1.0 * SLOW)  # let tcpdump print the last packets
    finally:
        os.kill(proc.pid, 15)  # our own tcpdump, by pid
        proc.wait(timeout=10 * SLOW)
    seen = log.read_text(errors="replace")
    assert ok, pair.diag() + "\n--- tcpdump ---\n" + seen
    request = "IP 192.168.100.100 > 192.168.200.101: IP 172.17.8.2 > 172.17.9.2: ICMP echo request"
    reply = "IP 192.168.200.101 > 192.168.100.100: IP 172.17.9.2 > 172.17.8.2: ICMP echo reply"
    assert seen.count(request) >= 3, seen
    assert seen.count(reply) >= 3, seen
