"""The daemon's glue: the best-path callback (kernel routes) inside the speaker's UPDATE
processing, and End-of-RIB tracking for the startup prune."""

from __future__ import annotations

import asyncio
import ipaddress

from bgp.events import SessionDown
from bgp.fsm import DownReason
from bgp.policy import ACCEPT_ALL
from bgp.rib.path import PeerInfo
from bgp.speaker import PeerConfigForSpeaker
from bgp.types import IPV4_UNICAST, IPV6_UNICAST
from bgp.wire.model import MpReach, Negotiated, Update
from bgp.wire.prefix import Nlri
from kernel.routes import TunnelPolicy
from kernel.sink import MemorySink
from roost import config as cfg
from roost.daemon import Daemon, _Handler
from tests.unit.rib.helpers import announce, attrs, pfx

CONFIG = """\
[router]
asn = 65000
id = "10.0.0.1"
"""


def test_next_hop_of_another_family_does_not_stop_the_batch() -> None:
    # An IPv4 route whose next hop is IPv6 (as an RFC 8950 peer would send) cannot go in
    # the kernel; it must not raise out of the speaker, or the good route of the same
    # batch is never advertised to the other peers.
    async def run() -> None:
        sink = MemorySink()
        d = Daemon(cfg.loads(CONFIG), sink=sink, install_signals=False)
        d.tunnel = TunnelPolicy(interfaces={"eth0": ipaddress.IPv4Interface("10.0.0.1/24")})
        sp = d.speaker
        ctx = Negotiated(asn4=True, families=frozenset({IPV4_UNICAST}),
                         peer_router_id=ipaddress.IPv4Address("10.0.0.2"))
        for key, addr, asn in (("A", "10.0.0.2", 65001), ("B", "10.0.0.3", 65000)):
            sp.add_peer(PeerConfigForSpeaker(
                PeerInfo(key, ipaddress.IPv4Address(addr), asn, 65000),
                ACCEPT_ALL, ACCEPT_ALL))
            sp.peer_up(key, ctx, 0.0)
        good = announce(attrs("10.0.0.2", path=(65001,)), "172.16.1.0/24")
        bad = Update(attrs=attrs("10.0.0.2", path=(65001,)).replace(next_hop=None),
                     mp_reach=MpReach(IPV4_UNICAST, ipaddress.IPv6Address("fd00::2"),
                                      (Nlri(pfx("172.16.2.0/24"), 0),)))
        out = sp.receive_updates("A", [bad, good], 1.0)
        assert out.get("B")  # both routes advertised to B
        await asyncio.sleep(0.01)
        assert set(sink.installed()) == {ipaddress.ip_network("172.16.1.0/24")}
        assert sp.peers_summary()[1]["families"]["ipv4-unicast"]["advertised"] == 2

    asyncio.run(run())


def test_a_failing_route_computation_is_logged_not_raised() -> None:
    class Broken(TunnelPolicy):
        def route(self, prefix, gateways):  # type: ignore[no-untyped-def]
            if str(prefix) == "172.16.2.0/24":
                raise RuntimeError("boom")
            return super().route(prefix, gateways)

    async def run() -> None:
        sink = MemorySink()
        d = Daemon(cfg.loads(CONFIG), sink=sink, install_signals=False)
        d.tunnel = Broken(interfaces={"eth0": ipaddress.IPv4Interface("10.0.0.1/24")})
        ctx = Negotiated(asn4=True, peer_router_id=ipaddress.IPv4Address("10.0.0.2"))
        d.speaker.add_peer(PeerConfigForSpeaker(
            PeerInfo("A", ipaddress.IPv4Address("10.0.0.2"), 65001, 65000),
            ACCEPT_ALL, ACCEPT_ALL))
        d.speaker.peer_up("A", ctx, 0.0)
        d.speaker.receive_updates("A", [announce(attrs("10.0.0.2", path=(65001,)),
                                                 "172.16.2.0/24", "172.16.3.0/24")], 1.0)
        await asyncio.sleep(0.01)
        assert set(sink.installed()) == {ipaddress.ip_network("172.16.3.0/24")}
        assert [r["prefix"] for r in d.speaker.routes()] == ["172.16.2.0/24", "172.16.3.0/24"]

    asyncio.run(run())


def test_peer_is_done_only_after_end_of_rib_of_every_family() -> None:
    # The startup prune waits for `eor`: the first End-of-RIB (IPv4) is not enough when
    # IPv6 was negotiated too.
    async def run() -> None:
        conf = cfg.loads(CONFIG + '[[peer]]\naddress = "10.0.0.2"\nasn = 65000\n'
                         'families = ["ipv4", "ipv6"]\n')
        d = Daemon(conf, sink=MemorySink(), install_signals=False)
        state = d._new_peer(conf.peers[0])
        key = str(conf.peers[0].address)
        handler = _Handler(d, key)
        ctx = Negotiated(asn4=True, families=frozenset({IPV4_UNICAST, IPV6_UNICAST}),
                         peer_asn=65000, peer_router_id=ipaddress.IPv4Address("10.0.0.2"))
        handler.on_established(state.peer, ctx)
        assert not state.eor
        handler.on_end_of_rib(state.peer, IPV4_UNICAST)
        assert not state.eor
        handler.on_end_of_rib(state.peer, IPV6_UNICAST)
        assert state.eor
        handler.on_down(state.peer, SessionDown(DownReason.TCP_CLOSED, None))
        handler.on_established(state.peer, ctx)  # a new session starts over
        assert not state.eor

    asyncio.run(run())


def test_reload_keeps_the_policy_a_running_dynamic_range_uses() -> None:
    # [reflector] is restart-only, so the running dynamic range still names its old
    # import policy; a reload whose file renamed that policy must not leave the range
    # without it (no policy on iBGP = accept everything).
    old_text = CONFIG + """
[reflector]
cluster_id = "10.0.0.1"

[[reflector.dynamic]]
range = "10.0.1.0/24"
import = "clients-in"

[policy.clients-in]
default = "reject"
"""
    new_text = old_text.replace('"clients-in"', '"clients-in-v2"').replace(
        "[policy.clients-in]", "[policy.clients-in-v2]")

    async def run() -> None:
        d = Daemon(cfg.loads(old_text), sink=MemorySink(), install_signals=False)
        before = d._policies["clients-in"]
        result = await d._apply(cfg.loads(new_text))
        assert "reflector" in result["needs_restart"]
        assert d._policies.get("clients-in") is before
        rng = d.config.reflector.dynamic[0] if d.config.reflector else None
        assert rng is not None and rng.template.import_policy == "clients-in"

    asyncio.run(run())
