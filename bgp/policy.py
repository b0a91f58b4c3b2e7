"""A small routing-policy language, enough for what Calico generates (BIRD filters and
`BGPFilter`): ordered terms of match conditions and actions, and a default action.

    Policy(terms=(Term(Match(prefixes=(PrefixMatch.parse("10.0.0.0/8", le=32),)),
                       (SetLocalPref(200), ACCEPT)),),
           default=REJECT)

Evaluation is pure: `apply(policy, path, peer)` returns the (interned) attribute set to use
or `Rejected(reason)`. Terms are tried in order; the actions of a matching term run in
order; `Accept` / `Reject` end the evaluation, a term without them falls through to the
next term with its modifications kept (BIRD semantics). The default applies at the end.

RFC 8212: an eBGP session without an explicitly configured policy rejects everything in
both directions; `effective_policy` is the one function the configuration layer calls.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import Enum

from bgp.rib.path import Path, PeerInfo
from bgp.wire.attributes import AttrSet, LargeCommunity
from bgp.wire.prefix import Prefix


class PeerType(Enum):
    IBGP = "ibgp"
    EBGP = "ebgp"


@dataclass(frozen=True, slots=True)
class PrefixMatch:
    """A prefix condition: exact `prefix`, or (with `ge`/`le`) any prefix within it whose
    length lies in [ge, le] (BIRD `net ~ [ 10.0.0.0/8{16,32} ]`, Calico prefixLength)."""

    prefix: Prefix
    ge: int | None = None
    le: int | None = None

    @classmethod
    def parse(cls, text: str, ge: int | None = None, le: int | None = None) -> PrefixMatch:
        return cls(Prefix.parse(text), ge, le)

    @classmethod
    def within(cls, text: str) -> PrefixMatch:
        """Any prefix inside `text` (Calico `matchOperator: In`)."""
        pfx = Prefix.parse(text)
        return cls(pfx, pfx.length, pfx.bits)

    def matches(self, prefix: Prefix) -> bool:
        if self.ge is None and self.le is None:
            return prefix == self.prefix
        lo = self.prefix.length if self.ge is None else self.ge
        hi = self.prefix.bits if self.le is None else self.le
        return lo <= prefix.length <= hi and self.prefix.contains(prefix)


@dataclass(frozen=True, slots=True)
class Match:
    """All given conditions must hold; an empty Match matches everything.

    `prefixes` matches when any entry matches (`negate_prefixes` inverts that: Calico
    `NotIn` / `NotEqual`). `as_path_prefix` holds when the AS_PATH starts with those ASNs.
    """

    prefixes: tuple[PrefixMatch, ...] = ()
    negate_prefixes: bool = False
    peer_type: PeerType | None = None
    community: int | None = None
    large_community: LargeCommunity | None = None
    as_path_prefix: tuple[int, ...] = ()

    @property
    def uses_prefix(self) -> bool:
        return bool(self.prefixes)

    def matches(self, prefix: Prefix, attrs: AttrSet, peer: PeerInfo) -> bool:
        if self.prefixes:
            hit = any(pm.matches(prefix) for pm in self.prefixes)
            if hit == self.negate_prefixes:
                return False
        if self.peer_type is not None and (
            (self.peer_type is PeerType.IBGP) != peer.is_ibgp
        ):
            return False
        if self.community is not None and self.community not in attrs.communities:
            return False
        if self.large_community is not None and (
            self.large_community not in attrs.large_communities
        ):
            return False
        if self.as_path_prefix:
            n = len(self.as_path_prefix)
            if attrs.as_path.asns()[:n] != self.as_path_prefix:
                return False
        return True


@dataclass(frozen=True, slots=True)
class Accept:
    pass


@dataclass(frozen=True, slots=True)
class Reject:
    reason: str = ""


@dataclass(frozen=True, slots=True)
class SetLocalPref:
    value: int


@dataclass(frozen=True, slots=True)
class SetMed:
    value: int


@dataclass(frozen=True, slots=True)
class AddCommunity:
    value: int


@dataclass(frozen=True, slots=True)
class AddLargeCommunity:
    value: LargeCommunity


@dataclass(frozen=True, slots=True)
class AddExtCommunity:
    """Add an extended community (RFC 4360; the 8 octets as an int)."""

    value: int


@dataclass(frozen=True, slots=True)
class PrependOwnAs:
    """Prepend the local AS of the session `times` times (Calico `prependASPath`)."""

    times: int = 1


Action = (Accept | Reject | SetLocalPref | SetMed | AddCommunity | AddLargeCommunity
          | AddExtCommunity | PrependOwnAs)

ACCEPT = Accept()
REJECT = Reject()


@dataclass(frozen=True, slots=True)
class Term:
    match: Match
    actions: tuple[Action, ...]
    name: str = ""


@dataclass(frozen=True, slots=True, eq=False)
class Policy:
    """An ordered list of terms and a default action (Accept or Reject). Compared by
    identity: update groups put peers with the same policy *object* together."""

    terms: tuple[Term, ...] = ()
    default: Accept | Reject = ACCEPT
    name: str = ""
    prefix_independent: bool = field(init=False, default=True)

    def __post_init__(self) -> None:
        object.__setattr__(
            self, "prefix_independent", not any(t.match.uses_prefix for t in self.terms)
        )

    @property
    def is_accept_all(self) -> bool:
        return not self.terms and isinstance(self.default, Accept)


@dataclass(frozen=True, slots=True)
class Rejected:
    """A policy (or a built-in rule) refused the route; `reason` is shown by the CLI."""

    reason: str


ACCEPT_ALL = Policy(name="accept-all")
REJECT_ALL = Policy(default=Reject("no policy"), name="reject-all")
RFC8212_REJECT = Policy(
    default=Reject("RFC 8212: eBGP session without explicit policy"), name="rfc8212-reject"
)


def effective_policy(
    peer: PeerInfo, configured: Policy | None, *, rfc8212: bool = True
) -> Policy:
    """The policy to use for one direction of a session.

    RFC 8212 §3.1/§3.2: "Routes MUST NOT be accepted from an EBGP peer" and "MUST NOT be
    advertised to an EBGP peer" unless explicitly configured. iBGP sessions without policy
    accept everything. `rfc8212=False` restores the permissive pre-8212 behaviour.
    """
    if configured is not None:
        return configured
    if rfc8212 and not peer.is_ibgp:
        return RFC8212_REJECT
    return ACCEPT_ALL


def apply(policy: Policy, path: Path, peer: PeerInfo) -> AttrSet | Rejected:
    """Evaluate `policy` for `path` towards/from `peer`."""
    return evaluate(policy, path.prefix, path.attrs, peer)


def evaluate(policy: Policy, prefix: Prefix, attrs: AttrSet, peer: PeerInfo) -> AttrSet | Rejected:
    """`apply` without a Path object (the speaker's hot path)."""
    if not policy.terms:
        default = policy.default
        if isinstance(default, Accept):
            return attrs
        return Rejected(default.reason or _default_reason(policy))
    cur = attrs
    for index, term in enumerate(policy.terms):
        if not term.match.matches(prefix, cur, peer):
            continue
        for action in term.actions:
            if isinstance(action, Accept):
                return cur
            if isinstance(action, Reject):
                label = term.name or f"term {index + 1}"
                return Rejected(action.reason or f"{_policy_label(policy)}: {label}")
            cur = _modify(cur, action, peer)
    default = policy.default
    if isinstance(default, Accept):
        return cur
    return Rejected(default.reason or _default_reason(policy))


def _modify(attrs: AttrSet, action: Action, peer: PeerInfo) -> AttrSet:
    if isinstance(action, SetLocalPref):
        return attrs.replace(local_pref=action.value)
    if isinstance(action, SetMed):
        return attrs.replace(med=action.value)
    if isinstance(action, AddCommunity):
        if action.value in attrs.communities:
            return attrs
        return attrs.replace(communities=(*attrs.communities, action.value))
    if isinstance(action, AddLargeCommunity):
        if action.value in attrs.large_communities:
            return attrs
        return attrs.replace(large_communities=(*attrs.large_communities, action.value))
    if isinstance(action, AddExtCommunity):
        if action.value in attrs.ext_communities:
            return attrs
        return attrs.replace(ext_communities=(*attrs.ext_communities, action.value))
    if isinstance(action, PrependOwnAs):
        return attrs.replace(as_path=attrs.as_path.prepend(peer.local_asn, action.times))
    raise TypeError(f"not a modifying action: {action!r}")  # pragma: no cover


def _policy_label(policy: Policy) -> str:
    return policy.name or "policy"


def _default_reason(policy: Policy) -> str:
    return f"{_policy_label(policy)}: default reject"


def policy_of(terms: Sequence[Term], default: Accept | Reject = REJECT, name: str = "") -> Policy:
    """Convenience constructor from a list."""
    return Policy(tuple(terms), default, name)
