"""Adj-RIB-In (RFC 4271 §3.2): what one peer sent us, before and after import policy.

Both views are kept: the pre-policy table makes soft reconfiguration inbound possible
without asking the peer (`Speaker.reapply_import`), the post-policy table holds the
`Path` objects that are also in the Loc-RIB. Values are references to interned
`AttrSet`s, so the cost per prefix is a dict entry, not a copy of the attributes. Keys are
`Nlri(prefix, path_id)`, so ADD-PATH receive (RFC 7911) keeps several paths per prefix.
"""

from __future__ import annotations

from collections.abc import Iterator

from bgp.rib.path import DropReason, Path, PeerInfo
from bgp.types import Family
from bgp.wire.attributes import AttrSet
from bgp.wire.prefix import Nlri


class AdjRibIn:
    """One peer's received routes, per family."""

    __slots__ = ("peer", "post", "pre", "rejected")

    def __init__(self, peer: PeerInfo) -> None:
        self.peer = peer
        self.pre: dict[Family, dict[Nlri, AttrSet]] = {}
        self.post: dict[Family, dict[Nlri, Path]] = {}
        # Paths in `pre` that are not in `post`, and why (STYLE lesson 7).
        self.rejected: dict[Family, dict[Nlri, DropReason]] = {}

    def table(self, family: Family) -> tuple[dict[Nlri, AttrSet], dict[Nlri, Path]]:
        """The (pre, post) dicts of a family, created on first use (hot path helper)."""
        pre = self.pre.get(family)
        if pre is None:
            pre = self.pre[family] = {}
            self.post[family] = {}
            self.rejected[family] = {}
        return pre, self.post[family]

    def rejected_table(self, family: Family) -> dict[Nlri, DropReason]:
        self.table(family)
        return self.rejected[family]

    def withdraw(self, family: Family, nlri: Nlri) -> Path | None:
        """Forget a path entirely; returns the accepted path that must leave the Loc-RIB."""
        pre = self.pre.get(family)
        if pre is None:
            return None
        if pre.pop(nlri, None) is None:
            return None
        self.rejected[family].pop(nlri, None)
        return self.post[family].pop(nlri, None)

    def accepted(self, family: Family) -> Iterator[Path]:
        return iter(self.post.get(family, {}).values())

    def received(self, family: Family) -> Iterator[tuple[Nlri, AttrSet]]:
        return iter(self.pre.get(family, {}).items())

    def families(self) -> list[Family]:
        return list(self.pre)

    def counts(self, family: Family) -> tuple[int, int]:
        """(received, accepted) numbers of paths, for `show protocols`."""
        return len(self.pre.get(family, ())), len(self.post.get(family, ()))

    def clear(self) -> dict[Family, dict[Nlri, Path]]:
        """Drop everything (session down); returns the accepted paths that were held."""
        post = self.post
        self.pre, self.post, self.rejected = {}, {}, {}
        return post
