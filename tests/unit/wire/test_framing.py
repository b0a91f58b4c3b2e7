"""FrameBuffer: split and coalesced reads, and the RFC 4271 §6.1 header checks."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bgp.errors import ProtocolError
from bgp.types import ErrorCode, HeaderError
from bgp.wire.framing import FrameBuffer, encode_header
from bgp.wire.messages import encode_message
from bgp.wire.model import DEFAULT, Keepalive, Notification

KEEPALIVE = encode_message(Keepalive(), DEFAULT)
NOTIFY = encode_message(Notification(6, 2, b"x" * 40), DEFAULT)
M = b"\xff" * 16


def header(length: int, msg_type: int) -> bytes:
    return M + length.to_bytes(2, "big") + bytes((msg_type,))


def test_split_byte_by_byte() -> None:
    fb = FrameBuffer()
    stream = KEEPALIVE + NOTIFY
    frames = []
    for i in range(len(stream)):
        fb.feed(stream[i : i + 1])
        while (f := fb.next_frame()) is not None:
            frames.append((f[0], bytes(f[1])))
    assert frames == [(4, b""), (3, NOTIFY[19:])]
    assert len(fb) == 0


def test_coalesced() -> None:
    fb = FrameBuffer()
    fb.feed(KEEPALIVE * 3 + NOTIFY + KEEPALIVE[:7])
    types = [t for t, _ in fb.frames()]
    assert types == [4, 4, 4, 3]
    assert len(fb) == 7
    fb.feed(KEEPALIVE[7:])
    assert [t for t, _ in fb.frames()] == [4]


@settings(deadline=None)
@given(st.lists(st.integers(1, 40), min_size=1, max_size=50))
def test_any_split_gives_same_frames(cuts: list[int]) -> None:
    stream = (KEEPALIVE + NOTIFY) * 5
    fb = FrameBuffer()
    got: list[tuple[int, bytes]] = []
    pos = 0
    for cut in cuts:
        fb.feed(stream[pos : pos + cut])
        pos += cut
        got.extend((t, bytes(b)) for t, b in fb.frames())
    fb.feed(stream[pos:])
    got.extend((t, bytes(b)) for t, b in fb.frames())
    assert got == [(4, b""), (3, NOTIFY[19:])] * 5


def expect(data: bytes, subcode: int, err_data: bytes, max_len: int = 4096) -> None:
    fb = FrameBuffer(max_len)
    fb.feed(data)
    with pytest.raises(ProtocolError) as info:
        fb.next_frame()
    assert info.value.code == ErrorCode.MESSAGE_HEADER
    assert info.value.subcode == subcode
    assert info.value.data == err_data


def test_bad_marker() -> None:
    expect(b"\xfe" + KEEPALIVE[1:], HeaderError.CONNECTION_NOT_SYNCHRONIZED, b"")


@pytest.mark.parametrize(
    ("length", "msg_type"),
    [
        (18, 4),  # below the header
        (4097, 2),  # above the maximum
        (20, 4),  # KEEPALIVE must be exactly 19
        (28, 1),  # OPEN minimum 29
        (22, 2),  # UPDATE minimum 23
        (20, 3),  # NOTIFICATION minimum 21
        (22, 5),  # ROUTE-REFRESH minimum 23
        (0, 2),
    ],
)
def test_bad_length(length: int, msg_type: int) -> None:
    expect(
        header(length, msg_type) + bytes(64),
        HeaderError.BAD_MESSAGE_LENGTH,
        length.to_bytes(2, "big"),
    )


def test_bad_type() -> None:
    expect(header(19, 9), HeaderError.BAD_MESSAGE_TYPE, b"\x09")


def test_header_checked_before_body_arrives() -> None:
    # A bad length is reported as soon as the header is in, not after 4096 octets.
    expect(header(5000, 2), HeaderError.BAD_MESSAGE_LENGTH, (5000).to_bytes(2, "big"))


def test_extended_message_max_len() -> None:
    body = bytes(4) + bytes(5000)
    msg = encode_header(2, body)
    expect(msg, HeaderError.BAD_MESSAGE_LENGTH, len(msg).to_bytes(2, "big"))
    fb = FrameBuffer()
    fb.max_len = 65535  # RFC 8654 negotiated
    fb.feed(msg)
    frame = fb.next_frame()
    assert frame is not None and frame[0] == 2 and len(frame[1]) == len(body)


def test_encode_header() -> None:
    assert encode_header(4, b"") == KEEPALIVE
    assert encode_header(3, b"\x06\x02") == M + b"\x00\x15\x03\x06\x02"


def test_large_stream_compacts() -> None:
    fb = FrameBuffer()
    for _ in range(20000):
        fb.feed(KEEPALIVE)
        assert fb.next_frame() is not None
    assert len(fb) == 0
