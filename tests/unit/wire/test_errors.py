"""OPEN, KEEPALIVE, NOTIFICATION and ROUTE-REFRESH errors (RFC 4271 §6.2, RFC 7313 §5)."""

from __future__ import annotations

import pytest

from bgp.errors import ProtocolError
from bgp.types import ErrorCode, HeaderError, OpenError, RouteRefreshError
from bgp.wire.messages import decode_message
from bgp.wire.model import DEFAULT, RouteRefresh

M = b"\xff" * 16


def open_body(version: int = 4, hold: int = 90, bgp_id: str = "01020304", opt: str = "00") -> bytes:
    return (
        bytes((version,))
        + bytes.fromhex("fde9")
        + hold.to_bytes(2, "big")
        + bytes.fromhex(bgp_id + opt)
    )


def err(msg_type: int, body: bytes) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_message(msg_type, body, DEFAULT)
    return info.value


def test_unsupported_version() -> None:
    e = err(1, open_body(version=3))
    assert (e.code, e.subcode, e.data) == (
        ErrorCode.OPEN_MESSAGE,
        OpenError.UNSUPPORTED_VERSION_NUMBER,
        b"\x00\x04",
    )


@pytest.mark.parametrize("hold", [1, 2])
def test_unacceptable_hold_time(hold: int) -> None:
    e = err(1, open_body(hold=hold))
    assert (e.code, e.subcode) == (ErrorCode.OPEN_MESSAGE, OpenError.UNACCEPTABLE_HOLD_TIME)


@pytest.mark.parametrize("hold", [0, 3, 65535])
def test_acceptable_hold_time(hold: int) -> None:
    decode_message(1, open_body(hold=hold), DEFAULT)


def test_bad_bgp_identifier() -> None:
    e = err(1, open_body(bgp_id="00000000"))
    assert (e.code, e.subcode) == (ErrorCode.OPEN_MESSAGE, OpenError.BAD_BGP_IDENTIFIER)


def test_unsupported_optional_parameter() -> None:
    e = err(1, open_body(opt="04 01 02 aabb"))
    assert (e.code, e.subcode) == (ErrorCode.OPEN_MESSAGE, OpenError.UNSUPPORTED_OPTIONAL_PARAMETER)


@pytest.mark.parametrize(
    "opt",
    [
        "05 02 03 0104",  # parameter overruns
        "04 02 04 0104",  # capability overruns its parameter
        "06 02 04 01030001",  # multiprotocol capability of 3 octets
        "03 02 01 01",  # truncated capability header
        "02 02",  # Opt Parm Len 2 but only one octet follows
    ],
)
def test_malformed_optional_parameters(opt: str) -> None:
    e = err(1, open_body(opt=opt))
    assert e.code == ErrorCode.OPEN_MESSAGE


def test_rfc9072_extended_parameters() -> None:
    caps = "01 04 0001 0001"
    got = decode_message(1, open_body(opt="ff ff 0009 02 0006" + caps), DEFAULT)
    assert got.capabilities[0].code == 1  # type: ignore[union-attr]


def test_keepalive_with_body() -> None:
    e = err(4, b"\x00")
    assert (e.code, e.subcode, e.data) == (
        ErrorCode.MESSAGE_HEADER,
        HeaderError.BAD_MESSAGE_LENGTH,
        b"\x00\x14",
    )


def test_route_refresh_bad_length() -> None:
    # RFC 7313 §5: subtypes 1 and 2 must be exactly 23 octets; data = the whole message.
    body = bytes.fromhex("0001 01 01 00")
    e = err(5, body)
    assert e.code == ErrorCode.ROUTE_REFRESH
    assert e.subcode == RouteRefreshError.INVALID_MESSAGE_LENGTH
    assert e.data == M + b"\x00\x18\x05" + body


def test_route_refresh_normal_with_orf_is_accepted() -> None:
    # RFC 5291 ORF entries follow a normal refresh; roost ignores them.
    got = decode_message(5, bytes.fromhex("0001 00 01 01 0000"), DEFAULT)
    assert isinstance(got, RouteRefresh) and got.subtype == 0


def test_short_bodies() -> None:
    assert err(3, b"\x06").subcode == HeaderError.BAD_MESSAGE_LENGTH
    assert err(5, b"\x00\x01").subcode == HeaderError.BAD_MESSAGE_LENGTH
    assert err(1, b"\x04").subcode == HeaderError.BAD_MESSAGE_LENGTH


def test_unknown_type() -> None:
    e = err(7, b"")
    assert (e.code, e.subcode, e.data) == (
        ErrorCode.MESSAGE_HEADER,
        HeaderError.BAD_MESSAGE_TYPE,
        b"\x07",
    )
