"""Long-lived graceful restart (RFC 9494), the pure parts: the capability codec and its
negotiation, which session endings keep routes long-lived, the decision step, the
helper's phases with a hand clock (GR stale -> LLGR stale -> swept), the speaker's phase
change (LLGR_STALE added, NO_LLGR removed) and export, and the daemon glue's timers."""

from __future__ import annotations

import pytest

from bgp.fsm import DownReason
from bgp.graceful import long_lived_capability, long_lived_families
from bgp.rib.decision import BestReason, select
from bgp.rib.graceful import HelperState, is_long_lived_stale
from bgp.rib.path import DropReason
from bgp.session import SessionConfig
from bgp.speaker import PeerConfigForSpeaker, Speaker
from bgp.types import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    CapabilityCode,
    CeaseSubcode,
    ErrorCode,
    Family,
    WellKnownCommunity,
)
from bgp.wire.capabilities import (
    GracefulRestart,
    GracefulRestartFamily,
    LongLivedFamily,
    LongLivedGracefulRestart,
)
from bgp.wire.messages import decode_capabilities, encode_capabilities
from bgp.wire.model import Negotiated, Notification, Open
from roost.graceful import GracefulRestartHelper
from tests.unit.rib.helpers import FakeEncoder, announce, attrs, path, peer, pfx, session
from tests.unit.rib.test_speaker import make_speaker
from tests.unit.test_session_pair import ID_A, ID_B, cfg, pair

V4, V6 = IPV4_UNICAST, IPV6_UNICAST
LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)
NO_LLGR = int(WellKnownCommunity.NO_LLGR)
BLOCK = "172.17.8.0/24"


def gr(*, time: int = 120, f: bool = True, families: tuple[object, ...] = (V4,),
       n: bool = True) -> GracefulRestart:
    return GracefulRestart(time, False, n, tuple(
        GracefulRestartFamily(x, f) for x in families))  # type: ignore[arg-type]


def llgr(llst: int = 60, *, f: bool = True,
         families: tuple[object, ...] = (V4,)) -> LongLivedGracefulRestart:
    return LongLivedGracefulRestart(tuple(
        LongLivedFamily(x, f, llst) for x in families))  # type: ignore[arg-type]


def neg(*, local_gr: GracefulRestart | None = None, peer_gr: GracefulRestart | None = None,
        local_ll: LongLivedGracefulRestart | None = None,
        peer_ll: LongLivedGracefulRestart | None = None) -> Negotiated:
    return Negotiated(families=frozenset({V4}), local_graceful_restart=local_gr,
                      peer_graceful_restart=peer_gr, local_long_lived=local_ll,
                      peer_long_lived=peer_ll)


# --------------------------------------------------------------------------- capability


def test_capability_golden_bytes() -> None:
    cap = LongLivedGracefulRestart((LongLivedFamily(V4, True, 3600),
                                    LongLivedFamily(V6, False, 0xFFFFFF)))
    # RFC 9494 §3: code 71, then per family AFI (2), SAFI (1), flags (F = 0x80), LLST (3).
    wire = bytes.fromhex("47 0e" "0001 01 80 000e10" "0002 01 00 ffffff")
    assert encode_capabilities([cap]) == [wire]
    assert decode_capabilities(wire) == [cap]
    assert cap.stale_time(V6) == 0xFFFFFF and cap.stale_time(Family(1, 128)) is None
    # No family at all (a "helper only" speaker) is valid.
    assert decode_capabilities(b"\x47\x00") == [LongLivedGracefulRestart(())]
    assert int(CapabilityCode.LONG_LIVED_GRACEFUL_RESTART) == 71


def test_capability_errors() -> None:
    from bgp.errors import LocalUsageError, ProtocolError

    with pytest.raises(ProtocolError):
        decode_capabilities(bytes.fromhex("47 06 0001 01 80 0000"))  # 6 octets, not 7
    with pytest.raises(LocalUsageError):
        encode_capabilities([llgr(0x1000000)])
    with pytest.raises(ValueError):
        SessionConfig(local_asn=1, router_id=ID_A, peer_asn=2, long_lived_stale_time=-1)


def test_scapy_reads_the_capability_framing() -> None:
    pytest.importorskip("scapy")
    from scapy.main import load_contrib

    load_contrib("bgp")
    import scapy.contrib.bgp as sbgp

    # scapy has no LLGR layer: it must read code 71 as a generic capability whose value
    # is exactly one 7-octet family entry.
    (wire,) = encode_capabilities([llgr(3600)])
    cap = sbgp.BGPCapability(wire)
    assert cap.code == 71 and cap.length == 7
    assert bytes(cap.cap_data) == bytes.fromhex("0001 01 80 000e10")


def test_capability_follows_gr_families_and_f_bits() -> None:
    during = gr(f=False, families=(V4, V6))
    cap = long_lived_capability(during, 3600)
    assert cap == LongLivedGracefulRestart((LongLivedFamily(V4, False, 3600),
                                            LongLivedFamily(V6, False, 3600)))
    # In the OPEN right after the GR capability; none without GR or with LLST 0.
    opn = cfg(graceful_restart=gr(), long_lived_stale_time=60).build_open()
    assert [c.code for c in opn.capabilities][-2:] == [64, 71]
    assert not cfg(long_lived_stale_time=60).build_open().find(LongLivedGracefulRestart)
    assert not cfg(graceful_restart=gr()).build_open().find(LongLivedGracefulRestart)


def test_negotiation_over_a_session_pair() -> None:
    a_cfg = cfg(graceful_restart=gr(), long_lived_stale_time=3600)
    b_cfg = cfg(65002, ID_B, 65001, passive=True, graceful_restart=gr(time=2),
                long_lived_stale_time=60)
    _net, a, b, _link = pair(a_cfg, b_cfg)
    assert a.negotiated is not None and b.negotiated is not None
    assert a.negotiated.peer_long_lived == llgr(60)
    assert a.negotiated.local_long_lived == llgr(3600)
    assert b.negotiated.peer_long_lived == llgr(3600)
    # The helper (A) keeps B's routes for B's LLST (60 s, below our own 3600 s).
    assert long_lived_families(DownReason.TCP_CLOSED, None, a.negotiated) == {V4: 60}
    # and B keeps A's for at most its own 60 s.
    assert long_lived_families(DownReason.TCP_CLOSED, None, b.negotiated) == {V4: 60}


def test_negotiation_ignores_llgr_without_gr() -> None:
    # RFC 9494 §3: an LLGR capability without the GR capability "MUST be ignored".
    opn_gr = Open(65001, 90, ID_A, (gr(), llgr()))
    opn_no_gr = Open(65002, 90, ID_B, (llgr(),))
    from bgp.wire.model import negotiate

    n = negotiate(opn_gr, opn_no_gr)
    assert n.peer_long_lived is None and n.local_long_lived == llgr()
    assert negotiate(opn_no_gr, opn_gr).local_long_lived is None


# --------------------------------------------------------------------------- triggers


def test_long_lived_families_rules() -> None:
    full = neg(local_gr=gr(), peer_gr=gr(), local_ll=llgr(3600), peer_ll=llgr(7200))
    assert long_lived_families(DownReason.TCP_CLOSED, None, full) == {V4: 3600}  # bounded
    assert long_lived_families(DownReason.HOLD_TIMER_EXPIRED, None, full) == {V4: 3600}
    # We ended it on purpose, or a Hard Reset: no.
    assert long_lived_families(DownReason.ADMIN_STOP, None, full) == {}
    hard = Notification(ErrorCode.CEASE, CeaseSubcode.HARD_RESET)
    assert long_lived_families(DownReason.NOTIFICATION_RECEIVED, hard, full) == {}
    # Without LLGR on either side, or LLST 0: no.
    assert long_lived_families(DownReason.TCP_CLOSED, None,
                               neg(local_gr=gr(), peer_gr=gr(), peer_ll=llgr())) == {}
    assert long_lived_families(DownReason.TCP_CLOSED, None,
                               neg(local_gr=gr(), peer_gr=gr(), local_ll=llgr(),
                                   peer_ll=llgr(0))) == {}
    # RFC 9494 §4.2: the peer's GR capability lists no family: LLGR only.
    ll_only = neg(local_gr=gr(), peer_gr=gr(time=0, families=()), local_ll=llgr(),
                  peer_ll=llgr(30))
    assert long_lived_families(DownReason.TCP_CLOSED, None, ll_only) == {V4: 30}


# --------------------------------------------------------------------------- decision


def test_decision_llgr_stale_is_least_preferred() -> None:
    src_a, src_b = peer("A", "10.0.0.2"), peer("B", "10.0.0.3")
    # The stale one would win every later step (higher LOCAL_PREF, shorter AS_PATH).
    stale = path(BLOCK, attrs("10.0.0.9", local_pref=500, communities=(LLGR_STALE,)), src_a)
    fresh = path(BLOCK, attrs("10.0.0.9", local_pref=50, path=(1, 2, 3)), src_b)
    sel = select([stale, fresh])
    assert sel is not None and sel.best is fresh
    assert sel.reason is BestReason.LLGR_STALE
    assert sel.losers == ((stale, BestReason.LLGR_STALE),)
    assert BestReason.LLGR_STALE.phrase == "not long-lived stale"
    # Alone, it wins (the fallback).
    only = select([stale])
    assert only is not None and only.best is stale and only.reason is BestReason.ONLY_PATH
    # Two LLGR-stale paths: the usual steps decide between them.
    other = path(BLOCK, attrs("10.0.0.9", local_pref=100, communities=(LLGR_STALE,)), src_b)
    sel2 = select([other, stale])
    assert sel2 is not None and sel2.best is stale and sel2.reason is BestReason.LOCAL_PREF


# --------------------------------------------------------------------------- helper state


def test_helper_phases_gr_then_llgr_then_swept() -> None:
    h = HelperState(stale_time=360)
    h.session_lost(10.0, {V4}, gr(time=2), {V4: 60})
    assert h.next_deadline() == 12.0
    assert h.long_lived_due(11.9) == set() and h.expired(11.9) == set()
    assert h.long_lived_due(12.0) == {V4}
    assert h.expired(12.0) == set()  # not swept: long-lived now
    assert h.active and h.next_deadline() == 72.0  # the LLST runs from the phase change
    assert h.long_lived_due(71.9) == set() and h.expired(71.9) == set()
    assert h.expired(72.0) == {V4}
    assert not h.active and h.next_deadline() is None


def test_helper_without_llgr_sweeps_at_restart_time() -> None:
    h = HelperState()
    h.session_lost(0.0, {V4, V6}, gr(time=5, families=(V4, V6)), {V4: 60})
    assert h.long_lived_due(5.0) == {V4}
    assert h.expired(5.0) == {V6}


def test_helper_llgr_only_family_enters_long_lived_at_once() -> None:
    # RFC 9494 §4.2: GR restart time 0 (or the family not in GR): no GR phase.
    h = HelperState()
    h.session_lost(3.0, set(), gr(time=0, families=()), {V4: 30})
    assert h.active and h.next_deadline() == 3.0
    assert h.long_lived_due(3.0) == {V4}
    assert h.next_deadline() == 33.0


def test_helper_back_in_long_lived_phase_checks_the_llgr_f_bit() -> None:
    h = HelperState(stale_time=100)
    h.session_lost(0.0, {V4}, gr(time=2), {V4: 60})
    h.long_lived_due(2.0)
    # GR F bit set but LLGR F bit clear: the long-lived routes go (RFC 9494 §4.2).
    assert h.session_up(10.0, gr(), {V4}, llgr(f=False)) == {V4}
    h.session_lost(20.0, {V4}, gr(time=2), {V4: 60})
    h.long_lived_due(22.0)
    assert h.session_up(30.0, gr(), {V4}, None) == {V4}  # no LLGR capability any more
    h.session_lost(40.0, {V4}, gr(time=2), {V4: 60})
    h.long_lived_due(42.0)
    assert h.session_up(50.0, gr(), {V4}, llgr()) == set()
    assert h.next_deadline() == 150.0  # waits for End-of-RIB, bounded by stale_time
    assert h.end_of_rib(V4) is True and not h.active


# --------------------------------------------------------------------------- speaker


def _two_peer_speaker(llgr_target: bool) -> tuple[Speaker, FakeEncoder]:
    """A speaker with peer A (the one that goes away) and an eBGP peer T to export to."""
    sp, enc = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    pt = peer("T", "10.0.0.5", asn=65099)
    from bgp.policy import ACCEPT_ALL

    sp.add_peer(PeerConfigForSpeaker(pa))
    sp.add_peer(PeerConfigForSpeaker(pt, import_policy=ACCEPT_ALL, export_policy=ACCEPT_ALL))
    sp.peer_up("A", session(pa), 1.0)
    ctx = session(pt)
    if llgr_target:
        ctx = Negotiated(**{**{f: getattr(ctx, f) for f in ctx.__dataclass_fields__},
                            "peer_graceful_restart": gr(), "peer_long_lived": llgr()})
    sp.peer_up("T", ctx, 1.0)
    return sp, enc


def test_speaker_phase_change_adds_llgr_stale_and_drops_no_llgr() -> None:
    changes: list[tuple[str, object]] = []
    sp, enc = _two_peer_speaker(llgr_target=False)
    sp.on_best_change = lambda f, ch: changes.extend((str(p), s) for p, s in ch)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), BLOCK), 1.0)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100,
                                          communities=(NO_LLGR,)), "172.17.9.0/24"), 1.0)
    sp.peer_down("A", 2.0, retain={V4})
    changes.clear()
    out = sp.enter_long_lived("A", V4)
    rows = {r["prefix"]: r for r in sp.routes()}
    assert set(rows) == {BLOCK}  # NO_LLGR: removed at the phase change
    (p,) = rows[BLOCK]["paths"]
    assert p["stale"] and p["llgr_stale"] and "llgr-stale" in p["communities"]
    # Both prefixes changed best (the kernel replaces one route, deletes the other).
    assert sorted(c[0] for c in changes) == [BLOCK, "172.17.9.0/24"]
    assert dict(changes)[BLOCK] is not None and dict(changes)["172.17.9.0/24"] is None
    # RFC 9494 §4.5: the eBGP peer without LLGR gets neither (withdrawn both).
    state = enc.state(out["T"])
    assert {str(n.prefix): a for n, a in state.items()} == {BLOCK: None, "172.17.9.0/24": None}
    assert sp.route_reasons(pfx(BLOCK))["best"] == "A"
    # A second phase change is a no-op.
    assert sp.enter_long_lived("A", V4) == {}


def test_speaker_exports_llgr_stale_only_to_llgr_peers() -> None:
    sp, enc = _two_peer_speaker(llgr_target=True)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), BLOCK), 1.0)
    sp.peer_down("A", 2.0, retain={V4})
    out = sp.enter_long_lived("A", V4)
    (msg,) = enc.decode(out["T"])
    assert msg.kind == "announce" and msg.attrs is not None
    assert LLGR_STALE in msg.attrs.communities  # RFC 9494 §4.5: with the community


def test_speaker_fresh_path_wins_and_end_of_rib_sweeps() -> None:
    sp, _ = make_speaker("10.0.0.1")
    pa, pb = peer("A", "10.0.0.2"), peer("B", "10.0.0.3")
    for p in (pa, pb):
        sp.add_peer(PeerConfigForSpeaker(p))
        sp.peer_up(p.key, session(p), 1.0)
    sp.receive_update("A", announce(attrs("10.0.0.9", local_pref=100), BLOCK), 1.0)
    sp.peer_down("A", 2.0, retain={V4})
    sp.enter_long_lived("A", V4)
    # B announces the same block, with a worse LOCAL_PREF: still the best.
    sp.receive_update("B", announce(attrs("10.0.0.9", local_pref=10), BLOCK), 3.0)
    reasons = sp.route_reasons(pfx(BLOCK))
    assert reasons["best"] == "B" and reasons["reason"] == "llgr_stale"
    assert reasons["losers"][0]["text"] == "B wins over A: not long-lived stale"
    # B goes for good: A's long-lived path is the fallback.
    sp.peer_down("B", 4.0)
    assert sp.route_reasons(pfx(BLOCK))["best"] == "A"
    # A comes back, does not announce it again, sends End-of-RIB: swept.
    sp.peer_up("A", session(pa), 5.0)
    assert [r["prefix"] for r in sp.routes()] == [BLOCK]
    sp.sweep_stale("A", V4)
    assert sp.routes() == []


def test_route_received_with_llgr_stale_is_least_preferred() -> None:
    sp, _ = make_speaker("10.0.0.1")
    rr1, rr2 = peer("R1", "10.0.0.2"), peer("R2", "10.0.0.3")
    for p in (rr1, rr2):
        sp.add_peer(PeerConfigForSpeaker(p))
        sp.peer_up(p.key, session(p), 1.0)
    # R1 (lower address, would win the tie-break) reflects a route it keeps long-lived.
    sp.receive_update("R1", announce(attrs("10.0.0.9", local_pref=100,
                                           communities=(LLGR_STALE,)), BLOCK), 1.0)
    sp.receive_update("R2", announce(attrs("10.0.0.9", local_pref=100), BLOCK), 1.0)
    reasons = sp.route_reasons(pfx(BLOCK))
    assert reasons["best"] == "R2" and reasons["reason"] == "llgr_stale"
    row = sp.routes()[0]
    assert [(p["from"], p["stale"], p["llgr_stale"]) for p in row["paths"]] == [
        ("R1", False, True), ("R2", False, False)]
    assert is_long_lived_stale(sp._ribs[V4].get(pfx(BLOCK)).paths[0])  # type: ignore[union-attr]


def test_drop_reason_text() -> None:
    assert DropReason.LLGR_STALE.value == "long-lived stale, peer without LLGR"


# --------------------------------------------------------------------------- daemon glue


def test_helper_glue_phase_change_and_expiry_with_a_hand_clock() -> None:
    from bgp.events import SessionDown

    now = [0.0]
    sent: list[object] = []
    sp, _ = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    helper = GracefulRestartHelper(sp, sent.append, stale_time=360, clock=lambda: now[0])
    sp.add_peer(PeerConfigForSpeaker(pa))
    ctx = neg(local_gr=gr(), peer_gr=gr(time=2), local_ll=llgr(3600), peer_ll=llgr(60))
    helper.session_up("A", ctx)
    sp.peer_up("A", session(pa), 0.0)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), BLOCK), 0.0)
    retain = helper.session_down("A", SessionDown(DownReason.TCP_CLOSED, None))
    assert retain == {V4}
    sp.peer_down("A", 0.0, retain)
    now[0] = 1.9
    helper.run_timers()
    assert not sp.routes()[0]["paths"][0]["llgr_stale"]
    now[0] = 2.0
    helper.run_timers()
    (p,) = sp.routes()[0]["paths"]
    assert p["stale"] and p["llgr_stale"]
    now[0] = 61.9
    helper.run_timers()
    assert sp.routes()
    now[0] = 62.0
    helper.run_timers()
    assert sp.routes() == [] and helper.stale_families("A") == set()


def test_helper_glue_llgr_alone_when_gr_not_negotiated_for_the_family() -> None:
    from bgp.events import SessionDown

    now = [0.0]
    sp, _ = make_speaker("10.0.0.1")
    pa = peer("A", "10.0.0.2")
    helper = GracefulRestartHelper(sp, lambda out: None, stale_time=360,
                                   clock=lambda: now[0])
    sp.add_peer(PeerConfigForSpeaker(pa))
    ctx = neg(local_gr=gr(), peer_gr=gr(time=0, families=()), local_ll=llgr(3600),
              peer_ll=llgr(30))
    helper.session_up("A", ctx)
    sp.peer_up("A", session(pa), 0.0)
    sp.receive_update("A", announce(attrs("10.0.0.2", local_pref=100), BLOCK), 0.0)
    retain = helper.session_down("A", SessionDown(DownReason.HOLD_TIMER_EXPIRED, None))
    assert retain == {V4}
    sp.peer_down("A", 0.0, retain)
    helper.run_timers()  # the phase change is due at once
    assert sp.routes()[0]["paths"][0]["llgr_stale"]
    now[0] = 30.0
    helper.run_timers()
    assert sp.routes() == []


# --------------------------------------------------------------------------- config


def test_config_long_lived_stale_time() -> None:
    from roost import config

    base = "[router]\nasn = 64512\nid = '10.0.0.1'\n"
    assert config.loads(base).router.graceful_restart.long_lived_stale_time == 3600
    c = config.loads(base + "graceful_restart = { restart_time = 2, "
                     "long_lived_stale_time = 60 }\n")
    assert c.router.graceful_restart.long_lived_stale_time == 60
    off = config.loads(base + "graceful_restart = { long_lived_stale_time = 0 }\n")
    assert off.router.graceful_restart.long_lived_stale_time == 0
    with pytest.raises(config.ConfigError, match=r"long_lived_stale_time: must be "
                       r"0\.\.16777215, got 16777216"):
        config.loads(base + "graceful_restart = { long_lived_stale_time = 16777216 }\n")


def test_cli_marks_long_lived_paths() -> None:
    from roost.cli import _stale_text

    assert _stale_text({"stale": True, "llgr_stale": True}) == " (llgr-stale)"
    assert _stale_text({"stale": False, "llgr_stale": True}) == " (llgr-stale)"  # received so
    assert _stale_text({"stale": True, "llgr_stale": False}) == " (stale)"
    assert _stale_text({"stale": False, "llgr_stale": False}) == ""
