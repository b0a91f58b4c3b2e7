"""Decision process: one test per step, each asserting winner and recorded reason."""

from __future__ import annotations

import itertools

from bgp.rib.decision import BestReason, select
from bgp.rib.path import Path
from bgp.types import AsPathSegmentType, Origin
from bgp.wire.attributes import AsPath, AsPathSegment, IPAddress
from tests.unit.rib.helpers import LOCAL_AS, attrs, path, peer, rid

P = "172.17.8.0/24"
IB1 = peer("ib1", "10.0.0.1", router_id="1.1.1.1")
IB2 = peer("ib2", "10.0.0.2", router_id="2.2.2.2")
IB3 = peer("ib3", "10.0.0.3", router_id="3.3.3.3")
EB1 = peer("eb1", "192.0.2.1", asn=65001, router_id="9.9.9.1")
EB2 = peer("eb2", "192.0.2.2", asn=65002, router_id="9.9.9.2")


def sel(*paths: Path):  # type: ignore[no-untyped-def]
    result = select(paths)
    assert result is not None
    return result


def test_only_path() -> None:
    p = path(P, attrs(), IB1)
    s = sel(p)
    assert s.best is p and s.reason is BestReason.ONLY_PATH and s.multipath == (p,)


def test_next_hop_unreachable_is_not_a_candidate() -> None:
    class Resolver:
        def resolve(self, next_hop: IPAddress | None) -> int | None:
            return None if str(next_hop) == "10.0.0.1" else 0

    bad = path(P, attrs("10.0.0.1", local_pref=500), IB1)
    good = path(P, attrs("10.0.0.2"), IB2)
    s = select([bad, good], Resolver())
    assert s is not None and s.best is good
    assert s.reason is BestReason.NEXT_HOP_UNREACHABLE
    assert s.losers == ((bad, BestReason.NEXT_HOP_UNREACHABLE),)
    assert select([bad], Resolver()) is None


def test_highest_local_pref() -> None:
    lo = path(P, attrs(local_pref=100), IB1)
    hi = path(P, attrs(local_pref=200), IB2)
    s = sel(lo, hi)
    assert s.best is hi and s.reason is BestReason.LOCAL_PREF
    assert s.losers == ((lo, BestReason.LOCAL_PREF),)


def test_missing_local_pref_counts_as_default() -> None:
    # §9.1.1: an eBGP route without LOCAL_PREF is ranked with the configured default.
    ebgp = path(P, attrs(path=[65001]), EB1)
    ibgp = path(P, attrs(local_pref=101, path=[65001, 65002, 65003]), IB1)
    s = sel(ebgp, ibgp)
    assert s.best is ibgp and s.reason is BestReason.LOCAL_PREF
    assert select([ebgp, ibgp], default_local_pref=102).best is ebgp  # type: ignore[union-attr]


def test_locally_originated_preferred() -> None:
    local = path(P, attrs(path=[65001, 65002]), None)
    learned = path(P, attrs(), IB1)
    s = sel(learned, local)
    assert s.best is local and s.reason is BestReason.LOCALLY_ORIGINATED


def test_shortest_as_path_with_as_set_counting_one() -> None:
    as_set = AsPath((
        AsPathSegment(AsPathSegmentType.AS_SEQUENCE, (65001,)),
        AsPathSegment(AsPathSegmentType.AS_SET, (65002, 65003, 65004)),
    ))
    with_set = path(P, attrs(as_path=as_set), EB1)  # length 2
    longer = path(P, attrs(path=[65002, 65005, 65006]), EB2)  # length 3
    s = sel(longer, with_set)
    assert s.best is with_set and s.reason is BestReason.AS_PATH_LENGTH


def test_confederation_segments_do_not_count() -> None:
    confed = AsPath((
        AsPathSegment(AsPathSegmentType.AS_CONFED_SEQUENCE, (1, 2, 3)),
        AsPathSegment(AsPathSegmentType.AS_SEQUENCE, (65001,)),
    ))
    a = path(P, attrs(as_path=confed), IB1)
    b = path(P, attrs(path=[65001, 65009]), IB2)
    s = sel(b, a)
    assert s.best is a and s.reason is BestReason.AS_PATH_LENGTH


def test_lowest_origin() -> None:
    igp = path(P, attrs(origin=Origin.IGP), IB2)
    inc = path(P, attrs(origin=Origin.INCOMPLETE), IB1)
    s = sel(inc, igp)
    assert s.best is igp and s.reason is BestReason.ORIGIN


def test_med_compared_within_same_neighbor_as() -> None:
    high = path(P, attrs(path=[65001], med=50), IB1)
    low = path(P, attrs(path=[65001], med=10), IB2)
    s = sel(high, low)
    assert s.best is low and s.reason is BestReason.MED


def test_missing_med_is_zero() -> None:
    none = path(P, attrs(path=[65001]), IB2)
    some = path(P, attrs(path=[65001], med=1), IB1)
    s = sel(some, none)
    assert s.best is none and s.reason is BestReason.MED


def test_med_not_compared_across_neighbor_as() -> None:
    # Different neighbouring AS: MED is ignored, the router id decides.
    a = path(P, attrs(path=[65001], med=500), IB1)
    b = path(P, attrs(path=[65002], med=1), IB2)
    s = sel(b, a)
    assert s.best is a and s.reason is BestReason.ROUTER_ID


def test_med_result_does_not_depend_on_arrival_order() -> None:
    """Three paths, two neighbour ASes: pairwise comparison would cycle
    (p1 beats p3 on router id, p2 beats p1 on MED, p3 beats p2 on router id);
    elimination over the whole set always picks p3."""
    p1 = path(P, attrs(path=[65001], med=50), IB1)
    p2 = path(P, attrs(path=[65001], med=10), IB3)
    p3 = path(P, attrs(path=[65002], med=0), IB2)
    for order in itertools.permutations([p1, p2, p3]):
        s = sel(*order)
        assert s.best is p3, order
        assert s.reason is BestReason.ROUTER_ID
        assert dict((id(p), r) for p, r in s.losers) == {
            id(p1): BestReason.MED,
            id(p2): BestReason.ROUTER_ID,
        }


def test_ebgp_over_ibgp() -> None:
    ibgp = path(P, attrs(path=[65001]), IB1)
    ebgp = path(P, attrs(path=[65002]), EB2)
    s = sel(ibgp, ebgp)
    assert s.best is ebgp and s.reason is BestReason.EBGP_OVER_IBGP


def test_lowest_igp_cost() -> None:
    class Resolver:
        def resolve(self, next_hop: IPAddress | None) -> int | None:
            return {"10.0.0.1": 20, "10.0.0.2": 10}[str(next_hop)]

    far = path(P, attrs("10.0.0.1"), IB1)
    near = path(P, attrs("10.0.0.2"), IB2)
    s = select([far, near], Resolver())
    assert s is not None and s.best is near and s.reason is BestReason.IGP_COST
    assert s.multipath == (near,)


def test_lowest_router_id() -> None:
    a = path(P, attrs(), IB2)
    b = path(P, attrs(), IB1)
    s = sel(a, b)
    assert s.best is b and s.reason is BestReason.ROUTER_ID


def test_originator_id_replaces_router_id() -> None:
    # RFC 4456 §9: ORIGINATOR_ID is used as the BGP Identifier in step f.
    a = path(P, attrs(originator_id=rid("5.5.5.5")), IB1)  # router id 1.1.1.1
    b = path(P, attrs(), IB2)  # router id 2.2.2.2
    s = sel(a, b)
    assert s.best is b and s.reason is BestReason.ROUTER_ID


def test_shortest_cluster_list() -> None:
    oid = rid("7.7.7.7")
    long = path(P, attrs(originator_id=oid, cluster_list=(rid("1.0.0.1"), rid("1.0.0.2"))), IB1)
    short = path(P, attrs(originator_id=oid, cluster_list=(rid("1.0.0.3"),)), IB2)
    s = sel(long, short)
    assert s.best is short and s.reason is BestReason.CLUSTER_LIST_LENGTH


def test_lowest_peer_address() -> None:
    a = peer("a", "10.0.0.9", router_id="4.4.4.4")
    b = peer("b", "10.0.0.8", router_id="4.4.4.4")
    pa, pb = path(P, attrs(), a), path(P, attrs(), b)
    s = sel(pa, pb)
    assert s.best is pb and s.reason is BestReason.PEER_ADDRESS


def test_lowest_path_id_from_same_peer() -> None:
    a = path(P, attrs(), IB1, path_id=7)
    b = path(P, attrs(), IB1, path_id=3)
    s = sel(a, b)
    assert s.best is b and s.reason is BestReason.PATH_ID


def test_multipath_are_paths_equal_through_igp_cost() -> None:
    e1 = path(P, attrs("192.0.2.1", path=[65001]), EB1)
    e2 = path(P, attrs("192.0.2.2", path=[65002]), EB2)
    worse = path(P, attrs("10.0.0.1", path=[65003]), IB1)
    s = sel(worse, e2, e1)
    assert s.best is e1 and s.reason is BestReason.ROUTER_ID
    assert s.multipath == (e1, e2)
    assert (worse, BestReason.EBGP_OVER_IBGP) in s.losers
    assert s.candidates() == (e1, worse, e2) or set(s.candidates()) == {e1, e2, worse}


def test_reason_phrase_for_cli() -> None:
    assert BestReason.MED.phrase == "lower MED"
    assert LOCAL_AS == 64512
