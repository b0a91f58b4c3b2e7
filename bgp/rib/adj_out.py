"""Adj-RIB-Out (RFC 4271 §3.2) kept per *update group*, and outbound UPDATE encoding.

Peers that would receive identical bytes (same role, export policy object, encoding-
relevant negotiated fields and next-hop treatment) share one `UpdateGroup`. The group keeps
one `AdjRibOut`: for each prefix, the adverts the group's export produced, each tagged with
the peer the path came from. A member's own view is that table minus the adverts whose
source is the member itself (never send a route back to the peer it came from), so no
per-member table exists and memory does not grow with prefixes times peers.

A batch of changes yields one `OutDiff` for the whole group, encoded once and handed (the
same `bytes` objects) to every member, plus a private diff for the few members that were
the source of a changed advert: they get the common diff without those prefixes plus
their own (typically a withdrawal of the path they used to hold, or nothing).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import NamedTuple, Protocol

from bgp.types import Family
from bgp.wire import packing
from bgp.wire.attributes import AttrSet
from bgp.wire.model import Negotiated
from bgp.wire.prefix import Nlri, Prefix


class Advert(NamedTuple):
    """One advertised path: our path id (0 without ADD-PATH), attributes as sent, and the
    key of the peer the path was learned from (None for locally originated)."""

    path_id: int
    attrs: AttrSet
    source: str | None


NO_ADVERTS: tuple[Advert, ...] = ()

# A run of changes: the new adverts and the prefixes that get them (`update_runs`).
Run = tuple[tuple[Advert, ...], Sequence[Prefix]]


class UpdateEncoder(Protocol):
    """The codec entry points the RIB needs (implemented by `bgp.wire.packing`)."""

    def announcements(
        self, family: Family, attrs: AttrSet, nlri: Sequence[Nlri], ctx: Negotiated
    ) -> list[bytes]: ...

    def withdrawals(self, family: Family, nlri: Sequence[Nlri], ctx: Negotiated) -> list[bytes]: ...

    def end_of_rib(self, family: Family, ctx: Negotiated) -> bytes: ...


class PackingEncoder:
    """`UpdateEncoder` over `bgp.wire.packing`."""

    def announcements(
        self, family: Family, attrs: AttrSet, nlri: Sequence[Nlri], ctx: Negotiated
    ) -> list[bytes]:
        return packing.pack_announcements(family, attrs, nlri, ctx)

    def withdrawals(self, family: Family, nlri: Sequence[Nlri], ctx: Negotiated) -> list[bytes]:
        return packing.pack_withdrawals(family, nlri, ctx)

    def end_of_rib(self, family: Family, ctx: Negotiated) -> bytes:
        return packing.end_of_rib(family, ctx)


class OutDiff:
    """Pending outbound changes for one receiver: withdrawals, and announcements grouped
    by attribute set (BIRD's buckets) so each UPDATE carries as many NLRI as fit."""

    __slots__ = ("announce", "withdraw")

    def __init__(self) -> None:
        self.withdraw: list[Nlri] = []
        self.announce: dict[AttrSet, list[Nlri]] = {}

    def __bool__(self) -> bool:
        return bool(self.withdraw or self.announce)

    def add(self, prefix: Prefix, old: tuple[Advert, ...], new: tuple[Advert, ...]) -> None:
        """Record the change of one prefix from `old` to `new` adverts."""
        withdraw, announce = change_ops(prefix, old, new)
        if withdraw:
            self.withdraw.extend(withdraw)
        for attrs, nlri in announce:
            self._announce(attrs, nlri)

    def _announce(self, attrs: AttrSet, nlri: Nlri) -> None:
        bucket = self.announce.get(attrs)
        if bucket is None:
            self.announce[attrs] = [nlri]
        else:
            bucket.append(nlri)

    def without(self, prefixes: set[Prefix]) -> OutDiff:
        """A copy of this diff minus the given prefixes."""
        out = OutDiff()
        out.withdraw = [n for n in self.withdraw if n.prefix not in prefixes]
        for attrs, nlri in self.announce.items():
            kept = [n for n in nlri if n.prefix not in prefixes]
            if kept:
                out.announce[attrs] = kept
        return out

    def merge(self, other: OutDiff) -> None:
        self.withdraw.extend(other.withdraw)
        for attrs, nlri in other.announce.items():
            bucket = self.announce.get(attrs)
            if bucket is None:
                self.announce[attrs] = list(nlri)
            else:
                bucket.extend(nlri)

    def encode(self, family: Family, ctx: Negotiated, encoder: UpdateEncoder) -> list[bytes]:
        """Withdrawals first, then one run of UPDATEs per attribute set."""
        out: list[bytes] = []
        if self.withdraw:
            out.extend(encoder.withdrawals(family, self.withdraw, ctx))
        for attrs, nlri in self.announce.items():
            out.extend(encoder.announcements(family, attrs, nlri, ctx))
        return out


_Ops = tuple[list[Nlri], list[tuple[AttrSet, Nlri]]]


def change_ops(prefix: Prefix, old: tuple[Advert, ...], new: tuple[Advert, ...]) -> _Ops:
    """The withdrawals and announcements that move a receiver from `old` to `new`."""
    withdraw: list[Nlri] = []
    announce: list[tuple[AttrSet, Nlri]] = []
    if len(old) <= 1 and len(new) <= 1:
        if new:
            adv = new[0]
            if old:
                was = old[0]
                if was.path_id == adv.path_id:
                    if was.attrs is not adv.attrs:  # implicit withdraw, RFC 4271 §3.1
                        announce.append((adv.attrs, Nlri(prefix, adv.path_id)))
                    return withdraw, announce
                withdraw.append(Nlri(prefix, was.path_id))
            announce.append((adv.attrs, Nlri(prefix, adv.path_id)))
        elif old:
            withdraw.append(Nlri(prefix, old[0].path_id))
        return withdraw, announce
    # ADD-PATH (RFC 7911): each path id is its own NLRI.
    before = {a.path_id: a.attrs for a in old}
    announce.extend(
        (adv.attrs, Nlri(prefix, adv.path_id))
        for adv in new
        if before.pop(adv.path_id, None) is not adv.attrs
    )
    withdraw.extend(Nlri(prefix, pid) for pid in before)
    return withdraw, announce


def for_member(adverts: tuple[Advert, ...], key: str) -> tuple[Advert, ...]:
    """The adverts a member sees: none of those that came from the member itself."""
    if not adverts:
        return adverts
    if len(adverts) == 1:
        return NO_ADVERTS if adverts[0].source == key else adverts
    return tuple(a for a in adverts if a.source != key)


class AdjRibOut:
    """What one update group has advertised in one family: prefix -> adverts."""

    __slots__ = ("family", "sent")

    def __init__(self, family: Family) -> None:
        self.family = family
        self.sent: dict[Prefix, tuple[Advert, ...]] = {}

    def __len__(self) -> int:
        return len(self.sent)

    def get(self, prefix: Prefix) -> tuple[Advert, ...]:
        return self.sent.get(prefix, NO_ADVERTS)

    def count_for(self, key: str) -> int:
        """Number of prefixes advertised to member `key` (for `show protocols`)."""
        return sum(1 for adv in self.sent.values() if for_member(adv, key))

    def member_counts(self) -> tuple[int, dict[str | None, int]]:
        """`count_for` of every member in one walk: (prefixes advertised, per source the
        prefixes whose adverts all came from it). A member is sent every prefix but those
        it is the only source of (`for_member`), so `count_for(k) == total - sole[k]`."""
        total = 0
        sole: dict[str | None, int] = {}
        for adverts in self.sent.values():
            if not adverts:
                continue
            total += 1
            first = adverts[0].source
            if len(adverts) == 1 or all(a.source == first for a in adverts):
                sole[first] = sole.get(first, 0) + 1
        return total, sole

    def full_table(self, key: str) -> OutDiff:
        """Everything member `key` should hold (session up, route refresh)."""
        diff = OutDiff()
        for prefix, adverts in self.sent.items():
            diff.add(prefix, NO_ADVERTS, for_member(adverts, key))
        return diff

    def update(
        self, changes: Iterable[tuple[Prefix, tuple[Advert, ...]]], members: Iterable[str]
    ) -> tuple[OutDiff, dict[str, OutDiff], dict[str, set[Prefix]]]:
        """Store the new adverts of each changed prefix and compute the diffs.

        Returns (common diff for every member, private diffs of members that were the
        source of an old or new advert, and the prefixes to drop from the common diff
        for those members).
        """
        member_set = set(members)
        if len(member_set) == 1:
            runs = [(new, (prefix,)) for prefix, new in changes]
            return self._update_one(runs, next(iter(member_set))), {}, {}
        sent = self.sent
        common = OutDiff()
        common_withdraw = common.withdraw
        common_announce = common.announce
        private: dict[str, OutDiff] = {}
        excluded: dict[str, set[Prefix]] = {}
        for prefix, new in changes:
            old = sent.get(prefix, NO_ADVERTS)
            if old == new:
                continue
            if new:
                sent[prefix] = new
            else:
                del sent[prefix]
            ops = change_ops(prefix, old, new)
            if ops[0]:
                common_withdraw.extend(ops[0])
            for attrs, nlri in ops[1]:
                bucket = common_announce.get(attrs)
                if bucket is None:
                    common_announce[attrs] = [nlri]
                else:
                    bucket.append(nlri)
            if len(old) <= 1 and len(new) <= 1:
                s1 = old[0].source if old else None
                s2 = new[0].source if new else None
                if s1 is not None and s1 in member_set:
                    _deviate(s1, prefix, old, new, ops, private, excluded)
                if s2 is not None and s2 != s1 and s2 in member_set:
                    _deviate(s2, prefix, old, new, ops, private, excluded)
            else:
                sources = {a.source for a in old}
                sources.update(a.source for a in new)
                for src in sources:
                    if src is not None and src in member_set:
                        _deviate(src, prefix, old, new, ops, private, excluded)
        return common, private, excluded

    def update_runs(
        self, runs: Sequence[Run], members: Collection[str]
    ) -> tuple[OutDiff, dict[str, OutDiff], dict[str, set[Prefix]]]:
        """`update` with the changes given as runs: (new adverts, the prefixes that get
        them), in order. Consecutive prefixes mostly share their adverts (the NLRI of one
        UPDATE), and a group of one member takes a run of prefixes new to the table that
        are all its own routes in one step (`_update_one`)."""
        if len(members) == 1:
            return self._update_one(runs, next(iter(members))), {}, {}
        return self.update([(prefix, new) for new, prefixes in runs for prefix in prefixes],
                           members)

    def _update_one(self, runs: Iterable[Run], member: str) -> OutDiff:
        """`update` for a group of one member, e.g. a single peer that is also the source
        of every route (a node's only peer or reflector): no shared diff to keep apart,
        so a prefix the member sees neither before nor after costs one dict store, and a
        run of such prefixes new to the table one C-level `dict.update`.

        The result equals what `update` gives that member, byte for byte: the common diff
        without the prefixes whose member view differs, then those prefixes' own changes.
        The general path files every change under its attribute set before it leaves the
        member's own prefixes out, and that first filing fixes the order of the UPDATEs;
        so a prefix left out here still reserves its attribute sets' place (`order`).
        """
        sent = self.sent
        common = OutDiff()
        mine = OutDiff()
        order = common.announce  # buckets in the general path's order; empty ones dropped
        view = for_member
        sent_get = sent.get
        # The last `new` found to be the member's own route alone, its attribute set
        # already in `order`: prefixes of one UPDATE share the adverts tuple, so the
        # usual case below is an identity test, not an AttrSet hash per prefix.
        own: tuple[Advert, ...] | None = None
        for new, prefixes in runs:
            if (
                len(prefixes) > 1 and len(new) == 1 and new[0].source == member
                and sent.keys().isdisjoint(prefixes)
            ):
                # New prefixes, all the member's own route: what the loop below does for
                # each of them (store; reserve the attribute set's place), at C speed.
                if new[0].attrs not in order:
                    order[new[0].attrs] = []
                sent.update(dict.fromkeys(prefixes, new))
                continue
            for prefix in prefixes:
                old = sent_get(prefix, NO_ADVERTS)
                if old is new:
                    continue
                if new is own and not old:  # the usual case below, first
                    sent[prefix] = new
                    continue
                if old == new:
                    continue
                if new:
                    sent[prefix] = new
                else:
                    del sent[prefix]
                if (new is own or (len(new) == 1 and new[0].source == member)) and (
                    not old or (len(old) == 1 and old[0].source == member)
                ):
                    # its own route, now and before: the usual case, without calls (the
                    # general path announces `new` to the others: old != new)
                    if new is not own:
                        own = new
                        if new[0].attrs not in order:
                            order[new[0].attrs] = []
                    continue
                ops = change_ops(prefix, old, new)
                mine_old, mine_new = view(old, member), view(new, member)
                if not mine_old and not mine_new:  # e.g. its own route: nothing to send it
                    _reserve(order, ops[1])
                    continue
                if mine_old != old or mine_new != new:  # it is the source of an advert
                    mine_ops = change_ops(prefix, mine_old, mine_new)
                    if mine_ops != ops:
                        _reserve(order, ops[1])
                        mine.withdraw.extend(mine_ops[0])
                        for attrs, nlri in mine_ops[1]:
                            mine._announce(attrs, nlri)
                        continue
                common.withdraw.extend(ops[0])
                for attrs, nlri in ops[1]:
                    common._announce(attrs, nlri)
        if not all(order.values()):
            common.announce = {attrs: nlri for attrs, nlri in order.items() if nlri}
        common.merge(mine)
        return common


def _reserve(order: dict[AttrSet, list[Nlri]], announce: list[tuple[AttrSet, Nlri]]) -> None:
    """Give the attribute sets of `announce` their place in `order` without NLRI."""
    for attrs, _nlri in announce:
        if attrs not in order:
            order[attrs] = []


def _deviate(
    src: str,
    prefix: Prefix,
    old: tuple[Advert, ...],
    new: tuple[Advert, ...],
    ops: _Ops,
    private: dict[str, OutDiff],
    excluded: dict[str, set[Prefix]],
) -> None:
    """Member `src` was the source of an advert of `prefix`: it sees the prefix without
    its own path, and only when that changes what it must be sent does it leave the
    shared bytes for this prefix."""
    mine_old, mine_new = for_member(old, src), for_member(new, src)
    mine_ops: _Ops = (
        change_ops(prefix, mine_old, mine_new) if mine_old or mine_new else ([], [])
    )
    if mine_ops == ops:
        return
    mine = private.get(src)
    if mine is None:
        mine = private[src] = OutDiff()
        excluded[src] = set()
    excluded[src].add(prefix)
    mine.withdraw.extend(mine_ops[0])
    for attrs, nlri in mine_ops[1]:
        mine._announce(attrs, nlri)
