"""SessionProtocol against a fake transport and a pure peer Session (no sockets)."""

from __future__ import annotations

import asyncio
import ipaddress
from typing import Any

import pytest

from bgp.aio.transport import MessageCounter, SessionProtocol
from bgp.events import BgpEvent, Established
from bgp.fsm import State
from bgp.session import Session, SessionConfig
from bgp.types import IPV4_UNICAST, MessageType
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.framing import encode_header
from bgp.wire.model import Negotiated
from bgp.wire.packing import pack_announcements
from bgp.wire.prefix import Nlri, Prefix


class FakeTransport(asyncio.Transport):
    """Records writes; the test decides when the "kernel" takes bytes."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[bytes] = []
        self.buffered = 0
        self.closed = False
        self.protocol: asyncio.BaseProtocol | None = None

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.writes.append(bytes(data))
        self.buffered += len(data)

    def take(self) -> bytes:
        out = b"".join(self.writes)
        self.writes.clear()
        self.buffered = 0
        return out

    def get_write_buffer_size(self) -> int:
        return self.buffered

    def close(self) -> None:
        self.closed = True

    def is_closing(self) -> bool:
        return self.closed

    def abort(self) -> None:
        self.closed = True

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        self.protocol = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        assert self.protocol is not None
        return self.protocol

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


def _config(asn: int, rid: str, peer: int, **kw: Any) -> SessionConfig:
    return SessionConfig(
        local_asn=asn, router_id=ipaddress.IPv4Address(rid), peer_asn=peer, hold_time=3, **kw
    )


class Harness:
    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.events: list[BgpEvent] = []
        self.session = Session(_config(65001, "10.0.0.1", 65002))
        self.proto = SessionProtocol(self.session, lambda p, e: self.events.append(e))
        self.peer = Session(_config(65002, "10.0.0.2", 65001, passive=True))
        self.transport = FakeTransport()
        self.t_established = 0.0

    def shuttle(self) -> None:
        now = self.loop.time()
        for _ in range(10):
            out = self.transport.take()
            if out:
                self.peer.receive_data(out, now)
            back = self.peer.data_to_send()
            if back:
                self.proto.data_received(back)
            if not out and not back:
                return

    def establish(self) -> None:
        now = self.loop.time()
        self.t_established = now
        self.session.start(now)
        self.peer.start(now)
        self.peer.connection_made(now, outgoing=False)
        self.proto.outgoing = True
        self.proto.connection_made(self.transport)
        self.shuttle()
        assert self.session.state is State.ESTABLISHED
        assert any(isinstance(e, Established) for e in self.events)


def _dump(n: int) -> list[bytes]:
    attrs = AttrSet.make(
        as_path=AsPath.sequence(65001), next_hop=ipaddress.IPv4Address("10.0.0.1")
    )
    nlri = [Nlri(Prefix(1, 32, 0x0A000000 + i)) for i in range(n)]
    return pack_announcements(IPV4_UNICAST, attrs, nlri, Negotiated(asn4=True))


async def test_one_timer_handle_rearmed() -> None:
    h = Harness()
    h.establish()
    timer = h.proto._timer
    assert timer is not None
    assert h.proto._timer_at == h.session.next_deadline()
    # Input that does not move the deadline keeps the same handle.
    h.proto.pump()
    assert h.proto._timer is timer


async def test_control_bytes_written_while_paused_updates_wait() -> None:
    h = Harness()
    h.establish()
    messages = _dump(20_000)
    assert len(messages) > 20
    h.proto.pause_writing()
    h.session.send_update_bytes(messages)
    h.proto.pump()
    assert h.transport.take() == b""  # paused: no UPDATE bytes
    # The keepalive timer fires while paused: the KEEPALIVE goes out at once.
    # (keepalive = hold/3 = 1 s, jittered 0.75-1.0; the hold timer (3 s) stays quiet)
    h.session.handle_timer(h.t_established + 1.05)
    h.proto.pump()
    written = h.transport.take()
    assert written == encode_header(MessageType.KEEPALIVE, b"")
    assert h.session.has_pending_updates()
    # Resume: bounded chunks, a bounded number per loop turn, then continue next turn.
    h.proto.resume_writing()
    await asyncio.sleep(0)
    first_turn = list(h.transport.writes)
    assert 1 <= len(first_turn) <= h.proto._chunks_per_turn
    assert all(len(w) <= h.proto._write_chunk + 4096 for w in first_turn)
    while h.session.has_pending_updates():
        await asyncio.sleep(0)
    counter = MessageCounter()
    counter.feed(h.transport.take())
    assert counter.count(MessageType.UPDATE) == len(messages)


async def test_close_after_flush_when_session_asks() -> None:
    h = Harness()
    h.establish()
    h.session.stop(h.loop.time())
    h.proto.pump()
    assert h.transport.closed
    counter = MessageCounter()
    counter.feed(h.transport.take())
    assert counter.count(MessageType.NOTIFICATION) == 1


@pytest.mark.parametrize("step", [1, 3, 7, 19, 20, 64, 1000])
def test_message_counter_any_split(step: int) -> None:
    stream = b"".join(
        [encode_header(MessageType.KEEPALIVE, b"")] * 3
        + [encode_header(MessageType.UPDATE, b"\x00" * 40)] * 2
        + [encode_header(MessageType.NOTIFICATION, b"\x06\x02")]
    )
    counter = MessageCounter()
    for i in range(0, len(stream), step):
        counter.feed(stream[i : i + step])
    assert counter.total == 6
    assert counter.count(MessageType.KEEPALIVE) == 3
    assert counter.count(MessageType.UPDATE) == 2
    assert counter.count(MessageType.NOTIFICATION) == 1
