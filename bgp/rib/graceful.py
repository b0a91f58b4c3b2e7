"""Graceful restart, receiving speaker ("helper", RFC 4724 §4.2): stale routes and timers.

Pure: time is passed in, timers are deadlines (`next_deadline`), and every function
returns what must change; the speaker applies it to the Loc-RIB.

    session lost (retained families) ──▶ mark_stale(adj_in) ──▶ Restart Time deadline
    session back ──▶ families missing / F bit clear: sweep at once (RFC 4724 §4.2)
                 └─▶ others: stale until End-of-RIB ──▶ sweep_stale(adj_in, family)
                                 or the stale-path deadline (RFC 4724 §4.2 "MAY")
    Restart Time passed while down ──▶ sweep everything

`HelperState` is the per-peer bookkeeping of that; the daemon asks it what to sweep.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Final

from bgp.rib.adj_in import AdjRibIn
from bgp.rib.path import Path
from bgp.types import Family
from bgp.wire.capabilities import GracefulRestart

__all__ = [
    "DEFAULT_STALE_TIME",
    "HelperState",
    "has_stale",
    "mark_stale",
    "stale_count",
    "sweep_stale",
]

#: Upper bound on how long stale routes wait for the peer's End-of-RIB once its session
#: is back (RFC 4724 §4.2 "an implementation MAY support a (configurable) timer that
#: imposes that upper bound"; FRR `stalepath-time`, GoBGP's default 360 s too).
DEFAULT_STALE_TIME: Final = 360.0


def mark_stale(adj_in: AdjRibIn, retain: Iterable[Family]) -> list[Path]:
    """The session ended: keep the accepted paths of `retain` as stale (RFC 4724 §4.2
    "MUST retain the routes ... and MUST mark them as stale routing information").

    Returns the paths that must leave the Loc-RIB now, already removed from `adj_in`:
    every path of the other families, and paths that were already stale ("To deal with
    possible consecutive restarts, a route (from the peer) previously marked as stale
    MUST be deleted"). Pre-policy entries of rejected routes go too: the next session
    sends what it has again.
    """
    keep = frozenset(retain)
    gone: list[Path] = []
    for fam in list(adj_in.post):
        post = adj_in.post[fam]
        if fam not in keep:
            gone.extend(post.values())
            del adj_in.post[fam]
            adj_in.pre.pop(fam, None)
            adj_in.rejected.pop(fam, None)
            continue
        pre = adj_in.pre.get(fam, {})
        new_post = {}
        for nlri, path in post.items():
            if path.stale:
                gone.append(path)
            else:
                path.stale = True
                new_post[nlri] = path
        adj_in.post[fam] = new_post
        adj_in.pre[fam] = {nlri: pre[nlri] for nlri in new_post if nlri in pre}
        adj_in.rejected[fam] = {}
    for fam in list(adj_in.pre):  # families with only rejected routes
        if fam not in adj_in.post:
            del adj_in.pre[fam]
            adj_in.rejected.pop(fam, None)
    return gone


def sweep_stale(adj_in: AdjRibIn, family: Family | None = None) -> list[Path]:
    """Remove the paths of `family` (None: all) still marked stale: RFC 4724 §4.2 "Once
    the End-of-RIB marker for an address family is received from the peer, it MUST
    immediately remove any routes from the peer that are still marked as stale". Returns
    them (removed from `adj_in`) for the Loc-RIB."""
    gone: list[Path] = []
    for fam, post in adj_in.post.items():
        if family is not None and fam != family:
            continue
        stale = [nlri for nlri, path in post.items() if path.stale]
        pre = adj_in.pre.get(fam, {})
        for nlri in stale:
            gone.append(post.pop(nlri))
            pre.pop(nlri, None)
    return gone


def has_stale(adj_in: AdjRibIn) -> bool:
    return any(path.stale for post in adj_in.post.values() for path in post.values())


def stale_count(adj_in: AdjRibIn, family: Family) -> int:
    return sum(1 for path in adj_in.post.get(family, {}).values() if path.stale)


@dataclass
class HelperState:
    """One peer's graceful restart as seen by us, the helper.

    `stale` holds the families with stale routes; while the session is down
    `restart_deadline` is when the peer's Restart Time runs out, once it is back
    `eor_deadlines` bound the wait for each family's End-of-RIB.
    """

    stale_time: float = DEFAULT_STALE_TIME
    stale: set[Family] = field(default_factory=set)
    restart_deadline: float | None = None
    eor_deadlines: dict[Family, float] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.stale)

    def session_lost(
        self, now: float, retained: Iterable[Family], peer_gr: GracefulRestart | None
    ) -> None:
        """The session ended and the speaker kept `retained` as stale. RFC 4724 §4.2: "If
        the session does not get re-established within the "Restart Time" that the peer
        advertised previously, the Receiving Speaker MUST delete all the stale routes"."""
        self.stale = set(retained)
        self.eor_deadlines.clear()
        if self.stale and peer_gr is not None:
            self.restart_deadline = now + peer_gr.restart_time
        else:
            self.stale.clear()
            self.restart_deadline = None

    def session_up(
        self, now: float, peer_gr: GracefulRestart | None, families: Iterable[Family]
    ) -> set[Family]:
        """The session is Established again with the peer's new capability `peer_gr` and
        negotiated `families`; returns the families whose stale routes go at once.

        RFC 4724 §4.2: "If the Graceful Restart Capability is not received in the
        re-established session at all, or ... does not contain the address family ...,
        or the F bit for an address family is not set in the newly received Graceful
        Restart Capability, then the Receiving Speaker MUST immediately remove all the
        stale routes from the peer that it is retaining for that address family."
        """
        self.restart_deadline = None
        if not self.stale:
            return set()
        preserved = set() if peer_gr is None else {
            f.family for f in peer_gr.families if f.forwarding_preserved
        }
        flush = self.stale - (preserved & set(families))
        self.stale -= flush
        self.eor_deadlines = {fam: now + self.stale_time for fam in self.stale}
        return flush

    def end_of_rib(self, family: Family) -> bool:
        """End-of-RIB for `family`: True if its stale routes must be swept now."""
        self.eor_deadlines.pop(family, None)
        if family in self.stale:
            self.stale.discard(family)
            return True
        return False

    def expired(self, now: float) -> set[Family]:
        """The families whose stale routes must go because a deadline passed."""
        if self.restart_deadline is not None and now >= self.restart_deadline:
            out = set(self.stale)
            self.stale.clear()
            self.restart_deadline = None
            self.eor_deadlines.clear()
            return out
        out = {fam for fam, when in self.eor_deadlines.items() if now >= when}
        for fam in out:
            del self.eor_deadlines[fam]
        self.stale -= out
        return out

    def reset(self) -> set[Family]:
        """Forget everything (peer removed, Hard Reset); returns the stale families."""
        out = set(self.stale)
        self.stale.clear()
        self.restart_deadline = None
        self.eor_deadlines.clear()
        return out

    def next_deadline(self) -> float | None:
        if not self.stale:
            return None
        if self.restart_deadline is not None:
            return self.restart_deadline
        return min(self.eor_deadlines.values(), default=None)
