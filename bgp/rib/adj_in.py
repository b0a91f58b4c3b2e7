"""Adj-RIB-In (RFC 4271 §3.2): what one peer sent us, before and after import policy.

Both views are kept: the pre-policy view makes soft reconfiguration inbound possible
without asking the peer (`Speaker.reapply_import`), the post-policy table holds the
`Path` objects that are also in the Loc-RIB. Keys are `Nlri(prefix, path_id)`, so
ADD-PATH receive (RFC 7911) keeps several paths per prefix.

Memory: a path accepted by import policy carries its received attributes itself
(`Path.received`), so the pre-policy view of an accepted route costs no entry of its own;
only the rejected paths are kept apart (`rejected_attrs`, with the reason in
`rejected`). Attribute sets are interned, so an entry is a reference, not a copy.
"""

from __future__ import annotations

from collections.abc import Iterator

from bgp.rib.path import DropReason, Path, PeerInfo
from bgp.types import Family
from bgp.wire.attributes import AttrSet
from bgp.wire.prefix import Nlri

Tables = tuple[dict[Nlri, Path], dict[Nlri, AttrSet], dict[Nlri, DropReason]]


class AdjRibIn:
    """One peer's received routes, per family.

    Per family, every received path is in exactly one of `post` (accepted: the path, its
    received attributes in `Path.received`) and `rejected_attrs` (not accepted: the
    received attributes; `rejected` says why, STYLE lesson 7). The three dicts of a
    family are created together (`table`).
    """

    __slots__ = ("peer", "post", "rejected", "rejected_attrs")

    def __init__(self, peer: PeerInfo) -> None:
        self.peer = peer
        self.post: dict[Family, dict[Nlri, Path]] = {}
        self.rejected_attrs: dict[Family, dict[Nlri, AttrSet]] = {}
        self.rejected: dict[Family, dict[Nlri, DropReason]] = {}

    def table(self, family: Family) -> Tables:
        """The (post, rejected_attrs, rejected) dicts of a family, created on first use
        (hot path helper)."""
        post = self.post.get(family)
        if post is None:
            post = self.post[family] = {}
            self.rejected_attrs[family] = {}
            self.rejected[family] = {}
        return post, self.rejected_attrs[family], self.rejected[family]

    def withdraw(self, family: Family, nlri: Nlri) -> Path | None:
        """Forget a path entirely; returns the accepted path that must leave the Loc-RIB."""
        post = self.post.get(family)
        if post is None:
            return None
        path = post.pop(nlri, None)
        if path is None and self.rejected_attrs[family].pop(nlri, None) is not None:
            self.rejected[family].pop(nlri, None)
        return path

    def accepted(self, family: Family) -> Iterator[Path]:
        return iter(self.post.get(family, {}).values())

    def received(self, family: Family) -> Iterator[tuple[Nlri, AttrSet]]:
        """Every received path of a family with its attributes as received (pre-policy):
        the accepted ones, then the rejected ones."""
        for nlri, path in self.post.get(family, {}).items():
            yield nlri, path.received
        yield from self.rejected_attrs.get(family, {}).items()

    def families(self) -> list[Family]:
        return list(self.post)

    def counts(self, family: Family) -> tuple[int, int]:
        """(received, accepted) numbers of paths, for `show protocols`."""
        accepted = len(self.post.get(family, ()))
        return accepted + len(self.rejected_attrs.get(family, ())), accepted

    def clear(self) -> dict[Family, dict[Nlri, Path]]:
        """Drop everything (session down); returns the accepted paths that were held."""
        post = self.post
        self.post, self.rejected_attrs, self.rejected = {}, {}, {}
        return post
