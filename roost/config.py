"""roost's configuration: one TOML file read into frozen dataclasses.

Everything is validated at load time and nothing is applied from a file with errors:
`load(path)` either returns a complete `Config` or raises `ConfigError` listing every
problem found as ``file:line: dotted.key: message``. `tomllib` reports no positions for
values, so `_LineIndex` finds the line of a key by scanning the text for its table (or
array-of-tables entry) and key; TOML syntax errors already carry their line and column.

The keys and their defaults are documented in docs/configuration.md; keep the two in step.
"""

from __future__ import annotations

import difflib
import ipaddress
import logging
import re
import tomllib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal, TypeVar

from bgp.types import BGP_PORT, IPV4_UNICAST, IPV6_UNICAST, Family

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
KeyPath = tuple[str | int, ...]
T = TypeVar("T")

log = logging.getLogger("roost.config")

MAX_ASN = 4294967295
#: `[router] max_output_queue` default: octets of UPDATEs that may wait for one peer.
DEFAULT_MAX_OUTPUT_QUEUE = 64 * 1024 * 1024
MAX_PREFIXES_ACTIONS = ("warn", "teardown")
DEFAULT_SOCKET = "/run/roost/roost.ctl"
FAMILIES: dict[str, Family] = {"ipv4": IPV4_UNICAST, "ipv6": IPV6_UNICAST}
TUNNEL_MODES = ("never", "always", "cross-subnet")
NEXT_HOP_MODES = ("auto", "self", "keep")
ADD_PATH_MODES = ("receive", "send", "both")
TABLE_NAMES = {"main": 254, "default": 253, "local": 255}

TunnelMode = Literal["never", "always", "cross-subnet"]
NextHopMode = Literal["auto", "self", "keep"]
AddPaths = Literal["off", "receive", "send", "both"]
PeerKind = Literal["static", "mesh", "dynamic"]


# --------------------------------------------------------------------------- errors


@dataclass(frozen=True, slots=True)
class ConfigIssue:
    """One problem in a configuration file."""

    file: str
    line: int | None
    key: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}:{self.line}" if self.line else self.file
        return f"{where}: {self.key}: {self.message}" if self.key else f"{where}: {self.message}"


class ConfigError(Exception):
    """The configuration is invalid; `issues` lists every problem found, in file order."""

    def __init__(self, issues: Iterable[ConfigIssue]) -> None:
        self.issues = sorted(issues, key=lambda i: (i.line or 0, i.key))
        super().__init__("\n".join(str(i) for i in self.issues))


# --------------------------------------------------------------------------- values


@dataclass(frozen=True, slots=True)
class GracefulRestart:
    """RFC 4724 graceful restart: advertised in OPEN; `restart_time` in seconds (≤ 4095)
    is how long peers keep our routes while we restart and our restart window;
    `stale_time` bounds how long we keep a restarted peer's stale routes waiting for its
    End-of-RIB; `notification` is the RFC 8538 N bit (graceful restart after
    NOTIFICATIONs other than Hard Reset)."""

    enabled: bool = True
    restart_time: int = 120
    stale_time: int = 360
    notification: bool = True
    # `roost run -R`: the longest the kernel updates wait for End-of-RIB from every peer
    # (BIRD's `graceful restart wait`).
    wait: int = 240
    # RFC 9494 long-lived graceful restart: the Long-lived Stale Time we advertise and the
    # most we keep a peer's routes, least preferred, after its restart time; 0 = off.
    long_lived_stale_time: int = 3600


@dataclass(frozen=True, slots=True)
class RouterConfig:
    asn: int
    router_id: ipaddress.IPv4Address
    listen: tuple[IPAddress, ...] = ()  # empty: every address
    port: int = BGP_PORT
    prefixes: tuple[IPNetwork, ...] = ()
    next_hop: ipaddress.IPv4Address | None = None  # None: listen/router id (see next_hop_v4)
    next_hop6: ipaddress.IPv6Address | None = None  # None: first global IPv6 address
    hold_time: int = 90
    keepalive_time: int | None = None  # None: hold_time / 3
    connect_retry_time: float = 5.0
    graceful_restart: GracefulRestart = GracefulRestart()
    ebgp_requires_policy: bool = True
    max_output_queue: int = DEFAULT_MAX_OUTPUT_QUEUE  # per-peer default, octets

    @property
    def next_hop_v4(self) -> ipaddress.IPv4Address:
        """The IPv4 next hop we put on our own routes: `next_hop`, else the first IPv4
        listen address, else the router id."""
        if self.next_hop is not None:
            return self.next_hop
        for addr in self.listen:
            if isinstance(addr, ipaddress.IPv4Address) and not addr.is_unspecified:
                return addr
        return self.router_id

    @property
    def addresses(self) -> frozenset[IPAddress]:
        """Addresses that are this node's own (used to skip ourselves in `[mesh] nodes`)."""
        own: set[IPAddress] = {self.router_id, self.next_hop_v4, *self.listen}
        if self.next_hop6 is not None:
            own.add(self.next_hop6)
        return frozenset(own)


@dataclass(frozen=True, slots=True)
class ControlConfig:
    socket: str = DEFAULT_SOCKET
    # BIRD's control-socket dialect for calico-node and birdc (roost/birdctl.py); off
    # unless set, e.g. "/var/run/calico/bird.ctl".
    bird_socket: str | None = None


@dataclass(frozen=True, slots=True)
class MetricsConfig:
    """The Prometheus endpoint (roost/metrics.py): off unless `listen` is set."""

    listen: tuple[IPAddress, int] | None = None  # (address, port)

    @property
    def listen_text(self) -> str:
        if self.listen is None:
            return "off"
        host, port = self.listen
        return f"[{host}]:{port}" if host.version == 6 else f"{host}:{port}"


@dataclass(frozen=True, slots=True)
class KernelPool:
    """A per-pool tunnel override: routes inside `cidr` use `tunnel`."""

    cidr: IPNetwork
    tunnel: TunnelMode


@dataclass(frozen=True, slots=True)
class KernelConfig:
    enabled: bool = True
    tunnel: TunnelMode = "never"
    tunnel_device: str = "tunl0"
    pools: tuple[KernelPool, ...] = ()
    metric: int = 1024
    table: int = 254
    blackhole: bool = True
    dry_run: bool = False

    def tunnel_for(self, prefix: IPNetwork) -> TunnelMode:
        """The tunnel mode for a destination: the most specific pool containing it, else
        the global `tunnel`."""
        best: KernelPool | None = None
        for pool in self.pools:
            if (
                pool.cidr.version == prefix.version
                and prefix.subnet_of(pool.cidr)  # type: ignore[arg-type]
                and (best is None or pool.cidr.prefixlen > best.cidr.prefixlen)
            ):
                best = pool
        return best.tunnel if best is not None else self.tunnel


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """One BGP neighbour, from `[[peer]]`, expanded from `[mesh]`, or a template for a
    `[[reflector.dynamic]]` range (then `address` is the range's first address)."""

    address: IPAddress
    asn: int
    name: str
    kind: PeerKind = "static"
    port: int = BGP_PORT
    passive: bool = False
    # The TCP MD5 key (from `password` or read from `password_file`): a secret, so kept
    # out of repr() and with it out of logs, tracebacks and error messages.
    password: str | None = field(default=None, repr=False)
    password_file: str | None = None
    ttl_security: int | None = None  # GTSM: accept only packets from ≤ this many hops
    multihop: int | None = None  # outgoing TTL; None = 1 for eBGP, 255 for iBGP
    local_address: IPAddress | None = None
    next_hop: NextHopMode = "auto"
    hold_time: int = 90
    keepalive_time: int | None = None
    connect_retry_time: float = 5.0
    families: tuple[Family, ...] = (IPV4_UNICAST,)
    add_paths: AddPaths = "off"
    rr_client: bool = False
    route_reflector: bool = False
    import_policy: str | None = None
    export_policy: str | None = None
    allow_local_as: int = 0
    description: str = ""
    graceful_restart: bool = True
    # Maximum prefixes (BIRD `import limit`, FRR `maximum-prefix`): accepted paths per
    # family; "warn" logs, "teardown" sends Cease/1 and stays down `max_prefixes_restart`
    # seconds (0: until a reload or restart).
    max_prefixes: int | None = None
    max_prefixes_action: Literal["warn", "teardown"] = "teardown"
    max_prefixes_restart: int = 0
    # RFC 9687 SendHoldTime; None: max(480, 2 x hold time); 0: off.
    send_hold_time: int | None = None
    max_output_queue: int = DEFAULT_MAX_OUTPUT_QUEUE  # octets; Cease/8 past it

    def is_ibgp(self, local_asn: int) -> bool:
        return self.asn == local_asn


@dataclass(frozen=True, slots=True)
class DynamicRange:
    """`[[reflector.dynamic]]`: accept sessions from any address in `range`; each one gets
    a copy of `template` with its own address."""

    range: IPNetwork
    template: PeerConfig

    def peer_for(self, address: IPAddress) -> PeerConfig:
        return replace(self.template, address=address, name=_peer_name("Dynamic", address))


@dataclass(frozen=True, slots=True)
class ReflectorConfig:
    cluster_id: ipaddress.IPv4Address
    client_to_client: bool = True
    install: bool = False
    dynamic: tuple[DynamicRange, ...] = ()


@dataclass(frozen=True, slots=True)
class MeshConfig:
    nodes: tuple[IPAddress, ...]
    compare: Literal["numeric", "string"] = "numeric"
    local_address: IPAddress | None = None  # our entry in `nodes` (None if not listed)
    passive_side: Literal["larger", "smaller"] = "larger"


@dataclass(frozen=True, slots=True)
class PolicyMatch:
    """Conditions of a policy term (`bgp.policy.Match`); all given ones must hold, an
    empty match matches every route."""

    prefix: tuple[IPNetwork, ...] = ()  # route inside one of these (BIRD `net ~ CIDR`)
    prefix_exact: tuple[IPNetwork, ...] = ()  # route equal to one of these
    prefix_length: tuple[int, int] | None = None  # min..max, applies to `prefix`
    negate: bool = False  # the prefix conditions must NOT hold (Calico NotIn/NotEqual)
    peer_type: Literal["ibgp", "ebgp"] | None = None
    community: tuple[int, int] | None = None
    large_community: tuple[int, int, int] | None = None
    as_path_prefix: tuple[int, ...] = ()  # the AS_PATH starts with these


@dataclass(frozen=True, slots=True)
class PolicyThen:
    """What a matching term does (`bgp.policy` actions): modifications in this order,
    then `action` ("next": fall through to the next term, modifications kept)."""

    action: Literal["accept", "reject", "next"] = "next"
    local_pref: int | None = None
    med: int | None = None
    add_community: tuple[tuple[int, int], ...] = ()
    add_large_community: tuple[tuple[int, int, int], ...] = ()
    add_ext_community: tuple[int, ...] = ()  # RFC 4360, 8 octets as an int
    prepend: int = 0  # prepend our own AS this many times


@dataclass(frozen=True, slots=True)
class PolicyTerm:
    name: str
    match: PolicyMatch = PolicyMatch()
    then: PolicyThen = PolicyThen()


@dataclass(frozen=True, slots=True)
class PolicyConfig:
    name: str
    default: Literal["accept", "reject"] = "reject"
    terms: tuple[PolicyTerm, ...] = ()


@dataclass(frozen=True, slots=True)
class Config:
    path: str
    router: RouterConfig
    control: ControlConfig = ControlConfig()
    kernel: KernelConfig = KernelConfig()
    metrics: MetricsConfig = MetricsConfig()
    reflector: ReflectorConfig | None = None
    mesh: MeshConfig | None = None
    peers: tuple[PeerConfig, ...] = ()  # static and mesh peers, in file order
    policies: dict[str, PolicyConfig] = field(default_factory=dict)

    def summary(self) -> str:
        """One paragraph for `roost check`."""
        r = self.router
        mesh = sum(1 for p in self.peers if p.kind == "mesh")
        static = len(self.peers) - mesh
        parts = [
            f"router AS{r.asn} id {r.router_id}",
            f"{len(r.prefixes)} prefix{'es' if len(r.prefixes) != 1 else ''}",
            f"{static} peer{'s' if static != 1 else ''}",
        ]
        if self.mesh is not None:
            parts.append(f"{mesh} mesh peer{'s' if mesh != 1 else ''}")
        if self.reflector is not None:
            rr = self.reflector
            parts.append(f"route reflector cluster {rr.cluster_id}")
            if rr.dynamic:
                parts.append(f"{len(rr.dynamic)} dynamic range{'s' if len(rr.dynamic) > 1 else ''}")
        parts.append(
            "kernel "
            + (
                ("dry-run" if self.kernel.dry_run else f"table {self.kernel.table}")
                + f", tunnel {self.kernel.tunnel}"
                if self.kernel.enabled
                else "off"
            )
        )
        if self.policies:
            parts.append(f"{len(self.policies)} polic{'ies' if len(self.policies) > 1 else 'y'}")
        parts.append(f"control {self.control.socket}")
        if self.metrics.listen is not None:
            parts.append(f"metrics {self.metrics.listen_text}")
        return "; ".join(parts)


# --------------------------------------------------------------------------- loading


def load(path: str | Path) -> Config:
    """Read and validate a configuration file; raises ConfigError (also for I/O errors)."""
    name = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError([ConfigIssue(name, None, "", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError([ConfigIssue(name, None, "", f"cannot read: {reason}")]) from None
    return loads(text, name)


_TOML_POS = re.compile(r"^(.*?)\s*\(at line (\d+), column (\d+)\)$")


def loads(text: str, name: str = "<config>") -> Config:
    """Validate configuration text; `name` is used in messages."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        msg = str(exc)
        m = _TOML_POS.match(msg)
        if m:
            raise ConfigError(
                [ConfigIssue(name, int(m.group(2)), "", f"TOML syntax: {m.group(1)} "
                             f"(column {m.group(3)})")]
            ) from None
        raise ConfigError([ConfigIssue(name, None, "", f"TOML syntax: {msg}")]) from None
    v = _Validator(name, _LineIndex(text))
    config = v.config(data)
    if v.issues or config is None:
        raise ConfigError(v.issues)
    return config


# --------------------------------------------------------------------------- line index

_HEADER = re.compile(r"^\s*(\[\[?)\s*([^\]]+?)\s*(\]\]?)\s*(#.*)?$")
_KEY_ATOM = r"""(?:[A-Za-z0-9_-]+|"[^"]*"|'[^']*')"""
_KEY = re.compile(rf"^\s*({_KEY_ATOM}(?:\s*\.\s*{_KEY_ATOM})*)\s*=")
_KEY_PART = re.compile(_KEY_ATOM)


def _split_key(text: str) -> list[str]:
    return [p.strip("\"'") for p in _KEY_PART.findall(text)]


class _LineIndex:
    """Where each key of a TOML document is written: path (with array indices) → line."""

    def __init__(self, text: str) -> None:
        self.lines: dict[KeyPath, int] = {}
        counts: dict[tuple[str, ...], int] = {}
        table: KeyPath = ()
        depth = 0  # open brackets/braces of a multi-line value
        in_string: str | None = None
        for lineno, line in enumerate(text.splitlines(), start=1):
            if in_string is not None:
                if in_string in line:
                    in_string = None
                continue
            if depth > 0:
                depth += _bracket_balance(line)
                continue
            header = _HEADER.match(line)
            if header and len(header.group(1)) == len(header.group(3)):
                names = _split_key(header.group(2))
                if header.group(1) == "[[":
                    # Index relative to the enclosing array entry, e.g. policy.x.term[n].
                    parent = self._resolve(names[:-1], table)
                    counter_key = tuple(str(p) for p in (*parent, names[-1]))
                    n = counts.get(counter_key, 0)
                    counts[counter_key] = n + 1
                    table = (*parent, names[-1], n)
                else:
                    table = self._resolve(names, table)
                self.lines.setdefault(table, lineno)
                continue
            key = _KEY.match(line)
            if key:
                path = (*table, *_split_key(key.group(1)))
                self.lines.setdefault(path, lineno)
                rest = line[key.end():]
                for quote in ('"""', "'''"):
                    if rest.count(quote) == 1:
                        in_string = quote
                depth = max(0, _bracket_balance(rest))

    def _resolve(self, names: list[str], current: KeyPath) -> KeyPath:
        """Map header names to a path, reusing the index of the latest array entry of
        any prefix (`[policy.x.term.match]` after `[[policy.x.term]]`)."""
        path: list[str | int] = []
        for name in names:
            path.append(name)
            # If `path` is an array of tables, continue inside its latest entry.
            latest = -1
            for known in self.lines:
                if (
                    len(known) == len(path) + 1
                    and tuple(known[:-1]) == tuple(path)
                    and isinstance(known[-1], int)
                ):
                    latest = max(latest, known[-1])
            if latest >= 0:
                path.append(latest)
        return tuple(path)

    def find(self, path: KeyPath) -> int | None:
        """The line of `path`, else of its nearest written ancestor."""
        for end in range(len(path), 0, -1):
            line = self.lines.get(path[:end])
            if line is not None:
                return line
        return None


def _bracket_balance(text: str) -> int:
    text = re.sub(r'"(?:[^"\\]|\\.)*"|\'[^\']*\'', "", text)
    text = text.split("#", 1)[0]
    return text.count("[") + text.count("{") - text.count("]") - text.count("}")


def _dotted(path: KeyPath) -> str:
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += ("." if out else "") + part
    return out


# --------------------------------------------------------------------------- validation


class _AtIndex(ValueError):
    """An element of an array is invalid: reported at `key[index]`."""

    def __init__(self, index: int, message: str) -> None:
        super().__init__(message)
        self.index = index


class _Table:
    """A TOML table being validated: typed getters that record issues against exact keys,
    and a check for unknown keys."""

    def __init__(self, v: _Validator, path: KeyPath, data: dict[str, Any]) -> None:
        self.v = v
        self.path = path
        self.data = data
        self.seen: set[str] = set()

    def error(self, key: str | KeyPath, message: str) -> None:
        sub = (key,) if isinstance(key, str) else key
        self.v.error((*self.path, *sub), message)

    def has(self, key: str) -> bool:
        return key in self.data

    def raw(self, key: str) -> Any:
        self.seen.add(key)
        return self.data.get(key)

    def get(
        self,
        key: str,
        parse: Callable[[Any], T],
        default: T,
        *,
        required: bool = False,
    ) -> T:
        """Read `key` with `parse` (which raises ValueError/TypeError with the message)."""
        self.seen.add(key)
        if key not in self.data:
            if required:
                self.error(key, "required key is missing")
            return default
        try:
            return parse(self.data[key])
        except _AtIndex as exc:
            self.error((key, exc.index), str(exc))
        except (ValueError, TypeError) as exc:
            self.error(key, str(exc))
        return default

    def table(self, key: str) -> _Table | None:
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            return None
        if not isinstance(value, dict):
            self.error(key, f"must be a table, got {_show(value)}")
            return None
        return _Table(self.v, (*self.path, key), value)

    def tables(self, key: str) -> list[_Table]:
        """An array of tables (`[[key]]`)."""
        self.seen.add(key)
        value = self.data.get(key)
        if value is None:
            return []
        if not isinstance(value, list) or not all(isinstance(x, dict) for x in value):
            self.error(key, f"must be an array of tables ([[{_dotted((*self.path, key))}]])")
            return []
        return [_Table(self.v, (*self.path, key, i), t) for i, t in enumerate(value)]

    def done(self) -> None:
        """Report keys that no reader asked for, with a suggestion."""
        for key in self.data:
            if key in self.seen:
                continue
            near = difflib.get_close_matches(key, sorted(self.seen), n=1)
            hint = f"; did you mean {near[0]!r}?" if near else ""
            self.error(key, f"unknown key{hint}")


class _Validator:
    def __init__(self, name: str, index: _LineIndex) -> None:
        self.name = name
        self.index = index
        self.issues: list[ConfigIssue] = []

    def error(self, path: KeyPath, message: str) -> None:
        self.issues.append(ConfigIssue(self.name, self.index.find(path), _dotted(path), message))

    # ---------------------------------------------------------------- the document

    def config(self, data: dict[str, Any]) -> Config | None:
        top = _Table(self, (), data)
        router_t = top.table("router")
        router = self.router(router_t) if router_t is not None else None
        if "router" not in data:
            self.issues.append(
                ConfigIssue(self.name, None, "router", "required table [router] is missing")
            )
        policies = self.policies(top.table("policy"))
        control = self.control(top.table("control"))
        metrics = self.metrics(top.table("metrics"))
        reflector = self.reflector(top.table("reflector"), router, policies)
        mesh, mesh_peers = self.mesh(top.table("mesh"), router)
        peers = [self.peer(t, router, policies) for t in top.tables("peer")]
        kernel = self.kernel(top.table("kernel"), router, reflector)
        top.done()
        if router is None:
            return None
        all_peers = self._check_peers(
            [p for p in peers if p is not None], mesh_peers, router, reflector
        )
        return Config(
            path=self.name,
            router=router,
            control=control,
            kernel=kernel,
            metrics=metrics,
            reflector=reflector,
            mesh=mesh,
            peers=tuple(all_peers),
            policies=policies,
        )

    def _check_peers(
        self,
        peers: list[PeerConfig],
        mesh_peers: list[PeerConfig],
        router: RouterConfig,
        reflector: ReflectorConfig | None,
    ) -> list[PeerConfig]:
        seen: dict[IPAddress, KeyPath] = {}
        for i, p in enumerate(peers):
            path: KeyPath = ("peer", i, "address")
            if p.address in router.addresses:
                self.error(path, f"{p.address} is this router's own address")
            if p.address in seen:
                self.error(path, f"{p.address} is already configured at {_dotted(seen[p.address])}")
            seen[p.address] = ("peer", i)
            if p.rr_client and reflector is None:
                self.error(("peer", i, "rr_client"),
                           "rr_client needs a [reflector] table (with cluster_id)")
            if p.rr_client and not p.is_ibgp(router.asn):
                self.error(("peer", i, "rr_client"),
                           "route reflector clients must be iBGP (same AS as [router] asn)")
            if p.route_reflector and not p.is_ibgp(router.asn):
                self.error(("peer", i, "route_reflector"),
                           "a route reflector peer must be iBGP (same AS as [router] asn)")
        for p in mesh_peers:
            if p.address in seen:
                self.error(("mesh", "nodes"), f"{p.address} is also configured as "
                           f"{_dotted(seen[p.address])}; remove one of them")
        merged = {p.address: p for p in mesh_peers}
        merged.update({p.address: p for p in peers})
        if reflector is not None:
            for d, rng in enumerate(reflector.dynamic):
                for addr in merged:
                    if addr in rng.range:
                        self.error(("reflector", "dynamic", d, "range"),
                                   f"{rng.range} contains configured peer {addr}")
        return [*mesh_peers, *peers]

    # ---------------------------------------------------------------- [router]

    def router(self, t: _Table) -> RouterConfig | None:
        asn = t.get("asn", _asn, 0, required=True)
        rid = t.get("id", _ipv4, None, required=True)
        listen: tuple[IPAddress, ...] = t.get("listen", _addr_list, ())
        port = t.get("port", _port, BGP_PORT)
        prefixes: tuple[IPNetwork, ...] = t.get("prefixes", _net_list, ())
        for dup in _duplicates(prefixes):
            t.error("prefixes", f"{dup} is listed twice")
        next_hop = t.get("next_hop", _ipv4, None)
        next_hop6 = t.get("next_hop6", _ipv6, None)
        hold = t.get("hold_time", _hold_time, 90)
        keepalive = t.get("keepalive_time", _range_int(1, 21845), None)
        if keepalive is not None and hold and keepalive > hold // 3:
            t.error("keepalive_time", f"must be at most hold_time / 3 = {hold // 3}, "
                    f"got {keepalive}")
        retry = t.get("connect_retry_time", _positive_float, 5.0)
        gr = self.graceful_restart(t)
        ebgp_policy = t.get("ebgp_requires_policy", _bool, True)
        out_queue = t.get("max_output_queue", _range_int(65536, 1 << 40),
                          DEFAULT_MAX_OUTPUT_QUEUE)
        t.done()
        if rid is None or not asn:
            return None
        if rid.is_unspecified:
            t.error("id", "must not be 0.0.0.0")
        return RouterConfig(
            asn=asn,
            router_id=rid,
            listen=listen,
            port=port,
            prefixes=prefixes,
            next_hop=next_hop,
            next_hop6=next_hop6,
            hold_time=hold,
            keepalive_time=keepalive,
            connect_retry_time=retry,
            graceful_restart=gr,
            ebgp_requires_policy=ebgp_policy,
            max_output_queue=out_queue,
        )

    def graceful_restart(self, t: _Table) -> GracefulRestart:
        value = t.raw("graceful_restart")
        if value is None:
            return GracefulRestart()
        if isinstance(value, bool):
            return GracefulRestart(enabled=value)
        gt = t.table("graceful_restart")
        if gt is None:
            return GracefulRestart()
        enabled = gt.get("enabled", _bool, True)
        restart = gt.get("restart_time", _range_int(1, 4095), 120)
        stale = gt.get("stale_time", _range_int(1, 86400), 360)
        notification = gt.get("notification", _bool, True)
        wait = gt.get("wait", _range_int(1, 3600), 240)
        long_lived = gt.get("long_lived_stale_time", _range_int(0, 0xFFFFFF), 3600)
        gt.done()
        return GracefulRestart(enabled, restart, stale, notification, wait=wait,
                               long_lived_stale_time=long_lived)

    # ---------------------------------------------------------------- [control]

    def control(self, t: _Table | None) -> ControlConfig:
        if t is None:
            return ControlConfig()
        sock = t.get("socket", _socket_path, DEFAULT_SOCKET)
        bird = t.get("bird_socket", _socket_path, None)
        if bird is not None and bird == sock:
            t.error("bird_socket", "must differ from [control] socket")
        t.done()
        return ControlConfig(sock, bird)

    # ---------------------------------------------------------------- [metrics]

    def metrics(self, t: _Table | None) -> MetricsConfig:
        if t is None:
            return MetricsConfig()
        listen = t.get("listen", _host_port, None)
        t.done()
        return MetricsConfig(listen)

    # ---------------------------------------------------------------- [kernel]

    def kernel(
        self, t: _Table | None, router: RouterConfig | None, reflector: ReflectorConfig | None
    ) -> KernelConfig:
        default_enabled = reflector.install if reflector is not None else True
        if t is None:
            return KernelConfig(enabled=default_enabled)
        enabled = t.get("enabled", _bool, default_enabled)
        if (
            reflector is not None
            and t.has("enabled")
            and self._reflector_install_given
            and enabled != reflector.install
        ):
            t.error("enabled", f"contradicts [reflector] install = "
                    f"{str(reflector.install).lower()}; set only one of them")
        tunnel: TunnelMode = t.get("tunnel", _choice(TUNNEL_MODES), "never")
        device = t.get("tunnel_device", _ifname, "tunl0")
        pools: list[KernelPool] = []
        for pt in t.tables("pool"):
            cidr = pt.get("cidr", _net, None, required=True)
            ptunnel: TunnelMode = pt.get("tunnel", _choice(TUNNEL_MODES), tunnel)
            pt.done()
            if cidr is not None:
                pools.append(KernelPool(cidr, ptunnel))
        metric = t.get("metric", _range_int(0, MAX_ASN), 1024)
        table = t.get("table", _route_table, 254)
        blackhole = t.get("blackhole", _bool, True)
        dry_run = t.get("dry_run", _bool, False)
        t.done()
        return KernelConfig(
            enabled=enabled,
            tunnel=tunnel,
            tunnel_device=device,
            pools=tuple(pools),
            metric=metric,
            table=table,
            blackhole=blackhole,
            dry_run=dry_run,
        )

    # ---------------------------------------------------------------- [reflector]

    _reflector_install_given = False

    def reflector(
        self, t: _Table | None, router: RouterConfig | None, policies: dict[str, PolicyConfig]
    ) -> ReflectorConfig | None:
        if t is None:
            return None
        default_cid = router.router_id if router is not None else ipaddress.IPv4Address(0)
        cid = t.get("cluster_id", _cluster_id, default_cid)
        c2c = t.get("client_to_client", _bool, True)
        pure = router is None or not router.prefixes
        self._reflector_install_given = t.has("install")
        install = t.get("install", _bool, not pure)
        dynamic: list[DynamicRange] = []
        for dt in t.tables("dynamic"):
            rng = dt.get("range", _net, None, required=True)
            template = self.peer(dt, router, policies, dynamic_range=rng)
            if rng is not None and template is not None:
                dynamic.append(DynamicRange(rng, template))
        t.done()
        return ReflectorConfig(cid, c2c, install, tuple(dynamic))

    # ---------------------------------------------------------------- [mesh]

    def mesh(
        self, t: _Table | None, router: RouterConfig | None
    ) -> tuple[MeshConfig | None, list[PeerConfig]]:
        if t is None:
            return None, []
        nodes: tuple[IPAddress, ...] = t.get("nodes", _addr_list, (), required=True)
        if t.has("nodes") and not nodes and not any(i.key == "mesh.nodes" for i in self.issues):
            t.error("nodes", "must list at least one node address")
        for dup in _duplicates(nodes):
            t.error("nodes", f"{dup} is listed twice")
        compare = t.get("compare", _choice(("numeric", "string")), "numeric")
        passive_side = t.get("passive_side", _choice(("larger", "smaller")), "larger")
        common = self.session_options(t, router, is_ibgp_default=True)
        t.done()
        if router is None:
            return None, []
        ours = [n for n in nodes if n in router.addresses]
        if len(ours) > 1:
            t.error("nodes", f"lists more than one address of this router: "
                    f"{', '.join(map(str, ours))}")
        local = ours[0] if ours else (router.listen[0] if router.listen else router.router_id)
        peers: list[PeerConfig] = []
        for node in nodes:
            if node in router.addresses:
                continue
            passive = node.version == local.version and _mesh_passive(
                local, node, compare, passive_side
            )
            peers.append(
                PeerConfig(
                    address=node,
                    name=_peer_name("Mesh", node),
                    kind="mesh",
                    passive=passive,
                    **common,
                )
            )
        mesh = MeshConfig(
            nodes, compare, ours[0] if ours else None, passive_side  # type: ignore[arg-type]
        )
        return mesh, peers

    # ---------------------------------------------------------------- [[peer]]

    def session_options(
        self,
        t: _Table,
        router: RouterConfig | None,
        *,
        is_ibgp_default: bool,
        asn_required: bool = False,
    ) -> dict[str, Any]:
        """Keys shared by `[[peer]]`, `[mesh]` and `[[reflector.dynamic]]`."""
        local_asn = router.asn if router is not None else 0
        asn = t.get("asn", _asn, local_asn, required=asn_required)
        ibgp = asn == local_asn if asn else is_ibgp_default
        hold_default = router.hold_time if router is not None else 90
        hold = t.get("hold_time", _hold_time, hold_default)
        keep_default = router.keepalive_time if router is not None else None
        keepalive = t.get("keepalive_time", _range_int(1, 21845), keep_default)
        if t.has("keepalive_time") and keepalive is not None and hold and keepalive > hold // 3:
            t.error("keepalive_time", f"must be at most hold_time / 3 = {hold // 3}, "
                    f"got {keepalive}")
        retry_default = router.connect_retry_time if router is not None else 5.0
        families: tuple[Family, ...] = t.get("families", _families, (IPV4_UNICAST,))
        add_paths = t.get("add_paths", _add_paths, "both" if ibgp else "off")
        ttl_security = t.get("ttl_security", _ttl_security, None)
        multihop = t.get("multihop", _multihop, None)
        if ttl_security is not None and multihop is not None:
            t.error("multihop", "ttl_security already limits the hop count; "
                    "set only one of ttl_security and multihop")
        gr_default = router.graceful_restart.enabled if router is not None else True
        password, password_file = self._password(t)
        max_prefixes = t.get("max_prefixes", _range_int(1, MAX_ASN), None)
        for key in ("max_prefixes_action", "max_prefixes_restart"):
            if t.has(key) and not t.has("max_prefixes"):
                t.error(key, "has no effect without max_prefixes")
        queue_default = (router.max_output_queue if router is not None
                         else DEFAULT_MAX_OUTPUT_QUEUE)
        return {
            "asn": asn,
            "port": t.get("port", _port, router.port if router is not None else BGP_PORT),
            "password": password,
            "password_file": password_file,
            "max_prefixes": max_prefixes,
            "max_prefixes_action": t.get("max_prefixes_action", _choice(MAX_PREFIXES_ACTIONS),
                                         "teardown"),
            "max_prefixes_restart": t.get("max_prefixes_restart", _range_int(0, 86400 * 7), 0),
            "send_hold_time": t.get("send_hold_time", _send_hold_time, None),
            "max_output_queue": t.get("max_output_queue", _range_int(65536, 1 << 40),
                                      queue_default),
            "ttl_security": ttl_security,
            "multihop": multihop,
            "local_address": t.get("local_address", _addr, None),
            "next_hop": t.get("next_hop", _choice(NEXT_HOP_MODES), "auto"),
            "hold_time": hold,
            "keepalive_time": keepalive,
            "connect_retry_time": t.get("connect_retry_time", _positive_float, retry_default),
            "families": families,
            "add_paths": add_paths,
            "graceful_restart": t.get("graceful_restart", _bool, gr_default),
            "allow_local_as": t.get("allow_local_as", _allow_local_as, 0),
        }

    def _password(self, t: _Table) -> tuple[str | None, str | None]:
        """`password` or `password_file` (exactly one): the key and the file it came from.
        Messages never quote the key."""
        password = t.get("password", _password, None)
        path_text = t.get("password_file", _str, None)
        if path_text is None:
            return password, None
        if t.has("password"):
            t.error("password_file", "set only one of password and password_file")
            return None, None
        path = Path(path_text)
        if not path.is_absolute():  # relative to the configuration file
            path = Path(self.name).parent / path
        try:
            raw = path.read_bytes()
            st = path.stat()
        except OSError as exc:
            t.error("password_file", f"cannot read {path}: {exc.strerror or exc}")
            return None, str(path)
        try:
            key = raw.decode("utf-8").rstrip("\r\n")
        except UnicodeDecodeError:
            t.error("password_file", f"{path} is not UTF-8 text")
            return None, str(path)
        if not key:
            t.error("password_file", f"{path} is empty")
            return None, str(path)
        if len(key.encode()) > 80:
            t.error("password_file", f"{path} holds {len(key.encode())} bytes; TCP MD5 keys "
                    f"are 1..80 bytes (Linux TCP_MD5SIG_MAXKEYLEN)")
            return None, str(path)
        if st.st_mode & 0o077:
            log.warning("%s: %s: password file %s is readable by group or others (mode %04o); "
                        "chmod 600 it", self.name, _dotted((*t.path, "password_file")), path,
                        st.st_mode & 0o777)
        return key, str(path)

    def peer(
        self,
        t: _Table,
        router: RouterConfig | None,
        policies: dict[str, PolicyConfig],
        *,
        dynamic_range: IPNetwork | None = None,
    ) -> PeerConfig | None:
        if dynamic_range is None:
            address = t.get("address", _addr, None, required=True)
        else:
            address = dynamic_range.network_address
        opts = self.session_options(t, router, is_ibgp_default=True,
                                    asn_required=dynamic_range is None)
        # A dynamic range is always passive: we cannot connect to a range.
        passive = t.get("passive", _bool, False) if dynamic_range is None else True
        rr_client = t.get("rr_client", _bool, dynamic_range is not None)
        route_reflector = t.get("route_reflector", _bool, False)
        if rr_client and route_reflector:
            t.error("route_reflector", "a peer cannot be both our client and our reflector")
        imp = t.get("import", _str, None)
        exp = t.get("export", _str, None)
        for key, name in (("import", imp), ("export", exp)):
            if name is not None and name not in policies:
                known = ", ".join(sorted(policies)) or "none defined"
                t.error(key, f"no policy named {name!r} (policies: {known})")
        description = t.get("description", _str, "")
        t.done()
        local_asn = router.asn if router is not None else 0
        if dynamic_range is not None and opts["asn"] != local_asn and rr_client:
            t.error("rr_client", "route reflector clients must be iBGP (same AS as [router] asn)")
        if address is None or not opts["asn"]:
            return None
        if (
            opts["local_address"] is not None
            and opts["local_address"].version != address.version
        ):
            t.error("local_address", f"{opts['local_address']} is not of the same family as "
                    f"{address}")
        kind: PeerKind = "dynamic" if dynamic_range is not None else "static"
        prefix = "Dynamic" if dynamic_range is not None else "Node"
        return PeerConfig(
            address=address,
            name=_peer_name(prefix, address),
            kind=kind,
            passive=passive,
            rr_client=rr_client,
            route_reflector=route_reflector,
            import_policy=imp,
            export_policy=exp,
            description=description,
            **opts,
        )

    # ---------------------------------------------------------------- [policy.NAME]

    def policies(self, t: _Table | None) -> dict[str, PolicyConfig]:
        if t is None:
            return {}
        out: dict[str, PolicyConfig] = {}
        for name in list(t.data):
            pt = t.table(name)
            if pt is None:
                continue
            default = pt.get("default", _choice(("accept", "reject")), "reject")
            terms: list[PolicyTerm] = []
            for i, tt in enumerate(pt.tables("term")):
                terms.append(self.term(tt, f"term{i}"))
            pt.done()
            out[name] = PolicyConfig(name, default, tuple(terms))  # type: ignore[arg-type]
        return out

    def term(self, t: _Table, default_name: str) -> PolicyTerm:
        name = t.get("name", _str, default_name)
        mt = t.table("match")
        match = PolicyMatch()
        if mt is not None:
            match = PolicyMatch(
                prefix=mt.get("prefix", _net_list, ()),
                prefix_exact=mt.get("prefix_exact", _net_list, ()),
                prefix_length=mt.get("prefix_length", _length_range, None),
                negate=mt.get("negate", _bool, False),
                peer_type=mt.get("peer_type", _choice(("ibgp", "ebgp")), None),
                community=mt.get("community", _community, None),
                large_community=mt.get("large_community", _large_community, None),
                as_path_prefix=mt.get("as_path_prefix", _list_of(_asn), ()),
            )
            if match.negate and not (match.prefix or match.prefix_exact or match.prefix_length):
                mt.error("negate", "negates the prefix conditions, but there are none")
            mt.done()
        tt = t.table("then")
        then = PolicyThen()
        if tt is None:
            t.error("then", "required table is missing (at least `action`)")
        else:
            then = PolicyThen(
                action=tt.get("action", _choice(("accept", "reject", "next")), "next"),
                local_pref=tt.get("local_pref", _range_int(0, MAX_ASN), None),
                med=tt.get("med", _range_int(0, MAX_ASN), None),
                add_community=tt.get("add_community", _list_of(_community), ()),
                add_large_community=tt.get("add_large_community", _list_of(_large_community), ()),
                add_ext_community=tt.get("add_ext_community", _list_of(_ext_community), ()),
                prepend=tt.get("prepend", _range_int(0, 32), 0),
            )
            tt.done()
        t.done()
        return PolicyTerm(name, match, then)


# --------------------------------------------------------------------------- rules


def _mesh_passive(local: IPAddress, peer: IPAddress, compare: str, passive_side: str) -> bool:
    """Whether our session towards mesh `peer` is passive: of each pair, the side whose
    address is larger waits and the smaller one connects (`passive_side = "larger"`, the
    default), so every pair opens exactly one connection and never collides.

    Calico's generated BIRD config does the opposite (`if peerIP > currentNodeIP
    { peer.Passive = true }`: the smaller address waits) and compares address *strings*;
    a mesh that mixes roost with Calico's BIRD nodes must set `passive_side = "smaller"`
    and `compare = "string"`, or such a pair has both sides waiting."""
    as_text = compare == "string"
    we_are_larger = str(local) > str(peer) if as_text else int(local) > int(peer)
    return we_are_larger if passive_side == "larger" else not we_are_larger


def _peer_name(kind: str, address: IPAddress) -> str:
    """Calico's protocol names (`Mesh_10_0_0_2`, `Node_10_0_0_2`): status tools parse them."""
    return f"{kind}_" + re.sub(r"[.:]", "_", str(address))


def _duplicates(items: Iterable[T]) -> Iterator[T]:
    seen: set[T] = set()
    for item in items:
        if item in seen:
            yield item
        seen.add(item)


# --------------------------------------------------------------------------- parsers
# Each raises ValueError/TypeError with the text that follows "key: ".


def _show(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return repr(value).replace("'", '"') if "'" not in value else repr(value)
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return str(value)


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"must be an integer, got {_show(value)}")
    return value


def _range_int(lo: int, hi: int) -> Callable[[Any], int]:
    def parse(value: Any) -> int:
        n = _int(value)
        if not lo <= n <= hi:
            raise ValueError(f"must be {lo}..{hi}, got {n}")
        return n

    return parse


_asn = _range_int(1, MAX_ASN)
_port = _range_int(1, 65535)


def _host_port(value: Any) -> tuple[IPAddress, int]:
    """`"127.0.0.1:9179"` or `"[::1]:9179"`: an IP address (not a name) and a port."""
    text = _str(value)
    usage = f'must be "ADDRESS:PORT" (IPv6 in brackets: "[::1]:9179"), got {_show(value)}'
    if text.startswith("["):
        host, sep, port = text[1:].partition("]:")
    else:
        host, sep, port = text.rpartition(":")
        if ":" in host:
            raise ValueError(usage)  # an IPv6 address without brackets
    if not sep or not host or not port.isdigit():
        raise ValueError(usage)
    try:
        addr = ipaddress.ip_address(host)
    except ValueError:
        raise ValueError(f"{_show(host)} is not an IP address (names are not resolved)") from None
    if not 1 <= int(port) <= 65535:
        raise ValueError(f"port must be 1..65535, got {port}")
    return addr, int(port)


def _hold_time(value: Any) -> int:
    n = _int(value)
    if n != 0 and not 3 <= n <= 65535:
        raise ValueError(f"must be 0 or 3..65535 (RFC 4271 §4.2), got {n}")
    return n


def _positive_float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"must be a number of seconds, got {_show(value)}")
    if not 0 < value <= 86400:
        raise ValueError(f"must be more than 0 and at most 86400 seconds, got {value}")
    return float(value)


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"must be true or false, got {_show(value)}")
    return value


def _str(value: Any) -> str:
    if not isinstance(value, str):
        raise TypeError(f"must be a string, got {_show(value)}")
    return value


def _choice(options: tuple[str, ...]) -> Callable[[Any], Any]:
    def parse(value: Any) -> str:
        text = _str(value)
        if text not in options:
            raise ValueError(f"must be one of {', '.join(options)}; got {_show(value)}")
        return text

    return parse


def _addr(value: Any) -> IPAddress:
    text = _str(value)
    try:
        return ipaddress.ip_address(text)
    except ValueError:
        raise ValueError(f"not an IP address: {_show(value)}") from None


def _ipv4(value: Any) -> ipaddress.IPv4Address:
    addr = _addr(value)
    if not isinstance(addr, ipaddress.IPv4Address):
        raise ValueError(f"must be an IPv4 address, got {_show(value)}")
    return addr


def _cluster_id(value: Any) -> ipaddress.IPv4Address:
    """RFC 4456 §7: a 4-octet value, written like an IPv4 address or as an integer."""
    if isinstance(value, int) and not isinstance(value, bool):
        if not 1 <= value <= MAX_ASN:
            raise ValueError(f"must be 1..{MAX_ASN} or an IPv4 address, got {value}")
        return ipaddress.IPv4Address(value)
    addr = _ipv4(value)
    if addr.is_unspecified:
        raise ValueError("must not be 0.0.0.0")
    return addr


def _ipv6(value: Any) -> ipaddress.IPv6Address:
    addr = _addr(value)
    if not isinstance(addr, ipaddress.IPv6Address):
        raise ValueError(f"must be an IPv6 address, got {_show(value)}")
    if addr.is_link_local:
        raise ValueError(f"must be a global IPv6 address, got link-local {addr}")
    return addr


def _net(value: Any) -> IPNetwork:
    text = _str(value)
    if "/" not in text:
        raise ValueError(f"not a prefix (address/length): {_show(value)}")
    try:
        return ipaddress.ip_network(text, strict=True)
    except ValueError as exc:
        if "host bits set" in str(exc):
            fixed = ipaddress.ip_network(text, strict=False)
            raise ValueError(f"{text} has host bits set; did you mean {fixed}?") from None
        raise ValueError(f"not a prefix: {_show(value)}") from None


def _list_of(item: Callable[[Any], T]) -> Callable[[Any], tuple[T, ...]]:
    def parse(value: Any) -> tuple[T, ...]:
        if not isinstance(value, list):
            value = [value]
        out: list[T] = []
        for i, element in enumerate(value):
            try:
                out.append(item(element))
            except (ValueError, TypeError) as exc:
                raise _AtIndex(i, str(exc)) from None
        return tuple(out)

    return parse


def _addr_list(value: Any) -> tuple[IPAddress, ...]:
    return _list_of(_addr)(value)


_net_list = _list_of(_net)


def _families(value: Any) -> tuple[Family, ...]:
    fams = _list_of(_family)(value)
    if not fams:
        raise ValueError("must list at least one family (ipv4, ipv6)")
    return tuple(dict.fromkeys(fams))


def _family(value: Any) -> Family:
    text = _str(value)
    if text not in FAMILIES:
        raise ValueError(f"must be ipv4 or ipv6, got {_show(value)}")
    return FAMILIES[text]


def _add_paths(value: Any) -> AddPaths:
    if value is False:
        return "off"
    if value is True:
        return "both"
    text = _str(value)
    if text not in ADD_PATH_MODES:
        raise ValueError(f"must be false, true, receive, send or both; got {_show(value)}")
    return text  # type: ignore[return-value]


def _ttl_security(value: Any) -> int:
    n = _int(value)
    if not 1 <= n <= 254:
        raise ValueError(f"must be the number of hops, 1..254, got {n}")
    return n


def _multihop(value: Any) -> int | None:
    if value is True:
        return 255
    if value is False:
        return None
    n = _int(value)
    if not 1 <= n <= 255:
        raise ValueError(f"must be true, false or a TTL 1..255, got {n}")
    return n


def _allow_local_as(value: Any) -> int:
    if value is True:
        return 1
    if value is False:
        return 0
    return _range_int(0, 10)(value)


def _send_hold_time(value: Any) -> int:
    n = _int(value)
    if n != 0 and not 3 <= n <= 65535 * 2:
        raise ValueError(f"must be 0 (off) or 3..131070 seconds (RFC 9687), got {n}")
    return n


def _password(value: Any) -> str:
    # A secret: the messages never quote the value.
    if not isinstance(value, str):
        raise TypeError("must be a string")
    text = value
    if not 1 <= len(text.encode()) <= 80:
        raise ValueError("TCP MD5 keys are 1..80 bytes (Linux TCP_MD5SIG_MAXKEYLEN)")
    return text


def _socket_path(value: Any) -> str:
    text = _str(value)
    if not text:
        raise ValueError("must not be empty")
    if len(text.encode()) > 107:
        raise ValueError("Unix socket paths are at most 107 bytes")
    return text


def _ifname(value: Any) -> str:
    text = _str(value)
    if not 1 <= len(text) <= 15 or "/" in text or " " in text:
        raise ValueError(f"not an interface name: {_show(value)}")
    return text


def _route_table(value: Any) -> int:
    if isinstance(value, str):
        if value in TABLE_NAMES:
            return TABLE_NAMES[value]
        raise ValueError(f"must be \"main\", \"local\", \"default\" or a number, got "
                         f"{_show(value)}")
    return _range_int(1, MAX_ASN)(value)


def _length_range(value: Any) -> tuple[int, int]:
    """`24`, `"24..26"` or `[24, 26]`."""
    if isinstance(value, int) and not isinstance(value, bool):
        lo = hi = value
    elif isinstance(value, str) and re.fullmatch(r"\d+\.\.\d+", value):
        lo, hi = (int(x) for x in value.split(".."))
    elif isinstance(value, list) and len(value) == 2:
        lo, hi = _int(value[0]), _int(value[1])
    else:
        raise ValueError(f"must be N, \"MIN..MAX\" or [MIN, MAX], got {_show(value)}")
    if not 0 <= lo <= hi <= 128:
        raise ValueError(f"must satisfy 0 <= min <= max <= 128, got {lo}..{hi}")
    return lo, hi


def _community(value: Any) -> tuple[int, int]:
    text = _str(value)
    m = re.fullmatch(r"(\d+):(\d+)", text)
    if not m or int(m.group(1)) > 65535 or int(m.group(2)) > 65535:
        raise ValueError(f"a community is \"ASN:VALUE\" with both 0..65535, got {_show(value)}")
    return int(m.group(1)), int(m.group(2))


def _ext_community(value: Any) -> int:
    """"rt:ADMIN:VALUE" / "soo:ADMIN:VALUE" (route target / site of origin, RFC 4360):
    ADMIN a 2-octet AS (VALUE 0..2^32-1), a 4-octet AS (RFC 5668) or an IPv4 address
    (VALUE 0..65535). Returns the 8 octets as an int."""
    text = _str(value)
    m = re.fullmatch(r"(rt|soo):([0-9.]+):(\d+)", text)
    err = (f"an extended community is \"rt:ADMIN:VALUE\" or \"soo:ADMIN:VALUE\" (ADMIN an "
           f"AS number or an IPv4 address), got {_show(value)}")
    if not m:
        raise ValueError(err)
    sub = 0x02 if m.group(1) == "rt" else 0x03
    admin, num = m.group(2), int(m.group(3))
    if "." in admin:
        try:
            addr = int(ipaddress.IPv4Address(admin))
        except ValueError:
            raise ValueError(err) from None
        typ, high, width = 0x01, addr, 16
    elif int(admin) <= 0xFFFF:
        typ, high, width = 0x00, int(admin), 32
    elif int(admin) <= MAX_ASN:
        typ, high, width = 0x02, int(admin), 16
    else:
        raise ValueError(err)
    if num >= 1 << width:
        raise ValueError(f"{err}: VALUE must be below {1 << width} with that ADMIN")
    return (typ << 56) | (sub << 48) | (high << width) | num


def _large_community(value: Any) -> tuple[int, int, int]:
    text = _str(value)
    m = re.fullmatch(r"(\d+):(\d+):(\d+)", text)
    if not m or any(int(g) > MAX_ASN for g in m.groups()):
        raise ValueError(f"a large community is \"A:B:C\", each 0..{MAX_ASN}, got "
                         f"{_show(value)}")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))
