"""Graceful restart rules at the session level (RFC 4724, RFC 8538, RFC 9494), pure.

Which session endings let a helper keep the peer's routes (`retained_families`, and for
long-lived graceful restart `long_lived_families`), when a Cease becomes a Hard Reset
(`hard_reset_notification`), and which capabilities a speaker puts in its OPEN
(`restart_capability`, `long_lived_capability`). The RIB side (stale paths, timers) is
`bgp.rib.graceful`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Final

from bgp.fsm import DownReason
from bgp.types import CeaseSubcode, ErrorCode, Family
from bgp.wire.capabilities import (
    GracefulRestart,
    GracefulRestartFamily,
    LongLivedFamily,
    LongLivedGracefulRestart,
)
from bgp.wire.model import Negotiated, Notification

__all__ = [
    "HARD_RESET_CEASES",
    "hard_reset_notification",
    "is_hard_reset",
    "long_lived_capability",
    "long_lived_families",
    "notification_negotiated",
    "restart_capability",
    "retained_families",
]

#: RFC 8538 §5 table: the Cease subcodes for which a speaker that negotiated the N bit
#: sends a Hard Reset (the others - Connection Rejected, Other Configuration Change,
#: Connection Collision Resolution, Out of Resources, BFD Down - stay plain Ceases,
#: which the helper treats as a graceful restart).
HARD_RESET_CEASES: Final = frozenset({
    CeaseSubcode.MAXIMUM_PREFIXES_REACHED,
    CeaseSubcode.ADMINISTRATIVE_SHUTDOWN,
    CeaseSubcode.PEER_DECONFIGURED,
    CeaseSubcode.ADMINISTRATIVE_RESET,
    CeaseSubcode.HARD_RESET,
})

# RFC 4724 §4.2: "When the Receiving Speaker detects termination of the TCP session for
# a BGP session with a peer that has advertised the Graceful Restart Capability, it MUST
# retain the routes". roost also counts the hold timer (RFC 8538 §4 makes it explicit for
# N-bit sessions; without a NOTIFICATION from the peer the peer may simply be restarting).
_TCP_ENDINGS: Final = frozenset({
    DownReason.TCP_CLOSED,
    DownReason.TCP_FAILED,
    DownReason.HOLD_TIMER_EXPIRED,
})
# Endings with a NOTIFICATION on the wire: graceful only with the N bit (RFC 8538 §4).
_NOTIFICATION_ENDINGS: Final = frozenset({
    DownReason.NOTIFICATION_SENT,
    DownReason.NOTIFICATION_RECEIVED,
    DownReason.FSM_ERROR,
    DownReason.COLLISION,
    # RFC 9687 code 8, and roost's AutomaticStop (Cease / Out of Resources): NOTIFICATIONs
    # we sent; the session comes back by itself.
    DownReason.SEND_HOLD_TIMER_EXPIRED,
    DownReason.AUTOMATIC_STOP,
})


def notification_negotiated(negotiated: Negotiated | None) -> bool:
    """RFC 8538 §2: the N bit was advertised by both sides of the session."""
    if negotiated is None:
        return False
    local, peer = negotiated.local_graceful_restart, negotiated.peer_graceful_restart
    return local is not None and peer is not None and local.notification and peer.notification


def is_hard_reset(notification: Notification | None) -> bool:
    """Cease / Hard Reset (RFC 8538 §3, subcode 9)."""
    return (
        notification is not None
        and notification.code == ErrorCode.CEASE
        and notification.subcode == CeaseSubcode.HARD_RESET
    )


def retained_families(
    reason: DownReason, notification: Notification | None, negotiated: Negotiated | None
) -> frozenset[Family]:
    """The families whose routes a helper keeps as stale when an Established session
    ends this way (empty: delete them all at once, as without graceful restart).

    `negotiated` is the context of the session that ended: the helper role needs both our
    capability (graceful restart configured here) and the peer's, and only the families
    the peer listed in it (RFC 4724 §4.2 "for all the address families that were
    previously received in the Graceful Restart Capability").
    """
    if negotiated is None:
        return frozenset()
    peer_gr = negotiated.peer_graceful_restart
    if peer_gr is None or negotiated.local_graceful_restart is None:
        return frozenset()
    if not _graceful_ending(reason, notification, negotiated):
        return frozenset()
    return frozenset(f.family for f in peer_gr.families) & negotiated.families


def _graceful_ending(
    reason: DownReason, notification: Notification | None, negotiated: Negotiated
) -> bool:
    if reason in _TCP_ENDINGS:
        return True
    if reason in _NOTIFICATION_ENDINGS:
        # RFC 8538 §4: with the N bit, "the Graceful Restart procedures ... are followed
        # when a BGP NOTIFICATION message is sent or received" - except the Hard Reset,
        # which asks for a full reset. Without the N bit RFC 4724 applies: a NOTIFICATION
        # ends the session for good.
        return notification_negotiated(negotiated) and not is_hard_reset(notification)
    return False  # ADMIN_STOP: we ended it on purpose (deconfigured, reset, shutting down)


def long_lived_families(
    reason: DownReason, notification: Notification | None, negotiated: Negotiated | None
) -> dict[Family, int]:
    """The families whose routes a helper keeps into the long-lived stale phase when an
    Established session ends this way, each with its Long-lived Stale Time in seconds.

    RFC 9494 §4.2: the same endings as graceful restart (the LLGR capability only counts
    next to a GR capability, `negotiate`), for the families the peer listed with a
    non-zero LLST - also those its GR capability does not list or whose restart time is
    0 (the long-lived phase then starts at once). The time is the peer's, bounded by our
    own advertised one (§4.2 "MAY ... a locally configured upper bound"); a family we
    do not list ourselves is not kept long-lived.
    """
    if negotiated is None:
        return {}
    peer, local = negotiated.peer_long_lived, negotiated.local_long_lived
    if peer is None or local is None:
        return {}
    if not _graceful_ending(reason, notification, negotiated):
        return {}
    out: dict[Family, int] = {}
    for entry in peer.families:
        limit = local.stale_time(entry.family)
        if entry.family in negotiated.families and limit and entry.stale_time:
            out[entry.family] = min(entry.stale_time, limit)
    return out


def hard_reset_notification(
    negotiated: Negotiated | None, subcode: int, data: bytes = b""
) -> Notification:
    """The Cease to send for `subcode`: RFC 8538 §3, once the N bit is negotiated a Cease
    that must really reset the session is sent as a Hard Reset whose data carries the
    original NOTIFICATION ("Data: the encapsulated ErrCode, Subcode, Data")::

        +--------+--------+---------------+
        | ErrCode| Subcode| Data ...      |   (inside the Hard Reset's data)
        +--------+--------+---------------+
    """
    if (
        notification_negotiated(negotiated)
        and subcode in HARD_RESET_CEASES
        and subcode != CeaseSubcode.HARD_RESET
    ):
        inner = bytes((ErrorCode.CEASE, subcode)) + data
        return Notification(ErrorCode.CEASE, CeaseSubcode.HARD_RESET, inner)
    return Notification(ErrorCode.CEASE, subcode, data)


def restart_capability(
    families: Iterable[Family],
    restart_time: int,
    *,
    restarting: bool,
    forwarding: bool,
    notification: bool = True,
) -> GracefulRestart:
    """Our Graceful Restart capability (RFC 4724 §3).

    `restarting` is the Restart State (R) bit: set in the OPENs of the restart window of a
    speaker that restarts and defers its route selection (`roost run -R`). `forwarding` is
    the per-family Forwarding State (F) bit: "the forwarding state has indeed been
    preserved during the previously BGP restart" - roost's kernel routes outlive the
    daemon, so it is set except in the restart window of a plain start (no -R) or of a
    start that found no route of ours in the kernel, which makes helpers drop what they
    kept of ours at once. `notification` is the RFC 8538 N bit.
    """
    return GracefulRestart(
        restart_time=restart_time,
        restarting=restarting,
        notification=notification,
        families=tuple(GracefulRestartFamily(f, forwarding) for f in families),
    )


def long_lived_capability(gr: GracefulRestart, stale_time: int) -> LongLivedGracefulRestart:
    """Our LLGR capability (RFC 9494 §3) to go with `gr`: the same families with the same
    Forwarding State (F) bit (§3: it has "the same semantics" as in GR), each with our
    Long-lived Stale Time."""
    if not 0 <= stale_time <= 0xFFFFFF:
        raise ValueError(f"long-lived stale time {stale_time}: must be 0..16777215")
    return LongLivedGracefulRestart(tuple(
        LongLivedFamily(f.family, f.forwarding_preserved, stale_time) for f in gr.families
    ))
