"""One BGP connection's session, sans-I/O (h11 `Connection`, aioquic `QuicConnection`).

The session is driven by three kinds of input, each with the current time passed in:

* API calls: `start`, `stop`, `send_update*`, `send_end_of_rib`, `send_route_refresh`,
  `collision_dump`;
* the transport: `connection_made`, `connection_failed`, `connection_lost`, and
  `receive_data`, THE only entry of remote input (framing -> decode -> FSM; a
  `ProtocolError` becomes the matching RFC 4271 §8.1 event and so a NOTIFICATION);
* timers: `next_deadline()` says when to call `handle_timer(now)`.

It answers with `events()` (see `bgp.events`), `data_to_send()`, and two flags for the
adapter, `wants_connect` and `wants_close`. It never reads a clock, never touches a
socket, and draws RFC 4271 §10 jitter from the injected `random.Random`.

Which state follows which event is decided only by the table in `bgp.fsm`; this module
classifies inputs into events and implements the table's named actions.

Adapter contract (what `bgp.aio` relies on):

* After every call, write `data_to_send()`, then close the transport if `wants_close`,
  then start a connection if `wants_connect` and none is in flight (`connect_attempts`
  grows by one for every new attempt the FSM asks for: abandon an older attempt), then
  re-arm one timer at `next_deadline()`.
* `connection_made(now, outgoing)` once per TCP connection. A session holds one
  connection: while `connected` is True a second connection needs its own `Session`
  (RFC 4271 §6.8 collision; see `bgp.collision`), else `LocalUsageError`.
* Once `wants_close` is set the session considers the connection gone: later input on
  it is ignored and a later `connection_lost()` is a no-op.
* Call `start()` before handing a session a connection; an Idle session refuses it.
* Report what the transport does with our bytes, `output_status(now, pending=...,
  progressed=...)`, after writing and before `handle_timer`: the RFC 9687 send hold
  timer runs on it.
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address
from typing import Final

from bgp.errors import LocalUsageError, ProtocolError
from bgp.events import (
    BgpEvent,
    EndOfRibReceived,
    Established,
    OpenReceived,
    RouteRefreshReceived,
    SessionDown,
    StateChanged,
    UpdateReceived,
)
from bgp.fsm import FSM_ERROR_SUBCODE, Action, DownReason, Event, State, transition
from bgp.graceful import hard_reset_notification, long_lived_capability
from bgp.types import (
    BGP_VERSION,
    IPV4_UNICAST,
    CeaseSubcode,
    ErrorCode,
    Family,
    MessageType,
    OpenError,
    RouteRefreshSubtype,
)
from bgp.wire.capabilities import (
    AddPath,
    AddPathFamily,
    Capability,
    ExtendedMessageCap,
    FourOctetAs,
    GracefulRestart,
    Multiprotocol,
    RouteRefreshCap,
)
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_message, encode_message
from bgp.wire.model import (
    DEFAULT,
    Keepalive,
    Message,
    Negotiated,
    Notification,
    Open,
    RouteRefresh,
    Update,
    negotiate,
)
from bgp.wire.packing import end_of_rib

__all__ = ["LARGE_HOLD_TIME", "Session", "SessionConfig"]

#: RFC 4271 §8.2.2 (Connect, Event 16/17): "sets the HoldTimer to a large value"; "A
#: HoldTimer value of 4 minutes is suggested."
LARGE_HOLD_TIME: Final = 240.0

#: RFC 4271 §10: "the base value for each of these timers [ConnectRetryTimer,
#: KeepaliveTimer, ...] is multiplied by a random factor which is uniformly distributed
#: in the range from 0.75 to 1.0".
JITTER_LOW: Final = 0.75
JITTER_HIGH: Final = 1.0


@dataclass(frozen=True, slots=True)
class SessionConfig:
    """What one neighbour session needs to know; validated on construction."""

    local_asn: int
    router_id: IPv4Address
    peer_asn: int | None  # None: accept any AS (dynamic peers); else OPEN must match
    peer_address: str = ""  # for reasons/logs only
    hold_time: int = 90  # 0 or >= 3 (RFC 4271 §4.2); 0 disables keepalives and hold timer
    keepalive_time: int | None = None  # default hold/3
    connect_retry_time: float = 5.0
    passive: bool = False
    families: tuple[Family, ...] = (IPV4_UNICAST,)
    addpath: tuple[AddPathFamily, ...] = ()
    graceful_restart: GracefulRestart | None = None
    # RFC 4724 §4.1: the capability for OPENs sent before `restart_window_until` (the
    # restarting speaker's window: Restart State bit set); `graceful_restart` after it.
    restart_window_gr: GracefulRestart | None = None
    restart_window_until: float = 0.0
    # RFC 9494: our Long-lived Stale Time, advertised in an LLGR capability next to the
    # GR capability (same families and F bits); 0: no LLGR capability.
    long_lived_stale_time: int = 0
    route_refresh: bool = True
    extended_message: bool = True
    four_octet_as: bool = True
    idle_hold_time: float = 1.0  # delay before the automatic restart after an error
    # RFC 9687: None = the recommended max(8 minutes, 2 x hold time); 0 disables it.
    send_hold_time: float | None = None
    # Octets of UPDATE messages that may wait for the peer to read them; past it the
    # session ends with Cease / Out of Resources (RFC 4486 §4). None: no cap.
    max_output_queue: int | None = None

    def __post_init__(self) -> None:
        if not 1 <= self.local_asn <= 0xFFFFFFFF:
            raise ValueError(f"local AS {self.local_asn} out of range")
        if not self.four_octet_as and self.local_asn > 0xFFFF:
            raise ValueError("a 4-octet local AS needs four_octet_as (RFC 6793)")
        if self.peer_asn is not None and not 1 <= self.peer_asn <= 0xFFFFFFFF:
            raise ValueError(f"peer AS {self.peer_asn} out of range")
        # RFC 4271 §4.2: "The Hold Time MUST be either zero or at least three seconds."
        if not (self.hold_time == 0 or 3 <= self.hold_time <= 0xFFFF):
            raise ValueError(f"hold time {self.hold_time}: must be 0 or 3..65535")
        if self.keepalive_time is not None and self.keepalive_time < 1:
            raise ValueError("keepalive_time must be >= 1 (use hold_time 0 for none)")
        if self.connect_retry_time <= 0:
            raise ValueError("connect_retry_time must be > 0")
        if self.idle_hold_time < 0:
            raise ValueError("idle_hold_time must be >= 0")
        if int(self.router_id) == 0:
            raise ValueError("router id 0.0.0.0 is not a valid BGP Identifier (RFC 6286)")
        if self.send_hold_time is not None and self.send_hold_time < 0:
            raise ValueError("send_hold_time must be >= 0 (0 disables it)")
        if self.max_output_queue is not None and self.max_output_queue < 1:
            raise ValueError("max_output_queue must be >= 1 octet")
        if not self.families:
            raise ValueError("at least one address family is required")
        if not 0 <= self.long_lived_stale_time <= 0xFFFFFF:
            raise ValueError(f"long-lived stale time {self.long_lived_stale_time}: "
                             "must be 0..16777215")

    @property
    def is_ibgp(self) -> bool:
        return self.peer_asn == self.local_asn

    def build_open(self, now: float | None = None) -> Open:
        """Our OPEN with its capabilities (RFC 5492); `now` picks the graceful restart
        capability of the restart window."""
        caps: list[Capability] = [Multiprotocol(f) for f in self.families]
        if self.route_refresh:
            caps.append(RouteRefreshCap())
        if self.extended_message:
            caps.append(ExtendedMessageCap())
        if self.four_octet_as:
            caps.append(FourOctetAs(self.local_asn))
        if self.addpath:
            caps.append(AddPath(self.addpath))
        gr = self.graceful_restart
        if (
            self.restart_window_gr is not None
            and now is not None
            and now < self.restart_window_until
        ):
            gr = self.restart_window_gr
        if gr is not None:
            caps.append(gr)
            if self.long_lived_stale_time:
                caps.append(long_lived_capability(gr, self.long_lived_stale_time))
        return Open(
            asn=self.local_asn,
            hold_time=self.hold_time,
            router_id=self.router_id,
            capabilities=tuple(caps),
        )


class _Timer(Enum):
    """Deadlines; on a tie the earlier member fires first."""

    HOLD = "hold"
    KEEPALIVE = "keepalive"
    CONNECT_RETRY = "connect_retry"
    IDLE_HOLD = "idle_hold"
    SEND_HOLD = "send_hold"  # RFC 9687


_TIMER_ORDER: Final = {t: i for i, t in enumerate(_Timer)}

# States in which a TCP connection exists and messages are read.
_MESSAGE_STATES: Final = frozenset({State.OPEN_SENT, State.OPEN_CONFIRM, State.ESTABLISHED})

# A ProtocolError raised while decoding becomes the RFC 4271 §8.1.5 event for its code.
_ERROR_EVENTS: Final[Mapping[int, Event]] = {
    ErrorCode.MESSAGE_HEADER: Event.BGP_HEADER_ERR,  # Event 21
    ErrorCode.OPEN_MESSAGE: Event.BGP_OPEN_MSG_ERR,  # Event 22
    ErrorCode.UPDATE_MESSAGE: Event.UPDATE_MSG_ERR,  # Event 28
    ErrorCode.ROUTE_REFRESH: Event.ROUTE_REFRESH_MSG_ERR,  # RFC 7313 §5
}
_ERROR_EVENTS_BY_TYPE: Final[Mapping[int, Event]] = {
    MessageType.OPEN: Event.BGP_OPEN_MSG_ERR,
    MessageType.UPDATE: Event.UPDATE_MSG_ERR,
    MessageType.ROUTE_REFRESH: Event.ROUTE_REFRESH_MSG_ERR,
}


class Session:
    """One BGP session over (at most) one TCP connection at a time."""

    def __init__(self, config: SessionConfig, rng: random.Random | None = None) -> None:
        self.config = config
        self._rng = rng if rng is not None else random.Random()
        self.state: State = State.IDLE
        self.negotiated: Negotiated | None = None
        self.local_open: Open | None = None
        self.remote_open: Open | None = None
        #: True when this connection was initiated locally (None before any connection).
        self.outgoing: bool | None = None
        #: The adapter should open a TCP connection now (Connect state).
        self.wants_connect = False
        #: The adapter should close the TCP connection once data_to_send() is flushed.
        self.wants_close = False
        #: Grows by one for every connection attempt the FSM asks for.
        self.connect_attempts = 0
        #: The last SessionDown emitted (for `show neighbor`).
        self.last_down: SessionDown | None = None
        self._connected = False
        self._frames = FrameBuffer()
        self._control = bytearray()
        self._updates: deque[bytes] = deque()
        self._queued = 0  # octets in _updates
        self._events: list[BgpEvent] = []
        self._deadlines: dict[_Timer, float] = {}
        # Context of the event being dispatched.
        self._now = 0.0
        self._event = Event.MANUAL_START
        self._message: Message | None = None
        self._to_send: Notification | None = None
        self._down_notification: Notification | None = None
        self._detail = ""

    # ------------------------------------------------------------------ inspection

    @property
    def connected(self) -> bool:
        """A TCP connection is attached and not being closed."""
        return self._connected

    def next_deadline(self) -> float | None:
        """When `handle_timer` must next be called (aioquic `get_timer`), or None."""
        return min(self._deadlines.values()) if self._deadlines else None

    def events(self) -> list[BgpEvent]:
        """Drain the events emitted since the last call."""
        out, self._events = self._events, []
        return out

    def has_pending_updates(self) -> bool:
        return bool(self._updates)

    @property
    def queued_bytes(self) -> int:
        """Octets of UPDATE (End-of-RIB, ROUTE-REFRESH) messages not yet handed out."""
        return self._queued

    def send_hold_time(self) -> float:
        """RFC 9687 §3: "the suggested default value for the SendHoldTime is 8 minutes or
        2 times the negotiated HoldTime, whichever is greater"; 0 when disabled."""
        configured = self.config.send_hold_time
        if configured is not None:
            return configured
        hold = self.negotiated.hold_time if self.negotiated else self.config.hold_time
        return max(480.0, 2.0 * hold)

    def data_to_send(self, limit: int | None = None) -> bytes:
        """Bytes to write: control messages (OPEN, KEEPALIVE, NOTIFICATION) FIRST, whole,
        whatever the UPDATE backlog, so that KEEPALIVEs are never starved (the peer's hold
        timer does not care how many routes we are sending). Then queued UPDATE (and
        End-of-RIB / ROUTE-REFRESH) messages, never split, of at most `limit` octets in
        total but at least one message when `limit` > 0; all of them when `limit` is None.
        """
        out = bytearray(self._control)
        self._control.clear()
        updates = self._updates
        if not updates or not self._connected or self.state is not State.ESTABLISHED:
            return bytes(out)
        if limit is None:
            out += b"".join(updates)
            updates.clear()
            self._queued = 0
            return bytes(out)
        taken = 0
        while updates and limit > 0:
            size = len(updates[0])
            if taken and taken + size > limit:
                break
            out += updates.popleft()
            taken += size
        self._queued -= taken
        return bytes(out)

    # ------------------------------------------------------------------ API calls

    def start(self, now: float) -> None:
        """ManualStart (Event 1), or ManualStart_with_PassiveTcpEstablishment (Event 4)
        when the session is passive. Ignored unless Idle (§8.2.2)."""
        event = (
            Event.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT
            if self.config.passive
            else Event.MANUAL_START
        )
        self._dispatch(event, now)

    def stop(
        self,
        now: float,
        subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        detail: str = "",
        data: bytes = b"",
    ) -> None:
        """ManualStop (Event 2): Cease NOTIFICATION with `subcode` (and `data`, e.g. the
        RFC 4486 §4 AFI/SAFI/limit of Maximum Number of Prefixes Reached) when connected
        (with `detail` as the RFC 8203 shutdown communication for subcodes 2 and 4), then
        Idle with no automatic restart."""
        if detail and subcode in (
            CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
            CeaseSubcode.ADMINISTRATIVE_RESET,
        ):
            # RFC 8203 §2 (length extended to 255 by RFC 9003): a length octet, then UTF-8.
            text = detail.encode("utf-8")[:255]
            data = bytes((len(text),)) + text
        # RFC 8538 §3: with the N bit negotiated, a Cease that must end the session for
        # good (and so the peer's copy of our routes) goes out as a Hard Reset.
        self._to_send = hard_reset_notification(self.negotiated, subcode, data)
        self._dispatch(Event.MANUAL_STOP, now, detail=detail or "administrative stop")

    def collision_dump(self, now: float) -> None:
        """OpenCollisionDump (Event 23): Cease / Connection Collision Resolution (RFC 4486
        §4 subcode 7) and close; no automatic restart (the other connection lives on)."""
        self._to_send = Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        self._dispatch(Event.OPEN_COLLISION_DUMP, now, detail="connection collision resolution")

    def automatic_stop(self, now: float, subcode: int, detail: str, data: bytes = b"") -> None:
        """AutomaticStop (Event 8): roost ends the session itself with Cease / `subcode`;
        Idle, then the automatic restart after `idle_hold_time`."""
        self._to_send = hard_reset_notification(self.negotiated, subcode, data)
        self._dispatch(Event.AUTOMATIC_STOP, now, detail=detail)

    def send_update_bytes(self, messages: Iterable[bytes], now: float | None = None) -> None:
        """Queue pre-encoded UPDATE messages (encoded once per update group). Past
        `max_output_queue` queued octets the session ends instead (Out of Resources);
        `now` is the time for that (default: the time of the last input)."""
        self._require_established("send UPDATEs")
        for msg in messages:
            self._updates.append(msg)
            self._queued += len(msg)
        self._check_queue(now)

    def send_update(self, update: Update, now: float | None = None) -> None:
        ctx = self._require_established("send UPDATEs")
        self.send_update_bytes((encode_message(update, ctx),), now)

    def send_end_of_rib(self, family: Family, now: float | None = None) -> None:
        """Queue the End-of-RIB marker (RFC 4724 §2) behind the queued UPDATEs."""
        ctx = self._require_established("send End-of-RIB")
        self.send_update_bytes((end_of_rib(family, ctx),), now)

    def output_status(self, now: float, *, pending: bool, progressed: bool) -> None:
        """What the adapter sees of the transport (only it can see write progress):
        `pending` - bytes of ours wait in the transport, unwritten; `progressed` - some
        were written since the last call.

        RFC 9687 §3: the SendHoldTimer restarts whenever the peer takes some of our data.
        It runs (OpenSent, OpenConfirm, Established) only while bytes are pending: with
        nothing to write nothing can be stuck, so roost starts it at the first report of
        pending bytes and stops it when the transport is empty."""
        if not pending or not self._connected or self.state not in _MESSAGE_STATES:
            self._deadlines.pop(_Timer.SEND_HOLD, None)
            return
        hold = self.send_hold_time()
        if hold <= 0:
            self._deadlines.pop(_Timer.SEND_HOLD, None)
        elif progressed or _Timer.SEND_HOLD not in self._deadlines:
            self._deadlines[_Timer.SEND_HOLD] = now + hold

    def _check_queue(self, now: float | None) -> None:
        cap = self.config.max_output_queue
        if cap is None or self._queued <= cap:
            return
        queued = self._queued
        # RFC 4486 §4: Cease subcode 8 "Out of Resources": the peer reads too slowly for
        # what we have to send; end the session rather than let its backlog grow.
        self.automatic_stop(
            self._now if now is None else now,
            CeaseSubcode.OUT_OF_RESOURCES,
            f"output queue {queued} octets over the {cap}-octet cap",
        )

    def send_route_refresh(self, family: Family, subtype: int = 0) -> None:
        """Queue a ROUTE-REFRESH. It goes behind the queued UPDATEs: BoRR/EoRR (RFC 7313
        §4) must bracket the re-advertisement they announce."""
        ctx = self._require_established("send ROUTE-REFRESH")
        # RFC 2918 §4: "A BGP speaker may send a ROUTE-REFRESH message to its peer only if
        # it has received the Route Refresh Capability from its peer."
        if not any(isinstance(c, RouteRefreshCap) for c in ctx.remote_capabilities):
            raise LocalUsageError("the peer did not advertise the Route Refresh capability")
        if family not in ctx.families:
            raise LocalUsageError(f"{family} was not negotiated")
        msg = encode_message(RouteRefresh(family, subtype), ctx)
        self._updates.append(msg)
        self._queued += len(msg)

    def _require_established(self, what: str) -> Negotiated:
        if self.state is not State.ESTABLISHED or self.negotiated is None:
            raise LocalUsageError(f"cannot {what} in state {self.state.value}")
        return self.negotiated

    # ------------------------------------------------------------------ transport

    def connection_made(self, now: float, outgoing: bool) -> None:
        """Tcp_CR_Acked (Event 16, `outgoing`) or TcpConnectionConfirmed (Event 17)."""
        if self._connected:
            raise LocalUsageError(
                "session already has a connection; a second one needs its own Session "
                "(RFC 4271 §6.8 collision, see bgp.collision)"
            )
        self._connected = True
        self.outgoing = outgoing
        self.wants_close = False
        self.wants_connect = False
        # A fresh connection starts from nothing: no stale bytes in either direction.
        self._control.clear()
        self._updates.clear()
        self._queued = 0
        self._frames = FrameBuffer()
        self.remote_open = None
        self.negotiated = None
        event = Event.TCP_CR_ACKED if outgoing else Event.TCP_CONNECTION_CONFIRMED
        self._dispatch(event, now)

    def connection_failed(self, now: float) -> None:
        """TcpConnectionFails (Event 18) for an outgoing attempt that did not connect."""
        self.wants_connect = False
        if self._connected:
            self.connection_lost(now)
            return
        self._dispatch(Event.TCP_CONNECTION_FAILS, now, detail="TCP connection failed")

    def connection_lost(self, now: float) -> None:
        """TcpConnectionFails (Event 18) for the attached connection (closed by the peer or
        by the network). A no-op when no connection is attached (e.g. after wants_close)."""
        self.wants_close = False
        if not self._connected:
            return
        self._connected = False
        self._dispatch(Event.TCP_CONNECTION_FAILS, now, detail="TCP connection closed")

    def receive_data(self, data: bytes, now: float) -> None:
        """All remote input enters here: framing -> decode -> FSM event."""
        if not self._connected or self.state not in _MESSAGE_STATES:
            return  # nothing to read (Idle refused it, or the connection is being closed)
        self._frames.feed(data)
        while self._connected and self.state in _MESSAGE_STATES:
            try:
                frame = self._frames.next_frame()
            except ProtocolError as err:
                # RFC 4271 §6.1 header errors: Event 21. The stream cannot be resynced.
                self._dispatch_error(Event.BGP_HEADER_ERR, err, now)
                return
            if frame is None:
                return
            msg_type, body = frame
            try:
                msg = decode_message(msg_type, body, self.negotiated or DEFAULT)
            except ProtocolError as err:
                # The codec raises only what it cannot recover from (RFC 7606 session
                # reset); weaker actions come back inside the decoded Update.
                event = _ERROR_EVENTS.get(err.code) or _ERROR_EVENTS_BY_TYPE.get(
                    msg_type, Event.BGP_HEADER_ERR
                )
                self._dispatch_error(event, err, now)
                return
            self._receive_message(msg, now)

    def _receive_message(self, msg: Message, now: float) -> None:
        if isinstance(msg, Update):
            # RFC 7606: only "session reset" errors raise; treat-as-withdraw and
            # attribute-discard UPDATEs arrive here and carry their error (Event 27).
            self._dispatch(Event.UPDATE_MSG, now, message=msg)
        elif isinstance(msg, Keepalive):
            self._dispatch(Event.KEEPALIVE_MSG, now, message=msg)
        elif isinstance(msg, Open):
            if self.state is State.OPEN_SENT:
                err = self.check_open(msg)
                if err is not None:
                    self._dispatch_error(Event.BGP_OPEN_MSG_ERR, err, now)
                    return
            self._dispatch(Event.BGP_OPEN, now, message=msg)
        elif isinstance(msg, Notification):
            # RFC 4271 §8.1.5 Event 24 NotifMsgVerErr: "An event is generated when a
            # NOTIFICATION message with "version error" is received."
            version_error = (
                msg.code == ErrorCode.OPEN_MESSAGE
                and msg.subcode == OpenError.UNSUPPORTED_VERSION_NUMBER
            )
            event = Event.NOTIF_MSG_VER_ERR if version_error else Event.NOTIF_MSG
            self._dispatch(event, now, message=msg, detail=f"received {msg.describe()}")
        else:
            self._dispatch(Event.ROUTE_REFRESH_MSG, now, message=msg)

    def check_open(self, msg: Open) -> ProtocolError | None:
        """RFC 4271 §6.2 OPEN checks against our configuration (the codec already checked
        the format, version, hold time range and a zero identifier)."""
        if msg.version != BGP_VERSION:
            # "If the version number in the Version field of the received OPEN message is
            # not supported, then the Error Subcode MUST be set to Unsupported Version
            # Number. The Data field is a 2-octet unsigned integer, which indicates the
            # largest, locally-supported version number less than the version the remote
            # BGP peer bid".
            return ProtocolError(
                ErrorCode.OPEN_MESSAGE,
                OpenError.UNSUPPORTED_VERSION_NUMBER,
                BGP_VERSION.to_bytes(2, "big"),
                reason=f"version {msg.version}",
            )
        # "If the Autonomous System field of the OPEN message is unacceptable, then the
        # Error Subcode MUST be set to Bad Peer AS." (`asn` is the RFC 6793 4-octet AS.)
        if self.config.peer_asn is not None and msg.asn != self.config.peer_asn:
            return ProtocolError(
                ErrorCode.OPEN_MESSAGE,
                OpenError.BAD_PEER_AS,
                reason=f"peer AS {msg.asn}, expected {self.config.peer_asn}",
            )
        # "If the Hold Time field of the OPEN message is unacceptable, then the Error
        # Subcode MUST be set to Unacceptable Hold Time. An implementation MUST reject
        # Hold Time values of one or two seconds."
        if msg.hold_time in (1, 2):
            return ProtocolError(
                ErrorCode.OPEN_MESSAGE,
                OpenError.UNACCEPTABLE_HOLD_TIME,
                reason=f"hold time {msg.hold_time}",
            )
        # RFC 6286 §2.2: "If the BGP Identifier field of the OPEN message is zero, or if it
        # is the same as the BGP Identifier of the local BGP speaker and the message is
        # from an internal peer, then the Error Subcode is set to "Bad BGP Identifier"."
        if int(msg.router_id) == 0 or (
            msg.asn == self.config.local_asn and msg.router_id == self.config.router_id
        ):
            return ProtocolError(
                ErrorCode.OPEN_MESSAGE,
                OpenError.BAD_BGP_IDENTIFIER,
                msg.router_id.packed,
                reason=f"BGP Identifier {msg.router_id}",
            )
        return None

    # ------------------------------------------------------------------ timers

    def handle_timer(self, now: float) -> None:
        """Fire every deadline that has passed, earliest first: ConnectRetryTimer_Expires
        (9), HoldTimer_Expires (10), KeepaliveTimer_Expires (11); the idle-hold restart
        fires AutomaticStart (3), or AutomaticStart_with_PassiveTcpEstablishment (5) for
        passive sessions."""
        while self._deadlines:
            timer, when = min(self._deadlines.items(), key=lambda kv: (kv[1], _TIMER_ORDER[kv[0]]))
            if when > now:
                return
            del self._deadlines[timer]
            if timer is _Timer.HOLD:
                hold = self.negotiated.hold_time if self.negotiated else LARGE_HOLD_TIME
                self._dispatch(
                    Event.HOLD_TIMER_EXPIRES, now, detail=f"nothing received for {hold:g}s"
                )
            elif timer is _Timer.KEEPALIVE:
                self._dispatch(Event.KEEPALIVE_TIMER_EXPIRES, now)
            elif timer is _Timer.CONNECT_RETRY:
                self._dispatch(Event.CONNECT_RETRY_TIMER_EXPIRES, now)
            elif timer is _Timer.SEND_HOLD:
                self._dispatch(
                    Event.SEND_HOLD_TIMER_EXPIRES,
                    now,
                    detail=f"the peer read nothing for {self.send_hold_time():g}s",
                )
            else:
                self._dispatch(
                    Event.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT
                    if self.config.passive
                    else Event.AUTOMATIC_START,
                    now,
                )

    def _jittered(self, base: float) -> float:
        return base * self._rng.uniform(JITTER_LOW, JITTER_HIGH)

    # ------------------------------------------------------------------ dispatch

    def _dispatch_error(self, event: Event, err: ProtocolError, now: float) -> None:
        self._to_send = Notification.from_error(err)
        self._dispatch(event, now, detail=err.describe())

    def _dispatch(
        self, event: Event, now: float, *, message: Message | None = None, detail: str = ""
    ) -> None:
        tr = transition(self.state, event)
        old = self.state
        self._now = now
        self._event = event
        self._message = message
        self._down_notification = None
        self._detail = detail
        try:
            for action in tr.actions:
                _ACTIONS[action](self)
        finally:
            self._to_send = None
            self._message = None
        if tr.next_state is old:
            return
        self.state = tr.next_state
        if tr.next_state is not State.CONNECT:
            self.wants_connect = False
        self._events.append(StateChanged(old, tr.next_state))
        if tr.next_state is State.IDLE:
            # Every change into Idle emits exactly one SessionDown with its reason.
            down = SessionDown(
                tr.reason or DownReason.FSM_ERROR, self._down_notification, self._detail
            )
            self.last_down = down
            self._events.append(down)

    # ------------------------------------------------------------------ actions
    # One method per `bgp.fsm.Action`, in the order of the enum.

    def _initialize(self) -> None:
        self._deadlines.clear()
        self._frames = FrameBuffer()
        self._updates.clear()
        self._queued = 0
        self.negotiated = None
        self.remote_open = None
        self.local_open = self.config.build_open(self._now)

    def _start_connect_retry_timer(self) -> None:
        if self.config.passive:
            # Passive sessions never initiate (roost keeps the RFC's
            # PassiveTcpEstablishment for good): without a ConnectRetryTimer, Active never
            # moves to Connect.
            self._deadlines.pop(_Timer.CONNECT_RETRY, None)
            return
        self._deadlines[_Timer.CONNECT_RETRY] = self._now + self._jittered(
            self.config.connect_retry_time
        )

    def _stop_connect_retry_timer(self) -> None:
        self._deadlines.pop(_Timer.CONNECT_RETRY, None)

    def _connect(self) -> None:
        if self.config.passive:
            return
        self.wants_connect = True
        self.connect_attempts += 1

    def _send_open(self) -> None:
        if self.local_open is None:
            self.local_open = self.config.build_open(self._now)
        self._queue_control(self.local_open)

    def _set_large_hold_timer(self) -> None:
        self._deadlines[_Timer.HOLD] = self._now + LARGE_HOLD_TIME

    def _process_open(self) -> None:
        msg = self._message
        assert isinstance(msg, Open)
        if self.local_open is None:
            self.local_open = self.config.build_open(self._now)
        self.remote_open = msg
        # RFC 4271 §4.2: "the calculated value [of the Hold Timer] ... MUST be the smaller
        # of its configured Hold Time and the Hold Time received in the OPEN message."
        self.negotiated = negotiate(self.local_open, msg, self.config.keepalive_time)
        # RFC 8654 §4: once both advertised the capability, messages up to 65535 octets
        # may follow the OPEN.
        self._frames.max_len = self.negotiated.max_message_len
        self._events.append(OpenReceived(msg))

    def _send_keepalive(self) -> None:
        self._queue_control(Keepalive())

    def _start_keepalive_timer(self) -> None:
        keepalive = self.negotiated.keepalive_time if self.negotiated else 0
        # §8.2.2 Established: "restarts its KeepaliveTimer, unless the negotiated HoldTime
        # value is zero." (negotiate() makes keepalive 0 then.)
        if keepalive <= 0:
            self._deadlines.pop(_Timer.KEEPALIVE, None)
            return
        self._deadlines[_Timer.KEEPALIVE] = self._now + self._jittered(keepalive)

    def _restart_hold_timer(self) -> None:
        hold = self.negotiated.hold_time if self.negotiated else 0
        # §4.2: "If the value of the Hold Time field is zero, then periodic KEEPALIVE
        # messages MUST NOT be sent" and the HoldTimer does not run.
        if hold <= 0:
            self._deadlines.pop(_Timer.HOLD, None)
            return
        self._deadlines[_Timer.HOLD] = self._now + hold

    def _establish(self) -> None:
        assert self.negotiated is not None
        self._events.append(Established(self.negotiated))

    def _deliver_update(self) -> None:
        msg = self._message
        assert isinstance(msg, Update)
        family = msg.end_of_rib()
        if family is not None:
            self._events.append(EndOfRibReceived(family))
        else:
            self._events.append(UpdateReceived(msg))

    def _deliver_route_refresh(self) -> None:
        msg = self._message
        assert isinstance(msg, RouteRefresh)
        assert self.negotiated is not None
        # RFC 2918 §4: "If a BGP speaker receives from its peer a ROUTE-REFRESH message
        # with the <AFI, SAFI> that the speaker didn't advertise to the peer at the session
        # establishment time via capability advertisement, the speaker shall ignore such a
        # message."
        if msg.family not in self.negotiated.families:
            return
        # RFC 7313 §5: "When the BGP speaker receives a ROUTE-REFRESH message with a
        # "Message Subtype" field other than 0, 1, or 2, it MUST ignore the received
        # ROUTE-REFRESH message."
        if msg.subtype not in tuple(RouteRefreshSubtype):
            return
        self._events.append(RouteRefreshReceived(msg.family, msg.subtype))

    def _send_notification(self) -> None:
        notification = self._to_send
        assert notification is not None, f"{self._event.rfc_name} carries no NOTIFICATION"
        self._notify(notification)

    def _send_hold_timer_expired(self) -> None:
        # §6.5: "If a system does not receive successive KEEPALIVE, UPDATE, and/or
        # NOTIFICATION messages within the period specified in the Hold Time field of the
        # OPEN message, then the NOTIFICATION message with the Hold Timer Expired Error
        # Code is sent and the BGP connection is closed."
        self._notify(Notification(ErrorCode.HOLD_TIMER_EXPIRED))

    def _send_send_hold_timer_expired(self) -> None:
        # RFC 9687 §4: "(optionally) sends a NOTIFICATION message with the BGP Error Code
        # "Send Hold Timer Expired"": queued behind whatever is stuck; the adapter aborts
        # the connection if it cannot be flushed.
        self._notify(Notification(ErrorCode.SEND_HOLD_TIMER_EXPIRED))

    def _send_fsm_error(self) -> None:
        # RFC 6608 §4; the subcode names the state the unexpected event arrived in.
        self._notify(Notification(ErrorCode.FSM, FSM_ERROR_SUBCODE[self.state]))
        self._detail = f"unexpected {self._event.rfc_name} in {self.state.value}"

    def _record_notification(self) -> None:
        msg = self._message
        assert isinstance(msg, Notification)
        self._down_notification = msg

    def _drop_tcp(self) -> None:
        self.wants_connect = False
        if self._connected:
            self._connected = False
            self.wants_close = True

    def _release(self) -> None:
        # "releases all BGP resources": timers, unsent routes and unread input. Queued
        # control bytes stay: the NOTIFICATION must still go out before the close.
        self._deadlines.clear()
        self._updates.clear()
        self._queued = 0
        self._frames = FrameBuffer()

    def _start_idle_hold_timer(self) -> None:
        self._deadlines[_Timer.IDLE_HOLD] = self._now + self.config.idle_hold_time

    def _stop_idle_hold_timer(self) -> None:
        self._deadlines.pop(_Timer.IDLE_HOLD, None)

    def _notify(self, notification: Notification) -> None:
        # Only a connected session has anyone to tell (ManualStop in Connect sends none).
        if self._connected:
            self._queue_control(notification)
            self._down_notification = notification

    def _queue_control(self, msg: Message) -> None:
        self._control += encode_message(msg, self.negotiated or DEFAULT)

    def __repr__(self) -> str:
        peer = self.config.peer_address or str(self.config.peer_asn)
        return f"<Session {peer} {self.state.value}>"


_ACTIONS: Final[Mapping[Action, Callable[[Session], None]]] = {
    Action.INITIALIZE: Session._initialize,
    Action.START_CONNECT_RETRY_TIMER: Session._start_connect_retry_timer,
    Action.STOP_CONNECT_RETRY_TIMER: Session._stop_connect_retry_timer,
    Action.CONNECT: Session._connect,
    Action.SEND_OPEN: Session._send_open,
    Action.SET_LARGE_HOLD_TIMER: Session._set_large_hold_timer,
    Action.PROCESS_OPEN: Session._process_open,
    Action.SEND_KEEPALIVE: Session._send_keepalive,
    Action.START_KEEPALIVE_TIMER: Session._start_keepalive_timer,
    Action.RESTART_HOLD_TIMER: Session._restart_hold_timer,
    Action.ESTABLISH: Session._establish,
    Action.DELIVER_UPDATE: Session._deliver_update,
    Action.DELIVER_ROUTE_REFRESH: Session._deliver_route_refresh,
    Action.SEND_NOTIFICATION: Session._send_notification,
    Action.SEND_HOLD_TIMER_EXPIRED: Session._send_hold_timer_expired,
    Action.SEND_SEND_HOLD_TIMER_EXPIRED: Session._send_send_hold_timer_expired,
    Action.SEND_FSM_ERROR: Session._send_fsm_error,
    Action.RECORD_NOTIFICATION: Session._record_notification,
    Action.DROP_TCP: Session._drop_tcp,
    Action.RELEASE: Session._release,
    Action.START_IDLE_HOLD_TIMER: Session._start_idle_hold_timer,
    Action.STOP_IDLE_HOLD_TIMER: Session._stop_idle_hold_timer,
}
