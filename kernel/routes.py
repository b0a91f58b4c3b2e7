"""Kernel route values and the tunnel policy (pure: no sockets, no asyncio).

The sink knows nothing of BGP. It is given a destination prefix and next hops and installs,
exactly like BIRD's kernel protocol on a Calico node::

    172.17.9.0/24 via 192.168.100.101 dev eth0 proto bird onlink     (next hop on my subnet)
    172.17.9.0/24 via 192.168.200.101 dev tunl0 proto bird onlink    (across a router: IPIP)
    blackhole 172.17.8.0/24 proto bird                                (my own block)

Same-subnet routes are *also* installed ``onlink``. That is deliberate: it is what Calico's
BIRD template produces (the line above), it makes the route independent of the connected
route's presence at install time (no ENETUNREACH race while an address is being added), and
for a next hop inside the interface's own subnet ``onlink`` changes nothing on the wire.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from ipaddress import (
    IPv4Address,
    IPv4Interface,
    IPv4Network,
    IPv6Address,
    IPv6Interface,
    IPv6Network,
)

IPAddress = IPv4Address | IPv6Address
Prefix = IPv4Network | IPv6Network
Interface = IPv4Interface | IPv6Interface

TUNNEL_DEVICE = "tunl0"


@dataclass(frozen=True, slots=True)
class NextHop:
    """One next hop: ``via GATEWAY [dev IFNAME] [onlink]``.

    ``ifname=None`` lets the kernel pick the device from its own routes; then ``onlink``
    must be False (the kernel needs a device to put an on-link gateway on).
    """

    gateway: IPAddress
    ifname: str | None = None
    onlink: bool = True

    def __post_init__(self) -> None:
        if self.ifname is None and self.onlink:
            object.__setattr__(self, "onlink", False)


@dataclass(frozen=True, slots=True)
class KernelRoute:
    """The desired kernel state of one prefix.

    Several next hops make one ECMP (multipath) route. They are kept sorted and without
    duplicates, so two routes with the same set of next hops compare equal whatever order
    they were given in (the sink relies on equality to skip no-op changes).
    """

    prefix: Prefix
    nexthops: tuple[NextHop, ...] = ()
    blackhole: bool = False

    def __post_init__(self) -> None:
        if self.blackhole:
            if self.nexthops:
                raise ValueError(f"{self.prefix}: a blackhole route has no next hops")
            return
        if not self.nexthops:
            raise ValueError(f"{self.prefix}: a route needs next hops or blackhole=True")
        for nh in self.nexthops:
            if nh.gateway.version != self.prefix.version:
                raise ValueError(f"{self.prefix}: next hop {nh.gateway} is another family")
        canonical = tuple(sorted(set(self.nexthops), key=_nexthop_key))
        if canonical != self.nexthops:
            object.__setattr__(self, "nexthops", canonical)

    @property
    def family(self) -> int:
        return self.prefix.version

    @property
    def multipath(self) -> bool:
        return len(self.nexthops) > 1


def _nexthop_key(nh: NextHop) -> tuple[int, str, bool]:
    return (int(nh.gateway), nh.ifname or "", nh.onlink)


class TunnelMode(enum.Enum):
    """Calico's ``ipipMode`` per IP pool."""

    NEVER = "never"
    ALWAYS = "always"
    CROSS_SUBNET = "cross-subnet"


@dataclass(frozen=True)
class TunnelPolicy:
    """Decides the device for a BGP next hop, the way Calico's BIRD template does.

    * ``interfaces``: the node's own addresses, ``{"eth0": IPv4Interface("192.168.100.100/24")}``
      (a value may also be several addresses of one interface).
    * ``modes``: the tunnel mode per destination CIDR (Calico IP pool); the longest CIDR that
      contains the destination prefix wins, else ``default``.
    * ``kernel_routes``: the node's non-BGP routes, used only in ``never`` mode when the next
      hop is on no local subnet: a device name (``dev X``) or a NextHop (``via R dev X``; then the
      route is resolved recursively to go via R, like BIRD's ``gateway recursive``).

    Decisions for a next hop ``gw`` and a destination ``prefix``:

    * ``always``: ``via gw dev tunl0 onlink``;
    * ``cross-subnet``: tunl0 only when the *next hop* (not the peer the route came from) is
      outside every local subnet, else as ``never``;
    * ``never``: the interface whose subnet contains ``gw`` (onlink, see the module
      docstring), else the interface of the kernel route towards ``gw``;
    * IPv6 destinations never use the tunnel (IPIP carries IPv4 only): they follow ``never``.
    """

    interfaces: Mapping[str, Interface | Iterable[Interface]] = field(default_factory=dict)
    modes: Mapping[Prefix, TunnelMode] = field(default_factory=dict)
    default: TunnelMode = TunnelMode.NEVER
    kernel_routes: Mapping[Prefix, str | NextHop] = field(default_factory=dict)
    tunnel_device: str = TUNNEL_DEVICE
    _subnets: tuple[tuple[Prefix, str], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        subnets: list[tuple[Prefix, str]] = []
        for ifname, value in self.interfaces.items():
            addrs = [value] if isinstance(value, IPv4Interface | IPv6Interface) else list(value)
            subnets.extend((addr.network, ifname) for addr in addrs)
        # Longest subnet first, so the most specific interface wins.
        subnets.sort(key=lambda s: s[0].prefixlen, reverse=True)
        object.__setattr__(self, "_subnets", tuple(subnets))

    def mode_for(self, prefix: Prefix) -> TunnelMode:
        best: tuple[int, TunnelMode] | None = None
        for cidr, mode in self.modes.items():
            if (
                cidr.version == prefix.version
                and prefix.subnet_of(cidr)  # type: ignore[arg-type]
                and (best is None or cidr.prefixlen > best[0])
            ):
                best = (cidr.prefixlen, mode)
        return best[1] if best else self.default

    def local_interface(self, gateway: IPAddress) -> str | None:
        """The interface whose subnet contains ``gateway``, or None."""
        for net, ifname in self._subnets:
            if gateway in net:
                return ifname
        return None

    def nexthop(self, gateway: IPAddress, prefix: Prefix) -> NextHop:
        mode = self.mode_for(prefix) if prefix.version == 4 else TunnelMode.NEVER
        local = self.local_interface(gateway)
        if mode is TunnelMode.ALWAYS or (mode is TunnelMode.CROSS_SUBNET and local is None):
            return NextHop(gateway, self.tunnel_device, onlink=True)
        if local is not None:
            return NextHop(gateway, local, onlink=True)
        via = self._kernel_route(gateway)
        if isinstance(via, NextHop):
            # Recursive: the BGP next hop sits behind a router we reach directly.
            return NextHop(via.gateway, via.ifname, onlink=via.ifname is not None)
        return NextHop(gateway, via, onlink=via is not None)

    def route(self, prefix: Prefix, gateways: Iterable[IPAddress]) -> KernelRoute:
        """The kernel route for ``prefix`` via the BGP next hops ``gateways`` (ECMP if many)."""
        return KernelRoute(prefix, tuple(self.nexthop(gw, prefix) for gw in gateways))

    def _kernel_route(self, gateway: IPAddress) -> str | NextHop | None:
        best: tuple[int, str | NextHop] | None = None
        for net, via in self.kernel_routes.items():
            if gateway in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, via)
        return best[1] if best else None


def blackhole(prefix: Prefix) -> KernelRoute:
    """``blackhole PREFIX proto bird``: the node's own address block."""
    return KernelRoute(prefix, blackhole=True)
