"""Decoded BGP messages (RFC 4271 §4) and the negotiated session context.

Pure records; `bgp.wire.messages` encodes and decodes them.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from dataclasses import dataclass, field

from bgp.errors import ProtocolError
from bgp.types import (
    AS_TRANS,
    BGP_VERSION,
    IPV4_UNICAST,
    MAX_EXTENDED_MESSAGE_LEN,
    MAX_MESSAGE_LEN,
    AddPathMode,
    Afi,
    AttrType,
    Family,
    RouteRefreshSubtype,
)
from bgp.wire.attributes import AttrSet, IPAddress
from bgp.wire.capabilities import (
    AddPath,
    Capability,
    EnhancedRouteRefreshCap,
    ExtendedMessageCap,
    ExtendedNextHop,
    FourOctetAs,
    GracefulRestart,
    LongLivedGracefulRestart,
    Multiprotocol,
    RouteRefreshCap,
)
from bgp.wire.prefix import Nlri


@dataclass(frozen=True, slots=True)
class Open:
    """OPEN, RFC 4271 §4.2. `asn` is the real AS (from the 4-octet AS capability when
    present); `my_as_field` is what the 2-octet field carried (AS_TRANS for large ASNs)."""

    asn: int
    hold_time: int
    router_id: ipaddress.IPv4Address
    capabilities: tuple[Capability, ...] = ()
    version: int = BGP_VERSION
    my_as_field: int | None = None

    @property
    def wire_my_as(self) -> int:
        if self.my_as_field is not None:
            return self.my_as_field
        return self.asn if self.asn <= 0xFFFF else AS_TRANS

    def find(self, kind: type) -> list[Capability]:
        return [c for c in self.capabilities if isinstance(c, kind)]

    def families(self) -> frozenset[Family]:
        fams = frozenset(c.family for c in self.capabilities if isinstance(c, Multiprotocol))
        # RFC 4760 §8: a speaker that sends no MP capability does IPv4 unicast only.
        return fams or frozenset({IPV4_UNICAST})


@dataclass(frozen=True, slots=True)
class MpReach:
    """MP_REACH_NLRI, RFC 4760 §3 (global and optional link-local IPv6 next hop, RFC 2545)."""

    family: Family
    next_hop: IPAddress | None
    nlri: tuple[Nlri, ...]
    link_local_next_hop: ipaddress.IPv6Address | None = None


@dataclass(frozen=True, slots=True)
class MpUnreach:
    """MP_UNREACH_NLRI, RFC 4760 §4."""

    family: Family
    nlri: tuple[Nlri, ...]


@dataclass(frozen=True, slots=True)
class Update:
    """UPDATE, RFC 4271 §4.3, with MP_REACH/MP_UNREACH split out of the attribute set.

    `attrs` never holds MP attributes; for IPv4 NLRI its next hop is the NEXT_HOP
    attribute. When RFC 7606 treat-as-withdraw applied, `treat_as_withdraw` carries the
    error and every announced prefix is to be handled as withdrawn.
    """

    withdrawn: tuple[Nlri, ...] = ()
    attrs: AttrSet | None = None
    nlri: tuple[Nlri, ...] = ()
    mp_reach: MpReach | None = None
    mp_unreach: MpUnreach | None = None
    treat_as_withdraw: ProtocolError | None = None
    discarded: tuple[int, ...] = ()  # attribute types discarded under RFC 7606

    def end_of_rib(self) -> Family | None:
        """The family this UPDATE marks End-of-RIB for (RFC 4724 §2), else None.

        An MP attribute of a family the codec does not route is dropped but listed in
        `discarded`: such an UPDATE (e.g. the End-of-RIB of VPNv4) is not ours, and
        in particular not the IPv4 End-of-RIB, which is an UPDATE with no attributes.
        """
        if self.withdrawn or self.nlri or self.mp_reach is not None:
            return None
        if AttrType.MP_REACH_NLRI in self.discarded or AttrType.MP_UNREACH_NLRI in self.discarded:
            return None
        if self.mp_unreach is not None:
            if self.mp_unreach.nlri or (self.attrs is not None and _has_attrs(self.attrs)):
                return None
            return self.mp_unreach.family
        if self.attrs is None and not self.discarded:
            return IPV4_UNICAST
        return None

    def announced(self) -> Iterator[tuple[Family, AttrSet, tuple[Nlri, ...]]]:
        """(family, attributes with that family's next hop, NLRI) for each reachable set."""
        if self.treat_as_withdraw is not None or self.attrs is None:
            return
        if self.nlri:
            yield IPV4_UNICAST, self.attrs, self.nlri
        mp = self.mp_reach
        if mp is not None and mp.nlri:
            attrs = self.attrs.replace(
                next_hop=mp.next_hop, link_local_next_hop=mp.link_local_next_hop
            )
            yield mp.family, attrs, mp.nlri

    def withdrawals(self) -> Iterator[tuple[Family, tuple[Nlri, ...]]]:
        """(family, NLRI) for each withdrawn set, including treat-as-withdraw ones."""
        if self.withdrawn:
            yield IPV4_UNICAST, self.withdrawn
        if self.mp_unreach is not None and self.mp_unreach.nlri:
            yield self.mp_unreach.family, self.mp_unreach.nlri
        if self.treat_as_withdraw is not None:
            if self.nlri:
                yield IPV4_UNICAST, self.nlri
            if self.mp_reach is not None and self.mp_reach.nlri:
                yield self.mp_reach.family, self.mp_reach.nlri


def _has_attrs(attrs: AttrSet) -> bool:
    return attrs != AttrSet()


@dataclass(frozen=True, slots=True)
class Notification:
    """NOTIFICATION, RFC 4271 §4.5."""

    code: int
    subcode: int = 0
    data: bytes = b""

    @classmethod
    def from_error(cls, error: ProtocolError) -> Notification:
        return cls(error.code, error.subcode, error.data)

    def describe(self) -> str:
        if self.code == 6 and self.subcode == 9 and len(self.data) >= 2:
            # RFC 8538 §3: a Cease / Hard Reset carries the NOTIFICATION it stands for.
            inner = Notification(self.data[0], self.data[1], self.data[2:])
            return f"CEASE/9 (hard reset: {inner.describe()})"
        return ProtocolError(self.code, self.subcode).describe() + (
            f" data={self.data.hex()}" if self.data else ""
        )


@dataclass(frozen=True, slots=True)
class Keepalive:
    """KEEPALIVE, RFC 4271 §4.4: the header alone."""


@dataclass(frozen=True, slots=True)
class RouteRefresh:
    """ROUTE-REFRESH, RFC 2918 §3; subtype per RFC 7313 §3.2."""

    family: Family
    subtype: int = RouteRefreshSubtype.NORMAL


Message = Open | Update | Notification | Keepalive | RouteRefresh


_NO_ROUTER_ID = ipaddress.IPv4Address(0)


@dataclass(frozen=True, slots=True)
class Negotiated:
    """What both OPENs agreed on; the codec needs it for every UPDATE.

    Built by `negotiate(local_open, remote_open)`; `DEFAULT` is the pre-OPEN context.
    """

    asn4: bool = False
    families: frozenset[Family] = frozenset({IPV4_UNICAST})
    addpath_receive: frozenset[Family] = frozenset()  # peer sends us path identifiers
    addpath_send: frozenset[Family] = frozenset()  # we send the peer path identifiers
    extended_message: bool = False
    # RFC 8950: families whose MP_REACH_NLRI may carry an IPv6 next hop (both OPENs
    # listed family → IPv6 next hop). roost does not advertise the capability, so this
    # is empty in its sessions and an IPv6 next hop on IPv4 NLRI is malformed.
    extended_next_hop: frozenset[Family] = frozenset()
    route_refresh: bool = False
    enhanced_route_refresh: bool = False
    hold_time: int = 90
    keepalive_time: int = 30
    peer_asn: int = 0
    peer_router_id: ipaddress.IPv4Address = _NO_ROUTER_ID
    peer_graceful_restart: GracefulRestart | None = None
    local_graceful_restart: GracefulRestart | None = None
    # RFC 9494 §3: each side's LLGR capability, kept only next to its GR capability.
    peer_long_lived: LongLivedGracefulRestart | None = None
    local_long_lived: LongLivedGracefulRestart | None = None
    remote_capabilities: tuple[Capability, ...] = field(default=())

    @property
    def max_message_len(self) -> int:
        return MAX_EXTENDED_MESSAGE_LEN if self.extended_message else MAX_MESSAGE_LEN


DEFAULT = Negotiated()


def negotiate(local: Open, remote: Open, keepalive_time: int | None = None) -> Negotiated:
    """Combine our OPEN with the peer's into the session context (RFC 4271 §4.2 hold time:
    the smaller of the two; keepalive one third of it unless configured lower)."""
    hold = min(local.hold_time, remote.hold_time)
    keepalive = hold // 3 if keepalive_time is None else min(keepalive_time, hold // 3)
    if hold == 0:
        keepalive = 0
    families = local.families() & remote.families()

    def has(msg: Open, kind: type) -> bool:
        return any(isinstance(c, kind) for c in msg.capabilities)

    def addpath_modes(msg: Open) -> dict[Family, int]:
        modes: dict[Family, int] = {}
        for cap in msg.capabilities:
            if isinstance(cap, AddPath):
                for entry in cap.families:
                    modes[entry.family] = entry.mode
        return modes

    ours, theirs = addpath_modes(local), addpath_modes(remote)
    # RFC 7911 §4: we receive path ids when we said receive and the peer said send.
    rx = frozenset(
        f for f in families
        if ours.get(f, 0) & AddPathMode.RECEIVE and theirs.get(f, 0) & AddPathMode.SEND
    )
    tx = frozenset(
        f for f in families
        if ours.get(f, 0) & AddPathMode.SEND and theirs.get(f, 0) & AddPathMode.RECEIVE
    )
    def ipv6_next_hop(msg: Open) -> frozenset[Family]:
        return frozenset(e.family for c in msg.capabilities if isinstance(c, ExtendedNextHop)
                         for e in c.entries if e.next_hop_afi == Afi.IPV6)

    gr_remote = remote.find(GracefulRestart)
    gr_local = local.find(GracefulRestart)
    # RFC 9494 §3: "the LLGR Capability ... MUST be ignored" if the GR Capability is not
    # also present in the OPEN.
    ll_remote = remote.find(LongLivedGracefulRestart) if gr_remote else []
    ll_local = local.find(LongLivedGracefulRestart) if gr_local else []
    return Negotiated(
        asn4=has(local, FourOctetAs) and has(remote, FourOctetAs),
        families=families,
        addpath_receive=rx,
        addpath_send=tx,
        extended_message=has(local, ExtendedMessageCap) and has(remote, ExtendedMessageCap),
        extended_next_hop=families & ipv6_next_hop(local) & ipv6_next_hop(remote),
        route_refresh=has(remote, RouteRefreshCap) and has(local, RouteRefreshCap),
        enhanced_route_refresh=has(remote, EnhancedRouteRefreshCap)
        and has(local, EnhancedRouteRefreshCap),
        hold_time=hold,
        keepalive_time=keepalive,
        peer_asn=remote.asn,
        peer_router_id=remote.router_id,
        peer_graceful_restart=gr_remote[0] if gr_remote else None,  # type: ignore[arg-type]
        local_graceful_restart=gr_local[0] if gr_local else None,  # type: ignore[arg-type]
        peer_long_lived=ll_remote[0] if ll_remote else None,  # type: ignore[arg-type]
        local_long_lived=ll_local[0] if ll_local else None,  # type: ignore[arg-type]
        remote_capabilities=remote.capabilities,
    )
