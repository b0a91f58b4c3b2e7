"""Hypothesis strategies for the wire codec: prefixes, attribute sets, messages.

Everything generated here is *valid* on the wire, so `decode(encode(x)) == x` must hold.
Where the RFCs make a value lossy the strategies avoid it and say why.
"""

from __future__ import annotations

import ipaddress

from hypothesis import strategies as st

from bgp.types import (
    AS_TRANS,
    IPV4_UNICAST,
    IPV6_UNICAST,
    Afi,
    AsPathSegmentType,
    AttrType,
    CapabilityCode,
    Family,
    Origin,
)
from bgp.wire.attributes import (
    Aggregator,
    AsPath,
    AsPathSegment,
    AttrSet,
    LargeCommunity,
    UnknownAttribute,
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
    Multiprotocol,
    RouteRefreshCap,
    UnknownCapability,
)
from bgp.wire.model import (
    Keepalive,
    MpReach,
    MpUnreach,
    Negotiated,
    Notification,
    Open,
    RouteRefresh,
    Update,
)
from bgp.wire.prefix import Nlri, Prefix

U8 = st.integers(0, 0xFF)
U16 = st.integers(0, 0xFFFF)
U32 = st.integers(0, 0xFFFFFFFF)
U64 = st.integers(0, 2**64 - 1)
# RFC 7607: AS 0 is never valid in a path or aggregator.
ASN = st.one_of(st.integers(1, 0xFFFF), st.integers(0x10000, 0xFFFFFFFF))
ASN2 = st.integers(1, 0xFFFF)

ipv4 = st.builds(ipaddress.IPv4Address, U32)
ipv6 = st.builds(ipaddress.IPv6Address, st.integers(0, 2**128 - 1))
link_local = st.builds(
    lambda low: ipaddress.IPv6Address((0xFE80 << 112) | low), st.integers(0, 2**64 - 1)
)


def _valid_next_hop(addr: ipaddress.IPv4Address) -> bool:
    n = int(addr)
    return n != 0 and (n >> 28) != 0xE and n != 0xFFFFFFFF


# A NEXT_HOP that passes the RFC 4271 §6.3 / RFC 7606 §7.3 checks.
ipv4_next_hop = ipv4.filter(_valid_next_hop)


@st.composite
def prefixes(draw: st.DrawFn, afi: int = Afi.IPV4) -> Prefix:
    bits = 32 if afi == Afi.IPV4 else 128
    length = draw(st.integers(0, bits))
    addr = draw(st.integers(0, 2**bits - 1))
    host = bits - length
    return Prefix(afi, length, (addr >> host) << host)


def nlris(
    afi: int = Afi.IPV4, addpath: bool = False, max_size: int = 8
) -> st.SearchStrategy[tuple[Nlri, ...]]:
    path_id = U32 if addpath else st.just(0)
    return st.lists(st.builds(Nlri, prefixes(afi), path_id), max_size=max_size).map(tuple)


@st.composite
def as_paths(draw: st.DrawFn, max_segments: int = 4) -> AsPath:
    segs: list[AsPathSegment] = []
    # Confederation segments lead the path (RFC 5065 §5); their members are 2-octet so the
    # path survives a 2-octet session (AS4_PATH carries no confederation segments).
    for _ in range(draw(st.integers(0, 1))):
        kind = draw(
            st.sampled_from([AsPathSegmentType.AS_CONFED_SEQUENCE, AsPathSegmentType.AS_CONFED_SET])
        )
        segs.append(AsPathSegment(kind, tuple(draw(st.lists(ASN2, min_size=1, max_size=5)))))
    for _ in range(draw(st.integers(0, max_segments))):
        kind = draw(st.sampled_from([AsPathSegmentType.AS_SEQUENCE, AsPathSegmentType.AS_SET]))
        segs.append(AsPathSegment(kind, tuple(draw(st.lists(ASN, min_size=1, max_size=12)))))
    return AsPath(tuple(segs))


_KNOWN_ATTRS = {int(t) for t in AttrType}
UNKNOWN_ATTR_CODES = [c for c in range(1, 256) if c not in _KNOWN_ATTRS]


@st.composite
def unknown_attrs(draw: st.DrawFn) -> tuple[UnknownAttribute, ...]:
    codes = draw(st.lists(st.sampled_from(UNKNOWN_ATTR_CODES), max_size=3, unique=True))
    # Kept unknown attributes are optional transitive and re-sent with Partial set.
    return tuple(UnknownAttribute(c, 0xE0, draw(st.binary(max_size=300))) for c in codes)


@st.composite
def attrsets(
    draw: st.DrawFn,
    next_hop: st.SearchStrategy[ipaddress.IPv4Address | ipaddress.IPv6Address | None] | None = None,
    two_octet_safe: bool = False,
) -> AttrSet:
    """An attribute set. `two_octet_safe` avoids the one lossy case of RFC 6793 §4.2.3: a
    2-octet AGGREGATOR that is not AS_TRANS makes the receiver ignore AS4_PATH."""
    nh = draw(next_hop if next_hop is not None else st.none() | ipv4_next_hop)
    path = draw(as_paths())
    aggregator = draw(st.none() | st.builds(Aggregator, ASN, ipv4))
    if (
        two_octet_safe
        and aggregator is not None
        and aggregator.asn <= 0xFFFF
        and aggregator.asn != AS_TRANS
        and path.has_four_octet_asn()
    ):
        aggregator = Aggregator(aggregator.asn | 0x10000, aggregator.address)
    return AttrSet.make(
        origin=draw(st.sampled_from(list(Origin))),
        as_path=path,
        next_hop=nh,
        med=draw(st.none() | U32),
        local_pref=draw(st.none() | U32),
        atomic_aggregate=draw(st.booleans()),
        aggregator=aggregator,
        communities=tuple(draw(st.lists(U32, max_size=6))),
        originator_id=draw(st.none() | ipv4),
        cluster_list=tuple(draw(st.lists(ipv4, max_size=4))),
        ext_communities=tuple(draw(st.lists(U64, max_size=4))),
        large_communities=tuple(
            draw(st.lists(st.builds(LargeCommunity, U32, U32, U32), max_size=3))
        ),
        unknown=draw(unknown_attrs()),
    )


ADDPATH_FAMILIES = st.sets(st.sampled_from([IPV4_UNICAST, IPV6_UNICAST])).map(frozenset)


@st.composite
def contexts(draw: st.DrawFn) -> Negotiated:
    """A symmetric context: what we send with `addpath_send` we read with `addpath_receive`."""
    addpath = draw(ADDPATH_FAMILIES)
    return Negotiated(
        asn4=draw(st.booleans()),
        families=frozenset({IPV4_UNICAST, IPV6_UNICAST}),
        addpath_receive=addpath,
        addpath_send=addpath,
        extended_message=True,
        extended_next_hop=frozenset({IPV4_UNICAST}),  # RFC 8950 next hops in mp_reaches
    )


@st.composite
def mp_reaches(draw: st.DrawFn, ctx: Negotiated) -> MpReach:
    family = draw(st.sampled_from([IPV4_UNICAST, IPV6_UNICAST]))
    nlri = draw(nlris(family.afi, family in ctx.addpath_send))
    if family == IPV4_UNICAST and draw(st.booleans()):
        return MpReach(family, draw(ipv4), nlri)
    # IPv6 next hop, for IPv6 NLRI or IPv4 NLRI (RFC 8950), with optional link-local.
    return MpReach(family, draw(ipv6), nlri, draw(st.none() | link_local))


@st.composite
def updates(draw: st.DrawFn, ctx: Negotiated) -> Update:
    ap4 = IPV4_UNICAST in ctx.addpath_send
    withdrawn = draw(nlris(Afi.IPV4, ap4))
    nlri = draw(nlris(Afi.IPV4, ap4))
    mp_reach = draw(st.none() | mp_reaches(ctx))
    mp_unreach = None
    if draw(st.booleans()):
        fam = draw(st.sampled_from([IPV4_UNICAST, IPV6_UNICAST]))
        mp_unreach = MpUnreach(fam, draw(nlris(fam.afi, fam in ctx.addpath_send)))
    needs_attrs = bool(nlri) or (mp_reach is not None and bool(mp_reach.nlri))
    nh = ipv4_next_hop if nlri else st.none() | ipv4_next_hop
    attrs = draw(attrsets(next_hop=nh, two_octet_safe=not ctx.asn4))
    if not needs_attrs and draw(st.booleans()):
        attrs = None
    return Update(withdrawn, attrs, nlri, mp_reach, mp_unreach)


_KNOWN_CAPS = {int(c) for c in CapabilityCode}
families = st.builds(Family, U16, U8)


def capabilities() -> st.SearchStrategy[Capability]:
    return st.one_of(
        st.builds(Multiprotocol, families),
        st.just(RouteRefreshCap()),
        st.just(EnhancedRouteRefreshCap()),
        st.just(ExtendedMessageCap()),
        st.builds(
            GracefulRestart,
            st.integers(0, 4095),
            st.booleans(),
            st.booleans(),
            st.lists(st.builds(GracefulRestartFamily, families, st.booleans()), max_size=4).map(
                tuple
            ),
        ),
        st.builds(
            AddPath,
            st.lists(
                st.builds(AddPathFamily, families, st.integers(1, 3)), min_size=1, max_size=4
            ).map(tuple),
        ),
        st.builds(
            ExtendedNextHop,
            st.lists(
                st.builds(ExtendedNextHopEntry, st.builds(Family, U16, U16), U16),
                min_size=1,
                max_size=4,
            ).map(tuple),
        ),
        st.builds(Fqdn, st.text(max_size=40), st.text(max_size=40)),
        st.builds(
            UnknownCapability,
            st.integers(0, 255).filter(lambda c: c not in _KNOWN_CAPS),
            st.binary(max_size=255),
        ),
    )


@st.composite
def opens(draw: st.DrawFn) -> Open:
    asn = draw(ASN)
    caps = draw(st.lists(capabilities(), max_size=12))
    if asn > 0xFFFF or draw(st.booleans()):
        # The real AS of a large-AS speaker travels in the capability (RFC 6793 §4.1).
        caps.insert(draw(st.integers(0, len(caps))), FourOctetAs(asn))
    return Open(
        asn=asn,
        hold_time=draw(st.just(0) | st.integers(3, 0xFFFF)),
        router_id=draw(st.builds(ipaddress.IPv4Address, st.integers(1, 0xFFFFFFFF))),
        capabilities=tuple(caps),
    )


notifications = st.builds(Notification, U8, U8, st.binary(max_size=200))
route_refreshes = st.builds(RouteRefresh, st.builds(Family, U16, U8), U8)
keepalives = st.just(Keepalive())
