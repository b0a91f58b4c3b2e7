"""roost's test harness: network-namespace labs and real BGP daemons.

* :mod:`tests.harness.netns` -- :class:`Lab` (switches, hosts, routers in namespaces named
  ``roost-<4 hex>-<name>``), :class:`Host` (``run``/``popen``/``routes`` inside the netns),
  :func:`require_netns` (pytest.skip unless root + netns), :func:`reap_stale_labs`.
* :mod:`tests.harness.daemons` -- :class:`GoBgp`, :class:`Bird`, :class:`Frr`,
  :class:`ExaBgp` with one shape (start/stop/restart/pause, wait_established,
  neighbor_state, rib -> RouteView data, add_route/del_route, notifications, log_tail).
* :mod:`tests.harness.fixtures` -- pytest fixtures ``lab``, ``flat2``, ``flat3`` and
  ``require_daemons``; register with ``pytest_plugins = ["tests.harness.fixtures"]`` in
  tests/conftest.py.

Typical roost interop test::

    def test_roost_gobgp(lab):
        h1, h2 = lab.flat(2)
        g = GoBgp(h2, 65002, h2.addr4, [Neighbor(h1.addr4, 65001, passive=True)],
                  originate=["10.2.0.0/24"])
        g.start()
        roost = h1.popen([sys.executable, "-m", "roost", ...], lab.workdir / "roost.log")
        g.wait_established(h1.addr4)          # roost is the active side: no GoBGP delay
        assert g.wait_route("10.1.0.0/24")[0].as_path == [65001]
"""

from __future__ import annotations

from .daemons import Bird, Daemon, ExaBgp, Frr, GoBgp, Neighbor, Notification, RouteView
from .netns import Host, Lab, Switch, reap_stale_labs, require_netns, wait_for

__all__ = [
    "Bird",
    "Daemon",
    "ExaBgp",
    "Frr",
    "GoBgp",
    "Host",
    "Lab",
    "Neighbor",
    "Notification",
    "RouteView",
    "Switch",
    "reap_stale_labs",
    "require_netns",
    "wait_for",
]
