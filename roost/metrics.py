"""Prometheus metrics: a collector over the running daemon and a tiny HTTP endpoint.

    GET /metrics ──▶ MetricsServer (asyncio.start_server, one request per connection)
                 ──▶ generate_latest(private CollectorRegistry)
                 ──▶ RoostCollector.collect(): reads BgpPeer.stats, the Speaker's RIB
                     counts and the kernel sink's installed() at scrape time

Nothing is counted on the receive path for this: every value is read when Prometheus
asks (message counters are the ones `SessionProtocol` keeps anyway). A scrape runs on
the event loop; its cost grows with peers times advertised prefixes (`count_for` walks the
Adj-RIB-Out once per peer and family), a few ms for a host's table. The server takes one
bounded request per connection, answers, and closes; no threads.

Off unless `[metrics] listen` is set. The metric names, types and labels are listed in
docs/operations.md ("Metrics"); keep the two in step.
"""

from __future__ import annotations

import asyncio
import logging
import os
import platform
from collections.abc import Iterator, Mapping
from typing import Protocol

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    InfoMetricFamily,
    Metric,
)
from prometheus_client.exposition import CONTENT_TYPE_LATEST, generate_latest
from prometheus_client.registry import CollectorRegistry

from bgp.aio.peer import BgpPeer
from bgp.fsm import State
from bgp.speaker import Speaker
from kernel import FibSink
from roost import __version__
from roost import config as cfg

log = logging.getLogger(__name__)

#: Longest `error` label of roost_peer_last_error_info: label values are stored by the
#: scraper per series, so an unbounded text (NOTIFICATION data) must not grow them.
MAX_ERROR_LABEL = 200
#: Largest request head (request line and headers) accepted; a scraper sends ~200 octets.
MAX_REQUEST = 8192
#: Seconds a client has to send its request, and then to read the answer.
CLIENT_TIMEOUT = 5.0
#: Connections served at once; more are closed at once (a scraper makes one at a time).
MAX_CLIENTS = 8

#: (label value, PeerStats attribute received, attribute sent) per message type.
_MESSAGE_TYPES = (
    ("open", "opens_in", "opens_out"),
    ("update", "updates_in", "updates_out"),
    ("notification", "notifications_in", "notifications_out"),
    ("keepalive", "keepalives_in", "keepalives_out"),
    ("route_refresh", "route_refreshes_in", "route_refreshes_out"),
)


class MetricsError(Exception):
    """The metrics endpoint cannot start (address in use, not ours): one line."""


# --------------------------------------------------------------------------- collector


class PeerSource(Protocol):
    """One configured neighbour as the daemon holds it (`roost.daemon._PeerState`)."""

    @property
    def config(self) -> cfg.PeerConfig: ...

    @property
    def peer(self) -> BgpPeer: ...


class DaemonSource(Protocol):
    """What the collector reads of the daemon (`roost.daemon.Daemon`)."""

    @property
    def config(self) -> cfg.Config: ...

    @property
    def peers(self) -> Mapping[str, PeerSource]: ...

    @property
    def speaker(self) -> Speaker: ...

    @property
    def sink(self) -> FibSink | None: ...

    @property
    def started_at(self) -> float: ...


class RoostCollector:
    """A custom collector: every value is read from the daemon when scraped."""

    def __init__(self, daemon: DaemonSource) -> None:
        self.daemon = daemon

    def collect(self) -> Iterator[Metric]:
        d = self.daemon
        yield InfoMetricFamily("roost_build", "Version of roost and of Python.", value={
            "version": __version__, "python": platform.python_version()})
        yield GaugeMetricFamily("roost_start_time_seconds",
                                "When the daemon started (Unix time).", value=d.started_at)
        yield from self._peers(d)
        rib = GaugeMetricFamily("roost_loc_rib_prefixes",
                                "Prefixes in the Loc-RIB.", labels=["family"])
        for fam, size in sorted(d.speaker.loc_rib_sizes().items(), key=lambda x: str(x[0])):
            rib.add_metric([str(fam)], size)
        yield rib
        if d.sink is not None:
            yield GaugeMetricFamily("roost_kernel_routes_installed",
                                    "Routes roost has in the kernel (proto bird).",
                                    value=len(d.sink.installed()))

    def _peers(self, d: DaemonSource) -> Iterator[Metric]:
        peer_l = ["peer", "address"]
        info = GaugeMetricFamily("roost_peer_info", "Configured neighbours (always 1).",
                                 labels=[*peer_l, "asn", "type", "kind"])
        state = GaugeMetricFamily("roost_peer_state", "1 for the session's current RFC 4271 "
                                  "§8.2.2 state, 0 for the others.", labels=[*peer_l, "state"])
        up = GaugeMetricFamily("roost_peer_up", "1 when the session is Established.",
                               labels=peer_l)
        uptime = GaugeMetricFamily("roost_peer_uptime_seconds", "Seconds since the session "
                                   "became Established (0 when it is not).", labels=peer_l)
        transitions = CounterMetricFamily("roost_peer_established_transitions",
                                          "Times the session became Established.",
                                          labels=peer_l)
        received = CounterMetricFamily("roost_peer_messages_received",
                                       "BGP messages received, per type.",
                                       labels=[*peer_l, "type"])
        sent = CounterMetricFamily("roost_peer_messages_sent", "BGP messages sent, per type.",
                                   labels=[*peer_l, "type"])
        bytes_in = CounterMetricFamily("roost_peer_received_bytes", "Octets received.",
                                       labels=peer_l)
        bytes_out = CounterMetricFamily("roost_peer_sent_bytes", "Octets sent.", labels=peer_l)
        fam_l = [*peer_l, "family"]
        pfx_rx = GaugeMetricFamily("roost_peer_prefixes_received", "Paths in the Adj-RIB-In "
                                   "before import policy.", labels=fam_l)
        pfx_ok = GaugeMetricFamily("roost_peer_prefixes_accepted", "Paths accepted by import "
                                   "policy and loop checks.", labels=fam_l)
        pfx_no = GaugeMetricFamily("roost_peer_prefixes_rejected", "Paths kept out of the "
                                   "Loc-RIB, per reason.", labels=[*fam_l, "reason"])
        pfx_tx = GaugeMetricFamily("roost_peer_prefixes_advertised", "Prefixes in the "
                                   "Adj-RIB-Out of the peer.", labels=fam_l)
        last_error = InfoMetricFamily("roost_peer_last_error", "Why the session last went "
                                      "down (the text is cut at 200 characters).",
                                      labels=peer_l)
        summary = {row["key"]: row for row in d.speaker.peers_summary()}
        local_asn = d.config.router.asn
        for key, ps in sorted(d.peers.items()):
            conf, peer = ps.config, ps.peer
            labels = [conf.name, key]
            info.add_metric([*labels, str(conf.asn),
                             "ibgp" if conf.is_ibgp(local_asn) else "ebgp", conf.kind], 1)
            current = peer.state
            for s in State:
                state.add_metric([*labels, s.value], 1 if s is current else 0)
            stats = peer.stats
            up.add_metric(labels, 1 if current is State.ESTABLISHED else 0)
            uptime.add_metric(labels, stats.uptime or 0.0)
            transitions.add_metric(labels, stats.established_count)
            for name, rx, tx in _MESSAGE_TYPES:
                received.add_metric([*labels, name], getattr(stats, rx))
                sent.add_metric([*labels, name], getattr(stats, tx))
            bytes_in.add_metric(labels, stats.bytes_in)
            bytes_out.add_metric(labels, stats.bytes_out)
            for fam, counts in summary.get(key, {}).get("families", {}).items():
                pfx_rx.add_metric([*labels, fam], counts["received"])
                pfx_ok.add_metric([*labels, fam], counts["accepted"])
                pfx_tx.add_metric([*labels, fam], counts["advertised"])
            for family, reasons in d.speaker.rejected_reasons(key).items():
                for reason, n in reasons.items():
                    pfx_no.add_metric([*labels, str(family), reason.name.lower()], n)
            if stats.last_error:
                last_error.add_metric(labels, {"error": _bounded(stats.last_error)})
        yield from (info, state, up, uptime, transitions, received, sent, bytes_in, bytes_out,
                    pfx_rx, pfx_ok, pfx_no, pfx_tx, last_error)


def _bounded(text: str) -> str:
    one_line = " ".join(text.split())
    if len(one_line) <= MAX_ERROR_LABEL:
        return one_line
    return one_line[: MAX_ERROR_LABEL - 1] + "…"


def registry_for(daemon: DaemonSource) -> CollectorRegistry:
    """A private registry holding only roost's collector (no process/GC metrics of the
    default one: the scrape shows the daemon, and tests can run several in a process)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(RoostCollector(daemon))
    return registry


# --------------------------------------------------------------------------- endpoint


class MetricsServer:
    """`GET /metrics` over HTTP/1.1 on one address; one request per connection."""

    def __init__(self, address: str, port: int, registry: CollectorRegistry) -> None:
        self.address = address
        self.requested_port = port
        self.registry = registry
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()

    @property
    def port(self) -> int:
        """The bound port (differs from the requested one when that was 0)."""
        if self._server is None or not self._server.sockets:
            return self.requested_port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def where(self) -> str:
        host = f"[{self.address}]" if ":" in self.address else self.address
        return f"{host}:{self.port}"

    async def start(self) -> None:
        try:
            self._server = await asyncio.start_server(
                self._serve, self.address, self.requested_port, limit=MAX_REQUEST)
        except OSError as exc:
            # asyncio wraps the bind error in its own text: the errno says it shorter.
            reason = os.strerror(exc.errno).lower() if exc.errno else str(exc)
            raise MetricsError(f"metrics: cannot listen on {self.where}: {reason}") from None
        log.info("metrics: serving http://%s/metrics", self.where)

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.close()
        for writer in list(self._clients):
            writer.transport.abort()
        await server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if len(self._clients) >= MAX_CLIENTS:
            writer.transport.abort()
            return
        self._clients.add(writer)
        try:
            async with asyncio.timeout(CLIENT_TIMEOUT):
                writer.write(self._answer(await self._read_head(reader)))
                await writer.drain()
        except (TimeoutError, ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away or was too slow: nothing to answer
        finally:
            self._clients.discard(writer)
            writer.close()

    @staticmethod
    async def _read_head(reader: asyncio.StreamReader) -> bytes | None:
        """The request head, or None when it exceeds MAX_REQUEST."""
        try:
            return await reader.readuntil(b"\r\n\r\n")
        except asyncio.LimitOverrunError:
            return None

    def _answer(self, head: bytes | None) -> bytes:
        if head is None:
            return _response(431, "Request Header Fields Too Large", b"request too large\n")
        parts = head.split(b"\r\n", 1)[0].split()
        if len(parts) != 3 or not parts[2].startswith(b"HTTP/"):
            return _response(400, "Bad Request", b"bad request\n")
        method, target = parts[0], parts[1]
        if method not in (b"GET", b"HEAD"):
            return _response(405, "Method Not Allowed", b"only GET\n",
                             extra=b"Allow: GET, HEAD\r\n")
        if target.split(b"?", 1)[0] != b"/metrics":
            return _response(404, "Not Found", b"not found; the metrics are at /metrics\n")
        try:
            body = generate_latest(self.registry)
        except Exception:
            log.exception("metrics: collecting failed")
            return _response(500, "Internal Server Error", b"collecting failed\n")
        return _response(200, "OK", body, content_type=CONTENT_TYPE_LATEST.encode(),
                         head_only=method == b"HEAD")


def _response(
    code: int,
    reason: str,
    body: bytes,
    *,
    content_type: bytes = b"text/plain; charset=utf-8",
    extra: bytes = b"",
    head_only: bool = False,
) -> bytes:
    head = (f"HTTP/1.1 {code} {reason}\r\n".encode()
            + b"Content-Type: " + content_type + b"\r\n"
            + f"Content-Length: {len(body)}\r\n".encode()
            + extra + b"Connection: close\r\n\r\n")
    return head if head_only else head + body


def server_for(daemon: DaemonSource) -> MetricsServer | None:
    """The endpoint `[metrics] listen` asks for, or None when metrics are off."""
    listen = daemon.config.metrics.listen
    if listen is None:
        return None
    host, port = listen
    return MetricsServer(str(host), port, registry_for(daemon))


__all__ = ["MetricsError", "MetricsServer", "RoostCollector", "registry_for", "server_for"]
