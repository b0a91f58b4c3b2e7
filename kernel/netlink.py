"""NetlinkSink: the FIB sink that programs Linux routes over rtnetlink.

What it installs (``ip route`` notation)::

    P via G dev D proto bird onlink metric 1024          one next hop
    P proto bird metric 1024 nexthop via G1 dev D onlink nexthop via G2 dev D onlink   ECMP
    blackhole P proto bird metric 1024                  own block

Rules (STYLE.md lesson 9, BIRD's krt):

* Ours = protocol 12 (``bird``) in our table. Nothing else is ever changed or deleted:
  deletes carry protocol, table, metric and type, which the kernel matches.
* ``replace`` (NLM_F_CREATE|NLM_F_REPLACE) to add or change: idempotent, no flap.
* Start-up dumps the table and reconciles: identical routes are adopted without a request,
  different ones replaced, stale ones of ours removed (or kept until ``prune()``).
* Restart recovery: ``hold()`` queues every change (the adopted routes keep forwarding)
  until ``release()`` applies them in one pass against what is installed (``settle``).
  Meanwhile nothing is sent to the kernel; the watch still records what happens there.
* Requests are batched: one ``send()`` per slice of up to ``DRAIN_ITEMS`` changes (at most
  ``CHUNK_BYTES``), without NLM_F_ACK. rtnetlink processes a send synchronously and queues an
  NLMSG_ERROR (with the request's sequence number) only for failures, so after each send the
  errors are read back at once.
* Pipelined: the event loop encodes slice N+1 while the sender thread (one per sink, so
  the sends keep their order) is in the kernel with slice N, and queues it to that thread
  before N is back: the kernel goes from slice to slice without waiting for the loop. The
  queue and the installed map are keyed by ``int`` (``kernel.coalesce``), not by
  ``IPv4Network``, whose hash is Python code. The per-route costs are in docs/benchmarks.md.
* A watch socket (RTNLGRP_IPV4_ROUTE, IPV6_ROUTE, LINK; no polling) restores routes of ours
  that someone deletes or changes. A BPF filter drops, in the kernel, the notifications our
  own requests cause (they carry the port id of our request or control socket), so 100k
  installs cost no wake-ups.
* Route I/O (bulk sends in the sender thread, dumps in a worker thread; the ``_io`` lock
  gives the request socket to one of them at a time) and pyroute2's link requests are
  asyncio-native: the event loop running BGP never blocks on the kernel.

What is pyroute2's and what is ours (the rule: never hand-roll what pyroute2 does):

* pyroute2: entering the namespace (``pyroute2.netns.setns``), every link operation (an
  ``AsyncIPRoute`` on a control socket of ours: reading links, creating and bringing up
  tunl0), and decoding route and link notifications of the watch (``MarshalRtnl``: rtmsg,
  ifinfmsg).
* ours, measured (docs/benchmarks.md): the bulk route writes are encoded with precompiled
  ``struct``s, because pyroute2 0.9.7 needs 64 us (``rtmsg.encode``) to 226 us
  (``IPBatch.route``) per route, 6-22 s for 100k against a kernel limit of ~0.3 s. The
  route dump read at start-up is parsed by ``parse_route``, because pyroute2 needs 4.0 s
  (``MarshalRtnl.parse``) to 7.0 s (``rtmsg.decode``) for a dump of 100k routes, ours
  1.4 s (the dump itself: 0.07 s). The tests check both parsers agree, and decode what we
  encode with pyroute2.
* ours, because pyroute2's socket cannot do it: the watch socket's I/O. pyroute2's asyncio
  endpoint treats ENOBUFS (notifications overrun) as fatal for the socket; the sink must
  survive it and re-read the table. Our watch socket also carries a BPF filter.
"""

from __future__ import annotations

import asyncio
import ctypes
import errno
import gc
import logging
import os
import socket
import struct
import threading
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address, ip_network
from types import MappingProxyType
from typing import Any

from pyroute2 import AsyncIPRoute
from pyroute2 import netns as pyroute2_netns
from pyroute2.netlink.exceptions import NetlinkError
from pyroute2.netlink.rtnl.marshal import MarshalRtnl

from kernel.coalesce import V6_KEY, Coalescer, KeyedChange, RouteTable, settle
from kernel.routes import TUNNEL_DEVICE, IPAddress, KernelRoute, NextHop, Prefix
from kernel.sink import DEFAULT_METRIC, RT_TABLE_MAIN, RTPROT_BIRD, ip_route_command

log = logging.getLogger("kernel.netlink")

# --- rtnetlink constants (linux/netlink.h, linux/rtnetlink.h) ---------------------------
NETLINK_ROUTE = 0
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10
NETLINK_EXT_ACK = 11
NETLINK_GET_STRICT_CHK = 12
SO_ATTACH_FILTER = 26
SO_SNDBUFFORCE = 32
SO_RCVBUFFORCE = 33

NLMSG_ERROR = 2
NLMSG_DONE = 3
NLM_F_REQUEST = 0x1
NLM_F_MULTI = 0x2
NLM_F_ACK = 0x4
NLM_F_DUMP_INTR = 0x10
NLM_F_REPLACE = 0x100
NLM_F_EXCL = 0x200
NLM_F_CAPPED = 0x100  # in NLMSG_ERROR replies: the request is not echoed
NLM_F_ACK_TLVS = 0x200  # in NLMSG_ERROR replies: extended ack attributes follow
NLM_F_CREATE = 0x400
NLM_F_DUMP = 0x300
NLMSGERR_ATTR_MSG = 1

RTM_NEWLINK = 16
RTM_DELLINK = 17
RTM_NEWROUTE = 24
RTM_DELROUTE = 25
RTM_GETROUTE = 26
RTMGRP_LINK = 0x1
RTMGRP_IPV4_ROUTE = 0x40
RTMGRP_IPV6_ROUTE = 0x400

RTA_DST = 1
RTA_OIF = 4
RTA_GATEWAY = 5
RTA_PRIORITY = 6
RTA_MULTIPATH = 9
RTA_TABLE = 15
RTN_UNICAST = 1
RTN_BLACKHOLE = 6
RT_SCOPE_UNIVERSE = 0
RT_SCOPE_NOWHERE = 255
RTNH_F_ONLINK = 4
IFF_UP = 0x1

AF = {4: socket.AF_INET, 6: socket.AF_INET6}
CHUNK_BYTES = 1 << 20  # per send(): one syscall per slice, the GIL released meanwhile
DRAIN_FIRST = 1_000  # changes in the first slice of a flush: the kernel starts early
DRAIN_ITEMS = 8_000  # slices double up to this many (~4 ms of the event loop), then sent
ENTER_WAIT = 0.005  # at most this long the loop waits for the sender to be in send()
# A backlog of more than a slice is sent in this stride over the queue (Coalescer.interleave):
# withdrawing 100k neighbouring /32s in address order makes the FIB trie shrink node by node,
# and every 512 KiB of freed nodes waits for an RCU grace period (fib_sync_mem): 0.31-0.33 s
# in address order, 0.20 s with stride 16 (docs/benchmarks.md). Installs do not care.
INTERLEAVE = 16

_HDR = struct.Struct("=IHHII")  # nlmsghdr: len, type, flags, seq, pid
_RTMSG = struct.Struct("=BBBBBBBBI")  # family dst_len src_len tos table proto scope type flags
_ATTR = struct.Struct("=HH")
_U32 = struct.Struct("=I")
_I32 = struct.Struct("=i")
_RTNH = struct.Struct("=HBBi")  # rtnexthop: len, flags, hops, ifindex
# The common cases in one pack each (addresses as network-order ints): IPv4 with one next
# hop (68 bytes) and an IPv4 delete (52 bytes).
_V4_ONE = struct.Struct("=IHHII BBBBBBBBI HHI HHI HHI HHI HHi")
_V4_DEL = struct.Struct("=IHHII BBBBBBBBI HHI HHI HHI")


class KernelRouteError(Exception):
    """A route the kernel refused, with a message that says why in our terms."""

    def __init__(self, prefix: Prefix | None, op: str, err: int, message: str) -> None:
        super().__init__(message)
        self.prefix = prefix
        self.op = op
        self.errno = err


class TunnelUnavailableError(KernelRouteError):
    """The tunnel device is missing and this kernel cannot create it."""


def describe_error(
    err: int,
    op: str,
    route: KernelRoute | None,
    prefix: Prefix | None = None,
    detail: str | None = None,
    *,
    metric: int = DEFAULT_METRIC,
    table: int = RT_TABLE_MAIN,
) -> KernelRouteError:
    """Every netlink error becomes a message here, and only here."""
    prefix = route.prefix if route is not None else prefix
    nhs = route.nexthops if route is not None else ()
    devs = ", ".join(sorted({nh.ifname for nh in nhs if nh.ifname})) or "?"
    gws = ", ".join(str(nh.gateway) for nh in nhs) or "?"
    what = f"cannot {op} route {prefix}"
    if err == errno.ENETUNREACH:
        why = f"next hop {gws} is not on a connected subnet of {devs} (install it onlink)"
    elif err == errno.EINVAL and nhs:
        why = f"the kernel refused next hop {gws} on {devs} (invalid gateway or onlink device)"
    elif err == errno.ENODEV:
        why = f"device {devs} does not exist"
        if TUNNEL_DEVICE in devs:
            why += f" (needs IPIP: {TUNNEL_DEVICE})"
    elif err == errno.ENETDOWN:
        why = f"device {devs} is down"
    elif err in (errno.EPERM, errno.EACCES):
        why = "permission denied: changing routes needs CAP_NET_ADMIN (run as root)"
    elif err == errno.EEXIST:
        why = f"another protocol's route for {prefix} already sits at metric {metric}"
    elif err == errno.ESRCH:
        why = "no such route (already gone)"
    elif err in (errno.EAFNOSUPPORT, errno.EOPNOTSUPP):
        why = "not supported by this kernel (IPv6 disabled?)"
    elif err == errno.ENOBUFS:
        why = "netlink buffer overrun; state will be re-read from the kernel"
    else:
        why = os.strerror(err)
    if detail:
        why += f"; kernel says: {detail}"
    if route is not None and op == "replace":
        why += f" [{ip_route_command('replace', route, metric=metric, table=table)}]"
    return KernelRouteError(prefix, op, err, f"{what}: {why}")


def _netlink_detail(exc: NetlinkError) -> str | None:
    """The kernel's extended-ack text of a pyroute2 NetlinkError, if it is not just strerror."""
    text = str(exc.args[1]) if len(exc.args) > 1 else ""
    return text if text and text != os.strerror(exc.code) else None


def tunnel_unavailable(device: str, err: int, detail: str | None = None) -> TunnelUnavailableError:
    msg = (
        f"this kernel has no IPIP support (module ipip): tunnel mode always/cross-subnet needs "
        f"it to create {device} ({os.strerror(err)}" + (f": {detail}" if detail else "") + ")"
    )
    return TunnelUnavailableError(None, "create tunnel", err, msg)


# --- encoding ---------------------------------------------------------------------------
def _attr(atype: int, payload: bytes) -> bytes:
    n = 4 + len(payload)
    return _ATTR.pack(n, atype) + payload + b"\0" * (-n % 4)


def _u32attr(atype: int, value: int) -> bytes:
    return _ATTR.pack(8, atype) + _U32.pack(value)


# A route as the worker thread encodes it: plain values only.
#   ("replace", family, dst, plen, type, ((gateway_bytes, ifindex, onlink), ...))
#   ("delete", family, dst, plen, type, metric)
Hop = tuple[bytes, int, bool]
Spec = tuple[str, int, bytes, int, int, object]


def encode_route(
    spec: Spec, seq: int, *, table: int, metric: int, protocol: int = RTPROT_BIRD
) -> bytes:
    op, family, dst, plen, rtype, extra = spec
    low_table = table if table < 256 else 0
    if op == "delete":
        assert isinstance(extra, int)
        body = (
            _RTMSG.pack(family, plen, 0, 0, low_table, protocol, RT_SCOPE_NOWHERE, rtype, 0)
            + _attr(RTA_DST, dst)
            + _u32attr(RTA_TABLE, table)
            + _u32attr(RTA_PRIORITY, extra)
        )
        return _HDR.pack(16 + len(body), RTM_DELROUTE, NLM_F_REQUEST, seq, 0) + body
    hops: tuple[Hop, ...] = extra  # type: ignore[assignment]
    flags = NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE
    rtm_flags = 0
    attrs = [_attr(RTA_DST, dst), _u32attr(RTA_TABLE, table), _u32attr(RTA_PRIORITY, metric)]
    if len(hops) == 1:
        gw, ifindex, onlink = hops[0]
        rtm_flags = RTNH_F_ONLINK if onlink else 0
        attrs.append(_attr(RTA_GATEWAY, gw))
        if ifindex:
            attrs.append(_u32attr(RTA_OIF, ifindex))
    elif hops:
        parts = []
        for gw, ifindex, onlink in hops:
            gwattr = _attr(RTA_GATEWAY, gw)
            parts.append(
                _RTNH.pack(8 + len(gwattr), RTNH_F_ONLINK if onlink else 0, 0, ifindex) + gwattr
            )
        attrs.append(_attr(RTA_MULTIPATH, b"".join(parts)))
    body = _RTMSG.pack(
        family, plen, 0, 0, low_table, protocol, RT_SCOPE_UNIVERSE, rtype, rtm_flags
    ) + b"".join(attrs)
    return _HDR.pack(16 + len(body), RTM_NEWROUTE, flags, seq, 0) + body


# --- decoding ---------------------------------------------------------------------------
Buf = bytes | bytearray | memoryview


def _attrs(buf: Buf, pos: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(type, payload start, payload end) of each rtattr in buf[pos:end]."""
    while pos + 4 <= end:
        alen, atype = _ATTR.unpack_from(buf, pos)
        if alen < 4:
            return
        yield atype & 0x3FFF, pos + 4, pos + alen
        pos += (alen + 3) & ~3


@dataclass(frozen=True, slots=True)
class ParsedRoute:
    """An rtnetlink route message, reduced to what ownership and comparison need."""

    prefix: Prefix
    table: int
    protocol: int
    metric: int
    rtype: int
    hops: tuple[tuple[IPAddress, int, bool], ...]  # gateway, ifindex, onlink

    def to_route(self, names: Mapping[int, str]) -> KernelRoute | None:
        if self.rtype == RTN_BLACKHOLE:
            return KernelRoute(self.prefix, blackhole=True)
        if self.rtype != RTN_UNICAST or not self.hops:
            return None  # not a shape this sink installs
        return KernelRoute(
            self.prefix,
            tuple(NextHop(gw, names.get(idx), onlink) for gw, idx, onlink in self.hops),
        )


def parse_route(buf: Buf, off: int, end: int) -> ParsedRoute | None:
    """Parse one RTM_NEWROUTE/DELROUTE message at buf[off:end] (off = nlmsghdr)."""
    family, plen, _s, _tos, table, proto, _scope, rtype, rflags = _RTMSG.unpack_from(buf, off + 16)
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    alen = 4 if family == socket.AF_INET else 16
    dst = b"\0" * alen
    metric = 0
    gw: bytes | None = None
    oif = 0
    hops: list[tuple[IPAddress, int, bool]] = []
    for atype, a, b in _attrs(buf, off + 28, end):
        if atype == RTA_DST:
            dst = bytes(buf[a:b])
        elif atype == RTA_TABLE:
            table = _U32.unpack_from(buf, a)[0]
        elif atype == RTA_PRIORITY:
            metric = _U32.unpack_from(buf, a)[0]
        elif atype == RTA_GATEWAY:
            gw = bytes(buf[a:b])
        elif atype == RTA_OIF:
            oif = _I32.unpack_from(buf, a)[0]
        elif atype == RTA_MULTIPATH:
            pos = a
            while pos + 8 <= b:
                nlen, nflags, _hops, idx = _RTNH.unpack_from(buf, pos)
                if nlen < 8:
                    break
                for t2, a2, b2 in _attrs(buf, pos + 8, pos + nlen):
                    if t2 == RTA_GATEWAY:
                        hops.append((_addr(bytes(buf[a2:b2])), idx, bool(nflags & RTNH_F_ONLINK)))
                pos += (nlen + 3) & ~3
    if gw is not None:
        hops.append((_addr(gw), oif, bool(rflags & RTNH_F_ONLINK)))
    net: Prefix = IPv4Network((dst, plen)) if family == socket.AF_INET else IPv6Network((dst, plen))
    return ParsedRoute(net, table, proto, metric, rtype, tuple(hops))


def _addr(raw: bytes) -> IPAddress:
    return IPv4Address(raw) if len(raw) == 4 else IPv6Address(raw)


def route_from_message(msg: Any) -> ParsedRoute | None:
    """A route notification decoded by pyroute2 (``rtmsg``), as a ParsedRoute."""
    family = msg["family"]
    if family not in (socket.AF_INET, socket.AF_INET6):
        return None
    dst = msg.get("dst") or ("0.0.0.0" if family == socket.AF_INET else "::")
    prefix: Prefix = ip_network(f"{dst}/{msg['dst_len']}", strict=False)
    hops: list[tuple[IPAddress, int, bool]] = []
    gateway = msg.get("gateway")
    if gateway is not None:
        hops.append((ip_address(gateway), msg.get("oif") or 0, bool(msg["flags"] & RTNH_F_ONLINK)))
    hops.extend(
        (ip_address(gw), nh["oif"], bool(nh["flags"] & RTNH_F_ONLINK))
        for nh in msg.get("multipath") or ()
        if (gw := nh.get("gateway")) is not None
    )
    table = msg.get("table")
    return ParsedRoute(
        prefix,
        msg["table"] if table is None else table,
        msg["proto"],
        msg.get("priority") or 0,
        msg["type"],
        tuple(hops),
    )


def link_from_message(msg: Any) -> tuple[int, int, str | None]:
    """(ifindex, flags, name) of a link message decoded by pyroute2 (``ifinfmsg``)."""
    name = msg.get("ifname")
    return msg["index"], msg["flags"], name if isinstance(name, str) else None


def _messages(buf: Buf, n: int) -> Iterator[tuple[int, int, int, int, int, int]]:
    """(type, flags, seq, pid, start, end) of each netlink message in buf[:n]."""
    pos = 0
    while pos + 16 <= n:
        mlen, mtype, mflags, seq, pid = _HDR.unpack_from(buf, pos)
        if mlen < 16:
            return
        yield mtype, mflags, seq, pid, pos, pos + mlen
        pos += (mlen + 3) & ~3


def _parse_error(buf: Buf, start: int, end: int, mflags: int) -> tuple[int, str | None]:
    err = -_I32.unpack_from(buf, start + 16)[0]
    detail = None
    if mflags & NLM_F_ACK_TLVS:
        # With NETLINK_CAP_ACK the request is not echoed: only its 16-byte header follows.
        olen = _HDR.unpack_from(buf, start + 20)[0]
        tlv = start + 20 + (16 if mflags & NLM_F_CAPPED else (olen + 3) & ~3)
        for atype, a, b in _attrs(buf, tlv, end):
            if atype == NLMSGERR_ATTR_MSG:
                detail = bytes(buf[a:b]).rstrip(b"\0").decode(errors="replace")
    return err, detail


# --- sockets ----------------------------------------------------------------------------
def _netns_path(netns: str) -> str:
    return netns if "/" in netns else f"/run/netns/{netns}"


def open_netlink(netns: str | None = None, groups: int = 0) -> socket.socket:
    """An rtnetlink socket, created inside ``netns`` (name or path) if given.

    A socket stays in the namespace it was created in, so a short-lived thread enters the
    namespace with pyroute2's ``setns`` (it affects only the calling thread) and creates the
    socket there. (pyroute2's own ``netns.create_socket`` forks a child process for this:
    seconds under the CI VM's emulation, and a fork of a threaded process.)
    """
    if netns is None:
        return _make_socket(groups)
    box: list[socket.socket | BaseException] = []

    def enter() -> None:
        try:
            # flags=0: never create the namespace, fail if it does not exist
            pyroute2_netns.setns(_netns_path(netns), flags=0)
            box.append(_make_socket(groups))
        except BaseException as exc:
            box.append(exc)

    t = threading.Thread(target=enter, name=f"netns-{netns}")
    t.start()
    t.join()
    if isinstance(box[0], BaseException):
        raise box[0]
    return box[0]


def _make_socket(groups: int) -> socket.socket:
    # SOCK_DGRAM and SOCK_RAW are the same to netlink; pyroute2's asyncio endpoint needs DGRAM.
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_DGRAM, NETLINK_ROUTE)
    try:
        for opt, size in ((SO_SNDBUFFORCE, 4 << 20), (SO_RCVBUFFORCE, 32 << 20)):
            try:
                s.setsockopt(socket.SOL_SOCKET, opt, size)
            except OSError:  # without CAP_NET_ADMIN: the ordinary (capped) sizes
                s.setsockopt(socket.SOL_SOCKET, opt - 25, size)
        for opt in (NETLINK_CAP_ACK, NETLINK_EXT_ACK, NETLINK_GET_STRICT_CHK):
            try:
                s.setsockopt(SOL_NETLINK, opt, 1)
            except OSError:
                pass  # older kernels: plain errors, unfiltered dumps
        s.bind((0, groups))
    except BaseException:
        s.close()
        raise
    return s


def drop_own_notifications(sock: socket.socket, *portids: int) -> bool:
    """Attach a BPF filter that drops notifications caused by the sockets ``portids``."""
    # nlmsg_pid is at offset 12 in host order; BPF_LD|BPF_W|BPF_ABS loads big-endian.
    n = len(portids)
    prog = [(0x20, 0, 0, 12)]  # ld [12]
    for i, portid in enumerate(portids):  # jeq #pid, drop, next
        prog.append((0x15, n - i, 0, int.from_bytes(_U32.pack(portid), "big")))
    prog += [(0x06, 0, 0, 0xFFFFFFFF), (0x06, 0, 0, 0)]  # accept; drop
    insns = ctypes.create_string_buffer(b"".join(struct.pack("=HBBI", *i) for i in prog))
    try:
        sock.setsockopt(
            socket.SOL_SOCKET,
            SO_ATTACH_FILTER,
            struct.pack("HL", len(prog), ctypes.addressof(insns)),
        )
    except OSError:
        return False
    return True


class _Channel:
    """The request socket; used by one worker thread at a time (the sink holds a lock)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.portid: int = sock.getsockname()[0]
        self.seq = 0
        self.buf = bytearray(1 << 20)
        self.overrun = False
        # A send() larger than the socket's send buffer fails (EMSGSIZE).
        sndbuf = sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)
        self.chunk_bytes = max(16 << 10, min(CHUNK_BYTES, sndbuf // 2))

    def _read_errors(self, errors: dict[int, tuple[int, str | None]]) -> None:
        while True:
            try:
                n = self.sock.recv_into(self.buf, 0, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    self.overrun = True  # some errors were lost: the caller re-reads the table
                    continue
                raise
            for mtype, mflags, seq, _pid, a, b in _messages(self.buf, n):
                if mtype == NLMSG_ERROR:
                    err, detail = _parse_error(self.buf, a, b, mflags)
                    if err:
                        errors[seq] = (err, detail)

    def reserve(self, n: int) -> int:
        """Reserve n sequence numbers; returns the first."""
        first = self.seq + 1
        self.seq += n
        if self.seq > 0x7FFFFFFF:
            first, self.seq = 1, n
        return first

    def chunks(self, msgs: list[bytes]) -> list[bytes]:
        """The messages joined into buffers of at most ``chunk_bytes``, one per send()."""
        out: list[bytes] = []
        start, size, limit = 0, 0, self.chunk_bytes
        for i, msg in enumerate(msgs):
            if size + len(msg) > limit and i > start:
                out.append(b"".join(msgs[start:i]))
                start, size = i, 0
            size += len(msg)
        if start < len(msgs):
            out.append(b"".join(msgs[start:]))
        return out

    def send(
        self, chunks: list[bytes], base: int, count: int, entered: threading.Event | None = None
    ) -> dict[int, tuple[int, str | None]]:
        """Send buffers of encoded requests (sequence numbers base .. base+count-1).

        No NLM_F_ACK: rtnetlink handles a send() synchronously and queues an NLMSG_ERROR only
        for a failed request, so after each send() the failures are already readable.
        ``entered`` is set just before the first send() (see NetlinkSink.flush).
        Returns {index of the request: (errno, kernel message)}.
        """
        self._read_errors({})  # stale replies from an earlier round
        errors: dict[int, tuple[int, str | None]] = {}
        for chunk in chunks:
            if entered is not None:
                entered.set()
            self.sock.send(chunk)
            self._read_errors(errors)
        if entered is not None:
            entered.set()
        return {seq - base: e for seq, e in errors.items() if 0 <= seq - base < count}

    def dump(self, mtype: int, body: bytes) -> Iterator[tuple[bytes, int, int, int]]:
        """Yield (buffer, type, start, end) for each message of a dump; restarts if interrupted."""
        while True:
            seq = self.reserve(1)
            self.sock.send(
                _HDR.pack(16 + len(body), mtype, NLM_F_REQUEST | NLM_F_DUMP, seq, 0) + body
            )
            out: list[tuple[bytes, int, int, int]] = []
            interrupted = False
            done = False
            while not done:
                n = self.sock.recv_into(self.buf)
                data = bytes(self.buf[:n])
                for mtype2, mflags, seq2, _pid, a, b in _messages(data, n):
                    if seq2 != seq:
                        continue
                    if mflags & NLM_F_DUMP_INTR:
                        interrupted = True
                    if mtype2 == NLMSG_DONE:
                        done = True
                    elif mtype2 == NLMSG_ERROR:
                        err, detail = _parse_error(data, a, b, mflags)
                        raise OSError(err, detail or os.strerror(err))
                    else:
                        out.append((data, mtype2, a, b))
            if not interrupted:
                yield from out
                return


@dataclass(slots=True)
class _Round:
    """One encoded slice: messages with sequence numbers base.., and what each one does."""

    chunks: list[bytes]  # the encoded requests, joined into one buffer per send()
    count: int  # requests in them
    meta: list[tuple[Prefix, KernelRoute | None, KernelRoute | None]]  # prefix, new, previous
    base: int
    entered: threading.Event  # set by the sender thread just before its first send()


class _gc_paused:
    def __enter__(self) -> None:
        self.was = gc.isenabled()
        gc.disable()

    def __exit__(self, *exc: object) -> None:
        if self.was:
            gc.enable()


@dataclass
class _Link:
    index: int
    flags: int


_MISSING = object()


class NetlinkSink:
    """The FibSink that programs the kernel. See the module docstring."""

    def __init__(
        self,
        *,
        netns: str | None = None,
        table: int = RT_TABLE_MAIN,
        metric: int = DEFAULT_METRIC,
        protocol: int = RTPROT_BIRD,
        tunnel_device: str = TUNNEL_DEVICE,
        prune_on_start: bool = True,
        watch: bool = True,
        on_error: Callable[[KernelRouteError], None] | None = None,
    ) -> None:
        self.netns = netns
        self.table = table
        self.metric = metric
        self.protocol = protocol
        self.tunnel_device = tunnel_device
        self.prune_on_start = prune_on_start
        self.watch = watch
        self.on_error = on_error
        self._installed = RouteTable()  # keyed by prefix_key inside (see kernel.coalesce)
        self._queue = Coalescer(self._installed)
        self._failed: dict[Prefix, KernelRoute] = {}  # desired but refused; retried on link up
        self._foreign: set[Prefix] = set()  # another protocol's route sits at our metric
        self._blocked: dict[Prefix, KernelRoute] = {}  # desired, waiting for a foreign route
        self._unconfirmed: set[Prefix] = set()  # adopted at start, not desired since
        self._extra_deletes: list[Spec] = []  # stale routes of ours at another metric
        self._links: dict[str, _Link] = {}
        self._names: dict[int, str] = {}
        self._chan: _Channel | None = None
        self._sender: ThreadPoolExecutor | None = None  # one thread: sends stay in order
        self._ipr: AsyncIPRoute | None = None  # pyroute2 on a control socket: links
        self._ctl: socket.socket | None = None
        self._mon: socket.socket | None = None
        self._marshal = MarshalRtnl()  # decodes the watch's notifications
        self._mon_buf = bytearray(1 << 16)
        self._io = asyncio.Lock()
        self._flushing = asyncio.Lock()
        self._kick_task: asyncio.Task[None] | None = None
        self._resync_handle: asyncio.TimerHandle | None = None
        self._resync_task: asyncio.Task[None] | None = None
        self._started = False
        self._held = False  # restart recovery: changes wait for release()
        self.stats = {"requests": 0, "errors": 0, "restored": 0, "resyncs": 0}

    # --- FibSink API ---------------------------------------------------------------
    async def start(self) -> None:
        sock = await asyncio.to_thread(open_netlink, self.netns)
        self._chan = _Channel(sock)
        self._sender = ThreadPoolExecutor(1, thread_name_prefix="roost-netlink")
        self._ctl = await asyncio.to_thread(open_netlink, self.netns)
        self._ipr = AsyncIPRoute(use_socket=self._ctl)
        if self.watch:
            groups = RTMGRP_LINK | RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE
            mon = await asyncio.to_thread(open_netlink, self.netns, groups)
            drop_own_notifications(mon, self._chan.portid, self._ctl.getsockname()[0])
            mon.setblocking(False)
            self._mon = mon
            asyncio.get_running_loop().add_reader(mon.fileno(), self._on_watch)
        await self._reconcile(initial=True)
        self._started = True
        await self.flush()

    def update(self, prefix: Prefix, route: KernelRoute | None) -> None:
        if self._unconfirmed:  # (each of these hashes the prefix: skip when empty)
            self._unconfirmed.discard(prefix)
        if self._failed:
            self._failed.pop(prefix, None)
        if self._blocked:
            self._blocked.pop(prefix, None)
        self._queue.put(prefix, route)
        if self._kick_task is None or self._kick_task.done():
            self._kick()

    async def flush(self) -> None:
        if not self._started or self._held:
            return
        async with self._flushing:
            # Pipelined: slice N+1 is encoded here while the sender thread is in send() with
            # slice N (the syscall runs without the GIL), and is queued to that thread before
            # N is back, so that the thread goes from one send() to the next by itself (handed
            # over by this loop, each slice cost ~1 ms of an idle kernel). The thread needs the
            # GIL to get into send(): were this thread encoding meanwhile, it would wait a switch
            # interval (5 ms) and the kernel would sit idle. So once a slice is queued and its
            # predecessor is back we wait until the thread is in send() with it (normally
            # ~0.1 ms, at most ENTER_WAIT). The first slice is small: the kernel starts early.
            chan, sender = self._require_chan(), self._require_sender()
            loop = asyncio.get_running_loop()
            inflight: list[tuple[_Round, asyncio.Future[dict[int, tuple[int, str | None]]]]] = []
            # The collector stays off for the whole flush, across the awaits: re-enabled
            # between slices, the tuples each slice keeps (batch, meta) set off a collection
            # per slice, 3-4 ms each and now and then a full one over the whole RIB.
            with _gc_paused():
                async with self._io:  # the request socket is the sender's until all are back
                    try:
                        if len(self._queue) > DRAIN_ITEMS:
                            # A backlog of withdrawals is spread before the first slice goes.
                            self._queue.interleave(INTERLEAVE)
                        size = DRAIN_FIRST
                        while self._queue or self._extra_deletes:
                            batch = self._queue.drain_keyed(size)
                            # Each slice is encoded while the kernel has the one before,
                            # which takes it 3-6 times as long: they may double up to the max.
                            size = min(2 * size, DRAIN_ITEMS)
                            rnd = await self._prepare(batch)
                            if rnd is not None:
                                inflight.append((rnd, loop.run_in_executor(
                                    sender, chan.send, rnd.chunks, rnd.base, rnd.count,
                                    rnd.entered)))  # fmt: skip
                            if len(inflight) > 1:  # slice N+1 is queued: wait for N
                                done, fut = inflight.pop(0)
                                self._book(done, await fut)
                            if inflight and self._queue:  # (nothing more to encode: no need)
                                inflight[-1][0].entered.wait(ENTER_WAIT)
                    finally:
                        await self._book_all(inflight)

    async def _book_all(
        self, inflight: list[tuple[_Round, asyncio.Future[dict[int, tuple[int, str | None]]]]]
    ) -> None:
        """Wait for every slice still with the sender thread and book each one's outcome."""
        failure: Exception | None = None
        for rnd, fut in inflight:
            try:
                errors = await fut
            except Exception as exc:  # a socket error: the first one is raised, after all
                failure = failure or exc
                continue
            self._book(rnd, errors)
        if failure is not None:
            raise failure

    async def close(self, flush_routes: bool = False) -> None:
        if self._started:
            await self.flush()
            if flush_routes:
                # Remove our routes and nothing else: a change still held (an install of a
                # new prefix among them) is dropped, not applied on the way out.
                self._held = False
                self._unconfirmed.clear()
                self._failed.clear()
                self._blocked.clear()
                self._queue.clear()
                for prefix in list(self._installed):
                    self._queue.put(prefix, None)
                await self.flush()
        self._started = False
        if self._resync_handle is not None:
            self._resync_handle.cancel()
        if self._mon is not None:
            asyncio.get_running_loop().remove_reader(self._mon.fileno())
            self._mon.close()
            self._mon = None
        if self._ipr is not None:
            self._ipr.close()
            self._ipr = None
        if self._ctl is not None:
            self._ctl.close()
            self._ctl = None
        if self._sender is not None:
            self._sender.shutdown(wait=False)  # idle: every flush waits for its slices
            self._sender = None
        if self._chan is not None:
            self._chan.sock.close()
            self._chan = None

    def installed(self) -> Mapping[Prefix, KernelRoute]:
        return MappingProxyType(self._installed)

    # --- extras --------------------------------------------------------------------
    def failed(self) -> Mapping[Prefix, KernelRoute]:
        """Desired routes the kernel refused (retried when a link comes up)."""
        return MappingProxyType(self._failed)

    def hold(self) -> None:
        """Restart recovery: queue every change from now on, send none, until ``release``."""
        self._held = True

    @property
    def held(self) -> bool:
        return self._held

    async def release(self) -> None:
        """End the hold: apply the queue in one pass and remove the adopted routes nobody
        desired since (routes desired as installed cost no request)."""
        self._held = False
        await self.prune()

    async def prune(self) -> None:
        """Remove routes adopted at start that nobody asked for since (prune_on_start=False)."""
        settle(self._queue, self._unconfirmed)
        await self.flush()

    async def resync(self) -> None:
        """Re-read the table and repair any difference (also run on watch overrun)."""
        await self._reconcile(initial=False)
        await self.flush()

    async def ensure_tunnel(self) -> None:
        """Bring the tunnel device up; create it (``ipip``) only where it is absent."""
        ipr = self._require_ipr()
        name = self.tunnel_device
        if name not in self._links:
            try:
                await ipr.link("add", ifname=name, kind="ipip")
            except NetlinkError as exc:
                if exc.code != errno.EEXIST:  # appeared meanwhile (fallback tunl0): fine
                    raise tunnel_unavailable(name, exc.code, _netlink_detail(exc)) from None
            self._set_links(await self._read_links())
        link = self._links.get(name)
        if link is None:
            raise tunnel_unavailable(name, errno.ENODEV)
        if not link.flags & IFF_UP:
            await ipr.link("set", index=link.index, state="up")
            link.flags |= IFF_UP

    # --- applying changes ----------------------------------------------------------
    def _kick(self) -> None:
        if (
            not self._started
            or self._held
            or (self._kick_task is not None and not self._kick_task.done())
        ):
            return
        self._kick_task = asyncio.get_running_loop().create_task(self._background_flush())

    async def _background_flush(self) -> None:
        try:
            await self.flush()
        except Exception:
            log.exception("kernel sink: flushing routes failed")

    def _require_ipr(self) -> AsyncIPRoute:
        if self._ipr is None:
            raise RuntimeError("NetlinkSink is not started")
        return self._ipr

    def _require_chan(self) -> _Channel:
        if self._chan is None:
            raise RuntimeError("NetlinkSink is not started")
        return self._chan

    def _require_sender(self) -> ThreadPoolExecutor:
        if self._sender is None:
            raise RuntimeError("NetlinkSink is not started")
        return self._sender

    async def _prepare(self, batch: list[KeyedChange]) -> _Round | None:
        """Encode a batch and record it in ``installed`` at once (undone if the kernel refuses).

        Recording before the send keeps later slices right (a delete needs the installed
        route's type) while this one is still in flight.
        """
        chan = self._require_chan()
        tunnel = self._links.get(self.tunnel_device)
        if (tunnel is None or not tunnel.flags & IFF_UP) and any(
            nh.ifname == self.tunnel_device
            for _, _, r in batch
            if r is not None
            for nh in r.nexthops
        ):
            try:
                await self.ensure_tunnel()
            except KernelRouteError as exc:
                self._report(exc)
        # Encoded here, in slices of DRAIN_ITEMS (a few ms); only the I/O goes to a thread.
        # This loop is the per-route cost of the sink: keep it flat (docs/benchmarks.md).
        table, metric, proto = self.table, self.metric, self.protocol
        base = chan.reserve(len(batch) + len(self._extra_deletes))
        msgs: list[bytes] = []
        meta: list[tuple[Prefix, KernelRoute | None, KernelRoute | None]] = []
        hop_cache: dict[int, tuple[int, int] | None] = {}
        with _gc_paused():  # the short-lived tuples would trigger full collections (2x slower)
            self._encode(batch, base, msgs, meta, hop_cache)
        for spec in self._extra_deletes:  # stale routes of ours at other metrics
            msgs.append(encode_route(spec, base + len(msgs), table=table, metric=metric,
                                     protocol=proto))  # fmt: skip
        self._extra_deletes = []
        if not msgs:
            return None
        return _Round(chan.chunks(msgs), len(msgs), meta, base, threading.Event())

    def _encode(
        self,
        batch: list[KeyedChange],
        base: int,
        msgs: list[bytes],
        meta: list[tuple[Prefix, KernelRoute | None, KernelRoute | None]],
        hop_cache: dict[int, tuple[int, int] | None],
    ) -> None:
        installed, foreign, links = self._installed.raw, self._foreign, self._links
        table, metric, proto = self.table, self.metric, self.protocol
        low_table = table if table < 256 else 0
        v4_one, v4_del, htonl = _V4_ONE.pack, _V4_DEL.pack, socket.htonl
        spec: Spec
        for key, prefix, route in batch:
            if foreign and prefix in foreign:
                if route is None:
                    installed.pop(key, None)  # displaced already: nothing of ours is left
                else:
                    self._blocked[prefix] = route
                    self._fail(route, errno.EEXIST, None)
                continue
            seq = base + len(msgs)
            v4 = key < V6_KEY  # IPv4: the address is key >> 8, the length key & 0xFF
            if route is None:
                old = installed.get(key)
                if old is None:
                    continue
                rtype = RTN_BLACKHOLE if old.blackhole else RTN_UNICAST
                if v4:
                    msgs.append(v4_del(
                        52, RTM_DELROUTE, NLM_F_REQUEST, seq, 0,
                        2, key & 0xFF, 0, 0, low_table, proto, RT_SCOPE_NOWHERE, rtype, 0,
                        8, RTA_DST, htonl(key >> 8),
                        8, RTA_TABLE, table, 8, RTA_PRIORITY, metric,
                    ))  # fmt: skip
                else:
                    spec = self._delete_spec(prefix, rtype, metric)
                    msgs.append(encode_route(spec, seq, table=table, metric=metric, protocol=proto))
                meta.append((prefix, None, old))
                del installed[key]
                continue
            nhs = route.nexthops
            if v4 and len(nhs) == 1:
                nh = nhs[0]
                hid = id(nh)  # the batch keeps nh alive, so its id is not reused meanwhile
                if hid in hop_cache:
                    hop = hop_cache[hid]
                else:
                    link = links.get(nh.ifname) if nh.ifname else None
                    hop = None if nh.ifname and link is None else (
                        htonl(int(nh.gateway)), link.index if link else 0)  # fmt: skip
                    hop_cache[hid] = hop
                if hop is None:
                    self._fail(route, errno.ENODEV, None)
                    continue
                msgs.append(v4_one(
                    68, RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_CREATE | NLM_F_REPLACE, seq, 0,
                    2, key & 0xFF, 0, 0, low_table, proto, RT_SCOPE_UNIVERSE, RTN_UNICAST,
                    RTNH_F_ONLINK if nh.onlink else 0,
                    8, RTA_DST, htonl(key >> 8), 8, RTA_TABLE, table,
                    8, RTA_PRIORITY, metric, 8, RTA_GATEWAY, hop[0], 8, RTA_OIF, hop[1],
                ))  # fmt: skip
                meta.append((prefix, route, installed.get(key)))
                installed[key] = route
                continue
            hops: list[Hop] = []
            for nh in nhs:
                link = links.get(nh.ifname) if nh.ifname else None
                if nh.ifname and link is None:
                    break
                hops.append((nh.gateway.packed, link.index if link else 0, nh.onlink))
            else:
                rtype = RTN_BLACKHOLE if route.blackhole else RTN_UNICAST
                spec = ("replace", AF[prefix.version], prefix.network_address.packed,
                              prefix.prefixlen, rtype, tuple(hops))  # fmt: skip
                msgs.append(encode_route(spec, seq, table=table, metric=metric, protocol=proto))
                meta.append((prefix, route, installed.get(key)))
                installed[key] = route
                continue
            self._fail(route, errno.ENODEV, None)

    def _book(self, rnd: _Round, errors: dict[int, tuple[int, str | None]]) -> None:
        """A slice is back from the kernel: undo and report what it refused."""
        chan = self._require_chan()
        self.stats["requests"] += rnd.count
        installed = self._installed
        for i, e in sorted(errors.items()):
            if i >= len(rnd.meta):
                continue  # a stale-route delete (other metric): already gone is fine
            prefix, route, previous = rnd.meta[i]
            if route is None and e[0] == errno.ESRCH:
                continue  # already gone: that is what we wanted
            # Undo the optimistic record, unless a later slice changed the prefix again.
            if installed.get(prefix) is route:
                if previous is None:
                    installed.pop(prefix, None)
                else:
                    installed[prefix] = previous
            if route is None:
                self._report(describe_error(e[0], "delete", previous, prefix, e[1],
                                            metric=self.metric, table=self.table))  # fmt: skip
            else:
                self._fail(route, e[0], e[1])
        if chan.overrun:
            chan.overrun = False
            self._schedule_resync()

    @staticmethod
    def _delete_spec(p: Prefix, rtype: int, metric: int) -> Spec:
        return ("delete", AF[p.version], p.network_address.packed, p.prefixlen, rtype, metric)

    def _fail(self, route: KernelRoute, err: int, detail: str | None) -> None:
        self._failed[route.prefix] = route
        self._report(
            describe_error(
                err, "replace", route, None, detail, metric=self.metric, table=self.table
            )
        )

    def _report(self, exc: KernelRouteError) -> None:
        self.stats["errors"] += 1
        log.warning("%s", exc)
        if self.on_error is not None:
            self.on_error(exc)

    # --- reading the kernel --------------------------------------------------------
    async def _read_links(self) -> dict[str, _Link]:
        links: dict[str, _Link] = {}
        async for msg in await self._require_ipr().link("dump"):
            index, flags, name = link_from_message(msg)
            if name is not None:
                links[name] = _Link(index, flags)
        return links

    def _dump_routes(self, chan: _Channel) -> list[ParsedRoute]:
        out: list[ParsedRoute] = []
        low = self.table if self.table < 256 else 0
        for family in (socket.AF_INET, socket.AF_INET6):
            # With NETLINK_GET_STRICT_CHK the kernel filters the dump by table.
            body = _RTMSG.pack(family, 0, 0, 0, low, 0, 0, 0, 0) + _u32attr(RTA_TABLE, self.table)
            try:
                msgs = list(chan.dump(RTM_GETROUTE, body))
            except OSError as exc:
                if exc.errno == errno.EAFNOSUPPORT:  # IPv6 disabled
                    continue
                raise
            for data, mtype, a, b in msgs:
                if mtype == RTM_NEWROUTE:
                    r = parse_route(data, a, b)
                    if r is not None and r.table == self.table:
                        out.append(r)
        return out

    def _set_links(self, links: dict[str, _Link]) -> None:
        self._links = links
        self._names = {link.index: name for name, link in links.items()}

    async def _reconcile(self, *, initial: bool) -> None:
        chan = self._require_chan()
        links = await self._read_links()
        async with self._io:
            parsed = await asyncio.to_thread(self._dump_routes, chan)
        self._set_links(links)
        self.stats["resyncs"] += 1
        ours: dict[Prefix, KernelRoute] = {}
        foreign: set[Prefix] = set()
        for r in parsed:
            if r.protocol != self.protocol:
                if r.metric == self.metric:
                    foreign.add(r.prefix)
                continue
            route = r.to_route(self._names) if r.metric == self.metric else None
            if route is None or r.prefix in ours:  # other metric, odd shape, or duplicate
                self._extra_deletes.append(self._delete_spec(r.prefix, r.rtype, r.metric))
                continue
            ours[r.prefix] = route
        self._foreign = foreign
        for prefix in list(self._installed.keys() | ours.keys()):
            have = ours.get(prefix)
            want: object = self._installed.get(prefix)
            pending = self._queue.get(prefix, _MISSING)
            if initial or pending is not _MISSING:
                target = pending
            else:
                target = want if want is not None else _MISSING
            # Record what the kernel really has; the queue then sends only differences.
            if have is None:
                self._installed.pop(prefix, None)
            elif isinstance(target, KernelRoute) and same_route(target, have):
                self._installed[prefix] = target
            else:
                self._installed[prefix] = have
            if target is _MISSING:
                if have is not None and (initial and not self.prune_on_start):
                    self._unconfirmed.add(prefix)
                elif have is not None:
                    self._queue.put(prefix, None)  # stale route of ours
            elif not initial and pending is _MISSING:
                self._queue.put(prefix, target)  # type: ignore[arg-type]
        for prefix, route in list(self._failed.items()):
            if prefix not in self._queue and self._installed.get(prefix) != route:
                self._queue.put(prefix, route)
        for prefix in list(self._blocked):
            if prefix not in foreign:
                self._queue.put(prefix, self._blocked.pop(prefix))

    # --- the watch -----------------------------------------------------------------
    def _on_watch(self) -> None:
        mon = self._mon
        if mon is None:
            return
        portids = {
            self._chan.portid if self._chan else -1,
            self._ctl.getsockname()[0] if self._ctl else -1,
        }
        for _ in range(64):  # bounded work per wake-up
            try:
                n = mon.recv_into(self._mon_buf)
            except BlockingIOError:
                break
            except OSError as exc:
                if exc.errno == errno.ENOBUFS:
                    log.warning("kernel sink: route notifications overrun; re-reading the table")
                    self._schedule_resync(0.0)
                    continue
                raise
            for msg in self._marshal.parse(bytes(self._mon_buf[:n])):
                header = msg["header"]
                mtype = header["type"]
                if header["pid"] in portids:
                    continue  # ours (when the BPF filter is unavailable)
                if mtype in (RTM_NEWROUTE, RTM_DELROUTE):
                    r = route_from_message(msg)
                    if r is not None and r.table == self.table:
                        self._on_route_event(mtype == RTM_DELROUTE, r)
                elif mtype in (RTM_NEWLINK, RTM_DELLINK):
                    self._on_link_event(mtype == RTM_DELLINK, *link_from_message(msg))
        self._kick()

    def _on_route_event(self, deleted: bool, r: ParsedRoute) -> None:
        prefix = r.prefix
        if r.metric != self.metric:
            return
        if r.protocol != self.protocol:
            if deleted:
                self._foreign.discard(prefix)
                if prefix in self._blocked:
                    self._queue.put(prefix, self._blocked.pop(prefix))
            else:
                self._foreign.add(prefix)
                mine = self._installed.pop(prefix, None)
                if mine is not None:
                    log.warning(
                        "kernel sink: %s (proto %d) displaced our route for %s; not fighting it",
                        r.hops,
                        r.protocol,
                        prefix,
                    )
                    self._blocked[prefix] = mine
            return
        mine = self._installed.get(prefix)
        if deleted:
            if mine is not None:
                log.warning("kernel sink: our route %s was deleted; restoring it", prefix)
                self._restore(prefix, mine)
            return
        have = r.to_route(self._names)
        if mine is not None:
            if have is None or not same_route(mine, have):
                log.warning("kernel sink: our route %s was changed; restoring it", prefix)
                self._restore(prefix, mine, have)
        elif have is not None and prefix not in self._queue:
            # A proto-bird route nobody asked us for: ours by ownership, and stale.
            self._installed[prefix] = have
            self._queue.put(prefix, None)

    def _restore(self, prefix: Prefix, route: KernelRoute, have: KernelRoute | None = None) -> None:
        """Queue our ``route`` again: the kernel lost it, or has ``have`` (ours by protocol)
        there instead. ``have`` is recorded as installed, so that a withdraw queued meanwhile
        (``settle``: the route was adopted, and nobody wants it) deletes it."""
        self.stats["restored"] += 1
        if have is None:
            del self._installed[prefix]
        else:
            self._installed[prefix] = have
        if prefix not in self._queue:
            self._queue.put(prefix, route)

    def _on_link_event(self, deleted: bool, index: int, flags: int, name: str | None) -> None:
        old_name = self._names.pop(index, None)
        old = self._links.pop(old_name, None) if old_name is not None else None
        was_up = old is not None and bool(old.flags & IFF_UP)
        if deleted or name is None:
            # IPv4 routes over a vanished device go without notification: re-read.
            if old_name is not None and any(
                nh.ifname == old_name for r in self._installed.values() for nh in r.nexthops
            ):
                self._schedule_resync()
            return
        self._links[name] = _Link(index, flags)
        self._names[index] = name
        if flags & IFF_UP and not was_up:
            self._schedule_resync()  # failed routes may now go in; downed ones came back
        elif not flags & IFF_UP and was_up:
            self._schedule_resync()  # the kernel drops IPv4 routes of a downed device silently

    def _schedule_resync(self, delay: float = 0.2) -> None:
        if not self._started or self._resync_handle is not None:
            return
        loop = asyncio.get_running_loop()

        def fire() -> None:
            self._resync_handle = None
            self._resync_task = loop.create_task(self._background_resync())

        self._resync_handle = loop.call_later(delay, fire)  # debounce link flaps

    async def _background_resync(self) -> None:
        try:
            await self.resync()
        except Exception:
            log.exception("kernel sink: re-reading the routing table failed")


def same_route(want: KernelRoute, have: KernelRoute) -> bool:
    """Does the kernel's ``have`` satisfy ``want``? (a next hop without a device matches any)"""
    if want.blackhole or have.blackhole:
        return want.blackhole == have.blackhole
    if len(want.nexthops) != len(have.nexthops):
        return False
    if want.nexthops == have.nexthops:
        return True
    pool = list(have.nexthops)
    for nh in want.nexthops:
        for i, h in enumerate(pool):
            if h.gateway == nh.gateway and h.onlink == nh.onlink and nh.ifname in (None, h.ifname):
                del pool[i]
                break
        else:
            return False
    return True


__all__ = [
    "KernelRouteError",
    "NetlinkSink",
    "ParsedRoute",
    "TunnelUnavailableError",
    "describe_error",
    "encode_route",
    "link_from_message",
    "open_netlink",
    "parse_route",
    "route_from_message",
    "same_route",
]
