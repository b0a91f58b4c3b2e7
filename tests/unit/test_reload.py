"""Reload without flaps: the plan (`roost.reload`) and soft reconfiguration in the
speaker (`Speaker.set_policies`: import re-evaluated from the Adj-RIB-In, export diffed)."""

from __future__ import annotations

import ipaddress

from bgp.policy import ACCEPT_ALL, Match, Policy, PrefixMatch, Reject, Term
from bgp.speaker import Outbound, PeerConfigForSpeaker, Speaker, SpeakerConfig
from roost import config as cfg
from roost import reload as rl
from tests.unit.rib.helpers import FakeEncoder, announce, attrs, peer, session

BASE = """\
[router]
asn = 64512
id = "10.0.0.1"
prefixes = ["172.17.8.0/24"]

[policy.in]
default = "accept"

[[peer]]
address = "10.0.0.2"
asn = 64512
import = "in"

[[peer]]
address = "10.0.0.3"
asn = 64512

[[peer]]
address = "10.0.0.4"
asn = 64512
"""


def _plan(before: str, after: str) -> rl.ReloadPlan:
    return rl.plan(cfg.loads(before, "a.toml"), cfg.loads(after, "a.toml"))


def _keys(peers: tuple[cfg.PeerConfig, ...]) -> list[str]:
    return [str(p.address) for p in peers]


def test_same_file_changes_nothing() -> None:
    assert _plan(BASE, BASE).empty


def test_hold_time_resets_that_peer_only() -> None:
    after = BASE.replace('address = "10.0.0.3"\nasn = 64512\n',
                         'address = "10.0.0.3"\nasn = 64512\nhold_time = 30\n')
    plan = _plan(BASE, after)
    assert _keys(plan.peers_reset) == ["10.0.0.3"]
    assert not (plan.peers_added or plan.peers_removed or plan.peers_refreshed)
    old = cfg.loads(BASE).peers[1]
    assert rl.session_fields_changed(old, plan.peers_reset[0]) == ("hold_time",)


def test_policy_content_change_refreshes_its_users_without_reset() -> None:
    after = BASE.replace('[policy.in]\ndefault = "accept"', '[policy.in]\ndefault = "reject"')
    plan = _plan(BASE, after)
    assert _keys(plan.peers_refreshed) == ["10.0.0.2"]
    assert plan.changed_policies == {"in"}
    assert not plan.peers_reset


def test_policy_attached_and_description_are_soft() -> None:
    after = BASE.replace('address = "10.0.0.3"\nasn = 64512\n',
                         'address = "10.0.0.3"\nasn = 64512\nexport = "in"\n') \
                .replace('address = "10.0.0.4"\nasn = 64512\n',
                         'address = "10.0.0.4"\nasn = 64512\ndescription = "rack 4"\n')
    plan = _plan(BASE, after)
    assert _keys(plan.peers_refreshed) == ["10.0.0.3"]
    assert _keys(plan.peers_renamed) == ["10.0.0.4"]
    assert not plan.peers_reset


def test_peers_and_prefixes_added_and_removed() -> None:
    after = BASE.replace('prefixes = ["172.17.8.0/24"]', 'prefixes = ["172.17.9.0/24"]') \
                .replace('address = "10.0.0.4"', 'address = "10.0.0.5"')
    plan = _plan(BASE, after)
    assert _keys(plan.peers_added) == ["10.0.0.5"]
    assert plan.peers_removed == ("10.0.0.4",)
    assert [str(n) for n in plan.prefixes_added] == ["172.17.9.0/24"]
    assert [str(n) for n in plan.prefixes_removed] == ["172.17.8.0/24"]
    assert plan.summary()["peers_removed"] == ["10.0.0.4"]


def test_mesh_node_list_change_is_peers_added_and_removed() -> None:
    mesh = '[router]\nasn = 64512\nid = "10.0.0.1"\n\n[mesh]\nnodes = {}\n'
    plan = _plan(mesh.format('["10.0.0.1", "10.0.0.2", "10.0.0.3"]'),
                 mesh.format('["10.0.0.1", "10.0.0.2", "10.0.0.4"]'))
    assert _keys(plan.peers_added) == ["10.0.0.4"]
    assert plan.peers_removed == ("10.0.0.3",)
    assert not plan.peers_reset


def test_restart_only_settings_are_reported_and_kept() -> None:
    after = BASE.replace('id = "10.0.0.1"', 'id = "10.0.0.9"') + \
        '\n[kernel]\ntunnel = "always"\n\n[reflector]\ncluster_id = "1.1.1.1"\n'
    old, new = cfg.loads(BASE, "a.toml"), cfg.loads(after, "a.toml")
    plan = rl.plan(old, new)
    assert plan.needs_restart == ("router.id", "kernel", "reflector")
    running = rl.running_config(old, new)
    assert running.router.router_id == old.router.router_id
    assert running.kernel == old.kernel and running.reflector is None


def test_metrics_listener_change_needs_a_restart() -> None:
    # The endpoint's socket is bound at start; a reload must say so, not pretend.
    old = cfg.loads(BASE, "a.toml")
    new = cfg.loads(BASE + '\n[metrics]\nlisten = "127.0.0.1:9179"\n', "a.toml")
    assert rl.plan(old, new).needs_restart == ("metrics",)
    assert rl.running_config(old, new).metrics == old.metrics


# --------------------------------------------------------------------------- speaker

REJECT_2 = Policy((Term(Match(prefixes=(PrefixMatch.parse("172.16.2.0/24"),)),
                        (Reject("no 2"),)),), name="no-2")


def _routes(sp: Speaker) -> list[str]:
    return [r["prefix"] for r in sp.routes()]


def _sent(enc: FakeEncoder, out: Outbound, key: str) -> list[tuple[str, list[str]]]:
    msgs = [enc.messages[b] for b in out.get(key, [])]
    return [(m.kind, [str(n.prefix) for n in m.nlri]) for m in msgs]


def _speaker() -> tuple[Speaker, FakeEncoder]:
    enc = FakeEncoder()
    sp = Speaker(SpeakerConfig(64512, ipaddress.IPv4Address("10.0.0.1"),
                               ipaddress.IPv4Address("10.0.0.1")), encoder=enc)
    a = peer("A", "10.0.0.2", asn=65001)
    b = peer("B", "10.0.0.3", asn=65002)
    for info in (a, b):
        sp.add_peer(PeerConfigForSpeaker(info, ACCEPT_ALL, ACCEPT_ALL,
                                         addpath_send=False, addpath_receive=False))
        sp.peer_up(info.key, session(info), 0.0)
    sp.receive_update("A", announce(attrs("10.0.0.2", path=(65001,)),
                                    "172.16.1.0/24", "172.16.2.0/24"), 1.0)
    return sp, enc


def test_import_change_reevaluates_the_stored_routes() -> None:
    sp, enc = _speaker()
    out = sp.set_policies("A", REJECT_2, ACCEPT_ALL, 2.0)
    assert _routes(sp) == ["172.16.1.0/24"]
    assert _sent(enc, out, "B") == [("withdraw", ["172.16.2.0/24"])]
    assert "A" not in out  # nothing to send to the peer whose import changed
    # And back: the pre-policy copy still holds the route, no ROUTE-REFRESH needed.
    out = sp.set_policies("A", ACCEPT_ALL, ACCEPT_ALL, 3.0)
    assert _routes(sp) == ["172.16.1.0/24", "172.16.2.0/24"]
    assert _sent(enc, out, "B") == [("announce", ["172.16.2.0/24"])]


def test_export_change_sends_only_the_difference() -> None:
    sp, enc = _speaker()
    out = sp.set_policies("B", ACCEPT_ALL, REJECT_2, 2.0)
    assert _sent(enc, out, "B") == [("withdraw", ["172.16.2.0/24"])]
    assert _routes(sp) == ["172.16.1.0/24", "172.16.2.0/24"]  # the Loc-RIB is unchanged
    out = sp.set_policies("B", ACCEPT_ALL, REJECT_2, 3.0)
    assert out == {}  # same policy object: nothing to do
    out = sp.set_policies("B", ACCEPT_ALL, ACCEPT_ALL, 4.0)
    assert _sent(enc, out, "B") == [("announce", ["172.16.2.0/24"])]
    # Later UPDATEs follow the new policy: B is in a working update group.
    out = sp.receive_update("A", announce(attrs("10.0.0.2", path=(65001,)),
                                          "172.16.3.0/24"), 5.0)
    assert _sent(enc, out, "B") == [("announce", ["172.16.3.0/24"])]


def test_policies_of_a_peer_that_is_down_apply_at_its_next_session() -> None:
    sp, enc = _speaker()
    sp.peer_down("B", 2.0)
    assert sp.set_policies("B", ACCEPT_ALL, REJECT_2, 3.0) == {}
    info = peer("B", "10.0.0.3", asn=65002)
    out = sp.peer_up("B", session(info), 4.0)
    sent = _sent(enc, out, "B")
    assert ("announce", ["172.16.1.0/24"]) in sent
    assert all("172.16.2.0/24" not in nlri for _, nlri in sent)


def test_policy_reload_during_graceful_restart_keeps_stale_paths_stale() -> None:
    # A peer back from a graceful restart, End-of-RIB not yet received: a reload that
    # touches its import policy must not turn its stale paths fresh, or a route it never
    # announces again would survive the End-of-RIB sweep (RFC 4724 §4.2).
    from bgp.types import IPV4_UNICAST
    from tests.unit.rib.test_speaker import make_speaker

    sp, _ = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    sp.add_peer(PeerConfigForSpeaker(pa))
    sp.peer_up("A", session(pa), 1.0)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), "172.17.8.0/24"), 1.0)
    sp.peer_down("A", 2.0, retain={IPV4_UNICAST})
    sp.peer_up("A", session(pa), 3.0)
    sp.set_policies("A", ACCEPT_ALL, None, 4.0)
    assert [p["stale"] for r in sp.routes() for p in r["paths"]] == [True]
    sp.sweep_stale("A", IPV4_UNICAST)
    assert sp.routes() == []
