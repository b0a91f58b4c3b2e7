"""UPDATE packing for Adj-RIB-Out: one attribute encoding, as many NLRI per message as fit.

RFC 4271 §9.2: a speaker may advertise many prefixes with one set of attributes in one
UPDATE. The attributes are encoded once per call; NLRI are encoded straight into octets
(no intermediate objects) and cut into messages of at most `ctx.max_message_len`.

IPv4 unicast with an IPv4 next hop uses NEXT_HOP and the NLRI field (RFC 4271 §4.3); any
other family, or IPv4 with an IPv6 next hop (RFC 8950), uses MP_REACH_NLRI (RFC 4760 §3),
placed first among the attributes (RFC 7606 §5.1). Withdrawals of IPv4 unicast use the
Withdrawn Routes field, other families MP_UNREACH_NLRI (RFC 4760 §4).
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Sequence

from bgp.errors import LocalUsageError
from bgp.types import HEADER_LEN, IPV4_UNICAST, MARKER, Afi, Family, MessageType
from bgp.wire.attrcodec import encode_attributes, encode_mp_reach, encode_mp_unreach
from bgp.wire.attributes import AttrSet
from bgp.wire.model import Negotiated
from bgp.wire.prefix import Nlri

__all__ = ["encode_nlri_run", "end_of_rib", "pack_announcements", "pack_withdrawals"]

_HEADER = struct.Struct("!16sHB")
_U16 = struct.Struct("!H")
_V4 = struct.Struct("!BI")  # length octet + full address; sliced to the octets needed
_V4_ID = struct.Struct("!IBI")
_V6 = struct.Struct("!BQQ")
_V6_ID = struct.Struct("!IBQQ")
_MP_UNREACH_OVERHEAD = 4 + 3  # extended-length attribute header + AFI/SAFI
_MP_REACH_OVERHEAD = 4 + 5  # extended-length header + AFI/SAFI/NH-len + reserved octet
_UPDATE_FIXED = HEADER_LEN + 4  # header + the two 2-octet length fields
_MASK64 = (1 << 64) - 1


def _encode_pieces(nlri: Sequence[Nlri], afi: int, addpath: bool) -> list[bytes]:
    """Each NLRI as its wire octets (RFC 4271 §4.3, RFC 7911 §3).

    A prefix is packed whole with one precompiled struct and then cut to the octets its
    length needs: one C call and one slice per prefix.
    """
    if afi == Afi.IPV4:
        if addpath:
            p4id = _V4_ID.pack
            return [
                p4id(n.path_id, n.prefix.length, n.prefix.addr)[: 5 + ((n.prefix.length + 7) >> 3)]
                for n in nlri
            ]
        p4 = _V4.pack
        return [p4(length, addr)[: 1 + ((length + 7) >> 3)] for (_, length, addr), _id in nlri]
    if addpath:
        p6id = _V6_ID.pack
        return [
            p6id(n.path_id, n.prefix.length, n.prefix.addr >> 64, n.prefix.addr & _MASK64)[
                : 5 + ((n.prefix.length + 7) >> 3)
            ]
            for n in nlri
        ]
    p6 = _V6.pack
    return [
        p6(n.prefix.length, n.prefix.addr >> 64, n.prefix.addr & _MASK64)[
            : 1 + ((n.prefix.length + 7) >> 3)
        ]
        for n in nlri
    ]


def encode_nlri_run(nlri: Sequence[Nlri], afi: int, addpath: bool = False) -> bytes:
    """A run of NLRI as octets (the NLRI field, or the NLRI of an MP attribute)."""
    return b"".join(_encode_pieces(nlri, afi, addpath))


def _chunks(pieces: list[bytes], budget: int) -> list[bytes]:
    """Greedily join pieces into runs of at most `budget` octets."""
    if budget <= 0:
        raise LocalUsageError("path attributes leave no room for NLRI in an UPDATE")
    runs: list[bytes] = []
    cur: list[bytes] = []
    size = 0
    for piece in pieces:
        n = len(piece)
        if size + n > budget and cur:
            runs.append(b"".join(cur))
            cur = []
            size = 0
        cur.append(piece)
        size += n
    if cur:
        runs.append(b"".join(cur))
    return runs


def _message(body: bytes) -> bytes:
    return _HEADER.pack(MARKER, HEADER_LEN + len(body), MessageType.UPDATE) + body


def pack_announcements(
    family: Family, attrs: AttrSet, nlri: Sequence[Nlri], ctx: Negotiated
) -> list[bytes]:
    """Complete UPDATE messages announcing `nlri` with `attrs` (next hop included)."""
    if not nlri:
        return []
    addpath = family in ctx.addpath_send
    pieces = _encode_pieces(nlri, family.afi, addpath)
    limit = ctx.max_message_len
    if family == IPV4_UNICAST and isinstance(attrs.next_hop, ipaddress.IPv4Address):
        attr = encode_attributes(attrs, ctx, next_hop_attr=True)
        head = b"\x00\x00" + _U16.pack(len(attr)) + attr
        return [_message(head + run) for run in _chunks(pieces, limit - _UPDATE_FIXED - len(attr))]
    if attrs.next_hop is None:
        raise LocalUsageError(f"announcement for {family} without a next hop")
    attr = encode_attributes(attrs, ctx, next_hop_attr=False)
    nh_len = 16 if attrs.next_hop.version == 6 else 4
    if attrs.link_local_next_hop is not None:
        nh_len += 16
    budget = limit - _UPDATE_FIXED - len(attr) - _MP_REACH_OVERHEAD - nh_len
    out: list[bytes] = []
    for run in _chunks(pieces, budget):
        mp = encode_mp_reach(family, attrs.next_hop, attrs.link_local_next_hop, run)
        body = b"\x00\x00" + _U16.pack(len(mp) + len(attr)) + mp + attr
        out.append(_message(body))
    return out


def pack_withdrawals(family: Family, nlri: Sequence[Nlri], ctx: Negotiated) -> list[bytes]:
    """Complete UPDATE messages withdrawing `nlri`."""
    if not nlri:
        return []
    addpath = family in ctx.addpath_send
    pieces = _encode_pieces(nlri, family.afi, addpath)
    limit = ctx.max_message_len
    if family == IPV4_UNICAST:
        return [
            _message(_U16.pack(len(run)) + run + b"\x00\x00")
            for run in _chunks(pieces, limit - _UPDATE_FIXED)
        ]
    out: list[bytes] = []
    for run in _chunks(pieces, limit - _UPDATE_FIXED - _MP_UNREACH_OVERHEAD):
        mp = encode_mp_unreach(family, run)
        out.append(_message(b"\x00\x00" + _U16.pack(len(mp)) + mp))
    return out


def end_of_rib(family: Family, ctx: Negotiated) -> bytes:
    """The End-of-RIB marker (RFC 4724 §2): an empty UPDATE for IPv4 unicast, otherwise an
    UPDATE holding only an empty MP_UNREACH_NLRI for the family."""
    if family == IPV4_UNICAST:
        return _message(b"\x00\x00\x00\x00")
    mp = encode_mp_unreach(family, b"")
    return _message(b"\x00\x00" + _U16.pack(len(mp)) + mp)
