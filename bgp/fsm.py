"""The BGP finite state machine of RFC 4271 §8, as one table.

Rule 1 (h11 `_state.py`): everything that decides *which* state follows *which* event lives
in this file, as data. `bgp.session.Session` only classifies its inputs into the §8.1 events
below, looks the pair up with `transition()`, and runs the named actions in order.

Rule 2: the table knows nothing of sockets, clocks or codecs. Actions are names; what a name
does (queue bytes, set a deadline, emit an event) is the session's business, and
`ACTION_DOC` says it in one line for the generated `docs/fsm.md`.

Per-state defaults implement the RFC's "In response to any other event ..." paragraphs,
which differ by state (§8.2.2):

* Idle: "Any other event (Events 9-12, 15-28) received in the Idle state does not cause
  change in the state of the local system."
* Connect and Active: "In response to any other events (Events 8, 10-11, 13, 19, 23,
  25-28), the local system: ... releases all BGP resources, drops the TCP connection, ...
  changes its state to Idle."
* OpenSent, OpenConfirm, Established: "... sends the NOTIFICATION with the Error Code
  Finite State Machine Error, ... changes its state to Idle." The subcode is the RFC 6608
  one for the state (1, 2, 3).

Where roost deliberately departs from the letter of §8.2.2 the row says so in its `note`,
and the note is rendered into the docs.

Run ``python -m bgp.fsm`` to rewrite ``docs/fsm.md``; a unit test fails when it is stale.
"""

from __future__ import annotations

import sys
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum, IntEnum
from pathlib import Path
from typing import Final

from bgp.types import FsmError

__all__ = [
    "ACTION_DOC",
    "DEFAULTS",
    "FSM_ERROR_SUBCODE",
    "TRANSITIONS",
    "Action",
    "DownReason",
    "Event",
    "State",
    "Transition",
    "render_markdown",
    "transition",
]


class State(Enum):
    """BGP session states, RFC 4271 §8.2.2."""

    #: Refuses connections; waits for a start event (manual, or the automatic restart).
    IDLE = "Idle"
    #: Waiting for the outgoing TCP connection to complete.
    CONNECT = "Connect"
    #: Listening for an incoming connection; ConnectRetry will try outgoing again.
    ACTIVE = "Active"
    #: OPEN sent, waiting for the peer's OPEN (hold timer at the large value).
    OPEN_SENT = "OpenSent"
    #: OPENs exchanged, KEEPALIVE sent, waiting for the peer's KEEPALIVE.
    OPEN_CONFIRM = "OpenConfirm"
    #: UPDATE, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH may flow.
    ESTABLISHED = "Established"


class Event(IntEnum):
    """FSM events, RFC 4271 §8.1 (numbers and names as in the RFC).

    Events above 100 are roost extensions for messages that RFC 4271 predates.
    """

    # §8.1.2 administrative events
    MANUAL_START = 1
    MANUAL_STOP = 2
    AUTOMATIC_START = 3
    MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT = 4
    AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT = 5
    AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS = 6
    AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT = 7
    AUTOMATIC_STOP = 8
    # §8.1.3 timer events
    CONNECT_RETRY_TIMER_EXPIRES = 9
    HOLD_TIMER_EXPIRES = 10
    KEEPALIVE_TIMER_EXPIRES = 11
    DELAY_OPEN_TIMER_EXPIRES = 12
    IDLE_HOLD_TIMER_EXPIRES = 13
    # §8.1.4 TCP connection-based events
    TCP_CONNECTION_VALID = 14
    TCP_CR_INVALID = 15
    TCP_CR_ACKED = 16
    TCP_CONNECTION_CONFIRMED = 17
    TCP_CONNECTION_FAILS = 18
    # §8.1.5 BGP message-based events
    BGP_OPEN = 19
    BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING = 20
    BGP_HEADER_ERR = 21
    BGP_OPEN_MSG_ERR = 22
    OPEN_COLLISION_DUMP = 23
    NOTIF_MSG_VER_ERR = 24
    NOTIF_MSG = 25
    KEEPALIVE_MSG = 26
    UPDATE_MSG = 27
    UPDATE_MSG_ERR = 28
    # roost extensions: RFC 2918 ROUTE-REFRESH is handled like an UPDATE (it restarts the
    # hold timer, RFC 4271 §4.4 counts every message), and RFC 7313 §5 makes a malformed
    # one a NOTIFICATION (code 7) like an UPDATE error.
    ROUTE_REFRESH_MSG = 101
    ROUTE_REFRESH_MSG_ERR = 102
    # RFC 9687 §3: "Event 29: SendHoldTimer_Expires"; numbered after the roost
    # extensions so that RFC 4271 numbering stays contiguous in the table.
    SEND_HOLD_TIMER_EXPIRES = 29

    @property
    def rfc_name(self) -> str:
        return _RFC_NAMES[self]


_RFC_NAMES: Final[Mapping[Event, str]] = {
    Event.MANUAL_START: "ManualStart",
    Event.MANUAL_STOP: "ManualStop",
    Event.AUTOMATIC_START: "AutomaticStart",
    Event.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT: "ManualStart_with_PassiveTcpEstablishment",
    Event.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT: (
        "AutomaticStart_with_PassiveTcpEstablishment"
    ),
    Event.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS: "AutomaticStart_with_DampPeerOscillations",
    Event.AUTOMATIC_START_WITH_DAMP_PEER_OSCILLATIONS_AND_PASSIVE_TCP_ESTABLISHMENT: (
        "AutomaticStart_with_DampPeerOscillations_and_PassiveTcpEstablishment"
    ),
    Event.AUTOMATIC_STOP: "AutomaticStop",
    Event.CONNECT_RETRY_TIMER_EXPIRES: "ConnectRetryTimer_Expires",
    Event.HOLD_TIMER_EXPIRES: "HoldTimer_Expires",
    Event.KEEPALIVE_TIMER_EXPIRES: "KeepaliveTimer_Expires",
    Event.DELAY_OPEN_TIMER_EXPIRES: "DelayOpenTimer_Expires",
    Event.IDLE_HOLD_TIMER_EXPIRES: "IdleHoldTimer_Expires",
    Event.TCP_CONNECTION_VALID: "TcpConnection_Valid",
    Event.TCP_CR_INVALID: "Tcp_CR_Invalid",
    Event.TCP_CR_ACKED: "Tcp_CR_Acked",
    Event.TCP_CONNECTION_CONFIRMED: "TcpConnectionConfirmed",
    Event.TCP_CONNECTION_FAILS: "TcpConnectionFails",
    Event.BGP_OPEN: "BGPOpen",
    Event.BGP_OPEN_WITH_DELAY_OPEN_TIMER_RUNNING: "BGPOpen with DelayOpenTimer running",
    Event.BGP_HEADER_ERR: "BGPHeaderErr",
    Event.BGP_OPEN_MSG_ERR: "BGPOpenMsgErr",
    Event.OPEN_COLLISION_DUMP: "OpenCollisionDump",
    Event.NOTIF_MSG_VER_ERR: "NotifMsgVerErr",
    Event.NOTIF_MSG: "NotifMsg",
    Event.KEEPALIVE_MSG: "KeepAliveMsg",
    Event.UPDATE_MSG: "UpdateMsg",
    Event.UPDATE_MSG_ERR: "UpdateMsgErr",
    Event.ROUTE_REFRESH_MSG: "RouteRefreshMsg (roost)",
    Event.ROUTE_REFRESH_MSG_ERR: "RouteRefreshMsgErr (roost)",
    Event.SEND_HOLD_TIMER_EXPIRES: "SendHoldTimer_Expires (RFC 9687)",
}


class DownReason(Enum):
    """Why a session went to Idle (GoBGP `fsmStateReason`); carried by `SessionDown`."""

    #: We sent a NOTIFICATION for a protocol error found in the peer's messages.
    NOTIFICATION_SENT = "notification-sent"
    #: The peer sent us a NOTIFICATION.
    NOTIFICATION_RECEIVED = "notification-received"
    #: No KEEPALIVE/UPDATE within the hold time; we sent NOTIFICATION code 4.
    HOLD_TIMER_EXPIRED = "hold-timer-expired"
    #: The established (or OpenConfirm) TCP connection closed.
    TCP_CLOSED = "tcp-closed"
    #: A TCP connection could not be set up.
    TCP_FAILED = "tcp-failed"
    #: ManualStop (`Session.stop`), Cease sent if connected.
    ADMIN_STOP = "admin-stop"
    #: Closed by RFC 4271 §6.8 collision resolution (Cease/7).
    COLLISION = "collision"
    #: An event not allowed in the state (RFC 4271 §8.2.2 "any other event", RFC 6608).
    FSM_ERROR = "fsm-error"
    #: The peer read nothing we sent for the send hold time (RFC 9687); code 8 sent.
    SEND_HOLD_TIMER_EXPIRED = "send-hold-timer-expired"
    #: AutomaticStop (Event 8): roost itself ended the session (Cease, e.g. Out of
    #: Resources when the peer's output queue is over its cap); restarts automatically.
    AUTOMATIC_STOP = "automatic-stop"


class Action(Enum):
    """The steps a transition performs, in order. `Session` has one method per action."""

    INITIALIZE = "initialize"
    START_CONNECT_RETRY_TIMER = "start_connect_retry_timer"
    STOP_CONNECT_RETRY_TIMER = "stop_connect_retry_timer"
    CONNECT = "connect"
    SEND_OPEN = "send_open"
    SET_LARGE_HOLD_TIMER = "set_large_hold_timer"
    PROCESS_OPEN = "process_open"
    SEND_KEEPALIVE = "send_keepalive"
    START_KEEPALIVE_TIMER = "start_keepalive_timer"
    RESTART_HOLD_TIMER = "restart_hold_timer"
    ESTABLISH = "establish"
    DELIVER_UPDATE = "deliver_update"
    DELIVER_ROUTE_REFRESH = "deliver_route_refresh"
    SEND_NOTIFICATION = "send_notification"
    SEND_HOLD_TIMER_EXPIRED = "send_hold_timer_expired"
    SEND_SEND_HOLD_TIMER_EXPIRED = "send_send_hold_timer_expired"
    SEND_FSM_ERROR = "send_fsm_error"
    RECORD_NOTIFICATION = "record_notification"
    DROP_TCP = "drop_tcp"
    RELEASE = "release"
    START_IDLE_HOLD_TIMER = "start_idle_hold_timer"
    STOP_IDLE_HOLD_TIMER = "stop_idle_hold_timer"


ACTION_DOC: Final[Mapping[Action, str]] = {
    Action.INITIALIZE: "initialize resources (fresh framing buffer, no negotiated context)",
    Action.START_CONNECT_RETRY_TIMER: (
        "(re)start ConnectRetryTimer, jittered 0.75-1.0 (§10); never for passive sessions"
    ),
    Action.STOP_CONNECT_RETRY_TIMER: "stop ConnectRetryTimer",
    Action.CONNECT: "initiate a TCP connection (`wants_connect`); never for passive sessions",
    Action.SEND_OPEN: "send our OPEN",
    Action.SET_LARGE_HOLD_TIMER: "set HoldTimer to the large value (4 minutes, §8.2.2)",
    Action.PROCESS_OPEN: (
        "keep the peer's OPEN, negotiate (smaller hold time, capabilities), emit OpenReceived"
    ),
    Action.SEND_KEEPALIVE: "send a KEEPALIVE",
    Action.START_KEEPALIVE_TIMER: (
        "(re)start KeepaliveTimer, jittered 0.75-1.0 (§10); none when hold time is 0"
    ),
    Action.RESTART_HOLD_TIMER: "restart HoldTimer with the negotiated hold time (none if 0)",
    Action.ESTABLISH: "emit Established(negotiated)",
    Action.DELIVER_UPDATE: "emit UpdateReceived or EndOfRibReceived",
    Action.DELIVER_ROUTE_REFRESH: "emit RouteRefreshReceived (negotiated families only)",
    Action.SEND_NOTIFICATION: (
        "send the NOTIFICATION the event carries (the error's, or Cease for stop/collision)"
    ),
    Action.SEND_HOLD_TIMER_EXPIRED: "send NOTIFICATION Hold Timer Expired (4/0)",
    Action.SEND_SEND_HOLD_TIMER_EXPIRED: (
        "send NOTIFICATION Send Hold Timer Expired (8/0), best effort (RFC 9687)"
    ),
    Action.SEND_FSM_ERROR: "send NOTIFICATION FSM Error with the RFC 6608 subcode of the state",
    Action.RECORD_NOTIFICATION: "keep the received NOTIFICATION for SessionDown",
    Action.DROP_TCP: "close the TCP connection once queued control bytes are sent",
    Action.RELEASE: "release resources: stop all timers, drop queued UPDATE bytes",
    Action.START_IDLE_HOLD_TIMER: (
        "schedule the automatic restart after `idle_hold_time` (DampPeerOscillations-lite)"
    ),
    Action.STOP_IDLE_HOLD_TIMER: "cancel a scheduled automatic restart",
}


@dataclass(frozen=True, slots=True)
class Transition:
    """What one (state, event) pair does: actions in order, then the next state.

    `reason` is set exactly when the transition enters Idle from another state; the session
    then emits one `SessionDown(reason, ...)`.
    """

    actions: tuple[Action, ...]
    next_state: State
    reason: DownReason | None = None
    note: str = ""


A = Action
S = State
E = Event

# Building blocks shared by many rows.
_IGNORE: Final = ()
_TO_IDLE_QUIET: Final = (A.STOP_CONNECT_RETRY_TIMER, A.DROP_TCP, A.RELEASE)
_RESTART: Final = (A.START_IDLE_HOLD_TIMER,)


def _down(*actions: Action, reason: DownReason, restart: bool = True, note: str = "") -> Transition:
    """A transition to Idle: the given actions, then drop the TCP connection and release
    resources (RFC 4271 §8.2.2 "releases all BGP resources, drops the TCP connection"),
    then (unless stopped by the operator or by collision) schedule the automatic restart."""
    return Transition(
        (*actions, A.DROP_TCP, A.RELEASE, *(_RESTART if restart else ())),
        S.IDLE,
        reason,
        note,
    )


def _go(state: State, *actions: Action, note: str = "") -> Transition:
    return Transition(tuple(actions), state, None, note)


def _local_stops() -> dict[Event, Transition]:
    """OpenSent, OpenConfirm and Established: roost ends the session itself.

    RFC 4271 §8.2.2: "If an AutomaticStop event (Event 8) is received, the local system:
    sends the NOTIFICATION with a Cease, ... changes its state to Idle." (roost: with the
    Cease subcode the caller chose, then the automatic restart.)
    RFC 9687 §4: "If the SendHoldTimer_Expires (Event 29), the local system: (optionally)
    sends a NOTIFICATION message with the BGP Error Code "Send Hold Timer Expired" ...,
    releases all BGP resources, ... drops the TCP connection, ... changes its state to
    Idle." (roost sends it best effort: the socket is stuck.)
    """
    return {
        E.AUTOMATIC_STOP: _down(A.SEND_NOTIFICATION, reason=DownReason.AUTOMATIC_STOP),
        E.SEND_HOLD_TIMER_EXPIRES: _down(
            A.SEND_SEND_HOLD_TIMER_EXPIRED, reason=DownReason.SEND_HOLD_TIMER_EXPIRED
        ),
    }


_START_EVENTS: Final = (
    E.MANUAL_START,
    E.AUTOMATIC_START,
    E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
    E.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
)


def _ignore_starts(state: State) -> dict[Event, Transition]:
    # §8.2.2 (every state but Idle): "Events 1, 3-7 are ignored" / "Any start event
    # (Events 1, 3-7) is ignored".
    return {ev: _go(state) for ev in _START_EVENTS}


def _second_connection(state: State) -> dict[Event, Transition]:
    # §8.2.2 OpenSent/OpenConfirm/Established: "If a TcpConnection_Valid (Event 14),
    # Tcp_CR_Acked (Event 16), or a TcpConnectionConfirmed event (Event 17) is received, a
    # second TCP connection may be in progress. This second TCP connection is tracked per
    # Connection Collision processing (Section 6.8)". In roost the second connection gets
    # its own Session and `bgp.collision` arbitrates; this one is unaffected.
    note = "second connection: its own Session, arbitrated by bgp.collision (§6.8)"
    return {
        E.TCP_CR_ACKED: _go(state, note=note),
        E.TCP_CONNECTION_CONFIRMED: _go(state, note=note),
    }


_CONNECTED: Final = (A.STOP_CONNECT_RETRY_TIMER, A.SEND_OPEN, A.SET_LARGE_HOLD_TIMER)

_OPEN_SENT_NOTIF_NOTE: Final = (
    "§8.2.2 lists NotifMsg under OpenSent's 'any other event' (answer with FSM Error); "
    "roost closes without answering a NOTIFICATION (§4.5: the connection is closed "
    "immediately after sending it)"
)
_SAME_CONNECTION_OPEN_NOTE: Final = (
    "§8.2.2 sends Event 19 here to collision detection: in roost an OPEN on another "
    "connection arrives at that connection's Session (OpenReceived, then the arbiter calls "
    "collision_dump); a second OPEN on this connection is an RFC 6608 FSM Error"
)
_HEADER_ERR_NOTE: Final = (
    "§8.2.2 lists BGPHeaderErr under Established's 'any other event' (FSM Error); roost "
    "sends the Message Header Error itself, as §6.1 requires"
)

TRANSITIONS: Final[Mapping[State, Mapping[Event, Transition]]] = {
    S.IDLE: {
        # §8.2.2 Idle: "In response to a ManualStart event (Event 1) or an AutomaticStart
        # event (Event 3), the local system: initializes all BGP resources ..., starts the
        # ConnectRetryTimer ..., initiates a TCP connection to the other BGP peer, listens
        # for a connection that may be initiated by the remote BGP peer, and changes its
        # state to Connect."
        E.MANUAL_START: _go(S.CONNECT, A.INITIALIZE, A.START_CONNECT_RETRY_TIMER, A.CONNECT),
        E.AUTOMATIC_START: _go(S.CONNECT, A.INITIALIZE, A.START_CONNECT_RETRY_TIMER, A.CONNECT),
        # "In response to a ManualStart_with_PassiveTcpEstablishment event (Event 4) ...
        # changes its state to Active."
        E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT: _go(
            S.ACTIVE, A.INITIALIZE, A.START_CONNECT_RETRY_TIMER
        ),
        E.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT: _go(
            S.ACTIVE, A.INITIALIZE, A.START_CONNECT_RETRY_TIMER
        ),
        # "The ManualStop event (Event 2) and AutomaticStop (Event 8) event are ignored in
        # the Idle state." Ignored for the state; a scheduled restart is cancelled.
        E.MANUAL_STOP: _go(
            S.IDLE, A.STOP_IDLE_HOLD_TIMER, note="also cancels the automatic restart"
        ),
        E.AUTOMATIC_STOP: _go(S.IDLE),
        # "In this state, BGP FSM refuses all incoming BGP connections for this peer."
        E.TCP_CR_ACKED: _go(S.IDLE, A.DROP_TCP, note="refuse the connection"),
        E.TCP_CONNECTION_CONFIRMED: _go(S.IDLE, A.DROP_TCP, note="refuse the connection"),
    },
    S.CONNECT: {
        **_ignore_starts(S.CONNECT),
        # "In response to the ManualStop event (Event 2), the local system: drops the TCP
        # connection, releases all BGP resources, sets ConnectRetryCounter to zero, stops
        # the ConnectRetryTimer ..., and changes its state to Idle."
        E.MANUAL_STOP: Transition(_TO_IDLE_QUIET, S.IDLE, DownReason.ADMIN_STOP),
        # "In response to the ConnectRetryTimer_Expires event (Event 9), the local system:
        # drops the TCP connection, restarts the ConnectRetryTimer, ..., initiates a TCP
        # connection to the other BGP peer, ... and stays in the Connect state."
        E.CONNECT_RETRY_TIMER_EXPIRES: _go(S.CONNECT, A.START_CONNECT_RETRY_TIMER, A.CONNECT),
        # "If the TCP connection succeeds (Event 16 or Event 17) ... [without DelayOpen] the
        # local system: stops the ConnectRetryTimer (if running) and sets the
        # ConnectRetryTimer to zero, completes BGP initialization, sends an OPEN message to
        # its peer, sets the HoldTimer to a large value, and changes its state to OpenSent."
        E.TCP_CR_ACKED: _go(S.OPEN_SENT, *_CONNECTED),
        E.TCP_CONNECTION_CONFIRMED: _go(S.OPEN_SENT, *_CONNECTED),
        # "If the TCP connection fails (Event 18), the local system checks the
        # DelayOpenTimer. If the DelayOpenTimer is running, the local system: restarts the
        # ConnectRetryTimer, ... continues to listen ..., and changes its state to Active."
        E.TCP_CONNECTION_FAILS: _go(
            S.ACTIVE,
            A.START_CONNECT_RETRY_TIMER,
            note="always the RFC's DelayOpen branch (as FRR): wait in Active and retry after "
            "ConnectRetry instead of churning through Idle",
        ),
    },
    S.ACTIVE: {
        **_ignore_starts(S.ACTIVE),
        E.MANUAL_STOP: Transition(_TO_IDLE_QUIET, S.IDLE, DownReason.ADMIN_STOP),
        # "In response to a ConnectRetryTimer_Expires event (Event 9), the local system:
        # restarts the ConnectRetryTimer (with initial value), initiates a TCP connection to
        # the other BGP peer, ... and changes its state to Connect."
        E.CONNECT_RETRY_TIMER_EXPIRES: _go(S.CONNECT, A.START_CONNECT_RETRY_TIMER, A.CONNECT),
        # "If the local system receives a TcpConnectionConfirmed event (Event 17) or a
        # Tcp_CR_Acked event (Event 16) ... sends the OPEN message to its peer, sets its
        # HoldTimer to a large value, and changes its state to OpenSent."
        E.TCP_CR_ACKED: _go(S.OPEN_SENT, *_CONNECTED),
        E.TCP_CONNECTION_CONFIRMED: _go(S.OPEN_SENT, *_CONNECTED),
        # "If the local system receives a TcpConnectionFails event (Event 18), the local
        # system: restarts the ConnectRetryTimer ..., releases all BGP resources, ...
        # changes its state to Idle."
        E.TCP_CONNECTION_FAILS: _down(A.STOP_CONNECT_RETRY_TIMER, reason=DownReason.TCP_FAILED),
    },
    S.OPEN_SENT: {
        **_ignore_starts(S.OPEN_SENT),
        **_second_connection(S.OPEN_SENT),
        # "If a ManualStop event (Event 2) is issued in the OpenSent state, the local
        # system: sends the NOTIFICATION with a Cease, ... changes its state to Idle."
        E.MANUAL_STOP: _down(A.SEND_NOTIFICATION, reason=DownReason.ADMIN_STOP, restart=False),
        **_local_stops(),
        # "If the HoldTimer_Expires (Event 10), the local system: sends a NOTIFICATION
        # message with the error code Hold Timer Expired, ... changes its state to Idle."
        E.HOLD_TIMER_EXPIRES: _down(
            A.SEND_HOLD_TIMER_EXPIRED, reason=DownReason.HOLD_TIMER_EXPIRED
        ),
        # "If a TcpConnectionFails event (Event 18) is received, the local system: closes
        # the BGP connection, restarts the ConnectRetryTimer, continues to listen for a
        # connection that may be initiated by the remote BGP peer, and changes its state
        # to Active."
        E.TCP_CONNECTION_FAILS: _go(S.ACTIVE, A.RELEASE, A.START_CONNECT_RETRY_TIMER),
        # "When an OPEN message is received, all fields are checked for correctness. If
        # there are no errors in the OPEN message (Event 19), the local system: resets the
        # DelayOpenTimer to zero, sets the BGP ConnectRetryTimer to zero, sends a KEEPALIVE
        # message, and sets a KeepaliveTimer ..., sets the HoldTimer according to the
        # negotiated value (see Section 4.2), changes its state to OpenConfirm."
        E.BGP_OPEN: _go(
            S.OPEN_CONFIRM,
            A.STOP_CONNECT_RETRY_TIMER,
            A.PROCESS_OPEN,
            A.SEND_KEEPALIVE,
            A.START_KEEPALIVE_TIMER,
            A.RESTART_HOLD_TIMER,
        ),
        # "If the BGP message header checking (Event 21) or OPEN message checking detects
        # an error (Event 22) (see Section 6.2), the local system: sends a NOTIFICATION
        # message with the appropriate error code, ... changes its state to Idle."
        E.BGP_HEADER_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
        E.BGP_OPEN_MSG_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
        # "If a connection in the OpenSent state is determined to be the connection that
        # must be closed, an OpenCollisionDump (Event 23) is signaled to the state machine.
        # If such an event is received in the OpenSent state, the local system: sends a
        # NOTIFICATION with a Cease, ... changes its state to Idle."
        E.OPEN_COLLISION_DUMP: _down(
            A.SEND_NOTIFICATION, reason=DownReason.COLLISION, restart=False
        ),
        # "If a NOTIFICATION message is received with a version error (Event 24), the local
        # system: sets the ConnectRetryTimer to zero, releases all BGP resources, drops the
        # TCP connection, and changes its state to Idle."
        E.NOTIF_MSG_VER_ERR: _down(A.RECORD_NOTIFICATION, reason=DownReason.NOTIFICATION_RECEIVED),
        E.NOTIF_MSG: _down(
            A.RECORD_NOTIFICATION,
            reason=DownReason.NOTIFICATION_RECEIVED,
            note=_OPEN_SENT_NOTIF_NOTE,
        ),
        E.ROUTE_REFRESH_MSG_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
    },
    S.OPEN_CONFIRM: {
        **_ignore_starts(S.OPEN_CONFIRM),
        **_second_connection(S.OPEN_CONFIRM),
        # "In response to a ManualStop event (Event 2) initiated by the operator, the local
        # system: sends the NOTIFICATION message with a Cease, ... changes its state to Idle."
        E.MANUAL_STOP: _down(A.SEND_NOTIFICATION, reason=DownReason.ADMIN_STOP, restart=False),
        **_local_stops(),
        # "If the HoldTimer_Expires event (Event 10) occurs before a KEEPALIVE message is
        # received, the local system: sends the NOTIFICATION message with the Error Code
        # Hold Timer Expired, ... changes its state to Idle."
        E.HOLD_TIMER_EXPIRES: _down(
            A.SEND_HOLD_TIMER_EXPIRED, reason=DownReason.HOLD_TIMER_EXPIRED
        ),
        # "If the local system receives a KeepaliveTimer_Expires event (Event 11), the
        # local system: sends a KEEPALIVE message, restarts the KeepaliveTimer, and remains
        # in the OpenConfirmed state."
        E.KEEPALIVE_TIMER_EXPIRES: _go(S.OPEN_CONFIRM, A.SEND_KEEPALIVE, A.START_KEEPALIVE_TIMER),
        # "If the local system receives a TcpConnectionFails event (Event 18) from the
        # underlying TCP or a NOTIFICATION message (Event 25), the local system: ...
        # changes its state to Idle."
        E.TCP_CONNECTION_FAILS: _down(reason=DownReason.TCP_CLOSED),
        E.NOTIF_MSG: _down(A.RECORD_NOTIFICATION, reason=DownReason.NOTIFICATION_RECEIVED),
        # "If the local system receives a NOTIFICATION message with a version error
        # (NotifMsgVerErr (Event 24)), the local system: ... changes its state to Idle."
        E.NOTIF_MSG_VER_ERR: _down(A.RECORD_NOTIFICATION, reason=DownReason.NOTIFICATION_RECEIVED),
        # "If an OPEN message is received, all fields are checked for correctness. If the
        # BGP message header checking (BGPHeaderErr (Event 21)) or OPEN message checking
        # detects an error (see Section 6.2) (BGPOpenMsgErr (Event 22)), the local system:
        # sends a NOTIFICATION message with the appropriate error code, ... changes its
        # state to Idle."
        E.BGP_HEADER_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
        E.BGP_OPEN_MSG_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
        # "If, during the processing of another OPEN message, the BGP implementation
        # determines, by a means outside the scope of this document, that a connection
        # collision has occurred and this connection is to be closed, the local system will
        # issue an OpenCollisionDump event (Event 23). When the local system receives an
        # OpenCollisionDump event (Event 23), the local system: sends a NOTIFICATION with
        # a Cease, ... changes its state to Idle."
        E.OPEN_COLLISION_DUMP: _down(
            A.SEND_NOTIFICATION, reason=DownReason.COLLISION, restart=False
        ),
        # "If the local system receives a KEEPALIVE message (KeepAliveMsg (Event 26)), the
        # local system: restarts the HoldTimer and changes its state to Established."
        E.KEEPALIVE_MSG: _go(S.ESTABLISHED, A.RESTART_HOLD_TIMER, A.ESTABLISH),
        E.BGP_OPEN: _down(
            A.SEND_FSM_ERROR, reason=DownReason.FSM_ERROR, note=_SAME_CONNECTION_OPEN_NOTE
        ),
        E.ROUTE_REFRESH_MSG_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
    },
    S.ESTABLISHED: {
        **_ignore_starts(S.ESTABLISHED),
        **_second_connection(S.ESTABLISHED),
        # "In response to a ManualStop event (initiated by an operator) (Event 2), the
        # local system: sends the NOTIFICATION message with a Cease, ... deletes all routes
        # associated with this connection, ... changes its state to Idle."
        E.MANUAL_STOP: _down(A.SEND_NOTIFICATION, reason=DownReason.ADMIN_STOP, restart=False),
        **_local_stops(),
        # "If the HoldTimer_Expires event occurs (Event 10), the local system: sends a
        # NOTIFICATION message with the Error Code Hold Timer Expired, ... changes its
        # state to Idle."
        E.HOLD_TIMER_EXPIRES: _down(
            A.SEND_HOLD_TIMER_EXPIRED, reason=DownReason.HOLD_TIMER_EXPIRED
        ),
        # "If the KeepaliveTimer_Expires event occurs (Event 11), the local system: sends a
        # KEEPALIVE message, and restarts its KeepaliveTimer, unless the negotiated
        # HoldTime value is zero."
        E.KEEPALIVE_TIMER_EXPIRES: _go(S.ESTABLISHED, A.SEND_KEEPALIVE, A.START_KEEPALIVE_TIMER),
        # "If the local system receives a NOTIFICATION message (Event 24 or Event 25) or a
        # TcpConnectionFails (Event 18) from the underlying TCP, the local system: ...
        # deletes all routes associated with this connection, ... changes its state to Idle."
        E.TCP_CONNECTION_FAILS: _down(reason=DownReason.TCP_CLOSED),
        E.NOTIF_MSG_VER_ERR: _down(A.RECORD_NOTIFICATION, reason=DownReason.NOTIFICATION_RECEIVED),
        E.NOTIF_MSG: _down(A.RECORD_NOTIFICATION, reason=DownReason.NOTIFICATION_RECEIVED),
        # "If the local system receives a KEEPALIVE message (Event 26), the local system:
        # restarts its HoldTimer, if the negotiated HoldTime value is non-zero, and remains
        # in the Established state."
        E.KEEPALIVE_MSG: _go(S.ESTABLISHED, A.RESTART_HOLD_TIMER),
        # "If the local system receives an UPDATE message (Event 27), the local system:
        # processes the message, restarts its HoldTimer, if the negotiated HoldTime value
        # is non-zero, and remains in the Established state."
        E.UPDATE_MSG: _go(S.ESTABLISHED, A.RESTART_HOLD_TIMER, A.DELIVER_UPDATE),
        # "If the local system receives an UPDATE message, and the UPDATE message error
        # handling procedure (see Section 6.3) detects an error (Event 28), the local
        # system: sends a NOTIFICATION message with an Update error, ... changes its state
        # to Idle." (Only RFC 7606 "session reset" errors become Event 28; treat-as-withdraw
        # and attribute-discard UPDATEs are Event 27 and carry their error.)
        E.UPDATE_MSG_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
        # "In response to an OpenCollisionDump event (Event 23), the local system: sends a
        # NOTIFICATION with a Cease, ... changes its state to Idle." (§6.8 only closes an
        # Established connection when configured to; the arbiter decides.)
        E.OPEN_COLLISION_DUMP: _down(
            A.SEND_NOTIFICATION, reason=DownReason.COLLISION, restart=False
        ),
        # RFC 4271 §6.1: "All errors detected while processing the Message Header MUST be
        # indicated by sending the NOTIFICATION message with the Error Code Message Header
        # Error."
        E.BGP_HEADER_ERR: _down(
            A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT, note=_HEADER_ERR_NOTE
        ),
        E.BGP_OPEN: _down(
            A.SEND_FSM_ERROR, reason=DownReason.FSM_ERROR, note=_SAME_CONNECTION_OPEN_NOTE
        ),
        # RFC 2918 §4 / RFC 7313: ROUTE-REFRESH is processed in Established and, as any
        # message, restarts the HoldTimer (§4.4 "KEEPALIVE or UPDATE" predates it).
        E.ROUTE_REFRESH_MSG: _go(S.ESTABLISHED, A.RESTART_HOLD_TIMER, A.DELIVER_ROUTE_REFRESH),
        # RFC 7313 §5: "If the length ... is not 4, then the BGP speaker MUST send the
        # NOTIFICATION message with the Error Code of 'ROUTE-REFRESH Message Error'".
        E.ROUTE_REFRESH_MSG_ERR: _down(A.SEND_NOTIFICATION, reason=DownReason.NOTIFICATION_SENT),
    },
}

#: RFC 6608 §3 subcode for an unexpected event in each state that sends one.
FSM_ERROR_SUBCODE: Final[Mapping[State, FsmError]] = {
    S.OPEN_SENT: FsmError.UNEXPECTED_MESSAGE_IN_OPENSENT,
    S.OPEN_CONFIRM: FsmError.UNEXPECTED_MESSAGE_IN_OPENCONFIRM,
    S.ESTABLISHED: FsmError.UNEXPECTED_MESSAGE_IN_ESTABLISHED,
}

_ANY_OTHER_DROP: Final = Transition(
    (*_TO_IDLE_QUIET, *_RESTART),
    S.IDLE,
    DownReason.FSM_ERROR,
    "§8.2.2: any other event drops to Idle",
)

DEFAULTS: Final[Mapping[State, Transition]] = {
    # §8.2.2 Idle: "Any other event (Events 9-12, 15-28) received in the Idle state does
    # not cause change in the state of the local system."
    S.IDLE: Transition((), S.IDLE, None, "§8.2.2: any other event is ignored"),
    # §8.2.2 Connect / Active: "In response to any other events (Events 8, 10-11, 13, 19,
    # 23, 25-28), the local system: ... changes its state to Idle."
    S.CONNECT: _ANY_OTHER_DROP,
    S.ACTIVE: _ANY_OTHER_DROP,
    # §8.2.2 OpenSent (Events 9, 11-13, 20, 25-28), OpenConfirm (9, 12-13, 20, 27-28),
    # Established (9, 12-13, 20-22): "sends the NOTIFICATION with the Error Code Finite
    # State Machine Error, ... changes its state to Idle." RFC 6608 §4: "If a BGP speaker
    # receives an unexpected message (e.g., KEEPALIVE/UPDATE/ROUTE-REFRESH message) on a
    # session in OpenSent state, it MUST send to the neighbor a NOTIFICATION message with
    # the Error Code Finite State Machine Error and the Error Subcode 'Receive Unexpected
    # Message in OpenSent State'." (and likewise for OpenConfirm and Established).
    **{
        s: _down(
            A.SEND_FSM_ERROR,
            reason=DownReason.FSM_ERROR,
            note=f"§8.2.2 + RFC 6608: FSM Error 5/{int(FSM_ERROR_SUBCODE[s])}",
        )
        for s in (S.OPEN_SENT, S.OPEN_CONFIRM, S.ESTABLISHED)
    },
}


def transition(state: State, event: Event) -> Transition:
    """The table row for (state, event), or the state's default for "any other event"."""
    row = TRANSITIONS[state].get(event)
    return row if row is not None else DEFAULTS[state]


def is_default(state: State, event: Event) -> bool:
    return event not in TRANSITIONS[state]


# --------------------------------------------------------------------------- docs


def _event_cell(event: Event) -> str:
    return f"{int(event)} {event.rfc_name}"


def _actions_cell(actions: tuple[Action, ...]) -> str:
    return ", ".join(f"`{a.value}`" for a in actions) if actions else "(ignored)"


def render_markdown() -> str:
    """`docs/fsm.md`, generated from TRANSITIONS and DEFAULTS (h11's state diagrams)."""
    out: list[str] = [
        "# Session state machine",
        "",
        "<!-- Generated by `python -m bgp.fsm` from `bgp/fsm.py`. Do not edit by hand; "
        "tests/unit/test_fsm.py fails when this file is stale. -->",
        "",
        "RFC 4271 §8 finite state machine as implemented by `bgp.session.Session`. Event",
        "numbers and names are those of RFC 4271 §8.1; events above 100 are roost",
        "extensions. A transition to Idle from any other state emits exactly one",
        "`SessionDown` with the reason shown.",
        "",
        "```mermaid",
        "stateDiagram-v2",
    ]
    edges: dict[tuple[State, State], list[Event]] = {}
    for state, rows in TRANSITIONS.items():
        for event, tr in rows.items():
            if tr.next_state is not state:
                edges.setdefault((state, tr.next_state), []).append(event)
    for state, default in DEFAULTS.items():
        if default.next_state is not state:
            edges.setdefault((state, default.next_state), [])
    for (src, dst), evs in edges.items():
        label = ", ".join(str(int(e)) for e in sorted(evs))
        if DEFAULTS[src].next_state is dst and src is not dst:
            label = f"{label}, any other" if label else "any other"
        out.append(f"    {src.value} --> {dst.value}: {label}")
    out += ["```", "", "## Actions", "", "| action | what it does |", "|---|---|"]
    for action in Action:
        out.append(f"| `{action.value}` | {ACTION_DOC[action]} |")
    for state in State:
        out += [
            "",
            f"## {state.value}",
            "",
            "| event | actions | next state | down reason | note |",
            "|---|---|---|---|---|",
        ]
        for event in sorted(TRANSITIONS[state]):
            tr = TRANSITIONS[state][event]
            reason = tr.reason.value if tr.reason else ""
            out.append(
                f"| {_event_cell(event)} | {_actions_cell(tr.actions)} | "
                f"{tr.next_state.value} | {reason} | {tr.note} |"
            )
        d = DEFAULTS[state]
        reason = d.reason.value if d.reason else ""
        out.append(
            f"| *any other event* | {_actions_cell(d.actions)} | {d.next_state.value} | "
            f"{reason} | {d.note} |"
        )
    out.append("")
    return "\n".join(out)


DOC_PATH: Final = Path(__file__).resolve().parent.parent / "docs" / "fsm.md"


def main(argv: list[str] | None = None) -> int:
    """Write docs/fsm.md (or the path given as the only argument)."""
    args = sys.argv[1:] if argv is None else argv
    path = Path(args[0]) if args else DOC_PATH
    path.write_text(render_markdown(), encoding="utf-8")
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
