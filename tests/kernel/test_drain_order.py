"""Coalescer.interleave: the recorded drain order, and changes made while it is followed."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from kernel import Coalescer, KernelRoute, NextHop, blackhole
from kernel.coalesce import RouteTable

HOP = (NextHop(IPv4Address("10.255.0.2"), "eth0"),)


def nets(n: int) -> list[IPv4Network]:
    return [IPv4Network((0x0B000000 + i, 32)) for i in range(n)]


def withdrawing(prefixes: list[IPv4Network]) -> Coalescer:
    q = Coalescer(RouteTable((p, KernelRoute(p, HOP)) for p in prefixes))
    for p in prefixes:
        q.put(p, None)
    return q


def test_drain_follows_the_spread_order_across_slices() -> None:
    p = nets(10)
    q = withdrawing(p)
    q.interleave(4)
    spread = [p[i] for i in (0, 4, 8, 1, 5, 9, 2, 6, 3, 7)]
    assert list(q) == spread
    assert [prefix for prefix, _ in q.drain(3)] == spread[:3]
    assert len(q) == 7 and list(q) == spread[3:]
    assert [prefix for prefix, _ in q.drain(4)] == spread[3:7]
    assert [(prefix, route) for prefix, route in q.drain()] == [(x, None) for x in spread[7:]]
    assert not q and list(q) == [] and q.drain() == []


def test_changes_made_while_the_order_is_followed() -> None:
    p = nets(12)
    q = withdrawing(p[:10])
    q.interleave(5)  # 0 5 1 6 2 7 3 8 4 9
    assert [prefix for prefix, _ in q.drain(2)] == [p[0], p[5]]
    q.discard(p[1])  # gone before its turn: skipped
    q.put(p[6], blackhole(p[6]))  # a pending one changed: keeps its turn
    q.put(p[2], KernelRoute(p[2], HOP))  # back to what is installed: nothing to do ...
    q.put(p[2], None)  # ... and withdrawn again: its turn in the order still holds
    q.put(p[10], blackhole(p[10]))  # new ones come after the recorded order,
    q.put(p[0], blackhole(p[0]))  # drained ones too
    q.put(p[11], None)  # not installed: nothing to withdraw, dropped at once
    rest = [p[6], p[2], p[7], p[3], p[8], p[4], p[9], p[10], p[0]]
    assert list(q) == rest and len(q) == len(rest)
    drained = q.drain(3)
    assert drained[0] == (p[6], blackhole(p[6])) and [x for x, _ in drained] == rest[:3]
    assert [x for x, _ in q.drain()] == rest[3:]
    q.put(p[1], None)  # after the order is used up: plain insertion order again
    q.put(p[3], None)
    assert [x for x, _ in q.drain(1)] == [p[1]] and list(q) == [p[3]]


def test_a_second_interleave_spreads_what_is_left() -> None:
    p = nets(9)
    q = withdrawing(p)
    q.interleave(3)  # 0 3 6 1 4 7 2 5 8
    assert [x for x, _ in q.drain(2)] == [p[0], p[3]]
    q.interleave(2)  # what is left, 6 1 4 7 2 5 8, every 2nd first
    assert list(q) == [p[i] for i in (6, 4, 2, 8, 1, 7, 5)]
    assert [x for x, _ in q.drain()] == [p[i] for i in (6, 4, 2, 8, 1, 7, 5)]


def test_installs_keep_their_order() -> None:
    p = nets(8)
    q = Coalescer(RouteTable())
    for x in p:
        q.put(x, blackhole(x))
    q.interleave(3)
    assert list(q) == p
    assert [x for x, _ in q.drain(5)] == p[:5]
