"""A hand-built BGP peer (scapy) for RFC 7606 tests; runs INSIDE a lab namespace:

    python rawpeer.py ROOST_ADDR CASE   ->  one JSON line on stdout

It connects to roost, exchanges OPEN/KEEPALIVE (built with ``scapy.contrib.bgp``), sends a
good UPDATE for GOOD_PREFIX, then the malformed message of CASE, and reports whether the
session survived and the NOTIFICATION roost sent (decoded with scapy), if any.
"""

from __future__ import annotations

import json
import socket
import struct
import sys
import time

from scapy.config import conf  # type: ignore[import-untyped]

conf.contribs.setdefault("bgp", {})["use_2_bytes_asn"] = False
from scapy.contrib.bgp import (  # type: ignore[import-untyped]  # noqa: E402
    BGP,
    BGPNotification,
    BGPOpen,
)

MY_AS = 65001
MY_ID = "10.255.0.2"
NH = bytes([10, 255, 0, 2])
GOOD_PREFIX = "10.50.0.0/24"
NLRI = bytes([24, 10, 50, 0])

ORIGIN = bytes([0x40, 1, 1, 0])
AS_PATH = bytes([0x40, 2, 6, 2, 1]) + struct.pack("!I", MY_AS)
NEXT_HOP = bytes([0x40, 3, 4]) + NH
GOOD = ORIGIN + AS_PATH + NEXT_HOP


def update(attrs: bytes, nlri: bytes = NLRI, withdrawn: bytes = b"") -> bytes:
    body = struct.pack("!H", len(withdrawn)) + withdrawn + struct.pack("!H", len(attrs)) \
        + attrs + nlri
    return b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 2) + body


CASES: dict[str, bytes] = {
    # treat-as-withdraw (RFC 7606 §7.x)
    "bad_origin": update(bytes([0x40, 1, 1, 5]) + AS_PATH + NEXT_HOP),
    "origin_flags": update(bytes([0xC0, 1, 1, 0]) + AS_PATH + NEXT_HOP),
    "bad_community_len": update(GOOD + bytes([0xC0, 8, 3, 0, 1, 2])),
    "bad_next_hop_len": update(ORIGIN + AS_PATH + bytes([0x40, 3, 5]) + NH + b"\x00"),
    "malformed_as_path": update(ORIGIN + bytes([0x40, 2, 6, 2, 5]) + struct.pack("!I", MY_AS)
                                + NEXT_HOP),
    "missing_origin": update(AS_PATH + NEXT_HOP),
    # attribute discard
    "local_pref_ebgp": update(GOOD + bytes([0x40, 5, 4, 0, 0, 0, 200])),
    "bad_aggregator": update(GOOD + bytes([0xC0, 7, 5, 0, 0, 0xFD, 0xE9, 10])),
    "duplicate_med": update(GOOD + bytes([0x80, 4, 4, 0, 0, 0, 1])
                            + bytes([0x80, 4, 4, 0, 0, 0, 2])),
    # session reset
    "unknown_well_known": update(GOOD + bytes([0x40, 48, 1, 0])),
    "bad_length": b"\xff" * 16 + struct.pack("!HB", 18, 4),
    "bad_marker": b"\xff" * 15 + b"\x00" + struct.pack("!HB", 19, 4),
}


def read_msg(s: socket.socket, timeout: float) -> bytes | None:
    s.settimeout(timeout)
    buf = b""
    try:
        while len(buf) < 19:
            chunk = s.recv(19 - len(buf))
            if not chunk:
                return None
            buf += chunk
        length = struct.unpack("!H", buf[16:18])[0]
        while len(buf) < length:
            chunk = s.recv(length - len(buf))
            if not chunk:
                return None
            buf += chunk
    except (TimeoutError, ConnectionError):
        return None
    return buf


def main(addr: str, case: str) -> dict[str, object]:
    s = socket.create_connection((addr, 179), timeout=5)
    caps = bytes([1, 4, 0, 1, 0, 1]) + bytes([65, 4]) + struct.pack("!I", MY_AS)
    params = bytes([2, len(caps)]) + caps
    body = struct.pack("!BHH4sB", 4, MY_AS, 90, socket.inet_aton(MY_ID), len(params)) + params
    opn = b"\xff" * 16 + struct.pack("!HB", 19 + len(body), 1) + body
    # cross-check our bytes with scapy's decoder
    assert BGP(opn).getlayer(BGPOpen).my_as == MY_AS
    s.sendall(opn)
    got = [read_msg(s, 5), read_msg(s, 5)]
    types = [m[18] if m else None for m in got]
    if types[0] != 1:
        return {"error": f"no OPEN from roost: {types}"}
    s.sendall(b"\xff" * 16 + struct.pack("!HB", 19, 4))  # KEEPALIVE
    s.sendall(update(GOOD))
    time.sleep(0.7)
    s.sendall(CASES[case])
    out: dict[str, object] = {"case": case, "notification": None, "closed": False}
    deadline = time.monotonic() + 2.5
    while time.monotonic() < deadline:
        m = read_msg(s, max(0.1, deadline - time.monotonic()))
        if m is None:
            break
        if m[18] == 3:
            pkt = BGP(m)
            n = pkt.getlayer(BGPNotification)
            out["notification"] = [int(n.error_code), int(n.error_subcode)]
            out["data"] = bytes(n.data).hex() if n.data else ""
            break
    # is the connection still open?
    s.setblocking(False)
    try:
        out["closed"] = s.recv(1) == b""
    except BlockingIOError:
        out["closed"] = False
    except OSError:
        out["closed"] = True
    out["hold"] = True
    if not out["closed"] and out["notification"] is None:
        time.sleep(LINGER)  # keep the session up while the test looks at roost's RIB
    s.close()
    return out


LINGER = 0.3

if __name__ == "__main__":
    if len(sys.argv) > 3:
        LINGER = float(sys.argv[3])
    print(json.dumps(main(sys.argv[1], sys.argv[2])))
