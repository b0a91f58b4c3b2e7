"""Receiving a feed: how fast roost, BIRD and GoBGP take N prefixes from one eBGP peer.

    sudo .venv/bin/python bench/receive.py --reps 3 --n 10000,100000   # measure (~4 min)
    .venv/bin/python bench/receive.py --report bench/results/receive.jsonl
    .venv/bin/python bench/receive.py --offline --n 100000 [--profile]  # in-process replay

Method (one *measurement* = one receiver kind, one N; each gets fresh namespaces and
fresh daemons, like /work/shared/lab/bench.py; one *rep* measures roost, BIRD and GoBGP
back to back, in an order that rotates per rep, so every ratio compares receivers of the
same rep):

* Topology: hosts s (10.255.0.1, AS 65001) and r (10.255.0.2, AS 65002) on one bridge.
* The receiver starts first, alone; its VmRSS after 1 s idle is the baseline.
* Then the sender starts: BIRD 2.0 with the N routes (10.0.0.0/32 counting up) in a
  static protocol, exported over eBGP. Its main loop is woken every 20 ms through its
  control socket (BIRD 2.0.12 otherwise may sit 3 s in poll() with the export pending;
  see the lab's BASELINES.md). The receiver is not woken.
* Established: on-wire time at which both sides had sent their KEEPALIVE after OPEN, from
  a header-only tcpdump of the receiver's bridge port, run in the switch's namespace.
* Receiver has all N:
  * roost: `last_update` of the peer in `show peers` (wall clock taken after the daemon
    had processed the last UPDATE with routes, i.e. exact). `show peers` costs the daemon
    O(N) (its advertised counts), so it is asked only once roost has used no CPU for
    60 ms (/proc/PID/stat, read every 20 ms, does not disturb it).
  * BIRD: the newest per-route import stamp (`timeformat route "%s.%3f"`), exact to 1 ms;
    completion polled every 0.25 s (`show protocols all`, "Routes: N imported").
  * GoBGP: `gobgp neighbor IP -j` received count polled every 50 ms (one call ~11 ms), so
    its figure is late by up to ~60 ms.
* RSS per route: (VmRSS after convergence - idle VmRSS) / N. CPU: utime+stime of the
  receiver from the idle baseline to convergence.

Results go to bench/results/receive.jsonl (one JSON line per measurement); `--report`
prints the markdown table of docs/benchmarks.md. Needs root (network namespaces), bird,
birdc, gobgpd, gobgp and tcpdump. Only processes started here are stopped, by PID.
"""

from __future__ import annotations

import argparse
import contextlib
import cProfile
import gc
import ipaddress
import json
import os
import pstats
import re
import shutil
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

RESULTS = REPO / "bench" / "results" / "receive.jsonl"
KINDS = ("roost", "bird", "gobgp")
S_ADDR, R_ADDR = "10.255.0.1", "10.255.0.2"
S_ASN, R_ASN = 65001, 65002
FIRST = int(ipaddress.IPv4Address("10.0.0.0"))
TICK = os.sysconf("SC_CLK_TCK")
PROFILE = False  # --profile without --offline: run the roost receiver under cProfile


def prefixes(n: int) -> list[str]:
    """N distinct /32s counting up from 10.0.0.0 (below the lab's 10.255.0.0/24)."""
    return [f"{ipaddress.IPv4Address(FIRST + i)}/32" for i in range(n)]


# --------------------------------------------------------------------------- /proc


def cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICK  # utime + stime


def rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError(f"no VmRSS for pid {pid}")


# --------------------------------------------------------------------------- wire times


class Capture:
    """tcpdump, headers only, of TCP port 179 on one bridge port, in the switch netns."""

    def __init__(self, switch_ns: str, port: str, path: Path) -> None:
        self.path = path
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", switch_ns, "tcpdump", "-i", port, "-s", "128", "-U",
             "--immediate-mode", "-w", str(path), "tcp port 179"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
        assert self.proc.stderr is not None
        self.proc.stderr.readline()  # "listening on ...": the capture is armed

    def stop(self) -> None:
        time.sleep(0.2)  # let tcpdump write out what it has
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def analyse(self, sender: str) -> dict[str, float]:
        """`est` (both sides sent a message after their OPEN), and the first and last
        segment of the sender after that with more than a KEEPALIVE or End-of-RIB in it
        (`upd_first`, `upd_last`: its routes on the wire), on the TCP connection that
        carried the most bytes (a collision loser is ignored)."""
        data = self.path.read_bytes()
        if len(data) < 24:
            return {}
        endian = "<" if data[:4] in (b"\xd4\xc3\xb2\xa1", b"\x4d\x3c\xb2\xa1") else ">"
        scale = 1e9 if data[:4] in (b"\x4d\x3c\xb2\xa1", b"\xa1\xb2\x3c\x4d") else 1e6
        rec = struct.Struct(endian + "IIII")
        pkts: list[tuple[float, bool, tuple[int, int], int, bytes]] = []
        off = 24
        while off + 16 <= len(data):
            sec, frac, incl, _ = rec.unpack_from(data, off)
            pkt = data[off + 16 : off + 16 + incl]
            off += 16 + incl
            if len(pkt) < 34 or pkt[12:14] != b"\x08\x00":
                continue
            ihl = (pkt[14] & 0x0F) * 4
            total = int.from_bytes(pkt[16:18], "big")
            tcp = 14 + ihl
            sport, dport = struct.unpack_from("!HH", pkt, tcp)
            doff = (pkt[tcp + 12] >> 4) * 4
            src = ".".join(map(str, pkt[26:30]))
            conn = (min(sport, dport), max(sport, dport))
            pkts.append((sec + frac / scale, src == sender, conn, total - ihl - doff,
                         pkt[tcp + doff :]))
        if not pkts:
            return {}
        volume: dict[tuple[int, int], int] = {}
        for p in pkts:
            volume[p[2]] = volume.get(p[2], 0) + p[3]
        best = max(volume, key=lambda c: volume[c])
        opened: set[bool] = set()
        after_open: dict[bool, float] = {}
        out: dict[str, float] = {}
        for ts, from_sender, conn, plen, payload in pkts:
            if conn != best or plen <= 0:
                continue
            if "est" not in out:
                if payload[:16] == b"\xff" * 16 and len(payload) >= 19 and payload[18] == 1:
                    opened.add(from_sender)
                    if plen > int.from_bytes(payload[16:18], "big"):  # OPEN + KEEPALIVE
                        after_open[from_sender] = ts
                elif from_sender in opened:
                    after_open.setdefault(from_sender, ts)
                if len(after_open) == 2:
                    out["est"] = max(after_open.values())
                continue
            if from_sender and plen > 23:  # routes: more than a KEEPALIVE or End-of-RIB
                out.setdefault("upd_first", ts)
                out["upd_last"] = ts
        return out


# --------------------------------------------------------------------------- receivers


class Receiver:
    """One receiver daemon in host r: start, pid, `done(n)` (cheap completion check) and
    `finished_at()` (when it had all n; may cost the daemon work, so asked after its CPU
    time and RSS have been read)."""

    poll = 0.25

    def start(self) -> None:
        raise NotImplementedError

    def pid(self) -> int:
        raise NotImplementedError

    def done(self, n: int) -> bool:
        raise NotImplementedError

    def finished_at(self) -> float:
        """The exact (or polled) wall-clock time it had all n routes."""
        return self._finished

    _finished = 0.0


class RoostReceiver(Receiver):
    poll = 0.02
    QUIET = 3  # polls without CPU use before the daemon is asked

    def __init__(self, host: Any, workdir: Path) -> None:
        self.host = host
        self.socket = str(host.lab.rundir / "roost.ctl")
        workdir.mkdir(parents=True, exist_ok=True)
        self.config = workdir / "roost.toml"
        self.config.write_text(
            f'[router]\nasn = {R_ASN}\nid = "{R_ADDR}"\nlisten = "{R_ADDR}"\n'
            "connect_retry_time = 1\nebgp_requires_policy = false\n\n"
            f'[control]\nsocket = "{self.socket}"\n\n[kernel]\nenabled = false\n\n'
            f'[[peer]]\naddress = "{S_ADDR}"\nasn = {S_ASN}\n')
        self.log = workdir / "roost.log"
        self.proc: subprocess.Popen[Any] | None = None
        self._cpu: list[float] = []

    def start(self) -> None:
        from tests.harness.netns import wait_for

        env = dict(os.environ, PYTHONPATH=str(REPO))
        # --profile: cProfile of the whole daemon, written when it exits (SIGTERM at close)
        prof = ["-m", "cProfile", "-o", str(self.log.with_suffix(".prof"))] if PROFILE else []
        self.proc = self.host.popen([sys.executable, *prof, "-m", "roost", "run", "-c",
                                     str(self.config), "--log-level", "info"],
                                    self.log, env=env, cwd=REPO)
        wait_for(lambda: self._peer() is not None, 20, what="roost control socket",
                 on_timeout=lambda: self.log.read_text()[-2000:])

    def _peer(self) -> dict[str, Any] | None:
        from roost import control

        assert self.proc is not None
        if self.proc.poll() is not None:
            raise RuntimeError(f"roost exited: {self.log.read_text()[-2000:]}")
        try:
            rows = control.request(self.socket, "show peers", timeout=10)
        except control.ControlError:
            return None
        return next((r for r in rows if r["address"] == S_ADDR), None)

    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def done(self, n: int) -> bool:
        self._cpu = [*self._cpu[-self.QUIET :], cpu_s(self.pid())]
        if len(self._cpu) <= self.QUIET or self._cpu[0] != self._cpu[-1]:
            return False  # busy (or just started): do not disturb it
        row = self._peer()
        if row is None or row["accepted"] < n:
            return False
        self._finished = float(row["last_update"])
        return True


class BirdReceiver(Receiver):
    def __init__(self, host: Any, workdir: Path) -> None:
        from tests.harness.daemons import Bird, Neighbor

        self.bird = Bird(host, R_ASN, R_ADDR, [Neighbor(S_ADDR, S_ASN)], workdir=workdir)
        self.proto = Bird.proto_name(S_ADDR)

    def start(self) -> None:
        self.bird.start()

    def pid(self) -> int:
        return self.bird.pids()[0]

    def done(self, n: int) -> bool:
        self.n = n
        out = self.bird.birdc("show", "protocols", "all", self.proto, check=False)
        m = re.search(r"Routes:\s+(\d+) imported", out)
        return m is not None and int(m.group(1)) >= n

    def finished_at(self) -> float:
        routes = self.bird.birdc("show", "route", "protocol", self.proto, timeout=120)
        stamps = re.findall(rf"\[{self.proto} ([0-9]+\.[0-9]+)", routes)
        if len(stamps) < self.n:
            raise RuntimeError(f"bird: {len(stamps)} route stamps for {self.n} routes")
        return max(map(float, stamps))


class GobgpReceiver(Receiver):
    poll = 0.05

    def __init__(self, host: Any, workdir: Path) -> None:
        from tests.harness.daemons import GoBgp, Neighbor

        self.gobgp = GoBgp(host, R_ASN, R_ADDR, [Neighbor(S_ADDR, S_ASN)], workdir=workdir)

    def start(self) -> None:
        self.gobgp.start()

    def pid(self) -> int:
        return self.gobgp.pids()[0]

    def done(self, n: int) -> bool:
        cp = self.gobgp.cli("neighbor", S_ADDR, "-j", check=False, timeout=10)
        try:
            afs = json.loads(cp.stdout).get("afi_safis") or []
        except ValueError:
            return False
        self._finished = time.time()
        return sum(int(a.get("state", {}).get("received", 0) or 0) for a in afs) >= n


RECEIVERS: dict[str, Callable[[Any, Path], Receiver]] = {
    "roost": RoostReceiver, "bird": BirdReceiver, "gobgp": GobgpReceiver,
}


# --------------------------------------------------------------------------- one run


def measure(kind: str, n: int, routes: list[str], workdir: Path, timeout: float) -> dict[str, Any]:
    """One receiver, one N, fresh namespaces; returns the measurement record."""
    from tests.harness.daemons import Bird, BirdWaker, Neighbor
    from tests.harness.netns import Lab

    with Lab(workdir) as lab:
        sender_host, rx_host = lab.flat(2, names=["s", "r"], v6=False)
        cap = Capture(lab.switches["sw"].netns, "r", workdir / "r.pcap")
        try:
            rx = RECEIVERS[kind](rx_host, workdir / kind)
            rx.start()
            time.sleep(1.0)
            pid = rx.pid()
            idle_kb, idle_cpu = rss_kb(pid), cpu_s(pid)
            sender = Bird(sender_host, S_ASN, S_ADDR, [Neighbor(R_ADDR, R_ASN)],
                          workdir=workdir / "sender", originate=routes)
            sender.start()
            waker = BirdWaker(sender.ctl, period=0.02)
            waker.start()
            lab.on_close(waker.stop)
            deadline = time.monotonic() + timeout
            while not rx.done(n):
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{kind}: not all {n} routes within {timeout:g} s")
                time.sleep(rx.poll)
            rec: dict[str, Any] = {
                "rss_idle_kb": idle_kb,
                "rss_kb": rss_kb(pid),
                "cpu_s": round(cpu_s(pid) - idle_cpu, 2),
            }
            waker.stop()
            t_all = rx.finished_at()
        finally:
            cap.stop()
        wire = cap.analyse(S_ADDR)
    if "est" not in wire:
        raise RuntimeError("no Established in the capture")
    rec["est_all_s"] = round(t_all - wire["est"], 4)
    if "upd_first" in wire:
        rec["wire_s"] = round(wire["upd_last"] - wire["upd_first"], 4)  # sender on-wire
        rec["last_byte_all_s"] = round(t_all - wire["upd_last"], 4)  # receiver lag
    rec["rss_per_route_b"] = round((rec["rss_kb"] - rec["rss_idle_kb"]) * 1024 / n, 1)
    return rec


def run(args: argparse.Namespace) -> None:
    if os.geteuid() != 0:
        sys.exit("bench/receive.py needs root (network namespaces); try --offline")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    base = Path(args.workdir or f"/tmp/roost-bench-receive-{os.getpid()}")
    run_id = time.strftime("%Y%m%dT%H%M%S")
    failed = False
    for n in args.n:
        routes = prefixes(n)
        for rep in range(1, args.reps + 1):
            order = KINDS[rep - 1 :] + KINDS[: rep - 1]  # rotate: no kind always goes first
            for kind in (k for k in order if k in args.kinds):
                rec: dict[str, Any] = {"run": run_id, "n": n, "rep": rep, "receiver": kind,
                                       "ts": time.strftime("%FT%T"),
                                       "load1": round(os.getloadavg()[0], 2)}
                try:
                    rec.update(measure(kind, n, routes, base / f"{n}-{rep}-{kind}",
                                       args.timeout))
                except Exception as exc:  # recorded, and the next measurement goes on
                    rec["error"] = repr(exc)[:500]
                    failed = True
                print(json.dumps(rec), flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(rec) + "\n")
    if failed or args.workdir:
        print(f"configs, logs and captures: {base}", file=sys.stderr)
    else:
        shutil.rmtree(base, ignore_errors=True)  # ~20 MB per measurement at 100k


# --------------------------------------------------------------------------- report


def _med(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.3f} [{min(values):.3f}..{max(values):.3f}]"


def report(path: str, run_ids: list[str] | None) -> None:
    rows = [json.loads(line) for line in Path(path).read_text().splitlines() if line.strip()]
    rows = [r for r in rows if "error" not in r and (not run_ids or r["run"] in run_ids)]
    by: dict[tuple[int, str], list[dict[str, Any]]] = {}
    for r in rows:
        by.setdefault((r["n"], r["receiver"]), []).append(r)
    print("| N | runs | roost s | BIRD s | GoBGP s | roost/BIRD | roost/GoBGP "
          "| RSS B/route roost / BIRD / GoBGP | CPU s roost / BIRD / GoBGP |")
    print("|---:|---:|---|---|---|---|---|---|---|")
    for n in sorted({r["n"] for r in rows}):
        t = {k: [r["est_all_s"] for r in by.get((n, k), [])] for k in KINDS}
        # ratios per rep: receivers of the same run and rep
        per_rep: dict[tuple[str, int], dict[str, float]] = {}
        for r in rows:
            if r["n"] == n:
                per_rep.setdefault((r["run"], r["rep"]), {})[r["receiver"]] = r["est_all_s"]

        def ratio(other: str, per_rep: dict[tuple[str, int], dict[str, float]] = per_rep
                  ) -> str:
            v = [d["roost"] / d[other] for d in per_rep.values() if "roost" in d and other in d]
            if not v:
                return "-"
            return f"**{statistics.median(v):.2f}x** [{min(v):.2f}..{max(v):.2f}]"

        rss = " / ".join(
            f"{statistics.median([r['rss_per_route_b'] for r in by[(n, k)]]):.0f}"
            if by.get((n, k)) else "-" for k in KINDS)
        cpu = " / ".join(
            f"{statistics.median([r['cpu_s'] for r in by[(n, k)]]):.2f}"
            if by.get((n, k)) else "-" for k in KINDS)
        runs = min((len(v) for v in t.values() if v), default=0)
        print(f"| {n} | {runs} | {_med(t['roost'])} | {_med(t['bird'])} | {_med(t['gobgp'])} "
              f"| {ratio('bird')} | {ratio('gobgp')} | {rss} | {cpu} |")


# --------------------------------------------------------------------------- offline


def offline(n: int, profile: bool, reps: int, batch: int = 16) -> None:
    """The receive path without sockets: BIRD-like UPDATEs (ORIGIN, AS_PATH, NEXT_HOP, as
    many /32s per 4096-octet UPDATE as fit) through FrameBuffer, decode_message and
    Speaker.receive_updates, `batch` UPDATEs per call (16: one 64-KiB socket read, as the
    daemon gets them; 1: one call per UPDATE); for profiling. The first rep also prints
    the growth of this process's VmRSS per route (the RIB, kept until then)."""
    from bgp.rib.path import PeerInfo
    from bgp.speaker import PeerConfigForSpeaker, Speaker, SpeakerConfig
    from bgp.types import IPV4_UNICAST
    from bgp.wire.attrcodec import clear_caches
    from bgp.wire.attributes import AsPath, AttrSet
    from bgp.wire.framing import FrameBuffer
    from bgp.wire.messages import decode_message
    from bgp.wire.model import Negotiated, Update
    from bgp.wire.packing import end_of_rib, pack_announcements
    from bgp.wire.prefix import Nlri, Prefix
    from roost.daemon import GC_THRESHOLDS

    peer = ipaddress.IPv4Address(S_ADDR)
    ctx = Negotiated(asn4=True, families=frozenset({IPV4_UNICAST}), peer_asn=S_ASN,
                     peer_router_id=peer)
    attrs = AttrSet.make(origin=0, as_path=AsPath.sequence(S_ASN), next_hop=peer)
    nlri = [Nlri(Prefix(1, 32, FIRST + i)) for i in range(n)]
    stream = b"".join(pack_announcements(IPV4_UNICAST, attrs, nlri, ctx))
    stream += end_of_rib(IPV4_UNICAST, ctx)
    del nlri
    gc.set_threshold(*GC_THRESHOLDS)  # the garbage collector as `roost run` sets it up
    gc.freeze()

    def once() -> tuple[float, float, float]:
        clear_caches()
        speaker = Speaker(SpeakerConfig(R_ASN, ipaddress.IPv4Address(R_ADDR),
                                        ipaddress.IPv4Address(R_ADDR), rfc8212=False),
                          on_best_change=lambda fam, changes: None)
        info = PeerInfo(S_ADDR, peer, S_ASN, R_ASN)
        speaker.add_peer(PeerConfigForSpeaker(info))
        speaker.peer_up(S_ADDR, ctx, 0.0)
        frames = FrameBuffer()
        frames.feed(stream)
        decode = 0.0
        updates: list[Update] = []
        t0, c0 = time.perf_counter(), time.process_time()
        while (frame := frames.next_frame()) is not None:
            t1 = time.perf_counter()
            update = decode_message(frame[0], frame[1], ctx)
            decode += time.perf_counter() - t1
            assert isinstance(update, Update)
            updates.append(update)
            if len(updates) >= batch:
                speaker.receive_updates(S_ADDR, updates, time.time())
                updates = []
        speaker.receive_updates(S_ADDR, updates, time.time())
        total, cpu = time.perf_counter() - t0, time.process_time() - c0
        got = speaker.peers_summary()[0]["families"]["ipv4-unicast"]["accepted"]
        assert got == n, (got, n)
        kept.append(speaker)
        return total, cpu, decode

    kept: list[Any] = []  # the first rep's speaker stays alive for its RSS
    rss0 = rss_kb(os.getpid())
    if profile:
        prof = cProfile.Profile()
        prof.runcall(once)
        pstats.Stats(prof).sort_stats("tottime").print_stats(20)
        return
    for rep in range(reps):
        total, cpu, decode = once()
        rss = f", RSS +{(rss_kb(os.getpid()) - rss0) * 1024 / n:.0f} B/route" if rep == 0 else ""
        del kept[1:]
        print(f"{n} prefixes: {total * 1000:.0f} ms ({cpu * 1000:.0f} ms CPU, "
              f"{n / total:,.0f} prefixes/s), decode {decode * 1000:.0f} ms, "
              f"speaker {(total - decode) * 1000:.0f} ms{rss}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--n", default="10000,100000",
                    type=lambda s: [int(x) for x in s.split(",")])
    ap.add_argument("--receivers", dest="kinds", default=",".join(KINDS),
                    type=lambda s: [k for k in s.split(",") if k])
    ap.add_argument("--timeout", type=float, default=120, help="per measurement, seconds")
    ap.add_argument("--out", default=str(RESULTS), help="JSON lines appended here")
    ap.add_argument("--workdir", help="configs, logs, captures (default /tmp/...)")
    ap.add_argument("--report", metavar="JSONL", help="print the table of a results file")
    ap.add_argument("--run", action="append", help="with --report: only these run ids")
    ap.add_argument("--offline", action="store_true", help="in-process replay, no netns")
    ap.add_argument("--batch", type=int, default=16,
                    help="--offline: UPDATEs per Speaker.receive_updates call (1: one each)")
    ap.add_argument("--profile", action="store_true",
                    help="cProfile: printed with --offline, else roost.prof per measurement")
    args = ap.parse_args()
    bad = set(args.kinds) - set(KINDS)
    if bad:
        ap.error(f"unknown receiver(s) {sorted(bad)}; choose from {KINDS}")
    global PROFILE
    PROFILE = args.profile
    if args.report:
        report(args.report, args.run)
    elif args.offline:
        for n in args.n:
            offline(n, args.profile, args.reps, args.batch)
    else:
        with contextlib.suppress(KeyboardInterrupt):
            run(args)


if __name__ == "__main__":
    main()
