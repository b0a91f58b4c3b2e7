"""Graceful restart, receiving speaker ("helper", RFC 4724 §4.2): stale routes and timers.

Pure: time is passed in, timers are deadlines (`next_deadline`), and every function
returns what must change; the speaker applies it to the Loc-RIB.

    session lost (retained families) ──▶ mark_stale(adj_in) ──▶ Restart Time deadline
    session back ──▶ families missing / F bit clear: sweep at once (RFC 4724 §4.2)
                 └─▶ others: stale until End-of-RIB ──▶ sweep_stale(adj_in, family)
                                 or the stale-path deadline (RFC 4724 §4.2 "MAY")
    Restart Time passed while down ──▶ families with LLGR (RFC 9494): long-lived stale
                                       ──▶ mark_long_lived: LLGR_STALE community added,
                                           NO_LLGR routes removed, least preferred
                                           ──▶ swept when the LLST runs out
                                   └─▶ others: sweep

`HelperState` is the per-peer bookkeeping of that; the daemon asks it which families
change phase (`long_lived_due`) and what to sweep (`expired`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from bgp.rib.adj_in import AdjRibIn
from bgp.rib.path import Path
from bgp.types import Family, WellKnownCommunity
from bgp.wire.capabilities import GracefulRestart, LongLivedGracefulRestart

__all__ = [
    "DEFAULT_STALE_TIME",
    "HelperState",
    "has_stale",
    "is_long_lived_stale",
    "mark_long_lived",
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
            adj_in.rejected_attrs.pop(fam, None)
            adj_in.rejected.pop(fam, None)
            continue
        new_post = {}
        for nlri, path in post.items():
            if path.stale:
                gone.append(path)
            else:
                path.stale = True
                new_post[nlri] = path
        adj_in.post[fam] = new_post  # their received attributes go with them
        adj_in.rejected_attrs[fam] = {}
        adj_in.rejected[fam] = {}
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
        gone.extend(post.pop(nlri) for nlri in stale)
    return gone


_LLGR_STALE: Final = int(WellKnownCommunity.LLGR_STALE)
_NO_LLGR: Final = int(WellKnownCommunity.NO_LLGR)


def is_long_lived_stale(path: Path) -> bool:
    """The path carries LLGR_STALE: kept by us in the long-lived phase, or received so
    from a peer that keeps it (RFC 9494 §4.3: either way least preferred)."""
    return _LLGR_STALE in path.attrs.communities


def mark_long_lived(adj_in: AdjRibIn, family: Family) -> tuple[list[Path], list[Path]]:
    """The restart time ran out and `family` enters the long-lived stale phase (RFC 9494
    §4.2): the stale paths carrying NO_LLGR "MUST be removed"; every other one "MUST" get
    the LLGR_STALE community and stays stale.

    Returns (removed, renewed): removed paths are gone from `adj_in`; renewed ones are new
    `Path` objects that replace the old ones in `adj_in` (same peer, path id and time) for
    `LocRib.add_path` (an implicit replace, keeping the ADD-PATH local id).
    """
    removed: list[Path] = []
    renewed: list[Path] = []
    post = adj_in.post.get(family, {})
    for nlri, path in list(post.items()):
        if not path.stale:
            continue
        comms = path.attrs.communities
        if _NO_LLGR in comms:
            removed.append(post.pop(nlri))
        elif _LLGR_STALE not in comms:
            new = Path(path.prefix, path.attrs.replace(communities=(*comms, _LLGR_STALE)),
                       path.source, path.path_id, path.learned_at, path.received)
            new.stale = True
            post[nlri] = new
            renewed.append(new)
    return removed, renewed


def has_stale(adj_in: AdjRibIn) -> bool:
    return any(path.stale for post in adj_in.post.values() for path in post.values())


def stale_count(adj_in: AdjRibIn, family: Family) -> int:
    return sum(1 for path in adj_in.post.get(family, {}).values() if path.stale)


@dataclass
class HelperState:
    """One peer's graceful restart as seen by us, the helper.

    `stale` holds the families with stale routes. While the session is down,
    `restart_deadlines` is when each family's GR phase ends (the peer's Restart Time, or
    at once for a family kept only by LLGR); then a family with a Long-lived Stale Time
    in `long_lived_time` enters the long-lived phase (`long_lived_due`), deadline in
    `long_lived`, and the others are swept. Once the session is back `eor_deadlines`
    bound the wait for each family's End-of-RIB.
    """

    stale_time: float = DEFAULT_STALE_TIME
    stale: set[Family] = field(default_factory=set)
    restart_deadlines: dict[Family, float] = field(default_factory=dict)
    long_lived_time: dict[Family, float] = field(default_factory=dict)
    long_lived: dict[Family, float] = field(default_factory=dict)
    eor_deadlines: dict[Family, float] = field(default_factory=dict)

    @property
    def active(self) -> bool:
        return bool(self.stale)

    @property
    def restart_deadline(self) -> float | None:
        """The earliest end of a GR phase while the session is down."""
        return min(self.restart_deadlines.values(), default=None)

    def session_lost(
        self,
        now: float,
        retained: Iterable[Family],
        peer_gr: GracefulRestart | None,
        long_lived: Mapping[Family, float] | None = None,
    ) -> None:
        """The session ended and the speaker kept `retained` (GR) and the keys of
        `long_lived` (LLGR, with their LLST) as stale. RFC 4724 §4.2: "If the session
        does not get re-established within the "Restart Time" that the peer advertised
        previously, the Receiving Speaker MUST delete all the stale routes" - unless
        RFC 9494 keeps them longer."""
        gr_fams = set(retained) if peer_gr is not None else set()
        ll = dict(long_lived or {})
        self.stale = gr_fams | set(ll)
        self.eor_deadlines.clear()
        self.long_lived.clear()
        self.long_lived_time = ll
        restart = 0 if peer_gr is None else peer_gr.restart_time
        # RFC 9494 §4.2: a family outside the GR capability (or a restart time of 0)
        # goes straight to the long-lived phase.
        self.restart_deadlines = {
            fam: now + (restart if fam in gr_fams else 0) for fam in self.stale
        }

    def long_lived_due(self, now: float) -> set[Family]:
        """The families whose GR phase ended by `now` and that now enter the long-lived
        stale phase (RFC 9494 §4.2; `bgp.rib.graceful.mark_long_lived`). Call before
        `expired`, which sweeps the families without LLGR."""
        out = set()
        for fam, when in list(self.restart_deadlines.items()):
            llst = self.long_lived_time.get(fam)
            if now >= when and llst:
                del self.restart_deadlines[fam]
                self.long_lived[fam] = when + llst
                out.add(fam)
        return out

    def session_up(
        self,
        now: float,
        peer_gr: GracefulRestart | None,
        families: Iterable[Family],
        peer_long_lived: LongLivedGracefulRestart | None = None,
    ) -> set[Family]:
        """The session is Established again with the peer's new capabilities and
        negotiated `families`; returns the families whose stale routes go at once.

        RFC 4724 §4.2: "If the Graceful Restart Capability is not received in the
        re-established session at all, or ... does not contain the address family ...,
        or the F bit for an address family is not set in the newly received Graceful
        Restart Capability, then the Receiving Speaker MUST immediately remove all the
        stale routes from the peer that it is retaining for that address family."
        RFC 9494 §4.2 says the same of the LLGR capability for families in the
        long-lived phase.
        """
        self.restart_deadlines.clear()
        in_long_lived = set(self.long_lived)
        self.long_lived.clear()
        self.long_lived_time.clear()
        if not self.stale:
            return set()
        preserved = set() if peer_gr is None else {
            f.family for f in peer_gr.families if f.forwarding_preserved
        }
        ll_preserved = set() if peer_gr is None or peer_long_lived is None else {
            f.family for f in peer_long_lived.families if f.forwarding_preserved
        }
        fams = set(families)
        flush = {
            fam for fam in self.stale
            if fam not in fams
            or fam not in (ll_preserved if fam in in_long_lived else preserved)
        }
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
        """The families whose stale routes must go because a deadline passed: the
        restart time (families without LLGR), the Long-lived Stale Time, or the wait for
        End-of-RIB."""
        out = {fam for fam, when in self.restart_deadlines.items()
               if now >= when and not self.long_lived_time.get(fam)}
        out |= {fam for fam, when in self.long_lived.items() if now >= when}
        out |= {fam for fam, when in self.eor_deadlines.items() if now >= when}
        for fam in out:
            self.restart_deadlines.pop(fam, None)
            self.long_lived.pop(fam, None)
            self.long_lived_time.pop(fam, None)
            self.eor_deadlines.pop(fam, None)
        self.stale -= out
        return out

    def reset(self) -> set[Family]:
        """Forget everything (peer removed, Hard Reset); returns the stale families."""
        out = set(self.stale)
        self.stale.clear()
        self.restart_deadlines.clear()
        self.long_lived.clear()
        self.long_lived_time.clear()
        self.eor_deadlines.clear()
        return out

    def next_deadline(self) -> float | None:
        if not self.stale:
            return None
        return min((*self.restart_deadlines.values(), *self.long_lived.values(),
                    *self.eor_deadlines.values()), default=None)
