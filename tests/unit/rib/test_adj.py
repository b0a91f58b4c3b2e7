"""Adj-RIB-In tables and Adj-RIB-Out diffs."""

from __future__ import annotations

from bgp.rib.adj_in import AdjRibIn
from bgp.rib.adj_out import NO_ADVERTS, AdjRibOut, Advert, OutDiff, for_member
from bgp.rib.path import DropReason
from bgp.types import IPV4_UNICAST
from bgp.wire.prefix import Nlri
from tests.unit.rib.helpers import attrs, path, peer, pfx

P = pfx("172.17.8.0/24")
A1 = attrs("10.0.0.1")
A2 = attrs("10.0.0.2")


def test_adj_in_keeps_pre_and_post_and_addpath_ids() -> None:
    src = peer("A", "10.0.0.1")
    rib = AdjRibIn(src)
    post, rejected_attrs, rejected = rib.table(IPV4_UNICAST)
    n1, n2 = Nlri(P, 1), Nlri(P, 2)
    post[n1] = path(str(P), A1, src, 1)
    rejected_attrs[n2] = A2
    rejected[n2] = DropReason.IMPORT_POLICY
    assert rib.counts(IPV4_UNICAST) == (2, 1)
    assert list(rib.received(IPV4_UNICAST)) == [(n1, A1), (n2, A2)]  # pre-policy view
    assert rib.withdraw(IPV4_UNICAST, n2) is None
    assert rib.rejected[IPV4_UNICAST] == {} and rib.rejected_attrs[IPV4_UNICAST] == {}
    held = rib.withdraw(IPV4_UNICAST, n1)
    assert held is not None and held.attrs is A1
    assert rib.counts(IPV4_UNICAST) == (0, 0)


def test_diff_announce_replace_withdraw() -> None:
    d = OutDiff()
    d.add(P, NO_ADVERTS, (Advert(0, A1, "A"),))
    assert d.announce == {A1: [Nlri(P)]} and not d.withdraw
    d = OutDiff()
    d.add(P, (Advert(0, A1, "A"),), (Advert(0, A1, "B"),))
    assert not d  # same attributes (same interned object): nothing to send
    d.add(P, (Advert(0, A1, "A"),), (Advert(0, A2, "B"),))
    assert d.announce == {A2: [Nlri(P)]} and not d.withdraw  # implicit withdraw
    d = OutDiff()
    d.add(P, (Advert(0, A1, "A"),), NO_ADVERTS)
    assert d.withdraw == [Nlri(P)] and not d.announce


def test_diff_addpath_per_path_id() -> None:
    d = OutDiff()
    d.add(P, (Advert(1, A1, "A"), Advert(2, A2, "B")), (Advert(2, A2, "B"), Advert(3, A1, "C")))
    assert d.withdraw == [Nlri(P, 1)]
    assert d.announce == {A1: [Nlri(P, 3)]}


def test_adj_out_split_horizon_members() -> None:
    out = AdjRibOut(IPV4_UNICAST)
    common, private, excluded = out.update([(P, (Advert(0, A1, "A"),))], ["A", "B"])
    assert common.announce == {A1: [Nlri(P)]}
    assert excluded == {"A": {P}} and not private["A"]
    assert out.full_table("A").announce == {}
    assert out.full_table("B").announce == {A1: [Nlri(P)]}
    assert out.count_for("A") == 0 and out.count_for("B") == 1
    # B's path replaces A's: A must now get it (same as everyone: no private diff),
    # B must lose A's path.
    common, private, excluded = out.update([(P, (Advert(0, A2, "B"),))], ["A", "B"])
    assert common.announce == {A2: [Nlri(P)]}
    assert "A" not in private
    assert private["B"].withdraw == [Nlri(P)]
    without = common.without(excluded["B"])
    assert not without
    assert for_member((Advert(0, A2, "B"),), "B") == NO_ADVERTS
    # no change: nothing at all
    assert out.update([(P, (Advert(0, A2, "B"),))], ["A", "B"])[0].announce == {}
