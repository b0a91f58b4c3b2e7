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

roost's time is split in phases: ``update()`` (the producer's calls), ``flush()``, and of that
the time the sender thread spent inside ``send()`` (the kernel's own work; the rest is what
roost adds on top). ``--profile`` runs cProfile over one withdrawal (update + flush) and prints
the top functions. Each run and the summary are appended as JSON lines to ``--report``
(bench/results/kernel_install.jsonl).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from kernel import KernelRoute, NetlinkSink, NextHop

BASE = int(IPv4Address("11.0.0.0"))
GATEWAY = "10.255.0.2"
REPORT = Path(__file__).resolve().parent / "results" / "kernel_install.jsonl"


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


def time_sends(sink: NetlinkSink) -> list[float]:
    """Wrap the sink's request channel: the seconds each send() call spends in the kernel."""
    chan = sink._chan  # (a benchmark's probe)
    assert chan is not None
    spent: list[float] = []
    send = chan.send

    def timed(*args: Any) -> dict[int, tuple[int, str | None]]:
        t0 = time.perf_counter()
        try:
            return send(*args)
        finally:
            spent.append(time.perf_counter() - t0)

    chan.send = timed  # type: ignore[method-assign, assignment]
    return spent


async def run_roost(n: int, profile: bool = False) -> dict[str, float]:
    t0 = time.perf_counter()
    gw = IPv4Address(GATEWAY)
    nexthops = (NextHop(gw, "eth0"),)
    routes = [KernelRoute(IPv4Network((BASE + i, 32)), nexthops) for i in range(n)]
    build = time.perf_counter() - t0
    ns = make_ns()
    try:
        sink = NetlinkSink(netns=ns)
        await sink.start()
        spent = time_sends(sink)
        t0 = time.perf_counter()
        for r in routes:
            sink.update(r.prefix, r)
        t1 = time.perf_counter()
        await sink.flush()
        install = time.perf_counter() - t0
        out = {"build": build, "install": install, "install_update": t1 - t0,
               "install_kernel": sum(spent)}  # fmt: skip
        assert count_bird(ns) == n, "roost: not all routes are in the FIB"
        spent.clear()
        prof = cProfile.Profile() if profile else None
        if prof is not None:
            prof.enable()
        t0 = time.perf_counter()
        for r in routes:
            sink.update(r.prefix, None)
        t1 = time.perf_counter()
        await sink.flush()
        withdraw = time.perf_counter() - t0
        if prof is not None:
            prof.disable()
            pstats.Stats(prof).sort_stats("tottime").print_stats(15)
        out |= {"withdraw": withdraw, "withdraw_update": t1 - t0, "withdraw_kernel": sum(spent)}
        assert count_bird(ns) == 0, "roost: routes left after withdrawal"
        assert sink.stats["errors"] == 0
        await sink.close()
    finally:
        del_ns(ns)
    return out


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
    ap.add_argument("--profile", action="store_true", help="cProfile an extra roost withdrawal")
    ap.add_argument("--label", default="", help="a tag for the report lines (e.g. a version)")
    ap.add_argument("--report", type=Path, default=REPORT, help="JSON lines appended here")
    ap.add_argument("--no-report", action="store_true")
    args = ap.parse_args()
    if os.geteuid() != 0:
        sys.exit("kernel_install.py: needs root (network namespaces)")
    have_bird = shutil.which("bird") is not None and shutil.which("birdc") is not None
    load0 = os.getloadavg()
    roost: list[dict[str, float]] = []
    bird: list[dict[str, float]] = []
    lines: list[dict[str, Any]] = []
    common = {"routes": args.routes, "label": args.label, "kernel": os.uname().release}

    def stamp(row: dict[str, Any]) -> dict[str, Any]:
        return {**row, **common, "load1": round(os.getloadavg()[0], 2),
                "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())}  # fmt: skip

    if args.profile:  # an extra run, not counted (cProfile slows it down)
        asyncio.run(run_roost(args.routes, profile=True))
    with tempfile.TemporaryDirectory(prefix="roost-bench-") as tmp:
        for i in range(args.runs):  # interleaved, so both see the same machine load
            roost.append(asyncio.run(run_roost(args.routes)))
            lines.append(stamp({"impl": "roost", **rounded(roost[-1])}))
            if have_bird:
                bird.append(run_bird(args.routes, Path(tmp)))
                lines.append(stamp({"impl": "bird", **rounded(bird[-1])}))
            print(f"run {i + 1}: roost {rounded(roost[-1])}"
                  + (f" bird {rounded(bird[-1])}" if bird else ""))  # fmt: skip

    def med(rows: list[dict[str, float]], key: str) -> float:
        return statistics.median(r[key] for r in rows)

    load1 = os.getloadavg()[0]
    print(
        f"\n{args.routes} routes, median [min..max] of {args.runs} runs, kernel"
        f" {os.uname().release}; 1-min load average {load0[0]:.1f} before, {load1:.1f} after"
    )
    print(f"{'':10} {'roost':>22} {'BIRD':>22} {'ratio of medians':>17} {'median of ratios':>17}")

    def cell(rows: list[dict[str, float]], key: str) -> str:
        vals = [r[key] for r in rows]
        return f"{statistics.median(vals):.3f} [{min(vals):.2f}..{max(vals):.2f}]"

    summary: dict[str, Any] = {"impl": "summary", "runs": args.runs,
                               "load1_before": round(load0[0], 2)}  # fmt: skip
    for key in ("install", "withdraw"):
        r = med(roost, key)
        summary[f"roost_{key}_s"] = round(r, 4)
        if bird:
            b = med(bird, key)
            # Each roost run is paired with the BIRD run right after it (same machine load).
            paired = statistics.median(x[key] / y[key] for x, y in zip(roost, bird, strict=True))
            summary |= {f"bird_{key}_s": round(b, 4), f"{key}_ratio": round(r / b, 3),
                        f"{key}_paired_ratio": round(paired, 3)}  # fmt: skip
            print(
                f"{key:10} {cell(roost, key):>22} {cell(bird, key):>22} {r / b:16.2f}x"
                f" {paired:16.2f}x"
            )
        else:
            print(f"{key:10} {cell(roost, key):>22} {'n/a':>22}")
    for key in ("install", "withdraw"):
        upd, kern, total = med(roost, f"{key}_update"), med(roost, f"{key}_kernel"), med(roost, key)
        summary |= {f"roost_{key}_update_s": round(upd, 4), f"roost_{key}_kernel_s": round(kern, 4)}
        print(
            f"roost {key}, medians: update() {upd:.3f}s, in the kernel (send) {kern:.3f}s,"
            f" the rest of flush() {total - upd - kern:.3f}s"
        )
    print(f"(roost: building the KernelRoute values beforehand took {med(roost, 'build'):.3f}s)")
    if not args.no_report:
        lines.append(stamp(summary))
        args.report.parent.mkdir(parents=True, exist_ok=True)
        with args.report.open("a") as f:
            f.writelines(json.dumps(line) + "\n" for line in lines)
        print(f"appended {len(lines)} lines to {args.report}")


def rounded(row: dict[str, float]) -> dict[str, float]:
    return {k: round(v, 4) for k, v in row.items()}


if __name__ == "__main__":
    main()
