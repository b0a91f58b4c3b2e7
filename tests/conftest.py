"""Suite-wide test policy.

Tests that need root, network namespaces, a real daemon or a kernel feature skip with a
clear reason on a machine that lacks it. In CI (`ROOST_NO_SKIP=1`, set by `dev.sh test` when
`CI` is set) such a skip is turned into a failure: CI must provide everything the full
suite needs, so nothing is skipped there silently.
"""

from __future__ import annotations

import os
from collections.abc import Generator

import pytest

pytest_plugins = ["tests.harness.fixtures"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, None]:
    outcome = yield
    report: pytest.TestReport = outcome.get_result()  # type: ignore[attr-defined]
    no_skip = os.environ.get("ROOST_NO_SKIP") == "1"
    if no_skip and report.skipped and not hasattr(report, "wasxfail"):
        reason = report.longrepr[2] if isinstance(report.longrepr, tuple) else str(report.longrepr)
        report.outcome = "failed"
        report.longrepr = f"skipped where nothing may be skipped (ROOST_NO_SKIP=1): {reason}"
