"""pytest fixtures for the harness.  Register them in tests/conftest.py with::

    pytest_plugins = ["tests.harness.fixtures"]

Fixtures:
  * ``lab``: a :class:`~tests.harness.netns.Lab` whose workdir is the test's ``tmp_path``
    (configs and logs of every daemon end up there); skips unless root + netns.  The first
    use per session reaps labs whose owning process died (``reap_stale_labs``).  On
    failure the log tails of every daemon the lab started are printed (pytest shows them
    under "Captured stdout teardown").
  * ``flat2`` / ``flat3``: a lab plus hosts h1..hN on one switch (10.255.0.i/24,
    fd00:255::i/64).

Helpers: ``require_daemons(GoBgp, Bird, ...)`` skips when a daemon is not installed.
"""

from __future__ import annotations

from collections.abc import Generator, Iterator
from pathlib import Path
from typing import Any

import pytest

from .daemons import Daemon
from .netns import Host, Lab, reap_stale_labs, require_netns

_reaped = False


def require_daemons(*classes: type[Daemon]) -> None:
    missing = [c.__name__ for c in classes if not c.available()]
    if missing:
        pytest.skip(f"daemon(s) not installed: {', '.join(missing)}")


@pytest.hookimpl(hookwrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[Any]
                              ) -> Generator[None, Any, None]:
    outcome = yield
    rep = outcome.get_result()
    setattr(item, f"_harness_rep_{rep.when}", rep)


@pytest.fixture
def lab(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Lab]:
    global _reaped
    require_netns()
    if not _reaped:  # once per session: labs left behind by killed runs (dead owners only)
        _reaped = True
        reap_stale_labs()
    with Lab(tmp_path) as the_lab:
        yield the_lab
        rep = getattr(request.node, "_harness_rep_call", None)
        if rep is not None and rep.failed:
            for d in the_lab._daemons:
                tail = getattr(d, "log_tail", None)
                if callable(tail):
                    print(tail(40))
            print(f"lab {the_lab.id}: workdir {the_lab.workdir}")


@pytest.fixture
def flat2(lab: Lab) -> tuple[Lab, Host, Host]:
    h1, h2 = lab.flat(2)
    return lab, h1, h2


@pytest.fixture
def flat3(lab: Lab) -> tuple[Lab, Host, Host, Host]:
    h1, h2, h3 = lab.flat(3)
    return lab, h1, h2, h3
