"""Capability values (RFC 5492) as frozen records; unknown ones are kept raw.

The wire codec for them lives in `bgp.wire.messages` (OPEN optional parameters).
"""

from __future__ import annotations

from dataclasses import dataclass

from bgp.types import CapabilityCode, Family


@dataclass(frozen=True, slots=True)
class Multiprotocol:
    """RFC 4760 §8: one per (AFI, SAFI) the speaker supports."""

    family: Family
    code = CapabilityCode.MULTIPROTOCOL


@dataclass(frozen=True, slots=True)
class RouteRefreshCap:
    """RFC 2918 §2."""

    code = CapabilityCode.ROUTE_REFRESH


@dataclass(frozen=True, slots=True)
class EnhancedRouteRefreshCap:
    """RFC 7313 §3.1."""

    code = CapabilityCode.ENHANCED_ROUTE_REFRESH


@dataclass(frozen=True, slots=True)
class ExtendedMessageCap:
    """RFC 8654 §3."""

    code = CapabilityCode.EXTENDED_MESSAGE


@dataclass(frozen=True, slots=True)
class FourOctetAs:
    """RFC 6793 §3: carries the speaker's real (possibly > 65535) AS number."""

    asn: int
    code = CapabilityCode.FOUR_OCTET_AS


@dataclass(frozen=True, slots=True)
class GracefulRestartFamily:
    family: Family
    forwarding_preserved: bool = False


@dataclass(frozen=True, slots=True)
class GracefulRestart:
    """RFC 4724 §3: restart flags (R = restarting, N = notification, RFC 8538), restart
    time in seconds (12 bits), and the families whose forwarding state is preserved."""

    restart_time: int = 120
    restarting: bool = False
    notification: bool = False
    families: tuple[GracefulRestartFamily, ...] = ()
    code = CapabilityCode.GRACEFUL_RESTART


@dataclass(frozen=True, slots=True)
class LongLivedFamily:
    """One entry of the LLGR capability: the family, its Forwarding State (F) bit and
    its Long-lived Stale Time in seconds (24 bits)."""

    family: Family
    forwarding_preserved: bool = False
    stale_time: int = 0


@dataclass(frozen=True, slots=True)
class LongLivedGracefulRestart:
    """RFC 9494 §3: Long-Lived Graceful Restart, per family. Only meaningful next to a
    Graceful Restart capability (§3: "MUST be ignored" without one)."""

    families: tuple[LongLivedFamily, ...] = ()
    code = CapabilityCode.LONG_LIVED_GRACEFUL_RESTART

    def stale_time(self, family: Family) -> int | None:
        """The Long-lived Stale Time for `family`, None if it is not listed."""
        for entry in self.families:
            if entry.family == family:
                return entry.stale_time
        return None


@dataclass(frozen=True, slots=True)
class AddPathFamily:
    family: Family
    mode: int  # AddPathMode: 1 receive, 2 send, 3 both


@dataclass(frozen=True, slots=True)
class AddPath:
    """RFC 7911 §4."""

    families: tuple[AddPathFamily, ...]
    code = CapabilityCode.ADD_PATH


@dataclass(frozen=True, slots=True)
class ExtendedNextHopEntry:
    family: Family
    next_hop_afi: int


@dataclass(frozen=True, slots=True)
class ExtendedNextHop:
    """RFC 8950 §3: NLRI of `family` may carry a next hop of `next_hop_afi`."""

    entries: tuple[ExtendedNextHopEntry, ...]
    code = CapabilityCode.EXTENDED_NEXT_HOP


@dataclass(frozen=True, slots=True)
class Fqdn:
    """Hostname capability (code 73) sent by GoBGP and FRR; decoded for display."""

    hostname: str
    domain: str
    code = CapabilityCode.FQDN


@dataclass(frozen=True, slots=True)
class UnknownCapability:
    """A capability roost does not know: kept raw and otherwise ignored (RFC 5492 §3)."""

    code: int
    value: bytes


Capability = (
    Multiprotocol
    | RouteRefreshCap
    | EnhancedRouteRefreshCap
    | ExtendedMessageCap
    | FourOctetAs
    | GracefulRestart
    | LongLivedGracefulRestart
    | AddPath
    | ExtendedNextHop
    | Fqdn
    | UnknownCapability
)
