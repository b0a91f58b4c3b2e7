"""The demo's topologies as plain values: who is where, who peers with whom, what each
node must end up with, and each node's `roost run` configuration. No I/O here.

Two placements of the same speakers:

* ``netns``: every node is a network namespace (root); its BGP address is its ``eth0``.
* ``loopback``: no namespaces (not root, or no netns support); every node listens on its
  own 127.x.y.z address on one unprivileged port, announces its topology address as next
  hop, and sees its topology interface (`roost.demo.node`); the kernel sink is the dry-run
  sink, so each daemon prints the `ip route` commands it would run in the topology.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, replace
from typing import Any, Literal

Placement = Literal["netns", "loopback"]
Role = Literal["node", "reflector"]

TOPOLOGY_NAMES = ("mesh", "reflector", "cross-subnet")
MESH_ASN = 64512
RACK_ASNS = (65001, 65002)
# The cross-subnet pair sits in two documentation networks (RFC 5737): never a local
# subnet of the machine, so the tunnel decision is the same with or without namespaces.
CROSS_SUBNETS = ("198.51.100", "203.0.113")
# Demo tables read like Calico's BIRD ones (`... proto bird onlink`): no metric shown.
DEMO_METRIC = 0


@dataclass(frozen=True, slots=True)
class Peer:
    address: str
    asn: int
    kind: Literal["ibgp", "rr_client", "route_reflector", "ebgp_keep"]


@dataclass(frozen=True, slots=True)
class Node:
    name: str
    asn: int
    host_address: str  # its eth0 address in the topology
    address: str  # BGP session address: `host_address`, or 127.x.y.z on loopback
    role: Role = "node"
    block: str | None = None  # the container block it originates (172.17.N.0/24)
    prefixlen: int = 24
    gateway: str | None = None  # default route (across the router), netns only
    peers: tuple[Peer, ...] = ()
    mesh: tuple[str, ...] = ()  # `[mesh] nodes`, when a mesh member

    @property
    def next_hop(self) -> str | None:
        """`[router] next_hop` when the session runs over another address (loopback)."""
        return None if self.address == self.host_address else self.host_address

    @property
    def interface(self) -> str:
        """eth0's address and subnet, `10.0.0.1/24`."""
        return f"{self.host_address}/{self.prefixlen}"

    @property
    def container(self) -> str | None:
        """The container address inside the block (a /32, as Calico gives a pod)."""
        return None if self.block is None else self.block.replace(".0/24", ".2")


@dataclass(frozen=True, slots=True)
class Topology:
    name: str
    title: str
    placement: Placement
    nodes: tuple[Node, ...]
    tunnel: Literal["never", "cross-subnet"] = "never"
    router: tuple[str, ...] = ()  # the router's leg addresses (cidr), netns only
    picture: str = ""
    note: str = ""

    @property
    def hosts(self) -> tuple[Node, ...]:
        """The nodes that own a block (and so a container and kernel routes)."""
        return tuple(n for n in self.nodes if n.block is not None)

    @property
    def device(self) -> str:
        """The device every learned route must use."""
        return "tunl0" if self.tunnel == "cross-subnet" else "eth0"

    def expected(self, node: Node) -> dict[str, tuple[str, str] | None]:
        """What `node` must have in its kernel table: every other block via its owner
        (gateway, device), its own block as a blackhole (None)."""
        want: dict[str, tuple[str, str] | None] = {}
        for other in self.hosts:
            assert other.block is not None
            if other == node:
                want[other.block] = None
            else:
                want[other.block] = (other.host_address, self.device)
        return want


# ------------------------------------------------------------------------ addressing


def _node(placement: Placement, loopback_net: str, host_address: str, **kw: Any) -> Node:
    """A node at `host_address`; on loopback its session runs over `loopback_net.N` (N:
    the last octet of `host_address`)."""
    address = host_address
    if placement == "loopback":
        address = f"{loopback_net}.{host_address.rsplit('.', 1)[1]}"
    return Node(host_address=host_address, address=address, **kw)


def mesh(n: int, placement: Placement, loopback_base: str) -> Topology:
    """N nodes on one segment, every pair an iBGP session (`[mesh]`, Calico's
    node-to-node mesh)."""
    if not 2 <= n <= 20:
        raise ValueError(f"a mesh needs 2..20 nodes, not {n}")
    lo = f"{loopback_base}.1"
    bare = [_node(placement, lo, f"10.0.0.{i + 1}", name=f"h{i + 1}", asn=MESH_ASN,
                  block=f"172.17.{i + 1}.0/24") for i in range(n)]
    members = tuple(nd.address for nd in bare)
    nodes = tuple(replace(nd, mesh=members) for nd in bare)
    rows = "\n".join(
        f"     {'└' if i == n - 1 else '├'}── {nd.name:<3} {nd.host_address:<10} owns {nd.block}"
        for i, nd in enumerate(nodes)
    )
    picture = (f"   bridge br0 (10.0.0.0/24), AS {MESH_ASN}, iBGP full mesh "
               f"({n * (n - 1) // 2} sessions)\n{rows}")
    return Topology("mesh", f"full mesh: {n} nodes on one L2 segment", placement, nodes,
                    picture=picture)


def reflector(per_rack: int, placement: Placement, loopback_base: str) -> Topology:
    """Two racks, each its own AS with a pure route reflector (no prefixes) and
    `per_rack` client nodes; the reflectors speak eBGP with `next_hop = "keep"`.

    The racks share one L2 segment: a kept next hop is another rack's node, which every
    node then reaches directly (onlink), with no hop through the reflectors."""
    if not 1 <= per_rack <= 8:
        raise ValueError(f"a rack needs 1..8 nodes, not {per_rack}")
    lo = f"{loopback_base}.2"
    rrs = [_node(placement, lo, f"10.0.1.{10 * (r + 1)}", name=f"rr-{'ab'[r]}", asn=asn,
                 role="reflector") for r, asn in enumerate(RACK_ASNS)]
    nodes: list[Node] = []
    for r, asn in enumerate(RACK_ASNS):
        clients = [_node(placement, lo, f"10.0.1.{10 * (r + 1) + j}", name=f"{'ab'[r]}{j}",
                         asn=asn, block=f"172.17.{10 * (r + 1) + j}.0/24",
                         peers=(Peer(rrs[r].address, asn, "route_reflector"),))
                   for j in range(1, per_rack + 1)]
        other = rrs[1 - r]
        nodes.append(replace(rrs[r], peers=(
            *(Peer(c.address, asn, "rr_client") for c in clients),
            Peer(other.address, other.asn, "ebgp_keep"))))
        nodes += clients

    lines = ['   bridge br0 (10.0.1.0/24) for both racks; reflectors peer eBGP, '
             'next_hop = "keep"']
    for r, asn in enumerate(RACK_ASNS):
        rr = rrs[r]
        if r:
            lines.append("        ║ eBGP")
        lines.append(f"   AS {asn}: {rr.name} {rr.host_address} (reflector, no prefixes)")
        lines += [f"        └─ {n.name} {n.host_address:<10} owns {n.block}"
                  for n in nodes if n.asn == asn and n.role == "node"]
    note = ("Both racks share one L2 segment, so the kept next hop (the originating node "
            "of the other rack) is reachable onlink; behind a router it would need the "
            "tunnel of step 3 or next-hop-self.")
    return Topology("reflector", f"route-reflector rack pair: 2 x (1 reflector + "
                    f"{per_rack} nodes)", placement, tuple(nodes), picture="\n".join(lines),
                    note=note)


def cross_subnet(placement: Placement, loopback_base: str) -> Topology:
    """Two nodes on different subnets behind a router, `[kernel] tunnel = "cross-subnet"`:
    each reaches the other's block through the IPIP device tunl0."""
    lo = f"{loopback_base}.3"
    bare = [_node(placement, lo, f"{net}.{10 + i}", name=f"x{i + 1}", asn=MESH_ASN,
                  block=f"172.17.{31 + i}.0/24", gateway=f"{net}.1")
            for i, net in enumerate(CROSS_SUBNETS)]
    x1, x2 = (replace(nd, peers=(Peer(other.address, MESH_ASN, "ibgp"),))
              for nd, other in zip(bare, reversed(bare), strict=True))
    picture = "\n".join([
        f"   x1 {x1.host_address} ──[ router {CROSS_SUBNETS[0]}.1 | {CROSS_SUBNETS[1]}.1 ]── "
        f"x2 {x2.host_address}",
        f"   owns {x1.block}{' ' * 24}owns {x2.block}",
        "   iBGP across the router; a next hop on another subnet -> via it dev tunl0 (IPIP)",
    ])
    return Topology("cross-subnet", "cross-subnet pair with tunl0 (IPIP)", placement,
                    (x1, x2), tunnel="cross-subnet",
                    router=(f"{CROSS_SUBNETS[0]}.1/24", f"{CROSS_SUBNETS[1]}.1/24"),
                    picture=picture)


def build(name: str, placement: Placement, loopback_base: str, *, mesh_nodes: int = 4,
          rack_nodes: int = 2) -> Topology:
    if name == "mesh":
        return mesh(mesh_nodes, placement, loopback_base)
    if name == "reflector":
        return reflector(rack_nodes, placement, loopback_base)
    if name == "cross-subnet":
        return cross_subnet(placement, loopback_base)
    raise ValueError(f"unknown topology {name!r} ({' | '.join(TOPOLOGY_NAMES)})")


# ------------------------------------------------------------------------ configuration

_RACKS_POLICY = """
[policy.racks]
default = "reject"

[[policy.racks.term]]
name = "blocks"
match = { prefix = ["172.17.0.0/16"], prefix_length = "24..26" }
then = { action = "accept" }
"""


def config_text(topo: Topology, node: Node, *, port: int | None, socket: str,
                dry_run: bool) -> str:
    """The TOML file `roost run -c` gets for `node`."""
    lines = [
        f"# generated by `roost demo` ({topo.name}, {node.name})",
        "[router]",
        f"asn = {node.asn}",
        f'id = "{node.address}"',
        f'listen = "{node.address}"',
    ]
    if port is not None:
        lines.append(f"port = {port}")
    if node.next_hop is not None:
        lines.append(f'next_hop = "{node.next_hop}"')
    if node.block is not None:
        lines.append(f'prefixes = ["{node.block}"]')
    lines.append("connect_retry_time = 1")
    local = port is not None  # on loopback the source must be our own 127.x address
    if node.mesh:
        lines += ["", "[mesh]", f"nodes = {json.dumps(list(node.mesh))}"]
        if port is not None:
            lines.append(f"port = {port}")
        if local:
            lines.append(f'local_address = "{node.address}"')
    if node.role == "reflector":
        lines += ["", "[reflector]", f'cluster_id = "{node.address}"']
    for p in node.peers:
        lines += ["", "[[peer]]", f'address = "{p.address}"', f"asn = {p.asn}"]
        if port is not None:
            lines.append(f"port = {port}")
        if local:
            lines.append(f'local_address = "{node.address}"')
        if p.kind == "rr_client":
            lines.append("rr_client = true")
        elif p.kind == "route_reflector":
            lines.append("route_reflector = true")
        elif p.kind == "ebgp_keep":
            # RFC 4271 §5.1.3 lets eBGP keep a third-party next hop on a shared subnet;
            # eBGP needs a policy both ways (RFC 8212).
            lines += ['next_hop = "keep"', 'import = "racks"', 'export = "racks"']
    if any(p.kind == "ebgp_keep" for p in node.peers):
        lines.append(_RACKS_POLICY.rstrip())
    lines += [
        "", "[kernel]", f'tunnel = "{topo.tunnel}"', f"metric = {DEMO_METRIC}",
        f"dry_run = {'true' if dry_run else 'false'}",
        "", "[control]", f'socket = "{socket}"', "",
    ]
    return "\n".join(lines)
