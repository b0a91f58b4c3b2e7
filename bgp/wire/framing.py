"""Message framing: split a TCP byte stream into BGP messages (RFC 4271 §4.1, §6.1).

     0                   1                   2                   3
     0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |                                                               |
    +                                                               +
    |                           Marker (16 octets, all ones)        |
    +                                                               +
    |                                                               |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
    |          Length               |      Type     |
    +-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+

The buffer is sans-I/O: feed it whatever the socket returned, then drain complete frames.
"""

from __future__ import annotations

import struct

from bgp.errors import ProtocolError
from bgp.types import HEADER_LEN, MARKER, MAX_MESSAGE_LEN, ErrorCode, HeaderError, MessageType

_LEN_TYPE = struct.Struct("!HB")
_HEADER = struct.Struct("!16sHB")

# RFC 4271 §6.1 "Bad Message Length": the per-type bounds on the total length.
# (minimum, exact) — exact is None when only a minimum applies.
_BOUNDS: dict[int, tuple[int, int | None]] = {
    MessageType.OPEN: (29, None),  # §4.2
    MessageType.UPDATE: (23, None),  # §4.3
    MessageType.NOTIFICATION: (21, None),  # §4.5
    MessageType.KEEPALIVE: (19, 19),  # §4.4
    MessageType.ROUTE_REFRESH: (23, None),  # RFC 2918 §3; RFC 7313 §5 checks the rest
}

# Compact the buffer once this many consumed octets have accumulated at its head.
_COMPACT_AT = 65536


def _bad_length(length: int) -> ProtocolError:
    # RFC 4271 §6.1: "The Data field MUST contain the erroneous Length field."
    return ProtocolError(
        ErrorCode.MESSAGE_HEADER,
        HeaderError.BAD_MESSAGE_LENGTH,
        length.to_bytes(2, "big"),
        reason=f"bad message length {length}",
    )


def check_header(length: int, msg_type: int, max_len: int) -> None:
    """RFC 4271 §6.1 length and type checks of one header (marker checked by the caller)."""
    if length < HEADER_LEN or length > max_len:
        raise _bad_length(length)
    bounds = _BOUNDS.get(msg_type)
    if bounds is None:
        # "The Data field MUST contain the erroneous Type field."
        raise ProtocolError(
            ErrorCode.MESSAGE_HEADER,
            HeaderError.BAD_MESSAGE_TYPE,
            bytes((msg_type,)),
            reason=f"unknown message type {msg_type}",
        )
    minimum, exact = bounds
    if length < minimum or (exact is not None and length != exact):
        raise _bad_length(length)


class FrameBuffer:
    """Reassembles BGP messages from arbitrary TCP reads (split and coalesced).

    `next_frame()` returns `(type, body)` with the header stripped, or None when no complete
    message is buffered. A header error raises `ProtocolError`; the stream cannot be resynced
    after that, so the session must send the NOTIFICATION and close.
    """

    __slots__ = ("_buf", "_pos", "max_len")

    def __init__(self, max_len: int = MAX_MESSAGE_LEN) -> None:
        self._buf = bytearray()
        self._pos = 0
        # Raised to 65535 once RFC 8654 Extended Message is negotiated.
        self.max_len = max_len

    def feed(self, data: bytes | bytearray | memoryview) -> None:
        if self._pos >= _COMPACT_AT or (self._pos and self._pos == len(self._buf)):
            del self._buf[: self._pos]
            self._pos = 0
        self._buf += data

    def __len__(self) -> int:
        """Octets buffered and not yet returned as frames."""
        return len(self._buf) - self._pos

    def next_frame(self) -> tuple[int, memoryview] | None:
        buf = self._buf
        pos = self._pos
        if len(buf) - pos < HEADER_LEN:
            return None
        # RFC 4271 §6.1: marker not all ones -> Connection Not Synchronized.
        if buf[pos : pos + 16] != MARKER:
            raise ProtocolError(
                ErrorCode.MESSAGE_HEADER,
                HeaderError.CONNECTION_NOT_SYNCHRONIZED,
                reason="marker is not all ones",
            )
        length, msg_type = _LEN_TYPE.unpack_from(buf, pos + 16)
        check_header(length, msg_type, self.max_len)
        if len(buf) - pos < length:
            return None
        # Copy the body out: a memoryview into the bytearray would pin it and forbid the
        # resize in feed(). One copy per message is cheap next to decoding it.
        body = memoryview(bytes(buf[pos + HEADER_LEN : pos + length]))
        self._pos = pos + length
        return msg_type, body

    def frames(self) -> list[tuple[int, memoryview]]:
        """Every complete frame buffered now (stops at, and raises, the first bad header)."""
        out: list[tuple[int, memoryview]] = []
        while (frame := self.next_frame()) is not None:
            out.append(frame)
        return out


def encode_header(msg_type: int, body: bytes | bytearray | memoryview) -> bytes:
    """The full message: marker, length, type, body."""
    return _HEADER.pack(MARKER, HEADER_LEN + len(body), msg_type) + bytes(body)
