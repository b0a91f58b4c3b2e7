"""roost's command line through click's CliRunner: `check`, `show` without a daemon, and
`show` against a control server answering canned results."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from roost import control
from roost.cli import main

GOOD = """\
[router]
asn = 64512
id = "192.168.100.100"
prefixes = ["172.17.8.0/24"]

[[peer]]
address = "192.168.100.101"
asn = 64512
"""


def _run(*args: str) -> Any:
    return CliRunner().invoke(main, list(args))


def test_help_reads_well() -> None:
    result = _run("--help")
    assert result.exit_code == 0
    for word in ("check", "run", "show", "demo", "container block"):
        assert word in result.output


def test_check_ok(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    path.write_text(GOOD)
    result = _run("check", "-c", str(path))
    assert result.exit_code == 0, result.output
    assert result.output.startswith(f"OK {path}: router AS64512 id 192.168.100.100")
    assert "Node_192_168_100_101" in result.output


def test_run_debug_log_leaves_out_pyroute2(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--log-level debug` is roost's debug: pyroute2's (whole netlink messages) stays
    out, even though importing pyroute2 resets its logger's level."""
    import logging

    from roost import daemon

    path = tmp_path / "node.toml"
    path.write_text(GOOD)
    seen: dict[str, bool] = {}

    def fake_main(config: object, *, flush_on_exit: bool, recover: bool = False) -> int:
        core = logging.getLogger("pyroute2.netlink.core")
        seen["roost debug"] = logging.getLogger("roost").isEnabledFor(logging.DEBUG)
        seen["pyroute2 debug"] = core.isEnabledFor(logging.DEBUG)
        seen["pyroute2 warning"] = core.isEnabledFor(logging.WARNING)
        return 0

    root, pyroute2_log = logging.getLogger(), logging.getLogger("pyroute2")
    levels = root.level, pyroute2_log.level
    # basicConfig does nothing under pytest (the root logger has handlers): set its level
    root.setLevel(logging.DEBUG)
    pyroute2_log.setLevel(logging.NOTSET)  # as importing pyroute2 leaves it
    monkeypatch.setattr(daemon, "main", fake_main)
    try:
        result = _run("run", "-c", str(path), "--log-level", "debug")
    finally:
        root.setLevel(levels[0])
        pyroute2_log.setLevel(levels[1])
    assert result.exit_code == 0, result.output
    assert seen == {"roost debug": True, "pyroute2 debug": False, "pyroute2 warning": True}


def test_run_recover_flag_reaches_the_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roost import daemon

    path = tmp_path / "node.toml"
    path.write_text(GOOD)
    seen: list[bool] = []

    def fake_main(config: object, *, flush_on_exit: bool, recover: bool = False) -> int:
        seen.append(recover)
        return 0

    monkeypatch.setattr(daemon, "main", fake_main)
    for args in ((), ("-R",), ("--recover",)):
        result = _run("run", "-c", str(path), *args)
        assert result.exit_code == 0, result.output
    assert seen == [False, True, True]


def test_check_broken_file_names_file_line_key(tmp_path: Path) -> None:
    path = tmp_path / "rr.toml"
    path.write_text(GOOD[: GOOD.rindex("asn")] + "asn = 0\n")
    result = _run("check", "-c", str(path))
    assert result.exit_code == 1
    assert f"{path}:8: peer[0].asn: must be 1..4294967295, got 0" in result.output
    assert "nothing was applied" in result.output
    assert "Traceback" not in result.output


def test_check_missing_file_is_one_line(tmp_path: Path) -> None:
    result = _run("check", "-c", str(tmp_path / "nope.toml"))
    assert result.exit_code == 1
    assert result.output.strip() == f"roost: {tmp_path / 'nope.toml'}: no such file"


def test_check_without_config_option_is_a_usage_error() -> None:
    result = _run("check")
    assert result.exit_code == 2
    assert "Missing option" in result.output


@pytest.mark.parametrize("args", [["peers"], ["routes"], ["route-reasons", "10.0.0.0/8"],
                                  ["status"]])
def test_show_without_daemon_is_a_clean_error(tmp_path: Path, args: list[str]) -> None:
    sock = tmp_path / "none.ctl"
    result = _run("show", *args, "--socket", str(sock))
    assert result.exit_code == 1
    assert result.output.strip() == (
        f"roost: the daemon is not running: no control socket at {sock}"
    )


def test_show_takes_socket_from_config(tmp_path: Path) -> None:
    path = tmp_path / "node.toml"
    sock = tmp_path / "r.ctl"
    path.write_text(GOOD + f'\n[control]\nsocket = "{sock}"\n')
    result = _run("show", "peers", "-c", str(path))
    assert result.exit_code == 1
    assert str(sock) in result.output


# --------------------------------------------------------------------------- with a server


PEERS = [
    {"name": "Mesh_192_168_100_101", "address": "192.168.100.101", "asn": 64512,
     "state": "Established", "since": None, "received": 1, "accepted": 1, "advertised": 1,
     "info": ""},
]
ROUTES = [
    {"prefix": "172.17.9.0/24", "family": "ipv4-unicast", "paths": [
        {"from": "192.168.100.101", "best": True, "multipath": False, "path_id": 0,
         "next_hop": "192.168.100.101", "as_path": "", "local_pref": 100, "med": None,
         "origin": "igp"}],
     "kernel": {"blackhole": False, "nexthops": [
         {"gateway": "192.168.100.101", "dev": "eth0", "onlink": True}]}},
]


async def _handler(cmd: str, req: dict[str, Any]) -> Any:
    if cmd == "show peers":
        return PEERS
    if cmd == "show routes":
        return ROUTES
    if cmd == "show route-reasons":
        raise control.CommandError(f"not a prefix: {req['prefix']!r}")
    raise control.CommandError(f"unknown command {cmd!r}")


@pytest.fixture
def server() -> Iterator[str]:
    # A short directory: Unix socket paths are limited to 107 bytes.
    with tempfile.TemporaryDirectory(prefix="roost-") as tmp:
        path = f"{tmp}/c.ctl"
        loop = asyncio.new_event_loop()
        srv = control.ControlServer(path, _handler)
        loop.run_until_complete(srv.start())
        thread = threading.Thread(target=loop.run_forever, daemon=True)
        thread.start()
        try:
            yield path
        finally:
            asyncio.run_coroutine_threadsafe(srv.stop(), loop).result(5)
            loop.call_soon_threadsafe(loop.stop)
            thread.join(5)
            loop.close()


def test_show_peers_table_and_json(server: str) -> None:
    result = _run("show", "peers", "--socket", server)
    assert result.exit_code == 0, result.output
    header, row = result.output.splitlines()
    assert header.split() == ["Name", "Address", "AS", "State", "Since", "Rcv/Acc/Adv", "Info"]
    assert row.split()[:4] == ["Mesh_192_168_100_101", "192.168.100.101", "64512", "Established"]
    assert header.index("Address") == row.index("192.168.100.101")  # aligned columns
    as_json = _run("show", "peers", "--socket", server, "--json")
    assert json.loads(as_json.output) == PEERS


def test_show_routes(server: str) -> None:
    result = _run("show", "routes", "--socket", server)
    assert result.exit_code == 0, result.output
    assert "* 172.17.9.0/24" in result.output and "192.168.100.101" in result.output
    assert "via 192.168.100.101 dev eth0 onlink" in result.output


def test_daemon_side_error_is_one_line(server: str) -> None:
    result = _run("show", "route-reasons", "bogus", "--socket", server)
    assert result.exit_code == 1
    assert result.output.strip() == "roost: not a prefix: 'bogus'"


def test_control_server_survives_garbage(server: str) -> None:
    import socket

    with socket.socket(socket.AF_UNIX) as s:
        s.connect(server)
        s.sendall(b"not json\n{\"cmd\": 1}\n{\"cmd\": \"show peers\"}\n")
        data = b""
        while data.count(b"\n") < 3:
            data += s.recv(65536)
    answers = [json.loads(line) for line in data.splitlines()]
    assert [a["ok"] for a in answers] == [False, False, True]


def test_second_server_on_a_live_socket_refuses(server: str) -> None:
    async def start_again() -> None:
        await control.ControlServer(server, _handler).start()

    with pytest.raises(OSError, match="already running"):
        asyncio.run(start_again())


def test_a_failed_second_server_leaves_the_live_socket(server: str) -> None:
    # A start that fails shuts down what it opened; the live daemon's socket must stay.
    async def start_and_stop() -> None:
        second = control.ControlServer(server, _handler)
        with pytest.raises(OSError, match="already running"):
            await second.start()
        await second.stop()

    asyncio.run(start_and_stop())
    assert os.path.exists(server)
    assert control.socket_alive(server)
