"""roost's protocol core (BgpPeer + codec, no RIB) against a real gobgpd.

Topology: a flat lab, h1 = roost (10.255.0.1, fd00:255::1), h2 = gobgpd (10.255.0.2,
fd00:255::2). roost runs inside this test process: a worker thread enters h1's network
namespace (setns) and runs its own event loop there, so every socket roost opens lives in
h1. GoBGP is configured passive (it waits 5-9 s before its first active connect), so roost
is the active side. The gobgp CLI talks to gobgpd over a unix socket, from any namespace.
"""

from __future__ import annotations

import asyncio
import base64
import ctypes
import ipaddress
import os
import threading
from collections.abc import Callable, Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest

from bgp.aio.peer import BgpPeer, TransportOptions
from bgp.events import SessionDown
from bgp.session import SessionConfig
from bgp.types import AS_TRANS, IPV4_UNICAST, IPV6_UNICAST, AddPathMode, Family
from bgp.wire.attributes import AsPath, AttrSet, LargeCommunity, parse_community
from bgp.wire.capabilities import AddPathFamily, GracefulRestart, GracefulRestartFamily
from bgp.wire.model import Negotiated, Update
from bgp.wire.packing import end_of_rib, pack_announcements, pack_withdrawals
from bgp.wire.prefix import Nlri, Prefix
from tests.harness.daemons import GoBgp, Neighbor
from tests.harness.netns import Host, Lab, require_netns

pytestmark = [pytest.mark.needs_root, pytest.mark.interop]

T = TypeVar("T")

ROOST_RID = ipaddress.IPv4Address("10.255.0.1")
GOBGP_RID = "10.255.0.2"
HOLD = 3  # GoBGP's minimum


# ------------------------------------------------------------------------ helpers

_CLONE_NEWNET = 0x40000000


def run_in_netns(netns: str, main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` on a fresh event loop in a thread that has entered `netns`."""
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            libc = ctypes.CDLL(None, use_errno=True)
            fd = os.open(f"/run/netns/{netns}", os.O_RDONLY)
            try:
                if libc.setns(fd, _CLONE_NEWNET) != 0:
                    err = ctypes.get_errno()
                    raise OSError(err, f"setns({netns}): {os.strerror(err)}")
            finally:
                os.close(fd)
            box["value"] = asyncio.run(main())
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name=f"roost-in-{netns}")
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["value"]  # type: ignore[no-any-return]


class Recorder:
    """PeerHandler that keeps a decoded Adj-RIB-In: prefix -> (family, attrs)."""

    def __init__(self) -> None:
        self.negotiated: Negotiated | None = None
        self.routes: dict[str, tuple[Family, AttrSet]] = {}
        self.updates: list[Update] = []
        self.downs: list[SessionDown] = []
        self.eors: list[Family] = []

    def on_established(self, peer: BgpPeer, negotiated: Negotiated) -> None:
        self.negotiated = negotiated

    def on_update(self, peer: BgpPeer, update: Update) -> None:
        self.updates.append(update)
        for _family, nlri in update.withdrawals():
            for n in nlri:
                self.routes.pop(str(n.prefix), None)
        for family, attrs, nlri in update.announced():
            for n in nlri:
                self.routes[str(n.prefix)] = (family, attrs)

    def on_end_of_rib(self, peer: BgpPeer, family: Family) -> None:
        self.eors.append(family)

    def on_route_refresh(self, peer: BgpPeer, family: Family, subtype: int) -> None:
        pass

    def on_down(self, peer: BgpPeer, event: SessionDown) -> None:
        self.downs.append(event)


async def until(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        value = pred()
        if value:
            return value
        if loop.time() > deadline:
            raise AssertionError(f"timeout ({timeout:g} s) waiting for {what}")
        await asyncio.sleep(0.05)


async def until_gobgp(pred: Callable[[], Any], timeout: float, what: str) -> Any:
    """Poll a blocking gobgp CLI predicate off the loop (the session keeps running)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    last: Exception | None = None
    while True:
        try:
            value = await asyncio.to_thread(pred)
            if value:
                return value
        except Exception as exc:  # the CLI may fail while the daemon settles
            last = exc
        if loop.time() > deadline:
            raise AssertionError(f"timeout ({timeout:g} s) waiting for {what}; last={last!r}")
        await asyncio.sleep(0.2)


@dataclass
class Setup:
    lab: Lab
    roost: Host
    gobgp_host: Host
    gobgp: GoBgp


@pytest.fixture
def gobgp_lab(tmp_path: Path) -> Iterator[Callable[..., Setup]]:
    require_netns()
    if not GoBgp.available():
        pytest.skip("gobgpd/gobgp not installed")
    with Lab(tmp_path) as lab:
        h1, h2 = lab.flat(2)

        def start(neighbor: Neighbor, asn: int = 65002) -> Setup:
            daemon = GoBgp(h2, asn, GOBGP_RID, [neighbor], workdir=tmp_path / "gobgp")
            daemon.start()
            return Setup(lab, h1, h2, daemon)

        yield start


def roost_peer(
    remote: str, local: str, local_asn: int, peer_asn: int, handler: Recorder, **kw: Any
) -> BgpPeer:
    kw.setdefault("hold_time", HOLD)
    kw.setdefault("connect_retry_time", 1.0)
    cfg = SessionConfig(
        local_asn=local_asn, router_id=ROOST_RID, peer_asn=peer_asn, peer_address=remote, **kw
    )
    return BgpPeer(cfg, TransportOptions(remote, local_address=local), handler, name="gobgp")


def _communities(attrs: AttrSet) -> list[str]:
    return [f"{c >> 16}:{c & 0xFFFF}" for c in attrs.communities]


# ------------------------------------------------------------------------ scenarios


def test_ipv4_four_octet_as_routes_both_ways(gobgp_lab: Callable[..., Setup]) -> None:
    local_asn = 4_200_000_001
    s = gobgp_lab(Neighbor("10.255.0.1", local_asn, passive=True, hold_time=HOLD))
    g = s.gobgp

    async def main() -> None:
        rec = Recorder()
        peer = roost_peer("10.255.0.2", "10.255.0.1", local_asn, 65002, rec)
        await peer.start()
        try:
            await until(lambda: peer.established, 15, "Established")
            ctx = peer.negotiated
            assert ctx is not None and ctx.asn4 and ctx.hold_time == HOLD
            assert await asyncio.to_thread(g.neighbor_state, "10.255.0.1") == "established"

            # KEEPALIVEs keep both hold timers (3 s) happy past two hold times.
            ka0 = peer.stats.keepalives_in
            await asyncio.sleep(2 * HOLD + 0.5)
            assert peer.established and rec.downs == []
            assert peer.stats.keepalives_in - ka0 >= 4
            assert peer.stats.keepalives_out >= 4

            # GoBGP -> roost
            await asyncio.to_thread(
                g.add_route, "10.1.0.0/24", None,
                communities=["65000:1"], large_communities=["65000:1:2"],
                as_path=[65100, 4_200_000_100], med=20,
            )
            await until(lambda: "10.1.0.0/24" in rec.routes, 10, "10.1.0.0/24 at roost")
            family, attrs = rec.routes["10.1.0.0/24"]
            assert family == IPV4_UNICAST
            assert attrs.next_hop == ipaddress.IPv4Address("10.255.0.2")
            assert attrs.as_path.asns() == (65002, 65100, 4_200_000_100)
            assert _communities(attrs) == ["65000:1"]
            assert attrs.large_communities == (LargeCommunity(65000, 1, 2),)
            assert attrs.med == 20

            # roost -> GoBGP
            mine = AttrSet.make(
                as_path=AsPath.sequence(local_asn, 65300),
                next_hop=ipaddress.IPv4Address("10.255.0.1"),
                communities=(parse_community("65001:7"),),
                large_communities=(LargeCommunity(local_asn, 1, 2),),
                med=5,
            )
            nlri = [Nlri(Prefix.parse("10.2.0.0/24"))]
            peer.send(pack_announcements(IPV4_UNICAST, mine, nlri, ctx))
            peer.send([end_of_rib(IPV4_UNICAST, ctx)])
            paths = await until_gobgp(
                lambda: g.rib().get("10.2.0.0/24"), 10, "10.2.0.0/24 in GoBGP"
            )
            view = paths[0]
            assert view.next_hop == "10.255.0.1"
            assert view.as_path == [local_asn, 65300]
            assert view.communities == ["65001:7"]
            assert view.large_communities == [f"{local_asn}:1:2"]
            assert view.med == 5

            # withdrawals, both ways
            await asyncio.to_thread(g.del_route, "10.1.0.0/24")
            await until(lambda: "10.1.0.0/24" not in rec.routes, 10, "withdraw at roost")
            peer.send(pack_withdrawals(IPV4_UNICAST, nlri, ctx))
            await until_gobgp(lambda: "10.2.0.0/24" not in g.rib(), 10, "withdraw in GoBGP")
            assert peer.established and rec.downs == []
        finally:
            await peer.stop()
        # GoBGP saw our Cease
        state = await until_gobgp(
            lambda: g.neighbor_state("10.255.0.1") != "established", 10, "GoBGP down"
        )
        assert state

    run_in_netns(s.roost.netns, main)


def test_two_octet_roost_as_trans(gobgp_lab: Callable[..., Setup]) -> None:
    """roost without the 4-octet AS capability (RFC 6793 OLD speaker) against GoBGP in a
    4-octet AS: GoBGP's OPEN carries AS_TRANS, its paths arrive as AS_PATH (AS_TRANS) +
    AS4_PATH and are merged; roost's 4-octet path goes out the same way and GoBGP
    rebuilds it."""
    gobgp_asn = 4_200_000_002
    s = gobgp_lab(Neighbor("10.255.0.1", 65001, passive=True, hold_time=HOLD), asn=gobgp_asn)
    g = s.gobgp

    async def main() -> None:
        rec = Recorder()
        peer = roost_peer(
            "10.255.0.2", "10.255.0.1", 65001, gobgp_asn, rec, four_octet_as=False
        )
        await peer.start()
        try:
            await until(lambda: peer.established, 15, "Established")
            ctx = peer.negotiated
            assert ctx is not None and not ctx.asn4
            session = peer.session
            assert session is not None and session.remote_open is not None
            assert session.remote_open.wire_my_as == AS_TRANS

            await asyncio.to_thread(
                g.add_route, "10.1.0.0/24", None, as_path=[4_200_000_100, 65100]
            )
            await until(lambda: "10.1.0.0/24" in rec.routes, 10, "10.1.0.0/24 at roost")
            _family, attrs = rec.routes["10.1.0.0/24"]
            assert attrs.as_path.asns() == (gobgp_asn, 4_200_000_100, 65100)

            mine = AttrSet.make(
                as_path=AsPath.sequence(65001, 4_200_000_300, 65300),
                next_hop=ipaddress.IPv4Address("10.255.0.1"),
            )
            nlri = [Nlri(Prefix.parse("10.2.0.0/24"))]
            peer.send(pack_announcements(IPV4_UNICAST, mine, nlri, ctx))
            paths = await until_gobgp(
                lambda: g.rib().get("10.2.0.0/24"), 10, "10.2.0.0/24 in GoBGP"
            )
            assert paths[0].as_path == [65001, 4_200_000_300, 65300]
            assert peer.established and rec.downs == []
        finally:
            await peer.stop()

    run_in_netns(s.roost.netns, main)


def test_ipv6_mp_bgp_routes_both_ways(gobgp_lab: Callable[..., Setup]) -> None:
    s = gobgp_lab(
        Neighbor("fd00:255::1", 65001, passive=True, hold_time=HOLD, families=("ipv6",))
    )
    g = s.gobgp

    async def main() -> None:
        rec = Recorder()
        peer = roost_peer(
            "fd00:255::2", "fd00:255::1", 65001, 65002, rec, families=(IPV6_UNICAST,)
        )
        await peer.start()
        try:
            await until(lambda: peer.established, 15, "Established over IPv6")
            ctx = peer.negotiated
            assert ctx is not None and ctx.families == frozenset({IPV6_UNICAST})

            await asyncio.to_thread(
                g.add_route, "fd10:1::/48", None,
                communities=["65000:1"], large_communities=["65000:1:2"], as_path=[65100],
            )
            await until(lambda: "fd10:1::/48" in rec.routes, 10, "fd10:1::/48 at roost")
            family, attrs = rec.routes["fd10:1::/48"]
            assert family == IPV6_UNICAST
            assert attrs.next_hop == ipaddress.IPv6Address("fd00:255::2")
            assert attrs.as_path.asns() == (65002, 65100)
            assert _communities(attrs) == ["65000:1"]
            assert attrs.large_communities == (LargeCommunity(65000, 1, 2),)

            mine = AttrSet.make(
                as_path=AsPath.sequence(65001),
                next_hop=ipaddress.IPv6Address("fd00:255::1"),
                communities=(parse_community("65001:9"),),
            )
            nlri = [Nlri(Prefix.parse("fd10:2::/48"))]
            peer.send(pack_announcements(IPV6_UNICAST, mine, nlri, ctx))
            peer.send([end_of_rib(IPV6_UNICAST, ctx)])
            paths = await until_gobgp(
                lambda: g.rib("ipv6").get("fd10:2::/48"), 10, "fd10:2::/48 in GoBGP"
            )
            assert paths[0].next_hop == "fd00:255::1"
            assert paths[0].as_path == [65001]
            assert paths[0].communities == ["65001:9"]

            await asyncio.to_thread(g.del_route, "fd10:1::/48")
            await until(lambda: "fd10:1::/48" not in rec.routes, 10, "withdraw at roost")
            peer.send(pack_withdrawals(IPV6_UNICAST, nlri, ctx))
            await until_gobgp(lambda: "fd10:2::/48" not in g.rib("ipv6"), 10, "withdraw in GoBGP")
            assert peer.established and rec.downs == []
        finally:
            await peer.stop()

    run_in_netns(s.roost.netns, main)


_CAP_TYPES = {
    "MultiProtocolCapability": 1,
    "RouteRefreshCapability": 2,
    "ExtendedMessageCapability": 6,
    "GracefulRestartCapability": 64,
    "FourOctetASNCapability": 65,
    "AddPathCapability": 69,
    "EnhancedRouteRefreshCapability": 70,
}


def _cap_code(cap: dict[str, Any]) -> int:
    """Capability code from GoBGP's JSON (a protobuf Any: type_url + base64 value).
    GoBGP 3.10 has no type for Extended Message (RFC 8654) and shows it as
    UnknownCapability, whose message starts with field 1 (code) as a varint."""
    name = str(cap.get("type_url", "")).rsplit(".", 1)[-1]
    if name in _CAP_TYPES:
        return _CAP_TYPES[name]
    if name == "UnknownCapability":
        raw = base64.b64decode(cap.get("value", ""))
        if len(raw) >= 2 and raw[0] == 0x08:
            return raw[1]
    return int(cap.get("code", 0))


def _cap_codes(caps: list[dict[str, Any]]) -> list[int]:
    return [_cap_code(c) for c in caps]


def test_gobgp_sees_roost_capabilities(gobgp_lab: Callable[..., Setup]) -> None:
    s = gobgp_lab(
        Neighbor(
            "10.255.0.1", 65001, passive=True, hold_time=HOLD, families=("ipv4", "ipv6"),
            addpath=True,
        )
    )
    g = s.gobgp

    async def main() -> dict[str, Any]:
        rec = Recorder()
        peer = roost_peer(
            "10.255.0.2", "10.255.0.1", 65001, 65002, rec,
            families=(IPV4_UNICAST, IPV6_UNICAST),
            addpath=(AddPathFamily(IPV4_UNICAST, AddPathMode.BOTH),),
            graceful_restart=GracefulRestart(
                restart_time=120, families=(GracefulRestartFamily(IPV4_UNICAST),)
            ),
        )
        await peer.start()
        try:
            await until(lambda: peer.established, 15, "Established")
            ctx = peer.negotiated
            assert ctx is not None
            assert IPV4_UNICAST in ctx.addpath_receive  # GoBGP sends paths (send-max 8)
            info: dict[str, Any] = await asyncio.to_thread(g.neighbor_json, "10.255.0.1")
            assert peer.established
            return info
        finally:
            await peer.stop()

    info = run_in_netns(s.roost.netns, main)
    state = info.get("state", {})
    remote = state.get("remote_cap") or state.get("remoteCap") or []
    codes = _cap_codes(remote)
    # 1 MP (twice: IPv4 and IPv6 unicast), 2 route refresh, 6 extended message,
    # 64 graceful restart, 65 4-octet AS, 69 ADD-PATH
    assert sorted(codes) == [1, 1, 2, 6, 64, 65, 69], remote


@pytest.mark.parametrize("password", ["roost-md5", "wrong"])
def test_md5_with_gobgp(gobgp_lab: Callable[..., Setup], password: str) -> None:
    """RFC 2385 TCP MD5 against GoBGP's own key handling (roost connects, GoBGP listens):
    the right key establishes, a wrong one never does."""
    s = gobgp_lab(
        Neighbor("10.255.0.1", 65001, passive=True, hold_time=HOLD, password="roost-md5")
    )

    async def main() -> None:
        rec = Recorder()
        cfg = SessionConfig(
            local_asn=65001, router_id=ROOST_RID, peer_asn=65002, hold_time=HOLD,
            connect_retry_time=1.0,
        )
        peer = BgpPeer(
            cfg,
            TransportOptions(
                "10.255.0.2", local_address="10.255.0.1", password=password,
                connect_timeout=1.0,
            ),
            rec,
        )
        await peer.start()
        try:
            if password == "roost-md5":
                await until(lambda: peer.established, 15, "Established with MD5")
            else:
                await asyncio.sleep(4.0)
                assert not peer.established
                assert peer.stats.bytes_in == 0
        finally:
            await peer.stop()

    run_in_netns(s.roost.netns, main)
