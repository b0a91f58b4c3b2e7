"""Per-socket options of a BGP connection (Linux).

Everything here is a thin, synchronous wrapper around ``setsockopt`` with the one job of
turning the kernel's refusals into a `SocketOptionError` that says what was asked and why
it failed. The options:

* source address bind (``bind((local_address, 0))``);
* TCP MD5 signatures, RFC 2385, through Linux ``TCP_MD5SIG`` / ``TCP_MD5SIG_EXT``;
* GTSM, RFC 5082: send with TTL / hop limit 255 and drop anything that arrives with less
  than ``256 - hops`` (``IP_MINTTL`` / ``IPV6_MINHOPCOUNT``);
* a plain multihop TTL (eBGP multihop);
* ``TCP_NODELAY`` (a KEEPALIVE must not wait for Nagle).

Linux ``struct tcp_md5sig`` (include/uapi/linux/tcp.h)::

    struct tcp_md5sig {
        struct __kernel_sockaddr_storage tcpm_addr;   /* 128 octets               */
        __u8    tcpm_flags;                           /* TCP_MD5SIG_FLAG_PREFIX.. */
        __u8    tcpm_prefixlen;                       /* with TCP_MD5SIG_EXT      */
        __u16   tcpm_keylen;                          /* 0 deletes the key        */
        int     tcpm_ifindex;                         /* with FLAG_IFINDEX        */
        __u8    tcpm_key[TCP_MD5SIG_MAXKEYLEN];       /* 80 octets                */
    };
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from dataclasses import dataclass, field

# Linux constants; the socket module lacks most of them.
TCP_MD5SIG = 14
TCP_MD5SIG_EXT = 32
TCP_MD5SIG_FLAG_PREFIX = 0x1
TCP_MD5SIG_MAXKEYLEN = 80
IP_MINTTL = getattr(socket, "IP_MINTTL", 21)
IPV6_MINHOPCOUNT = getattr(socket, "IPV6_MINHOPCOUNT", 73)
IP_TTL = socket.IP_TTL
IPV6_UNICAST_HOPS = socket.IPV6_UNICAST_HOPS

GTSM_TTL = 255  # RFC 5082 §3: "sends ... with a TTL of 255"

_SOCKADDR_STORAGE_LEN = 128
_MD5SIG = struct.Struct(f"={_SOCKADDR_STORAGE_LEN}sBBHi{TCP_MD5SIG_MAXKEYLEN}s")

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class SocketOptionError(OSError):
    """The kernel refused a socket option; the message names the option and the peer."""


@dataclass(frozen=True, slots=True)
class SocketOptions:
    """What one BGP socket needs, for the connecting side and for an accepted one.

    `ttl_security_hops` enables GTSM (RFC 5082) with that many hops (1 = directly
    connected); it excludes `multihop_ttl`, which only sets the outgoing TTL.
    """

    password: str | None = field(default=None, repr=False)  # a secret: never in repr
    ttl_security_hops: int | None = None
    multihop_ttl: int | None = None
    nodelay: bool = True

    def __post_init__(self) -> None:
        if self.ttl_security_hops is not None and self.multihop_ttl is not None:
            raise ValueError("ttl_security_hops (GTSM) and multihop_ttl are exclusive")
        if self.ttl_security_hops is not None and not 1 <= self.ttl_security_hops <= 254:
            raise ValueError(f"ttl_security_hops {self.ttl_security_hops} not in 1..254")
        if self.multihop_ttl is not None and not 1 <= self.multihop_ttl <= 255:
            raise ValueError(f"multihop_ttl {self.multihop_ttl} not in 1..255")
        if self.password is not None:
            check_password(self.password)


def check_password(password: str) -> bytes:
    """The key octets of an MD5 password (UTF-8, 1..80 octets)."""
    key = password.encode()
    if not 1 <= len(key) <= TCP_MD5SIG_MAXKEYLEN:
        raise ValueError(f"TCP MD5 password must be 1..{TCP_MD5SIG_MAXKEYLEN} octets")
    return key


def _refused(what: str, exc: OSError) -> SocketOptionError:
    reason = os.strerror(exc.errno) if exc.errno else str(exc)
    hint = ""
    if exc.errno in (errno.ENOPROTOOPT, errno.EOPNOTSUPP) and "MD5" in what:
        hint = " (kernel built without CONFIG_TCP_MD5SIG?)"
    elif exc.errno == errno.EPERM:
        hint = " (needs CAP_NET_ADMIN?)"
    return SocketOptionError(exc.errno or 0, f"{what}: {reason}{hint}")


def _sockaddr(sock_family: int, address: IpAddress) -> bytes:
    """A `sockaddr_in` / `sockaddr_in6` (port 0) padded to `sockaddr_storage` size.

    On an AF_INET6 socket an IPv4 peer is given as IPv4-mapped, which is how the kernel
    stores keys for mapped connections (tcp_v6_parse_md5_keys)."""
    if sock_family == socket.AF_INET6 and isinstance(address, ipaddress.IPv4Address):
        address = ipaddress.IPv6Address(f"::ffff:{address}")
    if isinstance(address, ipaddress.IPv4Address):
        if sock_family != socket.AF_INET:
            raise ValueError(f"IPv4 address {address} on a non-IP socket")
        raw = struct.pack("=H", socket.AF_INET) + struct.pack("!H", 0) + address.packed
    else:
        if sock_family != socket.AF_INET6:
            raise ValueError(f"IPv6 address {address} on an IPv4 socket")
        raw = (
            struct.pack("=H", socket.AF_INET6)
            + struct.pack("!HI", 0, 0)
            + address.packed
            + struct.pack("=I", scope_index(address))
        )
    return raw.ljust(_SOCKADDR_STORAGE_LEN, b"\0")


def scope_index(address: ipaddress.IPv6Address) -> int:
    """The interface index of a scoped (link-local) IPv6 address, 0 when unscoped."""
    scope = address.scope_id
    if not scope:
        return 0
    return int(scope) if scope.isdigit() else socket.if_nametoindex(scope)


def set_md5sig(
    sock: socket.socket,
    address: str | IpAddress,
    password: str | None,
    prefixlen: int | None = None,
) -> None:
    """Install (or with `password=None` remove) the RFC 2385 key for `address`.

    On a listening socket call it once per configured peer; accepted connections inherit
    the key. With `prefixlen` the key covers a whole range (TCP_MD5SIG_EXT, Linux 4.13+),
    for dynamic neighbours.
    """
    addr = ipaddress.ip_address(address) if isinstance(address, str) else address
    key = check_password(password) if password is not None else b""
    flags = 0
    optname = TCP_MD5SIG
    plen = 0
    if prefixlen is not None:
        flags |= TCP_MD5SIG_FLAG_PREFIX
        optname = TCP_MD5SIG_EXT
        plen = prefixlen
        if sock.family == socket.AF_INET6 and isinstance(addr, ipaddress.IPv4Address):
            plen += 96
    value = _MD5SIG.pack(_sockaddr(sock.family, addr), flags, plen, len(key), 0, key)
    what = f"TCP_MD5SIG for {addr}" + (f"/{prefixlen}" if prefixlen is not None else "")
    try:
        sock.setsockopt(socket.IPPROTO_TCP, optname, value)
    except OSError as exc:
        if password is None and exc.errno == errno.ENOENT:
            return  # no key was installed: removing it is a no-op
        raise _refused(what, exc) from exc


def md5_supported() -> bool:
    """True when the running kernel accepts TCP_MD5SIG (probe on a throwaway socket)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        try:
            set_md5sig(sock, "127.0.0.1", "probe")
        except SocketOptionError:
            return False
    return True


def _is_v6(sock: socket.socket, remote: IpAddress | None) -> bool:
    """Whether the IPv6 (not IPv4) level applies: an AF_INET6 socket to a non-mapped peer."""
    if sock.family != socket.AF_INET6:
        return False
    if remote is None:
        return True
    if isinstance(remote, ipaddress.IPv4Address):
        return False
    return remote.ipv4_mapped is None


def set_ttl(sock: socket.socket, ttl: int, remote: IpAddress | None = None) -> None:
    """Outgoing TTL / unicast hop limit."""
    if _is_v6(sock, remote):
        level, opt, name = socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS, "IPV6_UNICAST_HOPS"
    else:
        level, opt, name = socket.IPPROTO_IP, IP_TTL, "IP_TTL"
    try:
        sock.setsockopt(level, opt, ttl)
    except OSError as exc:
        raise _refused(f"{name}={ttl}", exc) from exc


def set_gtsm(sock: socket.socket, hops: int = 1, remote: IpAddress | None = None) -> None:
    """RFC 5082 GTSM: send with TTL 255, accept only TTL >= 256 - hops (§3)."""
    min_ttl = 256 - hops
    set_ttl(sock, GTSM_TTL, remote)
    if _is_v6(sock, remote):
        level, opt, name = socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT, "IPV6_MINHOPCOUNT"
    else:
        level, opt, name = socket.IPPROTO_IP, IP_MINTTL, "IP_MINTTL"
    try:
        sock.setsockopt(level, opt, min_ttl)
    except OSError as exc:
        raise _refused(f"{name}={min_ttl} (GTSM)", exc) from exc


def get_gtsm(sock: socket.socket, remote: IpAddress | None = None) -> tuple[int, int]:
    """(outgoing TTL, minimum accepted TTL) as the kernel has them, for tests and `show`."""
    if _is_v6(sock, remote):
        ttl = sock.getsockopt(socket.IPPROTO_IPV6, IPV6_UNICAST_HOPS)
        minttl = sock.getsockopt(socket.IPPROTO_IPV6, IPV6_MINHOPCOUNT)
    else:
        ttl = sock.getsockopt(socket.IPPROTO_IP, IP_TTL)
        minttl = sock.getsockopt(socket.IPPROTO_IP, IP_MINTTL)
    return ttl, minttl


def set_nodelay(sock: socket.socket) -> None:
    try:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    except OSError as exc:
        raise _refused("TCP_NODELAY", exc) from exc


def apply_connection_options(
    sock: socket.socket, remote: IpAddress, options: SocketOptions
) -> None:
    """Options every connected BGP socket gets (outgoing before connect, or accepted)."""
    if options.nodelay:
        set_nodelay(sock)
    if options.ttl_security_hops is not None:
        set_gtsm(sock, options.ttl_security_hops, remote)
    elif options.multihop_ttl is not None:
        set_ttl(sock, options.multihop_ttl, remote)


def make_client_socket(
    remote: IpAddress,
    options: SocketOptions,
    local_address: str | None = None,
) -> socket.socket:
    """A non-blocking TCP socket ready to `connect((remote, port))`: bound to the source
    address when given, MD5 key installed for the peer, TTL / GTSM and TCP_NODELAY set."""
    family = socket.AF_INET6 if remote.version == 6 else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        sock.setblocking(False)
        if local_address is not None:
            try:
                sock.bind((local_address, 0))
            except OSError as exc:
                raise SocketOptionError(
                    exc.errno or 0, f"bind to source address {local_address}: {exc.strerror}"
                ) from exc
        if options.password is not None:
            set_md5sig(sock, remote, options.password)
        apply_connection_options(sock, remote, options)
    except BaseException:
        sock.close()
        raise
    return sock
