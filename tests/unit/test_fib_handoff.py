"""The daemon's FIB hand-off: routes worked out once per attribute set give the kernel
exactly what working them out for each prefix gives, and a configuration change or a
next hop of another family is never answered from what was remembered."""

from __future__ import annotations

import asyncio
import ipaddress
import logging

import pytest

from bgp.policy import ACCEPT_ALL
from bgp.rib.path import PeerInfo
from bgp.speaker import PeerConfigForSpeaker
from bgp.types import IPV4_UNICAST
from bgp.wire.model import MpReach, Negotiated, Update
from bgp.wire.prefix import Nlri
from kernel import KernelRoute, TunnelMode, TunnelPolicy
from kernel.sink import MemorySink
from roost import config as cfg
from roost.daemon import Daemon
from tests.unit.rib.helpers import announce, attrs, pfx

CONFIG = '[router]\nasn = 65000\nid = "10.0.0.1"\n'
N = ipaddress.ip_network
A = ipaddress.ip_address
POLICY = TunnelPolicy(
    interfaces={"eth0": ipaddress.IPv4Interface("10.0.0.1/24")},
    modes={N("172.16.0.0/16"): TunnelMode.CROSS_SUBNET},
    default=TunnelMode.NEVER,
    kernel_routes={N("10.9.0.0/16"): "eth1"},
)


def _daemon(sink: MemorySink) -> Daemon:
    d = Daemon(cfg.loads(CONFIG), sink=sink, install_signals=False)
    d.tunnel = POLICY
    ctx = Negotiated(
        asn4=True,
        families=frozenset({IPV4_UNICAST}),
        peer_router_id=ipaddress.IPv4Address("10.0.0.2"),
    )
    d.speaker.add_peer(
        PeerConfigForSpeaker(PeerInfo("A", A("10.0.0.2"), 65001, 65000), ACCEPT_ALL, ACCEPT_ALL)
    )
    d.speaker.peer_up("A", ctx, 0.0)
    return d


def test_routes_are_those_decided_for_each_prefix() -> None:
    async def run() -> None:
        sink = MemorySink()
        d = _daemon(sink)
        near, far = attrs("10.0.0.2", path=(65001,)), attrs("10.9.0.2", path=(65001,))
        feed = {
            near: ["172.16.1.0/24", "172.16.2.0/24", "192.168.5.0/24", "10.8.0.0/32"],
            far: ["172.16.3.0/24", "172.16.4.0/26", "192.168.6.0/24"],
        }
        for _ in range(2):  # the second time every attribute set is known
            d.speaker.receive_updates("A", [announce(a, *p) for a, p in feed.items()], 1.0)
            await asyncio.sleep(0.01)
            want = {
                N(p): KernelRoute(N(p), (POLICY.nexthop(a.next_hop, N(p)),))  # type: ignore[arg-type]
                for a, prefixes in feed.items()
                for p in prefixes
            }
            assert dict(sink.installed()) == want
            # eth0 (on the subnet), tunl0 (cross-subnet pool), eth1 (default never: the
            # kernel's route to the next hop), each time.
            assert {r.nexthops[0].ifname for r in want.values()} == {"eth0", "tunl0", "eth1"}
            # Next hops swapped: every route changes, from remembered gateways.
            feed = {near: feed[far], far: feed[near]}
        d.speaker.receive_updates(
            "A",
            [Update(withdrawn=tuple(Nlri(pfx(p)) for p in ("172.16.1.0/24", "172.16.3.0/24")))],
            2.0,
        )
        await asyncio.sleep(0.01)
        assert N("172.16.1.0/24") not in sink.installed()
        assert N("172.16.3.0/24") not in sink.installed()
        assert len(sink.installed()) == 5

    asyncio.run(run())


def test_a_new_configuration_is_not_answered_from_the_old_one() -> None:
    async def run() -> None:
        sink = MemorySink()
        d = _daemon(sink)
        a = attrs("10.0.0.2", path=(65001,))
        d.speaker.receive_updates("A", [announce(a, "172.16.1.0/24")], 1.0)
        await asyncio.sleep(0.01)
        assert N("172.16.1.0/24") in sink.installed()
        # 10.0.0.2 becomes one of our own addresses (as after a reload): a route via
        # ourselves is not installed, though its attribute set was seen before.
        d.config = cfg.loads(CONFIG + 'listen = ["10.0.0.2"]\n')
        d.speaker.receive_updates("A", [announce(a, "172.16.2.0/24")], 2.0)
        await asyncio.sleep(0.01)
        assert N("172.16.2.0/24") not in sink.installed()

    asyncio.run(run())


def test_next_hop_of_another_family_is_reported_for_every_prefix(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def run() -> None:
        sink = MemorySink()
        d = _daemon(sink)
        bad = attrs("10.0.0.2", path=(65001,)).replace(next_hop=None)
        reach = MpReach(
            IPV4_UNICAST,
            A("fd00::2"),
            tuple(Nlri(pfx(p), 0) for p in ("172.16.1.0/24", "172.16.2.0/24")),
        )
        with caplog.at_level(logging.WARNING, logger="roost"):
            d.speaker.receive_updates("A", [Update(attrs=bad, mp_reach=reach)], 1.0)
            d.speaker.receive_updates(
                "A",
                [
                    Update(
                        attrs=bad,
                        mp_reach=MpReach(
                            IPV4_UNICAST, A("fd00::2"), (Nlri(pfx("172.16.3.0/24"), 0),)
                        ),
                    )
                ],
                2.0,
            )
        await asyncio.sleep(0.01)
        assert not sink.installed()
        warned = [r for r in caplog.records if getattr(r, "event", "") == "route_not_installed"]
        assert sorted(r.__dict__["prefix"] for r in warned) == [
            "172.16.1.0/24",
            "172.16.2.0/24",
            "172.16.3.0/24",
        ]

    asyncio.run(run())
