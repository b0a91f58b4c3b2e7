"""The BIRD control-socket dialect (roost/birdctl.py): framing, every command, errors, and
the asyncio server on a real Unix socket. The daemon's view is plain data here."""

from __future__ import annotations

import asyncio
import os
import re
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from roost import birdctl
from roost.birdctl import BirdControlServer, Reply, answer, frame

NOW = time.mktime((2026, 11, 25, 23, 40, 7, 0, 0, -1)) + 0.64
STARTED = NOW - 120.0


def _peer(name: str, address: str, state: str = "Established", **kw: Any) -> dict[str, Any]:
    row: dict[str, Any] = {
        "name": name, "address": address, "asn": 64512, "kind": "mesh", "type": "ibgp",
        "state": state, "since": NOW - 60.0, "passive": False, "rr_client": False,
        "router_id": address if state == "Established" else None,
        "families": {"ipv4-unicast": {"received": 3, "accepted": 2, "rejected": 1,
                                      "advertised": 5}} if state == "Established" else {},
        "hold_time": 90 if state == "Established" else None,
        "keepalive_time": 30 if state == "Established" else None,
        "established_count": 1, "last_down": None, "info": "", "description": "",
    }
    row.update(kw)
    return row


class View:
    """The three read-only daemon methods the dialect uses, over fixed data."""

    def __init__(self, peers: list[dict[str, Any]], routes: list[dict[str, Any]] | None = None,
                 **status: Any) -> None:
        self.peers = peers
        self.routes = routes or []
        self._status = {"version": "0.9.1", "router_id": "10.0.0.1", "asn": 64512,
                        "started": STARTED, "prefixes_originated": ["172.17.8.0/24"],
                        "kernel": "2 routes installed", **status}

    def status(self) -> dict[str, Any]:
        return dict(self._status)

    def show_peers(self) -> list[dict[str, Any]]:
        return self.peers

    def show_routes(self, prefix: Any) -> list[dict[str, Any]]:
        assert prefix is None
        return self.routes


def _path(source: str, next_hop: str | None, *, best: bool, as_path: str = "",
          origin: str = "igp", **kw: Any) -> dict[str, Any]:
    return {"from": source, "best": best, "multipath": False, "path_id": 0,
            "next_hop": next_hop, "as_path": as_path, "origin": origin, "med": None,
            "local_pref": 100, "communities": [], "large_communities": [],
            "ext_communities": [], "originator_id": None, "cluster_list": [],
            "learned_at": NOW - 30.0, "stale": False, **kw}


ROUTES = [
    {"prefix": "172.17.8.0/24", "family": "ipv4-unicast", "reason": "only",
     "paths": [_path("local", None, best=True)],
     "kernel": {"blackhole": True, "nexthops": []}},
    {"prefix": "172.17.9.0/24", "family": "ipv4-unicast", "reason": "lower_router_id",
     "paths": [
         _path("10.0.0.3", "10.0.0.3", best=False),
         _path("10.0.0.2", "10.0.0.2", best=True, as_path="64513 64514",
               communities=["64512:10"]),
     ],
     "kernel": {"blackhole": False,
                "nexthops": [{"gateway": "10.0.0.2", "dev": "tunl0", "onlink": True}]}},
]


def wire(reply: Reply) -> list[str]:
    return frame(reply).decode().split("\n")[:-1]


def ask(view: View, command: str) -> list[str]:
    return wire(answer(command, view, NOW, hostname="node1"))


def calico_peers(lines: list[str]) -> list[dict[str, str]]:
    """calico-node's `show protocols` parsing rules (research section 2.8), the strict
    variant: headings compared as they are, rows need 6 columns, proto BGP and a
    (Mesh|Node|Global)_<ip> name."""
    peers = []
    for line in lines:
        if line.startswith("0000"):
            break
        if line.startswith("0001"):
            continue
        if line.startswith("2002"):
            assert line[5:].split() == ["name", "proto", "table", "state", "since", "info"]
            continue
        if line.startswith("1002"):
            text = line[5:]
        elif line.startswith(" "):
            text = line[1:]
        else:
            raise AssertionError(f"unexpected output line from BIRD: {line!r}")
        cols = text.split()
        if len(cols) < 6 or cols[1] != "BGP":
            continue
        m = re.match(r"^(Global|Node|Mesh)_(.+)$", cols[0])
        if m is None:
            continue
        peers.append({"type": m[1], "ip": m[2].replace("_", "."), "state": cols[3],
                      "since": cols[4], "bgp_state": cols[5], "info": " ".join(cols[6:])})
    return peers


def calico_gr_in_progress(lines: list[str]) -> bool:
    """calico-node's `show status` rules: 0013 ends it (no restart), 0024 means a
    graceful restart recovery is in progress, any other line shape is an error."""
    for line in lines:
        if line.startswith("0013"):
            return False
        if line.startswith("0024"):
            return True
        if not (line[:4] in ("0001", "1000", "1011") or line.startswith(" ")):
            raise AssertionError(f"unexpected output line from BIRD: {line!r}")
    raise AssertionError("no 0013 line")


# --------------------------------------------------------------------------- framing


def test_framing_follows_birds_code_rules() -> None:
    reply = Reply(((1000, "a"), (1011, "b"), (1011, "c"), (24, "d"), (24, "e")), 13, "end")
    assert wire(reply) == ["1000-a", "1011-b", " c", "0024-d", " e", "0013 end"]
    assert wire(Reply((), 0)) == ["0000 "]  # BIRD ends tables with "0000 " (a space)


def test_lines_are_bounded_and_single() -> None:
    reply = Reply(((1006, "x" * 5000), (1006, "two\nlines\r")), 8001, "y" * 900)
    lines = frame(reply).split(b"\n")[:-1]
    assert len(lines) == 3
    assert all(len(line) + 1 <= birdctl.MAX_LINE for line in lines)
    assert lines[1] == b" two lines "


def test_greeting() -> None:
    assert birdctl.greeting("0.9.1") == b"0001 BIRD roost-0.9.1 ready.\n"


# --------------------------------------------------------------------------- show status


def test_show_status() -> None:
    lines = ask(View([]), "show status")
    assert lines[0] == "1000-BIRD roost-0.9.1"
    assert lines[1] == "1011-Router ID is 10.0.0.1"
    assert lines[2] == " Hostname is node1"
    assert re.fullmatch(r" Current server time is 2026-11-25 23:40:07\.640", lines[3])
    assert re.fullmatch(r" Last reboot on 2026-11-25 23:38:07\.640", lines[4])
    assert lines[5].startswith(" Last reconfiguration on 2026-11-25")
    assert lines[-1] == "0013 Daemon is up and running"
    assert not any(line.startswith("0024") for line in lines)


def test_show_status_while_recovering_says_0024() -> None:
    lines = ask(View([], recovering=True), "show status")
    assert lines[-2:] == ["0024-Graceful restart recovery in progress",
                          "0013 Daemon is up and running"]
    assert calico_gr_in_progress(lines) is True
    assert calico_gr_in_progress(ask(View([]), "show status")) is False


def test_show_status_before_recovering_exists() -> None:
    view = View([])
    del view._status["started"]
    assert ask(view, "show status")[-1] == "0013 Daemon is up and running"


# --------------------------------------------------------------------------- show protocols


def test_show_protocols_rows() -> None:
    view = View([
        _peer("Mesh_10_0_0_2", "10.0.0.2"),
        _peer("Mesh_10_0_0_3", "10.0.0.3", state="Active", since=None,
              info="connect: [Errno 111] Connection refused"),
        _peer("Mesh_10_0_0_4", "10.0.0.4", state="Active", passive=True,
              info="passive, waiting"),
        _peer("Dynamic_10_0_1_7", "10.0.1.7", kind="dynamic", state="OpenSent"),
    ])
    lines = ask(view, "show protocols")
    assert lines[0] == "2002-name       proto      table      state  since         info"
    assert lines[1].startswith("1002-static1    Static     master4    up     23:38:07.640")
    assert lines[2].startswith(" kernel1    Kernel     master4    up ")
    assert lines[3] == " Mesh_10_0_0_2 BGP        ---        up     23:39:07.640  Established   "
    assert lines[4] == (" Mesh_10_0_0_3 BGP        ---        start  23:38:07.640  Active        "
                        "connect: [Errno 111] Connection refused")
    assert lines[5] == " Mesh_10_0_0_4 BGP        ---        start  23:39:07.640  Passive       "
    assert lines[6].startswith(" Node_10_0_1_7 BGP        ---        start ")
    assert lines[-1] == "0000 "
    peers = calico_peers(lines)
    assert [(p["ip"], p["state"], p["bgp_state"]) for p in peers] == [
        ("10.0.0.2", "up", "Established"), ("10.0.0.3", "start", "Active"),
        ("10.0.0.4", "start", "Passive"), ("10.0.1.7", "start", "OpenSent")]
    assert peers[1]["info"] == "connect: [Errno 111] Connection refused"


def test_show_protocols_without_static_or_kernel() -> None:
    view = View([_peer("Node_fd00__2", "fd00::2")], prefixes_originated=[], kernel="off")
    lines = ask(view, "show protocols")
    assert lines[1].startswith("1002-Node_fd00__2 BGP ")
    assert calico_peers(lines)[0]["ip"] == "fd00..2"  # Calico then splits on "_" per family


def test_since_is_a_date_after_20_hours() -> None:
    view = View([_peer("Mesh_10_0_0_2", "10.0.0.2", since=NOW - 21 * 3600)])
    assert calico_peers(ask(view, "show protocols"))[0]["since"] == "2026-11-25"


def test_show_protocols_all_name() -> None:
    view = View([
        _peer("Mesh_10_0_0_2", "10.0.0.2", description="rack 2"),
        _peer("Mesh_10_0_0_3", "10.0.0.3", state="Connect", last_down="hold timer expired"),
    ])
    lines = ask(view, "show protocols all Mesh_10_0_0_2")
    assert lines[1].startswith("1002-Mesh_10_0_0_2 BGP ")
    assert lines[2] == "1006-  Description:    rack 2"
    body = lines[3:]
    for want in ("  BGP state:          Established", "    Neighbor address: 10.0.0.2",
                 "    Neighbor AS:      64512", "    Local AS:         64512",
                 "    Neighbor ID:      10.0.0.2", "    Session:          internal AS4",
                 "    Hold timer:       90", "    Keepalive timer:  30",
                 "  Channel ipv4", "    State:          UP",
                 "    Routes:         2 imported, 1 filtered, 5 exported"):
        assert " " + want in body, want
    assert lines[-2:] == [" ", "0000 "]  # the block ends with an empty continuation
    down = ask(view, "show protocols all Mesh_10_0_0_3")
    assert "1006-  BGP state:          Connect" in down
    assert "     Last error:       hold timer expired" in down
    assert not any("Neighbor ID" in line for line in down)


def test_show_protocols_all_lists_every_block() -> None:
    view = View([_peer("Mesh_10_0_0_2", "10.0.0.2"), _peer("Mesh_10_0_0_3", "10.0.0.3")])
    lines = ask(view, "show protocols all")
    rows = [line for line in lines if line.startswith("1002-")]
    assert [r.split()[0] for r in rows] == ["1002-static1", "1002-kernel1",
                                             "1002-Mesh_10_0_0_2", "1002-Mesh_10_0_0_3"]
    assert sum(line.startswith("1006-") for line in lines) == 4


def test_show_protocols_name_and_pattern() -> None:
    view = View([_peer("Mesh_10_0_0_2", "10.0.0.2"), _peer("Node_10_0_0_9", "10.0.0.9")])
    assert [p["ip"] for p in calico_peers(ask(view, "show protocols Node_10_0_0_9"))] == \
        ["10.0.0.9"]
    assert [p["ip"] for p in calico_peers(ask(view, 'show protocols "Mesh*"'))] == ["10.0.0.2"]
    assert ask(view, 'show protocols "zz*"') == ["8003 No protocols match"]
    assert ask(view, "show protocols Mesh_10_9_9_9")[0].startswith("9001 syntax error")
    assert ask(view, "show protocols all Mesh_10_0_0_2 extra")[0].startswith("9001 ")


# --------------------------------------------------------------------------- show route


def test_show_route() -> None:
    view = View([_peer("Mesh_10_0_0_2", "10.0.0.2"), _peer("Mesh_10_0_0_3", "10.0.0.3")],
                ROUTES)
    lines = ask(view, "show route")
    assert lines == [
        "1007-172.17.8.0/24      blackhole [static1 23:39:37.640] * (200)",
        " 172.17.9.0/24      via 10.0.0.2 on tunl0 [Mesh_10_0_0_2 23:39:37.640] * (100) "
        "[AS64514i]",
        "                    via 10.0.0.3 on - [Mesh_10_0_0_3 23:39:37.640] (100) [i]",
        "0000 ",
    ]


def test_show_route_parses_with_calicos_route_rules() -> None:
    """calico-node's route populator: `dest via gw on iface [from ...]`, `] *` primary,
    an empty destination continues the previous one."""
    via = re.compile(r"(?P<dest>\S*)\s*via\s(?P<gw>\S*)\s*on\s(?P<iface>.*)"
                     r"\s\[(?P<src>\S*)\s.*\].*")
    hole = re.compile(r"(?P<dest>\S*)\s*blackhole\s\[(?P<src>\S*)\s.*\].*")
    view = View([_peer("Mesh_10_0_0_2", "10.0.0.2"), _peer("Mesh_10_0_0_3", "10.0.0.3")],
                ROUTES)
    parsed, previous = [], ""
    for line in ask(view, "show route")[:-1]:
        text = line[5:] if line.startswith("1007") else line[1:]
        m = via.match(text) or hole.match(text)
        assert m is not None, line
        dest = m["dest"] or previous
        previous = dest
        parsed.append((dest, m.groupdict().get("gw"), m["src"], "] *" in text))
    assert parsed == [("172.17.8.0/24", None, "static1", True),
                      ("172.17.9.0/24", "10.0.0.2", "Mesh_10_0_0_2", True),
                      ("172.17.9.0/24", "10.0.0.3", "Mesh_10_0_0_3", False)]


def test_show_route_reflected_path_says_from() -> None:
    route = {"prefix": "172.17.10.0/24", "paths": [
        _path("10.0.0.9 id 2", "10.0.0.5", best=True, origin="incomplete")], "kernel": None}
    view = View([_peer("Node_10_0_0_9", "10.0.0.9")], [route])
    assert ask(view, "show route")[0] == (
        "1007-172.17.10.0/24     via 10.0.0.5 on - [Node_10_0_0_9 23:39:37.640 from 10.0.0.9] "
        "* (100) [?]")


def test_show_route_all_count_and_for() -> None:
    view = View([_peer("Mesh_10_0_0_2", "10.0.0.2"), _peer("Mesh_10_0_0_3", "10.0.0.3")],
                ROUTES)
    lines = ask(view, "show route all")
    assert lines[1] == "1008-\tType: static univ"
    assert lines[2].startswith("1007-172.17.9.0/24 ")
    assert lines[3:9] == ["1008-\tType: BGP univ", "1012-\tBGP.origin: IGP",
                          " \tBGP.as_path: 64513 64514", " \tBGP.next_hop: 10.0.0.2",
                          " \tBGP.local_pref: 100", " \tBGP.community: (64512,10)"]
    assert ask(view, "show route count") == ["0014 3 of 3 routes for 2 networks"]
    only = ask(view, "show route for 172.17.9.77")
    assert only[0].startswith("1007-172.17.9.0/24 ") and len(only) == 3
    assert ask(view, "show route for 172.17.0.0/16") == ["8001 Network not found"]
    assert ask(view, "show route for 10.1.2.3") == ["8001 Network not found"]
    assert ask(View([]), "show route") == ["0000 "]


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize("command, code", [
    ("", "9001 syntax error, unexpected END"),
    ("foo", "9001 syntax error, unexpected CF_SYM_UNDEFINED"),
    ("show", "9001 "),
    ("show interfaces", "9001 "),
    ("show status now", "9001 "),
    ('show protocols "unterminated', "9001 "),
    ("show route for not-an-address", "9001 "),
    ("show route sideways", "9001 "),
    ("configure", "8007 Access denied"),
    ("disable Mesh_10_0_0_2", "8007 Access denied"),
    ("restrict", "0016 Access restricted"),
])
def test_errors_and_refusals(command: str, code: str) -> None:
    lines = ask(View([]), command)
    assert len(lines) == 1 and lines[0].startswith(code)


def test_names() -> None:
    assert birdctl.bird_name("Mesh_10_0_0_2") == "Mesh_10_0_0_2"
    assert birdctl.bird_name("Dynamic_10_0_1_7") == "Node_10_0_1_7"
    assert birdctl.bird_name("Node_fd00__2") == "Node_fd00__2"
    assert birdctl.bird_name("Node_10.0.0.2") == "Node_10_0_0_2"


# --------------------------------------------------------------------------- the server


async def _read_reply(reader: asyncio.StreamReader) -> list[str]:
    lines: list[str] = []
    while True:
        line = (await asyncio.wait_for(reader.readline(), 5)).decode()
        assert line.endswith("\n"), lines
        lines.append(line[:-1])
        if re.match(r"^\d{4} ", line):
            return lines


async def test_server_over_a_unix_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "run" / "bird.ctl")
    view = View([_peer("Mesh_10_0_0_2", "10.0.0.2")], ROUTES, recovering=True)
    server = BirdControlServer(path, view)
    await server.start()
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) & 0o077 == 0  # the owner (root) only
        assert stat.S_IMODE(os.stat(tmp_path / "run").st_mode) == 0o755
        reader, writer = await asyncio.open_unix_connection(path)
        assert await _read_reply(reader) == ["0001 BIRD roost-0.9.1 ready."]
        # Several commands on one connection, as calico-node's status code sends them.
        writer.write(b"show status\nshow protocols\nnonsense\nshow protocols all Mesh_10_0_0_2\n")
        status = await _read_reply(reader)
        assert "0024-Graceful restart recovery in progress" in status
        assert status[-1] == "0013 Daemon is up and running"
        protos = await _read_reply(reader)
        assert calico_peers(protos)[0]["bgp_state"] == "Established"
        assert await _read_reply(reader) == ["9001 syntax error, unexpected CF_SYM_UNDEFINED"]
        detail = await _read_reply(reader)
        assert "     Neighbor address: 10.0.0.2" in detail
        writer.write(b"x" * (birdctl.MAX_COMMAND + 10) + b"\n")
        assert await _read_reply(reader) == ["9000 Command too long"]
        assert await reader.read() == b""  # and the connection is closed
        writer.close()
    finally:
        await server.stop()
    assert not os.path.exists(path)


async def test_server_survives_a_client_leaving_mid_reply(tmp_path: Path) -> None:
    path = str(tmp_path / "bird.ctl")
    routes = [{"prefix": f"10.{i >> 8}.{i & 255}.0/24", "kernel": None,
               "paths": [_path("10.0.0.2", "10.0.0.2", best=True)]} for i in range(20000)]
    server = BirdControlServer(path, View([_peer("Mesh_10_0_0_2", "10.0.0.2")], routes))
    await server.start()
    try:
        for _ in range(3):
            reader, writer = await asyncio.open_unix_connection(path)
            await _read_reply(reader)
            writer.write(b"show route\n")
            await reader.readline()
            writer.close()  # gone before the 20000 lines are read
        reader, writer = await asyncio.open_unix_connection(path)
        await _read_reply(reader)
        writer.write(b"show route count\n")
        assert await _read_reply(reader) == ["0014 20000 of 20000 routes for 20000 networks"]
        writer.write(b"show route\n")
        lines = await _read_reply(reader)
        assert len(lines) == 20001 and lines[-1] == "0000 "
        writer.close()
    finally:
        await server.stop()


async def test_server_refuses_a_live_socket_and_replaces_a_stale_one(tmp_path: Path) -> None:
    path = str(tmp_path / "bird.ctl")
    first = BirdControlServer(path, View([]))
    await first.start()
    try:
        with pytest.raises(OSError, match="in use"):
            await BirdControlServer(path, View([])).start()
    finally:
        await first.stop()
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(path)
    stale.close()  # bound, never listening: connect is refused
    second = BirdControlServer(path, View([]))
    await second.start()
    await second.stop()


async def test_a_formatting_bug_is_an_error_reply_not_a_crash(tmp_path: Path) -> None:
    class Broken(View):
        def show_peers(self) -> list[dict[str, Any]]:
            raise RuntimeError("boom")

    path = str(tmp_path / "bird.ctl")
    server = BirdControlServer(path, Broken([]))
    await server.start()
    try:
        reader, writer = await asyncio.open_unix_connection(path)
        await _read_reply(reader)
        writer.write(b"show protocols\nshow status\n")
        assert await _read_reply(reader) == ["8008 Internal error: RuntimeError"]
        assert (await _read_reply(reader))[-1] == "0013 Daemon is up and running"
        writer.close()
    finally:
        await server.stop()


# --------------------------------------------------------------------------- configuration


_ROUTER = '[router]\nasn = 64512\nid = "10.0.0.1"\n'


def test_config_bird_socket_is_off_by_default_and_validated() -> None:
    from roost import config as cfg

    assert cfg.loads(_ROUTER).control.bird_socket is None
    c = cfg.loads(_ROUTER + '[control]\nbird_socket = "/var/run/calico/bird.ctl"\n')
    assert c.control.bird_socket == "/var/run/calico/bird.ctl"
    assert c.control.socket == cfg.DEFAULT_SOCKET
    with pytest.raises(cfg.ConfigError, match="107 bytes"):
        cfg.loads(_ROUTER + f'[control]\nbird_socket = "/{"x" * 110}"\n')
    with pytest.raises(cfg.ConfigError, match="must differ"):
        cfg.loads(_ROUTER + '[control]\nsocket = "/run/a.ctl"\nbird_socket = "/run/a.ctl"\n')
