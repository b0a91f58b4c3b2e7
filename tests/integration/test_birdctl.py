"""The BIRD-compatible control socket against the real `birdc` (Debian's bird2) and a
re-implementation of calico-node's readiness check (research section 2.8).

Two roost nodes in their own namespaces, in a `[mesh]`; h1 serves `bird_socket`.

1. h1 alone: `birdc show protocols` lists `Mesh_10_255_0_2` in state `start`, and the
   readiness check says "BGP not established with 10.255.0.2".
2. h2 starts: once the session is Established the check reports ready; `birdc` shows the
   session `up`/`Established`, its detail block, `show status` and h2's block in
   `show route` (via 10.255.0.2 on eth0, learned from `Mesh_10_255_0_2`).
3. h2 stops: not ready again.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator

import pytest

from tests.harness.netns import Lab, wait_for
from tests.integration.roost_node import REPO, RoostNode

pytestmark = pytest.mark.needs_root

BIRDC = "/usr/sbin/birdc"
TIMEOUT = 2.0  # calico-node's birdTimeOut per read


def birdc(path: str, *command: str, rc: int = 0) -> list[str]:
    """Run the real client: `birdc -s PATH COMMAND...`; its output lines. birdc exits
    with 1 when the reply is an error (8xxx/9xxx), as against BIRD."""
    cp = subprocess.run([BIRDC, "-s", path, *command], capture_output=True, text=True,
                        timeout=10)
    assert cp.returncode == rc, (command, cp.stdout, cp.stderr)
    return cp.stdout.splitlines()


# --------------------------------------------------------------------------- calico-node


class _Lines:
    """Line reader with calico-node's per-read deadline."""

    def __init__(self, path: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(TIMEOUT)
        self.sock.connect(path)
        self.file = self.sock.makefile("r", encoding="utf-8", newline="\n")

    def send(self, command: str) -> None:
        self.sock.sendall(command.encode() + b"\n")

    def __iter__(self) -> Iterator[str]:
        while line := self.file.readline():
            yield line.rstrip("\n")

    def close(self) -> None:
        self.file.close()
        self.sock.close()


def calico_peers(path: str) -> list[dict[str, str]]:
    """`GetPeers()`: `show protocols`, 2002 headings (lower-cased), 1002 / " " rows of at
    least 6 columns with proto BGP and a (Global|Node|Mesh)_<ip> name."""
    conn = _Lines(path)
    try:
        conn.send("show protocols")
        peers = []
        for line in conn:
            if line.startswith("0000"):
                break
            if line.startswith("0001"):
                continue
            if line.startswith("2002"):
                if line[5:].lower().split() != ["name", "proto", "table", "state", "since",
                                                "info"]:
                    raise ValueError("unknown BIRD table output format")
                continue
            if line.startswith("1002"):
                text = line[5:]
            elif line.startswith(" "):
                text = line[1:]
            else:
                raise ValueError(f"unexpected output line from BIRD: {line!r}")
            cols = text.split()
            if len(cols) < 6 or cols[1] != "BGP":
                continue
            m = re.match(r"^(Global|Node|Mesh)_(.+)$", cols[0])
            if m is None:
                continue
            peers.append({"ip": m[2].replace("_", "."), "state": cols[3],
                          "since": cols[4], "bgp_state": cols[5]})
        else:
            raise ValueError("connection closed before 0000")
        return peers
    finally:
        conn.close()


def calico_gr_in_progress(path: str) -> bool:
    """`GRInProgress()`: `show status`; 0024 means a graceful restart recovery."""
    conn = _Lines(path)
    try:
        conn.send("show status")
        for line in conn:
            if line.startswith("0013"):
                return False
            if line.startswith("0024"):
                return True
            if not (line[:4] in ("0001", "1000", "1011") or line.startswith(" ")):
                raise ValueError(f"unexpected output line from BIRD: {line!r}")
        raise ValueError("connection closed before 0013")
    finally:
        conn.close()


def calico_ready(path: str) -> str:
    """`checkBIRDReady()` during calico-node's start-up threshold: every peer
    Established and no graceful restart in progress. "" when ready, else the reason."""
    peers = calico_peers(path)
    down = [p["ip"] for p in peers if p["bgp_state"] != "Established"]
    if down:
        return f"BGP not established with {','.join(down)}"
    if calico_gr_in_progress(path):
        return "graceful restart in progress"
    return ""


# --------------------------------------------------------------------------- the tests


class BirdNode(RoostNode):
    """A mesh node with `bird_socket` set; `recover` runs it with `-R`."""

    def __init__(self, lab: Lab, index: int, recover: bool = False) -> None:
        h1, h2 = (lab.hosts[f"h{i}"] for i in (1, 2))
        host = (h1, h2)[index]
        config = f"""\
[router]
asn = 64512
id = "{host.addr4}"
listen = "{host.addr4}"
prefixes = ["172.17.{8 + index}.0/24"]
connect_retry_time = 1

[mesh]
nodes = ["{h1.addr4}", "{h2.addr4}"]
"""
        super().__init__(host, config)
        self.bird = str(lab.rundir / f"{host.name}.bird.ctl")
        self.config_path.write_text(
            config + f'\n[control]\nsocket = "{self.socket}"\nbird_socket = "{self.bird}"\n')
        self.recover = recover

    def start(self) -> None:
        if not self.recover:
            super().start()
            return
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = self.host.popen(
            [sys.executable, "-m", "roost", "run", "-R", "-c", str(self.config_path),
             "--log-level", "debug"],
            self.log_path, env=env, cwd=REPO,
        )


@pytest.fixture
def pair(lab: Lab) -> Lab:
    if shutil.which(BIRDC) is None:
        pytest.skip(f"{BIRDC} not installed (Debian package bird2)")
    lab.flat(2, v6=False)
    return lab


def test_birdc_and_calico_readiness(pair: Lab) -> None:
    n1, n2 = BirdNode(pair, 0), BirdNode(pair, 1)
    bird1 = n1.bird

    # 1. h1 alone: not ready, its peer is in `start`.
    n1.start()
    wait_for(lambda: birdc(bird1, "show", "status")[-1] == "Daemon is up and running", 20,
             what="birdc show status on h1", on_timeout=n1.log_tail)
    status = birdc(bird1, "show", "status")
    assert status[0].startswith("BIRD roost-") and status[0].endswith(" ready.")
    assert "Router ID is 10.255.0.1" in status
    rows = birdc(bird1, "show", "protocols")
    assert rows[1].split() == ["name", "proto", "table", "state", "since", "info"]
    mesh = next(r for r in rows if r.startswith("Mesh_10_255_0_2 "))
    assert mesh.split()[1:4] == ["BGP", "---", "start"]
    assert calico_ready(bird1) == "BGP not established with 10.255.0.2"

    # 2. h2 starts: ready once Established; birdc shows it all.
    n2.start()
    t0 = time.monotonic()
    wait_for(lambda: calico_ready(bird1) == "", 30, what="calico readiness on h1",
             on_timeout=lambda: n1.log_tail() + "\n" + n2.log_tail())
    ready_after = time.monotonic() - t0
    peers = calico_peers(bird1)
    assert [(p["ip"], p["state"], p["bgp_state"]) for p in peers] == [
        ("10.255.0.2", "up", "Established")]
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3}", peers[0]["since"])

    detail = birdc(bird1, "show", "protocols", "all", "Mesh_10_255_0_2")
    for want in ("BGP state:          Established", "Neighbor address: 10.255.0.2",
                 "Neighbor AS:      64512", "Local AS:         64512",
                 "Neighbor ID:      10.255.0.2", "Session:          internal AS4",
                 "Hold timer:       90", "Keepalive timer:  30", "Channel ipv4",
                 "Routes:         1 imported, 0 filtered, 1 exported"):
        assert any(line.strip() == want for line in detail), (want, detail)

    def learned() -> list[str]:
        return [r for r in birdc(bird1, "show", "route") if r.startswith("172.17.9.0/24")]

    wait_for(learned, 10, what="h2's block in show route on h1")
    (line,) = learned()
    assert re.fullmatch(r"172\.17\.9\.0/24 +via 10\.255\.0\.2 on eth0 "
                        r"\[Mesh_10_255_0_2 [\d:.]+\] \* \(100\) \[i\]", line), line
    own = [r for r in birdc(bird1, "show", "route") if r.startswith("172.17.8.0/24")]
    assert len(own) == 1 and "blackhole [static1 " in own[0] and "(200)" in own[0]
    assert birdc(bird1, "show", "route", "for", "172.17.9.20")[1] == line
    assert birdc(bird1, "show", "route", "for", "192.0.2.1", rc=1)[1:] == ["Network not found"]
    assert birdc(bird1, "show", "route", "count")[1:] == ["2 of 2 routes for 2 networks"]
    assert birdc(bird1, "show", "protocols", '"Nope*"', rc=1)[1:] == ["No protocols match"]

    # 3. h2 stops (Cease): not ready again.
    n2.stop()
    wait_for(lambda: calico_ready(bird1) == "BGP not established with 10.255.0.2", 15,
             what="h1 not ready after h2 stopped", on_timeout=n1.log_tail)
    n1.stop()
    print(f"calico readiness reached {ready_after:.2f} s after h2 started")


def test_recovery_is_0024_until_the_peer_has_sent_its_routes(pair: Lab) -> None:
    """`roost run -R` (BIRD's -R, as calico-node runs BIRD): `show status` says 0024
    until every peer has sent End-of-RIB, and calico-node is not ready meanwhile."""
    n1, n2 = BirdNode(pair, 0, recover=True), BirdNode(pair, 1)
    n1.start()
    wait_for(lambda: birdc(n1.bird, "show", "status")[-1] == "Daemon is up and running", 20,
             what="birdc show status on h1", on_timeout=n1.log_tail)
    status = birdc(n1.bird, "show", "status")
    assert "Graceful restart recovery in progress" in status, status
    assert calico_gr_in_progress(n1.bird) is True
    n2.start()
    wait_for(lambda: calico_ready(n1.bird) == "", 30, what="recovery done and ready on h1",
             on_timeout=lambda: n1.log_tail() + "\n" + n2.log_tail())
    assert "Graceful restart recovery in progress" not in birdc(n1.bird, "show", "status")
    n2.stop()
    n1.stop()
