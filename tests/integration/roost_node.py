"""A roost daemon inside a lab host, driven through its command line (`roost run`,
`roost show ... --json`): what the integration tests share."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from tests.harness.netns import Host, wait_for

REPO = Path(__file__).resolve().parents[2]


class RoostNode:
    """`roost run -c <workdir>/roost.toml` in `host`, tracked by PID by the lab."""

    def __init__(self, host: Host, config: str) -> None:
        self.host = host
        self.name = host.name
        self.socket = str(host.lab.rundir / f"{host.name}.roost.ctl")
        self.config_path = host.workdir / "roost.toml"
        self.config_path.write_text(config + f'\n[control]\nsocket = "{self.socket}"\n')
        self.log_path = host.workdir / "roost.log"
        self.proc: subprocess.Popen[Any] | None = None
        self.run_args: list[str] = []  # extra `roost run` options, e.g. ["-R"]

    def start(self) -> None:
        env = dict(os.environ, PYTHONPATH=str(REPO))
        self.proc = self.host.popen(
            [sys.executable, "-m", "roost", "run", "-c", str(self.config_path),
             "--log-level", "debug", *self.run_args],
            self.log_path, env=env, cwd=REPO,
        )

    def stop(self, timeout: float = 10) -> int:
        """SIGTERM (Cease to every peer), wait for exit; returns the exit code."""
        assert self.proc is not None
        os.kill(self.proc.pid, signal.SIGTERM)
        code = self.proc.wait(timeout)
        self.proc = None
        return code

    def show(self, *args: str) -> Any:
        """`show ARGS` straight over the control socket (fast, for polling)."""
        from roost import control

        cmd = "show " + args[0]
        extra = {"prefix": args[1]} if len(args) > 1 else {}
        return control.request(self.socket, cmd, timeout=5, **extra)

    def cli_show(self, *args: str) -> Any:
        """`roost show ARGS --json` through the command line."""
        cp = subprocess.run(
            [sys.executable, "-m", "roost", "show", *args, "--json", "--socket", self.socket],
            capture_output=True, text=True, timeout=10, cwd=REPO,
            env=dict(os.environ, PYTHONPATH=str(REPO)),
        )
        if cp.returncode != 0:
            raise RuntimeError(f"roost show {' '.join(args)} on {self.name}: {cp.stderr}")
        return json.loads(cp.stdout)

    def best_routes(self, cli: bool = False) -> dict[str, dict[str, Any]]:
        """prefix -> {"next_hop", "from", "kernel"} of the best path (`show routes`)."""
        out = {}
        for route in (self.cli_show if cli else self.show)("routes"):
            for path in route["paths"]:
                if path["best"]:
                    out[route["prefix"]] = {**path, "kernel": route["kernel"]}
        return out

    def kernel_routes(self) -> list[str]:
        """`ip route` lines of this namespace installed by roost (proto bird)."""
        return [r for r in self.host.routes() if "proto bird" in r]

    def log_tail(self, n: int = 40) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError as exc:
            return f"<no log: {exc}>"
        return f"--- {self.name} roost log ---\n" + "\n".join(lines[-n:])

    def wait_established(self, count: int, timeout: float = 20) -> None:
        wait_for(lambda: sum(p["state"] == "Established" for p in self.show("peers")) >= count,
                 timeout, what=f"{count} sessions Established on {self.name}",
                 on_timeout=self.log_tail)
