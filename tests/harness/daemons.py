"""Real BGP daemons (GoBGP, BIRD, FRR, ExaBGP) inside a :class:`~tests.harness.netns.Lab`.

Every daemon class has the same shape::

    d = GoBgp(host, 65001, "10.255.0.1", [Neighbor("10.255.0.2", 65002)],
              workdir=tmp_path / "gobgp", originate=["10.1.0.0/24"])
    d.start()
    d.wait_established("10.255.0.2")
    paths = d.wait_route("10.2.0.0/24")          # -> list[RouteView]
    assert paths[0].as_path == [65002]
    d.add_route("10.1.1.0/24", communities=["65001:7"])
    d.del_route("10.1.1.0/24")
    d.stop()

Everything a daemon writes (config, pid file, log) is in its ``workdir``; control sockets
live in the lab's short ``rundir`` (unix socket paths are limited to 108 bytes).  Daemons
register with the lab, so ``Lab.close()`` stops them even when a test fails midway.

Normalised RouteView values (identical whatever daemon produced them):
  * ``as_path``: flat list of ASNs (AS_SET members in order, after the sequence).
  * ``origin``: "igp" | "egp" | "incomplete".
  * ``communities``: "ASN:VALUE" strings, numeric even for well-known ones
    (NO_EXPORT is "65535:65281").
  * ``large_communities``: "A:B:C".  ``ext_communities``: "rt:A:B", "soo:A:B" (two-octet AS,
    four-octet AS or IPv4 global admin), anything else "0x<16 hex digits>".

Daemon pitfalls (see also /work/shared/lab/README.md):
  * GoBGP v3 makes its *first* active connect 5-9 s after a neighbor is configured, then
    every connect-retry (3 s here).  Make roost the active side (GoBGP accepts at once) or
    allow >= 10 s in wait_established.
  * BIRD 2.0.12 can hold an UPDATE ~3 s (main loop stuck in poll()); ``Bird(waker=True)``
    pokes its control socket every 50 ms so it sends promptly.
  * ExaBGP only connects out; the peer must accept.
"""

from __future__ import annotations

import contextlib
import ipaddress
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from .netns import (
    CommandError,
    Host,
    netns_inode,
    pid_alive,
    pid_netns_inode,
    read_pidfile,
    wait_for,
)

# ---------------------------------------------------------------------------------------
# data


@dataclass
class Neighbor:
    address: str
    asn: int
    passive: bool = False
    rr_client: bool = False
    multihop: bool = False
    families: tuple[str, ...] = ("ipv4",)  # "ipv4", "ipv6"
    addpath: bool = False
    password: str | None = None
    port: int = 179
    next_hop_self: bool = False
    hold_time: int = 90
    local_address: str | None = None

    @property
    def is_v6(self) -> bool:
        return ":" in self.address


@dataclass
class RouteView:
    prefix: str
    next_hop: str | None
    as_path: list[int]
    origin: str | None
    med: int | None
    local_pref: int | None
    communities: list[str]
    large_communities: list[str]
    ext_communities: list[str]
    originator_id: str | None
    cluster_list: list[str]
    path_id: int | None
    best: bool
    raw: Any = field(default=None, repr=False, compare=False)


@dataclass
class Notification:
    """A NOTIFICATION a daemon sent or received, as far as its log tells."""

    direction: str  # "sent" | "received"
    code: int | None
    subcode: int | None
    peer: str | None
    text: str


# RFC 4271 / 4486 names -> (code, subcode); used to match daemon log texts
NOTIFICATION_NAMES: dict[tuple[int, int], str] = {
    (1, 1): "Connection Not Synchronized", (1, 2): "Bad Message Length",
    (1, 3): "Bad Message Type",
    (2, 1): "Unsupported Version Number", (2, 2): "Bad Peer AS", (2, 3): "Bad BGP Identifier",
    (2, 4): "Unsupported Optional Parameter", (2, 6): "Unacceptable Hold Time",
    (2, 7): "Unsupported Capability",
    (3, 1): "Malformed Attribute List", (3, 2): "Unrecognized Well-known Attribute",
    (3, 3): "Missing Well-known Attribute", (3, 4): "Attribute Flags Error",
    (3, 5): "Attribute Length Error", (3, 6): "Invalid ORIGIN Attribute",
    (3, 8): "Invalid NEXT_HOP Attribute", (3, 9): "Optional Attribute Error",
    (3, 10): "Invalid Network Field", (3, 11): "Malformed AS_PATH",
    (4, 0): "Hold Timer Expired", (5, 0): "Finite State Machine Error",
    (6, 1): "Maximum Number of Prefixes Reached", (6, 2): "Administrative Shutdown",
    (6, 3): "Peer De-configured", (6, 4): "Administrative Reset", (6, 5): "Connection Rejected",
    (6, 6): "Other Configuration Change", (6, 7): "Connection Collision Resolution",
    (6, 8): "Out of Resources",
}

_ORIGINS = {0: "igp", 1: "egp", 2: "incomplete", "i": "igp", "e": "egp", "?": "incomplete"}
_STATES = ("idle", "connect", "active", "opensent", "openconfirm", "established")


def norm_state(s: str | int | None) -> str:
    """Daemon-specific FSM state -> one of idle/connect/active/opensent/openconfirm/
    established (or 'unknown')."""
    if isinstance(s, int):
        return _STATES[s - 1] if 1 <= s <= 6 else "unknown"
    t = (s or "").lower().replace("_", "").replace("-", "").replace(" ", "")
    for st in _STATES:
        if t.startswith(st):
            return st
    return "unknown"


def community_str(v: int) -> str:
    return f"{v >> 16}:{v & 0xFFFF}"


_WELL_KNOWN_COMMUNITIES = {
    "no-export": "65535:65281", "noexport": "65535:65281",
    "no-advertise": "65535:65282", "noadv": "65535:65282", "no-advertise-": "65535:65282",
    "no-export-subconfed": "65535:65283", "local-as": "65535:65283",
    "no-peer": "65535:65284", "nopeer": "65535:65284",
    "blackhole": "65535:666", "graceful-shutdown": "65535:0",
    "accept-own": "65535:1", "llgr-stale": "65535:6", "no-llgr": "65535:7",
}


def norm_community(s: str) -> str:
    s = s.strip().lower()
    if s in _WELL_KNOWN_COMMUNITIES:
        return _WELL_KNOWN_COMMUNITIES[s]
    if s.isdigit():
        return community_str(int(s))
    return s


def ext_community_str(kind: str, admin: str | int, value: int) -> str:
    return f"{kind}:{admin}:{value}"


def norm_ext_community(s: str) -> str:
    """'RT:65001:100' / 'rt 65001:100' / '(rt, 65001, 100)' -> 'rt:65001:100'."""
    t = s.strip().strip("()").lower().replace(",", " ").replace(":", " ").split()
    if len(t) == 3 and t[0] in ("rt", "soo", "ro"):
        return f"{'soo' if t[0] == 'ro' else t[0]}:{t[1]}:{t[2]}"
    if len(t) == 4 and t[0] in ("rt", "soo", "ro") and t[1].isdigit() and "." not in t[1]:
        return f"{'soo' if t[0] == 'ro' else t[0]}:{t[1]}:{t[2]}"
    return s.strip().lower()


def _family_of(prefix: str) -> str:
    return "ipv6" if ":" in prefix else "ipv4"


def _canon_prefix(prefix: str) -> str:
    return str(ipaddress.ip_network(prefix, strict=False))


# ---------------------------------------------------------------------------------------
# base class


class Daemon:
    """Common life cycle: config -> start -> poll; stop by recorded pid only."""

    kind: ClassVar[str] = "daemon"
    binaries: ClassVar[tuple[str, ...]] = ()

    def __init__(self, host: Host, asn: int, router_id: str, neighbors: Sequence[Neighbor],
                 *, workdir: Path | str | None = None, cluster_id: str | None = None,
                 originate: Iterable[str] = (), name: str | None = None) -> None:
        self.host = host
        self.asn = asn
        self.router_id = router_id
        self.neighbors = list(neighbors)
        self.cluster_id = cluster_id
        self.originate = list(originate)
        self.name = name or f"{host.name}.{self.kind}"
        self.workdir = Path(workdir) if workdir is not None else host.workdir / self.kind
        self.workdir.mkdir(parents=True, exist_ok=True)
        # unix sockets (and FRR's whole runtime dir) in the lab's short /tmp dir
        self.rundir = host.lab.rundir / self.name
        self.rundir.mkdir(parents=True, exist_ok=True)
        self.rundir.chmod(0o755)
        self._procs: list[subprocess.Popen[Any]] = []
        self._runtime: dict[str, dict[str, Any]] = {}
        self.started = False
        # Extra command-line options for the next start (GoBGP, BIRD), e.g. a graceful
        # restart: ["-r"] for gobgpd, ["-R"] for bird.
        self.daemon_args: list[str] = []
        host.lab.register(self)

    # --- to implement ----------------------------------------------------------------
    def _start(self) -> None:
        raise NotImplementedError

    def pidfiles(self) -> list[Path]:
        return []

    def neighbor_state(self, address: str) -> str:
        raise NotImplementedError

    def rib(self, family: str = "ipv4") -> dict[str, list[RouteView]]:
        raise NotImplementedError

    def notifications(self) -> list[Notification]:
        raise NotImplementedError

    @property
    def log_path(self) -> Path:
        raise NotImplementedError

    # --- life cycle ------------------------------------------------------------------
    @classmethod
    def available(cls) -> bool:
        return all(shutil.which(b) or Path(b).exists() for b in cls.binaries)

    def start(self) -> None:
        if self.started:
            raise RuntimeError(f"{self.name} already started")
        self.started = True
        runtime = dict(self._runtime)  # _start() may add config routes: not "runtime"
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        for pf in self.pidfiles():
            self.host.lab.track_pidfile(pf)
        self._runtime = runtime
        self._replay()

    def _remember(self, args: dict[str, Any], add: bool) -> None:
        """Record runtime routes (the add_route arguments) so that restart() re-announces
        them, like routes from the config.  ``args`` = locals() of add_route/del_route."""
        key = f"{_canon_prefix(args['prefix'])}#{args.get('path_id')}"
        if add:
            self._runtime[key] = {k: v for k, v in args.items() if k != "self"}
        else:
            self._runtime.pop(key, None)

    def _replay(self) -> None:
        for kw in list(self._runtime.values()):
            self.add_route(**kw)

    def add_route(self, prefix: str, next_hop: str | None = None, **kw: Any) -> None:
        raise NotImplementedError

    def del_route(self, prefix: str) -> None:
        raise NotImplementedError

    def pids(self) -> list[int]:
        """Our processes: pids from our pid files (only if that pid runs in our host's
        namespace, so a stale pid file can never name someone else's process) + children."""
        out: list[int] = []
        ns_ino = netns_inode(self.host.netns)
        for pf in self.pidfiles():
            pid = read_pidfile(pf)
            if pid is not None and pid not in out and ns_ino is not None \
                    and pid_netns_inode(pid) == ns_ino:
                out.append(pid)
        for proc in self._procs:
            if proc.pid not in out:
                out.append(proc.pid)
        return out

    def alive(self) -> bool:
        return any(pid_alive(p) for p in self.pids())

    def stop(self, grace: float = 5.0) -> None:
        """SIGTERM our recorded pids, wait up to ``grace`` s, then SIGKILL.  Idempotent."""
        pids = {p for p in self.pids() if pid_alive(p)}
        for p in pids:  # a paused daemon cannot handle SIGTERM
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)
        self.host.lab.kill_pids(pids, grace=grace)
        for proc in self._procs:
            with contextlib.suppress(Exception):
                proc.wait(timeout=1)
        self._procs.clear()
        self.started = False

    def kill(self) -> None:
        """SIGKILL, no goodbye (no NOTIFICATION): for hold-timer / crash tests."""
        self.host.lab.kill_pids({p for p in self.pids() if pid_alive(p)}, grace=0)
        self.started = False

    def pause(self) -> None:
        """SIGSTOP: the daemon stays connected but goes silent (hold-timer tests).  Note that
        kill() does not test hold timers: the kernel closes the TCP session at once."""
        for p in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGSTOP)

    def resume(self) -> None:
        for p in self.pids():
            with contextlib.suppress(ProcessLookupError):
                os.kill(p, signal.SIGCONT)

    def restart(self, *, neighbors: Sequence[Neighbor] | None = None,
                originate: Iterable[str] | None = None) -> None:
        self.stop()
        if neighbors is not None:
            self.neighbors = list(neighbors)
        if originate is not None:
            self.originate = list(originate)
        self.start()

    # --- convenience -----------------------------------------------------------------
    def log_tail(self, n: int = 50) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"<no log {self.log_path}: {exc}>"
        return f"--- {self.name} log tail ({self.log_path}) ---\n" + "\n".join(lines[-n:])

    def _diag(self) -> str:
        alive = "alive" if self.alive() else "NOT RUNNING"
        return f"{self.name} pids {self.pids()} {alive}\n{self.log_tail()}"

    def wait_established(self, address: str, timeout: float = 30) -> None:
        wait_for(lambda: self.neighbor_state(address) == "established", timeout,
                 what=f"{self.name}: session with {address} Established",
                 on_timeout=lambda: f"state: {self._safe_state(address)}\n{self._diag()}")

    def wait_state(self, address: str, states: Iterable[str], timeout: float = 30) -> str:
        want = set(states)
        return str(wait_for(lambda: (s if (s := self.neighbor_state(address)) in want else None),
                            timeout, what=f"{self.name}: session with {address} in {want}",
                            on_timeout=self._diag))

    def _safe_state(self, address: str) -> str:
        try:
            return self.neighbor_state(address)
        except Exception as exc:
            return f"<error {exc!r}>"

    def wait_route(self, prefix: str, timeout: float = 30,
                   pred: Callable[[list[RouteView]], bool] | None = None) -> list[RouteView]:
        """Wait until ``prefix`` is in the RIB (and ``pred(paths)`` holds); return its paths."""
        prefix = _canon_prefix(prefix)
        fam = _family_of(prefix)

        def probe() -> list[RouteView] | None:
            paths = self.rib(fam).get(prefix)
            if paths and (pred is None or pred(paths)):
                return paths
            return None

        def diag() -> str:
            try:
                have = self.rib(fam).get(prefix)
            except Exception as exc:
                have = f"<error {exc!r}>"  # type: ignore[assignment]
            return f"current paths for {prefix}: {have}\n{self._diag()}"

        return list(wait_for(probe, timeout, what=f"{self.name}: route {prefix}",
                             on_timeout=diag))

    def wait_no_route(self, prefix: str, timeout: float = 30) -> None:
        prefix = _canon_prefix(prefix)
        fam = _family_of(prefix)
        wait_for(lambda: prefix not in self.rib(fam), timeout,
                 what=f"{self.name}: route {prefix} withdrawn", on_timeout=self._diag)

    def best(self, prefix: str) -> RouteView | None:
        prefix = _canon_prefix(prefix)
        paths = self.rib(_family_of(prefix)).get(prefix, [])
        for p in paths:
            if p.best:
                return p
        return paths[0] if paths else None

    def wait_notification(self, code: int | None = None, subcode: int | None = None, *,
                          direction: str | None = None, peer: str | None = None,
                          timeout: float = 15) -> Notification:
        """Wait for a logged NOTIFICATION matching all the given fields."""

        def probe() -> Notification | None:
            for n in self.notifications():
                if ((code is None or n.code == code) and (subcode is None or n.subcode == subcode)
                        and (direction is None or n.direction == direction)
                        and (peer is None or n.peer is None or n.peer == peer)):
                    return n
            return None

        found: Notification = wait_for(
            probe, timeout, what=f"{self.name}: NOTIFICATION {code}/{subcode} "
            f"{direction or ''}", on_timeout=lambda: f"seen: {self.notifications()}"
            f"\n{self._diag()}")
        return found

    def neighbor(self, address: str) -> Neighbor:
        for n in self.neighbors:
            if n.address == address:
                return n
        raise KeyError(address)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name} AS{self.asn}>"


def _run(argv: Sequence[str], timeout: float = 20, check: bool = True,
         input: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run a CLI in the root namespace (control sockets are files, reachable from here)."""
    try:
        cp = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout,
                            check=False, input=input)
    except subprocess.TimeoutExpired as exc:
        raise CommandError(-1, list(argv), str(exc.stdout or ""), str(exc.stderr or "")) from exc
    if check and cp.returncode != 0:
        raise CommandError(cp.returncode, list(argv), cp.stdout, cp.stderr)
    return cp


def _lc_from_text(s: str) -> str:
    return ":".join(x.strip() for x in s.strip("() ").replace(",", ":").split(":") if x.strip())


# ---------------------------------------------------------------------------------------
# GoBGP


class GoBgp(Daemon):
    """gobgpd 3.x with a TOML config and a unix-socket gRPC API (``self.api``).

    Extra keyword arguments: ``listen_port`` (default 179), ``log_level`` ("info"; "debug"
    logs every message), ``extra_config`` (TOML appended verbatim).

    GoBGP's first active connect happens 5-9 s after start; prefer making the peer active
    (``Neighbor(passive=True)`` on this side) or allow >= 10 s.
    """

    kind = "gobgp"
    binaries = ("gobgpd", "gobgp")

    def __init__(self, host: Host, asn: int, router_id: str, neighbors: Sequence[Neighbor],
                 *, workdir: Path | str | None = None, cluster_id: str | None = None,
                 originate: Iterable[str] = (), name: str | None = None,
                 listen_port: int = 179, log_level: str = "info", extra_config: str = "") -> None:
        super().__init__(host, asn, router_id, neighbors, workdir=workdir,
                         cluster_id=cluster_id, originate=originate, name=name)
        self.listen_port = listen_port
        self.log_level = log_level
        self.extra_config = extra_config
        self.sock = self.rundir / "api.sock"
        self.conf_path = self.workdir / "gobgpd.toml"
        self.pid_path = self.workdir / "gobgpd.pid"

    @property
    def log_path(self) -> Path:
        return self.workdir / "gobgpd.log"

    def pidfiles(self) -> list[Path]:
        return [self.pid_path]

    @property
    def api(self) -> list[str]:
        return ["gobgp", "--target", f"unix://{self.sock}"]

    def cli(self, *args: str, timeout: float = 20, check: bool = True
            ) -> subprocess.CompletedProcess[str]:
        """`gobgp --target unix://... ARGS` (e.g. d.cli("neighbor", ip, "softresetout"))."""
        return _run([*self.api, *args], timeout=timeout, check=check)

    def config(self) -> str:
        q = json.dumps
        out = ["# generated by tests/harness/daemons.py", "[global.config]",
               f"  as = {self.asn}", f"  router-id = {q(self.router_id)}",
               f"  port = {self.listen_port}"]
        nhs = [n for n in self.neighbors if n.next_hop_self]
        if nhs:
            out += ["", "[[policy-definitions]]", '  name = "roost-nhs"',
                    "  [[policy-definitions.statements]]", '    name = "nhs"',
                    "    [policy-definitions.statements.actions]",
                    '      route-disposition = "accept-route"',
                    "    [policy-definitions.statements.actions.bgp-actions]",
                    '      set-next-hop = "self"']
        for n in self.neighbors:
            out += ["", "[[neighbors]]", "  [neighbors.config]",
                    f"    neighbor-address = {q(n.address)}", f"    peer-as = {n.asn}"]
            if n.password:
                out.append(f"    auth-password = {q(n.password)}")
            out += ["  [neighbors.timers.config]", "    connect-retry = 3",
                    f"    hold-time = {n.hold_time}",
                    f"    keepalive-interval = {max(1, n.hold_time // 3)}",
                    "  [neighbors.transport.config]",
                    f"    passive-mode = {'true' if n.passive else 'false'}"]
            if n.port != 179:
                out.append(f"    remote-port = {n.port}")
            if n.local_address:
                out.append(f"    local-address = {q(n.local_address)}")
            if n.multihop:
                out += ["  [neighbors.ebgp-multihop.config]", "    enabled = true",
                        "    multihop-ttl = 8"]
            if n.rr_client:
                out += ["  [neighbors.route-reflector.config]",
                        "    route-reflector-client = true",
                        f"    route-reflector-cluster-id = {q(self.cluster_id or self.router_id)}"]
            if n.addpath:
                out += ["  [neighbors.add-paths.config]", "    receive = true",
                        "    send-max = 8"]
            if n.next_hop_self:
                out += ["  [neighbors.apply-policy.config]",
                        '    export-policy-list = ["roost-nhs"]',
                        '    default-export-policy = "accept-route"']
            for fam in n.families:
                out += ["  [[neighbors.afi-safis]]", "    [neighbors.afi-safis.config]",
                        f"      afi-safi-name = {q(fam + '-unicast')}"]
        if self.extra_config:
            out += ["", self.extra_config]
        return "\n".join(out) + "\n"

    def _start(self) -> None:
        self.conf_path.write_text(self.config())
        chk = _run(["gobgpd", "-f", str(self.conf_path), "-t", "toml", "-d"], check=False)
        if chk.returncode != 0:
            raise AssertionError(f"gobgpd config check failed ({self.conf_path}):\n"
                                 f"{chk.stdout}{chk.stderr}")
        with contextlib.suppress(FileNotFoundError):
            self.sock.unlink()
        self.log_path.write_text("")
        # ip netns exec exec()s gobgpd, so proc.pid is gobgpd (in its own session)
        proc = self.host.popen(["gobgpd", "-f", str(self.conf_path), "-t", "toml",
                                "-l", self.log_level, "--pprof-disable",
                                "--api-hosts", f"unix://{self.sock}", *self.daemon_args],
                               self.log_path)
        self._procs.append(proc)
        self.pid_path.write_text(f"{proc.pid}\n")

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"gobgpd exited with {proc.returncode}\n{self.log_tail()}")
            return self.cli("global", timeout=5, check=False).returncode == 0

        wait_for(ready, 15, what=f"{self.name}: gobgpd API", on_timeout=self._diag)
        for p in self.originate:
            self.add_route(p)

    # --- queries ---------------------------------------------------------------------
    def neighbor_json(self, address: str) -> dict[str, Any]:
        return json.loads(self.cli("neighbor", address, "-j", timeout=10).stdout)  # type: ignore[no-any-return]

    def neighbor_state(self, address: str) -> str:
        st = self.neighbor_json(address).get("state", {})
        return norm_state(int(st.get("session_state", 0) or 0))

    def _paths(self, out: str) -> dict[str, list[RouteView]]:
        data = json.loads(out) if out.strip() else {}
        rib: dict[str, list[RouteView]] = {}
        for prefix, paths in (data or {}).items():
            rib[_canon_prefix(prefix)] = [self._view(prefix, p) for p in paths]
        return rib

    def rib(self, family: str = "ipv4") -> dict[str, list[RouteView]]:
        return self._paths(self.cli("global", "rib", "-a", family, "-j").stdout)

    def adj_in(self, address: str, family: str = "ipv4") -> dict[str, list[RouteView]]:
        """Adj-RIB-In from one neighbor.  With ADD-PATH, path_id comes from the text
        output's ID column (gobgp's JSON has no path id), matched by prefix + next hop."""
        rib = self._paths(self.cli("neighbor", address, "adj-in", "-a", family, "-j").stdout)
        ids: dict[tuple[str, str], list[int]] = {}
        for line in self.cli("neighbor", address, "adj-in", "-a", family).stdout.splitlines():
            f = line.split()
            if len(f) >= 3 and f[0].isdigit() and "/" in f[1]:
                ids.setdefault((_canon_prefix(f[1]), f[2]), []).append(int(f[0]))
        for prefix, paths in rib.items():
            for v in paths:
                cand = ids.get((prefix, v.next_hop or ""), [])
                if len(cand) == 1:
                    v.path_id = cand[0]
        return rib

    def adj_out(self, address: str, family: str = "ipv4") -> dict[str, list[RouteView]]:
        return self._paths(self.cli("neighbor", address, "adj-out", "-a", family, "-j").stdout)

    @staticmethod
    def _view(prefix: str, p: dict[str, Any]) -> RouteView:
        v = RouteView(prefix=_canon_prefix(prefix), next_hop=None, as_path=[], origin=None,
                      med=None, local_pref=None, communities=[], large_communities=[],
                      ext_communities=[], originator_id=None, cluster_list=[],
                      path_id=None, best=bool(p.get("best")), raw=p)
        nlri = p.get("nlri", {})
        for key in ("id", "path_id", "identifier"):
            if nlri.get(key) is not None:
                v.path_id = int(nlri[key])
        if v.path_id is None and p.get("id") is not None:
            v.path_id = int(p["id"])
        for a in p.get("attrs", []):
            t = a.get("type")
            if t == 1:
                v.origin = _ORIGINS.get(a.get("value", 0))
            elif t == 2:
                seqs: list[int] = []
                sets: list[int] = []
                for seg in a.get("as_paths", []):
                    (seqs if seg.get("segment_type") == 2 else sets).extend(seg.get("asns", []))
                v.as_path = seqs + sets
            elif t == 3:
                v.next_hop = a.get("nexthop")
            elif t == 4:
                v.med = a.get("metric", 0)
            elif t == 5:
                v.local_pref = a.get("value", 0)
            elif t == 8:
                v.communities = [community_str(c) for c in a.get("communities", [])]
            elif t == 9:
                v.originator_id = a.get("value")
            elif t == 10:
                v.cluster_list = list(a.get("value", []))
            elif t == 14:
                v.next_hop = a.get("nexthop")
            elif t == 16:
                v.ext_communities = [GoBgp._ext(e) for e in a.get("value", [])]
            elif t == 32:
                v.large_communities = [f"{c['ASN']}:{c['LocalData1']}:{c['LocalData2']}"
                                       for c in a.get("value", [])]
        if v.next_hop in ("0.0.0.0", "::"):
            v.next_hop = None  # locally originated
        return v

    @staticmethod
    def _ext(e: dict[str, Any]) -> str:
        # {"type":0,"subtype":2,"value":"65001:100"}; types 0/1/2 = 2-oct AS / IPv4 / 4-oct AS
        typ, sub = e.get("type"), e.get("subtype")
        if typ in (0, 1, 2) and sub in (2, 3) and isinstance(e.get("value"), str):
            return f"{'rt' if sub == 2 else 'soo'}:{e['value']}"
        return "gobgp:" + json.dumps(e, sort_keys=True)

    # --- runtime routes --------------------------------------------------------------
    def add_route(self, prefix: str, next_hop: str | None = None, *,
                  communities: Sequence[str] = (), large_communities: Sequence[str] = (),
                  ext_communities: Sequence[str] = (), med: int | None = None,
                  local_pref: int | None = None, as_path: Sequence[int] = (),
                  origin: str | None = "igp", path_id: int | None = None) -> None:
        """`gobgp global rib add`.  ext_communities: "rt:A:B" / "soo:A:B"."""
        self._remember(locals(), True)
        fam = _family_of(prefix)
        args = ["global", "rib", "add", "-a", fam, prefix]
        if path_id is not None:
            args += ["identifier", str(path_id)]
        if next_hop:
            args += ["nexthop", next_hop]
        if origin:
            args += ["origin", origin]
        if as_path:
            args += ["aspath", ",".join(str(a) for a in as_path)]
        if med is not None:
            args += ["med", str(med)]
        if local_pref is not None:
            args += ["local-pref", str(local_pref)]
        if communities:
            args += ["community", ",".join(communities)]
        if large_communities:
            args += ["large-community", ",".join(large_communities)]
        for ec in ext_communities:
            kind, _, rest = ec.partition(":")
            args += [kind, rest]
        self.cli(*args)

    def del_route(self, prefix: str, path_id: int | None = None) -> None:
        self._remember(locals(), False)
        args = ["global", "rib", "del", "-a", _family_of(prefix), prefix]
        if path_id is not None:
            args += ["identifier", str(path_id)]
        self.cli(*args)

    # --- notifications ---------------------------------------------------------------
    def notifications(self) -> list[Notification]:
        """From gobgpd's JSON log: "sent notification" (Data = text) and, at any level,
        "received notification" with Code/Subcode."""
        out: list[Notification] = []
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return out
        for line in lines:
            if "otification" not in line:
                continue
            try:
                rec = json.loads(line)
            except ValueError:
                continue
            msg = str(rec.get("msg", "")).lower()
            if "notification" not in msg:
                continue
            direction = "sent" if "sent" in msg or "send" in msg else "received"
            code = rec.get("Code")
            sub = rec.get("Subcode")
            data = str(rec.get("Data", ""))
            if code is None:
                code, sub = _guess_code(data)
            out.append(Notification(direction, None if code is None else int(code),
                                    None if sub is None else int(sub), rec.get("Key"),
                                    f"{rec.get('msg')}: {data}"))
        # gobgpd does not log NOTIFICATIONs it receives (not even at debug level); its
        # neighbor counters do count them, so report those (code/subcode unknown).
        for n in self.neighbors:
            try:
                msgs = self.neighbor_json(n.address).get("state", {}).get("messages", {})
            except Exception:
                continue
            cnt = int(msgs.get("received", {}).get("notification", 0) or 0)
            out += [Notification("received", None, None, n.address,
                                 "counted by gobgp (code not logged)")] * cnt
        return out


_TEXT_HINTS: list[tuple[str, tuple[int, int]]] = [
    ("as number mismatch", (2, 2)), ("bad peer as", (2, 2)), ("bad peer-as", (2, 2)),
    ("peer as", (2, 2)),
    ("bad bgp identifier", (2, 3)), ("router id", (2, 3)), ("router-id", (2, 3)),
    ("hold time", (2, 6)), ("unsupported version", (2, 1)),
    ("unsupported capability", (2, 7)), ("unsupported optional", (2, 4)),
    ("hold timer expired", (4, 0)), ("hold timer", (4, 0)),
    ("malformed as_path", (3, 11)), ("malformed as path", (3, 11)),
    ("missing well-known", (3, 3)), ("invalid origin", (3, 6)),
    ("invalid next_hop", (3, 8)), ("attribute flags", (3, 4)),
    ("attribute length", (3, 5)), ("malformed attribute list", (3, 1)),
    ("bad message length", (1, 2)), ("bad message type", (1, 3)),
    ("connection not synchronized", (1, 1)), ("marker", (1, 1)),
    ("administrative shutdown", (6, 2)), ("administrative reset", (6, 4)),
    ("peer de-configured", (6, 3)), ("connection rejected", (6, 5)),
    ("collision", (6, 7)), ("finite state machine", (5, 0)),
]


def _guess_code(text: str) -> tuple[int | None, int | None]:
    t = text.lower()
    for hint, cs in _TEXT_HINTS:
        if hint in t:
            return cs
    return None, None


# ---------------------------------------------------------------------------------------
# BIRD


class BirdWaker(threading.Thread):
    """Keeps BIRD 2.0.12's main loop awake: `show status` on one persistent control
    connection every ``period`` s (BIRD may otherwise sit ~3 s in poll() with work
    pending, e.g. holding the first UPDATE after Established)."""

    def __init__(self, ctl: Path, period: float = 0.05) -> None:
        super().__init__(daemon=True, name=f"bird-waker-{ctl}")
        self.ctl = ctl
        self.period = period
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.is_set():
            try:
                with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                    s.settimeout(5)
                    s.connect(str(self.ctl))
                    f = s.makefile("rb")
                    f.readline()  # "0001 BIRD 2.0.12 ready."
                    while not self.stopped.is_set():
                        s.sendall(b"show status\n")
                        while True:  # until the final "NNNN text" line
                            line = f.readline()
                            if not line:
                                raise OSError("bird closed the control socket")
                            if len(line) > 4 and line[:4].isdigit() and line[4:5] == b" ":
                                break
                        self.stopped.wait(self.period)
            except OSError:
                self.stopped.wait(0.2)  # bird (re)starting: retry

    def stop(self) -> None:
        self.stopped.set()


_BIRD_HDR = re.compile(
    r"^(?P<prefix>\S+)?\s+(?P<kind>unicast|blackhole|unreachable|prohibit)?\s*"
    r"\[(?P<proto>\S+)(?P<rest>[^\]]*)\](?P<best> \*)?\s*\((?P<pref>\d+)[^)]*\)"
    r"(?:\s*\[(?P<summary>[^\]]*)\])?")


class Bird(Daemon):
    """BIRD 2.0.x, foreground (``bird -f``), private control socket, short timers.

    Extra keyword arguments:
      * ``waker`` (bool): poke the control socket every 50 ms so BIRD sends promptly.
      * ``kernel_export`` (bool): export BGP routes into the namespace FIB (``proto bird``).
      * ``onlink`` (str | None): with kernel_export, install IPv4 routes as
        ``via <bgp_next_hop> dev IFACE onlink`` (cross-subnet next hops).
      * ``gateway`` ("direct" | "recursive" | None): force the BGP channel's gateway mode
        (BIRD's default: direct for single-hop eBGP, recursive for iBGP/multihop; direct
        silently drops routes whose next hop is not on a connected subnet).
      * ``graceful_restart`` (default True = BIRD's default): False adds ``graceful restart
        off; long lived graceful restart off;``.  Pitfall: with a GR-capable peer (FRR
        advertises GR by default) an expiring hold timer is handled as a graceful restart:
        BIRD sends NO NOTIFICATION, logs nothing and keeps stale routes for the peer's
        restart time (120 s).  Hold-timer tests want graceful_restart=False or a peer
        without GR (GoBGP, ExaBGP, roost).
      * ``extra_config`` (str): appended verbatim.
    The config always has ``protocol direct`` (eth*) and kernel protocols with ``learn`` so
    recursive next hops resolve.  Protocol per neighbor: ``peer_<addr with _>``.
    Runtime routes: static protocols ``dyn4``/``dyn6`` whose routes are in include files;
    add_route/del_route rewrite them and run ``birdc configure`` (sessions are untouched).
    """

    kind = "bird"
    binaries = ("bird", "birdc")

    def __init__(self, host: Host, asn: int, router_id: str, neighbors: Sequence[Neighbor],
                 *, workdir: Path | str | None = None, cluster_id: str | None = None,
                 originate: Iterable[str] = (), name: str | None = None,
                 waker: bool = False, kernel_export: bool = False, onlink: str | None = None,
                 gateway: str | None = None, graceful_restart: bool = True,
                 extra_config: str = "") -> None:
        super().__init__(host, asn, router_id, neighbors, workdir=workdir,
                         cluster_id=cluster_id, originate=originate, name=name)
        self.use_waker = waker
        self.graceful_restart = graceful_restart
        self.kernel_export = kernel_export or onlink is not None
        self.onlink = onlink
        self.gateway = gateway
        self.extra_config = extra_config
        self.ctl = self.rundir / "bird.ctl"
        self.conf_path = self.workdir / "bird.conf"
        self.pid_path = self.workdir / "bird.pid"
        self._waker: BirdWaker | None = None
        self._dyn: dict[str, str] = {}  # prefix -> BIRD static route statement
        for p in self.originate:
            self._dyn[_canon_prefix(p)] = self._route_stmt(_canon_prefix(p))

    @property
    def log_path(self) -> Path:
        return self.workdir / "bird.log"

    def pidfiles(self) -> list[Path]:
        return [self.pid_path]

    @staticmethod
    def proto_name(address: str) -> str:
        return "peer_" + re.sub(r"[.:]", "_", address)

    def birdc(self, *args: str, timeout: float = 10, check: bool = True) -> str:
        cp = _run(["birdc", "-s", str(self.ctl), *args], timeout=timeout, check=check)
        return cp.stdout

    # --- config ----------------------------------------------------------------------
    def _kernel_export(self, fam: str) -> str:
        if not self.kernel_export:
            return "none"
        if self.onlink and fam == "ipv4":
            return ("filter {\n      if source != RTS_BGP then reject;\n"
                    f'      onlink = true; ifname = "{self.onlink}"; gw = bgp_next_hop;\n'
                    "      accept;\n    }")
        return "where source = RTS_BGP"

    def _dyn_file(self, fam: str) -> Path:
        return self.workdir / f"dyn{fam[-1]}.conf"

    def _write_dyn(self) -> None:
        for fam in ("ipv4", "ipv6"):
            lines = [stmt for p, stmt in sorted(self._dyn.items()) if _family_of(p) == fam]
            self._dyn_file(fam).write_text("".join(f"  {s}\n" for s in lines))

    def config(self) -> str:
        out = [f"# generated by tests/harness/daemons.py for {self.name}",
               f"router id {self.router_id};",
               f'log "{self.log_path}" all;',
               'timeformat protocol "%s.%3f";', 'timeformat route "%s.%3f";',
               "protocol device { scan time 10; }",
               'protocol direct { ipv4; ipv6; interface "eth*"; }']
        for fam in ("ipv4", "ipv6"):
            out.append(f"protocol kernel kernel{fam[-1]} {{\n"
                       f"  {fam} {{ import all; export {self._kernel_export(fam)}; }};\n"
                       "  learn;\n  scan time 10;\n}")
            out.append(f"protocol static dyn{fam[-1]} {{\n  {fam};\n"
                       f'  include "{self._dyn_file(fam)}";\n}}')
        out += [self._proto(n) for n in self.neighbors]
        if self.extra_config:
            out.append(self.extra_config)
        return "\n".join(out) + "\n"

    def _proto(self, n: Neighbor) -> str:
        local = f"local {n.local_address} as {self.asn};" if n.local_address \
            else f"local as {self.asn};"
        port = f" port {n.port}" if n.port != 179 else ""
        lines = [f"protocol bgp {self.proto_name(n.address)} {{", f"  {local}",
                 f"  neighbor {n.address}{port} as {n.asn};",
                 "  connect delay time 1; connect retry time 3; error wait time 1, 10;",
                 f"  hold time {max(3, n.hold_time)}; keepalive time "
                 f"{max(1, n.hold_time // 3)};"]
        if n.multihop:
            lines.append("  multihop 8;")
        if n.passive:
            lines.append("  passive on;")
        if n.rr_client:
            lines.append("  rr client;")
            if self.cluster_id:
                lines.append(f"  rr cluster id {self.cluster_id};")
        if n.password:
            lines.append(f'  password "{n.password}";')
        if not self.graceful_restart:
            lines.append("  graceful restart off; long lived graceful restart off;")
        for fam in n.families:
            ch = [f"  {fam} {{", "    import all;",
                  "    export where source ~ [ RTS_STATIC, RTS_BGP ];"]
            if n.next_hop_self:
                ch.append("    next hop self;")
            if n.addpath:
                ch.append("    add paths on;")
            if self.gateway:
                ch.append(f"    gateway {self.gateway};")
            if fam == "ipv6" and not n.is_v6 and self.host.addr6:
                ch.append(f"    next hop address {self.host.addr6};")
            if fam == "ipv4" and n.is_v6:
                ch.append("    extended next hop on;")
            ch.append("  };")
            lines += ch
        lines.append("}")
        return "\n".join(lines)

    def _route_stmt(self, prefix: str, next_hop: str | None = None, *,
                    communities: Sequence[str] = (), large_communities: Sequence[str] = (),
                    ext_communities: Sequence[str] = (), med: int | None = None,
                    local_pref: int | None = None, as_path: Sequence[int] = (),
                    origin: str | None = None) -> str:
        attrs: list[str] = []
        if next_hop:
            attrs.append(f"bgp_next_hop = {next_hop};")
        if origin:
            attrs.append(f"bgp_origin = ORIGIN_{origin.upper()};")
        attrs += [f"bgp_path.prepend({asn});" for asn in reversed(list(as_path))]
        if med is not None:
            attrs.append(f"bgp_med = {med};")
        if local_pref is not None:
            attrs.append(f"bgp_local_pref = {local_pref};")
        for c in communities:
            a, b = norm_community(c).split(":")
            attrs.append(f"bgp_community.add(({a},{b}));")
        for c in large_communities:
            a, b, d = c.split(":")
            attrs.append(f"bgp_large_community.add(({a},{b},{d}));")
        for c in ext_communities:
            kind, a, b = norm_ext_community(c).split(":")
            attrs.append(f"bgp_ext_community.add(({'ro' if kind == 'soo' else kind}, {a}, {b}));")
        body = f" {{ {' '.join(attrs)} }}" if attrs else ""
        return f"route {prefix} blackhole{body};"

    def _start(self) -> None:
        self._write_dyn()
        self.conf_path.write_text(self.config())
        chk = _run(["bird", "-p", "-c", str(self.conf_path)], check=False)
        if chk.returncode != 0:
            raise AssertionError(f"bird config check failed ({self.conf_path}):\n"
                                 f"{chk.stdout}{chk.stderr}\n{self.config()}")
        with contextlib.suppress(FileNotFoundError):
            self.ctl.unlink()
        proc = self.host.popen(["bird", "-f", "-c", str(self.conf_path), "-s", str(self.ctl),
                                "-P", str(self.pid_path), *self.daemon_args],
                               self.workdir / "bird.out")
        self._procs.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"bird exited with {proc.returncode}\n"
                                     f"{(self.workdir / 'bird.out').read_text()}")
            return self.ctl.exists() and "Daemon is up" in self.birdc("show", "status",
                                                                        check=False)

        wait_for(ready, 10, what=f"{self.name}: bird control socket", on_timeout=self._diag)
        if self.use_waker:
            self._waker = BirdWaker(self.ctl)
            self._waker.start()

    def stop(self, grace: float = 5.0) -> None:
        if self._waker is not None:
            self._waker.stop()
            self._waker = None
        super().stop(grace)

    def reconfigure(self) -> None:
        """Rewrite config + include files and `birdc configure` (keeps sessions up)."""
        self._write_dyn()
        self.conf_path.write_text(self.config())
        out = self.birdc("configure")
        if "Reconfigured" not in out and "Reconfiguration in progress" not in out \
                and "no change" not in out.lower():
            raise AssertionError(f"birdc configure failed:\n{out}")

    # --- runtime routes --------------------------------------------------------------
    def add_route(self, prefix: str, next_hop: str | None = None, *,
                  communities: Sequence[str] = (), large_communities: Sequence[str] = (),
                  ext_communities: Sequence[str] = (), med: int | None = None,
                  local_pref: int | None = None, as_path: Sequence[int] = (),
                  origin: str | None = None) -> None:
        """A static blackhole route carrying the given BGP attributes (``next_hop`` sets
        bgp_next_hop, effective where BIRD keeps next hops, e.g. iBGP)."""
        p = _canon_prefix(prefix)
        self._dyn[p] = self._route_stmt(p, next_hop, communities=communities,
                                        large_communities=large_communities,
                                        ext_communities=ext_communities, med=med,
                                        local_pref=local_pref, as_path=as_path, origin=origin)
        self.reconfigure()

    def del_route(self, prefix: str) -> None:
        self._dyn.pop(_canon_prefix(prefix), None)
        self.reconfigure()

    # --- queries ---------------------------------------------------------------------
    def protocol_info(self, address: str) -> str:
        return self.birdc("show", "protocols", "all", self.proto_name(address))

    def neighbor_state(self, address: str) -> str:
        out = self.protocol_info(address)
        m = re.search(r"BGP state:\s+(\S+)", out)
        if m:
            return norm_state(m.group(1))
        m = re.search(rf"^{re.escape(self.proto_name(address))}\s+BGP\s+\S+\s+(\S+)", out, re.M)
        return "idle" if m and m.group(1) in ("down", "start") else "unknown"

    def last_error(self, address: str) -> str | None:
        m = re.search(r"Last error:\s+(.*)", self.protocol_info(address))
        return m.group(1).strip() if m else None

    def rib(self, family: str = "ipv4") -> dict[str, list[RouteView]]:
        table = "master4" if family == "ipv4" else "master6"
        return self.parse_routes(self.birdc("show", "route", "table", table, "all"))

    @staticmethod
    def parse_routes(text: str) -> dict[str, list[RouteView]]:
        """Parse `birdc show route all` (BGP and static routes; others are skipped)."""
        rib: dict[str, list[RouteView]] = {}
        cur_prefix: str | None = None
        entries: list[tuple[str, dict[str, Any]]] = []
        cur: dict[str, Any] | None = None
        for raw_line in text.splitlines():
            line = raw_line.rstrip()
            if not line or line.startswith(("BIRD ", "Table ", "Access restricted")):
                continue
            if line[:4].isdigit() and line[4:5] in ("-", " "):  # numeric reply codes
                line = line[5:]
            m = _BIRD_HDR.match(line)
            if m and not line.startswith("\t"):
                if m.group("prefix"):
                    cur_prefix = m.group("prefix")
                if cur_prefix is None:
                    continue
                cur = {"hdr": m.groupdict(), "lines": [], "attrs": {}}
                entries.append((cur_prefix, cur))
                continue
            if cur is None:
                continue
            s = line.strip()
            cur["lines"].append(s)
            if ":" in s and (s.startswith("BGP.") or s.startswith("Type:")):
                k, _, v = s.partition(":")
                cur["attrs"][k.strip()] = v.strip()
            elif s.startswith("via "):
                cur.setdefault("via", s.split()[1])
        for prefix, e in entries:
            typ = e["attrs"].get("Type", "")
            if typ and not typ.startswith(("BGP", "static")):
                continue
            rib.setdefault(_canon_prefix(prefix), []).append(Bird._view(prefix, e))
        return rib

    @staticmethod
    def _view(prefix: str, e: dict[str, Any]) -> RouteView:
        a: dict[str, str] = e["attrs"]
        hdr = e["hdr"]
        as_path: list[int] = []
        sets: list[int] = []
        in_set = False
        for tok in a.get("BGP.as_path", "").replace("{", " { ").replace("}", " } ").split():
            if tok == "{":
                in_set = True
            elif tok == "}":
                in_set = False
            elif tok.isdigit():
                (sets if in_set else as_path).append(int(tok))
        nh = a.get("BGP.next_hop")
        comms = [norm_community(f"{x}:{y}") for x, y in
                 re.findall(r"\((\d+),\s*(\d+)\)", a.get("BGP.community", ""))]
        large = [":".join(t) for t in
                 re.findall(r"\((\d+),\s*(\d+),\s*(\d+)\)", a.get("BGP.large_community", ""))]
        ext = [norm_ext_community(f"{k}:{x}:{y}") for k, x, y in
               re.findall(r"\((\w+),\s*([^,]+),\s*([^)]+)\)", a.get("BGP.ext_community", ""))]
        origin = a.get("BGP.origin")
        return RouteView(
            prefix=_canon_prefix(prefix),
            next_hop=nh.split()[0] if nh else None,
            as_path=as_path + sets,
            origin=origin.lower() if origin else None,
            med=int(a["BGP.med"]) if "BGP.med" in a else None,
            local_pref=int(a["BGP.local_pref"]) if "BGP.local_pref" in a else None,
            communities=comms, large_communities=large, ext_communities=ext,
            originator_id=a.get("BGP.originator_id"),
            cluster_list=a.get("BGP.cluster_list", "").split(),
            path_id=None, best=bool(hdr.get("best")),
            raw={"header": hdr, "lines": e["lines"], "via": e.get("via"),
                 "protocol": hdr.get("proto")})

    # --- notifications ---------------------------------------------------------------
    def notifications(self) -> list[Notification]:
        """From bird.log: '<proto>: Error: <text>' (we sent a NOTIFICATION) and
        '<proto>: Received: <text>' (the peer sent one)."""
        out: list[Notification] = []
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        peers = {self.proto_name(n.address): n.address for n in self.neighbors}
        for m in re.finditer(r"(\S+): (Error|Received): (.*)", text):
            proto, what, msg = m.groups()
            code, sub = _code_from_name(msg)
            out.append(Notification("sent" if what == "Error" else "received", code, sub,
                                    peers.get(proto, proto), msg.strip()))
        return out


def _code_from_name(text: str) -> tuple[int | None, int | None]:
    t = text.lower()
    for (code, sub), name in NOTIFICATION_NAMES.items():
        if name.lower() in t:
            return code, sub
    return _guess_code(text)


# ---------------------------------------------------------------------------------------
# FRR


class Frr(Daemon):
    """FRR 8.x zebra + bgpd as user ``frr``, private sockets (-z, --vty_socket), -P 0.

    FRR drops privileges, so its whole runtime dir (configs, pid files, vty and zserv
    sockets) is ``self.rundir`` (world-traversable, chowned to frr); logs go to
    ``workdir`` (opened as root before the drop) and config copies are written there too.
    Config has ``no bgp ebgp-requires-policy`` and ``no bgp network import-check``.

    Extra keyword arguments: ``kernel`` (default True: zebra installs best paths into the
    namespace FIB; False runs bgpd -n), ``extra_config`` (appended inside ``router bgp``),
    ``extra_global`` (appended after it, e.g. route-maps).
    """

    kind = "frr"
    binaries = ("/usr/lib/frr/zebra", "/usr/lib/frr/bgpd", "vtysh")

    def __init__(self, host: Host, asn: int, router_id: str, neighbors: Sequence[Neighbor],
                 *, workdir: Path | str | None = None, cluster_id: str | None = None,
                 originate: Iterable[str] = (), name: str | None = None,
                 kernel: bool = True, extra_config: str = "", extra_global: str = "") -> None:
        super().__init__(host, asn, router_id, neighbors, workdir=workdir,
                         cluster_id=cluster_id, originate=originate, name=name)
        self.kernel = kernel
        self.extra_config = extra_config
        self.extra_global = extra_global
        self._rm_seq = 0
        self._dyn_maps: dict[str, str] = {}  # prefix -> route-map name

    @property
    def log_path(self) -> Path:
        return self.workdir / "bgpd.log"

    def pidfiles(self) -> list[Path]:
        return [self.rundir / "bgpd.pid", self.rundir / "zebra.pid"]

    def vtysh(self, *commands: str, timeout: float = 20, check: bool = True) -> str:
        argv = ["vtysh", "--vty_socket", str(self.rundir)]
        for c in commands:
            argv += ["-c", c]
        cp = _run(argv, timeout=timeout, check=check)
        return cp.stdout

    def vtysh_json(self, command: str, timeout: float = 20) -> Any:
        out = self.vtysh(command, timeout=timeout)
        return json.loads(out) if out.strip() else {}

    def config(self) -> str:
        out = [f"! generated by tests/harness/daemons.py for {self.name}",
               f"hostname {self.host.name}", "!", f"router bgp {self.asn}",
               f" bgp router-id {self.router_id}", " no bgp ebgp-requires-policy",
               " no bgp network import-check", " no bgp default ipv4-unicast",
               " bgp log-neighbor-changes"]
        if self.cluster_id:
            out.append(f" bgp cluster-id {self.cluster_id}")
        for n in self.neighbors:
            a = n.address
            out += [f" neighbor {a} remote-as {n.asn}", f" neighbor {a} timers connect 3",
                    f" neighbor {a} timers {max(1, n.hold_time // 3)} {n.hold_time}"]
            if n.multihop:
                out.append(f" neighbor {a} ebgp-multihop 8")
            if n.passive:
                out.append(f" neighbor {a} passive")
            if n.password:
                out.append(f" neighbor {a} password {n.password}")
            if n.port != 179:
                out.append(f" neighbor {a} port {n.port}")
            if n.local_address:
                out.append(f" neighbor {a} update-source {n.local_address}")
        if self.extra_config:
            out.append(self.extra_config)
        for fam in ("ipv4", "ipv6"):
            out += [" !", f" address-family {fam} unicast"]
            out += [f"  network {p}" for p in self.originate if _family_of(p) == fam]
            for n in self.neighbors:
                if fam not in n.families:
                    continue
                a = n.address
                out.append(f"  neighbor {a} activate")
                if n.rr_client:
                    out.append(f"  neighbor {a} route-reflector-client")
                if n.next_hop_self:
                    out.append(f"  neighbor {a} next-hop-self")
                if n.addpath:
                    out.append(f"  neighbor {a} addpath-tx-all-paths")
            out.append(" exit-address-family")
        out.append("!")
        if self.extra_global:
            out.append(self.extra_global)
        return "\n".join(out) + "\n"

    def _start(self) -> None:
        d = self.rundir
        for f in d.iterdir():
            if f.is_socket() or f.suffix == ".pid":
                f.unlink()
        (d / "zebra.conf").write_text(f"hostname {self.host.name}\n!\n")
        (d / "bgpd.conf").write_text(self.config())
        shutil.copy(d / "bgpd.conf", self.workdir / "bgpd.conf")
        shutil.chown(d, "frr", "frr")
        for f in d.iterdir():
            shutil.chown(f, "frr", "frr")
        common = ["-d", "-u", "frr", "-g", "frr", "-P", "0", "-z", str(d / "zserv.api"),
                  "--vty_socket", str(d)]
        zebra = self.host.run(["/usr/lib/frr/zebra", *common, "-f", str(d / "zebra.conf"),
                               "-i", str(d / "zebra.pid"),
                               "--log", f"file:{self.workdir / 'zebra.log'}",
                               "--log-level", "info", "-s", "90000000"], check=False)
        if zebra.returncode != 0:
            raise AssertionError(f"zebra failed: {zebra.stdout}{zebra.stderr}")
        self.host.lab.track_pidfile(d / "zebra.pid")
        wait_for(lambda: (d / "zserv.api").exists() and read_pidfile(d / "zebra.pid"), 10,
                 what=f"{self.name}: zebra", on_timeout=lambda: self._tail("zebra.log"))
        bgpd_opts = [] if self.kernel else ["-n"]
        bgpd = self.host.run(["/usr/lib/frr/bgpd", *common, "-f", str(d / "bgpd.conf"),
                              "-i", str(d / "bgpd.pid"),
                              "--log", f"file:{self.log_path}", "--log-level", "info",
                              *bgpd_opts], check=False)
        if bgpd.returncode != 0:
            raise AssertionError(f"bgpd failed: {bgpd.stdout}{bgpd.stderr}\n{self.log_tail()}")
        self.host.lab.track_pidfile(d / "bgpd.pid")

        def ready() -> bool:
            return bool(read_pidfile(d / "bgpd.pid")) and \
                "BGP router identifier" in self.vtysh("show bgp summary", check=False)

        wait_for(ready, 15, what=f"{self.name}: bgpd vty", on_timeout=self._diag)

    def _tail(self, logname: str, n: int = 30) -> str:
        try:
            return "\n".join((self.workdir / logname).read_text().splitlines()[-n:])
        except OSError as exc:
            return f"<{exc}>"

    # --- queries ---------------------------------------------------------------------
    def neighbor_json(self, address: str) -> dict[str, Any]:
        data = self.vtysh_json(f"show bgp neighbors {address} json")
        return data.get(address, {})  # type: ignore[no-any-return]

    def neighbor_state(self, address: str) -> str:
        return norm_state(self.neighbor_json(address).get("bgpState"))

    def rib(self, family: str = "ipv4") -> dict[str, list[RouteView]]:
        """The whole table with every attribute in ONE vtysh call: FRR 8.4's
        `show bgp FAMILY unicast json detail` gives per prefix a header entry (prefix,
        advertisedTo) followed by the paths in the per-prefix detail format (communities,
        originator, cluster list).  (One `show bgp ... PREFIX json` per prefix costs ~28 ms
        each: minutes for 10k prefixes.)"""
        data = self.vtysh_json(f"show bgp {family} unicast json detail", timeout=120)
        rib: dict[str, list[RouteView]] = {}
        for prefix, entries in (data.get("routes") or {}).items():
            paths = [self._view(prefix, p) for p in entries
                     if isinstance(p, dict) and ("nexthops" in p or "peer" in p)]
            if paths:
                rib[_canon_prefix(prefix)] = paths
        return rib

    @staticmethod
    def _view(prefix: str, p: dict[str, Any]) -> RouteView:
        asp = p.get("aspath", {})
        as_path: list[int] = []
        sets: list[int] = []
        for seg in asp.get("segments", []) if isinstance(asp, dict) else []:
            (as_path if seg.get("type") == "as-sequence" else sets).extend(seg.get("list", []))
        if not as_path and not sets and isinstance(asp, dict):
            as_path = [int(x) for x in re.findall(r"\d+", asp.get("string", "")
                                                  .replace("Local", ""))]
        nhs = p.get("nexthops", [])
        nh = None
        for h in nhs:
            if h.get("scope") != "link-local" and h.get("ip"):
                nh = h["ip"]
                break
        if nh is None and nhs:
            nh = nhs[0].get("ip")
        if nh in ("0.0.0.0", "::"):
            nh = None
        comm = p.get("community", {}).get("string", "")
        large = p.get("largeCommunity", {}).get("string", "")
        ext = p.get("extendedCommunity", {}).get("string", "")
        best = p.get("bestpath", {})
        cl = p.get("clusterList", {})
        path_id = p.get("remoteAddpathId", p.get("addpathRxId"))
        if p.get("peer", {}).get("peerId") in (None, "(unspec)", "0.0.0.0", "::"):
            path_id = None  # locally originated
        return RouteView(
            prefix=_canon_prefix(prefix), next_hop=nh, as_path=as_path + sets,
            origin=str(p["origin"]).lower() if p.get("origin") else None,
            med=p.get("metric", p.get("med")),
            local_pref=p.get("locPrf", p.get("localpref")),
            communities=[norm_community(c) for c in comm.split()],
            large_communities=large.split(),
            ext_communities=[norm_ext_community(c) for c in ext.split()],
            originator_id=p.get("originatorId"),
            cluster_list=list(cl.get("list", [])) if isinstance(cl, dict) else [],
            path_id=int(path_id) if path_id is not None else None,
            best=bool(best.get("overall")) if isinstance(best, dict) else bool(best),
            raw=p)

    # --- runtime routes --------------------------------------------------------------
    def add_route(self, prefix: str, next_hop: str | None = None, *,
                  communities: Sequence[str] = (), large_communities: Sequence[str] = (),
                  ext_communities: Sequence[str] = (), med: int | None = None,
                  local_pref: int | None = None, as_path: Sequence[int] = (),
                  origin: str | None = None) -> None:
        """`network PREFIX [route-map R]` with a generated route-map for the attributes."""
        self._remember(locals(), True)
        p = _canon_prefix(prefix)
        fam = _family_of(p)
        sets: list[str] = []
        if next_hop:
            sets.append(f"set {'ipv6 next-hop global' if ':' in next_hop else 'ip next-hop'}"
                        f" {next_hop}")
        if communities:
            sets.append("set community " + " ".join(norm_community(c) for c in communities))
        if large_communities:
            sets.append("set large-community " + " ".join(large_communities))
        if ext_communities:
            rts = [c.split(":", 1)[1] for c in map(norm_ext_community, ext_communities)
                   if c.startswith("rt:")]
            soos = [c.split(":", 1)[1] for c in map(norm_ext_community, ext_communities)
                    if c.startswith("soo:")]
            if rts:
                sets.append("set extcommunity rt " + " ".join(rts))
            if soos:
                sets.append("set extcommunity soo " + " ".join(soos))
        if med is not None:
            sets.append(f"set metric {med}")
        if local_pref is not None:
            sets.append(f"set local-preference {local_pref}")
        if as_path:
            sets.append("set as-path prepend " + " ".join(str(a) for a in as_path))
        if origin:
            sets.append(f"set origin {origin}")
        cmds = ["configure terminal"]
        rm = ""
        if sets:
            self._rm_seq += 1
            name = f"ROOST-NET-{self._rm_seq}"
            cmds += [f"route-map {name} permit 10", *sets, "exit"]
            rm = f" route-map {name}"
            self._dyn_maps[p] = name
        cmds += [f"router bgp {self.asn}", f"address-family {fam} unicast",
                 f"network {p}{rm}", "end"]
        self._config_cmds(cmds)

    def del_route(self, prefix: str) -> None:
        self._remember(locals(), False)
        p = _canon_prefix(prefix)
        cmds = ["configure terminal", f"router bgp {self.asn}",
                f"address-family {_family_of(p)} unicast", f"no network {p}", "exit", "exit"]
        name = self._dyn_maps.pop(p, None)
        if name:
            cmds.append(f"no route-map {name}")
        self._config_cmds([*cmds, "end"])

    def _config_cmds(self, cmds: list[str]) -> None:
        out = self.vtysh(*cmds)
        bad = [ln for ln in out.splitlines() if ("%" in ln and "Unknown" in ln)
               or "Invalid" in ln or "rror" in ln]
        if bad:
            raise AssertionError(f"vtysh config failed: {bad}\ncommands: {cmds}")

    # --- notifications ---------------------------------------------------------------
    def notifications(self) -> list[Notification]:
        """From bgpd.log: '%NOTIFICATION: sent to|received from neighbor IP C/S (text)'."""
        out: list[Notification] = []
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        rx = re.compile(r"%NOTIFICATION(?:\([^)]*\))?: (sent to|received from) neighbor "
                        r"(\S+) (\d+)/(\d+) \(([^)]*)\)")
        for m in rx.finditer(text):
            d, peer, code, sub, msg = m.groups()
            out.append(Notification("sent" if d == "sent to" else "received", int(code),
                                    int(sub), peer, msg))
        return out


# ---------------------------------------------------------------------------------------
# ExaBGP

# Process-API helper run by ExaBGP (written into the workdir at start; stdlib only).
#  * every line ExaBGP writes to us (JSON: updates, state changes, notifications, opens)
#    is appended to RECEIVED, one JSON object per line;
#  * every line written into the FIFO is forwarded to ExaBGP as an API command.
# It must never exit while ExaBGP runs (ExaBGP would respawn it and replay nothing).
_EXABGP_API = r'''
import os, sys, threading

fifo, received, ready = sys.argv[1], sys.argv[2], sys.argv[3]


fd = os.open(fifo, os.O_RDWR)  # read+write: never sees EOF when writers come and go


def pump_commands():
    with os.fdopen(fd, "r") as f:
        for line in f:
            sys.stdout.write(line)
            sys.stdout.flush()


threading.Thread(target=pump_commands, daemon=True).start()
with open(ready, "w") as f:
    f.write(str(os.getpid()))
with open(received, "a", buffering=1) as out:
    for line in sys.stdin:
        out.write(line if line.endswith("\n") else line + "\n")
'''


class ExaBgp(Daemon):
    """ExaBGP 4.2 with a process-API helper: received UPDATEs / state changes /
    NOTIFICATIONs (JSON) go to ``workdir/received.jsonl``; add_route/del_route write API
    commands into a FIFO.  ExaBGP only connects out: the peer must accept (passive
    neighbors are not supported).  ExaBGP has no best-path selection: rib() returns every
    path received (per peer and path id), all with ``best=True``.

    Extra keyword arguments: ``log_level`` ("INFO"), ``reactor_speed`` (1.0; lower = faster
    but busy-spins), ``extra_config`` (appended verbatim), ``route_refresh`` (False: True
    advertises the route refresh capability; ExaBGP then re-sends its routes when it
    receives a ROUTE-REFRESH), ``graceful_restart`` (None; N advertises the graceful
    restart capability with restart time N s).
    """

    kind = "exabgp"
    binaries = ("exabgp",)

    def __init__(self, host: Host, asn: int, router_id: str, neighbors: Sequence[Neighbor],
                 *, workdir: Path | str | None = None, cluster_id: str | None = None,
                 originate: Iterable[str] = (), name: str | None = None,
                 log_level: str = "INFO", reactor_speed: float = 1.0,
                 extra_config: str = "", route_refresh: bool = False,
                 graceful_restart: int | None = None) -> None:
        super().__init__(host, asn, router_id, neighbors, workdir=workdir,
                         cluster_id=cluster_id, originate=originate, name=name)
        if any(n.passive for n in self.neighbors):
            raise ValueError("ExaBgp: passive neighbors are not supported (ExaBGP connects out)")
        self.route_refresh = route_refresh
        self.graceful_restart = graceful_restart
        self.log_level = log_level
        self.reactor_speed = reactor_speed
        self.extra_config = extra_config
        self.fifo = self.rundir / "api.fifo"
        self.received_path = self.workdir / "received.jsonl"
        self.conf_path = self.workdir / "exabgp.conf"
        self.env_path = self.workdir / "exabgp.env"
        self.pid_path = self.workdir / "exabgp.pid"
        self._ready = self.rundir / "api.ready"

    @property
    def log_path(self) -> Path:
        return self.workdir / "exabgp.log"

    def pidfiles(self) -> list[Path]:
        return [self.pid_path]

    def _local(self, n: Neighbor) -> str:
        if n.local_address:
            return n.local_address
        addr = self.host.addr6 if n.is_v6 else self.host.addr4
        if not addr:
            raise ValueError(f"{self.name}: no local address for neighbor {n.address}")
        return addr

    def _own_nh(self, prefix: str, n: Neighbor) -> str:
        local = self._local(n)
        if (":" in local) == (_family_of(prefix) == "ipv6"):
            return local
        return (self.host.addr6 if _family_of(prefix) == "ipv6" else self.host.addr4) or "self"

    def config(self) -> str:
        helper = self.workdir / "exabgp_api.py"
        out = [f"# generated by tests/harness/daemons.py for {self.name}",
               "process roost-api {",
               f"    run /usr/bin/python3 {helper} {self.fifo} {self.received_path} "
               f"{self._ready};",
               "    encoder json;", "}"]
        for n in self.neighbors:
            out += [f"neighbor {n.address} {{", f"    router-id {self.router_id};",
                    f"    local-address {self._local(n)};", f"    local-as {self.asn};",
                    f"    peer-as {n.asn};", f"    hold-time {n.hold_time};"]
            if n.port != 179:
                out.append(f"    peer-port {n.port};")
            if n.password:
                out.append(f'    md5-password "{n.password}";')
            if n.multihop:
                out.append("    outgoing-ttl 8;")
            caps = (["add-path send/receive;"] if n.addpath else []) + \
                (["route-refresh;"] if self.route_refresh else []) + \
                ([f"graceful-restart {self.graceful_restart};"]
                 if self.graceful_restart is not None else [])
            if caps:
                out.append(f"    capability {{ {' '.join(caps)} }}")
            out.append("    family {")
            out += [f"        {f} unicast;" for f in n.families]
            out.append("    }")
            send_upd = "update; " if self.route_refresh else ""
            out += ["    api {", "        processes [ roost-api ];", "        neighbor-changes;",
                    "        receive { parsed; update; notification; open; }",
                    f"        send {{ parsed; notification; {send_upd}}}", "    }"]
            mine = [p for p in self.originate if _family_of(p) in n.families]
            if mine:
                out.append("    static {")
                # explicit next hop: `exabgp --test` fails on "next-hop self" for IPv6.
                # With ADD-PATH, `exabgp --test` (4.2.21) re-decodes each static route with
                # a path id and compares the text: without an explicit path-information
                # "... next-hop X" != "... path-information 0.0.0.0 next-hop X" -> exit 1.
                pid = " path-information 1" if n.addpath else ""
                out += [f"        route {p} next-hop {self._own_nh(p, n)}{pid};" for p in mine]
                out.append("    }")
            out.append("}")
        if self.extra_config:
            out.append(self.extra_config)
        return "\n".join(out) + "\n"

    def env(self) -> str:
        return "\n".join([
            "[exabgp.daemon]", "user = 'root'", "drop = false", "daemonize = false",
            f"pid = '{self.pid_path}'", "",
            "[exabgp.log]", f"destination = '{self.log_path}'", f"level = {self.log_level}",
            "", "[exabgp.api]", "cli = false", "ack = false", "", "[exabgp.reactor]",
            f"speed = {self.reactor_speed}", ""])

    def _start(self) -> None:
        (self.workdir / "exabgp_api.py").write_text(_EXABGP_API)
        self.env_path.write_text(self.env())
        self.conf_path.write_text(self.config())
        for f in (self.fifo, self._ready, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                f.unlink()
        os.mkfifo(self.fifo, 0o600)
        self.received_path.write_text("")
        chk = _run(["exabgp", "--env", str(self.env_path), "--test", str(self.conf_path)],
                   check=False, timeout=60)
        if chk.returncode != 0:
            raise AssertionError(f"exabgp config check failed ({self.conf_path}):\n"
                                 f"{chk.stdout[-2000:]}{chk.stderr[-2000:]}")
        proc = self.host.popen(["exabgp", "--env", str(self.env_path), str(self.conf_path)],
                               self.workdir / "exabgp.out")
        self._procs.append(proc)

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"exabgp exited with {proc.returncode}\n"
                                     f"{(self.workdir / 'exabgp.out').read_text()[-2000:]}")
            return self._ready.exists()

        wait_for(ready, 20, what=f"{self.name}: exabgp API process", on_timeout=self._diag)

    # --- API commands ----------------------------------------------------------------
    def command(self, line: str) -> None:
        """Send one process-API command (e.g. 'announce route 10.9.0.0/24 next-hop self')."""
        deadline = time.monotonic() + 5
        while True:
            try:
                fd = os.open(self.fifo, os.O_WRONLY | os.O_NONBLOCK)
                break
            except OSError as exc:  # ENXIO: no reader (helper not (yet) running)
                if time.monotonic() > deadline:
                    raise AssertionError(f"{self.name}: API helper not running ({exc})\n"
                                         f"{self.log_tail()}") from exc
                time.sleep(0.05)
        try:
            # O_NONBLOCK was only for the open (ENXIO instead of hanging without a reader);
            # write blocking: a long line (thousands of prefixes) exceeds the pipe buffer
            # and would raise BlockingIOError / be cut short
            os.set_blocking(fd, True)
            data = memoryview((line.rstrip("\n") + "\n").encode())
            while data:
                data = data[os.write(fd, data):]
        finally:
            os.close(fd)

    def add_route(self, prefix: str, next_hop: str | None = None, *,
                  communities: Sequence[str] = (), large_communities: Sequence[str] = (),
                  ext_communities: Sequence[str] = (), med: int | None = None,
                  local_pref: int | None = None, as_path: Sequence[int] = (),
                  origin: str | None = None, path_id: int | None = None,
                  neighbor: str | None = None) -> None:
        """`announce route ...` (to all neighbors, or one with ``neighbor=IP``)."""
        self._remember(locals(), True)
        parts = [f"announce route {prefix}", f"next-hop {next_hop or 'self'}"]
        if origin:
            parts.append(f"origin {origin}")
        if as_path:
            parts.append("as-path [ " + " ".join(str(a) for a in as_path) + " ]")
        if med is not None:
            parts.append(f"med {med}")
        if local_pref is not None:
            parts.append(f"local-preference {local_pref}")
        if communities:
            parts.append("community [ " + " ".join(norm_community(c) for c in communities)
                         + " ]")
        if large_communities:
            parts.append("large-community [ " + " ".join(large_communities) + " ]")
        if ext_communities:
            exts = []
            for c in map(norm_ext_community, ext_communities):
                kind, a, b = c.split(":")
                exts.append(f"{'target' if kind == 'rt' else 'origin'}:{a}:{b}")
            parts.append("extended-community [ " + " ".join(exts) + " ]")
        if path_id is not None:
            parts.append(f"path-information {path_id}")
        prefix_cmd = f"neighbor {neighbor} " if neighbor else ""
        self.command(prefix_cmd + " ".join(parts))

    def del_route(self, prefix: str, path_id: int | None = None,
                  neighbor: str | None = None) -> None:
        self._remember(locals(), False)
        extra = f" path-information {path_id}" if path_id is not None else ""
        prefix_cmd = f"neighbor {neighbor} " if neighbor else ""
        self.command(f"{prefix_cmd}withdraw route {prefix} next-hop self{extra}")

    # --- received messages -----------------------------------------------------------
    def messages(self, type_: str | None = None) -> list[dict[str, Any]]:
        """Every JSON message the API helper recorded (optionally only one 'type')."""
        out: list[dict[str, Any]] = []
        try:
            lines = self.received_path.read_text(errors="replace").splitlines()
        except OSError:
            return out
        for line in lines:
            try:
                msg = json.loads(line)
            except ValueError:
                continue
            if isinstance(msg, dict) and (type_ is None or msg.get("type") == type_):
                out.append(msg)
        return out

    def neighbor_state(self, address: str) -> str:
        state = "idle"
        for msg in self.messages("state"):
            nb = msg.get("neighbor", {})
            if nb.get("address", {}).get("peer") != address:
                continue
            s = nb.get("state")
            state = {"up": "established", "down": "idle", "connected": "opensent"}.get(s, state)
        return state

    def rib(self, family: str = "ipv4") -> dict[str, list[RouteView]]:
        """Routes received (Adj-RIB-In of all peers), replayed from the UPDATE stream."""
        table: dict[tuple[str, str, int | None], RouteView] = {}
        for msg in self.messages():
            nb = msg.get("neighbor", {})
            peer = nb.get("address", {}).get("peer", "")
            if msg.get("type") == "state" and nb.get("state") == "down":
                for k in [k for k in table if k[0] == peer]:
                    del table[k]
                continue
            if msg.get("type") != "update" or nb.get("direction") == "send":
                continue  # (route_refresh=True also records the UPDATEs ExaBGP sends)
            upd = nb.get("message", {}).get("update", {})
            attrs = upd.get("attribute", {})
            for fam, nlris in upd.get("withdraw", {}).items():
                if not fam.startswith(family):
                    continue
                for item in nlris:
                    pfx, pid = self._nlri(item)
                    table.pop((peer, pfx, pid), None)
            for fam, by_nh in upd.get("announce", {}).items():
                if not fam.startswith(family) or not fam.endswith("unicast"):
                    continue
                # a global + link-local IPv6 next hop shows up as two keys: keep the global
                globals_ = [nh for nh in by_nh if not nh.lower().startswith("fe80:")]
                for nh, nlris in by_nh.items():
                    if globals_ and nh not in globals_:
                        continue
                    for item in nlris:
                        pfx, pid = self._nlri(item)
                        table[(peer, pfx, pid)] = self._view(pfx, nh, pid, attrs, msg)
        rib: dict[str, list[RouteView]] = {}
        for (_peer, pfx, _pid), v in table.items():
            rib.setdefault(pfx, []).append(v)
        return rib

    @staticmethod
    def _nlri(item: Any) -> tuple[str, int | None]:
        if isinstance(item, str):
            return _canon_prefix(item), None
        pid = item.get("path-information")
        if isinstance(pid, str) and "." in pid:
            pid = int(ipaddress.IPv4Address(pid))
        return _canon_prefix(item["nlri"]), (int(pid) if pid is not None else None)

    @staticmethod
    def _view(prefix: str, nh: str, pid: int | None, a: dict[str, Any],
              msg: dict[str, Any]) -> RouteView:
        as_path: list[int] = []
        sets: list[int] = []
        asp = a.get("as-path", [])
        if isinstance(asp, dict):  # newer encoders: {"0": {"element": "as-sequence", ...}}
            for seg in asp.values():
                (as_path if "sequence" in str(seg.get("element")) else sets).extend(
                    seg.get("value", []))
        else:
            as_path = [int(x) for x in asp]
        sets += [int(x) for x in a.get("as-set", [])]
        exts: list[str] = []
        for e in a.get("extended-community", []):
            s = e.get("string", "") if isinstance(e, dict) else str(e)
            kind, _, rest = s.partition(":")
            if kind in ("target", "origin") and rest.count(":") == 1:
                exts.append(f"{'rt' if kind == 'target' else 'soo'}:{rest}")
            else:
                val = e.get("value") if isinstance(e, dict) else None
                exts.append(f"0x{int(val):016x}" if isinstance(val, int) else s)
        origin = a.get("origin")
        return RouteView(
            prefix=prefix, next_hop=nh, as_path=as_path + sets,
            origin=str(origin).lower() if origin else None,
            med=a.get("med"), local_pref=a.get("local-preference"),
            communities=[f"{c[0]}:{c[1]}" for c in a.get("community", [])],
            large_communities=[":".join(str(x) for x in c)
                               for c in a.get("large-community", [])],
            ext_communities=exts, originator_id=a.get("originator-id"),
            cluster_list=list(a.get("cluster-list", [])), path_id=pid, best=True,
            raw={"attribute": a, "message": msg})

    def notifications(self) -> list[Notification]:
        out: list[Notification] = []
        for msg in self.messages("notification"):
            nb = msg.get("neighbor", {})
            body = (nb.get("notification") or nb.get("message", {}).get("notification")
                    or msg.get("notification") or {})
            direction = "sent" if nb.get("direction") == "send" else "received"
            data = str(body.get("data", body.get("message", "")))
            with contextlib.suppress(ValueError):
                if data.startswith("0x") and len(data) > 2:
                    txt = bytes.fromhex(data[2:]).decode("ascii")
                    data = txt if txt.isprintable() else data
            out.append(Notification(direction, body.get("code"), body.get("subcode"),
                                    nb.get("address", {}).get("peer"), data))
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return out
        # e.g. "... peer 10.255.0.1 ... sending NOTIFICATION (2,2) ..." (logged when we send)
        rx = re.compile(r"(?i)(sending|sent|received) notification[^\n]*?\((\d+),\s*(\d+)\)"
                        r"[^\n]*")
        out += [Notification("received" if m.group(1).lower() == "received" else "sent",
                             int(m.group(2)), int(m.group(3)), None, m.group(0))
                for m in rx.finditer(text)]
        return out
