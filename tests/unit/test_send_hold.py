"""RFC 9687 Send Hold Timer and the per-peer output queue cap.

The pure `Session` with a hand clock (the adapter's reports of write progress are made by
hand), then the asyncio edge on loopback against a peer that stops reading.
"""

from __future__ import annotations

import asyncio
import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from ipaddress import IPv4Address

import pytest

from bgp.aio import transport
from bgp.aio.peer import BgpPeer, TransportOptions
from bgp.events import SessionDown
from bgp.fsm import DownReason, State
from bgp.session import Session, SessionConfig
from bgp.types import IPV4_UNICAST, CeaseSubcode, ErrorCode, MessageType
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_message, encode_message
from bgp.wire.model import DEFAULT, Keepalive, Notification, Open
from bgp.wire.packing import pack_announcements
from bgp.wire.prefix import Nlri, Prefix
from tests.unit.aio._util import Recorder, wait_until

ID_A = IPv4Address("10.0.0.1")
ID_B = IPv4Address("10.0.0.2")


def cfg(local: int, rid: IPv4Address, peer: int, **kw: object) -> SessionConfig:
    return SessionConfig(local_asn=local, router_id=rid, peer_asn=peer, **kw)  # type: ignore[arg-type]


def shuttle(a: Session, b: Session, now: float) -> None:
    """Move bytes both ways until neither side has anything more to say."""
    for _ in range(20):
        da, db = a.data_to_send(), b.data_to_send()
        if not da and not db:
            return
        if da:
            b.receive_data(da, now)
        if db:
            a.receive_data(db, now)


def established(**kw: object) -> tuple[Session, Session]:
    """A (the one under test, connecting) and B Established at t=0."""
    a = Session(cfg(65001, ID_A, 65002, **kw))
    b = Session(cfg(65002, ID_B, 65001, passive=True, hold_time=kw.get("hold_time", 90)))
    a.start(0.0)
    b.start(0.0)
    a.connection_made(0.0, outgoing=True)
    b.connection_made(0.0, outgoing=False)
    shuttle(a, b, 0.0)
    assert st(a) is State.ESTABLISHED and b.state is State.ESTABLISHED
    a.events()
    return a, b


def messages(data: bytes) -> list[tuple[int, bytes]]:
    frames = FrameBuffer()
    frames.feed(data)
    out = []
    while (frame := frames.next_frame()) is not None:
        out.append((frame[0], bytes(frame[1])))
    return out


def st(session: Session) -> State:
    """The state, read through a call (so that mypy does not narrow it across calls)."""
    return session.state


def downs(session: Session) -> list[SessionDown]:
    return [e for e in session.events() if isinstance(e, SessionDown)]


def updates(n: int) -> list[bytes]:
    """`n` copies of one small UPDATE (content is irrelevant to the queue)."""
    attrs = AttrSet.make(as_path=AsPath.sequence(65001), next_hop=IPv4Address("10.0.0.1"))
    (msg,) = pack_announcements(IPV4_UNICAST, attrs, [Nlri(Prefix.parse("10.1.2.0/24"))],
                                DEFAULT)
    return [msg] * n


# ----------------------------------------------------------------------- the timer value


@pytest.mark.parametrize(("hold", "configured", "expected"), [
    (90, None, 480.0),    # 8 minutes is greater than 2 x 90 s
    (300, None, 600.0),   # 2 x the hold time is greater
    (0, None, 480.0),     # no hold time: the 8 minutes
    (90, 20, 20.0),       # configured
    (90, 0, 0.0),         # off
])
def test_send_hold_time_value(hold: int, configured: int | None, expected: float) -> None:
    a, _ = established(hold_time=hold, send_hold_time=configured)
    assert a.send_hold_time() == expected


def test_negative_send_hold_time_is_refused() -> None:
    with pytest.raises(ValueError, match="send_hold_time"):
        cfg(65001, ID_A, 65002, send_hold_time=-1)


# ----------------------------------------------------------------------- pure session


def tick(a: Session, b: Session, t: float) -> None:
    """Both sides' timers at `t` (KEEPALIVEs both ways: no receive hold timer fires)."""
    b.handle_timer(t)
    a.handle_timer(t)
    shuttle(a, b, t)


def test_no_timer_while_nothing_is_pending() -> None:
    a, b = established(send_hold_time=10)
    a.output_status(1.0, pending=False, progressed=True)
    keepalive = a.next_deadline()
    assert keepalive is not None and keepalive >= 22.5  # 30 s, jittered: no send hold
    a.output_status(1.0, pending=True, progressed=False)
    assert a.next_deadline() == pytest.approx(11.0)  # the send hold deadline comes first
    a.output_status(2.0, pending=False, progressed=True)  # drained: timer stopped
    for t in range(5, 200, 5):
        tick(a, b, float(t))
    assert st(a) is State.ESTABLISHED


def test_stuck_output_expires_with_code_8_and_restarts() -> None:
    a, b = established(send_hold_time=30, hold_time=90)
    a.output_status(10.0, pending=True, progressed=False)  # first seen stuck at t=10
    # The peer keeps sending KEEPALIVEs (its receive side works): our hold timer is fed,
    # the send hold timer is not.
    for t in (20.0, 30.0, 39.0):
        b.handle_timer(t)
        a.receive_data(b.data_to_send(), t)
        a.output_status(t, pending=True, progressed=False)
        a.handle_timer(t)
        assert st(a) is State.ESTABLISHED
    a.data_to_send()
    a.handle_timer(40.0)
    assert st(a) is State.IDLE
    (down,) = downs(a)
    assert down.reason is DownReason.SEND_HOLD_TIMER_EXPIRED
    assert down.notification == Notification(ErrorCode.SEND_HOLD_TIMER_EXPIRED, 0)
    assert "30s" in down.detail
    # Best effort NOTIFICATION code 8, then the close.
    (msg,) = messages(a.data_to_send())
    assert msg[0] == MessageType.NOTIFICATION and msg[1][:2] == bytes((8, 0))
    assert a.wants_close
    # Unlike a ManualStop the session comes back by itself (RFC 9687 §4 like §8 Event 10).
    deadline = a.next_deadline()
    assert deadline is not None
    a.handle_timer(deadline)
    assert st(a) is State.CONNECT


def test_progress_restarts_the_timer() -> None:
    a, b = established(send_hold_time=30)
    a.output_status(0.0, pending=True, progressed=False)
    for t in range(10, 200, 10):  # a slow reader: some progress every 10 s
        a.output_status(float(t), pending=True, progressed=True)
        tick(a, b, float(t))
        assert st(a) is State.ESTABLISHED
    # Then it stops reading for good: the last progress was at t=190.
    a.output_status(200.0, pending=True, progressed=False)
    tick(a, b, 219.0)
    assert st(a) is State.ESTABLISHED
    a.handle_timer(220.0)
    assert st(a) is State.IDLE
    assert downs(a)[0].reason is DownReason.SEND_HOLD_TIMER_EXPIRED


def test_disabled_send_hold_never_fires() -> None:
    a, _ = established(send_hold_time=0, hold_time=0)
    a.output_status(0.0, pending=True, progressed=False)
    assert a.next_deadline() is None
    a.handle_timer(1e9)
    assert st(a) is State.ESTABLISHED


# ----------------------------------------------------------------------- output queue cap


def test_queued_bytes_follow_the_queue() -> None:
    a, _ = established()
    msgs = updates(10)
    a.send_update_bytes(msgs, 1.0)
    assert a.queued_bytes == sum(map(len, msgs))
    first = a.data_to_send(len(msgs[0]))
    assert len(first) == len(msgs[0])
    assert a.queued_bytes == sum(map(len, msgs[1:]))
    a.data_to_send()
    assert a.queued_bytes == 0


def test_output_queue_over_the_cap_is_out_of_resources() -> None:
    msgs = updates(200)
    total = sum(map(len, msgs))
    a, b = established(max_output_queue=total - 1)
    a.send_update_bytes(msgs[:100], 5.0)  # under the cap: kept
    assert st(a) is State.ESTABLISHED and a.queued_bytes > 0
    a.send_update_bytes(msgs[100:], 6.0)  # one octet too many
    assert st(a) is State.IDLE
    assert a.queued_bytes == 0  # the backlog is released, not kept
    (down,) = downs(a)
    assert down.reason is DownReason.AUTOMATIC_STOP
    assert down.notification == Notification(ErrorCode.CEASE, CeaseSubcode.OUT_OF_RESOURCES)
    assert f"over the {total - 1}-octet cap" in down.detail
    # Only the Cease goes out (no UPDATE of the dropped backlog), then the close.
    (msg,) = messages(a.data_to_send())
    assert msg == (MessageType.NOTIFICATION, bytes((6, 8)))
    assert a.wants_close
    # The peer sees Cease/8 (a plain Cease: RFC 8538 §5 keeps Out of Resources soft).
    b.receive_data(encode_message(Notification(6, 8), DEFAULT), 6.0)
    assert [d.reason for d in downs(b)] == [DownReason.NOTIFICATION_RECEIVED]
    # The automatic restart follows after idle_hold_time.
    assert a.next_deadline() == pytest.approx(6.0 + a.config.idle_hold_time)


def test_queue_at_the_cap_is_kept() -> None:
    msgs = updates(50)
    a, _ = established(max_output_queue=sum(map(len, msgs)))
    a.send_update_bytes(msgs, 1.0)
    assert st(a) is State.ESTABLISHED


# ----------------------------------------------------------------------- the asyncio edge


async def _handshake(conn: socket.socket, loop: asyncio.AbstractEventLoop) -> None:
    """Be a minimal BGP speaker (AS 65002) on `conn` up to Established."""
    open_msg = Open(asn=65002, hold_time=90, router_id=ID_B, capabilities=())
    await loop.sock_sendall(conn, encode_message(open_msg, DEFAULT))
    await loop.sock_sendall(conn, encode_message(Keepalive(), DEFAULT))
    frames = FrameBuffer()
    got: list[int] = []
    while MessageType.KEEPALIVE not in got:
        data = await loop.sock_recv(conn, 65536)
        assert data, "roost closed during the handshake"
        frames.feed(data)
        while (frame := frames.next_frame()) is not None:
            got.append(frame[0])
            decode_message(frame[0], frame[1], DEFAULT)


@asynccontextmanager
async def stuck_peer(**kw: object) -> AsyncIterator[tuple[BgpPeer, Recorder, socket.socket]]:
    """roost's `BgpPeer` (config `kw`) Established with a loopback peer that completed the
    handshake and will read nothing more (a small receive window)."""
    loop = asyncio.get_running_loop()
    server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.setblocking(False)
    port = server.getsockname()[1]
    rec = Recorder()
    peer = BgpPeer(cfg(65001, ID_A, 65002, connect_retry_time=60, idle_hold_time=60, **kw),
                   TransportOptions("127.0.0.1", remote_port=port), rec)
    conns: list[socket.socket] = []
    try:
        await peer.start()
        conn, _ = await asyncio.wait_for(loop.sock_accept(server), 5)
        conns.append(conn)
        conn.setblocking(False)
        await _handshake(conn, loop)
        await wait_until(lambda: peer.established, what="Established")
        yield peer, rec, conn
    finally:
        await peer.stop(flush_timeout=0.1)
        for c in conns:
            c.close()
        server.close()


async def test_edge_tears_down_a_peer_that_stops_reading(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """A peer that completes the handshake, keeps sending KEEPALIVEs but never reads
    again: roost's writes stop making progress and the send hold timer (2 s here) ends
    the session; the connection is closed although its buffer cannot be flushed."""
    monkeypatch.setattr(transport, "CLOSE_TIMEOUT", 0.5)
    loop = asyncio.get_running_loop()
    async with stuck_peer(send_hold_time=2) as (peer, rec, conn):
        start = loop.time()
        # Much more than the socket buffers take: the writes must get stuck.
        peer.send(updates(250_000))
        keepalive = encode_message(Keepalive(), DEFAULT)
        while not rec.downs and loop.time() - start < 20:
            await loop.sock_sendall(conn, keepalive)  # our side of the session lives on
            await asyncio.sleep(0.2)
        assert rec.downs, "the session outlived its stuck peer"
        took = loop.time() - start
        (down,) = rec.downs
        assert down.reason is DownReason.SEND_HOLD_TIMER_EXPIRED
        assert 2.0 <= took < 10.0
        proto = peer.protocol
        assert proto is not None
        # Stuck buffer or not, the connection goes (aborted after CLOSE_TIMEOUT).
        assert await proto.wait_closed(3.0)
        assert peer.stats.write_pauses >= 1
        # The megabytes that could not be sent are released, not kept for the peer.
        assert proto.session.queued_bytes == 0


async def test_edge_output_queue_cap_ends_the_session(
        monkeypatch: pytest.MonkeyPatch) -> None:
    """Without the send hold timer, a peer that reads nothing while roost keeps queueing
    UPDATEs for it: at 1 MiB queued the session ends with Cease / Out of Resources
    instead of the queue growing on."""
    monkeypatch.setattr(transport, "CLOSE_TIMEOUT", 0.5)
    async with stuck_peer(send_hold_time=0, max_output_queue=1 << 20) as (peer, rec, _conn):
        chunk = updates(5_000)  # about 220 KB
        sent = 0
        while not rec.downs and sent < 200:
            peer.send(chunk)
            sent += 1
            await asyncio.sleep(0)
        assert rec.downs, "the queue grew past its cap"
        (down,) = rec.downs
        assert down.reason is DownReason.AUTOMATIC_STOP
        assert down.notification == Notification(ErrorCode.CEASE,
                                                 CeaseSubcode.OUT_OF_RESOURCES)
        # Stopped within a few chunks of the cap: kernel buffers plus 1 MiB, not 44 MB.
        assert sent * len(chunk) * len(chunk[0]) < 8 << 20
        proto = peer.protocol
        assert proto is not None and proto.session.queued_bytes == 0
        assert await proto.wait_closed(3.0)


def test_notification_data_layout() -> None:
    # Sanity for the integration tests: struct layout used by the Cease/1 checks.
    assert struct.pack("!HBI", 1, 1, 100).hex() == "00010100000064"
