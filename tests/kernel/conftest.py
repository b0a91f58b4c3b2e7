"""Fixtures for kernel tests: each root test gets its own network namespace."""

from __future__ import annotations

import functools
import os
import shutil
import subprocess
import uuid
from collections.abc import Iterator

import pytest


def ip(ns: str, *args: str, check: bool = True) -> str:
    """``ip -n NS ARGS`` and its stdout (an argument with blanks is split into words)."""
    args = tuple(word for arg in args for word in arg.split())
    res = subprocess.run(["ip", "-n", ns, *args], capture_output=True, text=True, check=False)
    if check and res.returncode != 0:
        raise AssertionError(f"ip -n {ns} {' '.join(args)}: {res.stderr.strip()}")
    return res.stdout


def routes(ns: str, *sel: str, family: str = "-4") -> list[str]:
    """``ip route show`` lines, one per route (multipath next hops folded into one line)."""
    out = subprocess.run(
        ["ip", "-o", family, "-n", ns, "route", "show", *sel],
        capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return [" ".join(line.replace("\\", " ").split()) for line in out.splitlines()]


@functools.cache
def netns_usable() -> str | None:
    """None if we can create namespaces, else the reason we cannot."""
    if os.geteuid() != 0:
        return "needs root (network namespaces)"
    if shutil.which("ip") is None:
        return "needs iproute2 (ip)"
    name = f"roost-k-probe-{uuid.uuid4().hex[:6]}"
    res = subprocess.run(["ip", "netns", "add", name], capture_output=True, text=True)
    if res.returncode != 0:
        return f"ip netns unusable: {res.stderr.strip()}"
    subprocess.run(["ip", "netns", "del", name], check=False)
    return None


@functools.cache
def ipip_unavailable() -> str | None:
    """None if this kernel can do IPIP (tunl0), else why not."""
    if (why := netns_usable()) is not None:
        return why
    name = f"roost-k-probe-{uuid.uuid4().hex[:6]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    try:
        show = subprocess.run(["ip", "-n", name, "link", "show", "tunl0"], capture_output=True)
        if show.returncode == 0:
            return None
        add = ["ip", "-n", name, "link", "add", "tunl0", "type", "ipip"]
        res = subprocess.run(add, capture_output=True, text=True)
        if res.returncode == 0:
            return None
        return f"kernel {os.uname().release} has no IPIP (module ipip): {res.stderr.strip()}"
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def _new_ns() -> str:
    name = f"roost-k-{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", name], check=True)
    return name


@pytest.fixture
def netns() -> Iterator[str]:
    """A fresh namespace: eth0 192.168.100.100/24 + fd00::100/64 (veth, peer 'peer0'), lo up."""
    if (why := netns_usable()) is not None:
        pytest.skip(why)
    name = _new_ns()
    try:
        ip(name, "link", "set", "lo", "up")
        ip(name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        ip(name, "addr", "add", "192.168.100.100/24", "dev", "eth0")
        ip(name, "-6", "addr", "add", "fd00::100/64", "dev", "eth0", "nodad")
        ip(name, "link", "set", "eth0", "up")
        ip(name, "link", "set", "peer0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


@pytest.fixture
def netns2(netns: str) -> Iterator[str]:
    """A second namespace shaped like the first."""
    name = _new_ns()
    try:
        ip(name, "link", "set", "lo", "up")
        ip(name, "link", "add", "eth0", "type", "veth", "peer", "name", "peer0")
        ip(name, "addr", "add", "192.168.100.100/24", "dev", "eth0")
        ip(name, "-6", "addr", "add", "fd00::100/64", "dev", "eth0", "nodad")
        ip(name, "link", "set", "eth0", "up")
        ip(name, "link", "set", "peer0", "up")
        yield name
    finally:
        subprocess.run(["ip", "netns", "del", name], check=False)


def ours(ns: str, family: str = "-4", table: str = "main") -> list[str]:
    """Our routes (proto bird) as ``ip route`` prints them, in full."""
    return [line for line in routes(ns, "table", table, family=family) if " proto bird" in line]
