"""RFC 7606 error handling, one malformed attribute at a time: the action taken and the
NOTIFICATION code/subcode/data that RFC 4271 §6.3 prescribes."""

from __future__ import annotations

import ipaddress

import pytest

from bgp.errors import ErrorHandling, ProtocolError
from bgp.types import IPV4_UNICAST, ErrorCode, UpdateError
from bgp.wire.attrcodec import clear_caches, decode_attributes
from bgp.wire.attributes import UnknownAttribute
from bgp.wire.messages import decode_message
from bgp.wire.model import Negotiated, Update
from bgp.wire.prefix import Nlri, Prefix

ASN4 = Negotiated(asn4=True)
ASN2 = Negotiated(asn4=False)
WITHDRAW = ErrorHandling.TREAT_AS_WITHDRAW
DISCARD = ErrorHandling.ATTRIBUTE_DISCARD
LEN = UpdateError.ATTRIBUTE_LENGTH_ERROR
FLAGS = UpdateError.ATTRIBUTE_FLAGS_ERROR


def attr(flags: int, code: int, value: bytes) -> bytes:
    if flags & 0x10:
        return bytes((flags, code)) + len(value).to_bytes(2, "big") + value
    return bytes((flags, code, len(value))) + value


ORIGIN = attr(0x40, 1, b"\x00")
AS_PATH = attr(0x40, 2, bytes.fromhex("0201 0000fde9"))
NEXT_HOP = attr(0x40, 3, bytes.fromhex("c0000201"))
BASE = {1: ORIGIN, 2: AS_PATH, 3: NEXT_HOP}


def build(
    *extra: bytes, drop: tuple[int, ...] = (), replace: dict[int, bytes] | None = None
) -> bytes:
    parts = dict(BASE)
    for code in drop:
        parts.pop(code)
    parts.update(replace or {})
    return b"".join(parts.values()) + b"".join(extra)


@pytest.fixture(autouse=True)
def _fresh_cache() -> None:
    clear_caches()


# (name, attribute bytes, action, subcode, data is the attribute?) — one row per RFC rule.
CASES: list[tuple[str, bytes, ErrorHandling, int, bool]] = [
    # RFC 7606 §7.1 ORIGIN
    ("origin-length", attr(0x40, 1, b"\x00\x00"), WITHDRAW, LEN, True),
    ("origin-value", attr(0x40, 1, b"\x03"), WITHDRAW, UpdateError.INVALID_ORIGIN_ATTRIBUTE, True),
    # RFC 7606 §7.2 AS_PATH (Malformed AS_PATH has no data, RFC 4271 §6.3)
    (
        "as-path-seg-type",
        attr(0x40, 2, bytes.fromhex("0501 0000fde9")),
        WITHDRAW,
        UpdateError.MALFORMED_AS_PATH,
        False,
    ),
    (
        "as-path-seg-zero",
        attr(0x40, 2, bytes.fromhex("0200")),
        WITHDRAW,
        UpdateError.MALFORMED_AS_PATH,
        False,
    ),
    (
        "as-path-overrun",
        attr(0x40, 2, bytes.fromhex("0202 0000fde9")),
        WITHDRAW,
        UpdateError.MALFORMED_AS_PATH,
        False,
    ),
    (
        "as-path-header",
        attr(0x40, 2, bytes.fromhex("0201 0000fde9 02")),
        WITHDRAW,
        UpdateError.MALFORMED_AS_PATH,
        False,
    ),
    (
        "as-path-as0",
        attr(0x40, 2, bytes.fromhex("0201 00000000")),
        WITHDRAW,
        UpdateError.MALFORMED_AS_PATH,
        False,
    ),  # RFC 7607
    # RFC 7606 §7.3 NEXT_HOP
    ("next-hop-length", attr(0x40, 3, b"\x0a\x00\x00"), WITHDRAW, LEN, True),
    (
        "next-hop-zero",
        attr(0x40, 3, b"\x00\x00\x00\x00"),
        WITHDRAW,
        UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
        True,
    ),
    (
        "next-hop-multicast",
        attr(0x40, 3, b"\xe0\x00\x00\x05"),
        WITHDRAW,
        UpdateError.INVALID_NEXT_HOP_ATTRIBUTE,
        True,
    ),
    # RFC 7606 §7.4, §7.5
    ("med-length", attr(0x80, 4, b"\x00\x00\x01"), WITHDRAW, LEN, True),
    ("local-pref-length", attr(0x40, 5, b"\x00" * 5), WITHDRAW, LEN, True),
    # RFC 7606 §7.6, §7.7: attribute discard
    ("atomic-aggregate-length", attr(0x40, 6, b"\x00"), DISCARD, LEN, True),
    ("aggregator-length", attr(0xC0, 7, b"\x00" * 7), DISCARD, LEN, True),
    # RFC 7606 §7.8 - §7.10, §7.14, RFC 8092 §5
    ("communities-length", attr(0xC0, 8, b"\x00" * 5), WITHDRAW, LEN, True),
    ("communities-empty", attr(0xC0, 8, b""), WITHDRAW, LEN, True),
    ("originator-id-length", attr(0x80, 9, b"\x00" * 5), WITHDRAW, LEN, True),
    ("cluster-list-length", attr(0x80, 10, b"\x00" * 6), WITHDRAW, LEN, True),
    ("ext-communities-length", attr(0xC0, 16, b"\x00" * 7), WITHDRAW, LEN, True),
    ("large-communities-length", attr(0xC0, 32, b"\x00" * 13), WITHDRAW, LEN, True),
    # RFC 7606 §3.c: flag errors take the attribute's malformed action
    ("origin-flags", attr(0xC0, 1, b"\x00"), WITHDRAW, FLAGS, True),
    ("communities-flags", attr(0x80, 8, b"\x00" * 4), WITHDRAW, FLAGS, True),
    ("med-flags", attr(0xC0, 4, b"\x00" * 4), WITHDRAW, FLAGS, True),
    ("atomic-aggregate-flags", attr(0xC0, 6, b""), DISCARD, FLAGS, True),
]


@pytest.mark.parametrize(
    ("name", "bad", "action", "subcode", "with_data"), CASES, ids=[c[0] for c in CASES]
)
def test_malformed_attribute(
    name: str, bad: bytes, action: ErrorHandling, subcode: int, with_data: bool
) -> None:
    code = bad[1]
    raw = build(replace={code: bad}) if code in BASE else build(bad)
    dec = decode_attributes(raw, ASN4, has_nlri=True)
    if action == DISCARD:
        assert dec.treat_as_withdraw is None
        assert code in dec.discarded
        return
    err = dec.treat_as_withdraw
    assert err is not None
    assert (err.code, err.subcode, err.handling) == (ErrorCode.UPDATE_MESSAGE, subcode, action)
    assert err.data == (bad if with_data else b"")


def test_next_hop_checked_only_with_nlri() -> None:
    # RFC 4760 §3: NEXT_HOP is ignored when only MP_REACH_NLRI carries NLRI.
    raw = build(replace={3: attr(0x40, 3, b"\x00\x00\x00\x00")})
    assert decode_attributes(raw, ASN4, has_nlri=False).treat_as_withdraw is None
    assert decode_attributes(raw, ASN4, has_nlri=True).treat_as_withdraw is not None


@pytest.mark.parametrize(("missing", "data"), [(1, b"\x01"), (2, b"\x02"), (3, b"\x03")])
def test_missing_well_known(missing: int, data: bytes) -> None:
    # RFC 7606 §3.d: treat-as-withdraw; RFC 4271 §6.3: data = the missing type code.
    raw = build(drop=(missing,))
    err = decode_attributes(raw, ASN4, has_nlri=True).treat_as_withdraw
    assert err is not None
    assert err.subcode == UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE
    assert err.handling == WITHDRAW and err.data == data
    # Without NLRI nothing is mandatory.
    assert decode_attributes(raw, ASN4, has_nlri=False).treat_as_withdraw is None


def test_next_hop_not_mandatory_for_mp_reach_only() -> None:
    mp = attr(0x80, 14, bytes.fromhex("0002 01 10 20010db8000000000000000000000001 00 20 20010db8"))
    dec = decode_attributes(mp + build(drop=(3,)), ASN4, has_nlri=False)
    assert dec.treat_as_withdraw is None
    dec = decode_attributes(mp + build(drop=(1,)), ASN4, has_nlri=False)
    assert dec.treat_as_withdraw is not None and dec.treat_as_withdraw.data == b"\x01"


def reset(raw: bytes, subcode: int, data: bytes | None = None) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_attributes(raw, ASN4, has_nlri=True)
    err = info.value
    assert err.handling == ErrorHandling.SESSION_RESET
    assert (err.code, err.subcode) == (ErrorCode.UPDATE_MESSAGE, subcode)
    if data is not None:
        assert err.data == data
    return err


def test_unrecognized_well_known_resets() -> None:
    bad = attr(0x40, 99, b"abc")
    reset(build(bad), UpdateError.UNRECOGNIZED_WELL_KNOWN_ATTRIBUTE, bad)


def test_mp_reach_malformed_resets() -> None:
    # RFC 7606 §7.11: session reset, Optional Attribute Error with the attribute as data.
    for value in (b"\x00\x02\x01", bytes.fromhex("0002 01 05 0000000000 00")):
        bad = attr(0x80, 14, value)
        reset(bad + build(), UpdateError.OPTIONAL_ATTRIBUTE_ERROR, bad)
    bad_nlri = attr(0x80, 14, bytes.fromhex("0002 01 10" + "00" * 16 + "00 81 00"))
    reset(bad_nlri + build(), UpdateError.OPTIONAL_ATTRIBUTE_ERROR, bad_nlri)
    bad_unreach = attr(0x80, 15, bytes.fromhex("0002 01 40 2001"))
    reset(bad_unreach + build(), UpdateError.OPTIONAL_ATTRIBUTE_ERROR, bad_unreach)


def test_mp_flags_error_resets() -> None:
    bad = attr(0xC0, 15, bytes.fromhex("000201"))
    reset(bad + build(), FLAGS, bad)


def test_duplicate_mp_resets() -> None:
    mp = attr(0x80, 15, bytes.fromhex("000201"))
    reset(mp + mp + build(), UpdateError.MALFORMED_ATTRIBUTE_LIST, b"")


def test_duplicate_attribute_keeps_first() -> None:
    # RFC 7606 §3.g: all but the first occurrence discarded.
    raw = build(attr(0xC0, 8, b"\x00\x01\x00\x02"), attr(0xC0, 8, b"\x00\x03\x00\x04"))
    dec = decode_attributes(raw, ASN4, has_nlri=True)
    assert dec.attrs is not None and dec.attrs.communities == (0x00010002,)
    assert dec.discarded == (8,) and dec.treat_as_withdraw is None


def test_unknown_optional_attributes() -> None:
    trans = attr(0xC0, 99, b"xyz")
    nontrans = attr(0x80, 98, b"abc")
    dec = decode_attributes(build(trans, nontrans), ASN4, has_nlri=True)
    assert dec.attrs is not None
    assert dec.attrs.unknown == (UnknownAttribute(99, 0xC0, b"xyz"),)
    assert dec.treat_as_withdraw is None and dec.discarded == ()


def test_attribute_overrun_is_treat_as_withdraw() -> None:
    # RFC 7606 §4: an attribute running past the field -> treat-as-withdraw, and the MP
    # attribute placed first (RFC 7606 §5.1) is still found.
    mp = attr(0x80, 15, bytes.fromhex("0002 01 20 20010db8"))
    raw = mp + build() + bytes.fromhex("c0 08 08 0001")
    dec = decode_attributes(raw, ASN4, has_nlri=True)
    assert dec.treat_as_withdraw is not None
    assert dec.treat_as_withdraw.subcode == UpdateError.MALFORMED_ATTRIBUTE_LIST
    assert dec.mp_unreach is not None and len(dec.mp_unreach.nlri) == 1
    # Fewer than three octets left for a header: the same.
    dec = decode_attributes(build() + b"\xc0\x08", ASN4, has_nlri=True)
    assert dec.treat_as_withdraw is not None


def test_strongest_action_wins() -> None:
    discard = attr(0x40, 6, b"\x00")
    withdraw = attr(0xC0, 8, b"\x00")
    dec = decode_attributes(build(discard, withdraw), ASN4, has_nlri=True)
    assert dec.treat_as_withdraw is not None and dec.treat_as_withdraw.handling == WITHDRAW
    assert 6 in dec.discarded
    with pytest.raises(ProtocolError) as info:
        decode_attributes(build(withdraw, attr(0x40, 99, b"")), ASN4, has_nlri=True)
    assert info.value.handling == ErrorHandling.SESSION_RESET


def _update(wd: bytes, attrs: bytes, nlri: bytes) -> bytes:
    return len(wd).to_bytes(2, "big") + wd + len(attrs).to_bytes(2, "big") + attrs + nlri


def test_update_treat_as_withdraw_withdraws_nlri() -> None:
    body = _update(b"", build(replace={1: attr(0x40, 1, b"\x07")}), b"\x18\xc0\x00\x02")
    upd = decode_message(2, body, ASN4)
    assert isinstance(upd, Update)
    assert upd.treat_as_withdraw is not None
    assert list(upd.announced()) == []
    assert list(upd.withdrawals()) == [(IPV4_UNICAST, (Nlri(Prefix.parse("192.0.2.0/24")),))]


def test_update_nlri_without_attributes() -> None:
    upd = decode_message(2, _update(b"", b"", b"\x08\x0a"), ASN4)
    assert isinstance(upd, Update)
    assert upd.treat_as_withdraw is not None
    assert upd.treat_as_withdraw.subcode == UpdateError.MISSING_WELL_KNOWN_ATTRIBUTE


@pytest.mark.parametrize(
    ("body", "subcode"),
    [
        (bytes.fromhex("0005 0800 0000"), UpdateError.MALFORMED_ATTRIBUTE_LIST),  # withdrawn
        (bytes.fromhex("0000 0009 400101 00"), UpdateError.MALFORMED_ATTRIBUTE_LIST),  # attrs
        (bytes.fromhex("0002 2100 0000"), UpdateError.INVALID_NETWORK_FIELD),  # /33
        (_update(b"", build(), b"\x18\xc0"), UpdateError.INVALID_NETWORK_FIELD),  # truncated
        (b"\x00", UpdateError.MALFORMED_ATTRIBUTE_LIST),
    ],
)
def test_update_framing_errors_reset(body: bytes, subcode: int) -> None:
    # RFC 7606 §5.3 / RFC 4271 §6.3: the NLRI cannot be located -> session reset.
    with pytest.raises(ProtocolError) as info:
        decode_message(2, body, ASN4)
    assert info.value.handling == ErrorHandling.SESSION_RESET
    assert (info.value.code, info.value.subcode) == (ErrorCode.UPDATE_MESSAGE, subcode)


def test_cache_shares_decoded_sets() -> None:
    raw = build(attr(0xC0, 8, b"\x00\x01\x00\x02"))
    a = decode_attributes(raw, ASN4, has_nlri=True).attrs
    b = decode_attributes(bytearray(raw), ASN4, has_nlri=True).attrs  # type: ignore[arg-type]
    assert a is b
    # The cache is per AS4 mode: the same octets mean a different path on a 2-octet session.
    c = decode_attributes(raw, ASN2, has_nlri=True)
    assert c.treat_as_withdraw is not None  # 4-octet AS_PATH read as 2-octet: malformed
    assert ipaddress.IPv4Address("192.0.2.1") == (a.next_hop if a else None)
