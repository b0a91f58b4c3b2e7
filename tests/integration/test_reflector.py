"""Route reflection and rack topologies with roost everywhere, each daemon in its own
network namespace on one bridge (`roost run -c FILE`, checked through `roost show ...`).

1. One rack: a reflector and five nodes. Every node learns every other node's block with
   the originating node as next hop, ORIGINATOR_ID = that node and CLUSTER_LIST = [our
   cluster], and installs it in the kernel via the originator.
2. Two racks (AS 65001 and 65002), each a reflector and three nodes, the reflectors
   speaking eBGP with `next_hop = "keep"`: all six nodes learn all blocks via the owning
   node; no reflector takes its own AS back; a node that leaves is withdrawn everywhere.
3. Two reflectors in one cluster: one is SIGKILLed, the clients keep every route through
   the other; the reflectors drop each other's reflections (CLUSTER_LIST loop).
4. The reflector of the issue, configured exactly as written there.
5. Dynamic clients from an address range (`[[reflector.dynamic]]`).
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import pytest

from tests.harness.netns import Host, Lab, wait_for
from tests.integration.roost_node import RoostNode

pytestmark = pytest.mark.needs_root



def block(i: int) -> str:
    return f"172.17.{i}.0/24"


# ------------------------------------------------------------------------ configs


def node_config(host: Host, asn: int, prefix: str, reflectors: Sequence[str]) -> str:
    """A rack node: originates its block, peers only with its reflector(s)."""
    peers = "".join(
        f'\n[[peer]]\naddress = "{rr}"\nasn = {asn}\nroute_reflector = true\n'
        for rr in reflectors
    )
    return f"""\
[router]
asn = {asn}
id = "{host.addr4}"
listen = "{host.addr4}"
prefixes = ["{prefix}"]
connect_retry_time = 1
{peers}"""


def reflector_config(host: Host, asn: int, clients: Sequence[str], *,
                     cluster_id: str | None = None, extra: str = "",
                     router_extra: str = "") -> str:
    """A pure rack reflector (no prefixes, so it installs nothing)."""
    cid = f'cluster_id = "{cluster_id}"\n' if cluster_id else ""
    peers = "".join(
        f'\n[[peer]]\naddress = "{c}"\nasn = {asn}\nrr_client = true\n' for c in clients
    )
    return f"""\
[router]
asn = {asn}
id = "{host.addr4}"
listen = "{host.addr4}"
connect_retry_time = 1
{router_extra}
[reflector]
{cid}{peers}{extra}"""


# ------------------------------------------------------------------------ checks


@dataclass(frozen=True)
class Want:
    """What a node should have for one block."""

    owner: str  # the node that originates it = the next hop
    originator_id: str | None  # None: the path came over eBGP (not reflected)
    cluster_list: tuple[str, ...]
    as_path: str = ""


def _paths(node: RoostNode, cli: bool) -> dict[str, list[dict[str, Any]]]:
    rows = (node.cli_show if cli else node.show)("routes")
    return {r["prefix"]: [dict(p, kernel=r["kernel"]) for p in r["paths"]] for r in rows}


def converged(node: RoostNode, own: str | None, want: dict[str, Want],
              cli: bool = False) -> bool:
    """`node` has exactly `own` (local, blackholed) plus `want`, each with the right
    attributes on its best path and a kernel route via the owner."""
    paths = _paths(node, cli)
    expected = set(want) | ({own} if own else set())
    if set(paths) != expected:
        return False
    kernel = node.kernel_routes()
    for prefix, w in want.items():
        best = next((p for p in paths[prefix] if p["best"]), None)
        if best is None:
            return False
        got = (best["next_hop"], best["originator_id"], tuple(best["cluster_list"]),
               best["as_path"])
        exp = (w.owner, w.originator_id, w.cluster_list, w.as_path)
        if got != exp:
            return False
        if f"{prefix} via {w.owner} dev eth0 proto bird metric 1024 onlink" not in kernel:
            return False
    if own is not None and f"blackhole {own} proto bird metric 1024" not in kernel:
        return False
    return len(kernel) == len(expected)


def diag(nodes: Sequence[RoostNode]) -> str:
    parts = []
    for node in nodes:
        if node.proc is None:
            continue
        try:
            rows = node.show("routes")
            summary = "; ".join(
                f"{r['prefix']}: " + ", ".join(
                    f"{p['from']} nh {p['next_hop']} orig {p['originator_id']} "
                    f"cl {p['cluster_list']} as [{p['as_path']}]{' *' if p['best'] else ''}"
                    for p in r["paths"])
                for r in rows)
        except Exception as exc:
            summary = f"<show routes failed: {exc!r}>"
        parts.append(f"{node.name}: {summary}\n  kernel: {node.kernel_routes()}")
        parts.append(node.log_tail(12))
    return "\n".join(parts)


def wait_all(nodes: Sequence[RoostNode], pred: Callable[[RoostNode], bool], timeout: float,
             what: str) -> float:
    t0 = time.monotonic()
    wait_for(lambda: all(pred(n) for n in nodes), timeout, interval=0.2, what=what,
             on_timeout=lambda: diag(nodes))
    return time.monotonic() - t0


def start_all(nodes: Sequence[RoostNode]) -> None:
    for n in nodes:
        n.start()


# ------------------------------------------------------------------------ 1. one rack


def test_one_rack_reflector_five_nodes(lab: Lab) -> None:
    rr_host = lab.host("rr", addr4="10.255.0.100/24")
    hosts = [lab.host(f"n{i}", addr4=f"10.255.0.{i}/24") for i in range(1, 6)]
    cluster = "1.1.1.1"  # not the reflector's router id: CLUSTER_LIST must carry this one
    rr = RoostNode(rr_host, reflector_config(rr_host, 64512, [h.addr4 or "" for h in hosts],
                                             cluster_id=cluster))
    nodes = [RoostNode(h, node_config(h, 64512, block(i), [rr_host.addr4 or ""]))
             for i, h in enumerate(hosts, start=1)]
    start_all([rr, *nodes])

    def want_for(me: int) -> dict[str, Want]:
        return {block(i): Want(h.addr4 or "", h.addr4, (cluster,))
                for i, h in enumerate(hosts, start=1) if i != me}

    took = wait_all(nodes, lambda n: converged(n, block(nodes.index(n) + 1),
                                               want_for(nodes.index(n) + 1)),
                    30, "every node has every block via its originator")
    # The same through the command line (`roost show routes --json`).
    for i, n in enumerate(nodes, start=1):
        assert converged(n, block(i), want_for(i), cli=True), diag([n])

    # The reflector: all five blocks, from the clients themselves, nothing installed,
    # no ORIGINATOR_ID / CLUSTER_LIST on what it learned (clients originate them).
    paths = _paths(rr, cli=True)
    assert set(paths) == {block(i) for i in range(1, 6)}
    for i, h in enumerate(hosts, start=1):
        (p,) = paths[block(i)]
        assert p["next_hop"] == h.addr4 and p["originator_id"] is None
        assert p["cluster_list"] == [] and p["kernel"] is None
    assert rr.kernel_routes() == []
    status = rr.cli_show("status")
    assert status["route_reflector"] == cluster and status["kernel"] == "off"
    peers = rr.cli_show("peers")
    assert all(p["state"] == "Established" and p["rr_client"] for p in peers), peers
    assert all(p["advertised"] == 4 for p in peers), peers  # 5 blocks minus its own
    # A node never takes its own block back (the reflector does not echo it).
    for i, n in enumerate(nodes, start=1):
        reasons = n.cli_show("route-reasons", block(i))
        assert reasons["rejected"] == [], reasons
    print(f"one rack: converged in {took:.1f} s")


# ------------------------------------------------------------------------ 2. two racks


_RACKS_POLICY = """
[policy.racks]
default = "reject"

[[policy.racks.term]]
name = "blocks"
match = { prefix = ["172.17.0.0/16"], prefix_length = "24..26" }
then = { action = "accept" }
"""


def _rack_rr_config(host: Host, asn: int, clients: Sequence[str], other_rr: str,
                    other_asn: int) -> str:
    ebgp = f"""
[[peer]]
address = "{other_rr}"
asn = {other_asn}
next_hop = "keep"
import = "racks"
export = "racks"
"""
    return reflector_config(host, asn, clients, extra=ebgp + _RACKS_POLICY)


def test_two_racks_ebgp_next_hop_keep(lab: Lab) -> None:
    racks = {65001: 10, 65002: 20}  # AS -> base of the last octet
    rr_hosts = {asn: lab.host(f"rr{asn % 10}", addr4=f"10.255.0.{b}/24")
                for asn, b in racks.items()}
    node_hosts = {asn: [lab.host(f"r{asn % 10}n{j}", addr4=f"10.255.0.{b + j}/24")
                        for j in (1, 2, 3)] for asn, b in racks.items()}
    other = {65001: 65002, 65002: 65001}
    rrs = {asn: RoostNode(rr_hosts[asn], _rack_rr_config(
        rr_hosts[asn], asn, [h.addr4 or "" for h in node_hosts[asn]],
        rr_hosts[other[asn]].addr4 or "", other[asn])) for asn in racks}
    blocks: dict[str, tuple[int, str]] = {}  # block -> (AS, owner address)
    nodes: dict[str, RoostNode] = {}
    for asn, hs in node_hosts.items():
        for h in hs:
            b = block(int((h.addr4 or "").rsplit(".", 1)[1]))
            blocks[b] = (asn, h.addr4 or "")
            nodes[b] = RoostNode(h, node_config(h, asn, b, [rr_hosts[asn].addr4 or ""]))
    start_all([*rrs.values(), *nodes.values()])

    def want_for(me: str, present: dict[str, tuple[int, str]]) -> dict[str, Want]:
        my_asn = blocks[me][0]
        out = {}
        for b, (asn, owner) in present.items():
            if b == me:
                continue
            if asn == my_asn:  # reflected inside the rack
                out[b] = Want(owner, owner, (str(rr_hosts[asn].addr4),))
            else:  # over eBGP from the other rack's reflector, then iBGP: not reflected
                out[b] = Want(owner, None, (), str(asn))
        return out

    took = wait_all(list(nodes.values()),
                    lambda n: converged(n, _own(nodes, n), want_for(_own(nodes, n), blocks)),
                    40, "all 6 nodes have all 6 blocks via the owning node")
    for b, n in nodes.items():
        assert converged(n, b, want_for(b, blocks), cli=True), diag([n])

    # The reflectors: their own rack's blocks from the clients, the other rack's from
    # the other reflector with AS_PATH = [that AS] and the next hop kept.
    for asn, rr in rrs.items():
        paths = _paths(rr, cli=True)
        assert set(paths) == set(blocks)
        for b, (basn, owner) in blocks.items():
            (p,) = paths[b]
            assert p["next_hop"] == owner
            assert p["as_path"] == ("" if basn == asn else str(basn)), p
            assert p["originator_id"] is None and p["cluster_list"] == []
        peers = {p["address"]: p for p in rr.cli_show("peers")}
        ebgp = peers[str(rr_hosts[other[asn]].addr4)]
        assert ebgp["type"] == "ebgp" and ebgp["state"] == "Established"
        # It sent its 3 rack blocks and accepted the other rack's 3: nothing of its own
        # came back over eBGP (the other reflector does not echo to the source peer;
        # an echo would be refused as AS_LOOP, see the check below).
        assert ebgp["advertised"] == 3 and ebgp["accepted"] == 3, ebgp
        for b, (basn, _) in blocks.items():
            if basn == asn:
                assert rr.show("route-reasons", b)["rejected"] == []

    # A node leaves (SIGTERM -> Cease): its block is withdrawn in both racks.
    gone = block(12)
    assert nodes[gone].stop() == 0
    rest = {b: o for b, o in blocks.items() if b != gone}
    others = [n for b, n in nodes.items() if b != gone]
    left = wait_all(others, lambda n: converged(n, _own(nodes, n),
                                                 want_for(_own(nodes, n), rest)),
                    10, f"{gone} withdrawn from all 5 remaining nodes")
    assert left < 3.0, f"withdrawal took {left:.1f} s"  # no hold-timer wait
    for rr in rrs.values():
        assert gone not in _paths(rr, cli=False)
    print(f"two racks: converged in {took:.1f} s, withdrawn in {left:.2f} s")


def _own(nodes: dict[str, RoostNode], n: RoostNode) -> str:
    return next(b for b, x in nodes.items() if x is n)


# ------------------------------------------------------------------------ 2b. loops


_PREFER = """
[policy.prefer]
default = "accept"

[[policy.prefer.term]]
name = "blocks"
match = { prefix = ["172.17.0.0/16"], prefix_length = "24..26" }
then = { action = "accept", local_pref = 200 }
"""


def test_three_racks_as_path_loop_refused(lab: Lab) -> None:
    """Three rack reflectors in an eBGP triangle (next hop kept), one node each. Rack
    65002 prefers what rack 65003 sends (LOCAL_PREF 200 on import), so its best path for
    rack 65001's block is 65003 65001 and it advertises that to 65001: rack 65001 must
    refuse its own AS (RFC 4271 §9.1.2) and keep its own block."""
    asns = (65001, 65002, 65003)
    rrh = {a: lab.host(f"rr{a % 10}", addr4=f"10.255.0.{a % 10 * 10}/24") for a in asns}
    nh = {a: lab.host(f"n{a % 10}", addr4=f"10.255.0.{a % 10 * 10 + 1}/24") for a in asns}
    rrs, nodes = {}, {}
    for a in asns:
        extra = ""
        for b in asns:
            if b == a:
                continue
            imp = "prefer" if (a, b) == (65002, 65003) else "racks"
            extra += (f'\n[[peer]]\naddress = "{rrh[b].addr4}"\nasn = {b}\n'
                      f'next_hop = "keep"\nimport = "{imp}"\nexport = "racks"\n')
        extra += _RACKS_POLICY + (_PREFER if a == 65002 else "")
        rrs[a] = RoostNode(rrh[a], reflector_config(rrh[a], a, [nh[a].addr4 or ""],
                                                    extra=extra))
        nodes[a] = RoostNode(nh[a], node_config(nh[a], a, block(a % 10 * 10 + 1),
                                                [rrh[a].addr4 or ""]))
    start_all([*rrs.values(), *nodes.values()])
    b1, b2, b3 = (block(a % 10 * 10 + 1) for a in asns)
    o1, o2, o3 = (nh[a].addr4 or "" for a in asns)
    want = {
        65001: (b1, {b2: Want(o2, None, (), "65002"), b3: Want(o3, None, (), "65003")}),
        # rack 65002 prefers 65003's paths: b1 arrives as 65003 65001, next hop still n1
        65002: (b2, {b1: Want(o1, None, (), "65003 65001"), b3: Want(o3, None, (), "65003")}),
        65003: (b3, {b1: Want(o1, None, (), "65001"), b2: Want(o2, None, (), "65002")}),
    }
    took = wait_all(list(nodes.values()),
                    lambda n: converged(n, *want[_asn_of(nodes, n)]), 40,
                    "all three nodes have all three blocks")
    for a, n in nodes.items():
        assert converged(n, *want[a], cli=True), diag([n])

    # 65002 advertised 65002 65003 65001 to 65001, which refused it.
    loop = [{"peer": rrh[65002].addr4, "path_id": 0, "reason": "own AS in AS_PATH"}]
    wait_for(lambda: rrs[65001].show("route-reasons", b1)["rejected"] == loop, 5,
             what="rack 65001 refuses its own block back from 65002",
             on_timeout=lambda: str(rrs[65001].show("route-reasons", b1)))
    reasons = rrs[65001].cli_show("route-reasons", b1)
    assert reasons["rejected"] == loop
    # Its best stays the client's own path ("id 1": the client's ADD-PATH id).
    assert reasons["best"].split()[0] == o1 and reasons["losers"] == [], reasons
    print(f"three racks: converged in {took:.1f} s")


def _asn_of(nodes: dict[int, RoostNode], n: RoostNode) -> int:
    return next(a for a, x in nodes.items() if x is n)


# ------------------------------------------------------------------------ 3. redundancy


def test_two_reflectors_one_cluster_survive_sigkill(lab: Lab) -> None:
    cluster = "10.255.0.100"
    rr_hosts = [lab.host(f"rr{k}", addr4=f"10.255.0.{100 + k}/24") for k in (1, 2)]
    hosts = [lab.host(f"n{i}", addr4=f"10.255.0.{i}/24") for i in (1, 2, 3)]
    clients = [h.addr4 or "" for h in hosts]
    rrs = []
    for k, h in enumerate(rr_hosts):
        mate = rr_hosts[1 - k].addr4
        # The reflectors peer with each other as ordinary (non-client) iBGP neighbours.
        # A killed reflector's paths stay on the clients, stale, for its graceful restart
        # time (RFC 4724 §4.2, docs/operations.md): 3 s here instead of 120 s.
        rrs.append(RoostNode(h, reflector_config(
            h, 64512, clients, cluster_id=cluster,
            router_extra="graceful_restart = { restart_time = 3 }",
            extra=f'\n[[peer]]\naddress = "{mate}"\nasn = 64512\n')))
    addrs = [h.addr4 or "" for h in rr_hosts]
    nodes = [RoostNode(h, node_config(h, 64512, block(i), addrs))
             for i, h in enumerate(hosts, start=1)]
    start_all([*rrs, *nodes])

    def want_for(me: int) -> dict[str, Want]:
        return {block(i): Want(h.addr4 or "", h.addr4, (cluster,))
                for i, h in enumerate(hosts, start=1) if i != me}

    def sources(n: RoostNode, me: int) -> list[list[str]]:
        return [sorted(p["from"].split()[0] for p in paths)
                for prefix, paths in sorted(_paths(n, cli=False).items())
                if prefix != block(me)]

    def two_paths(n: RoostNode) -> bool:
        """Both reflectors' paths present (ADD-PATH), identical but for the source."""
        me = nodes.index(n) + 1
        return converged(n, block(me), want_for(me)) and sources(n, me) == [addrs] * 2

    took = wait_all(nodes, two_paths, 30, "every node has each block from both reflectors")
    # The reflectors reflect client routes to each other, and each drops the other's
    # reflection: our CLUSTER_ID is already in its CLUSTER_LIST (RFC 4456 §8). The session
    # between the reflectors may come up after the clients', so wait for it.
    def mate_reflections_refused(k: int, i: int) -> bool:
        rej = rrs[k].show("route-reasons", block(i))["rejected"]
        return [(r["peer"], r["reason"]) for r in rej] == [
            (addrs[1 - k], "our CLUSTER_ID in CLUSTER_LIST")]

    for k in (0, 1):
        for i in (1, 2, 3):
            wait_for(lambda k=k, i=i: mate_reflections_refused(k, i), 10,
                     what=f"rr{k + 1} refuses rr{2 - k}'s reflection of {block(i)}")
    for k, rr in enumerate(rrs):  # and the CLI says the same
        for i in (1, 2, 3):
            rej = rr.cli_show("route-reasons", block(i))["rejected"]
            assert [(r["peer"], r["reason"]) for r in rej] == [
                (addrs[1 - k], "our CLUSTER_ID in CLUSTER_LIST")], rej

    # SIGKILL the first reflector: no Cease, the kernel closes its sockets.
    assert rrs[0].proc is not None
    os.kill(rrs[0].proc.pid, signal.SIGKILL)
    rrs[0].proc.wait(5)
    rrs[0].proc = None
    # For 3 s, every sample of every node's kernel table still has every block.
    deadline = time.monotonic() + 3.0
    samples = 0
    while time.monotonic() < deadline:
        for i, n in enumerate(nodes, start=1):
            kernel = n.kernel_routes()
            for j, h in enumerate(hosts, start=1):
                if j != i:
                    want = f"{block(j)} via {h.addr4} dev eth0 proto bird metric 1024 onlink"
                    assert want in kernel, (n.name, kernel)
        samples += 1
        time.sleep(0.05)

    def via_survivor(n: RoostNode) -> bool:
        """The session to the dead reflector is down; each block has a live path from
        the survivor. The dead one's paths are gone, or kept as stale if graceful
        restart (helper side) keeps them for a while: either is fine."""
        me = nodes.index(n) + 1
        if not converged(n, block(me), want_for(me)):
            return False
        peers = {p["address"]: p["state"] for p in n.show("peers")}
        if peers[addrs[0]] == "Established" or peers[addrs[1]] != "Established":
            return False
        for prefix, paths in _paths(n, cli=False).items():
            if prefix == block(me):
                continue
            live = [p["from"].split()[0] for p in paths if not p.get("stale")]
            dead = [p for p in paths if p["from"].split()[0] == addrs[0]]
            if live != [addrs[1]] or any(not p.get("stale") for p in dead):
                return False
        return True

    wait_all(nodes, via_survivor, 10, "every block through the surviving reflector")
    for i, n in enumerate(nodes, start=1):
        assert converged(n, block(i), want_for(i), cli=True)
    print(f"two reflectors: converged in {took:.1f} s; {samples} kernel samples, none lost")


# ------------------------------------------------------------------------ 4. the issue


ISSUE_EXAMPLE = """\
[router]
asn = 64512
id = "10.0.0.1"

[reflector]
cluster_id = "10.0.0.1"

[[peer]]
address = "10.0.0.2"
asn = 64512
rr_client = true
"""


def test_issue_example_config_works_as_written(lab: Lab) -> None:
    rr_host = lab.host("rr", addr4="10.0.0.1/24")
    c_host = lab.host("c", addr4="10.0.0.2/24")
    # The file exactly as in the issue; the test only adds a private control socket.
    rr = RoostNode(rr_host, ISSUE_EXAMPLE)
    assert rr.config_path.read_text().startswith(ISSUE_EXAMPLE)
    client = RoostNode(c_host, node_config(c_host, 64512, "172.17.8.0/24", ["10.0.0.1"]))
    rr.start()
    client.start()
    client.wait_established(1)
    rr.wait_established(1)
    wait_for(lambda: "172.17.8.0/24" in _paths(rr, cli=False), 10,
             what="the reflector learned the client's block", on_timeout=lambda: diag([rr]))
    (p,) = _paths(rr, cli=True)["172.17.8.0/24"]
    assert p["next_hop"] == "10.0.0.2" and p["kernel"] is None
    status = rr.cli_show("status")
    assert status["route_reflector"] == "10.0.0.1"
    assert status["kernel"] == "off"  # a pure reflector installs nothing
    (peer,) = rr.cli_show("peers")
    assert peer["name"] == "Node_10_0_0_2" and peer["rr_client"] is True
    assert peer["type"] == "ibgp" and peer["state"] == "Established"
    assert rr.kernel_routes() == []
    # The client's own block is not sent back to it.
    assert set(_paths(client, cli=True)) == {"172.17.8.0/24"}
    (cpeer,) = client.cli_show("peers")
    assert cpeer["address"] == "10.0.0.1" and cpeer["advertised"] == 1
    assert cpeer["route_reflector"] is True and cpeer["rr_client"] is False


# ------------------------------------------------------------------------ 5. dynamic


def test_dynamic_clients_from_a_range(lab: Lab) -> None:
    rr_host = lab.host("rr", addr4="10.255.0.100/24")
    hosts = [lab.host(f"n{i}", addr4=f"10.255.0.{i}/24") for i in (1, 2, 3)]
    rr = RoostNode(rr_host, reflector_config(
        rr_host, 64512, [], extra='\n[[reflector.dynamic]]\nrange = "10.255.0.0/25"\n'))
    nodes = [RoostNode(h, node_config(h, 64512, block(i), [rr_host.addr4 or ""]))
             for i, h in enumerate(hosts, start=1)]
    start_all([rr, *nodes])
    cluster = rr_host.addr4 or ""  # cluster_id defaults to the router id

    def want_for(me: int, present: Sequence[int] = (1, 2, 3)) -> dict[str, Want]:
        return {block(i): Want(hosts[i - 1].addr4 or "", hosts[i - 1].addr4, (cluster,))
                for i in present if i != me}

    took = wait_all(nodes, lambda n: converged(n, block(nodes.index(n) + 1),
                                               want_for(nodes.index(n) + 1)),
                    30, "dynamic clients learn each other's blocks")
    peers = rr.cli_show("peers")
    assert sorted(p["name"] for p in peers) == [f"Dynamic_10_255_0_{i}" for i in (1, 2, 3)]
    assert all(p["kind"] == "dynamic" and p["rr_client"] and p["passive"] for p in peers)

    # A dynamic client leaves and comes back.
    assert nodes[1].stop() == 0
    wait_all([nodes[0], nodes[2]], lambda n: converged(
        n, block(nodes.index(n) + 1), want_for(nodes.index(n) + 1, (1, 3))),
        10, f"{block(2)} withdrawn")
    # A dynamic neighbour that left is forgotten (as BIRD and GoBGP do), so the
    # reflector's readiness does not wait for it.
    wait_for(lambda: sorted(p["name"] for p in rr.cli_show("peers"))
             == ["Dynamic_10_255_0_1", "Dynamic_10_255_0_3"], 10,
             what="the reflector forgets the client that left")
    nodes[1].start()
    wait_all(nodes, lambda n: converged(n, block(nodes.index(n) + 1),
                                        want_for(nodes.index(n) + 1)),
             30, "the dynamic client is back")
    # ... as the same peer, not as a fourth one.
    peers = rr.cli_show("peers")
    assert sorted(p["name"] for p in peers) == [f"Dynamic_10_255_0_{i}" for i in (1, 2, 3)]
    assert all(p["state"] == "Established" for p in peers), peers
    print(f"dynamic: converged in {took:.1f} s")
