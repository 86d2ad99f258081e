"""structlog set up once: JSON lines for journald, console on a tty; secrets never logged."""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import MutableMapping
from typing import Any, TextIO

import structlog

# Printed card numbers (01-000018), digits-only numbers of 8-9 digits, and anything
# that could be a payment card number (12-19 digits, spaces or dashes allowed). Letters
# around a run mean it is part of something else (a hash, an id): left alone.
_EDGE_L, _EDGE_R = r"(?<![0-9A-Za-z-])", r"(?![0-9A-Za-z-])"
_CARD_RE = re.compile(_EDGE_L + r"(\d{2})-(\d{6,7})" + _EDGE_R)
_DIGITS_CARD_RE = re.compile(_EDGE_L + r"(\d{8,9})" + _EDGE_R)
_PAN_RE = re.compile(_EDGE_L + r"(?:\d[ -]?){11,18}\d" + _EDGE_R)
# Magnetic-stripe track data.
_TRACK_RE = re.compile(r"[%;][^?\s]{4,}\?")

SECRET_KEYS = frozenset(
    {
        "pin",
        "pin_hash",
        "token",
        "api_token",
        "authorization",
        "password",
        "secret",
        "private_key",
        "key",
        "cookie",
        "session",
        "signature",
        "track",
        "track1",
        "pan",
    }
)


def mask_text(text: str) -> str:
    """Mask card numbers and drop anything that looks like a payment card or a track."""
    text = _TRACK_RE.sub("[track]", text)
    text = _PAN_RE.sub("[pan]", text)
    text = _CARD_RE.sub(
        lambda m: f"{m.group(1)}-{'*' * (len(m.group(2)) - 2)}{m.group(2)[-2:]}", text
    )
    return _DIGITS_CARD_RE.sub(
        lambda m: m.group(1)[:2] + "*" * (len(m.group(1)) - 4) + m.group(1)[-2:], text
    )


def _mask_value(v: Any) -> Any:
    if isinstance(v, str):
        return mask_text(v)
    if isinstance(v, dict):
        return {
            k: "[secret]" if str(k).lower() in SECRET_KEYS else _mask_value(x) for k, x in v.items()
        }
    if isinstance(v, list | tuple):
        return [_mask_value(x) for x in v]
    return v


def mask_processor(
    _logger: Any, _name: str, event_dict: MutableMapping[str, Any]
) -> MutableMapping[str, Any]:
    """structlog processor: secrets dropped, card numbers masked in every value."""
    for k in list(event_dict):
        if k.lower() in SECRET_KEYS:
            event_dict[k] = "[secret]"
        else:
            event_dict[k] = _mask_value(event_dict[k])
    return event_dict


class _StdStream:
    """sys.stdout or sys.stderr looked up at every write, not bound once.

    Commands run in-process by tests (`terminal.cli.main([...])` under pytest's capture)
    would otherwise leave structlog writing into a capture buffer closed after that test.
    """

    def __init__(self, name: str) -> None:
        self._name = name

    def _target(self) -> TextIO:
        target: TextIO = getattr(sys, self._name)
        return target

    def write(self, text: str) -> int:
        return self._target().write(text)

    def flush(self) -> None:
        self._target().flush()

    def isatty(self) -> bool:
        return self._target().isatty()


def configure_logging(level: str = "info", fmt: str = "auto", stream: TextIO | None = None) -> None:
    """Configure structlog for the process (call once, at start)."""
    out: Any
    if stream is None or stream is sys.stdout:
        out = _StdStream("stdout")
    elif stream is sys.stderr:
        out = _StdStream("stderr")
    else:
        out = stream
    use_console = fmt == "console" or (fmt == "auto" and out.isatty())
    renderer: Any = (
        structlog.dev.ConsoleRenderer(colors=False)
        if use_console
        else structlog.processors.JSONRenderer(ensure_ascii=False)
    )
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.format_exc_info,
            mask_processor,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(
            logging.getLevelNamesMapping()[level.upper()]
        ),
        logger_factory=structlog.PrintLoggerFactory(out),
        cache_logger_on_first_use=False,
    )
