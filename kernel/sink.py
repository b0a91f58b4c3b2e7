"""The FIB sink interface and two sinks that need no kernel.

A sink takes the desired state of prefixes (``update``, non-blocking, coalesced) and makes
the kernel match it (``flush`` waits until it does). It owns only its own routes.

Restart recovery (``roost run -R``, BIRD's ``bird -R``): the routes an earlier run left in
the kernel are adopted at ``start`` and forward traffic meanwhile; ``hold`` keeps every
change queued while the producer rebuilds its state, and ``release`` applies the result in
one pass against what is installed (``kernel.coalesce.settle``): unchanged routes are left
alone, changed ones replaced, and adopted ones nobody desired since removed. When to
release is the producer's decision; the sink knows nothing of why.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Mapping
from types import MappingProxyType
from typing import Protocol, TextIO, runtime_checkable

from kernel.coalesce import Coalescer, RouteTable, settle
from kernel.routes import KernelRoute, Prefix

RT_TABLE_MAIN = 254
RTPROT_BIRD = 12
DEFAULT_METRIC = 1024  # Calico's (and the kernel's IPv6) default


@runtime_checkable
class FibSink(Protocol):
    async def start(self) -> None:
        """Take over the table: adopt/replace/remove our routes left by an earlier run."""

    def update(self, prefix: Prefix, route: KernelRoute | None) -> None:
        """Desire ``route`` for ``prefix`` (None: withdraw). Returns at once."""

    async def flush(self) -> None:
        """Wait until every update so far has been applied (or has failed and been reported)."""

    async def close(self, flush_routes: bool = False) -> None:
        """Stop; keep our routes in the kernel (BIRD's ``persist``) unless ``flush_routes``
        (then remove every route of ours, and nothing else). Changes still held are dropped
        (without ``flush_routes`` the kernel keeps what it has for the next run)."""

    def installed(self) -> Mapping[Prefix, KernelRoute]:
        """What this sink has in the kernel now."""

    def hold(self) -> None:
        """Queue every change from now on without applying it, until ``release``."""

    async def release(self) -> None:
        """Stop holding and make the kernel match in one pass: changed routes replaced,
        routes adopted at start that nobody desired since removed, the rest untouched."""


class MemorySink:
    """A FibSink in memory, for tests of other components.

    Changes are coalesced like the real sink's and applied at ``flush()``; ``operations``
    records what a kernel would have been asked to do. ``adopt``: routes an earlier run
    left "in the kernel", adopted at start like the netlink sink's and removed at
    ``release`` unless desired since.
    """

    def __init__(self, adopt: Iterable[KernelRoute] = ()) -> None:
        self._installed = RouteTable((route.prefix, route) for route in adopt)
        self._queue = Coalescer(self._installed)
        self._adopted: set[Prefix] = set(self._installed)  # not desired since start
        self.operations: list[tuple[str, Prefix]] = []
        self.started = False
        self.closed = False
        self.held = False

    async def start(self) -> None:
        self.started = True

    def update(self, prefix: Prefix, route: KernelRoute | None) -> None:
        if self._adopted:  # (discard hashes the prefix: skip when empty, as NetlinkSink does)
            self._adopted.discard(prefix)
        self._queue.put(prefix, route)

    def hold(self) -> None:
        self.held = True

    async def release(self) -> None:
        self.held = False
        settle(self._queue, self._adopted)
        await self.flush()

    async def flush(self) -> None:
        if self.held:
            return
        for prefix, route in self._queue.drain():
            if route is None:
                self.operations.append(("delete", prefix))
                self._installed.pop(prefix, None)
            else:
                self.operations.append(("replace", prefix))
                self._installed[prefix] = route

    async def close(self, flush_routes: bool = False) -> None:
        await self.flush()
        if flush_routes:
            # Remove what is installed and nothing else: held changes are dropped.
            self.held = False
            self._queue.clear()
            for prefix in list(self._installed):
                self.update(prefix, None)
            await self.flush()
        self.closed = True

    def installed(self) -> Mapping[Prefix, KernelRoute]:
        return MappingProxyType(self._installed)


def table_name(table: int) -> str:
    return "main" if table == RT_TABLE_MAIN else str(table)


def ip_route_command(
    op: str,
    route: KernelRoute,
    *,
    metric: int = DEFAULT_METRIC,
    table: int = RT_TABLE_MAIN,
) -> str:
    """The ``ip route`` command equivalent to one sink request (``replace`` or ``del``)."""
    family = "-6 " if route.prefix.version == 6 else ""
    tail = f"proto bird metric {metric} table {table_name(table)}"
    if route.blackhole:
        return f"ip {family}route {op} blackhole {route.prefix} {tail}"
    if op == "del":
        return f"ip {family}route del {route.prefix} {tail}"
    if len(route.nexthops) == 1:
        nh = route.nexthops[0]
        dev = f" dev {nh.ifname}" if nh.ifname else ""
        onlink = " onlink" if nh.onlink else ""
        return (
            f"ip {family}route replace {route.prefix} via {nh.gateway}{dev} proto bird{onlink}"
            f" metric {metric} table {table_name(table)}"
        )
    hops = "".join(
        f" nexthop via {nh.gateway}"
        + (f" dev {nh.ifname}" if nh.ifname else "")
        + (" onlink" if nh.onlink else "")
        for nh in route.nexthops
    )
    return f"ip {family}route replace {route.prefix} {tail}{hops}"


class DryRunSink(MemorySink):
    """Prints the equivalent ``ip route`` commands instead of touching the kernel."""

    def __init__(
        self,
        stream: TextIO | None = None,
        *,
        metric: int = DEFAULT_METRIC,
        table: int = RT_TABLE_MAIN,
    ) -> None:
        super().__init__()
        self._stream = stream if stream is not None else sys.stdout
        self.metric = metric
        self.table = table

    async def flush(self) -> None:
        if self.held:
            return
        for prefix, route in self._queue.drain():
            if route is None:
                old = self._installed.pop(prefix)
                line = ip_route_command("del", old, metric=self.metric, table=self.table)
            else:
                self._installed[prefix] = route
                line = ip_route_command("replace", route, metric=self.metric, table=self.table)
            self.operations.append(("delete" if route is None else "replace", prefix))
            print(line, file=self._stream)
        self._stream.flush()
