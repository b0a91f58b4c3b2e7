"""Loc-RIB (RFC 4271 §3.2): every usable path per prefix and the selected best.

`LocRib.add_path` / `remove_path` return a `BestChange` whenever the candidate set of a
prefix changed (the speaker needs every change for ADD-PATH peers) and None when nothing
did; `BestChange.best_changed` tells whether the best path or the ECMP set moved.

Memory: most prefixes have one path (a node's feed, a reflector client's routes), so
`LocRib.dests` maps such a prefix to the `Path` itself: the only candidate, reachable, and
so the best (reason ONLY_PATH, ECMP set of one). A `Destination` (candidate list and
`Selection`) is made when a second candidate arrives or the only one is unreachable, and
dropped again when one reachable path is left. That saves three objects per route (~200
octets, and work for the garbage collector). `get()` and iteration still hand out
`Destination`s (built on the fly for a bare `Path`); hot loops read `dests` directly.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import NamedTuple

from bgp.rib.decision import (
    ALWAYS_REACHABLE,
    DEFAULT_LOCAL_PREF,
    BestReason,
    NextHopResolver,
    Selection,
    select,
    select_only,
)
from bgp.rib.path import Path
from bgp.types import Family
from bgp.wire.attributes import AttrSet
from bgp.wire.prefix import Prefix

_new_tuple = tuple.__new__


class Destination:
    """All candidate paths of one prefix and the current selection."""

    __slots__ = ("next_local_id", "paths", "prefix", "selection")

    def __init__(self, prefix: Prefix, first: Path | None = None,
                 selection: Selection | None = None) -> None:
        self.prefix = prefix
        self.paths: list[Path] = [] if first is None else [first]
        self.selection = selection
        self.next_local_id = 1 if first is None else first.local_id + 1

    @property
    def best(self) -> Path | None:
        return None if self.selection is None else self.selection.best


Entry = Destination | Path  # a bare Path: the only candidate, reachable, the best


def only_selection(path: Path) -> Selection:
    """The selection a bare `Path` entry stands for."""
    return _new_tuple(Selection, (path, _ONLY_PATH, (path,), _NO_LOSERS))


_ONLY_PATH = BestReason.ONLY_PATH
_NO_LOSERS: tuple[tuple[Path, BestReason], ...] = ()


class BestChange(NamedTuple):
    """A change of one prefix: old and new best path (None = none) and the new selection."""

    prefix: Prefix
    old: Path | None
    new: Path | None
    selection: Selection | None
    multipath_changed: bool = False

    @property
    def best_changed(self) -> bool:
        return self.old is not self.new or self.multipath_changed


class LocRib:
    """The Loc-RIB of one address family."""

    __slots__ = ("default_local_pref", "dests", "family", "resolver")

    def __init__(
        self,
        family: Family,
        resolver: NextHopResolver = ALWAYS_REACHABLE,
        default_local_pref: int = DEFAULT_LOCAL_PREF,
    ) -> None:
        self.family = family
        self.resolver = resolver
        self.default_local_pref = default_local_pref
        self.dests: dict[Prefix, Entry] = {}

    def __len__(self) -> int:
        return len(self.dests)

    def __iter__(self) -> Iterator[Destination]:
        for entry in self.dests.values():
            yield _view(entry) if isinstance(entry, Path) else entry

    def get(self, prefix: Prefix) -> Destination | None:
        """The prefix's candidates and selection (read side: a copy for a bare `Path`)."""
        entry = self.dests.get(prefix)
        return _view(entry) if isinstance(entry, Path) else entry

    def _inflate(self, path: Path) -> Destination:
        """A bare `Path` entry becomes a `Destination` (a second candidate, reselect)."""
        dest = _view(path)
        self.dests[path.prefix] = dest
        return dest

    def add_path(self, path: Path) -> BestChange | None:
        """Add `path`, replacing the path with the same source and path id (an implicit
        withdraw, RFC 4271 §3.1); it keeps the replaced path's ADD-PATH local id."""
        prefix = path.prefix
        dests = self.dests
        dest = dests.get(prefix)
        if dest is None:
            # The first path of a prefix (all of an initial feed): the only candidate,
            # stored bare when reachable.
            path.local_id = 1
            sel = select_only(path, self.resolver)
            dests[prefix] = Destination(prefix, path, sel) if sel is None else path
            best = None if sel is None else path
            # tuple.__new__ skips the NamedTuple's Python-level __new__ (once per prefix).
            return _new_tuple(BestChange, (prefix, None, best, sel, False))
        if isinstance(dest, Path):
            old = dest
            if old.source is path.source and old.path_id == path.path_id:
                # The only path replaced (implicit withdraw): stays bare if reachable.
                sel = select_only(path, self.resolver)
                if sel is not None:
                    path.local_id = old.local_id
                    dests[prefix] = path
                    if old.attrs is path.attrs and not old.stale:
                        return None  # identical re-announcement, as below
                    # the ECMP set (old,) became (path,): multipath_changed, as _reselect
                    return _new_tuple(BestChange, (prefix, old, path, sel, True))
            dest = self._inflate(old)
        paths = dest.paths
        src, pid = path.source, path.path_id
        for i, old in enumerate(paths):
            if old.source is src and old.path_id == pid:
                path.local_id = old.local_id
                paths[i] = path
                if old.attrs is path.attrs and not old.stale:
                    # Identical re-announcement: same selection, only the object moves.
                    dest.selection = select(paths, self.resolver, self.default_local_pref)
                    return None
                break
        else:
            path.local_id = self._new_local_id(dest)
            paths.append(path)
        return self._reselect(dest)

    def add_paths(self, paths: Iterable[Path], moved: dict[Prefix, bool]) -> None:
        """`add_path` for many paths, each changed prefix recorded in `moved` (True: the
        best path or ECMP set moved; False, unless already True: only the candidates).

        The first path of a prefix (all of an initial feed) is the only candidate: when
        reachable it is stored bare and no `BestChange` is made; the resolver is asked
        once per attribute set, not per prefix (it answers by next hop alone)."""
        dests = self.dests
        resolve = self.resolver.resolve
        last_attrs: AttrSet | None = None
        reachable = False
        for path in paths:
            prefix = path.prefix
            if prefix not in dests:
                attrs = path.attrs
                if attrs is not last_attrs:
                    last_attrs = attrs
                    reachable = resolve(attrs.next_hop) is not None
                if reachable or path.source is None:  # as select_only
                    path.local_id = 1
                    dests[prefix] = path
                    moved[prefix] = True
                    continue
            change = self.add_path(path)
            if change is not None:
                if change.old is not change.new or change.multipath_changed:
                    moved[prefix] = True
                elif prefix not in moved:
                    moved[prefix] = False

    def remove_path(self, path: Path) -> BestChange | None:
        """Remove this exact path object (as held by the Adj-RIB-In)."""
        dest = self.dests.get(path.prefix)
        if dest is None:
            return None
        if isinstance(dest, Path):
            if dest is not path:
                return None
            del self.dests[path.prefix]
            return BestChange(path.prefix, path, None, None)
        paths = dest.paths
        for i, old in enumerate(paths):
            if old is path:
                del paths[i]
                break
        else:
            return None
        if not paths:
            del self.dests[path.prefix]
            old_best = dest.best
            dest.selection = None
            return BestChange(path.prefix, old_best, None, None)
        return self._reselect(dest)

    def reselect(self, prefix: Prefix) -> BestChange | None:
        """Run the decision again (a next hop's reachability or cost changed)."""
        dest = self.dests.get(prefix)
        if dest is None:
            return None
        if isinstance(dest, Path):
            dest = self._inflate(dest)
        change = self._reselect(dest)
        return change if change.best_changed else None

    def _reselect(self, dest: Destination) -> BestChange:
        old = dest.selection
        paths = dest.paths
        sel = select(paths, self.resolver, self.default_local_pref)
        dest.selection = sel
        if sel is not None and len(paths) == 1:
            self.dests[dest.prefix] = paths[0]  # one reachable path left: bare again
        old_best = None if old is None else old.best
        new_best = None if sel is None else sel.best
        mp_changed = (old is not None and sel is not None and old.multipath != sel.multipath)
        return BestChange(dest.prefix, old_best, new_best, sel, mp_changed)

    @staticmethod
    def _new_local_id(dest: Destination) -> int:
        # Stable ids: never reuse an id still held by a path of this prefix.
        used = {p.local_id for p in dest.paths}
        lid = dest.next_local_id
        while lid in used:
            lid += 1
        dest.next_local_id = lid + 1
        return lid


class BestChanges:
    """The prefixes of one Loc-RIB whose best path or ECMP set moved in one batch, each
    with its selection as it is now (None: no usable path left), read lazily.

    `Speaker.on_best_change` gets one per family and batch rather than a call per prefix:
    a consumer that needs no per-prefix work (a daemon without FIB) costs nothing per
    prefix, and a prefix that moved twice in the batch is reported once, as it ended.
    Valid until the Loc-RIB changes again (read it during the call)."""

    __slots__ = ("moved", "rib")

    def __init__(self, rib: LocRib, moved: dict[Prefix, bool]) -> None:
        self.rib = rib
        self.moved = moved  # prefix -> True when its best moved (False: only candidates)

    def prefixes(self) -> list[Prefix]:
        return [prefix for prefix, best_moved in self.moved.items() if best_moved]

    def __iter__(self) -> Iterator[tuple[Prefix, Selection | None]]:
        dests = self.rib.dests
        for prefix, best_moved in self.moved.items():
            if not best_moved:
                continue
            entry = dests.get(prefix)
            if entry is None:
                yield prefix, None
            elif isinstance(entry, Path):
                yield prefix, only_selection(entry)
            else:
                yield prefix, entry.selection


def _view(path: Path) -> Destination:
    """A `Destination` holding a bare `Path` entry: one candidate, ONLY_PATH."""
    return Destination(path.prefix, path, only_selection(path))
