"""Events a `bgp.session.Session` emits to the application (h11 / wsproto style).

Frozen, slotted values. Drain them with `Session.events()`. Ordering guarantees:

* every state change produces one `StateChanged`, in order; the events a transition's
  actions emit (`OpenReceived`, `Established`, ...) come before its `StateChanged`;
* every change of state *into* Idle produces exactly one `SessionDown`, right after its
  `StateChanged`, with a `DownReason` (GoBGP `fsmStateReason`);
* `OpenReceived` comes before the `StateChanged` to OpenConfirm, so a collision arbiter
  (`bgp.collision`) sees the peer's BGP Identifier before the session can reach
  Established;
* an End-of-RIB marker (RFC 4724 §2) produces `EndOfRibReceived` *instead of*
  `UpdateReceived`: the marker carries no routes, so the RIB has nothing to apply.
"""

from __future__ import annotations

from dataclasses import dataclass

from bgp.fsm import DownReason, State
from bgp.types import Family
from bgp.wire.model import Negotiated, Notification, Open, Update

__all__ = [
    "BgpEvent",
    "DownReason",
    "EndOfRibReceived",
    "Established",
    "OpenReceived",
    "RouteRefreshReceived",
    "SessionDown",
    "StateChanged",
    "UpdateReceived",
]


@dataclass(frozen=True, slots=True)
class StateChanged:
    """The FSM moved from `old` to `new` (RFC 4271 §8.2.2)."""

    old: State
    new: State


@dataclass(frozen=True, slots=True)
class OpenReceived:
    """The peer's OPEN passed the §6.2 checks; the session now moves to OpenConfirm.

    RFC 4271 §6.8: "Upon receipt of an OPEN message, the local system MUST examine all of
    its connections that are in the OpenConfirm state." The arbiter above the session does
    that and calls `Session.collision_dump()` on the loser.
    """

    open: Open


@dataclass(frozen=True, slots=True)
class Established:
    """KEEPALIVE received in OpenConfirm: the session is up with this context."""

    negotiated: Negotiated


@dataclass(frozen=True, slots=True)
class UpdateReceived:
    """An UPDATE in Established. RFC 7606 treat-as-withdraw / attribute-discard errors do
    not reset the session: they are carried in `update.treat_as_withdraw` and
    `update.discarded`, and `Update.withdrawals()` already includes the treat-as-withdraw
    prefixes."""

    update: Update


@dataclass(frozen=True, slots=True)
class EndOfRibReceived:
    """The peer finished its initial table for `family` (RFC 4724 §2)."""

    family: Family


@dataclass(frozen=True, slots=True)
class RouteRefreshReceived:
    """ROUTE-REFRESH for a negotiated family (RFC 2918 §4); `subtype` per RFC 7313 §3.2
    (0 request, 1 BoRR, 2 EoRR)."""

    family: Family
    subtype: int


@dataclass(frozen=True, slots=True)
class SessionDown:
    """The session went to Idle. `notification` is the NOTIFICATION we sent
    (NOTIFICATION_SENT, HOLD_TIMER_EXPIRED, FSM_ERROR, ADMIN_STOP, COLLISION) or received
    (NOTIFICATION_RECEIVED); None when none crossed the wire."""

    reason: DownReason
    notification: Notification | None
    detail: str = ""


BgpEvent = (
    StateChanged
    | OpenReceived
    | Established
    | UpdateReceived
    | EndOfRibReceived
    | RouteRefreshReceived
    | SessionDown
)
