"""NetlinkSink's restart recovery step against a real kernel: `hold` queues, `release`
reconciles in one pass (only real differences reach the kernel)."""

from __future__ import annotations

import asyncio
import time
from ipaddress import ip_address, ip_network

import pytest

from kernel import KernelRoute, NetlinkSink, NextHop, blackhole
from tests.kernel.conftest import ip, ours

pytestmark = pytest.mark.needs_root

A = ip_address
N = ip_network
OWN = blackhole(N("172.17.8.0/24"))
KEPT = KernelRoute(N("172.17.9.0/24"), (NextHop(A("192.168.100.101"), "eth0"),))
MOVED = KernelRoute(N("172.17.10.0/24"), (NextHop(A("192.168.100.102"), "eth0"),))
GONE = KernelRoute(N("172.17.11.0/24"), (NextHop(A("192.168.100.101"), "eth0"),))
NEW = KernelRoute(N("172.17.12.0/24"), (NextHop(A("192.168.100.103"), "eth0"),))
MOVED_NOW = KernelRoute(MOVED.prefix, (NextHop(A("192.168.100.103"), "eth0"),))


async def earlier_run(ns: str) -> list[str]:
    sink = NetlinkSink(netns=ns)
    await sink.start()
    for r in (OWN, KEPT, MOVED, GONE):
        sink.update(r.prefix, r)
    await sink.flush()
    await sink.close()  # the routes stay (persist)
    return ours(ns)


async def test_hold_then_release_changes_only_what_differs(netns: str) -> None:
    before = await earlier_run(netns)
    assert len(before) == 4
    sink = NetlinkSink(netns=netns, prune_on_start=False)
    await sink.start()
    sink.hold()
    assert sink.held
    for r in (OWN, KEPT, MOVED_NOW, NEW):
        sink.update(r.prefix, r)
    await sink.flush()
    assert sink.stats["requests"] == 0  # held: the kernel keeps the earlier run's routes
    assert ours(netns) == before
    await sink.release()
    assert not sink.held
    # One request per difference: MOVED replaced, NEW added, GONE removed; OWN and KEPT
    # (desired exactly as installed) untouched.
    assert sink.stats["requests"] == 3
    assert dict(sink.installed()) == {r.prefix: r for r in (OWN, KEPT, MOVED_NOW, NEW)}
    now = ours(netns)
    assert [line for line in before if "172.17.8.0" in line or "172.17.9.0" in line] == [
        line for line in now if "172.17.8.0" in line or "172.17.9.0" in line]
    assert any(line.startswith("172.17.10.0/24 via 192.168.100.103") for line in now), now
    assert any(line.startswith("172.17.12.0/24 via 192.168.100.103") for line in now), now
    assert not any(line.startswith("172.17.11.0/24") for line in now), now
    await sink.close()


async def test_a_route_deleted_during_the_hold_is_restored_at_release(netns: str) -> None:
    await earlier_run(netns)
    sink = NetlinkSink(netns=netns, prune_on_start=False)
    await sink.start()
    sink.hold()
    for r in (OWN, KEPT, MOVED, GONE):
        sink.update(r.prefix, r)
    ip(netns, "route", "del", "172.17.9.0/24")  # someone else, while we hold
    deadline = time.monotonic() + 5
    while sink.stats["restored"] == 0:  # the watch has seen it (and queued the route)
        assert time.monotonic() < deadline, "the watch did not report the deletion"
        await asyncio.sleep(0.02)
    assert not any(line.startswith("172.17.9.0/24") for line in ours(netns))  # still held
    await sink.release()
    assert any(line.startswith("172.17.9.0/24 via 192.168.100.101") for line in ours(netns))
    await sink.close()


async def test_closing_while_held_leaves_the_kernel_alone(netns: str) -> None:
    before = await earlier_run(netns)
    sink = NetlinkSink(netns=netns, prune_on_start=False)
    await sink.start()
    sink.hold()
    sink.update(KEPT.prefix, None)
    sink.update(NEW.prefix, NEW)
    await sink.close()
    assert ours(netns) == before
