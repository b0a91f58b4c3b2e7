"""The cheap FIB hand-off (pure, no kernel): ``network`` from integers, and
``TunnelPolicy.route`` deciding once per next hops and pool, with the results of deciding
for every prefix."""

from __future__ import annotations

import random
from ipaddress import IPv4Interface, IPv4Network, IPv6Interface, IPv6Network, ip_address
from ipaddress import ip_network as N

import pytest

from kernel import KernelRoute, NextHop, TunnelMode, TunnelPolicy, routes
from kernel.routes import IPAddress, Prefix, network

A = ip_address


def _same_network(fast: Prefix, real: Prefix) -> None:
    assert fast == real and hash(fast) == hash(real) and str(fast) == str(real)
    assert fast.__class__ is real.__class__
    assert fast.network_address == real.network_address and fast.netmask == real.netmask
    assert fast.prefixlen == real.prefixlen and fast.broadcast_address == real.broadcast_address
    assert fast.version == real.version and fast.supernet() == real.supernet()
    if fast.prefixlen >= fast.max_prefixlen - 1:
        assert list(fast.hosts()) == list(real.hosts())


def test_network_from_integers_is_the_constructors() -> None:
    assert routes._FAST_NETWORKS  # this Python's networks are built directly (checked)
    rng = random.Random(7)
    for length in range(33):
        addr = rng.getrandbits(32) & ~((1 << (32 - length)) - 1)
        _same_network(network(4, addr, length), IPv4Network((addr, length)))
    for length in (0, 1, 32, 48, 64, 96, 127, 128):
        addr = rng.getrandbits(128) & ~((1 << (128 - length)) - 1)
        _same_network(network(6, addr, length), IPv6Network((addr, length)))
    # Usable wherever a parsed one is: as a key, in a set, for containment.
    assert {network(4, 0x0A000000, 8): 1}[N("10.0.0.0/8")] == 1
    assert network(4, 0x0A010000, 16).subnet_of(N("10.0.0.0/8"))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("version", "addr", "length"),
    [
        (4, 0x0A000001, 24),  # host bits
        (4, 0, 33),
        (4, 0, -1),
        (4, 1 << 32, 32),
        (4, -1, 32),
        (6, 1, 64),
        (6, 0, 129),
        (5, 0, 0),
    ],
)
def test_network_rejects_what_is_not_a_prefix(version: int, addr: int, length: int) -> None:
    with pytest.raises(ValueError):
        network(version, addr, length)


ETH0: dict[str, list[IPv4Interface | IPv6Interface]] = {
    "eth0": [IPv4Interface("192.168.100.100/24"), IPv6Interface("fd00::100/64")]
}
GATEWAYS = [
    A("192.168.100.101"),
    A("192.168.100.102"),
    A("192.168.200.101"),
    A("192.168.200.102"),
    A("10.9.9.9"),
]


def _policies() -> list[TunnelPolicy]:
    pools = {
        N("172.17.0.0/16"): TunnelMode.CROSS_SUBNET,
        N("172.17.8.0/21"): TunnelMode.ALWAYS,
        N("172.17.9.0/24"): TunnelMode.NEVER,
        N("10.0.0.0/8"): TunnelMode.ALWAYS,
        N("fd00:9::/32"): TunnelMode.ALWAYS,
    }
    routes: dict[Prefix, str | NextHop] = {
        N("192.168.200.0/24"): NextHop(A("192.168.100.1"), "eth0"),  # recursive
        N("10.9.0.0/16"): "eth1",
    }
    return [
        TunnelPolicy(interfaces=ETH0, modes=pools, default=default, kernel_routes=routes)
        for default in TunnelMode
    ] + [TunnelPolicy(interfaces=ETH0)]


def _reference(policy: TunnelPolicy, prefix: Prefix, gws: tuple[IPAddress, ...]) -> KernelRoute:
    """What route() returned before it remembered anything."""
    return KernelRoute(prefix, tuple(policy.nexthop(gw, prefix) for gw in gws))


def test_route_decides_once_per_next_hops_and_pool_like_for_every_prefix() -> None:
    rng = random.Random(11)
    prefixes = [
        N(text)
        for text in (
            "172.17.9.0/26",
            "172.17.9.64/26",
            "172.17.10.0/26",
            "172.17.64.0/26",
            "172.18.0.0/26",
            "10.1.2.3/32",
            "172.17.0.0/16",
            "172.16.0.0/12",
            "0.0.0.0/0",
        )
    ]
    for policy in _policies():
        for _ in range(3):  # cold, then warm
            for prefix in prefixes:
                for count in (1, 2, 3):
                    gws = tuple(rng.sample(GATEWAYS, count))
                    got = policy.route(prefix, gws)
                    assert got == _reference(policy, prefix, gws)
                    assert got.prefix is prefix
                    assert policy.route(prefix, list(reversed(gws))) == got  # any iterable
        v6 = N("fd00:9::/64")
        assert policy.route(v6, [A("fd00::101")]) == _reference(policy, v6, (A("fd00::101"),))
        assert policy.route(v6, [A("fd00::101")]).nexthops[0].ifname == "eth0"  # never tunl0


def test_routes_via_the_same_next_hops_share_them() -> None:
    policy = TunnelPolicy(interfaces=ETH0)
    one = policy.route(N("172.17.1.0/26"), [A("192.168.100.101")])
    two = policy.route(network(4, 0xAC110140, 26), (A("192.168.100.101"),))
    assert one.nexthops is two.nexthops
    assert one != two and two == KernelRoute(N("172.17.1.64/26"), one.nexthops)


def test_a_bad_route_is_refused_every_time_and_never_remembered() -> None:
    policy = TunnelPolicy(interfaces=ETH0)
    gw = A("192.168.100.101")
    policy.route(N("172.17.1.0/26"), [gw])  # remembered for IPv4
    for _ in range(2):
        with pytest.raises(ValueError, match="another family"):
            policy.route(N("fd00:1::/64"), [gw])
        with pytest.raises(ValueError, match="needs next hops"):
            policy.route(N("172.17.1.0/26"), [])


def test_clear_cache_after_kernel_routes_changed_in_place() -> None:
    routes: dict[Prefix, str | NextHop] = {}
    policy = TunnelPolicy(interfaces=ETH0, kernel_routes=routes)
    dst, gw = N("172.17.1.0/26"), A("10.9.9.9")
    assert policy.route(dst, [gw]).nexthops == (NextHop(gw),)
    routes[N("10.9.0.0/16")] = "eth1"
    assert policy.route(dst, [gw]).nexthops == (NextHop(gw),)  # a snapshot until cleared
    policy.clear_cache()
    assert policy.route(dst, [gw]).nexthops == (NextHop(gw, "eth1", True),)


def test_kernel_route_equality_and_hash_are_by_value() -> None:
    hop = NextHop(A("192.168.100.101"), "eth0")
    other = NextHop(A("192.168.100.102"), "eth0")
    a = KernelRoute(N("172.17.1.0/26"), (hop, other))
    b = KernelRoute(network(4, 0xAC110100, 26), (other, hop))
    assert a == b and hash(a) == hash(b) and len({a, b}) == 1
    assert a != KernelRoute(N("172.17.1.0/26"), (hop,))
    assert a != KernelRoute(N("172.17.2.0/26"), (hop, other))
    assert KernelRoute(N("172.17.1.0/26"), blackhole=True) != KernelRoute(
        N("172.17.1.0/26"), (hop,)
    )
    assert a.__eq__(object()) is NotImplemented
