"""Route exchange with each daemon: IPv4/IPv6 both ways, withdraws, 10k prefixes, route
refresh (one eBGP pair per daemon, reused by the module), and attributes (one iBGP pair per
daemon plus an ExaBGP observer that shows what roost forwards)."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.harness.daemons import Bird, Daemon, ExaBgp, Frr, GoBgp, Neighbor
from tests.harness.fixtures import require_daemons
from tests.harness.netns import Lab, require_netns, wait_for

from .harness import (
    CLASSES,
    PEER4,
    PEER6,
    PEER_ASN,
    ROOST4,
    ROOST6,
    ROOST_ASN,
    ROOST_RID,
    Pair,
    RoostPeer,
    bulk_announce,
    bulk_withdraw,
    daemon_prefix_count,
    daemon_update_counts,
    prefixes,
    roost_toml,
    start_pair,
)
from .matrix import daemons_for

ALL = daemons_for("routes.ipv4")


def _lab(tmp_path_factory: pytest.TempPathFactory, name: str) -> Lab:
    require_netns()
    return Lab(tmp_path_factory.mktemp(name))


@pytest.fixture(scope="module", params=ALL)
def daemon(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def pair(daemon: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pair]:
    require_daemons(CLASSES[daemon])
    with _lab(tmp_path_factory, f"routes-{daemon}") as lab:
        yield start_pair(lab, daemon)


def _roost_prefixes(p: Pair, pfx: list[str]) -> None:
    """Reload roost with ``pfx`` as its originated prefixes (same peers)."""
    text = p.roost.config_path.read_text().split("\n[control]")[0]
    lines = [ln if not ln.startswith("prefixes = ") else f"prefixes = {_json(pfx)}"
             for ln in text.splitlines()]
    res = p.roost.reconfigure("\n".join(lines))
    assert not res.get("peers_reset"), res


def _json(v: object) -> str:
    import json

    return json.dumps(v)


# ----------------------------------------------------------------------- unicast


@pytest.mark.scenario("routes.ipv4")
def test_ipv4_both_ways(pair: Pair) -> None:
    _roost_prefixes(pair, ["10.10.1.0/24", "fd10:1:1::/48"])
    r = pair.daemon.wait_route("10.10.1.0/24", timeout=10)
    assert r[0].next_hop == ROOST4 and r[0].as_path == [ROOST_ASN], r
    pair.daemon.add_route("10.20.1.0/24")
    paths = pair.roost.wait_paths("10.20.1.0/24")
    assert paths[0]["next_hop"] == PEER4 and paths[0]["as_path"] == str(PEER_ASN), paths
    assert paths[0]["best"]


@pytest.mark.scenario("routes.ipv6")
def test_ipv6_both_ways(pair: Pair) -> None:
    _roost_prefixes(pair, ["10.10.1.0/24", "fd10:1:1::/48"])
    r = pair.daemon.wait_route("fd10:1:1::/48", timeout=10)
    assert r[0].next_hop == ROOST6 and r[0].as_path == [ROOST_ASN], r
    pair.daemon.add_route("fd10:2:1::/48")
    paths = pair.roost.wait_paths("fd10:2:1::/48")
    assert paths[0]["next_hop"] == PEER6 and paths[0]["as_path"] == str(PEER_ASN), paths


@pytest.mark.scenario("routes.withdraw")
def test_withdraw_both_ways(pair: Pair) -> None:
    _roost_prefixes(pair, ["10.10.2.0/24", "fd10:1:2::/48"])
    pair.daemon.add_route("10.20.2.0/24")
    pair.daemon.add_route("fd10:2:2::/48")
    pair.daemon.wait_route("10.10.2.0/24", timeout=10)
    pair.daemon.wait_route("fd10:1:2::/48", timeout=10)
    pair.roost.wait_paths("10.20.2.0/24")
    pair.roost.wait_paths("fd10:2:2::/48")
    _roost_prefixes(pair, [])
    pair.daemon.wait_no_route("10.10.2.0/24", timeout=10)
    pair.daemon.wait_no_route("fd10:1:2::/48", timeout=10)
    pair.daemon.del_route("10.20.2.0/24")
    pair.daemon.del_route("fd10:2:2::/48")
    pair.roost.wait_no_route("10.20.2.0/24")
    pair.roost.wait_no_route("fd10:2:2::/48")
    # the sessions stayed up throughout
    assert pair.roost.peer(PEER4)["established_count"] == 1


# ----------------------------------------------------------------------- route refresh


def _soft_in(d: Daemon, peer: str) -> None:
    """The daemon's soft reset in towards ``peer``: a ROUTE-REFRESH for IPv4 unicast."""
    if isinstance(d, GoBgp):
        d.cli("neighbor", peer, "softresetin")
    elif isinstance(d, Bird):
        d.birdc("reload", "in", Bird.proto_name(peer))
    elif isinstance(d, Frr):
        d.vtysh(f"clear bgp ipv4 unicast {peer} soft in")
    elif isinstance(d, ExaBgp):
        d.command(f"neighbor {peer} announce route-refresh ipv4 unicast")
    else:
        raise TypeError(d)


def _settled_counts(p: Pair) -> tuple[int, int]:
    """The daemon's (UPDATEs sent to roost, received from roost) once they stop moving
    (nothing from an earlier step still in flight)."""
    def same() -> tuple[int, int] | None:
        a = daemon_update_counts(p.daemon, ROOST4)
        time.sleep(0.5)
        return a if daemon_update_counts(p.daemon, ROOST4) == a else None

    return wait_for(same, 10, what=f"{p.kind}: UPDATE counters settle")  # type: ignore[no-any-return]


@pytest.mark.scenario("routes.refresh_in")
def test_refresh_in(pair: Pair) -> None:
    """The daemon's soft reset in sends ROUTE-REFRESH; roost re-sends its whole table
    (the daemon receives it again, the session stays up)."""
    _roost_prefixes(pair, ["10.10.3.0/24", "10.10.4.0/24"])
    pair.daemon.wait_route("10.10.4.0/24", timeout=10)
    log_before = pair.roost.log_path.read_text().count("ROUTE-REFRESH")
    _, recv_before = _settled_counts(pair)
    _soft_in(pair.daemon, ROOST4)
    wait_for(lambda: pair.roost.log_path.read_text().count("ROUTE-REFRESH") > log_before, 10,
             what="roost: ROUTE-REFRESH received", on_timeout=pair.diag)
    wait_for(lambda: daemon_update_counts(pair.daemon, ROOST4)[1] > recv_before, 10,
             what=f"{pair.kind} receives roost's table again", on_timeout=pair.diag)
    for pfx in ("10.10.3.0/24", "10.10.4.0/24"):
        pair.daemon.wait_route(pfx, timeout=10)
    assert pair.roost.peer(PEER4)["established_count"] == 1
    assert pair.daemon.neighbor_state(ROOST4) == "established"


@pytest.mark.scenario("routes.refresh_out")
def test_refresh_out(pair: Pair) -> None:
    """`roost refresh PEER --out`: roost re-sends its Adj-RIB-Out; the daemon counts the
    UPDATE(s) again and still has the routes; no session reset."""
    _roost_prefixes(pair, ["10.10.5.0/24"])
    pair.daemon.wait_route("10.10.5.0/24", timeout=10)
    _, recv_before = _settled_counts(pair)
    out_before = pair.roost.peer(PEER4)["messages_out"]
    res = pair.roost.refresh(PEER4, "out")
    assert res == {"peer": PEER4, "direction": "out", "families": ["ipv4-unicast"]}, res
    wait_for(lambda: daemon_update_counts(pair.daemon, ROOST4)[1] > recv_before, 10,
             what=f"{pair.kind} receives roost's table again", on_timeout=pair.diag)
    assert pair.roost.peer(PEER4)["messages_out"] > out_before
    pair.daemon.wait_route("10.10.5.0/24", timeout=10)
    assert pair.roost.peer(PEER4)["established_count"] == 1
    assert pair.daemon.neighbor_state(ROOST4) == "established"


@pytest.mark.scenario("routes.refresh_roost_in")
def test_refresh_roost_in(pair: Pair) -> None:
    """`roost refresh PEER --in`: roost sends a ROUTE-REFRESH, the daemon sends its
    routes again (its own UPDATE counter grows); roost keeps the route, no reset."""
    pair.daemon.add_route("10.20.5.0/24")
    pair.roost.wait_paths("10.20.5.0/24")
    sent_before, _ = _settled_counts(pair)
    res = pair.roost.refresh(PEER4, "in")
    assert res == {"peer": PEER4, "direction": "in", "families": ["ipv4-unicast"]}, res
    wait_for(lambda: daemon_update_counts(pair.daemon, ROOST4)[0] > sent_before, 10,
             what=f"{pair.kind} sends its routes again", on_timeout=pair.diag)
    assert pair.roost.paths("10.20.5.0/24")
    assert pair.roost.peer(PEER4)["established_count"] == 1
    assert pair.daemon.neighbor_state(ROOST4) == "established"
    pair.daemon.del_route("10.20.5.0/24")


# ----------------------------------------------------------------------- attributes (iBGP)

OBS4 = "10.255.0.3"
OBS_ASN = 65003


@pytest.fixture(scope="module")
def ipair(daemon: str, tmp_path_factory: pytest.TempPathFactory
          ) -> Iterator[tuple[Pair, ExaBgp]]:
    """iBGP pair (roost AS 65001 = the daemon's) + an ExaBGP observer (h3, eBGP AS 65003)
    that receives whatever roost forwards.  roost exports to the daemon with policy
    ``attrs`` (communities, large and extended communities, MED, LOCAL_PREF on
    10.11.0.0/16)."""
    require_daemons(CLASSES[daemon], ExaBgp)
    policy = """
[policy.attrs]
default = "accept"
[[policy.attrs.term]]
name = "set"
match = { prefix = ["10.11.0.0/16"] }
then = { action = "accept", local_pref = 250, med = 77, ADD }
""".replace("ADD", 'add_community = ["65001:100", "65535:666"], '
                'add_large_community = ["65001:1:2"], add_ext_community = ["rt:65001:9"]')
    with _lab(tmp_path_factory, f"attrs-{daemon}") as lab:
        p = start_pair(lab, daemon, ibgp=True, v6=False, export="attrs", policies=policy)
        h3 = lab.host("h3", "sw", f"{OBS4}/24")
        obs = ExaBgp(h3, OBS_ASN, OBS4, [Neighbor(ROOST4, PEER_ASN)])
        text = p.roost.config_path.read_text().split("\n[control]")[0]
        text = text.replace("[policy.attrs]", RoostPeer(OBS4, OBS_ASN).toml()
                            + "\n[policy.attrs]")
        res = p.roost.reconfigure(text)
        assert OBS4 in str(res.get("peers_added")), res
        obs.start()
        p.roost.wait_peer(OBS4, timeout=20)
        yield p, obs


@pytest.mark.scenario("routes.attrs_out")
def test_attributes_roost_to_daemon(ipair: tuple[Pair, ExaBgp]) -> None:
    p, _ = ipair
    _roost_prefixes(p, ["10.11.1.0/24"])
    r = p.daemon.wait_route("10.11.1.0/24", timeout=10)[0]
    assert "65001:100" in r.communities and "65535:666" in r.communities, r
    assert r.large_communities == ["65001:1:2"], r
    assert r.ext_communities == ["rt:65001:9"], r
    assert r.med == 77, r
    assert r.local_pref == 250, r
    assert r.as_path == [] and r.next_hop == ROOST4, r


@pytest.mark.scenario("routes.attrs_in")
def test_attributes_daemon_to_roost(ipair: tuple[Pair, ExaBgp]) -> None:
    p, obs = ipair
    p.daemon.add_route("10.21.1.0/24", communities=["65001:7", "65001:8"],
                       large_communities=["65001:3:4"], ext_communities=["rt:65001:5"],
                       med=33, local_pref=150)
    path = p.roost.wait_paths("10.21.1.0/24")[0]
    assert sorted(path["communities"]) == ["65001:7", "65001:8"], path
    assert path["large_communities"] == ["65001:3:4"], path
    assert path["med"] == 33 and path["local_pref"] == 150, path
    assert path["as_path"] == "" and path["next_hop"] == PEER4, path
    assert path["ext_communities"] == ["rt:65001:5"], path
    # ... and what roost forwards to a third peer
    seen = obs.wait_route("10.21.1.0/24", timeout=10)[0]
    assert "rt:65001:5" in seen.ext_communities, seen
    assert sorted(seen.communities) == ["65001:7", "65001:8"], seen
    assert seen.large_communities == ["65001:3:4"], seen
    assert seen.as_path == [PEER_ASN], seen


@pytest.mark.scenario("routes.as_set")
def test_as_set(ipair: tuple[Pair, ExaBgp]) -> None:
    p, obs = ipair
    pfx = "10.22.1.0/24"
    if isinstance(p.daemon, GoBgp):
        p.daemon.cli("global", "rib", "add", "-a", "ipv4", pfx, "nexthop", PEER4,
                     "aspath", "65010 {65011,65012}", "local-pref", "100")
    elif isinstance(p.daemon, ExaBgp):
        p.daemon.command(f"announce route {pfx} next-hop {PEER4} "
                         "as-path [ 65010 ( 65011 65012 ) ]")
    path = p.roost.wait_paths(pfx)[0]
    assert "{" in path["as_path"] and "65011" in path["as_path"], path
    assert path["as_path"].split()[0] == "65010", path
    seen = obs.wait_route(pfx, timeout=10)[0]
    assert seen.as_path[:2] == [PEER_ASN, 65010] and sorted(seen.as_path[2:]) == [65011, 65012]
    attr = seen.raw["attribute"]  # ExaBGP reports the AS_SET segment under "as-set"
    assert sorted(attr.get("as-set", [])) == [65011, 65012], attr




# last in the module: it leaves the pair with 10k prefixes churned
@pytest.mark.scenario("routes.bulk_10k")
def test_10k_both_ways(pair: Pair) -> None:
    n = 10_000
    out = prefixes(n, "10.128.0.0")
    t0 = time.monotonic()
    _roost_prefixes(pair, out)
    wait_for(lambda: daemon_prefix_count(pair.daemon, ROOST4) >= n, 90,
             what=f"{pair.kind}: {n} prefixes from roost",
             on_timeout=lambda: f"have {daemon_prefix_count(pair.daemon, ROOST4)}\n"
             + pair.diag())
    t_out = time.monotonic() - t0
    base = pair.roost.route_count()
    inn = prefixes(n, "10.160.0.0")
    t0 = time.monotonic()
    bulk_announce(pair.daemon, inn, pair.daemon.workdir)
    wait_for(lambda: pair.roost.route_count() >= base + n, 120,
             what=f"roost: {n} prefixes from {pair.kind}",
             on_timeout=lambda: f"have {pair.roost.route_count() - base}\n" + pair.diag())
    t_in = time.monotonic() - t0
    # withdraw both ways
    _roost_prefixes(pair, [])
    bulk_withdraw(pair.daemon, inn, pair.daemon.workdir)
    wait_for(lambda: daemon_prefix_count(pair.daemon, ROOST4) == 0, 90,
             what=f"{pair.kind}: roost's prefixes withdrawn")
    wait_for(lambda: pair.roost.route_count() <= base, 120,
             what=f"roost: {pair.kind}'s prefixes withdrawn",
             on_timeout=lambda: f"have {pair.roost.route_count() - base}\n" + pair.diag())
    print(f"10k {pair.kind}: roost->daemon {t_out:.1f} s, daemon->roost {t_in:.1f} s")
    assert pair.roost.peer(PEER4)["established_count"] == 1


_ = (ROOST_RID, roost_toml)
