"""Install and withdraw 100k routes: roost's NetlinkSink against BIRD 2's kernel protocol.

    sudo .venv/bin/python bench/kernel_install.py [--routes 100000] [--runs 3]

Each run uses fresh namespaces (``roost-bench-*``; deleted afterwards) holding one veth
``eth0`` 10.255.0.1/24, and installs ``/32 via 10.255.0.2 dev eth0 onlink`` routes into the
main table with protocol bird, metric 1024.

* roost: ``update()`` of every route, then ``flush()`` (until the last netlink send has
  returned); withdrawal likewise with ``update(prefix, None)``. The KernelRoute values are
  built beforehand (the BGP side hands them over ready-made); that time is shown apart.
* BIRD: ``bird -f`` with a static protocol of N ``route X/32 via 10.255.0.2`` and a kernel
  protocol ``export all``; timed from process start until /proc/PID/net/route has N routes
  (polled every 5 ms; one read of a 100k-line file costs ~30 ms, so this rounds BIRD up a
  little); withdrawal: ``birdc configure`` to a config without the routes, until 0 are left.

Runs alternate roost, BIRD, roost, BIRD, ... The summary gives median [min..max], the ratio
of the medians and the median of the per-run ratios (roost run i against BIRD run i, which
ran right after it under the same machine load), and the 1-minute load average.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel import KernelRoute, NetlinkSink, NextHop

BASE = int(IPv4Address("11.0.0.0"))
GATEWAY = "10.255.0.2"


def make_ns() -> str:
    ns = f"roost-bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    for cmd in (
        "link set lo up",
        "link add eth0 type veth peer name peer0",
        "addr add 10.255.0.1/24 dev eth0",
        "link set eth0 up",
        "link set peer0 up",
    ):
        subprocess.run(["ip", "-n", ns, *cmd.split()], check=True)
    return ns


def del_ns(ns: str) -> None:
    subprocess.run(["ip", "netns", "del", ns], check=False)


def count_bird(ns: str) -> int:
    out = subprocess.run(
        ["ip", "-n", ns, "route", "show", "proto", "bird"], capture_output=True, check=True
    ).stdout
    return out.count(b"\n")


async def run_roost(n: int) -> dict[str, float]:
    t0 = time.perf_counter()
    gw = IPv4Address(GATEWAY)
    nexthops = (NextHop(gw, "eth0"),)
    routes = [KernelRoute(IPv4Network((BASE + i, 32)), nexthops) for i in range(n)]
    build = time.perf_counter() - t0
    ns = make_ns()
    try:
        sink = NetlinkSink(netns=ns)
        await sink.start()
        t0 = time.perf_counter()
        for r in routes:
            sink.update(r.prefix, r)
        await sink.flush()
        install = time.perf_counter() - t0
        assert count_bird(ns) == n, "roost: not all routes are in the FIB"
        t0 = time.perf_counter()
        for r in routes:
            sink.update(r.prefix, None)
        await sink.flush()
        withdraw = time.perf_counter() - t0
        assert count_bird(ns) == 0, "roost: routes left after withdrawal"
        assert sink.stats["errors"] == 0
        await sink.close()
    finally:
        del_ns(ns)
    return {"build": build, "install": install, "withdraw": withdraw}


BIRD_HEAD = """router id 10.255.0.1;
protocol device {}
protocol kernel { ipv4 { export all; }; metric 1024; }
protocol static { ipv4;
"""


def run_bird(n: int, workdir: Path) -> dict[str, float]:
    full, empty, sock = workdir / "full.conf", workdir / "empty.conf", workdir / "bird.ctl"
    with full.open("w") as f:
        f.write(BIRD_HEAD)
        f.writelines(f"  route {IPv4Address(BASE + i)}/32 via {GATEWAY};\n" for i in range(n))
        f.write("}\n")
    empty.write_text(BIRD_HEAD + "}\n")
    ns = make_ns()
    proc: subprocess.Popen[bytes] | None = None
    try:
        t0 = time.perf_counter()
        # `ip netns exec` execs bird in place: proc.pid is BIRD's pid.
        proc = subprocess.Popen(
            ["ip", "netns", "exec", ns, "bird", "-f", "-c", str(full), "-s", str(sock)]
        )
        route_file = Path(f"/proc/{proc.pid}/net/route")

        def fib() -> int:
            try:
                with route_file.open("rb") as f:
                    return sum(1 for _ in f) - 2  # header and the connected route
            except (FileNotFoundError, ProcessLookupError):
                return -1

        while fib() < n:
            if proc.poll() is not None:
                raise RuntimeError(f"bird exited with {proc.returncode}")
            time.sleep(0.005)
        install = time.perf_counter() - t0
        t0 = time.perf_counter()
        subprocess.run(
            ["birdc", "-s", str(sock), "configure", f'"{empty}"'],
            check=True,
            stdout=subprocess.DEVNULL,
        )
        while fib() > 0:
            time.sleep(0.005)
        withdraw = time.perf_counter() - t0
    finally:
        if proc is not None:
            proc.terminate()  # our own child, by pid
            proc.wait(timeout=10)
        del_ns(ns)
    return {"install": install, "withdraw": withdraw}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--routes", type=int, default=100_000)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("kernel_install.py: needs root (network namespaces)")
    have_bird = shutil.which("bird") is not None and shutil.which("birdc") is not None
    load0 = os.getloadavg()
    roost: list[dict[str, float]] = []
    bird: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        for i in range(args.runs):  # interleaved, so both see the same machine load
            roost.append(asyncio.run(run_roost(args.routes)))
            if have_bird:
                bird.append(run_bird(args.routes, Path(tmp)))
            print(f"run {i + 1}: roost {roost[-1]}" + (f" bird {bird[-1]}" if bird else ""))

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    print(
        f"\n{args.routes} routes, median [min..max] of {args.runs} runs, kernel"
        f" {os.uname().release}; 1-min load average {load0[0]:.1f} before,"
        f" {os.getloadavg()[0]:.1f} after"
    )
    print(f"{'':10} {'roost':>22} {'BIRD':>22} {'ratio of medians':>17} {'median of ratios':>17}")

    def cell(rows: list[dict[str, float]], key: str) -> str:
        vals = [r[key] for r in rows]
        return f"{statistics.median(vals):.3f} [{min(vals):.2f}..{max(vals):.2f}]"

    for key in ("install", "withdraw"):
        r = med(roost, key)
        if bird:
            b = med(bird, key)
            # Each roost run is paired with the BIRD run right after it (same machine load).
            paired = statistics.median(x[key] / y[key] for x, y in zip(roost, bird, strict=True))
            print(
                f"{key:10} {cell(roost, key):>22} {cell(bird, key):>22} {r / b:16.2f}x"
                f" {paired:16.2f}x"
            )
        else:
            print(f"{key:10} {cell(roost, key):>22} {'n/a':>22}")
    print(f"(roost: building the KernelRoute values beforehand took {med(roost, 'build'):.3f}s)")


if __name__ == "__main__":
    main()
