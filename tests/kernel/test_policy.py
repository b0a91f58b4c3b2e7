"""TunnelPolicy, KernelRoute and Coalescer: pure, no kernel."""

from __future__ import annotations

from ipaddress import IPv4Interface, IPv6Interface, ip_address, ip_network
from types import MappingProxyType

import pytest

from kernel import Coalescer, KernelRoute, NextHop, TunnelMode, TunnelPolicy, blackhole
from kernel.coalesce import RouteTable, prefix_key

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


def test_route_table_is_a_prefix_mapping_with_int_keys_inside() -> None:
    v4, v6 = N("11.0.0.1/32"), N("::b00:1/128")  # the same address bits in both families
    assert prefix_key(v4) != prefix_key(v6)
    assert prefix_key(N("10.0.0.0/8")) != prefix_key(N("10.0.0.0/16"))
    table = RouteTable()
    table[v4], table[v6] = blackhole(v4), blackhole(v6)
    assert len(table) == 2 and v4 in table and N("11.0.0.1/32") in table
    assert "11.0.0.1/32" not in table and table.get("nonsense") is None  # type: ignore[call-overload]
    assert list(table) == [v4, v6]
    assert dict(table.items()) == {v4: blackhole(v4), v6: blackhole(v6)}
    assert list(table.values()) == [blackhole(v4), blackhole(v6)]
    assert table.pop(N("11.0.0.1/32")) == blackhole(v4)
    with pytest.raises(KeyError):
        table[v4]
    with pytest.raises(ValueError):
        table[v4] = blackhole(v6)  # a route is stored under its own prefix only
    view = MappingProxyType(table)  # what NetlinkSink.installed() hands out
    assert dict(view) == {v6: blackhole(v6)}


def test_coalescer_with_a_route_table_drains_keyed_changes() -> None:
    installed = RouteTable([(DST, r("192.168.100.1"))])
    q = Coalescer(installed)
    q.put(DST, r("192.168.100.2"))
    q.put(DST, r("192.168.100.1"))  # back to what is installed
    other = N("172.17.10.0/24")
    q.put(other, blackhole(other))
    q.put(DST, None)
    assert DST in q and q.get(DST, "absent") is None and q.get(N("10.0.0.0/8"), "x") == "x"
    assert list(q) == [other, DST]
    assert q.drain_keyed() == [
        (prefix_key(other), other, blackhole(other)),
        (prefix_key(DST), DST, None),
    ]
    assert not q


def test_coalescer_interleave_spreads_withdrawals_and_keeps_changes_first() -> None:
    nets = [N(f"11.0.0.{i}/32") for i in range(10)]
    installed = RouteTable((n, blackhole(n)) for n in nets[:8])
    q = Coalescer(installed)
    for n in nets[:8]:
        q.put(n, None)
    q.put(nets[8], blackhole(nets[8]))
    q.put(nets[9], blackhole(nets[9]))
    q.interleave(3)
    assert list(q) == [nets[i] for i in (8, 9, 0, 3, 6, 1, 4, 7, 2, 5)]
    assert [route for _, route in q.drain()] == [blackhole(nets[8]), blackhole(nets[9])] + [
        None
    ] * 8
