"""Restart recovery (`roost run -R`) without a kernel: the sinks' hold / release step and
the daemon's decision of when to release (End-of-RIB from every peer, or
`graceful_restart.wait`), with a MemorySink that adopts routes "left by an earlier run"."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from pathlib import Path

from bgp.types import IPV4_UNICAST
from bgp.wire.model import Negotiated
from kernel.coalesce import Coalescer, RouteTable, settle
from kernel.routes import KernelRoute, NextHop, Prefix, TunnelPolicy, blackhole
from kernel.sink import MemorySink
from roost import config as cfg
from roost.daemon import Daemon, _Handler
from tests.unit.rib.helpers import announce, attrs

OWN = ipaddress.IPv4Network("172.16.0.0/24")
KEPT = ipaddress.IPv4Network("172.16.1.0/24")  # announced again, same next hop
MOVED = ipaddress.IPv4Network("172.16.2.0/24")  # announced again, another next hop
GONE = ipaddress.IPv4Network("172.16.3.0/24")  # withdrawn while we were away
NEW = ipaddress.IPv4Network("172.16.4.0/24")  # added while we were away
PEER = "10.0.0.2"


def via(prefix: Prefix, gw: str) -> KernelRoute:
    return KernelRoute(prefix, (NextHop(ipaddress.IPv4Address(gw), "eth0", onlink=True),))


def earlier_run() -> list[KernelRoute]:
    return [blackhole(OWN), via(KEPT, PEER), via(MOVED, "10.0.0.3"), via(GONE, PEER)]


# --------------------------------------------------------------------------- the sink


def test_settle_withdraws_only_adopted_routes_nobody_desired() -> None:
    installed = RouteTable((r.prefix, r) for r in earlier_run())
    queue = Coalescer(installed)
    adopted = set(installed)
    queue.put(KEPT, via(KEPT, PEER))  # as installed: no change at all
    queue.put(MOVED, via(MOVED, PEER))
    adopted -= {KEPT, MOVED}
    assert settle(queue, adopted) == 2  # OWN and GONE
    assert not adopted
    assert dict(queue.drain()) == {MOVED: via(MOVED, PEER), OWN: None, GONE: None}


def test_memory_sink_holds_then_reconciles_in_one_pass() -> None:
    async def run() -> None:
        sink = MemorySink(adopt=earlier_run())
        await sink.start()
        sink.hold()
        sink.update(OWN, blackhole(OWN))
        sink.update(KEPT, via(KEPT, PEER))
        sink.update(MOVED, via(MOVED, "10.0.0.9"))  # a first choice, then a better one
        sink.update(MOVED, via(MOVED, PEER))
        sink.update(NEW, via(NEW, PEER))
        await sink.flush()
        assert sink.operations == []  # held: the kernel keeps the earlier run's routes
        assert dict(sink.installed()) == {r.prefix: r for r in earlier_run()}
        await sink.release()
        # One request per real difference: none for OWN and KEPT, one for MOVED.
        assert sorted(sink.operations) == sorted([
            ("replace", MOVED), ("replace", NEW), ("delete", GONE)])
        assert dict(sink.installed()) == {
            OWN: blackhole(OWN), KEPT: via(KEPT, PEER), MOVED: via(MOVED, PEER),
            NEW: via(NEW, PEER)}
        sink.update(GONE, via(GONE, PEER))  # released: changes go in at once again
        await sink.flush()
        assert sink.operations[-1] == ("replace", GONE)

    asyncio.run(run())


def test_closing_while_held_keeps_the_kernel_as_it_is() -> None:
    async def run() -> None:
        sink = MemorySink(adopt=earlier_run())
        await sink.start()
        sink.hold()
        sink.update(KEPT, None)
        await sink.close()
        assert sink.operations == []
        assert KEPT in sink.installed()

    asyncio.run(run())


def test_settle_withdraws_adopted_routes_whatever_the_sink_queued_for_them() -> None:
    # The sink queued its adopted routes again itself: GONE was deleted behind its back
    # (the kernel has nothing), OWN was changed (the kernel has another route of ours).
    installed = RouteTable((r.prefix, r) for r in earlier_run())
    queue = Coalescer(installed)
    del installed[GONE]
    queue.put(GONE, via(GONE, PEER))
    installed[OWN] = via(OWN, "10.0.0.7")
    queue.put(OWN, blackhole(OWN))
    adopted: set[Prefix] = {OWN, GONE}
    assert settle(queue, adopted) == 2
    assert not adopted
    assert dict(queue.drain()) == {OWN: None}  # GONE: nothing left to remove


def test_memory_sink_flushing_on_close_while_held_installs_nothing() -> None:
    async def run() -> None:
        sink = MemorySink(adopt=earlier_run())
        await sink.start()
        sink.hold()
        sink.update(MOVED, via(MOVED, PEER))
        sink.update(NEW, via(NEW, PEER))
        await sink.close(flush_routes=True)
        assert sorted(sink.operations) == sorted(
            ("delete", r.prefix) for r in earlier_run())
        assert dict(sink.installed()) == {}

    asyncio.run(run())


# --------------------------------------------------------------------------- the daemon


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _config(tmp_path: Path, wait: int) -> cfg.Config:
    # A passive peer: nobody connects, so the session events below are the only ones.
    return cfg.loads(f"""\
[router]
asn = 65000
id = "10.0.0.1"
listen = "127.0.0.1"
port = {_free_port()}
prefixes = ["{OWN}"]
graceful_restart = {{ restart_time = 60, wait = {wait} }}

[[peer]]
address = "{PEER}"
asn = 65000
passive = true

[control]
socket = "{tmp_path / 'roost.ctl'}"
""")


async def _started(tmp_path: Path, *, wait: int, recover: bool) -> tuple[Daemon, MemorySink]:
    sink = MemorySink(adopt=earlier_run())
    d = Daemon(_config(tmp_path, wait), sink=sink, install_signals=False, recover=recover)
    d.tunnel = TunnelPolicy(interfaces={"eth0": [ipaddress.IPv4Interface("10.0.0.1/24")]})
    await d.start()
    return d, sink


def _peer_sends_table(d: Daemon, end_of_rib: bool) -> None:
    """The peer comes up and announces KEPT, MOVED (now via itself) and NEW, not GONE."""
    state = d.peers[PEER]
    handler = _Handler(d, PEER)
    handler.on_established(state.peer, Negotiated(
        asn4=True, families=frozenset({IPV4_UNICAST}), peer_asn=65000,
        peer_router_id=ipaddress.IPv4Address(PEER)))
    handler.on_updates(state.peer, [announce(attrs(PEER), str(KEPT), str(MOVED), str(NEW))])
    if end_of_rib:
        handler.on_end_of_rib(state.peer, IPV4_UNICAST)


def _expected() -> dict[Prefix, KernelRoute]:
    return {OWN: blackhole(OWN), KEPT: via(KEPT, PEER), MOVED: via(MOVED, PEER),
            NEW: via(NEW, PEER)}


def test_recovery_defers_the_kernel_until_end_of_rib(tmp_path: Path) -> None:
    async def run() -> None:
        d, sink = await _started(tmp_path, wait=60, recover=True)
        try:
            window = d.restart_window
            assert window is not None and window.restarting and window.forwarding
            assert d.status()["recovering"] is True
            _peer_sends_table(d, end_of_rib=False)
            await asyncio.sleep(0.3)
            assert d.status()["recovering"] is True
            assert sink.operations == []  # the earlier run's routes, untouched
            assert GONE in sink.installed() and NEW not in sink.installed()
            _Handler(d, PEER).on_end_of_rib(d.peers[PEER].peer, IPV4_UNICAST)
            for _ in range(50):
                if not d.recovering:
                    break
                await asyncio.sleep(0.05)
            assert d.status()["recovering"] is False
            assert dict(sink.installed()) == _expected()
            # Unchanged routes (OWN, KEPT) were neither removed nor replaced.
            assert sorted(sink.operations) == sorted([
                ("replace", MOVED), ("replace", NEW), ("delete", GONE)])
        finally:
            await d.shutdown()

    asyncio.run(run())


def test_recovery_ends_at_the_wait_limit(tmp_path: Path) -> None:
    async def run() -> None:
        d, sink = await _started(tmp_path, wait=1, recover=True)
        try:
            loop = asyncio.get_running_loop()
            t0 = loop.time()
            _peer_sends_table(d, end_of_rib=False)  # ... and never sends End-of-RIB
            while d.recovering and loop.time() - t0 < 5:
                await asyncio.sleep(0.05)
            took = loop.time() - t0
            assert not d.recovering
            assert 0.8 <= took <= 2.0, took
            assert dict(sink.installed()) == _expected()
        finally:
            await d.shutdown()

    asyncio.run(run())


def test_plain_start_installs_at_once_and_tells_peers_forwarding_was_lost(
    tmp_path: Path,
) -> None:
    async def run() -> None:
        d, sink = await _started(tmp_path, wait=60, recover=False)
        try:
            window = d.restart_window
            assert window is not None and not window.restarting and not window.forwarding
            during, after = window.capabilities([IPV4_UNICAST])
            assert not during.restarting and not during.families[0].forwarding_preserved
            assert after.families[0].forwarding_preserved
            assert d.status()["recovering"] is False
            _peer_sends_table(d, end_of_rib=False)
            await asyncio.sleep(0.1)
            # Installed at once; the earlier run's GONE still there (never removed before
            # convergence) ...
            assert NEW in sink.installed() and GONE in sink.installed()
            _Handler(d, PEER).on_end_of_rib(d.peers[PEER].peer, IPV4_UNICAST)
            for _ in range(50):
                if GONE not in sink.installed():
                    break
                await asyncio.sleep(0.05)
            # ... and removed once every peer has sent End-of-RIB.
            assert dict(sink.installed()) == _expected()
        finally:
            await d.shutdown()

    asyncio.run(run())


# --------------------------------------------------------------------------- configuration


def test_wait_is_read_from_the_graceful_restart_table() -> None:
    base = '[router]\nasn = 65000\nid = "10.0.0.1"\n'
    assert cfg.loads(base).router.graceful_restart.wait == 240  # BIRD's default
    gr = cfg.loads(base + "graceful_restart = { wait = 5 }\n").router.graceful_restart
    assert gr.wait == 5 and gr.restart_time == 120
    for bad in ("0", "3601", '"soon"'):
        try:
            cfg.loads(base + f"graceful_restart = {{ wait = {bad} }}\n")
        except cfg.ConfigError as exc:
            assert "router.graceful_restart.wait" in str(exc), exc
        else:
            raise AssertionError(f"wait = {bad} accepted")
