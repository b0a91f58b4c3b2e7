"""Malformed-message generator and RFC oracle shared by `bench/fuzz.py` and the CI test.

A *case* is the octets one peer sends in one go (one or more BGP messages, possibly
broken), the *stage* of the receiving session (Established, or OpenSent for OPENs) and
what RFC 4271 §6 / RFC 7606 / RFC 7313 allow as the receiver's answer. Cases are built by
structured mutation of valid messages (encoded by roost and, independently, by scapy's
BGP layer) and checked in two ways:

* the codec alone (`FrameBuffer` + `decode_message` under several negotiated contexts):
  anything other than `ProtocolError` escaping is a bug;
* a live pure `Session` (`SessionRig`): the outcome (accepted, treat-as-withdraw,
  attribute discard, NOTIFICATION sent, NOTIFICATION received) must be one the mutation
  class allows, and an independent reference reader of the header and UPDATE/OPEN length
  fields (written from the RFC text, not from roost's code) pins the exact
  NOTIFICATION for header errors.

Everything is deterministic in (seed, index): `make_case(pool, seed, i)` rebuilds case i.
"""

from __future__ import annotations

import random
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address
from typing import Any

from bgp.errors import ProtocolError
from bgp.events import SessionDown, UpdateReceived
from bgp.fsm import State
from bgp.session import Session, SessionConfig
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, AddPathMode, MessageType
from bgp.wire.attributes import Aggregator, AsPath, AsPathSegment, AttrSet, LargeCommunity
from bgp.wire.capabilities import AddPathFamily
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_message, encode_message
from bgp.wire.model import (
    Keepalive,
    Message,
    MpReach,
    MpUnreach,
    Negotiated,
    Notification,
    RouteRefresh,
    Update,
)
from bgp.wire.prefix import Nlri, Prefix

__all__ = [
    "Case",
    "Expect",
    "Outcome",
    "Pool",
    "Profile",
    "SessionRig",
    "Stats",
    "check_outcome",
    "decode_only",
    "make_case",
    "make_pool",
    "minimise",
    "run_case",
]

MARKER = b"\xff" * 16
HDR = struct.Struct("!16sHB")
LOCAL_ASN, PEER_ASN = 65001, 65002
LOCAL_ID, PEER_ID = IPv4Address("10.0.0.1"), IPv4Address("10.0.0.2")

# Outcome kinds, strongest last (one case = the strongest over its messages).
ACCEPTED, DISCARD, WITHDRAW, PEER_NOTIFICATION, NOTIFICATION = (
    "accepted",
    "attribute-discard",
    "treat-as-withdraw",
    "notification-received",
    "notification-sent",
)
_RANK = {ACCEPTED: 0, DISCARD: 1, WITHDRAW: 2, PEER_NOTIFICATION: 3, NOTIFICATION: 4}
ESTABLISHED, OPEN_SENT = "established", "opensent"

# RFC 4271 §6 (and RFC 5492, RFC 6608, RFC 7313): the (code, subcode) pairs a receiver
# may send for a message of each type. OPEN subcode 5 is deprecated, UPDATE subcode 7
# too (RFC 4271 Appendix A); OPEN subcode 0 (Unspecific) is what roost, FRR and GoBGP
# send for a malformed optional parameter or capability, for which §6.2 names none.
HEADER_ERRORS = frozenset({(1, 1), (1, 2), (1, 3)})
OPEN_ERRORS = frozenset({(2, 0), (2, 1), (2, 2), (2, 3), (2, 4), (2, 6), (2, 7)})
UPDATE_ERRORS = frozenset((3, s) for s in (1, 2, 3, 4, 5, 6, 8, 9, 10, 11))
RR_ERRORS = frozenset({(7, 1)})
FSM_OPENSENT, FSM_ESTABLISHED = (5, 1), (5, 3)


def allowed_for(msg_type: int, stage: str) -> frozenset[tuple[int, int]]:
    """Every NOTIFICATION RFC 4271 §6/§8 allows for a (well-framed) message of `msg_type`
    received in `stage` (§8.2.2: an unexpected message is an FSM error, RFC 6608)."""
    if msg_type == MessageType.OPEN:
        fsm = FSM_ESTABLISHED if stage == ESTABLISHED else FSM_OPENSENT
        return OPEN_ERRORS | {fsm}
    if msg_type == MessageType.UPDATE:
        return UPDATE_ERRORS | ({FSM_OPENSENT} if stage == OPEN_SENT else frozenset())
    if msg_type == MessageType.ROUTE_REFRESH:
        return RR_ERRORS | ({FSM_OPENSENT} if stage == OPEN_SENT else frozenset())
    if msg_type == MessageType.KEEPALIVE and stage == OPEN_SENT:
        return frozenset({FSM_OPENSENT})
    return frozenset()


# --------------------------------------------------------------------------- records


@dataclass(frozen=True, slots=True)
class Expect:
    """What the receiver may do. `anything`: a blind mutation, only the generic RFC
    rules (reference reader, per-type NOTIFICATION sets, data formats) apply."""

    kinds: frozenset[str] = frozenset()
    notifications: frozenset[tuple[int, int]] = frozenset()
    data: bytes | None = None  # the exact NOTIFICATION data, when the RFC fixes it
    anything: bool = False


ANY = Expect(anything=True)


def only(*pairs: tuple[int, int], data: bytes | None = None) -> Expect:
    return Expect(frozenset({NOTIFICATION}), frozenset(pairs), data)


def kinds(*names: str, pairs: Iterable[tuple[int, int]] = ()) -> Expect:
    ks = frozenset(names) | ({NOTIFICATION} if pairs else frozenset())
    return Expect(ks, frozenset(pairs))


@dataclass(frozen=True, slots=True)
class Case:
    index: int
    mutation: str  # mutation class
    source: str  # "roost" or "scapy": which encoder built the base message
    profile: int
    stage: str
    wire: bytes
    expect: Expect


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    code: int = 0
    subcode: int = 0
    data: bytes = b""

    def label(self) -> str:
        return f"{self.kind} {self.code}/{self.subcode}" if self.kind == NOTIFICATION else self.kind


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True, slots=True)
class Profile:
    """One pair of session configurations: `local` receives the fuzz, `peer` is the
    other end of the handshake."""

    name: str
    local: SessionConfig
    peer: SessionConfig
    asn4: bool
    addpath: bool
    max_len: int


def profiles() -> tuple[Profile, ...]:
    # 0: like a roost daemon and a plain eBGP peer: 4-octet AS, 4096-octet messages.
    local0 = SessionConfig(
        LOCAL_ASN, LOCAL_ID, PEER_ASN, passive=True, families=(IPV4_UNICAST, IPV6_UNICAST)
    )
    peer0 = SessionConfig(
        PEER_ASN, PEER_ID, LOCAL_ASN, extended_message=False, families=(IPV4_UNICAST, IPV6_UNICAST)
    )
    # 1: a 2-octet-AS peer (AS4_PATH / AS4_AGGREGATOR, RFC 6793), RFC 8654 extended
    # messages, ADD-PATH in both directions (RFC 7911).
    ap = tuple(AddPathFamily(f, AddPathMode.BOTH) for f in (IPV4_UNICAST, IPV6_UNICAST))
    local1 = SessionConfig(
        LOCAL_ASN,
        LOCAL_ID,
        PEER_ASN,
        passive=True,
        addpath=ap,
        families=(IPV4_UNICAST, IPV6_UNICAST),
    )
    peer1 = SessionConfig(
        PEER_ASN,
        PEER_ID,
        LOCAL_ASN,
        four_octet_as=False,
        addpath=ap,
        families=(IPV4_UNICAST, IPV6_UNICAST),
    )
    return (
        Profile("asn4", local0, peer0, asn4=True, addpath=False, max_len=4096),
        Profile("asn2-addpath-extmsg", local1, peer1, asn4=False, addpath=True, max_len=65535),
    )


def context(p: Profile) -> Negotiated:
    fams = frozenset({IPV4_UNICAST, IPV6_UNICAST})
    return Negotiated(
        asn4=p.asn4,
        families=fams,
        addpath_receive=fams if p.addpath else frozenset(),
        addpath_send=fams if p.addpath else frozenset(),
        extended_message=p.max_len > 4096,
    )


# --------------------------------------------------------------------------- live session


class SessionRig:
    """An Established (or OpenSent) receiving `Session` per profile.

    The first one comes from a real back-to-back handshake of two sessions with a hand
    clock; the peer's octets of that handshake (OPEN, KEEPALIVE) are kept and replayed
    into a fresh session whenever a case ended the previous one.
    """

    def __init__(self, profile: Profile) -> None:
        self.profile = profile
        self.now = 1000.0
        self.replay = self._handshake()
        self._session: Session | None = None
        self.resets = 0

    def _handshake(self) -> bytes:
        p = self.profile
        a = Session(p.peer, random.Random(1))
        b = Session(p.local, random.Random(2))
        now = self.now
        b.start(now)
        a.start(now)
        b.connection_made(now, outgoing=False)
        a.connection_made(now, outgoing=True)
        sent_by_a = bytearray()
        for _ in range(6):
            da, db = a.data_to_send(), b.data_to_send()
            sent_by_a += da
            if db:
                a.receive_data(db, now)
            if da:
                b.receive_data(da, now)
        if a.state is not State.ESTABLISHED or b.state is not State.ESTABLISHED:
            raise RuntimeError(f"handshake failed: {a.state} / {b.state}")
        return bytes(sent_by_a)

    def fresh(self, stage: str) -> Session:
        s = Session(self.profile.local, random.Random(3))
        s.start(self.now)
        s.connection_made(self.now, outgoing=False)
        if stage == ESTABLISHED:
            s.receive_data(self.replay, self.now)
            assert s.state is State.ESTABLISHED, s.state
        s.events()
        s.data_to_send()
        return s

    def session(self, stage: str) -> Session:
        if stage == OPEN_SENT:
            self.resets += 1
            self._session = None
            return self.fresh(stage)
        if self._session is None or self._session.state is not State.ESTABLISHED:
            self.resets += 1
            self._session = self.fresh(stage)
        return self._session

    def drop(self) -> None:
        self._session = None


def _sent_notification(out: bytes) -> Notification | None:
    fb = FrameBuffer(max_len=65535)
    fb.feed(out)
    while (frame := fb.next_frame()) is not None:
        if frame[0] == MessageType.NOTIFICATION:
            body = bytes(frame[1])
            return Notification(body[0], body[1], body[2:])
    return None


def run_case(rig: SessionRig, case: Case) -> tuple[Outcome, Session]:
    """Feed the case to a live session; the outcome and the session after it."""
    s = rig.session(case.stage)
    s.receive_data(case.wire, rig.now)
    events = s.events()
    note = _sent_notification(s.data_to_send())
    if note is not None:
        rig.drop()
        return Outcome(NOTIFICATION, note.code, note.subcode, note.data), s
    kind = ACCEPTED
    for ev in events:
        if isinstance(ev, SessionDown):
            if ev.notification is not None:
                kind = PEER_NOTIFICATION
            rig.drop()
        elif isinstance(ev, UpdateReceived):
            u = ev.update
            k = (
                WITHDRAW
                if u.treat_as_withdraw is not None
                else (DISCARD if u.discarded else ACCEPTED)
            )
            if _RANK[k] > _RANK[kind]:
                kind = k
    if s.state is not State.ESTABLISHED and case.stage == ESTABLISHED:
        rig.drop()
    if reference(case.wire, max_len_of(case)).incomplete:
        rig.drop()  # part of a message stays buffered: start the next case afresh
    return Outcome(kind), s


# --------------------------------------------------------------------------- reference


@dataclass(frozen=True, slots=True)
class RefFrame:
    length: int
    msg_type: int
    body: bytes


@dataclass(frozen=True, slots=True)
class Reference:
    """What an independent reading of the stream says (RFC 4271 §4.1, §6.1)."""

    frames: tuple[RefFrame, ...]
    header_error: tuple[int, int, bytes] | None  # at the frame after `frames`
    incomplete: bool  # octets left that do not make a whole message


_MIN_LEN = {1: 29, 2: 23, 3: 21, 4: 19, 5: 23}


def reference(wire: bytes, max_len: int) -> Reference:
    frames: list[RefFrame] = []
    pos = 0
    while pos < len(wire):
        if len(wire) - pos < 19:
            return Reference(tuple(frames), None, True)
        if wire[pos : pos + 16] != MARKER:
            return Reference(tuple(frames), (1, 1, b""), False)
        length, msg_type = struct.unpack_from("!HB", wire, pos + 16)
        bad_len = (1, 2, length.to_bytes(2, "big"))
        if length < 19 or length > max_len:
            return Reference(tuple(frames), bad_len, False)
        if msg_type not in _MIN_LEN:
            return Reference(tuple(frames), (1, 3, bytes((msg_type,))), False)
        if length < _MIN_LEN[msg_type] or (msg_type == 4 and length != 19):
            return Reference(tuple(frames), bad_len, False)
        if pos + length > len(wire):
            return Reference(tuple(frames), None, True)
        frames.append(RefFrame(length, msg_type, wire[pos + 19 : pos + length]))
        pos += length
    return Reference(tuple(frames), None, False)


def _attr_data_ok(data: bytes) -> bool:
    """RFC 4271 §6.3: the data of these errors is the attribute (type, length, value)."""
    if len(data) < 3:
        return False
    ext = data[0] & 0x10
    if ext:
        return len(data) >= 4 and struct.unpack_from("!H", data, 2)[0] == len(data) - 4
    return data[2] == len(data) - 3


def _after_open(wire: bytes, max_len: int) -> int:
    """RFC 8654 §3/§4: once an OPEN with the Extended Message capability (6) has been
    accepted in OpenSent, the messages after it may be 65535 octets long."""
    if max_len >= 65535 or len(wire) < 29 or wire[18] != MessageType.OPEN:
        return max_len
    length = int.from_bytes(wire[16:18], "big")
    opt = wire[29:length]
    ext = wire[28] == 255 and opt[:1] == b"\xff"  # RFC 9072 §2 framing
    pos, hdr = (3, 3) if ext else (0, 2)
    while pos + hdr <= len(opt):
        plen = int.from_bytes(opt[pos + 1 : pos + hdr], "big")
        caps = opt[pos + hdr : pos + hdr + plen]
        cpos = 0
        while cpos + 2 <= len(caps):
            if caps[cpos] == 6:  # whatever its length: lenient readers accept it
                return 65535
            cpos += 2 + caps[cpos + 1]
        pos += hdr + plen
    return max_len


def check_outcome(case: Case, out: Outcome, max_len: int) -> str | None:
    """None when the outcome is one the RFCs allow for this case, else why not."""
    problem = _check(case, out, reference(case.wire, max_len))
    if problem is not None and case.stage == OPEN_SENT:
        # The other legitimate reading: the OPEN was accepted, RFC 8654 applies after it.
        extended = _after_open(case.wire, max_len)
        if extended != max_len and _check(case, out, reference(case.wire, extended)) is None:
            return None
    return problem


def _check(case: Case, out: Outcome, ref: Reference) -> str | None:
    e = case.expect
    types = {f.msg_type for f in ref.frames}
    if out.kind == NOTIFICATION:
        pair = (out.code, out.subcode)
        if pair[0] == 1:
            if ref.header_error is None:
                return f"header error {pair} but the reference reader finds none"
            if (pair[0], pair[1], out.data) != ref.header_error and pair != (1, 2):
                return f"header error {pair} {out.data.hex()} != reference {ref.header_error}"
        if pair == (1, 2):
            if len(out.data) != 2:
                return "Bad Message Length without the 2-octet length (RFC 4271 §6.1)"
            lengths = {f.length for f in ref.frames}
            if ref.header_error is not None and ref.header_error[:2] == (1, 2):
                lengths.add(int.from_bytes(ref.header_error[2], "big"))
            if int.from_bytes(out.data, "big") not in lengths:
                return f"Bad Message Length data {out.data.hex()} is no length field seen"
        elif pair[0] != 1:
            allowed = frozenset().union(*(allowed_for(t, case.stage) for t in types))
            if pair not in allowed:
                return f"NOTIFICATION {pair} not allowed for message types {sorted(types)}"
            if ref.header_error is not None and not ref.frames:
                return f"NOTIFICATION {pair} where the header is bad: {ref.header_error}"
        if pair == (2, 1) and out.data != b"\x00\x04":
            return "Unsupported Version Number without version 4 in data (RFC 4271 §6.2)"
        if pair in ((3, 2), (3, 4), (3, 5), (3, 9)) and not _attr_data_ok(out.data):
            return f"UPDATE error {pair} data is not the attribute: {out.data.hex()}"
        if pair == (3, 3) and (len(out.data) != 1 or out.data[0] not in (1, 2, 3)):
            return f"Missing Well-known Attribute data {out.data.hex()}"
        if pair == (7, 1) and out.data[:16] != MARKER:
            return "Invalid Message Length data is not the ROUTE-REFRESH (RFC 7313 §5)"
        if e.anything:
            return None
        if pair not in e.notifications and not (pair[0] == 1 and ref.header_error):
            return f"NOTIFICATION {pair}, expected {sorted(e.notifications) or sorted(e.kinds)}"
        if e.data is not None and out.data != e.data:
            return f"NOTIFICATION data {out.data.hex()}, expected {e.data.hex()}"
        return None
    # No NOTIFICATION sent.
    if ref.header_error is not None and out.kind != PEER_NOTIFICATION:
        return f"{out.kind} although the reference reader finds {ref.header_error}"
    if out.kind == PEER_NOTIFICATION and MessageType.NOTIFICATION not in types:
        return "session went down on a NOTIFICATION that the stream does not contain"
    if ref.incomplete and not ref.frames and out.kind != ACCEPTED:
        return f"{out.kind} for an incomplete message"
    if e.anything or out.kind in e.kinds:
        return None
    if ref.incomplete and not ref.frames:
        return None  # waiting for the rest is the only possible answer
    return f"{out.kind}, expected {sorted(e.kinds)} {sorted(e.notifications)}"


# --------------------------------------------------------------------------- codec alone

_DECODE_CTXS = (
    Negotiated(asn4=True),
    Negotiated(asn4=False, extended_message=True),
    Negotiated(
        asn4=True,
        addpath_receive=frozenset({IPV4_UNICAST, IPV6_UNICAST}),
        extended_next_hop=frozenset({IPV4_UNICAST}),
    ),
)


def decode_only(wire: bytes, max_len: int) -> int:
    """Frame and decode under every context; returns messages decoded. Anything but
    `ProtocolError` propagates (a bug)."""
    fb = FrameBuffer(max_len=max_len)
    fb.feed(wire)
    n = 0
    try:
        while (frame := fb.next_frame()) is not None:
            for ctx in _DECODE_CTXS:
                try:
                    decode_message(frame[0], frame[1], ctx)
                    n += 1
                except ProtocolError:
                    pass
    except ProtocolError:
        pass
    return n


# --------------------------------------------------------------------------- base messages


@dataclass(frozen=True, slots=True)
class Base:
    kind: str  # "update", "open", "keepalive", "notification", "route-refresh"
    source: str
    wire: bytes
    nlri: bool = False  # UPDATE with IPv4 NLRI in its NLRI field


@dataclass
class Pool:
    """Valid messages per profile to mutate."""

    by_profile: list[dict[str, list[Base]]] = field(default_factory=list)


def _prefixes(rng: random.Random, v6: bool, n: int) -> tuple[Nlri, ...]:
    out = []
    for _ in range(n):
        if v6:
            length = rng.choice((32, 48, 56, 64, 128))
            addr = (0x20010DB8 << 96 | rng.getrandbits(96)) >> (128 - length) << (128 - length)
            out.append(Nlri(Prefix(2, length, addr), rng.randrange(1, 5)))
        else:
            length = rng.choice((8, 16, 22, 24, 24, 26, 32, 0))
            addr = rng.getrandbits(32) >> (32 - length) << (32 - length) if length else 0
            out.append(Nlri(Prefix(1, length, addr), rng.randrange(1, 5)))
    return tuple(out)


def _attrset(rng: random.Random, nh: bool, ibgp_like: bool) -> AttrSet:
    asns = tuple(
        rng.choice((65002, 64512, 4200000001, 174, 3356)) for _ in range(rng.randrange(1, 6))
    )
    segs = [AsPathSegment(2, asns)]
    if rng.random() < 0.2:
        segs.append(AsPathSegment(1, (65010, 65011)))
    return AttrSet(
        origin=rng.randrange(3),
        as_path=AsPath(tuple(segs)),
        next_hop=IPv4Address(rng.choice(("192.0.2.1", "10.1.2.3", "172.16.0.9"))) if nh else None,
        med=rng.choice((None, 0, 50)),
        local_pref=rng.choice((None, 100)) if ibgp_like else None,
        atomic_aggregate=rng.random() < 0.2,
        aggregator=Aggregator(rng.choice((65002, 4200000001)), IPv4Address("10.9.9.9"))
        if rng.random() < 0.3
        else None,
        communities=tuple(rng.getrandbits(32) | 0x10000 for _ in range(rng.randrange(0, 4))),
        large_communities=(LargeCommunity(65002, 1, 2),) if rng.random() < 0.2 else (),
        ext_communities=(0x0002FDEA00000001,) if rng.random() < 0.2 else (),
    )


def _roost_bases(rng: random.Random, p: Profile, n: int) -> dict[str, list[Base]]:
    ctx = context(p)
    out: dict[str, list[Base]] = {
        k: [] for k in ("update", "open", "keepalive", "notification", "route-refresh")
    }

    def add(kind: str, msg: Message, nlri: bool = False) -> None:
        out[kind].append(Base(kind, "roost", encode_message(msg, ctx), nlri))

    for _ in range(n):
        shape = rng.randrange(5)
        if shape <= 1:  # IPv4 NLRI, maybe withdrawals
            nl = _prefixes(rng, False, rng.randrange(1, 8))
            wd = _prefixes(rng, False, rng.randrange(0, 3))
            add("update", Update(withdrawn=wd, attrs=_attrset(rng, True, False), nlri=nl), True)
        elif shape == 2:  # IPv6 in MP_REACH_NLRI
            nl = _prefixes(rng, True, rng.randrange(1, 6))
            ll = IPv6Address("fe80::1") if rng.random() < 0.5 else None
            mp = MpReach(IPV6_UNICAST, IPv6Address("2001:db8::1"), nl, ll)
            add("update", Update(attrs=_attrset(rng, False, False), mp_reach=mp))
        elif shape == 3:  # withdrawals only (IPv4 field and/or MP_UNREACH_NLRI)
            wd = _prefixes(rng, False, rng.randrange(1, 5))
            mpu = MpUnreach(IPV6_UNICAST, _prefixes(rng, True, 2)) if rng.random() < 0.5 else None
            add("update", Update(withdrawn=wd, mp_unreach=mpu))
        else:  # End-of-RIB, IPv4 and IPv6 (RFC 4724 §2)
            if rng.random() < 0.5:
                add("update", Update())
            else:
                add("update", Update(mp_unreach=MpUnreach(IPV6_UNICAST, ())))
    add("open", p.peer.build_open())
    add("keepalive", Keepalive())
    for code, sub, data in (
        (6, 2, b"\x05hello"),
        (6, 4, b""),
        (3, 1, b""),
        (4, 0, b""),
        (2, 2, b""),
        (1, 2, b"\x00\x05"),
        (6, 9, b"\x06\x02"),
    ):
        add("notification", Notification(code, sub, data))
    for fam in (IPV4_UNICAST, IPV6_UNICAST):
        for subtype in (0, 1, 2):
            add("route-refresh", RouteRefresh(fam, subtype))
    return out


def _scapy_bases(rng: random.Random, p: Profile, n: int) -> dict[str, list[Base]]:
    """Valid messages built by scapy.contrib.bgp (an independent encoder)."""
    from scapy.main import load_contrib

    load_contrib("bgp")
    import scapy.contrib.bgp as sb

    old = sb.bgp_module_conf.use_2_bytes_asn
    sb.bgp_module_conf.use_2_bytes_asn = not p.asn4
    out: dict[str, list[Base]] = {
        "update": [],
        "open": [],
        "keepalive": [],
        "notification": [],
        "route-refresh": [],
    }
    try:
        for _ in range(n):
            asns = [rng.choice((65002, 64512, 3356)) for _ in range(rng.randrange(1, 5))]
            path: Any
            if p.asn4:
                seg = sb.BGPPAAS4BytesPath.ASPathSegment(segment_type=2, segment_value=asns)
                path = sb.BGPPAAS4BytesPath(segments=[seg])
            else:
                seg2 = sb.BGPPAASPath.ASPathSegment(segment_type=2, segment_value=asns)
                path = sb.BGPPAASPath(segments=[seg2])
            attrs = [
                sb.BGPPathAttr(
                    type_flags=0x40, type_code=1, attribute=sb.BGPPAOrigin(origin=rng.randrange(3))
                ),
                sb.BGPPathAttr(type_flags=0x40, type_code=2, attribute=path),
            ]
            v6 = rng.random() < 0.3 and not p.addpath
            if v6:
                mp = sb.BGPPAMPReachNLRI(
                    afi=2,
                    safi=1,
                    nh_addr_len=16,
                    nh_v6_addr="2001:db8::7",
                    reserved=0,
                    nlri=[sb.BGPNLRI_IPv6(prefix=f"2001:db8:{rng.randrange(1, 999):x}::/48")],
                )
                attrs.insert(0, sb.BGPPathAttr(type_flags=0x80, type_code=14, attribute=mp))
            else:
                attrs.append(
                    sb.BGPPathAttr(
                        type_flags=0x40,
                        type_code=3,
                        attribute=sb.BGPPANextHop(next_hop="192.0.2.77"),
                    )
                )
            if rng.random() < 0.5:
                attrs.append(
                    sb.BGPPathAttr(
                        type_flags=0x80,
                        type_code=4,
                        attribute=sb.BGPPAMultiExitDisc(med=rng.randrange(99)),
                    )
                )
            if rng.random() < 0.5:
                attrs.append(
                    sb.BGPPathAttr(
                        type_flags=0xC0,
                        type_code=8,
                        attribute=sb.BGPPACommunity(community=0xFDEA0000 | rng.randrange(999)),
                    )
                )
            nlri = (
                []
                if v6 or p.addpath
                else [
                    sb.BGPNLRI_IPv4(prefix=f"10.{rng.randrange(256)}.{rng.randrange(256)}.0/24")
                    for _ in range(rng.randrange(1, 4))
                ]
            )
            if not v6 and p.addpath:
                # scapy writes no path identifiers: keep it to MP-free withdraw-less
                # updates without NLRI (its ADD-PATH support is separate).
                nlri = []
            pkt = sb.BGPHeader(type=2) / sb.BGPUpdate(path_attr=attrs, nlri=nlri)
            out["update"].append(Base("update", "scapy", bytes(pkt), bool(nlri)))
        caps = [
            sb.BGPOptParam(param_value=sb.BGPCapMultiprotocol(afi=1, safi=1)),
            sb.BGPOptParam(param_value=sb.BGPCapMultiprotocol(afi=2, safi=1)),
            sb.BGPOptParam(param_value=sb.BGPCapGeneric(code=2)),
        ]
        if p.asn4:
            caps.append(sb.BGPOptParam(param_value=sb.BGPCapFourBytesASN(asn=PEER_ASN)))
        pkt = sb.BGPHeader(type=1) / sb.BGPOpen(
            version=4, my_as=PEER_ASN, hold_time=90, bgp_id=str(PEER_ID), opt_params=caps
        )
        out["open"].append(Base("open", "scapy", bytes(pkt)))
        out["keepalive"].append(Base("keepalive", "scapy", bytes(sb.BGPHeader(type=4))))
        pkt = sb.BGPHeader(type=3) / sb.BGPNotification(error_code=6, error_subcode=2)
        out["notification"].append(Base("notification", "scapy", bytes(pkt)))
        for sub in (0, 1, 2):
            pkt = sb.BGPHeader(type=5) / sb.BGPRouteRefresh(afi=1, subtype=sub, safi=1)
            out["route-refresh"].append(Base("route-refresh", "scapy", bytes(pkt)))
    finally:
        sb.bgp_module_conf.use_2_bytes_asn = old
    return out


def make_pool(seed: int, n: int = 200, scapy: bool = True) -> Pool:
    """`n` roost-encoded UPDATEs (and n/4 scapy-built ones) per profile plus the other
    message types. Deterministic in `seed`."""
    pool = Pool()
    for i, p in enumerate(profiles()):
        rng = random.Random(seed * 7919 + i)
        bases = _roost_bases(rng, p, n)
        if scapy:
            extra = _scapy_bases(rng, p, max(8, n // 4))
            for k, v in extra.items():
                bases[k].extend(v)
        # Sanity: every base message must be accepted by a live session as it is.
        pool.by_profile.append(bases)
    return pool


# --------------------------------------------------------------------------- layout helpers


def _hdr(body: bytes, msg_type: int) -> bytes:
    return HDR.pack(MARKER, 19 + len(body), msg_type) + body


@dataclass
class UpdateParts:
    withdrawn: bytes
    attrs: list[bytes]  # each attribute with its header
    nlri: bytes

    @classmethod
    def parse(cls, body: bytes) -> UpdateParts:
        wlen = struct.unpack_from("!H", body)[0]
        withdrawn = body[2 : 2 + wlen]
        alen = struct.unpack_from("!H", body, 2 + wlen)[0]
        a = body[4 + wlen : 4 + wlen + alen]
        attrs = []
        pos = 0
        while pos < len(a):
            if a[pos] & 0x10:
                end = pos + 4 + struct.unpack_from("!H", a, pos + 2)[0]
            else:
                end = pos + 3 + a[pos + 2]
            attrs.append(a[pos:end])
            pos = end
        return cls(withdrawn, attrs, body[4 + wlen + alen :])

    def body(self) -> bytes:
        a = b"".join(self.attrs)
        return (
            struct.pack("!H", len(self.withdrawn))
            + self.withdrawn
            + struct.pack("!H", len(a))
            + a
            + self.nlri
        )

    def wire(self) -> bytes:
        return _hdr(self.body(), 2)

    def find(self, code: int) -> int | None:
        for i, at in enumerate(self.attrs):
            if at[1] == code:
                return i
        return None


def _attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10 or len(value) > 255:
        return struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return struct.pack("!BBB", flags, code, len(value)) + value


def _value(at: bytes) -> tuple[int, int, bytes]:
    hl = 4 if at[0] & 0x10 else 3
    return at[0], at[1], at[hl:]


def _prefix_offsets(data: bytes, addpath: bool) -> list[int]:
    """Offsets of the length octets of a well-formed NLRI run."""
    out = []
    pos = 0
    while pos < len(data):
        if addpath:
            pos += 4
        out.append(pos)
        pos += 1 + (data[pos] + 7) // 8
    return out


# RFC 7606 §7 (and RFC 6793 §6, RFC 8092 §5): the action for a malformed attribute, which
# §3.c applies to flag errors too. Written from the RFC, independently of roost's table.
RFC7606_ACTION = {
    1: WITHDRAW,
    2: WITHDRAW,
    3: WITHDRAW,
    4: WITHDRAW,
    5: WITHDRAW,  # §7.1-§7.5
    6: DISCARD,
    7: DISCARD,  # §7.6, §7.7
    8: WITHDRAW,
    9: WITHDRAW,
    10: WITHDRAW,  # §7.8-§7.10
    14: NOTIFICATION,
    15: NOTIFICATION,  # §7.11 (session reset, RFC 4760 §7)
    16: WITHDRAW,
    17: DISCARD,
    18: DISCARD,
    32: WITHDRAW,  # §7.14, RFC 6793, RFC 8092
}
# RFC 4271 §5 / RFC 4760 §3 / RFC 4456 §8 / RFC 6793 / RFC 8092 expected O and T bits.
RFC_FLAGS = {
    1: 0x40,
    2: 0x40,
    3: 0x40,
    4: 0x80,
    5: 0x40,
    6: 0x40,
    7: 0xC0,
    8: 0xC0,
    9: 0x80,
    10: 0x80,
    14: 0x80,
    15: 0x80,
    16: 0xC0,
    17: 0xC0,
    18: 0xC0,
    32: 0xC0,
}


# --------------------------------------------------------------------------- mutations

Mutator = Callable[[random.Random, Base, Profile], tuple[bytes, Expect] | None]


def _generic_flip(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    w = bytearray(b.wire)
    for _ in range(rng.randrange(1, 5)):
        i = rng.randrange(16, len(w))
        w[i] ^= 1 << rng.randrange(8)
    return bytes(w), ANY


def _generic_bytes(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    w = bytearray(b.wire)
    for _ in range(rng.randrange(1, 4)):
        i = rng.randrange(19, len(w)) if len(w) > 19 else rng.randrange(16, 19)
        w[i] = rng.choice((0, 1, 0x7F, 0x80, 0xFE, 0xFF, rng.randrange(256)))
    return bytes(w), ANY


def _marker(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    w = bytearray(b.wire)
    w[rng.randrange(16)] ^= 1 << rng.randrange(8)
    return bytes(w), only((1, 1))  # RFC 4271 §6.1 Connection Not Synchronized


def _msg_length(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    n = len(b.wire)
    length = rng.choice(
        (0, 1, 18, rng.randrange(19, 29), n - 1, n + 1, 4097, 65535, rng.randrange(65536))
    )
    if length == n:
        return None
    w = b.wire[:16] + struct.pack("!H", length) + b.wire[18:]
    t = b.wire[18]
    data = struct.pack("!H", length)
    if length < 19 or length > p.max_len or length < _MIN_LEN[t] or (t == 4 and length != 19):
        return w, only((1, 2), data=data)  # RFC 4271 §6.1 Bad Message Length
    if length > n:
        return w, kinds(ACCEPTED)  # the rest has not arrived: the receiver waits
    return w, ANY  # a shorter message, then garbage as the next header


def _msg_type(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    t = rng.choice((0, 6, 7, 128, 255, rng.randrange(6, 256)))
    w = b.wire[:18] + bytes((t,)) + b.wire[19:]
    return w, only((1, 3), data=bytes((t,)))  # RFC 4271 §6.1 Bad Message Type


def _truncate(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    if len(b.wire) <= 20:
        return None
    cut = rng.randrange(19, len(b.wire))
    if rng.random() < 0.5:
        return b.wire[:cut], kinds(ACCEPTED)  # header says more: wait for it
    body = b.wire[19:cut]
    t = b.wire[18]
    if 19 + len(body) < _MIN_LEN[t]:
        return _hdr(body, t), only((1, 2), data=struct.pack("!H", 19 + len(body)))
    return _hdr(body, t), ANY


def _concat(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    # A valid KEEPALIVE before the base message: the base's own expectation applies.
    ka = _hdr(b"", 4)
    return ka * rng.randrange(1, 3) + b.wire, _base_expect(b, p)


def _base_expect(b: Base, p: Profile) -> Expect:
    if b.kind == "notification":
        return kinds(PEER_NOTIFICATION)
    if b.kind == "open":
        return only(FSM_ESTABLISHED)  # RFC 6608 §4: OPEN in Established
    return kinds(ACCEPTED)


def _keepalive_body(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    body = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 8)))
    return _hdr(body, 4), only((1, 2), data=struct.pack("!H", 19 + len(body)))


# --- UPDATE


def _upd(b: Base) -> UpdateParts:
    return UpdateParts.parse(b.wire[19:])


def _withdrawn_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    body = bytearray(b.wire[19:])
    wlen = struct.unpack_from("!H", body)[0]
    new = rng.choice((wlen + 1, wlen + 200, 0xFFFF, max(0, wlen - 1), rng.randrange(65536)))
    if new == wlen:
        return None
    struct.pack_into("!H", body, 0, new)
    if 2 + new + 2 > len(body):
        return _hdr(bytes(body), 2), only((3, 1))  # RFC 7606 §5.3 / RFC 4271 §6.3
    return _hdr(bytes(body), 2), ANY


def _attr_total_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    body = bytearray(b.wire[19:])
    wlen = struct.unpack_from("!H", body)[0]
    alen = struct.unpack_from("!H", body, 2 + wlen)[0]
    new = rng.choice((alen + 1, alen + 100, 0xFFFF, max(0, alen - 1), rng.randrange(65536)))
    if new == alen:
        return None
    struct.pack_into("!H", body, 2 + wlen, new)
    if 4 + wlen + new > len(body):
        return _hdr(bytes(body), 2), only((3, 1))
    return _hdr(bytes(body), 2), ANY


def _attr_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    if not u.attrs:
        return None
    i = rng.randrange(len(u.attrs))
    at = bytearray(u.attrs[i])
    ext = at[0] & 0x10
    old = struct.unpack_from("!H", at, 2)[0] if ext else at[2]
    rest = sum(len(x) for x in u.attrs[i + 1 :])
    new = rng.choice((old + rest + 1 + rng.randrange(20), 0xFF if not ext else 0xFFFF))
    if new == old:
        return None
    if ext:
        struct.pack_into("!H", at, 2, new)
    else:
        at[2] = new & 0xFF
        new = at[2]
    u.attrs[i] = bytes(at)
    if new - old <= rest:
        return u.wire(), ANY
    # RFC 7606 §4: an attribute that overruns the attribute field -> treat-as-withdraw;
    # parsing stops, so the MP attributes before it still count (session reset if they
    # are malformed), and those after it are lost.
    later_mp = any(x[1] in (14, 15) for x in u.attrs[:i])
    return u.wire(), (
        kinds(WITHDRAW, NOTIFICATION, pairs=UPDATE_ERRORS) if later_mp else kinds(WITHDRAW)
    )


def _attr_flags(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    known = [i for i, at in enumerate(u.attrs) if at[1] in RFC_FLAGS]
    if not known:
        return None
    i = rng.choice(known)
    flags, code, value = _value(u.attrs[i])
    bit = rng.choice((0x80, 0x40, 0x20))
    u.attrs[i] = _attr(flags ^ bit, code, value)
    if bit == 0x20:
        # Partial is only meaningful on optional transitive attributes (RFC 4271 §5);
        # RFC 7606 leaves a stray Partial bit alone.
        return u.wire(), kinds(ACCEPTED, WITHDRAW, DISCARD)
    action = RFC7606_ACTION[code]
    if action == NOTIFICATION:
        return u.wire(), only((3, 4))  # RFC 4271 §6.3 Attribute Flags Error
    if code == 17 or code == 18:
        # AS4_* on a 4-octet session are ignored whatever their flags (RFC 6793 §3)
        return u.wire(), kinds(DISCARD)
    return u.wire(), kinds(action)


def _ext_len_flag(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    # The same attribute re-encoded with Extended Length (legal, RFC 4271 §4.3).
    u = _upd(b)
    if not u.attrs:
        return None
    i = rng.randrange(len(u.attrs))
    flags, code, value = _value(u.attrs[i])
    u.attrs[i] = struct.pack("!BBH", flags | 0x10, code, len(value)) + value
    return u.wire(), kinds(ACCEPTED)


def _dup_attr(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    if not u.attrs:
        return None
    i = rng.randrange(len(u.attrs))
    u.attrs.insert(rng.randrange(i + 1, len(u.attrs) + 1), u.attrs[i])
    if u.attrs[i][1] in (14, 15):
        return u.wire(), only((3, 1))  # RFC 7606 §3.g: MP_* twice -> session reset
    return u.wire(), kinds(DISCARD)  # RFC 7606 §3.g: all but the first are discarded


def _missing(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    present = [i for i, at in enumerate(u.attrs) if at[1] in (1, 2, 3)]
    if not present:
        return None
    i = rng.choice(present)
    code = u.attrs[i][1]
    del u.attrs[i]
    has_mp_nlri = any(at[1] == 14 for at in u.attrs)
    # RFC 7606 §3.d: treat-as-withdraw; NEXT_HOP only with NLRI in the NLRI field.
    needed = b.nlri or (has_mp_nlri and code in (1, 2))
    if not u.attrs and not u.withdrawn and not u.nlri:
        return u.wire(), kinds(ACCEPTED)  # it became an End-of-RIB
    return u.wire(), kinds(WITHDRAW) if needed else kinds(ACCEPTED, WITHDRAW)


def _as_path(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    i = u.find(2)
    if i is None:
        return None
    flags, code, value = _value(u.attrs[i])
    if not value:
        return None
    v = bytearray(value)
    what = rng.randrange(4)
    width = 4 if p.asn4 else 2
    if what == 0:
        v[0] = rng.choice((0, 5, 6, 255, rng.randrange(5, 256)))  # RFC 7606 §7.2
    elif what == 1:
        v[1] = 0  # empty segment
    elif what == 2:
        v[1] = min(255, v[1] + rng.randrange(1, 10))  # overruns the attribute
        if 2 + v[1] * width <= len(v):
            return None
    else:
        v[2 : 2 + width] = bytes(width)  # AS 0 (RFC 7607 §2)
    u.attrs[i] = _attr(flags, code, bytes(v))
    return u.wire(), kinds(WITHDRAW)  # RFC 7606 §7.2 (3/11)


def _bad_next_hop(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    i = u.find(3)
    if i is None:
        return None
    flags, code, _ = _value(u.attrs[i])
    if rng.random() < 0.6:
        value = rng.choice(
            (b"\x00\x00\x00\x00", b"\xe0\x00\x00\x05", b"\xff\xff\xff\xff", b"\xef\x01\x02\x03")
        )
    else:
        value = bytes(rng.choice((0, 3, 5, 16)))  # RFC 7606 §7.3 length error
        u.attrs[i] = _attr(flags, code, value)
        return u.wire(), kinds(WITHDRAW)
    u.attrs[i] = _attr(flags, code, value)
    # RFC 4271 §6.3 / RFC 7606 §7.3: a bad NEXT_HOP matters only with NLRI to use it
    # (RFC 4760 §3: ignored when only MP_REACH_NLRI carries NLRI).
    return u.wire(), kinds(WITHDRAW) if b.nlri else kinds(ACCEPTED)


def _mp_family(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    idx = [i for i, at in enumerate(u.attrs) if at[1] in (14, 15)]
    if not idx:
        return None
    i = rng.choice(idx)
    flags, code, value = _value(u.attrs[i])
    v = bytearray(value)
    afi, safi = rng.choice(
        (
            (3, 1),
            (1, 2),
            (2, 128),
            (25, 65),
            (0, 0),
            (16388, 71),
            (rng.randrange(65536), rng.randrange(256)),
        )
    )
    if (afi, safi) in ((1, 1), (2, 1)):
        return None
    struct.pack_into("!HB", v, 0, afi, safi)
    u.attrs[i] = _attr(flags, code, bytes(v))
    # RFC 4760 §6/§7: an AFI/SAFI that was not negotiated is ignored (roost: the attribute
    # is discarded); RFC 7606 §7.11 allows session reset (3/9) as well.
    return u.wire(), kinds(ACCEPTED, DISCARD, WITHDRAW, pairs={(3, 9)})


def _mp_next_hop_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    i = u.find(14)
    if i is None:
        return None
    flags, code, value = _value(u.attrs[i])
    v = bytearray(value)
    v[3] = rng.choice((0, 1, 5, 15, 17, 31, 33, 200, 255))
    u.attrs[i] = _attr(flags, code, bytes(v))
    return u.wire(), only((3, 9))  # RFC 4760 §7 / RFC 7606 §7.11: session reset


def _mp_attr_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    idx = [i for i, at in enumerate(u.attrs) if at[1] in (14, 15)]
    if not idx:
        return None
    i = rng.choice(idx)
    flags, code, value = _value(u.attrs[i])
    cut = rng.randrange(0, len(value))
    u.attrs[i] = _attr(flags, code, value[:cut])
    # Shortened in place: too short for its header, or NLRI cut mid-prefix -> 3/9; cut
    # at a prefix boundary it is a valid, shorter attribute.
    return u.wire(), kinds(ACCEPTED, WITHDRAW, pairs={(3, 9)})


def _prefix_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    where = rng.randrange(3)
    if where == 2:
        i = u.find(14) if rng.random() < 0.5 else u.find(15)
        if i is None:
            return None
        flags, code, value = _value(u.attrs[i])
        start = 5 + value[3] if code == 14 else 3
        afi = struct.unpack_from("!H", value)[0]
        offs = _prefix_offsets(value[start:], p.addpath)
        if not offs:
            return None
        v = bytearray(value)
        v[start + rng.choice(offs)] = rng.randrange(33 if afi == 1 else 129, 256)
        u.attrs[i] = _attr(flags, code, bytes(v))
        return u.wire(), only((3, 9))  # RFC 7606 §7.11: MP NLRI malformed
    data = u.withdrawn if where == 0 else u.nlri
    offs = _prefix_offsets(data, p.addpath)
    if not offs:
        return None
    d = bytearray(data)
    d[rng.choice(offs)] = rng.randrange(33, 256)
    if where == 0:
        u.withdrawn = bytes(d)
    else:
        u.nlri = bytes(d)
    return u.wire(), only((3, 10))  # RFC 4271 §6.3 Invalid Network Field, RFC 7606 §5.3


def _unknown_attr(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    u = _upd(b)
    code = rng.choice((0, 11, 99, 200, 254, 255))
    flags = rng.choice((0x40, 0x00, 0x80, 0xC0, 0xE0))
    value = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 12)))
    at = _attr(flags, code, value)
    u.attrs.insert(rng.randrange(len(u.attrs) + 1), at)
    if not flags & 0x80:
        # RFC 4271 §6.3: Unrecognized Well-known Attribute, data = the attribute.
        return u.wire(), only((3, 2), data=at)
    return u.wire(), kinds(ACCEPTED)  # §5: optional ones are ignored or passed on


def _attr_value(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    # A known attribute with a random value of a random length (RFC 7606 §7 per type).
    u = _upd(b)
    code = rng.choice((1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 14, 15, 16, 17, 18, 32))
    i = u.find(code)
    value = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 2, 4, 6, 8, 12, 16, 31))))
    at = _attr(RFC_FLAGS[code], code, value)
    if i is None:
        u.attrs.insert(rng.randrange(len(u.attrs) + 1), at)
    else:
        u.attrs[i] = at
    action = RFC7606_ACTION[code]
    if action == NOTIFICATION:
        # MP_*: malformed -> session reset (3/9); an unknown family -> ignored.
        return u.wire(), kinds(ACCEPTED, DISCARD, WITHDRAW, pairs={(3, 9)})
    # A random value may happen to be valid; a missing mandatory attribute elsewhere
    # may still make it a withdraw.
    return u.wire(), kinds(ACCEPTED, action, WITHDRAW)


# --- OPEN (received in OpenSent)


def _open_parts(w: bytes) -> tuple[bytes, bytes]:
    body = w[19:]
    return body[:10], body[10:]


def _open_field(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    body = bytearray(b.wire[19:])
    what = rng.randrange(4)
    if what == 0:
        body[0] = rng.choice((0, 1, 3, 5, 255))
        return _hdr(bytes(body), 1), only((2, 1), data=b"\x00\x04")  # §6.2
    if what == 1:
        struct.pack_into("!H", body, 3, rng.choice((1, 2)))
        return _hdr(bytes(body), 1), only((2, 6))  # §6.2 Unacceptable Hold Time
    if what == 2:
        body[5:9] = b"\x00\x00\x00\x00"
        return _hdr(bytes(body), 1), only((2, 3))  # RFC 6286 §2.2 Bad BGP Identifier
    struct.pack_into("!H", body, 1, rng.choice((1, 7, 23456 if p.asn4 else 65003)))
    # With the 4-octet AS capability the AS comes from it (RFC 6793 §4.1) ...
    return _hdr(bytes(body), 1), kinds(ACCEPTED, pairs={(2, 2)}) if p.asn4 else only((2, 2))


def _open_opt_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    body = bytearray(b.wire[19:])
    old = body[9]
    new = rng.choice((0, old + 1, old - 1, 254, rng.randrange(255)))
    if new == old or new < 0:
        return None
    body[9] = new
    return _hdr(bytes(body), 1), only((2, 0), (1, 2))


def _open_param(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    fixed, opt = _open_parts(b.wire)
    ptype = rng.choice((0, 1, 3, 4, 200, 254))
    param = bytes((ptype, 2, 0, 0))
    opt = opt + param
    body = fixed[:9] + bytes((len(opt),)) + opt
    return _hdr(body, 1), only((2, 4))  # RFC 4271 §6.2 Unsupported Optional Parameter


def _open_cap_len(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    fixed, opt = _open_parts(b.wire)
    o = bytearray(opt)
    # Parameter i: type, length, capabilities; change one capability length.
    pos = 0
    caps = []
    while pos < len(o):
        plen = o[pos + 1]
        cpos = pos + 2
        while cpos < pos + 2 + plen:
            caps.append(cpos)
            cpos += 2 + o[cpos + 1]
        pos += 2 + plen
    if not caps:
        return None
    c = rng.choice(caps)
    o[c + 1] = rng.choice((o[c + 1] + 1, 255, max(0, o[c + 1] - 1)))
    # Overrun -> malformed parameter (2/0); shorter -> a different, possibly valid list.
    return _hdr(fixed + bytes(o), 1), kinds(ACCEPTED, pairs=OPEN_ERRORS)


def _open_four_octet(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    if not p.asn4:
        return None
    w = b.wire
    needle = bytes((65, 4)) + struct.pack("!I", PEER_ASN)
    at = w.find(needle)
    if at < 0:
        return None
    w = w[: at + 2] + struct.pack("!I", rng.choice((1, 65003, 4200000000))) + w[at + 6 :]
    return w, only((2, 2))  # RFC 4271 §6.2 Bad Peer AS (the RFC 6793 AS)


def _open_capability(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    # A capability (known code or not) with a random value; RFC 9072 framing at times.
    fixed, opt = _open_parts(b.wire)
    code = rng.choice((1, 2, 5, 6, 9, 64, 65, 69, 70, 71, 73, 128, 200))
    value = bytes(rng.randrange(256) for _ in range(rng.choice((0, 1, 2, 3, 4, 5, 6, 8, 12))))
    cap = bytes((code, len(value))) + value
    params = opt + bytes((2, len(cap))) + cap
    if rng.random() < 0.2:
        # RFC 9072 §2: Non-Ext OP Len 255, Non-Ext OP Type 255, 2-octet lengths.
        out = bytearray()
        pos = 0
        while pos < len(params):
            ln = params[pos + 1]
            out += bytes((params[pos],)) + struct.pack("!H", ln) + params[pos + 2 : pos + 2 + ln]
            pos += 2 + ln
        body = fixed[:9] + b"\xff\xff" + struct.pack("!H", len(out)) + bytes(out)
    else:
        body = fixed[:9] + bytes((len(params),)) + params
    # RFC 5492 §3: an unknown capability is ignored; a known one that is malformed is
    # an OPEN error (2/0 Unspecific, or 2/2 when it is the 4-octet AS, RFC 6793).
    return _hdr(body, 1), kinds(ACCEPTED, pairs=OPEN_ERRORS)


# --- NOTIFICATION, ROUTE-REFRESH


def _notification(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    data = bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
    body = bytes((rng.randrange(256), rng.randrange(256))) + data
    return _hdr(body, 3), kinds(PEER_NOTIFICATION)  # §8.2.2 NotifMsg: the session ends


def _route_refresh(rng: random.Random, b: Base, p: Profile) -> tuple[bytes, Expect] | None:
    afi, _sub, safi = struct.unpack_from("!HBB", b.wire, 19)
    what = rng.randrange(3)
    if what == 0:
        extra = bytes(rng.randrange(1, 30))
        body = struct.pack("!HBB", afi, rng.choice((1, 2)), safi) + extra
        # RFC 7313 §5: BoRR/EoRR of another length -> 7/1, data = the whole message.
        return _hdr(body, 5), only((7, 1), data=_hdr(body, 5))
    if what == 1:
        body = struct.pack("!HBB", rng.randrange(65536), rng.randrange(256), rng.randrange(256))
        # RFC 2918 §4 / RFC 7313 §5: unknown family or subtype -> ignored.
        return _hdr(body, 5), kinds(ACCEPTED)
    body = struct.pack("!HBB", afi, 0, safi) + bytes(rng.randrange(1, 20))
    return _hdr(body, 5), kinds(ACCEPTED)  # ORF entries (RFC 5291) not negotiated: ignored


_ANY_TYPE: list[tuple[str, Mutator, int]] = [
    ("bit-flip", _generic_flip, 12),
    ("byte-set", _generic_bytes, 8),
    ("marker", _marker, 3),
    ("message-length", _msg_length, 5),
    ("message-type", _msg_type, 3),
    ("truncate", _truncate, 4),
    ("concatenate", _concat, 2),
]
_BY_KIND: dict[str, list[tuple[str, Mutator, int]]] = {
    "update": [
        ("withdrawn-length", _withdrawn_len, 4),
        ("attribute-total-length", _attr_total_len, 4),
        ("attribute-length", _attr_len, 5),
        ("attribute-flags", _attr_flags, 5),
        ("extended-length-flag", _ext_len_flag, 2),
        ("duplicate-attribute", _dup_attr, 4),
        ("missing-well-known", _missing, 4),
        ("as-path", _as_path, 5),
        ("next-hop", _bad_next_hop, 4),
        ("mp-afi-safi", _mp_family, 3),
        ("mp-next-hop-length", _mp_next_hop_len, 3),
        ("mp-attribute-length", _mp_attr_len, 3),
        ("prefix-length", _prefix_len, 5),
        ("unknown-attribute", _unknown_attr, 3),
        ("attribute-value", _attr_value, 6),
    ],
    "open": [
        ("open-field", _open_field, 6),
        ("optional-parameters-length", _open_opt_len, 3),
        ("optional-parameter-type", _open_param, 2),
        ("capability-length", _open_cap_len, 4),
        ("four-octet-as", _open_four_octet, 2),
        ("capability", _open_capability, 5),
    ],
    "keepalive": [("keepalive-body", _keepalive_body, 3)],
    "notification": [("notification", _notification, 3)],
    "route-refresh": [("route-refresh", _route_refresh, 4)],
}
#: Every mutation class name.
MUTATION_CLASSES = frozenset(
    name for rows in (_ANY_TYPE, *_BY_KIND.values()) for name, _, _ in rows
)
_KIND_WEIGHTS = (
    ("update", 70),
    ("open", 12),
    ("keepalive", 5),
    ("notification", 5),
    ("route-refresh", 8),
)


def make_case(pool: Pool, seed: int, index: int) -> Case:
    """Case `index` of the campaign `seed` (deterministic)."""
    rng = random.Random((seed << 32) ^ index)
    pi = rng.randrange(len(pool.by_profile))
    prof = profiles()[pi]
    bases = pool.by_profile[pi]
    while True:
        kind = rng.choices([k for k, _ in _KIND_WEIGHTS], [w for _, w in _KIND_WEIGHTS])[0]
        base = rng.choice(bases[kind])
        table = _BY_KIND[kind] + _ANY_TYPE
        name, fn, _ = rng.choices(table, [w for _, _, w in table])[0]
        made = fn(rng, base, prof)
        if made is None:
            continue
        wire, expect = made
        # OPENs are judged in OpenSent, where an OPEN is expected; everything else in
        # Established. A blind mutation of an OPEN is judged in OpenSent too.
        stage = OPEN_SENT if kind == "open" and name != "concatenate" else ESTABLISHED
        if stage == OPEN_SENT and name in ("truncate",) and expect.kinds == {ACCEPTED}:
            expect = kinds(ACCEPTED)
        return Case(index, name, base.source, pi, stage, wire, expect)


_PROFILES = profiles()


def max_len_of(case: Case) -> int:
    # Before the OPEN is processed only 4096 octets are allowed (RFC 8654 §4).
    return 4096 if case.stage == OPEN_SENT else _PROFILES[case.profile].max_len


# --------------------------------------------------------------------------- running


@dataclass
class Failure:
    case: Case
    problem: str
    outcome: str

    def as_dict(self) -> dict[str, object]:
        c = self.case
        return {
            "index": c.index,
            "mutation": c.mutation,
            "source": c.source,
            "profile": c.profile,
            "stage": c.stage,
            "wire": c.wire.hex(),
            "problem": self.problem,
            "outcome": self.outcome,
        }


@dataclass
class Stats:
    messages: int = 0
    seconds: float = 0.0
    slowest: float = 0.0  # wall clock
    slowest_cpu: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    notifications: Counter[str] = field(default_factory=Counter)
    mutations: Counter[str] = field(default_factory=Counter)
    sources: Counter[str] = field(default_factory=Counter)
    failures: list[Failure] = field(default_factory=list)
    exceptions: int = 0
    violations: int = 0
    session_resets: int = 0

    def as_dict(self) -> dict[str, object]:
        return {
            "messages": self.messages,
            "seconds": round(self.seconds, 2),
            "messages_per_second": round(self.messages / self.seconds) if self.seconds else 0,
            "slowest_message_ms": round(self.slowest * 1000, 3),
            "slowest_message_cpu_ms": round(self.slowest_cpu * 1000, 3),
            "outcomes": dict(self.outcomes.most_common()),
            "notifications": dict(sorted(self.notifications.items())),
            "mutations": dict(self.mutations.most_common()),
            "sources": dict(self.sources),
            "unexpected_exceptions": self.exceptions,
            "rfc_violations": self.violations,
            "session_resets": self.session_resets,
            "failures": [f.as_dict() for f in self.failures[:50]],
        }


SLOW = 1.0  # seconds of CPU: one message taking longer than this counts as a hang


def run_one(rigs: list[SessionRig], case: Case, stats: Stats) -> Outcome | None:
    """Decoder then live session for one case; records the result in `stats`."""
    t0 = time.perf_counter()
    c0 = time.thread_time()
    stats.messages += 1
    stats.mutations[case.mutation] += 1
    stats.sources[case.source] += 1
    max_len = max_len_of(case)
    try:
        decode_only(case.wire, max_len)
        out, _ = run_case(rigs[case.profile], case)
    except Exception as exc:
        stats.exceptions += 1
        rigs[case.profile].drop()
        stats.failures.append(Failure(case, f"{type(exc).__name__}: {exc}", "exception"))
        return None
    # A hang is judged on CPU time: on a shared machine the wall clock of one message
    # also counts the time other processes held the CPU.
    cpu = time.thread_time() - c0
    stats.slowest = max(stats.slowest, time.perf_counter() - t0)
    stats.slowest_cpu = max(stats.slowest_cpu, cpu)
    stats.outcomes[out.kind] += 1
    if out.kind == NOTIFICATION:
        stats.notifications[f"{out.code}/{out.subcode}"] += 1
    problem = check_outcome(case, out, max_len)
    if problem is None and cpu > SLOW:
        problem = f"took {cpu:.2f}s of CPU"
    if problem is not None:
        stats.violations += 1
        stats.failures.append(Failure(case, problem, out.label()))
    return out


def campaign(
    seed: int,
    messages: int,
    pool: Pool | None = None,
    start: int = 0,
    progress: Callable[[Stats], None] | None = None,
) -> Stats:
    pool = pool if pool is not None else make_pool(seed)
    rigs = [SessionRig(p) for p in profiles()]
    stats = Stats()
    t0 = time.perf_counter()
    for i in range(start, start + messages):
        run_one(rigs, make_case(pool, seed, i), stats)
        if progress is not None and i % 50000 == 0 and i != start:
            stats.seconds = time.perf_counter() - t0
            progress(stats)
    stats.seconds = time.perf_counter() - t0
    stats.session_resets = sum(r.resets for r in rigs)
    return stats


def minimise(wire: bytes, fails: Callable[[bytes], bool]) -> bytes:
    """Delta debugging over the octets after the header (the header length is kept
    consistent): the smallest input found that still fails."""
    if len(wire) <= 19 or not fails(wire):
        return wire
    head, body = wire[:19], bytearray(wire[19:])

    def build(b: bytes) -> bytes:
        return head[:16] + struct.pack("!H", 19 + len(b)) + head[18:19] + b

    chunk = max(1, len(body) // 2)
    while chunk >= 1:
        i = 0
        while i < len(body):
            trial = bytes(body[:i] + body[i + chunk :])
            if fails(build(trial)):
                body = bytearray(trial)
            else:
                i += chunk
        chunk //= 2
    return build(bytes(body))
