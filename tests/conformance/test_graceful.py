"""Graceful restart (RFC 4724) with each daemon, both roles:

* ``gr.roost_restarts``: the daemon is the helper while roost restarts with
  ``roost graceful-restart`` (no NOTIFICATION) and starts again with ``-R``: the daemon's RIB is
  sampled every ~0.1 s and must hold roost's route the whole time.
* ``gr.helper``: roost is the helper while the daemon (graceful restart enabled) is killed
  with SIGKILL (no NOTIFICATION) and started again: roost keeps the daemon's route, marked
  stale, from the kill until the daemon is back, and then has it fresh (not stale).
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import pytest

from tests.harness.daemons import Bird, Daemon, Neighbor
from tests.harness.fixtures import require_daemons
from tests.harness.netns import Host, Lab, wait_for

from .harness import (
    CLASSES,
    PEER4,
    PEER_ASN,
    PEER_RID,
    ROOST4,
    ROOST_ASN,
    ROOST_RID,
    Roost,
    RoostPeer,
    new_daemon,
    roost_toml,
)
from .matrix import daemons_for

REPO = Path(__file__).resolve().parents[2]
ROOST_PFX = "10.10.9.0/24"
DAEMON_PFX = "10.20.9.0/24"
ROOST_GR = "graceful_restart = { restart_time = 30 }"
# appended after the (only) neighbor of the GoBGP config: applies to it and its afi-safi
GOBGP_GR = """\
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 30
  [neighbors.afi-safis.mp-graceful-restart.config]
    enabled = true
"""


class GrBird(Bird):
    """BIRD with `graceful restart on` (restarting-speaker capable; helper by default)."""

    def _proto(self, n: Neighbor) -> str:
        return super()._proto(n).replace("  hold time", "  graceful restart on;\n  hold time",
                                         1)


def gr_daemon(kind: str, host: Host, neighbors: Sequence[Neighbor],
              originate: Sequence[str] = ()) -> Daemon:
    """The daemon with graceful restart enabled as far as it has a knob."""
    require_daemons(CLASSES[kind])
    if kind == "bird":
        return GrBird(host, PEER_ASN, PEER_RID, neighbors, originate=originate, waker=True)
    if kind == "gobgp":
        return new_daemon(kind, host, PEER_ASN, PEER_RID, neighbors, originate=originate,
                          extra_config=GOBGP_GR)
    if kind == "frr":
        return new_daemon(kind, host, PEER_ASN, PEER_RID, neighbors, originate=originate,
                          extra_config=" bgp graceful-restart")
    return new_daemon(kind, host, PEER_ASN, PEER_RID, neighbors, originate=originate,
                      graceful_restart=30)


class Watch(threading.Thread):
    """Calls ``probe`` every ~0.1 s; records every sample where it was False."""

    def __init__(self, probe: Callable[[], bool]) -> None:
        super().__init__(daemon=True)
        self.probe = probe
        self.samples = 0
        self.missing: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            try:
                ok = self.probe()
            except Exception as exc:
                self.missing.append(f"{time.monotonic():.2f}: {exc!r}")
            else:
                self.samples += 1
                if not ok:
                    self.missing.append(f"{time.monotonic():.2f}: missing")
            self._halt.wait(0.1)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


def _pair(lab: Lab, daemon: str, originate: Sequence[str] = (),
          prefixes: Sequence[str] = ()) -> tuple[Roost, Daemon]:
    h1, h2 = lab.flat(2, v6=False)
    d = gr_daemon(daemon, h2, [Neighbor(ROOST4, ROOST_ASN, passive=daemon == "gobgp")],
                  originate)
    roost = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID, [RoostPeer(PEER4, PEER_ASN)],
                                 listen=[ROOST4], prefixes=prefixes, router_extra=ROOST_GR))
    d.start()
    roost.start()
    roost.wait_peer(PEER4, timeout=30)
    d.wait_established(ROOST4, timeout=30)
    return roost, d


@pytest.mark.scenario("gr.roost_restarts")
@pytest.mark.parametrize("daemon", daemons_for("gr.roost_restarts"))
def test_daemon_helper_while_roost_restarts(lab: Lab, daemon: str) -> None:
    roost, d = _pair(lab, daemon, prefixes=[ROOST_PFX])
    d.wait_route(ROOST_PFX, timeout=15)
    assert roost.peer(PEER4)["state"] == "Established"
    watch = Watch(lambda: ROOST_PFX in d.rib("ipv4"))
    watch.start()
    try:
        cp = subprocess.run([sys.executable, "-m", "roost", "graceful-restart", "--socket",
                             roost.socket], capture_output=True, text=True, timeout=30,
                            cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))
        assert cp.returncode == 0, cp.stderr
        assert roost.proc is not None and roost.proc.wait(10) == 0, roost.log_tail()
        roost.proc = None
        # the session is really down and the helper holds the route meanwhile
        wait_for(lambda: d.neighbor_state(ROOST4) != "established", 10,
                 what=f"{daemon}: session with roost down")
        time.sleep(2)
        assert ROOST_PFX in d.rib("ipv4"), d.log_tail()
        roost.run_args = ["-R"]  # restart recovery: R and F bits (a plain start: F = 0)
        roost.start()
        roost.wait_peer(PEER4, timeout=40)
        d.wait_established(ROOST4, timeout=30)
        time.sleep(1.5)
    finally:
        watch.stop()
    assert watch.samples > 10, watch.samples
    assert not watch.missing, (watch.missing[:10], d.log_tail(30), roost.log_tail(30))
    assert d.wait_route(ROOST_PFX, timeout=10)
    log = roost.log_path.read_text()
    assert "graceful restart" in log, roost.log_tail()


@pytest.mark.scenario("gr.helper")
@pytest.mark.parametrize("daemon", daemons_for("gr.helper"))
def test_roost_helper_while_daemon_restarts(lab: Lab, daemon: str) -> None:
    roost, d = _pair(lab, daemon, originate=[DAEMON_PFX])
    roost.wait_paths(DAEMON_PFX, timeout=15)
    assert not any(p["stale"] for p in roost.paths(DAEMON_PFX))
    d.kill()  # SIGKILL: the TCP session ends without a NOTIFICATION
    wait_for(lambda: bool(ps := roost.paths(DAEMON_PFX)) and all(p["stale"] for p in ps), 10,
             what="roost: the daemon's route kept, stale", on_timeout=roost.log_tail)
    row = roost.peer(PEER4)
    assert row["state"] != "Established", row
    # The helper's duty ends when the daemon's new session is up: a daemon that does not
    # set the F bit on restart (GoBGP without -r) has its stale routes removed at once
    # then (RFC 4724 §4.2), before it has re-sent them.
    n_up = row["established_count"]
    watch = Watch(lambda: bool(roost.paths(DAEMON_PFX))
                  or roost.peer(PEER4)["established_count"] > n_up)
    watch.start()
    try:
        time.sleep(2)
        d.start()
        roost.wait_peer(PEER4, timeout=40)
    finally:
        watch.stop()
    assert watch.samples > 10, watch.samples
    assert not watch.missing, (watch.missing[:10], roost.log_tail(30))
    wait_for(lambda: bool(ps := roost.paths(DAEMON_PFX)) and not any(p["stale"] for p in ps),
             30, what="roost: the daemon's route fresh again",
             on_timeout=lambda: f"{roost.paths(DAEMON_PFX)}\n{roost.log_tail()}")
