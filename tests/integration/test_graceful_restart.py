"""Graceful restart (RFC 4724, RFC 8538) between roost nodes and with BIRD and GoBGP.

1. `roost graceful-restart` on node C of a 3-node mesh, then C starts again with `roost
   run -R` (a plain start tells helpers our forwarding state was lost): A and B keep
   C's block (RIB and kernel) the whole time - the kernel tables are sampled every
   ~50 ms - C's own kernel routes are never removed, and once C has sent End-of-RIB
   nothing is stale any more.
2. kill -9 of C: A and B keep C's block, marked stale, until C's restart time (5 s) runs
   out; then it is gone everywhere (long-lived graceful restart is off in this mesh; it
   is tested in test_llgr.py).
3. Interop: a BIRD helper and a GoBGP helper keep roost's route while roost
   graceful-restarts; roost as helper keeps BIRD's route (kernel too) while BIRD, with
   `graceful restart on`, is killed and started again.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.harness.daemons import Bird, GoBgp, Neighbor
from tests.harness.netns import Host, Lab, require_netns, wait_for
from tests.integration.roost_node import REPO, RoostNode

pytestmark = pytest.mark.needs_root

ASN = 64512


def block(i: int) -> str:
    return f"172.17.{8 + i}.0/24"


def roost_config(h: Host, i: int, nodes: list[str], restart_time: int,
                 extra: str = "") -> str:
    return f"""\
[router]
asn = {ASN}
id = "{h.addr4}"
listen = "{h.addr4}"
prefixes = ["{block(i)}"]
connect_retry_time = 1
graceful_restart = {{ restart_time = {restart_time}, stale_time = 30, long_lived_stale_time = 0 }}

[mesh]
nodes = {json.dumps(nodes)}
{extra}"""


def graceful_restart_cli(node: RoostNode) -> subprocess.CompletedProcess[str]:
    """`roost graceful-restart --socket ...`; returns once the daemon has exited."""
    cp = subprocess.run(
        [sys.executable, "-m", "roost", "graceful-restart", "--socket", node.socket],
        capture_output=True, text=True, timeout=30, cwd=REPO,
        env=dict(os.environ, PYTHONPATH=str(REPO)),
    )
    assert node.proc is not None
    assert node.proc.wait(10) == 0, node.log_tail()
    node.proc = None
    return cp


def kill9(node: RoostNode) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(10)
    node.proc = None


class KernelSampler(threading.Thread):
    """Reads `ip route` of some hosts every ~50 ms and records every sample in which a
    wanted route line was missing."""

    def __init__(self, wanted: list[tuple[Host, list[str]]], period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.wanted = wanted
        self.period = period
        self.samples = 0
        self.gaps: list[tuple[float, str, str]] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for host, lines in self.wanted:
                try:
                    have = host.routes()
                except Exception as exc:  # pragma: no cover - reported as a gap
                    self.gaps.append((time.monotonic(), host.name, f"ip route: {exc}"))
                    continue
                for line in lines:
                    if line not in have:
                        self.gaps.append((time.monotonic(), host.name, line))
            self.samples += 1
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(5)


def via(prefix: str, owner: str) -> str:
    return f"{prefix} via {owner} dev eth0 proto bird metric 1024 onlink"


def paths_of(node: RoostNode, prefix: str) -> list[dict[str, object]]:
    rows = node.show("routes", prefix)
    return [p for r in rows for p in r["paths"]]


def no_stale(nodes: list[RoostNode]) -> bool:
    return all(not p["stale"] for n in nodes for r in n.show("routes") for p in r["paths"])


@pytest.fixture
def mesh3(tmp_path: Path) -> Iterator[tuple[Lab, list[RoostNode]]]:
    require_netns()
    with Lab(tmp_path) as lab:
        hosts = lab.flat(3, v6=False)
        addrs = [str(h.addr4) for h in hosts]
        nodes = [RoostNode(h, roost_config(h, i, addrs, restart_time=5))
                 for i, h in enumerate(hosts)]
        for node in nodes:
            node.start()
        yield lab, nodes
        for node in nodes:
            if node.proc is not None:
                node.stop()


def _wait_mesh(nodes: list[RoostNode], addrs: list[str]) -> None:
    def ok() -> bool:
        for node in nodes:
            kernel = node.kernel_routes()
            for i, a in enumerate(addrs):
                if a != node.host.addr4 and via(block(i), a) not in kernel:
                    return False
        return no_stale(nodes)

    wait_for(ok, 20, what="3-node mesh converged, nothing stale",
             on_timeout=lambda: "\n".join(n.log_tail(20) for n in nodes))


def test_graceful_restart_command_keeps_routes_everywhere(
    mesh3: tuple[Lab, list[RoostNode]],
) -> None:
    _, nodes = mesh3
    a, b, c = nodes
    addrs = [str(n.host.addr4) for n in nodes]
    _wait_mesh(nodes, addrs)
    c_block, c_addr = block(2), addrs[2]
    c_kernel = sorted(c.kernel_routes())
    assert len(c_kernel) == 3, c_kernel  # A's and B's blocks, its own blackhole
    sampler = KernelSampler([
        (a.host, [via(c_block, c_addr)]),
        (b.host, [via(c_block, c_addr)]),
        (c.host, c_kernel),
    ])
    sampler.start()
    try:
        t0 = time.monotonic()
        cp = graceful_restart_cli(c)
        assert cp.returncode == 0, cp.stderr
        assert "graceful restart" in cp.stdout
        # While C is away: A and B hold its block as stale, in the RIB and the kernel.
        for node in (a, b):
            paths = paths_of(node, c_block)
            assert paths and all(p["stale"] for p in paths), paths
            peer = next(p for p in node.show("peers") if p["address"] == c_addr)
            assert peer["state"] != "Established"
            assert peer["last_down"].startswith("tcp-closed"), peer  # no NOTIFICATION
        # The CLI shows it too.
        text = subprocess.run(
            [sys.executable, "-m", "roost", "show", "routes", c_block, "--socket", a.socket],
            capture_output=True, text=True, timeout=10, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO))).stdout
        assert "(stale)" in text, text
        assert sorted(c.kernel_routes()) == c_kernel  # kept for the next run
        c.run_args = ["-R"]  # restart recovery: R and F bits (a plain start sends F = 0)
        c.start()
        _wait_mesh(nodes, addrs)
        restarted_in = time.monotonic() - t0
        time.sleep(0.3)  # a few more samples after convergence
    finally:
        sampler.stop()
    assert sampler.samples > 10
    assert not sampler.gaps, sampler.gaps[:10]
    log = c.log_path.read_text()
    assert "restart window" in log, c.log_tail()
    assert "closing every session without NOTIFICATION" in log
    for node in (a, b):
        assert "End-of-RIB" in node.log_path.read_text()
    print(f"restart and resync took {restarted_in:.1f} s, {sampler.samples} samples")


def test_kill9_routes_stale_until_restart_time(mesh3: tuple[Lab, list[RoostNode]]) -> None:
    _, nodes = mesh3
    a, b, c = nodes
    addrs = [str(n.host.addr4) for n in nodes]
    _wait_mesh(nodes, addrs)
    c_block, c_addr = block(2), addrs[2]
    t0 = time.monotonic()
    kill9(c)
    for node in (a, b):
        wait_for(lambda n=node: all(p["stale"] for p in paths_of(n, c_block))  # type: ignore[misc]
                 and bool(paths_of(n, c_block)), 3, what=f"{node.name}: C's block stale")
        assert via(c_block, c_addr) in node.kernel_routes()
    # Still there shortly before the restart time (5 s) runs out...
    time.sleep(max(0.0, 3.5 - (time.monotonic() - t0)))
    for node in (a, b):
        assert paths_of(node, c_block), f"{node.name} dropped C's block too early"
        assert via(c_block, c_addr) in node.kernel_routes()
    # ... and gone once it has.
    for node in (a, b):
        wait_for(lambda n=node: not paths_of(n, c_block)  # type: ignore[misc]
                 and via(c_block, c_addr) not in n.kernel_routes(),
                 5, what=f"{node.name}: C's block removed after the restart time",
                 on_timeout=node.log_tail)
    gone_after = time.monotonic() - t0
    assert 4.5 <= gone_after <= 8.0, gone_after
    assert "did not come back within its restart time" in a.log_path.read_text()


# --------------------------------------------------------------------------- interop


class GrBird(Bird):
    """BIRD with `graceful restart on` on its sessions (restarting speaker capable)."""

    def _proto(self, n: Neighbor) -> str:
        text = super()._proto(n)
        return text.replace("  hold time", "  graceful restart on;\n  hold time", 1)


GOBGP_GR = """\
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 30
  [neighbors.afi-safis.mp-graceful-restart.config]
    enabled = true
"""


def test_bird_and_gobgp_helpers_keep_roost_routes(tmp_path: Path) -> None:
    require_netns()
    if not (GoBgp.available() and Bird.available()):
        pytest.skip("needs gobgpd and bird (apt-get install gobgpd bird2)")
    with Lab(tmp_path) as lab:
        hosts = lab.flat(3, v6=False)
        g_addr, b_addr, r_addr = (str(h.addr4) for h in hosts)
        gobgp = GoBgp(hosts[0], ASN, g_addr, [Neighbor(r_addr, ASN, passive=True)],
                      extra_config=GOBGP_GR)
        bird = GrBird(hosts[1], ASN, b_addr, [Neighbor(r_addr, ASN)], waker=True,
                      kernel_export=True, originate=[block(1)])
        roost = RoostNode(hosts[2], f"""\
[router]
asn = {ASN}
id = "{r_addr}"
listen = "{r_addr}"
prefixes = ["{block(2)}"]
connect_retry_time = 1
graceful_restart = {{ restart_time = 30 }}

[[peer]]
address = "{g_addr}"
asn = {ASN}

[[peer]]
address = "{b_addr}"
asn = {ASN}
""")
        gobgp.start()
        bird.start()
        roost.start()

        def diag() -> str:
            return "\n".join([gobgp.log_tail(20), bird.log_tail(30), roost.log_tail(30)])

        roost.wait_established(2, timeout=30)
        for d in (gobgp, bird):
            d.wait_route(block(2), timeout=30)
        wait_for(lambda: via(block(1), b_addr) in roost.kernel_routes(), 20,
                 what="roost installs BIRD's block", on_timeout=diag)

        # roost graceful-restarts: both helpers keep its block throughout.
        seen: dict[str, int] = {"gobgp": 0, "bird": 0}
        missing: list[str] = []
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                for name, d in (("gobgp", gobgp), ("bird", bird)):
                    try:
                        ok = block(2) in d.rib("ipv4")
                    except Exception as exc:
                        missing.append(f"{name}: {exc}")
                        continue
                    seen[name] += 1
                    if not ok:
                        missing.append(f"{name} at {time.monotonic():.2f}")
                done.wait(0.1)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        try:
            cp = graceful_restart_cli(roost)
            assert cp.returncode == 0, cp.stderr
            time.sleep(1.5)  # the helpers hold the route with the session down
            assert gobgp.neighbor_state(r_addr) != "established"
            roost.run_args = ["-R"]  # restart recovery: R and F bits
            roost.start()
            roost.wait_established(2, timeout=40)
            wait_for(lambda: no_stale([roost]), 20, what="roost converged", on_timeout=diag)
            time.sleep(1.0)
        finally:
            done.set()
            watcher.join(5)
        assert min(seen.values()) > 5, seen
        assert not missing, (missing[:10], diag())

        # roost as helper: BIRD (graceful restart on) is killed; roost keeps its block,
        # stale, in the RIB and the kernel, until BIRD is back and has resent it.
        bird.kill()
        wait_for(lambda: bool(paths_of(roost, block(1)))
                 and all(p["stale"] for p in paths_of(roost, block(1))), 5,
                 what="BIRD's block stale on roost", on_timeout=diag)
        assert via(block(1), b_addr) in roost.kernel_routes()
        time.sleep(1.0)
        assert via(block(1), b_addr) in roost.kernel_routes()
        bird.start()
        wait_for(lambda: bool(paths_of(roost, block(1))) and no_stale([roost]), 30,
                 what="BIRD's block fresh again on roost", on_timeout=diag)
        assert via(block(1), b_addr) in roost.kernel_routes()

