"""Route reflection between roost and real daemons (RFC 4456 on the wire).

1. GoBGP is the reflector, three roost nodes are its clients: each roost node learns the
   other blocks with next hop = owner, ORIGINATOR_ID = owner, CLUSTER_LIST = [GoBGP's
   cluster]; `gobgp global rib -j` holds the blocks as the clients sent them.
2. roost is the reflector (cluster 1.1.1.1), with a GoBGP client, a BIRD client and a
   roost client: `gobgp global rib -j` and `birdc show route all` show the other clients'
   blocks with ORIGINATOR_ID = the originator's router id and CLUSTER_LIST = 1.1.1.1, next
   hop unchanged; the roost client sees the same; a withdrawal from one client leaves all.
"""

from __future__ import annotations

import pytest

from tests.harness.daemons import Bird, GoBgp, Neighbor, RouteView
from tests.harness.netns import Lab, wait_for
from tests.integration.roost_node import RoostNode
from tests.integration.test_reflector import (
    Want,
    converged,
    diag,
    node_config,
    reflector_config,
    wait_all,
)

pytestmark = [pytest.mark.needs_root, pytest.mark.interop]

ASN = 64512


def _reflected(v: RouteView, owner: str, cluster: str) -> bool:
    return (v.next_hop == owner and v.originator_id == owner
            and v.cluster_list == [cluster] and v.as_path == [] and v.local_pref == 100)


def test_gobgp_reflector_roost_clients(lab: Lab) -> None:
    if not GoBgp.available():
        pytest.skip("gobgpd not installed")
    rr_host = lab.host("rr", addr4="10.255.0.100/24")
    hosts = [lab.host(f"n{i}", addr4=f"10.255.0.{i}/24") for i in (1, 2, 3)]
    addrs = [h.addr4 or "" for h in hosts]
    cluster = "1.1.1.1"
    # GoBGP waits 5-9 s before its first connect: it is passive, the roost nodes connect.
    gobgp = GoBgp(rr_host, ASN, rr_host.addr4 or "",
                  [Neighbor(a, ASN, rr_client=True, passive=True) for a in addrs],
                  cluster_id=cluster)
    gobgp.start()
    nodes = [RoostNode(h, node_config(h, ASN, f"172.17.{i}.0/24", [rr_host.addr4 or ""]))
             for i, h in enumerate(hosts, start=1)]
    for n in nodes:
        n.start()
    for a in addrs:
        gobgp.wait_established(a, 20)

    def want_for(me: int) -> dict[str, Want]:
        return {f"172.17.{i}.0/24": Want(addrs[i - 1], addrs[i - 1], (cluster,))
                for i in (1, 2, 3) if i != me}

    wait_all(nodes, lambda n: converged(n, f"172.17.{nodes.index(n) + 1}.0/24",
                                        want_for(nodes.index(n) + 1)),
             20, "roost clients have each other's blocks through GoBGP")
    for i, n in enumerate(nodes, start=1):
        assert converged(n, f"172.17.{i}.0/24", want_for(i), cli=True), diag([n])
    # gobgp global rib -j: the clients' blocks as sent (no RFC 4456 attributes yet).
    rib = gobgp.rib()
    for i, a in enumerate(addrs, start=1):
        (v,) = rib[f"172.17.{i}.0/24"]
        assert v.next_hop == a and v.originator_id is None and v.cluster_list == [], v
        assert v.local_pref == 100 and v.as_path == []
    # What GoBGP sends to n1: the other two, with ORIGINATOR_ID and CLUSTER_LIST.
    out = gobgp.adj_out(addrs[0])
    assert set(out) == {"172.17.2.0/24", "172.17.3.0/24"}, out
    for i in (2, 3):
        (v,) = out[f"172.17.{i}.0/24"]
        assert v.originator_id == addrs[i - 1] and v.cluster_list == [cluster], v

    # A roost client leaves: GoBGP withdraws its block from the others.
    assert nodes[2].stop() == 0
    wait_all(nodes[:2], lambda n: "172.17.3.0/24" not in {r["prefix"] for r in n.show("routes")},
             10, "172.17.3.0/24 withdrawn from the roost clients")


def test_roost_reflector_gobgp_and_bird_clients(lab: Lab) -> None:
    if not (GoBgp.available() and Bird.available()):
        pytest.skip("gobgpd and bird needed")
    cluster = "1.1.1.1"
    rr_host = lab.host("rr", addr4="10.255.0.100/24")
    g_host = lab.host("gobgp", addr4="10.255.0.1/24")
    b_host = lab.host("bird", addr4="10.255.0.2/24")
    r_host = lab.host("roost", addr4="10.255.0.3/24")
    ga, ba, ra = g_host.addr4 or "", b_host.addr4 or "", r_host.addr4 or ""
    rr = RoostNode(rr_host, reflector_config(rr_host, ASN, [ga, ba, ra], cluster_id=cluster))
    gobgp = GoBgp(g_host, ASN, ga, [Neighbor(rr_host.addr4 or "", ASN, passive=True)],
                  originate=["172.17.1.0/24"])
    bird = Bird(b_host, ASN, ba, [Neighbor(rr_host.addr4 or "", ASN)],
                originate=["172.17.2.0/24"], waker=True)
    node = RoostNode(r_host, node_config(r_host, ASN, "172.17.3.0/24", [rr_host.addr4 or ""]))
    gobgp.start()
    bird.start()
    rr.start()
    node.start()
    rr.wait_established(3, 20)

    # GoBGP: BIRD's and roost's blocks, reflected by roost.
    def gobgp_ok() -> bool:
        rib = gobgp.rib()
        return (set(rib) == {f"172.17.{i}.0/24" for i in (1, 2, 3)}
                and _reflected(rib["172.17.2.0/24"][0], ba, cluster)
                and _reflected(rib["172.17.3.0/24"][0], ra, cluster))

    wait_for(gobgp_ok, 15, what="GoBGP has the reflected blocks",
             on_timeout=lambda: f"{gobgp.rib()}\n{diag([rr])}")
    # BIRD: GoBGP's and roost's blocks (`birdc show route all`: BGP.originator_id,
    # BGP.cluster_list).
    def bird_ok() -> bool:
        rib = bird.rib()
        return (all(p in rib for p in ("172.17.1.0/24", "172.17.3.0/24"))
                and _reflected(rib["172.17.1.0/24"][0], ga, cluster)
                and _reflected(rib["172.17.3.0/24"][0], ra, cluster))

    wait_for(bird_ok, 15, what="BIRD has the reflected blocks",
             on_timeout=lambda: f"{bird.rib()}\n{bird.birdc('show', 'route', 'all')}")
    text = bird.birdc("show", "route", "all", "172.17.1.0/24")
    assert f"BGP.originator_id: {ga}" in text and f"BGP.cluster_list: {cluster}" in text, text
    # The roost client.
    want = {"172.17.1.0/24": Want(ga, ga, (cluster,)), "172.17.2.0/24": Want(ba, ba, (cluster,))}
    wait_all([node], lambda n: converged(n, "172.17.3.0/24", want), 10,
             "the roost client has the GoBGP and BIRD blocks")
    assert converged(node, "172.17.3.0/24", want, cli=True)

    # The reflector keeps what it learned unchanged and installs nothing.
    paths = {r["prefix"]: r["paths"] for r in rr.cli_show("routes")}
    for prefix, owner in (("172.17.1.0/24", ga), ("172.17.2.0/24", ba), ("172.17.3.0/24", ra)):
        (p,) = paths[prefix]
        assert p["next_hop"] == owner and p["originator_id"] is None, p
    assert rr.kernel_routes() == []

    # GoBGP withdraws its block: it leaves BIRD and the roost client.
    gobgp.del_route("172.17.1.0/24")
    bird.wait_no_route("172.17.1.0/24", 10)
    wait_for(lambda: "172.17.1.0/24" not in {r["prefix"] for r in node.show("routes")}, 10,
             what="withdrawn on the roost client")
