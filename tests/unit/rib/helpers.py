"""Shared fixtures for RIB / speaker tests: peers, sessions, and a fake UPDATE encoder
that records what would have been encoded, so tests check content, not bytes."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass

from bgp.rib.path import NextHopMode, Path, PeerInfo
from bgp.types import IPV4_UNICAST, Family
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.model import Negotiated, Update
from bgp.wire.prefix import Nlri, Prefix

LOCAL_AS = 64512


def ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address:
    return ipaddress.ip_address(text)


def rid(text: str) -> ipaddress.IPv4Address:
    return ipaddress.IPv4Address(text)


def pfx(text: str) -> Prefix:
    return Prefix.parse(text)


def peer(
    key: str,
    address: str,
    asn: int = LOCAL_AS,
    router_id: str | None = None,
    *,
    rr_client: bool = False,
    next_hop: NextHopMode = NextHopMode.DEFAULT,
    allow_local_as: int = 0,
    local_asn: int = LOCAL_AS,
) -> PeerInfo:
    return PeerInfo(
        key=key,
        address=ip(address),
        asn=asn,
        local_asn=local_asn,
        router_id=rid(router_id or address),
        rr_client=rr_client,
        next_hop=next_hop,
        allow_local_as=allow_local_as,
    )


def attrs(
    nh: str = "10.0.0.1",
    *,
    path: Sequence[int] = (),
    **fields: object,
) -> AttrSet:
    fields.setdefault("as_path", AsPath.sequence(*path))
    return AttrSet.make(next_hop=ip(nh), **fields)


def path(
    prefix: str,
    a: AttrSet,
    source: PeerInfo | None,
    path_id: int = 0,
) -> Path:
    return Path(pfx(prefix), a, source, path_id)


def session(
    info: PeerInfo,
    families: Sequence[Family] = (IPV4_UNICAST,),
    *,
    addpath: bool = False,
    asn4: bool = True,
) -> Negotiated:
    fams = frozenset(families)
    return Negotiated(
        asn4=asn4,
        families=fams,
        addpath_send=fams if addpath else frozenset(),
        addpath_receive=fams if addpath else frozenset(),
        peer_asn=info.asn,
        peer_router_id=info.router_id,
    )


def announce(a: AttrSet, *prefixes: str, path_id: int = 0) -> Update:
    return Update(attrs=a, nlri=tuple(Nlri(pfx(p), path_id) for p in prefixes))


def withdraw(*prefixes: str, path_id: int = 0) -> Update:
    return Update(withdrawn=tuple(Nlri(pfx(p), path_id) for p in prefixes))


@dataclass(frozen=True)
class Msg:
    """What one fake-encoded UPDATE contained."""

    kind: str  # "announce" | "withdraw" | "eor"
    family: Family
    attrs: AttrSet | None
    nlri: tuple[Nlri, ...]


class FakeEncoder:
    """Records each encode call and returns unique bytes objects standing for it."""

    def __init__(self) -> None:
        self.calls = 0
        self.messages: dict[bytes, Msg] = {}

    def _make(self, msg: Msg) -> bytes:
        self.calls += 1
        data = b"MSG%d" % self.calls
        self.messages[data] = msg
        return data

    def announcements(
        self, family: Family, attrs: AttrSet, nlri: Sequence[Nlri], ctx: Negotiated
    ) -> list[bytes]:
        return [self._make(Msg("announce", family, attrs, tuple(nlri)))]

    def withdrawals(self, family: Family, nlri: Sequence[Nlri], ctx: Negotiated) -> list[bytes]:
        return [self._make(Msg("withdraw", family, None, tuple(nlri)))]

    def end_of_rib(self, family: Family, ctx: Negotiated) -> bytes:
        return self._make(Msg("eor", family, None, ()))

    def decode(self, data: list[bytes]) -> list[Msg]:
        return [self.messages[b] for b in data]

    def state(self, data: list[bytes]) -> dict[Nlri, AttrSet | None]:
        """Net effect of the messages: NLRI -> attributes (None = withdrawn)."""
        result: dict[Nlri, AttrSet | None] = {}
        for msg in self.decode(data):
            for n in msg.nlri:
                result[n] = msg.attrs
        return result

    def eors(self, data: list[bytes]) -> list[Family]:
        return [m.family for m in self.decode(data) if m.kind == "eor"]
