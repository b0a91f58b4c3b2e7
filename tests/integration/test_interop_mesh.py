"""roost nodes in one full iBGP mesh with a GoBGP node and a BIRD node (real daemons):
every node learns every other node's block, with the owner as next hop.

    h1 GoBGP 10.255.0.1  172.17.8.0/24      h3 roost 10.255.0.3  172.17.10.0/24
    h2 BIRD  10.255.0.2  172.17.9.0/24      h4 roost 10.255.0.4  172.17.11.0/24
                                            h5 roost 10.255.0.5  172.17.12.0/24

The third-party daemons are configured the way Calico writes BIRD's mesh (the smaller
address of each pair waits), so the roost nodes use `passive_side = "smaller"`, the
documented setting for a mixed mesh. The daemons get the lower addresses, so roost
connects to them and no session waits for GoBGP's slow first connect.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.harness.daemons import Bird, GoBgp, Neighbor
from tests.harness.netns import Lab, require_netns, wait_for
from tests.integration.roost_node import RoostNode

pytestmark = [pytest.mark.needs_root, pytest.mark.interop]

ASN = 64512


def block(i: int) -> str:
    return f"172.17.{8 + i}.0/24"


def test_roost_gobgp_bird_mesh(tmp_path: Path) -> None:
    require_netns()
    if not (GoBgp.available() and Bird.available()):
        pytest.skip("needs gobgpd and bird (apt-get install gobgpd bird2)")
    with Lab(tmp_path) as lab:
        hosts = lab.flat(5, v6=False)
        addrs = [str(h.addr4) for h in hosts]
        owners = {block(i): addrs[i] for i in range(5)}

        def neighbors(me: int) -> list[Neighbor]:
            # The smaller address of each pair waits (Calico's direction).
            return [Neighbor(a, ASN, passive=int(i) > me) for i, a in enumerate(addrs)
                    if i != me]

        gobgp = GoBgp(hosts[0], ASN, addrs[0], neighbors(0), originate=[block(0)])
        bird = Bird(hosts[1], ASN, addrs[1], neighbors(1), originate=[block(1)], waker=True)
        roosts = [
            RoostNode(hosts[i], f"""\
[router]
asn = {ASN}
id = "{addrs[i]}"
listen = "{addrs[i]}"
prefixes = ["{block(i)}"]
connect_retry_time = 1

[mesh]
nodes = {json.dumps(addrs)}
passive_side = "smaller"
""")
            for i in (2, 3, 4)
        ]
        gobgp.start()
        bird.start()
        for node in roosts:
            node.start()

        def diag() -> str:
            return "\n".join([gobgp.log_tail(20), bird.log_tail(20),
                              *(n.log_tail(20) for n in roosts)])

        for node in roosts:
            node.wait_established(4, timeout=30)

        def roost_ok() -> bool:
            for node in roosts:
                best = node.best_routes()
                if set(best) != set(owners):
                    return False
                for prefix, owner in owners.items():
                    if owner != node.host.addr4 and best[prefix]["next_hop"] != owner:
                        return False
                    if best[prefix]["kernel"] is None:
                        return False
            return True

        wait_for(roost_ok, 30, what="roost nodes learn every block", on_timeout=diag)
        for daemon in (gobgp, bird):
            for prefix, owner in owners.items():
                if owner == daemon.router_id:
                    continue
                paths = daemon.wait_route(prefix, timeout=30)
                best = [p for p in paths if p.best] or paths
                assert best[0].next_hop == owner, (daemon.name, prefix, best)
        # Kernel: the GoBGP and BIRD blocks via their owners on every roost node.
        for node in roosts:
            kernel = node.kernel_routes()
            for i in (0, 1):
                want = f"{block(i)} via {addrs[i]} dev eth0 proto bird metric 1024 onlink"
                assert want in kernel, (node.name, kernel)
