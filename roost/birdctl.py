"""BIRD's control-socket dialect, so that calico-node and `birdc` work against roost.

calico-node decides readiness by talking to `/var/run/calico/bird.ctl` the way `birdc`
does (`node/pkg/health/bird/bird.go`), and its status populators parse `show protocols`,
`show protocols all NAME` and `show route`. This module serves that protocol read-only.

The framing (BIRD `nest/cli.c`, `doc/reply_codes`) — one reply per command line::

    0001 BIRD roost-0.4.0 ready.          greeting, once per connection
    1000-BIRD roost-0.4.0                 CCCC- : a line with code CCCC, more follow
    1011-Router ID is 10.0.0.1            a new code starts with CCCC- again,
     Current server time is ...           the same code continues with a space
    0013 Daemon is up and running         CCCC<space> : the last line of the reply

Codes 0xxx end a reply with success, 1xxx/2xxx are table rows and headers, 8xxx are
run-time errors and 9xxx parse errors. Where BIRD 1.6 (the version Calico ships) and
BIRD 2 differ in a way Calico's parsers notice, the 1.6 form wins: lower-case column
headings in `show protocols` and one line per route in `show route`
(`PREFIX via NH on IFACE [NAME SINCE] * (100) [AS64513i]`).

Names: roost's `Mesh_<ip>` and `Node_<ip>` are already Calico's (dots and colons become
`_`); `Dynamic_<ip>` (a neighbour accepted from a `[reflector] dynamic` range) is shown as
`Node_<ip>`, the name of a node-specific BGPPeer, which is how a BIRD route reflector's
clients appear. roost has no global peers, so `Global_` never occurs. Locally originated
prefixes appear as BIRD shows Calico's block routes: `blackhole [static1 ...] (200)`.

The formatting is pure (daemon view dicts in, `Reply` out); `BirdControlServer` is the
asyncio edge.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import logging
import re
import socket
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Any, Protocol

from roost.control import PrivateSocketServer

log = logging.getLogger(__name__)

#: BIRD's CLI_LINE_SIZE: no reply line is longer, newline included.
MAX_LINE = 512
#: BIRD's CLI_RX_BUF_SIZE: a longer command line is refused.
MAX_COMMAND = 4096
#: Lines written between two yields to the event loop (a large `show route`).
CHUNK_LINES = 2000
#: BIRD's protocol preference for BGP and static routes (`(100)`, `(200)` in routes).
PREF_BGP = 100
PREF_STATIC = 200
#: BIRD's short time format switches from the time of day to the date after 20 hours.
SHORT_TIME_LIMIT = 20 * 3600


class Code(IntEnum):
    """Reply codes, BIRD `doc/reply_codes`."""

    OK = 0
    WELCOME = 1
    UP_AND_RUNNING = 13
    ROUTE_COUNT = 14
    RESTRICTED = 16
    GRACEFUL_RECOVERY = 24
    STATUS_VERSION = 1000
    PROTOCOL_ROW = 1002
    PROTOCOL_DETAIL = 1006
    ROUTE = 1007
    ROUTE_TYPE = 1008
    STATUS_DETAIL = 1011
    ROUTE_ATTRIBUTES = 1012
    PROTOCOL_HEADER = 2002
    NETWORK_NOT_FOUND = 8001
    NO_PROTOCOLS_MATCH = 8003
    ACCESS_DENIED = 8007
    RUNTIME_ERROR = 8008
    COMMAND_TOO_LONG = 9000
    SYNTAX_ERROR = 9001


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply: `lines` (code, text) that more lines follow, then the final line."""

    lines: tuple[tuple[int, str], ...]
    code: int
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.code < 8000


class DaemonView(Protocol):
    """What the BIRD dialect reads from the daemon (`roost.daemon.Daemon`)."""

    def status(self) -> dict[str, Any]: ...

    def show_peers(self) -> list[dict[str, Any]]: ...

    def show_routes(self, prefix: Any) -> list[dict[str, Any]]: ...


# --------------------------------------------------------------------------- framing


def _clean(text: str, room: int) -> str:
    """One line, printable, at most `room` UTF-8 bytes (BIRD truncates at CLI_LINE_SIZE)."""
    text = "".join(c if c.isprintable() or c == "\t" else " " for c in text)
    data = text.encode()
    if len(data) > room:
        text = data[:room].decode(errors="ignore")
    return text


def frame_lines(reply: Reply) -> Iterator[bytes]:
    """The reply's wire lines. BIRD's rule (`cli_printf`): a line whose code differs from
    the previous line's starts with `CCCC-`, the same code continues with a space, and
    the last line is `CCCC text` whatever came before."""
    last: int | None = None
    for code, text in reply.lines:
        if code == last:
            yield b" " + _clean(text, MAX_LINE - 2).encode() + b"\n"
        else:
            yield f"{code:04d}-".encode() + _clean(text, MAX_LINE - 6).encode() + b"\n"
        last = code
    yield f"{reply.code:04d} ".encode() + _clean(reply.text, MAX_LINE - 6).encode() + b"\n"


def frame(reply: Reply) -> bytes:
    return b"".join(frame_lines(reply))


def greeting(version: str) -> bytes:
    return f"{Code.WELCOME:04d} BIRD {_version(version)} ready.\n".encode()


def _version(version: str) -> str:
    return f"roost-{version}"


# --------------------------------------------------------------------------- values


def bird_name(name: str) -> str:
    """The protocol name Calico's parsers expect (`^(Global|Node|Mesh)_<ip with _>$`)."""
    kind, sep, rest = name.partition("_")
    if sep and kind == "Dynamic":
        name = "Node_" + rest
    return re.sub(r"[.:\s]", "_", name) or "_"


def format_time(when: float | None, now: float) -> str:
    """BIRD 2's default `timeformat protocol/route` (`iso short ms`): the local time of
    day with milliseconds, or the date when more than 20 hours ago."""
    if when is None:
        return "-"
    local = time.localtime(when)
    if now - when > SHORT_TIME_LIMIT:
        return time.strftime("%Y-%m-%d", local)
    return time.strftime("%H:%M:%S", local) + f".{int(when * 1000) % 1000:03d}"


def format_datetime(when: float) -> str:
    """BIRD 2's `timeformat base` (`iso long ms`)."""
    return (time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(when))
            + f".{int(when * 1000) % 1000:03d}")


_BIRD_STATE = {"Established": "up"}


def protocol_state(peer: dict[str, Any]) -> str:
    """BIRD's protocol state column: `up` when Established; a BGP protocol that is
    enabled but not Established is `start` (roost never disables a neighbour)."""
    return _BIRD_STATE.get(str(peer.get("state")), "start")


def bgp_state(peer: dict[str, Any]) -> str:
    """BIRD's BGP state (`bgp_state_dsc`): the RFC 4271 §8.2.2 state name, or `Passive`
    for a passive neighbour waiting for the peer to connect."""
    state = str(peer.get("state") or "Idle")
    if peer.get("passive") and state in ("Idle", "Active"):
        return "Passive"
    return state


def _last_error(peer: dict[str, Any]) -> str:
    if peer.get("state") == "Established":
        return ""
    info = str(peer.get("info") or "")
    if info and not info.startswith("passive"):
        return info
    return str(peer.get("last_down") or "")


def protocol_info(peer: dict[str, Any]) -> str:
    """The info column: the BGP state padded to 14 then the last error, as BIRD does."""
    return f"{bgp_state(peer):<14}{_last_error(peer)}"


def _row(name: str, proto: str, table: str, state: str, since: str, info: str) -> str:
    return f"{name:<10} {proto:<10} {table:<10} {state:<6} {since:<12}  {info}"


#: BIRD 1.6 prints the headings in lower case; Calico's older populators compare them
#: case-sensitively with ["name", "proto", ...], the newer ones lower-case first.
HEADER = _row("name", "proto", "table", "state", "since", "info")


# --------------------------------------------------------------------------- show status


def show_status(status: dict[str, Any], now: float, hostname: str) -> Reply:
    """`show status`; `0024` while the daemon recovers after a restart (Calico reports
    "graceful restart in progress" and stays not ready)."""
    started = float(status.get("started") or now)
    reconfigured = float(status.get("reconfigured") or started)
    lines: list[tuple[int, str]] = [
        (Code.STATUS_VERSION, f"BIRD {_version(str(status.get('version', '')))}"),
        (Code.STATUS_DETAIL, f"Router ID is {status.get('router_id', '0.0.0.0')}"),
        (Code.STATUS_DETAIL, f"Hostname is {hostname}"),
        (Code.STATUS_DETAIL, f"Current server time is {format_datetime(now)}"),
        (Code.STATUS_DETAIL, f"Last reboot on {format_datetime(started)}"),
        (Code.STATUS_DETAIL, f"Last reconfiguration on {format_datetime(reconfigured)}"),
    ]
    if status.get("recovering", False):
        lines.append((Code.GRACEFUL_RECOVERY, "Graceful restart recovery in progress"))
    return Reply(tuple(lines), Code.UP_AND_RUNNING, "Daemon is up and running")


# --------------------------------------------------------------------------- show protocols


@dataclass(frozen=True, slots=True)
class ProtoRow:
    """One row of `show protocols`: a BGP neighbour or one of the pseudo-protocols."""

    name: str
    proto: str
    table: str
    state: str
    since: str
    info: str
    detail: tuple[str, ...]


def protocols(status: dict[str, Any], peers: Iterable[dict[str, Any]],
              now: float) -> list[ProtoRow]:
    """Every protocol: `static1` (our originated prefixes) and `kernel1` (the route sink)
    when they exist, then the BGP neighbours in configuration order."""
    started = float(status.get("started") or now)
    out: list[ProtoRow] = []
    if status.get("prefixes_originated"):
        n = len(status["prefixes_originated"])
        out.append(ProtoRow("static1", "Static", "master4", "up", format_time(started, now),
                             "", (f"  Routes:         {n} imported",)))
    kernel = str(status.get("kernel") or "off")
    if kernel != "off":
        out.append(ProtoRow("kernel1", "Kernel", "master4", "up", format_time(started, now),
                             "", (f"  Kernel:         {kernel}",)))
    for peer in peers:
        since = peer.get("since")
        out.append(ProtoRow(
            bird_name(str(peer.get("name", ""))), "BGP", "---", protocol_state(peer),
            format_time(float(since) if since is not None else started, now),
            protocol_info(peer), _bgp_detail(peer, int(status.get("asn") or 0)),
        ))
    return out


def _bgp_detail(peer: dict[str, Any], local_asn: int) -> tuple[str, ...]:
    """BIRD's `show protocols all` block of a BGP protocol (`bgp_show_proto_info`)."""
    lines = []
    if peer.get("description"):
        lines.append(f"  Description:    {peer['description']}")
    lines += [
        f"  BGP state:          {bgp_state(peer)}",
        f"    Neighbor address: {peer.get('address', '')}",
        f"    Neighbor AS:      {peer.get('asn', '')}",
        f"    Local AS:         {local_asn}",
    ]
    up = peer.get("state") == "Established"
    if up and peer.get("router_id"):
        lines.append(f"    Neighbor ID:      {peer['router_id']}")
    session = "internal" if peer.get("type") == "ibgp" else "external"
    if peer.get("rr_client"):
        session += " route-reflector"
    if peer.get("passive"):
        session += " passive"
    lines.append(f"    Session:          {session} AS4")
    if up and peer.get("hold_time") is not None:
        lines.append(f"    Hold timer:       {peer['hold_time']}")
        if peer.get("keepalive_time") is not None:
            lines.append(f"    Keepalive timer:  {peer['keepalive_time']}")
    error = _last_error(peer) or ("" if up else str(peer.get("last_down") or ""))
    if error:
        lines.append(f"    Last error:       {error}")
    families = peer.get("families") or {}
    for family, counts in sorted(families.items()):
        lines += [
            f"  Channel {_channel(family)}",
            f"    State:          {'UP' if up else 'DOWN'}",
            f"    Routes:         {counts.get('accepted', 0)} imported, "
            f"{counts.get('received', 0) - counts.get('accepted', 0)} filtered, "
            f"{counts.get('advertised', 0)} exported",
        ]
    return tuple(lines)


def _channel(family: str) -> str:
    return {"ipv4-unicast": "ipv4", "ipv6-unicast": "ipv6"}.get(family, family)


def show_protocols(protos: list[ProtoRow], *, detail: bool, name: str | None = None,
                   pattern: str | None = None) -> Reply:
    """`show protocols [all] [NAME | "PATTERN"]`: the header, one row per protocol, and
    with `all` each row's detail block ended by an empty continuation line."""
    if name is not None:
        protos = [p for p in protos if p.name == name]
        if not protos:
            # BIRD: an unknown name is an undefined symbol, a parse error.
            return Reply((), Code.SYNTAX_ERROR, "syntax error, unexpected CF_SYM_UNDEFINED, "
                                                "expecting END or CF_SYM_KNOWN or TEXT")
    if pattern is not None:
        protos = [p for p in protos if fnmatch.fnmatchcase(p.name, pattern)]
        if not protos:
            return Reply((), Code.NO_PROTOCOLS_MATCH, "No protocols match")
    lines: list[tuple[int, str]] = [(Code.PROTOCOL_HEADER, HEADER)]
    for p in protos:
        lines.append((Code.PROTOCOL_ROW, _row(p.name, p.proto, p.table, p.state, p.since,
                                              p.info)))
        if detail:
            lines += [(Code.PROTOCOL_DETAIL, text) for text in p.detail]
            lines.append((Code.PROTOCOL_DETAIL, ""))
    return Reply(tuple(lines), Code.OK)


# --------------------------------------------------------------------------- show route


_ORIGIN = {"igp": "i", "egp": "e", "incomplete": "?"}
_ORIGIN_LONG = {"igp": "IGP", "egp": "EGP", "incomplete": "Incomplete"}


def _as_info(path: dict[str, Any]) -> str:
    """BIRD's `[AS<origin AS><origin>]`: the last AS of the path and the ORIGIN letter
    (RFC 4271 §5.1.1); `[i]` for a path originated inside our AS."""
    numbers = re.findall(r"\d+", str(path.get("as_path") or ""))
    last = f"AS{numbers[-1]}" if numbers else ""
    return f"[{last}{_ORIGIN.get(str(path.get('origin')), '?')}]"


def _iface(route: dict[str, Any], next_hop: str) -> str:
    """The device the kernel route through `next_hop` uses; `-` when that path is not
    the one installed (another candidate, or the kernel sink is off)."""
    kernel = route.get("kernel") or {}
    for nh in kernel.get("nexthops") or ():
        if nh.get("gateway") == next_hop and nh.get("dev"):
            return str(nh["dev"])
    return "-"


def _route_lines(route: dict[str, Any], names: dict[str, tuple[str, str]], now: float,
                 *, detail: bool) -> Iterator[tuple[int, str]]:
    paths = sorted(route.get("paths") or (), key=lambda p: not p.get("best"))
    prefix = str(route.get("prefix", ""))
    for i, path in enumerate(paths):
        since = format_time(path.get("learned_at") or None, now)
        primary = " *" if path.get("best") else ""
        column = prefix if i == 0 else ""
        source = str(path.get("from") or "local")
        if source == "local":
            text = f"{column:<18} blackhole [static1 {since}]{primary} ({PREF_STATIC})"
        else:
            key = source.split()[0]  # "10.0.0.2 id 3" with ADD-PATH
            name, address = names.get(key, (bird_name(key), key))
            nh = path.get("next_hop")
            via = "unreachable" if nh is None else f"via {nh} on {_iface(route, str(nh))}"
            frm = f" from {address}" if nh is not None and address != nh else ""
            text = (f"{column:<18} {via} [{name} {since}{frm}]{primary} ({PREF_BGP}) "
                    f"{_as_info(path)}")
        yield Code.ROUTE, text
        if detail:
            yield from _route_attributes(path, source == "local")


def _route_attributes(path: dict[str, Any], local: bool) -> Iterator[tuple[int, str]]:
    """`show route all`: BIRD's `Type:` line and the BGP attributes (`rta_show`)."""
    if local:
        yield Code.ROUTE_TYPE, "\tType: static univ"
        return
    yield Code.ROUTE_TYPE, "\tType: BGP univ"
    origin = str(path.get("origin"))
    yield Code.ROUTE_ATTRIBUTES, f"\tBGP.origin: {_ORIGIN_LONG.get(origin, origin)}"
    yield Code.ROUTE_ATTRIBUTES, f"\tBGP.as_path: {path.get('as_path') or ''}"
    if path.get("next_hop") is not None:
        yield Code.ROUTE_ATTRIBUTES, f"\tBGP.next_hop: {path['next_hop']}"
    if path.get("med") is not None:
        yield Code.ROUTE_ATTRIBUTES, f"\tBGP.med: {path['med']}"
    if path.get("local_pref") is not None:
        yield Code.ROUTE_ATTRIBUTES, f"\tBGP.local_pref: {path['local_pref']}"
    if path.get("originator_id"):
        yield Code.ROUTE_ATTRIBUTES, f"\tBGP.originator_id: {path['originator_id']}"
    if path.get("cluster_list"):
        yield Code.ROUTE_ATTRIBUTES, f"\tBGP.cluster_list: {' '.join(path['cluster_list'])}"
    if path.get("communities"):
        communities = " ".join(f"({c.replace(':', ',')})" for c in path["communities"])
        yield Code.ROUTE_ATTRIBUTES, f"\tBGP.community: {communities}"
    if path.get("large_communities"):
        large = " ".join(f"({c.replace(':', ', ')})" for c in path["large_communities"])
        yield Code.ROUTE_ATTRIBUTES, f"\tBGP.large_community: {large}"


def _peer_names(peers: Iterable[dict[str, Any]]) -> dict[str, tuple[str, str]]:
    return {str(p.get("address")): (bird_name(str(p.get("name", ""))), str(p.get("address")))
            for p in peers}


def _matches(route: dict[str, Any], target: ipaddress.IPv4Network | ipaddress.IPv6Network,
             ) -> bool:
    """The route's prefix covers all of `target`."""
    try:
        net = ipaddress.ip_network(str(route.get("prefix")), strict=False)
    except ValueError:
        return False
    return target.network_address in net and target.prefixlen >= net.prefixlen


def show_route(routes: list[dict[str, Any]], peers: Iterable[dict[str, Any]], now: float,
               *, detail: bool = False, count: bool = False,
               target: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None) -> Reply:
    """`show route [all] [for PREFIX|ADDRESS] [count]`. `for` selects the longest
    prefix that covers the target, as BIRD does."""
    if target is not None:
        covering = [r for r in routes if _matches(r, target)]
        if not covering:
            return Reply((), Code.NETWORK_NOT_FOUND, "Network not found")
        best = max(covering, key=lambda r: ipaddress.ip_network(str(r["prefix"])).prefixlen)
        routes = [best]
    if count:
        n = sum(len(r.get("paths") or ()) for r in routes)
        return Reply((), Code.ROUTE_COUNT, f"{n} of {n} routes for {len(routes)} networks")
    names = _peer_names(peers)
    lines: list[tuple[int, str]] = []
    for route in routes:
        lines.extend(_route_lines(route, names, now, detail=detail))
    return Reply(tuple(lines), Code.OK)


# --------------------------------------------------------------------------- commands

#: Commands BIRD has that change state: this socket is read-only (like `birdc -r`).
_WRITE_COMMANDS = frozenset({
    "configure", "enable", "disable", "restart", "reload", "down", "debug", "dump", "eval",
    "mrtdump", "graceful", "echo",
})
_TOKEN = re.compile(r'"([^"]*)"|([^\s"]+)')


def _tokens(line: str) -> list[tuple[str, bool]] | None:
    """(word, quoted) pairs; None for an unterminated quote."""
    if line.count('"') % 2:
        return None
    return [(m.group(1), True) if m.group(1) is not None else (m.group(2), False)
            for m in _TOKEN.finditer(line)]


def _syntax(unexpected: str = "CF_SYM_UNDEFINED") -> Reply:
    return Reply((), Code.SYNTAX_ERROR, f"syntax error, unexpected {unexpected}")


def answer(line: str, view: DaemonView, now: float, hostname: str = "") -> Reply:
    """The reply to one command line."""
    tokens = _tokens(line.strip())
    if tokens is None:
        return _syntax("TEXT")
    if not tokens:
        return _syntax("END")
    words = [w.lower() if not quoted else w for w, quoted in tokens]
    head = words[0]
    if head in _WRITE_COMMANDS:
        return Reply((), Code.ACCESS_DENIED, "Access denied")
    if head == "restrict" and len(words) == 1:
        return Reply((), Code.RESTRICTED, "Access restricted")
    if head != "show" or len(words) < 2:
        return _syntax()
    what, args = words[1], tokens[2:]
    if what == "status" and not args:
        return show_status(view.status(), now, hostname or socket.gethostname())
    if what == "protocols":
        return _show_protocols(args, view, now)
    if what == "route":
        return _show_route(args, view, now)
    return _syntax()


def _show_protocols(args: list[tuple[str, bool]], view: DaemonView, now: float) -> Reply:
    detail = bool(args) and not args[0][1] and args[0][0].lower() == "all"
    rest = args[1:] if detail else args
    if len(rest) > 1:
        return _syntax("CF_SYM_UNDEFINED, expecting END")
    protos = protocols(view.status(), view.show_peers(), now)
    if not rest:
        return show_protocols(protos, detail=detail)
    word, quoted = rest[0]
    if quoted:
        return show_protocols(protos, detail=detail, pattern=word)
    return show_protocols(protos, detail=detail, name=word)


def _show_route(args: list[tuple[str, bool]], view: DaemonView, now: float) -> Reply:
    detail = count = False
    target: ipaddress.IPv4Network | ipaddress.IPv6Network | None = None
    i = 0
    while i < len(args):
        word = args[i][0].lower()
        if word == "all":
            detail = True
        elif word == "count":
            count = True
        elif word == "for" and i + 1 < len(args):
            i += 1
            try:
                target = ipaddress.ip_network(args[i][0], strict=False)
            except ValueError:
                return _syntax("TEXT")
        else:
            return _syntax()
        i += 1
    return show_route(view.show_routes(None), view.show_peers(), now, detail=detail,
                      count=count, target=target)


# --------------------------------------------------------------------------- the server


class BirdControlServer(PrivateSocketServer):
    """Serve the BIRD dialect for `view` on a Unix socket at `path`: for its owner (root)
    only, like the JSON control socket (umask 077), in a directory created 0755."""

    def __init__(self, path: str, view: DaemonView) -> None:
        super().__init__(path, limit=MAX_COMMAND,
                         in_use=f"BIRD control socket {path} is in use: is BIRD or another "
                                f"roost running?")
        self.view = view
        self.hostname = socket.gethostname()

    async def start(self) -> None:
        await super().start()
        log.info("BIRD-compatible control socket %s", self.path)

    async def serve_client(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        writer.write(greeting(str(self.view.status().get("version", ""))))
        await writer.drain()
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                writer.write(frame(Reply((), Code.COMMAND_TOO_LONG, "Command too long")))
                await writer.drain()
                return
            if not line:
                return
            await self._write(writer, self._answer(line))

    def _answer(self, line: bytes) -> Reply:
        text = line.decode("utf-8", errors="replace")
        try:
            return answer(text, self.view, time.time(), self.hostname)
        except Exception as exc:  # a formatting bug must not take the daemon down
            log.exception("BIRD control command %r failed", text.strip())
            return Reply((), Code.RUNTIME_ERROR, f"Internal error: {type(exc).__name__}")

    @staticmethod
    async def _write(writer: asyncio.StreamWriter, reply: Reply) -> None:
        batch: list[bytes] = []
        for data in frame_lines(reply):
            batch.append(data)
            if len(batch) >= CHUNK_LINES:
                writer.write(b"".join(batch))
                batch.clear()
                await writer.drain()
                await asyncio.sleep(0)  # let BGP sessions run during a large listing
        writer.write(b"".join(batch))
        await writer.drain()
