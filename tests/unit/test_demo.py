"""The demo's topologies and the configurations it generates (no processes, no
namespaces): every generated file passes `roost check`'s loader and means what the
topology says; the expected tables; the summary table."""

from __future__ import annotations

import argparse
import ipaddress
from pathlib import Path

import pytest

from roost import config as cfg
from roost.demo import StepResult, topology
from roost.demo.lab import Lab
from roost.demo.node import _interface
from roost.demo.run import summary
from roost.demo.topology import TOPOLOGY_NAMES, Topology

PLACEMENTS: tuple[topology.Placement, ...] = ("netns", "loopback")


def load_all(topo: Topology, tmp_path: Path) -> dict[str, cfg.Config]:
    loopback = topo.placement == "loopback"
    out = {}
    for node in topo.nodes:
        path = tmp_path / f"{topo.name}-{node.name}.toml"
        path.write_text(topology.config_text(topo, node, port=17900 if loopback else None,
                                             socket=str(tmp_path / f"{node.name}.ctl"),
                                             dry_run=loopback))
        out[node.name] = cfg.load(str(path))
    return out


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_mesh_configs(placement: topology.Placement, tmp_path: Path) -> None:
    topo = topology.build("mesh", placement, "127.9", mesh_nodes=5)
    configs = load_all(topo, tmp_path)
    addresses = {n.address for n in topo.nodes}
    assert len(addresses) == 5
    for node in topo.nodes:
        c = configs[node.name]
        assert {str(p.address) for p in c.peers} == addresses - {node.address}
        assert all(p.is_ibgp(c.router.asn) for p in c.peers)
        assert [str(p) for p in c.router.prefixes] == [node.block]
        # The next hop others install is the node's eth0 address in the topology.
        assert str(c.router.next_hop_v4) == node.host_address == f"10.0.0.{node.name[1:]}"
        assert c.kernel.tunnel == "never" and c.kernel.metric == 0
        assert c.kernel.dry_run is (placement == "loopback")
        if placement == "loopback":
            assert node.address.startswith("127.9.1.")
            assert c.router.port == 17900 and {p.port for p in c.peers} == {17900}
            assert {str(p.local_address) for p in c.peers} == {node.address}
        else:
            assert node.address == node.host_address and c.router.port == 179


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_reflector_configs(placement: topology.Placement, tmp_path: Path) -> None:
    topo = topology.build("reflector", placement, "127.9", rack_nodes=3)
    configs = load_all(topo, tmp_path)
    rrs = [n for n in topo.nodes if n.role == "reflector"]
    assert [n.name for n in rrs] == ["rr-a", "rr-b"] and len(topo.hosts) == 6
    for rr in rrs:
        c = configs[rr.name]
        assert c.reflector is not None and not c.router.prefixes  # a pure reflector
        clients = [p for p in c.peers if p.rr_client]
        assert len(clients) == 3 and all(p.asn == rr.asn for p in clients)
        (ebgp,) = [p for p in c.peers if not p.is_ibgp(rr.asn)]
        assert ebgp.next_hop == "keep" and ebgp.import_policy == ebgp.export_policy == "racks"
        other = next(r for r in rrs if r is not rr)
        assert (str(ebgp.address), ebgp.asn) == (other.address, other.asn)
    for node in topo.hosts:
        (peer,) = configs[node.name].peers
        rr = next(r for r in rrs if r.asn == node.asn)
        assert peer.route_reflector and str(peer.address) == rr.address


@pytest.mark.parametrize("placement", PLACEMENTS)
def test_cross_subnet_configs(placement: topology.Placement, tmp_path: Path) -> None:
    topo = topology.build("cross-subnet", placement, "127.9")
    configs = load_all(topo, tmp_path)
    x1, x2 = topo.nodes
    assert topo.device == "tunl0"
    # Two different subnets, neither a subnet of this (or any) machine: RFC 5737.
    n1 = ipaddress.ip_interface(x1.interface).network
    n2 = ipaddress.ip_interface(x2.interface).network
    assert n1 != n2 and n1.is_private and n2.is_private
    for node, other in ((x1, x2), (x2, x1)):
        c = configs[node.name]
        assert c.kernel.tunnel == "cross-subnet"
        (peer,) = c.peers
        assert str(peer.address) == other.address and peer.is_ibgp(c.router.asn)
        assert str(c.router.next_hop_v4) == node.host_address
        assert topo.expected(node) == {node.block: None,
                                       other.block: (other.host_address, "tunl0")}


def test_expected_tables() -> None:
    topo = topology.build("mesh", "netns", "127.9", mesh_nodes=3)
    h1 = topo.nodes[0]
    assert topo.expected(h1) == {
        "172.17.1.0/24": None,
        "172.17.2.0/24": ("10.0.0.2", "eth0"),
        "172.17.3.0/24": ("10.0.0.3", "eth0"),
    }
    assert h1.container == "172.17.1.2"


def test_every_topology_has_a_picture_with_every_node() -> None:
    for name in TOPOLOGY_NAMES:
        topo = topology.build(name, "netns", "127.9")
        for node in topo.nodes:
            assert node.host_address in topo.picture, (name, node)


def test_bad_sizes_and_names_are_refused() -> None:
    with pytest.raises(ValueError, match=r"2\.\.20 nodes"):
        topology.build("mesh", "netns", "127.9", mesh_nodes=1)
    with pytest.raises(ValueError, match=r"1\.\.8 nodes"):
        topology.build("reflector", "netns", "127.9", rack_nodes=0)
    with pytest.raises(ValueError, match="unknown topology 'ring'"):
        topology.build("ring", "netns", "127.9")


def test_summary_table() -> None:
    text = summary([
        StepResult("mesh", 4, 12, 1.25, 3, 0),
        StepResult("reflector", 6, 0, None, 0, 0),
        StepResult("cross-subnet", 2, 2, 0.5, 0, 0, "no ipip in this kernel"),
    ])
    assert text.splitlines() == [
        "   topology      nodes  routes  converged  pings",
        "   mesh          4      12      1.2 s      3 ok, 0 failed",
        "   reflector     6      0       FAILED     not run",
        "   cross-subnet  2      2       0.5 s      skipped (no ipip in this kernel)",
    ]
    assert StepResult("mesh", 4, 12, 1.0, 3, 0).ok
    assert not StepResult("mesh", 4, 12, 1.0, 2, 1).ok
    assert not StepResult("mesh", 4, 0, None, 0, 0).ok


def test_node_interface_argument() -> None:
    assert _interface("eth0=10.0.0.1/24") == ("eth0", ipaddress.IPv4Interface("10.0.0.1/24"))
    for bad in ("eth0", "=10.0.0.1/24", "eth0=10.0.0.300/24"):
        with pytest.raises(argparse.ArgumentTypeError):
            _interface(bad)


def test_lab_names_are_its_own(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="roost-demo-"):
        Lab(tmp_path, "roost-1234-")
