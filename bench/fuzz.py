"""Fuzz campaign: malformed BGP messages through the codec, live sessions and a daemon.

    python -m bench.fuzz --messages 1000000 --seed 1 --json bench/results/fuzz.json
    python -m bench.fuzz --messages 20000 --seed 7 --tcp-fraction 0.05
    python -m bench.fuzz --seed 1 --replay 123456        # one case: input, outcome, minimised

Every case (see `bench/fuzzgen.py`) goes through the decoder under several negotiated
contexts and through a live pure `Session` (Established, or OpenSent for OPENs), and is
checked against RFC 4271 §6 / RFC 7606 / RFC 7313. A slice of the profile-0 cases
(`--tcp-fraction`, default 1%) is then sent over real TCP to a `roost run` subprocess on
loopback by raw asyncio clients (one per loopback address 127.0.0.x): each completes
OPEN/KEEPALIVE, sends the case and must get the NOTIFICATION the pure session sent (or
none, when the pure session kept the session up or received a NOTIFICATION). Exit status
1 on any unexpected exception, RFC violation or TCP mismatch.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import fuzzgen as fg
from bench.loopback import LoopbackDaemon, PeerClosed, PeerSpec, ScriptedPeer, peer_address

OPEN_REPLAY_PROFILE = 0  # the TCP slice uses profile 0: what a plain eBGP peer negotiates


@dataclass
class TcpStats:
    cases: int = 0
    connections: int = 0
    refused: int = 0
    seconds: float = 0.0
    outcomes: Counter[str] = field(default_factory=Counter)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    daemon_tracebacks: int = 0
    daemon_alive: bool = True
    daemon_errors: list[str] = field(default_factory=list)  # ERROR/CRITICAL log lines

    def as_dict(self) -> dict[str, Any]:
        return {
            "cases": self.cases,
            "connections": self.connections,
            "connect_retries": self.refused,
            "seconds": round(self.seconds, 2),
            "outcomes": dict(self.outcomes.most_common()),
            "mismatches": len(self.mismatches),
            "mismatch_examples": self.mismatches[:20],
            "daemon_tracebacks": self.daemon_tracebacks,
            "daemon_alive_at_end": self.daemon_alive,
            "daemon_error_lines": len(self.daemon_errors),
            "daemon_error_examples": self.daemon_errors[:10],
        }


def tcp_eligible(case: fg.Case) -> bool:
    # Profile 0 only (the daemon negotiates it), whole messages only (a partial one would
    # be completed by the next case's octets on the same connection).
    return (
        case.profile == OPEN_REPLAY_PROFILE
        and not fg.reference(case.wire, fg.max_len_of(case)).incomplete
    )


class _Conn:
    def __init__(self, peer: ScriptedPeer, index: int) -> None:
        self.peer = peer
        self.index = index
        self.sent: list[int] = []


async def _tcp_run(
    daemon: LoopbackDaemon,
    cases: list[tuple[fg.Case, fg.Outcome]],
    n_peers: int,
    stats: TcpStats,
    timeout: float = 5.0,
) -> None:
    rig = fg.SessionRig(fg.profiles()[OPEN_REPLAY_PROFILE])
    replay = rig.replay  # the profile-0 peer's OPEN + KEEPALIVE
    open_len = int.from_bytes(replay[16:18], "big")
    peer_open, keepalive = replay[:open_len], replay[open_len:]
    loop = asyncio.get_running_loop()
    ready_at = [0.0] * n_peers  # a peer whose session just ended is Idle for ~1 s
    nxt = 0
    conn: _Conn | None = None

    async def connect(send_open: bool) -> _Conn:
        nonlocal nxt
        while True:
            i = nxt % n_peers
            nxt += 1
            wait = ready_at[i] - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            peer = ScriptedPeer(daemon.port, peer_address(i))
            try:
                await peer.connect()
                if send_open:
                    peer.send(peer_open)
                    t, _ = await peer.next_frame(timeout)  # the daemon's OPEN
                    if t != 1:
                        raise PeerClosed(f"type {t}")
                    peer.send(keepalive)
                    t, _ = await peer.next_frame(timeout)
                    if t != 4:
                        raise PeerClosed(f"type {t}")
                else:
                    t, _ = await peer.next_frame(timeout)
                    if t != 1:
                        raise PeerClosed(f"type {t}")
            except (PeerClosed, TimeoutError, OSError):
                peer.abort()
                stats.refused += 1
                ready_at[i] = loop.time() + 0.5
                continue
            stats.connections += 1
            return _Conn(peer, i)

    def ended(c: _Conn) -> None:
        c.peer.abort()
        ready_at[c.index] = loop.time() + 1.2  # roost's idle hold before a new session

    t0 = time.perf_counter()
    for case, predicted in cases:
        stats.cases += 1
        if case.stage == fg.OPEN_SENT:
            if conn is not None:
                ended(conn)
                conn = None
            c = await connect(send_open=False)
        else:
            if conn is None:
                conn = await connect(send_open=True)
            c = conn
        c.sent.append(case.index)
        c.peer.send(case.wire)
        got: str
        if predicted.kind == fg.NOTIFICATION:
            note = await c.peer.wait_notification(timeout)
            got = "closed" if note is None else f"{note.code}/{note.subcode}"
            want = f"{predicted.code}/{predicted.subcode}"
            ok = note is not None and (note.code, note.subcode) == (
                predicted.code,
                predicted.subcode,
            )
            if ok and note is not None and note.data != predicted.data:
                ok = False
                got += f" data {note.data.hex()}"
            ended(c)
            if c is conn:
                conn = None
        elif predicted.kind == fg.PEER_NOTIFICATION:
            note = await c.peer.wait_notification(timeout)
            got = "closed" if note is None else f"{note.code}/{note.subcode}"
            want = "closed"
            ok = note is None
            ended(c)
            if c is conn:
                conn = None
        else:
            want = "up"
            if case.stage == fg.OPEN_SENT:
                # The daemon answers an acceptable OPEN with KEEPALIVE (OpenConfirm).
                try:
                    t, body = await c.peer.next_frame(timeout)
                    got = "up" if t == 4 else f"type {t} {body[:2].hex()}"
                except (PeerClosed, TimeoutError) as exc:
                    got = type(exc).__name__
                ended(c)
            else:
                got = "up"  # checked by the next terminal case on this connection
                if len(c.sent) >= 40:
                    # Close the batch with a known answer: a broken marker -> 1/1.
                    c.peer.send(b"\x00" * 16 + b"\x00\x13\x04")
                    note = await c.peer.wait_notification(timeout)
                    got = (
                        "up"
                        if note is not None and (note.code, note.subcode) == (1, 1)
                        else f"batch end: {note}"
                    )
                    ended(c)
                    conn = None
            ok = got == "up"
        stats.outcomes[predicted.label()] += 1
        if not ok:
            stats.mismatches.append(
                {
                    "index": case.index,
                    "mutation": case.mutation,
                    "stage": case.stage,
                    "expected": want,
                    "got": got,
                    "connection_cases": c.sent[-5:],
                    "wire": case.wire.hex(),
                }
            )
    if conn is not None:
        ended(conn)
    stats.seconds = time.perf_counter() - t0


def run_tcp(cases: list[tuple[fg.Case, fg.Outcome]], n_peers: int = 32) -> TcpStats:
    stats = TcpStats()
    with LoopbackDaemon(
        [PeerSpec(families=("ipv4", "ipv6"))] * n_peers, log_level="info"
    ) as daemon:
        asyncio.run(_tcp_run(daemon, cases, n_peers, stats))
        try:
            status = daemon.request("show status")
            stats.daemon_alive = bool(status.get("pid"))
        except Exception:
            stats.daemon_alive = False
        log = daemon.log_text()
        stats.daemon_tracebacks = log.count("Traceback")
        stats.daemon_errors = [
            line for line in log.splitlines() if " ERROR " in line or " CRITICAL " in line
        ]
    return stats


def replay(seed: int, index: int, pool_size: int) -> int:
    pool = fg.make_pool(seed, pool_size)
    case = fg.make_case(pool, seed, index)
    rigs = [fg.SessionRig(p) for p in fg.profiles()]
    stats = fg.Stats()
    out = fg.run_one(rigs, case, stats)
    print(
        f"case {index}: {case.mutation} (base from {case.source}), profile "
        f"{fg.profiles()[case.profile].name}, stage {case.stage}"
    )
    print(f"  wire     {case.wire.hex()}")
    print(f"  expected {case.expect}")
    print(f"  outcome  {out}")
    if not stats.failures:
        print("  OK")
        return 0
    failure = stats.failures[0]
    print(f"  FAILED   {failure.problem}")

    def fails(wire: bytes) -> bool:
        c = fg.Case(
            case.index,
            case.mutation,
            case.source,
            case.profile,
            case.stage,
            wire,
            fg.ANY if failure.outcome == "exception" else case.expect,
        )
        s = fg.Stats()
        fg.run_one([fg.SessionRig(p) for p in fg.profiles()], c, s)
        return bool(s.exceptions if failure.outcome == "exception" else s.failures)

    print(f"  minimised {fg.minimise(case.wire, fails).hex()}")
    return 1


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=100_000)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--start", type=int, default=0, help="first case index")
    ap.add_argument("--pool", type=int, default=200, help="roost-encoded UPDATEs per profile")
    ap.add_argument("--tcp-fraction", type=float, default=0.01)
    ap.add_argument("--tcp-peers", type=int, default=32)
    ap.add_argument("--json", type=Path, help="write the figures here")
    ap.add_argument("--replay", type=int, metavar="INDEX", help="run one case and minimise it")
    args = ap.parse_args(argv)
    if args.replay is not None:
        return replay(args.seed, args.replay, args.pool)

    t0 = time.perf_counter()
    pool = fg.make_pool(args.seed, args.pool)
    rigs = [fg.SessionRig(p) for p in fg.profiles()]
    stats = fg.Stats()
    tcp_cases: list[tuple[fg.Case, fg.Outcome]] = []
    step = max(1, round(1 / args.tcp_fraction)) if args.tcp_fraction > 0 else 0
    for i in range(args.start, args.start + args.messages):
        case = fg.make_case(pool, args.seed, i)
        out = fg.run_one(rigs, case, stats)
        if step and out is not None and i % step == 0 and tcp_eligible(case):
            tcp_cases.append((case, out))
        if i and i % 100_000 == 0:
            el = time.perf_counter() - t0
            print(f"{i:>9} cases  {el:7.1f}s  failures {len(stats.failures)}", file=sys.stderr)
    stats.seconds = time.perf_counter() - t0
    stats.session_resets = sum(r.resets for r in rigs)
    result: dict[str, Any] = {
        "command": "python -m bench.fuzz " + " ".join(sys.argv[1:] if argv is None else argv),
        "seed": args.seed,
        "python": sys.version.split()[0],
        "session": stats.as_dict(),
    }
    ok = not stats.failures
    if tcp_cases:
        tcp = run_tcp(tcp_cases, args.tcp_peers)
        result["tcp"] = tcp.as_dict()
        ok = ok and not tcp.mismatches and tcp.daemon_alive and not tcp.daemon_tracebacks
    result["ok"] = ok
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    summary = {k: v for k, v in result["session"].items() if k not in ("failures", "mutations")}
    print(json.dumps(summary, indent=1))
    if "tcp" in result:
        print(
            json.dumps(
                {k: v for k, v in result["tcp"].items() if k != "mismatch_examples"}, indent=1
            )
        )
    for f in stats.failures[:10]:
        print(f"FAIL case {f.case.index} {f.case.mutation}: {f.problem}", file=sys.stderr)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
