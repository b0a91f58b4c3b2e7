"""Conformance harness: one roost and one third-party daemon on a two-host lab.

    h1 roost   10.255.0.1  fd00:255::1    AS ROOST_ASN (eBGP) or PEER_ASN (iBGP)
    h2 daemon  10.255.0.2  fd00:255::2    AS PEER_ASN

Everything here is built on :mod:`tests.harness` (Lab/Host, GoBgp/Bird/Frr/ExaBgp) and
:class:`tests.integration.roost_node.RoostNode`.  Conventions:

* roost is the *active* side towards GoBGP (GoBGP's first connect comes 5-9 s late); the
  other daemons connect too (both active is normal BGP), ExaBGP only connects out.
* BIRD always runs with its waker (its main loop otherwise sits up to 3 s in poll()).
* FRR runs with ``bgpd -n`` (no FIB), roost with ``[kernel] enabled = false``: the suite is
  about the protocol, not the data plane.
* Checks are made on the *other* daemon's view (``Daemon.rib()``, its counters, its logs),
  and on roost's (``show peers|routes`` over the control socket).
"""

from __future__ import annotations

import ipaddress
import json
import struct
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roost import control
from tests.harness.daemons import Bird, Daemon, ExaBgp, Frr, GoBgp, Neighbor, _run
from tests.harness.netns import Host, Lab, wait_for
from tests.integration.roost_node import RoostNode

DAEMONS: tuple[str, ...] = ("gobgp", "bird", "frr", "exabgp")
CLASSES: dict[str, type[Daemon]] = {"gobgp": GoBgp, "bird": Bird, "frr": Frr, "exabgp": ExaBgp}

ROOST_ASN = 65000
PEER_ASN = 65001
ROOST_RID = "10.255.0.1"
PEER_RID = "10.255.0.2"
ROOST4, PEER4 = "10.255.0.1", "10.255.0.2"
ROOST6, PEER6 = "fd00:255::1", "fd00:255::2"


# ------------------------------------------------------------------------------ daemons


def new_daemon(kind: str, host: Host, asn: int, router_id: str,
               neighbors: Sequence[Neighbor], **kw: Any) -> Daemon:
    """The harness class for ``kind`` with the suite's settings (BIRD waker, FRR no FIB)."""
    if kind == "gobgp":
        return GoBgp(host, asn, router_id, neighbors, **kw)
    if kind == "bird":
        kw.setdefault("waker", True)
        return Bird(host, asn, router_id, neighbors, **kw)
    if kind == "frr":
        kw.setdefault("kernel", False)
        return Frr(host, asn, router_id, neighbors, **kw)
    if kind == "exabgp":
        kw.setdefault("route_refresh", True)  # so it can send and answer ROUTE-REFRESH
        return ExaBgp(host, asn, router_id, neighbors, **kw)
    raise ValueError(kind)


def daemon_passive(kind: str) -> bool:
    """Should the daemon wait for roost?  GoBGP yes (slow first connect); ExaBGP cannot."""
    return kind == "gobgp"


# ------------------------------------------------------------------------------ roost


@dataclass
class RoostPeer:
    address: str
    asn: int
    passive: bool = False
    families: tuple[str, ...] = ("ipv4",)
    hold_time: int | None = None
    password: str | None = None
    add_paths: bool | str | None = None
    rr_client: bool = False
    route_reflector: bool = False
    export: str | None = None
    import_: str | None = None
    next_hop: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def toml(self) -> str:
        out = ["[[peer]]", f"address = {json.dumps(self.address)}", f"asn = {self.asn}",
               f"families = {json.dumps(list(self.families))}"]
        if self.passive:
            out.append("passive = true")
        if self.hold_time is not None:
            out.append(f"hold_time = {self.hold_time}")
        if self.password is not None:
            out.append(f"password = {json.dumps(self.password)}")
        if self.add_paths is not None:
            out.append(f"add_paths = {json.dumps(self.add_paths)}")
        if self.rr_client:
            out.append("rr_client = true")
        if self.route_reflector:
            out.append("route_reflector = true")
        if self.export:
            out.append(f"export = {json.dumps(self.export)}")
        if self.import_:
            out.append(f"import = {json.dumps(self.import_)}")
        if self.next_hop:
            out.append(f"next_hop = {json.dumps(self.next_hop)}")
        out += [f"{k} = {json.dumps(v)}" for k, v in self.extra.items()]
        return "\n".join(out) + "\n"


def roost_toml(asn: int, router_id: str, peers: Iterable[RoostPeer], *,
               listen: Sequence[str] = (ROOST4, ROOST6), prefixes: Sequence[str] = (),
               reflector: str | None = None, policies: str = "",
               router_extra: str = "") -> str:
    out = ["[router]", f"asn = {asn}", f"id = {json.dumps(router_id)}",
           f"listen = {json.dumps(list(listen))}", "connect_retry_time = 1",
           "ebgp_requires_policy = false", f"prefixes = {json.dumps(list(prefixes))}"]
    if router_extra:
        out.append(router_extra)
    out += ["", "[kernel]", "enabled = false", ""]
    if reflector:
        out += ["[reflector]", f"cluster_id = {json.dumps(reflector)}", ""]
    out += [p.toml() for p in peers]
    if policies:
        out.append(policies)
    return "\n".join(out) + "\n"


class Roost(RoostNode):
    """RoostNode plus what the conformance scenarios need."""

    def __init__(self, host: Host, config: str) -> None:
        super().__init__(host, config)
        host.lab.on_close(self._close)

    def _close(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            try:
                self.stop(timeout=5)
            except Exception:
                self.host.lab.kill_pids({self.proc.pid}, grace=1)

    def start(self) -> None:
        super().start()
        wait_for(lambda: Path(self.socket).exists() and self.show("status"), 15,
                 what=f"{self.name}: roost control socket", on_timeout=self.log_tail)

    def reconfigure(self, config: str) -> dict[str, Any]:
        """Rewrite the file and reload it (the `reload` control command = SIGHUP)."""
        self.config_path.write_text(config + f'\n[control]\nsocket = "{self.socket}"\n')
        return control.request(self.socket, "reload", timeout=20)  # type: ignore[no-any-return]

    def peer(self, address: str) -> dict[str, Any]:
        for row in self.show("peers"):
            if row["address"] == address:
                return row  # type: ignore[no-any-return]
        raise KeyError(address)

    def peer_state(self, address: str) -> str:
        return str(self.peer(address)["state"])

    def wait_peer(self, address: str, state: str = "Established", timeout: float = 20) -> None:
        wait_for(lambda: self.peer_state(address) == state, timeout,
                 what=f"roost: {address} {state}",
                 on_timeout=lambda: f"{self.peer(address)}\n{self.log_tail()}")

    def routes(self, prefix: str | None = None) -> dict[str, dict[str, Any]]:
        """prefix -> the `show routes` row (all paths)."""
        rows = self.show("routes", prefix) if prefix else self.show("routes")
        return {r["prefix"]: r for r in rows}

    def paths(self, prefix: str) -> list[dict[str, Any]]:
        prefix = str(ipaddress.ip_network(prefix))
        try:
            row = self.routes(prefix).get(prefix)
        except control.ControlError:
            return []
        return [] if row is None else list(row["paths"])

    def wait_paths(self, prefix: str, n: int = 1, timeout: float = 15) -> list[dict[str, Any]]:
        return list(wait_for(lambda: (p if len(p := self.paths(prefix)) >= n else None),
                             timeout, what=f"roost: {n} path(s) for {prefix}",
                             on_timeout=self.log_tail))

    def wait_no_route(self, prefix: str, timeout: float = 15) -> None:
        wait_for(lambda: not self.paths(prefix), timeout, what=f"roost: {prefix} withdrawn",
                 on_timeout=self.log_tail)

    def route_count(self) -> int:
        return int(self.show("status")["routes"])

    def refresh(self, peer: str, direction: str, family: str | None = None
                ) -> dict[str, Any]:
        """`roost refresh PEER --in|--out` over the control socket."""
        args: dict[str, Any] = {"peer": peer, "direction": direction}
        if family:
            args["family"] = family
        return control.request(self.socket, "refresh", **args)  # type: ignore[no-any-return]


# ------------------------------------------------------------------------------ a pair


@dataclass
class Pair:
    """roost on h1 and one daemon on h2, eBGP (or iBGP), IPv4 and IPv6 sessions."""

    kind: str
    lab: Lab
    h_roost: Host
    h_peer: Host
    roost: Roost
    daemon: Daemon
    roost_asn: int
    peer_asn: int

    def diag(self) -> str:
        return f"{self.daemon.log_tail(30)}\n{self.roost.log_tail(30)}"


def start_pair(lab: Lab, kind: str, *, ibgp: bool = False, v6: bool = True,
               addpath: bool = False, roost_extra: dict[str, Any] | None = None,
               daemon_kw: dict[str, Any] | None = None, prefixes: Sequence[str] = (),
               policies: str = "", export: str | None = None) -> Pair:
    h1, h2 = lab.flat(2)
    r_asn = PEER_ASN if ibgp else ROOST_ASN
    fams = [("ipv4", ROOST4, PEER4)] + ([("ipv6", ROOST6, PEER6)] if v6 else [])
    nbrs = [Neighbor(r_addr, r_asn, passive=daemon_passive(kind), families=(fam,),
                     addpath=addpath) for fam, r_addr, _ in fams]
    daemon = new_daemon(kind, h2, PEER_ASN, PEER_RID, nbrs, **(daemon_kw or {}))
    rpeers = [RoostPeer(p_addr, PEER_ASN, families=(fam,), export=export,
                        add_paths=bool(addpath), extra=dict(roost_extra or {}))
              for fam, _, p_addr in fams]
    roost = Roost(h1, roost_toml(r_asn, ROOST_RID, rpeers, prefixes=prefixes,
                                 policies=policies))
    daemon.start()
    roost.start()
    pair = Pair(kind, lab, h1, h2, roost, daemon, r_asn, PEER_ASN)
    for _, r_addr, p_addr in fams:
        roost.wait_peer(p_addr, timeout=30)
        daemon.wait_established(r_addr, timeout=30)
    return pair


# ------------------------------------------------------------------------------ counts


def daemon_update_counts(d: Daemon, peer: str) -> tuple[int, int]:
    """(UPDATE messages sent to ``peer``, received from it) by the daemon's own counters
    (BIRD: route updates exported/imported; ExaBGP: the messages its API reported)."""
    if isinstance(d, GoBgp):
        m = d.neighbor_json(peer).get("state", {}).get("messages", {})
        return (int(m.get("sent", {}).get("update", 0) or 0),
                int(m.get("received", {}).get("update", 0) or 0))
    if isinstance(d, Frr):
        st = d.neighbor_json(peer).get("messageStats", {})
        return int(st.get("updatesSent", 0) or 0), int(st.get("updatesRecv", 0) or 0)
    if isinstance(d, Bird):
        import re

        info = d.protocol_info(peer)
        exp = re.search(r"Export updates:\s+(\d+)", info)
        imp = re.search(r"Import updates:\s+(\d+)", info)
        return (int(exp.group(1)) if exp else 0, int(imp.group(1)) if imp else 0)
    if isinstance(d, ExaBgp):
        sent = recv = 0
        for msg in d.messages("update"):
            nb = msg.get("neighbor", {})
            if nb.get("address", {}).get("peer") != peer:
                continue
            if nb.get("direction") == "send":
                sent += 1
            else:
                recv += 1
        return sent, recv
    raise TypeError(d)


def daemon_prefix_count(d: Daemon, peer: str, family: str = "ipv4") -> int:
    """Prefixes ``d`` accepted from ``peer`` (cheap: counters, no per-route output)."""
    if isinstance(d, GoBgp):
        st = d.neighbor_json(peer).get("afi_safis", [])
        for a in st:
            cfg = a.get("config", {})
            if str(cfg.get("family", "")).endswith(str(1 if family == "ipv4" else 2) + "1") \
                    or family in json.dumps(cfg):
                return int(a.get("state", {}).get("accepted", 0) or 0)
        # fall back: rib summary
        out = d.cli("global", "rib", "-a", family, "summary").stdout
        return int(next((w for w in out.split() if w.isdigit()), "0"))
    if isinstance(d, Bird):
        out = d.protocol_info(peer)
        import re

        m = re.search(r"Routes:\s+(\d+) imported", out)
        return int(m.group(1)) if m else 0
    if isinstance(d, Frr):
        data = d.vtysh_json(f"show bgp {family} unicast summary json")
        return int(data.get("peers", {}).get(peer, {}).get("pfxRcd", 0) or 0)
    if isinstance(d, ExaBgp):
        return sum(1 for _ in d.rib(family))
    raise TypeError(d)


def gobgp_rib_count(d: GoBgp, family: str = "ipv4") -> int:
    out = d.cli("global", "rib", "-a", family, "summary").stdout
    # "Table ipv4-unicast\nDestination: 10000, Path: 10000"
    for tok in out.replace(",", " ").split():
        if tok.isdigit():
            return int(tok)
    return 0


# ------------------------------------------------------------------------------ bulk load


def prefixes(n: int, base: str = "10.128.0.0", plen: int = 32) -> list[str]:
    start = int(ipaddress.IPv4Address(base))
    step = 1 << (32 - plen)
    return [f"{ipaddress.IPv4Address(start + i * step)}/{plen}" for i in range(n)]


def _mrt(prefix_list: Sequence[str], next_hop: str) -> bytes:
    """A minimal MRT TABLE_DUMP_V2 file (RFC 6396) for `gobgp mrt inject global`."""
    ts = int(time.time())

    def rec(sub: int, body: bytes) -> bytes:
        return struct.pack("!IHHI", ts, 13, sub, len(body)) + body

    nh = ipaddress.IPv4Address(next_hop).packed
    attrs = (struct.pack("!BBB", 0x40, 1, 1) + b"\x00" + struct.pack("!BBB", 0x40, 2, 0)
             + struct.pack("!BBB", 0x40, 3, 4) + nh)
    out = [rec(1, nh + struct.pack("!HH", 0, 1) + struct.pack("!B4s4sI", 2, nh, nh, 0))]
    for seq, p in enumerate(prefix_list):
        net = ipaddress.IPv4Network(p)
        pb = net.network_address.packed[: (net.prefixlen + 7) // 8]
        entry = struct.pack("!HIH", 0, ts, len(attrs)) + attrs
        out.append(rec(2, struct.pack("!IB", seq, net.prefixlen) + pb + struct.pack("!H", 1)
                       + entry))
    return b"".join(out)


def _frr_apply(d: Frr, af_lines: Sequence[str], name: str) -> None:
    """Apply many ipv4-unicast lines at once with `vtysh -f FILE`: 10k `network` lines in
    ~0.3 s.  The file is in bgpd.conf syntax (no `configure terminal` / `end`: those make
    vtysh -f exit 2)."""
    f = d.workdir / f"{name}.conf"
    f.write_text(f"router bgp {d.asn}\n address-family ipv4 unicast\n"
                 + "".join(f"  {ln}\n" for ln in af_lines) + " exit-address-family\n")
    _run(["vtysh", "--vty_socket", str(d.rundir), "-f", str(f)], timeout=120)


def bulk_announce(d: Daemon, prefix_list: Sequence[str], workdir: Path) -> None:
    """Originate many IPv4 prefixes from ``d`` quickly (per-daemon bulk path)."""
    if isinstance(d, GoBgp):
        # gobgp 3.10's `mrt inject` may lose the tail of its stream: pad and re-inject.
        base = gobgp_rib_count(d)
        have = 0
        for _ in range(10):
            path = workdir / "bulk.mrt"
            rest = list(prefix_list[have:])
            path.write_bytes(_mrt(rest + rest[:5000], d.router_id))
            d.cli("mrt", "inject", "global", str(path), timeout=120)
            time.sleep(0.3)
            have = gobgp_rib_count(d) - base
            if have >= len(prefix_list):
                return
        raise AssertionError(f"gobgp mrt inject: only {have} of {len(prefix_list)} loaded")
    if isinstance(d, Bird):
        inc = d.workdir / "bulk4.conf"
        inc.write_text("".join(f"  route {p} blackhole;\n" for p in prefix_list))
        if "protocol static bulk4" not in d.extra_config:
            # BIRD's lexer takes `include` only at the start of a line
            d.extra_config += f'\nprotocol static bulk4 {{\n  ipv4;\n  include "{inc}";\n}}\n'
        d.reconfigure()
        return
    if isinstance(d, Frr):
        _frr_apply(d, [f"network {p}" for p in prefix_list], "bulk")
        return
    if isinstance(d, ExaBgp):
        for i in range(0, len(prefix_list), 500):
            d.command("announce attributes next-hop self nlri "
                      + " ".join(prefix_list[i:i + 500]))
        return
    raise TypeError(d)


def bulk_withdraw(d: Daemon, prefix_list: Sequence[str], workdir: Path) -> None:
    if isinstance(d, GoBgp):
        d.cli("global", "rib", "-a", "ipv4", "del", "all", timeout=120)
        return
    if isinstance(d, Bird):
        (d.workdir / "bulk4.conf").write_text("")
        d.reconfigure()
        return
    if isinstance(d, Frr):
        _frr_apply(d, [f"no network {p}" for p in prefix_list], "unbulk")
        return
    if isinstance(d, ExaBgp):
        for i in range(0, len(prefix_list), 500):
            d.command("withdraw attributes next-hop self nlri "
                      + " ".join(prefix_list[i:i + 500]))
        return
    raise TypeError(d)
