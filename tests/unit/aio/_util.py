"""Loopback helpers for the asyncio-edge tests: a recording handler and a peer pair."""

from __future__ import annotations

import asyncio
import ipaddress
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from bgp.aio.peer import BgpPeer, Listener, TransportOptions
from bgp.events import SessionDown
from bgp.session import SessionConfig
from bgp.types import Family
from bgp.wire.model import Negotiated, Update

ROUTER_A = ipaddress.IPv4Address("10.0.0.1")
ROUTER_B = ipaddress.IPv4Address("10.0.0.2")


@dataclass
class Recorder:
    """A `PeerHandler` that records everything and lets a test wait for a condition."""

    established: list[Negotiated] = field(default_factory=list)
    updates: list[Update] = field(default_factory=list)
    eors: list[Family] = field(default_factory=list)
    refreshes: list[tuple[Family, int]] = field(default_factory=list)
    downs: list[SessionDown] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def _poke(self) -> None:
        self.changed.set()

    def on_established(self, peer: BgpPeer, negotiated: Negotiated) -> None:
        self.established.append(negotiated)
        self._poke()

    def on_update(self, peer: BgpPeer, update: Update) -> None:
        self.updates.append(update)
        self._poke()

    def on_end_of_rib(self, peer: BgpPeer, family: Family) -> None:
        self.eors.append(family)
        self._poke()

    def on_route_refresh(self, peer: BgpPeer, family: Family, subtype: int) -> None:
        self.refreshes.append((family, subtype))
        self._poke()

    def on_down(self, peer: BgpPeer, event: SessionDown) -> None:
        self.downs.append(event)
        self._poke()

    def prefixes(self) -> set[str]:
        out: set[str] = set()
        for update in self.updates:
            for _family, _attrs, nlri in update.announced():
                out.update(str(n.prefix) for n in nlri)
            for _family, nlri in update.withdrawals():
                out.difference_update(str(n.prefix) for n in nlri)
        return out


async def wait_until(pred: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """Poll `pred` on the loop (every 10 ms) until truthy; AssertionError on timeout."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if loop.time() >= deadline:
            raise AssertionError(f"timeout ({timeout:g} s) waiting for {what or pred}")
        await asyncio.sleep(0.01)


def config(
    local_asn: int,
    router_id: ipaddress.IPv4Address,
    peer_asn: int,
    **kw: Any,
) -> SessionConfig:
    kw.setdefault("hold_time", 9)
    kw.setdefault("connect_retry_time", 0.5)
    kw.setdefault("idle_hold_time", 0.2)
    return SessionConfig(local_asn=local_asn, router_id=router_id, peer_asn=peer_asn, **kw)


@dataclass
class Pair:
    a: BgpPeer
    b: BgpPeer
    ra: Recorder
    rb: Recorder
    listener_a: Listener | None
    listener_b: Listener


@asynccontextmanager
async def peer_pair(
    *,
    host_a: str = "127.0.0.1",
    host_b: str = "127.0.0.2",
    a_kw: dict[str, Any] | None = None,
    b_kw: dict[str, Any] | None = None,
    a_transport: dict[str, Any] | None = None,
    b_transport: dict[str, Any] | None = None,
    both_active: bool = False,
    start: bool = True,
) -> AsyncIterator[Pair]:
    """A (AS 65001, active) and B (AS 65002, passive unless `both_active`) over TCP.

    A connects from `host_a` to B's listener on `host_b`; with `both_active` A listens too
    and B connects to it, so both sides connect at once (collision)."""
    ra, rb = Recorder(), Recorder()
    listener_b = Listener(host_b, 0)
    listener_a = Listener(host_a, 0) if both_active else None
    await listener_b.start()
    if listener_a is not None:
        await listener_a.start()
    cfg_a = config(65001, ROUTER_A, 65002, peer_address=host_b, **(a_kw or {}))
    cfg_b = config(
        65002, ROUTER_B, 65001, peer_address=host_a, passive=not both_active, **(b_kw or {})
    )
    topt_a = {"local_address": host_a, **(a_transport or {})}
    topt_b = {"local_address": host_b, **(b_transport or {})}
    a = BgpPeer(cfg_a, TransportOptions(host_b, listener_b.port, **topt_a), ra, name="A")
    b_port = listener_a.port if listener_a is not None else 179
    b = BgpPeer(cfg_b, TransportOptions(host_a, b_port, **topt_b), rb, name="B")
    listener_b.add_peer(b)
    if listener_a is not None:
        listener_a.add_peer(a)
    try:
        if start:
            await b.start()
            await a.start()
        yield Pair(a, b, ra, rb, listener_a, listener_b)
    finally:
        await a.stop()
        await b.stop()
        await listener_b.close()
        if listener_a is not None:
            await listener_a.close()
