"""Micro-benchmark of the UPDATE codec: packing (encode) and decoding, in prefixes/second.

    python bench/codec.py [--prefixes 100000] [--repeat 3]

A realistic full-feed mix: IPv4 /24-/32 prefixes sharing a few attribute sets (AS path,
communities, MED/LOCAL_PREF), packed by `bgp.wire.packing` into 4096-octet UPDATEs, plus
10% IPv6 prefixes in MP_REACH_NLRI. Decode goes through FrameBuffer and decode_message,
as the session does. The attribute cache is cleared before every run so the first
occurrence of each attribute set is really decoded.
"""

from __future__ import annotations

import argparse
import ipaddress
import random
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bgp.types import IPV4_UNICAST, IPV6_UNICAST, Family
from bgp.wire.attrcodec import clear_caches
from bgp.wire.attributes import AsPath, AttrSet, LargeCommunity
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_message
from bgp.wire.model import Negotiated, Update
from bgp.wire.packing import pack_announcements
from bgp.wire.prefix import Nlri, Prefix


def workload(n: int, rng: random.Random) -> list[tuple[Family, AttrSet, list[Nlri]]]:
    n6 = n // 10
    n4 = n - n6
    sets = [
        AttrSet.make(
            as_path=AsPath.sequence(65000 + i, 174, 3356, 4200000000 + i, 13335 + i),
            next_hop=ipaddress.IPv4Address(f"192.0.2.{i + 1}"),
            med=i * 10,
            local_pref=100,
            communities=(0xFDE80000 + i, 0xFDE90064, 0xFFFFFF01),
            large_communities=(LargeCommunity(4200000000, i, 1),),
        )
        for i in range(8)
    ]
    groups: list[tuple[Family, AttrSet, list[Nlri]]] = []
    per = n4 // len(sets)
    seen: set[Prefix] = set()
    for i, attrs in enumerate(sets):
        routes = []
        while len(routes) < per + (n4 % len(sets) if i == 0 else 0):
            length = rng.choice((24, 24, 24, 24, 23, 22, 25, 28, 32))
            addr = rng.getrandbits(32) & ~((1 << (32 - length)) - 1)
            p = Prefix(1, length, addr)
            if p not in seen:
                seen.add(p)
                routes.append(Nlri(p))
        groups.append((IPV4_UNICAST, attrs, routes))
    nh6 = ipaddress.IPv6Address("2001:db8::1")
    ll6 = ipaddress.IPv6Address("fe80::1")
    for i in range(2):
        attrs = sets[i].replace(next_hop=nh6, link_local_next_hop=ll6)
        routes = [
            Nlri(Prefix(2, 48, (0x2001 << 112) | (rng.getrandbits(32) << 80)))
            for _ in range(n6 // 2 + (n6 % 2 if i == 0 else 0))
        ]
        groups.append((IPV6_UNICAST, attrs, routes))
    return groups


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--prefixes", type=int, default=100_000)
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    ctx = Negotiated(asn4=True, families=frozenset({IPV4_UNICAST, IPV6_UNICAST}))
    groups = workload(args.prefixes, random.Random(179))
    total = sum(len(r) for _, _, r in groups)

    best_enc = best_dec = float("inf")
    msgs: list[bytes] = []
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        msgs = []
        for family, attrs, routes in groups:
            msgs.extend(pack_announcements(family, attrs, routes, ctx))
        best_enc = min(best_enc, time.perf_counter() - t0)

    stream = b"".join(msgs)
    decoded = 0
    for _ in range(args.repeat):
        clear_caches()
        t0 = time.perf_counter()
        fb = FrameBuffer()
        fb.feed(stream)
        decoded = 0
        while (frame := fb.next_frame()) is not None:
            upd = decode_message(frame[0], frame[1], ctx)
            assert isinstance(upd, Update)
            decoded += len(upd.nlri) + (len(upd.mp_reach.nlri) if upd.mp_reach else 0)
        best_dec = min(best_dec, time.perf_counter() - t0)
    assert decoded == total, (decoded, total)

    print(
        f"python {sys.version.split()[0]}, {total} prefixes "
        f"({sum(len(r) for f, _, r in groups if f == IPV6_UNICAST)} IPv6), "
        f"{len(msgs)} UPDATEs, {len(stream)} octets, best of {args.repeat}"
    )
    print(
        f"encode (pack_announcements): {total / best_enc:12,.0f} prefixes/s  "
        f"({best_enc * 1000:.1f} ms)"
    )
    print(
        f"decode (FrameBuffer + decode_message): {total / best_dec:12,.0f} prefixes/s  "
        f"({best_dec * 1000:.1f} ms)"
    )


if __name__ == "__main__":
    main()
