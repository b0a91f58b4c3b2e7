"""Connection collision resolution, RFC 4271 §6.8 (pure; no sessions, no sockets).

RFC 4271 §6.8: "Based on the value of the BGP Identifier, a convention is established for
detecting which BGP connection is to be preserved when a collision occurs. The convention
is to compare the BGP Identifiers of the peers involved in the collision and to retain only
the connection initiated by the BGP speaker with the higher-valued BGP Identifier."

and, from the speaker's point of view: "Comparing BGP Identifiers is done by converting them
to host byte order and treating them as 4-octet unsigned integers. If the value of the local
BGP Identifier is less than the remote one, the local system closes the BGP connection that
already exists (the one that is already in the OpenConfirm state), and accepts the BGP
connection initiated by the remote system. Otherwise, the local system closes the newly
created BGP connection (the one associated with the newly received OPEN message), and
continues to use the existing one (the one that is already in the OpenConfirm state)."

The second paragraph is written for the case where the existing connection is the one the
local system initiated; stated without that assumption (the first paragraph), the
*locally initiated* connection is closed when the local identifier is lower, and the
*remotely initiated* one otherwise. Both speakers then close the same TCP connection. That
is what `connection_to_close()` returns.

RFC 6286 §2.3 covers equal identifiers (possible between different ASes once identifiers
need only be unique within an AS): "If the BGP Identifiers of the peers involved in the
connection collision are identical, then the connection initiated by the BGP speaker with
the larger AS number is preserved."

RFC 4271 §6.8: "Unless allowed via configuration, a connection collision with an existing
BGP connection that is in the Established state causes closing of the newly created
connection." `resolve()` applies that rule first.

The caller signals the loser with `Session.collision_dump()` (Event 23, Cease subcode 7
"Connection Collision Resolution", RFC 4486 §4).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from ipaddress import IPv4Address

__all__ = ["Initiator", "Resolution", "connection_to_close", "resolve"]


class Initiator(Enum):
    """Who opened a TCP connection."""

    #: We connected out to the peer (`Session.outgoing` is True).
    LOCAL = "local"
    #: The peer connected to us (`Session.outgoing` is False).
    REMOTE = "remote"

    @classmethod
    def of(cls, outgoing: bool) -> Initiator:
        return cls.LOCAL if outgoing else cls.REMOTE

    @property
    def other(self) -> Initiator:
        return Initiator.REMOTE if self is Initiator.LOCAL else Initiator.LOCAL


def _as_u32(router_id: IPv4Address | int) -> int:
    # "converting them to host byte order and treating them as 4-octet unsigned integers"
    value = int(router_id)
    if not 0 <= value <= 0xFFFFFFFF:
        raise ValueError(f"BGP Identifier out of range: {value}")
    return value


def connection_to_close(
    local_id: IPv4Address | int,
    remote_id: IPv4Address | int,
    *,
    local_asn: int | None = None,
    remote_asn: int | None = None,
) -> Initiator:
    """Which of two colliding connections to close (the other one is kept)."""
    local, remote = _as_u32(local_id), _as_u32(remote_id)
    if local == remote:
        # RFC 6286 §2.3: keep the connection initiated by the speaker with the larger AS.
        if local_asn is None or remote_asn is None or local_asn == remote_asn:
            raise ValueError(
                "equal BGP Identifiers need different AS numbers to resolve a collision"
            )
        return Initiator.LOCAL if local_asn < remote_asn else Initiator.REMOTE
    # "If the value of the local BGP Identifier is less than the remote one, the local
    # system closes the BGP connection that [it initiated] ... and accepts the BGP
    # connection initiated by the remote system."
    return Initiator.LOCAL if local < remote else Initiator.REMOTE


@dataclass(frozen=True, slots=True)
class Resolution:
    """The outcome for two connections to one peer: close `close`, keep the other."""

    close: Initiator
    reason: str


def resolve(
    local_id: IPv4Address | int,
    remote_id: IPv4Address | int,
    existing: Initiator,
    *,
    existing_established: bool = False,
    local_asn: int | None = None,
    remote_asn: int | None = None,
) -> Resolution:
    """Resolve a collision between an `existing` connection (OpenConfirm or Established)
    and a new one (initiated by `existing.other`) whose OPEN was just received.

    `existing_established`: the existing connection is Established, so §6.8 closes the new
    one. Caution: pass True only when the existing connection was Established before the
    new TCP connection was made (a stray new connection, e.g. from a peer that restarted).
    In a simultaneous open each end may see a *different* connection Established first
    (the peer's OPEN and KEEPALIVE can arrive in one read), the two ends then close
    different connections and both die; only the identifier rule is guaranteed to make
    both ends close the same one.
    """
    if existing_established:
        # §6.8: "a connection collision with an existing BGP connection that is in the
        # Established state causes closing of the newly created connection."
        return Resolution(existing.other, "existing connection is Established")
    loser = connection_to_close(local_id, remote_id, local_asn=local_asn, remote_asn=remote_asn)
    if int(local_id) == int(remote_id):
        why = "equal BGP Identifiers: keep the connection of the larger AS (RFC 6286 §2.3)"
    else:
        higher = "local" if loser is Initiator.REMOTE else "remote"
        why = f"keep the connection initiated by the higher BGP Identifier ({higher})"
    return Resolution(loser, why)
