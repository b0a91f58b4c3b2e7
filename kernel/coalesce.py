"""Coalescing queue between the route producer and a FIB sink (pure).

Only the latest desired state of each prefix is kept: a prefix that flaps ten times before
the sink gets to it costs one kernel request, or none if it ends where it started.

Both the queue and the sink's installed map are keyed by ``prefix_key`` (one ``int`` per
prefix), not by the ``IPv4Network`` itself: its ``__hash__`` and ``__eq__`` are Python code
(~0.2 us and ~0.5 us), and a route passed through update, drain and encode up to six of
them (~0.1 s per 100k routes; docs/benchmarks.md). The public side still speaks prefixes:
``RouteTable`` is a ``MutableMapping[Prefix, KernelRoute]`` that converts at the boundary.
"""

from __future__ import annotations

from collections.abc import (
    ItemsView,
    Iterable,
    Iterator,
    Mapping,
    MutableMapping,
    MutableSet,
    ValuesView,
)
from ipaddress import IPv4Network, IPv6Network
from itertools import chain, islice, repeat

from kernel.routes import KernelRoute, Prefix

Change = tuple[Prefix, KernelRoute | None]
KeyedChange = tuple[int, Prefix, KernelRoute | None]

V6_KEY = 1 << 136  # above any IPv6 address << 8: the families never collide


def prefix_key(prefix: Prefix) -> int:
    """``address << 8 | prefixlen`` (plus ``V6_KEY`` for IPv6): cheap to hash and to encode.

    An IPv4 key below ``V6_KEY`` gives the address as ``key >> 8``, the length as
    ``key & 0xFF``.
    """
    key = int(prefix.network_address) << 8 | prefix.prefixlen
    return key | V6_KEY if isinstance(prefix, IPv6Network) else key


class RouteTable(MutableMapping[Prefix, KernelRoute]):
    """Prefix -> KernelRoute, stored in ``raw`` under ``prefix_key`` (a route knows its prefix).

    Iteration yields the routes' own prefixes. Hot paths use ``raw`` directly.
    """

    __slots__ = ("raw",)

    def __init__(self, items: Iterable[tuple[Prefix, KernelRoute]] = ()) -> None:
        self.raw: dict[int, KernelRoute] = {}
        for prefix, route in items:
            self[prefix] = route

    def __getitem__(self, prefix: Prefix) -> KernelRoute:
        try:
            return self.raw[prefix_key(prefix)]
        except (KeyError, AttributeError, TypeError):
            raise KeyError(prefix) from None

    def __setitem__(self, prefix: Prefix, route: KernelRoute) -> None:
        if route.prefix is not prefix and route.prefix != prefix:
            raise ValueError(f"route for {route.prefix} stored under {prefix}")
        self.raw[prefix_key(prefix)] = route

    def __delitem__(self, prefix: Prefix) -> None:
        try:
            del self.raw[prefix_key(prefix)]
        except (KeyError, AttributeError, TypeError):
            raise KeyError(prefix) from None

    def __iter__(self) -> Iterator[Prefix]:
        return (route.prefix for route in self.raw.values())

    def __len__(self) -> int:
        return len(self.raw)

    def __contains__(self, prefix: object) -> bool:
        try:
            return prefix_key(prefix) in self.raw  # type: ignore[arg-type]
        except (AttributeError, TypeError):
            return False

    def values(self) -> ValuesView[KernelRoute]:
        return self.raw.values()

    def items(self) -> ItemsView[Prefix, KernelRoute]:
        return _RouteItems(self)

    def __repr__(self) -> str:
        return f"RouteTable({dict(self)!r})"


class _RouteItems(ItemsView[Prefix, KernelRoute]):
    _mapping: RouteTable

    def __iter__(self) -> Iterator[tuple[Prefix, KernelRoute]]:
        return ((route.prefix, route) for route in self._mapping.raw.values())


class Coalescer:
    """``put(prefix, route | None)`` then ``drain(n)``; None means withdraw.

    ``installed`` is a live view of what the sink has in the kernel (a ``RouteTable`` for
    speed, or any mapping); a change whose final state equals it is dropped (a withdraw of a
    prefix that is not installed, too). Changes drain in the order their prefix first
    became pending, unless ``interleave`` has reordered them.
    """

    __slots__ = ("_at", "_installed", "_order", "_pending", "_raw")

    def __init__(self, installed: Mapping[Prefix, KernelRoute] | None = None) -> None:
        self._installed: Mapping[Prefix, KernelRoute] = (
            installed if installed is not None else RouteTable()
        )
        self._raw = self._installed.raw if isinstance(self._installed, RouteTable) else None
        # key -> the desired route, or the bare prefix for a withdraw: no tuple per put()
        # (100k of them trigger garbage collections while the producer runs).
        self._pending: dict[int, KernelRoute | Prefix] = {}
        # Set by interleave(): keys to drain first, in this order, from _order[_at]. A key
        # already drained or discarded is skipped; keys put since come after these.
        self._order: list[int] = []
        self._at = 0

    def put(self, prefix: Prefix, route: KernelRoute | None) -> None:
        if route is not None and route.prefix is not prefix and route.prefix != prefix:
            raise ValueError(f"route for {route.prefix} put under {prefix}")
        key = int(prefix.network_address) << 8 | prefix.prefixlen  # prefix_key(), inlined
        if prefix.__class__ is not IPv4Network and isinstance(prefix, IPv6Network):
            key |= V6_KEY
        raw = self._raw
        current = raw.get(key) if raw is not None else self._installed.get(prefix)
        if current is route or (current is not None and route is not None and current == route):
            # Back to what the kernel has: nothing to do (and forget an earlier change).
            self._pending.pop(key, None)
        else:
            self._pending[key] = prefix if route is None else route

    def drain(self, max_items: int | None = None) -> list[Change]:
        """Up to ``max_items`` changes (all if None), each different from the installed state."""
        return [(prefix, route) for _, prefix, route in self.drain_keyed(max_items)]

    def drain_keyed(self, max_items: int | None = None) -> list[KeyedChange]:
        """``drain``, each change with its ``prefix_key``."""
        pending = self._pending
        items: list[tuple[int, KernelRoute | Prefix]] = []
        if self._order:
            items = self._drain_ordered(len(pending) if max_items is None else max_items)
            if max_items is not None:
                max_items -= len(items)
        if max_items is None or max_items >= len(pending):
            items += pending.items()
            self._pending = {}
            self._order, self._at = [], 0
        elif max_items > 0:
            head = list(islice(pending.items(), max_items))
            for key, _ in head:
                del pending[key]
            items += head
        # The installed state may have changed since put() (e.g. adopted at start-up).
        raw = self._raw
        out: list[KeyedChange] = []
        for key, value in items:
            if isinstance(value, KernelRoute):
                current = raw.get(key) if raw is not None else self._installed.get(value.prefix)
                if current is not value and (current is None or current != value):
                    out.append((key, value.prefix, value))
            else:
                current = raw.get(key) if raw is not None else self._installed.get(value)
                if current is not None:
                    out.append((key, value, None))
        return out

    def interleave(self, stride: int) -> None:
        """Reorder a backlog: the changes to routes first, as they are; then the withdrawals,
        every ``stride``-th one first (0, S, 2S, .., 1, S+1, ..).

        For a sink: the kernel removes a large block of neighbouring prefixes much faster
        when the deletes are spread over the block than in address order (docs/benchmarks.md).
        Installs are left in order: visiting the routes out of their allocation order costs
        the encoder cache misses, and the kernel installs as fast in any order.

        Only the order of the keys is recorded (~3 ms per 100k); ``drain`` follows it, so
        the cost of taking the changes out stays with the slices that drain them.
        """
        pending = self._pending
        if stride <= 1 or len(pending) <= stride:
            return
        keys = self._keys()
        values = list(map(pending.__getitem__, keys)) if self._order else list(pending.values())
        if KernelRoute not in set(map(type, values)):  # withdrawals only (the usual backlog)
            self._order = list(chain.from_iterable(keys[k::stride] for k in range(stride)))
        else:
            is_change = [isinstance(value, KernelRoute) for value in values]
            if all(is_change):
                return  # installs: left in order (above)
            changes = [key for key, change in zip(keys, is_change, strict=True) if change]
            withdrawals = [key for key, change in zip(keys, is_change, strict=True) if not change]
            spread = chain.from_iterable(withdrawals[k::stride] for k in range(stride))
            self._order = [*changes, *spread]
        self._at = 0

    def _keys(self) -> list[int]:
        """The pending keys in drain order."""
        pending = self._pending
        if not self._order:
            return list(pending)
        ahead = self._order[self._at :]
        first = [key for key in ahead if key in pending]
        ahead_set = set(ahead)
        return first + [key for key in pending if key not in ahead_set]

    def _drain_ordered(self, limit: int) -> list[tuple[int, KernelRoute | Prefix]]:
        """Up to ``limit`` pending changes in the order interleave() recorded."""
        order, at, pop = self._order, self._at, self._pending.pop
        out: list[tuple[int, KernelRoute | Prefix]] = []
        while len(out) < limit and at < len(order):
            keys = order[at : at + limit - len(out)]
            at += len(keys)
            # pop() in C over the slice; a key gone meanwhile gives None (never a value)
            values: list[KernelRoute | Prefix | None] = list(map(pop, keys, repeat(None)))
            out += [(k, v) for k, v in zip(keys, values, strict=True) if v is not None]
        if at >= len(order):
            self._order, at = [], 0
        self._at = at
        return out

    def get(self, prefix: Prefix, default: object = None) -> KernelRoute | object | None:
        value = self._pending.get(prefix_key(prefix))
        if value is None:
            return default
        return value if isinstance(value, KernelRoute) else None

    def discard(self, prefix: Prefix) -> None:
        self._pending.pop(prefix_key(prefix), None)

    def clear(self) -> None:
        """Forget every pending change (the installed state is left as it is)."""
        self._pending = {}
        self._order, self._at = [], 0

    def __contains__(self, prefix: object) -> bool:
        try:
            return prefix_key(prefix) in self._pending  # type: ignore[arg-type]
        except (AttributeError, TypeError):
            return False

    def __len__(self) -> int:
        return len(self._pending)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def __iter__(self) -> Iterator[Prefix]:
        values = map(self._pending.__getitem__, self._keys())
        return iter([v.prefix if isinstance(v, KernelRoute) else v for v in values])


def settle(queue: Coalescer, adopted: MutableSet[Prefix]) -> int:
    """The end of a hold (restart recovery) or of the start-up grace: withdraw every route
    ``adopted`` from an earlier run that nobody has desired since, and forget them.

    The producer's ``update`` takes each prefix it desires out of ``adopted``, so what is
    left was never desired: it is withdrawn whatever is pending for it. A change queued by
    the sink itself (the watch restoring a route deleted or changed meanwhile, a resync
    after a link went down) would otherwise put back a route nobody wants, and for good:
    the prefix is no longer adopted. The withdraw replaces it; ``drain`` drops it if the
    kernel has no route of ours there any more.

    What else is pending needs nothing here: ``drain`` compares each change with the
    installed route, so a route desired exactly as the kernel has it costs no request (not
    even a replace), a changed one is replaced, and one desired gone is deleted. Returns the
    number of withdrawals queued.
    """
    for prefix in adopted:
        queue.put(prefix, None)
    queued = len(adopted)
    adopted.clear()
    return queued
