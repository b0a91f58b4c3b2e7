"""NetlinkSink's restart recovery step against a real kernel: `hold` queues, `release`
reconciles in one pass (only real differences reach the kernel)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from ipaddress import ip_address, ip_network

import pytest

from kernel import KernelRoute, NetlinkSink, NextHop, blackhole
from tests.kernel.conftest import ip, ours, routes

pytestmark = pytest.mark.needs_root

A = ip_address
N = ip_network
OWN = blackhole(N("172.17.8.0/24"))
KEPT = KernelRoute(N("172.17.9.0/24"), (NextHop(A("192.168.100.101"), "eth0"),))
MOVED = KernelRoute(N("172.17.10.0/24"), (NextHop(A("192.168.100.102"), "eth0"),))
GONE = KernelRoute(N("172.17.11.0/24"), (NextHop(A("192.168.100.101"), "eth0"),))
NEW = KernelRoute(N("172.17.12.0/24"), (NextHop(A("192.168.100.103"), "eth0"),))
MOVED_NOW = KernelRoute(MOVED.prefix, (NextHop(A("192.168.100.103"), "eth0"),))


async def until(cond: Callable[[], bool], what: str, timeout: float = 5.0) -> None:
    """Wait (polling) until ``cond()`` holds."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.02)


def at(prefix: str, ns: str) -> list[str]:
    """Our routes for ``prefix`` in ``ns``."""
    return [line for line in ours(ns) if line.startswith(f"{prefix} ")]


async def earlier_run(ns: str) -> list[str]:
    sink = NetlinkSink(netns=ns)
    await sink.start()
    for r in (OWN, KEPT, MOVED, GONE):
        sink.update(r.prefix, r)
    await sink.flush()
    await sink.close()  # the routes stay (persist)
    return ours(ns)


async def restarted(ns: str) -> NetlinkSink:
    """The sink of the next run (`roost run -R`): started over the earlier run's routes
    and holding every change."""
    sink = NetlinkSink(netns=ns, prune_on_start=False)
    await sink.start()
    sink.hold()
    return sink


async def test_hold_then_release_changes_only_what_differs(netns: str) -> None:
    before = await earlier_run(netns)
    assert len(before) == 4
    sink = await restarted(netns)
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
    sink = await restarted(netns)
    for r in (OWN, KEPT, MOVED, GONE):
        sink.update(r.prefix, r)
    ip(netns, "route", "del", "172.17.9.0/24")  # someone else, while we hold
    # The watch has seen it (and queued the route).
    await until(lambda: sink.stats["restored"] > 0, "the watch to report the deletion")
    assert not any(line.startswith("172.17.9.0/24") for line in ours(netns))  # still held
    await sink.release()
    assert any(line.startswith("172.17.9.0/24 via 192.168.100.101") for line in ours(netns))
    await sink.close()


async def test_closing_while_held_leaves_the_kernel_alone(netns: str) -> None:
    before = await earlier_run(netns)
    sink = await restarted(netns)
    sink.update(KEPT.prefix, None)
    sink.update(NEW.prefix, NEW)
    await sink.close()
    assert ours(netns) == before


async def test_a_route_nobody_wants_deleted_during_the_hold_stays_gone(netns: str) -> None:
    await earlier_run(netns)
    sink = await restarted(netns)
    for r in (OWN, KEPT, MOVED):  # GONE is not desired again
        sink.update(r.prefix, r)
    ip(netns, "route", "del", "172.17.11.0/24")  # the watch queues it to be restored
    await until(lambda: sink.stats["restored"] == 1, "the watch to see the deletion")
    await sink.release()
    assert at("172.17.11.0/24", netns) == []
    assert GONE.prefix not in sink.installed()
    assert len(ours(netns)) == 3
    await sink.close()


async def test_a_route_nobody_wants_changed_during_the_hold_is_removed(netns: str) -> None:
    await earlier_run(netns)
    sink = await restarted(netns)
    for r in (OWN, KEPT, MOVED):  # GONE is not desired again
        sink.update(r.prefix, r)
    ip(netns, "route replace 172.17.11.0/24 via 192.168.100.7 dev eth0 proto bird metric 1024")
    await until(lambda: sink.stats["restored"] == 1, "the watch to see the change")
    await sink.release()
    assert at("172.17.11.0/24", netns) == []  # neither the change nor our route put back
    assert GONE.prefix not in sink.installed()
    await sink.close()


async def test_routes_lost_with_a_link_during_the_hold_come_back_only_if_desired(
    netns: str,
) -> None:
    await earlier_run(netns)
    sink = await restarted(netns)
    for r in (OWN, KEPT, MOVED):  # GONE is not desired again
        sink.update(r.prefix, r)
    resyncs = sink.stats["resyncs"]
    ip(netns, "link", "set", "eth0", "down")  # the kernel drops the routes via eth0
    await until(lambda: sink.stats["resyncs"] > resyncs, "the re-read after link down")
    ip(netns, "link", "set", "eth0", "up")
    await until(lambda: sink.stats["resyncs"] > resyncs + 1, "the re-read after link up")
    assert at("172.17.9.0/24", netns) == []  # still held
    await sink.release()
    assert len(at("172.17.9.0/24", netns)) == 1  # desired: restored
    assert len(at("172.17.10.0/24", netns)) == 1
    assert at("172.17.11.0/24", netns) == []  # not desired: not put back
    assert set(sink.installed()) == {OWN.prefix, KEPT.prefix, MOVED.prefix}
    await sink.close()


async def test_flushing_on_close_while_held_removes_ours_and_installs_nothing(
    netns: str,
) -> None:
    await earlier_run(netns)
    sink = await restarted(netns)
    sink.update(NEW.prefix, NEW)  # a new prefix: held, must not go in on the way out
    sink.update(MOVED_NOW.prefix, MOVED_NOW)
    ip(netns, "route replace 172.17.11.0/24 via 192.168.100.7 dev eth0 proto bird metric 1024")
    await until(lambda: sink.stats["restored"] == 1, "the watch to see the change")
    foreign = "172.17.13.0/24 via 192.168.100.7 dev eth0 proto static metric 1024"
    ip(netns, "route", "add", foreign)
    await sink.close(flush_routes=True)
    assert ours(netns) == []
    assert any(line.startswith("172.17.13.0/24") for line in routes(netns)), "not ours: kept"
