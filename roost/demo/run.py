"""`roost demo`: each topology built, run with real `roost run` daemons, checked, shown.

For each topology in turn: draw it, build it (namespaces, or loopback addresses when there
are none), start one daemon per node, wait until every node has exactly the routes it
must have (each other block via its owner, with the expected device), print the tables,
ping container to container, stop the daemons and remove the namespaces. A summary table
closes the run; the exit code is 1 if a topology did not converge or a ping failed.
"""

from __future__ import annotations

import contextlib
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import FrameType

from roost import control
from roost.demo import topology as topo_mod
from roost.demo.lab import PREFIX, Daemon, DemoError, Lab, ip, ipip_unavailable, netns_unavailable
from roost.demo.topology import Node, Placement, Topology

POLL = 0.1  # seconds between convergence checks
WIDTH = 92  # output columns for wrapped text


@dataclass(frozen=True, slots=True)
class StepResult:
    topology: str
    nodes: int
    routes: int  # learned routes installed (or printed, dry run) over all nodes
    seconds: float | None  # None: did not converge
    pings_ok: int
    pings_failed: int
    skipped: str = ""  # why the pings did not run

    @property
    def ok(self) -> bool:
        return self.seconds is not None and self.pings_failed == 0


def _say(text: str = "") -> None:
    print(text, flush=True)


def _indent(text: str, by: str = "   ") -> str:
    return "\n".join(by + line.rstrip() for line in text.strip().splitlines())


# ------------------------------------------------------------------------ one step


class Step:
    """One topology: build, run, wait, show, ping. The Lab cleans up."""

    def __init__(self, topo: Topology, lab: Lab, *, port: int | None, dry_run: bool,
                 tag: str) -> None:
        self.topo = topo
        self.lab = lab
        self.port = port
        self.dry_run = dry_run
        self.tag = tag  # namespace name part: "mesh", "rr", "xs"
        self.host_ns: dict[str, str] = {}  # node name -> namespace
        self.container_ns: dict[str, str] = {}
        self.sockets: dict[str, str] = {}
        self.daemons: dict[str, Daemon] = {}

    # ---------------------------------------------------------------- build

    def build(self) -> None:
        t = self.topo
        if t.placement != "netns":
            return
        if t.router:
            router = self.lab.netns(f"{self.tag}-router")
            self.lab.sysctl(router, "net.ipv4.ip_forward=1")
            for i, node in enumerate(t.nodes):
                ns = self._host(node)
                self.lab.link(router, f"eth{i}", t.router[i], ns, "eth0", node.interface)
                if node.gateway is not None:
                    ip("-n", ns, "route", "add", "default", "via", node.gateway)
        else:
            sw = self.lab.bridge(f"{self.tag}-sw")
            for node in t.nodes:
                ns = self._host(node)
                self.lab.plug(sw, node.name, ns, "eth0", node.interface)
        if self.dry_run:
            return  # no traffic: no containers
        for i, node in enumerate(t.hosts):
            ns = self.host_ns[node.name]
            self.lab.sysctl(ns, "net.ipv4.ip_forward=1")
            if t.tunnel != "never":
                self._tunnel(ns)
            assert node.container is not None
            self.container_ns[node.name] = self.lab.container(
                ns, f"{self.tag}-{node.name}-c", node.container, i)

    def _host(self, node: Node) -> str:
        ns = self.lab.netns(f"{self.tag}-{node.name}")
        self.host_ns[node.name] = ns
        return ns

    def _tunnel(self, ns: str) -> None:
        """tunl0 up, as calico-node does; it appears in every namespace once ipip is
        loaded (unless fallback tunnels are limited to the root namespace)."""
        if ip("-n", ns, "link", "show", "tunl0", check=False).returncode != 0:
            ip("-n", ns, "link", "add", "name", "tunl0", "type", "ipip")
        ip("-n", ns, "link", "set", "tunl0", "up")
        self.lab.sysctl(ns, "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.tunl0.rp_filter=0")

    # ---------------------------------------------------------------- run

    def start(self) -> None:
        for node in self.topo.nodes:
            name = f"{self.tag}-{node.name}"
            sock = str(self.lab.workdir / f"{name}.ctl")
            config = self.lab.workdir / f"{name}.toml"
            config.write_text(topo_mod.config_text(self.topo, node, port=self.port,
                                                   socket=sock, dry_run=self.dry_run))
            self.sockets[node.name] = sock
            if self.topo.placement == "netns":
                daemon = self.lab.start(name, config, sock, netns=self.host_ns[node.name])
            else:
                daemon = self.lab.start(name, config, sock, interface=f"eth0={node.interface}")
            self.daemons[node.name] = daemon

    def installed(self, node: Node) -> dict[str, tuple[str, str] | None] | None:
        """What the node's kernel sink holds (prefix -> (gateway, device), None for a
        blackhole), or None if its daemon does not answer yet."""
        daemon = self.daemons[node.name]
        if daemon.proc.poll() is not None:
            lines = daemon.log.read_text(errors="replace").strip().splitlines()[-3:]
            raise DemoError(f"roost on {node.name} exited ({daemon.proc.returncode}): "
                            + " | ".join(lines))
        try:
            routes = control.request(self.sockets[node.name], "show routes", timeout=2)
        except control.ControlError:
            return None
        out: dict[str, tuple[str, str] | None] = {}
        for r in routes:
            k = r.get("kernel")
            if not k:
                continue
            if k["blackhole"]:
                out[r["prefix"]] = None
            else:
                (nh,) = k["nexthops"]
                out[r["prefix"]] = (nh["gateway"], nh["dev"])
        return out

    def wait(self, timeout: float) -> float:
        """Seconds until every node has exactly its expected routes."""
        start = time.monotonic()
        pending = list(self.topo.hosts)
        while pending:
            node = pending[0]
            have = self.installed(node)
            if have == self.topo.expected(node):
                pending.pop(0)
                continue
            if time.monotonic() - start > timeout:
                tail = self.daemons[node.name].log.read_text(errors="replace")
                raise DemoError(f"{node.name} did not converge within {timeout:g} s; its "
                                f"kernel routes: {have}; the end of its log:\n"
                                + _indent("\n".join(tail.strip().splitlines()[-5:]), "      "))
            time.sleep(POLL)
        return time.monotonic() - start

    # ---------------------------------------------------------------- show

    def tables(self) -> int:
        """Print each node's table; returns the number of learned routes shown."""
        learned = 0
        for node in self.topo.hosts:
            where = f"{node.name} {node.host_address} owns {node.block}"
            if self.dry_run:
                lines = self._dry_run_lines(node)
                _say(f"   {where}; roost would run:")
            else:
                out = ip("-n", self.host_ns[node.name], "route", "show").stdout
                lines = out.strip().splitlines()
                _say(f"   {where}; `ip route`:")
            for line in lines:
                _say(f"      {line.rstrip()}")
            learned += sum(1 for line in lines if "proto bird" in line and " via " in line)
        for node in self.topo.nodes:
            if node.role == "reflector":
                routes = control.request(self.sockets[node.name], "show routes", timeout=5)
                peers = control.request(self.sockets[node.name], "show peers", timeout=5)
                up = sum(1 for p in peers if p["state"] == "Established")
                _say(f"   {node.name}: reflects {len(routes)} routes, {up}/{len(peers)} "
                     f"sessions Established, installs none")
        return learned

    def _dry_run_lines(self, node: Node) -> list[str]:
        log = self.daemons[node.name].log.read_text(errors="replace")
        return [line for line in log.splitlines() if line.startswith(("ip route", "ip -6 route"))]

    def pings(self) -> tuple[int, int]:
        """Container to container across hosts: from the first host's container to every
        container of another host (another rack in the reflector topology)."""
        hosts = self.topo.hosts
        src = hosts[0]
        targets = [n for n in hosts[1:] if n.asn != src.asn] or list(hosts[1:])
        ok = failed = 0
        for dst in targets:
            assert src.container is not None and dst.container is not None
            cp = subprocess.run(
                ["ip", "netns", "exec", self.container_ns[src.name], "ping", "-c1", "-W2",
                 dst.container], capture_output=True, text=True, timeout=15)
            verdict = "ok" if cp.returncode == 0 else "FAILED"
            _say(f"   ping {src.container} ({src.name}'s container) -> {dst.container} "
                 f"({dst.name}'s container): {verdict}")
            if cp.returncode == 0:
                ok += 1
            else:
                failed += 1
        return ok, failed


# ------------------------------------------------------------------------ the run

_TAGS = {"mesh": "mesh", "reflector": "rr", "cross-subnet": "xs"}


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((address, 0))
        port: int = s.getsockname()[1]
        return port


def _run_step(index: int, count: int, topo: Topology, lab: Lab, *, port: int | None,
              timeout: float) -> StepResult:
    _say(f"\n== {index}/{count} {topo.title}")
    _say(topo.picture)
    if topo.note:
        _say(_wrap(f"({topo.note})"))
    dry_run = topo.placement == "loopback"
    skipped = "no namespaces" if dry_run else ""
    if topo.tunnel != "never" and not dry_run:
        reason = ipip_unavailable(lab.netns(f"{_TAGS[topo.name]}-probe"))
        if reason is None:
            _say("   ipip is available: learned routes go through tunl0, pings are IPIP.")
        else:
            dry_run = True
            skipped = "no ipip in this kernel"
            _say(_wrap(f"SKIPPED the pings: {reason}. The namespaces and BGP sessions are "
                       f"real; the kernel sink is the dry-run one ([kernel] dry_run = true), "
                       f"which prints the `ip route` commands roost would run."))
    step = Step(topo, lab, port=port, dry_run=dry_run, tag=_TAGS[topo.name])
    step.build()
    step.start()
    _say(f"   started {len(topo.nodes)} roost daemons, waiting for convergence ...")
    try:
        seconds = step.wait(timeout)
    except DemoError as exc:
        _say(f"   FAILED: {exc}")
        return StepResult(topo.name, len(topo.nodes), 0, None, 0, 0, skipped)
    _say(f"   converged in {seconds:.1f} s")
    routes = step.tables()
    ok = failed = 0
    if not dry_run:
        ok, failed = step.pings()
    return StepResult(topo.name, len(topo.nodes), routes, seconds, ok, failed, skipped)


def _wrap(text: str) -> str:
    return textwrap.fill(text, width=WIDTH, initial_indent="   ", subsequent_indent="   ")


def summary(results: Sequence[StepResult]) -> str:
    header = ("topology", "nodes", "routes", "converged", "pings")
    rows = []
    for r in results:
        conv = "FAILED" if r.seconds is None else f"{r.seconds:.1f} s"
        if r.seconds is None:
            pings = "not run"
        elif r.skipped and not (r.pings_ok or r.pings_failed):
            pings = f"skipped ({r.skipped})"
        else:
            pings = f"{r.pings_ok} ok, {r.pings_failed} failed"
        rows.append((r.topology, str(r.nodes), str(r.routes), conv, pings))
    widths = [max(len(row[i]) for row in [header, *rows]) for i in range(len(header))]
    return "\n".join("   " + "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True))
                     .rstrip() for row in [header, *rows])


@contextlib.contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM cleans up like Ctrl-C does."""
    def handler(signum: int, frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def run_demo(topologies: Sequence[str] = topo_mod.TOPOLOGY_NAMES, *, mesh_nodes: int = 4,
             rack_nodes: int = 2, timeout: float = 30.0, force_loopback: bool = False,
             keep_files: bool = False) -> int:
    """The `roost demo` command; returns the exit code (0: every topology converged and
    every ping answered, 1: not, 130: interrupted)."""
    why_not = "--no-netns given" if force_loopback else netns_unavailable()
    placement: Placement = "loopback" if why_not else "netns"
    loopback_base = f"127.{secrets.randbelow(254) + 1}"
    port = _free_port(f"{loopback_base}.1.1") if placement == "loopback" else None
    if placement == "netns" and shutil.which("ping") is None:
        raise DemoError("the `ping` command (iputils-ping) is not installed")
    topos = [topo_mod.build(name, placement, loopback_base, mesh_nodes=mesh_nodes,
                            rack_nodes=rack_nodes) for name in topologies]
    # One name for everything of this run: namespaces, files, processes' command lines.
    prefix = f"{PREFIX}{secrets.token_hex(2)}-"
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    rid = prefix.rstrip("-")
    if why_not:
        _say(f"run {rid}: {why_not}; showing the routes roost would install.")
        _say(_wrap(f"Each node is a roost daemon with its BGP sessions on its own "
                   f"{loopback_base}.x.y address (port {port}), the dry-run kernel sink, "
                   f"and the interfaces it has in the topology.").removeprefix("   "))
    else:
        _say(f"run {rid}: network namespaces {prefix}*, one `roost run` per node")
    results: list[StepResult] = []
    started = time.monotonic()
    interrupted = False
    try:
        with _sigterm_as_interrupt(), Lab(workdir, prefix) as lab:
            for i, topo in enumerate(topos, start=1):
                try:
                    results.append(_run_step(i, len(topos), topo, lab, port=port,
                                             timeout=timeout))
                finally:
                    lab.close()  # this topology's daemons and namespaces
    except KeyboardInterrupt:
        interrupted = True
    finally:
        if keep_files:
            print(f"configurations and logs kept in {workdir}", file=sys.stderr)
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    if interrupted:
        print("interrupted; daemons stopped, namespaces and files removed", file=sys.stderr)
        return 130
    removed = "namespaces removed" if placement == "netns" else "no namespaces"
    _say(f"\nsummary ({time.monotonic() - started:.1f} s; daemons stopped, {removed}):")
    _say(summary(results))
    return 0 if all(r.ok for r in results) else 1
