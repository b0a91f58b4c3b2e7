"""RFC 7606 error handling, driven by a raw scapy peer (rawpeer.py) inside the lab: every
case opens a fresh session to roost (passive), announces GOOD_PREFIX, then sends one
malformed UPDATE/message; we check roost's RIB and session, and the NOTIFICATION bytes the
peer read (decoded with scapy)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.netns import Host, Lab, require_netns, wait_for

from .harness import PEER4, PEER_ASN, ROOST4, ROOST_ASN, ROOST_RID, Roost, RoostPeer, roost_toml
from .matrix import daemons_for

RAWPEER = Path(__file__).with_name("rawpeer.py")
REPO = Path(__file__).resolve().parents[2]
GOOD = "10.50.0.0/24"


@pytest.fixture(scope="module")
def raw(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Roost, Host]]:
    require_netns()
    pytest.importorskip("scapy.contrib.bgp")
    with Lab(tmp_path_factory.mktemp("rfc7606")) as lab:
        h1, h2 = lab.flat(2, v6=False)
        roost = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID,
                                     [RoostPeer(PEER4, PEER_ASN, passive=True)],
                                     listen=[ROOST4]))
        roost.start()
        h1.wait_listening(179)
        yield roost, h2


def run_case(raw: tuple[Roost, Host], case: str,
             during: Callable[[], None] | None = None) -> dict[str, Any]:
    """Run rawpeer.py CASE in h2; ``during`` is called repeatedly while the session is
    still up after the malformed message (the peer lingers 3 s then)."""
    roost, h2 = raw
    wait_for(lambda: roost.peer_state(PEER4) == "Active", 15,
             what="roost waiting for the raw peer")
    argv = ["env", f"PYTHONPATH={REPO}", sys.executable, str(RAWPEER), ROOST4, case]
    if during is None:
        cp = h2.run(argv, timeout=30)
        stdout = cp.stdout
    else:
        proc = h2.popen([*argv, "3"], stdout=subprocess.PIPE)
        deadline = time.monotonic() + 30
        while proc.poll() is None and time.monotonic() < deadline:
            during()
            time.sleep(0.1)
        stdout = proc.communicate(timeout=10)[0].decode()
    res: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    assert "error" not in res, res
    return res


def _route(roost: Roost) -> dict[str, Any] | None:
    paths = roost.paths(GOOD)
    return paths[0] if paths else None


def _down_after(roost: Roost, before: int) -> None:
    wait_for(lambda: roost.peer(PEER4)["established_count"] > before
             and roost.peer_state(PEER4) != "Established", 10, what="session over")


TREAT_AS_WITHDRAW = ["bad_origin", "origin_flags", "bad_community_len", "bad_next_hop_len",
                     "malformed_as_path", "missing_origin"]


@pytest.mark.scenario("errors.treat_as_withdraw")
@pytest.mark.parametrize("daemon", daemons_for("errors.treat_as_withdraw"))
@pytest.mark.parametrize("case", TREAT_AS_WITHDRAW)
def test_treat_as_withdraw(raw: tuple[Roost, Host], daemon: str, case: str) -> None:
    roost = raw[0]
    res = run_case(raw, case)
    assert res["notification"] is None, res  # no reset
    assert not res["closed"], res
    # the good route announced first is withdrawn by the malformed UPDATE
    wait_for(lambda: _route(roost) is None, 5, what=f"{GOOD} treated as withdrawn",
             on_timeout=lambda: f"{_route(roost)}\n{roost.log_tail(10)}")


@pytest.mark.scenario("errors.attribute_discard")
@pytest.mark.parametrize("daemon", daemons_for("errors.attribute_discard"))
@pytest.mark.parametrize("case", ["local_pref_ebgp", "bad_aggregator", "duplicate_med"])
def test_attribute_discard(raw: tuple[Roost, Host], daemon: str, case: str) -> None:
    roost = raw[0]
    seen: dict[str, Any] = {}

    def watch() -> None:
        r = _route(roost)
        if r is not None:
            seen.update(r)

    res = run_case(raw, case, during=watch)
    assert res["notification"] is None and not res["closed"], res
    assert seen, f"{GOOD} not kept after {case}\n{roost.log_tail(10)}"
    if case == "local_pref_ebgp":
        assert seen["local_pref"] in (None, 100), seen
    if case == "duplicate_med":
        assert seen["med"] == 1, seen


@pytest.mark.scenario("errors.session_reset")
@pytest.mark.parametrize("daemon", daemons_for("errors.session_reset"))
@pytest.mark.parametrize("case,code", [("unknown_well_known", (3, 2)), ("bad_length", (1, 2)),
                                       ("bad_marker", (1, 1))])
def test_session_reset(raw: tuple[Roost, Host], daemon: str, case: str,
                       code: tuple[int, int]) -> None:
    roost = raw[0]
    before = roost.peer(PEER4)["established_count"]
    res = run_case(raw, case)
    assert res["notification"] == list(code), res
    _down_after(roost, before)
    row = roost.peer(PEER4)
    assert "notification-sent" in str(row["last_down"]), row
    wait_for(lambda: _route(roost) is None, 5, what="routes of the reset session withdrawn")
