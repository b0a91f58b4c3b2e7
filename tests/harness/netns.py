"""Network-namespace topologies for roost's integration, interop and conformance tests.

A :class:`Lab` builds switches (a Linux bridge alone in its own namespace), hosts (a namespace
with one veth ``eth0`` plugged into a switch) and routers (two legs, forwarding + proxy ARP).
Every namespace of one lab is named ``roost-<4 hex>-<name>``, so parallel and leftover runs
never collide.  Nothing is created in, or changed in, the root namespace: veth pairs are
created directly inside their target namespaces.

Usage::

    from tests.harness.netns import Lab, require_netns

    def test_something(tmp_path):
        require_netns()
        with Lab(tmp_path) as lab:
            h1, h2 = lab.flat(2)             # 10.255.0.1/24 + fd00:255::1/64, ...
            h1.run(["ping", "-c1", "-W1", h2.addr4])
            proc = h1.popen(["python3", "-m", "roost", ...], tmp_path / "roost.log")

``Lab.close()`` (also run by ``__exit__``) stops, by PID, only what the lab started: daemons
registered by the classes in :mod:`tests.harness.daemons`, processes started with
:meth:`Host.popen`, pids from registered pid files, and finally anything still running inside
the lab's own namespaces.  Then it deletes the namespaces.  It never raises.
"""

from __future__ import annotations

import contextlib
import ipaddress
import logging
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger(__name__)

NS_PREFIX = "roost-"
IFNAMSIZ = 15
OWNER_FILE = "lab.owner"
_SETTLE = 0.1


class Stoppable(Protocol):
    """What a daemon object registered with :meth:`Lab.register` must offer."""

    def stop(self) -> None: ...


class CommandError(subprocess.CalledProcessError):
    """CalledProcessError whose message includes stdout/stderr (pytest shows it verbatim)."""

    def __str__(self) -> str:
        base = super().__str__()
        out = (self.stdout or "").strip()
        err = (self.stderr or "").strip()
        extra = "".join(f"\n{k}: {v[-2000:]}" for k, v in (("stdout", out), ("stderr", err)) if v)
        return base + extra


def _run(argv: Sequence[str], *, check: bool = True, timeout: float = 30,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a command in the *current* (root) namespace -- only used for `ip` plumbing."""
    try:
        cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            input=input, check=False)
    except subprocess.TimeoutExpired as exc:
        raise CommandError(-1, list(argv), str(exc.stdout or ""), str(exc.stderr or "")) from exc
    if check and cp.returncode != 0:
        raise CommandError(cp.returncode, list(argv), cp.stdout, cp.stderr)
    return cp


def require_netns() -> None:
    """``pytest.skip`` (with the reason) unless we are root and can create a namespace."""
    import pytest

    if os.geteuid() != 0:
        pytest.skip("needs root (network namespaces)")
    if shutil.which("ip") is None:
        pytest.skip("needs iproute2 ('ip' not found)")
    probe = f"{NS_PREFIX}probe-{secrets.token_hex(3)}"
    cp = subprocess.run(["ip", "netns", "add", probe], capture_output=True, text=True,
                        check=False)
    if cp.returncode != 0:
        pytest.skip(f"cannot create network namespaces: {cp.stderr.strip()}")
    subprocess.run(["ip", "netns", "del", probe], capture_output=True, check=False)


def _strip_len(addr: str | None) -> str | None:
    return None if addr is None else addr.split("/", 1)[0]


def netns_inode(ns: str) -> int | None:
    try:
        return os.stat(f"/run/netns/{ns}").st_ino
    except OSError:
        return None


def pid_netns_inode(pid: int) -> int | None:
    try:
        return os.stat(f"/proc/{pid}/ns/net").st_ino
    except OSError:
        return None


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child of ours counts as dead
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read_pidfile(path: Path) -> int | None:
    try:
        text = path.read_text().strip()
        return int(text.split()[0]) if text else None
    except (OSError, ValueError):
        return None


def wait_for(pred: Callable[[], Any], timeout: float, interval: float = 0.1,
             what: str = "condition", on_timeout: Callable[[], str] | None = None) -> Any:
    """Poll ``pred`` until it returns something truthy; AssertionError after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while True:
        try:
            val = pred()
            if val:
                return val
        except Exception as exc:  # predicates may fail while daemons start
            last_exc = exc
        if time.monotonic() >= deadline:
            msg = f"timeout ({timeout:g} s) waiting for {what}"
            if last_exc is not None:
                msg += f"\nlast error: {last_exc!r}"
            if on_timeout is not None:
                with contextlib.suppress(Exception):
                    msg += "\n" + on_timeout()
            raise AssertionError(msg)
        time.sleep(interval)


@dataclass
class Switch:
    """A Linux bridge ``br0`` alone in namespace ``netns``."""

    lab: Lab = field(repr=False)
    name: str
    netns: str
    ports: list[str] = field(default_factory=list)


@dataclass
class Host:
    """A node: one namespace with interface(s) ``eth0`` (``eth1`` for routers)."""

    lab: Lab = field(repr=False)
    name: str
    netns: str
    addr4: str | None = None
    addr6: str | None = None
    cidr4: str | None = None
    cidr6: str | None = None
    gateway: str | None = None
    ifname: str = "eth0"

    # --- running things inside the namespace ------------------------------------------
    def cmd(self, argv: Sequence[str]) -> list[str]:
        """argv wrapped to run inside this host's namespace."""
        return ["ip", "netns", "exec", self.netns, *argv]

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 30,
            input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run argv inside the namespace, capture text output; CommandError if check fails."""
        return _run(self.cmd(argv), check=check, timeout=timeout, input=input)

    def popen(self, argv: Sequence[str], log_path: Path | str | None = None, *,
              env: dict[str, str] | None = None, stdin: Any = subprocess.DEVNULL,
              stdout: Any = None, cwd: Path | str | None = None) -> subprocess.Popen[Any]:
        """Start argv inside the namespace in its own session; stdout+stderr go to log_path.

        The process is tracked by the lab and stopped (SIGTERM, then SIGKILL) at close.
        ``ip netns exec`` execs the command, so ``proc.pid`` is the command's own pid.
        """
        logf: Any = None
        if stdout is None:
            if log_path is None:
                log_path = self.lab.workdir / f"{self.name}-{Path(argv[0]).name}.log"
            log_path = Path(log_path)
            log_path.parent.mkdir(parents=True, exist_ok=True)
            logf = open(log_path, "ab")  # noqa: SIM115 - handed to the child
            out: Any = logf
            err: Any = subprocess.STDOUT
        else:
            out, err = stdout, subprocess.STDOUT
        try:
            proc = subprocess.Popen(self.cmd(argv), stdin=stdin, stdout=out, stderr=err,
                                    env=env, cwd=cwd, start_new_session=True)
        finally:
            if logf is not None:
                logf.close()
        self.lab.track(proc)
        return proc

    # --- inspection -----------------------------------------------------------------
    def routes(self, family: int = 4, table: str = "main") -> list[str]:
        """`ip route` lines of this namespace's FIB (family 4 or 6)."""
        cp = _run(["ip", "-n", self.netns, f"-{family}", "route", "show", "table", table])
        return [line.strip() for line in cp.stdout.splitlines() if line.strip()]

    def addresses(self, dev: str | None = None) -> list[str]:
        argv = ["ip", "-n", self.netns, "-o", "addr", "show"]
        if dev:
            argv += ["dev", dev]
        return [line.split()[3] for line in _run(argv).stdout.splitlines()]

    def add_address(self, cidr: str, dev: str = "lo") -> None:
        """Extra address (e.g. something pingable behind an announced prefix on lo)."""
        extra = ["nodad"] if ":" in cidr else []
        _run(["ip", "-n", self.netns, "addr", "add", cidr, "dev", dev, *extra])

    def ip(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """`ip -n NS ARGS...` (e.g. host.ip("route", "add", "10.9.0.0/16", "via", gw))."""
        return _run(["ip", "-n", self.netns, *args], check=check)

    def ping(self, addr: str, count: int = 1, timeout: float = 2) -> bool:
        fam = "-6" if ":" in addr else "-4"
        cp = self.run(["ping", fam, "-c", str(count), "-W", str(max(1, int(timeout))), addr],
                      check=False, timeout=timeout * count + 5)
        return cp.returncode == 0

    def wait_listening(self, port: int = 179, timeout: float = 10) -> None:
        """Wait until something listens on TCP ``port`` inside this namespace."""
        wait_for(lambda: self.run(["ss", "-Hltn", f"sport = :{port}"], check=False)
                 .stdout.strip(), timeout, what=f"{self.name}: TCP listener on port {port}")

    @property
    def workdir(self) -> Path:
        """Default per-host directory for daemon configs and logs."""
        d = self.lab.workdir / self.name
        d.mkdir(parents=True, exist_ok=True)
        return d

    def __str__(self) -> str:
        return f"{self.name}({self.addr4 or self.addr6})"


class Lab:
    """A set of namespaces and the processes started in them; a context manager."""

    def __init__(self, workdir: Path | str | None = None, *, prefix: str = NS_PREFIX,
                 lab_id: str | None = None) -> None:
        existing = set(list_lab_namespaces(prefix))
        while True:
            self.id = lab_id or secrets.token_hex(2)
            self.prefix = f"{prefix}{self.id}-"
            clash = any(n.startswith(self.prefix) for n in existing) or \
                any(Path("/tmp").glob(f"roost-{self.id}-*"))
            if not clash:
                break
            if lab_id:
                raise ValueError(f"lab id {lab_id!r} is in use")
        # short, world-traversable directory for unix sockets and for daemons that drop
        # privileges (FRR runs as user 'frr'); sun_path is limited to 108 bytes.
        self.rundir = Path(tempfile.mkdtemp(prefix=f"roost-{self.id}-", dir="/tmp"))
        self.rundir.chmod(0o755)
        # owner record: lets reap_stale_labs() clean up after a killed test run
        (self.rundir / OWNER_FILE).write_text(f"{os.getpid()} {_start_time(os.getpid())}\n")
        self.workdir = Path(workdir) if workdir is not None else self.rundir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.namespaces: list[str] = []
        self.switches: dict[str, Switch] = {}
        self.hosts: dict[str, Host] = {}
        self._procs: list[subprocess.Popen[Any]] = []
        self._pidfiles: list[Path] = []
        self._daemons: list[Stoppable] = []
        self._closers: list[Callable[[], None]] = []
        self._closed = False

    # --- context manager --------------------------------------------------------------
    def __enter__(self) -> Lab:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- bookkeeping for close() ------------------------------------------------------
    def track(self, proc: subprocess.Popen[Any]) -> None:
        self._procs.append(proc)

    def track_pidfile(self, path: Path) -> None:
        if path not in self._pidfiles:
            self._pidfiles.append(path)

    def register(self, daemon: Stoppable) -> None:
        """Daemon objects are stopped (their own stop()) first at close, newest first."""
        if daemon not in self._daemons:
            self._daemons.append(daemon)

    def on_close(self, fn: Callable[[], None]) -> None:
        self._closers.append(fn)

    def ns(self, name: str) -> str:
        return name if name.startswith(self.prefix) else f"{self.prefix}{name}"

    # --- topology -----------------------------------------------------------------
    def _mkns(self, name: str) -> str:
        ns = self.ns(name)
        if ns in self.namespaces:
            raise ValueError(f"lab already has a node named {name!r}")
        _run(["ip", "netns", "add", ns])
        self.namespaces.append(ns)
        _run(["ip", "-n", ns, "link", "set", "dev", "lo", "up"])
        return ns

    def _sysctl(self, ns: str, *settings: str) -> None:
        _run(["ip", "netns", "exec", ns, "sysctl", "-qw", *settings])

    def _mknode_ns(self, name: str) -> str:
        ns = self._mkns(name)
        # before any interface exists, so eth* inherit the defaults: IPv6 quiet and instant
        self._sysctl(ns,
                     "net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
                     "net.ipv6.conf.all.router_solicitations=0",
                     "net.ipv6.conf.default.router_solicitations=0",
                     "net.ipv6.conf.all.accept_ra=0", "net.ipv6.conf.default.accept_ra=0",
                     "net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0")
        return ns

    def switch(self, name: str = "sw") -> Switch:
        """A bridge br0 (STP off, no forward delay, no multicast snooping) in its own netns."""
        if name in self.switches:
            return self.switches[name]
        ns = self._mkns(name)
        self._sysctl(ns, "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
        _run(["ip", "-n", ns, "link", "add", "br0", "type", "bridge", "stp_state", "0",
              "forward_delay", "0", "mcast_snooping", "0"])
        _run(["ip", "-n", ns, "link", "set", "dev", "br0", "up"])
        sw = Switch(self, name, ns)
        self.switches[name] = sw
        return sw

    def _switch_of(self, switch: Switch | str) -> Switch:
        if isinstance(switch, Switch):
            return switch
        return self.switches[switch] if switch in self.switches else self.switch(switch)

    def _leg(self, ns: str, ifname: str, sw: Switch, port: str) -> None:
        if len(port) > IFNAMSIZ:
            raise ValueError(f"switch port name {port!r} longer than {IFNAMSIZ} chars "
                             "(use a shorter node name)")
        if port in sw.ports:
            raise ValueError(f"switch {sw.name} already has a port {port!r}")
        _run(["ip", "link", "add", ifname, "netns", ns, "type", "veth",
              "peer", "name", port, "netns", sw.netns])
        sw.ports.append(port)
        _run(["ip", "-n", sw.netns, "link", "set", "dev", port, "master", "br0"])
        _run(["ip", "-n", sw.netns, "link", "set", "dev", port, "up"])
        _run(["ip", "-n", ns, "link", "set", "dev", ifname, "up"])

    def _addr(self, ns: str, cidr: str, dev: str) -> None:
        ipaddress.ip_interface(cidr)  # validate early with a clear error
        extra = ["nodad"] if ":" in cidr else []
        _run(["ip", "-n", ns, "addr", "add", cidr, "dev", dev, *extra])

    def host(self, name: str, switch: Switch | str = "sw", addr4: str | None = "10.255.0.1/24",
             addr6: str | None = None, gateway: str | None = None,
             gateway6: str | None = None) -> Host:
        """A node with eth0 on ``switch`` (created if needed); optional default route(s)."""
        sw = self._switch_of(switch)
        ns = self._mknode_ns(name)
        self._leg(ns, "eth0", sw, name)
        if addr4:
            self._addr(ns, addr4, "eth0")
        if addr6:
            self._addr(ns, addr6, "eth0")
        if gateway:
            _run(["ip", "-n", ns, "route", "add", "default", "via", gateway])
        if gateway6:
            _run(["ip", "-n", ns, "-6", "route", "add", "default", "via", gateway6])
        h = Host(self, name, ns, _strip_len(addr4), _strip_len(addr6), addr4, addr6, gateway)
        self.hosts[name] = h
        return h

    def router(self, name: str, *legs: tuple[Switch | str, str] | tuple[Switch | str, str, str]
               ) -> Host:
        """A node with one leg per (switch, addr[, addr6]) -> eth0, eth1, ...; IPv4/IPv6
        forwarding and proxy_arp on.  Host.addr4/addr6 are those of the first leg."""
        if len(legs) < 2:
            raise ValueError("a router needs at least two legs")
        ns = self._mknode_ns(name)
        a4: str | None = None
        a6: str | None = None
        settings = ["net.ipv4.ip_forward=1", "net.ipv6.conf.all.forwarding=1",
                    "net.ipv4.conf.all.proxy_arp=1"]
        for i, leg in enumerate(legs):
            sw = self._switch_of(leg[0])
            dev = f"eth{i}"
            self._leg(ns, dev, sw, f"{name}{i}")
            for cidr in leg[1:]:
                self._addr(ns, cidr, dev)
                if ":" in cidr:
                    a6 = a6 or cidr
                else:
                    a4 = a4 or cidr
            settings.append(f"net.ipv4.conf.{dev}.proxy_arp=1")
        self._sysctl(ns, *settings)
        h = Host(self, name, ns, _strip_len(a4), _strip_len(a6), a4, a6)
        self.hosts[name] = h
        return h

    def flat(self, n: int, names: Sequence[str] | None = None, switch: str = "sw",
             v6: bool = True) -> list[Host]:
        """Hosts h1..hN on one switch: 10.255.0.i/24 and fd00:255::i/64 (nodad)."""
        names = list(names) if names is not None else [f"h{i}" for i in range(1, n + 1)]
        if len(names) != n:
            raise ValueError("len(names) != n")
        if n > 253:
            raise ValueError("flat() supports at most 253 hosts")
        return [self.host(nm, switch, f"10.255.0.{i}/24",
                          f"fd00:255::{i}/64" if v6 else None)
                for i, nm in enumerate(names, start=1)]

    # --- teardown ------------------------------------------------------------------
    def _our_inodes(self) -> set[int]:
        return {i for i in (netns_inode(ns) for ns in self.namespaces) if i is not None}

    def _signal_pids(self, pids: set[int], sig: int) -> None:
        for pid in pids:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(pid, sig)

    def _wait_gone(self, pids: set[int], timeout: float) -> set[int]:
        deadline = time.monotonic() + timeout
        left = {p for p in pids if pid_alive(p)}
        while left and time.monotonic() < deadline:
            for proc in self._procs:  # reap our children so they do not linger as zombies
                with contextlib.suppress(Exception):
                    proc.poll()
            time.sleep(0.05)
            left = {p for p in left if pid_alive(p)}
        return left

    def kill_pids(self, pids: set[int], grace: float = 5.0) -> None:
        """SIGTERM, wait up to ``grace`` s, SIGKILL.  Only call with pids we started.

        ``grace <= 0`` is a crash (``Daemon.kill``): SIGKILL alone.  A SIGTERM sent just
        before it would race it - BIRD, for one, handles SIGTERM by sending every peer a
        Cease (Administrative Shutdown) within a millisecond, which ends a graceful
        restart (RFC 4724) that the crash was meant to start."""
        pids = {p for p in pids if p > 1 and p != os.getpid() and pid_alive(p)}
        if not pids:
            return
        if grace <= 0:
            self._signal_pids(pids, signal.SIGKILL)
            self._wait_gone(pids, 2.0)
            return
        self._signal_pids(pids, signal.SIGTERM)
        left = self._wait_gone(pids, grace)
        if left:
            log.warning("lab %s: SIGKILL %s", self.id, sorted(left))
            self._signal_pids(left, signal.SIGKILL)
            self._wait_gone(left, 2.0)

    def close(self) -> None:
        """Stop everything the lab started, delete its namespaces.  Idempotent, never raises."""
        if self._closed:
            return
        self._closed = True
        for fn in reversed(self._closers):
            try:
                fn()
            except Exception:
                log.exception("lab %s: close hook failed", self.id)
        for d in reversed(self._daemons):
            try:
                d.stop()
            except Exception:
                log.exception("lab %s: stopping %r failed", self.id, d)
        inodes = self._our_inodes()
        pids: set[int] = set()
        for proc in self._procs:
            if proc.poll() is None:
                pids.add(proc.pid)
        for pf in self._pidfiles:
            pid = read_pidfile(pf)
            # a pid file may be stale and its pid reused: only kill it if it runs in our netns
            if pid is not None and pid_netns_inode(pid) in inodes:
                pids.add(pid)
        try:
            self.kill_pids(pids)
        except Exception:
            log.exception("lab %s: killing processes failed", self.id)
        for proc in self._procs:
            with contextlib.suppress(Exception):
                proc.wait(timeout=1)
        # anything still running inside our namespaces was started by this lab's tests
        stray: set[int] = set()
        for ns in self.namespaces:
            cp = _run(["ip", "netns", "pids", ns], check=False)
            stray |= {int(p) for p in cp.stdout.split() if p.isdigit()}
        if stray:
            log.warning("lab %s: stray processes in lab namespaces: %s", self.id, sorted(stray))
            with contextlib.suppress(Exception):
                self.kill_pids(stray, grace=2.0)
        for ns in reversed(self.namespaces):
            cp = _run(["ip", "netns", "del", ns], check=False)
            if cp.returncode != 0:
                log.warning("lab %s: ip netns del %s: %s", self.id, ns, cp.stderr.strip())
        self.namespaces.clear()
        # the rundir only holds sockets, pid files and FRR's runtime copies when the caller
        # gave a workdir (logs and configs are there); otherwise it is the only copy: keep it
        if self.workdir != self.rundir:
            shutil.rmtree(self.rundir, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                (self.rundir / OWNER_FILE).unlink()

    def __repr__(self) -> str:
        return f"Lab({self.id}, {len(self.namespaces)} namespaces)"


def _start_time(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return "?"


def reap_stale_labs(prefix: str = NS_PREFIX) -> list[str]:
    """Clean up after labs whose owning process died without close() (e.g. SIGKILLed
    pytest): kill what runs in *their* namespaces, delete those namespaces.  Labs of live
    processes (parallel runs) are never touched.  Returns the namespaces removed."""
    removed: list[str] = []
    current = list_lab_namespaces(prefix)
    for owner in Path("/tmp").glob(f"roost-*-*/{OWNER_FILE}"):
        try:
            pid_s, start = owner.read_text().split()
            pid = int(pid_s)
        except (OSError, ValueError):
            continue
        if pid_alive(pid) and _start_time(pid) == start:
            continue
        lab_id = owner.parent.name.split("-")[1]
        mine = [ns for ns in current if ns.startswith(f"{prefix}{lab_id}-")]
        pids: set[int] = set()
        for ns in mine:
            cp = _run(["ip", "netns", "pids", ns], check=False)
            pids |= {int(p) for p in cp.stdout.split() if p.isdigit()}
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 1.0)):
            for p in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(p, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and any(pid_alive(p) for p in pids):
                time.sleep(0.05)
        removed += [ns for ns in mine
                    if _run(["ip", "netns", "del", ns], check=False).returncode == 0]
        with contextlib.suppress(OSError):
            owner.unlink()
        log.warning("reaped stale lab %s (owner pid %d gone): %s", lab_id, pid, mine)
    return removed


def list_lab_namespaces(prefix: str = NS_PREFIX) -> list[str]:
    """Namespaces that look like ours (for diagnosing leftovers; deletes nothing)."""
    cp = _run(["ip", "netns", "list"], check=False)
    return [ln.split()[0] for ln in cp.stdout.splitlines()
            if ln.strip() and ln.split()[0].startswith(prefix)]
