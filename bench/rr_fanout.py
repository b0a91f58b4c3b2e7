"""Route-reflector fan-out: roost against BIRD and GoBGP as the reflector, same clients.

    sudo .venv/bin/python bench/rr_fanout.py [--n 10000] [--clients 20,50] [--reps 3]
                                             [--rr roost,bird,gobgp]
    .venv/bin/python bench/rr_fanout.py --report bench/results/rr_fanout.jsonl

One run (fresh namespaces, `tests.harness.netns.Lab`; everything on one bridge, iBGP AS
64512): the reflector at 10.255.0.250 has K BIRD 2 clients c1..cK (10.255.0.i) configured
as route-reflector clients (passive: the clients connect), cluster id 10.255.0.250. The
clients c2..cK are started and must be Established first. Then c1 starts with N /32s
(11.0.0.0 upwards) in a static protocol; a BirdWaker pokes c1's control socket every 50 ms
so that BIRD 2.0.12's 3-s poll stall cannot hold its UPDATEs (BASELINES.md). The receivers
are not woken (a BIRD receiver imports in its read hook, no stall there).

* **Est → all**: from c1's Established stamp (BIRD `timeformat protocol "%s.%3f"`, 1 ms) to
  the newest route import stamp (`timeformat route`, 1 ms) on the slowest of the K-1
  receivers — the lab's "(f) rr-fanout" definition. Completion is detected by polling each
  receiver's `Routes: N imported` every ~0.5 s; the exact time comes from the stamps.
* **RR CPU**: utime+stime of the reflector process (/proc, 10 ms ticks) during the fan-out
  (c1's start to completion) and in total (process start to completion).
* **RR RSS**: VmRSS of the reflector at completion.

Results are appended as JSON lines to bench/results/rr_fanout.jsonl (one per run);
`--report` prints the medians and the roost/BIRD, roost/GoBGP ratios. The reflector kinds
of one (K, rep) run back to back, so they see the same machine load. Only processes this
script starts are stopped (by PID, via the Lab), and the namespaces are deleted.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.harness.daemons import Bird, GoBgp, Neighbor  # noqa: E402
from tests.harness.netns import Host, Lab, wait_for  # noqa: E402

ASN = 64512
RR_IP = "10.255.0.250"
BASE = int(IPv4Address("11.0.0.0"))
RESULTS = REPO / "bench" / "results" / "rr_fanout.jsonl"
CLK_TCK = os.sysconf("SC_CLK_TCK")
KINDS = ("roost", "bird", "gobgp")


# --------------------------------------------------------------------------- /proc


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / CLK_TCK  # utime + stime


def rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


# --------------------------------------------------------------------------- BIRD probes


def birdc(bird: Bird, *args: str, timeout: float = 30) -> str:
    cp = subprocess.run(["birdc", "-s", str(bird.ctl), *args], capture_output=True,
                        text=True, timeout=timeout, check=False)
    return cp.stdout


def imported(bird: Bird) -> int:
    m = re.search(r"Routes:\s+(\d+) imported", birdc(bird, "show", "protocols", "all",
                                                      Bird.proto_name(RR_IP)))
    return int(m.group(1)) if m else 0


def established_at(bird: Bird) -> float | None:
    out = birdc(bird, "show", "protocols", Bird.proto_name(RR_IP))
    m = re.search(r"\s+up\s+(\d+\.\d+)\s+Established", out)
    return float(m.group(1)) if m else None


_STAMP = re.compile(r"\[peer_\S+ (\d+\.\d+)")


def newest_import(bird: Bird) -> tuple[float, int]:
    out = birdc(bird, "show", "route", "protocol", Bird.proto_name(RR_IP), timeout=60)
    stamps = [float(s) for s in _STAMP.findall(out)]
    return (max(stamps) if stamps else 0.0), len(stamps)


# --------------------------------------------------------------------------- reflectors


class RoostRR:
    """`python -m roost run` as a pure reflector with K passive rr_client peers."""

    def __init__(self, host: Host, clients: list[str]) -> None:
        self.host = host
        self.socket = str(host.lab.rundir / "rr.roost.ctl")
        conf = host.workdir / "roost.toml"
        peers = "".join(f'\n[[peer]]\naddress = "{c}"\nasn = {ASN}\nrr_client = true\n'
                        f"passive = true\n" for c in clients)
        conf.write_text(f'[router]\nasn = {ASN}\nid = "{RR_IP}"\nlisten = "{RR_IP}"\n\n'
                        f'[reflector]\ncluster_id = "{RR_IP}"\n{peers}\n'
                        f'[control]\nsocket = "{self.socket}"\n')
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = host.popen([sys.executable, "-m", "roost", "run", "-c", str(conf)],
                               host.workdir / "roost.log", env=env, cwd=REPO)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def stop(self) -> None:
        self.host.lab.kill_pids({self.proc.pid})


def start_rr(kind: str, host: Host, clients: list[str]) -> tuple[Any, int]:
    if kind == "roost":
        rr = RoostRR(host, clients)
        host.wait_listening(179, 15)
        return rr, rr.pid
    neighbors = [Neighbor(c, ASN, rr_client=True, passive=True) for c in clients]
    if kind == "bird":
        d: Bird | GoBgp = Bird(host, ASN, RR_IP, neighbors, cluster_id=RR_IP)
    else:
        d = GoBgp(host, ASN, RR_IP, neighbors, cluster_id=RR_IP)
    d.start()
    return d, d.pids()[0]


# --------------------------------------------------------------------------- one run


def run_one(kind: str, n: int, k: int, timeout: float, workdir: Path) -> dict[str, Any]:
    with Lab(workdir / f"{kind}-k{k}") as lab:
        names = [f"c{i}" for i in range(1, k + 1)]
        hosts = lab.flat(k, names, v6=False)
        rr_host = lab.host("rr", "sw", f"{RR_IP}/24")
        addrs = [h.addr4 or "" for h in hosts]
        _rr, rr_pid = start_rr(kind, rr_host, addrs)
        t_rr = time.time()
        receivers = [Bird(h, ASN, h.addr4 or "", [Neighbor(RR_IP, ASN)]) for h in hosts[1:]]
        for b in receivers:
            b.start()
        wait_for(lambda: all(established_at(b) for b in receivers), 60, interval=0.3,
                 what=f"{k - 1} receivers Established with the {kind} reflector")
        prefixes = [f"{IPv4Address(BASE + i)}/32" for i in range(n)]
        cpu0 = cpu_s(rr_pid)
        t_launch = time.time()
        sender = Bird(hosts[0], ASN, addrs[0], [Neighbor(RR_IP, ASN)], originate=prefixes,
                      waker=True)
        sender.start()
        deadline = time.time() + timeout
        pending = list(receivers)
        while pending:
            if time.time() > deadline:
                raise TimeoutError(f"{kind} K={k}: {len(pending)} receivers not converged")
            pending = [b for b in pending if imported(b) < n]
            time.sleep(0.5 if pending else 0)
        cpu1 = cpu_s(rr_pid)
        rss = rss_mb(rr_pid)
        t_done = time.time()
        est = established_at(sender)
        if est is None:
            raise RuntimeError("sender not Established")
        newest = []
        for b in receivers:
            stamp, count = newest_import(b)
            if count != n:
                raise RuntimeError(f"{b.name}: {count} routes, expected {n}")
            newest.append(stamp)
        sender.stop()
        return {
            "rr": kind, "n": n, "clients": k, "receivers": k - 1,
            "est_all_s": round(max(newest) - est, 3),
            "est_first_done_s": round(min(newest) - est, 3),
            "launch_all_s": round(max(newest) - t_launch, 3),
            "rr_cpu_fanout_s": round(cpu1 - cpu0, 2),
            "rr_cpu_total_s": round(cpu1, 2),
            "rr_rss_mb": round(rss, 1),
            "rr_uptime_s": round(t_done - t_rr, 1),
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }


# --------------------------------------------------------------------------- report


def _fmt(vals: list[float]) -> str:
    med = statistics.median(vals)
    if len(vals) == 1:
        return f"{med:.3f}"
    return f"{med:.3f} [{min(vals):.3f}..{max(vals):.3f}]"


def _med(rows: list[dict[str, Any]], key: str, digits: int) -> str:
    return f"{statistics.median(r[key] for r in rows):.{digits}f}"


def report(path: Path) -> str:
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    groups: dict[tuple[int, int], dict[str, list[dict[str, Any]]]] = defaultdict(
        lambda: defaultdict(list))
    for r in rows:
        if "error" not in r:
            groups[(r["n"], r["clients"])][r["rr"]].append(r)
    errors = [r for r in rows if "error" in r]
    out = ["| N | K | RR | runs | Est → all K-1 have N, s | RR CPU fan-out / total, s "
           "| RR RSS MB | roost / this RR |",
           "|---:|---:|---|---:|---|---|---:|---:|"]
    for (n, k), by in sorted(groups.items()):
        med = {kind: statistics.median(r["est_all_s"] for r in rs) for kind, rs in by.items()}
        for kind in KINDS:
            rs = by.get(kind)
            if not rs:
                continue
            ratio = ""
            if "roost" in med and kind != "roost" and med[kind] > 0:
                ratio = f"{med['roost'] / med[kind]:.2f}x"
            cpu = f"{_med(rs, 'rr_cpu_fanout_s', 2)} / {_med(rs, 'rr_cpu_total_s', 2)}"
            out.append(
                f"| {n} | {k} | {kind} | {len(rs)} | {_fmt([r['est_all_s'] for r in rs])} "
                f"| {cpu} | {_med(rs, 'rr_rss_mb', 1)} | {ratio} |")
    if errors:
        out.append("")
        out += [f"error: {r['rr']} K={r['clients']} N={r['n']}: {r['error']}" for r in errors]
    return "\n".join(out)


# --------------------------------------------------------------------------- main


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=10_000, help="prefixes c1 announces")
    ap.add_argument("--clients", default="20,50", help="K values, comma-separated")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--rr", default=",".join(KINDS), help="reflectors to compare")
    ap.add_argument("--timeout", type=float, default=180, help="per run, seconds")
    ap.add_argument("--out", type=Path, default=RESULTS)
    ap.add_argument("--report", type=Path, metavar="JSONL", help="only print a report")
    args = ap.parse_args()
    if args.report:
        print(report(args.report))
        return
    if os.geteuid() != 0:
        sys.exit("rr_fanout.py: needs root (network namespaces)")
    kinds = [x for x in args.rr.split(",") if x]
    for kind in kinds:
        if kind not in KINDS:
            sys.exit(f"rr_fanout.py: unknown reflector {kind!r} (roost, bird, gobgp)")
    if not Bird.available() or ("gobgp" in kinds and not GoBgp.available()):
        sys.exit("rr_fanout.py: needs bird/birdc (clients) and gobgpd/gobgp")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    ks = [int(x) for x in args.clients.split(",")]
    with tempfile.TemporaryDirectory(prefix="roost-rrbench-") as tmp:
        for rep in range(args.reps):
            for k in ks:
                if k > 249:
                    sys.exit("rr_fanout.py: at most 249 clients on one /24")
                for kind in kinds:
                    try:
                        row = run_one(kind, args.n, k, args.timeout, Path(tmp) / f"r{rep}")
                    except Exception as exc:  # recorded, the other runs go on
                        row = {"rr": kind, "n": args.n, "clients": k, "error": repr(exc)[:500],
                               "time": time.strftime("%Y-%m-%dT%H:%M:%S")}
                    with args.out.open("a") as f:
                        f.write(json.dumps(row) + "\n")
                    print(json.dumps(row), flush=True)
    print()
    print(report(args.out))


if __name__ == "__main__":
    main()
