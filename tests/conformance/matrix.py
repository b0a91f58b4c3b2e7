"""The conformance matrix: scenarios, the daemons (columns), and the ONE table of
combinations that are not run, each with its reason.

A test declares its scenario with ``@pytest.mark.scenario("id")`` and takes its daemon from
the ``daemon`` parameter (use :func:`daemons_for` to parametrize: it leaves out the
unsupported combinations).  ``conftest.py`` records the outcomes and writes
``docs/conformance.md`` from them.
"""

from __future__ import annotations

COLUMNS: tuple[str, ...] = ("gobgp", "bird", "frr", "exabgp", "scapy")
TITLES = {"gobgp": "GoBGP 3.10", "bird": "BIRD 2.0.12", "frr": "FRR 8.4.4",
          "exabgp": "ExaBGP 4.2.21", "scapy": "scapy peer"}

# id -> (group, description); the order is the order of the rows in the document
SCENARIOS: dict[str, tuple[str, str]] = {
    "session.default_caps": ("Session", "Establishes with the daemon's default capabilities "
                             "(IPv4 + IPv6 sessions); both sides Established, capabilities "
                             "seen by the daemon"),
    "session.as4_to_2octet": ("Session", "roost with a 4-octet ASN vs a 2-octet-only peer: "
                              "OPEN with AS_TRANS, the peer shows AS_PATH 23456, roost "
                              "rebuilds the 4-octet path from AS4_PATH"),
    "session.hold_time": ("Session", "Hold time negotiation: the smaller of both (9 s vs 90 s) "
                          "on both sides"),
    "session.hold_time_zero": ("Session", "Hold time 0 on both sides: no keepalives, session "
                               "stays up"),
    "session.bad_peer_as": ("Session", "Wrong ASN: OPEN error Bad Peer AS (2/2) sent and "
                            "received, seen in roost's last_down/info and in the daemon's "
                            "log/state"),
    "session.collision": ("Session", "Both sides connect at once: one session survives, the "
                          "one opened by the higher BGP Identifier (RFC 4271 §6.8)"),
    "session.roost_passive": ("Session", "roost passive, the daemon connects"),
    "session.daemon_passive": ("Session", "Daemon passive, roost connects"),
    "routes.ipv4": ("Routes", "IPv4 unicast both ways (next hop, AS path on the receiver)"),
    "routes.ipv6": ("Routes", "IPv6 unicast both ways"),
    "routes.attrs_out": ("Routes", "roost -> daemon (iBGP): communities, large and extended "
                         "communities, MED, LOCAL_PREF set by a roost export policy, seen by "
                         "the daemon"),
    "routes.attrs_in": ("Routes", "daemon -> roost (iBGP): communities, large and extended "
                        "communities, MED, LOCAL_PREF; roost's view (`show routes`), and "
                        "what roost forwards to a third (ExaBGP) peer"),
    "routes.as_set": ("Routes", "AS_SET from the daemon is kept by roost and forwarded"),
    "routes.withdraw": ("Routes", "Withdraws both ways"),
    "routes.bulk_10k": ("Routes", "10 000 prefixes both ways (announce and withdraw)"),
    "routes.add_path": ("Routes", "ADD-PATH: two paths for one prefix visible on the receiver"),
    "routes.refresh_in": ("Routes", "Route refresh: the daemon's soft reset in "
                          "(ROUTE-REFRESH to roost) makes roost re-send its table"),
    "routes.refresh_out": ("Routes", "Soft reset out from roost's side (`roost refresh PEER "
                           "--out`): the daemon receives roost's table again"),
    "routes.refresh_roost_in": ("Routes", "Soft reset in from roost's side (`roost refresh "
                                "PEER --in`): roost sends a ROUTE-REFRESH, the daemon "
                                "sends its routes again"),
    "rr.daemon_client": ("Route reflection", "Daemon as client of a roost reflector: "
                         "ORIGINATOR_ID / CLUSTER_LIST on what the daemon and another client "
                         "received"),
    "rr.roost_client": ("Route reflection", "roost as client of the daemon's reflector: "
                        "ORIGINATOR_ID / CLUSTER_LIST on what roost and the daemon show"),
    "errors.treat_as_withdraw": ("Error handling (RFC 7606)", "Malformed optional/well-known "
                                 "attributes (bad ORIGIN, bad COMMUNITIES length, bad NEXT_HOP "
                                 "length, malformed AS_PATH, missing ORIGIN): treat-as-withdraw, "
                                 "session stays up, no NOTIFICATION"),
    "errors.attribute_discard": ("Error handling (RFC 7606)", "LOCAL_PREF from eBGP, malformed "
                                 "AGGREGATOR, duplicate MED: attribute discarded, route kept"),
    "errors.session_reset": ("Error handling (RFC 7606)", "Unrecognized well-known attribute, "
                             "bad message length, bad marker: session reset with the "
                             "prescribed NOTIFICATION, seen by the peer"),
    "md5.match": ("MD5 (RFC 2385)", "Matching passwords establish"),
    "md5.mismatch": ("MD5 (RFC 2385)", "A wrong password never establishes"),
    "gr.helper": ("Graceful restart", "roost as helper: the daemon (graceful restart on) is "
                  "killed (SIGKILL) and started again; roost keeps its route, stale, all the "
                  "time, then fresh (RFC 4724)"),
    "gr.roost_restarts": ("Graceful restart", "The daemon as helper: `roost graceful-restart` "
                          "and start again; the daemon's RIB holds roost's route all the "
                          "time (sampled every 0.1 s)"),
}

# scenarios that exist in the document but are not implemented in roost yet
NOT_YET: dict[str, str] = {}

_RAW_ONLY = "raw scapy peer: used only for hand-built malformed messages"
_NO_MALFORMED = "GoBGP, BIRD and FRR cannot be made to send malformed attributes"
_BY_SCAPY = ("covered by the scapy peer (byte-exact malformed messages; ExaBGP's raw "
             "`attribute [...]` cannot build the length/flag errors)")
_EXA_NO_LISTEN = "ExaBGP only connects out (never accepts a connection)"

# (scenario, column) -> reason it is not run.  THE one table of unsupported combinations.
UNSUPPORTED: dict[tuple[str, str], str] = {
    ("session.as4_to_2octet", "gobgp"): "GoBGP 3.10 cannot disable the 4-octet AS "
                                        "capability (always a 4-octet speaker)",
    ("session.as4_to_2octet", "frr"): "FRR 8.4 cannot be a 2-octet-only speaker (no knob to "
                                      "drop only the AS4 capability; dont-capability-"
                                      "negotiate also drops MP-BGP)",
    ("session.as4_to_2octet", "bird"): "BIRD 2.0.12 `enable as4 off` is no true OLD speaker: "
                                       "with `neighbor as 23456` it still reads roost's AS4 "
                                       "capability and sends Bad Peer AS (data = 4200000001), "
                                       "and a 4-octet `neighbor as` is refused ('AS4 not "
                                       "available')",
    ("session.collision", "exabgp"): _EXA_NO_LISTEN,
    ("session.collision", "gobgp"): "GoBGP 3.10 has no RFC 4271 §6.8 collision resolution: "
                                    "one FSM per peer, and a connection accepted while it is "
                                    "in OpenSent/OpenConfirm is closed at once without a "
                                    "NOTIFICATION ('Closed an accepted connection'), so "
                                    "which connection survives depends on goroutine order "
                                    "(both outcomes seen in the lab)",
    ("session.daemon_passive", "exabgp"): _EXA_NO_LISTEN,
    ("routes.as_set", "bird"): "BIRD 2.0 filters cannot build an AS_SET segment "
                               "(bgp_path.prepend adds AS_SEQUENCE only)",
    ("routes.as_set", "frr"): "FRR route-maps cannot set an AS_SET (only aggregation makes "
                              "one, from components' AS paths)",
    ("routes.refresh_in", "gobgp"): "GoBGP 3.10 keeps an Adj-RIB-In: `neighbor X softresetin` "
                                    "re-runs its import policy locally and sends no "
                                    "ROUTE-REFRESH (checked: roost receives none)",
    ("rr.roost_client", "exabgp"): "ExaBGP does not reflect routes (no RIB)",
    ("gr.roost_restarts", "exabgp"): "ExaBGP 4.2 has no RIB of received routes (it hands "
                                     "UPDATEs to its API process): it cannot be a graceful "
                                     "restart helper",
    ("errors.treat_as_withdraw", "gobgp"): _NO_MALFORMED,
    ("errors.treat_as_withdraw", "bird"): _NO_MALFORMED,
    ("errors.treat_as_withdraw", "frr"): _NO_MALFORMED,
    ("errors.attribute_discard", "gobgp"): _NO_MALFORMED,
    ("errors.attribute_discard", "bird"): _NO_MALFORMED,
    ("errors.attribute_discard", "frr"): _NO_MALFORMED,
    ("errors.attribute_discard", "exabgp"): _BY_SCAPY,
    ("errors.treat_as_withdraw", "exabgp"): _BY_SCAPY,
    ("errors.session_reset", "exabgp"): _BY_SCAPY,
    ("errors.session_reset", "gobgp"): _NO_MALFORMED,
    ("errors.session_reset", "bird"): _NO_MALFORMED,
    ("errors.session_reset", "frr"): _NO_MALFORMED,
}
for _sc in SCENARIOS:
    if not _sc.startswith("errors."):
        UNSUPPORTED.setdefault((_sc, "scapy"), _RAW_ONLY)


def daemons_for(scenario: str, columns: tuple[str, ...] = COLUMNS) -> list[str]:
    """The columns a scenario runs against (unsupported ones and 'not yet' left out)."""
    if scenario not in SCENARIOS:
        raise KeyError(f"unknown scenario {scenario!r}: add it to SCENARIOS")
    if scenario in NOT_YET:
        return []
    return [c for c in columns if (scenario, c) not in UNSUPPORTED]


def expected_cells() -> set[tuple[str, str]]:
    """Every (scenario, column) a full run must produce an outcome for."""
    return {(s, c) for s in SCENARIOS for c in daemons_for(s)}
