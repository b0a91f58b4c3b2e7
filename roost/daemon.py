"""The daemon: configuration in, a running BGP speaker out.

    Config ──▶ Speaker (+ ReflectionRules when [reflector]) ──▶ originate [router] prefixes
           ──▶ one BgpPeer per [[peer]] / [mesh] node, one Listener (+ dynamic ranges)
    BgpPeer events ──▶ Speaker.peer_up / receive_update / peer_down ──▶ Outbound ──▶ send
    Speaker.on_best_change ──▶ TunnelPolicy (eth0 or tunl0, ECMP) ──▶ FibSink (netlink)
    ControlServer ──▶ show status | peers | routes | route-reasons, reload

Only this module and the ones it calls from `bgp.aio`, `kernel` and `roost.control` touch
asyncio; the speaker is pure and gets the wall-clock time passed in (that is what `show`
prints as "since").

Signals: SIGTERM / SIGINT stop (Cease to every peer, kernel routes kept unless
`flush_on_exit`); SIGHUP reloads the file: peers and originated prefixes are added and
removed, a peer whose settings changed is reset, unaffected sessions stay up. Changes to
[router] identity, listen addresses, [kernel] and [control] need a restart (logged).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import ipaddress
import json
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from bgp.aio.peer import BgpPeer, Listener, TransportOptions
from bgp.events import SessionDown
from bgp.policy import (
    ACCEPT,
    AddCommunity,
    AddExtCommunity,
    AddLargeCommunity,
    Match,
    PeerType,
    Policy,
    PrefixMatch,
    PrependOwnAs,
    Reject,
    SetLocalPref,
    SetMed,
    Term,
)
from bgp.policy import Action as PolicyAction
from bgp.rib.decision import Selection
from bgp.rib.path import NextHopMode, PeerInfo
from bgp.session import SessionConfig
from bgp.speaker import Outbound, PeerConfigForSpeaker, Speaker, SpeakerConfig
from bgp.types import AddPathMode, CeaseSubcode, Family
from bgp.wire.attributes import LargeCommunity
from bgp.wire.capabilities import AddPathFamily
from bgp.wire.model import Negotiated, Update
from bgp.wire.prefix import Prefix
from kernel import (
    DryRunSink,
    FibSink,
    KernelRoute,
    KernelRouteError,
    NetlinkSink,
    NextHop,
    TunnelMode,
    TunnelPolicy,
    blackhole,
)
from reflector.rules import ReflectionRules
from roost import __version__
from roost import config as cfg
from roost.control import CommandError, ControlServer
from roost.graceful import GracefulRestartHelper, RestartWindow

log = logging.getLogger("roost")

#: How long after start-up routes that an earlier run left in the kernel may wait for a
#: peer to announce them again before they are removed (BIRD: `graceful restart wait`).
PRUNE_AFTER = 30.0


class StartupError(Exception):
    """The daemon could not start (address in use, no permission, ...): one line."""


# --------------------------------------------------------------------------- policies


def compile_policy(p: cfg.PolicyConfig) -> Policy:
    """`[policy.NAME]` → `bgp.policy.Policy` (compiled once, shared by identity)."""
    terms = []
    for t in p.terms:
        m = t.match
        lo_hi = m.prefix_length
        prefixes: list[PrefixMatch] = []
        for net in m.prefix:
            pfx = Prefix.from_network(net)
            lo, hi = lo_hi if lo_hi is not None else (pfx.length, pfx.bits)
            prefixes.append(PrefixMatch(pfx, max(lo, pfx.length), min(hi, pfx.bits)))
        prefixes.extend(PrefixMatch(Prefix.from_network(net)) for net in m.prefix_exact)
        if lo_hi is not None and not m.prefix:
            for any_net in ("0.0.0.0/0", "::/0"):
                pfx = Prefix.parse(any_net)
                prefixes.append(PrefixMatch(pfx, lo_hi[0], min(lo_hi[1], pfx.bits)))
        match = Match(
            prefixes=tuple(prefixes),
            negate_prefixes=m.negate,
            peer_type=PeerType(m.peer_type) if m.peer_type else None,
            community=_community(m.community) if m.community else None,
            large_community=LargeCommunity(*m.large_community) if m.large_community else None,
            as_path_prefix=m.as_path_prefix,
        )
        then = t.then
        actions: list[PolicyAction] = []
        if then.local_pref is not None:
            actions.append(SetLocalPref(then.local_pref))
        if then.med is not None:
            actions.append(SetMed(then.med))
        actions.extend(AddCommunity(_community(c)) for c in then.add_community)
        actions.extend(AddLargeCommunity(LargeCommunity(*c)) for c in then.add_large_community)
        actions.extend(AddExtCommunity(c) for c in then.add_ext_community)
        if then.prepend:
            actions.append(PrependOwnAs(then.prepend))
        if then.action == "accept":
            actions.append(ACCEPT)
        elif then.action == "reject":
            actions.append(Reject(f"policy {p.name}: {t.name}"))
        terms.append(Term(match, tuple(actions), t.name))
    default = ACCEPT if p.default == "accept" else Reject(f"policy {p.name}: default reject")
    return Policy(tuple(terms), default, p.name)


def _community(value: tuple[int, int]) -> int:
    return (value[0] << 16) | value[1]


# --------------------------------------------------------------------------- host facts


def _ip_json(*args: str) -> list[dict[str, Any]]:
    try:
        out = subprocess.run(["ip", "-j", *args], capture_output=True, text=True, timeout=5,
                             check=True).stdout
        data = json.loads(out or "[]")
    except (OSError, subprocess.SubprocessError, json.JSONDecodeError) as exc:
        log.warning("cannot read `ip %s`: %s", " ".join(args), exc)
        return []
    return data if isinstance(data, list) else []


def local_interfaces() -> dict[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]]:
    """This host's addresses per interface (`ip -j addr`), for the tunnel policy."""
    out: dict[str, list[ipaddress.IPv4Interface | ipaddress.IPv6Interface]] = {}
    for link in _ip_json("addr", "show"):
        name = link.get("ifname")
        if not isinstance(name, str) or name == "lo":
            continue
        for a in link.get("addr_info", []):
            try:
                iface = ipaddress.ip_interface(f"{a['local']}/{a['prefixlen']}")
            except (KeyError, ValueError):
                continue
            if iface.network.prefixlen < iface.max_prefixlen:  # /32s make no subnet
                out.setdefault(name, []).append(iface)
    return out


def kernel_routes() -> dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str | NextHop]:
    """Non-BGP routes of the main table (`gateway recursive` for next hops elsewhere)."""
    out: dict[ipaddress.IPv4Network | ipaddress.IPv6Network, str | NextHop] = {}
    for fam in ("-4", "-6"):
        for r in _ip_json(fam, "route", "show", "table", "main"):
            if r.get("protocol") == "bird" or r.get("type", "unicast") != "unicast":
                continue
            dst = r.get("dst", "")
            try:
                net = ipaddress.ip_network(
                    ("0.0.0.0/0" if fam == "-4" else "::/0") if dst == "default" else dst,
                    strict=False,
                )
            except ValueError:
                continue
            dev = r.get("dev")
            gw = r.get("gateway")
            if gw:
                out[net] = NextHop(ipaddress.ip_address(gw), dev, onlink=False)
            elif isinstance(dev, str):
                out[net] = dev
    return out


def first_global_ipv6() -> ipaddress.IPv6Address | None:
    """The first global IPv6 address of this host (/proc/net/if_inet6), if any."""
    try:
        with open("/proc/net/if_inet6") as f:
            for line in f:
                fields = line.split()
                if len(fields) >= 6 and fields[3] == "00" and fields[5] != "lo":
                    addr = ipaddress.IPv6Address(int(fields[0], 16))
                    if addr.is_global or addr.is_private:
                        return addr
    except OSError:
        pass
    return None


# --------------------------------------------------------------------------- the daemon


@dataclass
class _PeerState:
    config: cfg.PeerConfig
    peer: BgpPeer
    since: float | None = None  # wall clock of the last state change (up or down)
    # The session's negotiated families and those the peer has sent End-of-RIB for
    # (RFC 4724 §2) since it came up: the startup prune waits for all of them.
    families: frozenset[Family] = frozenset()
    eor_families: set[Family] = field(default_factory=set)
    # Wall clock when the last UPDATE with routes (not End-of-RIB) had been fully
    # processed: `show peers` reports it so that benchmarks time convergence exactly.
    last_update: float | None = None

    @property
    def eor(self) -> bool:
        """The peer sent End-of-RIB for every negotiated family."""
        return bool(self.families) and self.families <= self.eor_families


class Daemon:
    """One running roost. `await run()` until `stop()` (or a signal)."""

    def __init__(
        self,
        config: cfg.Config,
        *,
        flush_on_exit: bool = False,
        sink: FibSink | None = None,
        install_signals: bool = True,
    ) -> None:
        self.config = config
        self.flush_on_exit = flush_on_exit
        self.install_signals = install_signals
        self.started_at = time.time()
        self.peers: dict[str, _PeerState] = {}
        self._policies = {name: compile_policy(p) for name, p in config.policies.items()}
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reloading = asyncio.Lock()
        self._flush_task: asyncio.Task[None] | None = None
        self.speaker = Speaker(self._speaker_config(config), rules=self._rules(config),
                               on_best_change=self._on_best_change)
        # Graceful restart (roost/graceful.py): helper timers, our restart window, and
        # whether `graceful-restart` asked us to stop without NOTIFICATIONs.
        self.graceful = GracefulRestartHelper(
            self.speaker, self.dispatch,
            stale_time=config.router.graceful_restart.stale_time)
        self.restart_window: RestartWindow | None = None
        self._graceful_stop = False
        self.sink = sink if sink is not None else self._make_sink(config)
        self.tunnel = self._tunnel_policy(config) if self.sink is not None else None
        self.listener = Listener(
            [str(a) for a in config.router.listen] or None,
            config.router.port,
            factory=self._dynamic_peer if config.reflector and config.reflector.dynamic
            else None,
        )
        self.control = ControlServer(config.control.socket, self._command)

    # ---------------------------------------------------------------- construction

    @staticmethod
    def _speaker_config(config: cfg.Config) -> SpeakerConfig:
        r = config.router
        v6 = r.next_hop6
        if v6 is None:
            v6 = next((a for a in r.listen if isinstance(a, ipaddress.IPv6Address)), None)
        if v6 is None and (
            any(p.version == 6 for p in r.prefixes)
            or any(f.afi == 2 for p in config.peers for f in p.families)
        ):
            v6 = first_global_ipv6()
        return SpeakerConfig(
            local_asn=r.asn,
            router_id=r.router_id,
            ipv4_address=r.next_hop_v4,
            ipv6_address=v6,
            rfc8212=r.ebgp_requires_policy,
        )

    @staticmethod
    def _rules(config: cfg.Config) -> ReflectionRules | None:
        rr = config.reflector
        if rr is None:
            return None  # the speaker's StandardRules: plain iBGP full mesh
        return ReflectionRules(config.router.router_id, rr.cluster_id,
                               client_to_client=rr.client_to_client)

    @staticmethod
    def _make_sink(config: cfg.Config) -> FibSink | None:
        k = config.kernel
        if not k.enabled:
            return None
        if k.dry_run:
            return DryRunSink(sys.stdout, metric=k.metric, table=k.table)
        return NetlinkSink(table=k.table, metric=k.metric, tunnel_device=k.tunnel_device,
                           prune_on_start=False, on_error=_log_kernel_error)

    @staticmethod
    def _tunnel_policy(config: cfg.Config) -> TunnelPolicy:
        k = config.kernel
        return TunnelPolicy(
            interfaces=local_interfaces(),
            modes={p.cidr: TunnelMode(p.tunnel) for p in k.pools},
            default=TunnelMode(k.tunnel),
            kernel_routes=kernel_routes(),
            tunnel_device=k.tunnel_device,
        )

    def _new_peer(self, p: cfg.PeerConfig) -> _PeerState:
        r = self.config.router
        key = str(p.address)
        modes = {"off": 0, "receive": AddPathMode.RECEIVE, "send": AddPathMode.SEND,
                 "both": AddPathMode.BOTH}
        mode = modes[p.add_paths]
        gr = gr_window = None
        window_until = 0.0
        if r.graceful_restart.enabled and p.graceful_restart:
            window = self.restart_window
            if window is None:  # not started (tests): the steady-state capability
                window = RestartWindow(warm=False, restart_time=r.graceful_restart.restart_time,
                                       until=0.0, notification=r.graceful_restart.notification)
            gr_window, gr = window.capabilities(p.families)
            window_until = window.until
        session = SessionConfig(
            local_asn=r.asn,
            router_id=r.router_id,
            peer_asn=p.asn,
            peer_address=key,
            hold_time=p.hold_time,
            keepalive_time=p.keepalive_time,
            connect_retry_time=p.connect_retry_time,
            passive=p.passive,
            families=p.families,
            addpath=tuple(AddPathFamily(f, mode) for f in p.families) if mode else (),
            graceful_restart=gr,
            restart_window_gr=gr_window,
            restart_window_until=window_until,
        )
        local = p.local_address
        if local is None:
            # Calico's `source address` = the node IP: with one listen address of the
            # family, connect from it so that the peer sees the address it expects.
            same = [a for a in r.listen if a.version == p.address.version]
            local = same[0] if len(same) == 1 else None
        transport = TransportOptions(
            remote_address=key,
            remote_port=p.port,
            local_address=None if local is None else str(local),
            password=p.password,
            ttl_security_hops=p.ttl_security,
            multihop_ttl=p.multihop,
            connect_timeout=min(5.0, max(1.0, p.connect_retry_time)),
        )
        state = _PeerState(p, BgpPeer(session, transport, _Handler(self, key), name=p.name))
        next_hop = {"auto": NextHopMode.DEFAULT, "self": NextHopMode.SELF,
                    "keep": NextHopMode.KEEP}[p.next_hop]
        info = PeerInfo(key=key, address=p.address, asn=p.asn, local_asn=r.asn,
                        rr_client=p.rr_client, next_hop=next_hop,
                        allow_local_as=p.allow_local_as)
        self.speaker.add_peer(PeerConfigForSpeaker(
            info,
            import_policy=self._policies.get(p.import_policy or ""),
            export_policy=self._policies.get(p.export_policy or ""),
            addpath_send=p.add_paths in ("send", "both"),
            addpath_receive=p.add_paths in ("receive", "both"),
            local_address=p.local_address,
        ))
        self.peers[key] = state
        self.listener.add_peer(state.peer)
        return state

    def _dynamic_peer(self, address: ipaddress.IPv4Address | ipaddress.IPv6Address,
                      port: int) -> BgpPeer | None:
        rr = self.config.reflector
        if rr is None or self._stopping.is_set():
            return None
        for rng in rr.dynamic:
            if address in rng.range:
                log.info("%s: dynamic neighbour from range %s", address, rng.range)
                return self._new_peer(rng.peer_for(address)).peer
        return None

    # ---------------------------------------------------------------- life cycle

    async def run(self) -> int:
        await self.start()
        try:
            await self._stopping.wait()
        finally:
            await self.shutdown()
        return 0

    def stop(self) -> None:
        self._stopping.set()

    async def start(self) -> None:
        c = self.config
        log.info("roost %s starting: AS%d, router id %s, %d peer(s), %d prefix(es), "
                 "config %s", __version__, c.router.asn, c.router.router_id, len(c.peers),
                 len(c.router.prefixes), c.path)
        try:
            if self.sink is not None:
                await self.sink.start()
            self._open_restart_window()
            for prefix in c.router.prefixes:
                self._originate(prefix)
            for p in c.peers:
                self._new_peer(p)
            if c.reflector is not None:
                for rng in c.reflector.dynamic:
                    if rng.template.password is not None:
                        self.listener.set_range_password(rng.range, rng.template.password)
            await self.listener.start()
            await self.control.start()
        except (OSError, KernelRouteError) as exc:
            await self.shutdown()
            raise StartupError(_describe_os_error(exc, c)) from None
        for state in self.peers.values():
            await state.peer.start()
        if self.install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_stop_signal, sig)
            loop.add_signal_handler(signal.SIGHUP, self._spawn, self._reload_on_signal)
        if isinstance(self.sink, NetlinkSink):
            self._spawn(self._prune_later)
        hosts = ", ".join(map(str, c.router.listen)) or "all addresses"
        log.info("listening on %s port %d; control socket %s", hosts, self.listener.port,
                 c.control.socket)

    def _open_restart_window(self) -> None:
        """RFC 4724 §4.1: routes of ours still in the kernel (adopted by the sink) mean
        that our forwarding state survived: restart window with the R and F bits."""
        gr = self.config.router.graceful_restart
        warm = self.sink is not None and len(self.sink.installed()) > 0
        self.restart_window = RestartWindow(
            warm=warm, restart_time=gr.restart_time,
            until=asyncio.get_running_loop().time() + gr.restart_time,
            notification=gr.notification)
        if gr.enabled and warm:
            log.info("graceful restart: %d route(s) of an earlier run kept in the kernel; "
                     "restart window %d s (Restart State and Forwarding State bits)",
                     len(self.sink.installed()) if self.sink is not None else 0,
                     gr.restart_time)

    def graceful_stop(self) -> None:
        """`roost graceful-restart`: stop without a NOTIFICATION on any session, so that
        every graceful restart helper keeps our routes (RFC 4724 §4.1; BIRD `graceful
        restart`), and keep the kernel routes for the next run to adopt."""
        log.info("graceful restart: closing every session without NOTIFICATION; kernel "
                 "routes kept")
        self._graceful_stop = True
        self.stop()

    def _on_stop_signal(self, sig: int) -> None:
        log.info("%s: shutting down (Cease to every peer)", signal.Signals(sig).name)
        self.stop()

    async def shutdown(self) -> None:
        # From here on, sessions going down change neither the kernel (routes persist,
        # like BIRD's `persist`, unless flush_on_exit) nor what the other peers are sent.
        self._stopping.set()
        for task in list(self._tasks):
            task.cancel()
        if self.install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                loop.remove_signal_handler(sig)
        self.graceful.close()
        await asyncio.gather(
            *(s.peer.close_without_notification() if self._graceful_stop
              else s.peer.stop(CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
              for s in self.peers.values()),
            return_exceptions=True,
        )
        with contextlib.suppress(Exception):
            await self.listener.close()
        with contextlib.suppress(Exception):
            await self.control.stop()
        if self.sink is not None:
            try:
                await self.sink.close(
                    flush_routes=self.flush_on_exit and not self._graceful_stop)
            except Exception as exc:
                log.error("kernel: closing the route sink failed: %s", exc)
        log.info("stopped%s", "; kernel routes removed" if self.flush_on_exit else "")

    def _spawn(self, coro: Callable[[], Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _prune_later(self) -> None:
        """Remove routes of ours left in the kernel by an earlier run once every peer has
        sent End-of-RIB, or after PRUNE_AFTER seconds (whichever is first)."""
        gr = self.config.router.graceful_restart
        wait = PRUNE_AFTER
        if gr.enabled and self.restart_window is not None and self.restart_window.warm:
            wait = max(wait, float(gr.restart_time))  # RFC 4724 §4.1 restart window
        deadline = time.monotonic() + wait
        static = [s for s in self.peers.values() if s.config.kind != "dynamic"]
        while time.monotonic() < deadline and not all(s.eor for s in static):
            await asyncio.sleep(0.5)
        if isinstance(self.sink, NetlinkSink):
            await self.sink.prune()
            log.info("kernel: stale routes of an earlier run pruned")

    # ---------------------------------------------------------------- routes

    def dispatch(self, out: Outbound) -> None:
        if self._stopping.is_set():
            return  # every session is being closed with a Cease
        for key, messages in out.items():
            state = self.peers.get(key)
            if state is None or not messages:
                continue
            if state.peer.established:
                state.peer.send(messages)

    def _originate(self, net: cfg.IPNetwork) -> None:
        self.dispatch(self.speaker.originate(Prefix.from_network(net), now=time.time()))

    def _on_best_change(self, family: Family, prefix: Prefix, sel: Selection | None) -> None:
        sink, tunnel = self.sink, self.tunnel
        if sink is None or tunnel is None or self._stopping.is_set():
            return
        net = prefix.network()
        # Called from inside the speaker's UPDATE processing: an exception here would
        # abandon the rest of the batch (its other prefixes never advertised), so one
        # bad route is logged and leaves the kernel without a route for that prefix (as
        # when no next hop is usable).
        route: KernelRoute | None = None
        try:
            if sel is not None:
                if sel.best.is_local:
                    route = blackhole(net) if self.config.kernel.blackhole else None
                else:
                    own = self.config.router.addresses
                    gateways = []
                    for path in sel.multipath or (sel.best,):
                        nh = path.attrs.next_hop
                        if nh is None or nh in own or nh in gateways:
                            continue
                        if nh.version != net.version:
                            # RFC 8950 next hop of another family: not installable here.
                            log.warning("kernel: %s: next hop %s is another address "
                                        "family; not installed", prefix, nh)
                            continue
                        gateways.append(nh)
                    if gateways:
                        route = tunnel.route(net, gateways)
        except Exception:
            log.exception("kernel: %s: no kernel route for the new best path", prefix)
            route = None
        sink.update(net, route)
        if self._flush_task is None or self._flush_task.done():
            # One flush per burst of changes (the sinks coalesce per prefix meanwhile).
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_fib())

    async def _flush_fib(self) -> None:
        await asyncio.sleep(0)  # let the rest of this UPDATE's changes arrive first
        if self.sink is not None and not self._stopping.is_set():
            try:
                await self.sink.flush()
            except Exception as exc:
                log.error("kernel: applying route changes failed: %s", exc)

    # ---------------------------------------------------------------- reload

    async def _reload_on_signal(self) -> None:
        log.info("SIGHUP: reloading %s", self.config.path)
        with contextlib.suppress(CommandError):  # already logged
            changes = await self.reload()
            log.info("reload done: %s", json.dumps(changes))

    async def reload(self) -> dict[str, Any]:
        """SIGHUP / `reload`: apply the file again without resetting unaffected sessions."""
        async with self._reloading:
            path = self.config.path
            try:
                new = cfg.load(path)
            except cfg.ConfigError as exc:
                for issue in exc.issues:
                    log.error("reload: %s", issue)
                log.error("reload: %s has errors; keeping the running configuration", path)
                raise CommandError(f"{path} has errors; nothing was applied:\n{exc}") from None
            return await self._apply(new)

    async def _apply(self, new: cfg.Config) -> dict[str, Any]:
        old = self.config
        needs_restart = [
            name for name, a, b in (
                ("router.asn", old.router.asn, new.router.asn),
                ("router.id", old.router.router_id, new.router.router_id),
                ("router.listen", old.router.listen, new.router.listen),
                ("router.port", old.router.port, new.router.port),
                ("router.next_hop", old.router.next_hop, new.router.next_hop),
                ("router.next_hop6", old.router.next_hop6, new.router.next_hop6),
                ("router.ebgp_requires_policy", old.router.ebgp_requires_policy,
                 new.router.ebgp_requires_policy),
                ("kernel", old.kernel, new.kernel),
                ("control", old.control, new.control),
                ("reflector", old.reflector, new.reflector),
            ) if a != b
        ]
        for name in needs_restart:
            log.warning("reload: a change of %s needs a restart; not applied", name)
        # Policies: recompile; peers using a changed one are reset.
        new_policies = {name: compile_policy(p) for name, p in new.policies.items()}
        changed_policies = {n for n in set(old.policies) | set(new.policies)
                            if old.policies.get(n) != new.policies.get(n)}
        for name in list(new_policies):
            if name not in changed_policies:
                new_policies[name] = self._policies[name]  # keep identity: update groups
        self._policies = new_policies
        self.config = cfg.Config(
            path=old.path, router=_replace_router(old.router, new.router),
            control=old.control, kernel=old.kernel, reflector=old.reflector,
            mesh=new.mesh, peers=new.peers, policies=new.policies,
        )
        # Prefixes.
        old_p, new_p = set(old.router.prefixes), set(new.router.prefixes)
        if old_p != new_p:  # one line at INFO (a reload may change thousands of prefixes)
            log.info("reload: originating %d new prefix(es), withdrawing %d",
                     len(new_p - old_p), len(old_p - new_p))
        for net in sorted(old_p - new_p, key=str):
            log.debug("reload: withdrawing %s", net)
            self.dispatch(self.speaker.withdraw_origin(Prefix.from_network(net)))
        for net in sorted(new_p - old_p, key=str):
            log.debug("reload: originating %s", net)
            self._originate(net)
        # Peers.
        wanted = {str(p.address): p for p in new.peers}
        removed, added, reset = [], [], []
        for key, state in list(self.peers.items()):
            if state.config.kind == "dynamic":
                continue
            want = wanted.get(key)
            if want is None:
                removed.append(key)
            elif want != state.config or (
                {want.import_policy, want.export_policy} & changed_policies
            ):
                reset.append(key)
        for key in removed + reset:
            state = self.peers.pop(key)
            log.info("reload: %s %s", "removing" if key in removed else "resetting",
                     state.config.name)
            subcode = (CeaseSubcode.PEER_DECONFIGURED if key in removed
                       else CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
            await state.peer.stop(subcode)
            self.listener.remove_peer(state.peer)
            self.dispatch(self.speaker.remove_peer(key, time.time()))
            self.graceful.forget(key)
        for key, p in wanted.items():
            if key not in self.peers:
                if key not in reset:
                    added.append(key)
                    log.info("reload: adding %s", p.name)
                await self._new_peer(p).peer.start()
        return {
            "prefixes_added": sorted(map(str, new_p - old_p)),
            "prefixes_removed": sorted(map(str, old_p - new_p)),
            "peers_added": added,
            "peers_removed": removed,
            "peers_reset": reset,
            "needs_restart": needs_restart,
        }

    # ---------------------------------------------------------------- control

    async def _command(self, cmd: str, req: dict[str, Any]) -> Any:
        if cmd == "show status":
            return self.status()
        if cmd == "show peers":
            return self.show_peers()
        if cmd == "show routes":
            prefix = _parse_prefix(req["prefix"]) if req.get("prefix") else None
            return self.show_routes(prefix)
        if cmd == "show route-reasons":
            if not req.get("prefix"):
                raise CommandError("show route-reasons needs a prefix")
            return self.speaker.route_reasons(_parse_prefix(req["prefix"]))
        if cmd == "reload":
            return await self.reload()
        if cmd == "graceful-restart":
            # Answer first, then stop (the control server closes during shutdown).
            asyncio.get_running_loop().call_later(0.05, self.graceful_stop)
            return {"pid": os.getpid(), "peers": len(self.peers),
                    "kernel_routes": 0 if self.sink is None else len(self.sink.installed())}
        if cmd == "refresh":
            return self.refresh(str(req.get("peer") or ""), str(req.get("direction") or "in"),
                                req.get("family"))
        raise CommandError(f"unknown command {cmd!r} (show status | show peers | "
                           f"show routes | show route-reasons | reload | graceful-restart | "
                           f"refresh)")

    def refresh(self, peer: str, direction: str, family: str | None = None) -> dict[str, Any]:
        """`roost refresh PEER --in|--out`: "in" sends a ROUTE-REFRESH (RFC 2918) so the
        peer sends its routes again (soft reset in); "out" re-sends our Adj-RIB-Out to the
        peer (soft reset out).  `family` ("ipv4-unicast", ...) limits it to one family."""
        if direction not in ("in", "out"):
            raise CommandError(f"refresh: direction must be 'in' or 'out', not {direction!r}")
        key = peer
        if key not in self.peers:
            by_name = [k for k, s in self.peers.items() if s.config.name == peer]
            if len(by_name) != 1:
                raise CommandError(f"refresh: no peer {peer!r} (an address or a name)")
            key = by_name[0]
        state = self.peers[key]
        neg = state.peer.negotiated
        if neg is None:
            raise CommandError(f"refresh: {state.config.name} ({key}) is not Established")
        fams = sorted(neg.families, key=str)
        if family:
            fams = [f for f in fams if str(f) == family]
            if not fams:
                raise CommandError(f"refresh: {family} is not negotiated with {key} "
                                   f"({', '.join(sorted(map(str, neg.families)))})")
        if direction == "in":
            if not neg.route_refresh:
                raise CommandError(f"refresh: {key} did not negotiate route refresh")
            for fam in fams:
                state.peer.send_route_refresh(fam)
        else:
            for fam in fams:
                self.dispatch(self.speaker.refresh_out(key, fam))
        log.info("%s (%s): refresh %s: %s", state.config.name, key, direction,
                 ", ".join(map(str, fams)))
        return {"peer": key, "direction": direction, "families": [str(f) for f in fams]}

    def status(self) -> dict[str, Any]:
        c = self.config
        up = sum(1 for s in self.peers.values() if s.peer.established)
        routes = sum(1 for _ in self.speaker.routes())
        return {
            "version": __version__,
            "pid": os.getpid(),
            "config": c.path,
            "router_id": str(c.router.router_id),
            "asn": c.router.asn,
            "started": self.started_at,
            "uptime": round(time.time() - self.started_at, 1),
            "peers": len(self.peers),
            "peers_established": up,
            "prefixes_originated": [str(p) for p in c.router.prefixes],
            "routes": routes,
            "kernel": (
                "off" if self.sink is None
                else f"{len(self.sink.installed())} routes installed"
                + (" (dry run)" if isinstance(self.sink, DryRunSink) else "")
            ),
            "route_reflector": None if c.reflector is None else str(c.reflector.cluster_id),
        }

    def show_peers(self) -> list[dict[str, Any]]:
        summary = {row["key"]: row for row in self.speaker.peers_summary()}
        rows = []
        for key, state in self.peers.items():
            p, peer = state.config, state.peer
            s = summary.get(key, {})
            fams = s.get("families", {})
            stats = peer.stats
            neg = peer.negotiated
            rows.append({
                "name": p.name,
                "address": key,
                "asn": p.asn,
                "kind": p.kind,
                "type": "ibgp" if p.is_ibgp(self.config.router.asn) else "ebgp",
                "state": peer.state.value,
                "since": state.since,
                "last_update": state.last_update,
                "passive": p.passive,
                "rr_client": p.rr_client,
                "route_reflector": p.route_reflector,
                "router_id": s.get("router_id") if neg is not None else None,
                "received": sum(f["received"] for f in fams.values()),
                "accepted": sum(f["accepted"] for f in fams.values()),
                "advertised": sum(f["advertised"] for f in fams.values()),
                "families": fams,
                "hold_time": None if neg is None else neg.hold_time,
                "add_path_receive": [] if neg is None else sorted(map(str, neg.addpath_receive)),
                "add_path_send": [] if neg is None else sorted(map(str, neg.addpath_send)),
                "messages_in": stats.messages_in,
                "messages_out": stats.messages_out,
                "established_count": stats.established_count,
                "last_down": None if stats.last_down is None else _down_text(stats.last_down),
                "info": stats.last_error or ("" if peer.established else
                                             ("passive, waiting" if p.passive else "")),
                "description": p.description,
            })
        return rows

    def show_routes(self, prefix: Prefix | None) -> list[dict[str, Any]]:
        installed = self.sink.installed() if self.sink is not None else {}
        rows = self.speaker.routes(prefix=prefix)
        for row in rows:
            route = installed.get(ipaddress.ip_network(row["prefix"]))
            row["kernel"] = None if route is None else _kernel_dict(route)
        return rows


class _Handler:
    """`PeerHandler` of one peer: session events into the speaker, results out."""

    def __init__(self, daemon: Daemon, key: str) -> None:
        self.daemon = daemon
        self.key = key

    def _state(self, peer: BgpPeer) -> _PeerState | None:
        state = self.daemon.peers.get(self.key)
        return state if state is not None and state.peer is peer else None

    def on_established(self, peer: BgpPeer, negotiated: Negotiated) -> None:
        state = self._state(peer)
        if state is None:
            return
        state.since = time.time()
        state.families = negotiated.families
        state.eor_families = set()
        fams = ", ".join(sorted(map(str, negotiated.families)))
        log.info("%s (%s): Established: AS%d, router id %s, hold time %d s, %s%s",
                 peer.name, self.key, negotiated.peer_asn, negotiated.peer_router_id,
                 negotiated.hold_time, fams,
                 ", ADD-PATH" if negotiated.addpath_receive or negotiated.addpath_send else "")
        self.daemon.graceful.session_up(self.key, negotiated)
        self.daemon.dispatch(self.daemon.speaker.peer_up(self.key, negotiated, time.time()))

    def on_update(self, peer: BgpPeer, update: Update) -> None:
        self.on_updates(peer, [update])

    def on_updates(self, peer: BgpPeer, updates: list[Update]) -> None:
        """The UPDATEs of one socket read (BatchPeerHandler): ingested in order, exported
        once, so the others get full UPDATEs rather than one per UPDATE received."""
        state = self._state(peer)
        if state is None:
            return
        self.daemon.dispatch(self.daemon.speaker.receive_updates(self.key, updates, time.time()))
        if any(u.end_of_rib() is None for u in updates):
            state.last_update = time.time()

    def on_end_of_rib(self, peer: BgpPeer, family: Family) -> None:
        state = self._state(peer)
        if state is not None:
            state.eor_families.add(family)
            log.debug("%s: End-of-RIB %s", peer.name, family)
            self.daemon.graceful.end_of_rib(self.key, family)

    def on_route_refresh(self, peer: BgpPeer, family: Family, subtype: int) -> None:
        if self._state(peer) is None:
            return
        log.info("%s: ROUTE-REFRESH %s: sending the table again", peer.name, family)
        self.daemon.dispatch(self.daemon.speaker.refresh_out(self.key, family))

    def on_down(self, peer: BgpPeer, event: SessionDown) -> None:
        state = self._state(peer)
        if state is None:
            return
        state.since = time.time()
        # RFC 4724 §4.2 / RFC 8538 §4: keep the routes of a peer that may be restarting
        # as stale (roost/graceful.py); otherwise they leave the Loc-RIB, the kernel and
        # the other peers at once.
        retain = self.daemon.graceful.session_down(self.key, event)
        log.info("%s (%s): down: %s; %s", peer.name, self.key, _down_text(event),
                 f"graceful restart: its {', '.join(sorted(map(str, retain)))} routes are "
                 f"kept as stale" if retain else "its routes are withdrawn")
        self.daemon.dispatch(self.daemon.speaker.peer_down(self.key, time.time(), retain))


# --------------------------------------------------------------------------- helpers


def _replace_router(old: cfg.RouterConfig, new: cfg.RouterConfig) -> cfg.RouterConfig:
    """The router settings after a reload: identity and sockets stay until a restart."""
    return replace(new, asn=old.asn, router_id=old.router_id, listen=old.listen,
                   port=old.port, next_hop=old.next_hop, next_hop6=old.next_hop6,
                   ebgp_requires_policy=old.ebgp_requires_policy)


def _down_text(event: SessionDown) -> str:
    text = event.reason.value
    if event.notification is not None:
        text += f" ({event.notification.describe()})"
    if event.detail:
        text += f": {event.detail}"
    return text


def _parse_prefix(text: Any) -> Prefix:
    try:
        return Prefix.from_network(ipaddress.ip_network(str(text), strict=False))
    except ValueError:
        raise CommandError(f"not a prefix: {text!r}") from None


def _kernel_dict(route: KernelRoute) -> dict[str, Any]:
    return {
        "blackhole": route.blackhole,
        "nexthops": [
            {"gateway": str(nh.gateway), "dev": nh.ifname, "onlink": nh.onlink}
            for nh in route.nexthops
        ],
    }


def _log_kernel_error(exc: KernelRouteError) -> None:
    log.error("kernel: %s", exc)


def _describe_os_error(exc: Exception, config: cfg.Config) -> str:
    if isinstance(exc, PermissionError):
        return f"permission denied: {exc.strerror or exc} (roost needs root or CAP_NET_ADMIN " \
               f"and CAP_NET_BIND_SERVICE)"
    if isinstance(exc, OSError) and exc.errno == 98:
        hosts = ", ".join(map(str, config.router.listen)) or "*"
        return f"cannot listen on {hosts} port {config.router.port}: address already in use " \
               f"(another BGP daemon running?)"
    if isinstance(exc, OSError) and exc.errno == 99:
        hosts = ", ".join(map(str, config.router.listen))
        return f"cannot listen on {hosts}: not an address of this host"
    return str(exc)


#: The cyclic garbage collector's generation thresholds in the daemon process. A feed
#: creates a few long-lived objects per prefix; with CPython's default (700, 10, 10) the
#: collector runs every 700 of them and re-scans the growing RIB in full collections,
#: which took more than half of the time to take in 100k routes (bench/receive.py).
GC_THRESHOLDS = (50_000, 20, 10)


def main(config: cfg.Config, *, flush_on_exit: bool = False) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code."""
    async def _main() -> int:
        return await Daemon(config, flush_on_exit=flush_on_exit).run()

    # Process-wide, so here rather than in Daemon (which tests embed): what start-up
    # allocated (modules, configuration) lives for good and need not be scanned again.
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    return asyncio.run(_main())


__all__ = ["Daemon", "StartupError", "compile_policy", "main"]

