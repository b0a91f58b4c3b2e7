"""Two `roost run` daemons on loopback addresses with metrics and JSON logs on: scrape
/metrics over HTTP and read the log lines as JSON.

Needs no root: 127.0.0.1 and 127.0.0.2 are both this host's, the kernel sink runs in
dry-run mode (it keeps what it would install), and each daemon has its own control
socket. The processes are stopped by PID.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.harness.netns import wait_for

REPO = Path(__file__).resolve().parents[2]

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class Node:
    """`roost run --log-format json` with `[metrics]` on, from a config in `workdir`."""

    def __init__(self, workdir: Path, address: str, peer: str, bgp_port: int,
                 prefixes: list[str]) -> None:
        self.address = address
        self.metrics_port = free_port(address)
        workdir.mkdir()
        self.config = workdir / "roost.toml"
        self.log = workdir / "roost.log"
        self.config.write_text(f"""\
[router]
asn = 65000
id = "{address}"
listen = ["{address}"]
port = {bgp_port}
prefixes = {json.dumps(prefixes)}
hold_time = 3

[[peer]]
address = "{peer}"
asn = 65000
port = {bgp_port}
connect_retry_time = 1

[kernel]
dry_run = true

[control]
socket = "{workdir / 'roost.ctl'}"

[metrics]
listen = "{address}:{self.metrics_port}"
""")
        with open(self.log, "wb") as err, open(workdir / "stdout", "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "roost", "run", "-c", str(self.config),
                 "--log-format", "json", "--log-level", "debug"],
                stdout=out, stderr=err, cwd=REPO, env=dict(os.environ, PYTHONPATH=str(REPO)))

    def url(self, path: str) -> str:
        return f"http://{self.address}:{self.metrics_port}{path}"

    def scrape(self) -> Samples:
        with urllib.request.urlopen(self.url("/metrics"), timeout=5) as resp:
            assert resp.status == 200
            text = resp.read().decode()
        out: Samples = {}
        for family in text_string_to_metric_families(text):
            for s in family.samples:
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
        return out

    def records(self) -> list[dict[str, Any]]:
        """Every stderr line as JSON (a line that is not JSON fails the test)."""
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def tail(self) -> str:
        return f"--- {self.address} ---\n" + "\n".join(
            self.log.read_text(errors="replace").splitlines()[-30:])

    def stop(self) -> int:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
        try:
            return self.proc.wait(10)
        except subprocess.TimeoutExpired:
            os.kill(self.proc.pid, signal.SIGKILL)
            return self.proc.wait(5)


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), -1.0)


@pytest.fixture
def pair(tmp_path: Path) -> Iterator[tuple[Node, Node]]:
    try:
        with socket.socket() as s:
            s.bind(("127.0.0.2", 0))
    except OSError as exc:
        pytest.skip(f"127.0.0.2 is not a local address here: {exc}")
    port = free_port("127.0.0.1")
    a = Node(tmp_path / "a", "127.0.0.1", "127.0.0.2", port, ["10.1.0.0/24"])
    b = Node(tmp_path / "b", "127.0.0.2", "127.0.0.1", port,
             ["10.2.0.0/24", "10.2.1.0/24", "10.2.2.0/24"])
    try:
        yield a, b
    finally:
        codes = [a.stop(), b.stop()]
        assert codes == [0, 0], a.tail() + "\n" + b.tail()


def test_scrape_two_daemons(pair: tuple[Node, Node]) -> None:
    a, b = pair
    a_peer = {"peer": "Node_127_0_0_2", "address": "127.0.0.2"}
    fam = {**a_peer, "family": "ipv4-unicast"}

    def converged() -> Samples | None:
        s = a.scrape()
        done = (value(s, "roost_peer_up", **a_peer) == 1
                and value(s, "roost_peer_prefixes_received", **fam) == 3)
        return s if done else None

    s = wait_for(converged, 20, what="a: session up, b's 3 prefixes received",
                 on_timeout=lambda: a.tail() + "\n" + b.tail())
    assert value(s, "roost_peer_state", **a_peer, state="Established") == 1
    assert value(s, "roost_peer_state", **a_peer, state="Idle") == 0
    assert value(s, "roost_peer_prefixes_accepted", **fam) == 3
    assert value(s, "roost_loc_rib_prefixes", family="ipv4-unicast") == 4  # 3 + its own
    assert value(s, "roost_peer_established_transitions_total", **a_peer) == 1
    assert value(s, "roost_peer_messages_received_total", **a_peer, type="open") >= 1
    assert value(s, "roost_peer_messages_received_total", **a_peer, type="update") >= 1
    assert value(s, "roost_peer_uptime_seconds", **a_peer) >= 0
    # Dry-run kernel: b's three prefixes (its own is a blackhole, counted too).
    wait_for(lambda: value(a.scrape(), "roost_kernel_routes_installed") == 4, 10,
             what="a: 4 kernel routes (dry run)")

    # The other side: what it advertised is what a received.
    b_peer = {"peer": "Node_127_0_0_1", "address": "127.0.0.1"}
    sb = wait_for(lambda: (t := b.scrape()) and value(
        t, "roost_peer_prefixes_received", **b_peer, family="ipv4-unicast") == 1 and t, 10,
        what="b: a's prefix received")
    assert value(sb, "roost_peer_prefixes_advertised", **b_peer, family="ipv4-unicast") == 3

    # Counters only go up: KEEPALIVEs every second (hold time 3 s).
    before = value(s, "roost_peer_messages_received_total", **a_peer, type="keepalive")
    sent = value(s, "roost_peer_messages_sent_total", **a_peer, type="keepalive")
    wait_for(lambda: value(a.scrape(), "roost_peer_messages_received_total", **a_peer,
                           type="keepalive") > before, 10, what="more KEEPALIVEs received")
    assert value(a.scrape(), "roost_peer_messages_sent_total", **a_peer,
                 type="keepalive") >= sent

    # Anything but /metrics is 404.
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(a.url("/"), timeout=5)
    assert err.value.code == 404

    # JSON logs: every line parses; the session-established record names the peer.
    ups = [r for r in a.records() if r.get("event") == "established"]
    assert ups, a.tail()
    assert ups[0]["peer"] == "Node_127_0_0_2" and ups[0]["address"] == "127.0.0.2"
    assert ups[0]["level"] == "info" and ups[0]["logger"] == "roost"
    assert ups[0]["time"].endswith("Z")


def test_session_down_is_logged_with_reason(pair: tuple[Node, Node]) -> None:
    a, b = pair
    wait_for(lambda: value(a.scrape(), "roost_peer_up", peer="Node_127_0_0_2",
                           address="127.0.0.2") == 1, 20, what="session up",
             on_timeout=lambda: a.tail() + "\n" + b.tail())
    assert b.stop() == 0  # Cease / administrative shutdown to a

    def down() -> dict[str, Any] | None:
        return next((r for r in a.records() if r.get("event") == "down"), None)

    record = wait_for(down, 10, what="a: session down record", on_timeout=a.tail)
    assert record["peer"] == "Node_127_0_0_2"
    assert record["reason"] == "notification-received"
    # Cease: administrative shutdown (subcode 2), sent as a Hard Reset (subcode 9, RFC
    # 8538 §3) as the N bit was negotiated.
    assert record["notification"]["code"] == 6 and record["notification"]["subcode"] in (2, 9)
    assert record["notification"]["direction"] == "received"
    s = a.scrape()
    assert value(s, "roost_peer_up", peer="Node_127_0_0_2", address="127.0.0.2") == 0
    errors = [dict(lab) for (n, lab), _ in s.items() if n == "roost_peer_last_error_info"]
    assert errors and "notification-received" in errors[0]["error"]
