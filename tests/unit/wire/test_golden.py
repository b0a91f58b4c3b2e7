"""Golden byte vectors, written out by hand from the RFC layouts."""

from __future__ import annotations

import ipaddress

import pytest

from bgp.errors import ErrorHandling, ProtocolError
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, ErrorCode, RouteRefreshSubtype, UpdateError
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.capabilities import FourOctetAs, Multiprotocol, RouteRefreshCap
from bgp.wire.messages import decode_message, encode_message
from bgp.wire.model import (
    Keepalive,
    Message,
    MpReach,
    MpUnreach,
    Negotiated,
    Notification,
    Open,
    RouteRefresh,
    Update,
)
from bgp.wire.packing import end_of_rib
from bgp.wire.prefix import Nlri, Prefix

M = "ff" * 16
ASN4 = Negotiated(asn4=True)
ASN2 = Negotiated(asn4=False)


def h(text: str) -> bytes:
    return bytes.fromhex(text.replace(" ", ""))


def nlri(text: str) -> Nlri:
    return Nlri(Prefix.parse(text))


ATTRS = AttrSet.make(
    as_path=AsPath.sequence(65001),
    next_hop=ipaddress.IPv4Address("192.0.2.254"),
    communities=(0xFDE90064,),
)

GOLDEN: list[tuple[str, Message, Negotiated, str]] = [
    ("keepalive", Keepalive(), ASN4, M + "0013 04"),
    (
        # RFC 4271 §4.2 + RFC 5492: both capabilities in one optional parameter.
        "open",
        Open(
            65001,
            180,
            ipaddress.IPv4Address("192.0.2.1"),
            (Multiprotocol(IPV4_UNICAST), FourOctetAs(65001)),
        ),
        ASN4,
        M + "002b 01" + "04 fde9 00b4 c0000201 0e" + "02 0c 01 04 0001 00 01 41 04 0000fde9",
    ),
    (
        "open-as-trans",
        Open(4200000000, 90, ipaddress.IPv4Address("10.0.0.1"), (FourOctetAs(4200000000),)),
        ASN4,
        M + "0025 01" + "04 5ba0 005a 0a000001 08" + "02 06 41 04 fa56ea00",
    ),
    ("withdraw", Update(withdrawn=(nlri("10.0.0.0/8"),)), ASN4, M + "0019 02" + "0002 080a 0000"),
    (
        "announce-asn4",
        Update(attrs=ATTRS, nlri=(nlri("192.0.2.0/24"),)),
        ASN4,
        M
        + "0036 02"
        + "0000 001b"
        + "400101 00"
        + "400206 02 01 0000fde9"
        + "400304 c00002fe"
        + "c00804 fde90064"
        + "18 c00002",
    ),
    (
        "announce-asn2",
        Update(attrs=ATTRS, nlri=(nlri("192.0.2.0/24"),)),
        ASN2,
        M
        + "0034 02"
        + "0000 0019"
        + "400101 00"
        + "400204 02 01 fde9"
        + "400304 c00002fe"
        + "c00804 fde90064"
        + "18 c00002",
    ),
    (
        # RFC 4760 §3, RFC 7606 §5.1: MP_REACH_NLRI first.
        "mp-reach-ipv6",
        Update(
            attrs=AttrSet.make(),
            mp_reach=MpReach(
                IPV6_UNICAST, ipaddress.IPv6Address("2001:db8::1"), (nlri("2001:db8::/32"),)
            ),
        ),
        ASN4,
        M
        + "003b 02"
        + "0000 0024"
        + "800e1a 0002 01 10 20010db8000000000000000000000001 00 20 20010db8"
        + "400101 00"
        + "400200",
    ),
    (
        "mp-unreach-ipv6",
        Update(mp_unreach=MpUnreach(IPV6_UNICAST, (nlri("2001:db8:1::/48"),))),
        ASN4,
        M + "0024 02" + "0000 000d" + "800f0a 0002 01 30 20010db80001",
    ),
    (
        "notification-cease",
        Notification(6, 2, b"bye"),
        ASN4,
        M + "0018 03" + "06 02 627965",
    ),
    (
        "route-refresh",
        RouteRefresh(IPV4_UNICAST),
        ASN4,
        M + "0017 05" + "0001 00 01",
    ),
    (
        "route-refresh-borr",
        RouteRefresh(IPV6_UNICAST, RouteRefreshSubtype.BORR),
        ASN4,
        M + "0017 05" + "0002 01 01",
    ),
]


@pytest.mark.parametrize(("name", "msg", "ctx", "wire"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_encode(name: str, msg: Message, ctx: Negotiated, wire: str) -> None:
    assert encode_message(msg, ctx).hex() == h(wire).hex()


@pytest.mark.parametrize(("name", "msg", "ctx", "wire"), GOLDEN, ids=[g[0] for g in GOLDEN])
def test_golden_decode(name: str, msg: Message, ctx: Negotiated, wire: str) -> None:
    raw = h(wire)
    assert decode_message(raw[18], raw[19:], ctx) == msg


def test_open_with_one_parameter_per_capability() -> None:
    # Many speakers send each capability in its own optional parameter (RFC 5492 §4).
    body = h("04 fde9 00b4 c0000201 1002 06 01 04 0001 00 0102 06 41 04 0000fde9")
    got = decode_message(1, body, ASN4)
    assert got == Open(
        65001,
        180,
        ipaddress.IPv4Address("192.0.2.1"),
        (Multiprotocol(IPV4_UNICAST), FourOctetAs(65001)),
    )


def test_open_route_refresh_and_unknown_capability() -> None:
    body = h("04 fde9 005a 01010101 0a02 08 02 00 80 00 c8 02 abcd")
    got = decode_message(1, body, ASN4)
    assert isinstance(got, Open)
    assert got.capabilities[0] == RouteRefreshCap()
    assert got.capabilities[1].code == 128  # Cisco's pre-standard route refresh, kept raw
    assert got.capabilities[2].code == 200


def test_end_of_rib_vectors() -> None:
    assert end_of_rib(IPV4_UNICAST, ASN4) == h(M + "0017 02 0000 0000")
    assert end_of_rib(IPV6_UNICAST, ASN4) == h(M + "001d 02 0000 0006 800f03 0002 01")
    for fam in (IPV4_UNICAST, IPV6_UNICAST):
        wire = end_of_rib(fam, ASN4)
        upd = decode_message(wire[18], wire[19:], ASN4)
        assert isinstance(upd, Update)
        assert upd.end_of_rib() == fam


def test_end_of_rib_of_a_family_not_routed_is_not_ipv4() -> None:
    # The End-of-RIB of VPNv4 (1/128): an empty MP_UNREACH_NLRI the codec drops. It is
    # recorded in `discarded` and must not read as the IPv4 End-of-RIB (no attributes).
    for attr in ("800f03 0001 80", "800e0a 0001 80 04 0a000001 00 00"):
        body = h("0000" + f"{len(h(attr)):04x}" + attr)
        upd = decode_message(2, body, ASN4)
        assert isinstance(upd, Update) and upd.attrs is None and upd.mp_unreach is None
        assert upd.end_of_rib() is None


def test_ipv6_next_hop_with_link_local() -> None:
    # RFC 2545 §3: 32-octet next hop = global + link-local.
    value = (
        "0002 01 20 20010db8000000000000000000000001 fe800000000000000000000000000001 00"
        " 40 20010db800000001"
    )
    attr = "800e" + f"{len(h(value)):02x}" + value
    body = h("0000" + f"{len(h(attr)) + 7:04x}" + attr + "400101 00 400200")
    upd = decode_message(2, body, ASN4)
    assert isinstance(upd, Update)
    assert upd.mp_reach is not None
    assert upd.mp_reach.next_hop == ipaddress.IPv6Address("2001:db8::1")
    assert upd.mp_reach.link_local_next_hop == ipaddress.IPv6Address("fe80::1")
    assert upd.mp_reach.nlri == (nlri("2001:db8:0:1::/64"),)


def test_rfc8950_ipv4_nlri_with_ipv6_next_hop() -> None:
    value = "0001 01 10 20010db8000000000000000000000001 00 18 c00002"
    attr = "800e" + f"{len(h(value)):02x}" + value
    body = h("0000" + f"{len(h(attr)) + 7:04x}" + attr + "400101 00 400200")
    ctx = Negotiated(asn4=True, extended_next_hop=frozenset({IPV4_UNICAST}))
    upd = decode_message(2, body, ctx)
    assert isinstance(upd, Update)
    assert upd.mp_reach == MpReach(
        IPV4_UNICAST, ipaddress.IPv6Address("2001:db8::1"), (nlri("192.0.2.0/24"),)
    )
    ((fam, attrs, _routes),) = list(upd.announced())
    assert fam == IPV4_UNICAST and attrs.next_hop == ipaddress.IPv6Address("2001:db8::1")
    # Without the Extended Next Hop capability the 16-octet next hop is inconsistent
    # with AFI 1: malformed MP_REACH_NLRI, session reset (RFC 7606 §7.11).
    with pytest.raises(ProtocolError) as exc:
        decode_message(2, body, ASN4)
    assert exc.value.code == ErrorCode.UPDATE_MESSAGE
    assert exc.value.subcode == UpdateError.OPTIONAL_ATTRIBUTE_ERROR
    assert exc.value.handling == ErrorHandling.SESSION_RESET


def test_addpath_ipv4_vectors() -> None:
    ctx = Negotiated(
        asn4=True, addpath_receive=frozenset({IPV4_UNICAST}), addpath_send=frozenset({IPV4_UNICAST})
    )
    msg = Update(withdrawn=(Nlri(Prefix.parse("10.0.0.0/8"), 7),))
    wire = encode_message(msg, ctx)
    assert wire == h(M + "001d 02 0006 00000007 080a 0000")
    assert decode_message(2, wire[19:], ctx) == msg


def test_extended_length_attribute_both_ways() -> None:
    attrs = AttrSet.make(communities=tuple(range(1, 100)))  # 396 octets > 255
    wire = encode_message(Update(attrs=attrs), ASN4)
    body = wire[19:]
    # ORIGIN (4) and empty AS_PATH (3) first, then COMMUNITIES with Extended Length set.
    assert body[4 + 7] == 0xD0 and body[4 + 8] == 8
    assert int.from_bytes(body[4 + 9 : 4 + 11], "big") == 396
    assert decode_message(2, body, ASN4) == Update(attrs=attrs)
    # A short attribute that arrives with Extended Length set anyway is accepted.
    body = h("0000 0005 50 01 0001 02")
    got = decode_message(2, body, ASN4)
    assert isinstance(got, Update) and got.attrs == AttrSet.make(origin=2)


def test_extended_next_hop_is_negotiated_only_when_both_sides_list_it() -> None:
    from bgp.types import Afi
    from bgp.wire.capabilities import ExtendedNextHop, ExtendedNextHopEntry
    from bgp.wire.model import negotiate

    enh = ExtendedNextHop((ExtendedNextHopEntry(IPV4_UNICAST, Afi.IPV6),))
    caps = (Multiprotocol(IPV4_UNICAST), FourOctetAs(65000))
    rid = ipaddress.IPv4Address("10.0.0.1")
    plain, with_enh = Open(65000, 90, rid, caps), Open(65000, 90, rid, (*caps, enh))
    assert negotiate(with_enh, with_enh).extended_next_hop == {IPV4_UNICAST}
    # roost's own OPEN does not carry the capability: nothing negotiated.
    assert negotiate(plain, with_enh).extended_next_hop == frozenset()
    assert negotiate(with_enh, plain).extended_next_hop == frozenset()
