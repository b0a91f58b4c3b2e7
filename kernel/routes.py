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

The hand-off from a routing protocol costs well under a microsecond per prefix when many
prefixes share a few next hops (docs/benchmarks.md): ``TunnelPolicy.route`` decides once per
next hop set and pool, ``network`` builds the destination from integers without parsing, and
a route whose next hops were validated once is not validated again.
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

_V4_MASKS = tuple(IPv4Network((0, length)).netmask for length in range(33))
_V6_MASKS = tuple(IPv6Network((0, length)).netmask for length in range(129))
_V4_HOST_BITS = tuple((1 << (32 - length)) - 1 for length in range(33))
_V6_HOST_BITS = tuple((1 << (128 - length)) - 1 for length in range(129))
_new = object.__new__


def _v4_network(addr: int, length: int) -> IPv4Network:
    """``IPv4Network((addr, length))`` for a valid pair, without its parsing (~0.15 us
    instead of ~0.9 us): the attributes its ``__init__`` sets, set directly. Checked
    against the constructor at import (``_fast_networks_agree``); else not used."""
    address = _new(IPv4Address)
    address._ip = addr  # type: ignore[attr-defined]
    net = _new(IPv4Network)
    net.network_address = address
    net.netmask = _V4_MASKS[length]
    net._prefixlen = length  # type: ignore[attr-defined]
    if length >= 31:  # as IPv4Network.__init__ does (RFC 3021 /31s, a /32's one host)
        net.__dict__["hosts"] = net.__iter__ if length == 31 else lambda: [address]
    return net


def _v6_network(addr: int, length: int) -> IPv6Network:
    """``IPv6Network((addr, length))`` for a valid pair, like ``_v4_network``."""
    address = _new(IPv6Address)
    address._ip = addr  # type: ignore[attr-defined]
    address._scope_id = None  # type: ignore[attr-defined]
    net = _new(IPv6Network)
    net.network_address = address
    net.netmask = _V6_MASKS[length]
    net._prefixlen = length  # type: ignore[attr-defined]
    if length >= 127:
        net.__dict__["hosts"] = net.__iter__ if length == 127 else lambda: [address]
    return net


def _fast_networks_agree() -> bool:
    """The direct construction gives what the constructor gives on this Python."""
    samples = ((4, 0x0A000000, 8), (4, 0xC0A80100, 24), (4, 0xC0A80102, 31),
               (4, 0xC0A80101, 32), (4, 0, 0), (6, 0xFD00 << 112, 48), (6, 1, 128),
               (6, 2, 127))  # fmt: skip
    try:
        for version, addr, length in samples:
            fast = (_v4_network if version == 4 else _v6_network)(addr, length)
            real = (IPv4Network if version == 4 else IPv6Network)((addr, length))
            if (
                fast != real
                or hash(fast) != hash(real)
                or str(fast) != str(real)
                or fast.__dict__.keys() != real.__dict__.keys()
                or (length >= fast.max_prefixlen - 1 and list(fast.hosts()) != list(real.hosts()))
                or fast.broadcast_address != real.broadcast_address
                or fast.network_address.__reduce__() != real.network_address.__reduce__()
            ):
                return False
    except Exception:
        return False
    return True


_FAST_NETWORKS = _fast_networks_agree()


def network(version: int, addr: int, length: int) -> Prefix:
    """The prefix ``addr/length`` of IP ``version`` (4 or 6), from integers: what a
    routing protocol holds. Host bits set, a bad length or version raise ValueError."""
    if version == 4:
        if not 0 <= length <= 32 or addr >> 32 or addr & _V4_HOST_BITS[length]:
            raise ValueError(f"not an IPv4 prefix: {addr:#x}/{length}")
        return _v4_network(addr, length) if _FAST_NETWORKS else IPv4Network((addr, length))
    if version == 6:
        if not 0 <= length <= 128 or addr >> 128 or addr & _V6_HOST_BITS[length]:
            raise ValueError(f"not an IPv6 prefix: {addr:#x}/{length}")
        return _v6_network(addr, length) if _FAST_NETWORKS else IPv6Network((addr, length))
    raise ValueError(f"IP version {version}: not 4 or 6")


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

    def __eq__(self, other: object) -> bool:
        # The generated __eq__ compares the prefixes first (IPv4Network.__eq__ is Python
        # code); next hops first settles a change of next hop, the usual one, sooner.
        if other.__class__ is not self.__class__:
            return NotImplemented
        return (
            self.nexthops == other.nexthops
            and self.blackhole == other.blackhole
            and self.prefix == other.prefix
        )

    def __hash__(self) -> int:
        return hash((self.prefix, self.nexthops, self.blackhole))

    @property
    def family(self) -> int:
        return self.prefix.version

    @property
    def multipath(self) -> bool:
        return len(self.nexthops) > 1


def _nexthop_key(nh: NextHop) -> tuple[int, str, bool]:
    return (int(nh.gateway), nh.ifname or "", nh.onlink)


# The slots' descriptors: they set a field of a frozen instance without __setattr__.
_set_prefix = KernelRoute.__dict__["prefix"].__set__
_set_nexthops = KernelRoute.__dict__["nexthops"].__set__
_set_blackhole = KernelRoute.__dict__["blackhole"].__set__


def _validated_route(prefix: Prefix, nexthops: tuple[NextHop, ...]) -> KernelRoute:
    """``KernelRoute(prefix, nexthops)`` for next hops that were already made canonical
    and checked against a prefix of the same family by ``KernelRoute`` (~0.15 us instead
    of ~1.2 us): nothing is checked again."""
    route = _new(KernelRoute)
    _set_prefix(route, prefix)
    _set_nexthops(route, nexthops)
    _set_blackhole(route, False)
    return route


# Gateways (one address, or a tuple of several) -> canonical next hops.
_Decisions = dict[object, tuple[NextHop, ...]]
_MAX_DECISIONS = 65536


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

    The decision depends on the next hop and the pool's mode, not on the prefix: ``route``
    makes it once per set of next hops, mode and family, and remembers it. The policy is a
    snapshot of the mappings it was built from (the interfaces' subnets and the pools are
    read at construction): build a new one when they change, or call ``clear_cache`` after
    changing ``kernel_routes`` in place.
    """

    interfaces: Mapping[str, Interface | Iterable[Interface]] = field(default_factory=dict)
    modes: Mapping[Prefix, TunnelMode] = field(default_factory=dict)
    default: TunnelMode = TunnelMode.NEVER
    kernel_routes: Mapping[Prefix, str | NextHop] = field(default_factory=dict)
    tunnel_device: str = TUNNEL_DEVICE
    _subnets: tuple[tuple[Prefix, str], ...] = field(init=False, repr=False, compare=False)
    # IPv4 pools as integers, longest first: (network, netmask, length, decisions of the
    # pool's mode), so that finding a destination's pool parses nothing.
    _pools: tuple[tuple[int, int, int, _Decisions], ...] = field(
        init=False, repr=False, compare=False
    )
    # Next hops decided so far, per mode (IPv4) and for IPv6: gateways -> canonical hops.
    _decided: dict[TunnelMode, _Decisions] = field(init=False, repr=False, compare=False)
    _decided_v6: _Decisions = field(init=False, repr=False, compare=False)
    _decided_default: _Decisions = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        subnets: list[tuple[Prefix, str]] = []
        for ifname, value in self.interfaces.items():
            addrs = [value] if isinstance(value, IPv4Interface | IPv6Interface) else list(value)
            subnets.extend((addr.network, ifname) for addr in addrs)
        # Longest subnet first, so the most specific interface wins.
        subnets.sort(key=lambda s: s[0].prefixlen, reverse=True)
        object.__setattr__(self, "_subnets", tuple(subnets))
        decided: dict[TunnelMode, _Decisions] = {mode: {} for mode in TunnelMode}
        pools = [
            (int(cidr.network_address), int(cidr.netmask), cidr.prefixlen, decided[mode])
            for cidr, mode in self.modes.items()
            if cidr.version == 4
        ]
        # Longest first (stable: of two equal lengths the first given, as mode_for did).
        pools.sort(key=lambda pool: pool[2], reverse=True)
        object.__setattr__(self, "_pools", tuple(pools))
        object.__setattr__(self, "_decided", decided)
        object.__setattr__(self, "_decided_v6", {})
        object.__setattr__(self, "_decided_default", decided[self.default])

    def clear_cache(self) -> None:
        """Forget the decisions made so far (after ``kernel_routes`` changed in place)."""
        for decisions in (*self._decided.values(), self._decided_v6):
            decisions.clear()

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

    def _decisions(self, prefix: Prefix) -> _Decisions:
        """The decisions of ``prefix``'s mode (``mode_for``, on integers), or IPv6's."""
        if prefix.__class__ is not IPv4Network:
            if prefix.version == 4:  # a subclass: the general way
                return self._decided[self.mode_for(prefix)]
            return self._decided_v6
        if self._pools:
            addr, length = int(prefix.network_address), prefix.prefixlen
            for net, mask, plen, decisions in self._pools:
                if length >= plen and addr & mask == net:
                    return decisions
        return self._decided_default

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
        """The kernel route for ``prefix`` via the BGP next hops ``gateways`` (ECMP if many).

        The same as ``KernelRoute(prefix, tuple(self.nexthop(gw, prefix) for gw in
        gateways))``, which runs once per set of gateways, mode and family; then the
        canonical next hops are shared by every route that has them."""
        gws = gateways if gateways.__class__ is tuple else tuple(gateways)
        # IPv4 without pools (the default mode for all) skips the call: ~0.1 us a prefix.
        decisions = (
            self._decided_default
            if prefix.__class__ is IPv4Network and not self._pools
            else self._decisions(prefix)
        )
        key = gws[0] if len(gws) == 1 else gws
        hops = decisions.get(key)
        if hops is not None:
            return _validated_route(prefix, hops)
        route = KernelRoute(prefix, tuple(self.nexthop(gw, prefix) for gw in gws))
        if len(decisions) >= _MAX_DECISIONS:  # (a next hop per node: never, in practice)
            decisions.clear()
        decisions[key] = route.nexthops
        return route

    def _kernel_route(self, gateway: IPAddress) -> str | NextHop | None:
        best: tuple[int, str | NextHop] | None = None
        for net, via in self.kernel_routes.items():
            if gateway in net and (best is None or net.prefixlen > best[0]):
                best = (net.prefixlen, via)
        return best[1] if best else None


def blackhole(prefix: Prefix) -> KernelRoute:
    """``blackhole PREFIX proto bird``: the node's own address block."""
    return KernelRoute(prefix, blackhole=True)
