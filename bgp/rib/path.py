"""Peers and paths: the records every RIB table holds.

A `Path` is the one per-prefix object of the RIB: it refers to the peer it came from and
to an interned `AttrSet`, so 100k paths that share attributes share one attribute object.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass
from enum import Enum

from bgp.wire.attributes import AttrSet, IPAddress
from bgp.wire.prefix import Prefix

_NO_ROUTER_ID = ipaddress.IPv4Address(0)


class NextHopMode(Enum):
    """How NEXT_HOP is set when advertising to a peer (RFC 4271 §5.1.3; BIRD `next hop`).

    DEFAULT: self to eBGP, unchanged to iBGP. SELF: always our address. KEEP: never change
    it, even to eBGP (Calico `nextHopMode: Keep`, eBGP between rack reflectors).
    """

    DEFAULT = "default"
    SELF = "self"
    KEEP = "keep"


class DropReason(Enum):
    """Why a path was not accepted, not selected or not advertised (STYLE lesson 7)."""

    AS_LOOP = "own AS in AS_PATH"  # RFC 4271 §9.1.2
    ORIGINATOR_LOOP = "ORIGINATOR_ID is our router id"  # RFC 4456 §8
    CLUSTER_LOOP = "our CLUSTER_ID in CLUSTER_LIST"  # RFC 4456 §8
    IMPORT_POLICY = "rejected by import policy"
    EXPORT_POLICY = "rejected by export policy"
    RFC8212_NO_POLICY = "eBGP peer without policy (RFC 8212)"
    IBGP_SPLIT_HORIZON = "iBGP-learned, not re-advertised to iBGP"  # RFC 4271 §9.2
    NOT_REFLECTED = "not reflected (RFC 4456 §6)"
    NO_ADVERTISE = "NO_ADVERTISE community"  # RFC 1997
    NO_EXPORT = "NO_EXPORT community"  # RFC 1997
    SOURCE_PEER = "not sent back to the peer it came from"
    NEXT_HOP_UNREACHABLE = "next hop unreachable"  # RFC 4271 §9.1.2.1
    LLGR_STALE = "long-lived stale, peer without LLGR"  # RFC 9494 §4.5


@dataclass(frozen=True, slots=True)
class PeerInfo:
    """What the RIB needs to know about a neighbour (static config plus its BGP id).

    `router_id` is the peer's BGP Identifier; the speaker fills it in from the OPEN when
    the session comes up (RFC 4271 §9.1.2.2 f, RFC 4456 §8 ORIGINATOR_ID).
    """

    key: str
    address: IPAddress
    asn: int
    local_asn: int
    router_id: ipaddress.IPv4Address = _NO_ROUTER_ID
    rr_client: bool = False
    next_hop: NextHopMode = NextHopMode.DEFAULT
    allow_local_as: int = 0  # BIRD `allow local as N`, Calico numAllowedLocalASNumbers

    @property
    def is_ibgp(self) -> bool:
        return self.asn == self.local_asn

    @property
    def address_key(self) -> tuple[int, int]:
        """Sort key for RFC 4271 §9.1.2.2 (g) "lowest peer address" across families."""
        return (self.address.version, int(self.address))


class Path:
    """One route for one prefix from one source (a peer, or None when originated here).

    `path_id` is the peer's ADD-PATH identifier (0 without ADD-PATH); `local_id` is the
    identifier we use when we advertise this path with ADD-PATH (RFC 7911 §3), stable for
    as long as the (source, path_id) pair stays in the Loc-RIB. `received` is the
    attribute set as the peer sent it, before import policy (the Adj-RIB-In's pre-policy
    view, kept here rather than in a second table); `attrs` by default.
    """

    __slots__ = ("attrs", "learned_at", "local_id", "path_id", "prefix", "received", "source",
                 "stale")

    def __init__(
        self,
        prefix: Prefix,
        attrs: AttrSet,
        source: PeerInfo | None = None,
        path_id: int = 0,
        learned_at: float = 0.0,
        received: AttrSet | None = None,
    ) -> None:
        self.prefix = prefix
        self.path_id = path_id
        self.attrs = attrs
        self.received = attrs if received is None else received
        self.source = source
        self.learned_at = learned_at
        self.stale = False  # RFC 4724 graceful restart: kept but marked until refreshed
        self.local_id = 0

    @property
    def source_key(self) -> str | None:
        return None if self.source is None else self.source.key

    @property
    def is_local(self) -> bool:
        return self.source is None

    def describe(self) -> str:
        """Short human name for CLI output: the peer key, or "local"."""
        src = "local" if self.source is None else self.source.key
        return f"{src} id {self.path_id}" if self.path_id else src

    def __repr__(self) -> str:
        return f"Path({self.prefix}, from={self.describe()}, attrs={self.attrs!r})"
