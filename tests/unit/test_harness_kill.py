"""`Lab.kill_pids(grace=0)` (what `Daemon.kill` uses) is a crash: SIGKILL and nothing else.

It used to send SIGTERM first and SIGKILL right after; BIRD answers SIGTERM by sending its
peers a Cease (Administrative Shutdown) within about a millisecond, usually before the
SIGKILL lands, so "kill -9 BIRD" in the graceful restart interop test really was a clean
shutdown, which (rightly) ends graceful restart on the helper. No namespaces needed here.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.harness.netns import Lab

# Writes a marker when it gets SIGTERM (and keeps running), says "ready" once it can.
_CHILD = """\
import signal, sys, time
def on_term(signum, frame):
    open(sys.argv[1], "w").write("SIGTERM")
signal.signal(signal.SIGTERM, on_term)
print("ready", flush=True)
while True:
    time.sleep(1)
"""


def _spawn(lab: Lab, marker: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, str(marker)],
                            stdout=subprocess.PIPE, text=True)
    lab.track(proc)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "ready"
    return proc


def test_kill_without_grace_sends_sigkill_only(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with Lab(tmp_path / "lab") as lab:
        marker = tmp_path / "term"
        proc = _spawn(lab, marker)
        sent: list[int] = []
        real = lab._signal_pids

        def spy(pids: set[int], sig: int) -> None:
            sent.append(sig)
            real(pids, sig)

        monkeypatch.setattr(lab, "_signal_pids", spy)
        lab.kill_pids({proc.pid}, grace=0)
        assert proc.wait(5) == -signal.SIGKILL
        assert sent == [signal.SIGKILL]
        assert not marker.exists(), "the process saw a SIGTERM: no crash but a shutdown"


def test_kill_with_grace_still_asks_first(tmp_path: Path) -> None:
    with Lab(tmp_path / "lab") as lab:
        marker = tmp_path / "term"
        proc = _spawn(lab, marker)
        lab.kill_pids({proc.pid}, grace=0.3)  # ignores SIGTERM: SIGKILL after the grace
        assert proc.wait(5) == -signal.SIGKILL
        assert marker.read_text() == "SIGTERM"
