"""`roost import-bird`: Calico's BIRD configurations (tests/data/bird/, one per shape of
confd's compiled templates) converted, then loaded by roost's own configuration loader."""

from __future__ import annotations

import ipaddress
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from bgp.types import IPV4_UNICAST
from roost import config as cfg
from roost import import_bird as ib
from roost.cli import main

DATA = Path(__file__).resolve().parents[1] / "data" / "bird"


def _convert(name: str) -> tuple[cfg.Config, ib.Result]:
    result = ib.convert(DATA / name / "bird.cfg")
    return cfg.loads(result.toml, f"{name}.toml"), result


def _peers(config: cfg.Config) -> dict[str, cfg.PeerConfig]:
    return {str(p.address): p for p in config.peers}


def _net(text: str) -> ipaddress.IPv4Network:
    return ipaddress.IPv4Network(text)


def test_mesh_with_cross_subnet_ipip() -> None:
    config, result = _convert("mesh-ipip-cross-subnet")
    r = config.router
    assert (r.asn, str(r.router_id)) == (64512, "10.192.0.2")
    # The static blackholes of the included bird_aggr.cfg are the node's blocks.
    assert r.prefixes == (_net("192.168.1.0/26"), _net("192.168.1.192/26"))
    assert r.graceful_restart.enabled and r.graceful_restart.restart_time == 120
    assert r.connect_retry_time == 5
    assert config.mesh is not None
    assert config.mesh.compare == "string" and config.mesh.passive_side == "smaller"
    assert [str(n) for n in config.mesh.nodes] == [
        "10.192.0.2", "10.192.0.3", "10.192.0.6", "10.192.0.10"]
    peers = _peers(config)
    assert set(peers) == {"10.192.0.3", "10.192.0.6", "10.192.0.10"}  # ourselves skipped
    # Calico's direction: the larger address *string* waits ("10.192.0.10" < "10.192.0.2").
    assert {a: p.passive for a, p in peers.items()} == {
        "10.192.0.3": True, "10.192.0.6": True, "10.192.0.10": False}
    for p in peers.values():
        assert p.kind == "mesh" and p.name == "Mesh_" + str(p.address).replace(".", "_")
        assert p.asn == 64512 and p.password == "mesh-s3cret"
        assert str(p.local_address) == "10.192.0.2"
        assert p.add_paths == "both" and p.families == (IPV4_UNICAST,)
    # krt_tunnel in calico_kernel_programming (bird_ipam.cfg): CrossSubnet pool.
    k = config.kernel
    assert k.tunnel == "never"
    assert [(str(p.cidr), p.tunnel) for p in k.pools] == [("192.168.0.0/16", "cross-subnet")]
    assert result.toml.startswith("# roost configuration converted from ")
    assert "it is a secret" in result.toml and "password_file" in result.toml
    # connect delay / error wait have no equivalent: said, with their line.
    assert [w.split(": warning: ")[0] for w in result.warnings] == [
        f"{DATA}/mesh-ipip-cross-subnet/bird.cfg:43", f"{DATA}/mesh-ipip-cross-subnet/bird.cfg:45"]


def test_cluster_routes_ipip_only_with_global_and_node_peers() -> None:
    config, result = _convert("cluster-routes-ipip-only")
    r = config.router
    assert [str(a) for a in r.listen] == ["10.192.0.4"] and r.port == 179
    assert r.graceful_restart.wait == 300  # BIRD's `graceful restart wait`, for `run -R`
    assert r.prefixes == (_net("172.16.4.0/26"), _net("192.168.4.64/26"))
    assert config.mesh is None and config.reflector is None
    assert [(str(p.cidr), p.tunnel) for p in config.kernel.pools] == [
        ("172.16.0.0/16", "cross-subnet"), ("192.168.0.0/16", "always")]
    peers = _peers(config)
    tor = peers["10.192.0.254"]  # Global_: eBGP to the top of rack
    assert (tor.asn, tor.ttl_security, tor.multihop) == (64999, 2, None)
    assert tor.password == "tor-key-1" and tor.next_hop == "self" and tor.keepalive_time == 10
    assert (tor.import_policy, tor.export_policy) == ("calico-import", "calico-export")
    export = config.policies["calico-export"]
    assert export.default == "reject"
    assert export.terms[0].match.prefix == (_net("172.16.0.0/16"), _net("192.168.0.0/16"))
    node = peers["10.192.0.5"]  # Node_: iBGP
    assert node.next_hop == "keep" and node.allow_local_as == 1
    assert node.import_policy is None and node.multihop is None
    warned = "\n".join(result.warnings)
    assert "bird.cfg:60: warning: Calico's route priority filters" in warned
    # A pool whose routes Calico's BIRD leaves to Felix cannot be expressed: said.
    assert "bird_ipam.cfg:21: warning: pool 172.17.0.0/16" in warned


def test_route_reflector() -> None:
    config, result = _convert("route-reflector")
    assert config.router.asn == 64532
    assert config.reflector is not None
    assert str(config.reflector.cluster_id) == "10.0.0.1"
    assert config.router.graceful_restart.restart_time == 300
    assert config.kernel.enabled  # the reflector has a block of its own: installs
    assert [(str(p.cidr), p.tunnel) for p in config.kernel.pools] == [
        ("10.244.0.0/16", "always")]
    peers = _peers(config)
    assert {a for a, p in peers.items() if p.rr_client} == {"10.192.0.3", "10.192.0.4"}
    assert [a for a, p in peers.items() if p.passive] == ["10.192.0.4"]
    far = peers["172.19.4.87"]
    assert (far.asn, far.port, far.multihop, far.next_hop) == (64533, 1179, 255, "keep")
    assert not far.rr_client
    # With an eBGP peer bringing outside routes, the clients get Calico's export filter
    # too (calico_export_to_bgp_peers(true): the IP pools only), as BIRD would send.
    assert {peers[a].export_policy for a in ("10.192.0.3", "10.192.0.4")} == {"calico-export"}
    assert peers["10.192.0.3"].import_policy is None
    assert "secret" not in result.toml  # no password in this file


def _write(tmp_path: Path, text: str, name: str = "bird.cfg") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


HEAD = """\
router id 10.0.0.1;
template bgp bgp_template {
  local as 64512;
}
"""


def test_unsupported_statements_warn_with_file_and_line(tmp_path: Path) -> None:
    path = _write(tmp_path, HEAD + """\
include "bird_aggr.cfg";
protocol ospf backbone {
  area 0 { interface "eth0"; };
}
protocol bgp Node_10_0_0_2 from bgp_template {
  neighbor 10.0.0.2 as 64512;
  bfd on;
}
protocol static {
  route 10.9.0.0/24 via 10.0.0.254;
}
""")
    result = ib.convert(path)
    assert result.warnings == [
        f"{path}:5: warning: include \"bird_aggr.cfg\": {tmp_path}/bird_aggr.cfg not found; "
        "its statements (Calico: the host's blocks, IP pools) are not converted",
        f"{path}:6: warning: `protocol ospf backbone {{ ... }}` is not understood; left out",
        f"{path}:11: warning: `bfd on` is not converted",
        f"{path}:14: warning: static route `route 10.9.0.0/24 via 10.0.0.254` is not "
        "converted (roost originates blackholed blocks only; add the route to the kernel "
        "by other means)",
    ]
    config = cfg.loads(result.toml)
    assert [str(p.address) for p in config.peers] == ["10.0.0.2"]


def test_included_file_is_read_relative_to_the_including_one(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    _write(tmp_path / "sub", 'protocol static {\n  route 10.1.0.0/26 blackhole;\n}\n',
           "aggr.cfg")
    path = _write(tmp_path, HEAD + 'include "sub/aggr.cfg";\n')
    config = cfg.loads(ib.convert(path).toml)
    assert config.router.prefixes == (_net("10.1.0.0/26"),)


@pytest.mark.parametrize(("text", "line", "message"), [
    (HEAD + "protocol bgp x from bgp_template {\n  neighbor 10.0.0.2 as 64512;\n",
     6, "missing '}' at the end of the file"),
    (HEAD + "}\n", 5, "'}' without a matching '{'"),
    (HEAD + '/* a comment\n over two lines */\nprotocol bgp x {\n  password "open\n}\n',
     8, "unterminated string"),
    (HEAD + "protocol bgp x from bgp_template {\n  neighbor 10.0.0.300 as 64512;\n}\n",
     6, "neighbor: '10.0.0.300' is not an IP address"),
    (HEAD + "protocol bgp x from nowhere {\n  neighbor 10.0.0.2 as 64512;\n}\n",
     5, "template 'nowhere' is not defined before protocol x"),
    (HEAD + "router id 10.0.0.1\n", 5, "statement `router id 10.0.0.1` has no ';'"),
])
def test_syntax_error_names_file_and_line(tmp_path: Path, text: str, line: int,
                                          message: str) -> None:
    path = _write(tmp_path, text)
    with pytest.raises(ib.BirdSyntaxError) as err:
        ib.convert(path)
    assert str(err.value) == f"{path}:{line}: error: {message}"


def test_command_line(tmp_path: Path) -> None:
    out = tmp_path / "roost.toml"
    out.write_text("")
    out.chmod(0o644)  # an existing, readable file: it must end up 0600 all the same
    runner = CliRunner()
    res = runner.invoke(main, ["import-bird", str(DATA / "mesh-ipip-cross-subnet" / "bird.cfg"),
                               "-o", str(out)])
    assert res.exit_code == 0, res.output
    assert os.stat(out).st_mode & 0o777 == 0o600  # it holds the mesh password
    assert cfg.load(out).mesh is not None
    assert ": warning: `connect delay time 2`" in res.output
    res = runner.invoke(main, ["check", "-c", str(out)])
    assert res.exit_code == 0 and res.output.startswith("OK ")
    bad = _write(tmp_path, "router id 10.0.0.1;\nprotocol bgp x {\n")
    res = runner.invoke(main, ["import-bird", str(bad)])
    assert res.exit_code == 1
    assert f"roost: {bad}:2: error: missing '}}'" in res.output
