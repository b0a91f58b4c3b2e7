"""ORIGINATOR_ID / CLUSTER_LIST received over eBGP (RFC 7606 §7.9, §7.10).

"If the ORIGINATOR_ID attribute is received from an external neighbor, it SHALL be
discarded using the approach of 'attribute discard'" — and the same sentence for
CLUSTER_LIST. They are meaningful only inside the AS: left in place they would trigger
our loop checks (a route wrongly dropped), take part in the decision (RFC 4456 §9), and be
passed on unchanged to our iBGP peers (an eBGP route sent to iBGP is not a reflection).
"""

from __future__ import annotations

import ipaddress

from bgp.policy import ACCEPT_ALL
from bgp.speaker import PeerConfigForSpeaker, Speaker, SpeakerConfig
from bgp.wire.prefix import Prefix
from reflector.rules import ReflectionRules
from tests.unit.rib.helpers import FakeEncoder, announce, attrs, peer, rid, session

RR = "10.0.0.1"
BLOCK = "172.17.8.0/24"


def _reflector() -> tuple[Speaker, FakeEncoder]:
    enc = FakeEncoder()
    cfg = SpeakerConfig(local_asn=64512, router_id=rid(RR),
                        ipv4_address=ipaddress.IPv4Address(RR))
    sp = Speaker(cfg, rules=ReflectionRules(rid(RR)), encoder=enc)
    for info, imp in ((peer("E", "192.0.2.9", asn=65009), ACCEPT_ALL),
                      (peer("C", "10.0.1.1", rr_client=True), None)):
        sp.add_peer(PeerConfigForSpeaker(info, import_policy=imp, export_policy=ACCEPT_ALL))
        sp.peer_up(info.key, session(info), now=1.0)
    return sp, enc


def test_ebgp_originator_and_cluster_list_are_discarded_not_passed_on() -> None:
    sp, enc = _reflector()
    bogus = attrs("192.0.2.9", path=[65009], originator_id=rid("10.9.9.9"),
                  cluster_list=(rid("10.9.9.8"),))
    out = sp.receive_update("E", announce(bogus, BLOCK), 1.0)
    (route,) = sp.routes()
    assert route["paths"][0]["originator_id"] is None
    assert route["paths"][0]["cluster_list"] == []
    sent = enc.decode(out["C"])[0].attrs
    assert sent is not None and sent.originator_id is None and sent.cluster_list == ()


def test_ebgp_route_carrying_our_ids_is_not_taken_for_a_loop() -> None:
    sp, _ = _reflector()
    ours = attrs("192.0.2.9", path=[65009], originator_id=rid(RR), cluster_list=(rid(RR),))
    sp.receive_update("E", announce(ours, BLOCK), 1.0)
    assert [r["prefix"] for r in sp.routes()] == [BLOCK]
    assert sp.route_reasons(Prefix.parse(BLOCK))["rejected"] == []
