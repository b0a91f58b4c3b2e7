"""Graceful restart in the daemon: the helper's timers on the event loop, and the
capabilities of the restarting speaker.

The rules are pure and live in `bgp.graceful` (which session endings keep routes, Hard
Reset, the capability) and `bgp.rib.graceful` (stale paths, deadlines); this module only
feeds them the events of each peer and arms one loop timer at the earliest deadline.

    session down ──▶ retained_families ──▶ Speaker.peer_down(retain=...) ──▶ HelperState
    Established  ──▶ HelperState.session_up ──▶ Speaker.sweep_stale (F bit clear / gone)
    End-of-RIB   ──▶ HelperState.end_of_rib ──▶ Speaker.sweep_stale
    timer        ──▶ HelperState.long_lived_due ──▶ Speaker.enter_long_lived (RFC 9494)
                 └─▶ HelperState.expired    ──▶ Speaker.sweep_stale
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable

from bgp.events import SessionDown
from bgp.graceful import (
    is_hard_reset,
    long_lived_families,
    restart_capability,
    retained_families,
)
from bgp.rib.graceful import HelperState
from bgp.speaker import Outbound, Speaker
from bgp.types import Family
from bgp.wire.capabilities import GracefulRestart
from bgp.wire.model import Negotiated

log = logging.getLogger("roost")

__all__ = ["GracefulRestartHelper", "RestartWindow"]


class RestartWindow:
    """What we advertise as a speaker (RFC 4724 §4.1), for `restart_time` seconds after
    start (`until`, on the event loop's clock: the sessions' `now`).

    `restarting` (R bit): started with `roost run -R`, so we defer our kernel updates until
    every peer has sent End-of-RIB. `forwarding` (F bit): our forwarding state survived
    the restart: started with -R and the kernel still held routes of the earlier run. A
    plain start (no -R) advertises neither, like BIRD without -R: helpers drop what they
    kept of ours and learn it again. After the window: R = 0, F = 1.
    """

    def __init__(self, *, restarting: bool, forwarding: bool, restart_time: int,
                 until: float, notification: bool) -> None:
        self.restarting = restarting
        self.forwarding = forwarding
        self.restart_time = restart_time
        self.until = until
        self.notification = notification

    def capabilities(
        self, families: Iterable[Family]
    ) -> tuple[GracefulRestart, GracefulRestart]:
        """(capability during the window, capability after it)."""
        fams = tuple(families)
        during = restart_capability(fams, self.restart_time, restarting=self.restarting,
                                    forwarding=self.forwarding,
                                    notification=self.notification)
        after = restart_capability(fams, self.restart_time, restarting=False,
                                   forwarding=True, notification=self.notification)
        return during, after


class GracefulRestartHelper:
    """The receiving speaker's side for every peer (RFC 4724 §4.2, RFC 8538 §4)."""

    def __init__(
        self,
        speaker: Speaker,
        dispatch: Callable[[Outbound], None],
        *,
        stale_time: float,
        clock: Callable[[], float] = time.monotonic,
        on_expired: Callable[[str], None] | None = None,
    ) -> None:
        self.speaker = speaker
        self.dispatch = dispatch
        #: Called with a peer's key after its timers removed stale routes of it.
        self.on_expired = on_expired
        self.stale_time = stale_time
        self.clock = clock
        self._states: dict[str, HelperState] = {}
        self._negotiated: dict[str, Negotiated] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._closed = False

    # ------------------------------------------------------------------ events

    def session_up(self, key: str, negotiated: Negotiated) -> None:
        """Call before `Speaker.peer_up`: stale routes the new capability does not cover
        go at once."""
        self._negotiated[key] = negotiated
        state = self._states.get(key)
        if state is None or not state.active:
            return
        flush = state.session_up(self.clock(), negotiated.peer_graceful_restart,
                                 negotiated.families, negotiated.peer_long_lived)
        for fam in sorted(flush):
            log.info("%s: graceful restart: %s not preserved by the peer (F bit clear or "
                     "family gone): stale routes removed", key, fam)
            self.dispatch(self.speaker.sweep_stale(key, fam))
        if state.active:
            log.info("%s: graceful restart: stale routes of %s kept until End-of-RIB "
                     "(at most %g s)", key, ", ".join(sorted(map(str, state.stale))),
                     self.stale_time)
        self._arm()

    def end_of_rib(self, key: str, family: Family) -> None:
        state = self._states.get(key)
        if state is not None and state.end_of_rib(family):
            log.info("%s: End-of-RIB %s: stale routes not announced again removed",
                     key, family)
            self.dispatch(self.speaker.sweep_stale(key, family))
            self._arm()

    def session_down(self, key: str, event: SessionDown) -> frozenset[Family]:
        """The families whose routes `Speaker.peer_down` must keep as stale.

        A session that never reached Established (a reconnect attempt closed or refused
        in OpenSent / OpenConfirm) has no negotiated context here and changes nothing:
        the stale routes of the previous session and their restart-time / stale timers
        stay armed (RFC 4724 §4.2: if the session is not re-established within the
        Restart Time the stale routes MUST be deleted; a failed attempt must not lose
        that timer). `Speaker.peer_down` ignores such sessions as well."""
        negotiated = self._negotiated.pop(key, None)
        if negotiated is None:
            return frozenset()
        retain = retained_families(event.reason, event.notification, negotiated)
        # RFC 9494 §4.2: families the peer keeps long-lived, also without GR for them.
        long_lived = long_lived_families(event.reason, event.notification, negotiated)
        state = self._states.setdefault(key, HelperState(self.stale_time))
        if is_hard_reset(event.notification) or not (retain or long_lived):
            # Consecutive restarts or a Hard Reset: nothing stale survives this (the
            # speaker's peer_down without `retain` drops the whole Adj-RIB-In).
            state.reset()
            self._arm()
            return frozenset()
        assert negotiated is not None
        state.session_lost(self.clock(), retain, negotiated.peer_graceful_restart,
                           long_lived)
        self._arm()
        return retain | frozenset(long_lived)

    def forget(self, key: str) -> None:
        """The peer was removed (`Speaker.remove_peer` swept its stale routes)."""
        self._states.pop(key, None)
        self._negotiated.pop(key, None)
        self._arm()

    def stale_families(self, key: str) -> set[Family]:
        state = self._states.get(key)
        return set() if state is None else set(state.stale)

    def close(self) -> None:
        self._closed = True
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    # ------------------------------------------------------------------ timer

    def run_timers(self) -> None:
        now = self.clock()
        for key, state in list(self._states.items()):
            for fam in sorted(state.long_lived_due(now)):
                log.info("%s: long-lived graceful restart: restart time over: stale %s "
                         "routes kept, least preferred, for at most %g s (RFC 9494)",
                         key, fam, state.long_lived[fam] - now)
                self.dispatch(self.speaker.enter_long_lived(key, fam))
            in_restart = set(state.restart_deadlines)
            in_long_lived = set(state.long_lived)
            for fam in sorted(state.expired(now)):
                if fam in in_restart:
                    log.info("%s: graceful restart: the peer did not come back within its "
                             "restart time: stale %s routes removed", key, fam)
                elif fam in in_long_lived:
                    log.info("%s: long-lived graceful restart: the peer did not come back "
                             "within its long-lived stale time: stale %s routes removed",
                             key, fam)
                else:
                    log.info("%s: graceful restart: no End-of-RIB %s within %g s: stale "
                             "routes removed", key, fam, self.stale_time)
                self.dispatch(self.speaker.sweep_stale(key, fam))
                if self.on_expired is not None:
                    self.on_expired(key)
        self._arm()

    def _arm(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._closed:
            return
        deadlines = [d for s in self._states.values() if (d := s.next_deadline()) is not None]
        if not deadlines:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        delay = max(0.0, min(deadlines) - self.clock())
        self._timer = loop.call_later(delay, self.run_timers)
