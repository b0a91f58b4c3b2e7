"""Path attribute values and the interned attribute set.

These are the decoded forms; the per-attribute wire codec is the table in
`bgp.wire.attrcodec`. An `AttrSet` describes everything about a route except its prefix,
including the next hop (for IPv6 the MP_REACH_NLRI next hop is carried here too, so one
set describes a route in any family). Sets are interned: equal sets are one object, so
100k routes that share attributes share memory and compare by identity.
"""

from __future__ import annotations

import ipaddress
import weakref
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from bgp.types import AS_TRANS, AsPathSegmentType, Origin, WellKnownCommunity

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class AsPathSegment(NamedTuple):
    """One AS_PATH segment, RFC 4271 §4.3 (b)."""

    type: int
    asns: tuple[int, ...]

    def __str__(self) -> str:
        inner = " ".join(str(a) for a in self.asns)
        if self.type == AsPathSegmentType.AS_SET:
            return "{" + inner.replace(" ", ",") + "}"
        if self.type == AsPathSegmentType.AS_CONFED_SEQUENCE:
            return "(" + inner + ")"
        if self.type == AsPathSegmentType.AS_CONFED_SET:
            return "[" + inner.replace(" ", ",") + "]"
        return inner


@dataclass(frozen=True, slots=True)
class AsPath:
    """An AS_PATH with 4-octet AS numbers (2-octet paths are widened on decode)."""

    segments: tuple[AsPathSegment, ...] = ()

    @classmethod
    def sequence(cls, *asns: int) -> AsPath:
        return cls((AsPathSegment(AsPathSegmentType.AS_SEQUENCE, tuple(asns)),) if asns else ())

    def length(self) -> int:
        """Path length for the decision process, RFC 4271 §9.1.2.2 (a): an AS_SET counts
        as 1, confederation segments do not count (RFC 5065 §5.3)."""
        total = 0
        for seg in self.segments:
            if seg.type == AsPathSegmentType.AS_SEQUENCE:
                total += len(seg.asns)
            elif seg.type == AsPathSegmentType.AS_SET:
                total += 1
        return total

    def neighbor_as(self) -> int | None:
        """The neighbouring AS: the first AS of the first AS_SEQUENCE (RFC 4271 §9.1.2.2 c)."""
        for seg in self.segments:
            if seg.type == AsPathSegmentType.AS_SEQUENCE and seg.asns:
                return seg.asns[0]
            if seg.type in (AsPathSegmentType.AS_CONFED_SEQUENCE, AsPathSegmentType.AS_CONFED_SET):
                continue
            return None
        return None

    def origin_as(self) -> int | None:
        for seg in reversed(self.segments):
            if seg.type == AsPathSegmentType.AS_SEQUENCE and seg.asns:
                return seg.asns[-1]
            return None
        return None

    def count(self, asn: int) -> int:
        """How many times `asn` appears anywhere in the path (loop detection)."""
        return sum(seg.asns.count(asn) for seg in self.segments)

    def asns(self) -> tuple[int, ...]:
        return tuple(a for seg in self.segments for a in seg.asns)

    def prepend(self, asn: int, times: int = 1) -> AsPath:
        """RFC 4271 §5.1.2: prepend to the leading AS_SEQUENCE, or start a new one."""
        if times <= 0:
            return self
        add = (asn,) * times
        segs = self.segments
        leading = segs[0] if segs else None
        if (
            leading is not None
            and leading.type == AsPathSegmentType.AS_SEQUENCE
            and len(leading.asns) + times <= 255
        ):
            first = AsPathSegment(AsPathSegmentType.AS_SEQUENCE, add + segs[0].asns)
            return AsPath((first, *segs[1:]))
        return AsPath((AsPathSegment(AsPathSegmentType.AS_SEQUENCE, add), *segs))

    def has_four_octet_asn(self) -> bool:
        return any(a > 0xFFFF for seg in self.segments for a in seg.asns)

    def as_two_octet(self) -> AsPath:
        """The path a 2-octet speaker sees: large ASNs replaced by AS_TRANS (RFC 6793 §4.2.2)."""
        return AsPath(
            tuple(
                AsPathSegment(s.type, tuple(a if a <= 0xFFFF else AS_TRANS for a in s.asns))
                for s in self.segments
            )
        )

    def __str__(self) -> str:
        return " ".join(str(s) for s in self.segments)


EMPTY_AS_PATH = AsPath()


class Aggregator(NamedTuple):
    """AGGREGATOR, RFC 4271 §5.1.7 (ASN widened to 4 octets, RFC 6793)."""

    asn: int
    address: ipaddress.IPv4Address


class LargeCommunity(NamedTuple):
    """LARGE_COMMUNITY member, RFC 8092 §3."""

    global_admin: int
    local1: int
    local2: int

    def __str__(self) -> str:
        return f"{self.global_admin}:{self.local1}:{self.local2}"


class UnknownAttribute(NamedTuple):
    """An attribute roost does not interpret, kept raw for pass-through (RFC 4271 §5)."""

    type_code: int
    flags: int
    value: bytes


def format_community(value: int) -> str:
    """RFC 1997 community as `asn:value`, or the name of a well-known community."""
    try:
        return WellKnownCommunity(value).name.lower().replace("_", "-")
    except ValueError:
        return f"{value >> 16}:{value & 0xFFFF}"


def parse_community(text: str) -> int:
    """`"65000:100"` or a well-known name such as `"no-export"` -> 32-bit value."""
    name = text.strip().upper().replace("-", "_")
    if name in WellKnownCommunity.__members__:
        return int(WellKnownCommunity[name])
    high, sep, low = text.partition(":")
    if not sep:
        raise ValueError(f"community {text!r} is not ASN:VALUE or a well-known name")
    hi, lo = int(high), int(low)
    if not (0 <= hi <= 0xFFFF and 0 <= lo <= 0xFFFF):
        raise ValueError(f"community {text!r} out of range")
    return (hi << 16) | lo


def parse_large_community(text: str) -> LargeCommunity:
    parts = text.split(":")
    if len(parts) != 3:
        raise ValueError(f"large community {text!r} is not A:B:C")
    values = [int(p) for p in parts]
    if not all(0 <= v <= 0xFFFFFFFF for v in values):
        raise ValueError(f"large community {text!r} out of range")
    return LargeCommunity(*values)


_INTERNED: weakref.WeakValueDictionary[AttrSet, AttrSet] = weakref.WeakValueDictionary()


@dataclass(frozen=True, slots=True, weakref_slot=True)
class AttrSet:
    """All path attributes of a route (RFC 4271 §5), interned.

    Build with `AttrSet.make(...)` (or `attrs.replace(...)`) to get the canonical object.
    `next_hop` is the NEXT_HOP attribute for IPv4 routes and the MP_REACH_NLRI global next
    hop for other families; `link_local_next_hop` is the optional IPv6 link-local one.
    """

    origin: int = Origin.IGP
    as_path: AsPath = EMPTY_AS_PATH
    next_hop: IPAddress | None = None
    link_local_next_hop: ipaddress.IPv6Address | None = None
    med: int | None = None
    local_pref: int | None = None
    atomic_aggregate: bool = False
    aggregator: Aggregator | None = None
    communities: tuple[int, ...] = ()
    originator_id: ipaddress.IPv4Address | None = None
    cluster_list: tuple[ipaddress.IPv4Address, ...] = ()
    ext_communities: tuple[int, ...] = ()
    large_communities: tuple[LargeCommunity, ...] = ()
    unknown: tuple[UnknownAttribute, ...] = ()
    _hash: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(
            self,
            "_hash",
            hash(
                (
                    self.origin, self.as_path, self.next_hop, self.link_local_next_hop,
                    self.med, self.local_pref, self.atomic_aggregate, self.aggregator,
                    self.communities, self.originator_id, self.cluster_list,
                    self.ext_communities, self.large_communities, self.unknown,
                )
            ),
        )

    def __hash__(self) -> int:
        return self._hash

    @staticmethod
    def make(**fields: Any) -> AttrSet:
        """The canonical (interned) attribute set with these fields."""
        return AttrSet(**fields).interned()

    def interned(self) -> AttrSet:
        found = _INTERNED.get(self)
        if found is None:
            _INTERNED[self] = self
            return self
        return found

    def replace(self, **changes: Any) -> AttrSet:
        """A copy with some fields changed, interned."""
        return replace(self, **changes).interned()


def interned_count() -> int:
    """Number of distinct live attribute sets (for memory statistics)."""
    return len(_INTERNED)
