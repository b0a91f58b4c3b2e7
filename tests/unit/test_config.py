"""roost.config: the two documented examples load as written; every kind of mistake is
reported as file:line: dotted.key: message; mesh expansion and the passive rule."""

from __future__ import annotations

import ipaddress
import textwrap
from pathlib import Path

import pytest

from bgp.types import IPV4_UNICAST, IPV6_UNICAST
from roost import config as cfg

NODE = """\
[router]
asn = 64512
id = "192.168.100.100"
listen = "192.168.100.100"      # optional; port 179 unless `port` is set
prefixes = ["172.17.8.0/24"]    # the node's blocks, originated

[kernel]                        # used by the kernel sink
tunnel = "cross-subnet"         # never | always | cross-subnet

[[peer]]
address = "192.168.100.101"
asn = 64512
"""

RR = """\
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


def _errors(text: str, name: str = "t.toml") -> list[str]:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.loads(textwrap.dedent(text), name)
    return [str(i) for i in info.value.issues]


# --------------------------------------------------------------------------- examples


def test_node_example_loads_as_written(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(NODE)
    c = cfg.load(path)
    assert c.router.asn == 64512
    assert c.router.router_id == ipaddress.IPv4Address("192.168.100.100")
    assert c.router.listen == (ipaddress.IPv4Address("192.168.100.100"),)
    assert c.router.port == 179
    assert c.router.prefixes == (ipaddress.IPv4Network("172.17.8.0/24"),)
    assert c.router.next_hop_v4 == ipaddress.IPv4Address("192.168.100.100")
    assert c.kernel.enabled and c.kernel.tunnel == "cross-subnet"
    assert c.kernel.metric == 1024 and c.kernel.table == 254 and c.kernel.blackhole
    (peer,) = c.peers
    assert peer.address == ipaddress.IPv4Address("192.168.100.101")
    assert peer.asn == 64512 and peer.is_ibgp(64512)
    assert peer.kind == "static" and not peer.passive and peer.port == 179
    assert peer.families == (IPV4_UNICAST,)
    assert peer.add_paths == "both"  # iBGP default, like Calico's `add paths on`
    assert peer.hold_time == 90 and peer.connect_retry_time == 5.0
    assert peer.name == "Node_192_168_100_101"
    assert c.reflector is None and c.mesh is None
    assert c.control.socket == "/run/roost/roost.ctl"


def test_reflector_example_loads_as_written() -> None:
    c = cfg.loads(RR, "rr.toml")
    assert c.reflector is not None
    assert c.reflector.cluster_id == ipaddress.IPv4Address("10.0.0.1")
    assert c.reflector.client_to_client is True
    assert c.reflector.install is False  # a pure reflector installs nothing ...
    assert c.kernel.enabled is False  # ... so it needs no kernel sink
    (peer,) = c.peers
    assert peer.rr_client and peer.is_ibgp(64512)
    assert c.router.prefixes == ()


def test_summary_mentions_the_essentials() -> None:
    text = cfg.loads(RR, "rr.toml").summary()
    assert "AS64512" in text and "10.0.0.1" in text and "route reflector" in text


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (RR.replace("asn = 64512\nrr_client", "asn = 0\nrr_client"),
         "rr.toml:10: peer[0].asn: must be 1..4294967295, got 0"),
        ("[router]\nasn = 64512\n", "rr.toml:1: router.id: required key is missing"),
        ("[router]\nasn = 70000000000\nid = '1.2.3.4'\n",
         "rr.toml:2: router.asn: must be 1..4294967295, got 70000000000"),
        ("[router]\nasn = '64512'\nid = '1.2.3.4'\n",
         'rr.toml:2: router.asn: must be an integer, got "64512"'),
        ("[router]\nasn = 1\nid = '1.2.3'\n", 'rr.toml:3: router.id: not an IP address: "1.2.3"'),
        ("[router]\nasn = 1\nid = '::1'\n", "router.id: must be an IPv4 address"),
        ("[router]\nasn = 1\nid = '0.0.0.0'\n", "rr.toml:3: router.id: must not be 0.0.0.0"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nprefixes = ['10.0.0.0/24', '10.1.2.3/24']\n",
         "rr.toml:4: router.prefixes[1]: 10.1.2.3/24 has host bits set; did you mean 10.1.2.0/24?"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nprefixes = ['10.0.0.0/24', '10.0.0.0/24']\n",
         "rr.toml:4: router.prefixes: 10.0.0.0/24 is listed twice"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nhold_time = 2\n",
         "rr.toml:4: router.hold_time: must be 0 or 3..65535"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nhold_time = 9\nkeepalive_time = 4\n",
         "rr.toml:5: router.keepalive_time: must be at most hold_time / 3 = 3, got 4"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nport = 0\n",
         "rr.toml:4: router.port: must be 1..65535"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nlistne = '1.2.3.4'\n",
         "rr.toml:4: router.listne: unknown key; did you mean 'listen'?"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[kernel]\ntunnel = 'sometimes'\n",
         "rr.toml:5: kernel.tunnel: must be one of never, always, cross-subnet"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[kernel]\ntable = 'mian'\n",
         "rr.toml:5: kernel.table: must be"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[kernel]\n[[kernel.pool]]\ncidr = '10.0.0.0/8'\n"
         "[[kernel.pool]]\ncidr = '10.0.0.1/8'\n",
         "rr.toml:8: kernel.pool[1].cidr: 10.0.0.1/8 has host bits set"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\n",
         "rr.toml:4: peer[0].asn: required key is missing"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.4'\nasn = 1\n",
         "rr.toml:5: peer[0].address: 1.2.3.4 is this router's own address"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "[[peer]]\naddress = '1.2.3.5'\nasn = 1\n",
         "rr.toml:8: peer[1].address: 1.2.3.5 is already configured at peer[0]"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "rr_client = true\n",
         "rr.toml:7: peer[0].rr_client: rr_client needs a [reflector] table"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[reflector]\n[[peer]]\naddress = '1.2.3.5'\n"
         "asn = 2\nrr_client = true\n",
         "rr.toml:8: peer[0].rr_client: route reflector clients must be iBGP"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "families = ['ipv4', 'ipx']\n",
         'rr.toml:7: peer[0].families[1]: must be ipv4 or ipv6, got "ipx"'),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "add_paths = 'sometimes'\n", "rr.toml:7: peer[0].add_paths: must be false, true"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "ttl_security = 1\nmultihop = 3\n",
         "rr.toml:8: peer[0].multihop: ttl_security already limits the hop count"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "next_hop = 'other'\n", "rr.toml:7: peer[0].next_hop: must be one of auto, self, keep"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "import = 'missing'\n",
         "rr.toml:7: peer[0].import: no policy named 'missing' (policies: none defined)"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "password = ''\n", "rr.toml:7: peer[0].password: TCP MD5 keys are 1..80 bytes"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '::2'\nasn = 1\n"
         "local_address = '1.2.3.4'\n",
         "rr.toml:7: peer[0].local_address: 1.2.3.4 is not of the same family as ::2"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[reflector]\ncluster_id = '0.0.0.0'\n",
         "rr.toml:5: reflector.cluster_id: must not be 0.0.0.0"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[reflector]\n[[reflector.dynamic]]\nasn = 1\n",
         "rr.toml:5: reflector.dynamic[0].range: required key is missing"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[mesh]\nnodes = []\n",
         "rr.toml:5: mesh.nodes: must list at least one node address"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[mesh]\nnodes = ['1.2.3.4', '1.2.3.5', 'x']\n",
         'rr.toml:5: mesh.nodes[2]: not an IP address: "x"'),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[mesh]\nnodes = ['1.2.3.5']\ncompare = 'lexical'\n",
         "rr.toml:6: mesh.compare: must be one of numeric, string"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[control]\nsocket = ''\n",
         "rr.toml:5: control.socket: must not be empty"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[policy.p]\ndefault = 'maybe'\n",
         "rr.toml:5: policy.p.default: must be one of accept, reject"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[policy.p]\n[[policy.p.term]]\n"
         "then = { action = 'accept' }\n[[policy.p.term]]\nmatch = { prefix = ['10.0.0.0/8'] }\n"
         "then = { action = 'accept', local_pref = -1 }\n",
         "rr.toml:9: policy.p.term[1].then.local_pref: must be 0..4294967295, got -1"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[policy.p]\n[[policy.p.term]]\n"
         "match = { community = '65536:1' }\nthen = { action = 'accept' }\n",
         "rr.toml:6: policy.p.term[0].match.community: a community is"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[policy.p]\n[[policy.p.term]]\n"
         "match = { prefix = ['10.0.0.0/8'] }\n",
         "rr.toml:5: policy.p.term[0].then: required table is missing"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nbogus = 1\n[bogus2]\n",
         "rr.toml:5: bogus2: unknown key"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[[peer]]\naddress = '1.2.3.5'\nasn = 1\n"
         "graceful_restart = 'yes'\n",
         'rr.toml:7: peer[0].graceful_restart: must be true or false, got "yes"'),
        ("[router]\nasn = 1\nid = '1.2.3.4'\n[router.graceful_restart]\nrestart_time = 5000\n",
         "rr.toml:5: router.graceful_restart.restart_time: must be 1..4095, got 5000"),
        ("[router]\nasn = 1\nid = '1.2.3.4'\nprefixes = ['10.0.0.0/24']\n[reflector]\n"
         "install = true\n[kernel]\nenabled = false\n",
         "rr.toml:8: kernel.enabled: contradicts [reflector] install = true"),
    ],
)
def test_bad_file_reports_file_line_and_key(text: str, expected: str) -> None:
    errors = _errors(text, "rr.toml")
    assert any(expected in e for e in errors), errors


def test_missing_router_table() -> None:
    assert _errors("[[peer]]\naddress = '1.2.3.4'\nasn = 1\n") == [
        "t.toml: router: required table [router] is missing"
    ]


def test_toml_syntax_error_carries_line() -> None:
    (error,) = _errors("[router]\nasn = 64512\nid = 10.0.0.1\n")
    assert error.startswith("t.toml:3: TOML syntax: ")


def test_several_errors_are_collected_in_file_order() -> None:
    errors = _errors(
        """\
        [router]
        asn = 0
        id = "10.0.0.1"

        [[peer]]
        address = "10.0.0.2"
        asn = 64512

        [[peer]]
        address = "10.0.0.3"
        asn = 0
        hold_tme = 5
        """
    )
    assert errors == [
        "t.toml:2: router.asn: must be 1..4294967295, got 0",
        "t.toml:11: peer[1].asn: must be 1..4294967295, got 0",
        "t.toml:12: peer[1].hold_tme: unknown key; did you mean 'hold_time'?",
    ]


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(cfg.ConfigError) as info:
        cfg.load(tmp_path / "nope.toml")
    assert str(info.value) == f"{tmp_path / 'nope.toml'}: no such file"


def test_line_index_handles_multiline_arrays_and_nested_tables() -> None:
    errors = _errors(
        """\
        [router]
        asn = 1
        id = "1.2.3.4"
        prefixes = [
            "10.0.0.0/24",
            "10.0.1.0/24",
        ]
        [policy.a]
        default = "accept"
        [[policy.a.term]]
        then = { action = "accept" }
        [policy.b]
        [[policy.b.term]]
        then = { action = "accept" }
        [[policy.b.term]]
        [policy.b.term.then]
        action = "nope"
        """
    )
    assert errors == [
        't.toml:17: policy.b.term[1].then.action: must be one of accept, reject, next; got "nope"'
    ]


# --------------------------------------------------------------------------- mesh


MESH = """\
[router]
asn = 64512
id = "192.168.100.{me}"
prefixes = ["172.17.{block}.0/24"]

[mesh]
nodes = ["192.168.100.100", "192.168.100.101", "192.168.100.102",
         "192.168.100.103", "192.168.100.104", "192.168.100.105"]
password = "s3cret"
connect_retry_time = 1
"""


def test_mesh_expands_to_every_other_node() -> None:
    c = cfg.loads(MESH.format(me=102, block=10))
    assert [str(p.address) for p in c.peers] == [
        "192.168.100.100", "192.168.100.101", "192.168.100.103",
        "192.168.100.104", "192.168.100.105",
    ]
    assert all(p.kind == "mesh" and p.asn == 64512 for p in c.peers)
    assert all(p.password == "s3cret" and p.connect_retry_time == 1.0 for p in c.peers)
    assert c.peers[0].name == "Mesh_192_168_100_100"
    assert c.mesh is not None and c.mesh.local_address == ipaddress.IPv4Address("192.168.100.102")


def test_mesh_larger_address_is_passive_compared_numerically() -> None:
    # The documented rule: of each pair the side with the numerically larger address
    # waits, the smaller one connects.
    c = cfg.loads(MESH.format(me=102, block=10))
    passive = {str(p.address): p.passive for p in c.peers}
    assert passive == {
        "192.168.100.100": True, "192.168.100.101": True,
        "192.168.100.103": False, "192.168.100.104": False, "192.168.100.105": False,
    }
    # Each pair has exactly one active side.
    configs = [cfg.loads(MESH.format(me=100 + i, block=8 + i)) for i in range(6)]
    for a in configs:
        for p in a.peers:
            b = next(c for c in configs if c.router.router_id == p.address)
            back = next(q for q in b.peers if q.address == a.router.router_id)
            assert p.passive != back.passive


def test_mesh_calico_compatible_direction() -> None:
    # Calico: `if peerIP > currentNodeIP { peer.Passive = true }` -- the smaller side waits.
    c = cfg.loads(MESH.format(me=102, block=10) + 'passive_side = "smaller"\n')
    passive = {str(p.address): p.passive for p in c.peers}
    assert passive == {
        "192.168.100.100": False, "192.168.100.101": False,
        "192.168.100.103": True, "192.168.100.104": True, "192.168.100.105": True,
    }


def test_mesh_numeric_versus_string_comparison() -> None:
    text = """\
    [router]
    asn = 1
    id = "10.0.0.9"
    [mesh]
    nodes = ["10.0.0.9", "10.0.0.10"]
    """
    numeric = cfg.loads(textwrap.dedent(text))
    assert numeric.peers[0].passive is False  # we are smaller: 10.0.0.9 < 10.0.0.10
    string = cfg.loads(textwrap.dedent(text) + 'compare = "string"\n')
    assert string.peers[0].passive is True  # "10.0.0.9" > "10.0.0.10" as strings


def test_mesh_node_also_listed_as_peer_is_an_error() -> None:
    errors = _errors(
        """\
        [router]
        asn = 1
        id = "10.0.0.1"
        [mesh]
        nodes = ["10.0.0.1", "10.0.0.2"]
        [[peer]]
        address = "10.0.0.2"
        asn = 1
        """
    )
    assert errors == [
        "t.toml:5: mesh.nodes: 10.0.0.2 is also configured as peer[0]; remove one of them"
    ]


# --------------------------------------------------------------------------- the rest


def test_full_configuration() -> None:
    c = cfg.loads(
        textwrap.dedent(
            """\
            [router]
            asn = 65001
            id = "10.0.0.1"
            listen = ["10.0.0.1", "fd00::1"]
            port = 1179
            prefixes = ["172.17.8.0/24", "fd10:8::/64"]
            next_hop6 = "fd00::1"
            hold_time = 9
            keepalive_time = 3
            connect_retry_time = 0.5
            graceful_restart = { enabled = true, restart_time = 60 }
            ebgp_requires_policy = false

            [control]
            socket = "/tmp/roost-test.ctl"

            [kernel]
            tunnel = "always"
            metric = 512
            table = 100
            blackhole = false
            dry_run = true
            [[kernel.pool]]
            cidr = "172.17.0.0/16"
            tunnel = "cross-subnet"

            [reflector]
            cluster_id = 1
            client_to_client = false
            [[reflector.dynamic]]
            range = "10.0.1.0/24"
            asn = 65001
            families = ["ipv4", "ipv6"]

            [policy.out]
            default = "reject"
            [[policy.out.term]]
            name = "blocks"
            match = { prefix = ["172.17.0.0/16"], prefix_length = "24..26" }
            then = { action = "accept", local_pref = 200, add_community = ["65001:1"] }

            [[peer]]
            address = "10.0.0.2"
            asn = 65002
            multihop = true
            export = "out"
            import = "out"
            next_hop = "keep"
            description = "rack 2 reflector"
            """
        )
    )
    assert c.router.port == 1179 and c.router.connect_retry_time == 0.5
    assert c.router.graceful_restart == cfg.GracefulRestart(True, 60)
    assert c.kernel.tunnel_for(ipaddress.ip_network("172.17.9.0/24")) == "cross-subnet"
    assert c.kernel.tunnel_for(ipaddress.ip_network("10.9.0.0/24")) == "always"
    assert c.kernel.table == 100 and c.kernel.dry_run
    assert c.reflector is not None and c.reflector.cluster_id == ipaddress.IPv4Address(1)
    assert c.reflector.install is True  # it has prefixes, so it is not a pure reflector
    (dyn,) = c.reflector.dynamic
    assert dyn.template.rr_client and dyn.template.passive
    assert dyn.template.families == (IPV4_UNICAST, IPV6_UNICAST)
    new = dyn.peer_for(ipaddress.ip_address("10.0.1.7"))
    assert new.name == "Dynamic_10_0_1_7" and new.kind == "dynamic"
    (peer,) = c.peers
    assert peer.multihop == 255 and peer.add_paths == "off"  # eBGP: no ADD-PATH by default
    assert peer.hold_time == 9 and peer.keepalive_time == 3  # inherited from [router]
    term = c.policies["out"].terms[0]
    assert term.match.prefix_length == (24, 26) and term.then.add_community == ((65001, 1),)


def test_policy_compiles_onto_bgp_policy() -> None:
    from bgp.policy import PrefixMatch, SetLocalPref
    from bgp.wire.prefix import Prefix
    from roost.daemon import compile_policy

    c = cfg.loads(textwrap.dedent("""\
        [router]
        asn = 1
        id = "1.2.3.4"
        [policy.p]
        [[policy.p.term]]
        match = { prefix = ["172.17.0.0/16"], prefix_length = "24..26", peer_type = "ibgp" }
        then = { action = "accept", local_pref = 200, add_community = ["1:2"] }
        """))
    policy = compile_policy(c.policies["p"])
    (term,) = policy.terms
    assert term.match.prefixes == (PrefixMatch(Prefix.parse("172.17.0.0/16"), 24, 26),)
    assert term.match.prefixes[0].matches(Prefix.parse("172.17.9.0/24"))
    assert not term.match.prefixes[0].matches(Prefix.parse("172.17.9.0/27"))
    assert term.actions[0] == SetLocalPref(200)
    assert policy.name == "p" and not policy.is_accept_all
