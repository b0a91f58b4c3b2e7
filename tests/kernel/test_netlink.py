"""NetlinkSink against a real kernel, each test in its own network namespace."""

from __future__ import annotations

import asyncio
import io
import shlex
import subprocess
import time
from ipaddress import ip_address, ip_network

import pytest

from kernel import (
    DryRunSink,
    KernelRoute,
    KernelRouteError,
    NetlinkSink,
    NextHop,
    TunnelUnavailableError,
    blackhole,
)
from tests.kernel.conftest import ip, ipip_unavailable, ours, routes

pytestmark = pytest.mark.needs_root

A = ip_address
N = ip_network
OWN = N("172.17.8.0/24")
DST = N("172.17.9.0/24")
DIRECT = KernelRoute(DST, (NextHop(A("192.168.100.101"), "eth0"),))
ECMP = KernelRoute(
    N("172.17.10.0/24"),
    (NextHop(A("192.168.100.101"), "eth0"), NextHop(A("192.168.100.102"), "eth0")),
)
V6 = KernelRoute(
    N("fd00:9::/64"), (NextHop(A("fd00::101"), "eth0"), NextHop(A("fd00::102"), "eth0"))
)


async def started(ns: str, *routes_: KernelRoute, **kw: object) -> NetlinkSink:
    sink = NetlinkSink(netns=ns, **kw)  # type: ignore[arg-type]
    for r in routes_:
        sink.update(r.prefix, r)
    await sink.start()
    return sink


async def wait_for(cond: object, timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)


async def test_routes_look_exactly_like_birds(netns: str) -> None:
    sink = await started(netns, DIRECT, blackhole(OWN), metric=0)
    assert ours(netns) == [
        "blackhole 172.17.8.0/24 proto bird",
        "172.17.9.0/24 via 192.168.100.101 dev eth0 proto bird onlink",
    ]
    await sink.close()
    sink = await started(netns, DIRECT, blackhole(OWN))  # default metric 1024, like Calico
    assert ours(netns) == [
        "blackhole 172.17.8.0/24 proto bird metric 1024",
        "172.17.9.0/24 via 192.168.100.101 dev eth0 proto bird metric 1024 onlink",
    ]
    await sink.close()


async def test_withdraw_ecmp_and_ipv6(netns: str) -> None:
    sink = await started(netns, DIRECT)
    sink.update(ECMP.prefix, ECMP)
    sink.update(V6.prefix, V6)
    sink.update(N("fd00:8::/64"), blackhole(N("fd00:8::/64")))
    await sink.flush()
    assert ours(netns) == [
        "172.17.9.0/24 via 192.168.100.101 dev eth0 proto bird metric 1024 onlink",
        "172.17.10.0/24 proto bird metric 1024 nexthop via 192.168.100.101 dev eth0 weight 1"
        " onlink nexthop via 192.168.100.102 dev eth0 weight 1 onlink",
    ]
    assert ours(netns, "-6") == [
        "blackhole fd00:8::/64 dev lo proto bird metric 1024 pref medium",
        "fd00:9::/64 proto bird metric 1024 pref medium nexthop via fd00::101 dev eth0 weight 1"
        " onlink nexthop via fd00::102 dev eth0 weight 1 onlink",
    ]
    for p in (DST, ECMP.prefix, V6.prefix, N("fd00:8::/64")):
        sink.update(p, None)
    await sink.flush()
    assert ours(netns) == []
    assert ours(netns, "-6") == []
    assert not sink.installed()
    await sink.close()


async def test_foreign_routes_are_never_touched(netns: str) -> None:
    ip(netns, "route add 172.17.9.0/24 via 192.168.100.1 proto static metric 100")
    ip(netns, "route", "add", "172.17.8.2", "dev", "peer0", "scope", "link")  # a container
    ip(netns, "route", "add", "172.17.20.0/24", "via", "192.168.100.1", "metric", "1024")
    ip(netns, "route add 172.17.9.0/24 via 192.168.100.1 proto bird table 100")
    foreign = routes(netns) + routes(netns, "table", "100")
    errors: list[KernelRouteError] = []
    sink = await started(netns, DIRECT, blackhole(OWN), on_error=errors.append)
    # Our metric slot is taken by another protocol's route: refuse, do not replace it.
    sink.update(N("172.17.20.0/24"), KernelRoute(N("172.17.20.0/24"), DIRECT.nexthops))
    await sink.flush()
    assert [e.errno for e in errors] == [17]
    assert "another protocol's route for 172.17.20.0/24" in str(errors[0])
    await sink.close(flush_routes=True)
    assert routes(netns) + routes(netns, "table", "100") == foreign


async def test_restart_adopts_identical_routes_without_a_flap(netns: str) -> None:
    stale = KernelRoute(N("172.17.11.0/24"), DIRECT.nexthops)
    sink = await started(netns, DIRECT, ECMP, stale, blackhole(OWN))
    await sink.close()  # routes stay (persist)
    assert len(ours(netns)) == 4
    monitor = subprocess.Popen(
        ["ip", "-n", netns, "monitor", "route"], stdout=subprocess.PIPE, text=True
    )
    try:
        await asyncio.sleep(0.3)
        changed = KernelRoute(ECMP.prefix, (NextHop(A("192.168.100.103"), "eth0"),))
        sink = await started(netns, DIRECT, changed, blackhole(OWN))
        assert sink.stats["requests"] == 2  # replace the changed one, delete the stale one
        await asyncio.sleep(0.3)
    finally:
        monitor.terminate()
        out = monitor.communicate(timeout=5)[0]
    events = [line for line in out.splitlines() if line.strip() and not line.startswith("\t")]
    assert len(events) == 2, out
    assert any(e.startswith("172.17.10.0/24 via 192.168.100.103") for e in events), out
    assert any(e.startswith("Deleted 172.17.11.0/24") for e in events), out
    assert "172.17.9.0/24" not in out and "172.17.8.0/24" not in out  # adopted, untouched
    await sink.close()


async def test_deleted_or_changed_route_comes_back(netns: str) -> None:
    sink = await started(netns, DIRECT, blackhole(OWN))
    want = ours(netns)
    ip(netns, "route", "del", "172.17.9.0/24")
    ip(netns, "route", "del", "blackhole", "172.17.8.0/24")
    await wait_for(lambda: ours(netns) == want)
    ip(netns, "route replace 172.17.9.0/24 via 192.168.100.7 dev eth0 proto bird metric 1024")
    await wait_for(lambda: ours(netns) == want)
    assert sink.stats["restored"] == 3
    await sink.close()


async def test_dry_run_commands_do_what_the_sink_does(netns: str, netns2: str) -> None:
    out = io.StringIO()
    dry = DryRunSink(out)
    sink = await started(netns)
    for r in (DIRECT, ECMP, V6, blackhole(OWN)):
        dry.update(r.prefix, r)
        sink.update(r.prefix, r)
    dry.update(DST, None)
    sink.update(DST, None)
    await dry.flush()
    await sink.flush()
    for line in out.getvalue().splitlines():
        argv = shlex.split(line)
        subprocess.run([argv[0], "-n", netns2, *argv[1:]], check=True)
    for fam in ("-4", "-6"):
        assert ours(netns2, fam) == ours(netns, fam)
    await sink.close()


async def test_close_with_flush_removes_only_ours(netns: str) -> None:
    ip(netns, "route", "add", "172.17.30.0/24", "via", "192.168.100.1", "proto", "static")
    before = routes(netns)
    sink = await started(netns, DIRECT, ECMP, V6, blackhole(OWN))
    await sink.close(flush_routes=True)
    assert routes(netns) == before
    assert ours(netns, "-6") == []


async def test_errors_are_explained(netns: str) -> None:
    errors: list[KernelRouteError] = []
    sink = await started(netns, on_error=errors.append)
    far = KernelRoute(N("172.17.12.0/24"), (NextHop(A("10.9.9.9"), "eth0", onlink=False),))
    nodev = KernelRoute(N("172.17.13.0/24"), (NextHop(A("192.168.100.9"), "eth9"),))
    sink.update(far.prefix, far)
    sink.update(nodev.prefix, nodev)
    await sink.flush()
    text = sorted(str(e) for e in errors)
    assert "next hop 10.9.9.9 is not on a connected subnet of eth0" in text[0]
    assert "device eth9 does not exist" in text[1]
    assert set(sink.failed()) == {far.prefix, nodev.prefix}
    assert ours(netns) == []
    await sink.close()


async def test_missing_ipip_is_reported_clearly(netns: str) -> None:
    if ipip_unavailable() is None:
        pytest.skip("this kernel has IPIP: the missing-module path cannot be shown here")
    errors: list[KernelRouteError] = []
    sink = await started(netns, on_error=errors.append)
    with pytest.raises(TunnelUnavailableError, match=r"no IPIP support \(module ipip\)"):
        await sink.ensure_tunnel()
    route = KernelRoute(DST, (NextHop(A("192.168.200.101"), "tunl0"),))
    sink.update(DST, route)
    await sink.flush()
    assert any("no IPIP support (module ipip): tunnel mode" in str(e) for e in errors)
    assert dict(sink.failed()) == {DST: route}
    await sink.close()


async def test_pyroute2_and_our_dump_parser_agree(netns: str) -> None:
    """The watch decodes notifications with pyroute2, start-up parses dumps with ours
    (pyroute2 is 3-5x slower there): both must read every route shape the same way."""
    from pyroute2.netlink.rtnl.marshal import MarshalRtnl

    from kernel.netlink import (
        _RTMSG,
        RTM_GETROUTE,
        RTM_NEWROUTE,
        _Channel,
        open_netlink,
        parse_route,
        route_from_message,
    )

    sink = await started(netns, DIRECT, ECMP, V6, blackhole(OWN))
    ip(netns, "route add 172.17.30.0/24 via 192.168.100.1 proto static metric 100 table 100")
    ip(netns, "-6 route add blackhole fd00:8::/64 proto bird")
    chan = _Channel(open_netlink(netns))
    marshal = MarshalRtnl()
    seen = 0
    try:
        for family in (2, 10):
            for data, mtype, a, b in chan.dump(RTM_GETROUTE, _RTMSG.pack(family, *[0] * 8)):
                assert mtype == RTM_NEWROUTE
                (msg,) = marshal.parse(data[a:b])
                assert route_from_message(msg) == parse_route(data, a, b)
                seen += 1
    finally:
        chan.sock.close()
    assert seen >= 10
    await sink.close()


async def test_many_slices_with_a_refused_route_in_the_middle(netns: str) -> None:
    """Enough routes for several slices and sends; the kernel's error maps to its prefix."""
    errors: list[KernelRouteError] = []
    sink = await started(netns, on_error=errors.append)
    hop = (NextHop(A("192.168.100.101"), "eth0"),)
    wanted = [KernelRoute(N(f"11.{i >> 8 & 255}.{i & 255}.0/24"), hop) for i in range(20_000)]
    bad = KernelRoute(wanted[13_333].prefix, (NextHop(A("10.9.9.9"), "eth0", onlink=False),))
    wanted[13_333] = bad
    for route in wanted:
        sink.update(route.prefix, route)
    await sink.flush()
    assert [e.prefix for e in errors] == [bad.prefix]
    assert set(sink.failed()) == {bad.prefix}
    assert len(sink.installed()) == 19_999 and bad.prefix not in sink.installed()
    assert len(ours(netns)) == 19_999
    for route in wanted:
        sink.update(route.prefix, None)
    await sink.flush()
    assert ours(netns) == [] and not sink.installed() and len(errors) == 1
    await sink.close()


async def test_a_backlog_changed_while_it_is_being_withdrawn(netns: str) -> None:
    """The withdrawals go spread over the backlog, several slices with the sender thread at a
    time; routes desired again meanwhile end up installed, all else gone."""
    sink = await started(netns)
    hop = (NextHop(A("192.168.100.101"), "eth0"),)
    wanted = [KernelRoute(N(f"11.0.{i >> 8}.{i & 255}/32"), hop) for i in range(20_000)]
    for route in wanted:
        sink.update(route.prefix, route)
    await sink.flush()
    assert len(ours(netns)) == 20_000
    for route in wanted:
        sink.update(route.prefix, None)
    flushing = asyncio.create_task(sink.flush())
    await asyncio.sleep(0)  # the flush is under way: its first slice is with the kernel
    again = [wanted[0], wanted[3], wanted[19_999]]  # drained early, mid-way and last
    for route in again:
        sink.update(route.prefix, route)
    sink.update(wanted[5].prefix, blackhole(wanted[5].prefix))
    await flushing
    await sink.flush()
    expected = {r.prefix for r in again} | {wanted[5].prefix}
    assert set(sink.installed()) == expected
    assert sorted(ours(netns)) == sorted(
        [f"{r.prefix.network_address} via 192.168.100.101 dev eth0 proto bird metric 1024 onlink"
         for r in again] + ["blackhole 11.0.0.5 proto bird metric 1024"]
    )  # fmt: skip
    assert sink.stats["errors"] == 0
    await sink.close()


async def test_a_failed_send_leaves_the_other_slices_booked(netns: str) -> None:
    """One send() of a flush fails (as a socket error would): flush() raises it, the slices
    queued behind it still go, and a re-read of the table repairs the rest."""
    sink = await started(netns)
    chan = sink._chan
    assert chan is not None
    real_send, calls = chan.send, []

    def send(*args: object) -> object:
        calls.append(args)
        if len(calls) == 2:
            raise OSError(105, "No buffer space available")
        return real_send(*args)  # type: ignore[arg-type]

    chan.send = send  # type: ignore[method-assign, assignment]
    hop = (NextHop(A("192.168.100.101"), "eth0"),)
    wanted = [KernelRoute(N(f"11.0.{i >> 8}.{i & 255}/32"), hop) for i in range(12_000)]
    for route in wanted:
        sink.update(route.prefix, route)
    with pytest.raises(OSError, match="No buffer space"):
        await sink.flush()
    assert len(calls) >= 3  # those queued behind the failed one were sent
    assert 0 < len(ours(netns)) < 12_000  # (the second slice, 2000 routes, never went)
    chan.send = real_send  # type: ignore[method-assign]
    await sink.resync()
    assert len(ours(netns)) == 12_000 and len(sink.installed()) == 12_000
    await sink.close()
