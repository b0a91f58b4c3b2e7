"""The FIB sink: installs kernel routes for prefixes and next hops. Knows nothing of BGP."""

from __future__ import annotations

from kernel.coalesce import Coalescer
from kernel.netlink import KernelRouteError, NetlinkSink, TunnelUnavailableError, describe_error
from kernel.routes import (
    TUNNEL_DEVICE,
    KernelRoute,
    NextHop,
    Prefix,
    TunnelMode,
    TunnelPolicy,
    blackhole,
)
from kernel.sink import DryRunSink, FibSink, MemorySink, ip_route_command

__all__ = [
    "TUNNEL_DEVICE",
    "Coalescer",
    "DryRunSink",
    "FibSink",
    "KernelRoute",
    "KernelRouteError",
    "MemorySink",
    "NetlinkSink",
    "NextHop",
    "Prefix",
    "TunnelMode",
    "TunnelPolicy",
    "TunnelUnavailableError",
    "blackhole",
    "describe_error",
    "ip_route_command",
]
