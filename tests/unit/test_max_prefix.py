"""Maximum prefixes per peer: the pure counter (`bgp.limits`), the configuration keys, and
the daemon on loopback against a neighbour that sends too many routes."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest

from bgp.aio.peer import BgpPeer, TransportOptions
from bgp.limits import LimitAction, LimitCrossing, PrefixLimit, PrefixLimiter
from bgp.types import IPV4_UNICAST, IPV6_UNICAST, CeaseSubcode, ErrorCode
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.packing import pack_announcements, pack_withdrawals
from bgp.wire.prefix import Nlri, Prefix
from roost import config as cfg
from roost.daemon import Daemon
from tests.unit.aio._util import Recorder, config, wait_until

# ----------------------------------------------------------------------- bgp.limits


def test_one_crossing_each_way_per_family() -> None:
    lim = PrefixLimiter(PrefixLimit(10, LimitAction.WARN))
    assert lim.check({IPV4_UNICAST: 10}) == []  # at the limit: fine
    assert lim.check({IPV4_UNICAST: 11}) == [LimitCrossing(IPV4_UNICAST, 11, 10, over=True)]
    assert lim.check({IPV4_UNICAST: 50}) == []  # still over: said once
    assert lim.over == {IPV4_UNICAST}
    assert lim.check({IPV4_UNICAST: 10, IPV6_UNICAST: 12}) == [
        LimitCrossing(IPV4_UNICAST, 10, 10, over=False),
        LimitCrossing(IPV6_UNICAST, 12, 10, over=True),
    ]
    assert lim.check({}) == [LimitCrossing(IPV6_UNICAST, 0, 10, over=False)]
    assert lim.check({IPV4_UNICAST: 11}) == [LimitCrossing(IPV4_UNICAST, 11, 10, over=True)]
    lim.reset()
    assert lim.over == frozenset()
    assert lim.check({IPV4_UNICAST: 11})[0].over


def test_notification_data_is_afi_safi_limit() -> None:
    # RFC 4486 §4: AFI (2 octets), SAFI (1 octet), prefix upper bound (4 octets).
    crossing = LimitCrossing(IPV6_UNICAST, 70000, 65536, over=True)
    assert crossing.notification_data() == bytes.fromhex("0002" "01" "00010000")
    assert "over the limit of 65536" in crossing.describe()


def test_limit_values_are_checked() -> None:
    with pytest.raises(ValueError):
        PrefixLimit(0)
    with pytest.raises(ValueError):
        PrefixLimit(5, restart=-1)


# ----------------------------------------------------------------------- configuration

BASE = """\
[router]
asn = 65000
id = "10.0.0.1"

[[peer]]
address = "10.0.0.2"
asn = 65001
"""


def test_config_defaults_and_keys() -> None:
    p = cfg.loads(BASE).peers[0]
    assert p.max_prefixes is None and p.max_prefixes_action == "teardown"
    assert p.max_prefixes_restart == 0
    p = cfg.loads(BASE + "max_prefixes = 500\nmax_prefixes_action = \"warn\"\n"
                  "max_prefixes_restart = 60\n").peers[0]
    assert (p.max_prefixes, p.max_prefixes_action, p.max_prefixes_restart) == (500, "warn", 60)
    mesh = cfg.loads(BASE.split("[[peer]]")[0] + '[mesh]\nnodes = ["10.0.0.1", "10.0.0.7"]\n'
                     "max_prefixes = 7\n")
    assert [p.max_prefixes for p in mesh.peers] == [7]
    dyn = cfg.loads(BASE.split("[[peer]]")[0] + '[reflector]\ncluster_id = "10.0.0.1"\n'
                    '[[reflector.dynamic]]\nrange = "10.9.0.0/24"\nmax_prefixes = 3\n')
    assert dyn.reflector is not None and dyn.reflector.dynamic[0].template.max_prefixes == 3


@pytest.mark.parametrize(("extra", "message"), [
    ("max_prefixes = 0\n", r"peer\[0\]\.max_prefixes: must be 1\.\.4294967295"),
    ('max_prefixes = 5\nmax_prefixes_action = "disable"\n', "max_prefixes_action"),
    ("max_prefixes_restart = 30\n", "has no effect without max_prefixes"),
    ("max_prefixes = 5\nmax_prefixes_restart = -1\n", "max_prefixes_restart"),
])
def test_config_errors(extra: str, message: str) -> None:
    with pytest.raises(cfg.ConfigError, match=message) as info:
        cfg.loads(BASE + extra, "roost.toml")
    assert str(info.value).startswith("roost.toml:")


# ----------------------------------------------------------------------- the daemon


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _daemon_config(port: int, ctl: Path, limit: str) -> str:
    return f"""\
[router]
asn = 65000
id = "10.0.0.1"
listen = ["127.0.0.1"]
port = {port}

[kernel]
enabled = false

[control]
socket = "{ctl}"

[policy.all]
default = "accept"

[[peer]]
address = "127.0.0.2"
asn = 65001
passive = true
import = "all"
export = "all"
graceful_restart = false
{limit}
"""


@asynccontextmanager
async def running(tmp_path: Path, limit: str, *, dynamic: bool = False,
                  ) -> AsyncIterator[tuple[Daemon, BgpPeer, Recorder]]:
    """roost (AS 65000, passive) and a neighbour (AS 65001) on loopback; `dynamic`: the
    neighbour is accepted from a `[[reflector.dynamic]]` range instead of a `[[peer]]`."""
    port = _free_port()
    path = tmp_path / "roost.toml"
    text = _daemon_config(port, tmp_path / "ctl", limit)
    if dynamic:
        text = text.replace(
            '[[peer]]\naddress = "127.0.0.2"\nasn = 65001\npassive = true\n',
            '[reflector]\n\n[[reflector.dynamic]]\nrange = "127.0.0.0/24"\nasn = 65001\n'
            'rr_client = false\n')
    path.write_text(text)
    daemon = Daemon(cfg.load(path), install_signals=False)
    await daemon.start()
    rec = Recorder()
    peer = BgpPeer(config(65001, ipaddress.IPv4Address("10.0.0.2"), 65000),
                   TransportOptions("127.0.0.1", port, local_address="127.0.0.2"), rec)
    try:
        await peer.start()
        yield daemon, peer, rec
    finally:
        await peer.stop(flush_timeout=0.2)
        await daemon.shutdown()


def _routes(n: int, start: int = 0) -> list[Nlri]:
    return [Nlri(Prefix.parse(f"172.20.{i}.0/24")) for i in range(start, start + n)]


def _announce(peer: BgpPeer, nlri: list[Nlri]) -> None:
    ctx = peer.negotiated
    assert ctx is not None
    attrs = AttrSet.make(as_path=AsPath.sequence(65001), next_hop=ipaddress.IPv4Address(
        "127.0.0.2"))
    peer.send(pack_announcements(IPV4_UNICAST, attrs, nlri, ctx))


def _withdraw(peer: BgpPeer, nlri: list[Nlri]) -> None:
    ctx = peer.negotiated
    assert ctx is not None
    peer.send(pack_withdrawals(IPV4_UNICAST, nlri, ctx))


def _row(daemon: Daemon) -> dict[str, Any]:
    (row,) = daemon.show_peers()
    return row


async def test_teardown_sends_cease_1_with_data_and_restarts(tmp_path: Path) -> None:
    async with running(tmp_path, "max_prefixes = 10\nmax_prefixes_restart = 1") as (
            daemon, peer, rec):
        await wait_until(lambda: peer.established, 10, "Established")
        assert _row(daemon)["max_prefixes"]["state"] == "ok"
        _announce(peer, _routes(10))
        await wait_until(lambda: _row(daemon)["accepted"] == 10, 5, "10 routes accepted")
        assert peer.established and _row(daemon)["max_prefixes"]["state"] == "ok"
        _announce(peer, _routes(1, start=10))  # the 11th
        await wait_until(lambda: rec.downs, 5, "the session torn down")
        note = rec.downs[0].notification
        assert note is not None
        assert (note.code, note.subcode) == (ErrorCode.CEASE,
                                             CeaseSubcode.MAXIMUM_PREFIXES_REACHED)
        assert note.data == bytes.fromhex("0001" "01" "0000000a")  # IPv4 unicast, 10
        row = _row(daemon)
        assert row["max_prefixes"]["state"] == "down"
        assert row["info"].startswith("max prefixes: ipv4-unicast: 11 prefixes accepted")
        assert "max prefixes" in row["last_down"]
        assert daemon.speaker.routes() == []  # its routes left with it
        # After max_prefixes_restart (1 s) roost accepts the neighbour again.
        await wait_until(lambda: peer.established, 10, "Established again")
        assert _row(daemon)["max_prefixes"] | {"restart_at": None} == {
            "limit": 10, "action": "teardown", "restart": 1.0, "state": "ok", "over": [],
            "teardowns": 1, "reason": None, "restart_at": None}


async def test_stays_down_until_reload(tmp_path: Path) -> None:
    async with running(tmp_path, "max_prefixes = 3") as (daemon, peer, rec):
        await wait_until(lambda: peer.established, 10, "Established")
        _announce(peer, _routes(4))
        await wait_until(lambda: rec.downs, 5, "the session torn down")
        # The neighbour keeps connecting (connect retry 0.5 s); roost refuses it.
        await asyncio.sleep(2.0)
        assert not peer.established and len(rec.established) == 1
        assert _row(daemon)["max_prefixes"]["state"] == "down"
        result = await daemon.reload()
        assert result["peers_restarted"] == ["127.0.0.2"]
        await wait_until(lambda: peer.established, 10, "Established after the reload")


async def test_warn_logs_once_per_crossing(tmp_path: Path,
                                           caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger="roost")
    async with running(tmp_path, 'max_prefixes = 5\nmax_prefixes_action = "warn"') as (
            daemon, peer, rec):
        await wait_until(lambda: peer.established, 10, "Established")

        def said(word: str) -> int:
            return sum(1 for r in caplog.records if "max prefixes" in r.getMessage()
                       and word in r.getMessage())

        _announce(peer, _routes(6))
        await wait_until(lambda: said("over the limit") == 1, 5, "a warning")
        for i in range(6, 9):  # more while over: no new warning
            _announce(peer, _routes(1, start=i))
        await wait_until(lambda: _row(daemon)["accepted"] == 9, 5, "9 accepted")
        assert said("over the limit") == 1
        assert _row(daemon)["max_prefixes"]["state"] == "over"
        _withdraw(peer, _routes(5))  # back to 4
        await wait_until(lambda: said("back within") == 1, 5, "back within the limit")
        _announce(peer, _routes(2))  # 6 again: warned again
        await wait_until(lambda: said("over the limit") == 2, 5, "a second warning")
        warn = [r for r in caplog.records if "over the limit" in r.getMessage()]
        assert all(r.levelno == logging.WARNING for r in warn)
        assert peer.established and not rec.downs  # warn keeps the session


async def test_dynamic_neighbour_stays_held_down(tmp_path: Path) -> None:
    # A dynamic neighbour that left is normally forgotten; one held down by its limit
    # must not be, or its next connection would come with a fresh limit.
    async with running(tmp_path, "max_prefixes = 3", dynamic=True) as (daemon, peer, rec):
        await wait_until(lambda: peer.established, 10, "Established")
        _announce(peer, _routes(4))
        await wait_until(lambda: rec.downs, 5, "the session torn down")
        await asyncio.sleep(2.0)  # the neighbour keeps connecting (retry 0.5 s)
        assert not peer.established and len(rec.established) == 1
        assert _row(daemon)["max_prefixes"]["state"] == "down"
