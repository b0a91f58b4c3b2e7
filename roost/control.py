"""The control socket: JSON lines over a Unix stream socket.

One request per line, one response line per request, in order; a connection may carry
any number of requests::

    → {"cmd": "show peers"}
    ← {"ok": true, "result": [...]}
    → {"cmd": "show routes", "prefix": "172.17.9.0/24"}
    ← {"ok": false, "error": "not a prefix: ..."}

Commands (see docs/operations.md): `show status`, `show peers`, `show routes`
(optional `prefix`), `show route-reasons` (`prefix`), `reload`, `graceful-restart`,
`refresh` (`peer`, `direction` in|out, optional `family`).

The server side runs in the daemon's event loop and calls one handler coroutine per
request; the client is a small blocking function used by the CLI.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
from collections.abc import Awaitable, Callable
from typing import Any

log = logging.getLogger(__name__)

MAX_LINE = 1 << 20
Handler = Callable[[str, dict[str, Any]], Awaitable[Any]]


class CommandError(Exception):
    """A request the daemon cannot serve; the message goes back to the client."""


class ControlError(Exception):
    """The CLI could not talk to the daemon (not running, permission, bad answer)."""


# --------------------------------------------------------------------------- server


class PrivateSocketServer:
    """A Unix-socket server for the daemon's user only (`start_private_server`). It
    tracks its clients so that `stop()` ends them; a subclass serves one client in
    `serve_client` (a client that goes away mid-reply is not an error)."""

    def __init__(self, path: str, *, limit: int, in_use: str) -> None:
        self.path = path
        self._limit = limit
        self._in_use = in_use
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()
        self._inode: int | None = None  # of the socket file we bound

    async def start(self) -> None:
        self._server = await start_private_server(
            self._client, self.path, limit=self._limit, in_use=self._in_use)
        self._inode = os.stat(self.path).st_ino

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            for task in list(self._clients):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None
        # Remove only our own socket file: a start that failed (e.g. a second `roost run`)
        # must not take the running daemon's socket away.
        inode, self._inode = self._inode, None
        with contextlib.suppress(FileNotFoundError):
            if inode is not None and os.stat(self.path).st_ino == inode:
                os.unlink(self.path)

    async def serve_client(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        raise NotImplementedError

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._clients.add(task)
        try:
            await self.serve_client(reader, writer)
        except (ConnectionError, asyncio.CancelledError):
            pass  # the client went away mid-reply, or the daemon stops
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()


class ControlServer(PrivateSocketServer):
    """Serve `handler(cmd, request)` on a Unix socket at `path`."""

    def __init__(self, path: str, handler: Handler) -> None:
        super().__init__(path, limit=MAX_LINE,
                         in_use=f"control socket {path} is in use: is roost already running?")
        self.handler = handler

    async def serve_client(self, reader: asyncio.StreamReader,
                           writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                line = await reader.readline()
            except (ValueError, asyncio.LimitOverrunError):
                await _write(writer, {"ok": False, "error": "request line too long"})
                return
            if not line:
                return
            if not line.strip():
                continue
            await _write(writer, await self._answer(line))

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            return {"ok": False, "error": f"not JSON: {exc}"}
        if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
            return {"ok": False, "error": 'a request is an object with a string "cmd"'}
        try:
            result = await self.handler(request["cmd"], request)
        except CommandError as exc:
            return {"ok": False, "error": str(exc)}
        except Exception as exc:  # a bug in a handler must not take the daemon down
            log.exception("control command %r failed", request["cmd"])
            return {"ok": False, "error": f"internal error: {type(exc).__name__}: {exc}"}
        return {"ok": True, "result": result}


#: Mode of a control socket: the daemon's user (root) only. Connecting to a Unix socket
#: needs write permission on it, so nobody else can send a command (reload, stop).
SOCKET_MODE = 0o600
#: Mode of a directory created for a socket: others may look, not create or remove.
SOCKET_DIR_MODE = 0o755


async def start_private_server(
    callback: Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]],
    path: str,
    *,
    limit: int,
    in_use: str,
) -> asyncio.AbstractServer:
    """Listen on the Unix socket `path` usable by the daemon's user only: mode 0600 (bound
    under umask 077, so it is never more open, then set exactly), in its directory
    (created 0755 when missing). A socket file left by a killed daemon is replaced; one
    that answers is not (OSError `in_use`)."""
    directory = os.path.dirname(path)
    if directory and not os.path.isdir(directory):
        os.makedirs(directory, mode=SOCKET_DIR_MODE, exist_ok=True)
        os.chmod(directory, SOCKET_DIR_MODE)  # makedirs' mode passes through the umask
    if os.path.lexists(path):
        if _socket_alive(path):
            raise OSError(in_use)
        os.unlink(path)  # stale, left by a daemon that was killed
    old = os.umask(0o077)
    try:
        server = await asyncio.start_unix_server(callback, path=path, limit=limit)
    finally:
        os.umask(old)
    os.chmod(path, SOCKET_MODE)
    return server


async def _write(writer: asyncio.StreamWriter, message: dict[str, Any]) -> None:
    writer.write(json.dumps(message, separators=(",", ":")).encode() + b"\n")
    await writer.drain()


def socket_alive(path: str) -> bool:
    """A daemon answers connections on `path`."""
    return _socket_alive(path)


def _socket_alive(path: str) -> bool:
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
        s.settimeout(1.0)
        try:
            s.connect(path)
        except OSError:
            return False
        return True


# --------------------------------------------------------------------------- client


def request(path: str, cmd: str, timeout: float = 10.0, **args: Any) -> Any:
    """Send one command and return its result; raises ControlError with a one-line,
    user-facing message for every failure."""
    message = {"cmd": cmd, **args}
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(timeout)
            s.connect(path)
            s.sendall(json.dumps(message).encode() + b"\n")
            buf = b""
            while not buf.endswith(b"\n"):
                chunk = s.recv(65536)
                if not chunk:
                    break
                buf += chunk
    except FileNotFoundError:
        raise ControlError(
            f"the daemon is not running: no control socket at {path}"
        ) from None
    except ConnectionRefusedError:
        raise ControlError(
            f"the daemon is not running: nothing listens on {path} (a stale socket)"
        ) from None
    except PermissionError:
        raise ControlError(f"permission denied on {path} (run as root?)") from None
    except TimeoutError:
        raise ControlError(f"no answer from the daemon on {path} within {timeout:g} s") from None
    except OSError as exc:
        raise ControlError(f"cannot talk to the daemon on {path}: {exc.strerror or exc}") from None
    if not buf:
        raise ControlError(f"the daemon closed the control connection on {path} without answering")
    try:
        answer = json.loads(buf)
    except json.JSONDecodeError:
        raise ControlError(f"the daemon sent an answer that is not JSON on {path}") from None
    if not isinstance(answer, dict) or "ok" not in answer:
        raise ControlError(f"the daemon sent an unexpected answer on {path}")
    if not answer["ok"]:
        raise ControlError(str(answer.get("error", "unknown error")))
    return answer.get("result")
