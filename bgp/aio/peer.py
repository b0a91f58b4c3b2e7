"""One configured BGP neighbour on asyncio: connect, accept, collide, deliver.

`BgpPeer` owns the `Session` of one neighbour and the `SessionProtocol` that drives it.
It connects out whenever the session asks (`Session.wants_connect`, set by the FSM's
ConnectRetry logic), takes over connections that the `Listener` accepted from the
neighbour's address, and when two connections to the neighbour exist at once it runs the
RFC 4271 §6.8 collision resolution of `bgp.collision`: the second connection gets its own
`Session`, and once an OPEN has told us the peer's BGP Identifier one of the two is
dumped (Cease / Connection Collision Resolution) and the other one becomes *the* session.

The application sees only the session that survives, through a `PeerHandler`.

    app ──send(messages)──▶ BgpPeer ──▶ Session ◀── SessionProtocol ◀── TCP
    app ◀── PeerHandler.on_update(...) ◀── events ◀──┘
            (or BatchPeerHandler.on_updates: the UPDATEs of one read at once)
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import socket
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

from bgp.aio.sockopts import (
    GTSM_TTL,
    IpAddress,
    SocketOptionError,
    SocketOptions,
    apply_connection_options,
    make_client_socket,
    scope_index,
    set_md5sig,
    set_ttl,
)
from bgp.aio.transport import SessionProtocol
from bgp.collision import Initiator, resolve
from bgp.events import (
    BgpEvent,
    EndOfRibReceived,
    Established,
    OpenReceived,
    RouteRefreshReceived,
    SessionDown,
    UpdateReceived,
)
from bgp.fsm import State
from bgp.session import Session, SessionConfig
from bgp.types import BGP_PORT, CeaseSubcode, Family, MessageType
from bgp.wire.model import Negotiated, Update

log = logging.getLogger(__name__)

__all__ = [
    "BatchPeerHandler",
    "BgpPeer",
    "Listener",
    "PeerFactory",
    "PeerHandler",
    "PeerStats",
    "TransportOptions",
    "normalize_address",
]


def normalize_address(address: str | IpAddress) -> IpAddress:
    """The address a peer is known by: no scope, IPv4-mapped IPv6 unwrapped."""
    if isinstance(address, str):
        address = ipaddress.ip_address(address.split("%", 1)[0])
    if isinstance(address, ipaddress.IPv6Address):
        if address.ipv4_mapped is not None:
            return address.ipv4_mapped
        if address.scope_id:
            return ipaddress.IPv6Address(address.packed)
    return address


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """How to reach one neighbour over TCP.

    `ttl_security_hops` turns on GTSM (RFC 5082) and excludes `multihop_ttl`.
    `connect_timeout` bounds one connect attempt (the session's ConnectRetry timer
    restarts attempts anyway).
    """

    remote_address: str
    remote_port: int = BGP_PORT
    local_address: str | None = None
    password: str | None = field(default=None, repr=False)  # a secret: never in repr
    ttl_security_hops: int | None = None
    multihop_ttl: int | None = None
    connect_timeout: float = 5.0

    @property
    def socket_options(self) -> SocketOptions:
        return SocketOptions(
            password=self.password,
            ttl_security_hops=self.ttl_security_hops,
            multihop_ttl=self.multihop_ttl,
        )


class PeerHandler(Protocol):
    """What the application is told about one peer (only the surviving session)."""

    def on_established(self, peer: BgpPeer, negotiated: Negotiated) -> None: ...

    def on_update(self, peer: BgpPeer, update: Update) -> None: ...

    def on_end_of_rib(self, peer: BgpPeer, family: Family) -> None: ...

    def on_route_refresh(self, peer: BgpPeer, family: Family, subtype: int) -> None: ...

    def on_down(self, peer: BgpPeer, event: SessionDown) -> None: ...


@runtime_checkable
class BatchPeerHandler(PeerHandler, Protocol):
    """A `PeerHandler` that takes consecutive UPDATEs of one read as one list (in order;
    other events in between are delivered on their own, so ordering holds), so that it
    can propagate once per batch instead of once per UPDATE."""

    def on_updates(self, peer: BgpPeer, updates: list[Update]) -> None: ...


class NullHandler:
    """A `PeerHandler` that ignores everything."""

    def on_established(self, peer: BgpPeer, negotiated: Negotiated) -> None:
        pass

    def on_update(self, peer: BgpPeer, update: Update) -> None:
        pass

    def on_end_of_rib(self, peer: BgpPeer, family: Family) -> None:
        pass

    def on_route_refresh(self, peer: BgpPeer, family: Family, subtype: int) -> None:
        pass

    def on_down(self, peer: BgpPeer, event: SessionDown) -> None:
        pass


@dataclass(frozen=True, slots=True)
class PeerStats:
    """A snapshot of one peer's counters (all connections, dumped ones included)."""

    state: str
    messages_in: int
    messages_out: int
    updates_in: int
    updates_out: int
    keepalives_in: int
    keepalives_out: int
    notifications_in: int
    notifications_out: int
    opens_in: int
    opens_out: int
    route_refreshes_in: int
    route_refreshes_out: int
    bytes_in: int
    bytes_out: int
    write_pauses: int
    established_count: int
    uptime: float | None  # seconds in Established, None when not Established
    last_error: str | None
    last_down: SessionDown | None


_COUNTERS = (
    "messages_in",
    "messages_out",
    "updates_in",
    "updates_out",
    "keepalives_in",
    "keepalives_out",
    "notifications_in",
    "notifications_out",
    "opens_in",
    "opens_out",
    "route_refreshes_in",
    "route_refreshes_out",
    "bytes_in",
    "bytes_out",
    "write_pauses",
)


def _proto_counters(proto: SessionProtocol) -> dict[str, int]:
    st = proto.stats
    return {
        "messages_in": st.messages_in.total,
        "messages_out": st.messages_out.total,
        "updates_in": st.messages_in.count(MessageType.UPDATE),
        "updates_out": st.messages_out.count(MessageType.UPDATE),
        "keepalives_in": st.messages_in.count(MessageType.KEEPALIVE),
        "keepalives_out": st.messages_out.count(MessageType.KEEPALIVE),
        "notifications_in": st.messages_in.count(MessageType.NOTIFICATION),
        "notifications_out": st.messages_out.count(MessageType.NOTIFICATION),
        "opens_in": st.messages_in.count(MessageType.OPEN),
        "opens_out": st.messages_out.count(MessageType.OPEN),
        "route_refreshes_in": st.messages_in.count(MessageType.ROUTE_REFRESH),
        "route_refreshes_out": st.messages_out.count(MessageType.ROUTE_REFRESH),
        "bytes_in": st.bytes_in,
        "bytes_out": st.bytes_out,
        "write_pauses": st.pauses,
    }


class BgpPeer:
    """One neighbour: its session, its connections, and the collision arbiter.

    Lifecycle: `await start()` (or `start_now()` from a callback), `send(...)` while
    Established, `await stop()`. A stopped peer can be started again.
    """

    def __init__(
        self,
        config: SessionConfig,
        transport: TransportOptions,
        handler: PeerHandler | None = None,
        *,
        rng: random.Random | None = None,
        name: str | None = None,
    ) -> None:
        self.config = config
        self.options = transport
        self.handler: PeerHandler = handler if handler is not None else NullHandler()
        self.name = name or transport.remote_address
        self.remote = normalize_address(transport.remote_address)
        self._raw_remote = ipaddress.ip_address(transport.remote_address.split("%", 1)[0])
        self._scope = (
            scope_index(ipaddress.IPv6Address(transport.remote_address))
            if "%" in transport.remote_address
            else 0
        )
        self._sockopts = transport.socket_options
        self._rng = rng
        self._loop: asyncio.AbstractEventLoop | None = None
        self._proto: SessionProtocol | None = None  # the session the application sees
        self._second: SessionProtocol | None = None  # a colliding connection, until resolved
        self._connect_task: asyncio.Task[None] | None = None
        self._attempt = 0  # the session's connect_attempts value we last acted on
        #: RFC 4271 §6.8 collisions resolved (one connection dumped each time).
        self.collisions = 0
        self._started = False
        self._retired_totals: dict[str, int] = dict.fromkeys(_COUNTERS, 0)
        self._draining: set[SessionProtocol] = set()
        self._established_at: float | None = None
        self._established_count = 0
        self._last_error: str | None = None
        self._last_down: SessionDown | None = None

    def __repr__(self) -> str:
        return f"<BgpPeer {self.name} {self.state.value}>"

    # ------------------------------------------------------------------ properties

    @property
    def session(self) -> Session | None:
        """The current session (the one the application sees), if started."""
        return self._proto.session if self._proto is not None else None

    @property
    def protocol(self) -> SessionProtocol | None:
        """The current `SessionProtocol` (for diagnostics and tests)."""
        return self._proto

    @property
    def state(self) -> State:
        session = self.session
        return session.state if session is not None else State.IDLE

    @property
    def negotiated(self) -> Negotiated | None:
        session = self.session
        if session is None or session.state is not State.ESTABLISHED:
            return None
        return session.negotiated

    @property
    def established(self) -> bool:
        return self.state is State.ESTABLISHED

    @property
    def stats(self) -> PeerStats:
        totals = dict(self._retired_totals)
        for proto in (self._proto, self._second, *self._draining):
            if proto is not None:
                for key, value in _proto_counters(proto).items():
                    totals[key] += value
        uptime = None
        if self._established_at is not None and self.established:
            uptime = time.monotonic() - self._established_at
        return PeerStats(
            state=self.state.value,
            established_count=self._established_count,
            uptime=uptime,
            last_error=self._last_error,
            last_down=self._last_down,
            **totals,
        )

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Start the session: connect out now (unless passive) and accept connections."""
        self.start_now()

    def start_now(self) -> None:
        """`start()` for synchronous callers running on the event loop."""
        if self._started:
            return
        self._loop = asyncio.get_running_loop()
        self._started = True
        if self._proto is None:
            self._proto = self._new_protocol()
        self._proto.session.start(self._loop.time())
        self._proto.pump()

    async def stop(
        self,
        subcode: int = CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
        detail: str = "",
        flush_timeout: float = 1.0,
        data: bytes = b"",
    ) -> None:
        """ManualStop: send Cease (`subcode`, with `data`; `detail` becomes the RFC 8203
        shutdown communication for subcodes 2 and 4) on every open connection, wait up to
        `flush_timeout` for it to be written and the connection closed, then drop it.
        The peer stays registered and can be started again."""
        if not self._started:
            return
        self._started = False
        loop = self._loop_()
        self._cancel_connect()
        protos = [p for p in (self._proto, self._second) if p is not None]
        for proto in protos:
            proto.session.stop(loop.time(), subcode, detail, data)
            proto.pump()
        if self._second is not None:
            self._retire(self._second)
            self._second = None
        for proto in protos:
            if not await proto.wait_closed(flush_timeout):
                proto.abort()

    async def close_without_notification(self, flush_timeout: float = 1.0) -> None:
        """Graceful restart (RFC 4724 §4.1): close every connection with no NOTIFICATION
        (queued bytes are still written, then FIN), so that a helper sees the TCP session
        end and keeps our routes. No more events reach the handler. The peer can be
        started again."""
        if not self._started:
            return
        self._started = False
        self._cancel_connect()
        protos = [p for p in (self._proto, self._second) if p is not None]
        for proto in protos:
            proto.retire()
            if proto.transport is not None:
                proto.transport.close()
        self._second = None
        for proto in protos:
            if not await proto.wait_closed(flush_timeout):
                proto.abort()

    # ------------------------------------------------------------------ sending

    def send(self, messages: Iterable[bytes]) -> None:
        """Queue pre-encoded UPDATE messages (from `bgp.wire.packing`) and write what the
        transport takes now; the rest follows as the peer reads."""
        proto = self._current()
        proto.session.send_update_bytes(list(messages), self._loop_().time())
        proto.pump()

    def send_update(self, update: Update) -> None:
        proto = self._current()
        proto.session.send_update(update, self._loop_().time())
        proto.pump()

    def send_end_of_rib(self, family: Family) -> None:
        proto = self._current()
        proto.session.send_end_of_rib(family, self._loop_().time())
        proto.pump()

    def send_route_refresh(self, family: Family, subtype: int = 0) -> None:
        proto = self._current()
        proto.session.send_route_refresh(family, subtype)
        proto.pump()

    @property
    def output_queue(self) -> int:
        """Octets of ours not yet written to the socket: UPDATEs queued in the session
        (capped by `max_output_queue`) plus the transport's write buffer."""
        proto = self._proto
        if proto is None:
            return 0
        return proto.session.queued_bytes + proto.write_buffer_size

    def has_pending_updates(self) -> bool:
        """UPDATE bytes queued and not yet written (the application may pace itself)."""
        proto = self._proto
        return proto is not None and proto.session.has_pending_updates()

    def _current(self) -> SessionProtocol:
        if self._proto is None:
            raise RuntimeError(f"peer {self.name} was never started")
        return self._proto

    # ------------------------------------------------------------------ connections

    def accept(self, transport: asyncio.Transport) -> None:
        """Take over a connection the listener accepted from this neighbour's address."""
        if not self._started or self._proto is None:
            log.info("%s: refusing connection, peer not started", self.name)
            transport.abort()
            return
        try:
            self._apply_accepted_options(transport)
        except (OSError, ValueError) as exc:
            self._last_error = f"accepted socket options: {exc}"
            log.warning("%s: %s", self.name, self._last_error)
            transport.abort()
            return
        proto = self._proto
        if proto.transport is None:
            # Idle/Connect/Active: the session takes the connection (TcpConnectionConfirmed);
            # an outgoing attempt still in flight is abandoned. Idle refuses it itself.
            self._cancel_connect()
            proto.attach(transport, outgoing=False)
            return
        if self._second is None and proto.session.state in (State.OPEN_SENT, State.OPEN_CONFIRM):
            # §6.8: a second connection; it gets its own session until one OPEN decides.
            second = self._new_protocol()
            self._second = second
            second.session.start(self._loop_().time())
            second.attach(transport, outgoing=False)
            self._maybe_resolve()
            return
        log.info(
            "%s: refusing second connection in %s", self.name, proto.session.state.value
        )
        transport.abort()

    def _apply_accepted_options(self, transport: asyncio.Transport) -> None:
        sock = transport.get_extra_info("socket")
        if sock is None:
            return
        # The MD5 key is on the listening socket; TTL/GTSM and NODELAY per connection.
        apply_connection_options(sock, self.remote, self._sockopts)

    def _new_protocol(self) -> SessionProtocol:
        rng = self._rng if self._rng is not None else random.Random()
        return SessionProtocol(
            Session(self.config, rng),
            self._on_event,
            self._on_closed,
            on_pumped=self._on_pumped,
            on_events=self._on_events,
            loop=self._loop_(),
        )

    def _loop_(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    def _on_pumped(self, proto: SessionProtocol) -> None:
        if proto is not self._proto or not self._started:
            return
        session = proto.session
        # Session contract: connect when `wants_connect`, one attempt per increment of
        # `connect_attempts`; a newer request (ConnectRetry fired while an attempt hangs,
        # §8.2.2 "drops the TCP connection, restarts the ConnectRetryTimer, ... initiates a
        # TCP connection") abandons the older attempt.
        if (
            session.wants_connect
            and proto.transport is None
            and session.connect_attempts != self._attempt
        ):
            self._cancel_connect()
            self._attempt = session.connect_attempts
            self._connect_task = self._loop_().create_task(
                self._connect(proto, self._attempt), name=f"bgp-connect-{self.name}"
            )

    def _cancel_connect(self) -> None:
        task = self._connect_task
        self._connect_task = None
        if task is not None and not task.done():
            task.cancel()

    def _attempt_current(self, proto: SessionProtocol, attempt: int) -> bool:
        return (
            self._started
            and proto is self._proto
            and proto.transport is None
            and proto.session.connect_attempts == attempt
            and proto.session.state is State.CONNECT
        )

    async def _connect(self, proto: SessionProtocol, attempt: int) -> None:
        loop = self._loop_()
        sock: socket.socket | None = None
        try:
            sock = make_client_socket(self._raw_remote, self._sockopts, self.options.local_address)
            address: tuple[str, int] | tuple[str, int, int, int]
            if self._raw_remote.version == 6:
                address = (str(self._raw_remote), self.options.remote_port, 0, self._scope)
            else:
                address = (str(self._raw_remote), self.options.remote_port)
            await asyncio.wait_for(loop.sock_connect(sock, address), self.options.connect_timeout)
        except asyncio.CancelledError:
            if sock is not None:
                sock.close()
            raise
        except (OSError, TimeoutError) as exc:
            if sock is not None:
                sock.close()
            what = "socket options" if isinstance(exc, SocketOptionError) else "connect"
            self._last_error = f"{what}: {exc or type(exc).__name__}"
            log.debug("%s: %s", self.name, self._last_error)
            if asyncio.current_task() is self._connect_task:
                self._connect_task = None
            if self._attempt_current(proto, attempt):
                proto.session.connection_failed(loop.time())
                proto.pump()
            return
        if asyncio.current_task() is self._connect_task:
            self._connect_task = None
        if not self._attempt_current(proto, attempt):
            sock.close()  # an incoming connection won the race, or we were stopped
            return
        proto.outgoing = True
        try:
            await loop.create_connection(lambda: proto, sock=sock)
        except OSError as exc:
            sock.close()
            self._last_error = f"connect: {exc}"
            if self._attempt_current(proto, attempt):
                proto.session.connection_failed(loop.time())
                proto.pump()

    # ------------------------------------------------------------------ events

    def _on_events(self, proto: SessionProtocol, events: list[BgpEvent]) -> None:
        """The events of one input, in order. A run of UPDATEs of the session the
        application sees goes to a `BatchPeerHandler` in one `on_updates` call."""
        handler = self.handler
        batcher = handler if isinstance(handler, BatchPeerHandler) else None
        run: list[Update] = []
        for event in events:
            if batcher is not None and isinstance(event, UpdateReceived) and (
                proto is self._proto
            ):
                run.append(event.update)
                continue
            if run:
                self._deliver_updates(batcher, run)
                run = []
            try:
                self._on_event(proto, event)
            except Exception:
                log.exception("%s: event handler failed on %r", self.name, event)
        if run:
            self._deliver_updates(batcher, run)

    def _deliver_updates(self, batcher: BatchPeerHandler | None, updates: list[Update]) -> None:
        assert batcher is not None
        try:
            batcher.on_updates(self, updates)
        except Exception:
            log.exception("%s: event handler failed on %d UPDATE(s)", self.name, len(updates))

    def _on_event(self, proto: SessionProtocol, event: BgpEvent) -> None:
        if isinstance(event, OpenReceived):
            self._maybe_resolve()
            return
        if proto is not self._proto:
            if isinstance(event, SessionDown) and proto is self._second:
                # The second connection died before collision resolution.
                self._retire(proto)
                self._second = None
            return
        if isinstance(event, SessionDown) and self._second is not None:
            # The first connection failed (the peer may have dumped it in its own
            # collision resolution) while a second one is being set up: carry on with the
            # second.
            log.info("%s: %s; continuing on the second connection", self.name, event.reason.value)
            if self._established_at is not None:
                self._down(event)
            self._retire(proto)
            self._promote(self._second)
            return
        handler = self.handler
        if isinstance(event, UpdateReceived):
            handler.on_update(self, event.update)
        elif isinstance(event, Established):
            self._established_at = time.monotonic()
            self._established_count += 1
            self._last_error = None
            handler.on_established(self, event.negotiated)
        elif isinstance(event, EndOfRibReceived):
            handler.on_end_of_rib(self, event.family)
        elif isinstance(event, RouteRefreshReceived):
            handler.on_route_refresh(self, event.family, event.subtype)
        elif isinstance(event, SessionDown):
            self._down(event)

    def _down(self, event: SessionDown) -> None:
        self._established_at = None
        self._last_down = event
        text = event.reason.value
        if event.notification is not None:
            text += f" ({event.notification.describe()})"
        if event.detail:
            text += f": {event.detail}"
        self._last_error = text
        self.handler.on_down(self, event)

    def _maybe_resolve(self) -> None:
        """RFC 4271 §6.8 once both connections exist and one has the peer's OPEN.

        RFC 4271 §6.8 examines connections in OpenConfirm when an OPEN arrives; it also
        allows using a BGP Identifier known otherwise for OpenSent ones. The peer's
        identifier is the same on both connections, so roost decides as soon as either
        connection has delivered an OPEN; the peer, applying the same rule, closes the
        same connection."""
        first, second = self._proto, self._second
        if first is None or second is None:
            return
        remote_open = second.session.remote_open or first.session.remote_open
        if remote_open is None:
            return
        if bool(first.outgoing) == bool(second.outgoing):
            # Both accepted (the peer gave up on its first attempt and connected again):
            # keep the newer one unless the older is already up.
            loser = second if first.session.state is State.ESTABLISHED else first
            reason = "two connections from the same side: keep the newer one"
        else:
            # Always the identifier rule, even if the first connection reached Established
            # meanwhile: only that rule makes both ends close the same connection (a second
            # connection is never accepted next to one that was Established before it).
            try:
                resolution = resolve(
                    self.config.router_id,
                    remote_open.router_id,
                    Initiator.of(bool(first.outgoing)),
                    local_asn=self.config.local_asn,
                    remote_asn=remote_open.asn,
                )
            except ValueError as exc:
                loser, reason = second, str(exc)
            else:
                closes_first = Initiator.of(bool(first.outgoing)) is resolution.close
                loser = first if closes_first else second
                reason = resolution.reason
        winner = second if loser is first else first
        log.info(
            "%s: connection collision, closing the %s connection: %s",
            self.name,
            "outgoing" if loser.outgoing else "incoming",
            reason,
        )
        self.collisions += 1
        told_up = loser is self._proto and self._established_at is not None
        loser.session.collision_dump(self._loop_().time())
        self._retire(loser)  # writes the Cease, closes; its events no longer reach the app
        if told_up and loser.session.last_down is not None:
            self._down(loser.session.last_down)
        self._promote(winner)

    def _promote(self, winner: SessionProtocol) -> None:
        """`winner` becomes the session the application sees."""
        self._proto, self._second = winner, None
        self._attempt = winner.session.connect_attempts
        winner.pump()  # re-arm; from now on its events reach the application

    def _retire(self, proto: SessionProtocol) -> None:
        """Stop passing on `proto`'s events; its counters join the peer's totals once its
        connection (still flushing a Cease, perhaps) is closed."""
        proto.retire()
        if proto.transport is None:
            self._absorb(proto)
        else:
            self._draining.add(proto)

    def _absorb(self, proto: SessionProtocol) -> None:
        for key, value in _proto_counters(proto).items():
            self._retired_totals[key] += value

    def _on_closed(self, proto: SessionProtocol, exc: Exception | None) -> None:
        if proto in self._draining:
            self._draining.discard(proto)
            self._absorb(proto)
        if exc is not None:
            log.debug("%s: connection lost: %s", self.name, exc)


# ---------------------------------------------------------------------- listener

PeerFactory = Callable[[IpAddress, int], BgpPeer | None]


class _AcceptProtocol(asyncio.Protocol):
    """Lives for one call: identifies the remote address and hands the transport over."""

    def __init__(self, listener: Listener) -> None:
        self._listener = listener

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._listener._accepted(transport)

    def data_received(self, data: bytes) -> None:  # pragma: no cover - never reached
        pass


class Listener:
    """The passive side: listens on (host, port) for every configured peer.

    An accepted connection goes to the `BgpPeer` registered for its source address, or to
    `factory(address, port)` (dynamic neighbours from a range; return None to reject, and
    `add_peer()` the new peer to keep it for later connections). Connections from unknown
    addresses are closed at once. TCP MD5 keys of registered peers are installed on the
    listening sockets, so an unsigned or wrongly signed SYN is dropped by the kernel.
    """

    def __init__(
        self,
        hosts: str | Sequence[str] | None = None,
        port: int = BGP_PORT,
        *,
        factory: PeerFactory | None = None,
        backlog: int = 128,
    ) -> None:
        # Default: every IPv4 and IPv6 address (two sockets; IPv6 is V6ONLY). Without IPv6
        # on the host the "::" socket is skipped with a warning.
        self._default_hosts = hosts is None
        if hosts is None:
            hosts = ("0.0.0.0", "::")
        self.hosts: tuple[str, ...] = (hosts,) if isinstance(hosts, str) else tuple(hosts)
        self._port = port
        self.factory = factory
        self.backlog = backlog
        self._peers: dict[IpAddress, BgpPeer] = {}
        self._range_keys: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, str]] = []
        self._sockets: list[socket.socket] = []
        self._servers: list[asyncio.Server] = []
        self.rejected = 0

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._sockets:
            return int(self._sockets[0].getsockname()[1])
        return self._port

    @property
    def sockets(self) -> tuple[socket.socket, ...]:
        return tuple(self._sockets)

    def add_peer(self, peer: BgpPeer) -> None:
        self._peers[peer.remote] = peer
        if peer.options.password is not None:
            for sock in self._sockets:
                self._set_key(sock, peer.remote, peer.options.password)
        if peer.options.ttl_security_hops is not None:
            for sock in self._sockets:
                self._set_gtsm_ttl(sock, peer.remote)

    @staticmethod
    def _set_gtsm_ttl(sock: socket.socket, remote: IpAddress) -> None:
        # RFC 5082: the SYN-ACK already must carry TTL 255 (the kernel sends it from the
        # listening socket, before we see the connection). Outgoing TTL only: a minimum
        # TTL on the listener would shut out the peers that do not use GTSM; accepted
        # connections get IP_MINTTL per peer.
        if (sock.family == socket.AF_INET6) == (remote.version == 6):
            set_ttl(sock, GTSM_TTL)

    def remove_peer(self, peer: BgpPeer) -> None:
        if self._peers.get(peer.remote) is peer:
            del self._peers[peer.remote]
            if peer.options.password is not None:
                for sock in self._sockets:
                    self._set_key(sock, peer.remote, None)

    def peer_for(self, address: str | IpAddress) -> BgpPeer | None:
        return self._peers.get(normalize_address(address))

    def set_range_password(
        self, network: ipaddress.IPv4Network | ipaddress.IPv6Network | str, password: str
    ) -> None:
        """An MD5 key for a whole range of dynamic neighbours (TCP_MD5SIG_EXT)."""
        net = ipaddress.ip_network(network)
        self._range_keys.append((net, password))
        for sock in self._sockets:
            self._set_range_key(sock, net, password)

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        try:
            for host in self.hosts:
                try:
                    sock = self._listen_socket(host)
                except OSError as exc:
                    if self._default_hosts and ":" in host and len(self.hosts) > 1:
                        log.warning("not listening on [%s]:%d: %s", host, self._port, exc)
                        continue
                    raise
                self._sockets.append(sock)
                server = await loop.create_server(lambda: _AcceptProtocol(self), sock=sock)
                self._servers.append(server)
        except BaseException:
            await self.close()
            raise

    def _listen_socket(self, host: str) -> socket.socket:
        addr = ipaddress.ip_address(host.split("%", 1)[0])
        family = socket.AF_INET6 if addr.version == 6 else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            if family == socket.AF_INET6:
                sock.setsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY, 1)
            # Keys before listen(): no window in which an unsigned SYN is accepted.
            for remote, peer in self._peers.items():
                if peer.options.password is not None and remote.version == addr.version:
                    set_md5sig(sock, remote, peer.options.password)
            for remote, peer in self._peers.items():
                if peer.options.ttl_security_hops is not None and remote.version == addr.version:
                    set_ttl(sock, GTSM_TTL)
            for net, password in self._range_keys:
                if net.version == addr.version:
                    set_md5sig(sock, net.network_address, password, net.prefixlen)
            if family == socket.AF_INET6:
                sock.bind((host, self._port, 0, 0))
            else:
                sock.bind((host, self._port))
            sock.listen(self.backlog)
            sock.setblocking(False)
        except BaseException:
            sock.close()
            raise
        return sock

    @staticmethod
    def _set_key(sock: socket.socket, remote: IpAddress, password: str | None) -> None:
        if (sock.family == socket.AF_INET6) == (remote.version == 6):
            set_md5sig(sock, remote, password)

    @staticmethod
    def _set_range_key(
        sock: socket.socket, net: ipaddress.IPv4Network | ipaddress.IPv6Network, password: str
    ) -> None:
        if (sock.family == socket.AF_INET6) == (net.version == 6):
            set_md5sig(sock, net.network_address, password, net.prefixlen)

    async def close(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            await server.wait_closed()
        self._servers.clear()
        for sock in self._sockets:
            sock.close()
        self._sockets.clear()

    def _accepted(self, transport: asyncio.Transport) -> None:
        peername = transport.get_extra_info("peername")
        try:
            address = normalize_address(peername[0])
            port = int(peername[1])
        except (TypeError, ValueError, IndexError):
            transport.abort()
            return
        peer = self._peers.get(address)
        if peer is None and self.factory is not None:
            try:
                peer = self.factory(address, port)
            except Exception:
                log.exception("peer factory failed for %s", address)
                peer = None
            if peer is not None and not peer._started:
                peer.start_now()
        if peer is None:
            self.rejected += 1
            log.info("closing connection from unknown address %s", address)
            transport.abort()
            return
        peer.accept(transport)
