"""RFC 6793: 2-octet sessions, AS_TRANS, and AS4_PATH / AS4_AGGREGATOR reconstruction."""

from __future__ import annotations

import ipaddress

from bgp.types import AS_TRANS, AsPathSegmentType
from bgp.wire.attrcodec import decode_attributes, encode_attributes
from bgp.wire.attributes import Aggregator, AsPath, AsPathSegment, AttrSet
from bgp.wire.model import Negotiated

ASN2 = Negotiated(asn4=False)
ASN4 = Negotiated(asn4=True)
SEQ = AsPathSegmentType.AS_SEQUENCE
SET = AsPathSegmentType.AS_SET
CONFED = AsPathSegmentType.AS_CONFED_SEQUENCE
ADDR = ipaddress.IPv4Address("192.0.2.9")


def attr(flags: int, code: int, value: bytes) -> bytes:
    return bytes((flags, code, len(value))) + value


def seg2(kind: int, *asns: int) -> bytes:
    return bytes((kind, len(asns))) + b"".join(a.to_bytes(2, "big") for a in asns)


def seg4(kind: int, *asns: int) -> bytes:
    return bytes((kind, len(asns))) + b"".join(a.to_bytes(4, "big") for a in asns)


ORIGIN = attr(0x40, 1, b"\x00")


def decode2(*attrs: bytes) -> AttrSet:
    dec = decode_attributes(ORIGIN + b"".join(attrs), ASN2)
    assert dec.attrs is not None
    return dec.attrs


def test_encode_for_two_octet_peer() -> None:
    attrs = AttrSet.make(
        as_path=AsPath.sequence(65001, 4200000001, 65002),
        aggregator=Aggregator(4200000001, ADDR),
    )
    wire = encode_attributes(attrs, ASN2)
    assert attr(0x40, 2, seg2(SEQ, 65001, AS_TRANS, 65002)) in wire
    assert attr(0xC0, 7, AS_TRANS.to_bytes(2, "big") + ADDR.packed) in wire
    assert attr(0xC0, 17, seg4(SEQ, 65001, 4200000001, 65002)) in wire
    assert attr(0xC0, 18, (4200000001).to_bytes(4, "big") + ADDR.packed) in wire
    assert decode_attributes(wire, ASN2).attrs == attrs


def test_no_as4_attributes_when_not_needed() -> None:
    attrs = AttrSet.make(as_path=AsPath.sequence(65001), aggregator=Aggregator(65001, ADDR))
    wire = encode_attributes(attrs, ASN2)
    assert b"\xc0\x11" not in wire and b"\xc0\x12" not in wire
    # Nor to a 4-octet peer, ever (RFC 6793 §4.1).
    big = attrs.replace(as_path=AsPath.sequence(4200000001))
    wire4 = encode_attributes(big, ASN4)
    assert b"\xc0\x11" not in wire4


def test_merge_prepends_leading_two_octet_asns() -> None:
    # An OLD speaker (65010) prepended itself after the NEW one added AS4_PATH.
    got = decode2(
        attr(0x40, 2, seg2(SEQ, 65010, 65001, AS_TRANS)),
        attr(0xC0, 17, seg4(SEQ, 65001, 4200000001)),
    )
    assert got.as_path == AsPath.sequence(65010, 65001, 4200000001)


def test_merge_with_as_set_and_confed() -> None:
    got = decode2(
        attr(
            0x40,
            2,
            seg2(CONFED, 64512) + seg2(SEQ, 65010, AS_TRANS) + seg2(SET, 1, 2),
        ),
        attr(0xC0, 17, seg4(SEQ, 4200000001) + seg4(SET, 1, 2)),
    )
    assert got.as_path == AsPath(
        (
            AsPathSegment(CONFED, (64512,)),
            AsPathSegment(SEQ, (65010, 4200000001)),
            AsPathSegment(SET, (1, 2)),
        )
    )


def test_as4_path_longer_than_as_path_is_ignored() -> None:
    # RFC 6793 §4.2.3: fewer ASNs in AS_PATH than AS4_PATH -> ignore AS4_PATH.
    got = decode2(
        attr(0x40, 2, seg2(SEQ, AS_TRANS)),
        attr(0xC0, 17, seg4(SEQ, 4200000001, 4200000002)),
    )
    assert got.as_path == AsPath.sequence(AS_TRANS)


def test_aggregator_not_as_trans_ignores_as4_attributes() -> None:
    got = decode2(
        attr(0x40, 2, seg2(SEQ, 65001, AS_TRANS)),
        attr(0xC0, 7, (65005).to_bytes(2, "big") + ADDR.packed),
        attr(0xC0, 17, seg4(SEQ, 65001, 4200000001)),
        attr(0xC0, 18, (4200000009).to_bytes(4, "big") + ADDR.packed),
    )
    assert got.as_path == AsPath.sequence(65001, AS_TRANS)
    assert got.aggregator == Aggregator(65005, ADDR)


def test_as4_aggregator_replaces_as_trans() -> None:
    got = decode2(
        attr(0x40, 2, seg2(SEQ, AS_TRANS)),
        attr(0xC0, 7, AS_TRANS.to_bytes(2, "big") + ADDR.packed),
        attr(0xC0, 18, (4200000009).to_bytes(4, "big") + ADDR.packed),
    )
    assert got.aggregator == Aggregator(4200000009, ADDR)
    assert got.as_path == AsPath.sequence(AS_TRANS)


def test_malformed_as4_path_is_discarded() -> None:
    # RFC 6793 §6: attribute discard; the 2-octet AS_PATH stands.
    for bad in (b"\x02\x02\x00\x00", seg4(CONFED, 4200000001), seg4(SEQ, 0)):
        dec = decode_attributes(
            ORIGIN + attr(0x40, 2, seg2(SEQ, AS_TRANS)) + attr(0xC0, 17, bad), ASN2
        )
        assert dec.attrs is not None and dec.attrs.as_path == AsPath.sequence(AS_TRANS)
        assert dec.discarded == (17,) and dec.treat_as_withdraw is None


def test_as4_attributes_from_four_octet_speaker_dropped() -> None:
    dec = decode_attributes(
        ORIGIN
        + attr(0x40, 2, seg4(SEQ, 4200000001))
        + attr(0xC0, 17, seg4(SEQ, 1))
        + attr(0xC0, 18, (7).to_bytes(4, "big") + ADDR.packed),
        ASN4,
    )
    assert dec.attrs is not None and dec.attrs.as_path == AsPath.sequence(4200000001)
    assert dec.attrs.unknown == ()
    assert sorted(dec.discarded) == [17, 18]


def test_long_segment_is_split_on_encode() -> None:
    attrs = AttrSet.make(as_path=AsPath.sequence(*range(1, 301)))
    got = decode_attributes(encode_attributes(attrs, ASN4), ASN4).attrs
    assert got is not None
    assert [len(s.asns) for s in got.as_path.segments] == [255, 45]
    assert got.as_path.asns() == tuple(range(1, 301))
