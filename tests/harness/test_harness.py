"""Smoke tests for the harness itself: namespaces, and each real daemon read back as data.

Needs root (network namespaces) and the Debian packages gobgpd, bird, frr, exabgp.
Runtime: ~30 s.  GoBGP is always the passive side here (its first active connect takes
5-9 s); BIRD runs with the waker so it advertises without its 3-s stall.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from .daemons import Bird, ExaBgp, Frr, GoBgp, Neighbor, RouteView, norm_ext_community
from .fixtures import lab, require_daemons  # noqa: F401  (fixture)
from .netns import Lab, list_lab_namespaces, pid_alive, require_netns

pytestmark = [pytest.mark.needs_root, pytest.mark.interop]

BOTH = ("ipv4", "ipv6")


def _only(paths: list[RouteView]) -> RouteView:
    assert len(paths) == 1, paths
    return paths[0]


# --- namespaces ------------------------------------------------------------------------


def test_flat_lab_ping_and_cleanup(tmp_path: Path) -> None:
    require_netns()
    with Lab(tmp_path) as lab_:
        h1, h2 = lab_.flat(2)
        assert (h1.addr4, h2.addr4) == ("10.255.0.1", "10.255.0.2")
        assert (h1.addr6, h2.addr6) == ("fd00:255::1", "fd00:255::2")
        assert h1.netns.startswith(f"roost-{lab_.id}-")
        assert h1.ping(h2.addr4) and h2.ping(h1.addr6)
        assert any(r.startswith("10.255.0.0/24 dev eth0") for r in h1.routes())
        assert any(r.startswith("fd00:255::/64 dev eth0") for r in h1.routes(6))
        cp = h1.run(["ip", "-o", "-4", "addr", "show", "dev", "eth0"])
        assert "10.255.0.1/24" in cp.stdout
        assert h1.run(["sysctl", "-n", "net.ipv4.conf.all.rp_filter"]).stdout.strip() == "0"
        proc = h2.popen(["sleep", "300"], tmp_path / "sleep.log")
        names = list(lab_.namespaces)
    # closed: our process is gone, our namespaces are gone
    assert not pid_alive(proc.pid)
    left = set(list_lab_namespaces())
    assert not left & set(names)


def test_router_and_close_after_failure(tmp_path: Path) -> None:
    require_netns()
    require_daemons(Bird)
    lab_ = Lab(tmp_path)
    with pytest.raises(RuntimeError), lab_:
        lab_.router("rtr", ("swa", "10.255.0.254/24"), ("swb", "10.255.1.254/24"))
        a = lab_.host("a", "swa", "10.255.0.1/24", gateway="10.255.0.254")
        b = lab_.host("b", "swb", "10.255.1.1/24", gateway="10.255.1.254")
        assert a.ping(b.addr4)
        bird = Bird(a, 65001, a.addr4, [Neighbor(b.addr4, 65002, multihop=True)])
        bird.start()
        pids = bird.pids()
        assert pids and all(pid_alive(p) for p in pids)
        raise RuntimeError("test failed midway")
    assert not any(pid_alive(p) for p in pids)
    assert not set(list_lab_namespaces()) & {a.netns, b.netns}


# --- daemon pairs ----------------------------------------------------------------------


def test_gobgp_bird(lab: Lab) -> None:  # noqa: F811
    require_daemons(GoBgp, Bird)
    h1, h2 = lab.flat(2)
    g = GoBgp(h1, 65001, h1.addr4, [Neighbor(h2.addr4, 65002, passive=True, families=BOTH)],
              originate=["10.1.0.0/24"])
    b = Bird(h2, 65002, h2.addr4, [Neighbor(h1.addr4, 65001, families=BOTH)],
             originate=["10.2.0.0/24", "fd10:2::/48"], waker=True)
    g.start()
    b.start()
    g.add_route("10.1.1.0/24", communities=["65001:5", "no-export"],
                large_communities=["65001:1:2"], ext_communities=["rt:65001:9"], med=7)
    b.wait_established(h1.addr4, timeout=20)
    g.wait_established(h2.addr4, timeout=5)
    assert g.neighbor_state(h2.addr4) == b.neighbor_state(h1.addr4) == "established"

    r = _only(b.wait_route("10.1.1.0/24", timeout=10))
    assert (r.next_hop, r.as_path, r.origin, r.med) == (h1.addr4, [65001], "igp", 7)
    assert r.communities == ["65001:5", "65535:65281"]
    assert r.large_communities == ["65001:1:2"]
    assert r.ext_communities == ["rt:65001:9"]
    assert r.best

    r = _only(g.wait_route("10.2.0.0/24", timeout=10))
    assert (r.next_hop, r.as_path, r.best) == (h2.addr4, [65002], True)
    r6 = _only(g.wait_route("fd10:2::/48", timeout=10))
    assert r6.next_hop == h2.addr6 and r6.as_path == [65002]

    # runtime add/del on BIRD (birdc configure, the session stays up)
    b.add_route("10.2.1.0/24", communities=["65002:1"], large_communities=["65002:3:4"],
                ext_communities=["rt:65002:5"], as_path=[65100], origin="egp")
    r = _only(g.wait_route("10.2.1.0/24", timeout=10))
    assert (r.as_path, r.origin) == ([65002, 65100], "egp")
    assert (r.communities, r.large_communities, r.ext_communities) == (
        ["65002:1"], ["65002:3:4"], ["rt:65002:5"])
    b.del_route("10.2.1.0/24")
    g.wait_no_route("10.2.1.0/24", timeout=10)
    g.del_route("10.1.1.0/24")
    b.wait_no_route("10.1.1.0/24", timeout=10)
    assert b.neighbor_state(h1.addr4) == "established"

    # NOTIFICATION as seen by the peer: stop GoBGP -> BIRD received a Cease
    g.stop()
    n = b.wait_notification(6, direction="received", timeout=10)
    assert n.peer == h1.addr4


def test_bird_frr_kernel_and_notification(lab: Lab) -> None:  # noqa: F811
    require_daemons(Bird, Frr)
    h1, h2, h3 = lab.flat(3)
    f = Frr(h1, 65001, h1.addr4, [Neighbor(h2.addr4, 65002, families=BOTH),
                                  Neighbor(h3.addr4, 65003)],  # h3 will claim AS 65009
            originate=["10.1.0.0/24", "fd10:1::/48"])
    b = Bird(h2, 65002, h2.addr4, [Neighbor(h1.addr4, 65001, families=BOTH)],
             originate=["10.2.0.0/24"], waker=True, kernel_export=True)
    bad = Bird(h3, 65009, h3.addr4, [Neighbor(h1.addr4, 65001)])
    f.start()
    b.start()
    bad.start()
    f.wait_established(h2.addr4, timeout=20)

    # (BIRD does not send a static route's bgp_med over eBGP, so no MED here)
    b.add_route("10.2.1.0/24", communities=["65002:1", "no-export"],
                as_path=[65100, 65200], origin="egp")
    # FRR lists a route before its best-path run has marked it: wait for the mark.
    r = _only(f.wait_route("10.2.1.0/24", timeout=10, pred=lambda ps: ps[0].best))
    assert (r.next_hop, r.as_path, r.origin) == (h2.addr4, [65002, 65100, 65200], "egp")
    assert r.communities == ["65002:1", "65535:65281"] and r.best

    f.add_route("10.1.1.0/24", communities=["65001:5"], large_communities=["65001:1:2"],
                ext_communities=["rt:65001:9"], med=7)
    r = _only(b.wait_route("10.1.1.0/24", timeout=15))
    assert (r.next_hop, r.as_path, r.med) == (h1.addr4, [65001], 7)
    assert (r.communities, r.large_communities, r.ext_communities) == (
        ["65001:5"], ["65001:1:2"], ["rt:65001:9"])
    r6 = _only(b.wait_route("fd10:1::/48", timeout=10))
    assert r6.next_hop == h1.addr6 and r6.as_path == [65001]

    # both FIBs: BIRD exports into the kernel (proto bird), zebra installs (proto bgp)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if any("10.1.1.0/24 via 10.255.0.1" in x and "proto bird" in x for x in h2.routes()) \
                and any("10.2.1.0/24" in x and "proto bgp" in x for x in h1.routes()):
            break
        time.sleep(0.2)
    assert any("10.1.1.0/24 via 10.255.0.1" in x and "proto bird" in x for x in h2.routes())
    assert any("10.2.1.0/24" in x and "proto bgp" in x for x in h1.routes())

    f.del_route("10.1.1.0/24")
    b.wait_no_route("10.1.1.0/24", timeout=15)

    # h3 claims AS 65009, FRR expects 65003: FRR sends OPEN error Bad Peer AS
    sent = f.wait_notification(2, 2, direction="sent", peer=h3.addr4, timeout=15)
    assert "Bad Peer AS" in sent.text
    got = bad.wait_notification(2, 2, direction="received", timeout=5)
    assert got.peer == h1.addr4


def test_exabgp_gobgp(lab: Lab) -> None:  # noqa: F811
    require_daemons(ExaBgp, GoBgp)
    h1, h2 = lab.flat(2)
    g = GoBgp(h1, 65001, h1.addr4, [Neighbor(h2.addr4, 65002, passive=True, families=BOTH)],
              originate=["10.1.0.0/24"])
    e = ExaBgp(h2, 65002, h2.addr4, [Neighbor(h1.addr4, 65001, families=BOTH)],
               originate=["10.2.0.0/24"])
    g.start()
    g.add_route("10.1.1.0/24", communities=["65001:5"], large_communities=["65001:1:2"],
                ext_communities=["rt:65001:9"], med=7)
    e.start()
    g.wait_established(h2.addr4, timeout=20)
    e.wait_established(h1.addr4, timeout=5)

    r = _only(g.wait_route("10.2.0.0/24", timeout=10))
    assert (r.next_hop, r.as_path) == (h2.addr4, [65002])
    r = _only(e.wait_route("10.1.1.0/24", timeout=10))
    assert (r.next_hop, r.as_path, r.med) == (h1.addr4, [65001], 7)
    assert (r.communities, r.large_communities, r.ext_communities) == (
        ["65001:5"], ["65001:1:2"], ["rt:65001:9"])

    # ExaBGP sends AS_PATH verbatim: its own AS must be given explicitly on eBGP
    e.add_route("10.2.1.0/24", communities=["65002:1", "no-export"],
                large_communities=["65002:3:4"], ext_communities=["rt:65002:5"], med=11,
                as_path=[65002, 65100], origin="egp")
    e.add_route("fd10:2::/48", next_hop=h2.addr6)
    r = _only(g.wait_route("10.2.1.0/24", timeout=10))
    assert (r.as_path, r.origin, r.med) == ([65002, 65100], "egp", 11)
    assert (r.communities, r.large_communities, r.ext_communities) == (
        ["65002:1", "65535:65281"], ["65002:3:4"], ["rt:65002:5"])
    assert _only(g.wait_route("fd10:2::/48", timeout=10)).next_hop == h2.addr6
    e.del_route("10.2.1.0/24")
    g.wait_no_route("10.2.1.0/24", timeout=10)
    g.del_route("10.1.1.0/24")
    e.wait_no_route("10.1.1.0/24", timeout=10)

    g.stop()
    n = e.wait_notification(6, direction="received", timeout=10)
    assert n.peer == h1.addr4
    assert e.neighbor_state(h1.addr4) != "established"


def test_hold_timer_and_bad_peer_as_exabgp(lab: Lab) -> None:  # noqa: F811
    """pause() (SIGSTOP) lets the peer's hold timer expire; ExaBGP reports the NOTIFICATION
    it sent (Bad Peer AS) through its API."""
    require_daemons(Bird, Frr, ExaBgp)
    h1, h2, h3 = lab.flat(3)
    # graceful_restart=False: otherwise BIRD treats the hold-timer expiry of a GR-capable
    # peer (FRR) as a graceful restart and sends no NOTIFICATION
    b = Bird(h1, 65001, h1.addr4, [Neighbor(h2.addr4, 65002, hold_time=3),
                                   Neighbor(h3.addr4, 65003)], graceful_restart=False)
    f = Frr(h2, 65002, h2.addr4, [Neighbor(h1.addr4, 65001, hold_time=3)])
    e = ExaBgp(h3, 65003, h3.addr4, [Neighbor(h1.addr4, 65009)])  # BIRD is AS 65001
    b.start()
    f.start()
    e.start()
    b.wait_established(h2.addr4, timeout=15)
    n = e.wait_notification(2, 2, direction="sent", timeout=15)
    assert "65009" in n.text
    assert b.wait_notification(2, 2, direction="received", peer=h3.addr4, timeout=5)
    f.pause()
    n = b.wait_notification(4, 0, direction="sent", peer=h2.addr4, timeout=10)
    assert n.text == "Hold timer expired"
    f.resume()


def test_route_reflector_attributes(lab: Lab) -> None:  # noqa: F811
    """BIRD RR (cluster 1.1.1.1), clients FRR and GoBGP: ORIGINATOR_ID / CLUSTER_LIST parsed
    by every reader."""
    require_daemons(Bird, Frr, GoBgp)
    h1, h2, h3 = lab.flat(3)
    rr = Bird(h2, 65000, h2.addr4, [Neighbor(h1.addr4, 65000, rr_client=True),
                                    Neighbor(h3.addr4, 65000, rr_client=True)],
              cluster_id="1.1.1.1", waker=True)
    f = Frr(h1, 65000, h1.addr4, [Neighbor(h2.addr4, 65000)], originate=["10.1.0.0/24"])
    g = GoBgp(h3, 65000, h3.addr4, [Neighbor(h2.addr4, 65000, passive=True)])
    g.start()
    f.start()
    rr.start()
    g.add_route("10.3.0.0/24", next_hop=h3.addr4, local_pref=250, communities=["65000:3"])
    rr.wait_established(h1.addr4, timeout=20)
    rr.wait_established(h3.addr4, timeout=20)

    r = _only(g.wait_route("10.1.0.0/24", timeout=15))
    assert (r.next_hop, r.originator_id, r.cluster_list, r.local_pref) == (
        h1.addr4, h1.addr4, ["1.1.1.1"], 100)
    r = _only(f.wait_route("10.3.0.0/24", timeout=15))
    assert (r.next_hop, r.originator_id, r.cluster_list, r.local_pref, r.as_path) == (
        h3.addr4, h3.addr4, ["1.1.1.1"], 250, [])
    assert r.communities == ["65000:3"]
    r = _only(rr.wait_route("10.3.0.0/24", timeout=5))
    assert (r.local_pref, r.originator_id, r.cluster_list) == (250, None, [])


def test_norm_helpers() -> None:
    assert norm_ext_community("RT:65001:100") == "rt:65001:100"
    assert norm_ext_community("(rt, 65001, 100)") == "rt:65001:100"
    assert norm_ext_community("(ro, 65001, 7)") == "soo:65001:7"
    text = """BIRD 2.0.12 ready.
Table master4:
10.1.0.0/24          unicast [peer_10_255_0_1 1795818626.650 from 10.255.0.1] * (100) [AS65001i]
\tvia 10.255.0.1 on eth0
\tType: BGP univ
\tBGP.origin: IGP
\tBGP.as_path: 65001 {65010 65011}
\tBGP.next_hop: 10.255.0.1
\tBGP.local_pref: 100
\tBGP.community: (65001,1) (65535,65281)
                     unicast [peer_10_255_0_3 1795818626.650 from 10.255.0.3] (100) [AS65003i]
\tvia 10.255.0.3 on eth0
\tType: BGP univ
\tBGP.origin: Incomplete
\tBGP.as_path: 65003
\tBGP.next_hop: 10.255.0.3
10.255.0.0/24        unicast [direct1 1795818626.650] * (240)
\tdev eth0
\tType: device univ
"""
    rib = Bird.parse_routes(text)
    assert list(rib) == ["10.1.0.0/24"]
    a, b = rib["10.1.0.0/24"]
    assert (a.best, a.as_path, a.communities, a.origin) == (
        True, [65001, 65010, 65011], ["65001:1", "65535:65281"], "igp")
    assert (b.best, b.next_hop, b.origin) == (False, "10.255.0.3", "incomplete")

