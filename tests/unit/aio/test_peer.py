"""Two BgpPeers over real loopback TCP (127.0.0.1/127.0.0.2, ::1; ephemeral ports)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from bgp.aio.peer import BgpPeer, Listener, TransportOptions
from bgp.aio.sockopts import get_gtsm, md5_supported
from bgp.events import DownReason
from bgp.fsm import State
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, CeaseSubcode, ErrorCode
from bgp.wire.attributes import AsPath, AttrSet, LargeCommunity
from bgp.wire.model import Negotiated
from bgp.wire.packing import end_of_rib, pack_announcements, pack_withdrawals
from bgp.wire.prefix import Nlri, Prefix

from ._util import ROUTER_A, Recorder, config, peer_pair, wait_until


def _have_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6, socket.SOCK_STREAM) as sock:
            sock.bind(("::1", 0))
    except OSError:
        return False
    return True


def _nlri(*texts: str) -> list[Nlri]:
    return [Nlri(Prefix.parse(t)) for t in texts]


def _ctx(peer: BgpPeer) -> Negotiated:
    ctx = peer.negotiated
    assert ctx is not None
    return ctx


@pytest.mark.parametrize(
    ("host_a", "host_b", "family", "prefix", "next_hop"),
    [
        ("127.0.0.1", "127.0.0.2", IPV4_UNICAST, "10.1.0.0/24", "127.0.0.1"),
        pytest.param(
            "::1", "::1", IPV6_UNICAST, "fd10:1::/48", "fd00:255::1",
            marks=pytest.mark.skipif(not _have_ipv6_loopback(), reason="no IPv6 loopback"),
        ),
    ],
    ids=["ipv4", "ipv6"],
)
async def test_establish_exchange_update_and_withdraw(
    host_a: str, host_b: str, family: object, prefix: str, next_hop: str
) -> None:
    fams = (IPV4_UNICAST, IPV6_UNICAST)
    async with peer_pair(
        host_a=host_a, host_b=host_b, a_kw={"families": fams}, b_kw={"families": fams}
    ) as p:
        await wait_until(lambda: p.a.established and p.b.established, what="Established")
        assert p.ra.established and p.rb.established
        assert p.a.state is State.ESTABLISHED
        ctx = _ctx(p.a)
        assert ctx.asn4 and ctx.families == frozenset(fams)
        attrs = AttrSet.make(
            as_path=AsPath.sequence(65001, 4_200_000_000),
            next_hop=ipaddress.ip_address(next_hop),
            communities=(65000 << 16 | 1,),
            large_communities=(LargeCommunity(65000, 1, 2),),
            med=10,
        )
        assert family in (IPV4_UNICAST, IPV6_UNICAST)
        fam = IPV4_UNICAST if family == IPV4_UNICAST else IPV6_UNICAST
        p.a.send(pack_announcements(fam, attrs, _nlri(prefix), ctx))
        p.a.send([end_of_rib(fam, ctx)])
        await wait_until(lambda: p.rb.eors, what="End-of-RIB")
        assert p.rb.eors == [fam]
        assert p.rb.prefixes() == {prefix}
        (got_family, got_attrs, got_nlri), = list(p.rb.updates[0].announced())
        assert got_family == fam
        assert got_attrs is attrs  # interned: equal attribute sets are one object
        assert [str(n.prefix) for n in got_nlri] == [prefix]
        # withdraw
        p.a.send(pack_withdrawals(fam, _nlri(prefix), ctx))
        await wait_until(lambda: len(p.rb.updates) == 2, what="withdrawal")
        assert p.rb.prefixes() == set()
        stats = p.a.stats
        assert stats.updates_out == 3 and stats.messages_out >= 5
        assert p.b.stats.updates_in == 3
        assert stats.uptime is not None and stats.uptime >= 0


async def test_keepalives_flow_while_100k_prefixes_queued_to_a_slow_reader() -> None:
    """Hold time 3 s, 100k /32s (4096-octet UPDATEs) into a reader that reads ~8 KiB
    every ~120 ms: the transfer outlasts the hold time, KEEPALIVEs interleave with the
    UPDATEs, nobody's hold timer expires, and the user-space write buffer stays small."""
    n = 100_000
    async with peer_pair(
        a_kw={"hold_time": 3, "extended_message": False},
        b_kw={"hold_time": 3, "extended_message": False},
        start=False,
    ) as p:
        # Small kernel buffers so that flow control reaches the asyncio transport.
        p.listener_b.sockets[0].setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        await p.b.start()
        await p.a.start()
        await wait_until(lambda: p.a.established and p.b.established, what="Established")
        a_proto, b_proto = p.a.protocol, p.b.protocol
        assert a_proto is not None and b_proto is not None
        assert a_proto.transport is not None and b_proto.transport is not None
        a_proto.transport.get_extra_info("socket").setsockopt(
            socket.SOL_SOCKET, socket.SO_SNDBUF, 4096
        )
        keepalives_at_update: list[int] = []
        original = p.rb.on_update

        def on_update(peer: BgpPeer, update: object) -> None:
            keepalives_at_update.append(b_proto.stats.messages_in.count(4))
            original(peer, update)  # type: ignore[arg-type]

        p.rb.on_update = on_update  # type: ignore[method-assign]
        ctx = _ctx(p.a)
        attrs = AttrSet.make(
            as_path=AsPath.sequence(65001), next_hop=ipaddress.IPv4Address("127.0.0.1")
        )
        nlri = [Nlri(Prefix(1, 32, 0x0A000000 + i)) for i in range(n)]
        messages = pack_announcements(IPV4_UNICAST, attrs, nlri, ctx)
        assert len(messages) > 100

        stop_reader = asyncio.Event()

        async def slow_reader() -> None:
            transport = b_proto.transport
            assert transport is not None
            while not stop_reader.is_set():
                transport.pause_reading()
                await asyncio.sleep(0.12)
                transport.resume_reading()
                await asyncio.sleep(0.002)

        loop = asyncio.get_running_loop()
        reader = loop.create_task(slow_reader())
        t0 = loop.time()
        ka_out_before = a_proto.stats.messages_out.count(4)
        p.a.send(messages)
        p.a.send([end_of_rib(IPV4_UNICAST, ctx)])
        try:
            await wait_until(lambda: p.rb.eors, timeout=60, what="all prefixes")
        finally:
            stop_reader.set()
            await reader
        elapsed = loop.time() - t0
        assert p.ra.downs == [] and p.rb.downs == []
        assert p.a.established and p.b.established
        assert len(p.rb.updates) == len(messages)
        assert sum(len(u.nlri) for u in p.rb.updates) == n
        assert elapsed > 3.0, f"transfer took {elapsed:.2f} s: not slow enough to prove much"
        # KEEPALIVEs were sent during the dump, and reached B *between* UPDATEs (not
        # queued behind the whole dump): by the last UPDATE B had seen several.
        assert a_proto.stats.messages_out.count(4) - ka_out_before >= 2
        assert keepalives_at_update[-1] - keepalives_at_update[0] >= 2
        assert a_proto.stats.pauses >= 1
        assert a_proto.stats.max_write_buffer < 256 * 1024


async def test_collision_resolves_to_one_established_session() -> None:
    async with peer_pair(both_active=True) as p:
        await wait_until(lambda: p.a.established and p.b.established, what="Established")
        await asyncio.sleep(1.0)  # nothing flaps afterwards
        assert p.a.established and p.b.established
        assert p.a.stats.established_count == 1 and p.b.stats.established_count == 1
        assert p.ra.downs == [] and p.rb.downs == []
        pa, pb = p.a.protocol, p.b.protocol
        assert pa is not None and pb is not None
        assert pa.outgoing is not pb.outgoing  # the same TCP connection, seen from both ends
        # RFC 4271 §6.8: keep the connection initiated by the higher BGP Identifier (B).
        if p.a.collisions or p.b.collisions:
            assert pb.outgoing is True


async def test_stop_sends_cease_and_peer_sees_notification() -> None:
    async with peer_pair() as p:
        await wait_until(lambda: p.a.established and p.b.established, what="Established")
        await p.a.stop()
        await wait_until(lambda: p.rb.downs, what="B down")
        down = p.rb.downs[0]
        assert down.reason is DownReason.NOTIFICATION_RECEIVED
        assert down.notification is not None
        assert (down.notification.code, down.notification.subcode) == (
            ErrorCode.CEASE,
            CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        )
        assert p.ra.downs[0].reason is DownReason.ADMIN_STOP
        assert p.a.state is State.IDLE
        assert p.a.stats.notifications_out == 1
        # stopped means stopped: no reconnect
        await asyncio.sleep(0.5)
        assert p.a.state is State.IDLE and not p.b.established


async def test_reconnects_after_connection_loss() -> None:
    async with peer_pair() as p:
        await wait_until(lambda: p.a.established and p.b.established, what="Established")
        proto = p.b.protocol
        assert proto is not None
        proto.abort()
        await wait_until(lambda: p.ra.downs, what="A down")
        assert p.ra.downs[0].reason is DownReason.TCP_CLOSED
        await wait_until(
            lambda: p.a.stats.established_count == 2 and p.b.established, what="re-established"
        )


async def test_listener_closes_unknown_and_serves_dynamic_peers() -> None:
    rb = Recorder()
    made: list[BgpPeer] = []

    def factory(
        address: ipaddress.IPv4Address | ipaddress.IPv6Address, port: int
    ) -> BgpPeer | None:
        if address not in ipaddress.ip_network("127.0.0.0/30"):
            return None
        peer = BgpPeer(
            config(65002, ipaddress.IPv4Address("10.0.0.2"), 65001, passive=True),
            TransportOptions(str(address)),
            rb,
        )
        made.append(peer)
        return peer

    listener = Listener("127.0.0.2", 0, factory=factory)
    await listener.start()
    ra = Recorder()
    # 127.0.0.5 is outside the dynamic range: closed at once.
    stranger = BgpPeer(
        config(65001, ROUTER_A, 65002),
        TransportOptions("127.0.0.2", listener.port, local_address="127.0.0.5"),
        Recorder(),
    )
    a = BgpPeer(
        config(65001, ROUTER_A, 65002),
        TransportOptions("127.0.0.2", listener.port, local_address="127.0.0.1"),
        ra,
    )
    try:
        await stranger.start()
        await wait_until(lambda: listener.rejected >= 1, what="rejection")
        assert not stranger.established
        await a.start()
        await wait_until(lambda: a.established, what="dynamic peer Established")
        assert len(made) == 1 and made[0].established
    finally:
        await stranger.stop()
        await a.stop()
        for peer in made:
            await peer.stop()
        await listener.close()


needs_md5 = pytest.mark.skipif(not md5_supported(), reason="kernel lacks TCP_MD5SIG")


@needs_md5
async def test_md5_matching_passwords_establish() -> None:
    async with peer_pair(
        a_transport={"password": "s3cret"}, b_transport={"password": "s3cret"}
    ) as p:
        await wait_until(lambda: p.a.established and p.b.established, what="Established")


@needs_md5
@pytest.mark.parametrize(("pa", "pb"), [("s3cret", "other"), (None, "s3cret")])
async def test_md5_mismatch_never_establishes(pa: str | None, pb: str) -> None:
    async with peer_pair(
        a_transport={"password": pa, "connect_timeout": 0.5}, b_transport={"password": pb}
    ) as p:
        await asyncio.sleep(2.0)
        assert not p.a.established and not p.b.established
        assert p.a.protocol is not None and p.a.protocol.stats.bytes_in == 0


async def test_gtsm_options_on_both_sockets() -> None:
    gtsm = {"ttl_security_hops": 1}
    async with peer_pair(a_transport=gtsm, b_transport=gtsm) as p:
        await wait_until(lambda: p.a.established and p.b.established, what="Established")
        for peer in (p.a, p.b):
            proto = peer.protocol
            assert proto is not None and proto.transport is not None
            sock = proto.transport.get_extra_info("socket")
            assert get_gtsm(sock) == (255, 255)
            assert sock.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


async def test_gtsm_drops_a_peer_sending_low_ttl() -> None:
    # A requires TTL 255; B sends with a multihop TTL of 64: B's SYN-ACK never reaches A.
    async with peer_pair(
        a_transport={"ttl_security_hops": 1, "connect_timeout": 0.5},
        b_transport={"multihop_ttl": 64},
    ) as p:
        await asyncio.sleep(1.5)
        assert not p.a.established and not p.b.established
