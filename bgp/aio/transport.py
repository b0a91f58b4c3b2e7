"""The asyncio adapter of one `Session`: bytes in, bytes out, one timer (aioquic style).

`SessionProtocol` is the only place where a `Session` meets the event loop. It lives as
long as its session, not as long as one TCP connection: the session's ConnectRetry and
IdleHold deadlines run while no connection exists, and all of the session's deadlines
share one `loop.call_at` handle, re-armed to `session.next_deadline()` after every input.
A TCP connection is attached by asyncio calling `connection_made(transport)` (for an
outgoing connect the protocol factory returns this object; an accepted connection is
handed over with `transport.set_protocol()`), and detached by `connection_lost`.

Writing: control bytes (OPEN, KEEPALIVE, NOTIFICATION, ROUTE-REFRESH) are written as soon
as the session produces them, whatever the transport's flow-control state. Queued UPDATE
bytes are written only while the transport is not paused, `write_chunk` octets per write
and at most `chunks_per_turn` writes per event-loop turn, so that a 100k-prefix dump
neither fills user-space buffers (a KEEPALIVE never waits behind megabytes) nor starves
other sessions on the loop.
"""

from __future__ import annotations

import asyncio
import logging
import struct
from collections.abc import Callable
from dataclasses import dataclass, field

from bgp.events import BgpEvent
from bgp.session import Session
from bgp.types import HEADER_LEN, MessageType

log = logging.getLogger(__name__)

WRITE_CHUNK = 64 * 1024
CHUNKS_PER_TURN = 4
#: How long a closing connection may take to flush (the last NOTIFICATION) before it is
#: aborted: a peer that stopped reading (RFC 9687) would keep it open forever.
CLOSE_TIMEOUT = 5.0

EventSink = Callable[["SessionProtocol", BgpEvent], None]
EventsSink = Callable[["SessionProtocol", list[BgpEvent]], None]
CloseSink = Callable[["SessionProtocol", "Exception | None"], None]
PumpSink = Callable[["SessionProtocol"], None]

_LEN_TYPE = struct.Struct("!HB")


class MessageCounter:
    """Counts BGP messages in a byte stream by walking the headers (no decoding).

    Cheap enough for every read and write: one `struct` unpack per message. Keeps the
    unread part of a split header/body across calls."""

    __slots__ = ("_head", "_skip", "by_type", "total")

    def __init__(self) -> None:
        self.total = 0
        self.by_type: dict[int, int] = {}
        self._skip = 0  # body octets of the current message still to come
        self._head = b""  # partial header

    def reset(self) -> None:
        """Forget a partial message (a new connection starts on a boundary)."""
        self._skip = 0
        self._head = b""

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        view = memoryview(data)
        pos = 0
        end = len(view)
        if self._skip:
            step = min(self._skip, end)
            self._skip -= step
            pos = step
        if self._head:
            need = HEADER_LEN - len(self._head)
            self._head += bytes(view[pos : pos + need])
            pos += need
            if len(self._head) < HEADER_LEN:
                return
            self._count(self._head)
            self._head, head = b"", self._head
            length = _LEN_TYPE.unpack_from(head, 16)[0]
            skip = max(length - HEADER_LEN, 0)
            step = min(skip, end - pos)
            self._skip = skip - step
            pos += step
        by_type = self.by_type
        while pos < end:
            if end - pos < HEADER_LEN:
                self._head = bytes(view[pos:end])
                return
            length, msg_type = _LEN_TYPE.unpack_from(view, pos + 16)
            self.total += 1
            by_type[msg_type] = by_type.get(msg_type, 0) + 1
            if length < HEADER_LEN:
                return  # garbage: the session will reset; stop counting this stream
            if pos + length > end:
                self._skip = pos + length - end
                return
            pos += length

    def _count(self, head: bytes) -> None:
        msg_type = head[18]
        self.total += 1
        self.by_type[msg_type] = self.by_type.get(msg_type, 0) + 1

    def count(self, msg_type: int) -> int:
        return self.by_type.get(msg_type, 0)


@dataclass(slots=True)
class TransportStats:
    """Byte and message counters of one `SessionProtocol`, over all its connections."""

    messages_in: MessageCounter = field(default_factory=MessageCounter)
    messages_out: MessageCounter = field(default_factory=MessageCounter)
    bytes_in: int = 0
    bytes_out: int = 0
    pauses: int = 0  # times the transport asked us to stop writing
    max_write_buffer: int = 0  # largest transport write-buffer size seen after a write


class SessionProtocol(asyncio.Protocol):
    """Drives one `Session`: feeds it received bytes and timer expiries, writes what it
    produces, hands its events to `on_event`, and closes the connection when the session
    asks for it (after flushing). `on_closed` is told when a connection goes away.

    With `on_events`, the events of one input (e.g. every UPDATE of one socket read) are
    handed over as one list, in order, instead of one `on_event` call each, so that the
    application can process them as a batch (`BgpPeer` -> `PeerHandler.on_updates`)."""

    def __init__(
        self,
        session: Session,
        on_event: EventSink,
        on_closed: CloseSink | None = None,
        *,
        on_pumped: PumpSink | None = None,
        on_events: EventsSink | None = None,
        loop: asyncio.AbstractEventLoop | None = None,
        write_chunk: int = WRITE_CHUNK,
        chunks_per_turn: int = CHUNKS_PER_TURN,
    ) -> None:
        self.session = session
        self.loop = loop or asyncio.get_running_loop()
        self.transport: asyncio.Transport | None = None
        self.stats = TransportStats()
        self._on_event = on_event
        self._on_closed = on_closed
        self._on_pumped = on_pumped
        self._on_events = on_events
        self._write_chunk = write_chunk
        self._chunks_per_turn = chunks_per_turn
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._paused = False
        self._closing = False
        self._flush_scheduled = False
        self._retired = False
        self._in_pump = False
        self._abort_later: asyncio.TimerHandle | None = None
        self._written_mark = 0  # bytes_out - write buffer at the last output check
        self.outgoing: bool | None = None
        self.closed_event = asyncio.Event()
        self.closed_event.set()

    # ------------------------------------------------------------------ asyncio.Protocol

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self._paused = False
        self._closing = False
        self.closed_event.clear()
        self.stats.messages_in.reset()
        self.stats.messages_out.reset()
        self._written_mark = self.stats.bytes_out
        # `outgoing` is set by whoever hands the transport over (connector or listener).
        outgoing = bool(self.outgoing)
        self.session.connection_made(self.loop.time(), outgoing)
        self.pump()

    def data_received(self, data: bytes) -> None:
        self.stats.bytes_in += len(data)
        self.stats.messages_in.feed(data)
        self.session.receive_data(data, self.loop.time())
        self.pump()

    def eof_received(self) -> bool | None:
        return False  # close our side too; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        if self._abort_later is not None:
            self._abort_later.cancel()
            self._abort_later = None
        self._paused = False
        self._closing = False
        self.closed_event.set()
        if not self._retired:
            self.session.connection_lost(self.loop.time())
            self.pump()
        if self._on_closed is not None:
            self._on_closed(self, exc)

    def pause_writing(self) -> None:
        self._paused = True
        self.stats.pauses += 1

    def resume_writing(self) -> None:
        self._paused = False
        self._schedule_flush()

    # ------------------------------------------------------------------ driving

    @property
    def connected(self) -> bool:
        return self.transport is not None and not self._closing

    @property
    def writing_paused(self) -> bool:
        return self._paused

    def pump(self) -> None:
        """After any input to the session: hand out events, write, close if asked, and
        re-arm the timer. Safe to call at any time (re-entrant calls are folded)."""
        if self._in_pump:
            return
        self._in_pump = True
        try:
            while True:
                # The handler may feed the session more input (send_update, stop, ...),
                # which can produce more events: loop until the session is quiet.
                events = self.session.events()
                if events and not self._retired and self._on_events is not None:
                    try:
                        self._on_events(self, events)
                    except Exception:
                        log.exception("event handler failed on %d event(s)", len(events))
                elif not self._retired:
                    for event in events:
                        try:
                            self._on_event(self, event)
                        except Exception:
                            log.exception("event handler failed on %r", event)
                self._write()
                if not events:
                    break
        finally:
            self._in_pump = False
        self._check_output()
        self._close_if_asked()
        self._arm_timer()
        if self._on_pumped is not None and not self._retired:
            self._on_pumped(self)

    def _write(self) -> None:
        transport = self.transport
        session = self.session
        if transport is None or self._closing:
            return
        # Control bytes first, always, even while paused (limit=0: no UPDATE bytes).
        control = session.data_to_send(0)
        if control:
            self._emit(transport, control)
        if self._paused or not session.has_pending_updates():
            return
        for _ in range(self._chunks_per_turn):
            chunk = session.data_to_send(self._write_chunk)
            if not chunk:
                return
            self._emit(transport, chunk)
            if self._paused or not session.has_pending_updates():
                return
        self._schedule_flush()  # more to write: continue on the next loop turn

    def _emit(self, transport: asyncio.Transport, data: bytes) -> None:
        self.stats.bytes_out += len(data)
        self.stats.messages_out.feed(data)
        transport.write(data)
        size = transport.get_write_buffer_size()
        if size > self.stats.max_write_buffer:
            self.stats.max_write_buffer = size

    def _schedule_flush(self) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            self.loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        self.pump()

    def _close_if_asked(self) -> None:
        transport = self.transport
        if transport is None or self._closing or not self.session.wants_close:
            return
        # The session queued its NOTIFICATION (if any) as control bytes, already written;
        # transport.close() flushes the write buffer before closing the socket, unless
        # the peer reads nothing: then abort after CLOSE_TIMEOUT.
        self._closing = True
        transport.close()
        if transport.get_write_buffer_size():
            self._abort_later = self.loop.call_later(CLOSE_TIMEOUT, self._abort_stuck, transport)

    def _abort_stuck(self, transport: asyncio.Transport) -> None:
        self._abort_later = None
        if self.transport is transport:
            log.info("aborting a connection whose peer reads nothing (%d octets unsent)",
                     transport.get_write_buffer_size())
            transport.abort()

    def _check_output(self) -> None:
        """RFC 9687 send hold: tell the session whether our bytes wait in the transport and
        whether any were written since the last check. Written = handed to the transport
        minus still buffered in it, so growth of the buffer is not mistaken for progress."""
        transport = self.transport
        if transport is None or self._closing:
            return
        pending = transport.get_write_buffer_size()
        written = self.stats.bytes_out - pending
        progressed = written > self._written_mark
        self._written_mark = written
        self.session.output_status(self.loop.time(), pending=pending > 0, progressed=progressed)

    def _arm_timer(self) -> None:
        when = None if self._retired else self.session.next_deadline()
        if self._timer is not None and self._timer_at != when:
            self._timer.cancel()
            self._timer = None
        if self._timer is None and when is not None:
            self._timer = self.loop.call_at(when, self._handle_timer)
        self._timer_at = when

    def _handle_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self._check_output()  # a send hold deadline holds only if nothing moved meanwhile
        self.session.handle_timer(self.loop.time())
        self.pump()

    # ------------------------------------------------------------------ owner API

    def attach(self, transport: asyncio.Transport, outgoing: bool) -> None:
        """Take over an already connected transport (an accepted connection)."""
        self.outgoing = outgoing
        transport.set_protocol(self)
        self.connection_made(transport)

    def retire(self) -> None:
        """This session is finished (collision loser, peer removed): stop its timer and
        stop passing its events on; a connection still open closes once flushed."""
        self._retired = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._timer_at = None
        self.session.events()  # nobody listens any more
        self._write()  # a final NOTIFICATION (collision Cease) still goes out
        self._close_if_asked()

    def abort(self) -> None:
        """Drop the connection at once, without flushing."""
        if self.transport is not None:
            self.transport.abort()

    async def wait_closed(self, timeout: float) -> bool:
        """Wait until no connection is attached; False on timeout."""
        try:
            await asyncio.wait_for(self.closed_event.wait(), timeout)
        except TimeoutError:
            return False
        return True

    @property
    def write_buffer_size(self) -> int:
        return 0 if self.transport is None else self.transport.get_write_buffer_size()

    @property
    def stats_messages(self) -> tuple[int, int]:
        return self.stats.messages_in.total, self.stats.messages_out.total

    def keepalives(self) -> tuple[int, int]:
        """(KEEPALIVEs received, KEEPALIVEs sent) so far."""
        return (
            self.stats.messages_in.count(MessageType.KEEPALIVE),
            self.stats.messages_out.count(MessageType.KEEPALIVE),
        )
