"""Whatever arrives, only ProtocolError may escape the decoder (STYLE: bounded parsing)."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bgp.errors import ProtocolError
from bgp.types import IPV4_UNICAST, IPV6_UNICAST
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_message, encode_message
from bgp.wire.model import Message, Negotiated

from .strategies import contexts, notifications, opens, route_refreshes, updates

CTXS = [
    Negotiated(asn4=True),
    Negotiated(asn4=False),
    Negotiated(
        asn4=True,
        addpath_receive=frozenset({IPV4_UNICAST, IPV6_UNICAST}),
        extended_message=True,
    ),
]


def decode_or_protocol_error(msg_type: int, body: bytes) -> None:
    for ctx in CTXS:
        try:
            decode_message(msg_type, body, ctx)
        except ProtocolError:
            pass


@settings(max_examples=1000, deadline=None)
@given(st.integers(0, 255), st.binary(max_size=300))
def test_random_bodies(msg_type: int, body: bytes) -> None:
    decode_or_protocol_error(msg_type, body)


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=600))
def test_random_stream(data: bytes) -> None:
    fb = FrameBuffer()
    fb.feed(b"\xff" * 16 + data)
    try:
        while (frame := fb.next_frame()) is not None:
            decode_or_protocol_error(*frame)
    except ProtocolError:
        pass


def _any_message(draw: st.DrawFn) -> tuple[Message, Negotiated]:
    ctx = draw(contexts())
    msg = draw(st.one_of(updates(ctx), opens(), notifications, route_refreshes))
    return msg, ctx


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_valid_messages(data: st.DataObject) -> None:
    msg, ctx = _any_message(data.draw)
    wire = bytearray(encode_message(msg, ctx)[19:])
    if not wire:
        return
    for _ in range(data.draw(st.integers(1, 6))):
        kind = data.draw(st.sampled_from(["flip", "set", "cut", "insert"]))
        pos = data.draw(st.integers(0, max(len(wire) - 1, 0)))
        if kind == "flip" and wire:
            wire[pos] ^= 1 << data.draw(st.integers(0, 7))
        elif kind == "set" and wire:
            wire[pos] = data.draw(st.sampled_from([0, 1, 0x7F, 0x80, 0xFF]))
        elif kind == "cut":
            del wire[pos:]
        else:
            wire[pos:pos] = data.draw(st.binary(min_size=1, max_size=4))
    msg_type = encode_message(msg, ctx)[18]
    try:
        decode_message(msg_type, bytes(wire), ctx)
    except ProtocolError:
        pass
