"""Coalescing queue between the route producer and a FIB sink (pure).

Only the latest desired state of each prefix is kept: a prefix that flaps ten times before
the sink gets to it costs one kernel request, or none if it ends where it started.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from itertools import islice

from kernel.routes import KernelRoute, Prefix

Change = tuple[Prefix, KernelRoute | None]


class Coalescer:
    """``put(prefix, route | None)`` then ``drain(n)``; None means withdraw.

    ``installed`` is a live view of what the sink has in the kernel; a change whose final
    state equals it is dropped (a withdraw of a prefix that is not installed, too).
    Changes drain in the order their prefix first became pending.
    """

    __slots__ = ("_installed", "_pending")

    def __init__(self, installed: Mapping[Prefix, KernelRoute] | None = None) -> None:
        self._installed: Mapping[Prefix, KernelRoute] = installed if installed is not None else {}
        self._pending: dict[Prefix, KernelRoute | None] = {}

    def put(self, prefix: Prefix, route: KernelRoute | None) -> None:
        if route is not None and route.prefix != prefix:
            raise ValueError(f"route for {route.prefix} put under {prefix}")
        current = self._installed.get(prefix)
        if current is route or (current is not None and route is not None and current == route):
            # Back to what the kernel has: nothing to do (and forget an earlier change).
            self._pending.pop(prefix, None)
        else:
            self._pending[prefix] = route

    def drain(self, max_items: int | None = None) -> list[Change]:
        """Up to ``max_items`` changes (all if None), each different from the installed state."""
        if max_items is None or max_items >= len(self._pending):
            taken, self._pending = self._pending, {}
            items = list(taken.items())
        else:
            items = list(islice(self._pending.items(), max_items))
            for prefix, _ in items:
                del self._pending[prefix]
        # The installed state may have changed since put() (e.g. adopted at start-up).
        get = self._installed.get
        out: list[Change] = []
        for p, r in items:
            current = get(p)
            if current is None:
                if r is not None:
                    out.append((p, r))
            elif r is None or (current is not r and current != r):
                out.append((p, r))
        return out

    def get(self, prefix: Prefix, default: object = None) -> KernelRoute | object | None:
        return self._pending.get(prefix, default)

    def discard(self, prefix: Prefix) -> None:
        self._pending.pop(prefix, None)

    def __contains__(self, prefix: object) -> bool:
        return prefix in self._pending

    def __len__(self) -> int:
        return len(self._pending)

    def __bool__(self) -> bool:
        return bool(self._pending)

    def __iter__(self) -> Iterator[Prefix]:
        return iter(list(self._pending))
