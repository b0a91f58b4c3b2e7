"""`roost demo` end to end, as a user runs it (a subprocess), checked on what it prints
and on what it leaves behind (nothing: no namespace, no process, no file of its run).

1. Root with namespaces: the three topologies, every table with the expected routes
   (`via <owner> dev eth0 proto bird onlink`, `dev tunl0` across subnets), pings ok; the
   cross-subnet step explained and shown with the dry-run sink when there is no ipip.
2. The cross-subnet pair with real IPIP (needs_kernel: the VM in CI).
3. Not root: the same speakers on loopback print the routes they would install.
4. Root without the capability to create namespaces: the same fallback.
5. A topology that does not converge: exit 1, still clean.
6. Ctrl-C in the middle: exit 130, clean.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.harness.netns import require_netns, wait_for

REPO = Path(__file__).resolve().parents[2]
RUN_ID = re.compile(r"\brun (roost-demo-[0-9a-f]{4})\b")

MESH = {f"172.17.{i}.0/24": f"10.0.0.{i}" for i in range(1, 5)}
RACKS = {f"172.17.{b}.0/24": f"10.0.1.{b}" for b in (11, 12, 21, 22)}
CROSS = {"172.17.31.0/24": "198.51.100.10", "172.17.32.0/24": "203.0.113.11"}


def demo(*args: str, timeout: float = 120, python: str = sys.executable,
         user: list[str] | None = None, env: dict[str, str] | None = None
         ) -> subprocess.CompletedProcess[str]:
    cmd = [*(user or []), python, "-m", "roost", "demo", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, cwd="/",
                          env=env or dict(os.environ, PYTHONPATH=str(REPO)))


def run_id(out: str) -> str:
    m = RUN_ID.search(out)
    assert m, out
    return m.group(1)


def sections(out: str) -> dict[str, str]:
    """The output of each topology step, by topology name."""
    names = {"full mesh": "mesh", "route-reflector": "reflector", "cross-subnet": "cross-subnet"}
    parts: dict[str, str] = {}
    for chunk in re.split(r"^== \d/\d ", out, flags=re.M)[1:]:
        key = next(v for k, v in names.items() if chunk.startswith(k))
        parts[key] = chunk.split("\nsummary (")[0]
    return parts


def node_tables(section: str) -> dict[str, list[str]]:
    """Each node's printed table lines, by the block it owns."""
    tables: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in section.splitlines():
        m = re.match(r"^   \S+ \S+ owns (\S+);", line)
        if m:
            current = tables.setdefault(m.group(1), [])
        elif current is not None and line.startswith("      "):
            current.append(line.strip())
        else:
            current = None
    return tables


def assert_routes(section: str, blocks: dict[str, str], device: str, *, dry_run: bool) -> None:
    tables = node_tables(section)
    assert set(tables) == set(blocks), section
    for own, lines in tables.items():
        for block, owner in blocks.items():
            if block == own:
                want = f"blackhole {block} proto bird"
            else:
                want = f"{block} via {owner} dev {device} proto bird onlink"
            if dry_run:
                want = f"ip route replace {want}"
            assert any(line.startswith(want) for line in lines), (own, want, lines)


def assert_nothing_left(rid: str) -> None:
    """No namespace, no process, no temporary directory of run `rid`."""
    netns = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    assert rid not in netns, netns
    mine = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if rid in cmdline:
                mine.append((proc.name, cmdline))
    assert not mine, mine
    assert not list(Path(os.environ.get("TMPDIR", "/tmp")).glob(f"{rid}-*"))


def has_ipip() -> bool:
    return Path("/sys/module/ipip").exists()


# ------------------------------------------------------------------------ root


@pytest.mark.needs_root
def test_demo_all_topologies_in_namespaces() -> None:
    require_netns()
    t0 = time.monotonic()
    cp = demo()
    took = time.monotonic() - t0
    out = cp.stdout
    assert cp.returncode == 0, out + cp.stderr
    assert took < 60, f"the demo took {took:.0f} s"
    parts = sections(out)
    assert set(parts) == {"mesh", "reflector", "cross-subnet"}

    assert_routes(parts["mesh"], MESH, "eth0", dry_run=False)
    assert len(re.findall(r"container\): ok$", parts["mesh"], re.M)) == 3
    assert_routes(parts["reflector"], RACKS, "eth0", dry_run=False)
    assert "rr-a: reflects 4 routes, 3/3 sessions Established, installs none" in out
    # Across the racks, through the eBGP session of the reflectors, next hop kept.
    assert len(re.findall(r"container\): ok$", parts["reflector"], re.M)) == 2
    assert "FAILED" not in out

    cross = parts["cross-subnet"]
    if has_ipip():
        assert_routes(cross, CROSS, "tunl0", dry_run=False)
        assert len(re.findall(r"container\): ok$", cross, re.M)) == 1
    else:
        assert "SKIPPED the pings: this kernel has no ipip module" in cross
        assert "dry_run = true" in cross
        assert_routes(cross, CROSS, "tunl0", dry_run=True)
        assert re.search(r"^   cross-subnet +2 +2 +\d+\.\d s +skipped \(no ipip in this "
                         r"kernel\)$", out, re.M), out

    assert re.search(r"^   mesh +4 +12 +\d+\.\d s +3 ok, 0 failed$", out, re.M), out
    assert re.search(r"^   reflector +6 +12 +\d+\.\d s +2 ok, 0 failed$", out, re.M), out
    assert_nothing_left(run_id(out))


@pytest.mark.needs_root
@pytest.mark.needs_kernel
def test_demo_cross_subnet_through_ipip() -> None:
    require_netns()
    if not has_ipip() and subprocess.run(["modprobe", "ipip"], capture_output=True).returncode:
        pytest.skip("needs the ipip module; run it in the VM: tests/vm/run-in-vm.sh ... "
                    "pytest -m needs_kernel")
    # Generous: in the VM (emulated CPU) starting Python alone takes seconds.
    cp = demo("--topology", "cross-subnet", "--timeout", "300", timeout=600)
    assert cp.returncode == 0, cp.stdout + cp.stderr
    cross = sections(cp.stdout)["cross-subnet"]
    assert "ipip is available" in cross
    assert_routes(cross, CROSS, "tunl0", dry_run=False)
    assert len(re.findall(r"container\): ok$", cross, re.M)) == 1
    assert_nothing_left(run_id(cp.stdout))


# ------------------------------------------------------------------------ without namespaces


def _assert_loopback_run(cp: subprocess.CompletedProcess[str], reason: str) -> None:
    out = cp.stdout
    assert cp.returncode == 0, out + cp.stderr
    assert re.match(rf"run roost-demo-[0-9a-f]{{4}}: {reason}", out), out
    assert "showing the routes roost would install" in out
    parts = sections(out)
    # The same routes as in namespaces: each node sees its topology interfaces.
    assert_routes(parts["mesh"], MESH, "eth0", dry_run=True)
    assert_routes(parts["reflector"], RACKS, "eth0", dry_run=True)
    assert_routes(parts["cross-subnet"], CROSS, "tunl0", dry_run=True)
    assert "ping" not in out.split("\nsummary (")[0]
    assert re.search(r"^   reflector +6 +12 +\d+\.\d s +skipped \(no namespaces\)$", out, re.M)
    assert_nothing_left(run_id(out))


def _python_for_nobody() -> tuple[str, dict[str, str]]:
    """An interpreter user nobody can run, with this environment's packages."""
    site = [p for p in sys.path if p.endswith("site-packages")]
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(REPO), *site]))
    nobody = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    for python in (sys.executable, shutil.which("python3") or "",
                   f"/usr/bin/python{sys.version_info[0]}.{sys.version_info[1]}"):
        if not python:
            continue
        # It must also start itself again (sys.executable), as the demo does.
        cp = subprocess.run([*nobody, python, "-c", "import sys, subprocess, roost.demo, "
                             "click, pyroute2; subprocess.run([sys.executable, '-c', ''], "
                             "check=True); print(sys.version_info[:2])"],
                            capture_output=True, text=True, env=env, cwd="/")
        if cp.returncode == 0 and cp.stdout.strip() == str(tuple(sys.version_info[:2])):
            return python, env
    pytest.skip("no Python interpreter that user nobody can run with roost's packages "
                f"({sys.executable} is not reachable for nobody)")


def test_demo_not_root_prints_the_routes_it_would_install() -> None:
    if os.geteuid() == 0:
        if shutil.which("setpriv") is None:
            pytest.skip("needs setpriv (util-linux) to drop to user nobody")
        python, env = _python_for_nobody()
        user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
        cp = demo(python=python, user=user, env=env)
    else:
        cp = demo()
    _assert_loopback_run(cp, "not root: no network namespaces;")


@pytest.mark.needs_root
def test_demo_root_without_netns_capability_falls_back() -> None:
    """Root, but no capability to create a namespace (a container without them)."""
    if os.geteuid() != 0:
        pytest.skip("needs root (to drop its capabilities)")
    if shutil.which("setpriv") is None:
        pytest.skip("needs setpriv (util-linux) to drop capabilities")
    cp = demo(user=["setpriv", "--bounding-set=-all", "--inh-caps=-all"])
    _assert_loopback_run(cp, "cannot create network namespaces")


# ------------------------------------------------------------------------ failure and Ctrl-C


def test_demo_not_converging_exits_1_and_cleans_up() -> None:
    cp = demo("--no-netns", "--topology", "cross-subnet", "--timeout", "0")
    assert cp.returncode == 1, cp.stdout + cp.stderr
    assert "FAILED: x1 did not converge within 0 s" in cp.stdout
    assert re.search(r"^   cross-subnet +2 +0 +FAILED ", cp.stdout, re.M), cp.stdout
    assert_nothing_left(run_id(cp.stdout))


@pytest.mark.needs_root
def test_demo_interrupted_cleans_up() -> None:
    require_netns()
    proc = subprocess.Popen(
        [sys.executable, "-m", "roost", "demo", "--topology", "mesh"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd="/",
        env=dict(os.environ, PYTHONPATH=str(REPO)))
    assert proc.stdout is not None
    lines: list[str] = []
    try:
        while not any("waiting for convergence" in line for line in lines):
            line = proc.stdout.readline()
            assert line, "".join(lines)
            lines.append(line)
        rid = run_id("".join(lines))
        # The namespaces and daemons exist now; Ctrl-C (SIGINT to the demo only).
        wait_for(lambda: rid in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                               text=True).stdout, 5, what="namespaces")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(lines) + out + err
    assert "interrupted; daemons stopped, namespaces and files removed" in err
    assert_nothing_left(rid)
