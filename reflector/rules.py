"""BGP route reflection, RFC 4456, in one place.

`ReflectionRules` implements `bgp.speaker.PropagationRules`. Each rule sits next to the
RFC sentence it implements. The matrix (§6), for a route learned over iBGP:

    learned from \\ sent to   client            non-client        eBGP
    -----------------------  ----------------  ----------------  -----
    client                   yes (c2c on)      yes               yes
    non-client               yes               no (RFC 4271)     yes
    eBGP / local             yes               yes               yes

The reflected route keeps its attributes (next hop included) except that ORIGINATOR_ID
is set when absent and our CLUSTER_ID is prepended to CLUSTER_LIST (§8). A received route
that carries our router id as ORIGINATOR_ID or our CLUSTER_ID in its CLUSTER_LIST is
treated as a withdraw of that path: §8 says "ignore", but ignoring the UPDATE would leave
the peer's previous path for that prefix in place (BIRD makes the same call).
"""

from __future__ import annotations

import ipaddress

from bgp.rib.path import DropReason, PeerInfo
from bgp.wire.attributes import AttrSet


class ReflectionRules:
    """RFC 4456 route reflector rules (also correct for a plain iBGP speaker that has no
    clients: then nothing is ever reflected)."""

    def __init__(
        self,
        router_id: ipaddress.IPv4Address,
        cluster_id: ipaddress.IPv4Address | None = None,
        *,
        client_to_client: bool = True,
    ) -> None:
        self.router_id = router_id
        # §7: "Usually, a cluster of clients will have a single RR.
        # In that case, the cluster will be identified by the BGP Identifier of the RR."
        self.cluster_id = router_id if cluster_id is None else cluster_id
        self.client_to_client = client_to_client

    # ---------------------------------------------------------------- ingress (§8)

    def ingress(self, attrs: AttrSet, source: PeerInfo) -> DropReason | None:
        # §8: "A router that recognizes the ORIGINATOR_ID attribute SHOULD ignore a route
        # received with its BGP Identifier as the ORIGINATOR_ID."
        if attrs.originator_id is not None and attrs.originator_id == self.router_id:
            return DropReason.ORIGINATOR_LOOP
        # §8: "If the local CLUSTER_ID is found in the CLUSTER_LIST, the advertisement
        # received SHOULD be ignored."
        if attrs.cluster_list and self.cluster_id in attrs.cluster_list:
            return DropReason.CLUSTER_LOOP
        return None

    # ---------------------------------------------------------------- matrix (§6)

    def may_advertise(self, source: PeerInfo | None, target: PeerInfo) -> DropReason | None:
        if source is None or not source.is_ibgp or not target.is_ibgp:
            # §6: "3) Route from an EBGP peer: Send to all the Client and Non-Client
            # Peers." Local routes likewise; anything sent to eBGP follows RFC 4271.
            return None
        if source.rr_client:
            # §6: "2) A route from a Client peer: Reflect to all the Non-Client peers and
            # also to the Client peers." When the clients are fully meshed among
            # themselves, client-to-client reflection is not needed and may be turned off
            # (BIRD, FRR `no bgp client-to-client reflection`).
            if target.rr_client and not self.client_to_client:
                return DropReason.NOT_REFLECTED
            return None
        # §6: "1) A route from a Non-Client IBGP peer: Reflect to all the Clients."
        if target.rr_client:
            return None
        # Non-client to non-client: the RFC 4271 §9.2 iBGP rule still holds.
        return DropReason.IBGP_SPLIT_HORIZON

    # ---------------------------------------------------------------- rewrite (§8)

    def egress_attrs(self, attrs: AttrSet, source: PeerInfo | None, target: PeerInfo) -> AttrSet:
        if source is None or not source.is_ibgp or not target.is_ibgp:
            return attrs  # not a reflection: nothing of RFC 4456 applies
        # §8: "ORIGINATOR_ID ... will be created by an RR in reflecting a route. This
        # attribute will carry the BGP Identifier of the originator of the route in the
        # local AS. A BGP speaker SHOULD NOT create an ORIGINATOR_ID attribute if one
        # already exists."
        originator = attrs.originator_id
        if originator is None:
            originator = source.router_id
        # §8: "When an RR reflects a route, it MUST prepend the local CLUSTER_ID to the
        # CLUSTER_LIST. If the CLUSTER_LIST is empty, it MUST create a new one."
        # §10: "when a RR reflects a route, it SHOULD NOT modify the following path
        # attributes: NEXT_HOP, AS_PATH, LOCAL_PREF, and MED." Nothing else changes.
        return attrs.replace(
            originator_id=originator, cluster_list=(self.cluster_id, *attrs.cluster_list)
        )
