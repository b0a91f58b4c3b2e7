"""Prefixes and NLRI encoding (RFC 4271 §4.3, RFC 4760 §5, ADD-PATH RFC 7911 §3).

A prefix is a small tuple `(afi, length, addr)` with the address as an integer: it is
created once per NLRI on the hot path, hashes fast and compares without parsing.

    +---------------------------+
    |   Length (1 octet)        |     (preceded by a 4-octet Path Identifier
    +---------------------------+      when ADD-PATH is negotiated for the family)
    |   Prefix (variable)       |
    +---------------------------+
"""

from __future__ import annotations

import ipaddress
from typing import NamedTuple

from bgp.errors import ErrorHandling, ProtocolError
from bgp.types import Afi, ErrorCode, UpdateError

_IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class Prefix(NamedTuple):
    """An IP prefix: address family, prefix length, and network address as an int."""

    afi: int
    length: int
    addr: int

    @classmethod
    def parse(cls, text: str) -> Prefix:
        """`Prefix.parse("10.0.0.0/24")`; raises ValueError on host bits or bad syntax."""
        net = ipaddress.ip_network(text, strict=True)
        return cls.from_network(net)

    @classmethod
    def from_network(cls, net: _IpNetwork) -> Prefix:
        afi = Afi.IPV4 if net.version == 4 else Afi.IPV6
        return cls(afi, net.prefixlen, int(net.network_address))

    @property
    def bits(self) -> int:
        return 32 if self.afi == Afi.IPV4 else 128

    def network(self) -> _IpNetwork:
        if self.afi == Afi.IPV4:
            return ipaddress.IPv4Network((self.addr, self.length))
        return ipaddress.IPv6Network((self.addr, self.length))

    def address(self) -> _IpAddress:
        return ipaddress.ip_address(self.addr) if self.afi == Afi.IPV4 else ipaddress.IPv6Address(
            self.addr
        )

    def contains(self, other: Prefix) -> bool:
        """True when `other` lies within this prefix (or equals it)."""
        if other.afi != self.afi or other.length < self.length:
            return False
        shift = self.bits - self.length
        return (other.addr >> shift) == (self.addr >> shift)

    def __str__(self) -> str:
        return f"{self.address()}/{self.length}"


class Nlri(NamedTuple):
    """One NLRI entry: a prefix and its ADD-PATH path identifier (0 without ADD-PATH)."""

    prefix: Prefix
    path_id: int = 0

    def __str__(self) -> str:
        return f"{self.prefix} id {self.path_id}" if self.path_id else str(self.prefix)


def _layouts(maxbits: int) -> tuple[tuple[int, int, int], ...]:
    """Per prefix length: (octets on the wire, shift to align them, network mask)."""
    full = (1 << maxbits) - 1
    return tuple(
        (
            (length + 7) >> 3,
            maxbits - (((length + 7) >> 3) << 3),
            full ^ ((1 << (maxbits - length)) - 1),
        )
        for length in range(maxbits + 1)
    )


_LAYOUTS = {Afi.IPV4: _layouts(32), Afi.IPV6: _layouts(128)}


def decode_nlri(data: bytes | memoryview, afi: int, addpath: bool = False) -> list[Nlri]:
    """Decode a run of NLRI entries; any inconsistency is an UPDATE error.

    RFC 7606 §5.3: an NLRI field that cannot be parsed is a session reset (we cannot know
    which prefixes to withdraw).
    """
    buf = bytes(data)
    layouts = _LAYOUTS.get(afi)  # type: ignore[call-overload]
    if layouts is None:
        raise ProtocolError(ErrorCode.UPDATE_MESSAGE, UpdateError.OPTIONAL_ATTRIBUTE_ERROR,
                            reason=f"unsupported AFI {afi}")
    maxbits = len(layouts) - 1
    out: list[Nlri] = []
    append = out.append
    pos = 0
    end = len(buf)
    from_bytes = int.from_bytes
    # Built with tuple.__new__: calling a NamedTuple class runs a Python-level __new__,
    # ~3x slower, and this runs twice per prefix received.
    new = tuple.__new__
    while pos < end:
        path_id = 0
        if addpath:
            if pos + 4 > end:
                raise _bad_nlri("truncated path identifier")
            path_id = from_bytes(buf[pos : pos + 4], "big")
            pos += 4
            if pos >= end:
                raise _bad_nlri("path identifier without prefix")
        length = buf[pos]
        pos += 1
        if length > maxbits:
            raise _bad_nlri(f"prefix length {length} > {maxbits}")
        nbytes, shift, netmask = layouts[length]
        if pos + nbytes > end:
            raise _bad_nlri("truncated prefix")
        # Trailing bits beyond the length are ignored by the RFC; the mask drops them.
        addr = (from_bytes(buf[pos : pos + nbytes], "big") << shift) & netmask
        pos += nbytes
        append(new(Nlri, (new(Prefix, (afi, length, addr)), path_id)))
    return out


def encode_prefix(prefix: Prefix) -> bytes:
    """Length octet plus the minimum number of address octets."""
    nbytes = (prefix.length + 7) >> 3
    value = prefix.addr >> (prefix.bits - (nbytes << 3))
    return bytes((prefix.length,)) + value.to_bytes(nbytes, "big")


def encode_nlri(nlri: Nlri, addpath: bool = False) -> bytes:
    data = encode_prefix(nlri.prefix)
    if addpath:
        return nlri.path_id.to_bytes(4, "big") + data
    return data


def _bad_nlri(reason: str) -> ProtocolError:
    return ProtocolError(
        ErrorCode.UPDATE_MESSAGE,
        UpdateError.INVALID_NETWORK_FIELD,
        handling=ErrorHandling.SESSION_RESET,
        reason=reason,
    )
