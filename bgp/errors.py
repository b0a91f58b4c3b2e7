"""Errors that carry their wire response.

Every malformed input from a peer becomes a `ProtocolError` holding the NOTIFICATION
code, subcode and data that RFC 4271 §6 prescribes, and the RFC 7606 action to take.
Local misuse of the API is a `LocalUsageError` and never reaches the wire.
"""

from __future__ import annotations

from enum import IntEnum

from bgp.types import ErrorCode


class ErrorHandling(IntEnum):
    """RFC 7606 §2 error-handling approaches, ordered by severity: the strongest wins."""

    ATTRIBUTE_DISCARD = 1
    TREAT_AS_WITHDRAW = 2
    SESSION_RESET = 3


class BgpError(Exception):
    """Base class of every error raised by the bgp package."""


class ProtocolError(BgpError):
    """A peer violated the protocol; `code`/`subcode`/`data` form the NOTIFICATION."""

    def __init__(
        self,
        code: int,
        subcode: int = 0,
        data: bytes = b"",
        handling: ErrorHandling = ErrorHandling.SESSION_RESET,
        reason: str = "",
    ) -> None:
        self.code = code
        self.subcode = subcode
        self.data = bytes(data)
        self.handling = handling
        self.reason = reason
        super().__init__(self.describe())

    def describe(self) -> str:
        try:
            name = ErrorCode(self.code).name
        except ValueError:
            name = str(self.code)
        text = f"{name}/{self.subcode}"
        if self.reason:
            text += f": {self.reason}"
        return text

    def downgraded(self, handling: ErrorHandling) -> ProtocolError:
        """The same error with another RFC 7606 action (used by the attribute decoder)."""
        return ProtocolError(self.code, self.subcode, self.data, handling, self.reason)


class LocalUsageError(BgpError):
    """The local application called the API in a way the protocol does not allow."""
