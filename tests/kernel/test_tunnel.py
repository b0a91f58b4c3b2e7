"""Routes over tunl0 (IPIP). Needs a kernel with ipip: in CI they run in the VM
(tests/vm/run-in-vm.sh); elsewhere they skip with the reason."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from ipaddress import IPv4Interface, ip_address, ip_network

import pytest

from kernel import KernelRoute, NetlinkSink, NextHop, TunnelMode, TunnelPolicy
from tests.kernel.conftest import ip, ipip_unavailable, ours

pytestmark = [pytest.mark.needs_root, pytest.mark.needs_kernel]

DST = ip_network("172.17.9.0/24")


@pytest.fixture(autouse=True)
def _needs_ipip() -> None:
    if (why := ipip_unavailable()) is not None:
        pytest.skip(why)


async def test_cross_subnet_route_goes_over_tunl0_exactly_like_birds(netns: str) -> None:
    assert "UP" not in ip(netns, "link show tunl0").split(">")[0]  # the fallback tunl0 is down
    policy = TunnelPolicy(
        interfaces={"eth0": IPv4Interface("192.168.100.100/24")},
        default=TunnelMode.CROSS_SUBNET,
    )
    sink = NetlinkSink(netns=netns)
    await sink.start()
    sink.update(DST, policy.route(DST, [ip_address("192.168.200.101")]))
    other = ip_network("172.17.10.0/24")
    sink.update(other, policy.route(other, [ip_address("192.168.100.101")]))
    await sink.flush()
    assert ours(netns) == [
        "172.17.9.0/24 via 192.168.200.101 dev tunl0 proto bird metric 1024 onlink",
        "172.17.10.0/24 via 192.168.100.101 dev eth0 proto bird metric 1024 onlink",
    ]
    assert "UP" in ip(netns, "link show tunl0").split(">")[0]
    assert "ipip" in ip(netns, "-d link show tunl0")
    assert not sink.failed()
    await sink.close(flush_routes=True)
    assert ours(netns) == []


@pytest.fixture
def netns_without_tunl0() -> Iterator[str]:
    if os.environ.get("RUN_IN_VM") != "1":
        pytest.skip("changes net.core.fb_tunnels_only_for_init_net: only inside the throwaway VM")
    knob = "/proc/sys/net/core/fb_tunnels_only_for_init_net"
    with open(knob) as f:
        saved = f.read().strip()
    with open(knob, "w") as f:
        f.write("2")  # new namespaces get no fallback tunl0
    name = f"roost-k-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)
        with open(knob, "w") as f:
            f.write(saved)


async def test_tunl0_is_created_only_where_absent(netns_without_tunl0: str) -> None:
    ns = netns_without_tunl0
    assert ip(ns, "link show tunl0", check=False) == ""
    ip(ns, "link add eth0 type dummy")
    ip(ns, "addr add 192.168.100.100/24 dev eth0")
    ip(ns, "link set eth0 up")
    sink = NetlinkSink(netns=ns)
    await sink.start()
    sink.update(DST, KernelRoute(DST, (NextHop(ip_address("192.168.200.101"), "tunl0"),)))
    await sink.flush()
    assert "ipip" in ip(ns, "-d link show tunl0")
    assert ours(ns) == ["172.17.9.0/24 via 192.168.200.101 dev tunl0 proto bird metric 1024 onlink"]
    await sink.ensure_tunnel()  # idempotent: exists and is up
    await sink.close()
