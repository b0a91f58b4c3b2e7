"""Maximum prefixes per peer (BIRD `import limit`, FRR `maximum-prefix`), pure.

A `PrefixLimiter` is fed the number of paths a peer has had accepted (post import
policy, per address family: what BIRD's import limit counts) after every batch of its
UPDATEs, and answers with the crossings: a family going over the limit, or back to at most
the limit. One crossing each way, so a "warn" limit logs once per excursion.

What to do about a crossing is the caller's: warn, or end the session with the RFC 4486
§4 Cease and the data built by `LimitCrossing.notification_data`.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum

from bgp.types import Family

__all__ = ["LimitAction", "LimitCrossing", "PrefixLimit", "PrefixLimiter"]

_DATA = struct.Struct("!HBI")


class LimitAction(Enum):
    """What a crossing does: log it, or end the session (Cease / Maximum Number of
    Prefixes Reached)."""

    WARN = "warn"
    TEARDOWN = "teardown"


@dataclass(frozen=True, slots=True)
class PrefixLimit:
    """At most `maximum` accepted paths per family; `restart` seconds down after a
    teardown (0: until the operator restarts the peer)."""

    maximum: int
    action: LimitAction = LimitAction.TEARDOWN
    restart: float = 0.0

    def __post_init__(self) -> None:
        if not 1 <= self.maximum <= 0xFFFFFFFF:
            raise ValueError(f"prefix limit {self.maximum}: must be 1..4294967295")
        if self.restart < 0:
            raise ValueError("prefix limit restart must be >= 0")


@dataclass(frozen=True, slots=True)
class LimitCrossing:
    """`family` went over `limit` (`over`) or came back to at most it, at `count`."""

    family: Family
    count: int
    limit: int
    over: bool

    def notification_data(self) -> bytes:
        """RFC 4486 §4: the Cease "MAY optionally include the Address Family information
        [BGP-MP] and the upper bound in the "Data" field of the NOTIFICATION message"::

            +-------------------------------+
            | AFI                 (2 octets)|
            +-------------------------------+
            | SAFI                (1 octet) |
            +-------------------------------+
            | Prefix upper bound  (4 octets)|
            +-------------------------------+
        """
        return _DATA.pack(int(self.family.afi), int(self.family.safi), self.limit)

    def describe(self) -> str:
        where = "over" if self.over else "back within"
        return f"{self.family}: {self.count} prefixes accepted, {where} the limit of {self.limit}"


class PrefixLimiter:
    """The over/under state of one peer's families against one `PrefixLimit`."""

    __slots__ = ("_over", "limit")

    def __init__(self, limit: PrefixLimit) -> None:
        self.limit = limit
        self._over: set[Family] = set()

    @property
    def over(self) -> frozenset[Family]:
        """The families currently over the limit."""
        return frozenset(self._over)

    def check(self, counts: Mapping[Family, int]) -> list[LimitCrossing]:
        """The crossings since the last check, in family order. `counts` holds accepted
        paths per family; a family missing from it counts 0."""
        maximum = self.limit.maximum
        out: list[LimitCrossing] = []
        for family in sorted(set(counts) | self._over):
            count = counts.get(family, 0)
            if count > maximum and family not in self._over:
                self._over.add(family)
                out.append(LimitCrossing(family, count, maximum, over=True))
            elif count <= maximum and family in self._over:
                self._over.discard(family)
                out.append(LimitCrossing(family, count, maximum, over=False))
        return out

    def reset(self) -> None:
        """The session went down: its routes are gone, nothing is over."""
        self._over.clear()
