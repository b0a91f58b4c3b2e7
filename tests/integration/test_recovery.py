"""Restarts without a gap, measured in the kernel (RFC 4724; `roost run -R`).

Every test records, for the routes of interest, every RTM_NEWROUTE / RTM_DELROUTE of the
node's namespace (`ip -o monitor route`, started before the event) and samples
`ip route show proto bird` every ~20 ms; "zero gaps" means no deletion event and no sample
where a route was missing.

1. A BIRD peer (`graceful restart on`) is SIGKILLed and started again with `bird -R`,
   announcing one route fewer: roost keeps its routes in the kernel throughout, marked
   stale, and after BIRD's End-of-RIB removes exactly the one it did not announce again.
2. roost is SIGKILLed and started again with -R: its peers (a roost node's kernel, GoBGP's
   RIB) keep its block; its own kernel keeps every route (no deletion, no replace) while
   `show status` says recovering, until End-of-RIB from every peer; then the kernel is
   exactly what the peers announce now (a route withdrawn meanwhile gone, one added there).
3. The wait limit: a peer that never comes back ends recovery at `graceful_restart.wait`,
   and the routes nobody announced again are removed then.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from tests.harness.daemons import Bird, GoBgp, Neighbor
from tests.harness.netns import Host, Lab, require_netns, wait_for
from tests.integration.roost_node import REPO, RoostNode

pytestmark = pytest.mark.needs_root

ASN = 64512
MARK = "192.0.2.255/32"  # the monitor's readiness probe (TEST-NET-1, never routed here)

GOBGP_GR = """\
  [neighbors.graceful-restart.config]
    enabled = true
    restart-time = 30
  [neighbors.afi-safis.mp-graceful-restart.config]
    enabled = true
"""


def block(i: int) -> str:
    return f"172.17.{8 + i}.0/24"


def via(prefix: str, owner: str) -> str:
    return f"{prefix} via {owner} dev eth0 proto bird metric 1024 onlink"


def own(prefix: str) -> str:
    return f"blackhole {prefix} proto bird metric 1024"


def roost_config(h: Host, prefixes: Sequence[str], peers: Sequence[tuple[str, bool]],
                 wait: int = 60) -> str:
    """`peers`: (address, passive)."""
    text = f"""\
[router]
asn = {ASN}
id = "{h.addr4}"
listen = "{h.addr4}"
prefixes = {json.dumps(list(prefixes))}
connect_retry_time = 1
graceful_restart = {{ restart_time = 30, wait = {wait} }}
"""
    for addr, passive in peers:
        text += f'\n[[peer]]\naddress = "{addr}"\nasn = {ASN}\n'
        if passive:
            text += "passive = true\n"
    return text


class GrBird(Bird):
    """BIRD with `graceful restart on` (restarting speaker: R and F bits with `bird -R`)."""

    def _proto(self, n: Neighbor) -> str:
        text = super()._proto(n)
        return text.replace("  hold time", "  graceful restart on;\n  hold time", 1)


# --------------------------------------------------------------------------- watchers


class KernelMonitor:
    """`ip -o monitor route` in a host's namespace: every route notification, in order."""

    def __init__(self, host: Host) -> None:
        self.host = host
        self.path = host.workdir / "ip-monitor.log"
        self.proc: subprocess.Popen[Any] | None = None
        self._offset = 0

    def start(self) -> None:
        self.path.write_text("")
        self.proc = self.host.popen(["ip", "-o", "monitor", "route"], self.path)
        # Ready once it reports a probe route we add and delete (again until it does):
        # then what came before is dropped.
        def probe() -> bool:
            self.host.ip("route", "add", "blackhole", MARK, "proto", "static")
            self.host.ip("route", "del", "blackhole", MARK, "proto", "static")
            return f"Deleted blackhole {MARK.split('/')[0]}" in self._text()

        wait_for(probe, 10, what="ip monitor running")
        self._offset = len(self._text())

    def _text(self) -> str:
        return self.path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None:
            os.kill(self.proc.pid, signal.SIGTERM)
            self.proc.wait(5)
            self.proc = None

    def events(self, prefixes: Sequence[str]) -> list[tuple[str, str]]:
        """("del" | "new", line) of every notification about one of `prefixes` since
        `start` (RTM_NEWROUTE covers an add and a replace alike)."""
        out = []
        for line in map(str.strip, self._text()[self._offset:].splitlines()):
            deleted = line.startswith("Deleted ")
            route = line.removeprefix("Deleted ")
            words = route.split()
            dst = words[1] if words and words[0] == "blackhole" else (words[0] if words else "")
            if dst in prefixes:
                out.append(("del" if deleted else "new", line))
        return out


class KernelPoller(threading.Thread):
    """Samples the `proto bird` routes of some hosts every ~20 ms; keeps them all
    (monotonic time after each read, lines)."""

    def __init__(self, hosts: Sequence[Host], period: float = 0.02) -> None:
        super().__init__(daemon=True)
        self.hosts = list(hosts)
        self.period = period
        self.samples: dict[str, list[tuple[float, frozenset[str]]]] = {
            h.name: [] for h in hosts}
        self.errors: list[str] = []
        self._halt = threading.Event()

    def run(self) -> None:
        while not self._halt.is_set():
            for h in self.hosts:
                # (`show proto bird` would leave "proto bird" out of each line)
                cp = subprocess.run(["ip", "-n", h.netns, "-4", "route", "show"],
                                    capture_output=True, text=True, timeout=10)
                if cp.returncode != 0:
                    self.errors.append(f"{h.name}: {cp.stderr.strip()}")
                    continue
                lines = frozenset(x.strip() for x in cp.stdout.splitlines()
                                  if "proto bird" in x)
                if cp.stderr.strip():
                    lines = lines | {f"stderr: {cp.stderr.strip()}"}
                self.samples[h.name].append((time.monotonic(), lines))
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)

    def missing(self, host: Host, lines: Sequence[str],
                until: float | None = None) -> list[tuple[float, str]]:
        """(time, line) for every sample (before `until`) that lacked one of `lines`."""
        return [(t, line) for t, have in self.samples[host.name]
                if until is None or t < until for line in lines if line not in have]

    def max_interval(self, host: Host) -> float:
        """The longest time between two samples of `host` (what a sample could miss)."""
        times = [t for t, _ in self.samples[host.name]]
        return max((b - a for a, b in pairwise(times)), default=0.0)

    def median_interval(self, host: Host) -> float:
        gaps = sorted(b - a for a, b in pairwise(t for t, _ in self.samples[host.name]))
        return gaps[len(gaps) // 2] if gaps else 0.0

    def first_without(self, host: Host, line: str) -> float | None:
        return next((t for t, have in self.samples[host.name] if line not in have), None)

    def back_after(self, host: Host, line: str, t0: float) -> bool:
        return any(line in have for t, have in self.samples[host.name] if t > t0)


class Probe(threading.Thread):
    """Calls `probe` every ~`period` s (except between `pause` and `resume`); records the
    samples where it was False."""

    def __init__(self, probe: Callable[[], bool], period: float = 0.05) -> None:
        super().__init__(daemon=True)
        self.probe = probe
        self.period = period
        self.samples = 0
        self.missing: list[str] = []
        self._paused = False
        self._busy = threading.Lock()
        self._halt = threading.Event()

    def pause(self) -> None:
        """Returns once no probe is running (e.g. before the daemon probed is stopped)."""
        with self._busy:
            self._paused = True

    def resume(self) -> None:
        self._paused = False

    def run(self) -> None:
        while not self._halt.is_set():
            with self._busy:
                if not self._paused:
                    try:
                        ok = self.probe()
                    except Exception as exc:
                        self.missing.append(f"{time.monotonic():.2f}: {exc!r}")
                    else:
                        self.samples += 1
                        if not ok:
                            self.missing.append(f"{time.monotonic():.2f}: missing")
            self._halt.wait(self.period)

    def stop(self) -> None:
        self._halt.set()
        self.join(10)


@pytest.fixture
def lab(tmp_path: Path) -> Iterator[Lab]:
    require_netns()
    if not (GoBgp.available() and Bird.available()):
        pytest.skip("needs gobgpd and bird (apt-get install gobgpd bird2)")
    with Lab(tmp_path) as lab:
        yield lab


def kill9(node: RoostNode) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(10)
    node.proc = None


def start_recover(node: RoostNode) -> None:
    node.run_args = ["-R"]
    node.start()
    wait_for(lambda: Path(node.socket).exists() and node.show("status"), 15,
             what=f"{node.name}: control socket", on_timeout=node.log_tail)


def cli(node: RoostNode, *args: str) -> str:
    """`roost ARGS --socket ...` through the command line; its output."""
    cp = subprocess.run([sys.executable, "-m", "roost", *args, "--socket", node.socket],
                        capture_output=True, text=True, timeout=10, cwd=REPO,
                        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert cp.returncode == 0, cp.stderr
    return cp.stdout


def paths_of(node: RoostNode, prefix: str) -> list[dict[str, Any]]:
    return [p for r in node.show("routes", prefix) for p in r["paths"]]


def kernel_set(node: RoostNode) -> set[str]:
    return set(node.kernel_routes())


# --------------------------------------------------------------------------- 1. peer restarts


def test_peer_restart_keeps_routes_and_sweeps_the_one_not_announced_again(lab: Lab) -> None:
    hr, hb = lab.flat(2, v6=False)
    r_addr, b_addr = str(hr.addr4), str(hb.addr4)
    kept = ["10.40.1.0/24", "10.40.2.0/24"]
    dropped = "10.40.3.0/24"
    bird = GrBird(hb, ASN, b_addr, [Neighbor(r_addr, ASN)], waker=True,
                  originate=[*kept, dropped])
    roost = RoostNode(hr, roost_config(hr, [block(1)], [(b_addr, False)]))
    bird.start()
    roost.start()

    def diag() -> str:
        return "\n".join([bird.log_tail(30), roost.log_tail(40)])

    lines = [via(p, b_addr) for p in kept]
    gone = via(dropped, b_addr)
    wait_for(lambda: {*lines, gone} <= kernel_set(roost), 30,
             what="roost installs BIRD's routes", on_timeout=diag)
    monitor, poller = KernelMonitor(hr), KernelPoller([hr])
    monitor.start()
    poller.start()
    try:
        t0 = time.monotonic()
        bird.kill()  # SIGKILL: no NOTIFICATION, a graceful restart for roost (RFC 4724 §4.2)
        wait_for(lambda: all(paths_of(roost, p) and all(x["stale"] for x in paths_of(roost, p))
                             for p in [*kept, dropped]), 10,
                 what="BIRD's routes stale on roost", on_timeout=diag)
        text = cli(roost, "show", "routes", kept[0])
        assert "(stale)" in text, text
        assert {*lines, gone} <= kernel_set(roost)
        # BIRD comes back with `bird -R` (R and F bits), announcing one route fewer.
        bird._dyn.pop(dropped)  # the harness's static routes, written at start
        bird.daemon_args = ["-R"]
        bird.start()
        wait_for(lambda: not paths_of(roost, dropped) and gone not in kernel_set(roost)
                 and all(paths_of(roost, p) and not any(x["stale"] for x in paths_of(roost, p))
                         for p in kept), 30,
                 what="BIRD's End-of-RIB: the route not announced again removed",
                 on_timeout=diag)
        took = time.monotonic() - t0
        wait_for(lambda: poller.samples[hr.name][-1][0] > time.monotonic() - 0.1, 5,
                 what="a few more samples")
    finally:
        poller.stop()
        monitor.stop()
    samples = len(poller.samples[hr.name])
    assert samples > 20, samples
    assert not poller.errors, poller.errors[:5]
    # Zero gaps for the routes BIRD announced again: no sample without them, no
    # notification about them at all (no delete, not even a replace).
    assert not poller.missing(hr, lines), [
        (t, have) for t, have in poller.samples[hr.name] if not set(lines) <= have][:5]
    assert monitor.events(kept) == [], monitor.events(kept)
    # The dropped route: removed exactly once, after BIRD's End-of-RIB, never back.
    assert monitor.events([dropped]) == [("del", f"Deleted {gone}")], monitor.events([dropped])
    t_gone = poller.first_without(hr, gone)
    assert t_gone is not None and not poller.back_after(hr, gone, t_gone)
    log = roost.log_path.read_text()
    assert "stale routes not announced again removed" in log, roost.log_tail()
    assert "not preserved" not in log  # BIRD -R set the F bit: nothing flushed at session up
    print(f"peer restart: {took:.1f} s, {samples} kernel samples (every "
          f"{poller.median_interval(hr) * 1000:.0f} ms, at most "
          f"{poller.max_interval(hr) * 1000:.0f} ms), "
          f"{len(monitor.events([*kept, dropped]))} notification(s)")


# --------------------------------------------------------------------------- 2. roost restarts


def _mesh(lab: Lab, wait: int = 60) -> tuple[list[Host], RoostNode, RoostNode, GoBgp]:
    """R (roost under test) peers with A (roost) and G (GoBGP helper, originating two
    routes); R connects to both."""
    hr, ha, hg = lab.flat(3, v6=False)
    r_addr, a_addr, g_addr = (str(h.addr4) for h in (hr, ha, hg))
    gobgp = GoBgp(hg, ASN, g_addr, [Neighbor(r_addr, ASN, passive=True)],
                  extra_config=GOBGP_GR, originate=["10.30.1.0/24", "10.30.2.0/24"])
    a = RoostNode(ha, roost_config(ha, [block(2)], [(r_addr, False)]))
    r = RoostNode(hr, roost_config(hr, [block(1)], [(a_addr, False), (g_addr, False)],
                                   wait=wait))
    gobgp.start()
    a.start()
    r.start()
    before = {own(block(1)), via(block(2), a_addr), via("10.30.1.0/24", g_addr),
              via("10.30.2.0/24", g_addr)}
    wait_for(lambda: kernel_set(r) == before and via(block(1), r_addr) in kernel_set(a)
             and block(1) in gobgp.rib("ipv4"), 40, what="R, A and G converged",
             on_timeout=lambda: "\n".join([gobgp.log_tail(20), a.log_tail(20),
                                           r.log_tail(40)]))
    return [hr, ha, hg], r, a, gobgp


def test_roost_restart_with_recover_keeps_every_route(lab: Lab) -> None:
    (hr, ha, hg), r, a, gobgp = _mesh(lab)
    r_addr, a_addr, g_addr = (str(h.addr4) for h in (hr, ha, hg))

    def diag() -> str:
        return "\n".join([gobgp.log_tail(20), a.log_tail(20), r.log_tail(60)])

    unchanged = [own(block(1)), via(block(2), a_addr), via("10.30.1.0/24", g_addr)]
    withdrawn = via("10.30.2.0/24", g_addr)
    added = [via("10.30.3.0/24", g_addr), via(block(12), a_addr)]
    mine = via(block(1), r_addr)  # R's block as its peers have it
    # R's kernel and A's, each watched and sampled on its own; G's RIB through its CLI.
    monitor, a_monitor = KernelMonitor(hr), KernelMonitor(ha)
    poller, a_poller = KernelPoller([hr]), KernelPoller([ha])
    g_rib = Probe(lambda: block(1) in gobgp.rib("ipv4"))
    for m in (monitor, a_monitor):
        m.start()
    for t in (poller, a_poller, g_rib):
        t.start()
    recovering_seen = 0
    try:
        kill9(r)
        # While R is away: G withdraws one route and adds one; A originates one more
        # block (SIGHUP reload).
        gobgp.del_route("10.30.2.0/24")
        gobgp.add_route("10.30.3.0/24")
        a.config_path.write_text(a.config_path.read_text().replace(
            f'prefixes = ["{block(2)}"]', f'prefixes = ["{block(2)}", "{block(12)}"]'))
        assert a.proc is not None
        os.kill(a.proc.pid, signal.SIGHUP)
        wait_for(lambda: paths_of(a, block(12)), 10, what="A originates its new block")
        # G answers only later (SIGSTOP): recovery must wait for its End-of-RIB.
        g_rib.pause()
        gobgp.pause()
        t_start = time.monotonic()
        start_recover(r)
        status = r.show("status")
        assert status["recovering"] is True, status
        # A's session and End-of-RIB: A's new block is in R's RIB, not yet in its kernel.
        wait_for(lambda: any(p["state"] == "Established" and p["address"] == a_addr
                             for p in r.show("peers")) and paths_of(r, block(12)), 20,
                 what="A's routes on R", on_timeout=diag)
        for _ in range(3):
            first = r.show("status")["recovering"]
            kernel = kernel_set(r)
            if first and r.show("status")["recovering"]:
                recovering_seen += 1
                assert kernel == {*unchanged, withdrawn}, kernel  # held: nothing changed
        assert recovering_seen == 3
        # The CLI says so too.
        text = cli(r, "show", "status")
        assert "recovering:" in text, text
        assert text.split("recovering:")[1].split()[0] == "yes", text
        t_resume = time.monotonic()
        gobgp.resume()
        g_rib.resume()
        # Recovery ends with G's End-of-RIB, and not before every peer is Established.
        while r.show("status")["recovering"]:
            assert time.monotonic() - t_start < 30, diag()
            time.sleep(0.02)
        t_done = time.monotonic()
        assert all(p["state"] == "Established" for p in r.show("peers")), r.show("peers")
        wait_for(lambda: kernel_set(r) == {*unchanged, *added}, 10,
                 what="R's kernel: exactly the routes announced now", on_timeout=diag)
        wait_for(lambda: no_stale(a) and block(1) in gobgp.rib("ipv4"), 10,
                 what="A and G: R's block fresh")
        # The poller samples on its own thread: on a loaded machine its first sample
        # with the added routes may come after `kernel_set` saw them.
        wait_for(lambda: all(poller.back_after(hr, line, t_resume) for line in added), 10,
                 what="the poller's samples hold the added routes")
    finally:
        for t in (g_rib, poller, a_poller):
            t.stop()
        for m in (monitor, a_monitor):
            m.stop()
    took = t_done - t_start
    # R's kernel: zero gaps and no request at all for the routes that did not change.
    assert not poller.errors, poller.errors[:5]
    assert len(poller.samples[hr.name]) > 20
    assert not poller.missing(hr, unchanged), poller.missing(hr, unchanged)[:10]
    prefixes = [line.split()[1] if line.startswith("blackhole") else line.split()[0]
                for line in unchanged]
    assert monitor.events(prefixes) == [], monitor.events(prefixes)
    # Recovery could not end before G (stopped) was resumed: until then the withdrawn
    # route stayed and the new ones were held; then each changed once.
    assert not poller.missing(hr, [withdrawn], until=t_resume)
    assert monitor.events(["10.30.2.0/24"]) == [("del", f"Deleted {withdrawn}")]
    assert [e for e, _ in monitor.events(["10.30.3.0/24", block(12)])] == ["new", "new"]
    for line in added:
        t_in = next(t for t, have in poller.samples[hr.name] if line in have)
        assert t_in > t_resume, (line, t_in - t_resume)
    # The peers kept R's block throughout: A's kernel (not even replaced), G's RIB.
    assert not a_poller.errors, a_poller.errors[:5]
    assert not a_poller.missing(ha, [mine]), a_poller.missing(ha, [mine])[:10]
    assert a_monitor.events([block(1)]) == [], a_monitor.events([block(1)])
    assert g_rib.samples > 10, g_rib.samples
    assert not g_rib.missing, (g_rib.missing[:10], gobgp.log_tail(20))
    log = r.log_path.read_text()
    assert "graceful restart recovery (-R)" in log and "Forwarding State" in log, r.log_tail()
    assert "recovery done" in log and "End-of-RIB from every peer" in log, r.log_tail()
    r_ms = (poller.median_interval(hr) * 1000, poller.max_interval(hr) * 1000)
    a_ms = (a_poller.median_interval(ha) * 1000, a_poller.max_interval(ha) * 1000)
    print(f"roost restart: recovery {took:.1f} s after start; kernel samples: "
          f"R {len(poller.samples[hr.name])} (every {r_ms[0]:.0f} ms, at most {r_ms[1]:.0f}), "
          f"A {len(a_poller.samples[ha.name])} (every {a_ms[0]:.0f} ms, at most "
          f"{a_ms[1]:.0f}); GoBGP RIB samples {g_rib.samples}")


def no_stale(node: RoostNode) -> bool:
    return all(not p["stale"] for r in node.show("routes") for p in r["paths"])


# --------------------------------------------------------------------------- 3. wait limit


def test_recovery_ends_at_the_wait_limit(lab: Lab) -> None:
    (hr, ha, hg), r, _, gobgp = _mesh(lab)
    a_addr, g_addr = str(ha.addr4), str(hg.addr4)
    unchanged = [own(block(1)), via(block(2), a_addr)]
    orphaned = [via("10.30.1.0/24", g_addr), via("10.30.2.0/24", g_addr)]
    wait = 3
    r.config_path.write_text(r.config_path.read_text().replace("wait = 60", f"wait = {wait}"))
    monitor, poller = KernelMonitor(hr), KernelPoller([hr])
    monitor.start()
    poller.start()
    try:
        gobgp.kill()  # never comes back
        kill9(r)
        t_start = time.monotonic()
        start_recover(r)
        wait_for(lambda: any(p["address"] == a_addr and p["state"] == "Established"
                             for p in r.show("peers")), 20, what="A up again")
        while r.show("status")["recovering"]:
            assert time.monotonic() - t_start < wait + 15, r.log_tail()
            time.sleep(0.02)
        t_done = time.monotonic()
        wait_for(lambda: kernel_set(r) == set(unchanged), 5,
                 what="the routes of the peer that never came back removed",
                 on_timeout=r.log_tail)
    finally:
        poller.stop()
        monitor.stop()
    took = t_done - t_start
    assert wait <= took <= wait + 5, took
    assert not poller.missing(hr, unchanged), poller.missing(hr, unchanged)[:10]
    # G's routes forwarded until the limit, then were removed in one pass.
    assert not poller.missing(hr, orphaned, until=t_start + wait)
    gone = [line.split()[0] for line in orphaned]
    assert [e for e, _ in monitor.events(gone)] == ["del", "del"], monitor.events(gone)
    prefixes = [block(1), block(2)]
    assert monitor.events(prefixes) == [], monitor.events(prefixes)
    log = r.log_path.read_text()
    assert f"the limit of {wait} s" in log, r.log_tail()
    print(f"wait limit: recovery ended {took:.1f} s after start (wait = {wait} s)")
