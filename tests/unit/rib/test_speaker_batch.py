"""`Speaker.receive_updates`: the UPDATEs of one read, ingested in order, exported once.

The batch must leave the same Adj-RIB-In / Loc-RIB as the UPDATEs one by one, and every
other peer, after applying what it was sent (real codec), must hold the same routes; only
the number and packing of the UPDATEs sent may differ (fewer, fuller ones).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence

from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import ErrorHandling, ProtocolError
from bgp.policy import ACCEPT_ALL
from bgp.rib.path import PeerInfo
from bgp.speaker import PeerConfigForSpeaker, Speaker, SpeakerConfig
from bgp.types import IPV4_UNICAST
from bgp.wire.attributes import AttrSet
from bgp.wire.messages import decode_message
from bgp.wire.model import Negotiated, Update
from bgp.wire.prefix import Nlri, Prefix
from tests.unit.rib.helpers import LOCAL_AS, announce, attrs, peer, pfx, rid, session, withdraw

SRC = peer("S", "10.0.0.2", asn=65002)  # eBGP source of every UPDATE
IBGP = peer("I", "10.0.0.3")  # iBGP receiver
EBGP = peer("E", "192.0.2.9", asn=65009)  # eBGP receiver
OTHER = peer("T", "10.0.0.4", asn=65003)  # a second source: S's path is not always best
PREFIXES = [f"10.1.{i}.0/24" for i in range(8)]
ATTRS = [attrs("10.0.0.2", path=(65002,)), attrs("10.0.0.2", path=(65002, 65100), med=5),
         attrs("10.0.0.2", path=(65002,), local_pref=300)]
TAW = ProtocolError(3, 1, handling=ErrorHandling.TREAT_AS_WITHDRAW)


def _speaker(addpath: bool, other: bool = False) -> tuple[Speaker, dict[str, Negotiated]]:
    sp = Speaker(SpeakerConfig(LOCAL_AS, rid("10.0.0.1"), ipaddress.IPv4Address("10.0.0.1"),
                               rfc8212=False))
    ctxs: dict[str, Negotiated] = {}
    for info in (SRC, IBGP, EBGP, OTHER) if other else (SRC, IBGP, EBGP):
        sp.add_peer(PeerConfigForSpeaker(info, export_policy=ACCEPT_ALL))
        ctxs[info.key] = session(info, addpath=addpath and info is IBGP)
        sp.peer_up(info.key, ctxs[info.key], 0.0)
    # T's routes for half the prefixes: as good as ATTRS[0] (S wins on router id), better
    # than ATTRS[1] (shorter AS_PATH)
    if other:
        sp.receive_update("T", announce(attrs("10.0.0.4", path=(65003,)), *PREFIXES[::2]), 0)
    return sp, ctxs


def _held(sp: Speaker, ctxs: dict[str, Negotiated]) -> dict[str, dict[Nlri, AttrSet]]:
    """What each peer holds now (its full table, as a route refresh would send it)."""
    held: dict[str, dict[Nlri, AttrSet]] = {}
    for key, ctx in ctxs.items():
        held[key] = {}
        _apply(held[key], sp.refresh_out(key, IPV4_UNICAST).get(key, []), ctx)
    return held


def _apply(table: dict[Nlri, AttrSet], msgs: Sequence[bytes], ctx: Negotiated) -> int:
    """What a receiver holds after these UPDATEs; returns the number of UPDATEs."""
    for msg in msgs:
        update = decode_message(msg[18], msg[19:], ctx)
        assert isinstance(update, Update)
        for _fam, nlris in update.withdrawals():
            for n in nlris:
                table.pop(n, None)
        for _fam, a, nlris in update.announced():
            for n in nlris:
                table[n] = a
    return len(msgs)


def _state(sp: Speaker) -> object:
    return sp.routes(), sp.peers_summary()


_update = st.one_of(
    st.builds(lambda a, ps: announce(ATTRS[a], *ps), st.integers(0, len(ATTRS) - 1),
              st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=4, unique=True)),
    st.builds(lambda ps: withdraw(*ps),
              st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=4, unique=True)),
    # RFC 7606 treat-as-withdraw: its NLRI are withdrawn, whatever the attributes
    st.builds(lambda a, ps: Update(attrs=ATTRS[a], nlri=tuple(Nlri(pfx(p)) for p in ps),
                                   treat_as_withdraw=TAW),
              st.integers(0, len(ATTRS) - 1),
              st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=4, unique=True)),
    # withdrawals and announcements in one UPDATE (withdrawals apply first)
    st.builds(lambda a, w, ps: Update(withdrawn=tuple(Nlri(pfx(p)) for p in w), attrs=ATTRS[a],
                                      nlri=tuple(Nlri(pfx(p)) for p in ps)),
              st.integers(0, len(ATTRS) - 1),
              st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=3, unique=True),
              st.lists(st.sampled_from(PREFIXES), min_size=1, max_size=3, unique=True)),
)


@settings(max_examples=150, deadline=None)
@given(st.lists(_update, min_size=1, max_size=12), st.lists(st.integers(1, 5), max_size=12),
       st.booleans())
def test_batches_leave_what_one_by_one_leaves(
    updates: list[Update], cuts: list[int], addpath: bool
) -> None:
    one, ctxs = _speaker(addpath, other=True)
    batched, _ = _speaker(addpath, other=True)
    # S too: it holds T's route for a prefix until its own one wins
    held_one, held_batched = _held(one, ctxs), _held(batched, ctxs)
    for u in updates:
        out = one.receive_update("S", u, 1.0)
        for key in held_one:
            _apply(held_one[key], out.get(key, []), ctxs[key])
    i, sizes = 0, iter(cuts)
    while i < len(updates):  # the same UPDATEs, in batches of random sizes
        n = next(sizes, len(updates))
        out = batched.receive_updates("S", updates[i:i + n], 1.0)
        for key in held_batched:
            _apply(held_batched[key], out.get(key, []), ctxs[key])
        i += n
    assert _state(batched) == _state(one)
    assert held_batched == held_one == _held(batched, ctxs)  # and that is the full table


def test_announce_then_withdraw_in_one_batch_sends_nothing() -> None:
    sp, _ = _speaker(False)
    out = sp.receive_updates("S", [announce(ATTRS[0], *PREFIXES[:3]), withdraw(*PREFIXES[:3])],
                             1.0)
    assert not any(out.values())
    assert sp.routes() == []
    # and the other way round: withdrawn, then announced again -> one announcement
    sp.receive_update("S", announce(ATTRS[0], PREFIXES[0]), 1.0)
    out = sp.receive_updates("S", [withdraw(PREFIXES[0]), announce(ATTRS[1], PREFIXES[0])], 2.0)
    table: dict[Nlri, AttrSet] = {}
    assert _apply(table, out["E"], session(EBGP)) == 1
    assert list(table) == [Nlri(pfx(PREFIXES[0]))]


def test_end_of_rib_and_counters_per_update_in_a_batch() -> None:
    sp, _ = _speaker(False)
    sp.receive_updates("S", [announce(ATTRS[0], PREFIXES[0]), Update()], 1.0)
    (row,) = [r for r in sp.peers_summary() if r["key"] == "S"]
    assert row["updates_received"] == 2
    assert row["end_of_rib_received"] == ["ipv4-unicast"]


def test_a_batch_of_small_updates_leaves_packed() -> None:
    """BIRD-sized UPDATEs (~265 /32s, ~1.3 kB) in one read leave as full 4096-octet ones."""
    sp, ctxs = _speaker(False)
    first = int(ipaddress.IPv4Address("10.8.0.0"))
    nlri = [Nlri(Prefix(1, 32, first + i)) for i in range(8 * 265)]
    updates = [Update(attrs=ATTRS[0], nlri=tuple(nlri[i:i + 265]))
               for i in range(0, len(nlri), 265)]
    out = sp.receive_updates("S", updates, 1.0)
    for key in ("I", "E"):
        table: dict[Nlri, AttrSet] = {}
        count = _apply(table, out[key], ctxs[key])
        assert set(table) == set(nlri)
        assert count <= 3  # 2120 /32s: 5 octets each, ~800 per 4096-octet UPDATE
        assert all(len(m) > 3000 for m in out[key][:-1])


def test_receive_update_is_a_batch_of_one() -> None:
    sp, _ = _speaker(False)
    info: PeerInfo = SRC
    out = sp.receive_update(info.key, announce(ATTRS[0], PREFIXES[0]), 1.0)
    assert set(out) == {"I", "E"}


def test_best_changes_are_reported_once_per_batch_as_they_ended() -> None:
    """`on_best_change`: one call per family and batch; a prefix that moved twice in the
    batch is reported once, with its selection at the end of the batch."""
    sp, _ = _speaker(False)
    calls: list[list[tuple[Prefix, object]]] = []
    sp.on_best_change = lambda fam, changes: calls.append(
        [(p, None if s is None else s.best.attrs) for p, s in changes])
    sp.receive_updates("S", [announce(ATTRS[0], *PREFIXES[:2]), announce(ATTRS[1], PREFIXES[0]),
                             announce(ATTRS[0], PREFIXES[2]), withdraw(PREFIXES[2])], 1.0)
    assert calls == [[(pfx(PREFIXES[0]), ATTRS[1]), (pfx(PREFIXES[1]), ATTRS[0]),
                      (pfx(PREFIXES[2]), None)]]
    calls.clear()
    sp.receive_updates("S", [announce(ATTRS[0], PREFIXES[1])], 2.0)  # identical: no change
    assert calls == []
    sp.receive_updates("S", [withdraw(*PREFIXES[:2])], 3.0)
    assert calls == [[(pfx(PREFIXES[0]), None), (pfx(PREFIXES[1]), None)]]


def test_received_attributes_are_kept_with_the_accepted_path() -> None:
    """The pre-policy view (soft reconfiguration inbound) of an accepted path is the
    attribute set as received, even where import changed it (RFC 4271 §5.1.5: an eBGP
    LOCAL_PREF is ignored)."""
    sp, _ = _speaker(False)
    sp.receive_update("S", announce(ATTRS[2], PREFIXES[0]), 1.0)  # LOCAL_PREF 300 from eBGP
    adj_in = sp._peers["S"].adj_in
    assert list(adj_in.received(IPV4_UNICAST)) == [(Nlri(pfx(PREFIXES[0])), ATTRS[2])]
    (path,) = adj_in.accepted(IPV4_UNICAST)
    assert path.received is ATTRS[2] and path.attrs.local_pref is None
    assert adj_in.counts(IPV4_UNICAST) == (1, 1)
