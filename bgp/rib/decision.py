"""The BGP decision process as elimination over the whole candidate set.

RFC 4271 §9.1.2.2 is not a total order (MED is compared only between paths from the same
neighbouring AS, so pairwise comparison is not transitive; BIRD's `bgp_rte_better` says so
too). Each step therefore removes the candidates that lose *that* step and passes the
survivors on; the step that leaves one survivor is the winner's reason, and every removed
path remembers the step that removed it (FRR's "wins over X due to ...").

    step                       rule
    -------------------------  ---------------------------------------------------------
    NEXT_HOP_UNREACHABLE       §9.1.2.1  unresolvable NEXT_HOP: not a candidate
    LLGR_STALE                 RFC 9494 §4.3  a path with LLGR_STALE loses to any other
    LOCAL_PREF                 §9.1.1    highest degree of preference (LOCAL_PREF)
    LOCALLY_ORIGINATED         (BIRD, FRR) our own routes before learned ones
    AS_PATH_LENGTH             §9.1.2.2 a  shortest AS_PATH (AS_SET = 1, confed = 0)
    ORIGIN                     §9.1.2.2 b  lowest ORIGIN
    MED                        §9.1.2.2 c  lowest MED among paths from the same
                                           neighbouring AS (missing MED = 0)
    EBGP_OVER_IBGP             §9.1.2.2 d  eBGP-learned over iBGP-learned
    IGP_COST                   §9.1.2.2 e  lowest interior cost to the NEXT_HOP
    ROUTER_ID                  §9.1.2.2 f + RFC 4456 §9 a  lowest ORIGINATOR_ID, else BGP id
    CLUSTER_LIST_LENGTH        RFC 4456 §9 b  shortest CLUSTER_LIST
    PEER_ADDRESS               §9.1.2.2 g  lowest peer address
    PATH_ID                    (ADD-PATH) lowest path identifier from the same peer

Paths still equal to the best after IGP_COST form the multipath (ECMP) set, like BIRD's
`merge paths`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import IntEnum
from typing import NamedTuple, Protocol

from bgp.rib.path import Path
from bgp.types import WellKnownCommunity
from bgp.wire.attributes import IPAddress

DEFAULT_LOCAL_PREF = 100  # RFC 4271 §5.1.5 leaves it to configuration; BIRD and FRR use 100


class BestReason(IntEnum):
    """Decision steps; the number is shown by the CLI and docs and stays stable, so a
    step added later takes the next number (`STEPS` and the table above give the order:
    LLGR_STALE applies right after NEXT_HOP_UNREACHABLE)."""

    ONLY_PATH = 0
    NEXT_HOP_UNREACHABLE = 1  # RFC 4271 §9.1.2.1
    LOCAL_PREF = 2  # RFC 4271 §9.1.1
    LOCALLY_ORIGINATED = 3
    AS_PATH_LENGTH = 4  # RFC 4271 §9.1.2.2 (a)
    ORIGIN = 5  # RFC 4271 §9.1.2.2 (b)
    MED = 6  # RFC 4271 §9.1.2.2 (c)
    EBGP_OVER_IBGP = 7  # RFC 4271 §9.1.2.2 (d)
    IGP_COST = 8  # RFC 4271 §9.1.2.2 (e)
    ROUTER_ID = 9  # RFC 4271 §9.1.2.2 (f), RFC 4456 §9 (a)
    CLUSTER_LIST_LENGTH = 10  # RFC 4456 §9 (b)
    PEER_ADDRESS = 11  # RFC 4271 §9.1.2.2 (g)
    PATH_ID = 12  # ADD-PATH: several paths from one peer
    LLGR_STALE = 13  # RFC 9494 §4.3, before LOCAL_PREF

    @property
    def phrase(self) -> str:
        """What the winner had that the loser did not, for "wins over X: <phrase>"."""
        return _PHRASES[self]


_PHRASES = {
    BestReason.ONLY_PATH: "only path",
    BestReason.NEXT_HOP_UNREACHABLE: "next hop reachable",
    BestReason.LOCAL_PREF: "higher LOCAL_PREF",
    BestReason.LOCALLY_ORIGINATED: "locally originated",
    BestReason.AS_PATH_LENGTH: "shorter AS_PATH",
    BestReason.ORIGIN: "lower ORIGIN",
    BestReason.MED: "lower MED",
    BestReason.EBGP_OVER_IBGP: "eBGP over iBGP",
    BestReason.IGP_COST: "lower IGP cost",
    BestReason.ROUTER_ID: "lower router id",
    BestReason.CLUSTER_LIST_LENGTH: "shorter CLUSTER_LIST",
    BestReason.PEER_ADDRESS: "lower peer address",
    BestReason.PATH_ID: "lower path id",
    BestReason.LLGR_STALE: "not long-lived stale",
}


class NextHopResolver(Protocol):
    """Next-hop tracking hook: the IGP cost to reach `next_hop`, or None if unreachable."""

    def resolve(self, next_hop: IPAddress | None) -> int | None: ...


class AlwaysReachable:
    """The default resolver: every next hop is reachable at cost 0 (a directly connected
    Calico mesh, where the kernel route to the peer is the only "IGP")."""

    def resolve(self, next_hop: IPAddress | None) -> int | None:
        return 0


ALWAYS_REACHABLE = AlwaysReachable()


class Selection(NamedTuple):
    """The outcome for one prefix: the best path, the step that decided it, the ECMP set
    (best first), and every other candidate with the step that eliminated it.

    A NamedTuple rather than a frozen dataclass: one is built per prefix on ingest."""

    best: Path
    reason: BestReason
    multipath: tuple[Path, ...]
    losers: tuple[tuple[Path, BestReason], ...] = ()

    def candidates(self) -> tuple[Path, ...]:
        """Best first, then the reachable losers in elimination order (ADD-PATH send)."""
        unreachable = BestReason.NEXT_HOP_UNREACHABLE
        return (self.best, *(p for p, r in self.losers if r is not unreachable))


# A candidate during selection: the path and its IGP cost from the resolver.
_Cand = tuple[Path, int]
_Step = tuple[BestReason, Callable[[list[_Cand], int], list[_Cand]]]


def _keep_min(cands: list[_Cand], key: Callable[[_Cand], object]) -> list[_Cand]:
    keys = [key(c) for c in cands]
    best = min(keys)  # type: ignore[type-var]
    return [c for c, k in zip(cands, keys, strict=True) if k == best]


_LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)


def _step_llgr_stale(cands: list[_Cand], _d: int) -> list[_Cand]:
    # RFC 9494 §4.3: "A BGP speaker that has LLGR_STALE routes ... MUST treat them as
    # least preferred ... before all other comparisons" - whether we keep the route
    # long-lived ourselves or it arrived with the community (from a reflector).
    fresh = [c for c in cands if _LLGR_STALE not in c[0].attrs.communities]
    return fresh or cands  # all of them long-lived stale: the other steps decide


def _local_pref(c: _Cand, default: int) -> int:
    lp = c[0].attrs.local_pref
    return default if lp is None else lp


def _step_local_pref(cands: list[_Cand], default: int) -> list[_Cand]:
    # §9.1.1: the degree of preference is LOCAL_PREF for iBGP routes; for eBGP-learned
    # ones (whose received LOCAL_PREF was discarded on import, §5.1.5) it is what import
    # policy set, else the configured default.
    return _keep_min(cands, lambda c: -_local_pref(c, default))


def _step_local(cands: list[_Cand], _d: int) -> list[_Cand]:
    return _keep_min(cands, lambda c: c[0].source is not None)


def _step_as_path(cands: list[_Cand], _d: int) -> list[_Cand]:
    # §9.1.2.2 (a): AS_SET counts 1, confederation segments 0 (AsPath.length()).
    return _keep_min(cands, lambda c: c[0].attrs.as_path.length())


def _step_origin(cands: list[_Cand], _d: int) -> list[_Cand]:
    return _keep_min(cands, lambda c: c[0].attrs.origin)


def _neighbor_as(c: _Cand) -> int:
    # §9.1.2.2 (c): "the neighboring AS is determined by the leftmost AS in the AS_PATH";
    # paths with no such AS (originated inside our AS) form one group of their own.
    asn = c[0].attrs.as_path.neighbor_as()
    return -1 if asn is None else asn


def _step_med(cands: list[_Cand], _d: int) -> list[_Cand]:
    # §9.1.2.2 (c): "remove from consideration all routes that are not the routes with
    # the lowest MED among those learned from the same neighboring AS"; a route without
    # MED is treated as MED 0. Applied to the whole set, so the result does not depend
    # on the order the paths arrived in.
    lowest: dict[int, int] = {}
    for c in cands:
        nas, med = _neighbor_as(c), c[0].attrs.med or 0
        if med < lowest.get(nas, med + 1):
            lowest[nas] = med
    return [c for c in cands if (c[0].attrs.med or 0) == lowest[_neighbor_as(c)]]


def _step_ebgp(cands: list[_Cand], _d: int) -> list[_Cand]:
    return _keep_min(cands, lambda c: c[0].source is None or c[0].source.is_ibgp)


def _step_igp(cands: list[_Cand], _d: int) -> list[_Cand]:
    return _keep_min(cands, lambda c: c[1])


def _router_id(c: _Cand) -> int:
    # RFC 4456 §9 (a): "If a route carries the ORIGINATOR_ID attribute, then in Step f)
    # the ORIGINATOR_ID SHOULD be treated as the BGP Identifier of the BGP speaker that
    # has advertised the route."
    path = c[0]
    oid = path.attrs.originator_id
    if oid is not None:
        return int(oid)
    return 0 if path.source is None else int(path.source.router_id)


def _step_router_id(cands: list[_Cand], _d: int) -> list[_Cand]:
    return _keep_min(cands, _router_id)


def _step_cluster(cands: list[_Cand], _d: int) -> list[_Cand]:
    # RFC 4456 §9 (b): "prefer the route with the shorter CLUSTER_LIST length".
    return _keep_min(cands, lambda c: len(c[0].attrs.cluster_list))


def _step_peer_address(cands: list[_Cand], _d: int) -> list[_Cand]:
    return _keep_min(cands, lambda c: (0, 0) if c[0].source is None else c[0].source.address_key)


def _step_path_id(cands: list[_Cand], _d: int) -> list[_Cand]:
    return _keep_min(cands, lambda c: c[0].path_id)


STEPS: tuple[_Step, ...] = (
    (BestReason.LLGR_STALE, _step_llgr_stale),
    (BestReason.LOCAL_PREF, _step_local_pref),
    (BestReason.LOCALLY_ORIGINATED, _step_local),
    (BestReason.AS_PATH_LENGTH, _step_as_path),
    (BestReason.ORIGIN, _step_origin),
    (BestReason.MED, _step_med),
    (BestReason.EBGP_OVER_IBGP, _step_ebgp),
    (BestReason.IGP_COST, _step_igp),
    (BestReason.ROUTER_ID, _step_router_id),
    (BestReason.CLUSTER_LIST_LENGTH, _step_cluster),
    (BestReason.PEER_ADDRESS, _step_peer_address),
    (BestReason.PATH_ID, _step_path_id),
)


def resolve_cost(path: Path, resolver: NextHopResolver) -> int | None:
    """IGP cost to the path's next hop; locally originated paths are always reachable."""
    if path.source is None:
        return 0
    return resolver.resolve(path.attrs.next_hop)


_ONLY_PATH = BestReason.ONLY_PATH
_NO_LOSERS: tuple[tuple[Path, BestReason], ...] = ()
_new_tuple = tuple.__new__


def select_only(only: Path, resolver: NextHopResolver = ALWAYS_REACHABLE) -> Selection | None:
    """The decision for a prefix with a single candidate: it wins if it is reachable."""
    if only.source is not None and resolver.resolve(only.attrs.next_hop) is None:
        return None
    # tuple.__new__ skips the NamedTuple's Python-level __new__: one per prefix on ingest.
    return _new_tuple(Selection, (only, _ONLY_PATH, (only,), _NO_LOSERS))


def select(
    candidates: Sequence[Path],
    resolver: NextHopResolver = ALWAYS_REACHABLE,
    default_local_pref: int = DEFAULT_LOCAL_PREF,
) -> Selection | None:
    """Run the decision process over all candidates; None when none is usable."""
    if len(candidates) == 1:  # the common case: one path per prefix
        return select_only(candidates[0], resolver)

    losers: list[tuple[Path, BestReason]] = []
    cands: list[_Cand] = []
    for path in candidates:
        cost = resolve_cost(path, resolver)
        if cost is None:
            # §9.1.2.1: a route whose NEXT_HOP cannot be resolved is excluded.
            losers.append((path, BestReason.NEXT_HOP_UNREACHABLE))
        else:
            cands.append((path, cost))
    if not cands:
        return None
    reason = BestReason.NEXT_HOP_UNREACHABLE if losers else BestReason.ONLY_PATH
    multipath: tuple[Path, ...] | None = None
    for step_reason, step in STEPS:
        if len(cands) == 1:
            break
        survivors = step(cands, default_local_pref)
        if len(survivors) != len(cands):
            kept = {id(c[0]) for c in survivors}
            losers.extend((c[0], step_reason) for c in cands if id(c[0]) not in kept)
            reason = step_reason
            cands = survivors
        if step_reason is BestReason.IGP_COST:
            multipath = tuple(c[0] for c in cands)
    best = cands[0][0]
    if multipath is None:
        multipath = (best,)
    elif multipath[0] is not best:
        multipath = (best, *(p for p in multipath if p is not best))
    return Selection(best, reason, multipath, tuple(losers))
