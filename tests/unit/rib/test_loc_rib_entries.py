"""Loc-RIB entries: a prefix with one reachable path holds the `Path` itself; a second
candidate (or an unreachable one) makes a `Destination`, one reachable path left makes it
bare again. Local path ids (ADD-PATH) and every `BestChange` stay what they were."""

from __future__ import annotations

from bgp.rib.decision import BestReason
from bgp.rib.loc_rib import Destination, LocRib
from bgp.rib.path import Path
from bgp.types import IPV4_UNICAST
from bgp.wire.attributes import IPAddress
from tests.unit.rib.helpers import attrs, path, peer

P = "10.1.0.0/24"
A = peer("A", "10.0.0.2")
B = peer("B", "10.0.0.3")


class Resolver:
    """Next hop 10.0.0.99 is unreachable."""

    def resolve(self, next_hop: IPAddress | None) -> int | None:
        return None if str(next_hop) == "10.0.0.99" else 0


def test_single_path_is_stored_bare_and_read_as_a_destination() -> None:
    rib = LocRib(IPV4_UNICAST)
    a = path(P, attrs("10.0.0.2"), A)
    change = rib.add_path(a)
    assert change is not None and change.new is a and change.best_changed
    entry = rib.dests[a.prefix]
    assert entry is a and a.local_id == 1
    dest = rib.get(a.prefix)
    assert dest is not None and dest.paths == [a] and dest.best is a
    assert dest.selection is not None and dest.selection.reason is BestReason.ONLY_PATH
    assert dest.selection.multipath == (a,)
    assert [d.prefix for d in rib] == [a.prefix]
    # the same source replaces it: still bare, same local id, best and ECMP set moved
    a2 = path(P, attrs("10.0.0.2", med=5), A)
    change = rib.add_path(a2)
    assert change is not None and change.old is a and change.new is a2
    assert change.multipath_changed and rib.dests[a.prefix] is a2 and a2.local_id == 1
    change = rib.remove_path(a2)
    assert change is not None and change.old is a2 and change.new is None
    assert rib.get(a.prefix) is None and len(rib) == 0


def test_second_candidate_inflates_and_removal_deflates_keeping_ids() -> None:
    rib = LocRib(IPV4_UNICAST)
    a = path(P, attrs("10.0.0.2", path=(65001,)), A)
    b = path(P, attrs("10.0.0.3"), B)  # shorter AS_PATH: wins
    rib.add_path(a)
    change = rib.add_path(b)
    assert change is not None and change.old is a and change.new is b
    dest = rib.dests[a.prefix]
    assert isinstance(dest, Destination) and dest.paths == [a, b]
    assert (a.local_id, b.local_id) == (1, 2)
    change = rib.remove_path(b)
    assert change is not None and change.old is b and change.new is a
    assert rib.dests[a.prefix] is a and a.local_id == 1  # bare again
    c = path(P, attrs("10.0.0.4"), peer("C", "10.0.0.4"))
    rib.add_path(c)
    assert c.local_id == 2  # not an id still held (a keeps 1)


def test_unreachable_only_path_is_a_destination_without_selection() -> None:
    rib = LocRib(IPV4_UNICAST, Resolver())
    bad = path(P, attrs("10.0.0.99"), A)
    change = rib.add_path(bad)
    assert change is not None and change.new is None and not change.best_changed
    dest = rib.dests[bad.prefix]
    assert isinstance(dest, Destination) and dest.selection is None
    good = path(P, attrs("10.0.0.2"), A)  # replaced by a reachable one: bare
    change = rib.add_path(good)
    assert change is not None and change.new is good
    assert rib.dests[good.prefix] is good
    # and a bare path whose replacement is unreachable: a Destination, no best
    worse = path(P, attrs("10.0.0.99", med=1), A)
    change = rib.add_path(worse)
    assert change is not None and change.old is good and change.new is None
    assert isinstance(rib.dests[good.prefix], Destination)


def test_reselect_of_a_bare_path() -> None:
    rib = LocRib(IPV4_UNICAST)
    a: Path = path(P, attrs("10.0.0.2"), A)
    rib.add_path(a)
    assert rib.reselect(a.prefix) is None  # nothing changed
    assert rib.dests[a.prefix] is a
