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
        benefit: str | None = None,
    ) -> None:
        super().__init__(code)
        self.code = code
        self.reason = reason
        self.benefit = benefit  # the refused benefit's id (code benefit_unavailable)
        self.message = message_pl or message(code)
        # Details travel as JSON scalars: dates and the like are shown as text.
        self.details: dict[str, Detail] = {
            k: v if isinstance(v, int | str | bool | None) else str(v)
            for k, v in (details or {}).items()
        }

    @classmethod
    def of(cls, r: Refusal) -> Refused:
        """The rules engine's refusal as it stands: the engine maps a benefit's reason.

        ``ledger.refusals.Refusal.of_benefit`` is the one home of the contract's shape
        (code ``benefit_unavailable`` + ``reason`` + ``benefit``); this only copies it.
        """
        return cls(
            r.code, message_pl=r.message, details=r.details, reason=r.reason, benefit=r.benefit
        )
