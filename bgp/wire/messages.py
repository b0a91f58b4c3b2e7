"""Message codec: the bodies of OPEN, UPDATE, NOTIFICATION, KEEPALIVE and ROUTE-REFRESH.

`decode_message(type, body, ctx)` takes a frame from `FrameBuffer` and returns a record of
`bgp.wire.model`; `encode_message(msg, ctx)` returns the whole message, header included.
Whatever the input, the only exception `decode_message` lets out is `ProtocolError`,
carrying the NOTIFICATION that RFC 4271 §6 prescribes.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable

from bgp.errors import ErrorHandling, LocalUsageError, ProtocolError
from bgp.types import (
    AS_TRANS,
    BGP_VERSION,
    HEADER_LEN,
    IPV4_UNICAST,
    MAX_MESSAGE_LEN,
    Afi,
    CapabilityCode,
    ErrorCode,
    Family,
    HeaderError,
    MessageType,
    OpenError,
    RouteRefreshError,
    RouteRefreshSubtype,
    UpdateError,
)
from bgp.wire.attrcodec import (
    decode_attributes,
    encode_attributes,
    encode_mp_reach,
    encode_mp_unreach,
)
from bgp.wire.capabilities import (
    AddPath,
    AddPathFamily,
    Capability,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHop,
    ExtendedNextHopEntry,
    FourOctetAs,
    Fqdn,
    GracefulRestart,
    GracefulRestartFamily,
    LongLivedFamily,
    LongLivedGracefulRestart,
    Multiprotocol,
    RouteRefreshCap,
    UnknownCapability,
)
from bgp.wire.framing import encode_header
from bgp.wire.model import (
    Keepalive,
    Message,
    Negotiated,
    Notification,
    Open,
    RouteRefresh,
    Update,
)
from bgp.wire.prefix import Nlri, decode_nlri, encode_nlri

__all__ = [
    "OPT_PARAM_CAPABILITIES",
    "decode_capabilities",
    "decode_message",
    "encode_capabilities",
    "encode_message",
]

OPT_PARAM_CAPABILITIES = 2  # RFC 5492 §4
_OPT_PARAM_EXTENDED = 255  # RFC 9072 §2

_OPEN_FIXED = struct.Struct("!BHH4sB")  # version, my AS, hold time, BGP id, opt parm len
_OPEN_HEAD = struct.Struct("!BHH4s")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_AFI_SAFI = struct.Struct("!HxB")  # multiprotocol capability: AFI, reserved, SAFI
_AFI_SAFI_FLAGS = struct.Struct("!HBB")  # graceful restart / add-path entries
_LLGR_ENTRY = struct.Struct("!HBBBH")  # RFC 9494 §3: AFI, SAFI, flags, 24-bit LLST
_EXT_NH = struct.Struct("!HHH")  # RFC 8950 §3 entries
_NOTIFICATION = struct.Struct("!BB")
_ROUTE_REFRESH = struct.Struct("!HBB")  # AFI, subtype, SAFI

_GR_RESTARTING = 0x8000  # RFC 4724 §3 "R" bit
_GR_NOTIFICATION = 0x4000  # RFC 8538 §2 "N" bit
_GR_FORWARDING = 0x80  # RFC 4724 §3 "F" bit of the per-family flags


def _open_error(subcode: int, reason: str, data: bytes = b"") -> ProtocolError:
    return ProtocolError(ErrorCode.OPEN_MESSAGE, subcode, data, reason=reason)


def _bad_length(total: int, reason: str) -> ProtocolError:
    # RFC 4271 §6.1: Bad Message Length, data = the erroneous 2-octet Length field.
    return ProtocolError(
        ErrorCode.MESSAGE_HEADER,
        HeaderError.BAD_MESSAGE_LENGTH,
        (total & 0xFFFF).to_bytes(2, "big"),
        reason=reason,
    )


# --- capabilities (RFC 5492) ------------------------------------------------------------
#
#   +------------------------------+
#   | Capability Code (1 octet)    |
#   | Capability Length (1 octet)  |
#   | Capability Value (variable)  |
#   +------------------------------+

_CapDecoder = Callable[[bytes], Capability]


def _malformed_cap(code: int, value: bytes) -> ProtocolError:
    # No subcode fits a malformed (rather than unsupported) capability; use Unspecific (0)
    # as FRR and GoBGP do.
    return _open_error(0, f"malformed capability {code} ({len(value)} octets)")


def _dec_mp(v: bytes) -> Capability:
    # RFC 4760 §8: AFI (2), Reserved (1), SAFI (1).
    if len(v) != 4:
        raise _malformed_cap(CapabilityCode.MULTIPROTOCOL, v)
    afi, safi = _AFI_SAFI.unpack(v)
    return Multiprotocol(Family(afi, safi))


def _dec_route_refresh(v: bytes) -> Capability:
    return RouteRefreshCap()  # RFC 2918 §2: length 0; extra octets are ignored


def _dec_enhanced_rr(v: bytes) -> Capability:
    return EnhancedRouteRefreshCap()


def _dec_ext_message(v: bytes) -> Capability:
    return ExtendedMessageCap()


def _dec_as4(v: bytes) -> Capability:
    # RFC 6793 §3: the 4-octet AS number.
    if len(v) != 4:
        raise _malformed_cap(CapabilityCode.FOUR_OCTET_AS, v)
    return FourOctetAs(_U32.unpack(v)[0])


def _dec_graceful_restart(v: bytes) -> Capability:
    """RFC 4724 §3:

    +--------------------------------------------------+
    | Restart Flags (4 bits) | Restart Time (12 bits)  |
    +--------------------------------------------------+
    | AFI (16 bits) | SAFI (8 bits) | AF Flags (8 bits)|  repeated
    +--------------------------------------------------+
    """
    if len(v) < 2 or (len(v) - 2) % 4:
        raise _malformed_cap(CapabilityCode.GRACEFUL_RESTART, v)
    head = _U16.unpack_from(v)[0]
    fams = tuple(
        GracefulRestartFamily(Family(afi, safi), bool(flags & _GR_FORWARDING))
        for afi, safi, flags in (_AFI_SAFI_FLAGS.unpack_from(v, i) for i in range(2, len(v), 4))
    )
    return GracefulRestart(
        restart_time=head & 0x0FFF,
        restarting=bool(head & _GR_RESTARTING),
        notification=bool(head & _GR_NOTIFICATION),
        families=fams,
    )


def _dec_long_lived(v: bytes) -> Capability:
    """RFC 9494 §3, repeated per family (an empty list is valid: no family)::

    +--------------------------------------------------+
    | Address Family Identifier (16 bits)              |
    | Subsequent Address Family Identifier (8 bits)    |
    | Flags for Address Family (8 bits)                |  F bit = 0x80
    | Long-lived Stale Time (24 bits)                  |
    +--------------------------------------------------+
    """
    if len(v) % _LLGR_ENTRY.size:
        raise _malformed_cap(CapabilityCode.LONG_LIVED_GRACEFUL_RESTART, v)
    fams = []
    for i in range(0, len(v), _LLGR_ENTRY.size):
        afi, safi, flags, hi, lo = _LLGR_ENTRY.unpack_from(v, i)
        fams.append(LongLivedFamily(Family(afi, safi), bool(flags & _GR_FORWARDING),
                                    (hi << 16) | lo))
    return LongLivedGracefulRestart(tuple(fams))


def _dec_add_path(v: bytes) -> Capability:
    # RFC 7911 §4: AFI (2), SAFI (1), Send/Receive (1), repeated.
    if not v or len(v) % 4:
        raise _malformed_cap(CapabilityCode.ADD_PATH, v)
    return AddPath(
        tuple(
            AddPathFamily(Family(afi, safi), mode)
            for afi, safi, mode in (_AFI_SAFI_FLAGS.unpack_from(v, i) for i in range(0, len(v), 4))
        )
    )


def _dec_ext_next_hop(v: bytes) -> Capability:
    # RFC 8950 §3: NLRI AFI (2), NLRI SAFI (2), Next Hop AFI (2), repeated.
    if not v or len(v) % 6:
        raise _malformed_cap(CapabilityCode.EXTENDED_NEXT_HOP, v)
    return ExtendedNextHop(
        tuple(
            ExtendedNextHopEntry(Family(afi, safi), nh_afi)
            for afi, safi, nh_afi in (_EXT_NH.unpack_from(v, i) for i in range(0, len(v), 6))
        )
    )


def _dec_fqdn(v: bytes) -> Capability:
    # draft-walton-bgp-hostname-capability §3: host len (1), host, domain len (1), domain.
    if not v:
        raise _malformed_cap(CapabilityCode.FQDN, v)
    hlen = v[0]
    if 1 + hlen + 1 > len(v):
        raise _malformed_cap(CapabilityCode.FQDN, v)
    dlen = v[1 + hlen]
    if 2 + hlen + dlen > len(v):
        raise _malformed_cap(CapabilityCode.FQDN, v)
    host = v[1 : 1 + hlen].decode("utf-8", "replace")
    domain = v[2 + hlen : 2 + hlen + dlen].decode("utf-8", "replace")
    return Fqdn(host, domain)


_CAP_DECODERS: dict[int, _CapDecoder] = {
    CapabilityCode.MULTIPROTOCOL: _dec_mp,
    CapabilityCode.ROUTE_REFRESH: _dec_route_refresh,
    CapabilityCode.EXTENDED_NEXT_HOP: _dec_ext_next_hop,
    CapabilityCode.EXTENDED_MESSAGE: _dec_ext_message,
    CapabilityCode.GRACEFUL_RESTART: _dec_graceful_restart,
    CapabilityCode.FOUR_OCTET_AS: _dec_as4,
    CapabilityCode.ADD_PATH: _dec_add_path,
    CapabilityCode.ENHANCED_ROUTE_REFRESH: _dec_enhanced_rr,
    CapabilityCode.LONG_LIVED_GRACEFUL_RESTART: _dec_long_lived,
    CapabilityCode.FQDN: _dec_fqdn,
}


def decode_capabilities(data: bytes) -> list[Capability]:
    """The capabilities in one Capabilities optional parameter (RFC 5492 §4)."""
    caps: list[Capability] = []
    pos = 0
    n = len(data)
    while pos < n:
        if n - pos < 2:
            raise _open_error(0, "truncated capability header")
        code = data[pos]
        length = data[pos + 1]
        end = pos + 2 + length
        if end > n:
            raise _open_error(0, f"capability {code} overruns its parameter")
        value = data[pos + 2 : end]
        decoder = _CAP_DECODERS.get(code)
        # RFC 5492 §3: an unknown capability is ignored; keep it raw for display.
        caps.append(UnknownCapability(code, value) if decoder is None else decoder(value))
        pos = end
    return caps


def _encode_capability(cap: Capability) -> bytes:
    value: bytes
    if isinstance(cap, Multiprotocol):
        value = _AFI_SAFI.pack(cap.family.afi, cap.family.safi)
    elif isinstance(cap, RouteRefreshCap | EnhancedRouteRefreshCap | ExtendedMessageCap):
        value = b""
    elif isinstance(cap, FourOctetAs):
        value = _U32.pack(cap.asn)
    elif isinstance(cap, GracefulRestart):
        if not 0 <= cap.restart_time <= 0x0FFF:
            raise LocalUsageError(f"graceful restart time {cap.restart_time} > 4095")
        head = cap.restart_time
        head |= _GR_RESTARTING if cap.restarting else 0
        head |= _GR_NOTIFICATION if cap.notification else 0
        value = _U16.pack(head) + b"".join(
            _AFI_SAFI_FLAGS.pack(
                f.family.afi, f.family.safi, _GR_FORWARDING if f.forwarding_preserved else 0
            )
            for f in cap.families
        )
    elif isinstance(cap, LongLivedGracefulRestart):
        parts = []
        for e in cap.families:
            if not 0 <= e.stale_time <= 0xFFFFFF:
                raise LocalUsageError(f"long-lived stale time {e.stale_time} > 16777215")
            parts.append(_LLGR_ENTRY.pack(
                e.family.afi, e.family.safi, _GR_FORWARDING if e.forwarding_preserved else 0,
                e.stale_time >> 16, e.stale_time & 0xFFFF))
        value = b"".join(parts)
    elif isinstance(cap, AddPath):
        value = b"".join(
            _AFI_SAFI_FLAGS.pack(f.family.afi, f.family.safi, f.mode) for f in cap.families
        )
    elif isinstance(cap, ExtendedNextHop):
        value = b"".join(
            _EXT_NH.pack(e.family.afi, e.family.safi, e.next_hop_afi) for e in cap.entries
        )
    elif isinstance(cap, Fqdn):
        host = cap.hostname.encode()
        domain = cap.domain.encode()
        if len(host) > 255 or len(domain) > 255:
            raise LocalUsageError("FQDN capability: host or domain name longer than 255")
        value = bytes((len(host),)) + host + bytes((len(domain),)) + domain
    else:
        value = cap.value
    if len(value) > 255:
        raise LocalUsageError(f"capability {int(cap.code)} value longer than 255 octets")
    return bytes((int(cap.code), len(value))) + value


def encode_capabilities(caps: tuple[Capability, ...] | list[Capability]) -> list[bytes]:
    """Capabilities packed into as few optional parameter values (<= 255 octets) as fit."""
    params: list[bytes] = []
    current = b""
    for cap in caps:
        one = _encode_capability(cap)
        if current and len(current) + len(one) > 255:
            params.append(current)
            current = b""
        current += one
    if current:
        params.append(current)
    return params


# --- OPEN (RFC 4271 §4.2) ---------------------------------------------------------------
#
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   |    Version    |     My Autonomous System      |   Hold Time   :
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   :               |                BGP Identifier                 :
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#   :               | Opt Parm Len  |  Optional Parameters ...      |
#   +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
#
# Optional parameter: Type (1), Length (1), Value. RFC 9072: when Opt Parm Len is 255 and
# the next octet (the first parameter type) is 255, a 2-octet Extended Opt Parm Length
# follows and every parameter has a 2-octet length.


def _decode_open(body: bytes) -> Open:
    n = len(body)
    if n < _OPEN_FIXED.size:
        raise _bad_length(n + HEADER_LEN, "OPEN too short")
    version, my_as, hold, bgp_id, opt_len = _OPEN_FIXED.unpack_from(body)
    if version != BGP_VERSION:
        # RFC 4271 §6.2: data = the largest locally supported version number (2 octets).
        raise _open_error(
            OpenError.UNSUPPORTED_VERSION_NUMBER,
            f"version {version}",
            BGP_VERSION.to_bytes(2, "big"),
        )
    pos = _OPEN_FIXED.size
    extended = opt_len == 255 and n > pos and body[pos] == _OPT_PARAM_EXTENDED
    if extended:
        if n < pos + 3:
            raise _open_error(0, "truncated extended optional parameters length")
        opt_len = _U16.unpack_from(body, pos + 1)[0]
        pos += 3
    if pos + opt_len != n:
        raise _open_error(0, f"optional parameters length {opt_len} != {n - pos}")
    caps: list[Capability] = []
    hdr = 3 if extended else 2
    while pos < n:
        if n - pos < hdr:
            raise _open_error(0, "truncated optional parameter")
        ptype = body[pos]
        plen = _U16.unpack_from(body, pos + 1)[0] if extended else body[pos + 1]
        start = pos + hdr
        end = start + plen
        if end > n:
            raise _open_error(0, "optional parameter overruns the OPEN")
        if ptype != OPT_PARAM_CAPABILITIES:
            # RFC 4271 §6.2: Unsupported Optional Parameters.
            raise _open_error(
                OpenError.UNSUPPORTED_OPTIONAL_PARAMETER, f"optional parameter {ptype}"
            )
        caps.extend(decode_capabilities(body[start:end]))
        pos = end
    # RFC 4271 §6.2: hold time 1 or 2 is unacceptable (0 or >= 3 is fine).
    if hold in (1, 2):
        raise _open_error(OpenError.UNACCEPTABLE_HOLD_TIME, f"hold time {hold}")
    router_id = ipaddress.IPv4Address(bgp_id)
    # RFC 6286 §2.2: the BGP Identifier is any non-zero 4-octet value.
    if int(router_id) == 0:
        raise _open_error(OpenError.BAD_BGP_IDENTIFIER, "BGP identifier 0")
    asn = my_as
    for cap in caps:
        if isinstance(cap, FourOctetAs):
            asn = cap.asn  # RFC 6793 §4.1: the real AS is in the capability
            break
    default_field = asn if asn <= 0xFFFF else AS_TRANS
    return Open(
        asn=asn,
        hold_time=hold,
        router_id=router_id,
        capabilities=tuple(caps),
        version=version,
        my_as_field=None if my_as == default_field else my_as,
    )


def _encode_open(msg: Open) -> bytes:
    params = encode_capabilities(msg.capabilities)
    short = b"".join(bytes((OPT_PARAM_CAPABILITIES, len(p))) + p for p in params)
    if len(short) <= 254:  # 255 would look like the RFC 9072 marker to a new speaker
        opt = bytes((len(short),)) + short
    else:
        # RFC 9072 §2: Non-Ext OP Len 255, Non-Ext OP Type 255, Extended Opt. Parm. Length.
        ext = b"".join(bytes((OPT_PARAM_CAPABILITIES,)) + _U16.pack(len(p)) + p for p in params)
        opt = b"\xff\xff" + _U16.pack(len(ext)) + ext
    return _OPEN_HEAD.pack(msg.version, msg.wire_my_as, msg.hold_time, msg.router_id.packed) + opt


# --- UPDATE (RFC 4271 §4.3) -------------------------------------------------------------
#
#   +-----------------------------------------------------+
#   |   Withdrawn Routes Length (2 octets)                |
#   +-----------------------------------------------------+
#   |   Withdrawn Routes (variable)                       |
#   +-----------------------------------------------------+
#   |   Total Path Attribute Length (2 octets)            |
#   +-----------------------------------------------------+
#   |   Path Attributes (variable)                        |
#   +-----------------------------------------------------+
#   |   Network Layer Reachability Information (variable) |
#   +-----------------------------------------------------+


def _malformed_list(reason: str) -> ProtocolError:
    # RFC 4271 §6.3, kept as a session reset by RFC 7606 §3.a/§5.3.
    return ProtocolError(
        ErrorCode.UPDATE_MESSAGE,
        UpdateError.MALFORMED_ATTRIBUTE_LIST,
        handling=ErrorHandling.SESSION_RESET,
        reason=reason,
    )


def _decode_update(body: bytes, ctx: Negotiated) -> Update:
    n = len(body)
    if n < 4:
        raise _malformed_list("UPDATE shorter than its two length fields")
    wlen = (body[0] << 8) | body[1]
    if 2 + wlen + 2 > n:
        raise _malformed_list(f"withdrawn routes length {wlen} overruns the UPDATE")
    alen = (body[2 + wlen] << 8) | body[3 + wlen]
    astart = 4 + wlen
    if astart + alen > n:
        raise _malformed_list(f"total path attribute length {alen} overruns the UPDATE")
    addpath = IPV4_UNICAST in ctx.addpath_receive
    withdrawn = decode_nlri(body[2 : 2 + wlen], Afi.IPV4, addpath) if wlen else []
    nlri = decode_nlri(body[astart + alen :], Afi.IPV4, addpath) if astart + alen < n else []
    if alen:
        dec = decode_attributes(body[astart : astart + alen], ctx, has_nlri=bool(nlri))
        return Update(
            withdrawn=tuple(withdrawn),
            attrs=dec.attrs,
            nlri=tuple(nlri),
            mp_reach=dec.mp_reach,
            mp_unreach=dec.mp_unreach,
            treat_as_withdraw=dec.treat_as_withdraw,
            discarded=dec.discarded,
        )
    error = None
    if nlri:
        # RFC 7606 §3.d: NLRI without ORIGIN (or any attribute) -> treat-as-withdraw.
        error = ProtocolError(
            ErrorCode.UPDATE_MESSAGE,
            UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE,
            b"\x01",
            ErrorHandling.TREAT_AS_WITHDRAW,
            "NLRI without path attributes",
        )
    return Update(withdrawn=tuple(withdrawn), nlri=tuple(nlri), treat_as_withdraw=error)


def _nlri_bytes(nlri: tuple[Nlri, ...], addpath: bool) -> bytes:
    return b"".join(encode_nlri(x, addpath) for x in nlri)


def _encode_update(msg: Update, ctx: Negotiated) -> bytes:
    addpath = IPV4_UNICAST in ctx.addpath_send
    withdrawn = _nlri_bytes(msg.withdrawn, addpath)
    # RFC 7606 §5.1: MP_REACH_NLRI / MP_UNREACH_NLRI first, so a receiver can find the
    # NLRI even when later attributes are malformed.
    parts: list[bytes] = []
    if msg.mp_reach is not None:
        mp = msg.mp_reach
        parts.append(
            encode_mp_reach(
                mp.family,
                mp.next_hop,
                mp.link_local_next_hop,
                _nlri_bytes(mp.nlri, mp.family in ctx.addpath_send),
            )
        )
    if msg.mp_unreach is not None:
        mpu = msg.mp_unreach
        parts.append(
            encode_mp_unreach(mpu.family, _nlri_bytes(mpu.nlri, mpu.family in ctx.addpath_send))
        )
    if msg.attrs is not None:
        parts.append(encode_attributes(msg.attrs, ctx))
    attrs = b"".join(parts)
    nlri = _nlri_bytes(msg.nlri, addpath)
    if len(withdrawn) > 0xFFFF or len(attrs) > 0xFFFF:
        raise LocalUsageError("UPDATE field longer than 65535 octets")
    return b"".join((_U16.pack(len(withdrawn)), withdrawn, _U16.pack(len(attrs)), attrs, nlri))


# --- NOTIFICATION (RFC 4271 §4.5), ROUTE-REFRESH (RFC 2918 §3, RFC 7313 §3.2) -----------
#
#   NOTIFICATION:  | Error code (1) | Error subcode (1) | Data (variable) |
#   ROUTE-REFRESH: | AFI (2) | Reserved / Message Subtype (1) | SAFI (1) |


def _decode_notification(body: bytes) -> Notification:
    if len(body) < 2:
        raise _bad_length(len(body) + HEADER_LEN, "NOTIFICATION too short")
    code, subcode = _NOTIFICATION.unpack_from(body)
    return Notification(code, subcode, body[2:])


def _decode_route_refresh(body: bytes) -> RouteRefresh:
    if len(body) < 4:
        raise _bad_length(len(body) + HEADER_LEN, "ROUTE-REFRESH too short")
    afi, subtype, safi = _ROUTE_REFRESH.unpack_from(body)
    if len(body) != 4 and subtype in (RouteRefreshSubtype.BORR, RouteRefreshSubtype.EORR):
        # RFC 7313 §5: Invalid Message Length, data = the complete ROUTE-REFRESH message.
        raise ProtocolError(
            ErrorCode.ROUTE_REFRESH,
            RouteRefreshError.INVALID_MESSAGE_LENGTH,
            encode_header(MessageType.ROUTE_REFRESH, body),
            reason=f"ROUTE-REFRESH subtype {subtype} of {len(body) + HEADER_LEN} octets",
        )
    # A longer normal refresh carries ORF entries (RFC 5291); roost does not negotiate
    # ORF and ignores them.
    # RFC 7313 §5: other subtypes are to be ignored; the session does that, we keep them.
    return RouteRefresh(Family(afi, safi), subtype)


# --- entry points -----------------------------------------------------------------------

_KEEPALIVE = Keepalive()

# How an unexpected low-level failure is reported, per message type (defensive only: the
# parsers check bounds explicitly).
_FALLBACK: dict[int, tuple[int, int]] = {
    MessageType.OPEN: (ErrorCode.OPEN_MESSAGE, 0),
    MessageType.UPDATE: (ErrorCode.UPDATE_MESSAGE, UpdateError.MALFORMED_ATTRIBUTE_LIST),
}


def decode_message(msg_type: int, body: bytes | memoryview, ctx: Negotiated) -> Message:
    """Decode one message body (header already stripped and checked by `FrameBuffer`)."""
    data = body if isinstance(body, bytes) else bytes(body)
    try:
        if msg_type == MessageType.UPDATE:
            return _decode_update(data, ctx)
        if msg_type == MessageType.KEEPALIVE:
            if data:
                raise _bad_length(len(data) + HEADER_LEN, "KEEPALIVE with a body")
            return _KEEPALIVE
        if msg_type == MessageType.OPEN:
            return _decode_open(data)
        if msg_type == MessageType.NOTIFICATION:
            return _decode_notification(data)
        if msg_type == MessageType.ROUTE_REFRESH:
            return _decode_route_refresh(data)
    except ProtocolError:
        raise
    except (struct.error, IndexError, ValueError, TypeError, OverflowError) as exc:
        code, subcode = _FALLBACK.get(
            msg_type, (ErrorCode.MESSAGE_HEADER, HeaderError.BAD_MESSAGE_LENGTH)
        )
        raise ProtocolError(code, subcode, reason=f"cannot parse: {exc}") from None
    raise ProtocolError(
        ErrorCode.MESSAGE_HEADER,
        HeaderError.BAD_MESSAGE_TYPE,
        bytes((msg_type & 0xFF,)),
        reason=f"unknown message type {msg_type}",
    )


def _encode_body(msg: Message, ctx: Negotiated) -> tuple[int, bytes]:
    if isinstance(msg, Update):
        return MessageType.UPDATE, _encode_update(msg, ctx)
    if isinstance(msg, Keepalive):
        return MessageType.KEEPALIVE, b""
    if isinstance(msg, Open):
        return MessageType.OPEN, _encode_open(msg)
    if isinstance(msg, Notification):
        return MessageType.NOTIFICATION, _NOTIFICATION.pack(msg.code, msg.subcode) + msg.data
    if isinstance(msg, RouteRefresh):
        return MessageType.ROUTE_REFRESH, _ROUTE_REFRESH.pack(
            msg.family.afi, msg.subtype, msg.family.safi
        )
    raise LocalUsageError(f"not a BGP message: {msg!r}")


def encode_message(msg: Message, ctx: Negotiated) -> bytes:
    """The complete message, header included. Raises `LocalUsageError` when it does not
    fit the negotiated maximum (4096, or 65535 with RFC 8654; OPEN is always <= 4096)."""
    msg_type, body = _encode_body(msg, ctx)
    limit = MAX_MESSAGE_LEN if msg_type == MessageType.OPEN else ctx.max_message_len
    if HEADER_LEN + len(body) > limit:
        raise LocalUsageError(
            f"{MessageType(msg_type).name} of {HEADER_LEN + len(body)} octets exceeds {limit}"
        )
    return encode_header(msg_type, body)
