"""The Adj-RIB-Out one-member fast path (`AdjRibOut._update_one`) against the general path.

`AdjRibOut.update` hands a group of one member to `_update_one`; the speaker then encodes
its diff as the member's messages. The general path gives the same member the common diff
minus the prefixes it deviates on, plus its private diff (`Speaker._propagate`). Over
random announce / replace / withdraw batches, with and without ADD-PATH, both must leave
the same table and produce byte-for-byte the same UPDATEs (real `PackingEncoder`).

The general path is forced by adding a bystander member that is never the source of an
advert, so it changes nothing in what the member is sent.
"""

from __future__ import annotations

import ipaddress

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.rib.adj_out import NO_ADVERTS, AdjRibOut, Advert, OutDiff, PackingEncoder, for_member
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Family
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.prefix import Prefix
from tests.unit.rib.helpers import peer, session

MEMBER = "member"
BYSTANDER = "bystander"  # never a source: only there to force the general path
SOURCES: tuple[str | None, ...] = (MEMBER, "other1", "other2", None)  # None: local
ENCODER = PackingEncoder()

PREFIXES = {
    IPV4_UNICAST: [Prefix.parse(f"10.{i}.0.0/16") for i in range(6)] + [
        Prefix.parse("192.0.2.0/24"), Prefix.parse("0.0.0.0/0")],
    IPV6_UNICAST: [Prefix.parse(f"2001:db8:{i}::/48") for i in range(6)] + [
        Prefix.parse("2001:db8::/32"), Prefix.parse("::/0")],
}


def _attr_pool(fam: Family) -> list[AttrSet]:
    base = "192.0.2." if fam == IPV4_UNICAST else "2001:db8:ff::"
    pool = [
        AttrSet.make(next_hop=ipaddress.ip_address(f"{base}{i + 1}"),
                     as_path=AsPath.sequence(*range(65000, 65000 + i)),
                     med=None if i % 2 else i * 10, local_pref=100 + i)
        for i in range(4)
    ]
    # an equal but not identical (not interned) copy: `==` and `is` must agree on it
    first = pool[0]
    pool.append(AttrSet(next_hop=first.next_hop, as_path=first.as_path, med=first.med,
                        local_pref=first.local_pref))
    return pool


ATTRS = {fam: _attr_pool(fam) for fam in (IPV4_UNICAST, IPV6_UNICAST)}


@st.composite
def _adverts(draw: st.DrawFn, fam: Family, addpath: bool) -> tuple[Advert, ...]:
    def one(path_id: int) -> Advert:
        return Advert(path_id, draw(st.sampled_from(ATTRS[fam])),
                      draw(st.sampled_from(SOURCES)))

    if not addpath:  # best path only: at most one advert, path id 0
        return NO_ADVERTS if draw(st.integers(0, 3)) == 0 else (one(0),)
    # RFC 7911: several paths, each under its own local path id, in decision order
    ids = draw(st.lists(st.integers(1, 5), unique=True, max_size=4))
    return tuple(one(pid) for pid in ids)


@st.composite
def _scenario(
    draw: st.DrawFn,
) -> tuple[Family, bool, list[list[tuple[Prefix, tuple[Advert, ...]]]]]:
    fam = draw(st.sampled_from((IPV4_UNICAST, IPV6_UNICAST)))
    addpath = draw(st.booleans())
    # one batch = one UPDATE's worth of changed prefixes (each prefix once, as the
    # speaker's `touched` dict gives them); later batches replace and withdraw
    batch = st.dictionaries(st.sampled_from(PREFIXES[fam]), _adverts(fam, addpath),
                            max_size=len(PREFIXES[fam]))
    batches = draw(st.lists(batch, min_size=1, max_size=12))
    return fam, addpath, [list(b.items()) for b in batches]


def _general(rib: AdjRibOut, changes: list[tuple[Prefix, tuple[Advert, ...]]]) -> OutDiff:
    """What `Speaker._propagate` sends MEMBER from the general path."""
    common, private, excluded = rib.update(changes, [MEMBER, BYSTANDER])
    mine = private.get(MEMBER)
    if mine is None:
        return common
    diff = common.without(excluded[MEMBER])
    diff.merge(mine)
    return diff


def _fast(rib: AdjRibOut, changes: list[tuple[Prefix, tuple[Advert, ...]]]) -> OutDiff:
    common, private, excluded = rib.update(changes, [MEMBER])
    assert private == {} and excluded == {}  # the one-member path was taken
    return common


@settings(max_examples=400, deadline=None)
@given(_scenario())
def test_one_member_fast_path_sends_the_same_bytes(
    scenario: tuple[Family, bool, list[list[tuple[Prefix, tuple[Advert, ...]]]]],
) -> None:
    fam, addpath, batches = scenario
    info = peer(MEMBER, "192.0.2.200")
    ctx = session(info, (fam,), addpath=addpath)
    general, fast = AdjRibOut(fam), AdjRibOut(fam)
    for changes in batches:
        want = _general(general, changes).encode(fam, ctx, ENCODER)
        got = _fast(fast, changes).encode(fam, ctx, ENCODER)
        assert got == want, changes
        assert fast.sent == general.sent
        assert fast.full_table(MEMBER).encode(fam, ctx, ENCODER) == \
            general.full_table(MEMBER).encode(fam, ctx, ENCODER)


@settings(max_examples=200, deadline=None)
@given(_scenario())
def test_one_member_fast_path_keeps_the_member_in_sync(
    scenario: tuple[Family, bool, list[list[tuple[Prefix, tuple[Advert, ...]]]]],
) -> None:
    """Applying the fast path's diffs gives the member exactly its view of the table:
    every advert except those learned from the member itself."""
    fam, _addpath, batches = scenario
    fast = AdjRibOut(fam)
    held: dict[tuple[Prefix, int], AttrSet] = {}
    for changes in batches:
        diff = _fast(fast, changes)
        for nlri in diff.withdraw:
            assert (nlri.prefix, nlri.path_id) in held, nlri
            del held[nlri.prefix, nlri.path_id]
        for attrs, nlris in diff.announce.items():
            for nlri in nlris:
                held[nlri.prefix, nlri.path_id] = attrs
        want = {
            (prefix, adv.path_id): adv.attrs
            for prefix, adverts in fast.sent.items()
            for adv in for_member(adverts, MEMBER)
        }
        assert held == want


@st.composite
def _run_scenario(draw: st.DrawFn) -> tuple[Family, list[list[tuple[Prefix, tuple[Advert, ...]]]]]:
    """Best-path batches whose adverts come from a small pool of shared tuples, as the
    speaker's update groups produce them: consecutive prefixes then often carry the very
    same adverts object, and runs of the member's own new routes occur."""
    fam = draw(st.sampled_from((IPV4_UNICAST, IPV6_UNICAST)))
    pool = draw(st.lists(_adverts(fam, False), min_size=1, max_size=4))
    batch = st.dictionaries(st.sampled_from(PREFIXES[fam]), st.sampled_from(pool),
                            max_size=len(PREFIXES[fam]))
    batches = draw(st.lists(batch, min_size=1, max_size=8))
    return fam, [list(b.items()) for b in batches]


def _runs(changes: list[tuple[Prefix, tuple[Advert, ...]]]) -> list[tuple[tuple[Advert, ...],
                                                                        list[Prefix]]]:
    runs: list[tuple[tuple[Advert, ...], list[Prefix]]] = []
    for prefix, new in changes:
        if runs and runs[-1][0] is new:
            runs[-1][1].append(prefix)
        else:
            runs.append((new, [prefix]))
    return runs


@settings(max_examples=300, deadline=None)
@given(_run_scenario())
def test_runs_of_one_member_send_the_same_bytes(
    scenario: tuple[Family, list[list[tuple[Prefix, tuple[Advert, ...]]]]],
) -> None:
    """`update_runs` (a run of the member's own new routes stored in one step) gives the
    same table and bytes as the general path, prefix by prefix."""
    fam, batches = scenario
    ctx = session(peer(MEMBER, "192.0.2.200"), (fam,))
    general, fast = AdjRibOut(fam), AdjRibOut(fam)
    for changes in batches:
        want = _general(general, changes).encode(fam, ctx, ENCODER)
        common, private, excluded = fast.update_runs(_runs(changes), [MEMBER])
        assert private == {} and excluded == {}
        assert common.encode(fam, ctx, ENCODER) == want, changes
        assert fast.sent == general.sent


def test_a_run_of_own_new_routes_is_stored_without_sending() -> None:
    fam = IPV4_UNICAST
    own = (Advert(0, ATTRS[fam][0], MEMBER),)
    other = (Advert(0, ATTRS[fam][1], "other1"),)
    rib = AdjRibOut(fam)
    first, rest = PREFIXES[fam][:3], PREFIXES[fam][3:5]
    common, _, _ = rib.update_runs([(own, first), (other, rest)], [MEMBER])
    assert not common.withdraw and list(common.announce) == [ATTRS[fam][1]]
    assert [n.prefix for n in common.announce[ATTRS[fam][1]]] == rest
    assert {p: rib.sent[p] for p in first} == dict.fromkeys(first, own)
    # the same run again: nothing changed, nothing sent (not the one-step path: not new)
    assert not rib.update_runs([(own, first)], [MEMBER])[0]
