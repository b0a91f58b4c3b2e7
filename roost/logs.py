"""Log output of `roost run`: the usual text lines, or one JSON object per line.

`--log-format` on the command line is the only switch (like `--log-level`): the format
of stderr is a property of how the daemon is run (systemd journal, container log
collector), not of the BGP configuration, and a reload cannot change it.

JSON lines carry `time` (RFC 3339, UTC), `level`, `logger`, `message`, and every field
the code passes with `extra=` (`peer`, `address`, `event`, `reason`, ...; see
docs/operations.md, "Logs"). The text format ignores those fields, so its lines are the
same as without them.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

TEXT_FORMAT = "%(asctime)s %(levelname)-7s %(name)s: %(message)s"
FORMATS = ("text", "json")

#: Attributes every LogRecord has: anything else on a record came from `extra=`.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record, on one line."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": rfc3339(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in _STANDARD and not key.startswith("_") and key not in out:
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        # default=str: an address or an enum passed in `extra` still makes a valid line.
        return json.dumps(out, default=str, ensure_ascii=False)


def rfc3339(timestamp: float) -> str:
    """`2026-11-28T01:02:03.456Z` (RFC 3339 §5.6, milliseconds, UTC)."""
    when = datetime.fromtimestamp(timestamp, UTC)
    return when.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def configure(level: str, fmt: str = "text", stream: TextIO | None = None) -> None:
    """Send every logger's records to `stream` (stderr) at `level` in format `fmt`."""
    if fmt not in FORMATS:
        raise ValueError(f"log format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    handler = logging.StreamHandler(sys.stderr if stream is None else stream)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=getattr(logging, level.upper()), handlers=[handler])


__all__ = ["FORMATS", "TEXT_FORMAT", "JsonFormatter", "configure", "rfc3339"]
