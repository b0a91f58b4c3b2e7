"""The metrics collector over a real (unstarted) daemon, the `[metrics]` configuration,
and the HTTP endpoint's answers to good, bad, oversized and slow requests."""

from __future__ import annotations

import asyncio
import ipaddress
import platform
import socket

import pytest
from prometheus_client.exposition import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import CollectorRegistry

from bgp.types import IPV4_UNICAST
from bgp.wire.model import Negotiated
from kernel.routes import TunnelPolicy
from kernel.sink import MemorySink
from roost import __version__, metrics
from roost import config as cfg
from roost.daemon import Daemon
from roost.metrics import MAX_ERROR_LABEL, MetricsError, MetricsServer, registry_for
from tests.unit.rib.helpers import announce, attrs

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]

CONFIG = """\
[router]
asn = 65000
id = "10.0.0.1"

[[peer]]
address = "10.0.0.2"
asn = 65000

[[peer]]
address = "127.0.0.2"
port = {port}
asn = 65000
connect_retry_time = 1
"""


def scrape(registry: CollectorRegistry) -> Samples:
    text = generate_latest(registry).decode()
    out: Samples = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples[(name, tuple(sorted(labels.items())))]


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.2", 0))
        return int(s.getsockname()[1])


def test_collector_reads_peers_ribs_and_kernel() -> None:
    async def run() -> None:
        sink = MemorySink()
        d = Daemon(cfg.loads(CONFIG.format(port=closed_port())), sink=sink,
                   install_signals=False)
        d.tunnel = TunnelPolicy(interfaces={"eth0": ipaddress.IPv4Interface("10.0.0.1/24")})
        for p in d.config.peers:
            d._new_peer(p)
        # The routes of an Established rr1, straight into the speaker: two accepted, one
        # with our own AS in its AS_PATH (RFC 4271 §9.1.2) rejected.
        ctx = Negotiated(asn4=True, families=frozenset({IPV4_UNICAST}), peer_asn=65000,
                         peer_router_id=ipaddress.IPv4Address("10.0.0.2"))
        d.speaker.peer_up("10.0.0.2", ctx, 0.0)
        d.speaker.receive_updates("10.0.0.2", [
            announce(attrs("10.0.0.2"), "172.16.1.0/24", "172.16.2.0/24"),
            announce(attrs("10.0.0.2", path=(65001, 65000)), "172.16.3.0/24"),
        ], 1.0)
        # The second peer tries a closed port: its last error is the refused connection.
        down = d.peers["127.0.0.2"].peer
        await down.start()
        for _ in range(200):
            if down.stats.last_error:
                break
            await asyncio.sleep(0.01)
        await asyncio.sleep(0.01)  # the kernel flush task
        s = scrape(registry_for(d))
        await down.stop()

        rr1 = {"peer": "Node_10_0_0_2", "address": "10.0.0.2"}
        fam = {**rr1, "family": "ipv4-unicast"}
        assert value(s, "roost_peer_prefixes_received", **fam) == 3
        assert value(s, "roost_peer_prefixes_accepted", **fam) == 2
        assert value(s, "roost_peer_prefixes_rejected", **fam, reason="as_loop") == 1
        assert value(s, "roost_loc_rib_prefixes", family="ipv4-unicast") == 2
        assert value(s, "roost_kernel_routes_installed") == len(sink.installed()) == 2
        assert value(s, "roost_peer_info", **rr1, asn="65000", type="ibgp", kind="static") == 1
        # rr1's BgpPeer was never started: Idle, down, no messages.
        assert value(s, "roost_peer_up", **rr1) == 0
        assert value(s, "roost_peer_state", **rr1, state="Idle") == 1
        assert value(s, "roost_peer_state", **rr1, state="Established") == 0
        assert sum(v for (n, lab), v in s.items()
                   if n == "roost_peer_state" and dict(lab)["peer"] == "Node_10_0_0_2") == 1
        assert value(s, "roost_peer_messages_received_total", **rr1, type="update") == 0
        assert value(s, "roost_peer_established_transitions_total", **rr1) == 0
        errors = [dict(lab) for (n, lab), _ in s.items() if n == "roost_peer_last_error_info"]
        assert [e["peer"] for e in errors] == ["Node_127_0_0_2"]
        assert errors[0]["error"] and len(errors[0]["error"]) <= MAX_ERROR_LABEL
        assert value(s, "roost_build_info", version=__version__,
                     python=platform.python_version()) == 1

    asyncio.run(run())


def test_error_label_is_one_bounded_line() -> None:
    text = "hold timer expired\n" + "x" * 500
    label = metrics._bounded(text)
    assert "\n" not in label
    assert len(label) == MAX_ERROR_LABEL and label.endswith("…")
    assert metrics._bounded("short") == "short"


def test_kernel_metric_absent_without_kernel() -> None:
    async def run() -> None:
        d = Daemon(cfg.loads(CONFIG.format(port=1) + "\n[kernel]\nenabled = false\n"),
                   install_signals=False)
        assert d.sink is None
        s = scrape(registry_for(d))
        assert not any(n == "roost_kernel_routes_installed" for n, _ in s)

    asyncio.run(run())


# --------------------------------------------------------------------------- config


BASE = '[router]\nasn = 65000\nid = "10.0.0.1"\n'


@pytest.mark.parametrize(("text", "listen"), [
    ('"127.0.0.1:9179"', (ipaddress.ip_address("127.0.0.1"), 9179)),
    ('"[::1]:9179"', (ipaddress.ip_address("::1"), 9179)),
    ('"0.0.0.0:1"', (ipaddress.ip_address("0.0.0.0"), 1)),
])
def test_metrics_listen_parses(text: str, listen: tuple[object, int]) -> None:
    c = cfg.loads(BASE + f"[metrics]\nlisten = {text}\n")
    assert c.metrics.listen == listen
    assert "metrics " in c.summary()


def test_metrics_off_by_default() -> None:
    c = cfg.loads(BASE)
    assert c.metrics.listen is None
    assert c.metrics.listen_text == "off"
    assert "metrics" not in c.summary()


@pytest.mark.parametrize(("text", "message"), [
    ('"::1:9179"', 'must be "ADDRESS:PORT"'),
    ('"127.0.0.1"', 'must be "ADDRESS:PORT"'),
    ('"localhost:9179"', "is not an IP address"),
    ('"127.0.0.1:0"', "port must be 1..65535, got 0"),
    ('"127.0.0.1:70000"', "port must be 1..65535"),
    ('"127.0.0.1:http"', 'must be "ADDRESS:PORT"'),
    ("9179", "must be a string"),
])
def test_metrics_listen_errors_name_file_line_and_key(text: str, message: str) -> None:
    with pytest.raises(cfg.ConfigError) as err:
        cfg.loads(BASE + f"\n[metrics]\nlisten = {text}\n", "roost.toml")
    (issue,) = err.value.issues
    assert str(issue).startswith("roost.toml:6: metrics.listen: ")
    assert message in issue.message


def test_metrics_unknown_key() -> None:
    with pytest.raises(cfg.ConfigError, match=r"roost.toml:5: metrics.lisen: unknown key; "
                                              r"did you mean 'listen'\?"):
        cfg.loads(BASE + '[metrics]\nlisen = "127.0.0.1:9179"\n', "roost.toml")


# --------------------------------------------------------------------------- endpoint


async def http(port: int, request: bytes) -> tuple[int, dict[str, str], bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(request)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 5)
    writer.close()
    head, _, body = data.partition(b"\r\n\r\n")
    status, *lines = head.decode().split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines)
    return int(status.split()[1]), headers, body


async def started_server() -> tuple[Daemon, MetricsServer]:
    d = Daemon(cfg.loads(CONFIG.format(port=1)), sink=MemorySink(), install_signals=False)
    server = MetricsServer("127.0.0.1", 0, registry_for(d))
    await server.start()
    return d, server


def test_endpoint_answers() -> None:
    async def run() -> None:
        _, server = await started_server()
        try:
            code, headers, body = await http(server.port, b"GET /metrics HTTP/1.1\r\n"
                                             b"Host: x\r\nAccept: */*\r\n\r\n")
            assert code == 200
            assert headers["Content-Type"].startswith("text/plain")
            assert int(headers["Content-Length"]) == len(body)
            names = {f.name for f in text_string_to_metric_families(body.decode())}
            assert {"roost_peer_up", "roost_loc_rib_prefixes", "roost_build_info"} <= names
            code, _, body = await http(server.port, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n")
            assert code == 200
            code, headers, body = await http(server.port, b"HEAD /metrics HTTP/1.1\r\n\r\n")
            assert code == 200 and body == b"" and int(headers["Content-Length"]) > 0
            assert (await http(server.port, b"GET / HTTP/1.1\r\n\r\n"))[0] == 404
            assert (await http(server.port, b"GET /metricsx HTTP/1.1\r\n\r\n"))[0] == 404
            code, headers, _ = await http(server.port, b"POST /metrics HTTP/1.1\r\n\r\n")
            assert code == 405 and headers["Allow"] == "GET, HEAD"
            assert (await http(server.port, b"garbage\r\n\r\n"))[0] == 400
            huge = b"GET /metrics HTTP/1.1\r\n" + b"X: " + b"y" * 20000 + b"\r\n\r\n"
            assert (await http(server.port, huge))[0] == 431
        finally:
            await server.stop()

    asyncio.run(run())


def test_slow_client_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "CLIENT_TIMEOUT", 0.2)

    async def run() -> None:
        _, server = await started_server()
        try:
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\n")  # and never the end of the head
            await writer.drain()
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed, no answer
            writer.close()
            # Meanwhile and afterwards, others are served.
            assert (await http(server.port, b"GET /metrics HTTP/1.1\r\n\r\n"))[0] == 200
        finally:
            await server.stop()

    asyncio.run(run())


def test_connections_beyond_the_limit_are_closed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(metrics, "MAX_CLIENTS", 2)

    async def run() -> None:
        _, server = await started_server()
        try:
            idle = [await asyncio.open_connection("127.0.0.1", server.port) for _ in range(2)]
            await asyncio.sleep(0.05)  # both accepted and waiting for their request
            reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
            writer.write(b"GET /metrics HTTP/1.1\r\n\r\n")
            try:  # closed unanswered: a reset (RST) or an end of stream
                assert await asyncio.wait_for(reader.read(), 5) == b""
            except ConnectionResetError:
                pass
            writer.close()
            for _, w in idle:
                w.close()
        finally:
            await server.stop()

    asyncio.run(run())


def test_address_in_use_is_one_clear_error() -> None:
    async def run() -> None:
        _, first = await started_server()
        try:
            d = Daemon(cfg.loads(CONFIG.format(port=1)), sink=MemorySink(),
                       install_signals=False)
            second = MetricsServer("127.0.0.1", first.port, registry_for(d))
            with pytest.raises(MetricsError, match=rf"metrics: cannot listen on "
                                                   rf"127.0.0.1:{first.port}: .*in use"):
                await second.start()
        finally:
            await first.stop()

    asyncio.run(run())


def test_server_only_when_configured() -> None:
    off = Daemon(cfg.loads(CONFIG.format(port=1)), sink=MemorySink(), install_signals=False)
    assert off.metrics is None
    on = Daemon(cfg.loads(CONFIG.format(port=1) + '[metrics]\nlisten = "[::1]:9179"\n'),
                sink=MemorySink(), install_signals=False)
    assert on.metrics is not None
    assert (on.metrics.address, on.metrics.port, on.metrics.where) == ("::1", 9179,
                                                                      "[::1]:9179")


def test_member_counts_agree_with_count_for() -> None:
    # `peers_summary` (and so every scrape) counts a group's advertised prefixes for all
    # members in one walk; it must give what `count_for` gives member by member.
    import random

    from bgp.rib.adj_out import AdjRibOut, Advert
    from tests.unit.rib.helpers import pfx

    rng = random.Random(7)
    sources = ["a", "b", "c", None]
    out = AdjRibOut(IPV4_UNICAST)
    a = attrs("10.0.0.9")
    for i in range(500):
        n = rng.choice([0, 1, 1, 2, 3])
        out.sent[pfx(f"10.{i // 256}.{i % 256}.0/24")] = tuple(
            Advert(j + 1, a, rng.choice(sources)) for j in range(n))
    total, sole = out.member_counts()
    for key in ("a", "b", "c", "d"):
        assert total - sole.get(key, 0) == out.count_for(key)
