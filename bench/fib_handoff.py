"""The FIB hand-off: what a best-path change costs the daemon before it reaches the sink.

    .venv/bin/python bench/fib_handoff.py                      # 100k prefixes, best of 5
    .venv/bin/python bench/fib_handoff.py --n 100000 --hops 4 --pools 2 --profile

A feed like `bench/receive.py --offline` (BIRD-like UPDATEs, /32s counting up from
10.0.0.0, as many per 4096-octet UPDATE as fit) is replayed in process through
`Speaker.receive_updates` (16 UPDATEs per call) of a `Daemon` whose sink is a `MemorySink`:
the speaker calls `Daemon._on_best_change` once per family and batch, which turns each moved
prefix into a `KernelRoute` (`TunnelPolicy`: eth0 or tunl0) and hands it to the sink's
coalescing queue. Only the time spent inside `_on_best_change` is counted (iterating the
lazy `BestChanges`, the route, `sink.update`), divided by the prefixes handed off; the
sink's `flush` (what a kernel would be asked) is not, nor is the speaker.

The next hops rotate per UPDATE over `--hops` addresses: half on the node's subnet
(10.255.0.0/24: `dev eth0 onlink`), half on another (10.254.0.0/24: `dev tunl0 onlink`
under `cross-subnet`), the common Calico shape of many prefixes behind a few nodes.
`--pools` IP pools (the first covering the feed, cross-subnet; the others elsewhere) make
the per-prefix pool lookup part of the cost; 0 uses the default mode (cross-subnet). Phases:
`announce` (N new prefixes), `move` (the same N, each UPDATE's next hop shifted by one:
every route replaced), `withdraw` (all N).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import gc
import ipaddress
import pstats
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bgp.policy import ACCEPT_ALL  # noqa: E402
from bgp.rib.loc_rib import BestChanges  # noqa: E402
from bgp.rib.path import PeerInfo  # noqa: E402
from bgp.speaker import PeerConfigForSpeaker  # noqa: E402
from bgp.types import IPV4_UNICAST, Family  # noqa: E402
from bgp.wire.attrcodec import clear_caches  # noqa: E402
from bgp.wire.attributes import AsPath, AttrSet  # noqa: E402
from bgp.wire.framing import FrameBuffer  # noqa: E402
from bgp.wire.messages import decode_message  # noqa: E402
from bgp.wire.model import Negotiated, Update  # noqa: E402
from bgp.wire.packing import end_of_rib, pack_announcements, pack_withdrawals  # noqa: E402
from bgp.wire.prefix import Nlri, Prefix  # noqa: E402
from kernel.routes import TunnelMode, TunnelPolicy  # noqa: E402
from kernel.sink import MemorySink  # noqa: E402
from roost import config as cfg  # noqa: E402
from roost.daemon import GC_THRESHOLDS, Daemon  # noqa: E402

S_ADDR, R_ADDR = "10.255.0.1", "10.255.0.2"
S_ASN, R_ASN = 65001, 65002
FIRST = int(ipaddress.IPv4Address("10.0.0.0"))
CONFIG = f'[router]\nasn = {R_ASN}\nid = "{R_ADDR}"\n'
CTX = Negotiated(
    asn4=True,
    families=frozenset({IPV4_UNICAST}),
    peer_asn=S_ASN,
    peer_router_id=ipaddress.IPv4Address(S_ADDR),
)
PHASES = ("announce", "move", "withdraw")


def next_hops(count: int) -> list[ipaddress.IPv4Address]:
    """Half on the node's subnet (eth0), half behind a router (tunl0 in cross-subnet)."""
    return [ipaddress.IPv4Address(f"10.{255 - i % 2}.0.{10 + i // 2}") for i in range(count)]


def feed(n: int, hops: list[ipaddress.IPv4Address], shift: int) -> bytes:
    """N /32s in UPDATEs of one attribute set each; the next hop rotates per UPDATE."""
    nlri = [Nlri(Prefix(1, 32, FIRST + i)) for i in range(n)]
    per = 1000  # prefixes per attribute set (~1 UPDATE of 4096 octets holds 800 /32s)
    out = []
    for k, start in enumerate(range(0, n, per)):
        attrs = AttrSet.make(
            origin=0, as_path=AsPath.sequence(S_ASN), next_hop=hops[(k + shift) % len(hops)]
        )
        out += pack_announcements(IPV4_UNICAST, attrs, nlri[start : start + per], CTX)
    return b"".join(out)


def policy(pools: int) -> TunnelPolicy:
    modes: dict[Any, TunnelMode] = {}
    if pools:
        modes[ipaddress.ip_network("10.0.0.0/14")] = TunnelMode.CROSS_SUBNET
    for i in range(1, pools):
        modes[ipaddress.ip_network(f"172.{16 + i}.0.0/16")] = TunnelMode.ALWAYS
    return TunnelPolicy(
        interfaces={"eth0": ipaddress.IPv4Interface(f"{R_ADDR}/24")},
        modes=modes,
        default=TunnelMode.CROSS_SUBNET,
    )


def updates(stream: bytes) -> list[Update]:
    frames = FrameBuffer()
    frames.feed(stream)
    out = []
    while (frame := frames.next_frame()) is not None:
        update = decode_message(frame[0], frame[1], CTX)
        assert isinstance(update, Update)
        out.append(update)
    return out


async def once(
    n: int,
    hops: int,
    pools: int,
    profile: cProfile.Profile | None,
    collect: bool = True,
    batch: int = 16,
) -> dict[str, float]:
    clear_caches()
    sink = MemorySink()
    daemon = Daemon(cfg.loads(CONFIG), sink=sink, install_signals=False)
    daemon.tunnel = policy(pools)
    addrs = next_hops(hops)
    phases = {
        "announce": updates(feed(n, addrs, 0) + end_of_rib(IPV4_UNICAST, CTX)),
        "move": updates(feed(n, addrs, 1)),
        "withdraw": updates(
            b"".join(
                pack_withdrawals(
                    IPV4_UNICAST, [Nlri(Prefix(1, 32, FIRST + i)) for i in range(n)], CTX
                )
            )
        ),
    }
    spent = [0.0, 0.0, 0]  # seconds (wall, CPU) inside the hand-off, prefixes handed off
    handoff: Callable[[Family, BestChanges], None] = daemon._on_best_change

    def timed(family: Family, changes: BestChanges) -> None:
        t0, c0 = time.perf_counter(), time.thread_time()
        if profile is not None:
            profile.runcall(handoff, family, changes)
        else:
            handoff(family, changes)
        spent[0] += time.perf_counter() - t0
        spent[1] += time.thread_time() - c0
        spent[2] += len(changes.prefixes())

    daemon.speaker.on_best_change = timed
    speaker = daemon.speaker
    speaker.add_peer(
        PeerConfigForSpeaker(
            PeerInfo(S_ADDR, ipaddress.IPv4Address(S_ADDR), S_ASN, R_ASN), ACCEPT_ALL, ACCEPT_ALL
        )
    )
    speaker.peer_up(S_ADDR, CTX, 0.0)
    result: dict[str, float] = {}
    expect = {"announce": n, "move": n, "withdraw": 0}
    if not collect:
        gc.disable()
    for phase in PHASES:
        spent[:] = [0.0, 0.0, 0]
        todo = phases[phase]
        for i in range(0, len(todo), batch):
            speaker.receive_updates(S_ADDR, todo[i : i + batch], time.time())
        await sink.flush()
        assert len(sink.installed()) == expect[phase], (phase, len(sink.installed()))
        assert spent[2] == n, (phase, spent[2])
        result[phase] = spent[0] / n * 1e6
        result[phase + " CPU"] = spent[1] / n * 1e6
    gc.enable()
    return result


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--hops", type=int, default=4, help="distinct next hops in the feed")
    ap.add_argument("--pools", type=int, default=1, help="IP pools in the tunnel policy")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--profile", action="store_true", help="cProfile the hand-off, one rep")
    ap.add_argument(
        "--no-gc",
        dest="gc",
        action="store_false",
        help="garbage collector off during the replay (its share of the cost)",
    )
    args = ap.parse_args()
    if not hasattr(Daemon, "_on_best_change"):
        sys.exit("this roost has no Daemon._on_best_change")
    gc.set_threshold(*GC_THRESHOLDS)  # the garbage collector as `roost run` sets it up
    gc.freeze()
    if args.profile:
        prof = cProfile.Profile()
        asyncio.run(once(args.n, args.hops, args.pools, prof))
        pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        return
    best: dict[str, float] = {}
    for _ in range(args.reps):
        got = asyncio.run(once(args.n, args.hops, args.pools, None, args.gc))
        best = {key: min(best.get(key, value), value) for key, value in got.items()}
        print(
            "  ".join(
                f"{phase} {got[phase]:.2f} ({got[phase + ' CPU']:.2f} CPU)" for phase in PHASES
            ),
            "us/prefix",
            flush=True,
        )
    print(
        f"best of {args.reps}, {args.n} prefixes, {args.hops} next hops, {args.pools} "
        f"pool(s), gc {'on' if args.gc else 'off'}, us per prefix wall (CPU): "
        + ", ".join(f"{phase} {best[phase]:.2f} ({best[phase + ' CPU']:.2f})" for phase in PHASES)
    )


if __name__ == "__main__":
    main()
