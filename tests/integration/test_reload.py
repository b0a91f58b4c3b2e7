"""Live reload flaps only what changed.

A route reflector `hub` (roost) with four roost clients h1..h4, each in its own network
namespace on one bridge and originating one /24; a fifth node h5 waits to be configured.
The hub's file is edited step by step and applied with `roost reload` (the command line)
or SIGHUP. After each step every session's established counter, on both sides, shows
that exactly the sessions meant to flap did:

1. h1's hold time changes: only the hub-h1 session is reset (and negotiates 30 s).
2. h5 is added: it comes up; nobody else flaps.
3. h4 is removed: h4 gets Cease / Peer De-configured (RFC 4486 subcode 3).
4. The import policy rejects h2's block: the hub and the clients lose it, zero flaps.
5. An export policy towards h3 hides h1's block from h3 only, zero flaps.
6. An originated prefix is added, then removed: every client sees it come and go.
7. A broken file: exit status 1, `file:line: key: message`, nothing changed.
8. A router id change: reported as needing a restart, not applied.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest

from tests.harness.netns import Lab, wait_for
from tests.integration.roost_node import REPO, RoostNode

pytestmark = pytest.mark.needs_root

ASN = 64512
EXTRA = "172.17.100.0/24"


def block(i: int) -> str:
    return f"172.17.{8 + i}.0/24"


def client_config(addr: str, i: int, hub: str) -> str:
    return f"""\
[router]
asn = {ASN}
id = "{addr}"
listen = "{addr}"
prefixes = ["{block(i)}"]
connect_retry_time = 1

[[peer]]
address = "{hub}"
asn = {ASN}
route_reflector = true
passive = true  # the hub connects: no connection collisions to blur the counters
"""


class Hub:
    """The hub's configuration as data, written out as TOML for each step."""

    def __init__(self, addr: str, clients: dict[int, str]) -> None:
        self.addr = addr
        self.router_id = addr
        self.clients = dict(clients)  # index -> address
        self.hold: dict[int, int] = {}
        self.export: dict[int, str] = {}
        self.prefixes = [block(0)]
        self.reject_import: list[str] = []
        self.broken = False

    def text(self) -> str:
        lines = [
            "[router]", f"asn = {ASN}", f'id = "{self.router_id}"', f'listen = "{self.addr}"',
            "prefixes = [" + ", ".join(f'"{p}"' for p in self.prefixes) + "]",
            "connect_retry_time = 1", "",
            "[reflector]", f'cluster_id = "{self.addr}"', "",
            "[policy.from-clients]", 'default = "accept"', "",
        ]
        for net in self.reject_import:
            lines += ["[[policy.from-clients.term]]", f'match = {{ prefix_exact = ["{net}"] }}',
                      'then = { action = "reject" }', ""]
        lines += ["[policy.to-h3]", 'default = "accept"', "",
                  "[[policy.to-h3.term]]", f'match = {{ prefix_exact = ["{block(1)}"] }}',
                  'then = { action = "reject" }', ""]
        for i, addr in sorted(self.clients.items()):
            lines += ["[[peer]]", f'address = "{addr}"', f"asn = {ASN}", "rr_client = true",
                      'import = "from-clients"']
            if self.broken and i == 1:
                lines.append("hold_time = 1")  # must be 0 or 3..65535
            elif i in self.hold:
                lines.append(f"hold_time = {self.hold[i]}")
            if i in self.export:
                lines.append(f'export = "{self.export[i]}"')
            lines.append("")
        return "\n".join(lines)


def _write(node: RoostNode, hub: Hub) -> None:
    node.config_path.write_text(hub.text() + f'\n[control]\nsocket = "{node.socket}"\n')


def _cli_reload(node: RoostNode, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "roost", "reload", "--socket", node.socket, *extra],
        capture_output=True, text=True, timeout=60, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )


def _sighup(node: RoostNode) -> None:
    assert node.proc is not None
    done = node.log_path.read_text().count("reload done:")
    os.kill(node.proc.pid, signal.SIGHUP)
    wait_for(lambda: node.log_path.read_text().count("reload done:") > done, 10,
             what="SIGHUP reload done", on_timeout=node.log_tail)


def _peers(node: RoostNode) -> dict[str, dict[str, Any]]:
    return {p["address"]: p for p in node.show("peers")}


class Sessions:
    """Every hub session seen from both ends: on the hub the time of its last state
    change (a reset peer is a new peer object whose counter starts again), on the client
    its established counter."""

    def __init__(self, hub: RoostNode, clients: dict[str, RoostNode]) -> None:
        self.hub = hub
        self.clients = clients

    def counts(self) -> dict[str, tuple[float, int]]:
        """client address -> (`since` on the hub, count on the client) for each session
        the hub has configured."""
        out = {}
        for addr, row in _peers(self.hub).items():
            client = _peers(self.clients[addr])[str(self.hub.host.addr4)]
            out[addr] = (row["since"], client["established_count"])
        return out

    def all_up(self) -> bool:
        return all(p["state"] == "Established" for p in _peers(self.hub).values()) and all(
            _peers(self.clients[a])[str(self.hub.host.addr4)]["state"] == "Established"
            for a in _peers(self.hub))


def _routes(node: RoostNode) -> set[str]:
    return set(node.best_routes())


def _wait(pred: Callable[[], bool], what: str, nodes: list[RoostNode]) -> None:
    wait_for(pred, 20, what=what,
             on_timeout=lambda: "\n".join(n.log_tail(20) for n in nodes))


def test_reload_flaps_only_what_changed(lab: Lab) -> None:
    hosts = lab.flat(6, names=["hub", "h1", "h2", "h3", "h4", "h5"], v6=False)
    hub_host, client_hosts = hosts[0], hosts[1:]
    addrs = {i: str(h.addr4) for i, h in enumerate(client_hosts, start=1)}
    hub_addr = str(hub_host.addr4)
    hub_conf = Hub(hub_addr, {i: a for i, a in addrs.items() if i <= 4})
    hub = RoostNode(hub_host, hub_conf.text())
    clients = {a: RoostNode(client_hosts[i - 1], client_config(a, i, hub_addr))
               for i, a in addrs.items()}
    everyone = [hub, *clients.values()]
    for node in everyone:
        node.start()
    sessions = Sessions(hub, clients)
    c = {i: clients[a] for i, a in addrs.items()}
    blocks4 = {block(i) for i in range(5)}
    _wait(lambda: len(_peers(hub)) == 4 and sessions.all_up()
          and all(_routes(c[i]) == blocks4 for i in range(1, 5)), "start-up", everyone)
    before = sessions.counts()
    assert {count for _, count in before.values()} == {1}

    def flapped(since: dict[str, tuple[float, int]]) -> set[str]:
        now = sessions.counts()
        return {a for a in now if a in since and now[a] != since[a]}

    # 1. One peer's hold time (`roost reload`): that session, and only it, is reset.
    hub_conf.hold[1] = 30
    _write(hub, hub_conf)
    cp = _cli_reload(hub, "--json")
    assert cp.returncode == 0, cp.stderr
    assert '"peers_reset": [\n    "' + str(addrs[1]) + '"\n  ]' in cp.stdout, cp.stdout
    _wait(lambda: sessions.counts()[str(addrs[1])][1] == 2 and sessions.all_up(),
          "h1 re-established", everyone)
    assert _peers(hub)[str(addrs[1])]["established_count"] == 1  # a new peer
    assert flapped(before) == {addrs[1]}
    assert _peers(hub)[str(addrs[1])]["hold_time"] == 30
    assert _peers(hub)[str(addrs[2])]["hold_time"] == 90
    before = sessions.counts()

    # 2. A new peer (SIGHUP): it comes up, nobody else flaps.
    hub_conf.clients[5] = str(addrs[5])
    _write(hub, hub_conf)
    _sighup(hub)
    _wait(lambda: len(_peers(hub)) == 5 and sessions.all_up()
          and block(5) in _routes(c[1]), "h5 added", everyone)
    assert flapped(before) == set()
    assert "reload: adding Node_" + addrs[5].replace(".", "_") in hub.log_path.read_text()
    before = sessions.counts()

    # 3. A peer removed (`roost reload`): Cease / Peer De-configured on the wire.
    del hub_conf.clients[4]
    _write(hub, hub_conf)
    cp = _cli_reload(hub)
    assert cp.returncode == 0, cp.stderr
    assert f"peers removed:         {addrs[4]}" in cp.stdout, cp.stdout
    _wait(lambda: _peers(c[4])[hub_addr]["last_down"] is not None, "h4 down", everyone)
    gone = _peers(c[4])[hub_addr]
    assert gone["state"] != "Established"
    assert "CEASE/3" in gone["last_down"], gone  # RFC 4486: Peer De-configured
    _wait(lambda: block(4) not in _routes(c[1]), "h4's block withdrawn", everyone)
    assert flapped(before) == set()
    del before[str(addrs[4])]

    # 4. Import policy (SIGHUP): h2's block rejected at the hub, sessions untouched.
    hub_conf.reject_import = [block(2)]
    _write(hub, hub_conf)
    _sighup(hub)
    _wait(lambda: block(2) not in _routes(hub) and block(2) not in _routes(c[1])
          and block(2) not in _routes(c[5]), "h2's block rejected", everyone)
    assert flapped(before) == set()
    reasons = hub.show("route-reasons", block(2))
    assert [(r["peer"], "import" in r["reason"]) for r in reasons["rejected"]] == [
        (addrs[2], True)], reasons
    # ... and accepted again from the stored Adj-RIB-In.
    hub_conf.reject_import = []
    _write(hub, hub_conf)
    cp = _cli_reload(hub)
    assert cp.returncode == 0 and "policies re-applied" in cp.stdout, cp.stdout
    _wait(lambda: block(2) in _routes(c[1]), "h2's block back", everyone)
    assert flapped(before) == set()

    # 5. Export policy towards h3 (`roost reload`): h3 loses h1's block, nobody flaps.
    hub_conf.export[3] = "to-h3"
    _write(hub, hub_conf)
    assert _cli_reload(hub).returncode == 0
    _wait(lambda: block(1) not in _routes(c[3]), "h1's block hidden from h3", everyone)
    assert block(1) in _routes(c[2]) and block(1) in _routes(c[5])
    assert flapped(before) == set()

    # 6. An originated prefix added (`roost reload`), then withdrawn (SIGHUP).
    hub_conf.prefixes.append(EXTRA)
    _write(hub, hub_conf)
    cp = _cli_reload(hub)
    assert f"prefixes added:        {EXTRA}" in cp.stdout, cp.stdout
    live = [c[1], c[2], c[3], c[5]]
    _wait(lambda: all(EXTRA in _routes(n) for n in live), "extra prefix announced", everyone)
    hub_conf.prefixes.remove(EXTRA)
    _write(hub, hub_conf)
    _sighup(hub)
    _wait(lambda: all(EXTRA not in _routes(n) for n in live), "extra prefix withdrawn",
          everyone)
    assert flapped(before) == set()

    # 7. A broken file: exit 1 with file:line: key: message; the running state stays.
    status = hub.show("status")
    hub_conf.broken = True
    hub_conf.prefixes.append(EXTRA)
    _write(hub, hub_conf)
    cp = _cli_reload(hub)
    assert cp.returncode == 1
    line = next(i for i, text in enumerate(hub.config_path.read_text().splitlines(), 1)
                if text == "hold_time = 1")
    assert f"{hub.config_path}:{line}: peer[0].hold_time: " in cp.stderr, cp.stderr
    assert "nothing was applied" in cp.stderr
    assert hub.show("status")["prefixes_originated"] == status["prefixes_originated"]
    assert hub.show("status")["reconfigured"] == status["reconfigured"] > status["started"]
    assert EXTRA not in _routes(c[1])
    assert flapped(before) == set()
    failed = hub.log_path.read_text().count("has errors")
    assert hub.proc is not None
    os.kill(hub.proc.pid, signal.SIGHUP)
    wait_for(lambda: hub.log_path.read_text().count("has errors") > failed, 10,
             what="SIGHUP with a broken file logged", on_timeout=hub.log_tail)
    assert sessions.all_up() and flapped(before) == set()

    # 8. A restart-only setting: reported, not applied, nothing flaps.
    hub_conf.broken = False
    hub_conf.prefixes.remove(EXTRA)
    hub_conf.router_id = "10.255.0.99"
    _write(hub, hub_conf)
    cp = _cli_reload(hub)
    assert cp.returncode == 0
    assert "needs a restart:       router.id (not applied)" in cp.stdout, cp.stdout
    assert "a change of router.id needs a restart" in hub.log_path.read_text()
    assert hub.show("status")["router_id"] == hub_addr
    assert sessions.all_up() and flapped(before) == set()
