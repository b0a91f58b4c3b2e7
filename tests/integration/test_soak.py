"""A short soak (`python -m bench.soak`, see docs/robustness.md) against a roost daemon
on loopback: session flaps leak no task, descriptor or memory, and a prefix flood does
not starve the keepalives of short-hold sessions."""

from __future__ import annotations

from bench import soak


def test_flaps_leak_nothing() -> None:
    r = soak.run_flaps(100, n_peers=10)
    assert soak.flap_growth_ok(r) == []
    kinds = {k.split(":")[0] for k in r["results"] if k != "retries"}
    assert kinds == set(soak.FLAP_KINDS)
    assert sum(v for k, v in r["results"].items() if k != "retries") == 100


def test_flood_does_not_expire_hold_timers() -> None:
    r = soak.run_flood(20_000, quiet=5, linger=3.0)
    assert soak.flood_ok(r) == []
    assert r["peer_side"]["max_keepalive_gap_s"] < 3
    assert r["daemon_side"]["quiet_established"] == 5


def test_status_reports_tasks_fds_and_rss() -> None:
    import asyncio

    from roost import config as cfg
    from roost.daemon import Daemon

    async def run() -> dict[str, object]:
        conf = cfg.loads('[router]\nasn = 65000\nid = "10.0.0.1"\n[kernel]\nenabled = false\n')
        return Daemon(conf, install_signals=False).status()

    status = asyncio.run(run())
    assert isinstance(status["tasks"], int) and status["tasks"] >= 1
    assert isinstance(status["fds"], int) and status["fds"] > 2
    assert isinstance(status["rss_kb"], int) and status["rss_kb"] > 1000


def test_flaps_in_process_leave_no_objects_behind() -> None:
    r = soak.run_flaps_in_process(60, n_peers=10)
    assert r["gc_objects_after"] <= r["gc_objects_before"] + soak.OBJECT_NOISE, r
    assert r["error_count"] == 0, r["errors"]
    assert sum(v for k, v in r["results"].items() if k != "retries") == 60
