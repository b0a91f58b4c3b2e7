"""Conformance plugin: marks, outcome recording, and the generated docs/conformance.md.

Every test in this directory gets the ``conformance``, ``interop`` and ``needs_root`` marks
and must carry ``@pytest.mark.scenario("<id>")`` (ids in :mod:`.matrix`) and a ``daemon``
parameter.  Each test's outcome is recorded per (scenario, daemon) cell; a cell with
several tests passes only if all of them pass.

At the end of the session the Markdown matrix is written to ``docs/conformance.md`` (or
``$ROOST_CONFORMANCE_OUT``) -- but only when every expected cell has an outcome (pass or
fail), so a partial run (``-k``, a single file, skips) never overwrites it with holes.
``ROOST_WRITE_CONFORMANCE=0`` disables writing; ``=1`` also prints where it went.
"""

from __future__ import annotations

import os
import platform
import time
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from tests.harness.fixtures import require_daemons  # noqa: F401  (re-export for tests)

from .matrix import COLUMNS, NOT_YET, SCENARIOS, TITLES, UNSUPPORTED, expected_cells

REPO = Path(__file__).resolve().parents[2]
_HERE = Path(__file__).resolve().parent

# (scenario, daemon) -> list of (test id, outcome, message)
_results: dict[tuple[str, str], list[tuple[str, str, str]]] = {}
_started = time.time()


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "scenario(id): conformance scenario id (matrix row)")


def _mine(item: pytest.Item) -> bool:
    return _HERE in Path(str(item.fspath)).resolve().parents


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark our tests; drop the (scenario, daemon) combinations declared unsupported (a
    module-wide daemon fixture parametrizes every test of a module over every daemon)."""
    keep: list[pytest.Item] = []
    dropped: list[pytest.Item] = []
    for item in items:
        if not _mine(item):
            keep.append(item)
            continue
        for m in ("conformance", "interop", "needs_root"):
            item.add_marker(getattr(pytest.mark, m))
        cell = _cell(item)
        if cell is not None and (cell in UNSUPPORTED or cell[0] in NOT_YET):
            dropped.append(item)
        else:
            keep.append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


def _cell(item: pytest.Item) -> tuple[str, str] | None:
    m = item.get_closest_marker("scenario")
    if m is None or not m.args:
        return None
    cs = getattr(item, "callspec", None)
    daemon = None
    if cs is not None:  # the "daemon" parameter, or a fixture param named daemon_*
        daemon = cs.params.get("daemon") or next(
            (v for k, v in cs.params.items() if k.startswith("daemon")), None)
    if daemon is None:
        return None
    return str(m.args[0]), str(daemon)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    rep: pytest.TestReport = outcome.get_result()
    if not _mine(item):
        return
    cell = _cell(item)
    if cell is None:
        return
    if rep.when == "call" or (rep.when == "setup" and not rep.passed) or \
            (rep.when == "teardown" and rep.failed):
        res = "xfail" if hasattr(rep, "wasxfail") else rep.outcome  # passed|failed|skipped
        msg = ""
        if rep.failed or rep.skipped:
            lr = rep.longrepr
            if isinstance(lr, tuple):
                msg = str(lr[2])
            elif hasattr(lr, "reprcrash") and lr.reprcrash is not None:  # type: ignore[union-attr]
                msg = lr.reprcrash.message  # type: ignore[union-attr]
            else:
                msg = str(lr)
        if hasattr(rep, "wasxfail"):
            msg = str(rep.wasxfail)
        _results.setdefault(cell, []).append((item.nodeid, res, msg))


def _cell_text(cell: tuple[str, str]) -> tuple[str, str | None]:
    """(markdown cell, footnote or None)."""
    scen = cell[0]
    if scen in NOT_YET:
        return "not yet", NOT_YET[scen]
    if cell in UNSUPPORTED:
        return "n/s", UNSUPPORTED[cell]
    runs = _results.get(cell, [])
    if not runs:
        return "—", None
    if any(r == "failed" for _, r, _ in runs):
        bad = [f"`{n.split('::')[-1]}`: {m.splitlines()[0] if m else ''}"
               for n, r, m in runs if r == "failed"]
        return "**FAIL**", "; ".join(bad)[:400]
    if any(r == "xfail" for _, r, _ in runs):
        return "known bug", "; ".join(m for _, r, m in runs if r == "xfail")[:400]
    if all(r == "passed" for _, r, _ in runs):
        return f"pass ({len(runs)})" if len(runs) > 1 else "pass", None
    return "skipped", "; ".join(m for _, r, m in runs if r == "skipped")[:400]


def render(duration: float) -> str:
    notes: list[str] = []
    note_ids: dict[str, int] = {}
    counts = {"pass": 0, "fail": 0, "n/s": 0, "not yet": 0, "known bug": 0}
    lines = ["# Conformance matrix",
             "",
             "<!-- GENERATED by tests/conformance/conftest.py from a full run of "
             "`pytest tests/conformance`; do not edit by hand. -->",
             "",
             f"roost against real daemons in network namespaces. Generated "
             f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on "
             f"{platform.node() or 'a host'} ({os.cpu_count()} CPUs), suite runtime "
             f"{duration:.0f} s.",
             "",
             "Legend: **pass** (n = number of tests in the cell), **FAIL**, **n/s** = not "
             "supported by that daemon/peer (why: see the note), **not yet** = not implemented "
             "in roost, **known bug** = an expected failure (xfail) with the bug named.",
             ""]
    group = None
    for scen, (grp, desc) in SCENARIOS.items():
        if grp != group:
            group = grp
            lines += ["", f"## {grp}", "",
                      "| scenario | " + " | ".join(TITLES[c] for c in COLUMNS) + " |",
                      "|---|" + "---|" * len(COLUMNS)]
        cells = []
        for col in COLUMNS:
            text, note = _cell_text((scen, col))
            key = text.split(" ")[0].strip("*").lower()
            key = {"pass": "pass", "fail": "fail", "n/s": "n/s", "not": "not yet",
                   "known": "known bug"}.get(key, key)
            if key in counts:
                counts[key] += 1
            if note:
                if note not in note_ids:
                    note_ids[note] = len(notes) + 1
                    notes.append(note)
                text += f" [{note_ids[note]}]"
            cells.append(text)
        lines.append(f"| `{scen}`: {desc} | " + " | ".join(cells) + " |")
    lines += ["", "## Totals", "",
              ", ".join(f"{k}: {v}" for k, v in counts.items()), "", "## Notes", ""]
    lines += [f"{i}. {n}" for i, n in enumerate(notes, 1)]
    return "\n".join(lines) + "\n"


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    if os.environ.get("ROOST_WRITE_CONFORMANCE") == "0" or not _results:
        return
    have = {c for c, runs in _results.items()
            if runs and all(r in ("passed", "failed", "xfail") for _, r, _ in runs)}
    missing = expected_cells() - have
    tr = session.config.pluginmanager.get_plugin("terminalreporter")
    if missing:
        if tr is not None:
            tr.write_line(f"conformance: {len(missing)} cell(s) without an outcome "
                          "(partial run): docs/conformance.md not written")
        return
    out = Path(os.environ.get("ROOST_CONFORMANCE_OUT", REPO / "docs" / "conformance.md"))
    out.write_text(render(time.time() - _started))
    if tr is not None:
        tr.write_line(f"conformance: matrix written to {out}")
