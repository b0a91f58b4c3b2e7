"""The speaker with the real codec: what it sends decodes to the expected UPDATEs."""

from __future__ import annotations

import ipaddress

from bgp.policy import ACCEPT_ALL
from bgp.speaker import PeerConfigForSpeaker, Speaker, SpeakerConfig
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, AttrFlag
from bgp.wire.attributes import AsPath, UnknownAttribute
from bgp.wire.messages import decode_message
from bgp.wire.model import Negotiated, Update
from bgp.wire.prefix import Nlri
from tests.unit.rib.helpers import LOCAL_AS, announce, attrs, ip, peer, pfx, rid, session


def decode(data: list[bytes], ctx: Negotiated) -> list[Update]:
    out = []
    for msg in data:
        decoded = decode_message(msg[18], msg[19:], ctx)
        assert isinstance(decoded, Update)
        out.append(decoded)
    return out


def test_real_encoding_of_ebgp_export_and_end_of_rib() -> None:
    cfg = SpeakerConfig(
        local_asn=LOCAL_AS,
        router_id=rid("10.0.0.1"),
        ipv4_address=ipaddress.IPv4Address("10.0.0.1"),
        ipv6_address=ipaddress.IPv6Address("fd00::1"),
    )
    sp = Speaker(cfg)
    e = peer("E", "192.0.2.9", asn=65009)
    a = peer("A", "10.0.0.2")
    sp.add_peer(PeerConfigForSpeaker(e, export_policy=ACCEPT_ALL))
    sp.add_peer(PeerConfigForSpeaker(a))
    ctx_e = session(e, (IPV4_UNICAST, IPV6_UNICAST))
    msgs = sp.peer_up("E", ctx_e, 0.0)["E"]
    eors = [u.end_of_rib() for u in decode(msgs, ctx_e)]
    assert eors == [IPV4_UNICAST, IPV6_UNICAST]
    ctx_a = session(a, (IPV4_UNICAST,), addpath=True)
    sp.peer_up("A", ctx_a, 0.0)
    out = sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), "172.17.8.0/24"), 1)
    (update,) = decode(out["E"], ctx_e)
    ((fam, got, nlri),) = list(update.announced())
    assert fam == IPV4_UNICAST and nlri == (Nlri(pfx("172.17.8.0/24")),)
    assert got.next_hop == ip("10.0.0.1") and got.local_pref is None
    assert got.as_path == AsPath.sequence(LOCAL_AS)

    out = sp.originate(pfx("fd00:8::/64"))
    (u6,) = decode(out["E"], ctx_e)
    ((fam6, got6, nlri6),) = list(u6.announced())
    assert fam6 == IPV6_UNICAST and got6.next_hop == ip("fd00::1")
    assert nlri6 == (Nlri(pfx("fd00:8::/64")),)


def test_unknown_attributes_pass_on_with_partial_set_by_the_encoder() -> None:
    # RFC 4271 §5: an unrecognised optional transitive attribute goes on with Partial set
    # (the encoder sets it); an unrecognised non-transitive one is not passed along.
    cfg = SpeakerConfig(local_asn=LOCAL_AS, router_id=rid("10.0.0.1"),
                        ipv4_address=ipaddress.IPv4Address("10.0.0.1"))
    sp = Speaker(cfg)
    e, a = peer("E", "192.0.2.9", asn=65009), peer("A", "10.0.0.2")
    sp.add_peer(PeerConfigForSpeaker(e, export_policy=ACCEPT_ALL))
    sp.add_peer(PeerConfigForSpeaker(a))
    ctx_e = session(e)
    sp.peer_up("E", ctx_e, 0.0)
    sp.peer_up("A", session(a), 0.0)
    trans = UnknownAttribute(99, AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE, b"\x01")
    nontrans = UnknownAttribute(98, AttrFlag.OPTIONAL, b"\x02")
    a_attrs = attrs("10.0.0.2", local_pref=100).replace(unknown=(nontrans, trans))
    out = sp.receive_update("A", announce(a_attrs, "172.17.8.0/24"), 1)
    (update,) = decode(out["E"], ctx_e)
    assert update.attrs is not None
    assert update.attrs.unknown == (
        UnknownAttribute(99, AttrFlag.OPTIONAL | AttrFlag.TRANSITIVE | AttrFlag.PARTIAL, b"\x01"),
    )
