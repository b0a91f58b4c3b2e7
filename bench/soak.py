"""Soak: session flaps (leak check) and a prefix flood beside quiet, short-hold sessions.

    python -m bench.soak --flaps 1000 --flap-peers 1 --flood 100000 --quiet 20 \\
        --json bench/results/soak.json

The daemon is a `roost run` subprocess on loopback (kernel off); every peer is a scripted
asyncio peer in this process that speaks roost's own codec (`bench/loopback.py`).

(a) Flaps: a peer connects, completes OPEN/KEEPALIVE, announces a few routes and
    End-of-RIB, then goes away in one of six ways (TCP close, Cease NOTIFICATION, TCP
    reset, a malformed message, close in OpenConfirm, an OPEN with the wrong AS). The
    daemon's asyncio tasks, open file descriptors and VmRSS (`show status`) are sampled
    before (after a warm-up round), during and after; they must come back to where they
    started, within noise, and the daemon must hold no route of the flapping peers.
    `--flaps-in-process N` runs N flaps against a `Daemon` in this process and compares
    the objects the garbage collector tracks after a full collection, before and after
    (exact, where RSS also counts garbage awaiting the daemon's raised GC thresholds).
(b) Flood: one peer sends N /32 prefixes as fast as TCP takes them while `--quiet`
    sessions with hold time 3 s / keepalive 1 s only keep their session (they read and
    drop what the daemon sends, including the flood it re-advertises). No hold timer may
    expire on either side: every quiet session stays Established exactly once on the
    daemon (`show peers`), no quiet peer receives a NOTIFICATION, and the largest gap
    between two KEEPALIVEs from the daemon seen by a quiet peer stays below 3 s.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import json
import logging
import random
import sys
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bench.loopback import (
    KEEPALIVE,
    PEER_ASN,
    LoopbackDaemon,
    PeerClosed,
    PeerSpec,
    ScriptedPeer,
    peer_address,
    peer_open,
    wait_until,
)
from bgp.types import IPV4_UNICAST, MessageType
from bgp.wire.attributes import AsPath, AsPathSegment, AttrSet
from bgp.wire.framing import encode_header
from bgp.wire.model import Negotiated, Notification
from bgp.wire.packing import end_of_rib, pack_announcements
from bgp.wire.prefix import Nlri, Prefix

CTX = Negotiated(asn4=True)
FLAP_KINDS = ("close", "cease", "reset", "malformed", "close-in-openconfirm", "bad-as")


def announcements(first: int, n: int, next_hop: str = "192.0.2.1") -> list[bytes]:
    attrs = AttrSet(
        origin=0, as_path=AsPath((AsPathSegment(2, (PEER_ASN,)),)), next_hop=IPv4Address(next_hop)
    )
    nlri = [Nlri(Prefix(1, 32, first + i)) for i in range(n)]
    return pack_announcements(IPV4_UNICAST, attrs, nlri, CTX)


def figures(daemon: LoopbackDaemon) -> dict[str, Any]:
    s = daemon.request("show status")
    return {k: s[k] for k in ("tasks", "fds", "rss_kb", "routes", "peers_established")}


# --------------------------------------------------------------------------- (a) flaps


async def _one_flap(daemon: LoopbackDaemon, source: str, kind: str, i: int) -> str:
    peer = ScriptedPeer(daemon.port, source)
    await peer.connect()
    try:
        # The daemon sends its OPEN first (passive peer, RFC 4271 §8.2.2 Active ->
        # OpenSent); no OPEN means its session was still Idle and refused us.
        t, _ = await peer.next_frame(5)
        if t != MessageType.OPEN:
            return f"type {t}"
        if kind == "bad-as":
            op = bytearray(peer_open())
            op[20:22] = (64999).to_bytes(2, "big")  # My AS != configured (no AS4 cap use)
            # Drop the AS4 capability's say: rewrite it too.
            at = bytes(op).find(bytes((65, 4)) + PEER_ASN.to_bytes(4, "big"))
            op[at + 2 : at + 6] = (64999).to_bytes(4, "big")
            peer.send(bytes(op))
            note = await peer.wait_notification(5)
            return "2/2" if note is not None and (note.code, note.subcode) == (2, 2) else f"{note}"
        peer.send(peer_open())
        t, _ = await peer.next_frame(5)  # its KEEPALIVE: the daemon is in OpenConfirm
        if t != MessageType.KEEPALIVE:
            return f"type {t}"
        if kind == "close-in-openconfirm":
            await peer.close()
            return "ok"
        peer.send(KEEPALIVE)
        for msg in announcements(0x0A000000 + (i % 50) * 16, 5):
            peer.send(msg)
        peer.send(end_of_rib(IPV4_UNICAST, CTX))
        await peer.drain()
        if kind == "close":
            await peer.close()
        elif kind == "cease":
            peer.send(encode_header(MessageType.NOTIFICATION, bytes((6, 2))))
            await peer.close()
        elif kind == "reset":
            peer.abort()
        else:  # malformed: a broken marker -> the daemon must answer 1/1 and close
            peer.send(b"\x00" * 16 + b"\x00\x13\x04")
            note = await peer.wait_notification(5)
            if note is None or (note.code, note.subcode) != (1, 1):
                return f"expected 1/1, got {note}"
        return "ok"
    except (PeerClosed, TimeoutError) as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        peer.abort()


async def _flaps(
    daemon: LoopbackDaemon,
    n: int,
    n_peers: int,
    samples: list[dict[str, Any]],
    results: dict[str, int],
) -> float:
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    ready_at = [0.0] * n_peers
    done = 0
    attempts = 0
    while done < n:
        p = done % n_peers
        wait = ready_at[p] - loop.time()
        if wait > 0:
            await asyncio.sleep(wait)
        kind = FLAP_KINDS[done % len(FLAP_KINDS)]
        attempts += 1
        try:
            res = await _one_flap(daemon, peer_address(p), kind, done)
        except OSError as exc:
            res = f"connect: {exc}"
        if res.startswith(("PeerClosed", "TimeoutError", "connect", "type")) and attempts < 20 * n:
            # Connected while the daemon's session was still Idle (its idle hold after the
            # last flap): it refuses; try again a little later.
            ready_at[p] = loop.time() + 0.1
            results["retries"] = results.get("retries", 0) + 1
            continue
        results[f"{kind}: {res}"] = results.get(f"{kind}: {res}", 0) + 1
        ready_at[p] = loop.time() + 1.0  # roost's idle hold (1 s) before it accepts again
        done += 1
        if done % max(1, n // 10) == 0:
            samples.append({"flaps": done, **await asyncio.to_thread(figures, daemon)})
    return loop.time() - t0


def run_flaps(n: int, n_peers: int) -> dict[str, Any]:
    with LoopbackDaemon([PeerSpec()] * n_peers, log_level="info") as daemon:
        samples: list[dict[str, Any]] = []
        results: dict[str, int] = {}
        # Warm-up round (first imports, caches, first connection objects), then baseline.
        warmup = max(len(FLAP_KINDS), n // 10)
        asyncio.run(_flaps(daemon, warmup, n_peers, [], {}))
        settle(daemon, n_peers)
        before = figures(daemon)
        seconds = asyncio.run(_flaps(daemon, n, n_peers, samples, results))
        settle(daemon, n_peers)
        after = figures(daemon)
        log = daemon.log_text()
        bad = {
            k: v for k, v in results.items() if not k.endswith((": ok", ": 2/2")) and k != "retries"
        }
        return {
            "flaps": n,
            "peers": n_peers,
            "seconds": round(seconds, 1),
            "before": before,
            "after": after,
            "during": samples,
            "max_during": {k: max(s[k] for s in samples) for k in ("tasks", "fds", "rss_kb")}
            if samples
            else {},
            "results": results,
            "unexpected": bad,
            "daemon_tracebacks": log.count("Traceback"),
        }


async def _flaps_in_process(n: int, n_peers: int) -> dict[str, Any]:
    from roost import config as cfg
    from roost.daemon import Daemon

    lb = LoopbackDaemon([PeerSpec()] * n_peers)  # its configuration and control socket
    daemon = Daemon(cfg.load(lb.config_path), install_signals=False)
    errors: list[str] = []

    class _Errors(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            errors.append(record.getMessage())

    handler = _Errors(logging.ERROR)
    logging.getLogger().addHandler(handler)
    loop = asyncio.get_running_loop()
    loop.set_exception_handler(lambda _loop, ctx: errors.append(str(ctx.get("message"))))
    await daemon.start()
    try:
        await _flaps(lb, max(len(FLAP_KINDS), n // 10), n_peers, [], {})
        await asyncio.to_thread(settle, lb, n_peers)
        gc.collect()
        before = len(gc.get_objects())
        results: dict[str, int] = {}
        seconds = await _flaps(lb, n, n_peers, [], results)
        await asyncio.to_thread(settle, lb, n_peers)
        gc.collect()
        after = len(gc.get_objects())
    finally:
        await daemon.shutdown()
        lb.cleanup()
        logging.getLogger().removeHandler(handler)
    return {
        "flaps": n,
        "peers": n_peers,
        "seconds": round(seconds, 1),
        "gc_objects_before": before,
        "gc_objects_after": after,
        "results": results,
        "errors": errors[:10],
        "error_count": len(errors),
    }


def run_flaps_in_process(n: int, n_peers: int) -> dict[str, Any]:
    """The flaps against a daemon in this process, counting the objects the garbage
    collector tracks after a full collection before and after: unlike RSS, this is not
    blurred by garbage waiting for the daemon's raised GC thresholds (GC_THRESHOLDS)."""
    return asyncio.run(_flaps_in_process(n, n_peers))


def settle(daemon: LoopbackDaemon, n_peers: int) -> None:
    """Every flapping session down and its routes gone."""

    def idle() -> bool:
        s = daemon.request("show status")
        return bool(s["peers_established"] == 0 and s["routes"] == 0)

    wait_until(idle, 30, "every flapping session down and its routes withdrawn", 0.1)


#: Objects a full collection may leave after the flaps for reasons other than a leak
#: (per-peer state of the last session, interned values, caches of bounded size).
OBJECT_NOISE = 500


def flap_growth_ok(r: dict[str, Any]) -> list[str]:
    """No growth beyond noise: tasks and fds back to the baseline (+2 for a connection
    being torn down), RSS within 8 MB (allocator noise; a leak of one object per flap
    per route would show as more)."""
    b, a = r["before"], r["after"]
    problems = []
    if a["tasks"] > b["tasks"] + 2:
        problems.append(f"tasks {b['tasks']} -> {a['tasks']}")
    if a["fds"] > b["fds"] + 2:
        problems.append(f"fds {b['fds']} -> {a['fds']}")
    if a["rss_kb"] > b["rss_kb"] + 8192:
        problems.append(f"RSS {b['rss_kb']} kB -> {a['rss_kb']} kB")
    if a["routes"] != 0:
        problems.append(f"{a['routes']} routes left")
    if r["unexpected"]:
        problems.append(f"unexpected flap results {r['unexpected']}")
    if r["daemon_tracebacks"]:
        problems.append(f"{r['daemon_tracebacks']} tracebacks in the daemon log")
    return problems


# --------------------------------------------------------------------------- (b) flood


class QuietPeer:
    """Keeps one short-hold session: KEEPALIVE every `keepalive` s, reads everything."""

    def __init__(self, port: int, source: str, hold: int, keepalive: float) -> None:
        self.peer = ScriptedPeer(port, source)
        self.hold = hold
        self.keepalive = keepalive
        self.notifications: list[Notification] = []
        self.closed = False  # the daemon closed the connection
        self.stopping = False
        self.max_gap = 0.0
        self.updates = 0
        self._task: asyncio.Task[None] | None = None
        self._ka_task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        await self.peer.connect()
        await self.peer.handshake(peer_open(hold_time=self.hold))
        self._task = asyncio.create_task(self._read())
        self._ka_task = asyncio.create_task(self._keepalives())

    async def _keepalives(self) -> None:
        while not (self.closed or self.stopping):
            self.peer.send(KEEPALIVE)
            await asyncio.sleep(self.keepalive)

    async def _read(self) -> None:
        loop = asyncio.get_running_loop()
        last = loop.time()
        try:
            while True:
                t, body = await self.peer.next_frame(3600)
                if t == MessageType.KEEPALIVE:
                    now = loop.time()
                    self.max_gap = max(self.max_gap, now - last)
                    last = now
                elif t == MessageType.NOTIFICATION:
                    self.notifications.append(Notification(body[0], body[1], body[2:]))
                elif t == MessageType.UPDATE:
                    self.updates += 1
        except (PeerClosed, TimeoutError, OSError):
            self.closed = not self.stopping

    async def stop(self) -> None:
        self.stopping = True
        for task in (self._task, self._ka_task):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        await self.peer.close()


async def _flood(
    daemon: LoopbackDaemon, n: int, quiet: int, hold: int, keepalive: float, linger: float
) -> dict[str, Any]:
    peers = [QuietPeer(daemon.port, peer_address(1 + i), hold, keepalive) for i in range(quiet)]
    for q in peers:
        await q.start()
    flood = ScriptedPeer(daemon.port, peer_address(0))
    await flood.connect()
    await flood.handshake(peer_open())
    msgs = announcements(0x0B000000, n)
    loop = asyncio.get_running_loop()

    async def flood_keepalives() -> None:
        while True:
            flood.send(KEEPALIVE)
            await asyncio.sleep(10)

    async def drain_flood() -> None:
        with contextlib.suppress(PeerClosed, TimeoutError, OSError):
            while True:
                await flood.next_frame(3600)

    ka = asyncio.create_task(flood_keepalives())
    reader = asyncio.create_task(drain_flood())
    t0 = loop.time()
    for m in msgs:
        flood.send(m)
    await flood.drain()
    sent = loop.time() - t0

    def have_all() -> bool:
        rows = daemon.peers_by_address()
        return bool(rows[peer_address(0)]["received"] >= n)

    # Poll from a thread, rarely (show peers is O(routes) in the daemon).
    while not await asyncio.to_thread(have_all):
        if loop.time() - t0 > 600:
            break
        await asyncio.sleep(0.5)
    ingested = loop.time() - t0
    await asyncio.sleep(linger)  # the re-advertisement to the quiet peers goes on
    rows = await asyncio.to_thread(daemon.peers_by_address)
    ka.cancel()
    reader.cancel()
    for q in peers:
        await q.stop()
    await flood.close()
    quiet_rows = [rows[peer_address(1 + i)] for i in range(quiet)]
    return {
        "prefixes": n,
        "update_messages": len(msgs),
        "quiet_sessions": quiet,
        "hold_time": hold,
        "keepalive_time": keepalive,
        "sent_seconds": round(sent, 2),
        "ingested_seconds": round(ingested, 2),
        "received_by_daemon": rows[peer_address(0)]["received"],
        "daemon_side": {
            "quiet_established": sum(1 for r in quiet_rows if r["state"] == "Established"),
            "max_established_count": max(r["established_count"] for r in quiet_rows),
            "last_down": sorted({str(r["last_down"]) for r in quiet_rows if r["last_down"]}),
        },
        "peer_side": {
            "notifications": [f"{x.code}/{x.subcode}" for q in peers for x in q.notifications],
            "closed": sum(1 for q in peers if q.closed),
            "max_keepalive_gap_s": round(max(q.max_gap for q in peers), 3),
            "updates_received_per_peer": min(q.updates for q in peers),
        },
    }


def run_flood(
    n: int, quiet: int, hold: int = 3, keepalive: int = 1, linger: float = 5.0
) -> dict[str, Any]:
    specs = [PeerSpec()] + [PeerSpec(hold_time=hold, keepalive_time=keepalive)] * quiet
    with LoopbackDaemon(specs, log_level="info") as daemon:
        before = figures(daemon)
        result = asyncio.run(_flood(daemon, n, quiet, hold, keepalive, linger))
        result["before"] = before
        result["after"] = figures(daemon)
        log = daemon.log_text()
        result["daemon_log_hold_expiries"] = log.count("HOLD_TIMER_EXPIRED") + log.count(
            "nothing received for"
        )
        result["daemon_tracebacks"] = log.count("Traceback")
        return result


def flood_ok(r: dict[str, Any]) -> list[str]:
    problems = []
    d, p = r["daemon_side"], r["peer_side"]
    if r["received_by_daemon"] < r["prefixes"]:
        problems.append(f"daemon received {r['received_by_daemon']} of {r['prefixes']}")
    if d["quiet_established"] != r["quiet_sessions"] or d["max_established_count"] != 1:
        problems.append(f"quiet sessions on the daemon: {d}")
    if p["notifications"] or p["closed"]:
        problems.append(f"quiet peers: {p}")
    if p["max_keepalive_gap_s"] >= r["hold_time"]:
        problems.append(f"keepalive gap {p['max_keepalive_gap_s']} s >= hold time")
    if r["daemon_log_hold_expiries"]:
        problems.append(f"{r['daemon_log_hold_expiries']} hold timer expiries in the log")
    if r["daemon_tracebacks"]:
        problems.append(f"{r['daemon_tracebacks']} tracebacks in the daemon log")
    return problems


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--flaps", type=int, default=1000)
    ap.add_argument("--flap-peers", type=int, default=1)
    ap.add_argument("--flaps-in-process", type=int, default=0)
    ap.add_argument("--flood", type=int, default=100_000)
    ap.add_argument("--quiet", type=int, default=20)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args(argv)
    random.seed(args.seed)
    result: dict[str, Any] = {
        "command": "python -m bench.soak " + " ".join(sys.argv[1:] if argv is None else argv)
    }
    problems: list[str] = []
    if args.flaps:
        result["flaps"] = run_flaps(args.flaps, args.flap_peers)
        problems += flap_growth_ok(result["flaps"])
    if args.flaps_in_process:
        inproc = run_flaps_in_process(args.flaps_in_process, 10)
        result["flaps_in_process"] = inproc
        if inproc["gc_objects_after"] > inproc["gc_objects_before"] + OBJECT_NOISE:
            problems.append(f"objects after flaps in process: {inproc}")
        if inproc["error_count"]:
            problems.append(f"errors logged in process: {inproc['errors']}")
    if args.flood:
        result["flood"] = run_flood(args.flood, args.quiet)
        problems += flood_ok(result["flood"])
    result["problems"] = problems
    text = json.dumps(result, indent=1)
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(text + "\n")
    print(text)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
