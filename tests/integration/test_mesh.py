"""Six roost nodes, each in its own network namespace on one bridge, in a full iBGP mesh
configured with `[mesh]`; each owns one /24 of 172.17.0.0/16.

1. All six converge: every node has the other five blocks with the owner as next hop, in
   `roost show routes --json` and in its kernel table (`via <owner> dev eth0 proto bird
   onlink`), and a blackhole for its own block.
2. One node is stopped (SIGTERM → Cease): its block disappears everywhere at once.
3. It comes back and everything re-converges.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.netns import Lab, require_netns, wait_for
from tests.integration.roost_node import RoostNode

pytestmark = pytest.mark.needs_root

N = 6


def block(i: int) -> str:
    return f"172.17.{8 + i}.0/24"


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[list[RoostNode]]:
    require_netns()
    with Lab(tmp_path) as lab:
        hosts = lab.flat(N, v6=False)
        nodes_list = json.dumps([h.addr4 for h in hosts])
        nodes = []
        for i, h in enumerate(hosts):
            nodes.append(RoostNode(h, f"""\
[router]
asn = 64512
id = "{h.addr4}"
listen = "{h.addr4}"
prefixes = ["{block(i)}"]
connect_retry_time = 1

[mesh]
nodes = {nodes_list}
"""))
        for node in nodes:
            node.start()
        yield nodes
        for node in nodes:
            if node.proc is not None:
                node.stop()


def _converged(nodes: list[RoostNode], owners: dict[str, str], cli: bool = False) -> bool:
    """Every running node has exactly `owners` (block -> owner address), learned ones
    via the owner, in the RIB and in the kernel. `cli`: read the RIB with `roost show
    routes --json` (slower) instead of straight from the control socket."""
    for node in nodes:
        best = node.best_routes(cli)
        if set(best) != set(owners):
            return False
        kernel = node.kernel_routes()
        for prefix, owner in owners.items():
            if owner == node.host.addr4:
                assert best[prefix]["from"] == "local"
                if f"blackhole {prefix} proto bird metric 1024" not in kernel:
                    return False
                continue
            path = best[prefix]
            assert path["next_hop"] == owner, (node.name, prefix, path)
            assert path["from"].split()[0] == owner  # "10.255.0.2 id 1" with ADD-PATH
            want = f"{prefix} via {owner} dev eth0 proto bird metric 1024 onlink"
            if want not in kernel:
                return False
            assert path["kernel"] == {
                "blackhole": False,
                "nexthops": [{"gateway": owner, "dev": "eth0", "onlink": True}],
            }
        if len(kernel) != len(owners):
            return False
    return True


def _diag(nodes: list[RoostNode]) -> str:
    parts = []
    for node in nodes:
        parts.append(f"{node.name}: " + "; ".join(node.kernel_routes()))
        parts.append(node.log_tail(15))
    return "\n".join(parts)


def test_six_node_mesh_converges_withdraws_and_reconverges(mesh: list[RoostNode]) -> None:
    owners = {block(i): str(node.host.addr4) for i, node in enumerate(mesh)}
    start = time.monotonic()
    wait_for(lambda: _converged(mesh, owners), 20, what="6-node convergence",
             on_timeout=lambda: _diag(mesh))
    converged_in = time.monotonic() - start
    assert _converged(mesh, owners, cli=True)

    # Every node: 5 sessions Established; of each pair the larger address is passive.
    for node in mesh:
        peers = node.show("peers")
        assert [p["state"] for p in peers] == ["Established"] * (N - 1), peers
        for p in peers:
            we_are_larger = int(node.host.addr4.split(".")[-1]) > int(p["address"].split(".")[-1])
            assert p["passive"] is we_are_larger

    # Stop node 3 (index 2): SIGTERM -> Cease; its block leaves every other node at once.
    gone = mesh[2]
    gone_block = block(2)
    assert gone.stop() == 0
    others = [n for i, n in enumerate(mesh) if i != 2]
    rest = {p: o for p, o in owners.items() if p != gone_block}
    t0 = time.monotonic()
    wait_for(lambda: _converged(others, rest), 5, what=f"{gone_block} withdrawn everywhere",
             on_timeout=lambda: _diag(others))
    withdrawn_in = time.monotonic() - t0
    assert withdrawn_in < 2.0, f"withdrawal took {withdrawn_in:.1f} s"  # no hold-timer wait
    assert _converged(others, rest, cli=True)
    for node in others:
        peer = next(p for p in node.show("peers") if p["address"] == gone.host.addr4)
        assert peer["state"] != "Established"
        # Cease / Administrative Shutdown; with the RFC 8538 N bit negotiated it travels
        # inside a Cease / Hard Reset, which makes the helpers drop its routes at once.
        assert peer["last_down"].startswith(
            "notification-received (CEASE/9 (hard reset: CEASE/2"), peer
    assert "SIGTERM: shutting down" in gone.log_path.read_text()
    # Its own kernel routes stay (BIRD's `persist`) until it comes back.
    assert len(gone.kernel_routes()) == N

    # It comes back: everything re-converges (its stale kernel routes are adopted).
    gone.start()
    wait_for(lambda: _converged(mesh, owners), 20, what="re-convergence",
             on_timeout=lambda: _diag(mesh))
    assert _converged(mesh, owners, cli=True)
    print(f"converged in {converged_in:.1f} s, withdrawn in {withdrawn_in:.2f} s")
