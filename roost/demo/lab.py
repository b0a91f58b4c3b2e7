"""What the demo creates on the machine, and how it removes it again.

A :class:`Lab` owns network namespaces named ``roost-demo-XXXX-*`` and the `roost run`
processes it started (by PID); :meth:`Lab.close` stops those processes (SIGTERM, then
SIGKILL) and deletes those namespaces, and never raises. Nothing is created or changed in
the root namespace: veth pairs are created inside a namespace and one end moved.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PREFIX = "roost-demo-"
REPO = Path(__file__).resolve().parents[2]
CALI_MAC = "ee:ee:ee:ee:ee:ee"  # the host end of every container veth, as in Calico


class DemoError(Exception):
    """The demo could not run; the message says why (one line)."""


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        cp = subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30)
    except FileNotFoundError:
        raise DemoError("the `ip` command (iproute2) is not installed") from None
    if check and cp.returncode != 0:
        raise DemoError(f"ip {' '.join(args)}: {cp.stderr.strip() or cp.returncode}")
    return cp


def netns_unavailable() -> str | None:
    """Why this process cannot build network namespaces, or None if it can (tried, not
    guessed: a root container without netns support fails here too)."""
    if os.geteuid() != 0:
        return "not root: no network namespaces"
    name = f"{PREFIX}{secrets.token_hex(2)}-probe"
    try:
        cp = ip("netns", "add", name, check=False)
    except DemoError as exc:
        return str(exc)
    if cp.returncode != 0:
        return f"cannot create network namespaces ({cp.stderr.strip() or cp.returncode})"
    ip("netns", "del", name, check=False)
    return None


def ipip_unavailable(probe_ns: str) -> str | None:
    """Why IPIP (tunl0) cannot be used, or None: the module is loaded, or loads, or an
    ipip device can be created in `probe_ns` (built into the kernel)."""
    if Path("/sys/module/ipip").exists():
        return None
    with contextlib.suppress(OSError, subprocess.SubprocessError):
        mp = subprocess.run(["modprobe", "ipip"], capture_output=True, text=True, timeout=10)
        if mp.returncode == 0 and Path("/sys/module/ipip").exists():
            return None
    cp = ip("-n", probe_ns, "link", "add", "name", "ipipprobe", "type", "ipip",
            "remote", "192.0.2.1", check=False)
    if cp.returncode == 0:
        ip("-n", probe_ns, "link", "del", "ipipprobe", check=False)
        return None
    return ("this kernel has no ipip module (/sys/module/ipip absent, `modprobe ipip` "
            "failed), so there is no tunl0")


@dataclass(frozen=True, slots=True)
class Daemon:
    name: str
    config: Path
    socket: str
    log: Path
    proc: subprocess.Popen[bytes]


class Lab:
    """Namespaces and daemons of one demo run. Use as a context manager."""

    def __init__(self, workdir: Path, prefix: str) -> None:
        if not prefix.startswith(PREFIX):
            raise ValueError(f"a demo namespace prefix starts with {PREFIX!r}")
        self.workdir = workdir
        self.prefix = prefix
        self.namespaces: list[str] = []
        self.daemons: list[Daemon] = []

    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---------------------------------------------------------------- namespaces

    def netns(self, name: str) -> str:
        ns = self.prefix + name
        # Recorded first: a Ctrl-C that cuts `ip netns add` short must not leak it.
        self.namespaces.append(ns)
        ip("netns", "add", ns)
        ip("-n", ns, "link", "set", "lo", "up")
        return ns

    def bridge(self, name: str) -> str:
        """A namespace holding only a bridge br0: an L2 segment."""
        ns = self.netns(name)
        ip("-n", ns, "link", "add", "br0", "type", "bridge")
        ip("-n", ns, "link", "set", "br0", "up")
        return ns

    def plug(self, switch: str, port: str, ns: str, dev: str, cidr: str) -> None:
        """A veth from bridge `switch` (its end named `port`) to `dev` in `ns`."""
        # Both ends are created inside the switch namespace, then one moves.
        ip("-n", switch, "link", "add", port, "type", "veth", "peer", "name", dev,
           "netns", ns)
        ip("-n", switch, "link", "set", port, "master", "br0", "up")
        ip("-n", ns, "addr", "add", cidr, "dev", dev)
        ip("-n", ns, "link", "set", dev, "up")

    def link(self, a: str, a_dev: str, a_cidr: str, b: str, b_dev: str, b_cidr: str) -> None:
        """A point-to-point veth between two namespaces."""
        ip("-n", a, "link", "add", a_dev, "type", "veth", "peer", "name", b_dev, "netns", b)
        ip("-n", a, "addr", "add", a_cidr, "dev", a_dev)
        ip("-n", b, "addr", "add", b_cidr, "dev", b_dev)
        ip("-n", a, "link", "set", a_dev, "up")
        ip("-n", b, "link", "set", b_dev, "up")

    def container(self, host_ns: str, name: str, address: str, index: int) -> str:
        """A container the way Calico wires a pod: a veth `cali...` in the host with a /32
        route to the container's address; in the container a default route via the
        link-local 169.254.1.1, which resolves to the host end's MAC ee:ee:ee:ee:ee:ee
        (Calico answers it by proxy ARP; a host without a default route would not, so the
        neighbour entry is static here)."""
        ns = self.netns(name)
        cali = f"cali{index:04d}demo"
        ip("-n", host_ns, "link", "add", cali, "address", CALI_MAC, "type", "veth",
           "peer", "name", "eth0", "netns", ns)
        ip("-n", ns, "addr", "add", f"{address}/32", "dev", "eth0")
        ip("-n", ns, "link", "set", "eth0", "up")
        ip("-n", ns, "route", "add", "169.254.1.1", "dev", "eth0", "scope", "link")
        ip("-n", ns, "route", "add", "default", "via", "169.254.1.1", "dev", "eth0")
        ip("-n", ns, "neigh", "replace", "169.254.1.1", "lladdr", CALI_MAC, "dev", "eth0",
           "nud", "permanent")
        ip("-n", host_ns, "link", "set", cali, "up")
        ip("-n", host_ns, "route", "add", f"{address}/32", "dev", cali, "scope", "link")
        self.sysctl(host_ns, f"net.ipv4.conf.{cali}.proxy_arp=1")
        return ns

    def sysctl(self, ns: str, *settings: str) -> None:
        cp = subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", *settings],
                            capture_output=True, text=True, timeout=10)
        if cp.returncode != 0:
            raise DemoError(f"sysctl {' '.join(settings)} in {ns}: {cp.stderr.strip()}")

    # ---------------------------------------------------------------- daemons

    def start(self, name: str, config: Path, socket: str, *, netns: str | None = None,
              interface: str | None = None) -> Daemon:
        """`roost run -c config` inside `netns`, or without a namespace the demo node
        (`roost.demo.node`) that sees `interface` (NAME=CIDR) as its own. In its own
        session, so a Ctrl-C reaches only the demo, which then stops it."""
        env = dict(os.environ)
        # Run this very roost, installed or not.
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        if netns is not None:
            # `ip netns exec` execs roost: the PID is roost's.
            cmd = ["ip", "netns", "exec", netns, sys.executable, "-m", "roost", "run",
                   "-c", str(config)]
        else:
            cmd = [sys.executable, "-m", "roost.demo.node", "-c", str(config)]
            if interface is not None:
                cmd += ["--interface", interface]
        log = self.workdir / f"{name}.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out,
                                    stderr=subprocess.STDOUT, env=env,
                                    start_new_session=True)
        daemon = Daemon(name, config, socket, log, proc)
        self.daemons.append(daemon)
        return daemon

    def stop_daemons(self) -> None:
        """SIGTERM each daemon we started (roost sends Cease and exits), SIGKILL the ones
        still there after 5 s."""
        live = [d.proc for d in self.daemons if d.proc.poll() is None]
        for proc in live:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, signal.SIGTERM)
        deadline = time.monotonic() + 5
        for proc in live:
            try:
                proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGKILL)
                proc.wait()
        self.daemons.clear()

    def close(self) -> None:
        # A second Ctrl-C must not cut the clean-up short.
        old: Any = None
        with contextlib.suppress(ValueError):  # not the main thread: keep the handler
            old = signal.signal(signal.SIGINT, signal.SIG_IGN)
        try:
            with contextlib.suppress(Exception):
                self.stop_daemons()
            for ns in reversed(self.namespaces):
                with contextlib.suppress(Exception):
                    ip("netns", "del", ns, check=False)
            self.namespaces.clear()
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
