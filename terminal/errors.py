"""The till's refusals as the domain says them: a code, an optional reason, details.

The sale service raises `Refused`; it knows nothing of HTTP. ``terminal/api.py`` alone
turns a code into a status (``api.STATUS_OF``) and the ``{"error": …}`` body.
"""

from __future__ import annotations

from collections.abc import Mapping

from ledger.refusals import Refusal
from terminal.messages import message

Detail = int | str | bool | None


class Refused(Exception):
    """The till says no: ``code`` (stable, for programs), ``message`` (Polish, for people)."""

    def __init__(
        self,
        code: str,
        *,
        message_pl: str | None = None,
        details: Mapping[str, object] | None = None,
        reason: str | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason
        self.message = message_pl or message(code)
        # Details travel as JSON scalars: dates and the like are shown as text.
        self.details: dict[str, Detail] = {
            k: v if isinstance(v, int | str | bool | None) else str(v)
            for k, v in (details or {}).items()
        }

    @classmethod
    def of(cls, r: Refusal) -> Refused:
        """The rules engine's refusal, with the engine's own Polish sentence."""
        return cls(r.code, message_pl=r.message, details=r.details)
