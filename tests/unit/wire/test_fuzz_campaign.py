"""A short run of the fuzz campaign (`python -m bench.fuzz`, see docs/robustness.md):
the same generator and RFC oracle, fewer messages, and a small real-TCP slice."""

from __future__ import annotations

import struct
import time

import pytest

pytest.importorskip("scapy")

from bench import fuzzgen as fg
from bench.fuzz import run_tcp, tcp_eligible

SEED = 20261128
MESSAGES = 30_000


@pytest.fixture(scope="module")
def pool() -> fg.Pool:
    return fg.make_pool(SEED, 60)


def test_short_campaign_has_no_exception_and_no_rfc_violation(pool: fg.Pool) -> None:
    t0 = time.perf_counter()
    stats = fg.campaign(SEED, MESSAGES, pool)
    elapsed = time.perf_counter() - t0
    assert stats.messages == MESSAGES
    assert stats.exceptions == 0, stats.failures[:3]
    assert stats.violations == 0, [f.as_dict() for f in stats.failures[:3]]
    # Every mutation class and every outcome kind was exercised, from both encoders.
    assert set(stats.mutations) == fg.MUTATION_CLASSES
    assert set(stats.outcomes) == {
        fg.ACCEPTED,
        fg.DISCARD,
        fg.WITHDRAW,
        fg.NOTIFICATION,
        fg.PEER_NOTIFICATION,
    }
    assert stats.sources["scapy"] > 1000
    for code in (
        "1/1",
        "1/2",
        "1/3",
        "2/1",
        "2/2",
        "2/3",
        "2/4",
        "2/6",
        "3/1",
        "3/2",
        "3/4",
        "3/9",
        "3/10",
        "5/3",
        "7/1",
    ):
        assert stats.notifications[code] > 0, code
    assert stats.slowest_cpu < fg.SLOW
    assert elapsed < 60, f"{MESSAGES} messages took {elapsed:.1f}s"


def test_cases_are_reproducible_from_seed_and_index(pool: fg.Pool) -> None:
    again = fg.make_pool(SEED, 60)
    for i in (0, 1, 777, 29_999):
        assert fg.make_case(pool, SEED, i) == fg.make_case(again, SEED, i)
    assert fg.make_case(pool, SEED, 1) != fg.make_case(pool, SEED + 1, 1)


def _case(wire: bytes, expect: fg.Expect = fg.ANY, stage: str = fg.ESTABLISHED) -> fg.Case:
    return fg.Case(0, "test", "roost", 0, stage, wire, expect)


KEEPALIVE = b"\xff" * 16 + b"\x00\x13\x04"


def test_oracle_rejects_outcomes_the_rfcs_forbid() -> None:
    bad_marker = _case(b"\xfe" + KEEPALIVE[1:], fg.only((1, 1)))
    assert fg.check_outcome(bad_marker, fg.Outcome(fg.NOTIFICATION, 1, 1), 4096) is None
    assert fg.check_outcome(bad_marker, fg.Outcome(fg.ACCEPTED), 4096) is not None
    assert (
        fg.check_outcome(bad_marker, fg.Outcome(fg.NOTIFICATION, 1, 2, b"\x00\x13"), 4096)
        is not None
    )
    long_ka = _case(b"\xff" * 16 + b"\x00\x14\x04\x00")
    # RFC 4271 §6.1: the data is the erroneous length field.
    assert fg.check_outcome(long_ka, fg.Outcome(fg.NOTIFICATION, 1, 2, b"\x00\x14"), 4096) is None
    assert (
        fg.check_outcome(long_ka, fg.Outcome(fg.NOTIFICATION, 1, 2, b"\x00\x13"), 4096) is not None
    )
    assert fg.check_outcome(long_ka, fg.Outcome(fg.NOTIFICATION, 1, 2), 4096) is not None
    upd = b"\xff" * 16 + struct.pack("!HB", 23, 2) + b"\x00\x00\x00\x00"
    # A deprecated subcode (3/7) or a code of another message type is never right.
    assert fg.check_outcome(_case(upd), fg.Outcome(fg.NOTIFICATION, 3, 7), 4096) is not None
    assert fg.check_outcome(_case(upd), fg.Outcome(fg.NOTIFICATION, 2, 2), 4096) is not None
    # 3/4 must carry the attribute; 2/1 the version.
    assert (
        fg.check_outcome(_case(upd), fg.Outcome(fg.NOTIFICATION, 3, 4, b"\x01"), 4096) is not None
    )
    opn = b"\xff" * 16 + struct.pack("!HB", 29, 1) + bytes(10)
    assert (
        fg.check_outcome(_case(opn, stage=fg.OPEN_SENT), fg.Outcome(fg.NOTIFICATION, 2, 1), 4096)
        is not None
    )
    # A half-received message must not be answered at all.
    half = _case(KEEPALIVE[:10])
    assert fg.check_outcome(half, fg.Outcome(fg.ACCEPTED), 4096) is None
    assert fg.check_outcome(half, fg.Outcome(fg.NOTIFICATION, 1, 1), 4096) is not None


def test_minimise_keeps_the_failure_and_shrinks() -> None:
    body = bytes(range(40)) + b"\xab" + bytes(range(40))
    wire = b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body
    small = fg.minimise(wire, lambda w: b"\xab" in w[19:])
    assert small[19:] == b"\xab"
    assert struct.unpack_from("!H", small, 16)[0] == len(small)


def test_tcp_slice_against_a_running_daemon(pool: fg.Pool) -> None:
    rigs = [fg.SessionRig(p) for p in fg.profiles()]
    stats = fg.Stats()
    cases: list[tuple[fg.Case, fg.Outcome]] = []
    i = 0
    while len(cases) < 100:
        case = fg.make_case(pool, SEED, 1_000_000 + i)
        i += 1
        out = fg.run_one(rigs, case, stats)
        if out is not None and tcp_eligible(case):
            cases.append((case, out))
    assert not stats.failures
    tcp = run_tcp(cases, n_peers=16)
    assert tcp.cases == 100
    assert tcp.mismatches == [], tcp.mismatches[:3]
    assert tcp.daemon_alive
    assert tcp.daemon_tracebacks == 0


@pytest.mark.parametrize(
    "seed_input",
    [
        # Found by atheris (bench/atheris_fuzz.py): an OPEN with the Extended Message
        # capability accepted in OpenSent, then a 65535-octet header (RFC 8654 §4 allows it).
        "AwA5AQT96gBaCgAAAhwCGgEEAAEAAQEEAAIAAQIABgBFCAABAQMAAgED" + "/" * 92,
        # The same with a capability 6 of length 2, which roost accepts as Extended Message.
        "AwA5AQT96gBaCgAAAhwCGgEE+QAAAQEEAgAAAQYCAABFCP//////////////////////////////////Aef//wM=",
    ],
)
def test_oracle_applies_rfc8654_after_an_accepted_open(seed_input: str) -> None:
    import base64

    data = base64.b64decode(seed_input)
    profile, stage = data[0] & 1, fg.OPEN_SENT if data[0] & 2 else fg.ESTABLISHED
    case = fg.Case(0, "atheris", "atheris", profile, stage, fg.MARKER + data[1:], fg.ANY)
    out, _ = fg.run_case(fg.SessionRig(fg.profiles()[profile]), case)
    assert fg.check_outcome(case, out, fg.max_len_of(case)) is None
