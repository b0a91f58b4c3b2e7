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
`flush_on_exit`); SIGHUP (or `roost reload`) reloads the file as planned by
`roost.reload`: peers and originated prefixes are added and removed, a peer whose session
settings changed is reset, changed policies are applied in place, unaffected sessions stay
up. Changes to [router] identity, listen addresses, [kernel], [control] and [reflector]
need a restart (logged and reported).
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
from dataclasses import dataclass, field
from typing import Any

from bgp.aio.peer import BgpPeer, Listener, TransportOptions
from bgp.events import SessionDown
from bgp.fsm import DownReason, State
from bgp.limits import LimitAction, PrefixLimit
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
from bgp.rib.loc_rib import BestChanges
from bgp.rib.path import NextHopMode, PeerInfo
from bgp.session import SessionConfig
from bgp.speaker import Outbound, PeerConfigForSpeaker, Speaker, SpeakerConfig
from bgp.types import AddPathMode, Afi, CeaseSubcode, Family
from bgp.wire.attributes import AttrSet, LargeCommunity
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
from kernel.routes import IPAddress, network
from reflector.rules import ReflectionRules
from roost import __version__
from roost import config as cfg
from roost import reload as reload_plan
from roost.birdctl import BirdControlServer
from roost.control import CommandError, ControlServer
from roost.graceful import GracefulRestartHelper, RestartWindow
from roost.metrics import MetricsError, server_for
from roost.prefix_limit import PeerPrefixLimit

log = logging.getLogger("roost")

#: How long after a plain start (no -R) routes that an earlier run left in the kernel may
#: wait for a peer to announce them again before they are removed. With -R the limit is
#: `graceful_restart.wait` (BIRD: `graceful restart wait`).
PRUNE_AFTER = 30.0
#: Attribute sets whose gateways the FIB hand-off remembers per family (then it starts over).
FIB_GATEWAYS_KEPT = 4096


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
    # `max_prefixes` (roost/prefix_limit.py); None without a limit.
    prefix_limit: PeerPrefixLimit | None = None

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
        recover: bool = False,
        sink: FibSink | None = None,
        install_signals: bool = True,
    ) -> None:
        self.config = config
        self.flush_on_exit = flush_on_exit
        # `roost run -R` (BIRD's -R): restart recovery. `recovering` until the deferred
        # kernel update is done (`_settle_kernel`).
        self.recover = recover
        self.recovering = False
        self.install_signals = install_signals
        self.started_at = time.time()
        self.reconfigured_at = self.started_at  # the last successful reload (birdctl)
        self.peers: dict[str, _PeerState] = {}
        self._policies = {name: compile_policy(p) for name, p in config.policies.items()}
        self._stopping = asyncio.Event()
        self._tasks: set[asyncio.Task[Any]] = set()
        self._reloading = asyncio.Lock()
        self._flush_task: asyncio.Task[None] | None = None
        # The FIB hand-off's gateways per family and attribute set, for `_fib_config`.
        self._fib_gateways: dict[Family, dict[AttrSet, tuple[IPAddress, ...]]] = {}
        self._fib_config: cfg.Config | None = None
        self.speaker = Speaker(self._speaker_config(config), rules=self._rules(config),
                               on_best_change=self._on_best_change)
        # Graceful restart (roost/graceful.py): helper timers, our restart window, and
        # whether `graceful-restart` asked us to stop without NOTIFICATIONs.
        self.graceful = GracefulRestartHelper(
            self.speaker, self.dispatch,
            stale_time=config.router.graceful_restart.stale_time,
            on_expired=self._stale_expired)
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
        # calico-node's readiness check and birdc (roost/birdctl.py); off unless configured.
        self.bird_control = (None if config.control.bird_socket is None
                             else BirdControlServer(config.control.bird_socket, self))
        self.metrics = server_for(self)  # None unless [metrics] listen

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
                window = RestartWindow(restarting=False, forwarding=True,
                                       restart_time=r.graceful_restart.restart_time,
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
            # RFC 9494: advertised next to the GR capability (none without it).
            long_lived_stale_time=r.graceful_restart.long_lived_stale_time,
            send_hold_time=p.send_hold_time,  # RFC 9687; None: max(480, 2 x hold)
            max_output_queue=p.max_output_queue,
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
        if p.max_prefixes is not None:
            state.prefix_limit = PeerPrefixLimit(state.peer, PrefixLimit(
                p.max_prefixes, LimitAction(p.max_prefixes_action),
                float(p.max_prefixes_restart)))
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
            if self.recover:
                # RFC 4724 §4.1: the restarting speaker defers route selection until
                # End-of-RIB; the adopted kernel routes forward meanwhile.
                self.recovering = True
                if self.sink is not None:
                    self.sink.hold()
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
            if self.bird_control is not None:
                await self.bird_control.start()
            if self.metrics is not None:
                await self.metrics.start()
        except (OSError, KernelRouteError, MetricsError) as exc:
            await self.shutdown()
            raise StartupError(_describe_os_error(exc, c)) from None
        for state in self.peers.values():
            await state.peer.start()
        if self.install_signals:
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, self._on_stop_signal, sig)
            loop.add_signal_handler(signal.SIGHUP, self._spawn, self._reload_on_signal)
        if self.sink is not None or self.recover:
            self._spawn(self._settle_kernel)
        hosts = ", ".join(map(str, c.router.listen)) or "all addresses"
        log.info("listening on %s port %d; control socket %s", hosts, self.listener.port,
                 c.control.socket)

    def _open_restart_window(self) -> None:
        """RFC 4724 §4.1: with -R the OPENs of the restart window carry the Restart State
        bit, and the Forwarding State bit when routes of ours were still in the kernel
        (adopted by the sink: our forwarding state survived). A plain start sets neither,
        like BIRD without -R: helpers drop our stale routes and learn them again."""
        gr = self.config.router.graceful_restart
        kept = len(self.sink.installed()) if self.sink is not None else 0
        self.restart_window = RestartWindow(
            restarting=self.recover, forwarding=self.recover and kept > 0,
            restart_time=gr.restart_time,
            until=asyncio.get_running_loop().time() + gr.restart_time,
            notification=gr.notification)
        if self.recover:
            bits = "Restart State and Forwarding State bits" if kept else (
                "Restart State bit; no route of ours in the kernel, so no Forwarding State")
            log.info("graceful restart recovery (-R): %d route(s) of an earlier run kept "
                     "in the kernel; kernel changes deferred until every peer has sent "
                     "End-of-RIB (at most %d s)%s", kept, gr.wait,
                     f"; restart window {gr.restart_time} s ({bits})" if gr.enabled else "")
        elif kept:
            log.info("%d route(s) of an earlier run found in the kernel: kept until every "
                     "peer has sent End-of-RIB (at most %g s); peers are told our "
                     "forwarding state was not preserved (start with -R to restart "
                     "without a gap)", kept, PRUNE_AFTER)

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
        for state in self.peers.values():  # no max_prefixes restart after this
            if state.prefix_limit is not None:
                state.prefix_limit.close()
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
        if self.bird_control is not None:
            with contextlib.suppress(Exception):
                await self.bird_control.stop()
        if self.metrics is not None:
            with contextlib.suppress(Exception):
                await self.metrics.stop()
        if self.sink is not None:
            try:
                await self.sink.close(
                    flush_routes=self.flush_on_exit and not self._graceful_stop)
            except Exception as exc:
                log.error("kernel: closing the route sink failed: %s", exc)
        flushed = self.flush_on_exit and not self._graceful_stop
        log.info("stopped%s", "; kernel routes removed" if flushed else "")

    def _spawn(self, coro: Callable[[], Any]) -> None:
        task = asyncio.get_running_loop().create_task(coro())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def converged(self) -> bool:
        """Every configured (not dynamic) peer has sent End-of-RIB for every family it
        negotiated (RFC 4724 §4.1: the restarting speaker's route selection waits for it)."""
        return all(s.eor for s in self.peers.values() if s.config.kind != "dynamic")

    async def _settle_kernel(self) -> None:
        """The end of start-up for the kernel, once every peer has sent End-of-RIB or the
        limit has passed: `graceful_restart.wait` with -R, PRUNE_AFTER without.

        With -R the sink has held every change since start; `release` applies them in one
        pass: routes unchanged are left alone, changed ones replaced, and those nobody
        announced again removed. Without -R the changes went in at once and `release` only
        removes the routes of the earlier run nobody announced again."""
        wait = float(self.config.router.graceful_restart.wait) if self.recover else PRUNE_AFTER
        loop = asyncio.get_running_loop()
        start = loop.time()
        while loop.time() - start < wait and not self.converged():
            await asyncio.sleep(min(0.1, max(0.0, wait - (loop.time() - start))))
        took = loop.time() - start
        why = "End-of-RIB from every peer" if self.converged() else f"the limit of {wait:g} s"
        if self.sink is not None:
            before = dict(self.sink.installed())
            try:
                await self.sink.release()
            except Exception as exc:  # the hold is over all the same: later changes go in
                log.error("kernel: applying the deferred route changes failed: %s", exc)
            after = self.sink.installed()
            removed = sum(1 for p in before if p not in after)
            changed = sum(1 for p, r in after.items() if before.get(p, r) != r)
            added = sum(1 for p in after if p not in before)
            if self.recover:
                log.info("kernel: recovery done after %.1f s (%s): %d route(s) added, %d "
                         "replaced, %d removed, %d unchanged", took, why, added, changed,
                         removed, len(after) - added - changed)
            elif removed:
                log.info("kernel: %d route(s) of an earlier run nobody announced again "
                         "removed after %.1f s (%s)", removed, took, why)
        elif self.recover:
            log.info("graceful restart recovery done after %.1f s (%s)", took, why)
        self.recovering = False

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

    def _on_best_change(self, family: Family, changes: BestChanges) -> None:
        """The FIB hand-off: called once per family and batch of UPDATEs with the
        prefixes whose best path moved (nothing per prefix without a kernel sink)."""
        sink, tunnel = self.sink, self.tunnel
        if sink is None or tunnel is None or self._stopping.is_set():
            return
        # Many prefixes share an (interned) attribute set, hence their next hops: the
        # gateways are worked out once per set, for this configuration (own addresses).
        if self._fib_config is not self.config:
            self._fib_gateways.clear()
            self._fib_config = self.config
        known = self._fib_gateways.setdefault(family, {})
        if len(known) > FIB_GATEWAYS_KEPT:
            known.clear()
        version = 4 if family.afi == Afi.IPV4 else 6
        update, get, route_via = sink.update, known.get, tunnel.route
        for prefix, sel in changes:
            net = network(version, prefix.addr, prefix.length)  # (no parsing: see there)
            if sel is None:
                update(net, None)
                continue
            best = sel.best
            # The usual case inline: one path from a peer, its attribute set seen before.
            gateways = (get(best.attrs) if best.source is not None and len(sel.multipath) <= 1
                        else None)
            if gateways is None:
                update(net, self._kernel_route(prefix, net, sel, tunnel, known))
                continue
            route: KernelRoute | None = None
            if gateways:
                try:
                    route = route_via(net, gateways)
                except Exception:  # as in _kernel_route
                    log.exception("kernel: %s: no kernel route for the new best path", prefix)
            update(net, route)
        if self._flush_task is None or self._flush_task.done():
            # One flush per burst of changes (the sinks coalesce per prefix meanwhile).
            self._flush_task = asyncio.get_running_loop().create_task(self._flush_fib())

    def _kernel_route(self, prefix: Prefix, net: cfg.IPNetwork, sel: Selection | None,
                      tunnel: TunnelPolicy,
                      known: dict[AttrSet, tuple[IPAddress, ...]] | None = None,
                      ) -> KernelRoute | None:
        """The kernel route for a prefix's selection (None: none to install). `known`:
        where to remember the gateways of a single-path selection by attribute set."""
        # Called from inside the speaker's UPDATE processing: an exception here would
        # abandon the rest of the batch (its other prefixes never advertised), so one
        # bad route is logged and leaves the kernel without a route for that prefix (as
        # when no next hop is usable).
        route: KernelRoute | None = None
        try:
            if sel is not None:
                best = sel.best
                if best.is_local:
                    route = blackhole(net) if self.config.kernel.blackhole else None
                else:
                    own = self.config.router.addresses
                    found: list[IPAddress] = []
                    clean = True
                    for path in sel.multipath or (best,):
                        nh = path.attrs.next_hop
                        if nh is None or nh in own or nh in found:
                            continue
                        if nh.version != net.version:
                            # RFC 8950 next hop of another family: not installable here
                            # (logged for each prefix: never remembered).
                            log.warning("kernel: %s: next hop %s is another address "
                                        "family; not installed", prefix, nh,
                                        extra={"event": "route_not_installed",
                                               "prefix": str(prefix), "next_hop": str(nh),
                                               "reason": "next hop of another family"})
                            clean = False
                            continue
                        found.append(nh)
                    gateways = tuple(found)
                    # One path (the ECMP set is best first): its attribute set decides.
                    if clean and known is not None and len(sel.multipath) <= 1:
                        known[best.attrs] = gateways
                    if gateways:
                        route = tunnel.route(net, gateways)
        except Exception:
            log.exception("kernel: %s: no kernel route for the new best path", prefix)
            route = None
        return route

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
                n = len(exc.issues)
                raise CommandError(f"{exc}\n{path}: {n} error{'s' if n != 1 else ''}; "
                                   f"nothing was applied") from None
            changes = await self._apply(new)
            self.reconfigured_at = time.time()
            return {"config": path, **changes}

    async def _apply(self, new: cfg.Config) -> dict[str, Any]:
        """Carry out `roost.reload.plan`: only the sessions whose settings changed are
        reset; policy changes are applied in place (no session flaps)."""
        old = self.config
        plan = reload_plan.plan(old, new)
        for name in plan.needs_restart:
            log.warning("reload: a change of %s needs a restart; not applied", name)
        # Policies: recompile the changed ones; the others keep their identity (update
        # groups are keyed by the export policy object).
        new_policies = {name: compile_policy(p) for name, p in new.policies.items()}
        for name in list(new_policies):
            if name not in plan.changed_policies:
                new_policies[name] = self._policies[name]
        running = reload_plan.running_config(old, new)
        # Restart-only sections keep their running values, and with them the policies
        # they name: a dynamic range whose policy left the file must not lose its filter.
        for rng in running.reflector.dynamic if running.reflector is not None else ():
            for used in (rng.template.import_policy, rng.template.export_policy):
                if used and used not in new_policies and used in self._policies:
                    log.warning("reload: policy %s is no longer in the file but the running "
                                "[[reflector.dynamic]] range %s uses it; kept until a "
                                "restart", used, rng.range)
                    new_policies[used] = self._policies[used]
        self._policies = new_policies
        self.config = running
        # Prefixes.
        if plan.prefixes_added or plan.prefixes_removed:  # one line at INFO (thousands?)
            log.info("reload: originating %d new prefix(es), withdrawing %d",
                     len(plan.prefixes_added), len(plan.prefixes_removed))
        for net in plan.prefixes_removed:
            log.debug("reload: withdrawing %s", net)
            self.dispatch(self.speaker.withdraw_origin(Prefix.from_network(net)))
        for net in plan.prefixes_added:
            log.debug("reload: originating %s", net)
            self._originate(net)
        # Peers: RFC 4486 Cease subcode 3 for a removed one, 6 for a reset one.
        for key in plan.peers_removed:
            log.info("reload: removing %s", self.peers[key].config.name)
            await self._drop_peer(key, CeaseSubcode.PEER_DECONFIGURED)
        for p in plan.peers_reset:
            key = str(p.address)
            changed = reload_plan.session_fields_changed(self.peers[key].config, p)
            log.info("reload: resetting %s (%s changed)", p.name, ", ".join(changed))
            await self._drop_peer(key, CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
        for p in (*plan.peers_refreshed, *plan.peers_renamed):
            state = self.peers[str(p.address)]
            state.config = p
            state.peer.name = p.name
        refreshed = [str(p.address) for p in plan.peers_refreshed] + [
            key for key, state in self.peers.items()
            if state.config.kind == "dynamic" and reload_plan.uses(state.config,
                                                                   plan.changed_policies)]
        for key in refreshed:
            self._apply_policies(key)
        for p in plan.peers_added:
            key = str(p.address)
            if key in self.peers:  # a dynamic neighbour now configured statically
                await self._drop_peer(key, CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
            log.info("reload: adding %s", p.name)
        for p in (*plan.peers_reset, *plan.peers_added):
            await self._new_peer(p).peer.start()
        # A peer held down by its prefix limit (max_prefixes_restart = 0) waits for this.
        restarted = [key for key, state in self.peers.items()
                     if state.prefix_limit is not None and state.prefix_limit.release()]
        summary = plan.summary()
        if restarted:
            summary["peers_restarted"] = restarted
        summary["peers_refreshed"] = refreshed
        if plan.needs_restart:
            summary["warning"] = (f"not applied until a restart: "
                                  f"{', '.join(plan.needs_restart)}")
        return summary

    async def _drop_peer(self, key: str, subcode: CeaseSubcode) -> None:
        """Stop one session with a Cease and forget the peer and its routes."""
        state = self.peers.pop(key)
        if state.prefix_limit is not None:
            state.prefix_limit.close()
        await state.peer.stop(subcode)
        self.listener.remove_peer(state.peer)
        self.dispatch(self.speaker.remove_peer(key, time.time()))
        self.graceful.forget(key)

    def _stale_expired(self, key: str) -> None:
        """A dynamic neighbour that left with graceful restart is forgotten once the
        last of its stale routes is gone."""
        state = self.peers.get(key)
        if state is not None and state.config.kind == "dynamic" \
                and not self.graceful.stale_families(key):
            self._spawn(lambda: self._forget_dynamic(key, state.peer))

    async def _forget_dynamic(self, key: str, peer: BgpPeer) -> None:
        """Drop a dynamic neighbour whose session ended, unless it came back meanwhile
        (a new connection from the same address reuses the same BgpPeer) or its
        max_prefixes limit holds it down (forgetting would lift the hold-down)."""
        state = self.peers.get(key)
        if state is None or state.peer is not peer or self._stopping.is_set() \
                or peer.state not in (State.IDLE, State.ACTIVE):
            return
        if state.prefix_limit is not None and state.prefix_limit.held_down:
            return
        log.info("%s (%s): dynamic neighbour gone; forgotten", peer.name, key)
        await self._drop_peer(key, CeaseSubcode.PEER_DECONFIGURED)

    def _apply_policies(self, key: str) -> None:
        """Soft reconfiguration of one peer: its import policy runs again over the
        routes it sent (kept pre-policy in the Adj-RIB-In, so no ROUTE-REFRESH is
        needed) and it is sent the difference its export policy makes."""
        p = self.peers[key].config
        log.info("reload: applying the policies of %s again (import %s, export %s)",
                 p.name, p.import_policy or "-", p.export_policy or "-")
        self.dispatch(self.speaker.set_policies(
            key, self._policies.get(p.import_policy or ""),
            self._policies.get(p.export_policy or ""), time.time()))

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
            "reconfigured": self.reconfigured_at,
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
            # `roost run -R` until the deferred kernel update is done (BIRD's "Graceful
            # restart recovery in progress").
            "recovering": self.recovering,
            # Resource figures for leak checks (bench/soak.py): asyncio tasks, open file
            # descriptors, resident memory.
            **_process_figures(),
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
                "keepalive_time": None if neg is None else neg.keepalive_time,
                "add_path_receive": [] if neg is None else sorted(map(str, neg.addpath_receive)),
                "add_path_send": [] if neg is None else sorted(map(str, neg.addpath_send)),
                "messages_in": stats.messages_in,
                "messages_out": stats.messages_out,
                "established_count": stats.established_count,
                "last_down": None if stats.last_down is None else _down_text(stats.last_down),
                "info": (state.prefix_limit.status()["reason"]
                         if state.prefix_limit is not None and state.prefix_limit.held_down
                         else stats.last_error or ("" if peer.established else
                                                   ("passive, waiting" if p.passive else ""))),
                "max_prefixes": (None if state.prefix_limit is None
                                 else state.prefix_limit.status()),
                "output_queue": peer.output_queue,
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
                 ", ADD-PATH" if negotiated.addpath_receive or negotiated.addpath_send else "",
                 extra={"event": "established", "peer": peer.name, "address": self.key,
                        "peer_asn": negotiated.peer_asn,
                        "router_id": str(negotiated.peer_router_id),
                        "hold_time": negotiated.hold_time,
                        "families": sorted(map(str, negotiated.families))})
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
        if state.prefix_limit is not None:
            state.prefix_limit.check(self.daemon.speaker.accepted_counts(self.key))

    def on_end_of_rib(self, peer: BgpPeer, family: Family) -> None:
        state = self._state(peer)
        if state is not None:
            state.eor_families.add(family)
            log.debug("%s: End-of-RIB %s", peer.name, family)
            self.daemon.graceful.end_of_rib(self.key, family)

    def on_route_refresh(self, peer: BgpPeer, family: Family, subtype: int) -> None:
        if self._state(peer) is None:
            return
        log.info("%s: ROUTE-REFRESH %s: sending the table again", peer.name, family,
                 extra={"event": "route_refresh", "peer": peer.name, "address": self.key,
                        "family": str(family)})
        self.daemon.dispatch(self.daemon.speaker.refresh_out(self.key, family))

    def on_down(self, peer: BgpPeer, event: SessionDown) -> None:
        state = self._state(peer)
        if state is None:
            return
        state.since = time.time()
        if state.prefix_limit is not None:
            state.prefix_limit.session_down()
        # RFC 4724 §4.2 / RFC 8538 §4: keep the routes of a peer that may be restarting
        # as stale (roost/graceful.py); otherwise they leave the Loc-RIB, the kernel and
        # the other peers at once.
        retain = self.daemon.graceful.session_down(self.key, event)
        log.info("%s (%s): down: %s; %s", peer.name, self.key, _down_text(event),
                 f"graceful restart: its {', '.join(sorted(map(str, retain)))} routes are "
                 f"kept as stale" if retain else "its routes are withdrawn",
                 extra={"event": "down", "peer": peer.name, "address": self.key,
                        **_down_fields(event),
                        "stale_families": sorted(map(str, retain))})
        self.daemon.dispatch(self.daemon.speaker.peer_down(self.key, time.time(), retain))
        if state.config.kind == "dynamic" and not retain:
            # Like BIRD's and GoBGP's dynamic neighbours: a client that left is forgotten,
            # so `show peers` (and calico-node's readiness check) does not wait for it.
            self.daemon._spawn(lambda: self.daemon._forget_dynamic(self.key, peer))


# --------------------------------------------------------------------------- helpers


def _down_text(event: SessionDown) -> str:
    text = event.reason.value
    if event.notification is not None:
        text += f" ({event.notification.describe()})"
    if event.detail:
        text += f": {event.detail}"
    return text


def _down_fields(event: SessionDown) -> dict[str, Any]:
    """The structured form of `_down_text` for JSON logs: the DownReason and the
    NOTIFICATION (RFC 4271 §4.5) we sent or received, if any."""
    fields: dict[str, Any] = {"reason": event.reason.value}
    if event.detail:
        fields["detail"] = event.detail
    n = event.notification
    if n is not None:
        fields["notification"] = {
            "direction": ("received" if event.reason is DownReason.NOTIFICATION_RECEIVED
                          else "sent"),
            "code": n.code, "subcode": n.subcode, "text": n.describe()}
    return fields


def _process_figures() -> dict[str, int | None]:
    """asyncio tasks of the running loop, open file descriptors and VmRSS in kB (the
    last two from /proc; None where it is missing)."""
    fds: int | None = None
    rss: int | None = None
    with contextlib.suppress(OSError):
        fds = len(os.listdir("/proc/self/fd"))
    with contextlib.suppress(OSError, ValueError, IndexError), open("/proc/self/status") as f:
        rss = next((int(line.split()[1]) for line in f if line.startswith("VmRSS:")), None)
    return {"tasks": len(asyncio.all_tasks()), "fds": fds, "rss_kb": rss}


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
    log.error("kernel: %s", exc, extra={
        "event": "kernel_error", "prefix": None if exc.prefix is None else str(exc.prefix),
        "op": exc.op, "errno": exc.errno})


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


def main(config: cfg.Config, *, flush_on_exit: bool = False, recover: bool = False) -> int:
    """Run the daemon until SIGTERM/SIGINT; returns the exit code. `recover`: -R."""
    async def _main() -> int:
        return await Daemon(config, flush_on_exit=flush_on_exit, recover=recover).run()

    # Process-wide, so here rather than in Daemon (which tests embed): what start-up
    # allocated (modules, configuration) lives for good and need not be scanned again.
    gc.set_threshold(*GC_THRESHOLDS)
    gc.freeze()
    return asyncio.run(_main())


__all__ = ["Daemon", "StartupError", "compile_policy", "main"]

