"""Graceful restart, the pure parts: trigger rules (RFC 4724 §4.2, RFC 8538 §4), Hard
Reset, capability bits, the helper's stale bookkeeping and deadlines, and the speaker's
stale marking and sweep."""

from __future__ import annotations

from bgp.events import SessionDown
from bgp.fsm import DownReason, State
from bgp.graceful import (
    hard_reset_notification,
    is_hard_reset,
    restart_capability,
    retained_families,
)
from bgp.rib.graceful import HelperState
from bgp.session import SessionConfig
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, CeaseSubcode, ErrorCode, MessageType
from bgp.wire.capabilities import GracefulRestart, GracefulRestartFamily
from bgp.wire.messages import decode_message, encode_message
from bgp.wire.model import DEFAULT, Negotiated, Notification, Open
from tests.unit.rib.helpers import announce, attrs, peer, pfx, session
from tests.unit.rib.test_speaker import make_speaker, up
from tests.unit.test_session_pair import ID_A, ID_B, cfg, last_notification, pair

V4 = IPV4_UNICAST


def gr(*, n: bool = True, f: bool = True, r: bool = False, time: int = 120,
       families: tuple[object, ...] = (V4,)) -> GracefulRestart:
    return GracefulRestart(time, r, n, tuple(GracefulRestartFamily(x, f)  # type: ignore[arg-type]
                                             for x in families))


def neg(local: GracefulRestart | None = None, remote: GracefulRestart | None = None,
        families: frozenset[object] = frozenset({V4})) -> Negotiated:
    return Negotiated(families=families,  # type: ignore[arg-type]
                      local_graceful_restart=local, peer_graceful_restart=remote)


CEASE_ADMIN = Notification(ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
HARD_RESET = Notification(ErrorCode.CEASE, CeaseSubcode.HARD_RESET, b"\x06\x02")
UPDATE_ERR = Notification(ErrorCode.UPDATE_MESSAGE, 1)


# --------------------------------------------------------------------------- triggers


def test_tcp_close_and_hold_timer_keep_routes_of_the_peers_gr_families() -> None:
    n = neg(gr(n=False), gr(n=False, families=(V4, IPV6_UNICAST)))
    for reason in (DownReason.TCP_CLOSED, DownReason.TCP_FAILED, DownReason.HOLD_TIMER_EXPIRED):
        assert retained_families(reason, None, n) == {V4}  # ∩ negotiated families


def test_no_graceful_restart_without_both_capabilities() -> None:
    assert retained_families(DownReason.TCP_CLOSED, None, neg(gr(), None)) == frozenset()
    assert retained_families(DownReason.TCP_CLOSED, None, neg(None, gr())) == frozenset()
    assert retained_families(DownReason.TCP_CLOSED, None, None) == frozenset()
    # The peer listed no family (BIRD's "aware" mode): nothing to keep.
    assert retained_families(DownReason.TCP_CLOSED, None, neg(gr(), gr(families=()))) == set()


def test_notifications_need_the_n_bit_on_both_sides() -> None:
    for reason in (DownReason.NOTIFICATION_RECEIVED, DownReason.NOTIFICATION_SENT):
        for note in (CEASE_ADMIN, UPDATE_ERR):
            assert retained_families(reason, note, neg(gr(n=False), gr())) == set()
            assert retained_families(reason, note, neg(gr(), gr(n=False))) == set()
            assert retained_families(reason, note, neg(gr(), gr())) == {V4}  # RFC 8538 §4
        # A Hard Reset always deletes.
        assert retained_families(reason, HARD_RESET, neg(gr(), gr())) == set()


def test_admin_stop_deletes() -> None:
    assert retained_families(DownReason.ADMIN_STOP, CEASE_ADMIN, neg(gr(), gr())) == set()


# --------------------------------------------------------------------------- hard reset


def test_cease_becomes_hard_reset_only_with_n_bit() -> None:
    note = hard_reset_notification(neg(gr(), gr()), CeaseSubcode.ADMINISTRATIVE_SHUTDOWN, b"x")
    assert (note.code, note.subcode, note.data) == (6, 9, b"\x06\x02x")
    assert is_hard_reset(note)
    assert note.describe().startswith("CEASE/9 (hard reset: CEASE/2")
    plain = hard_reset_notification(neg(gr(n=False), gr()), CeaseSubcode.ADMINISTRATIVE_SHUTDOWN)
    assert (plain.subcode, plain.data) == (2, b"")
    # RFC 8538 §5: "Other Configuration Change" stays a graceful Cease.
    other = hard_reset_notification(neg(gr(), gr()), CeaseSubcode.OTHER_CONFIGURATION_CHANGE)
    assert other.subcode == CeaseSubcode.OTHER_CONFIGURATION_CHANGE


def test_session_stop_sends_hard_reset_when_n_negotiated() -> None:
    cap = gr()
    net, a, b, link = pair(cfg(graceful_restart=cap),
                           cfg(65002, ID_B, 65001, passive=True, graceful_restart=cap))
    a.stop(net.now)
    net.pump()
    note = last_notification(link, a)
    assert (note.code, note.subcode) == (ErrorCode.CEASE, CeaseSubcode.HARD_RESET)
    assert note.data[:2] == bytes((ErrorCode.CEASE, CeaseSubcode.ADMINISTRATIVE_SHUTDOWN))
    assert b.state is State.IDLE
    (down,) = net.downs(b)
    assert retained_families(down.reason, down.notification, neg(cap, cap)) == set()


# --------------------------------------------------------------------------- capability


def test_capability_bits_round_trip() -> None:
    cap = restart_capability([V4], 90, restarting=True, forwarding=True)
    assert cap.restarting and cap.notification and cap.families[0].forwarding_preserved
    msg = Open(65001, 90, ID_A, (cap,))
    back = decode_message(MessageType.OPEN, encode_message(msg, DEFAULT)[19:], DEFAULT)
    assert isinstance(back, Open)
    assert back.capabilities == (cap,)
    cold = restart_capability([V4], 90, restarting=False, forwarding=False, notification=False)
    assert not cold.restarting and not cold.notification
    assert not cold.families[0].forwarding_preserved


def test_restart_window_picks_the_r_bit_capability_by_time() -> None:
    during = restart_capability([V4], 120, restarting=True, forwarding=True)
    after = restart_capability([V4], 120, restarting=False, forwarding=True)
    c = SessionConfig(local_asn=1, router_id=ID_A, peer_asn=2, graceful_restart=after,
                      restart_window_gr=during, restart_window_until=100.0)
    assert c.build_open(50.0).find(GracefulRestart) == [during]
    assert c.build_open(100.0).find(GracefulRestart) == [after]
    assert c.build_open().find(GracefulRestart) == [after]


# --------------------------------------------------------------------------- helper state


def test_helper_restart_time_expiry() -> None:
    h = HelperState(stale_time=360)
    h.session_lost(10.0, {V4}, gr(time=5))
    assert h.next_deadline() == 15.0
    assert h.expired(14.9) == set()
    assert h.expired(15.0) == {V4}
    assert not h.active and h.next_deadline() is None


def test_helper_session_back_f_bit_and_eor() -> None:
    h = HelperState(stale_time=360)
    h.session_lost(0.0, {V4, IPV6_UNICAST}, gr())
    # IPv6 missing from the new capability: swept at once; IPv4 waits for End-of-RIB.
    flush = h.session_up(3.0, gr(families=(V4,)), {V4, IPV6_UNICAST})
    assert flush == {IPV6_UNICAST}
    assert h.next_deadline() == 363.0
    assert h.end_of_rib(IPV6_UNICAST) is False
    assert h.end_of_rib(V4) is True
    assert not h.active


def test_helper_f_bit_clear_or_no_capability_flushes() -> None:
    h = HelperState()
    h.session_lost(0.0, {V4}, gr())
    assert h.session_up(1.0, gr(f=False), {V4}) == {V4}
    h.session_lost(0.0, {V4}, gr())
    assert h.session_up(1.0, None, {V4}) == {V4}


def test_helper_stale_timer_bounds_the_wait_for_eor() -> None:
    h = HelperState(stale_time=10)
    h.session_lost(0.0, {V4}, gr())
    assert h.session_up(2.0, gr(), {V4}) == set()
    assert h.expired(11.9) == set()
    assert h.expired(12.0) == {V4}


# --------------------------------------------------------------------------- speaker


def test_speaker_keeps_stale_routes_and_sweeps_on_end_of_rib() -> None:
    changes: list[object] = []
    sp, _enc = make_speaker("10.0.0.1", on_best_change=lambda f, ch: changes.extend(ch))
    pa = peer("A", "10.0.0.2")
    up(sp, pa)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100),
                                    "172.17.8.0/24", "172.17.9.0/24"), 1.0)
    changes.clear()
    sp.peer_down("A", 2.0, retain={V4})
    assert changes == []  # nothing left the Loc-RIB (or the kernel)
    rows = sp.routes()
    assert [r["prefix"] for r in rows] == ["172.17.8.0/24", "172.17.9.0/24"]
    assert all(p["stale"] for r in rows for p in r["paths"])
    # Back: one prefix announced again (fresh), then End-of-RIB sweeps the other.
    sp.peer_up("A", session(pa), 3.0)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), "172.17.8.0/24"), 3.1)
    rows = sp.routes()
    assert {r["prefix"]: r["paths"][0]["stale"] for r in rows} == {
        "172.17.8.0/24": False, "172.17.9.0/24": True}
    assert all(len(r["paths"]) == 1 for r in rows)  # replaced, not duplicated
    changes.clear()
    sp.sweep_stale("A", V4)
    assert [r["prefix"] for r in sp.routes()] == ["172.17.8.0/24"]
    assert changes == [(pfx("172.17.9.0/24"), None)]


def test_consecutive_restart_deletes_routes_still_stale() -> None:
    sp, _ = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    up(sp, pa)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), "172.17.8.0/24"), 1.0)
    sp.peer_down("A", 2.0, retain={V4})
    sp.peer_up("A", session(pa), 3.0)
    # RFC 4724 §4.2: down again before End-of-RIB: the still-stale route goes.
    sp.peer_down("A", 4.0, retain={V4})
    assert sp.routes() == []


def test_remove_peer_sweeps_stale_routes() -> None:
    sp, _ = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    up(sp, pa)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), "172.17.8.0/24"), 1.0)
    sp.peer_down("A", 2.0, retain={V4})
    sp.remove_peer("A", 3.0)
    assert sp.routes() == []


def test_session_down_event_shape() -> None:
    # What the daemon feeds the rules: the SessionDown reason and NOTIFICATION.
    down = SessionDown(DownReason.NOTIFICATION_RECEIVED, HARD_RESET)
    assert retained_families(down.reason, down.notification, neg(gr(), gr())) == set()


def test_failed_reconnect_keeps_the_restart_timer() -> None:
    # TCP close after Established keeps the routes stale; a reconnect attempt refused
    # before Established (no negotiated context) must not drop the helper's restart
    # timer, or the stale routes would stay forever (RFC 4724 §4.2).
    from roost.graceful import GracefulRestartHelper

    now = [0.0]
    sp, _ = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    helper = GracefulRestartHelper(sp, lambda out: None, stale_time=360,
                                   clock=lambda: now[0])
    up(sp, pa)
    helper.session_up("A", neg(gr(), gr(time=120)))
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), "172.17.8.0/24"), 1.0)
    retain = helper.session_down("A", SessionDown(DownReason.TCP_CLOSED, None))
    assert retain == {V4}
    sp.peer_down("A", 2.0, retain)
    assert [p["stale"] for r in sp.routes() for p in r["paths"]] == [True]
    now[0] = 10.0
    refused = SessionDown(DownReason.NOTIFICATION_RECEIVED,
                          Notification(ErrorCode.CEASE, CeaseSubcode.CONNECTION_REJECTED))
    assert helper.session_down("A", refused) == frozenset()
    sp.peer_down("A", 10.0, frozenset())
    assert helper.stale_families("A") == {V4}
    now[0] = 200.0  # past the peer's restart time (120 s)
    helper.run_timers()
    assert sp.routes() == []


def test_expiry_is_reported_once_the_stale_routes_are_gone() -> None:
    # The daemon forgets a dynamic neighbour that left with graceful restart when its
    # stale routes expire: the helper says whose routes its timers removed.
    from roost.graceful import GracefulRestartHelper

    now = [0.0]
    expired: list[str] = []
    sp, _ = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    helper = GracefulRestartHelper(sp, lambda out: None, stale_time=360,
                                   clock=lambda: now[0], on_expired=expired.append)
    up(sp, pa)
    helper.session_up("A", neg(gr(), gr(time=120)))
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), "172.17.8.0/24"), 1.0)
    retain = helper.session_down("A", SessionDown(DownReason.TCP_CLOSED, None))
    sp.peer_down("A", 2.0, retain)
    now[0] = 60.0
    helper.run_timers()
    assert expired == [] and helper.stale_families("A") == {V4}
    now[0] = 200.0
    helper.run_timers()
    assert expired == ["A"] and helper.stale_families("A") == set()
    assert sp.routes() == []
