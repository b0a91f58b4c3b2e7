"""Route reflection (RFC 4456) and ADD-PATH (RFC 7911) with each daemon, on two
four-host topologies reused by the module:

A: roost reflector h1 (cluster 10.255.0.100); clients: the daemon h2, roost h3, roost h4.
B: the daemon is the reflector h2 (cluster 10.255.0.200); clients: roost h1, h3, h4.

h3 and h4 both originate the same prefix, so the reflector has two paths for it and, with
ADD-PATH, its ADD-PATH client (the daemon in A, roost h1 in B) must see both.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.harness.daemons import Daemon, Neighbor, RouteView
from tests.harness.fixtures import require_daemons
from tests.harness.netns import Lab, require_netns, wait_for

from .harness import CLASSES, Roost, RoostPeer, new_daemon, roost_toml
from .matrix import daemons_for

ASN = 65001
A_CLUSTER = "10.255.0.100"
B_CLUSTER = "10.255.0.200"
H = {i: f"10.255.0.{i}" for i in (1, 2, 3, 4)}
SHARED = "10.30.0.0/24"  # originated by h3 and h4
ONLY3 = "10.31.0.0/24"
DAEMON_PFX = "10.32.0.0/24"
ONLY1 = "10.42.0.0/24"


@dataclass
class Topo:
    kind: str
    lab: Lab
    daemon: Daemon
    roosts: dict[int, Roost]


def _client_toml(i: int, rr: str, prefixes: list[str]) -> str:
    return roost_toml(ASN, H[i], [RoostPeer(rr, ASN, route_reflector=True, add_paths=True)],
                      listen=[H[i]], prefixes=prefixes)


@pytest.fixture(scope="module", params=daemons_for("rr.daemon_client"))
def daemon_a(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module", params=daemons_for("rr.roost_client"))
def daemon_b(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(scope="module")
def topo_a(daemon_a: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topo]:
    require_netns()
    require_daemons(CLASSES[daemon_a])
    with Lab(tmp_path_factory.mktemp(f"rr-a-{daemon_a}")) as lab:
        hosts = lab.flat(4, v6=False)
        rr = Roost(hosts[0], roost_toml(
            ASN, H[1], [RoostPeer(H[i], ASN, rr_client=True, add_paths=True) for i in (2, 3, 4)],
            listen=[H[1]], reflector=A_CLUSTER))
        d = new_daemon(daemon_a, hosts[1], ASN, H[2],
                       [Neighbor(H[1], ASN, passive=daemon_a == "gobgp", addpath=True)],
                       originate=[DAEMON_PFX])
        c3 = Roost(hosts[2], _client_toml(3, H[1], [SHARED, ONLY3]))
        c4 = Roost(hosts[3], _client_toml(4, H[1], [SHARED]))
        d.start()
        for r in (rr, c3, c4):
            r.start()
        for i in (2, 3, 4):
            rr.wait_peer(H[i], timeout=30)
        d.wait_established(H[1], timeout=10)
        yield Topo(daemon_a, lab, d, {1: rr, 3: c3, 4: c4})


@pytest.fixture(scope="module")
def topo_b(daemon_b: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topo]:
    require_netns()
    require_daemons(CLASSES[daemon_b])
    with Lab(tmp_path_factory.mktemp(f"rr-b-{daemon_b}")) as lab:
        hosts = lab.flat(4, v6=False)
        d = new_daemon(daemon_b, hosts[1], ASN, H[2],
                       [Neighbor(H[i], ASN, passive=daemon_b == "gobgp", rr_client=True,
                                 addpath=True) for i in (1, 3, 4)],
                       cluster_id=B_CLUSTER)
        roosts = {1: Roost(hosts[0], _client_toml(1, H[2], [ONLY1])),
                  3: Roost(hosts[2], _client_toml(3, H[2], [SHARED, ONLY3])),
                  4: Roost(hosts[3], _client_toml(4, H[2], [SHARED]))}
        d.start()
        for r in roosts.values():
            r.start()
        for i, r in roosts.items():
            r.wait_peer(H[2], timeout=30)
            d.wait_established(H[i], timeout=10)
        yield Topo(daemon_b, lab, d, roosts)


# ----------------------------------------------------------------------- A: roost reflects


@pytest.mark.scenario("rr.daemon_client")
def test_daemon_client_of_roost_reflector(topo_a: Topo) -> None:
    d, rr, c3 = topo_a.daemon, topo_a.roosts[1], topo_a.roosts[3]
    # what the daemon received: c3's route, reflected by roost
    r = d.wait_route(ONLY3, timeout=15)[0]
    assert r.originator_id == H[3], r
    assert r.cluster_list == [A_CLUSTER], r
    assert r.next_hop == H[3] and r.as_path == [], r
    # what another client received from the daemon through roost
    p = c3.wait_paths(DAEMON_PFX)[0]
    assert p["originator_id"] == H[2], p
    assert p["cluster_list"] == [A_CLUSTER], p
    assert p["next_hop"] == H[2], p
    # the reflector itself shows the daemon's route unchanged (no RR attributes yet)
    q = rr.wait_paths(DAEMON_PFX)[0]
    assert q["originator_id"] is None and q["cluster_list"] == [], q


@pytest.mark.scenario("routes.add_path")
def test_add_path_roost_to_daemon(topo_a: Topo) -> None:
    """roost (reflector) has two paths for SHARED (from h3 and h4) and sends both to the
    daemon, which shows two paths with different next hops."""
    d = topo_a.daemon
    topo_a.roosts[1].wait_paths(SHARED, n=2)

    def two() -> list[RouteView] | None:
        paths = d.rib("ipv4").get(SHARED, [])
        nhs = {p.next_hop for p in paths}
        return paths if nhs >= {H[3], H[4]} else None

    paths = wait_for(two, 15, what=f"{topo_a.kind}: two paths for {SHARED}",
                     on_timeout=lambda: f"{d.rib('ipv4').get(SHARED)}\n{d.log_tail(20)}")
    assert len(paths) >= 2


# ----------------------------------------------------------------------- B: daemon reflects


@pytest.mark.scenario("rr.roost_client")
def test_roost_client_of_daemon_reflector(topo_b: Topo) -> None:
    d, r1, r3 = topo_b.daemon, topo_b.roosts[1], topo_b.roosts[3]
    p = r1.wait_paths(ONLY3, timeout=20)[0]
    assert p["originator_id"] == H[3], p
    assert p["cluster_list"] == [B_CLUSTER], p
    assert p["next_hop"] == H[3], p
    q = r3.wait_paths(ONLY1, timeout=20)[0]
    assert q["originator_id"] == H[1] and q["cluster_list"] == [B_CLUSTER], q
    # the daemon (the other side) received roost's route as sent, without RR attributes
    v = d.wait_route(ONLY1, timeout=10)[0]
    assert v.next_hop == H[1] and v.originator_id is None and v.cluster_list == [], v


@pytest.mark.scenario("routes.add_path")
def test_add_path_daemon_to_roost(topo_b: Topo) -> None:
    """The daemon (reflector) sends both paths for SHARED to roost h1 with ADD-PATH."""
    r1 = topo_b.roosts[1]
    paths = r1.wait_paths(SHARED, n=2, timeout=20)
    assert {p["next_hop"] for p in paths} == {H[3], H[4]}, paths
    assert len({p["path_id"] for p in paths}) == 2, paths
    row = r1.peer(H[2])
    assert row["add_path_receive"], row
