"""TCP MD5 (RFC 2385) with each daemon: matching keys establish, a wrong key never does."""

from __future__ import annotations

import time

import pytest

from tests.harness.daemons import Neighbor
from tests.harness.fixtures import require_daemons
from tests.harness.netns import Lab

from .harness import (
    CLASSES,
    PEER4,
    PEER_ASN,
    PEER_RID,
    ROOST4,
    ROOST_ASN,
    ROOST_RID,
    Roost,
    RoostPeer,
    new_daemon,
    roost_toml,
)
from .matrix import daemons_for


def _md5_pair(lab: Lab, daemon: str, roost_key: str, daemon_key: str) -> tuple[Roost, object]:
    require_daemons(CLASSES[daemon])
    h1, h2 = lab.flat(2, v6=False)
    d = new_daemon(daemon, h2, PEER_ASN, PEER_RID,
                   [Neighbor(ROOST4, ROOST_ASN, password=daemon_key,
                             passive=daemon == "gobgp")])
    # ExaBGP only connects: roost waits (passive) so that the key is checked on accept
    roost = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID,
                                 [RoostPeer(PEER4, PEER_ASN, password=roost_key,
                                            passive=daemon == "exabgp")],
                                 listen=[ROOST4], prefixes=["10.10.0.0/24"]))
    d.start()
    roost.start()
    return roost, d


@pytest.mark.scenario("md5.match")
@pytest.mark.parametrize("daemon", daemons_for("md5.match"))
def test_md5_match(lab: Lab, daemon: str) -> None:
    roost, d = _md5_pair(lab, daemon, "s3cret-Key", "s3cret-Key")
    roost.wait_peer(PEER4, timeout=20)
    d.wait_established(ROOST4, timeout=10)  # type: ignore[attr-defined]
    d.wait_route("10.10.0.0/24", timeout=10)  # type: ignore[attr-defined]


@pytest.mark.scenario("md5.mismatch")
@pytest.mark.parametrize("daemon", daemons_for("md5.mismatch"))
def test_md5_mismatch(lab: Lab, daemon: str) -> None:
    roost, d = _md5_pair(lab, daemon, "s3cret-Key", "wrong-Key")
    deadline = time.monotonic() + 8
    while time.monotonic() < deadline:
        row = roost.peer(PEER4)
        assert row["state"] != "Established" and row["messages_in"] == 0, row
        assert d.neighbor_state(ROOST4) != "established"  # type: ignore[attr-defined]
        time.sleep(0.5)
