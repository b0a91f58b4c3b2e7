"""A roost daemon on loopback and scripted asyncio peers that speak roost's own codec.

Shared by `bench/fuzz.py` (its real-TCP slice), `bench/soak.py` and their tests. The
daemon is a subprocess (`python -m roost run`) listening on 127.0.0.1 with passive peers
127.0.0.2, 127.0.0.3, ...; a peer connects from its own loopback address. Nothing leaves
the host and no root is needed. Only the process started here is stopped, by PID.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

from bgp.session import SessionConfig
from bgp.types import IPV4_UNICAST, MessageType
from bgp.wire.framing import FrameBuffer, encode_header
from bgp.wire.messages import encode_message
from bgp.wire.model import DEFAULT, Notification

REPO = Path(__file__).resolve().parent.parent
DAEMON_ASN, PEER_ASN = 65001, 65002
DAEMON_ID = IPv4Address("10.0.0.1")
KEEPALIVE = encode_header(MessageType.KEEPALIVE, b"")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def peer_address(i: int) -> str:
    """The loopback address of scripted peer i (0-based): 127.0.0.2, 127.0.0.3, ..."""
    x, y = divmod(i, 250)
    return f"127.0.{x}.{y + 2}"


def wait_until(cond: Callable[[], bool], timeout: float, what: str, step: float = 0.02) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(step)


@dataclass(frozen=True, slots=True)
class PeerSpec:
    hold_time: int = 90
    keepalive_time: int | None = None
    families: tuple[str, ...] = ("ipv4",)


class LoopbackDaemon:
    """`roost run` with `peers` passive eBGP peers on 127.0.0.x, kernel off."""

    def __init__(
        self,
        peers: list[PeerSpec],
        *,
        workdir: Path | None = None,
        log_level: str = "info",
        hold_time: int = 90,
    ) -> None:
        self._tmp = (
            None if workdir is not None else tempfile.TemporaryDirectory(prefix="roost-loopback-")
        )
        self.workdir = workdir if workdir is not None else Path(self._tmp.name)  # type: ignore[union-attr]
        self.port = free_port()
        self.socket = str(self.workdir / "roost.ctl")
        self.log_path = self.workdir / "roost.log"
        self.peers = peers
        self.log_level = log_level
        lines = [
            "[router]",
            f"asn = {DAEMON_ASN}",
            f'id = "{DAEMON_ID}"',
            'listen = "127.0.0.1"',
            f"port = {self.port}",
            "ebgp_requires_policy = false",
            f"hold_time = {hold_time}",
            'next_hop6 = "2001:db8::1"',
            "graceful_restart = false",
            "[control]",
            f'socket = "{self.socket}"',
            "[kernel]",
            "enabled = false",
        ]
        for i, p in enumerate(peers):
            fams = ", ".join(f'"{f}"' for f in p.families)
            lines += [
                "[[peer]]",
                f'address = "{peer_address(i)}"',
                f"asn = {PEER_ASN}",
                "passive = true",
                f"hold_time = {p.hold_time}",
                f"families = [{fams}]",
            ]
            if p.keepalive_time is not None:
                lines.append(f"keepalive_time = {p.keepalive_time}")
        self.config_path = self.workdir / "roost.toml"
        self.config_path.write_text("\n".join(lines) + "\n")
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout: float = 20.0) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    sys.executable,
                    "-m",
                    "roost",
                    "run",
                    "-c",
                    str(self.config_path),
                    "--log-level",
                    self.log_level,
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                env=env,
                cwd=REPO,
            )

        def up() -> bool:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"roost exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                self.request("show status")
                return True
            except Exception:
                return False

        wait_until(up, timeout, "the roost control socket")

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def request(self, cmd: str, **args: Any) -> Any:
        from roost import control

        return control.request(self.socket, cmd, timeout=10, **args)

    def peers_by_address(self) -> dict[str, dict[str, Any]]:
        return {row["address"]: row for row in self.request("show peers")}

    def stop(self, timeout: float = 15.0) -> int:
        if self.proc is None:
            return 0
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        code = int(self.proc.returncode)
        self.proc = None
        return code

    def log_tail(self, n: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return ""

    def log_text(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except OSError:
            return ""

    def cleanup(self) -> None:
        self.stop()
        if self._tmp is not None:
            self._tmp.cleanup()

    def __enter__(self) -> LoopbackDaemon:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.cleanup()


# --------------------------------------------------------------------------- /proc


def proc_stats(pid: int) -> dict[str, int]:
    """Open file descriptors, VmRSS (kB) and threads of a process (Linux /proc)."""
    fds = len(os.listdir(f"/proc/{pid}/fd"))
    rss = threads = 0
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                rss = int(line.split()[1])
            elif line.startswith("Threads:"):
                threads = int(line.split()[1])
    return {"fds": fds, "rss_kb": rss, "threads": threads}


# --------------------------------------------------------------------------- scripted peer


def peer_open(
    hold_time: int = 90, four_octet_as: bool = True, families: tuple[Any, ...] = (IPV4_UNICAST,)
) -> bytes:
    cfg = SessionConfig(
        PEER_ASN,
        IPv4Address("10.0.0.2"),
        DAEMON_ASN,
        hold_time=hold_time,
        extended_message=False,
        four_octet_as=four_octet_as,
        families=families,
    )
    return encode_message(cfg.build_open(), DEFAULT)


class PeerClosed(Exception):
    """The daemon closed the connection."""


class ScriptedPeer:
    """One TCP connection to the daemon from a loopback address, driven by hand."""

    def __init__(self, port: int, source: str) -> None:
        self.port = port
        self.source = source
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.frames = FrameBuffer(max_len=65535)
        self.keepalives_in: list[float] = []  # arrival times (loop clock)

    async def connect(self, timeout: float = 5.0) -> None:
        self.reader, self.writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", self.port, local_addr=(self.source, 0)), timeout
        )

    def send(self, data: bytes) -> None:
        assert self.writer is not None
        self.writer.write(data)

    async def drain(self) -> None:
        assert self.writer is not None
        await self.writer.drain()

    async def next_frame(self, timeout: float) -> tuple[int, bytes]:
        """The next whole message; PeerClosed on EOF, TimeoutError on silence."""
        assert self.reader is not None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            frame = self.frames.next_frame()
            if frame is not None:
                if frame[0] == MessageType.KEEPALIVE:
                    self.keepalives_in.append(loop.time())
                return frame[0], bytes(frame[1])
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError("no message from the daemon")
            try:
                data = await asyncio.wait_for(self.reader.read(65536), left)
            except ConnectionResetError:
                data = b""
            if not data:
                raise PeerClosed()
            self.frames.feed(data)

    async def handshake(self, open_msg: bytes, timeout: float = 5.0) -> None:
        """Send OPEN, expect OPEN then KEEPALIVE, send KEEPALIVE: Established."""
        self.send(open_msg)
        t, body = await self.next_frame(timeout)
        if t != MessageType.OPEN:
            raise PeerClosed(f"expected OPEN, got type {t} {body[:2].hex()}")
        self.send(KEEPALIVE)
        t, body = await self.next_frame(timeout)
        if t != MessageType.KEEPALIVE:
            raise PeerClosed(f"expected KEEPALIVE, got type {t} {body[:2].hex()}")

    async def wait_notification(self, timeout: float) -> Notification | None:
        """The daemon's NOTIFICATION (other messages skipped); None if it closed without."""
        try:
            while True:
                t, body = await self.next_frame(timeout)
                if t == MessageType.NOTIFICATION:
                    return Notification(body[0], body[1], body[2:])
        except PeerClosed:
            return None

    def abort(self) -> None:
        if self.writer is not None:
            transport = self.writer.transport
            transport.abort()
            self.writer = None

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            try:
                await asyncio.wait_for(self.writer.wait_closed(), 2)
            except (TimeoutError, OSError):
                pass
            self.writer = None
