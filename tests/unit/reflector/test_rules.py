"""RFC 4456 reflection rules; each test quotes the sentence it checks."""

from __future__ import annotations

import pytest

from bgp.rib.path import DropReason, PeerInfo
from reflector.rules import ReflectionRules
from tests.unit.rib.helpers import attrs, peer, rid

RR_ID = rid("10.0.0.1")
CLIENT = peer("client", "10.0.1.1", rr_client=True)
CLIENT2 = peer("client2", "10.0.1.2", rr_client=True)
NONCLIENT = peer("nonclient", "10.0.2.1")
NONCLIENT2 = peer("nonclient2", "10.0.2.2")
EBGP = peer("ebgp", "192.0.2.1", asn=65001)
EBGP2 = peer("ebgp2", "192.0.2.2", asn=65002)

# (source, target) -> reflected with client_to_client on / off
MATRIX: list[tuple[PeerInfo, PeerInfo, bool, bool]] = [
    (CLIENT, CLIENT2, True, False),
    (CLIENT, NONCLIENT, True, True),
    (CLIENT, EBGP, True, True),
    (NONCLIENT, CLIENT, True, True),
    (NONCLIENT, NONCLIENT2, False, False),
    (NONCLIENT, EBGP, True, True),
    (EBGP, CLIENT, True, True),
    (EBGP, NONCLIENT, True, True),
    (EBGP, EBGP2, True, True),
]


@pytest.mark.parametrize(("source", "target", "c2c_on", "c2c_off"), MATRIX,
                         ids=[f"{s.key}->{t.key}" for s, t, _, _ in MATRIX])
def test_reflection_matrix(source: PeerInfo, target: PeerInfo, c2c_on: bool, c2c_off: bool) -> None:
    """RFC 4456 §6: "1) A route from a Non-Client IBGP peer: Reflect to all the Clients.
    2) A route from a Client peer: Reflect to all the Non-Client peers and also to the
    Client peers. ... 3) Route from an EBGP peer: Send to all the Client and Non-Client
    Peers." Non-client to non-client stays forbidden (RFC 4271 §9.2)."""
    on = ReflectionRules(RR_ID, client_to_client=True)
    off = ReflectionRules(RR_ID, client_to_client=False)
    assert (on.may_advertise(source, target) is None) is c2c_on
    assert (off.may_advertise(source, target) is None) is c2c_off


def test_client_to_client_off_reason() -> None:
    """RFC 4456 §6: "(Hence the Client peers are not required to be fully meshed.)" — when
    they are, client-to-client reflection is switched off and the route is not reflected."""
    off = ReflectionRules(RR_ID, client_to_client=False)
    assert off.may_advertise(CLIENT, CLIENT2) is DropReason.NOT_REFLECTED
    assert off.may_advertise(NONCLIENT, NONCLIENT2) is DropReason.IBGP_SPLIT_HORIZON


def test_local_routes_go_everywhere() -> None:
    """RFC 4271 §9.2: locally originated routes go to all peers, reflector or not."""
    rules = ReflectionRules(RR_ID)
    for target in (CLIENT, NONCLIENT, EBGP):
        assert rules.may_advertise(None, target) is None


def test_originator_id_set_when_absent() -> None:
    """RFC 4456 §8: "This attribute will carry the BGP Identifier of the originator of the
    route in the local AS." and "When an RR reflects a route, it MUST prepend the local
    CLUSTER_ID to the CLUSTER_LIST. If the CLUSTER_LIST is empty, it MUST create a new
    one." """
    rules = ReflectionRules(RR_ID, rid("1.1.1.1"))
    a = attrs("10.0.1.1", local_pref=100, med=5, path=[65009])
    out = rules.egress_attrs(a, CLIENT, NONCLIENT)
    assert out.originator_id == CLIENT.router_id
    assert out.cluster_list == (rid("1.1.1.1"),)


def test_existing_originator_kept_and_cluster_prepended() -> None:
    """RFC 4456 §8: "A BGP speaker SHOULD NOT create an ORIGINATOR_ID attribute if one
    already exists." and "it MUST prepend the local CLUSTER_ID to the CLUSTER_LIST"."""
    rules = ReflectionRules(RR_ID, rid("1.1.1.1"))
    a = attrs(originator_id=rid("9.9.9.9"), cluster_list=(rid("2.2.2.2"),))
    out = rules.egress_attrs(a, NONCLIENT, CLIENT)
    assert out.originator_id == rid("9.9.9.9")
    assert out.cluster_list == (rid("1.1.1.1"), rid("2.2.2.2"))


def test_reflected_attributes_otherwise_untouched() -> None:
    """RFC 4456 §10: "when a RR reflects a route, it SHOULD NOT modify the following path
    attributes: NEXT_HOP, AS_PATH, LOCAL_PREF, and MED." """
    rules = ReflectionRules(RR_ID)
    a = attrs("10.0.1.1", local_pref=150, med=5, path=[65009])
    out = rules.egress_attrs(a, CLIENT, CLIENT2)
    assert out.replace(originator_id=None, cluster_list=()) is a


def test_no_rewrite_when_not_reflecting() -> None:
    """RFC 4456 §8: ORIGINATOR_ID "will be created by an RR in reflecting a route" — not
    when the route came from eBGP or is sent to eBGP."""
    rules = ReflectionRules(RR_ID)
    a = attrs()
    assert rules.egress_attrs(a, EBGP, CLIENT) is a
    assert rules.egress_attrs(a, CLIENT, EBGP) is a
    assert rules.egress_attrs(a, None, CLIENT) is a


def test_cluster_id_defaults_to_router_id() -> None:
    """RFC 4456 §7: "Usually, a cluster of clients will have a single RR. In that case,
    the cluster will be identified by the BGP Identifier of the RR." """
    assert ReflectionRules(RR_ID).cluster_id == RR_ID


def test_originator_loop() -> None:
    """RFC 4456 §8: "A router that recognizes the ORIGINATOR_ID attribute SHOULD ignore a
    route received with its BGP Identifier as the ORIGINATOR_ID." """
    rules = ReflectionRules(RR_ID)
    assert rules.ingress(attrs(originator_id=RR_ID), CLIENT) is DropReason.ORIGINATOR_LOOP
    assert rules.ingress(attrs(originator_id=rid("9.9.9.9")), CLIENT) is None


def test_cluster_loop() -> None:
    """RFC 4456 §8: "If the local CLUSTER_ID is found in the CLUSTER_LIST, the
    advertisement received SHOULD be ignored." """
    rules = ReflectionRules(RR_ID, rid("1.1.1.1"))
    looped = attrs(cluster_list=(rid("3.3.3.3"), rid("1.1.1.1")))
    assert rules.ingress(looped, NONCLIENT) is DropReason.CLUSTER_LOOP
    assert rules.ingress(attrs(cluster_list=(rid("3.3.3.3"),)), NONCLIENT) is None
