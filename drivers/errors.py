"""The drivers' own exception types; library errors are translated into these."""

from __future__ import annotations

from drivers.events import RejectReason


class DriverError(Exception):
    """Base of every error the drivers raise."""


class DecodeError(DriverError, ValueError):
    """Input that is not a usable card read; ``reason`` is the refusal code.

    The message is the reason only: the rejected data is never put in an exception,
    because exceptions end up in logs.
    """

    def __init__(self, reason: RejectReason) -> None:
        super().__init__(reason)
        self.reason: RejectReason = reason


class DeviceError(DriverError, OSError):
    """A reader device could not be opened or went away."""
