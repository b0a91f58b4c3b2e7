"""Session security and robustness in network namespaces: maximum prefixes against GoBGP,
a peer that stops reading (RFC 9687 send hold timer) next to five that keep going, TCP
MD5 (RFC 2385) between roosts and with GoBGP / BIRD, GTSM (RFC 5082), and the control
socket's permissions.

    h1 roost  10.255.0.1      h2 the other side 10.255.0.2 (+ .11-.16 for the six peers)
"""

from __future__ import annotations

import asyncio
import json
import os
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

from roost import control
from roost.control import ControlServer
from tests.conformance.harness import (
    PEER4,
    PEER_ASN,
    PEER_RID,
    ROOST4,
    ROOST_ASN,
    ROOST_RID,
    Roost,
    RoostPeer,
    new_daemon,
    roost_toml,
)
from tests.harness.daemons import Bird, GoBgp, Neighbor
from tests.harness.fixtures import require_daemons
from tests.harness.netns import Lab, wait_for

REPO = Path(__file__).resolve().parents[2]
ENV = dict(os.environ, PYTHONPATH=str(REPO))

# A scripted BGP speaker run inside a namespace: one thread per session, each connects to
# roost from its own address; modes: "read" (reads and counts prefixes), "stuck" (never
# reads again after the handshake, keeps sending KEEPALIVEs), "flood:N" (announces N
# /32s, then reads). One JSON line per event on stdout.
SPEAKER = r'''
import json, socket, sys, threading, time
from ipaddress import IPv4Address
from bgp.types import IPV4_UNICAST
from bgp.wire.attributes import AsPath, AttrSet
from bgp.wire.capabilities import FourOctetAs, Multiprotocol
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import decode_message, encode_message
from bgp.wire.model import DEFAULT, Keepalive, Negotiated, Open, Update
from bgp.wire.packing import pack_announcements
from bgp.wire.prefix import Nlri, Prefix

ROOST = sys.argv[1]
LOCK = threading.Lock()
KA = encode_message(Keepalive(), DEFAULT)


def say(**kw):
    with LOCK:
        print(json.dumps(kw), flush=True)


def session(local, asn, mode):
    s = socket.socket()
    if mode == "stuck":
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a small window
    s.bind((local, 0))
    s.connect((ROOST, 179))
    caps = (Multiprotocol(IPV4_UNICAST), FourOctetAs(asn))
    s.sendall(encode_message(Open(asn=asn, hold_time=9, router_id=IPv4Address(local),
                                  capabilities=caps), DEFAULT))
    s.sendall(KA)
    frames, seen = FrameBuffer(), []
    while 4 not in seen:
        data = s.recv(65536)
        if not data:
            say(peer=local, event="closed-early")
            return
        frames.feed(data)
        while (f := frames.next_frame()) is not None:
            seen.append(f[0])
    say(peer=local, event="established")
    stop = threading.Event()

    def keepalives():
        while not stop.wait(1.0):
            try:
                s.sendall(KA)
            except OSError as exc:
                say(peer=local, event="send-failed", error=str(exc))
                return
    t = threading.Thread(target=keepalives, daemon=True)
    t.start()
    if mode.startswith("flood:"):
        n = int(mode.split(":")[1])
        ctx = Negotiated(asn4=True)
        attrs = AttrSet.make(as_path=AsPath.sequence(asn), next_hop=IPv4Address(local))
        base = int(IPv4Address("10.128.0.0"))
        nlri = [Nlri(Prefix.parse(f"{IPv4Address(base + i)}/32")) for i in range(n)]
        s.sendall(b"".join(pack_announcements(IPV4_UNICAST, attrs, nlri, ctx)))
        say(peer=local, event="flooded", prefixes=n)
    if mode == "stuck":
        t.join()  # until roost resets the connection
        return
    ctx = Negotiated(asn4=True)
    count = 0
    last = 0.0
    arrived = time.monotonic()
    gap = 0.0  # the longest silence from roost: its KEEPALIVEs must keep coming
    while True:
        try:
            data = s.recv(1 << 20)
        except OSError as exc:
            data = b""
        if not data:
            say(peer=local, event="closed", prefixes=count)
            stop.set()
            return
        frames.feed(data)
        while (f := frames.next_frame()) is not None:
            now = time.monotonic()
            gap = max(gap, now - arrived)
            arrived = now
            if f[0] == 2:
                msg = decode_message(f[0], f[1], ctx)
                for _fam, _attrs, nl in msg.announced():
                    count += len(nl)
            elif f[0] == 3:
                say(peer=local, event="notification", body=f[1].hex())
        if time.monotonic() - last > 0.5:
            last = time.monotonic()
            say(peer=local, event="count", prefixes=count, gap=round(gap, 3))


threads = []
for spec in sys.argv[2:]:
    local, asn, mode = spec.split(",")
    th = threading.Thread(target=session, args=(local, int(asn), mode))
    th.start()
    threads.append(th)
for th in threads:
    th.join()
'''


def _events(log: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    try:
        lines = log.read_text().splitlines()
    except OSError:
        return out
    for line in lines:
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def _peer_row(roost: Roost, address: str) -> dict[str, Any]:
    return roost.peer(address)


# ----------------------------------------------------------------------- max prefixes


def test_max_prefixes_teardown_and_restart_with_gobgp(lab: Lab) -> None:
    """GoBGP announces 20 routes to a roost that accepts at most 10: roost sends Cease /
    Maximum Number of Prefixes Reached, shows the peer down for "max prefixes", accepts
    it again after max_prefixes_restart and tears it down again when the routes return."""
    require_daemons(GoBgp)
    h1, h2 = lab.flat(2, v6=False)
    gobgp = new_daemon("gobgp", h2, PEER_ASN, PEER_RID, [Neighbor(ROOST4, ROOST_ASN,
                                                                   passive=True)])
    roost = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID, [RoostPeer(
        PEER4, PEER_ASN, extra={"max_prefixes": 10, "max_prefixes_restart": 3})],
        listen=[ROOST4]))
    gobgp.start()
    roost.start()
    roost.wait_peer(PEER4, timeout=30)
    assert roost.peer(PEER4)["max_prefixes"]["state"] == "ok"
    for i in range(20):
        gobgp.add_route(f"10.60.{i}.0/24")
    started = time.monotonic()
    note = gobgp.wait_notification(6, 1, direction="received", timeout=20)
    assert note.code == 6 and note.subcode == 1
    row = wait_for(lambda: (r if (r := roost.peer(PEER4))["max_prefixes"]["state"] == "down"
                            else None), 10, what="roost: peer held down")
    assert row["info"].startswith("max prefixes: ipv4-unicast:")
    assert "over the limit of 10" in row["info"]
    assert roost.route_count() == 0  # its routes went with the session
    # Back after 3 s, and down again: GoBGP still has 20 routes for us.
    wait_for(lambda: roost.peer(PEER4)["max_prefixes"]["teardowns"] >= 2, 30,
             what="roost: second teardown after the restart", on_timeout=roost.log_tail)
    took = time.monotonic() - started
    assert took >= 3.0
    assert roost.peer(PEER4)["established_count"] >= 2
    log = roost.log_path.read_text()
    assert "max prefixes: ipv4-unicast" in log and "restart in 3 s" in log


# ----------------------------------------------------------------------- send hold timer


def test_stuck_peer_is_torn_down_while_five_others_stay_up(lab: Lab) -> None:
    """Six eBGP sessions; one peer floods 100k prefixes, which roost sends on to the
    other five. One of those stops reading after the handshake (small window, keeps
    sending KEEPALIVEs): the send hold timer (5 s) ends it with NOTIFICATION code 8,
    while the four readers get every prefix and no session flaps (KEEPALIVEs kept going
    to everyone during the flood)."""
    h1, h2 = lab.flat(2, v6=False)
    # Small socket buffers on roost's side, so that a stuck peer shows within ~100 KB.
    lab._sysctl(h1.netns, "net.ipv4.tcp_wmem=4096 16384 65536")
    addrs = [f"10.255.0.{11 + i}" for i in range(6)]
    for a in addrs:
        h2.add_address(f"{a}/24", dev="eth0")
    peers = [RoostPeer(a, 65101 + i, passive=True, hold_time=9,
                       extra={"send_hold_time": 5}) for i, a in enumerate(addrs)]
    roost = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID, peers, listen=[ROOST4]))
    roost.start()
    script = h2.workdir / "speaker.py"
    script.write_text(SPEAKER)
    stuck = addrs[5]
    modes = ["flood:100000", "read", "read", "read", "read", "stuck"]
    specs = [f"{a},{65101 + i},{m}" for i, (a, m) in enumerate(zip(addrs, modes, strict=True))]
    # The flooder starts after the others are up: run the five first, then the flooder.
    log5 = h2.workdir / "five.log"
    h2.popen([sys.executable, str(script), ROOST4, *specs[1:]], log5, env=ENV, cwd=REPO)
    for a in addrs[1:]:
        roost.wait_peer(a, timeout=20)
    log1 = h2.workdir / "flooder.log"
    started = time.monotonic()
    h2.popen([sys.executable, str(script), ROOST4, specs[0]], log1, env=ENV, cwd=REPO)
    roost.wait_peer(addrs[0], timeout=20)
    row = wait_for(lambda: (r if (r := _peer_row(roost, stuck))["state"] != "Established"
                            else None), 60, what="roost: the stuck peer torn down",
                   on_timeout=lambda: f"{_peer_row(roost, stuck)}\n{roost.log_tail()}")
    took = time.monotonic() - started
    assert row["last_down"].startswith("send-hold-timer-expired (SEND_HOLD_TIMER_EXPIRED/0)")
    assert took < 45
    # The readers got all 100k prefixes; nobody else went down.
    readers = addrs[1:5]

    def counts(what: str = "prefixes") -> dict[str, Any]:
        got: dict[str, Any] = {}
        for ev in _events(log5):
            if ev.get("event") == "count":
                got[ev["peer"]] = ev[what]
        return got

    wait_for(lambda: all(counts().get(a, 0) >= 100_000 for a in readers), 60,
             what="the four readers received 100k prefixes each",
             on_timeout=lambda: f"{counts()}\n{roost.log_tail()}")
    # roost's KEEPALIVEs (every 3 s, jittered) kept coming during the flood: no silence
    # near the 9 s hold time of the readers.
    time.sleep(4)  # one more KEEPALIVE period after the flood, so every gap is counted
    gaps = counts("gap")
    assert all(gaps[a] < 4.5 for a in readers), gaps
    for a in addrs[:5]:
        r = _peer_row(roost, a)
        assert r["state"] == "Established", r
        assert r["established_count"] == 1, r
        assert r["output_queue"] < 10 * 1024 * 1024, r
    assert roost.route_count() == 100_000
    # The stuck peer's connection is gone (reset after the close timeout), not lingering.
    wait_for(lambda: not h1.run(["ss", "-Htn", "state", "established", "dst", stuck],
                                check=False).stdout.strip(), 20,
             what="the stuck connection closed")


# ----------------------------------------------------------------------- TCP MD5


def _roost_pair(lab: Lab, key1: str | None, key2: str | None, *,
                key1_file: bool = False) -> tuple[Roost, Roost]:
    """Two roosts, h1 (AS 65000) and h2 (AS 65001); `key1_file`: h1 reads its key from a
    `password_file` (mode 0600)."""
    h1, h2 = lab.flat(2, v6=False)
    p1 = RoostPeer(PEER4, PEER_ASN, password=key1)
    if key1_file and key1 is not None:
        keyfile = h1.workdir / "peer.key"
        keyfile.write_text(key1 + "\n")
        keyfile.chmod(0o600)
        p1 = RoostPeer(PEER4, PEER_ASN, extra={"password_file": str(keyfile)})
    r1 = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID, [p1],
                              listen=[ROOST4], prefixes=["10.10.1.0/24"]))
    r2 = Roost(h2, roost_toml(PEER_ASN, PEER_RID, [RoostPeer(ROOST4, ROOST_ASN, password=key2)],
                              listen=[PEER4], prefixes=["10.10.2.0/24"]))
    r1.start()
    r2.start()
    return r1, r2


def _never_established(check: Any, seconds: float) -> int:
    """Poll `check()` (a state string) for `seconds`; fail on Established. Returns the
    number of polls (so the caller knows it looked)."""
    deadline = time.monotonic() + seconds
    polls = 0
    while time.monotonic() < deadline:
        state = check()
        assert state != "Established", f"established although it must not: {state}"
        polls += 1
        time.sleep(0.25)
    return polls


def test_md5_roost_to_roost_right_key_establishes(lab: Lab) -> None:
    r1, r2 = _roost_pair(lab, "Kestrel-42", "Kestrel-42", key1_file=True)
    r1.wait_peer(PEER4, timeout=20)
    r2.wait_peer(ROOST4, timeout=20)
    r2.wait_paths("10.10.1.0/24")
    assert "Kestrel-42" not in r1.log_path.read_text() + json.dumps(r1.show("peers"))


@pytest.mark.parametrize(("key1", "key2"), [
    ("Kestrel-42", "Kestrel-43"),  # wrong key
    ("Kestrel-42", None),          # one side without
    (None, "Kestrel-42"),          # the other side without
], ids=["wrong", "h2-without", "h1-without"])
def test_md5_roost_to_roost_never_establishes(lab: Lab, key1: str | None,
                                              key2: str | None) -> None:
    r1, r2 = _roost_pair(lab, key1, key2, key1_file=True)
    # connect_retry_time = 1 s: five retry periods on each side.
    assert _never_established(lambda: r1.peer_state(PEER4), 5.0) > 10
    assert r2.peer_state(ROOST4) != "Established"
    # Both kept trying (the kernel dropped the segments, nothing else failed).
    assert r1.peer(PEER4)["established_count"] == 0
    assert r2.peer(ROOST4)["established_count"] == 0


@pytest.mark.parametrize("kind", ["gobgp", "bird"])
@pytest.mark.parametrize("side", ["roost-only", "daemon-only", "both"])
def test_md5_with_a_daemon(lab: Lab, kind: str, side: str) -> None:
    """Right key establishes; a key on one side only never does (RFC 2385 §2: a segment
    without the expected digest is dropped), checked over five connect-retry periods."""
    require_daemons(GoBgp if kind == "gobgp" else Bird)
    h1, h2 = lab.flat(2, v6=False)
    key = "Osprey-9"
    roost_key = key if side in ("roost-only", "both") else None
    daemon_key = key if side in ("daemon-only", "both") else None
    d = new_daemon(kind, h2, PEER_ASN, PEER_RID,
                   [Neighbor(ROOST4, ROOST_ASN, password=daemon_key, passive=kind == "gobgp")])
    roost = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID, [RoostPeer(PEER4, PEER_ASN,
                                                                  password=roost_key)],
                                 listen=[ROOST4], prefixes=["10.10.0.0/24"]))
    d.start()
    roost.start()
    if side == "both":
        roost.wait_peer(PEER4, timeout=30)
        d.wait_established(ROOST4, timeout=15)
        return
    assert _never_established(lambda: roost.peer_state(PEER4), 6.0) > 10
    assert d.neighbor_state(ROOST4).lower() != "established"
    assert roost.peer(PEER4)["established_count"] == 0


# ----------------------------------------------------------------------- GTSM


GTSM_CLIENT = r'''
import json, socket, sys, time
from ipaddress import IPv4Address
from bgp.wire.capabilities import FourOctetAs, Multiprotocol
from bgp.types import IPV4_UNICAST
from bgp.wire.framing import FrameBuffer
from bgp.wire.messages import encode_message
from bgp.wire.model import DEFAULT, Keepalive, Open

roost, ttl, seconds = sys.argv[1], int(sys.argv[2]), float(sys.argv[3])
s = socket.socket()
s.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, ttl)
s.settimeout(1.0)
s.connect((roost, 179))
s.sendall(encode_message(Open(asn=65001, hold_time=9, router_id=IPv4Address("10.255.0.2"),
                              capabilities=(Multiprotocol(IPV4_UNICAST), FourOctetAs(65001))),
                         DEFAULT))
frames, seen = FrameBuffer(), []
deadline = time.monotonic() + seconds
while time.monotonic() < deadline:
    try:
        data = s.recv(65536)
    except socket.timeout:
        data = None
    if data == b"":
        break
    if data:
        frames.feed(data)
        while (f := frames.next_frame()) is not None:
            seen.append(f[0])
            if f[0] == 4:
                s.sendall(encode_message(Keepalive(), DEFAULT))
print(json.dumps({"ttl": ttl, "seen": seen}), flush=True)
time.sleep(1.0)
'''


@pytest.mark.parametrize(("ttl", "accepted"), [(255, True), (254, False)])
def test_gtsm_accepts_only_ttl_255(lab: Lab, ttl: int, accepted: bool) -> None:
    """roost with ttl_security = 1 towards h2: a directly connected peer sending with TTL
    255 is accepted; the same peer sending with TTL 254 (as if one router away) never
    gets the session up (its segments are dropped by IP_MINTTL 255)."""
    h1, h2 = lab.flat(2, v6=False)
    roost = Roost(h1, roost_toml(ROOST_ASN, ROOST_RID, [RoostPeer(
        PEER4, PEER_ASN, passive=True, hold_time=9, extra={"ttl_security": 1})],
        listen=[ROOST4]))
    roost.start()
    script = h2.workdir / "gtsm.py"
    script.write_text(GTSM_CLIENT)
    log = h2.workdir / f"gtsm-{ttl}.log"
    seconds = "2" if accepted else "6"
    proc = h2.popen([sys.executable, str(script), ROOST4, str(ttl), seconds], log, env=ENV,
                    cwd=REPO)
    if accepted:
        roost.wait_peer(PEER4, timeout=10)
    else:
        assert _never_established(lambda: roost.peer_state(PEER4), 6.0) > 10
        assert roost.peer(PEER4)["established_count"] == 0
    proc.wait(timeout=20)
    (result,) = [e for e in _events(log) if "ttl" in e]
    if accepted:
        assert result["seen"][:2] == [1, 4]  # roost's OPEN and KEEPALIVE


def test_gtsm_multihop_peer_across_a_router_is_refused(lab: Lab) -> None:
    """roost (ttl_security = 1) and a roost one router away (ttl_security = 1 too, so it
    sends TTL 255, which arrives as 254): never Established. Without GTSM on either side
    (multihop) the same pair does establish: the path works, only GTSM refuses it."""
    h1 = lab.host("h1", "left", "10.1.0.2/24", gateway="10.1.0.1")
    h2 = lab.host("h2", "right", "10.2.0.2/24", gateway="10.2.0.1")
    lab.router("r", ("left", "10.1.0.1/24"), ("right", "10.2.0.1/24"))

    def config(local: str, remote: str, asn: int, rasn: int, extra: dict[str, Any]) -> str:
        return roost_toml(asn, local, [RoostPeer(remote, rasn, hold_time=9, extra=extra)],
                          listen=[local])

    r1 = Roost(h1, config("10.1.0.2", "10.2.0.2", ROOST_ASN, PEER_ASN, {"ttl_security": 1}))
    r2 = Roost(h2, config("10.2.0.2", "10.1.0.2", PEER_ASN, ROOST_ASN, {"ttl_security": 1}))
    r1.start()
    r2.start()
    assert _never_established(lambda: r1.peer_state("10.2.0.2"), 6.0) > 10
    assert r2.peer_state("10.1.0.2") != "Established"
    # Control: multihop on both sides instead of GTSM establishes across the router.
    r1.reconfigure(config("10.1.0.2", "10.2.0.2", ROOST_ASN, PEER_ASN, {"multihop": 2}))
    r2.reconfigure(config("10.2.0.2", "10.1.0.2", PEER_ASN, ROOST_ASN, {"multihop": 2}))
    r1.wait_peer("10.2.0.2", timeout=30)


# ----------------------------------------------------------------------- control socket


_CONNECT = ("import socket, sys\n"
            "s = socket.socket(socket.AF_UNIX)\n"
            "try:\n"
            "    s.connect(sys.argv[1])\n"
            "    print('connected')\n"
            "except OSError as e:\n"
            "    print('errno', e.errno)\n")


def _connect_as_nobody(path: str) -> str:
    cp = subprocess.run(["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups",
                         sys.executable, "-c", _CONNECT, path],
                        capture_output=True, text=True, timeout=30)
    assert cp.returncode == 0, cp.stderr
    return cp.stdout.strip()


@pytest.fixture
def shared_dir(request: pytest.FixtureRequest) -> Path:
    """A world-traversable directory (pytest's tmp_path is 0700: nobody could not even
    reach the socket there, and the test would pass for the wrong reason)."""
    if os.geteuid() != 0:
        pytest.skip("needs root: the socket must be owned by root and probed as nobody")
    d = Path(tempfile.mkdtemp(prefix="roost-ctl-", dir="/tmp"))
    d.chmod(0o755)

    def clean() -> None:
        for p in sorted(d.rglob("*"), reverse=True):
            p.rmdir() if p.is_dir() else p.unlink()
        d.rmdir()

    request.addfinalizer(clean)
    return d


async def test_control_socket_is_root_only(shared_dir: Path) -> None:
    path = shared_dir / "run" / "roost.ctl"  # "run" does not exist yet

    async def handler(cmd: str, req: dict[str, Any]) -> Any:
        return "pong"

    server = ControlServer(str(path), handler)
    await server.start()
    try:
        st = os.stat(path)
        assert stat.S_ISSOCK(st.st_mode)
        assert stat.S_IMODE(st.st_mode) == 0o600
        assert (st.st_uid, st.st_gid) == (os.geteuid(), os.getegid())
        assert stat.S_IMODE(os.stat(path.parent).st_mode) == 0o755
        loop = asyncio.get_running_loop()
        # root can talk to it; nobody cannot connect at all.
        assert await loop.run_in_executor(None, control.request, str(path), "ping") == "pong"
        assert await loop.run_in_executor(None, _connect_as_nobody, str(path)) == "errno 13"
        # The probe can tell the difference: opened up, nobody connects.
        os.chmod(path, 0o666)
        assert await loop.run_in_executor(None, _connect_as_nobody, str(path)) == "connected"
    finally:
        await server.stop()


def test_daemon_control_sockets_mode(lab: Lab) -> None:
    """The running daemon's own sockets, the JSON one and the BIRD-compatible one: 0600,
    root's; nobody cannot connect to either."""
    (h1,) = lab.flat(1, v6=False)
    toml = roost_toml(ROOST_ASN, ROOST_RID, [], listen=[ROOST4])
    roost = Roost(h1, toml)
    bird = str(lab.rundir / "calico" / "bird.ctl")  # its directory is created
    roost.config_path.write_text(f'{toml}\n[control]\nsocket = "{roost.socket}"\n'
                                 f'bird_socket = "{bird}"\n')
    roost.start()
    for path in (roost.socket, bird):
        st = os.stat(path)
        assert stat.S_IMODE(st.st_mode) == 0o600 and st.st_uid == 0, path
        assert _connect_as_nobody(path) == "errno 13", path
    assert stat.S_IMODE(os.stat(os.path.dirname(bird)).st_mode) == 0o755
