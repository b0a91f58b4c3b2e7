"""Wire codes of BGP-4, each enum naming the RFC section that defines it."""

from __future__ import annotations

from enum import IntEnum, IntFlag
from typing import NamedTuple

BGP_PORT = 179
BGP_VERSION = 4
HEADER_LEN = 19
MAX_MESSAGE_LEN = 4096  # RFC 4271 §4.1
MAX_EXTENDED_MESSAGE_LEN = 65535  # RFC 8654 §3
AS_TRANS = 23456  # RFC 6793 §9
MARKER = b"\xff" * 16


class MessageType(IntEnum):
    """RFC 4271 §4.1 message types; ROUTE_REFRESH from RFC 2918 §3."""

    OPEN = 1
    UPDATE = 2
    NOTIFICATION = 3
    KEEPALIVE = 4
    ROUTE_REFRESH = 5


class Afi(IntEnum):
    """Address family identifiers (IANA), RFC 4760 §3."""

    IPV4 = 1
    IPV6 = 2


class Safi(IntEnum):
    """Subsequent address family identifiers, RFC 4760 §6."""

    UNICAST = 1


class Family(NamedTuple):
    """An (AFI, SAFI) pair; only unicast families are routed by roost."""

    afi: int
    safi: int

    def __str__(self) -> str:
        afi = {1: "ipv4", 2: "ipv6"}.get(self.afi, f"afi{self.afi}")
        safi = {1: "unicast"}.get(self.safi, f"safi{self.safi}")
        return f"{afi}-{safi}"


IPV4_UNICAST = Family(Afi.IPV4, Safi.UNICAST)
IPV6_UNICAST = Family(Afi.IPV6, Safi.UNICAST)


class AttrType(IntEnum):
    """Path attribute type codes: RFC 4271 §5, RFC 1997, RFC 4456, RFC 4760, RFC 4360,
    RFC 6793, RFC 8092."""

    ORIGIN = 1
    AS_PATH = 2
    NEXT_HOP = 3
    MULTI_EXIT_DISC = 4
    LOCAL_PREF = 5
    ATOMIC_AGGREGATE = 6
    AGGREGATOR = 7
    COMMUNITIES = 8
    ORIGINATOR_ID = 9
    CLUSTER_LIST = 10
    MP_REACH_NLRI = 14
    MP_UNREACH_NLRI = 15
    EXTENDED_COMMUNITIES = 16
    AS4_PATH = 17
    AS4_AGGREGATOR = 18
    LARGE_COMMUNITY = 32


class AttrFlag(IntFlag):
    """Attribute flags octet, RFC 4271 §4.3."""

    OPTIONAL = 0x80
    TRANSITIVE = 0x40
    PARTIAL = 0x20
    EXTENDED_LENGTH = 0x10


class Origin(IntEnum):
    """ORIGIN values, RFC 4271 §5.1.1."""

    IGP = 0
    EGP = 1
    INCOMPLETE = 2


class AsPathSegmentType(IntEnum):
    """AS_PATH segment types: RFC 4271 §4.3, confederations RFC 5065 §3."""

    AS_SET = 1
    AS_SEQUENCE = 2
    AS_CONFED_SEQUENCE = 3
    AS_CONFED_SET = 4


class CapabilityCode(IntEnum):
    """Capability codes (IANA registry), RFC 5492 §4."""

    MULTIPROTOCOL = 1  # RFC 4760
    ROUTE_REFRESH = 2  # RFC 2918
    EXTENDED_NEXT_HOP = 5  # RFC 8950
    EXTENDED_MESSAGE = 6  # RFC 8654
    GRACEFUL_RESTART = 64  # RFC 4724
    FOUR_OCTET_AS = 65  # RFC 6793
    ADD_PATH = 69  # RFC 7911
    ENHANCED_ROUTE_REFRESH = 70  # RFC 7313
    LONG_LIVED_GRACEFUL_RESTART = 71  # RFC 9494
    FQDN = 73  # draft-walton-bgp-hostname-capability


class AddPathMode(IntFlag):
    """ADD-PATH Send/Receive field, RFC 7911 §4."""

    RECEIVE = 1
    SEND = 2
    BOTH = 3


class RouteRefreshSubtype(IntEnum):
    """ROUTE-REFRESH message subtype (the former Reserved octet), RFC 7313 §3.2."""

    NORMAL = 0
    BORR = 1  # beginning of route refresh
    EORR = 2  # end of route refresh


class ErrorCode(IntEnum):
    """NOTIFICATION error codes, RFC 4271 §4.5; ROUTE_REFRESH from RFC 7313 §5;
    SEND_HOLD_TIMER_EXPIRED from RFC 9687 §5."""

    MESSAGE_HEADER = 1
    OPEN_MESSAGE = 2
    UPDATE_MESSAGE = 3
    HOLD_TIMER_EXPIRED = 4
    FSM = 5
    CEASE = 6
    ROUTE_REFRESH = 7
    SEND_HOLD_TIMER_EXPIRED = 8


class HeaderError(IntEnum):
    """Message Header Error subcodes, RFC 4271 §6.1."""

    CONNECTION_NOT_SYNCHRONIZED = 1
    BAD_MESSAGE_LENGTH = 2
    BAD_MESSAGE_TYPE = 3


class OpenError(IntEnum):
    """OPEN Message Error subcodes, RFC 4271 §6.2; 7 from RFC 5492 §5."""

    UNSUPPORTED_VERSION_NUMBER = 1
    BAD_PEER_AS = 2
    BAD_BGP_IDENTIFIER = 3
    UNSUPPORTED_OPTIONAL_PARAMETER = 4
    UNACCEPTABLE_HOLD_TIME = 6
    UNSUPPORTED_CAPABILITY = 7


class UpdateError(IntEnum):
    """UPDATE Message Error subcodes, RFC 4271 §6.3."""

    MALFORMED_ATTRIBUTE_LIST = 1
    UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE = 2
    MISSING_WELL_KNOWN_ATTRIBUTE = 3
    ATTRIBUTE_FLAGS_ERROR = 4
    ATTRIBUTE_LENGTH_ERROR = 5
    INVALID_ORIGIN_ATTRIBUTE = 6
    INVALID_NEXT_HOP_ATTRIBUTE = 8
    OPTIONAL_ATTRIBUTE_ERROR = 9
    INVALID_NETWORK_FIELD = 10
    MALFORMED_AS_PATH = 11


class FsmError(IntEnum):
    """Finite State Machine Error subcodes, RFC 6608 §3."""

    UNSPECIFIED = 0
    UNEXPECTED_MESSAGE_IN_OPENSENT = 1
    UNEXPECTED_MESSAGE_IN_OPENCONFIRM = 2
    UNEXPECTED_MESSAGE_IN_ESTABLISHED = 3


class CeaseSubcode(IntEnum):
    """Cease subcodes, RFC 4486 §4 and RFC 8203."""

    MAXIMUM_PREFIXES_REACHED = 1
    ADMINISTRATIVE_SHUTDOWN = 2
    PEER_DECONFIGURED = 3
    ADMINISTRATIVE_RESET = 4
    CONNECTION_REJECTED = 5
    OTHER_CONFIGURATION_CHANGE = 6
    CONNECTION_COLLISION_RESOLUTION = 7
    OUT_OF_RESOURCES = 8
    HARD_RESET = 9  # RFC 8538


class RouteRefreshError(IntEnum):
    """ROUTE-REFRESH Message Error subcodes, RFC 7313 §5."""

    INVALID_MESSAGE_LENGTH = 1


class WellKnownCommunity(IntEnum):
    """Well-known communities, RFC 1997 §3 and the IANA registry."""

    GRACEFUL_SHUTDOWN = 0xFFFF0000  # RFC 8326
    ACCEPT_OWN = 0xFFFF0001  # RFC 7611
    LLGR_STALE = 0xFFFF0006  # RFC 9494
    NO_LLGR = 0xFFFF0007  # RFC 9494
    BLACKHOLE = 0xFFFF029A  # RFC 7999
    NO_EXPORT = 0xFFFFFF01
    NO_ADVERTISE = 0xFFFFFF02
    NO_EXPORT_SUBCONFED = 0xFFFFFF03
    NOPEER = 0xFFFFFF04  # RFC 3765
