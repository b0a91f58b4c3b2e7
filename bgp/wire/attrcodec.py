"""Path attribute codec: one table row per attribute type (RFC 4271 §4.3, §5; RFC 7606).

Each attribute on the wire (RFC 4271 §4.3):

     0                   1                   2                   3
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |O|T|P|E| unused|  Type Code    | Length (1, or 2 if E set) ... |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                        Value (Length octets)                  |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

Decoding applies RFC 7606: every error carries the action it calls for (attribute
discard, treat-as-withdraw, session reset) and the strongest one wins. Session resets raise
at once; weaker actions are recorded in `DecodedAttrs`.

Speed: the non-MP attributes are decoded once per distinct byte string (and AS4 mode) and
cached, so a feed of 100k prefixes that share attributes decodes them a handful of times.
MP_REACH_NLRI / MP_UNREACH_NLRI are sliced out of the cache key because they carry NLRI.
"""

from __future__ import annotations

import ipaddress
import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple

from bgp.errors import ErrorHandling, LocalUsageError, ProtocolError
from bgp.types import (
    AS_TRANS,
    IPV4_UNICAST,
    Afi,
    AsPathSegmentType,
    AttrFlag,
    AttrType,
    ErrorCode,
    Family,
    Safi,
    UpdateError,
)
from bgp.wire.attributes import (
    Aggregator,
    AsPath,
    AsPathSegment,
    AttrSet,
    IPAddress,
    LargeCommunity,
    UnknownAttribute,
)
from bgp.wire.model import MpReach, MpUnreach, Negotiated
from bgp.wire.prefix import decode_nlri

__all__ = [
    "ATTRIBUTE_TABLE",
    "AttrRow",
    "DecodedAttrs",
    "clear_caches",
    "decode_attributes",
    "decode_mp_reach",
    "decode_mp_unreach",
    "encode_attributes",
    "encode_mp_reach",
    "encode_mp_unreach",
    "tlv",
]

_O = int(AttrFlag.OPTIONAL)
_T = int(AttrFlag.TRANSITIVE)
_P = int(AttrFlag.PARTIAL)
_E = int(AttrFlag.EXTENDED_LENGTH)
_OT_MASK = _O | _T

_WELL_KNOWN = _T  # well-known attributes are transitive, not optional (RFC 4271 §5)
_OPT_TRANS = _O | _T
_OPT_NONTRANS = _O

_DISCARD = ErrorHandling.ATTRIBUTE_DISCARD
_WITHDRAW = ErrorHandling.TREAT_AS_WITHDRAW
_RESET = ErrorHandling.SESSION_RESET

_HDR = struct.Struct("!BBB")
_HDR_EXT = struct.Struct("!BBH")
_U16 = struct.Struct("!H")
_U32 = struct.Struct("!I")
_AGGR2 = struct.Struct("!H4s")
_AGGR4 = struct.Struct("!I4s")
_LARGE = struct.Struct("!III")
_MP_HEAD = struct.Struct("!HBB")  # AFI, SAFI, next-hop length
_MP_UNREACH_HEAD = struct.Struct("!HB")

_CONFED = (AsPathSegmentType.AS_CONFED_SEQUENCE, AsPathSegmentType.AS_CONFED_SET)
_SEG_TYPES = frozenset(int(t) for t in AsPathSegmentType)

_UNICAST_FAMILIES = frozenset({Family(Afi.IPV4, Safi.UNICAST), Family(Afi.IPV6, Safi.UNICAST)})


class _Bad(Exception):
    """Raised by a decode hook: the attribute is malformed (the row decides the action)."""

    def __init__(self, subcode: int, reason: str, with_data: bool = True) -> None:
        super().__init__(reason)
        self.subcode = subcode
        self.reason = reason
        self.with_data = with_data


def tlv(flags: int, code: int, value: bytes) -> bytes:
    """One attribute with its header; sets or clears Extended Length as the size needs."""
    n = len(value)
    if n > 255:
        if n > 0xFFFF:
            raise LocalUsageError(f"attribute {code} value of {n} octets does not fit")
        return _HDR_EXT.pack(flags | _E, code, n) + value
    return _HDR.pack(flags & ~_E, code, n) + value


def _raw(flags: int, code: int, value: bytes) -> bytes:
    """The attribute as received (type, length, value) for a NOTIFICATION's data field."""
    if flags & _E:
        return _HDR_EXT.pack(flags, code, len(value)) + value
    return _HDR.pack(flags, code, len(value)) + value


# --- decode hooks -----------------------------------------------------------------------
# Each takes the value octets, the AS4 mode and the field dict being built.

_Fields = dict[str, Any]


def _dec_origin(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.1: length other than 1 or an undefined value -> treat-as-withdraw.
    if len(v) != 1:
        raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "ORIGIN length is not 1")
    if v[0] > 2:
        raise _Bad(UpdateError.INVALID_ORIGIN_ATTRIBUTE, f"undefined ORIGIN {v[0]}")
    out["origin"] = v[0]


_SEG_STRUCTS: dict[tuple[int, int], struct.Struct] = {}


def _seg_struct(count: int, width: int) -> struct.Struct:
    key = (count, width)
    st = _SEG_STRUCTS.get(key)
    if st is None:
        st = _SEG_STRUCTS[key] = struct.Struct(f"!{count}{'I' if width == 4 else 'H'}")
    return st


def _parse_as_path(v: bytes, width: int) -> AsPath:
    """AS_PATH / AS4_PATH segments (RFC 4271 §4.3 b, RFC 6793 §3).

        +-------------+---------------+-------------------------------+
        | type (1)    | count (1)     | count x ASN (2 or 4 octets)   |
        +-------------+---------------+-------------------------------+

    RFC 7606 §7.2: malformed when a segment type is unknown, a count is zero, fewer than
    two octets remain for a segment header, or a segment overruns the attribute.
    RFC 7607 §2: AS 0 makes the path malformed.
    """
    segs: list[AsPathSegment] = []
    pos = 0
    n = len(v)
    while pos < n:
        if n - pos < 2:
            raise _Bad(UpdateError.MALFORMED_AS_PATH, "truncated segment header", False)
        seg_type = v[pos]
        count = v[pos + 1]
        if seg_type not in _SEG_TYPES:
            raise _Bad(UpdateError.MALFORMED_AS_PATH, f"segment type {seg_type}", False)
        if count == 0:
            raise _Bad(UpdateError.MALFORMED_AS_PATH, "empty segment", False)
        end = pos + 2 + count * width
        if end > n:
            raise _Bad(UpdateError.MALFORMED_AS_PATH, "segment overruns attribute", False)
        asns = _seg_struct(count, width).unpack_from(v, pos + 2)
        if 0 in asns:
            raise _Bad(UpdateError.MALFORMED_AS_PATH, "AS 0 in path (RFC 7607)", False)
        segs.append(AsPathSegment(seg_type, asns))
        pos = end
    return AsPath(tuple(segs))


def _dec_as_path(v: bytes, asn4: bool, out: _Fields) -> None:
    out["as_path"] = _parse_as_path(v, 4 if asn4 else 2)


def _bad_next_hop(addr: int) -> bool:
    # RFC 4271 §6.3 syntactic check, RFC 7606 §7.3 action: 0.0.0.0, multicast, broadcast.
    return addr == 0 or (addr >> 28) == 0xE or addr == 0xFFFFFFFF


def _dec_next_hop(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.3: length other than 4 -> treat-as-withdraw. The semantic check is
    # recorded separately: RFC 4760 §3 says a NEXT_HOP is ignored when only MP_REACH_NLRI
    # carries NLRI, so it must only bite when the NLRI field is not empty.
    if len(v) != 4:
        raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "NEXT_HOP length is not 4")
    out["next_hop"] = ipaddress.IPv4Address(v)


def _dec_u32(name: str, label: str) -> Callable[[bytes, bool, _Fields], None]:
    def hook(v: bytes, asn4: bool, out: _Fields) -> None:
        # RFC 7606 §7.4 (MED), §7.5 (LOCAL_PREF): length other than 4 -> treat-as-withdraw.
        if len(v) != 4:
            raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, f"{label} length is not 4")
        out[name] = _U32.unpack(v)[0]

    return hook


def _dec_atomic_aggregate(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.6: length other than 0 -> attribute discard.
    if v:
        raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "ATOMIC_AGGREGATE length is not 0")
    out["atomic_aggregate"] = True


def _dec_aggregator(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.7: length other than 6 (2-octet) or 8 (4-octet session) -> discard.
    if asn4:
        if len(v) != 8:
            raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "AGGREGATOR length is not 8")
        asn, addr = _AGGR4.unpack(v)
    else:
        if len(v) != 6:
            raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "AGGREGATOR length is not 6")
        asn, addr = _AGGR2.unpack(v)
    if asn == 0:  # RFC 7607 §2
        raise _Bad(UpdateError.OPTIONAL_ATTRIBUTE_ERROR, "AGGREGATOR AS 0")
    out["aggregator"] = Aggregator(asn, ipaddress.IPv4Address(addr))


def _dec_u32_list(v: bytes, label: str, unit: int = 4) -> tuple[int, ...]:
    if not v or len(v) % unit:
        raise _Bad(
            UpdateError.ATTRIBUTE_LENGTH_ERROR,
            f"{label} length {len(v)} is not a non-zero multiple of {unit}",
        )
    if unit == 4:
        return struct.unpack(f"!{len(v) >> 2}I", v)
    return struct.unpack(f"!{len(v) >> 3}Q", v)


def _dec_communities(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.8: not a non-zero multiple of 4 -> treat-as-withdraw.
    out["communities"] = _dec_u32_list(v, "COMMUNITIES")


def _dec_originator_id(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.9: length other than 4 -> treat-as-withdraw.
    if len(v) != 4:
        raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "ORIGINATOR_ID length is not 4")
    out["originator_id"] = ipaddress.IPv4Address(v)


def _dec_cluster_list(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.10: not a non-zero multiple of 4 -> treat-as-withdraw.
    ids = _dec_u32_list(v, "CLUSTER_LIST")
    out["cluster_list"] = tuple(ipaddress.IPv4Address(i) for i in ids)


def _dec_ext_communities(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 7606 §7.14: not a non-zero multiple of 8 -> treat-as-withdraw.
    out["ext_communities"] = _dec_u32_list(v, "EXTENDED_COMMUNITIES", 8)


def _dec_large_communities(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 8092 §5: not a non-zero multiple of 12 -> treat-as-withdraw.
    if not v or len(v) % 12:
        raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "LARGE_COMMUNITY length")
    out["large_communities"] = tuple(
        LargeCommunity(*_LARGE.unpack_from(v, i)) for i in range(0, len(v), 12)
    )


def _dec_as4_path(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 6793 §6: a malformed AS4_PATH is discarded; it must not carry confederation
    # segments (§3), and AS 0 makes it malformed (RFC 7607 §2).
    path = _parse_as_path(v, 4)
    if any(seg.type in _CONFED for seg in path.segments):
        raise _Bad(UpdateError.MALFORMED_AS_PATH, "confederation segment in AS4_PATH", False)
    out["_as4_path"] = path


def _dec_as4_aggregator(v: bytes, asn4: bool, out: _Fields) -> None:
    # RFC 6793 §6: a malformed AS4_AGGREGATOR is discarded.
    if len(v) != 8:
        raise _Bad(UpdateError.ATTRIBUTE_LENGTH_ERROR, "AS4_AGGREGATOR length is not 8")
    asn, addr = _AGGR4.unpack(v)
    if asn == 0:
        raise _Bad(UpdateError.OPTIONAL_ATTRIBUTE_ERROR, "AS4_AGGREGATOR AS 0")
    out["_as4_aggregator"] = Aggregator(asn, ipaddress.IPv4Address(addr))


# --- encode hooks -----------------------------------------------------------------------
# Each returns the value octets, or None when the attribute is absent.


def _pack_as_path(path: AsPath, width: int) -> bytes:
    # Segments longer than 255 ASNs are split (the count field is one octet).
    fmt = "I" if width == 4 else "H"
    parts: list[bytes] = []
    for seg in path.segments:
        asns = seg.asns
        for i in range(0, len(asns), 255):
            chunk = asns[i : i + 255]
            parts.append(struct.pack(f"!BB{len(chunk)}{fmt}", seg.type, len(chunk), *chunk))
    return b"".join(parts)


def _enc_origin(a: AttrSet, asn4: bool) -> bytes | None:
    return bytes((a.origin,))


def _enc_as_path(a: AttrSet, asn4: bool) -> bytes | None:
    # RFC 6793 §4.2.2: to a 2-octet peer, ASNs above 65535 become AS_TRANS.
    if asn4:
        return _pack_as_path(a.as_path, 4)
    return _pack_as_path(a.as_path.as_two_octet(), 2)


def _enc_next_hop(a: AttrSet, asn4: bool) -> bytes | None:
    if isinstance(a.next_hop, ipaddress.IPv4Address):
        return a.next_hop.packed
    return None


def _enc_med(a: AttrSet, asn4: bool) -> bytes | None:
    return None if a.med is None else _U32.pack(a.med)


def _enc_local_pref(a: AttrSet, asn4: bool) -> bytes | None:
    return None if a.local_pref is None else _U32.pack(a.local_pref)


def _enc_atomic_aggregate(a: AttrSet, asn4: bool) -> bytes | None:
    return b"" if a.atomic_aggregate else None


def _enc_aggregator(a: AttrSet, asn4: bool) -> bytes | None:
    agg = a.aggregator
    if agg is None:
        return None
    if asn4:
        return _AGGR4.pack(agg.asn, agg.address.packed)
    asn = agg.asn if agg.asn <= 0xFFFF else AS_TRANS
    return _AGGR2.pack(asn, agg.address.packed)


def _enc_communities(a: AttrSet, asn4: bool) -> bytes | None:
    c = a.communities
    return struct.pack(f"!{len(c)}I", *c) if c else None


def _enc_originator_id(a: AttrSet, asn4: bool) -> bytes | None:
    return None if a.originator_id is None else a.originator_id.packed


def _enc_cluster_list(a: AttrSet, asn4: bool) -> bytes | None:
    cl = a.cluster_list
    return b"".join(c.packed for c in cl) if cl else None


def _enc_ext_communities(a: AttrSet, asn4: bool) -> bytes | None:
    c = a.ext_communities
    return struct.pack(f"!{len(c)}Q", *c) if c else None


def _enc_large_communities(a: AttrSet, asn4: bool) -> bytes | None:
    c = a.large_communities
    return b"".join(_LARGE.pack(*lc) for lc in c) if c else None


def _enc_as4_path(a: AttrSet, asn4: bool) -> bytes | None:
    # RFC 6793 §4.2.2: only to a 2-octet peer, only when the path has an ASN that does not
    # fit, and without confederation segments.
    if asn4 or not a.as_path.has_four_octet_asn():
        return None
    path = AsPath(tuple(s for s in a.as_path.segments if s.type not in _CONFED))
    return _pack_as_path(path, 4) if path.segments else None


def _enc_as4_aggregator(a: AttrSet, asn4: bool) -> bytes | None:
    agg = a.aggregator
    if asn4 or agg is None or agg.asn <= 0xFFFF:
        return None
    return _AGGR4.pack(agg.asn, agg.address.packed)


# --- the table --------------------------------------------------------------------------

DecodeHook = Callable[[bytes, bool, _Fields], None]
EncodeHook = Callable[[AttrSet, bool], bytes | None]


class AttrRow(NamedTuple):
    """One attribute type: expected O/T flag bits, hooks, and the RFC 7606 action taken
    when it is malformed (which also covers flag errors, RFC 7606 §3.c)."""

    code: int
    flags: int
    decode: DecodeHook | None
    encode: EncodeHook | None
    on_error: ErrorHandling


ATTRIBUTE_TABLE: dict[int, AttrRow] = {
    row.code: row
    for row in (
        AttrRow(AttrType.ORIGIN, _WELL_KNOWN, _dec_origin, _enc_origin, _WITHDRAW),
        AttrRow(AttrType.AS_PATH, _WELL_KNOWN, _dec_as_path, _enc_as_path, _WITHDRAW),
        AttrRow(AttrType.NEXT_HOP, _WELL_KNOWN, _dec_next_hop, _enc_next_hop, _WITHDRAW),
        AttrRow(
            AttrType.MULTI_EXIT_DISC, _OPT_NONTRANS, _dec_u32("med", "MED"), _enc_med, _WITHDRAW
        ),
        AttrRow(
            AttrType.LOCAL_PREF,
            _WELL_KNOWN,
            _dec_u32("local_pref", "LOCAL_PREF"),
            _enc_local_pref,
            _WITHDRAW,
        ),
        AttrRow(
            AttrType.ATOMIC_AGGREGATE,
            _WELL_KNOWN,
            _dec_atomic_aggregate,
            _enc_atomic_aggregate,
            _DISCARD,
        ),
        AttrRow(AttrType.AGGREGATOR, _OPT_TRANS, _dec_aggregator, _enc_aggregator, _DISCARD),
        AttrRow(AttrType.COMMUNITIES, _OPT_TRANS, _dec_communities, _enc_communities, _WITHDRAW),
        AttrRow(
            AttrType.ORIGINATOR_ID,
            _OPT_NONTRANS,
            _dec_originator_id,
            _enc_originator_id,
            _WITHDRAW,
        ),
        AttrRow(
            AttrType.CLUSTER_LIST,
            _OPT_NONTRANS,
            _dec_cluster_list,
            _enc_cluster_list,
            _WITHDRAW,
        ),
        # RFC 7606 §7.11/§7.12: MP attributes are decoded per message (they carry NLRI);
        # their rows only give the flags and the action (session reset).
        AttrRow(AttrType.MP_REACH_NLRI, _OPT_NONTRANS, None, None, _RESET),
        AttrRow(AttrType.MP_UNREACH_NLRI, _OPT_NONTRANS, None, None, _RESET),
        AttrRow(
            AttrType.EXTENDED_COMMUNITIES,
            _OPT_TRANS,
            _dec_ext_communities,
            _enc_ext_communities,
            _WITHDRAW,
        ),
        AttrRow(AttrType.AS4_PATH, _OPT_TRANS, _dec_as4_path, _enc_as4_path, _DISCARD),
        AttrRow(
            AttrType.AS4_AGGREGATOR,
            _OPT_TRANS,
            _dec_as4_aggregator,
            _enc_as4_aggregator,
            _DISCARD,
        ),
        AttrRow(
            AttrType.LARGE_COMMUNITY,
            _OPT_TRANS,
            _dec_large_communities,
            _enc_large_communities,
            _WITHDRAW,
        ),
    )
}

# Encode order: ascending type code (RFC 4271 §5 suggests it), MP attributes excluded.
_ENCODE_ROWS = tuple(
    (row.code, row.flags, row.encode)
    for code, row in sorted(ATTRIBUTE_TABLE.items())
    if row.encode is not None
)
_MP_CODES = (AttrType.MP_REACH_NLRI, AttrType.MP_UNREACH_NLRI)


# --- decoding ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DecodedAttrs:
    """The path attributes of one UPDATE, split and judged.

    `attrs` is None when the UPDATE carried no non-MP attribute at all (End-of-RIB
    detection depends on it). `treat_as_withdraw` holds the strongest RFC 7606
    treat-as-withdraw error; `discarded` lists attribute types dropped under RFC 7606
    (attribute discard, duplicates) or RFC 6793 (AS4_* attributes on a 4-octet session).
    """

    attrs: AttrSet | None
    mp_reach: MpReach | None = None
    mp_unreach: MpUnreach | None = None
    treat_as_withdraw: ProtocolError | None = None
    discarded: tuple[int, ...] = ()


class _NonMp(NamedTuple):
    """Cached decode of the non-MP attribute bytes."""

    attrs: AttrSet | None
    error: ProtocolError | None  # strongest treat-as-withdraw error
    next_hop_error: ProtocolError | None  # RFC 7606 §7.3 semantic check, NLRI-dependent
    discarded: tuple[int, ...]
    has_origin: bool
    has_as_path: bool
    has_next_hop: bool


_CACHE_MAX = 8192
_cache: dict[tuple[bytes, bool], _NonMp] = {}


def clear_caches() -> None:
    """Drop the decode and encode caches (tests and memory statistics)."""
    _cache.clear()
    _enc_cache.clear()


def _update_error(
    subcode: int, handling: ErrorHandling, data: bytes = b"", reason: str = ""
) -> ProtocolError:
    return ProtocolError(ErrorCode.UPDATE_MESSAGE, subcode, data, handling, reason)


def _stronger(a: ProtocolError | None, b: ProtocolError | None) -> ProtocolError | None:
    """RFC 7606 §2: the strongest action wins; on a tie the first error is kept."""
    if a is None:
        return b
    if b is None or b.handling <= a.handling:
        return a
    return b


def _decode_non_mp(raw: bytes, asn4: bool) -> _NonMp:
    """Decode a run of complete, non-MP attributes (the caller has bounded them)."""
    fields: _Fields = {}
    seen: set[int] = set()
    discarded: list[int] = []
    unknown: list[UnknownAttribute] = []
    error: ProtocolError | None = None
    nh_error: ProtocolError | None = None
    table = ATTRIBUTE_TABLE
    pos = 0
    n = len(raw)
    while pos < n:
        flags = raw[pos]
        code = raw[pos + 1]
        if flags & _E:
            length = (raw[pos + 2] << 8) | raw[pos + 3]
            start = pos + 4
        else:
            length = raw[pos + 2]
            start = pos + 3
        pos = start + length
        value = raw[start:pos]
        # RFC 7606 §3.g: all but the first occurrence of an attribute are discarded.
        if code in seen:
            discarded.append(code)
            continue
        seen.add(code)
        row = table.get(code)
        if row is None:
            if not flags & _O:
                # RFC 4271 §6.3: Unrecognized Well-known Attribute, data = the attribute.
                raise _update_error(
                    UpdateError.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE,
                    _RESET,
                    _raw(flags, code, value),
                    f"unrecognized well-known attribute {code}",
                )
            if flags & _T:
                # RFC 4271 §5: unrecognized optional transitive attributes pass through.
                unknown.append(UnknownAttribute(code, flags & ~_E, value))
            # Optional non-transitive: "quietly ignored" (RFC 4271 §5).
            continue
        err: ProtocolError | None = None
        if flags & _OT_MASK != row.flags:
            # RFC 4271 §6.3 Attribute Flags Error, data = the attribute; RFC 7606 §3.c:
            # handled as the attribute's malformed case.
            err = _update_error(
                UpdateError.ATTRIBUTE_FLAGS_ERROR,
                row.on_error,
                _raw(flags, code, value),
                f"attribute {code} flags {flags:#04x}",
            )
        else:
            assert row.decode is not None
            try:
                row.decode(value, asn4, fields)
            except _Bad as bad:
                data = _raw(flags, code, value) if bad.with_data else b""
                err = _update_error(bad.subcode, row.on_error, data, bad.reason)
        if err is not None:
            if err.handling == _RESET:
                raise err
            if err.handling == _DISCARD:
                discarded.append(code)
            else:
                error = _stronger(error, err)
            continue
        if code == AttrType.NEXT_HOP and _bad_next_hop(int(fields["next_hop"])):
            nh_error = _update_error(
                UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
                _WITHDRAW,
                _raw(flags, code, value),
                f"invalid NEXT_HOP {fields['next_hop']}",
            )

    as4_path: AsPath | None = fields.pop("_as4_path", None)
    as4_agg: Aggregator | None = fields.pop("_as4_aggregator", None)
    if asn4:
        # RFC 6793 §3: a NEW speaker never sends AS4_* to a NEW speaker; drop them.
        if as4_path is not None:
            discarded.append(AttrType.AS4_PATH)
        if as4_agg is not None:
            discarded.append(AttrType.AS4_AGGREGATOR)
    elif as4_path is not None or as4_agg is not None:
        _merge_as4(fields, as4_path, as4_agg)
    if unknown:
        fields["unknown"] = tuple(unknown)
    attrs = AttrSet(**fields).interned() if n else None
    return _NonMp(
        attrs,
        error,
        nh_error,
        tuple(discarded),
        AttrType.ORIGIN in seen,
        AttrType.AS_PATH in seen,
        AttrType.NEXT_HOP in seen,
    )


def _merge_as4(fields: _Fields, as4_path: AsPath | None, as4_agg: Aggregator | None) -> None:
    """RFC 6793 §4.2.3: rebuild the 4-octet path and aggregator from a 2-octet speaker."""
    agg: Aggregator | None = fields.get("aggregator")
    if agg is not None and agg.asn != AS_TRANS:
        # "If the AS number in the AGGREGATOR attribute is not AS_TRANS, then: the
        # AS4_AGGREGATOR attribute and the AS4_PATH attribute SHALL be ignored".
        return
    if agg is not None and as4_agg is not None:
        fields["aggregator"] = as4_agg
    if as4_path is None:
        return
    as_path: AsPath = fields.get("as_path", AsPath())
    # "if the number of AS numbers in the AS_PATH attribute is less than the number of AS
    # numbers in the AS4_PATH attribute, then the AS4_PATH attribute SHALL be ignored".
    # Counting per §4.2.3: AS_SET counts 1, confederation segments count 0.
    needed = as_path.length() - as4_path.length()
    if needed < 0:
        return
    lead: list[AsPathSegment] = []
    for seg in as_path.segments:
        if seg.type in _CONFED:
            lead.append(seg)
            continue
        if needed <= 0:
            break
        if seg.type == AsPathSegmentType.AS_SET:
            lead.append(seg)
            needed -= 1
        else:
            take = seg.asns[:needed]
            lead.append(AsPathSegment(seg.type, take))
            needed -= len(take)
    tail = list(as4_path.segments)
    # Join a split AS_SEQUENCE back into one segment when it fits the wire form.
    if (
        lead
        and tail
        and lead[-1].type == AsPathSegmentType.AS_SEQUENCE
        and tail[0].type == AsPathSegmentType.AS_SEQUENCE
        and len(lead[-1].asns) + len(tail[0].asns) <= 255
    ):
        joined = AsPathSegment(AsPathSegmentType.AS_SEQUENCE, lead[-1].asns + tail[0].asns)
        lead[-1] = joined
        tail.pop(0)
    fields["as_path"] = AsPath(tuple(lead + tail))


def _mp_error(flags: int, code: int, value: bytes, reason: str) -> ProtocolError:
    # RFC 4760 §7 / RFC 7606 §7.11: Optional Attribute Error, data = the attribute; the
    # session is reset (we do not implement AFI/SAFI disable).
    return _update_error(
        UpdateError.OPTIONAL_ATTRIBUTE_ERROR, _RESET, _raw(flags, code, value), reason
    )


def decode_mp_reach(value: bytes, ctx: Negotiated, flags: int = _O) -> MpReach | None:
    """MP_REACH_NLRI, RFC 4760 §3. None for a family roost does not route.

        +---------------------------------------------------------+
        | Address Family Identifier (2 octets)                    |
        | Subsequent Address Family Identifier (1 octet)          |
        | Length of Next Hop Network Address (1 octet)            |
        | Network Address of Next Hop (variable)                  |
        | Reserved (1 octet)                                      |
        | Network Layer Reachability Information (variable)       |
        +---------------------------------------------------------+

    Next hop: 4 octets (IPv4), 16 (IPv6 global) or 32 (global + link-local, RFC 2545 §3);
    an IPv6 next hop for IPv4 NLRI is RFC 8950, accepted only where that capability was
    negotiated (`ctx.extended_next_hop`). Otherwise the next hop length is inconsistent
    with the AFI: RFC 7606 §7.11 makes that a malformed MP_REACH_NLRI handled by session
    reset (the NLRI cannot be located reliably), RFC 4760 §7.
    """
    code = AttrType.MP_REACH_NLRI
    if len(value) < 5:
        raise _mp_error(flags, code, value, "MP_REACH_NLRI too short")
    afi, safi, nh_len = _MP_HEAD.unpack_from(value)
    nlri_start = 4 + nh_len + 1
    if nlri_start > len(value):
        raise _mp_error(flags, code, value, "MP_REACH_NLRI next hop overruns attribute")
    family = Family(afi, safi)
    if family not in _UNICAST_FAMILIES:
        return None
    nh = value[4 : 4 + nh_len]
    next_hop: IPAddress | None
    link_local: ipaddress.IPv6Address | None = None
    if nh_len == 4 and afi == Afi.IPV4:
        next_hop = ipaddress.IPv4Address(nh)
    elif afi != Afi.IPV6 and family not in ctx.extended_next_hop:
        raise _mp_error(flags, code, value, f"next hop length {nh_len} for AFI {afi}")
    elif nh_len == 16:
        next_hop = ipaddress.IPv6Address(nh)
    elif nh_len == 32:
        next_hop = ipaddress.IPv6Address(nh[:16])
        link_local = ipaddress.IPv6Address(nh[16:])
    else:
        raise _mp_error(flags, code, value, f"next hop length {nh_len} for AFI {afi}")
    # The Reserved octet (formerly the SNPA count, RFC 4760 §3) MUST be ignored.
    try:
        nlri = decode_nlri(value[nlri_start:], afi, family in ctx.addpath_receive)
    except ProtocolError as exc:
        raise _mp_error(flags, code, value, exc.reason) from None
    return MpReach(family, next_hop, tuple(nlri), link_local)


def decode_mp_unreach(value: bytes, ctx: Negotiated, flags: int = _O) -> MpUnreach | None:
    """MP_UNREACH_NLRI, RFC 4760 §4: AFI (2), SAFI (1), withdrawn routes (variable)."""
    code = AttrType.MP_UNREACH_NLRI
    if len(value) < 3:
        raise _mp_error(flags, code, value, "MP_UNREACH_NLRI too short")
    afi, safi = _MP_UNREACH_HEAD.unpack_from(value)
    family = Family(afi, safi)
    if family not in _UNICAST_FAMILIES:
        return None
    try:
        nlri = decode_nlri(value[3:], afi, family in ctx.addpath_receive)
    except ProtocolError as exc:
        raise _mp_error(flags, code, value, exc.reason) from None
    return MpUnreach(family, tuple(nlri))


def decode_attributes(
    data: bytes | memoryview, ctx: Negotiated, *, has_nlri: bool = False
) -> DecodedAttrs:
    """Decode an UPDATE's Path Attributes field under RFC 7606.

    `has_nlri` says whether the UPDATE's own NLRI field (IPv4 unicast) is non-empty: it
    decides whether NEXT_HOP is required and checked. Raises `ProtocolError` only for
    session-reset errors.
    """
    buf = data if isinstance(data, bytes) else bytes(data)
    n = len(buf)
    pos = 0
    mp: list[tuple[int, int, int, int]] = []  # (flags, code, value start, value end)
    spans: list[tuple[int, int]] | None = None
    overrun: ProtocolError | None = None
    while pos < n:
        # RFC 7606 §4: fewer than 3 (4 with Extended Length) octets left, or an attribute
        # overrunning the field -> treat-as-withdraw; parsing stops there.
        if n - pos < 3:
            overrun = _overrun("truncated attribute header")
            break
        flags = buf[pos]
        code = buf[pos + 1]
        if flags & _E:
            if n - pos < 4:
                overrun = _overrun("truncated attribute header")
                break
            length = (buf[pos + 2] << 8) | buf[pos + 3]
            start = pos + 4
        else:
            length = buf[pos + 2]
            start = pos + 3
        end = start + length
        if end > n:
            overrun = _overrun(f"attribute {code} overruns the attribute field")
            break
        if code == AttrType.MP_REACH_NLRI or code == AttrType.MP_UNREACH_NLRI:
            if spans is None:
                spans = [(0, pos)] if pos else []
            mp.append((flags, code, start, end))
        elif spans is not None:
            spans.append((pos, end))
        pos = end

    # The cache key: the complete non-MP attributes, byte for byte.
    if spans is None:
        raw = buf if overrun is None else buf[:pos]
    else:
        raw = b"".join(buf[s:e] for s, e in spans)
    key = (raw, ctx.asn4)
    cached = _cache.get(key)
    if cached is None:
        cached = _decode_non_mp(raw, ctx.asn4)
        if len(_cache) >= _CACHE_MAX:
            del _cache[next(iter(_cache))]  # bounded: drop the oldest entry
        _cache[key] = cached

    mp_reach: MpReach | None = None
    mp_unreach: MpUnreach | None = None
    discarded = cached.discarded
    seen_mp: set[int] = set()
    for flags, code, start, end in mp:
        value = buf[start:end]
        # RFC 7606 §3.g: MP_REACH_NLRI or MP_UNREACH_NLRI more than once -> Malformed
        # Attribute List, session reset.
        if code in seen_mp:
            raise _update_error(
                UpdateError.MALFORMED_ATTRIBUTE_LIST, _RESET, reason=f"duplicate attribute {code}"
            )
        seen_mp.add(code)
        if flags & _OT_MASK != _OPT_NONTRANS:
            raise _update_error(
                UpdateError.ATTRIBUTE_FLAGS_ERROR,
                _RESET,
                _raw(flags, code, value),
                f"attribute {code} flags {flags:#04x}",
            )
        if code == AttrType.MP_REACH_NLRI:
            mp_reach = decode_mp_reach(value, ctx, flags)
            if mp_reach is None:
                discarded += (code,)
        else:
            mp_unreach = decode_mp_unreach(value, ctx, flags)
            if mp_unreach is None:
                discarded += (code,)

    error = _stronger(cached.error, overrun)
    if has_nlri:
        error = _stronger(error, cached.next_hop_error)
    if has_nlri or (mp_reach is not None and mp_reach.nlri):
        # RFC 7606 §3.d: a missing well-known mandatory attribute -> treat-as-withdraw;
        # RFC 4271 §6.3: data = the missing attribute's type code. NEXT_HOP is only
        # mandatory with NLRI in the NLRI field (RFC 4760 §3).
        if not cached.has_origin:
            error = _stronger(error, _missing(AttrType.ORIGIN))
        if not cached.has_as_path:
            error = _stronger(error, _missing(AttrType.AS_PATH))
        if has_nlri and not cached.has_next_hop:
            error = _stronger(error, _missing(AttrType.NEXT_HOP))

    attrs = cached.attrs
    if attrs is None and overrun is not None:
        attrs = AttrSet().interned()
    return DecodedAttrs(attrs, mp_reach, mp_unreach, error, discarded)


def _overrun(reason: str) -> ProtocolError:
    return _update_error(UpdateError.MALFORMED_ATTRIBUTE_LIST, _WITHDRAW, reason=reason)


def _missing(code: int) -> ProtocolError:
    return _update_error(
        UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE,
        _WITHDRAW,
        bytes((code,)),
        f"missing well-known attribute {code}",
    )


# --- encoding ---------------------------------------------------------------------------

_ENC_CACHE_MAX = 4096
_enc_cache: dict[tuple[AttrSet, bool, bool], bytes] = {}


def encode_attributes(
    attrs: AttrSet,
    ctx: Negotiated,
    *,
    family: Family = IPV4_UNICAST,
    next_hop_attr: bool | None = None,
) -> bytes:
    """The non-MP path attributes of `attrs`, in type-code order.

    NEXT_HOP is written when `next_hop_attr` is True, or (default) when the family is IPv4
    unicast and the next hop is an IPv4 address; otherwise the next hop belongs in
    MP_REACH_NLRI (`encode_mp_reach`). For a 2-octet peer (`ctx.asn4` False) the path
    and aggregator are written with AS_TRANS plus AS4_PATH / AS4_AGGREGATOR (RFC 6793
    §4.2.2). Unknown transitive attributes are passed on with the Partial bit set.
    """
    if next_hop_attr is None:
        next_hop_attr = family == IPV4_UNICAST and isinstance(attrs.next_hop, ipaddress.IPv4Address)
    asn4 = ctx.asn4
    key = (attrs, asn4, next_hop_attr)
    found = _enc_cache.get(key)
    if found is not None:
        return found
    parts: list[bytes] = []
    for code, flags, hook in _ENCODE_ROWS:
        if code == AttrType.NEXT_HOP and not next_hop_attr:
            continue
        value = hook(attrs, asn4)
        if value is not None:
            parts.append(tlv(flags, code, value))
    # RFC 4271 §5: a passed-on unrecognized transitive attribute has Partial set.
    parts.extend(
        tlv((unk.flags | _O | _T | _P) & 0xF0, unk.type_code, unk.value) for unk in attrs.unknown
    )
    out = b"".join(parts)
    if len(_enc_cache) >= _ENC_CACHE_MAX:
        del _enc_cache[next(iter(_enc_cache))]
    _enc_cache[key] = out
    return out


def encode_mp_reach(
    family: Family,
    next_hop: IPAddress | None,
    link_local: ipaddress.IPv6Address | None,
    nlri: bytes,
) -> bytes:
    """MP_REACH_NLRI attribute (header included) around already-encoded NLRI octets."""
    if next_hop is None:
        raise LocalUsageError(f"MP_REACH_NLRI for {family} needs a next hop")
    nh = next_hop.packed
    if link_local is not None:
        nh += link_local.packed
    value = _MP_HEAD.pack(family.afi, family.safi, len(nh)) + nh + b"\x00" + nlri
    return tlv(_OPT_NONTRANS, AttrType.MP_REACH_NLRI, value)


def encode_mp_unreach(family: Family, nlri: bytes) -> bytes:
    """MP_UNREACH_NLRI attribute (header included) around already-encoded NLRI octets."""
    value = _MP_UNREACH_HEAD.pack(family.afi, family.safi) + nlri
    return tlv(_OPT_NONTRANS, AttrType.MP_UNREACH_NLRI, value)
