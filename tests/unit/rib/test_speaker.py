"""Speaker scenarios with fake peers and a recording encoder."""

from __future__ import annotations

import ipaddress

import pytest

from bgp.errors import LocalUsageError
from bgp.policy import ACCEPT_ALL, Match, Policy, PrefixMatch, SetLocalPref, Term
from bgp.rib.decision import Selection
from bgp.rib.path import NextHopMode, PeerInfo
from bgp.speaker import PeerConfigForSpeaker, Speaker, SpeakerConfig
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Family, Origin
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.prefix import Nlri, Prefix
from reflector.rules import ReflectionRules
from tests.unit.rib.helpers import (
    LOCAL_AS,
    FakeEncoder,
    announce,
    attrs,
    ip,
    peer,
    pfx,
    rid,
    session,
    withdraw,
)

BLOCK_A = "172.17.8.0/24"


def make_speaker(
    address: str,
    *,
    rules: ReflectionRules | None = None,
    families: frozenset[Family] = frozenset({IPV4_UNICAST}),
    on_best_change: object = None,
) -> tuple[Speaker, FakeEncoder]:
    enc = FakeEncoder()
    cfg = SpeakerConfig(
        local_asn=LOCAL_AS,
        router_id=rid(address),
        ipv4_address=ipaddress.IPv4Address(address),
        ipv6_address=ipaddress.IPv6Address("fd00::1"),
        families=families,
    )
    sp = Speaker(cfg, rules=rules, encoder=enc, on_best_change=on_best_change)  # type: ignore[arg-type]
    return sp, enc


def up(
    sp: Speaker,
    info: PeerInfo,
    *,
    export: Policy | None = None,
    imp: Policy | None = None,
    addpath: bool = False,
    families: tuple[Family, ...] = (IPV4_UNICAST,),
) -> list[bytes]:
    sp.add_peer(PeerConfigForSpeaker(info, import_policy=imp, export_policy=export))
    return sp.peer_up(info.key, session(info, families, addpath=addpath), now=1.0)[info.key]


# --------------------------------------------------------------------------- iBGP mesh


def test_ibgp_mesh_origination_and_no_reflection() -> None:
    a, enc_a = make_speaker("10.0.0.1")
    pb = peer("B", "10.0.0.2")
    pc = peer("C", "10.0.0.3")
    up(a, pb)
    up(a, pc)
    out = a.originate(pfx(BLOCK_A))
    for key in ("B", "C"):
        (msg,) = enc_a.decode(out[key])
        assert msg.kind == "announce" and msg.nlri == (Nlri(pfx(BLOCK_A)),)
        assert msg.attrs is not None
        assert msg.attrs.next_hop == ip("10.0.0.1")
        assert msg.attrs.local_pref == 100  # RFC 4271 §5.1.5: always sent to iBGP
        assert msg.attrs.as_path == AsPath() and msg.attrs.origin == Origin.IGP
    learned = enc_a.decode(out["B"])[0].attrs
    assert learned is not None

    # B learns it from A with A's next hop and does not pass it on to C.
    b, _ = make_speaker("10.0.0.2")
    up(b, peer("A", "10.0.0.1"))
    up(b, peer("C", "10.0.0.3"))
    out_b = b.receive_update("A", announce(learned, BLOCK_A), now=2.0)
    assert out_b == {}
    (route,) = b.routes(prefix=pfx(BLOCK_A))
    assert route["paths"][0]["next_hop"] == "10.0.0.1"
    assert route["paths"][0]["best"] is True


def test_end_of_rib_sent_at_peer_up_even_with_empty_table() -> None:
    sp, enc = make_speaker("10.0.0.1", families=frozenset({IPV4_UNICAST, IPV6_UNICAST}))
    msgs = up(sp, peer("B", "10.0.0.2"), families=(IPV4_UNICAST, IPV6_UNICAST))
    assert enc.eors(msgs) == [IPV4_UNICAST, IPV6_UNICAST]
    assert len(msgs) == 2


def test_peer_up_sends_full_table_then_end_of_rib() -> None:
    sp, enc = make_speaker("10.0.0.1")
    sp.originate(pfx(BLOCK_A))
    sp.originate(pfx("172.17.9.0/24"))
    msgs = up(sp, peer("B", "10.0.0.2"))
    decoded = enc.decode(msgs)
    assert decoded[-1].kind == "eor"
    assert set(enc.state(msgs[:-1])) == {Nlri(pfx(BLOCK_A)), Nlri(pfx("172.17.9.0/24"))}
    assert len(decoded) == 2  # one UPDATE for both prefixes (same attribute set) + EoR


def test_withdrawal_on_peer_down() -> None:
    sp, enc = make_speaker("10.0.0.1")
    e = peer("E", "192.0.2.9", asn=65009)
    up(sp, peer("A", "10.0.0.2"))
    up(sp, e, export=ACCEPT_ALL)
    out = sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), BLOCK_A), 1.0)
    assert enc.state(out["E"]) == {Nlri(pfx(BLOCK_A)): enc.decode(out["E"])[0].attrs}
    out = sp.peer_down("A", 2.0)
    (msg,) = enc.decode(out["E"])
    assert msg.kind == "withdraw" and msg.nlri == (Nlri(pfx(BLOCK_A)),)
    assert sp.routes() == []


def test_originate_and_withdraw_origin() -> None:
    sp, enc = make_speaker("10.0.0.1")
    up(sp, peer("B", "10.0.0.2"))
    sp.originate(pfx(BLOCK_A))
    out = sp.withdraw_origin(pfx(BLOCK_A))
    assert enc.state(out["B"]) == {Nlri(pfx(BLOCK_A)): None}
    assert sp.withdraw_origin(pfx(BLOCK_A)) == {}


# --------------------------------------------------------------------------- eBGP


def test_ebgp_prepend_next_hop_self_and_local_pref_stripped() -> None:
    sp, enc = make_speaker("10.0.0.1")
    up(sp, peer("A", "10.0.0.2"))
    up(sp, peer("E", "192.0.2.9", asn=65009), export=ACCEPT_ALL)
    learned = attrs("10.0.0.2", path=[65100], local_pref=300, med=20)
    out = sp.receive_update("A", announce(learned, BLOCK_A), 1.0)
    (msg,) = enc.decode(out["E"])
    assert msg.attrs is not None
    assert msg.attrs.as_path == AsPath.sequence(LOCAL_AS, 65100)  # §5.1.2
    assert msg.attrs.next_hop == ip("10.0.0.1")  # §5.1.3 next hop self
    assert msg.attrs.local_pref is None  # §5.1.5
    assert msg.attrs.med is None  # §5.1.4: learned MED not passed to another AS


def test_ebgp_next_hop_keep_and_local_med() -> None:
    sp, enc = make_speaker("10.0.0.1")
    up(sp, peer("A", "10.0.0.2"))
    e = peer("E", "192.0.2.9", asn=65009, next_hop=NextHopMode.KEEP)
    up(sp, e, export=ACCEPT_ALL)
    out = sp.receive_update("A", announce(attrs("10.0.0.2"), BLOCK_A), 1.0)
    assert enc.decode(out["E"])[0].attrs.next_hop == ip("10.0.0.2")  # type: ignore[union-attr]
    out = sp.originate(pfx("172.17.9.0/24"), AttrSet.make(med=5))
    sent = enc.decode(out["E"])[0].attrs
    assert sent is not None and sent.med == 5  # originated here: MED may go out


def test_ebgp_received_local_pref_is_ignored() -> None:
    sp, _ = make_speaker("10.0.0.1")
    up(sp, peer("E", "192.0.2.9", asn=65009), imp=ACCEPT_ALL)
    sp.receive_update("E", announce(attrs("192.0.2.9", path=[65009], local_pref=999), BLOCK_A), 1)
    (route,) = sp.routes()
    assert route["paths"][0]["local_pref"] is None


def test_rfc8212_ebgp_without_policy_rejects_both_ways() -> None:
    sp, _ = make_speaker("10.0.0.1")
    e = peer("E", "192.0.2.9", asn=65009)
    up(sp, e)
    out = sp.originate(pfx(BLOCK_A))
    assert "E" not in out
    sp.receive_update("E", announce(attrs("192.0.2.9", path=[65009]), "10.9.0.0/16"), 1.0)
    reasons = sp.route_reasons(pfx("10.9.0.0/16"))
    assert reasons["best"] is None
    assert reasons["rejected"] == [
        {"peer": "E", "path_id": 0, "reason": "eBGP peer without policy (RFC 8212)"}
    ]


def test_as_loop_rejected_unless_allowed() -> None:
    sp, _ = make_speaker("10.0.0.1")
    e1 = peer("E1", "192.0.2.1", asn=65001)
    e2 = peer("E2", "192.0.2.2", asn=65002, allow_local_as=1)
    up(sp, e1, imp=ACCEPT_ALL)
    up(sp, e2, imp=ACCEPT_ALL)
    looped = attrs("192.0.2.1", path=[65001, LOCAL_AS, 65005])
    sp.receive_update("E1", announce(looped, "10.1.0.0/16"), 1.0)
    assert sp.routes() == []
    assert sp.route_reasons(pfx("10.1.0.0/16"))["rejected"][0]["reason"] == "own AS in AS_PATH"
    sp.receive_update("E2", announce(looped.replace(next_hop=ip("192.0.2.2")), "10.1.0.0/16"), 1)
    assert len(sp.routes()) == 1
    twice = attrs("192.0.2.2", path=[65002, LOCAL_AS, LOCAL_AS])
    sp.receive_update("E2", announce(twice, "10.1.0.0/16"), 1.0)
    assert sp.routes() == []  # the new path loops twice: treated as a withdraw


def test_never_sent_back_to_source_and_ebgp_to_ebgp() -> None:
    sp, enc = make_speaker("10.0.0.1")
    e1 = peer("E1", "192.0.2.1", asn=65001)
    e2 = peer("E2", "192.0.2.2", asn=65002)
    up(sp, e1, imp=ACCEPT_ALL, export=ACCEPT_ALL)
    up(sp, e2, imp=ACCEPT_ALL, export=ACCEPT_ALL)
    out = sp.receive_update("E1", announce(attrs("192.0.2.1", path=[65001]), BLOCK_A), 1.0)
    assert "E1" not in out
    sent = enc.decode(out["E2"])[0].attrs
    assert sent is not None and sent.as_path == AsPath.sequence(LOCAL_AS, 65001)


# --------------------------------------------------------------------------- policy hooks


def test_import_policy_and_reapply_import() -> None:
    sp, _ = make_speaker("10.0.0.1")
    a = peer("A", "10.0.0.2")
    prefer = Policy((Term(Match(prefixes=(PrefixMatch.within("172.17.0.0/16"),)),
                          (SetLocalPref(250),)),))
    sp.add_peer(PeerConfigForSpeaker(a, import_policy=prefer))
    sp.peer_up("A", session(a), 0.0)
    sp.receive_update("A", announce(attrs("10.0.0.2"), BLOCK_A, "10.5.0.0/16"), 1.0)
    lp = {r["prefix"]: r["paths"][0]["local_pref"] for r in sp.routes()}
    assert lp == {BLOCK_A: 250, "10.5.0.0/16": None}
    assert sp.reapply_import("A") == {}  # unchanged policy: nothing moves


def test_refresh_out_resends_table() -> None:
    sp, enc = make_speaker("10.0.0.1")
    up(sp, peer("B", "10.0.0.2"))
    sp.originate(pfx(BLOCK_A))
    out = sp.refresh_out("B", IPV4_UNICAST)
    assert set(enc.state(out["B"])) == {Nlri(pfx(BLOCK_A))}


def test_best_change_callback_and_reasons() -> None:
    seen: list[tuple[Family, Prefix, Selection | None]] = []
    sp, _ = make_speaker("10.0.0.1",
                         on_best_change=lambda f, ch: seen.extend((f, p, s) for p, s in ch))
    up(sp, peer("A", "10.0.0.2"))
    up(sp, peer("C", "10.0.0.3"))
    sp.receive_update("A", announce(attrs("10.0.0.2", path=[65001], med=50), BLOCK_A), 1.0)
    sp.receive_update("C", announce(attrs("10.0.0.3", path=[65001], med=10), BLOCK_A), 1.0)
    assert [s.best.source_key for _, _, s in seen if s] == ["A", "C"]
    why = sp.route_reasons(pfx(BLOCK_A))
    assert why["best"] == "C" and why["reason"] == "med"
    assert why["losers"][0]["text"] == "C wins over A: lower MED"
    sp.receive_update("C", withdraw(BLOCK_A), 2.0)
    assert seen[-1][2] is not None and seen[-1][2].best.source_key == "A"


def test_unknown_peer_and_update_when_down() -> None:
    sp, _ = make_speaker("10.0.0.1")
    with pytest.raises(LocalUsageError):
        sp.receive_update("nope", withdraw(BLOCK_A), 0.0)
    sp.add_peer(PeerConfigForSpeaker(peer("A", "10.0.0.2")))
    with pytest.raises(LocalUsageError):
        sp.receive_update("A", withdraw(BLOCK_A), 0.0)
    assert sp.peer_down("A", 0.0) == {}


def test_peers_summary_is_plain_data() -> None:
    import json

    sp, _ = make_speaker("10.0.0.1")
    up(sp, peer("A", "10.0.0.2"))
    sp.add_peer(PeerConfigForSpeaker(peer("B", "10.0.0.3")))
    sp.receive_update("A", announce(attrs("10.0.0.2"), BLOCK_A), 1.0)
    rows = sp.peers_summary()
    json.dumps(rows)
    json.dumps(sp.routes())
    json.dumps(sp.route_reasons(pfx(BLOCK_A)))
    assert [r["state"] for r in rows] == ["established", "down"]
    assert rows[0]["families"]["ipv4-unicast"]["accepted"] == 1


# --------------------------------------------------------------------------- update groups


def test_update_group_shares_bytes_and_encodes_once() -> None:
    sp, enc = make_speaker("10.0.0.1")
    clients = [peer(f"C{i}", f"10.0.1.{i}") for i in range(1, 6)]
    for c in clients:
        up(sp, c)
    e = peer("E", "192.0.2.1", asn=65001)
    up(sp, e, imp=ACCEPT_ALL)
    calls = enc.calls
    out = sp.receive_update("E", announce(attrs("192.0.2.1", path=[65001]), BLOCK_A), 1.0)
    assert enc.calls == calls + 1  # one group, one encode
    first = out["C1"]
    for c in clients[1:]:
        assert len(out[c.key]) == len(first)
        assert all(x is y for x, y in zip(out[c.key], first, strict=True))


def test_update_group_split_horizon_with_reflection() -> None:
    rules = ReflectionRules(rid("10.0.0.1"))
    sp, enc = make_speaker("10.0.0.1", rules=rules)
    a, b, c = (peer(k, f"10.0.1.{i}", rr_client=True) for i, k in enumerate("ABC", 1))
    for p in (a, b, c):
        up(sp, p)
    calls = enc.calls
    out = sp.receive_update("A", announce(attrs("10.0.1.1"), BLOCK_A), 1.0)
    assert "A" not in out  # never back to its source
    assert out["B"][0] is out["C"][0]
    assert enc.calls == calls + 1
    reflected = enc.decode(out["B"])[0].attrs
    assert reflected is not None and reflected.originator_id == rid("10.0.1.1")

    # B now announces a better path: A and C get it (same bytes); B, which held A's
    # path, gets a withdrawal of it instead.
    better = attrs("10.0.1.2", local_pref=200)
    out = sp.receive_update("B", announce(better, BLOCK_A), 2.0)
    assert out["A"][0] is out["C"][0]
    assert enc.decode(out["A"])[0].attrs.next_hop == ip("10.0.1.2")  # type: ignore[union-attr]
    (msg,) = enc.decode(out["B"])
    assert msg.kind == "withdraw" and msg.nlri == (Nlri(pfx(BLOCK_A)),)

    # A late joiner of the same group gets the current table.
    d = peer("D", "10.0.1.4", rr_client=True)
    msgs = up(sp, d)
    assert enc.state(msgs[:-1])[Nlri(pfx(BLOCK_A))].next_hop == ip("10.0.1.2")  # type: ignore[union-attr]
    # B withdraws: everyone falls back to A's path, A itself gets a withdrawal.
    out = sp.receive_update("B", withdraw(BLOCK_A), 3.0)
    assert enc.state(out["A"]) == {Nlri(pfx(BLOCK_A)): None}
    assert out["C"][0] is out["D"][0]
    assert enc.decode(out["B"])[0].attrs.next_hop == ip("10.0.1.1")  # type: ignore[union-attr]


def test_groups_split_by_export_policy_and_role() -> None:
    sp, enc = make_speaker("10.0.0.1")
    other = Policy(name="other")
    up(sp, peer("B", "10.0.0.2"))
    up(sp, peer("C", "10.0.0.3"), export=other)
    up(sp, peer("D", "10.0.0.4"))
    calls = enc.calls
    out = sp.originate(pfx(BLOCK_A))
    assert enc.calls == calls + 2
    assert out["B"][0] is out["D"][0] and out["B"][0] is not out["C"][0]


# --------------------------------------------------------------------------- ADD-PATH


def test_addpath_receive_keeps_several_paths_per_prefix() -> None:
    sp, _ = make_speaker("10.0.0.1")
    rr = peer("RR", "10.0.0.9")
    up(sp, rr, addpath=True)
    sp.receive_update("RR", announce(attrs("10.0.1.1"), BLOCK_A, path_id=1), 1.0)
    sp.receive_update("RR", announce(attrs("10.0.1.2"), BLOCK_A, path_id=2), 1.0)
    (route,) = sp.routes()
    assert {p["next_hop"] for p in route["paths"]} == {"10.0.1.1", "10.0.1.2"}
    assert all(p["multipath"] for p in route["paths"])  # ECMP: equal through IGP cost
    sp.receive_update("RR", withdraw(BLOCK_A, path_id=1), 2.0)
    (route,) = sp.routes()
    assert [p["next_hop"] for p in route["paths"]] == ["10.0.1.2"]


def test_addpath_send_advertises_all_paths_with_stable_ids() -> None:
    rules = ReflectionRules(rid("10.0.0.1"))
    sp, enc = make_speaker("10.0.0.1", rules=rules)
    a, b = peer("A", "10.0.1.1", rr_client=True), peer("B", "10.0.1.2", rr_client=True)
    c = peer("C", "10.0.1.3", rr_client=True)
    for p in (a, b, c):
        up(sp, p, addpath=True)
    out1 = sp.receive_update("A", announce(attrs("10.0.1.1"), BLOCK_A), 1.0)
    out2 = sp.receive_update("B", announce(attrs("10.0.1.2"), BLOCK_A), 1.0)
    ids_c = {**enc.state(out1["C"]), **enc.state(out2["C"])}
    assert sorted(n.path_id for n in ids_c) == [1, 2]
    assert {v.next_hop for v in ids_c.values() if v} == {ip("10.0.1.1"), ip("10.0.1.2")}
    # A gets B's path only (not its own), under B's id.
    assert [n.path_id for n in enc.state(out2["A"])] == [2]
    # Withdrawing A's path withdraws exactly that path id from C; B keeps its id.
    out3 = sp.receive_update("A", withdraw(BLOCK_A), 2.0)
    assert enc.state(out3["C"]) == {Nlri(pfx(BLOCK_A), 1): None}
    assert enc.state(out3["B"]) == {Nlri(pfx(BLOCK_A), 1): None}
    assert "A" not in out3


def test_cluster_loop_is_treated_as_withdraw_of_that_path() -> None:
    """RFC 4456 §8 loop: the peer's earlier path for the prefix must not linger."""
    rules = ReflectionRules(rid("10.0.0.1"), rid("1.1.1.1"))
    sp, _ = make_speaker("10.0.0.1", rules=rules)
    up(sp, peer("N", "10.0.2.1"))
    sp.receive_update("N", announce(attrs("10.0.2.1"), BLOCK_A), 1.0)
    assert len(sp.routes()) == 1
    looped = attrs("10.0.2.1", cluster_list=(rid("1.1.1.1"),))
    sp.receive_update("N", announce(looped, BLOCK_A), 2.0)
    assert sp.routes() == []
    assert sp.route_reasons(pfx(BLOCK_A))["rejected"][0]["reason"] == (
        "our CLUSTER_ID in CLUSTER_LIST"
    )


def test_reflector_sends_to_non_client_with_originator_and_cluster() -> None:
    rules = ReflectionRules(rid("10.0.0.1"))
    sp, enc = make_speaker("10.0.0.1", rules=rules)
    up(sp, peer("C", "10.0.1.1", rr_client=True))
    up(sp, peer("N", "10.0.2.1"))
    out = sp.receive_update("C", announce(attrs("10.0.1.1", local_pref=100), BLOCK_A), 1.0)
    sent = enc.decode(out["N"])[0].attrs
    assert sent is not None
    assert sent.next_hop == ip("10.0.1.1")  # next hop kept on reflection
    assert sent.originator_id == rid("10.0.1.1") and sent.cluster_list == (rid("10.0.0.1"),)
    out = sp.receive_update("N", announce(attrs("10.0.2.1", local_pref=100), "10.9.0.0/16"), 1)
    assert set(out) == {"C"}  # non-client routes go to clients only
