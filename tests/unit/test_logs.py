"""JSON log lines: the fixed fields, the `extra=` fields of the daemon's session events,
and text lines left as they were."""

from __future__ import annotations

import asyncio
import io
import ipaddress
import json
import logging
import re
from collections.abc import Iterator
from datetime import datetime

import pytest

from bgp.events import SessionDown
from bgp.fsm import DownReason
from bgp.types import IPV4_UNICAST
from bgp.wire.model import Negotiated, Notification
from kernel.sink import MemorySink
from roost import config as cfg
from roost import logs
from roost.daemon import Daemon, _Handler

CONFIG = """\
[router]
asn = 65000
id = "10.0.0.1"

[[peer]]
address = "10.0.0.2"
asn = 65000
"""


@pytest.fixture
def captured() -> Iterator[tuple[io.StringIO, io.StringIO]]:
    """The "roost" logger's records as JSON lines and as text lines."""
    as_json, as_text = io.StringIO(), io.StringIO()
    handlers = [logging.StreamHandler(as_json), logging.StreamHandler(as_text)]
    handlers[0].setFormatter(logs.JsonFormatter())
    handlers[1].setFormatter(logging.Formatter(logs.TEXT_FORMAT))
    logger = logging.getLogger("roost")
    old_level = logger.level
    logger.setLevel(logging.DEBUG)
    for h in handlers:
        logger.addHandler(h)
    try:
        yield as_json, as_text
    finally:
        for h in handlers:
            logger.removeHandler(h)
        logger.setLevel(old_level)


def lines(buf: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in buf.getvalue().splitlines()]


def test_fixed_fields_extra_fields_and_exceptions(captured: tuple[io.StringIO, io.StringIO]
                                                  ) -> None:
    as_json, as_text = captured
    log = logging.getLogger("roost.test")
    log.warning("peer %s: %d thing(s)", "a", 2,
                extra={"peer": "a", "address": ipaddress.ip_address("10.0.0.2")})
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        log.exception("failed")
    first, second = lines(as_json)
    assert first["level"] == "warning" and first["logger"] == "roost.test"
    assert first["message"] == "peer a: 2 thing(s)"
    assert first["peer"] == "a" and first["address"] == "10.0.0.2"  # str() of the address
    stamp = str(first["time"])
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", stamp)
    assert datetime.fromisoformat(stamp.replace("Z", "+00:00")).tzinfo is not None
    assert second["level"] == "error" and "RuntimeError: boom" in str(second["exception"])
    assert "args" not in first and "msg" not in first and "levelno" not in first
    # Text lines carry none of the extra fields.
    assert as_text.getvalue().splitlines()[0].endswith("WARNING roost.test: peer a: 2 thing(s)")


def test_session_events_carry_peer_and_reason(captured: tuple[io.StringIO, io.StringIO]
                                              ) -> None:
    as_json, as_text = captured

    async def run() -> None:
        conf = cfg.loads(CONFIG)
        d = Daemon(conf, sink=MemorySink(), install_signals=False)
        state = d._new_peer(conf.peers[0])
        handler = _Handler(d, "10.0.0.2")
        ctx = Negotiated(asn4=True, families=frozenset({IPV4_UNICAST}), peer_asn=65000,
                         hold_time=90, peer_router_id=ipaddress.IPv4Address("10.0.0.2"))
        handler.on_established(state.peer, ctx)
        handler.on_down(state.peer, SessionDown(DownReason.NOTIFICATION_RECEIVED,
                                                Notification(6, 2, b"")))
        handler.on_down(state.peer, SessionDown(DownReason.HOLD_TIMER_EXPIRED,
                                                Notification(4, 0)))
        handler.on_down(state.peer, SessionDown(DownReason.TCP_CLOSED, None, "reset"))

    asyncio.run(run())
    records = [r for r in lines(as_json) if r.get("event") in ("established", "down")]
    up, by_peer, hold, tcp = records
    assert up["event"] == "established" and up["peer"] == "Node_10_0_0_2"
    assert up["address"] == "10.0.0.2" and up["peer_asn"] == 65000
    assert up["families"] == ["ipv4-unicast"] and up["router_id"] == "10.0.0.2"
    assert by_peer["reason"] == "notification-received"
    assert by_peer["notification"] == {"direction": "received", "code": 6, "subcode": 2,
                                       "text": Notification(6, 2).describe()}
    assert hold["reason"] == "hold-timer-expired"
    assert hold["notification"]["direction"] == "sent"  # type: ignore[index]
    assert tcp["reason"] == "tcp-closed" and tcp["detail"] == "reset"
    assert "notification" not in tcp
    # The text lines are the ones the daemon always wrote.
    text = as_text.getvalue()
    assert "Node_10_0_0_2 (10.0.0.2): Established: AS65000, router id 10.0.0.2, hold time " \
           "90 s, ipv4-unicast\n" in text
    assert "Node_10_0_0_2 (10.0.0.2): down: tcp-closed: reset; its routes are withdrawn\n" \
           in text


def test_configure_rejects_an_unknown_format() -> None:
    with pytest.raises(ValueError, match="text, json"):
        logs.configure("info", "yaml")


def test_rfc3339_is_utc_with_milliseconds() -> None:
    assert logs.rfc3339(0.25) == "1970-01-01T00:00:00.250Z"
