"""Maximum prefixes of one peer at the daemon's edge: the warning, the teardown and the
timer that brings the session back (BIRD `import limit N action warn|disable|restart`,
FRR `maximum-prefix N [restart M] [warning-only]`).

The count and the crossings are `bgp.limits` (pure); this module acts on them:

* `warn`: one WARNING when a family goes over the limit, one INFO when it is back within;
* `teardown`: ManualStop with Cease / Maximum Number of Prefixes Reached and the RFC 4486
  §4 data (AFI, SAFI, limit); the peer stays stopped - its connections are refused - for
  `restart` seconds, or with 0 until `release()` (a reload) or a restart of roost.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Mapping
from typing import Any

from bgp.aio.peer import BgpPeer
from bgp.limits import LimitAction, LimitCrossing, PrefixLimit, PrefixLimiter
from bgp.types import CeaseSubcode, Family

log = logging.getLogger("roost")

__all__ = ["PeerPrefixLimit"]


class PeerPrefixLimit:
    """The maximum-prefix state of one configured peer."""

    def __init__(self, peer: BgpPeer, limit: PrefixLimit) -> None:
        self.peer = peer
        self.limit = limit
        self.limiter = PrefixLimiter(limit)
        #: The crossing that tore the session down, while the peer is held down.
        self.tripped: LimitCrossing | None = None
        self.tripped_at: float | None = None  # wall clock
        self.teardowns = 0
        self._restart: asyncio.TimerHandle | None = None
        self._restart_at: float | None = None  # wall clock
        self._stopping: asyncio.Task[None] | None = None

    @property
    def held_down(self) -> bool:
        return self.tripped is not None

    def check(self, counts: Mapping[Family, int]) -> None:
        """After a batch of UPDATEs: act on the crossings of the peer's accepted counts."""
        if self.tripped is not None:
            return  # already being torn down
        for crossing in self.limiter.check(counts):
            if not crossing.over:
                log.info("%s: max prefixes: %s", self.peer.name, crossing.describe())
                continue
            if self.limit.action is LimitAction.WARN:
                log.warning("%s: max prefixes: %s (action warn: session kept)",
                            self.peer.name, crossing.describe())
                continue
            self._teardown(crossing)
            return

    def _teardown(self, crossing: LimitCrossing) -> None:
        restart = self.limit.restart
        when = f"restart in {restart:g} s" if restart else "down until `roost reload` or a restart"
        log.warning("%s: max prefixes: %s: closing the session (Cease/1); %s",
                    self.peer.name, crossing.describe(), when)
        self.tripped = crossing
        self.tripped_at = time.time()
        self.teardowns += 1
        detail = f"max prefixes: {crossing.describe()}"
        loop = asyncio.get_running_loop()
        # RFC 4486 §4: "If a BGP speaker decides to terminate its peering with a neighbor
        # because the number of address prefixes received from the neighbor exceeds a
        # locally configured upper bound ..., then the speaker MUST send to the neighbor a
        # NOTIFICATION message with the Error Code Cease and the Error Subcode "Maximum
        # Number of Prefixes Reached"."
        self._stopping = loop.create_task(self.peer.stop(
            CeaseSubcode.MAXIMUM_PREFIXES_REACHED, detail, data=crossing.notification_data()))
        if restart:
            self._restart_at = time.time() + restart
            self._restart = loop.call_later(restart, self._restart_now)

    def _restart_now(self) -> None:
        self._restart = None
        log.info("%s: max prefixes: restarting the session after %g s",
                 self.peer.name, self.limit.restart)
        self.release()

    def release(self) -> bool:
        """Start a held-down peer again (the restart timer, or a reload); True if it was."""
        if self.tripped is None:
            return False
        self.tripped = None
        self._restart_at = None
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None
        self.limiter.reset()
        task = self._stopping
        if task is not None and not task.done():
            task.add_done_callback(lambda _t: self.peer.start_now())
        else:
            self.peer.start_now()
        return True

    def session_down(self) -> None:
        """The session went down: its routes left the Adj-RIB-In."""
        self.limiter.reset()

    def close(self) -> None:
        """The peer is being removed: no restart."""
        self.tripped = None
        if self._restart is not None:
            self._restart.cancel()
            self._restart = None

    def status(self) -> dict[str, Any]:
        """For `show peers`."""
        tripped = self.tripped
        return {
            "limit": self.limit.maximum,
            "action": self.limit.action.value,
            "restart": self.limit.restart,
            "state": "down" if tripped is not None else ("over" if self.limiter.over else "ok"),
            "over": sorted(str(f) for f in self.limiter.over),
            "teardowns": self.teardowns,
            "reason": None if tripped is None else f"max prefixes: {tripped.describe()}",
            "restart_at": self._restart_at,
        }
