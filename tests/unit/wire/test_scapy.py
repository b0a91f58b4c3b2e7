"""Cross-check against scapy's independent BGP implementation (scapy.contrib.bgp):
scapy decodes what we encode and agrees field by field, and we decode what scapy builds."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

import pytest

pytest.importorskip("scapy")

from scapy.main import load_contrib

load_contrib("bgp")
import scapy.contrib.bgp as sbgp  # noqa: E402

from bgp.types import IPV4_UNICAST, IPV6_UNICAST, RouteRefreshSubtype  # noqa: E402
from bgp.wire.attributes import Aggregator, AsPath, AttrSet, LargeCommunity  # noqa: E402
from bgp.wire.capabilities import (  # noqa: E402
    FourOctetAs,
    GracefulRestart,
    GracefulRestartFamily,
    Multiprotocol,
    RouteRefreshCap,
)
from bgp.wire.messages import decode_message, encode_message  # noqa: E402
from bgp.wire.model import (  # noqa: E402
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
from bgp.wire.prefix import Nlri, Prefix  # noqa: E402

ASN4 = Negotiated(asn4=True)
ASN2 = Negotiated(asn4=False)


@pytest.fixture(params=[True, False], ids=["asn4", "asn2"])
def asn4(request: pytest.FixtureRequest) -> Iterator[bool]:
    # scapy reads AS_PATH as 2-octet unless told otherwise (its RFC 6793 "OLD" default).
    old = sbgp.bgp_module_conf.use_2_bytes_asn
    sbgp.bgp_module_conf.use_2_bytes_asn = not request.param
    yield bool(request.param)
    sbgp.bgp_module_conf.use_2_bytes_asn = old


def scapy_parse(wire: bytes) -> Any:
    return sbgp.BGPHeader(wire)


def ours(pkt: Any, ctx: Negotiated) -> Message:
    wire = bytes(pkt)
    return decode_message(wire[18], wire[19:], ctx)


def nlri(text: str) -> Nlri:
    return Nlri(Prefix.parse(text))


# --- we encode, scapy decodes -----------------------------------------------------------


def _scapy_caps(op: Any) -> list[Any]:
    """scapy reads one capability per optional parameter; RFC 5492 §4 allows several, as
    we send them, so re-dispatch the rest of each parameter through scapy's own parser."""
    caps: list[Any] = []
    for param in op.opt_params:
        cap = param.param_value
        while cap is not None:
            rest = bytes(cap.payload)
            caps.append(cap)
            cap = sbgp.BGPCapability(rest) if rest else None
    return caps


def test_open_scapy_decodes() -> None:
    msg = Open(
        4200000001,
        90,
        ipaddress.IPv4Address("192.0.2.1"),
        (
            Multiprotocol(IPV4_UNICAST),
            Multiprotocol(IPV6_UNICAST),
            FourOctetAs(4200000001),
            RouteRefreshCap(),
            GracefulRestart(120, True, False, (GracefulRestartFamily(IPV4_UNICAST, True),)),
        ),
    )
    pkt = scapy_parse(encode_message(msg, ASN4))
    assert pkt.type == 1 and pkt.len == len(encode_message(msg, ASN4))
    op = pkt[sbgp.BGPOpen]
    assert (op.version, op.my_as, op.hold_time, op.bgp_id) == (4, 23456, 90, "192.0.2.1")
    caps = _scapy_caps(op)
    assert [(c.afi, c.safi) for c in caps if c.code == 1] == [(1, 1), (2, 1)]
    assert [c.asn for c in caps if c.code == 65] == [4200000001]
    assert any(c.code == 2 for c in caps)
    (gr,) = [c for c in caps if c.code == 64]
    assert gr.restart_flags == 0x8 and gr.restart_time == 120
    assert [(e.afi, e.safi, e.flags) for e in gr.entries] == [(1, 1, 0x80)]


def _scapy_attrs(pkt: Any) -> dict[int, Any]:
    return {a.type_code: a for a in pkt[sbgp.BGPUpdate].path_attr}


def _communities(attr: Any) -> list[int]:
    # scapy models COMMUNITIES as one value; the rest of the list stays as raw payload.
    value = attr.attribute
    out = [value.community]
    rest = bytes(value.payload)
    out += [int.from_bytes(rest[i : i + 4], "big") for i in range(0, len(rest), 4)]
    return out


def test_update_scapy_decodes(asn4: bool) -> None:
    ctx = ASN4 if asn4 else ASN2
    attrs = AttrSet.make(
        origin=2,
        as_path=AsPath.sequence(65001, 65002),
        next_hop=ipaddress.IPv4Address("192.0.2.254"),
        med=50,
        local_pref=200,
        aggregator=Aggregator(65001, ipaddress.IPv4Address("192.0.2.3")),
        communities=(0xFDE90064, 0xFFFFFF01),
        cluster_list=(ipaddress.IPv4Address("1.1.1.1"),),
        large_communities=(LargeCommunity(65001, 1, 2),),
    )
    msg = Update(
        withdrawn=(nlri("10.9.0.0/16"),),
        attrs=attrs,
        nlri=(nlri("192.0.2.0/24"), nlri("198.51.100.128/25")),
    )
    wire = encode_message(msg, ctx)
    pkt = scapy_parse(wire)
    up = pkt[sbgp.BGPUpdate]
    assert [w.prefix for w in up.withdrawn_routes] == ["10.9.0.0/16"]
    assert [n.prefix for n in up.nlri] == ["192.0.2.0/24", "198.51.100.128/25"]
    pa = _scapy_attrs(pkt)
    assert pa[1].attribute.origin == 2
    segs = pa[2].attribute.segments
    assert [(s.segment_type, list(s.segment_value)) for s in segs] == [(2, [65001, 65002])]
    assert pa[3].attribute.next_hop == "192.0.2.254"
    assert pa[4].attribute.med == 50
    assert pa[5].attribute.local_pref == 200
    assert _communities(pa[8]) == [0xFDE90064, 0xFFFFFF01]
    assert pa[10].attribute.cluster_list == [0x01010101]
    assert pa[8].type_flags == 0xC0 and pa[4].type_flags == 0x80 and pa[1].type_flags == 0x40
    lc = pa[32].attribute.segments[0]
    assert (lc.global_administrator, lc.local_data_part1, lc.local_data_part2) == (65001, 1, 2)
    if asn4:
        assert pa[7].attr_len == 8
    else:
        assert pa[7].attribute.aggregator_asn == 65001


def test_mp_reach_scapy_decodes() -> None:
    msg = Update(
        attrs=AttrSet.make(as_path=AsPath.sequence(65001)),
        mp_reach=MpReach(
            IPV6_UNICAST,
            ipaddress.IPv6Address("2001:db8::1"),
            (nlri("2001:db8:1::/48"), nlri("2001:db8:2::/64")),
            ipaddress.IPv6Address("fe80::1"),
        ),
        mp_unreach=MpUnreach(IPV6_UNICAST, (nlri("2001:db8:9::/48"),)),
    )
    pkt = scapy_parse(encode_message(msg, ASN4))
    pa = _scapy_attrs(pkt)
    mp = pa[14].attribute
    assert (mp.afi, mp.safi, mp.nh_addr_len) == (2, 1, 32)
    assert mp.nh_v6_global == "2001:db8::1" and mp.nh_v6_link_local == "fe80::1"
    assert [n.prefix for n in mp.nlri] == ["2001:db8:1::/48", "2001:db8:2::/64"]
    un = pa[15].attribute
    assert (un.afi, un.safi) == (2, 1)
    assert [n.prefix for n in un.afi_safi_specific.withdrawn_routes] == ["2001:db8:9::/48"]


def test_small_messages_scapy_decodes() -> None:
    ka = scapy_parse(encode_message(Keepalive(), ASN4))
    assert ka.type == 4 and ka.len == 19
    no = scapy_parse(encode_message(Notification(6, 2, b"maintenance"), ASN4))
    n = no[sbgp.BGPNotification]
    assert (n.error_code, n.error_subcode, n.data) == (6, 2, b"maintenance")
    rr = scapy_parse(encode_message(RouteRefresh(IPV6_UNICAST, RouteRefreshSubtype.EORR), ASN4))
    r = rr[sbgp.BGPRouteRefresh]
    assert (r.afi, r.subtype, r.safi) == (2, 2, 1)


# --- scapy encodes, we decode -----------------------------------------------------------


def test_scapy_open_we_decode() -> None:
    pkt = sbgp.BGPHeader(type=1) / sbgp.BGPOpen(
        my_as=65001,
        hold_time=180,
        bgp_id="192.0.2.7",
        opt_params=[
            sbgp.BGPOptParam(param_value=sbgp.BGPCapMultiprotocol(afi=1, safi=1)),
            sbgp.BGPOptParam(param_value=sbgp.BGPCapMultiprotocol(afi=2, safi=1)),
            sbgp.BGPOptParam(param_value=sbgp.BGPCapFourBytesASN(asn=65001)),
            sbgp.BGPOptParam(param_value=sbgp.BGPCapGeneric(code=2)),
        ],
    )
    assert ours(pkt, ASN4) == Open(
        65001,
        180,
        ipaddress.IPv4Address("192.0.2.7"),
        (
            Multiprotocol(IPV4_UNICAST),
            Multiprotocol(IPV6_UNICAST),
            FourOctetAs(65001),
            RouteRefreshCap(),
        ),
    )


def test_scapy_update_we_decode(asn4: bool) -> None:
    ctx = ASN4 if asn4 else ASN2
    path_cls = sbgp.BGPPAAS4BytesPath if asn4 else sbgp.BGPPAASPath
    pkt = sbgp.BGPHeader(type=2) / sbgp.BGPUpdate(
        withdrawn_routes=[sbgp.BGPNLRI_IPv4(prefix="10.1.0.0/16")],
        path_attr=[
            sbgp.BGPPathAttr(type_flags=0x40, type_code=1, attribute=sbgp.BGPPAOrigin(origin=0)),
            sbgp.BGPPathAttr(
                type_flags=0x40,
                type_code=2,
                attribute=path_cls(
                    segments=[path_cls.ASPathSegment(segment_type=2, segment_value=[65001, 65002])]
                ),
            ),
            sbgp.BGPPathAttr(
                type_flags=0x40, type_code=3, attribute=sbgp.BGPPANextHop(next_hop="192.0.2.1")
            ),
            sbgp.BGPPathAttr(
                type_flags=0xC0, type_code=8, attribute=sbgp.BGPPACommunity(community=0xFDE90001)
            ),
        ],
        nlri=[sbgp.BGPNLRI_IPv4(prefix="192.0.2.0/24"), sbgp.BGPNLRI_IPv4(prefix="10.0.0.0/8")],
    )
    got = ours(pkt, ctx)
    assert got == Update(
        withdrawn=(nlri("10.1.0.0/16"),),
        attrs=AttrSet.make(
            as_path=AsPath.sequence(65001, 65002),
            next_hop=ipaddress.IPv4Address("192.0.2.1"),
            communities=(0xFDE90001,),
        ),
        nlri=(nlri("192.0.2.0/24"), nlri("10.0.0.0/8")),
    )


def test_scapy_mp_reach_we_decode() -> None:
    mp = sbgp.BGPPAMPReachNLRI(
        afi=2,
        safi=1,
        nh_addr_len=16,
        nh_v6_addr="2001:db8::1",
        nlri=[sbgp.BGPNLRI_IPv6(prefix="2001:db8:5::/48")],
    )
    pkt = sbgp.BGPHeader(type=2) / sbgp.BGPUpdate(
        path_attr=[
            sbgp.BGPPathAttr(type_flags=0x80, type_code=14, attribute=mp),
            sbgp.BGPPathAttr(type_flags=0x40, type_code=1, attribute=sbgp.BGPPAOrigin(origin=1)),
            sbgp.BGPPathAttr(
                type_flags=0x40, type_code=2, attribute=sbgp.BGPPAAS4BytesPath(segments=[])
            ),
        ],
    )
    got = ours(pkt, ASN4)
    assert isinstance(got, Update)
    assert got.treat_as_withdraw is None
    assert got.mp_reach == MpReach(
        IPV6_UNICAST, ipaddress.IPv6Address("2001:db8::1"), (nlri("2001:db8:5::/48"),)
    )
    assert got.attrs == AttrSet.make(origin=1)


def test_scapy_small_messages_we_decode() -> None:
    assert ours(sbgp.BGPHeader(type=4), ASN4) == Keepalive()
    note = sbgp.BGPHeader(type=3) / sbgp.BGPNotification(
        error_code=6, error_subcode=4, data=b"reset"
    )
    assert ours(note, ASN4) == Notification(6, 4, b"reset")
    rr = sbgp.BGPHeader(type=5) / sbgp.BGPRouteRefresh(afi=2, subtype=1, safi=1)
    assert ours(rr, ASN4) == RouteRefresh(IPV6_UNICAST, RouteRefreshSubtype.BORR)
