"""Hypothesis round trips: decode(encode(x)) == x for every message, capability and
attribute set, on 2- and 4-octet sessions, with and without ADD-PATH."""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.types import IPV4_UNICAST, IPV6_UNICAST
from bgp.wire.attrcodec import decode_attributes, encode_attributes
from bgp.wire.attributes import AttrSet
from bgp.wire.capabilities import Capability
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_capabilities, decode_message, encode_message
from bgp.wire.model import Message, Negotiated, Update
from bgp.wire.packing import encode_nlri_run
from bgp.wire.prefix import Nlri, Prefix, decode_nlri

from .strategies import (
    attrsets,
    capabilities,
    contexts,
    ipv4_next_hop,
    keepalives,
    nlris,
    notifications,
    opens,
    prefixes,
    route_refreshes,
    updates,
)

ASN4 = Negotiated(asn4=True, extended_message=True)
ASN2 = Negotiated(asn4=False, extended_message=True)


def roundtrip(msg: Message, ctx: Negotiated) -> Message:
    wire = encode_message(msg, ctx)
    frames = FrameBuffer(ctx.max_message_len)
    frames.feed(wire)
    frame = frames.next_frame()
    assert frame is not None
    assert frames.next_frame() is None
    return decode_message(frame[0], frame[1], ctx)


@settings(deadline=None)
@given(opens())
def test_open_roundtrip(msg: Message) -> None:
    assert roundtrip(msg, ASN4) == msg


@settings(deadline=None)
@given(notifications)
def test_notification_roundtrip(msg: Message) -> None:
    assert roundtrip(msg, ASN4) == msg


@settings(deadline=None)
@given(keepalives)
def test_keepalive_roundtrip(msg: Message) -> None:
    assert roundtrip(msg, ASN4) == msg


@settings(deadline=None)
@given(route_refreshes)
def test_route_refresh_roundtrip(msg: Message) -> None:
    assert roundtrip(msg, ASN4) == msg


@settings(max_examples=300, deadline=None)
@given(st.data(), contexts())
def test_update_roundtrip(data: st.DataObject, ctx: Negotiated) -> None:
    msg = data.draw(updates(ctx))
    got = roundtrip(msg, ctx)
    assert isinstance(got, Update)
    assert got == msg
    assert got.treat_as_withdraw is None
    assert got.discarded == ()
    if got.attrs is not None:
        assert got.attrs is msg.attrs  # interned: equal sets are one object


@settings(max_examples=300, deadline=None)
@given(attrsets(two_octet_safe=True), st.booleans())
def test_attrset_roundtrip(attrs: AttrSet, asn4: bool) -> None:
    ctx = ASN4 if asn4 else ASN2
    wire = encode_attributes(attrs, ctx)
    dec = decode_attributes(wire, ctx, has_nlri=attrs.next_hop is not None)
    assert dec.attrs == attrs
    assert dec.treat_as_withdraw is None
    assert dec.discarded == ()


@settings(deadline=None)
@given(attrsets(next_hop=ipv4_next_hop))
def test_attrset_roundtrip_4octet_any(attrs: AttrSet) -> None:
    # On a 4-octet session nothing is lossy, not even a 2-octet AGGREGATOR.
    dec = decode_attributes(encode_attributes(attrs, ASN4), ASN4, has_nlri=True)
    assert dec.attrs == attrs
    assert dec.treat_as_withdraw is None


@settings(deadline=None)
@given(st.lists(capabilities(), max_size=10))
def test_capabilities_roundtrip(caps: list[Capability]) -> None:
    from bgp.wire.messages import encode_capabilities

    decoded: list[Capability] = []
    for param in encode_capabilities(caps):
        assert len(param) <= 255
        decoded.extend(decode_capabilities(param))
    assert decoded == caps


@settings(deadline=None)
@given(st.sampled_from([IPV4_UNICAST, IPV6_UNICAST]), st.booleans(), st.data())
def test_nlri_roundtrip(family: object, addpath: bool, data: st.DataObject) -> None:
    assert family in (IPV4_UNICAST, IPV6_UNICAST)
    afi = IPV4_UNICAST.afi if family == IPV4_UNICAST else IPV6_UNICAST.afi
    run = data.draw(nlris(afi, addpath, max_size=50))
    assert tuple(decode_nlri(encode_nlri_run(run, afi, addpath), afi, addpath)) == run


@settings(deadline=None)
@given(prefixes())
def test_prefix_text_roundtrip(prefix: Prefix) -> None:
    assert Prefix.parse(str(prefix)) == prefix
    assert Nlri(prefix).prefix.network().prefixlen == prefix.length


def test_big_open_uses_rfc9072_and_roundtrips() -> None:
    from bgp.wire.capabilities import UnknownCapability
    from bgp.wire.model import Open

    caps = tuple(UnknownCapability(200 + i, bytes(200)) for i in range(5))
    msg = Open(65001, 90, ipaddress.IPv4Address("1.1.1.1"), caps)
    wire = encode_message(msg, ASN4)
    assert wire[19 + 9] == 255 and wire[19 + 10] == 255  # RFC 9072 markers
    assert roundtrip(msg, ASN4) == msg
