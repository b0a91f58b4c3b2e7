"""MemorySink, DryRunSink and the netlink encoder (checked with pyroute2's decoder)."""

from __future__ import annotations

import io
import socket
from ipaddress import ip_address, ip_network

import pytest
from pyroute2.netlink.rtnl.rtmsg import rtmsg

from kernel import DryRunSink, FibSink, KernelRoute, MemorySink, NetlinkSink, NextHop, blackhole
from kernel.netlink import encode_route, parse_route

A = ip_address
N = ip_network
DIRECT = KernelRoute(N("172.17.9.0/24"), (NextHop(A("192.168.100.101"), "eth0"),))
TUNNEL = KernelRoute(N("172.17.9.0/24"), (NextHop(A("192.168.200.101"), "tunl0"),))
ECMP = KernelRoute(
    N("172.17.10.0/24"),
    (NextHop(A("192.168.100.101"), "eth0"), NextHop(A("192.168.100.102"), "eth0")),
)


def test_sinks_satisfy_the_protocol() -> None:
    assert isinstance(MemorySink(), FibSink)
    assert isinstance(DryRunSink(io.StringIO()), FibSink)
    assert isinstance(NetlinkSink(), FibSink)


async def test_memory_sink_coalesces() -> None:
    sink = MemorySink()
    await sink.start()
    sink.update(DIRECT.prefix, DIRECT)
    sink.update(DIRECT.prefix, TUNNEL)
    sink.update(ECMP.prefix, ECMP)
    sink.update(ECMP.prefix, None)  # flapped away before the flush
    await sink.flush()
    assert dict(sink.installed()) == {TUNNEL.prefix: TUNNEL}
    assert sink.operations == [("replace", TUNNEL.prefix)]
    await sink.close(flush_routes=True)
    assert not sink.installed()


async def test_dry_run_prints_ip_commands() -> None:
    out = io.StringIO()
    sink = DryRunSink(out)
    await sink.start()
    own = N("172.17.8.0/24")
    for route in (DIRECT, ECMP, blackhole(own)):
        sink.update(route.prefix, route)
    v6 = KernelRoute(N("fd00:9::/64"), (NextHop(A("fd00::101"), "eth0"),))
    sink.update(v6.prefix, v6)
    await sink.flush()
    sink.update(DIRECT.prefix, None)
    sink.update(own, None)
    await sink.flush()
    assert out.getvalue().splitlines() == [
        "ip route replace 172.17.9.0/24 via 192.168.100.101 dev eth0 proto bird onlink"
        " metric 1024 table main",
        "ip route replace 172.17.10.0/24 proto bird metric 1024 table main"
        " nexthop via 192.168.100.101 dev eth0 onlink nexthop via 192.168.100.102 dev eth0 onlink",
        "ip route replace blackhole 172.17.8.0/24 proto bird metric 1024 table main",
        "ip -6 route replace fd00:9::/64 via fd00::101 dev eth0 proto bird onlink"
        " metric 1024 table main",
        "ip route del 172.17.9.0/24 proto bird metric 1024 table main",
        "ip route del blackhole 172.17.8.0/24 proto bird metric 1024 table main",
    ]


def decode(raw: bytes) -> rtmsg:
    msg = rtmsg(raw)
    msg.decode()
    return msg


@pytest.mark.parametrize("family", [4, 6])
def test_encoder_against_pyroute2(family: int) -> None:
    af = socket.AF_INET if family == 4 else socket.AF_INET6
    gw1, gw2 = ("192.168.100.101", "192.168.100.102") if family == 4 else ("fd00::1", "fd00::2")
    dst = N("172.17.10.0/24") if family == 4 else N("fd00:10::/64")
    spec = ("replace", af, dst.network_address.packed, dst.prefixlen, 1,
            ((A(gw1).packed, 7, True), (A(gw2).packed, 8, False)))  # fmt: skip
    raw = encode_route(spec, 42, table=1000, metric=1024)
    msg = decode(raw)
    assert msg["header"]["sequence_number"] == 42
    assert msg["header"]["flags"] == 0x501  # REQUEST|REPLACE|CREATE, no ACK
    assert (msg["proto"], msg["table"], msg["dst_len"]) == (12, 0, dst.prefixlen)
    assert msg.get_attr("RTA_TABLE") == 1000
    assert msg.get_attr("RTA_PRIORITY") == 1024
    assert msg.get_attr("RTA_DST") == str(dst.network_address)
    hops = msg.get_attr("RTA_MULTIPATH")
    assert [(h["oif"], h["flags"], h.get_attr("RTA_GATEWAY")) for h in hops] == [
        (7, 4, gw1),
        (8, 0, gw2),
    ]
    parsed = parse_route(raw, 0, len(raw))
    assert parsed is not None
    assert parsed.hops == ((A(gw1), 7, True), (A(gw2), 8, False))
    assert (parsed.prefix, parsed.metric, parsed.table) == (dst, 1024, 1000)

    delete = decode(encode_route(("delete", af, dst.network_address.packed, dst.prefixlen, 6,
                                  512), 43, table=254, metric=1024))  # fmt: skip
    assert delete["header"]["type"] == 25
    assert (delete["proto"], delete["type"], delete.get_attr("RTA_PRIORITY")) == (12, 6, 512)


def test_fast_ipv4_encoder_against_pyroute2() -> None:
    """The encoder's one-pack IPv4 paths (replace and delete), decoded by pyroute2."""
    from kernel.coalesce import prefix_key
    from kernel.netlink import _Link

    sink = NetlinkSink(table=254, metric=1024)
    sink._links = {"eth0": _Link(7, 1)}
    msgs: list[bytes] = []
    meta: list[tuple[object, object, object]] = []
    dst = N("11.0.0.128/25")
    route = KernelRoute(dst, (NextHop(A("10.255.0.2"), "eth0"),))
    sink._encode([(prefix_key(dst), dst, route)], 100, msgs, meta, {})  # type: ignore[arg-type]
    sink._encode([(prefix_key(dst), dst, None)], 200, msgs, meta, {})  # type: ignore[arg-type]
    assert dict(sink.installed()) == {}  # recorded, then withdrawn again
    add, delete = decode(msgs[0]), decode(msgs[1])
    assert (add["header"]["type"], add["header"]["sequence_number"]) == (24, 100)
    assert add["header"]["flags"] == 0x501
    assert (add["family"], add["dst_len"], add["proto"], add["table"], add["flags"]) == (
        socket.AF_INET, 25, 12, 254, 4,  # onlink
    )  # fmt: skip
    assert add.get_attr("RTA_DST") == "11.0.0.128"
    assert add.get_attr("RTA_GATEWAY") == "10.255.0.2"
    assert (add.get_attr("RTA_OIF"), add.get_attr("RTA_PRIORITY")) == (7, 1024)
    # sequence numbers are base + the index in msgs (errors are mapped back by them)
    assert (delete["header"]["type"], delete["header"]["sequence_number"]) == (25, 201)
    assert (delete["dst_len"], delete["proto"], delete.get_attr("RTA_DST")) == (
        25,
        12,
        "11.0.0.128",
    )
    assert (delete.get_attr("RTA_TABLE"), delete.get_attr("RTA_PRIORITY")) == (254, 1024)
    assert [m[0] for m in meta] == [dst, dst]


def test_requests_are_joined_into_sends_that_fit_the_socket_buffer() -> None:
    from kernel.netlink import _Channel

    chan = _Channel.__new__(_Channel)
    chan.chunk_bytes = 200
    msgs = [bytes([i]) * 68 for i in range(7)]
    chunks = chan.chunks(msgs)
    assert [len(c) for c in chunks] == [136, 136, 136, 68]
    assert b"".join(chunks) == b"".join(msgs)
    chan.chunk_bytes = 10  # a message larger than a send still goes, alone
    assert [len(c) for c in chan.chunks(msgs[:2])] == [68, 68]
