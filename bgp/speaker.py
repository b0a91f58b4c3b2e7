"""The speaker: Adj-RIB-In -> import policy -> Loc-RIB -> export -> Adj-RIB-Out, pure.

    receive_update ─▶ AdjRibIn (pre-policy) ─▶ loop checks, rules.ingress, import policy
        ─▶ AdjRibIn (post-policy) ─▶ LocRib + decision ─▶ per update group:
        rules.may_advertise / egress_attrs ─▶ export policy ─▶ RFC 4271 §5.1 rewrite
        ─▶ AdjRibOut diff ─▶ encoded once per group ─▶ Outbound {peer key: [bytes]}

No clocks, sockets or asyncio: `now` is passed in, the result is the bytes to send. The
iBGP propagation rules are a `PropagationRules` object; `StandardRules` implements plain
RFC 4271 iBGP (full mesh), `reflector.rules.ReflectionRules` RFC 4456 route reflection.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Collection, Iterable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from bgp.errors import LocalUsageError
from bgp.policy import (
    RFC8212_REJECT,
    Policy,
    Rejected,
    effective_policy,
    evaluate,
)
from bgp.rib import graceful
from bgp.rib.adj_in import AdjRibIn
from bgp.rib.adj_out import (
    NO_ADVERTS,
    AdjRibOut,
    Advert,
    OutDiff,
    PackingEncoder,
    Run,
    UpdateEncoder,
    for_member,
)
from bgp.rib.decision import (
    ALWAYS_REACHABLE,
    DEFAULT_LOCAL_PREF,
    BestReason,
    NextHopResolver,
)
from bgp.rib.loc_rib import BestChange, BestChanges, Destination, LocRib
from bgp.rib.path import DropReason, NextHopMode, Path, PeerInfo
from bgp.types import (
    IPV4_UNICAST,
    IPV6_UNICAST,
    Afi,
    AttrFlag,
    Family,
    Origin,
    WellKnownCommunity,
)
from bgp.wire.attributes import AttrSet, IPAddress, format_community
from bgp.wire.model import Negotiated, Update
from bgp.wire.prefix import Nlri, Prefix

Outbound = dict[str, list[bytes]]
# Called once per family and batch with the prefixes whose best path moved, before the
# batch is exported (the FIB hand-off).
BestChangeCallback = Callable[[Family, BestChanges], None]


class PropagationRules(Protocol):
    """Which learned routes go to which peers, and how iBGP-to-iBGP routes are rewritten.

    The route-reflection hook: `reflector.rules.ReflectionRules` implements RFC 4456.
    `may_advertise` must depend only on the *roles* of source and target (iBGP/eBGP,
    rr_client), never on their identity: update groups rely on it.
    """

    def ingress(self, attrs: AttrSet, source: PeerInfo) -> DropReason | None:
        """A reason to treat a received route as withdrawn (loop checks), or None."""
        ...

    def may_advertise(self, source: PeerInfo | None, target: PeerInfo) -> DropReason | None:
        """None if a route learned from `source` (None = local) may go to `target`."""
        ...

    def egress_attrs(self, attrs: AttrSet, source: PeerInfo | None, target: PeerInfo) -> AttrSet:
        """Attributes as they leave towards `target` before export policy."""
        ...


class StandardRules:
    """Plain RFC 4271 iBGP: a full mesh, no reflection."""

    def __init__(self, router_id: ipaddress.IPv4Address) -> None:
        self.router_id = router_id

    def ingress(self, attrs: AttrSet, source: PeerInfo) -> DropReason | None:
        # RFC 4456 §8: "A router that recognizes the ORIGINATOR_ID attribute SHOULD ignore
        # a route received with its BGP Identifier as the ORIGINATOR_ID." (A mesh node
        # behind a reflector gets its own route back this way.)
        if attrs.originator_id is not None and attrs.originator_id == self.router_id:
            return DropReason.ORIGINATOR_LOOP
        return None

    def may_advertise(self, source: PeerInfo | None, target: PeerInfo) -> DropReason | None:
        # RFC 4271 §9.2: "a BGP speaker ... SHALL NOT advertise any routes received from
        # other internal peers" to internal peers (the full mesh delivers them).
        if source is not None and source.is_ibgp and target.is_ibgp:
            return DropReason.IBGP_SPLIT_HORIZON
        return None

    def egress_attrs(self, attrs: AttrSet, source: PeerInfo | None, target: PeerInfo) -> AttrSet:
        return attrs


@dataclass(frozen=True, slots=True)
class SpeakerConfig:
    """Speaker-wide settings. `ipv4_address` / `ipv6_address` are the node's addresses:
    the next hop of originated routes and of next-hop-self (Calico: the node IP)."""

    local_asn: int
    router_id: ipaddress.IPv4Address
    ipv4_address: ipaddress.IPv4Address | None = None
    ipv6_address: ipaddress.IPv6Address | None = None
    families: frozenset[Family] = frozenset({IPV4_UNICAST, IPV6_UNICAST})
    default_local_pref: int = DEFAULT_LOCAL_PREF
    rfc8212: bool = True  # RFC 8212 default-deny on eBGP sessions without policy


@dataclass(frozen=True, slots=True)
class PeerConfigForSpeaker:
    """Static configuration of one neighbour as the speaker needs it.

    `addpath_send` / `addpath_receive` are wishes for the OPEN (Calico: `add paths on`);
    what is used is what the session negotiated. `local_address` is the session's source
    address, used as next-hop-self for its family (else the node address).
    """

    info: PeerInfo
    import_policy: Policy | None = None
    export_policy: Policy | None = None
    addpath_send: bool = True
    addpath_receive: bool = True
    local_address: IPAddress | None = None


def family_of(prefix: Prefix) -> Family:
    return IPV4_UNICAST if prefix.afi == Afi.IPV4 else IPV6_UNICAST


class _Peer:
    __slots__ = (
        "adj_in",
        "config",
        "eor_received",
        "export_policy",
        "groups",
        "import_policy",
        "info",
        "negotiated",
        "up_since",
        "updates_received",
    )

    def __init__(self, config: PeerConfigForSpeaker, rfc8212: bool) -> None:
        self.config = config
        self.info = config.info
        self.import_policy = effective_policy(config.info, config.import_policy, rfc8212=rfc8212)
        self.export_policy = effective_policy(config.info, config.export_policy, rfc8212=rfc8212)
        self.negotiated: Negotiated | None = None
        self.up_since: float | None = None
        self.adj_in = AdjRibIn(config.info)
        self.groups: dict[Family, _Group] = {}
        self.eor_received: set[Family] = set()
        self.updates_received = 0


_GroupKey = tuple[Any, ...]


class _Group:
    """An update group: peers of one family whose export result is byte-identical."""

    __slots__ = ("addpath", "adj_out", "adverts", "cache", "ctx", "family", "key",
                 "llgr", "members", "nh_self", "policy", "target")

    def __init__(
        self,
        key: _GroupKey,
        family: Family,
        target: PeerInfo,
        policy: Policy,
        addpath: bool,
        nh_self: IPAddress | None,
        ctx: Negotiated,
    ) -> None:
        self.key = key
        self.family = family
        self.target = target
        self.policy = policy
        self.addpath = addpath
        self.nh_self = nh_self
        self.ctx = ctx
        # RFC 9494 §4.5: only peers that advertised LLGR get LLGR_STALE routes.
        self.llgr = ctx.peer_long_lived is not None
        self.members: dict[str, Negotiated] = {}
        self.adj_out = AdjRibOut(family)
        # (attrs, source key) -> export result; valid for one batch (prefix-independent
        # export policies only), so 100k routes sharing attributes are exported once.
        self.cache: dict[tuple[AttrSet, str | None], AttrSet | DropReason] = {}
        # The same, as the best-path-only adverts tuple: one shared object for every
        # prefix with these attributes and source (no allocation per prefix).
        self.adverts: dict[tuple[AttrSet, str | None], tuple[Advert, ...]] = {}


_NO_ADVERTISE = int(WellKnownCommunity.NO_ADVERTISE)
_NO_EXPORT = int(WellKnownCommunity.NO_EXPORT)
_NO_EXPORT_SUBCONFED = int(WellKnownCommunity.NO_EXPORT_SUBCONFED)
_LLGR_STALE = int(WellKnownCommunity.LLGR_STALE)


class Speaker:
    """The pure orchestrator of RIBs, decision, policy and propagation."""

    def __init__(
        self,
        config: SpeakerConfig,
        *,
        rules: PropagationRules | None = None,
        resolver: NextHopResolver | None = None,
        on_best_change: BestChangeCallback | None = None,
        encoder: UpdateEncoder | None = None,
    ) -> None:
        self.config = config
        self.rules: PropagationRules = rules or StandardRules(config.router_id)
        self.resolver = resolver or ALWAYS_REACHABLE
        self.on_best_change = on_best_change
        self.encoder: UpdateEncoder = encoder or PackingEncoder()
        self._peers: dict[str, _Peer] = {}
        self._ribs: dict[Family, LocRib] = {
            fam: LocRib(fam, self.resolver, config.default_local_pref)
            for fam in sorted(config.families)
        }
        self._local: dict[Family, dict[Prefix, Path]] = {fam: {} for fam in self._ribs}
        self._groups: dict[_GroupKey, _Group] = {}

    # ------------------------------------------------------------------ peers

    def add_peer(self, peer: PeerConfigForSpeaker) -> None:
        """Configure a neighbour (down until `peer_up`). Re-adding a known key replaces its
        configuration; for a peer that is up the change applies after its next session
        (or call `reapply_import` / `refresh_out` after a down/up)."""
        old = self._peers.get(peer.info.key)
        if old is not None and old.negotiated is not None:
            raise LocalUsageError(f"peer {peer.info.key} is up; take it down to reconfigure")
        self._peers[peer.info.key] = _Peer(peer, self.config.rfc8212)

    def remove_peer(self, key: str, now: float = 0.0) -> Outbound:
        """Deconfigure a neighbour; its routes are withdrawn from everyone else."""
        out = self.peer_down(key, now) if key in self._peers else {}
        if key in self._peers:  # and what graceful restart kept of it
            _merge(out, self.sweep_stale(key))
        self._peers.pop(key, None)
        return out

    def peer_up(self, key: str, negotiated: Negotiated, now: float) -> Outbound:
        """Session Established: the full table for this peer, then End-of-RIB for each
        negotiated family right away (RFC 4724 §2; BIRD peers wait otherwise)."""
        peer = self._peer(key)
        if peer.negotiated is not None:
            raise LocalUsageError(f"peer {key} is already up")
        peer.negotiated = negotiated
        peer.up_since = now
        info = peer.config.info
        if negotiated.peer_router_id != info.router_id and int(negotiated.peer_router_id):
            info = replace(info, router_id=negotiated.peer_router_id)
        out: Outbound = {}
        if graceful.has_stale(peer.adj_in):
            if info == peer.info:
                # RFC 4724 §4.2: the stale paths wait for the new session's routes; the
                # Loc-RIB matches a path's source by identity, so keep the PeerInfo.
                info = peer.info
            else:  # another BGP Identifier: not the same speaker's routes any more
                out = self.sweep_stale(key)
        if not graceful.has_stale(peer.adj_in):
            peer.adj_in = AdjRibIn(info)
        peer.info = info
        peer.eor_received = set()
        peer.updates_received = 0
        msgs: list[bytes] = []
        for fam in sorted(negotiated.families):
            if fam in self._ribs:
                group = self._join_group(peer, fam)
                diff = group.adj_out.full_table(key)
                msgs.extend(diff.encode(fam, negotiated, self.encoder))
            msgs.append(self.encoder.end_of_rib(fam, negotiated))
        out[key] = msgs
        return out

    def peer_down(self, key: str, now: float, retain: Collection[Family] = ()) -> Outbound:
        """Session gone: drop its Adj-RIB-In; withdrawals / new bests to the others.
        Graceful restart: the routes of the families in `retain` are kept, marked stale,
        until `sweep_stale` (see `bgp.graceful.retained_families`)."""
        peer = self._peer(key)
        if peer.negotiated is None:
            return {}
        for group in peer.groups.values():
            del group.members[key]
            if not group.members:
                del self._groups[group.key]
        peer.groups = {}
        peer.negotiated = None
        peer.up_since = None
        touched: dict[Family, dict[Prefix, bool]] = {}
        if retain:
            # RFC 4724 §4.2 helper: `retain`'s routes stay, marked stale (bgp.rib.graceful).
            self._remove_paths(graceful.mark_stale(peer.adj_in, retain), touched)
            return self._propagate(touched)
        for fam, post in peer.adj_in.clear().items():
            rib = self._ribs.get(fam)
            if rib is None:
                continue
            remove = rib.remove_path
            self._note_all(touched, fam, [remove(path) for path in post.values()])
        return self._propagate(touched)

    def sweep_stale(self, key: str, family: Family | None = None) -> Outbound:
        """Graceful restart: remove the peer's routes of `family` (None: all) that are
        still stale (End-of-RIB received, or a timer ran out; RFC 4724 §4.2)."""
        peer = self._peer(key)
        touched: dict[Family, dict[Prefix, bool]] = {}
        self._remove_paths(graceful.sweep_stale(peer.adj_in, family), touched)
        return self._propagate(touched)

    def enter_long_lived(self, key: str, family: Family) -> Outbound:
        """Long-lived graceful restart (RFC 9494 §4.2): the peer's restart time ran out
        and its stale routes of `family` stay, now with the LLGR_STALE community (least
        preferred in the decision, not exported to peers without LLGR); those that carry
        NO_LLGR are removed."""
        peer = self._peer(key)
        touched: dict[Family, dict[Prefix, bool]] = {}
        removed, renewed = graceful.mark_long_lived(peer.adj_in, family)
        self._remove_paths(removed, touched)
        rib = self._ribs.get(family)
        if rib is not None:
            self._note_all(touched, family, [rib.add_path(path) for path in renewed])
        return self._propagate(touched)

    def _remove_paths(self, paths: list[Path], touched: dict[Family, dict[Prefix, bool]]) -> None:
        for path in paths:
            fam = family_of(path.prefix)
            rib = self._ribs.get(fam)
            if rib is not None:
                self._note(touched, fam, rib.remove_path(path))

    # ------------------------------------------------------------------ routes in

    def receive_update(self, key: str, update: Update, now: float) -> Outbound:
        """Apply one UPDATE from an Established peer; returns what to send to the others."""
        return self.receive_updates(key, (update,), now)

    def receive_updates(self, key: str, updates: Iterable[Update], now: float) -> Outbound:
        """Apply several UPDATEs from one peer (e.g. all those of one socket read), in
        order, and propagate once for all of them.

        Each UPDATE is applied to the Adj-RIB-In and Loc-RIB exactly as `receive_update`
        would (withdrawals before announcements, treat-as-withdraw, End-of-RIB noted);
        only the export is deferred to the end of the batch. The Adj-RIB-Out holds what
        was sent and the diff is taken against it, so the others get the net change of
        the batch: a prefix announced and withdrawn again within it costs nothing, and the
        announcements of many small UPDATEs sharing attributes leave packed into as few
        UPDATEs as fit (BIRD's buckets), each prefix exported once.
        """
        peer = self._peer(key)
        if peer.negotiated is None:
            raise LocalUsageError(f"UPDATE for peer {key} that is not up")
        touched: dict[Family, dict[Prefix, bool]] = {}
        for update in updates:
            peer.updates_received += 1
            for fam, nlris in update.withdrawals():
                self._withdraw(peer, fam, nlris, touched)
            for fam, attrs, nlris in update.announced():
                self._ingest(peer, fam, attrs, nlris, now, touched)
            eor = update.end_of_rib()
            if eor is not None:
                peer.eor_received.add(eor)
        return self._propagate(touched)

    def reapply_import(self, key: str, now: float = 0.0) -> Outbound:
        """Soft reset in: run import policy again over the stored pre-policy routes."""
        peer = self._peer(key)
        if peer.negotiated is None:
            return {}
        touched: dict[Family, dict[Prefix, bool]] = {}
        for fam in peer.adj_in.families():
            by_attrs: dict[AttrSet, list[Nlri]] = {}
            stale = {nlri for nlri, path in peer.adj_in.table(fam)[0].items() if path.stale}
            for nlri, attrs in peer.adj_in.received(fam):
                # A stale path (RFC 4724 §4.2, RFC 9494) keeps its verdict until the peer
                # announces it again or the sweep removes it: re-ingesting would make it
                # fresh, and it would outlive the End-of-RIB sweep.
                if nlri not in stale:
                    by_attrs.setdefault(attrs, []).append(nlri)
            for attrs, nlris in by_attrs.items():
                self._ingest(peer, fam, attrs, nlris, now, touched)
        return self._propagate(touched)

    def set_policies(
        self, key: str, import_policy: Policy | None, export_policy: Policy | None,
        now: float = 0.0,
    ) -> Outbound:
        """Change a peer's policies without resetting its session (soft reconfiguration,
        what a reload does when only the policies changed).

        Import: the stored pre-policy Adj-RIB-In is evaluated again, so no ROUTE-REFRESH
        (RFC 2918) is needed. Export: the peer moves to the update group of its new policy
        and is sent only the difference between what it holds and what that group
        advertises (RFC 4271 §9.1.3). A peer that is down just keeps the new policies."""
        peer = self._peer(key)
        old = peer.config
        peer.config = replace(old, import_policy=import_policy, export_policy=export_policy)
        rfc8212 = self.config.rfc8212
        out: Outbound = {}
        if import_policy is not old.import_policy:
            peer.import_policy = effective_policy(peer.info, import_policy, rfc8212=rfc8212)
            _merge(out, self.reapply_import(key, now))
        if export_policy is not old.export_policy:
            peer.export_policy = effective_policy(peer.info, export_policy, rfc8212=rfc8212)
            _merge(out, self._regroup(peer))
        return out

    def _regroup(self, peer: _Peer) -> Outbound:
        """Move an Established peer to the update groups of its current export policy;
        returns the UPDATEs that turn its old view into the new one."""
        ctx = peer.negotiated
        if ctx is None:
            return {}
        key = peer.info.key
        msgs: list[bytes] = []
        for fam, old_group in list(peer.groups.items()):
            before = {p: for_member(a, key) for p, a in old_group.adj_out.sent.items()}
            del old_group.members[key]
            if not old_group.members:
                del self._groups[old_group.key]
            group = self._join_group(peer, fam)
            diff = OutDiff()
            for prefix, adverts in group.adj_out.sent.items():
                now_sent = for_member(adverts, key)
                was = before.pop(prefix, NO_ADVERTS)
                if was != now_sent:
                    diff.add(prefix, was, now_sent)
            for prefix, was in before.items():
                if was:
                    diff.add(prefix, was, NO_ADVERTS)
            msgs.extend(diff.encode(fam, ctx, self.encoder))
        return {key: msgs} if msgs else {}

    def _withdraw(
        self,
        peer: _Peer,
        fam: Family,
        nlris: tuple[Nlri, ...],
        touched: dict[Family, dict[Prefix, bool]],
    ) -> None:
        rib = self._ribs.get(fam)
        if rib is None:
            return
        withdraw, remove = peer.adj_in.withdraw, rib.remove_path
        gone = [path for nlri in nlris if (path := withdraw(fam, nlri)) is not None]
        self._note_all(touched, fam, [remove(path) for path in gone])

    def _ingest(
        self,
        peer: _Peer,
        fam: Family,
        attrs: AttrSet,
        nlris: tuple[Nlri, ...] | list[Nlri],
        now: float,
        touched: dict[Family, dict[Prefix, bool]],
    ) -> None:
        """Apply announcements of one attribute set: `attrs` as received (pre-policy)."""
        rib = self._ribs.get(fam)
        if rib is None:
            return  # a family we do not route: ignore (not negotiated by us)
        info = peer.info
        post, rejected_attrs, rejected = peer.adj_in.table(fam)
        # Per attribute set, not per prefix: the checks that do not look at the prefix.
        work = attrs
        if not info.is_ibgp and work.local_pref is not None:
            # RFC 4271 §5.1.5: LOCAL_PREF from an external peer "MUST be ignored".
            work = work.replace(local_pref=None)
        if not info.is_ibgp and (work.originator_id is not None or work.cluster_list):
            # RFC 7606 §7.9 / §7.10: "If the ORIGINATOR_ID [CLUSTER_LIST] attribute is
            # received from an external neighbor, it SHALL be discarded using the approach
            # of 'attribute discard'." (Else it would trip our RFC 4456 loop checks, count
            # in the decision and go on unchanged to our iBGP peers.)
            work = work.replace(originator_id=None, cluster_list=())
        drop: DropReason | None = None
        # RFC 4271 §9.1.2: a route whose AS_PATH contains our own AS is not used
        # (BIRD `allow local as N` permits N occurrences).
        if work.as_path.count(info.local_asn) > info.allow_local_as:
            drop = DropReason.AS_LOOP
        else:
            drop = self.rules.ingress(work, info)
        policy = peer.import_policy
        fixed: AttrSet | DropReason | None = drop
        if drop is None and policy.prefix_independent:
            fixed = _import_result(evaluate(policy, Prefix(0, 0, 0), work, info), policy)
        changes: list[BestChange | None] = []
        changed = changes.append
        if isinstance(fixed, AttrSet) and not rejected:
            # The usual case, a feed accepted by a prefix-independent policy with nothing
            # rejected so far: the loop below without its per-prefix branches. This runs
            # once per prefix received, so it is kept tight: a prefix new to the Loc-RIB
            # (all of an initial feed) gets its path stored bare right here, as
            # LocRib.add_paths would, without a call or a BestChange; anything else goes
            # to LocRib.add_paths, and so does every path after it (order kept).
            moved = touched.get(fam)
            if moved is None:
                moved = touched[fam] = {}
            # The resolver answers by next hop alone: asked once per attribute set.
            bare = rib.resolver.resolve(fixed.next_hop) is not None
            dests = rib.dests
            later: list[Path] = []
            post_get = post.get
            for nlri in nlris:
                old = post_get(nlri)
                if old is not None and old.attrs is fixed and not old.stale:
                    old.received = attrs  # identical re-announcement
                    continue
                prefix = nlri[0]
                path = post[nlri] = Path(prefix, fixed, info, nlri[1], now, attrs)
                if bare and prefix not in dests:
                    path.local_id = 1  # the only candidate, reachable: the best
                    dests[prefix] = path
                    moved[prefix] = True
                else:
                    bare = False
                    later.append(path)
            if later:
                rib.add_paths(later, moved)
            return
        for nlri in nlris:
            result = fixed
            if result is None:
                result = _import_result(evaluate(policy, nlri.prefix, work, info), policy)
            old = post.get(nlri)
            if isinstance(result, AttrSet):
                if old is not None and old.attrs is result and not old.stale:
                    old.received = attrs  # identical re-announcement
                    continue
                if rejected:
                    rejected.pop(nlri, None)
                    rejected_attrs.pop(nlri, None)
                prefix, path_id = nlri
                path = Path(prefix, result, info, path_id, now, attrs)
                post[nlri] = path
                changed(rib.add_path(path))
            else:
                rejected[nlri] = result
                rejected_attrs[nlri] = attrs
                if old is not None:
                    del post[nlri]
                    changed(rib.remove_path(old))
        self._note_all(touched, fam, changes)

    def _note(
        self, touched: dict[Family, dict[Prefix, bool]], fam: Family, change: BestChange | None
    ) -> None:
        if change is not None:
            self._note_all(touched, fam, (change,))

    def _note_all(
        self,
        touched: dict[Family, dict[Prefix, bool]],
        fam: Family,
        changes: Iterable[BestChange | None],
    ) -> None:
        """Record the changed prefixes of one family (True: the best path or ECMP set
        moved); `_propagate` tells `on_best_change` about them, once per batch."""
        prefixes = touched.get(fam)
        for change in changes:
            if change is None:
                continue
            if prefixes is None:
                prefixes = touched[fam] = {}
            prefix, old, new, _selection, multipath_changed = change
            if old is not new or multipath_changed:  # BestChange.best_changed
                prefixes[prefix] = True
            elif prefix not in prefixes:
                prefixes[prefix] = False

    # ------------------------------------------------------------------ origination

    def originate(
        self, prefix: Prefix, attrs: AttrSet | None = None, now: float = 0.0
    ) -> Outbound:
        """Originate `prefix` (Calico: the host's block): ORIGIN IGP, empty AS_PATH,
        next hop the node's address for the family unless `attrs` gives one."""
        fam = family_of(prefix)
        rib = self._ribs.get(fam)
        if rib is None:
            raise LocalUsageError(f"family {fam} is not configured")
        nh = self._node_address(fam)
        if attrs is None:
            attrs = AttrSet.make(origin=Origin.IGP, next_hop=nh)
        elif attrs.next_hop is None and nh is not None:
            attrs = attrs.replace(next_hop=nh)
        old = self._local[fam].get(prefix)
        if old is not None and old.attrs is attrs:
            return {}
        path = Path(prefix, attrs, None, 0, now)
        self._local[fam][prefix] = path
        touched: dict[Family, dict[Prefix, bool]] = {}
        self._note(touched, fam, rib.add_path(path))
        return self._propagate(touched)

    def withdraw_origin(self, prefix: Prefix) -> Outbound:
        fam = family_of(prefix)
        path = self._local.get(fam, {}).pop(prefix, None)
        if path is None:
            return {}
        touched: dict[Family, dict[Prefix, bool]] = {}
        self._note(touched, fam, self._ribs[fam].remove_path(path))
        return self._propagate(touched)

    def reselect(self, family: Family | None = None) -> Outbound:
        """Run the decision again everywhere (the resolver's answers changed)."""
        touched: dict[Family, dict[Prefix, bool]] = {}
        for fam, rib in self._ribs.items():
            if family is not None and fam != family:
                continue
            for prefix in list(rib.dests):
                self._note(touched, fam, rib.reselect(prefix))
        return self._propagate(touched)

    # ------------------------------------------------------------------ routes out

    def refresh_out(self, key: str, family: Family) -> Outbound:
        """Re-send everything of one family (ROUTE-REFRESH received, soft reset out)."""
        peer = self._peer(key)
        group = peer.groups.get(family)
        if group is None or peer.negotiated is None:
            return {}
        diff = group.adj_out.full_table(key)
        return {key: diff.encode(family, peer.negotiated, self.encoder)}

    def _node_address(self, fam: Family) -> IPAddress | None:
        if fam.afi == Afi.IPV4:
            return self.config.ipv4_address
        return self.config.ipv6_address

    def _self_address(self, peer: _Peer, fam: Family) -> IPAddress | None:
        local = peer.config.local_address
        if local is not None and local.version == (4 if fam.afi == Afi.IPV4 else 6):
            return local
        return self._node_address(fam)

    def _join_group(self, peer: _Peer, fam: Family) -> _Group:
        ctx = peer.negotiated
        assert ctx is not None
        info = peer.info
        # What the codec does is decided by the negotiated context alone (the config wish
        # only shapes our OPEN), so the adverts must follow it too.
        addpath = fam in ctx.addpath_send
        nh_self = self._self_address(peer, fam)
        key: _GroupKey = (
            fam, info.is_ibgp, info.rr_client, info.local_asn, id(peer.export_policy),
            ctx.asn4, addpath, ctx.extended_message, info.next_hop, nh_self,
            ctx.peer_long_lived is not None,
        )
        group = self._groups.get(key)
        if group is None:
            group = _Group(key, fam, info, peer.export_policy, addpath, nh_self, ctx)
            sent = group.adj_out.sent
            for prefix, entry in self._ribs[fam].dests.items():
                adverts = self._adverts(group, entry)
                if adverts:
                    sent[prefix] = adverts
            group.cache.clear()
            group.adverts.clear()
            self._groups[key] = group
        group.members[peer.info.key] = ctx
        peer.groups[fam] = group
        return group

    def _propagate(self, touched: dict[Family, dict[Prefix, bool]]) -> Outbound:
        out: Outbound = {}
        if not touched:
            return out
        callback = self.on_best_change
        if callback is not None:
            for fam, moved in touched.items():
                if True in moved.values():  # some best path moved (C-level scan)
                    callback(fam, BestChanges(self._ribs[fam], moved))
        for group in self._groups.values():
            prefixes = touched.get(group.family)
            if not prefixes:
                continue
            rib = self._ribs[group.family]
            dests = rib.dests
            adverts = self._adverts
            if group.addpath:
                changes = [(prefix, adverts(group, dests.get(prefix))) for prefix in prefixes]
                update = group.adj_out.update(changes, group.members)
            else:  # only the best path is advertised: skip prefixes whose best is unchanged
                runs = self._best_runs(group, dests, prefixes)
                update = group.adj_out.update_runs(runs, group.members)
            group.cache.clear()
            group.adverts.clear()
            common, private, excluded = update
            common_bytes: list[bytes] | None = None
            for member, ctx in group.members.items():
                mine = private.get(member)
                if mine is not None:
                    diff = common.without(excluded[member])
                    diff.merge(mine)
                    msgs = diff.encode(group.family, ctx, self.encoder)
                else:
                    if common_bytes is None:
                        common_bytes = common.encode(group.family, group.ctx, self.encoder)
                    msgs = common_bytes
                if msgs:
                    target = out.get(member)
                    if target is None:
                        out[member] = list(msgs)
                    else:
                        target.extend(msgs)
        return out

    def _best_runs(
        self, group: _Group, dests: dict[Prefix, Destination | Path], prefixes: dict[Prefix, bool]
    ) -> list[Run]:
        """`_adverts` of each prefix whose best moved, for a group without ADD-PATH send,
        as runs of consecutive prefixes with the same adverts (`AdjRibOut.update_runs`).

        With a prefix-independent export policy the result depends only on the best
        path's attributes and source, and consecutive prefixes mostly share them (the
        NLRI of one UPDATE): the last result is reused without a call, a key tuple or an
        `AttrSet` hash per prefix, and the prefix joins the current run."""
        runs: list[Run] = []
        run: list[Prefix] = []
        run_adverts: tuple[Advert, ...] | None = None
        adverts = self._adverts
        reuse = group.policy.prefix_independent
        last_attrs: AttrSet | None = None
        last_source: PeerInfo | None = None
        for prefix, best_moved in prefixes.items():
            if not best_moved:
                continue
            entry = dests.get(prefix)
            if entry.__class__ is Path:  # a bare Path: the only path, the best
                path: Path = entry
                if reuse and path.attrs is last_attrs and path.source is last_source:
                    run.append(prefix)  # same adverts as the prefix before
                    continue
                adv = adverts(group, path)
                last_attrs, last_source = path.attrs, path.source
            else:
                adv = adverts(group, entry)
                last_attrs = None
            if adv is run_adverts:
                run.append(prefix)
            else:
                run = [prefix]
                run_adverts = adv
                runs.append((adv, run))
        return runs

    def _adverts(self, group: _Group, entry: Destination | Path | None) -> tuple[Advert, ...]:
        """What `group` should hold for one Loc-RIB entry (`LocRib.dests`)."""
        if entry is None:
            return NO_ADVERTS
        if isinstance(entry, Path):  # the prefix's only path, reachable: the best
            sel = None
            best = entry
        else:
            sel = entry.selection
            if sel is None:
                return NO_ADVERTS
            best = sel.best
        if not group.addpath:
            source = best.source
            key = (best.attrs, None if source is None else source.key)
            cached = group.adverts.get(key) if group.policy.prefix_independent else None
            if cached is not None:
                return cached
            res = self._export(group, best)
            out = (Advert(0, res, key[1]),) if isinstance(res, AttrSet) else NO_ADVERTS
            if group.policy.prefix_independent:
                group.adverts[key] = out
            return out
        # RFC 7911: with ADD-PATH send, every usable candidate is advertised under its
        # own stable local path id (BIRD `add paths tx`).
        adverts = []
        for path in (best,) if sel is None else sel.candidates():
            res = self._export(group, path)
            if isinstance(res, AttrSet):
                adverts.append(Advert(path.local_id, res, path.source_key))
        return tuple(adverts)

    def _export(self, group: _Group, path: Path) -> AttrSet | DropReason:
        policy = group.policy
        if policy.prefix_independent:
            ck = (path.attrs, path.source_key)
            hit = group.cache.get(ck)
            if hit is None:
                hit = group.cache[ck] = self._export_uncached(group, path)
            return hit
        return self._export_uncached(group, path)

    def _export_uncached(self, group: _Group, path: Path) -> AttrSet | DropReason:
        """RFC 4271 §9.1.3 / §5.1 for one path towards one update group."""
        target, source, attrs = group.target, path.source, path.attrs
        reason = self.rules.may_advertise(source, target)
        if reason is not None:
            return reason
        if attrs.communities:
            # RFC 1997: NO_ADVERTISE "MUST NOT be advertised to other BGP peers";
            # NO_EXPORT / NO_EXPORT_SUBCONFED not outside the AS.
            comms = attrs.communities
            if _NO_ADVERTISE in comms:
                return DropReason.NO_ADVERTISE
            if not target.is_ibgp and (_NO_EXPORT in comms or _NO_EXPORT_SUBCONFED in comms):
                return DropReason.NO_EXPORT
            # RFC 9494 §4.5: LLGR_STALE routes "SHOULD NOT be advertised" to a peer that
            # did not advertise LLGR. (The partial-deployment option of sending them over
            # iBGP with NO_EXPORT and LOCAL_PREF 0 is not implemented: withheld.)
            if _LLGR_STALE in comms and not group.llgr:
                return DropReason.LLGR_STALE
        attrs = self.rules.egress_attrs(attrs, source, target)
        res = evaluate(group.policy, path.prefix, attrs, target)
        if isinstance(res, Rejected):
            if group.policy is RFC8212_REJECT:
                return DropReason.RFC8212_NO_POLICY
            return DropReason.EXPORT_POLICY
        return self._rewrite(group, path, attrs, res)

    def _rewrite(self, group: _Group, path: Path, before: AttrSet, attrs: AttrSet) -> AttrSet:
        """Mandatory attribute changes per RFC 4271 §5.1 after export policy."""
        target, source = group.target, path.source
        changes: dict[str, Any] = {}
        if source is not None and attrs.unknown:
            # RFC 4271 §5: unrecognised non-transitive attributes are not passed along;
            # the Partial bit of the transitive ones is set by the encoder
            # (`encode_attributes`).
            changes["unknown"] = tuple(u for u in attrs.unknown if u.flags & AttrFlag.TRANSITIVE)
        mode = target.next_hop
        if not target.is_ibgp:
            # §5.1.2: prepend our own AS; §5.1.5: no LOCAL_PREF to external peers;
            # RFC 4456 ORIGINATOR_ID / CLUSTER_LIST are optional non-transitive and only
            # meaningful inside the AS; §5.1.4: a MED learned from a neighbouring AS "MUST
            # NOT be propagated to other neighboring ASes" (one set here by export policy
            # or on a local route may go).
            changes["as_path"] = attrs.as_path.prepend(target.local_asn)
            changes["local_pref"] = None
            changes["originator_id"] = None
            changes["cluster_list"] = ()
            if source is not None and attrs.med is not None and attrs.med == before.med:
                changes["med"] = None
            # §5.1.3: to an external peer the next hop is our own address unless kept.
            if mode is not NextHopMode.KEEP and group.nh_self is not None:
                changes["next_hop"] = group.nh_self
                changes["link_local_next_hop"] = None
        else:
            if attrs.local_pref is None:  # §5.1.5: LOCAL_PREF in every iBGP UPDATE
                changes["local_pref"] = self.config.default_local_pref
            if group.nh_self is not None and (
                mode is NextHopMode.SELF or attrs.next_hop is None
            ):
                changes["next_hop"] = group.nh_self
                changes["link_local_next_hop"] = None
        return attrs.replace(**changes) if changes else attrs

    # ------------------------------------------------------------------ read side

    def loc_rib_sizes(self) -> dict[Family, int]:
        """Prefixes in the Loc-RIB per family (metrics: no walk of the table)."""
        return {fam: len(rib) for fam, rib in self._ribs.items()}

    def accepted_counts(self, key: str) -> dict[Family, int]:
        """Paths of a peer accepted by import policy, per family (its post-policy
        Adj-RIB-In; O(1) per family: the maximum-prefix check runs after every batch)."""
        peer = self._peers.get(key)
        if peer is None:
            return {}
        return {fam: len(paths) for fam, paths in peer.adj_in.post.items()}

    def rejected_reasons(self, key: str) -> dict[Family, dict[DropReason, int]]:
        """How many of a peer's received paths each reason keeps out of the Loc-RIB, per
        family (a walk of the rejected paths only; metrics)."""
        peer = self._peers.get(key)
        out: dict[Family, dict[DropReason, int]] = {}
        if peer is None:
            return out
        for fam, rejected in peer.adj_in.rejected.items():
            counts: dict[DropReason, int] = {}
            for reason in rejected.values():
                counts[reason] = counts.get(reason, 0) + 1
            if counts:
                out[fam] = counts
        return out

    def peers_summary(self) -> list[dict[str, Any]]:
        """One JSON-serialisable dict per configured neighbour (`show protocols`)."""
        rows = []
        # One walk of each update group's Adj-RIB-Out for all its members (a scrape of
        # a reflector's clients would otherwise walk the table once per client).
        walks: dict[int, tuple[int, dict[str | None, int]]] = {}
        for key, peer in sorted(self._peers.items()):
            info = peer.info
            fams: dict[str, dict[str, int]] = {}
            for fam in sorted(set(peer.adj_in.families()) | set(peer.groups)):
                received, accepted = peer.adj_in.counts(fam)
                group = peer.groups.get(fam)
                advertised = 0
                if group is not None:
                    walk = walks.get(id(group.adj_out))
                    if walk is None:
                        walk = walks[id(group.adj_out)] = group.adj_out.member_counts()
                    advertised = walk[0] - walk[1].get(key, 0)
                fams[str(fam)] = {
                    "received": received,
                    "accepted": accepted,
                    "rejected": len(peer.adj_in.rejected.get(fam, ())),
                    "advertised": advertised,
                }
            rows.append({
                "key": key,
                "address": str(info.address),
                "asn": info.asn,
                "local_asn": info.local_asn,
                "type": "ibgp" if info.is_ibgp else "ebgp",
                "rr_client": info.rr_client,
                "router_id": str(info.router_id),
                "state": "established" if peer.negotiated is not None else "down",
                "since": peer.up_since,
                "updates_received": peer.updates_received,
                "end_of_rib_received": sorted(str(f) for f in peer.eor_received),
                "families": fams,
            })
        return rows

    def routes(
        self, family: Family | None = None, prefix: Prefix | None = None
    ) -> list[dict[str, Any]]:
        """Loc-RIB contents (`show route`): one dict per prefix with all its paths."""
        rows = []
        for fam, rib in self._ribs.items():
            if family is not None and fam != family:
                continue
            if prefix is not None:
                dest = rib.get(prefix)
                dests = [] if dest is None else [dest]
            else:
                dests = sorted(rib, key=lambda d: (d.prefix.length, d.prefix.addr))
            for dest in dests:
                sel = dest.selection
                multipath = () if sel is None else sel.multipath
                rows.append({
                    "prefix": str(dest.prefix),
                    "family": str(fam),
                    "reason": None if sel is None else sel.reason.name.lower(),
                    "paths": [
                        _path_dict(p, best=sel is not None and p is sel.best,
                                   multipath=p in multipath)
                        for p in dest.paths
                    ],
                })
        return rows

    def route_reasons(self, prefix: Prefix) -> dict[str, Any]:
        """Why the best path won and why each other path lost or was refused."""
        fam = family_of(prefix)
        rib = self._ribs.get(fam)
        dest = None if rib is None else rib.get(prefix)
        sel = None if dest is None else dest.selection
        result: dict[str, Any] = {"prefix": str(prefix), "family": str(fam)}
        if sel is None:
            result["best"] = None
            result["reason"] = None
            result["losers"] = [
                {"path": p.describe(), "reason": BestReason.NEXT_HOP_UNREACHABLE.name.lower()}
                for p in ([] if dest is None else dest.paths)
            ]
        else:
            result["best"] = sel.best.describe()
            result["reason"] = sel.reason.name.lower()
            result["losers"] = [
                {
                    "path": p.describe(),
                    "reason": r.name.lower(),
                    "text": f"{sel.best.describe()} wins over {p.describe()}: {r.phrase}",
                }
                for p, r in sel.losers
            ]
        refused = []
        for key, peer in sorted(self._peers.items()):
            for nlri, why in peer.adj_in.rejected.get(fam, {}).items():
                if nlri.prefix == prefix:
                    refused.append({"peer": key, "path_id": nlri.path_id, "reason": why.value})
        result["rejected"] = refused
        return result

    def _peer(self, key: str) -> _Peer:
        try:
            return self._peers[key]
        except KeyError:
            raise LocalUsageError(f"unknown peer {key!r}") from None


def _merge(out: Outbound, more: Outbound) -> None:
    for key, msgs in more.items():
        out.setdefault(key, []).extend(msgs)


def _import_result(res: AttrSet | Rejected, policy: Policy) -> AttrSet | DropReason:
    if isinstance(res, AttrSet):
        return res
    return DropReason.RFC8212_NO_POLICY if policy is RFC8212_REJECT else DropReason.IMPORT_POLICY


def format_ext_community(value: int) -> str:
    """An extended community (RFC 4360, 8 octets as an int) as text: route targets and
    sites of origin (two-octet AS, IPv4 and four-octet AS administrators, RFC 5668) as
    `rt:ADMIN:VALUE` / `soo:ADMIN:VALUE`, anything else `0x` + 16 hex digits."""
    typ, sub = (value >> 56) & 0xFF, (value >> 48) & 0xFF
    kind = {2: "rt", 3: "soo"}.get(sub)
    if kind is not None and typ in (0x00, 0x01, 0x02):
        if typ == 0x00:  # two-octet AS : four-octet number
            return f"{kind}:{(value >> 32) & 0xFFFF}:{value & 0xFFFFFFFF}"
        admin = (value >> 16) & 0xFFFFFFFF
        text = str(ipaddress.IPv4Address(admin)) if typ == 0x01 else str(admin)
        return f"{kind}:{text}:{value & 0xFFFF}"
    return f"0x{value:016x}"


def _path_dict(path: Path, *, best: bool, multipath: bool) -> dict[str, Any]:
    a = path.attrs
    return {
        "from": path.describe(),
        "best": best,
        "multipath": multipath,
        "path_id": path.path_id,
        "next_hop": None if a.next_hop is None else str(a.next_hop),
        "as_path": str(a.as_path),
        "origin": Origin(a.origin).name.lower() if a.origin in (0, 1, 2) else a.origin,
        "med": a.med,
        "local_pref": a.local_pref,
        "communities": [format_community(c) for c in a.communities],
        "large_communities": [str(c) for c in a.large_communities],
        "ext_communities": [format_ext_community(c) for c in a.ext_communities],
        "originator_id": None if a.originator_id is None else str(a.originator_id),
        "cluster_list": [str(c) for c in a.cluster_list],
        "learned_at": path.learned_at,
        "stale": path.stale,
        # RFC 9494: kept in the long-lived stale phase (or received so), least preferred.
        "llgr_stale": _LLGR_STALE in a.communities,
    }
