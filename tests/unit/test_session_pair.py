"""Two `Session`s back to back through an in-memory pipe, with a hand-advanced clock.

h11's `ConnectionPair` and aioquic's `roundtrip`: no sockets, no sleeps. `Net` holds the
clock and the links; `Link` moves bytes between two sessions and propagates closes.
"""

from __future__ import annotations

import itertools
import random
import struct
from collections.abc import Callable
from dataclasses import dataclass, field
from ipaddress import IPv4Address
from typing import TypeVar

import pytest

from bgp.collision import Initiator, connection_to_close, resolve
from bgp.errors import LocalUsageError
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
from bgp.fsm import DownReason, State
from bgp.session import LARGE_HOLD_TIME, Session, SessionConfig
from bgp.types import (
    HEADER_LEN,
    IPV4_UNICAST,
    IPV6_UNICAST,
    MARKER,
    CeaseSubcode,
    ErrorCode,
    FsmError,
    HeaderError,
    MessageType,
    OpenError,
    UpdateError,
)
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.framing import FrameBuffer, encode_header
from bgp.wire.messages import encode_message
from bgp.wire.model import DEFAULT, Keepalive, Notification, Open, RouteRefresh, Update
from bgp.wire.packing import pack_announcements
from bgp.wire.prefix import Nlri, Prefix

E = TypeVar("E")

ID_A = IPv4Address("10.0.0.1")
ID_B = IPv4Address("10.0.0.2")


def cfg(
    local_asn: int = 65001,
    router_id: IPv4Address = ID_A,
    peer_asn: int | None = 65002,
    **kw: object,
) -> SessionConfig:
    return SessionConfig(local_asn=local_asn, router_id=router_id, peer_asn=peer_asn, **kw)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- harness


@dataclass
class Sent:
    """One message seen on the wire."""

    at: float
    msg_type: int
    body: bytes

    def notification(self) -> Notification:
        assert self.msg_type == MessageType.NOTIFICATION
        return Notification(self.body[0], self.body[1], self.body[2:])


@dataclass
class Link:
    """A TCP connection between `x` (the initiator) and `y`."""

    net: Net
    x: Session
    y: Session
    limit: int | None = None  # UPDATE octets per direction per round (None: unlimited)
    muted: set[int] = field(default_factory=set)  # id() of senders whose bytes are lost
    closed: bool = False
    wire: dict[int, list[Sent]] = field(default_factory=dict)
    _parsers: dict[int, FrameBuffer] = field(default_factory=dict)

    def sent_by(self, s: Session) -> list[Sent]:
        return self.wire.get(id(s), [])

    def notifications_from(self, s: Session) -> list[Notification]:
        return [m.notification() for m in self.sent_by(s) if m.msg_type == MessageType.NOTIFICATION]

    def _record(self, src: Session, data: bytes) -> None:
        parser = self._parsers.setdefault(id(src), FrameBuffer(max_len=65535))
        parser.feed(data)
        while (frame := parser.next_frame()) is not None:
            self.wire.setdefault(id(src), []).append(Sent(self.net.now, frame[0], bytes(frame[1])))

    def pump_once(self) -> bool:
        """One round in each direction; True when anything happened."""
        if self.closed:
            return False
        moved = False
        for src, dst in ((self.x, self.y), (self.y, self.x)):
            data = src.data_to_send(self.limit)
            if data:
                moved = True
                self._record(src, data)
                if id(src) not in self.muted:
                    dst.receive_data(data, self.net.now)
            if src.wants_close:
                self.close()
                return True
        return moved

    def close(self) -> None:
        """The TCP connection goes away; both ends hear about it. What either end still
        writes is recorded (it went out) but never delivered."""
        self.closed = True
        now = self.net.now
        for s in (self.x, self.y):
            if data := s.data_to_send(self.limit):
                self._record(s, data)
        self.x.connection_lost(now)
        self.y.connection_lost(now)


class Net:
    """The clock, the links, and the events each session emitted."""

    def __init__(self) -> None:
        self.now = 0.0
        self.links: list[Link] = []
        self.sessions: list[Session] = []
        self.log: dict[int, list[BgpEvent]] = {}
        self.after_round: Callable[[], None] | None = None

    def add(self, *sessions: Session) -> None:
        for s in sessions:
            self.sessions.append(s)
            self.log[id(s)] = []

    def events(self, s: Session) -> list[BgpEvent]:
        return self.log[id(s)]

    def of(self, s: Session, kind: type[E]) -> list[E]:
        return [e for e in self.log[id(s)] if isinstance(e, kind)]

    def downs(self, s: Session) -> list[SessionDown]:
        return [e for e in self.log[id(s)] if isinstance(e, SessionDown)]

    def connect(self, x: Session, y: Session, limit: int | None = None) -> Link:
        """x connects out to y."""
        link = Link(self, x, y, limit)
        self.links.append(link)
        x.connection_made(self.now, outgoing=True)
        y.connection_made(self.now, outgoing=False)
        self._drain()
        return link

    def _drain(self) -> None:
        for s in self.sessions:
            self.log[id(s)].extend(s.events())

    def pump(self, max_rounds: int = 10_000) -> None:
        for _ in range(max_rounds):
            moved = False
            for link in list(self.links):
                moved |= link.pump_once()
            self._drain()
            if self.after_round is not None:
                self.after_round()
                self._drain()
            if not moved:
                return
        raise AssertionError("the sessions did not go quiet")

    def advance(self, dt: float) -> None:
        """Move the clock forward by dt, firing each deadline at its own time."""
        target = self.now + dt
        while True:
            due = [d for s in self.sessions if (d := s.next_deadline()) is not None]
            nxt = min(due, default=None)
            if nxt is None or nxt > target:
                break
            self.now = max(self.now, nxt)
            for s in self.sessions:
                d = s.next_deadline()
                if d is not None and d <= self.now:
                    s.handle_timer(self.now)
            self._drain()
            self.pump()
        self.now = target
        self.pump()


def pair(
    a_cfg: SessionConfig | None = None,
    b_cfg: SessionConfig | None = None,
    *,
    establish: bool = True,
) -> tuple[Net, Session, Session, Link]:
    """A (active, connects out) and B (passive), connected; established unless told."""
    a = Session(a_cfg or cfg(), random.Random(1))
    b = Session(
        b_cfg or cfg(65002, ID_B, 65001, passive=True),
        random.Random(2),
    )
    net = Net()
    net.add(a, b)
    a.start(net.now)
    b.start(net.now)
    assert a.wants_connect and not b.wants_connect
    link = net.connect(a, b)
    if establish:
        net.pump()
        assert st(a) is State.ESTABLISHED, net.events(a)
        assert st(b) is State.ESTABLISHED, net.events(b)
    return net, a, b, link


def st(s: Session) -> State:
    """The state, read through a call so that mypy does not narrow it across calls."""
    return s.state


def raw(msg_type: int, body: bytes = b"") -> bytes:
    return encode_header(msg_type, body)


def last_notification(link: Link, s: Session) -> Notification:
    notes = link.notifications_from(s)
    assert notes, f"{s} sent no NOTIFICATION"
    return notes[-1]


# ----------------------------------------------------------------------------- establishment


def test_establishment_events_and_negotiation() -> None:
    net, a, b, link = pair()
    kinds = [type(e) for e in net.events(a)]
    assert kinds == [
        StateChanged,  # Idle -> Connect
        StateChanged,  # Connect -> OpenSent
        OpenReceived,
        StateChanged,  # OpenSent -> OpenConfirm
        Established,
        StateChanged,  # OpenConfirm -> Established
    ]
    assert [e.new for e in net.of(a, StateChanged)] == [
        State.CONNECT,
        State.OPEN_SENT,
        State.OPEN_CONFIRM,
        State.ESTABLISHED,
    ]
    assert [e.new for e in net.of(b, StateChanged)] == [
        State.ACTIVE,
        State.OPEN_SENT,
        State.OPEN_CONFIRM,
        State.ESTABLISHED,
    ]
    assert a.outgoing is True and b.outgoing is False
    assert a.negotiated is not None and b.negotiated is not None
    assert a.negotiated.asn4 and a.negotiated.extended_message and a.negotiated.route_refresh
    assert a.negotiated.hold_time == 90 and a.negotiated.keepalive_time == 30
    assert a.negotiated.peer_asn == 65002 and b.negotiated.peer_asn == 65001
    assert a.remote_open is not None and a.remote_open.router_id == ID_B
    # OPEN first, then the KEEPALIVE sent on OPEN receipt.
    assert [m.msg_type for m in link.sent_by(a)] == [MessageType.OPEN, MessageType.KEEPALIVE]
    # Extended message negotiated: the framing now accepts 65535-octet messages.
    assert a._frames.max_len == 65535
    assert net.downs(a) == [] and net.downs(b) == []


def test_establishment_with_four_octet_asns() -> None:
    big_a, big_b = 4_200_000_001, 4_200_000_002
    _net, a, b, _ = pair(cfg(big_a, ID_A, big_b), cfg(big_b, ID_B, big_a, passive=True))
    assert a.negotiated is not None and a.negotiated.asn4
    assert a.negotiated.peer_asn == big_b
    assert b.remote_open is not None and b.remote_open.asn == big_a
    assert b.remote_open.wire_my_as == 23456  # AS_TRANS in the 2-octet field


def test_establishment_without_four_octet_as() -> None:
    net, a, b, _ = pair(
        cfg(65001, ID_A, 65002, four_octet_as=False, extended_message=False),
        cfg(65002, ID_B, 65001, passive=True),
    )
    assert a.negotiated is not None and not a.negotiated.asn4
    assert b.negotiated is not None and not b.negotiated.asn4
    assert not a.negotiated.extended_message
    assert a._frames.max_len == 4096
    # UPDATEs flow with 2-octet AS_PATHs.
    attrs = AttrSet.make(as_path=AsPath.sequence(65001), next_hop=IPv4Address("192.0.2.1"))
    a.send_update(Update(attrs=attrs, nlri=(Nlri(Prefix.parse("198.51.100.0/24")),)))
    net.pump()
    (ev,) = net.of(b, UpdateReceived)
    assert ev.update.nlri == (Nlri(Prefix.parse("198.51.100.0/24")),)
    assert ev.update.attrs is not None
    assert ev.update.attrs.as_path == AsPath.sequence(65001)


def test_dynamic_peer_accepts_any_as() -> None:
    _net, _a, b, _ = pair(b_cfg=cfg(65002, ID_B, None, passive=True))
    assert b.negotiated is not None and b.negotiated.peer_asn == 65001


def test_ibgp_establishment() -> None:
    _net, a, _b, _ = pair(cfg(65000, ID_A, 65000), cfg(65000, ID_B, 65000, passive=True))
    assert a.config.is_ibgp


# ----------------------------------------------------------------------------- timers


def test_hold_timer_expiry() -> None:
    net, a, b, link = pair()
    link.muted.add(id(a))  # A's bytes are lost from now on: B hears nothing
    t0 = net.now
    net.advance(89)
    assert st(b) is State.ESTABLISHED
    net.advance(1.5)  # past 90 s, before the 1 s idle-hold restart
    assert st(b) is State.IDLE
    (down,) = net.downs(b)
    assert down.reason is DownReason.HOLD_TIMER_EXPIRED
    assert down.notification == Notification(ErrorCode.HOLD_TIMER_EXPIRED, 0)
    expired_at = [m.at for m in link.sent_by(b) if m.msg_type == MessageType.NOTIFICATION]
    assert expired_at == [pytest.approx(t0 + 90)]
    # A got the NOTIFICATION (code 4) and went down with it.
    (down_a,) = net.downs(a)
    assert down_a.reason is DownReason.NOTIFICATION_RECEIVED
    assert down_a.notification is not None and down_a.notification.code == 4
    assert link.closed


def test_hold_time_zero_means_no_keepalives_and_no_hold_timer() -> None:
    net, a, b, link = pair(cfg(hold_time=0), None)
    assert a.negotiated is not None and a.negotiated.hold_time == 0
    assert a.negotiated.keepalive_time == 0
    assert a.next_deadline() is None and b.next_deadline() is None
    sent_before = len(link.sent_by(a)) + len(link.sent_by(b))
    net.advance(100_000)
    assert st(a) is State.ESTABLISHED and st(b) is State.ESTABLISHED
    assert len(link.sent_by(a)) + len(link.sent_by(b)) == sent_before


def test_smaller_hold_time_wins() -> None:
    _net, a, b, _ = pair(cfg(hold_time=30), cfg(65002, ID_B, 65001, passive=True, hold_time=240))
    assert a.negotiated is not None and b.negotiated is not None
    assert a.negotiated.hold_time == b.negotiated.hold_time == 30
    assert a.negotiated.keepalive_time == 10


def test_keepalive_cadence_with_jitter_bounds() -> None:
    net, a, b, link = pair()
    start = net.now
    net.advance(3000)
    assert st(a) is State.ESTABLISHED and st(b) is State.ESTABLISHED
    for s in (a, b):
        times = [start] + [m.at for m in link.sent_by(s)[2:] if m.msg_type == MessageType.KEEPALIVE]
        gaps = [t2 - t1 for t1, t2 in itertools.pairwise(times)]
        assert len(gaps) >= 100
        # RFC 4271 §10: 0.75-1.0 x the 30 s keepalive interval.
        assert all(22.5 - 1e-9 <= g <= 30 + 1e-9 for g in gaps), gaps
        assert max(gaps) - min(gaps) > 1  # actually jittered


def test_connect_retry_jitter_and_retries() -> None:
    s = Session(cfg(), random.Random(7))
    s.start(100.0)
    assert st(s) is State.CONNECT and s.wants_connect and s.connect_attempts == 1
    first = s.next_deadline()
    assert first is not None and 100 + 3.75 <= first <= 105
    s.handle_timer(first)
    # Connect + ConnectRetryTimer_Expires: a new attempt, still in Connect.
    assert st(s) is State.CONNECT and s.wants_connect and s.connect_attempts == 2
    second = s.next_deadline()
    assert second is not None and first + 3.75 <= second <= first + 5
    # The attempt fails: wait in Active, retry at ConnectRetry.
    s.connection_failed(second - 1)
    assert st(s) is State.ACTIVE and not s.wants_connect
    nxt = s.next_deadline()
    assert nxt is not None
    s.handle_timer(nxt)
    assert st(s) is State.CONNECT and s.wants_connect and s.connect_attempts == 3
    assert not [e for e in s.events() if isinstance(e, SessionDown)]


def test_passive_session_never_connects() -> None:
    s = Session(cfg(passive=True), random.Random(1))
    s.start(0)
    assert st(s) is State.ACTIVE and not s.wants_connect
    assert s.next_deadline() is None
    s.handle_timer(1000)
    assert st(s) is State.ACTIVE and not s.wants_connect and s.connect_attempts == 0


def test_large_hold_timer_in_open_sent() -> None:
    net, a, b, link = pair(establish=False)
    link.muted.update({id(a), id(b)})  # no OPEN ever arrives
    net.pump()
    assert st(a) is State.OPEN_SENT
    net.advance(LARGE_HOLD_TIME - 1)
    assert st(a) is State.OPEN_SENT
    net.advance(1.5)
    assert st(a) is State.IDLE
    assert net.downs(a)[0].reason is DownReason.HOLD_TIMER_EXPIRED


def test_automatic_restart_after_error() -> None:
    net, a, b, link = pair()
    link.muted.add(id(b))
    net.advance(90.5)  # A's hold timer expires at 90
    assert st(a) is State.IDLE
    assert a.next_deadline() == pytest.approx(90 + a.config.idle_hold_time)
    net.advance(0.51)
    assert st(a) is State.CONNECT and a.wants_connect
    # B (passive) restarted to Active.
    assert st(b) is State.ACTIVE and not b.wants_connect
    # And a new connection establishes again.
    net.connect(a, b)
    net.pump()
    assert st(a) is State.ESTABLISHED and st(b) is State.ESTABLISHED


# ----------------------------------------------------------------------------- OPEN errors


def _open_error(a_cfg: SessionConfig, b_cfg: SessionConfig) -> tuple[Net, Session, Session, Link]:
    net, a, b, link = pair(a_cfg, b_cfg, establish=False)
    net.pump()
    return net, a, b, link


def test_wrong_peer_as() -> None:
    net, a, b, link = _open_error(cfg(peer_asn=65099), cfg(65002, ID_B, 65001, passive=True))
    note = last_notification(link, a)
    assert (note.code, note.subcode) == (ErrorCode.OPEN_MESSAGE, OpenError.BAD_PEER_AS)
    (down_a,) = net.downs(a)
    assert down_a.reason is DownReason.NOTIFICATION_SENT and down_a.notification == note
    assert "65002" in down_a.detail
    (down_b,) = net.downs(b)
    assert down_b.reason is DownReason.NOTIFICATION_RECEIVED and down_b.notification == note
    assert st(a) is State.IDLE and st(b) is State.IDLE
    assert not net.of(a, Established) and not net.of(b, Established)


def test_bad_bgp_identifier_ibgp_same_router_id() -> None:
    net, a, b, link = _open_error(cfg(65000, ID_A, 65000), cfg(65000, ID_A, 65000, passive=True))
    for s in (a, b):
        note = last_notification(link, s)
        assert (note.code, note.subcode) == (ErrorCode.OPEN_MESSAGE, OpenError.BAD_BGP_IDENTIFIER)
        assert net.downs(s)[0].reason in (
            DownReason.NOTIFICATION_SENT,
            DownReason.NOTIFICATION_RECEIVED,
        )


def test_same_router_id_is_fine_for_ebgp() -> None:
    # RFC 6286 §2.2 only rejects an equal identifier from an internal peer.
    _net, a, _b, _ = pair(cfg(65001, ID_A, 65002), cfg(65002, ID_A, 65001, passive=True))
    assert st(a) is State.ESTABLISHED


@pytest.mark.parametrize(
    ("mutate", "subcode"),
    [
        (lambda o: Open(o.asn, 1, o.router_id, o.capabilities), OpenError.UNACCEPTABLE_HOLD_TIME),
        (lambda o: Open(o.asn, 2, o.router_id, o.capabilities), OpenError.UNACCEPTABLE_HOLD_TIME),
        (
            lambda o: Open(o.asn, o.hold_time, IPv4Address(0), o.capabilities),
            OpenError.BAD_BGP_IDENTIFIER,
        ),
        (
            lambda o: Open(o.asn, o.hold_time, o.router_id, o.capabilities, version=3),
            OpenError.UNSUPPORTED_VERSION_NUMBER,
        ),
        (lambda o: Open(65003, o.hold_time, o.router_id, ()), OpenError.BAD_PEER_AS),
    ],
    ids=["hold-1", "hold-2", "id-zero", "version-3", "peer-as"],
)
def test_malformed_open(mutate: Callable[[Open], Open], subcode: OpenError) -> None:
    net, a, b, _link = pair(establish=False)
    # B's OPEN as B would send it, then corrupted.
    good = b.local_open
    assert good is not None
    a.data_to_send()  # discard A's OPEN; we only look at A's answer
    a.receive_data(encode_message(mutate(good), DEFAULT), net.now)
    out = FrameBuffer()
    out.feed(a.data_to_send())
    frame = out.next_frame()
    assert frame is not None and frame[0] == MessageType.NOTIFICATION
    assert (frame[1][0], frame[1][1]) == (ErrorCode.OPEN_MESSAGE, subcode)
    assert st(a) is State.IDLE and a.wants_close
    (down,) = [e for e in a.events() if isinstance(e, SessionDown)]
    assert down.reason is DownReason.NOTIFICATION_SENT
    if subcode is OpenError.UNSUPPORTED_VERSION_NUMBER:
        assert bytes(frame[1][2:]) == b"\x00\x04"  # "the largest, locally-supported version"


def test_version_error_notification_received() -> None:
    net, a, _b, _link = pair(establish=False)
    a.data_to_send()
    a.receive_data(
        encode_message(
            Notification(ErrorCode.OPEN_MESSAGE, OpenError.UNSUPPORTED_VERSION_NUMBER, b"\x00\x03"),
            DEFAULT,
        ),
        net.now,
    )
    assert st(a) is State.IDLE
    (down,) = [e for e in a.events() if isinstance(e, SessionDown)]
    assert down.reason is DownReason.NOTIFICATION_RECEIVED
    assert a.data_to_send() == b""  # no NOTIFICATION in answer to a NOTIFICATION


# ----------------------------------------------------------------------------- malformed input


def _inject(net: Net, s: Session, data: bytes) -> tuple[Notification, SessionDown]:
    s.data_to_send()
    s.events()
    s.receive_data(data, net.now)
    out = FrameBuffer(max_len=65535)
    out.feed(s.data_to_send())
    frame = out.next_frame()
    assert frame is not None and frame[0] == MessageType.NOTIFICATION, frame
    note = Notification(frame[1][0], frame[1][1], bytes(frame[1][2:]))
    downs = [e for e in s.events() if isinstance(e, SessionDown)]
    assert len(downs) == 1, downs
    assert st(s) is State.IDLE and s.wants_close
    return note, downs[0]


@pytest.mark.parametrize(
    ("data", "code", "subcode"),
    [
        (
            b"\x00" * 16 + struct.pack("!HB", 19, 4),
            ErrorCode.MESSAGE_HEADER,
            HeaderError.CONNECTION_NOT_SYNCHRONIZED,
        ),
        (
            MARKER + struct.pack("!HB", 18, 4),
            ErrorCode.MESSAGE_HEADER,
            HeaderError.BAD_MESSAGE_LENGTH,
        ),
        (
            MARKER + struct.pack("!HB", 20, 4) + b"\x00",
            ErrorCode.MESSAGE_HEADER,
            HeaderError.BAD_MESSAGE_LENGTH,
        ),
        (
            MARKER + struct.pack("!HB", 19, 9),
            ErrorCode.MESSAGE_HEADER,
            HeaderError.BAD_MESSAGE_TYPE,
        ),
    ],
    ids=["bad-marker", "length-18", "keepalive-length-20", "type-9"],
)
@pytest.mark.parametrize("state", [State.OPEN_SENT, State.ESTABLISHED])
def test_header_errors(data: bytes, code: int, subcode: int, state: State) -> None:
    net, a, _b, _ = pair(establish=state is State.ESTABLISHED)
    assert a.state is state
    note, down = _inject(net, a, data)
    assert (note.code, note.subcode) == (code, subcode)
    assert down.reason is DownReason.NOTIFICATION_SENT and down.notification == note


def test_bad_length_above_4096_without_extended_message() -> None:
    net, a, _b, _ = pair(cfg(extended_message=False), None)
    note, _ = _inject(net, a, MARKER + struct.pack("!HB", 5000, 2) + b"\x00" * 4981)
    assert (note.code, note.subcode) == (ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH)
    assert note.data == struct.pack("!H", 5000)


def test_extended_message_accepted_when_negotiated() -> None:
    net, a, b, _ = pair()
    nlri = [Nlri(Prefix(1, 24, (10 << 24) + (i << 8))) for i in range(3000)]
    attrs = AttrSet.make(next_hop=IPv4Address("192.0.2.1"), as_path=AsPath.sequence(65001))
    assert a.negotiated is not None
    msgs = pack_announcements(IPV4_UNICAST, attrs, nlri, a.negotiated)
    assert any(len(m) > 4096 for m in msgs)
    a.send_update_bytes(msgs)
    net.pump()
    assert st(b) is State.ESTABLISHED
    got = sum(len(e.update.nlri) for e in net.of(b, UpdateReceived))
    assert got == 3000


def _update_body(attrs: bytes, nlri: bytes = b"", withdrawn: bytes = b"") -> bytes:
    return (
        struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) + attrs + nlri
    )


def _attr(flags: int, code: int, value: bytes) -> bytes:
    return bytes((flags, code, len(value))) + value


ORIGIN_IGP = _attr(0x40, 1, b"\x00")
AS_PATH_65002 = _attr(0x40, 2, b"\x02\x01" + struct.pack("!I", 65002))
NEXT_HOP = _attr(0x40, 3, IPv4Address("192.0.2.2").packed)
NLRI_24 = b"\x18\xc6\x33\x64"  # 198.51.100.0/24


@pytest.mark.parametrize(
    ("body", "subcode"),
    [
        # Total path attribute length overruns the message: RFC 7606 keeps session reset.
        (struct.pack("!HH", 0, 50) + ORIGIN_IGP, UpdateError.MALFORMED_ATTRIBUTE_LIST),
        # Withdrawn routes length overruns the message.
        (struct.pack("!H", 60) + b"\x00\x00", UpdateError.MALFORMED_ATTRIBUTE_LIST),
        # MP_REACH_NLRI too short to hold its AFI/SAFI (RFC 7606 §7.11: session reset).
        (_update_body(_attr(0x80, 14, b"\x00\x01")), UpdateError.OPTIONAL_ATTRIBUTE_ERROR),
        # NLRI prefix length 33 for IPv4 (RFC 7606 §5.3: session reset).
        (
            _update_body(ORIGIN_IGP + AS_PATH_65002 + NEXT_HOP, b"\x21\x0a\x00\x00\x00\x00"),
            UpdateError.INVALID_NETWORK_FIELD,
        ),
    ],
    ids=["attr-len-overrun", "withdrawn-overrun", "mp-reach-short", "nlri-len-33"],
)
def test_malformed_update_resets_with_update_error(body: bytes, subcode: int) -> None:
    net, a, _b, _ = pair()
    note, down = _inject(net, a, raw(MessageType.UPDATE, body))
    assert note.code == ErrorCode.UPDATE_MESSAGE
    assert note.subcode == subcode
    assert down.reason is DownReason.NOTIFICATION_SENT


def test_treat_as_withdraw_update_keeps_the_session_up() -> None:
    net, a, _b, _link = pair()
    bad_origin = _attr(0x40, 1, b"\x07")  # RFC 7606 §7.1: invalid ORIGIN -> treat-as-withdraw
    body = _update_body(bad_origin + AS_PATH_65002 + NEXT_HOP, NLRI_24)
    a.events()
    a.receive_data(raw(MessageType.UPDATE, body), net.now)
    assert st(a) is State.ESTABLISHED
    assert a.data_to_send() == b""
    (ev,) = [e for e in a.events() if isinstance(e, UpdateReceived)]
    assert ev.update.treat_as_withdraw is not None
    assert ev.update.treat_as_withdraw.code == ErrorCode.UPDATE_MESSAGE
    withdrawn = [n for _, ns in ev.update.withdrawals() for n in ns]
    assert withdrawn == [Nlri(Prefix.parse("198.51.100.0/24"))]
    assert list(ev.update.announced()) == []


def test_update_restarts_hold_timer() -> None:
    net, a, b, link = pair()
    link.muted.add(id(b))  # B's keepalives are lost...
    for _ in range(5):
        net.advance(60)
        # ...but an UPDATE every 60 s keeps A's 90 s hold timer from expiring.
        a.receive_data(raw(MessageType.UPDATE, _update_body(b"")), net.now)
    net.pump()
    assert st(a) is State.ESTABLISHED
    assert len(net.of(a, EndOfRibReceived)) == 5


@pytest.mark.parametrize(
    ("state", "data", "subcode"),
    [
        (State.OPEN_SENT, raw(MessageType.KEEPALIVE), FsmError.UNEXPECTED_MESSAGE_IN_OPENSENT),
        (
            State.OPEN_SENT,
            raw(MessageType.UPDATE, _update_body(b"")),
            FsmError.UNEXPECTED_MESSAGE_IN_OPENSENT,
        ),
        (
            State.OPEN_CONFIRM,
            raw(MessageType.UPDATE, _update_body(b"")),
            FsmError.UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
        ),
        (
            State.OPEN_CONFIRM,
            encode_message(RouteRefresh(IPV4_UNICAST), DEFAULT),
            FsmError.UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
        ),
        (
            State.ESTABLISHED,
            encode_message(Open(65002, 90, ID_B), DEFAULT),
            FsmError.UNEXPECTED_MESSAGE_IN_ESTABLISHED,
        ),
    ],
    ids=[
        "keepalive-in-opensent",
        "update-in-opensent",
        "update-in-openconfirm",
        "refresh-in-openconfirm",
        "open-in-established",
    ],
)
def test_unexpected_message_is_fsm_error(state: State, data: bytes, subcode: FsmError) -> None:
    net, a, b, _link = pair(establish=False)
    if state is State.OPEN_CONFIRM:
        # Deliver only B's OPEN to A.
        a.receive_data(b.data_to_send(), net.now)
    elif state is State.ESTABLISHED:
        net.pump()
    assert a.state is state
    note, down = _inject(net, a, data)
    assert (note.code, note.subcode) == (ErrorCode.FSM, subcode)
    assert down.reason is DownReason.FSM_ERROR and down.notification == note


def test_notification_received_in_established() -> None:
    net, a, b, _link = pair()
    b.stop(net.now, CeaseSubcode.PEER_DECONFIGURED)
    net.pump()
    (down,) = net.downs(a)
    assert down.reason is DownReason.NOTIFICATION_RECEIVED
    assert down.notification == Notification(ErrorCode.CEASE, CeaseSubcode.PEER_DECONFIGURED)
    assert "CEASE/3" in down.detail


# ----------------------------------------------------------------------------- stop / close


def test_admin_stop() -> None:
    net, a, b, link = pair()
    a.stop(net.now, detail="maintenance")
    net.pump()
    note = last_notification(link, a)
    assert (note.code, note.subcode) == (ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
    assert note.data == b"\x0bmaintenance"  # RFC 8203 shutdown communication
    (down_a,) = net.downs(a)
    assert down_a.reason is DownReason.ADMIN_STOP and down_a.notification == note
    (down_b,) = net.downs(b)
    assert down_b.reason is DownReason.NOTIFICATION_RECEIVED
    assert link.closed
    # No automatic restart after an operator's stop; the peer does restart.
    assert st(a) is State.IDLE and a.next_deadline() is None
    net.advance(10)
    assert st(a) is State.IDLE
    assert st(b) is State.ACTIVE


def test_stop_while_connecting_sends_nothing() -> None:
    s = Session(cfg(), random.Random(1))
    s.start(0)
    s.stop(1)
    assert st(s) is State.IDLE and not s.wants_connect
    assert s.data_to_send() == b""
    downs = [e for e in s.events() if isinstance(e, SessionDown)]
    assert [(d.reason, d.notification) for d in downs] == [(DownReason.ADMIN_STOP, None)]
    # A late connection is refused by Idle.
    s.connection_made(2, outgoing=True)
    assert st(s) is State.IDLE and s.wants_close
    assert s.data_to_send() == b""


def test_stop_cancels_pending_restart() -> None:
    net, a, _b, link = pair()
    link.close()
    assert st(a) is State.IDLE and a.next_deadline() is not None
    (_down,) = net.downs(a) or [e for e in a.events() if isinstance(e, SessionDown)]
    a.stop(net.now)
    assert a.next_deadline() is None


def test_tcp_closed_by_peer() -> None:
    net, a, b, link = pair()
    link.close()
    net._drain()
    for s in (a, b):
        (down,) = net.downs(s)
        assert down.reason is DownReason.TCP_CLOSED and down.notification is None
        assert st(s) is State.IDLE


def test_connection_lost_in_open_sent_goes_to_active() -> None:
    net, a, _b, link = pair(establish=False)
    link.close()
    net._drain()
    assert st(a) is State.ACTIVE
    assert net.downs(a) == []
    nxt = a.next_deadline()
    assert nxt is not None
    net.advance(nxt - net.now)
    assert st(a) is State.CONNECT and a.wants_connect


def test_second_connection_needs_its_own_session() -> None:
    net, a, _b, _link = pair()
    with pytest.raises(LocalUsageError):
        a.connection_made(net.now, outgoing=False)


def test_every_idle_entry_has_exactly_one_session_down() -> None:
    net, a, b, _link = pair()
    a.stop(net.now)
    net.pump()
    net.advance(5)
    for s in (a, b):
        events = net.events(s)
        into_idle = [
            i for i, e in enumerate(events) if isinstance(e, StateChanged) and e.new is State.IDLE
        ]
        downs = [i for i, e in enumerate(events) if isinstance(e, SessionDown)]
        assert [i + 1 for i in into_idle] == downs


# ----------------------------------------------------------------------------- sending


def test_send_requires_established() -> None:
    s = Session(cfg(), random.Random(1))
    with pytest.raises(LocalUsageError):
        s.send_update_bytes([b"x"])
    with pytest.raises(LocalUsageError):
        s.send_update(Update())
    with pytest.raises(LocalUsageError):
        s.send_end_of_rib(IPV4_UNICAST)
    with pytest.raises(LocalUsageError):
        s.send_route_refresh(IPV4_UNICAST)


def test_end_of_rib_and_route_refresh() -> None:
    net, a, b, _link = pair()
    a.send_end_of_rib(IPV4_UNICAST)
    a.send_route_refresh(IPV4_UNICAST)
    with pytest.raises(LocalUsageError):
        a.send_route_refresh(IPV6_UNICAST)  # not negotiated
    net.pump()
    assert net.of(b, EndOfRibReceived) == [EndOfRibReceived(IPV4_UNICAST)]
    assert not net.of(b, UpdateReceived)  # the marker is not also an UpdateReceived
    assert net.of(b, RouteRefreshReceived) == [RouteRefreshReceived(IPV4_UNICAST, 0)]
    # A refresh for a family that was not negotiated is ignored (RFC 2918 §4).
    b.receive_data(encode_message(RouteRefresh(IPV6_UNICAST), DEFAULT), net.now)
    assert not [e for e in b.events() if isinstance(e, RouteRefreshReceived)]
    assert st(b) is State.ESTABLISHED


def test_route_refresh_needs_the_peers_capability() -> None:
    _net, a, _b, _ = pair(b_cfg=cfg(65002, ID_B, 65001, passive=True, route_refresh=False))
    with pytest.raises(LocalUsageError):
        a.send_route_refresh(IPV4_UNICAST)


def _big_backlog(s: Session, prefixes: int) -> list[bytes]:
    assert s.negotiated is not None
    nlri = [Nlri(Prefix(1, 32, (10 << 24) + i)) for i in range(prefixes)]
    attrs = AttrSet.make(next_hop=IPv4Address("192.0.2.1"), as_path=AsPath.sequence(65001))
    return pack_announcements(IPV4_UNICAST, attrs, nlri, s.negotiated)


def test_keepalive_not_starved_by_100k_prefixes() -> None:
    net, a, b, link = pair()
    msgs = _big_backlog(a, 100_000)
    a.send_update_bytes(msgs)
    assert a.has_pending_updates()
    # The transport is paused (e.g. TCP window full): the adapter asks for control bytes
    # only. KEEPALIVEs still go out and B's hold timer never fires.
    link.limit = 0
    net.advance(600)
    assert st(a) is State.ESTABLISHED and st(b) is State.ESTABLISHED
    assert a.has_pending_updates()
    keepalives = [m for m in link.sent_by(a) if m.msg_type == MessageType.KEEPALIVE]
    assert len(keepalives) >= 600 / 30
    assert not net.of(b, UpdateReceived)
    # With a trickle of UPDATE bytes, the KEEPALIVE is at the head of the first write after
    # the keepalive timer fires, ahead of the backlog.
    deadline = a.next_deadline()
    assert deadline is not None
    a.handle_timer(deadline)
    out = a.data_to_send(limit=4096)
    assert out[:HEADER_LEN] == encode_message(Keepalive(), DEFAULT)
    assert out[HEADER_LEN + 18] == MessageType.UPDATE
    b.receive_data(out, deadline)
    # Drain everything: B receives all 100k prefixes.
    link.limit = 64 * 1024
    net.pump()
    got = sum(len(e.update.nlri) for e in net.of(b, UpdateReceived))
    assert got == 100_000
    assert not a.has_pending_updates()


def test_data_to_send_limit_never_splits_messages() -> None:
    _net, a, _b, _ = pair(cfg(extended_message=False), None)
    msgs = _big_backlog(a, 5_000)
    a.send_update_bytes(msgs)
    chunk = a.data_to_send(limit=1)  # at least one whole message
    assert chunk == msgs[0]
    chunk = a.data_to_send(limit=len(msgs[1]) + len(msgs[2]) + 1)
    assert chunk == msgs[1] + msgs[2]
    assert a.data_to_send(limit=0) == b""


# ----------------------------------------------------------------------------- collision


@pytest.mark.parametrize(
    ("local", "remote", "close"),
    [
        ("10.0.0.1", "10.0.0.2", Initiator.LOCAL),
        ("10.0.0.2", "10.0.0.1", Initiator.REMOTE),
        # Unsigned 32-bit comparison: 200.0.0.1 > 100.0.0.1 although int8 would wrap.
        ("200.0.0.1", "100.0.0.1", Initiator.REMOTE),
        ("1.255.255.255", "2.0.0.0", Initiator.LOCAL),
        ("255.255.255.255", "0.0.0.1", Initiator.REMOTE),
    ],
)
def test_collision_arbiter_by_identifier(local: str, remote: str, close: Initiator) -> None:
    assert connection_to_close(IPv4Address(local), IPv4Address(remote)) is close
    # Both ends agree on the TCP connection: what one calls LOCAL the other calls REMOTE.
    assert connection_to_close(IPv4Address(remote), IPv4Address(local)) is close.other


def test_collision_equal_identifiers_use_the_as_number() -> None:
    # RFC 6286 §2.3: keep the connection initiated by the speaker with the larger AS.
    assert connection_to_close(ID_A, ID_A, local_asn=1, remote_asn=2) is Initiator.LOCAL
    assert connection_to_close(ID_A, ID_A, local_asn=2, remote_asn=1) is Initiator.REMOTE
    with pytest.raises(ValueError):
        connection_to_close(ID_A, ID_A)


def test_collision_with_established_closes_the_new_connection() -> None:
    r = resolve(ID_B, ID_A, Initiator.LOCAL, existing_established=True)
    assert r.close is Initiator.REMOTE
    r = resolve(ID_A, ID_B, Initiator.REMOTE, existing_established=True)
    assert r.close is Initiator.LOCAL
    # Without it, the identifier rule (both ends agree on it).
    assert resolve(ID_A, ID_B, Initiator.REMOTE).close is Initiator.LOCAL
    assert resolve(ID_B, ID_A, Initiator.REMOTE).close is Initiator.REMOTE


def _arbiter(net: Net, local_id: IPv4Address, sessions: list[Session]) -> Callable[[], None]:
    """The speaker-side arbiter: when both connections to the peer know the peer's OPEN,
    close the one §6.8 says to."""

    def run() -> None:
        live = [
            s
            for s in sessions
            if s.remote_open is not None and s.state in (State.OPEN_CONFIRM, State.ESTABLISHED)
        ]
        if len(live) < 2:
            return
        first, second = live
        assert first.remote_open is not None
        res = resolve(
            local_id,
            first.remote_open.router_id,
            Initiator.of(bool(first.outgoing)),
            # A simultaneous open: one end may already be Established on the connection
            # the other end is about to close, so only the identifier rule is safe.
            existing_established=False,
        )
        loser = first if Initiator.of(bool(first.outgoing)) is res.close else second
        loser.collision_dump(net.now)

    return run


@pytest.mark.parametrize(("id_a", "id_b"), [(ID_A, ID_B), (ID_B, ID_A)])
def test_collision_both_sides_connect_at_once(id_a: IPv4Address, id_b: IPv4Address) -> None:
    net = Net()
    a_out = Session(cfg(65001, id_a, 65002), random.Random(1))
    a_in = Session(cfg(65001, id_a, 65002, passive=True), random.Random(2))
    b_out = Session(cfg(65002, id_b, 65001), random.Random(3))
    b_in = Session(cfg(65002, id_b, 65001, passive=True), random.Random(4))
    net.add(a_out, a_in, b_out, b_in)
    for s in (a_out, a_in, b_out, b_in):
        s.start(0)
    arb_a = _arbiter(net, id_a, [a_out, a_in])
    arb_b = _arbiter(net, id_b, [b_out, b_in])

    def both() -> None:
        arb_a()
        arb_b()

    net.after_round = both
    link1 = net.connect(a_out, b_in)  # A's connection
    link2 = net.connect(b_out, a_in)  # B's connection
    net.pump()
    # The connection initiated by the higher BGP Identifier survives.
    survivor, loser = (link2, link1) if int(id_b) > int(id_a) else (link1, link2)
    assert st(survivor.x) is State.ESTABLISHED and st(survivor.y) is State.ESTABLISHED
    assert loser.closed
    for s in (loser.x, loser.y):
        (down,) = net.downs(s)
        assert st(s) is State.IDLE
        assert down.reason in (DownReason.COLLISION, DownReason.NOTIFICATION_RECEIVED)
        assert s.next_deadline() is None or down.reason is DownReason.NOTIFICATION_RECEIVED
    # Both ends of the losing connection decided to dump it: Cease/7 on the wire.
    notes = link_notes = loser.notifications_from(loser.x) + loser.notifications_from(loser.y)
    assert link_notes
    assert all(
        (n.code, n.subcode) == (ErrorCode.CEASE, CeaseSubcode.CONNECTION_COLLISION_RESOLUTION)
        for n in notes
    )
    assert any(d.reason is DownReason.COLLISION for s in (loser.x, loser.y) for d in net.downs(s))
    assert not net.downs(survivor.x) and not net.downs(survivor.y)
