"""`roost import-bird`: a Calico-generated BIRD configuration in, roost's TOML out.

    bird.cfg ──▶ tokenize ──▶ parse (statements and { blocks }, `include` spliced in)
             ──▶ convert (the subset confd writes) ──▶ Imported ──▶ emit TOML text

Only the statements Calico's confd templates generate are understood (`router id`,
`listen bgp`, `template bgp` / `protocol bgp ... from`, `protocol static` blackholes, the
`calico_kernel_programming` filter, `calico_export_to_bgp_peers`); anything else that
would change behaviour is reported as ``file:line: warning: ...`` and left out. A file
that is not BIRD syntax raises `BirdSyntaxError` naming file and line.

Mapping (docs/migrating-from-bird.md has the table): `Mesh_*` protocols become `[mesh]`
(with Calico's passive direction, `passive_side = "smaller"`, `compare = "string"`),
every other BGP protocol a `[[peer]]`; `rr client; rr cluster id X` become
`rr_client = true` and `[reflector] cluster_id`; `krt_tunnel` per pool becomes
`[[kernel.pool]]` with `tunnel = "always"` / `"cross-subnet"`.
"""

from __future__ import annotations

import ipaddress
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class BirdSyntaxError(Exception):
    """The input is not BIRD configuration syntax (or not the subset read here)."""

    def __init__(self, file: str, line: int, message: str) -> None:
        self.file, self.line, self.message = file, line, message
        super().__init__(f"{file}:{line}: error: {message}")


# --------------------------------------------------------------------------- tokens


@dataclass(frozen=True, slots=True)
class Token:
    kind: str  # "word" | "string" | "sym"
    text: str
    line: int


_TOKEN = re.compile(r"""
    (?P<ws>[ \t\r\f\v]+|\n)
  | (?P<comment>\#[^\n]*)
  | (?P<block>/\*)
  | (?P<string>"(?:[^"\\\n]|\\.)*")
  | (?P<word>[A-Za-z0-9_.:/\-]+)
  | (?P<sym>[{}();,=~!&|<>+*\[\]])
""", re.VERBOSE)


def tokenize(text: str, file: str) -> list[Token]:
    """BIRD's lexical syntax: words, "strings", symbols, `#` and `/* */` comments."""
    out: list[Token] = []
    pos, line = 0, 1
    while pos < len(text):
        m = _TOKEN.match(text, pos)
        if m is None:
            if text[pos] == '"':
                raise BirdSyntaxError(file, line, "unterminated string")
            raise BirdSyntaxError(file, line, f"unexpected character {text[pos]!r}")
        kind = m.lastgroup
        value = m.group()
        if kind == "block":
            end = text.find("*/", m.end())
            if end < 0:
                raise BirdSyntaxError(file, line, "unterminated /* comment")
            line += text.count("\n", pos, end)
            pos = end + 2
            continue
        if kind == "string":
            out.append(Token("string", json.loads(value) if "\\" in value else value[1:-1],
                             line))
        elif kind in ("word", "sym"):
            out.append(Token(str(kind), value, line))
        line += value.count("\n")
        pos = m.end()
    return out


# --------------------------------------------------------------------------- statements


@dataclass(frozen=True, slots=True)
class Stmt:
    """`words... ;` or `words... { block }`: BIRD's configuration is nested statements."""

    words: tuple[Token, ...]
    block: tuple[Stmt, ...] | None
    file: str
    line: int

    @property
    def texts(self) -> list[str]:
        return [t.text for t in self.words]

    @property
    def where(self) -> str:
        return f"{self.file}:{self.line}"

    def source(self) -> str:
        """The statement's words as written, for messages."""
        text = " ".join(f'"{t.text}"' if t.kind == "string" else t.text for t in self.words)
        return text.replace(" , ", ", ") + (" { ... }" if self.block is not None else "")

    def walk(self) -> Iterator[Token]:
        """Every token of the statement and of its nested blocks."""
        yield from self.words
        for inner in self.block or ():
            yield from inner.walk()


def parse(tokens: Sequence[Token], file: str) -> list[Stmt]:
    stmts, pos = _parse_block(tokens, 0, file, top=True)
    assert pos == len(tokens)
    return stmts


def _parse_block(tokens: Sequence[Token], pos: int, file: str, *,
                 top: bool) -> tuple[list[Stmt], int]:
    stmts: list[Stmt] = []
    words: list[Token] = []
    while pos < len(tokens):
        tok = tokens[pos]
        pos += 1
        if tok.kind == "sym" and tok.text == ";":
            if words:
                stmts.append(Stmt(tuple(words), None, file, words[0].line))
            words = []
        elif tok.kind == "sym" and tok.text == "{":
            block, pos = _parse_block(tokens, pos, file, top=False)
            line = words[0].line if words else tok.line
            stmts.append(Stmt(tuple(words), tuple(block), file, line))
            words = []
            if pos < len(tokens) and tokens[pos].text == ";" and tokens[pos].kind == "sym":
                pos += 1
        elif tok.kind == "sym" and tok.text == "}":
            if top:
                raise BirdSyntaxError(file, tok.line, "'}' without a matching '{'")
            if words:
                stmts.append(Stmt(tuple(words), None, file, words[0].line))
            return stmts, pos
        else:
            words.append(tok)
    if not top:
        last = tokens[-1].line if tokens else 1
        raise BirdSyntaxError(file, last, "missing '}' at the end of the file")
    if words:
        raise BirdSyntaxError(file, words[0].line,
                              f"statement `{' '.join(t.text for t in words)}` has no ';'")
    return stmts, pos


# --------------------------------------------------------------------------- the model


@dataclass(frozen=True, slots=True)
class ImportedPeer:
    """One `protocol bgp`, template options applied."""

    name: str
    address: IPAddress
    asn: int
    where: str
    port: int | None = None
    local_address: IPAddress | None = None
    passive: bool = False
    password: str | None = None
    ttl_security: int | None = None
    multihop: int | bool | None = None
    rr_client: bool = False
    next_hop: str = "auto"
    allow_local_as: int = 0
    hold_time: int | None = None
    keepalive_time: int | None = None
    add_paths: str | None = None  # "both" | "receive" | "send" | "off"; None: not said
    graceful_restart: bool = True
    restart_time: int | None = None
    connect_retry_time: float | None = None

    @property
    def mesh(self) -> bool:
        return self.name.startswith("Mesh_")


@dataclass(frozen=True, slots=True)
class Pool:
    cidr: IPNetwork
    tunnel: str  # never | always | cross-subnet | reject (left to Felix)
    where: str
    subnet: str | None = None  # the cross-subnet test of the BIRD filter


@dataclass(frozen=True, slots=True)
class Imported:
    """What the BIRD file says, in roost's terms."""

    asn: int
    router_id: ipaddress.IPv4Address
    listen: tuple[IPAddress, ...] = ()
    port: int | None = None
    prefixes: tuple[IPNetwork, ...] = ()
    peers: tuple[ImportedPeer, ...] = ()
    pools: tuple[Pool, ...] = ()
    export_pools: tuple[IPNetwork, ...] = ()
    tunnel_device: str | None = None
    cluster_id: str | None = None
    kernel_table: int | None = None
    kernel_metric: int | None = None
    graceful_restart_wait: int | None = None


@dataclass(slots=True)
class Result:
    """The TOML text and the warnings (``file:line: warning: ...``)."""

    toml: str
    warnings: list[str] = field(default_factory=list)
    imported: Imported | None = None


# --------------------------------------------------------------------------- reading


def load(path: str | Path) -> list[Stmt]:
    """Read and parse a BIRD file; `include` statements are kept (see `Converter`)."""
    p = Path(path)
    try:
        text = p.read_text()
    except OSError as exc:
        raise BirdSyntaxError(str(path), 0, f"cannot read: {exc.strerror or exc}") from None
    return parse(tokenize(text, str(path)), str(path))


_ON = {"on": True, "yes": True, "off": False, "no": False}

#: Top-level statements that need nothing in roost: functions and filters are read where
#: they are used; kernel, device and direct protocols are what roost does by itself.
_IGNORED_TOP = {"function", "log", "debug", "timeformat", "mrtdump", "attribute", "define",
                "table", "ipv4", "ipv6"}


class Converter:
    """Walks the statements of a Calico BIRD file and builds `Imported`."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.warnings: list[str] = []
        self.templates: dict[str, dict[str, Any]] = {}
        self.filters: dict[str, Stmt] = {}
        self.functions: dict[str, Stmt] = {}
        self.router_id: ipaddress.IPv4Address | None = None
        self.listen: list[IPAddress] = []
        self.port: int | None = None
        self.prefixes: list[IPNetwork] = []
        self.peers: list[ImportedPeer] = []
        self.kernel_filter: str | None = None
        self.kernel_table: int | None = None
        self.kernel_metric: int | None = None
        self.cluster_ids: dict[str, str] = {}  # cluster id -> where first seen
        self.local_asns: list[tuple[int, str]] = []  # `local as`, in file order
        self.gr_wait: int | None = None  # `graceful restart wait` (`roost run -R`)
        self._warned_filters = False

    def warn(self, where: str, message: str) -> None:
        self.warnings.append(f"{where}: warning: {message}")

    # ---------------------------------------------------------------- entry

    def convert(self) -> Imported:
        stmts = self._expand(load(self.path), self.path.parent, depth=0)
        for s in stmts:  # functions and filters first: protocols refer to them
            t = s.texts
            if t and t[0] == "function" and len(t) > 1:
                self.functions[t[1]] = s
            elif t and t[0] == "filter" and len(t) > 1 and s.block is not None:
                self.filters[t[1]] = s
        for s in stmts:
            self._top(s)
        return self._finish()

    def _expand(self, stmts: list[Stmt], base: Path, depth: int) -> list[Stmt]:
        """Splice `include "file";` in (relative to the including file's directory)."""
        out: list[Stmt] = []
        for s in stmts:
            if s.texts[:1] == ["include"] and s.block is None:
                if len(s.words) != 2 or s.words[1].kind != "string":
                    raise BirdSyntaxError(s.file, s.line, 'include needs one "file name"')
                target = base / s.words[1].text
                if depth > 8:
                    raise BirdSyntaxError(s.file, s.line, "include nested too deep")
                if target.is_file():
                    out.extend(self._expand(load(target), target.parent, depth + 1))
                else:
                    self.warn(s.where, f'include "{s.words[1].text}": {target} not found; '
                              f"its statements (Calico: the host's blocks, IP pools) are not "
                              f"converted")
                continue
            out.append(s)
        return out

    # ---------------------------------------------------------------- top level

    def _top(self, s: Stmt) -> None:
        t = s.texts
        head = t[0] if t else ""
        if head == "router" and t[1:2] == ["id"] and len(t) == 3:
            self.router_id = self._ipv4(s, t[2], "router id")
        elif head == "listen" and t[1:2] == ["bgp"]:
            self._listen(s)
        elif head == "template" and len(t) >= 3 and t[1] == "bgp":
            self.templates[t[2]] = self._bgp_options(s, {}, template=True)
        elif head == "protocol" and len(t) >= 2 and t[1] == "bgp":
            self._bgp_protocol(s)
        elif head in ("protocol", "template") and len(t) >= 2 and t[1] == "static":
            self._static(s)
        elif head in ("protocol", "template") and len(t) >= 2 and t[1] == "kernel":
            self._kernel(s)
        elif head in ("protocol", "template") and len(t) >= 2 and t[1] in ("device",
                                                                          "direct"):
            pass  # roost reads interfaces and addresses itself
        elif head in ("function", "filter") or head in _IGNORED_TOP:
            pass
        elif head == "graceful" and t[1:3] == ["restart", "wait"] and len(t) == 4:
            self.gr_wait = self._int(s, t[3], "graceful restart wait", 1, 3600)
        else:
            self.warn(s.where, f"`{s.source()}` is not understood; left out")

    def _listen(self, s: Stmt) -> None:
        t = s.texts[2:]
        while t:
            if t[0] == "address" and len(t) > 1:
                self.listen.append(self._ip(s, t[1], "listen address"))
                t = t[2:]
            elif t[0] == "port" and len(t) > 1:
                self.port = self._int(s, t[1], "listen port", 1, 65535)
                t = t[2:]
            else:
                self.warn(s.where, f"listen bgp: `{t[0]}` is not converted")
                t = t[1:]

    def _static(self, s: Stmt) -> None:
        for r in s.block or ():
            t = r.texts
            if t[:1] == ["route"] and len(t) >= 3:
                net = self._net(r, t[1], "static route")
                if t[2] == "blackhole" and len(t) == 3:
                    if net not in self.prefixes:
                        self.prefixes.append(net)
                else:
                    self.warn(r.where, f"static route `{r.source()}` is not converted (roost "
                              f"originates blackholed blocks only; add the route to the "
                              f"kernel by other means)")
            elif t[:1] in (["debug"], ["description"]) or t[:2] == ["check", "link"]:
                pass
            else:
                self.warn(r.where, f"static: `{r.source()}` is not converted")

    def _kernel(self, s: Stmt) -> None:
        for r in s.block or ():
            t = r.texts
            if t[:2] == ["export", "filter"] and len(t) == 3 and r.block is None:
                self.kernel_filter = t[2]
            elif t[:2] == ["kernel", "table"] and len(t) == 3:
                self.kernel_table = self._int(r, t[2], "kernel table", 1, 2**32 - 1)
            elif t[:1] == ["metric"] and len(t) == 2:
                self.kernel_metric = self._int(r, t[1], "metric", 0, 2**32 - 1)
            elif t[:1] in (["learn"], ["persist"], ["import"], ["debug"], ["description"]) \
                    or t[:2] in (["scan", "time"], ["graceful", "restart"],
                                 ["merge", "paths"], ["device", "routes"]):
                pass  # roost keeps its routes on exit and installs ECMP routes
            elif t[:1] == ["export"]:
                self.warn(r.where, f"kernel: `{r.source()}` is not converted (roost installs "
                          f"every learned route)")
            else:
                self.warn(r.where, f"kernel: `{r.source()}` is not converted")

    # ---------------------------------------------------------------- BGP

    def _bgp_protocol(self, s: Stmt) -> None:
        t = s.texts
        name = t[2] if len(t) > 2 and t[2] != "from" else f"bgp{len(self.peers) + 1}"
        base: dict[str, Any] = {}
        if "from" in t:
            tpl = t[t.index("from") + 1] if t.index("from") + 1 < len(t) else ""
            if tpl not in self.templates:
                raise BirdSyntaxError(s.file, s.line, f"template {tpl!r} is not defined "
                                      f"before protocol {name}")
            base = dict(self.templates[tpl])
        opts = self._bgp_options(s, base, template=False)
        if "address" not in opts or "asn" not in opts:
            raise BirdSyntaxError(s.file, s.line, f"protocol bgp {name}: no `neighbor ADDRESS "
                                  f"as ASN`")
        opts.pop("description", None)
        self.peers.append(ImportedPeer(name=name, where=s.where, **opts))

    def _bgp_options(self, s: Stmt, base: dict[str, Any], *, template: bool) -> dict[str, Any]:
        o = base
        for r in s.block or ():
            t = r.texts
            n = len(t)
            if t[:1] == ["neighbor"] and n >= 2:
                o["address"] = self._ip(r, t[1], "neighbor")
                rest = t[2:]
                if rest[:1] == ["port"] and len(rest) >= 2:
                    o["port"] = self._int(r, rest[1], "port", 1, 65535)
                    rest = rest[2:]
                if rest[:1] == ["as"] and len(rest) == 2:
                    o["asn"] = self._int(r, rest[1], "neighbor as", 1, 2**32 - 1)
                elif rest:
                    raise BirdSyntaxError(r.file, r.line, f"`{r.source()}`: expected "
                                          f"`neighbor ADDRESS [port P] as ASN`")
            elif t[:2] == ["local", "as"] and n == 3:
                self.local_asns.append((self._int(r, t[2], "local as", 1, 2**32 - 1),
                                        r.where))
            elif t[:2] == ["source", "address"] and n == 3:
                o["local_address"] = self._ip(r, t[2], "source address")
            elif t[:1] == ["passive"] and n <= 2:
                o["passive"] = self._on(r, t[1] if n == 2 else "on")
            elif t[:1] == ["password"] and n == 2:
                o["password"] = t[1]
            elif t[:2] == ["ttl", "security"] and n == 3:
                o["_ttl_security"] = self._on(r, t[2])
            elif t[:1] == ["multihop"] and n <= 2:
                o["multihop"] = self._int(r, t[1], "multihop", 1, 255) if n == 2 else True
            elif t[:2] == ["rr", "client"] and n == 2:
                o["rr_client"] = True
            elif t[:3] == ["rr", "cluster", "id"] and n == 4:
                self.cluster_ids.setdefault(t[3], r.where)
            elif t[:3] == ["graceful", "restart", "time"] and n == 4:
                o["restart_time"] = self._int(r, t[3], "graceful restart time", 1, 4095)
            elif t[:2] == ["graceful", "restart"] and n <= 3:
                o["graceful_restart"] = t[2] != "off" and t[2] != "no" if n == 3 else True
            elif t[:2] == ["next", "hop"] and n == 3 and t[2] in ("keep", "self"):
                o["next_hop"] = t[2]
            elif t[:3] == ["allow", "local", "as"] and n <= 4:
                o["allow_local_as"] = self._int(r, t[3], "allow local as", 0, 10) if n == 4 \
                    else 1
            elif t[:2] == ["hold", "time"] and n == 3:
                o["hold_time"] = self._int(r, t[2], "hold time", 0, 65535)
            elif t[:2] == ["keepalive", "time"] and n == 3:
                o["keepalive_time"] = self._int(r, t[2], "keepalive time", 1, 21845)
            elif t[:2] == ["add", "paths"] and n <= 3:
                mode = t[2] if n == 3 else "on"
                modes = {"on": "both", "yes": "both", "rx": "receive", "tx": "send",
                         "off": "off", "no": "off"}
                if mode not in modes:
                    raise BirdSyntaxError(r.file, r.line, f"add paths {mode}: expected "
                                          f"on, off, rx or tx")
                o["add_paths"] = modes[mode]
            elif t[:3] == ["connect", "retry", "time"] and n == 4:
                o["connect_retry_time"] = float(self._int(r, t[3], "connect retry time",
                                                          1, 65535))
            elif t[:3] == ["connect", "delay", "time"] or t[:3] == ["error", "wait", "time"]:
                self.warn(r.where, f"`{r.source()}`: roost connects at once and retries every "
                          f"connect_retry_time; not converted")
            elif t[:2] == ["gateway", "recursive"] or t[:1] == ["debug"]:
                pass  # roost resolves next hops like `gateway recursive`
            elif t[:1] == ["description"]:
                o["description"] = t[1] if n > 1 else ""
            elif t[:1] in (["import"], ["export"]):
                self._bgp_filter(r)
            else:
                self.warn(r.where, f"`{r.source()}` is not converted")
        if not template:
            ttl = o.pop("_ttl_security", None)
            if ttl:
                hops = o.pop("multihop", None)
                o["ttl_security"] = hops if isinstance(hops, int) and hops is not True else 1
        return o

    def _bgp_filter(self, r: Stmt) -> None:
        t = r.texts
        if t in (["import", "all"], ["export", "all"]):
            return
        if t[1:2] == ["filter"] and r.block is not None:
            calls = {tok.text for tok in r.walk() if tok.kind == "word"}
            if t[0] == "export" and "calico_export_to_bgp_peers" in calls:
                if "bgp_local_pref" in calls and not self._warned_filters:
                    self._priority_warning(r)
                return
            if t[0] == "import" and "bgp_local_pref" in calls and "preference" in calls:
                if not self._warned_filters:
                    self._priority_warning(r)
                return
        self.warn(r.where, f"`{r.source()}` is not converted: roost accepts every route "
                  f"from iBGP peers and sends them the routes it has (use [policy.NAME])")

    def _priority_warning(self, r: Stmt) -> None:
        self._warned_filters = True
        self.warn(r.where, "Calico's route priority filters (LOCAL_PREF = 2147483647 - "
                  "krt_metric, preference 200) are not converted: roost sends its routes with "
                  "the default LOCAL_PREF and installs them with [kernel] metric")

    # ---------------------------------------------------------------- filters

    def _pools(self) -> tuple[list[Pool], str | None]:
        """The `if (net ~ CIDR) then {...}` branches of the kernel export filter."""
        pools: list[Pool] = []
        device: str | None = None
        name = self.kernel_filter
        if name is None:
            return pools, device
        f = self.filters.get(name)
        if f is None:
            self.warn(str(self.path), f"filter {name} (kernel export) is not defined; no "
                      f"IP pools converted")
            return pools, device
        for s in f.block or ():
            net = _net_test(s)
            strings = [tok.text for tok in s.walk() if tok.kind == "string"]
            words = [tok.text for tok in s.walk() if tok.kind == "word"]
            if net is None:
                if s.texts in (["accept"], ["reject"]) or "krt_metric" in words:
                    continue  # the final accept; Calico's priority (krt_metric) block
                self.warn(s.where, f"filter {name}: `{s.source()}` is not converted")
                continue
            cidr = self._net(s, net, "pool")
            tunnels = [x for x in strings if x]
            if tunnels:
                device = tunnels[0]
            if "krt_tunnel" in words and "" in strings and tunnels:
                subnet = next((words[i + 1] for i, w in enumerate(words[:-1])
                               if w == "bgp_next_hop" and words[i + 1] != "bgp_next_hop"
                               and "/" in words[i + 1]), None)
                pools.append(Pool(cidr, "cross-subnet", s.where, subnet))
            elif "krt_tunnel" in words and tunnels:
                pools.append(Pool(cidr, "always", s.where))
            elif "reject" in words and "accept" not in words:
                pools.append(Pool(cidr, "reject", s.where))
                self.warn(s.where, f"pool {cidr}: BIRD leaves its routes to Felix (VXLAN or "
                          f"no-encapsulation cluster routes); roost would install them: "
                          f"check that no peer sends them")
            else:
                pools.append(Pool(cidr, "never", s.where))
        return pools, device

    def _export_pools(self) -> list[IPNetwork]:
        """`if (net ~ CIDR) then { accept; }` in `calico_export_to_bgp_peers`."""
        f = self.functions.get("calico_export_to_bgp_peers")
        out: list[IPNetwork] = []
        for s in (f.block or ()) if f is not None else ():
            net = _net_test(s)
            if net is not None and "accept" in [t.text for t in s.walk()]:
                out.append(self._net(s, net, "pool"))
        return out

    # ---------------------------------------------------------------- result

    def _finish(self) -> Imported:
        if not self.local_asns:
            raise BirdSyntaxError(str(self.path), 0, "no `local as` in any BGP template or "
                                  "protocol: the local AS is unknown")
        (asn, _where), *others = self.local_asns
        for other_asn, where in others:
            if other_asn != asn:
                self.warn(where, f"local as {other_asn}: roost has one AS ({asn}); not "
                          f"converted")
        if self.router_id is None:
            raise BirdSyntaxError(str(self.path), 0, "no `router id`")
        if len(self.cluster_ids) > 1:
            for cid, where in list(self.cluster_ids.items())[1:]:
                self.warn(where, f"rr cluster id {cid}: roost has one cluster id; "
                          f"{next(iter(self.cluster_ids))} is used")
        pools, device = self._pools()
        return Imported(
            asn=asn, router_id=self.router_id, listen=tuple(self.listen), port=self.port,
            prefixes=tuple(self.prefixes), peers=tuple(self.peers), pools=tuple(pools),
            export_pools=tuple(self._export_pools()),
            tunnel_device=device if device not in (None, "tunl0") else None,
            cluster_id=next(iter(self.cluster_ids), None),
            kernel_table=self.kernel_table, kernel_metric=self.kernel_metric,
            graceful_restart_wait=self.gr_wait,
        )

    # ---------------------------------------------------------------- values

    def _ip(self, s: Stmt, text: str, what: str) -> IPAddress:
        try:
            return ipaddress.ip_address(text)
        except ValueError:
            raise BirdSyntaxError(s.file, s.line, f"{what}: {text!r} is not an IP address"
                                  ) from None

    def _ipv4(self, s: Stmt, text: str, what: str) -> ipaddress.IPv4Address:
        addr = self._ip(s, text, what)
        if not isinstance(addr, ipaddress.IPv4Address):
            raise BirdSyntaxError(s.file, s.line, f"{what}: {text!r} is not an IPv4 address")
        return addr

    def _net(self, s: Stmt, text: str, what: str) -> IPNetwork:
        try:
            return ipaddress.ip_network(text)
        except ValueError:
            raise BirdSyntaxError(s.file, s.line, f"{what}: {text!r} is not a network "
                                  f"(CIDR with zero host bits)") from None

    def _int(self, s: Stmt, text: str, what: str, lo: int, hi: int) -> int:
        if not text.isdigit() or not lo <= int(text) <= hi:
            raise BirdSyntaxError(s.file, s.line, f"{what}: {text!r} is not a number "
                                  f"{lo}..{hi}")
        return int(text)

    def _on(self, s: Stmt, text: str) -> bool:
        if text not in _ON:
            raise BirdSyntaxError(s.file, s.line, f"{text!r}: expected on or off")
        return _ON[text]


def _net_test(s: Stmt) -> str | None:
    """CIDR of `if (net ~ CIDR) then ...` (also `net = CIDR`), else None."""
    t = s.texts
    if t[:1] != ["if"]:
        return None
    for i in range(len(t) - 2):
        if t[i] == "net" and t[i + 1] in ("~", "=") and "/" in t[i + 2]:
            return t[i + 2]
    return None


# --------------------------------------------------------------------------- TOML out


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(str(value))  # a TOML basic string (same escapes)


def _table(lines: list[str], header: str, items: dict[str, Any],
           comments: dict[str, str] | None = None) -> None:
    lines.append(header)
    for key, value in items.items():
        if value is None:
            continue
        note = (comments or {}).get(key)
        lines.append(f"{key} = {_toml(value)}" + (f"  # {note}" if note else ""))
    lines.append("")


def _addr_key(a: IPAddress) -> tuple[int, int]:
    return (a.version, int(a))


class Emitter:
    """`Imported` → roost TOML text (keys as in docs/configuration.md)."""

    def __init__(self, m: Imported, source: str, warn: Any) -> None:
        self.m = m
        self.source = source
        self.warn = warn

    def text(self) -> str:
        m = self.m
        lines = [f"# roost configuration converted from {self.source} by `roost import-bird`.",
                 "# Check it with `roost check -c FILE`; see docs/migrating-from-bird.md."]
        if any(p.password for p in m.peers):
            lines += ["# This file holds BGP passwords (TCP MD5 keys): it is a secret; keep it",
                      "# readable by root only (chmod 600), or move each key to a file of its",
                      '# own and write `password_file = "/etc/roost/NAME.key"` instead.']
        lines.append("")
        mesh = [p for p in m.peers if p.mesh]
        static = [p for p in m.peers if not p.mesh]
        sources = {p.local_address for p in m.peers if p.local_address is not None}
        node = next(iter(sources)) if len(sources) == 1 else None
        restart = {p.restart_time for p in m.peers if p.restart_time is not None}
        retry = {p.connect_retry_time for p in m.peers if p.connect_retry_time is not None}
        router: dict[str, Any] = {
            "asn": m.asn, "id": str(m.router_id),
            "listen": [str(a) for a in m.listen] or None,
            "port": m.port,
            # Calico's `source address` is the node IP: our routes' next hop, and how
            # roost recognises itself in [mesh] nodes.
            "next_hop": str(node) if isinstance(node, ipaddress.IPv4Address)
            and node != m.router_id and not m.listen else None,
            "prefixes": [str(p) for p in m.prefixes],
            "connect_retry_time": _num(next(iter(retry))) if len(retry) == 1 else None,
            "graceful_restart": {
                k: v for k, v in (("restart_time", max(restart, default=None)),
                                  ("wait", m.graceful_restart_wait)) if v is not None
            } or None,
        }
        if len(restart) > 1:
            self.warn(self.source, f"graceful restart time differs between peers "
                      f"({', '.join(map(str, sorted(restart)))}); roost has one: "
                      f"{max(restart)}")
        _table(lines, "[router]", router)
        self._kernel(lines)
        if m.cluster_id is not None:
            cid = m.cluster_id
            _table(lines, "[reflector]", {"cluster_id": int(cid) if cid.isdigit() else cid})
        if mesh:
            self._mesh(lines, mesh, node)
        ebgp = [p for p in static if p.asn != m.asn]
        if ebgp:
            self._policies(lines)
            if mesh:
                self.warn(self.source, "routes learned over eBGP reach the [mesh] peers "
                          "unfiltered: BIRD's calico_export_to_bgp_peers sent the mesh only "
                          "the IP pools, and roost's [mesh] has no export policy")
        for p in static:
            self._peer(lines, p, filtered=bool(ebgp))
        return "\n".join(lines).rstrip() + "\n"

    def _kernel(self, lines: list[str]) -> None:
        m = self.m
        kernel = {"tunnel_device": m.tunnel_device, "table": m.kernel_table,
                  "metric": m.kernel_metric}
        pools = [p for p in m.pools if p.tunnel != "reject"]
        if not any(kernel.values()) and not pools:
            return
        # BIRD's filter ends with `accept` without krt_tunnel: routes outside every pool
        # go straight to the next hop, roost's "never".
        _table(lines, "[kernel]", {"tunnel": "never", **kernel})
        for p in pools:
            note = (f"BIRD: bgp_next_hop ~ {p.subnet}: direct, else the tunnel"
                    if p.subnet else None)
            _table(lines, "[[kernel.pool]]", {"cidr": str(p.cidr), "tunnel": p.tunnel},
                   {"tunnel": note} if note else None)

    def _mesh(self, lines: list[str], mesh: list[ImportedPeer],
              node: IPAddress | None) -> None:
        m = self.m
        me = node or m.router_id
        nodes = sorted({me, *(p.address for p in mesh)}, key=_addr_key)
        first = mesh[0]
        common = self._options(first)
        for p in mesh[1:]:
            for key, value in self._options(p).items():
                if common.get(key) != value:
                    self.warn(p.where, f"{p.name}: {key} differs from {first.name}'s; roost "
                              f"applies [mesh] options to every mesh peer: "
                              f"{common.get(key)!r} is used")
        for p in mesh:
            # Calico: `if peerIP > currentNodeIP { passive }`, comparing strings.
            if p.passive != (str(p.address) > str(me)) and p.address.version == me.version:
                self.warn(p.where, f"{p.name}: passive {'on' if p.passive else 'off'} does "
                          f"not follow Calico's direction (the larger address string waits); "
                          f"roost uses Calico's")
        common.pop("passive", None)
        _table(lines, "[mesh]", {
            "nodes": [str(a) for a in nodes],
            "compare": "string",
            "passive_side": "smaller",
            **common,
        }, {"passive_side": "Calico's direction: the smaller address connects"})

    def _options(self, p: ImportedPeer) -> dict[str, Any]:
        """The `[[peer]]` / `[mesh]` session keys of a peer (roost defaults left out)."""
        ibgp = p.asn == self.m.asn
        default_add_paths = "both" if ibgp else "off"
        add_paths = p.add_paths if p.add_paths not in (None, default_add_paths) else None
        out: dict[str, Any] = {
            "asn": p.asn if not ibgp or not p.mesh else None,
            "port": p.port,
            "passive": p.passive or None,
            "password": p.password,
            "ttl_security": p.ttl_security,
            # iBGP sessions already leave with TTL 255 (BIRD `multihop`).
            "multihop": None if p.ttl_security is not None or (ibgp and p.multihop is True)
            else p.multihop,
            "local_address": str(p.local_address) if p.local_address else None,
            "next_hop": p.next_hop if p.next_hop != "auto" else None,
            "hold_time": p.hold_time,
            "keepalive_time": p.keepalive_time,
            "add_paths": {"off": False, "both": True}.get(add_paths, add_paths)
            if add_paths else None,
            "graceful_restart": None if p.graceful_restart else False,
            "allow_local_as": p.allow_local_as or None,
        }
        return {k: v for k, v in out.items() if v is not None}

    def _policies(self, lines: list[str]) -> None:
        """RFC 8212: roost sends nothing to an eBGP peer without policies; Calico's
        filters accept every route in and send the IP pools out."""
        m = self.m
        _table(lines, "[policy.calico-import]", {"default": "accept"})
        nets = [str(n) for n in m.export_pools] or [str(n) for n in m.prefixes]
        _table(lines, "[policy.calico-export]", {"default": "reject"})
        if nets:
            _table(lines, "[[policy.calico-export.term]]", {
                "name": "ip-pools",
                "match": {"prefix": nets},
                "then": {"action": "accept"},
            })

    def _peer(self, lines: list[str], p: ImportedPeer, *, filtered: bool) -> None:
        """`filtered`: eBGP peers bring outside routes, so iBGP peers also get Calico's
        export filter (`calico_export_to_bgp_peers(true)`: the IP pools only)."""
        ibgp = p.asn == self.m.asn
        opts = self._options(p)
        opts["asn"] = p.asn
        _table(lines, "[[peer]]", {
            "address": str(p.address),
            **opts,
            "rr_client": True if p.rr_client else None,
            "import": None if ibgp else "calico-import",
            "export": None if ibgp and not filtered else "calico-export",
            "description": f"from BIRD protocol {p.name}"
            if not re.fullmatch(r"(Node|Global)_[0-9a-fA-F_]+", p.name) else None,
        })


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else value


def convert(path: str | Path) -> Result:
    """Read a Calico BIRD configuration and return roost's TOML plus warnings."""
    conv = Converter(path)
    imported = conv.convert()
    emitter = Emitter(imported, str(path), conv.warn)
    text = emitter.text()
    return Result(text, conv.warnings, imported)


__all__ = ["BirdSyntaxError", "Imported", "ImportedPeer", "Pool", "Result", "Stmt",
           "Token", "convert", "parse", "tokenize"]
