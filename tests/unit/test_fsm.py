"""The FSM table against RFC 4271 §8.2.2, state by state, and the generated docs."""

from __future__ import annotations

from pathlib import Path

import pytest

from bgp import fsm
from bgp.fsm import (
    ACTION_DOC,
    DEFAULTS,
    FSM_ERROR_SUBCODE,
    TRANSITIONS,
    Action,
    DownReason,
    Event,
    State,
    Transition,
    render_markdown,
    transition,
)
from bgp.session import _ACTIONS
from bgp.types import FsmError

A = Action
E = Event
S = State


def _events(*spec: int | tuple[int, int]) -> frozenset[Event]:
    """Event numbers as the RFC writes them: 9, (11, 13) for "9, 11-13"."""
    out: set[Event] = set()
    for item in spec:
        lo, hi = item if isinstance(item, tuple) else (item, item)
        out.update(Event(n) for n in range(lo, hi + 1))
    return frozenset(out)


# The "any other event" lists of RFC 4271 §8.2.2, verbatim.
RFC_ANY_OTHER: dict[State, frozenset[Event]] = {
    # "Any other event (Events 9-12, 15-28) received in the Idle state does not cause
    # change in the state of the local system."
    S.IDLE: _events((9, 12), (15, 28)),
    # "In response to any other events (Events 8, 10-11, 13, 19, 23, 25-28) ..."
    S.CONNECT: _events(8, (10, 11), 13, 19, 23, (25, 28)),
    S.ACTIVE: _events(8, (10, 11), 13, 19, 23, (25, 28)),
    # "In response to any other event (Events 9, 11-13, 20, 25-28) ..."
    S.OPEN_SENT: _events(9, (11, 13), 20, (25, 28)),
    # "In response to any other event (Events 9, 12-13, 20, 27-28) ..."
    S.OPEN_CONFIRM: _events(9, (12, 13), 20, (27, 28)),
    # "In response to any other event (Events 9, 12-13, 20-22) ..."
    S.ESTABLISHED: _events(9, (12, 13), (20, 22)),
}

# Events the session never generates: optional RFC 4271 session attributes roost does not
# implement (DampPeerOscillations, DelayOpen, TCP connection validation), and
# IdleHoldTimer_Expires, which the session delivers as AutomaticStart (3/5).
# (AutomaticStop, Event 8, is generated: `Session.automatic_stop`.)
NEVER_GENERATED = _events((6, 7), (12, 15), 20)

# Connect and Active read no messages in roost (no DelayOpen, so the OPEN is sent only on
# entering OpenSent and `Session.receive_data` reads from OpenSent on): the RFC's rows for
# message errors and version-error NOTIFICATIONs in those states cannot fire, and would
# fall to the default (Idle) anyway.
UNREACHABLE = {
    (s, e)
    for s in (S.CONNECT, S.ACTIVE)
    for e in (E.BGP_HEADER_ERR, E.BGP_OPEN_MSG_ERR, E.NOTIF_MSG_VER_ERR)
}

# Events RFC 4271 §8.2.2 does not list: roost's, and RFC 9687's SendHoldTimer_Expires.
ROOST_EVENTS = frozenset(
    {E.ROUTE_REFRESH_MSG, E.ROUTE_REFRESH_MSG_ERR, E.SEND_HOLD_TIMER_EXPIRES}
)

# Rows where roost puts an explicit entry on top of an RFC "any other event": each must
# explain itself in `note` (or is an Idle refusal of a connection).
OVERRIDES: dict[tuple[State, Event], State] = {
    (S.IDLE, E.TCP_CR_ACKED): S.IDLE,
    (S.IDLE, E.TCP_CONNECTION_CONFIRMED): S.IDLE,
    (S.OPEN_SENT, E.NOTIF_MSG): S.IDLE,
    (S.ESTABLISHED, E.BGP_HEADER_ERR): S.IDLE,
}


@pytest.mark.parametrize("state", list(State))
def test_every_pair_is_in_the_table_or_an_intentional_default(state: State) -> None:
    rows = set(TRANSITIONS[state])
    explicit_rfc = set(Event) - RFC_ANY_OTHER[state] - NEVER_GENERATED - ROOST_EVENTS
    # Every event the RFC handles explicitly in this state has a row...
    missing = {e for e in explicit_rfc if e not in rows and (state, e) not in UNREACHABLE}
    # ... except the optional ones roost never generates (they fall to the default).
    assert not missing, f"{state}: no row for RFC-explicit events {sorted(missing)}"
    # Rows on top of the RFC's "any other event" list are the documented overrides only.
    extra = {e for e in rows & RFC_ANY_OTHER[state]}
    assert extra == {e for (s, e) in OVERRIDES if s is state}
    for event in extra:
        assert TRANSITIONS[state][event].note, f"override {state}/{event} must say why"
        assert TRANSITIONS[state][event].next_state is OVERRIDES[(state, event)]
    # Nothing in the table for events the session never generates.
    assert not rows & NEVER_GENERATED


@pytest.mark.parametrize(
    ("state", "event"),
    [(s, e) for s in State for e in Event],
)
def test_transition_total(state: State, event: Event) -> None:
    tr = transition(state, event)
    assert isinstance(tr, Transition)
    if event in TRANSITIONS[state]:
        assert tr is TRANSITIONS[state][event]
        assert not fsm.is_default(state, event)
    else:
        assert tr is DEFAULTS[state]
        assert fsm.is_default(state, event)


def test_idle_default_ignores() -> None:
    assert DEFAULTS[S.IDLE] == Transition((), S.IDLE, None, DEFAULTS[S.IDLE].note)
    for event in RFC_ANY_OTHER[S.IDLE] - set(TRANSITIONS[S.IDLE]):
        assert transition(S.IDLE, event).actions == ()
        assert transition(S.IDLE, event).next_state is S.IDLE


@pytest.mark.parametrize("state", [S.CONNECT, S.ACTIVE])
def test_connect_active_default_drops_to_idle_quietly(state: State) -> None:
    d = DEFAULTS[state]
    assert d.next_state is S.IDLE
    assert d.reason is DownReason.FSM_ERROR
    assert A.DROP_TCP in d.actions and A.RELEASE in d.actions
    assert not {A.SEND_FSM_ERROR, A.SEND_NOTIFICATION} & set(d.actions)


@pytest.mark.parametrize(
    ("state", "subcode"),
    [
        (S.OPEN_SENT, FsmError.UNEXPECTED_MESSAGE_IN_OPENSENT),
        (S.OPEN_CONFIRM, FsmError.UNEXPECTED_MESSAGE_IN_OPENCONFIRM),
        (S.ESTABLISHED, FsmError.UNEXPECTED_MESSAGE_IN_ESTABLISHED),
    ],
)
def test_open_states_default_sends_fsm_error(state: State, subcode: FsmError) -> None:
    d = DEFAULTS[state]
    assert d.actions[0] is A.SEND_FSM_ERROR
    assert d.next_state is S.IDLE
    assert d.reason is DownReason.FSM_ERROR
    assert FSM_ERROR_SUBCODE[state] is subcode


# (state, event) -> (next state, actions that must be present) from the RFC text.
RFC_ROWS: list[tuple[State, Event, State, tuple[Action, ...]]] = [
    (S.IDLE, E.MANUAL_START, S.CONNECT, (A.INITIALIZE, A.START_CONNECT_RETRY_TIMER, A.CONNECT)),
    (S.IDLE, E.AUTOMATIC_START, S.CONNECT, (A.START_CONNECT_RETRY_TIMER, A.CONNECT)),
    (S.IDLE, E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT, S.ACTIVE, (A.INITIALIZE,)),
    (S.IDLE, E.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT, S.ACTIVE, (A.INITIALIZE,)),
    (S.IDLE, E.MANUAL_STOP, S.IDLE, ()),
    (S.CONNECT, E.MANUAL_START, S.CONNECT, ()),
    (S.CONNECT, E.MANUAL_STOP, S.IDLE, (A.DROP_TCP, A.RELEASE)),
    (S.CONNECT, E.CONNECT_RETRY_TIMER_EXPIRES, S.CONNECT, (A.START_CONNECT_RETRY_TIMER, A.CONNECT)),
    (S.CONNECT, E.TCP_CR_ACKED, S.OPEN_SENT, (A.SEND_OPEN, A.SET_LARGE_HOLD_TIMER)),
    (S.CONNECT, E.TCP_CONNECTION_CONFIRMED, S.OPEN_SENT, (A.SEND_OPEN, A.SET_LARGE_HOLD_TIMER)),
    (S.CONNECT, E.TCP_CONNECTION_FAILS, S.ACTIVE, (A.START_CONNECT_RETRY_TIMER,)),
    (S.ACTIVE, E.MANUAL_STOP, S.IDLE, (A.RELEASE,)),
    (S.ACTIVE, E.CONNECT_RETRY_TIMER_EXPIRES, S.CONNECT, (A.CONNECT,)),
    (S.ACTIVE, E.TCP_CONNECTION_CONFIRMED, S.OPEN_SENT, (A.SEND_OPEN, A.SET_LARGE_HOLD_TIMER)),
    (S.ACTIVE, E.TCP_CONNECTION_FAILS, S.IDLE, (A.RELEASE,)),
    (S.OPEN_SENT, E.MANUAL_STOP, S.IDLE, (A.SEND_NOTIFICATION, A.DROP_TCP)),
    (S.OPEN_SENT, E.HOLD_TIMER_EXPIRES, S.IDLE, (A.SEND_HOLD_TIMER_EXPIRED, A.DROP_TCP)),
    (S.OPEN_SENT, E.TCP_CONNECTION_FAILS, S.ACTIVE, (A.START_CONNECT_RETRY_TIMER,)),
    (
        S.OPEN_SENT,
        E.BGP_OPEN,
        S.OPEN_CONFIRM,
        (A.PROCESS_OPEN, A.SEND_KEEPALIVE, A.START_KEEPALIVE_TIMER, A.RESTART_HOLD_TIMER),
    ),
    (S.OPEN_SENT, E.BGP_HEADER_ERR, S.IDLE, (A.SEND_NOTIFICATION,)),
    (S.OPEN_SENT, E.BGP_OPEN_MSG_ERR, S.IDLE, (A.SEND_NOTIFICATION,)),
    (S.OPEN_SENT, E.OPEN_COLLISION_DUMP, S.IDLE, (A.SEND_NOTIFICATION,)),
    (S.OPEN_SENT, E.NOTIF_MSG_VER_ERR, S.IDLE, (A.RECORD_NOTIFICATION,)),
    (S.OPEN_CONFIRM, E.MANUAL_STOP, S.IDLE, (A.SEND_NOTIFICATION,)),
    (S.OPEN_CONFIRM, E.HOLD_TIMER_EXPIRES, S.IDLE, (A.SEND_HOLD_TIMER_EXPIRED,)),
    (S.OPEN_CONFIRM, E.KEEPALIVE_TIMER_EXPIRES, S.OPEN_CONFIRM, (A.SEND_KEEPALIVE,)),
    (S.OPEN_CONFIRM, E.TCP_CONNECTION_FAILS, S.IDLE, (A.RELEASE,)),
    (S.OPEN_CONFIRM, E.NOTIF_MSG, S.IDLE, (A.RECORD_NOTIFICATION,)),
    (S.OPEN_CONFIRM, E.OPEN_COLLISION_DUMP, S.IDLE, (A.SEND_NOTIFICATION,)),
    (S.OPEN_CONFIRM, E.KEEPALIVE_MSG, S.ESTABLISHED, (A.RESTART_HOLD_TIMER, A.ESTABLISH)),
    (S.ESTABLISHED, E.MANUAL_STOP, S.IDLE, (A.SEND_NOTIFICATION,)),
    (S.ESTABLISHED, E.HOLD_TIMER_EXPIRES, S.IDLE, (A.SEND_HOLD_TIMER_EXPIRED,)),
    (S.ESTABLISHED, E.KEEPALIVE_TIMER_EXPIRES, S.ESTABLISHED, (A.SEND_KEEPALIVE,)),
    (S.ESTABLISHED, E.TCP_CONNECTION_FAILS, S.IDLE, (A.RELEASE,)),
    (S.ESTABLISHED, E.NOTIF_MSG, S.IDLE, (A.RECORD_NOTIFICATION,)),
    (S.ESTABLISHED, E.KEEPALIVE_MSG, S.ESTABLISHED, (A.RESTART_HOLD_TIMER,)),
    (S.ESTABLISHED, E.UPDATE_MSG, S.ESTABLISHED, (A.RESTART_HOLD_TIMER, A.DELIVER_UPDATE)),
    (S.ESTABLISHED, E.UPDATE_MSG_ERR, S.IDLE, (A.SEND_NOTIFICATION,)),
    (S.ESTABLISHED, E.ROUTE_REFRESH_MSG, S.ESTABLISHED, (A.RESTART_HOLD_TIMER,)),
    # Unexpected messages: RFC 6608 FSM errors via the defaults.
    (S.OPEN_SENT, E.KEEPALIVE_MSG, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.OPEN_SENT, E.UPDATE_MSG, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.OPEN_CONFIRM, E.UPDATE_MSG, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.OPEN_CONFIRM, E.BGP_OPEN, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.OPEN_CONFIRM, E.ROUTE_REFRESH_MSG, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.ESTABLISHED, E.BGP_OPEN, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.ESTABLISHED, E.BGP_OPEN_MSG_ERR, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.ESTABLISHED, E.CONNECT_RETRY_TIMER_EXPIRES, S.IDLE, (A.SEND_FSM_ERROR,)),
    (S.CONNECT, E.HOLD_TIMER_EXPIRES, S.IDLE, (A.DROP_TCP,)),
    (S.ACTIVE, E.BGP_OPEN, S.IDLE, (A.DROP_TCP,)),
]


@pytest.mark.parametrize(
    ("state", "event", "next_state", "actions"),
    RFC_ROWS,
    ids=[f"{s.value}-{e.rfc_name}" for s, e, _, _ in RFC_ROWS],
)
def test_rfc_rows(
    state: State, event: Event, next_state: State, actions: tuple[Action, ...]
) -> None:
    tr = transition(state, event)
    assert tr.next_state is next_state
    missing = [a for a in actions if a not in tr.actions]
    assert not missing, f"{state}/{event.rfc_name}: missing {missing} in {tr.actions}"


@pytest.mark.parametrize("state", [S.CONNECT, S.ACTIVE, S.OPEN_SENT, S.OPEN_CONFIRM, S.ESTABLISHED])
@pytest.mark.parametrize(
    "event",
    [
        E.MANUAL_START,
        E.AUTOMATIC_START,
        E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
        E.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT,
    ],
)
def test_start_events_ignored_once_started(state: State, event: Event) -> None:
    tr = transition(state, event)
    assert tr.next_state is state and tr.actions == ()


def _all_rows() -> list[tuple[State, Event | None, Transition]]:
    rows: list[tuple[State, Event | None, Transition]] = [
        (s, e, tr) for s, r in TRANSITIONS.items() for e, tr in r.items()
    ]
    rows += [(s, None, tr) for s, tr in DEFAULTS.items()]
    return rows


def test_reason_exactly_on_changes_into_idle() -> None:
    for state, event, tr in _all_rows():
        into_idle = tr.next_state is S.IDLE and state is not S.IDLE
        assert (tr.reason is not None) == into_idle, (state, event, tr)
        if into_idle:
            # "releases all BGP resources, drops the TCP connection"
            assert A.DROP_TCP in tr.actions and A.RELEASE in tr.actions, (state, event)
            # The automatic restart follows every failure but an operator's stop or a
            # collision (the surviving connection carries on).
            restarts = A.START_IDLE_HOLD_TIMER in tr.actions
            no_restart = tr.reason in (DownReason.ADMIN_STOP, DownReason.COLLISION)
            assert restarts != no_restart, (state, event)
            assert tr.actions.index(A.RELEASE) < tr.actions.index(A.DROP_TCP) + 2
            if restarts:
                assert tr.actions[-1] is A.START_IDLE_HOLD_TIMER  # after RELEASE


def test_notifications_only_where_a_connection_exists() -> None:
    sends = {A.SEND_NOTIFICATION, A.SEND_FSM_ERROR, A.SEND_HOLD_TIMER_EXPIRED}
    for state, event, tr in _all_rows():
        if state in (S.IDLE, S.CONNECT, S.ACTIVE):
            assert not sends & set(tr.actions), (state, event)


def test_reasons_match_events() -> None:
    expected = {
        E.MANUAL_STOP: DownReason.ADMIN_STOP,
        E.HOLD_TIMER_EXPIRES: DownReason.HOLD_TIMER_EXPIRED,
        E.NOTIF_MSG: DownReason.NOTIFICATION_RECEIVED,
        E.NOTIF_MSG_VER_ERR: DownReason.NOTIFICATION_RECEIVED,
        E.OPEN_COLLISION_DUMP: DownReason.COLLISION,
        E.BGP_HEADER_ERR: DownReason.NOTIFICATION_SENT,
        E.BGP_OPEN_MSG_ERR: DownReason.NOTIFICATION_SENT,
        E.UPDATE_MSG_ERR: DownReason.NOTIFICATION_SENT,
        E.ROUTE_REFRESH_MSG_ERR: DownReason.NOTIFICATION_SENT,
    }
    for state, rows in TRANSITIONS.items():
        for event, tr in rows.items():
            if event in expected and tr.next_state is S.IDLE and state is not S.IDLE:
                assert tr.reason is expected[event], (state, event)
    assert TRANSITIONS[S.ACTIVE][E.TCP_CONNECTION_FAILS].reason is DownReason.TCP_FAILED
    for s in (S.OPEN_CONFIRM, S.ESTABLISHED):
        assert TRANSITIONS[s][E.TCP_CONNECTION_FAILS].reason is DownReason.TCP_CLOSED


def test_every_action_is_documented_and_implemented() -> None:
    assert set(ACTION_DOC) == set(Action)
    assert set(_ACTIONS) == set(Action)
    used = {a for _, _, tr in _all_rows() for a in tr.actions}
    assert used == set(Action)


def test_event_numbers_and_names() -> None:
    numbers = {
        E.MANUAL_START: 1,
        E.MANUAL_STOP: 2,
        E.AUTOMATIC_START: 3,
        E.MANUAL_START_WITH_PASSIVE_TCP_ESTABLISHMENT: 4,
        E.AUTOMATIC_START_WITH_PASSIVE_TCP_ESTABLISHMENT: 5,
        E.CONNECT_RETRY_TIMER_EXPIRES: 9,
        E.HOLD_TIMER_EXPIRES: 10,
        E.KEEPALIVE_TIMER_EXPIRES: 11,
        E.TCP_CR_ACKED: 16,
        E.TCP_CONNECTION_CONFIRMED: 17,
        E.TCP_CONNECTION_FAILS: 18,
        E.BGP_OPEN: 19,
        E.BGP_HEADER_ERR: 21,
        E.BGP_OPEN_MSG_ERR: 22,
        E.OPEN_COLLISION_DUMP: 23,
        E.NOTIF_MSG_VER_ERR: 24,
        E.NOTIF_MSG: 25,
        E.KEEPALIVE_MSG: 26,
        E.UPDATE_MSG: 27,
        E.UPDATE_MSG_ERR: 28,
    }
    assert {e: int(e) for e in numbers} == numbers
    # RFC 4271's 28 events, then RFC 9687's Event 29 (SendHoldTimer_Expires).
    assert [int(e) for e in Event if e < 100] == list(range(1, 30))
    assert E.HOLD_TIMER_EXPIRES.rfc_name == "HoldTimer_Expires"
    assert all(e.rfc_name for e in Event)


def test_docs_are_generated_from_the_table() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "fsm.md"
    assert doc.exists(), "run `python -m bgp.fsm` to generate docs/fsm.md"
    assert doc.read_text(encoding="utf-8") == render_markdown(), (
        "docs/fsm.md is stale: run `python -m bgp.fsm`"
    )


def test_render_mentions_every_row() -> None:
    text = render_markdown()
    for state in State:
        assert f"## {state.value}" in text
        for event in TRANSITIONS[state]:
            assert f"{int(event)} {event.rfc_name}" in text
    for action in Action:
        assert f"`{action.value}`" in text


def test_main_writes_the_doc(tmp_path: Path) -> None:
    out = tmp_path / "fsm.md"
    assert fsm.main([str(out)]) == 0
    assert out.read_text(encoding="utf-8") == render_markdown()
