"""TunnelPolicy, KernelRoute and Coalescer: pure, no kernel."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_network

import pytest

from kernel import Coalescer, KernelRoute, NextHop, TunnelMode, TunnelPolicy, blackhole

A = ip_address
N = ip_network
POOL = N("172.17.0.0/16")
DST = N("172.17.9.0/24")
ETH0 = {"eth0": IPv4Interface("192.168.100.100/24")}


def policy(mode: TunnelMode, **kw: object) -> TunnelPolicy:
    return TunnelPolicy(interfaces=ETH0, modes={POOL: mode}, **kw)  # type: ignore[arg-type]


def test_same_subnet_is_direct_and_onlink() -> None:
    for mode in (TunnelMode.NEVER, TunnelMode.CROSS_SUBNET):
        assert policy(mode).nexthop(A("192.168.100.101"), DST) == NextHop(
            A("192.168.100.101"), "eth0", onlink=True
        )


def test_cross_subnet_uses_tunnel_only_off_subnet() -> None:
    p = policy(TunnelMode.CROSS_SUBNET)
    assert p.nexthop(A("192.168.200.101"), DST) == NextHop(A("192.168.200.101"), "tunl0", True)


def test_always_uses_tunnel_even_on_subnet() -> None:
    p = policy(TunnelMode.ALWAYS)
    assert p.nexthop(A("192.168.100.101"), DST).ifname == "tunl0"


def test_decision_is_by_next_hop_not_by_peer() -> None:
    # A reflector on another subnet sent a route whose next hop is on ours: direct.
    p = policy(TunnelMode.CROSS_SUBNET)
    assert p.route(DST, [A("192.168.100.101")]).nexthops[0].ifname == "eth0"


def test_never_off_subnet_uses_the_kernel_route_to_the_next_hop() -> None:
    router = NextHop(A("192.168.100.1"), "eth0", onlink=False)
    p = policy(TunnelMode.NEVER, kernel_routes={N("192.168.200.0/24"): "eth1"})
    assert p.nexthop(A("192.168.200.101"), DST) == NextHop(A("192.168.200.101"), "eth1", True)
    p = policy(TunnelMode.NEVER, kernel_routes={N("0.0.0.0/0"): router})
    assert p.nexthop(A("192.168.200.101"), DST) == NextHop(A("192.168.100.1"), "eth0", True)
    assert policy(TunnelMode.NEVER).nexthop(A("10.9.9.9"), DST) == NextHop(A("10.9.9.9"))


def test_longest_pool_wins_and_default_applies() -> None:
    p = TunnelPolicy(
        interfaces=ETH0,
        modes={POOL: TunnelMode.ALWAYS, N("172.17.9.0/24"): TunnelMode.NEVER},
        default=TunnelMode.CROSS_SUBNET,
    )
    assert p.mode_for(DST) is TunnelMode.NEVER
    assert p.mode_for(N("172.17.10.0/24")) is TunnelMode.ALWAYS
    assert p.mode_for(N("10.0.0.0/24")) is TunnelMode.CROSS_SUBNET


def test_ipv6_never_tunnels() -> None:
    p = TunnelPolicy(
        interfaces={"eth0": [IPv6Interface("fd00::100/64"), IPv4Interface("192.168.100.100/24")]},
        default=TunnelMode.ALWAYS,
    )
    assert p.nexthop(A("fd00::101"), N("fd00:9::/64")) == NextHop(A("fd00::101"), "eth0", True)


def test_ecmp_route_is_canonical() -> None:
    a, b = NextHop(A("192.168.100.102"), "eth0"), NextHop(A("192.168.100.101"), "eth0")
    assert KernelRoute(DST, (a, b, a)) == KernelRoute(DST, (b, a))
    assert KernelRoute(DST, (a, b)).nexthops == (b, a)


def test_route_validation() -> None:
    with pytest.raises(ValueError):
        KernelRoute(DST)
    with pytest.raises(ValueError):
        KernelRoute(DST, (NextHop(A("fd00::1"), "eth0"),))
    with pytest.raises(ValueError):
        KernelRoute(DST, (NextHop(A("192.168.100.1"), "eth0"),), blackhole=True)
    assert NextHop(A("192.168.100.1")).onlink is False  # onlink needs a device


def r(gw: str) -> KernelRoute:
    return KernelRoute(DST, (NextHop(A(gw), "eth0"),))


def test_coalescer_keeps_only_the_final_state() -> None:
    q = Coalescer()
    for gw in ("192.168.100.1", "192.168.100.2", "192.168.100.3"):
        q.put(DST, r(gw))
    q.put(N("172.17.10.0/24"), blackhole(N("172.17.10.0/24")))
    assert q.drain(1) == [(DST, r("192.168.100.3"))]
    assert len(q) == 1
    assert q.drain() == [(N("172.17.10.0/24"), blackhole(N("172.17.10.0/24")))]
    assert not q


def test_coalescer_drops_changes_back_to_the_installed_state() -> None:
    installed = {DST: r("192.168.100.1")}
    q = Coalescer(installed)
    q.put(DST, r("192.168.100.2"))
    q.put(DST, None)
    q.put(DST, r("192.168.100.1"))  # flapped back to what the kernel has
    assert q.drain() == []
    q.put(N("10.0.0.0/8"), None)  # withdraw of something not installed
    assert q.drain() == []
    q.put(DST, None)
    installed.pop(DST)  # gone meanwhile (e.g. adopted state changed): nothing left to do
    assert q.drain() == []


def test_coalescer_rejects_mismatched_prefix() -> None:
    with pytest.raises(ValueError):
        Coalescer().put(N("10.0.0.0/8"), r("192.168.100.1"))
