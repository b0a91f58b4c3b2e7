"""UPDATE packing for Adj-RIB-Out: every NLRI lands in exactly one message, in order, and
every message fits the negotiated maximum."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import LocalUsageError
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Family
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_message
from bgp.wire.model import Negotiated, Update
from bgp.wire.packing import pack_announcements, pack_withdrawals
from bgp.wire.prefix import Nlri, Prefix

from .strategies import ipv4_next_hop, ipv6, link_local, nlris

ATTRS = AttrSet.make(
    as_path=AsPath.sequence(65001, 65002),
    next_hop=ipaddress.IPv4Address("192.0.2.1"),
    communities=tuple(range(1, 40)),
)


def decode_all(msgs: list[bytes], ctx: Negotiated) -> list[Update]:
    fb = FrameBuffer(ctx.max_message_len)
    out: list[Update] = []
    for m in msgs:
        assert len(m) <= ctx.max_message_len
        fb.feed(m)
        frame = fb.next_frame()
        assert frame is not None
        upd = decode_message(frame[0], frame[1], ctx)
        assert isinstance(upd, Update) and upd.treat_as_withdraw is None
        out.append(upd)
    return out


@settings(max_examples=60, deadline=None)
@given(
    st.sampled_from([IPV4_UNICAST, IPV6_UNICAST]),
    st.booleans(),
    st.booleans(),
    st.booleans(),
    st.data(),
)
def test_pack_announcements_roundtrip(
    family: Family, addpath: bool, asn4: bool, extended: bool, data: st.DataObject
) -> None:
    ctx = Negotiated(
        asn4=asn4,
        addpath_send=frozenset({family}) if addpath else frozenset(),
        addpath_receive=frozenset({family}) if addpath else frozenset(),
        extended_message=extended,
        extended_next_hop=frozenset({IPV4_UNICAST}),  # RFC 8950 case below
    )
    routes = data.draw(nlris(family.afi, addpath, max_size=2000))
    if family == IPV4_UNICAST and data.draw(st.booleans()):
        attrs = ATTRS.replace(next_hop=data.draw(ipv4_next_hop))
    else:  # IPv6, or IPv4 NLRI with an IPv6 next hop (RFC 8950)
        attrs = ATTRS.replace(
            next_hop=data.draw(ipv6), link_local_next_hop=data.draw(st.none() | link_local)
        )
    msgs = pack_announcements(family, attrs, routes, ctx)
    got: list[Nlri] = []
    for upd in decode_all(msgs, ctx):
        ((fam, got_attrs, batch),) = list(upd.announced())
        assert fam == family and got_attrs is attrs
        got.extend(batch)
    assert tuple(got) == routes
    if len(msgs) > 1:
        # Greedy filling: every message but the last is close to full.
        assert all(len(m) > ctx.max_message_len - 40 for m in msgs[:-1])


@settings(max_examples=40, deadline=None)
@given(st.sampled_from([IPV4_UNICAST, IPV6_UNICAST]), st.booleans(), st.data())
def test_pack_withdrawals_roundtrip(family: Family, addpath: bool, data: st.DataObject) -> None:
    fams = frozenset({family}) if addpath else frozenset()
    ctx = Negotiated(asn4=True, addpath_send=fams, addpath_receive=fams)
    routes = data.draw(nlris(family.afi, addpath, max_size=3000))
    got: list[Nlri] = []
    for upd in decode_all(pack_withdrawals(family, routes, ctx), ctx):
        for fam, batch in upd.withdrawals():
            assert fam == family
            got.extend(batch)
        assert upd.attrs is None or family != IPV4_UNICAST
    assert tuple(got) == routes


def test_many_prefixes_fill_messages() -> None:
    routes = [Nlri(Prefix(1, 24, (10 << 24) | (i << 8))) for i in range(10000)]
    msgs = pack_announcements(IPV4_UNICAST, ATTRS, routes, Negotiated(asn4=True))
    # 4096 - 23 - attributes (~190) leaves ~3880 octets, 4 per /24: ~970 per message.
    assert 10 <= len(msgs) <= 12


def test_empty_and_errors() -> None:
    ctx = Negotiated(asn4=True)
    assert pack_announcements(IPV4_UNICAST, ATTRS, [], ctx) == []
    assert pack_withdrawals(IPV6_UNICAST, [], ctx) == []
    with pytest.raises(LocalUsageError):
        pack_announcements(IPV6_UNICAST, ATTRS.replace(next_hop=None), [Nlri(Prefix(2, 0, 0))], ctx)
    huge = ATTRS.replace(communities=tuple(range(1200)))  # 4800 octets of attributes
    with pytest.raises(LocalUsageError):
        pack_announcements(IPV4_UNICAST, huge, [Nlri(Prefix(1, 8, 10 << 24))], ctx)
