"""Long-lived graceful restart (RFC 9494): "all reflectors went away".

1. Two roost route reflectors (pure reflectors, restart time 2 s, long-lived stale time
   60 s) and two roost nodes; n2 originates a block. Both reflectors are SIGKILLed: n1
   keeps n2's block in the kernel the whole time (sampled every ~50 ms), stale for the
   2 s restart time, then long-lived stale (`show routes` says so). rr1 starts again:
   its fresh path replaces the one it left, while rr2's long-lived path stays as the
   least preferred fallback (`show route-reasons`: lost on `llgr_stale`).
2. Interop, both roles with BIRD 2 (`long lived graceful restart on`): roost keeps a
   killed BIRD's route past BIRD's restart time, long-lived stale, in the kernel; BIRD
   keeps a killed roost's route past roost's restart time, with LLGR_STALE.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from typing import Any

import pytest

from tests.harness.daemons import Bird, Neighbor
from tests.harness.netns import Host, Lab, wait_for
from tests.integration.roost_node import REPO, RoostNode
from tests.integration.test_graceful_restart import KernelSampler, via

pytestmark = pytest.mark.needs_root

ASN = 64512
BLOCK = "172.17.9.0/24"  # n2's
RR_GR = "graceful_restart = { restart_time = 2, long_lived_stale_time = 60 }"


def node_config(host: Host, prefixes: Sequence[str], reflectors: Sequence[str]) -> str:
    peers = "".join(f'\n[[peer]]\naddress = "{rr}"\nasn = {ASN}\nroute_reflector = true\n'
                    for rr in reflectors)
    return f"""\
[router]
asn = {ASN}
id = "{host.addr4}"
listen = "{host.addr4}"
prefixes = {list(prefixes)!r}
connect_retry_time = 1
{peers}"""


def reflector_config(host: Host, clients: Sequence[str]) -> str:
    peers = "".join(f'\n[[peer]]\naddress = "{c}"\nasn = {ASN}\nrr_client = true\n'
                    for c in clients)
    return f"""\
[router]
asn = {ASN}
id = "{host.addr4}"
listen = "{host.addr4}"
connect_retry_time = 1
{RR_GR}

[reflector]
{peers}"""


def paths(node: RoostNode, prefix: str) -> list[dict[str, Any]]:
    return [p for r in node.show("routes", prefix) for p in r["paths"]]


def sources(node: RoostNode, prefix: str) -> dict[str, dict[str, Any]]:
    """The paths of `prefix` by source peer address."""
    return {p["from"].split()[0]: p for p in paths(node, prefix)}


def kill9(node: RoostNode) -> None:
    assert node.proc is not None
    os.kill(node.proc.pid, signal.SIGKILL)
    node.proc.wait(10)
    node.proc = None


def diag(nodes: Sequence[RoostNode]) -> str:
    parts = []
    for n in nodes:
        if n.proc is not None:
            try:
                parts.append(f"{n.name}: {n.show('routes')}\n  kernel {n.kernel_routes()}")
            except Exception as exc:
                parts.append(f"{n.name}: <show failed: {exc!r}>")
        parts.append(n.log_tail(15))
    return "\n".join(parts)


def test_all_reflectors_gone_routes_stay_long_lived(lab: Lab) -> None:
    n1h, n2h, r1h, r2h = lab.flat(4, names=["n1", "n2", "rr1", "rr2"], v6=False)
    rr_addrs = [str(r1h.addr4), str(r2h.addr4)]
    clients = [str(n1h.addr4), str(n2h.addr4)]
    n2_addr = str(n2h.addr4)
    rr1, rr2 = (RoostNode(h, reflector_config(h, clients)) for h in (r1h, r2h))
    n1 = RoostNode(n1h, node_config(n1h, [], rr_addrs))
    n2 = RoostNode(n2h, node_config(n2h, [BLOCK], rr_addrs))
    nodes = [rr1, rr2, n1, n2]
    for n in nodes:
        n.start()

    def both_fresh() -> bool:
        src = sources(n1, BLOCK)
        return (set(src) == set(rr_addrs) and not any(p["stale"] for p in src.values())
                and via(BLOCK, n2_addr) in n1.kernel_routes())

    wait_for(both_fresh, 30, interval=0.2, what="n1 has n2's block from both reflectors",
             on_timeout=lambda: diag(nodes))
    sampler = KernelSampler([(n1.host, [via(BLOCK, n2_addr)])])
    sampler.start()
    try:
        t0 = time.monotonic()
        kill9(rr1)
        kill9(rr2)
        # GR phase: both paths kept, stale, not yet long-lived.
        wait_for(lambda: (src := sources(n1, BLOCK)) and set(src) == set(rr_addrs)
                 and all(p["stale"] for p in src.values()), 3, interval=0.05,
                 what="n1: both paths stale", on_timeout=lambda: diag(nodes))
        # Restart time (2 s) over: long-lived stale (RFC 9494 §4.2), not swept.
        wait_for(lambda: (src := sources(n1, BLOCK)) and set(src) == set(rr_addrs)
                 and all(p["llgr_stale"] for p in src.values()), 6, interval=0.1,
                 what="n1: both paths long-lived stale", on_timeout=lambda: diag(nodes))
        long_lived_after = time.monotonic() - t0
        assert long_lived_after >= 1.9, long_lived_after  # not before the restart time
        text = subprocess.run(
            [sys.executable, "-m", "roost", "show", "routes", BLOCK, "--socket", n1.socket],
            capture_output=True, text=True, timeout=10, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO))).stdout
        assert text.count("(llgr-stale)") == 2, text
        # Well past the point where plain graceful restart would have swept it.
        time.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))
        assert via(BLOCK, n2_addr) in n1.kernel_routes()
        # One reflector comes back: its fresh path replaces the one it left; the other
        # reflector's long-lived path stays, least preferred.
        rr1.start()

        def rr1_fresh_rr2_fallback() -> bool:
            src = sources(n1, BLOCK)
            if set(src) != set(rr_addrs):
                return False
            fresh, old = src[rr_addrs[0]], src[rr_addrs[1]]
            return (fresh["best"] and not fresh["stale"] and not fresh["llgr_stale"]
                    and old["llgr_stale"] and not old["best"])

        wait_for(rr1_fresh_rr2_fallback, 30, interval=0.1,
                 what="n1: rr1's fresh path best, rr2's long-lived one the fallback",
                 on_timeout=lambda: diag(nodes))
        back_after = time.monotonic() - t0
        time.sleep(0.3)  # a few more samples
    finally:
        sampler.stop()
    assert sampler.samples > 20, sampler.samples
    assert not sampler.gaps, sampler.gaps[:10]
    reasons = n1.cli_show("route-reasons", BLOCK)
    assert reasons["best"].split()[0] == rr_addrs[0], reasons
    assert [(lo["path"].split()[0], lo["reason"]) for lo in reasons["losers"]] == [
        (rr_addrs[1], "llgr_stale")], reasons
    # rr1's End-of-RIB came and went: nothing of rr1 is stale on n1.
    wait_for(lambda: not any(p["stale"] for p in paths(n1, BLOCK)
                             if p["from"].split()[0] == rr_addrs[0]), 5,
             what="n1: nothing stale from rr1")
    log = n1.log_path.read_text()
    assert "long-lived graceful restart: restart time over" in log, n1.log_tail()
    print(f"long-lived after {long_lived_after:.1f} s, fresh again after {back_after:.1f} s, "
          f"{sampler.samples} kernel samples, none missing")


# --------------------------------------------------------------------------- BIRD


class LlgrBird(Bird):
    """BIRD 2 with graceful restart (2 s) and long-lived graceful restart (60 s) on."""

    def _proto(self, n: Neighbor) -> str:
        return super()._proto(n).replace(
            "  hold time",
            "  graceful restart on; graceful restart time 2;\n"
            "  long lived graceful restart on; long lived stale time 60;\n  hold time", 1)


def test_bird_interop_both_roles(lab: Lab) -> None:
    if not Bird.available():
        pytest.skip("needs bird (apt-get install bird2)")
    bh, rh = lab.flat(2, names=["bird", "roost"], v6=False)
    b_addr, r_addr = str(bh.addr4), str(rh.addr4)
    bird = LlgrBird(bh, ASN, b_addr, [Neighbor(r_addr, ASN)], waker=True,
                    originate=[BLOCK])
    roost = RoostNode(rh, f"""\
[router]
asn = {ASN}
id = "{r_addr}"
listen = "{r_addr}"
prefixes = ["172.17.10.0/24"]
connect_retry_time = 1
graceful_restart = {{ restart_time = 2, long_lived_stale_time = 60 }}

[[peer]]
address = "{b_addr}"
asn = {ASN}
""")
    bird.start()
    roost.start()

    def diag2() -> str:
        return "\n".join([bird.log_tail(30), roost.log_tail(30)])

    roost.wait_established(1, timeout=30)
    wait_for(lambda: via(BLOCK, b_addr) in roost.kernel_routes(), 20,
             what="roost installs BIRD's block", on_timeout=diag2)
    bird.wait_route("172.17.10.0/24", timeout=20)

    # roost as helper: BIRD is killed; its block stays past BIRD's 2 s restart time.
    sampler = KernelSampler([(roost.host, [via(BLOCK, b_addr)])])
    sampler.start()
    try:
        t0 = time.monotonic()
        bird.kill()
        wait_for(lambda: (ps := paths(roost, BLOCK)) and all(p["llgr_stale"] for p in ps),
                 8, what="BIRD's block long-lived stale on roost", on_timeout=diag2)
        assert time.monotonic() - t0 >= 1.9
        time.sleep(max(0.0, 4.0 - (time.monotonic() - t0)))
    finally:
        sampler.stop()
    assert sampler.samples > 20 and not sampler.gaps, (sampler.samples, sampler.gaps[:5])
    bird.start()
    wait_for(lambda: (ps := paths(roost, BLOCK)) and not any(p["stale"] for p in ps), 30,
             what="BIRD's block fresh again on roost", on_timeout=diag2)

    # BIRD as helper: roost is killed; BIRD keeps roost's block past roost's 2 s
    # restart time, marked LLGR_STALE (65535:6).
    roost.wait_established(1, timeout=30)
    bird.wait_route("172.17.10.0/24", timeout=20)
    assert roost.proc is not None
    os.kill(roost.proc.pid, signal.SIGKILL)
    roost.proc.wait(10)
    roost.proc = None
    t1 = time.monotonic()
    routes = bird.wait_route(
        "172.17.10.0/24", timeout=10,
        pred=lambda ps: any("65535:6" in p.communities for p in ps))
    assert routes and time.monotonic() - t1 >= 1.5, routes
