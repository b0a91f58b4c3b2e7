"""Policy language: matches, actions, evaluation order, RFC 8212 defaults."""

from __future__ import annotations

from bgp.policy import (
    ACCEPT,
    ACCEPT_ALL,
    RFC8212_REJECT,
    AddCommunity,
    AddLargeCommunity,
    Match,
    PeerType,
    Policy,
    PrefixMatch,
    PrependOwnAs,
    Reject,
    Rejected,
    SetLocalPref,
    SetMed,
    Term,
    apply,
    effective_policy,
)
from bgp.wire.attributes import AttrSet, LargeCommunity, parse_community
from tests.unit.rib.helpers import LOCAL_AS, attrs, path, peer

IBGP = peer("i", "10.0.0.2")
EBGP = peer("e", "192.0.2.1", asn=65001)


def run(policy: Policy, prefix: str, a: AttrSet | None = None, who: object = IBGP) -> object:
    return apply(policy, path(prefix, a or attrs(), IBGP), who)  # type: ignore[arg-type]


def only(match: Match) -> Policy:
    return Policy((Term(match, (ACCEPT,)),), default=Reject())


def test_exact_prefix_match() -> None:
    pol = only(Match(prefixes=(PrefixMatch.parse("10.0.0.0/24"),)))
    assert isinstance(run(pol, "10.0.0.0/24"), AttrSet)
    assert isinstance(run(pol, "10.0.0.0/25"), Rejected)


def test_prefix_within_with_length_range() -> None:
    pol = only(Match(prefixes=(PrefixMatch.parse("172.16.0.0/12", ge=24, le=26),)))
    assert isinstance(run(pol, "172.17.8.0/24"), AttrSet)
    assert isinstance(run(pol, "172.17.8.64/26"), AttrSet)
    assert isinstance(run(pol, "172.17.8.1/32"), Rejected)
    assert isinstance(run(pol, "172.16.0.0/12"), Rejected)
    assert isinstance(run(pol, "10.0.0.0/24"), Rejected)
    within = only(Match(prefixes=(PrefixMatch.within("172.16.0.0/12"),)))
    assert isinstance(run(within, "172.16.0.0/12"), AttrSet)
    assert isinstance(run(within, "172.31.255.255/32"), AttrSet)


def test_negated_prefix_match() -> None:
    pol = only(Match(prefixes=(PrefixMatch.within("10.0.0.0/8"),), negate_prefixes=True))
    assert isinstance(run(pol, "10.1.0.0/16"), Rejected)
    assert isinstance(run(pol, "192.168.0.0/16"), AttrSet)


def test_peer_type_match() -> None:
    pol = only(Match(peer_type=PeerType.EBGP))
    assert isinstance(run(pol, "10.0.0.0/8", who=EBGP), AttrSet)
    assert isinstance(run(pol, "10.0.0.0/8", who=IBGP), Rejected)


def test_community_and_large_community_match() -> None:
    c = parse_community("65000:100")
    lc = LargeCommunity(65000, 1, 2)
    pol_c = only(Match(community=c))
    pol_lc = only(Match(large_community=lc))
    assert isinstance(run(pol_c, "10.0.0.0/8", attrs(communities=(c,))), AttrSet)
    assert isinstance(run(pol_c, "10.0.0.0/8"), Rejected)
    assert isinstance(run(pol_lc, "10.0.0.0/8", attrs(large_communities=(lc,))), AttrSet)
    assert isinstance(run(pol_lc, "10.0.0.0/8"), Rejected)


def test_as_path_prefix_match() -> None:
    pol = only(Match(as_path_prefix=(65001, 65002)))
    assert isinstance(run(pol, "10.0.0.0/8", attrs(path=[65001, 65002, 65003])), AttrSet)
    assert isinstance(run(pol, "10.0.0.0/8", attrs(path=[65002, 65001])), Rejected)
    assert isinstance(run(pol, "10.0.0.0/8", attrs(path=[65001])), Rejected)


def test_actions_modify_attributes() -> None:
    c = parse_community("65000:7")
    lc = LargeCommunity(1, 2, 3)
    pol = Policy(
        (Term(Match(), (SetLocalPref(300), SetMed(9), AddCommunity(c), AddLargeCommunity(lc),
                        PrependOwnAs(2), ACCEPT)),),
        default=Reject(),
    )
    res = run(pol, "10.0.0.0/8", attrs(path=[65001]))
    assert isinstance(res, AttrSet)
    assert res.local_pref == 300 and res.med == 9
    assert res.communities == (c,) and res.large_communities == (lc,)
    assert res.as_path.asns() == (LOCAL_AS, LOCAL_AS, 65001)
    assert res is AttrSet.make(**{f: getattr(res, f) for f in (
        "next_hop", "as_path", "local_pref", "med", "communities", "large_communities")})


def test_terms_in_order_fall_through_and_default() -> None:
    pol = Policy(
        (
            Term(Match(prefixes=(PrefixMatch.within("10.0.0.0/8"),)), (SetLocalPref(200),)),
            Term(Match(prefixes=(PrefixMatch.parse("10.1.0.0/16"),)), (Reject("no 10.1"),)),
            Term(Match(), (SetMed(5),)),
        ),
        default=ACCEPT,
    )
    res = run(pol, "10.2.0.0/16")
    assert isinstance(res, AttrSet) and res.local_pref == 200 and res.med == 5
    assert run(pol, "10.1.0.0/16") == Rejected("no 10.1")
    res = run(pol, "192.168.0.0/16")
    assert isinstance(res, AttrSet) and res.local_pref is None and res.med == 5


def test_reject_reason_names_the_term() -> None:
    pol = Policy((Term(Match(), (Reject(),), name="deny-all"),), name="calico-export")
    assert run(pol, "10.0.0.0/8") == Rejected("calico-export: deny-all")
    default = Policy(default=Reject(), name="p")
    assert run(default, "10.0.0.0/8") == Rejected("p: default reject")


def test_prefix_independence_is_detected() -> None:
    assert Policy((Term(Match(peer_type=PeerType.IBGP), (ACCEPT,)),)).prefix_independent
    assert not only(Match(prefixes=(PrefixMatch.parse("10.0.0.0/8"),))).prefix_independent


def test_rfc8212_defaults() -> None:
    """RFC 8212 §3: eBGP sessions without explicit policy accept and send nothing."""
    assert effective_policy(EBGP, None) is RFC8212_REJECT
    assert isinstance(run(RFC8212_REJECT, "10.0.0.0/8", who=EBGP), Rejected)
    assert effective_policy(IBGP, None) is ACCEPT_ALL
    assert effective_policy(EBGP, None, rfc8212=False) is ACCEPT_ALL
    explicit = Policy(name="mine")
    assert effective_policy(EBGP, explicit) is explicit
