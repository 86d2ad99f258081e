"""Contactless (PC/SC) readers through pcscd and pyscard.

One thread waits in ``SCardGetStatusChange`` (with the ``\\\\?PnP?\\Notification``
pseudo-reader for hot-plug), reads the UID with ``FF CA 00 00 00`` when a card
arrives, and hands events to asyncio with ``call_soon_threadsafe``. pcscd going away
(restart, crash) ends the context; the thread makes a new one with backoff. Closing
the reader sets a flag and calls ``SCardCancel``.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Callable
from types import TracebackType
from typing import Any, Self

import structlog
from smartcard import scard

from config.backoff import Backoff
from drivers.base import ReaderCore
from drivers.deliver import deliver_uid
from drivers.events import ConnState, ReaderEvent, ReaderState
from ledger.clock import Clock

log = structlog.get_logger()

PNP_NOTIFICATION = "\\\\?PnP?\\Notification"
GET_UID_APDU = [0xFF, 0xCA, 0x00, 0x00, 0x00]
# Upper bound on how long close() can wait if SCardCancel races the thread.
WAIT_MS = 1000


def uid_from_response(resp: list[int]) -> bytes | None:
    """The UID of a ``FF CA 00 00 00`` reply, or None if it is not a success reply."""
    if len(resp) < 3 or resp[-2:] != [0x90, 0x00]:
        return None
    return bytes(b & 0xFF for b in resp[:-2])


class PcscReader:
    """A PC/SC contactless reader selected by a reader-name substring ('' = any)."""

    kind = "pcsc"

    def __init__(
        self,
        name: str,
        match: str,
        clock: Clock,
        *,
        dedupe_window_s: float = 1.5,
        backoff: Backoff | None = None,
    ) -> None:
        self.name = name
        self.match = match
        self.core = ReaderCore(name, self.kind, clock, dedupe_window_s)
        self.backoff = backoff or Backoff()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._context: Any = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._posted_state: ConnState | None = None  # thread side: last state handed over
        self._logged_error: str | None = None  # thread side: an unexpected error, logged once

    @property
    def state(self) -> ReaderState:
        return self.core.state

    def events(self) -> AsyncIterator[ReaderEvent]:
        return self.core.events()

    async def __aenter__(self) -> Self:
        self._loop = asyncio.get_running_loop()
        self._stop.clear()
        self._posted_state = None
        self._logged_error = None
        self._thread = threading.Thread(target=self._main, name=f"pcsc:{self.name}", daemon=True)
        self._thread.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 5.0
        while thread is not None and thread.is_alive() and loop.time() < deadline:
            # Cancel again until the thread is out: a cancel that lands between two waits
            # is lost, and the next wait would sit out its whole timeout.
            with self._lock:
                if self._context is not None:
                    scard.SCardCancel(self._context)
            await asyncio.to_thread(thread.join, 0.05)
        self.core.close()

    # -- thread side -------------------------------------------------------------------

    def _post(self, fn: Callable[..., None], *args: Any, **kwargs: Any) -> None:
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        # RuntimeError: the loop closed between the check and the call.
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(lambda: fn(*args, **kwargs))

    def _set_state(self, state: ConnState, detail: str | None = None) -> None:
        if state == self._posted_state:
            return
        self._posted_state = state
        self._post(self.core.set_state, state, detail)

    def _main(self) -> None:
        while not self._stop.is_set():
            rc, context = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
            if rc != scard.SCARD_S_SUCCESS:
                self._set_state("error", "pcscd unavailable")
                self._stop.wait(self.backoff.next_delay())
                continue
            with self._lock:
                self._context = context
            try:
                if self._stop.is_set():
                    return
                self._watch(context)
            except Exception as e:  # the thread must survive anything pyscard throws
                if self._logged_error != type(e).__name__:
                    self._logged_error = type(e).__name__
                    log.exception("pcsc_thread_error", reader=self.name, error=type(e).__name__)
                self._set_state("error", "pcsc error")
            finally:
                with self._lock:
                    self._context = None
                scard.SCardReleaseContext(context)
            self._stop.wait(self.backoff.next_delay())

    def _list_readers(self, context: Any) -> list[str] | None:
        rc, readers = scard.SCardListReaders(context, [])
        if rc == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if rc != scard.SCARD_S_SUCCESS:
            return None
        return [r for r in readers if self.match in r]

    def _watch(self, context: Any) -> None:
        """Wait for card and reader changes until pcscd fails or we are stopped."""
        readers = self._list_readers(context)
        if readers is None:
            self._set_state("error", "pcscd unavailable")
            return
        states: dict[str, int] = dict.fromkeys(readers, scard.SCARD_STATE_UNAWARE)
        pnp_state = scard.SCARD_STATE_UNAWARE
        while not self._stop.is_set():
            if states:
                self.backoff.reset()
                self._logged_error = None
                self._set_state("connected", next(iter(states)))
            else:
                self._set_state("disconnected", f"no reader matching {self.match!r}")
            query = [(PNP_NOTIFICATION, pnp_state)] + [(r, s) for r, s in states.items()]
            rc, result = scard.SCardGetStatusChange(context, WAIT_MS, query)
            if rc == scard.SCARD_E_TIMEOUT:
                continue
            if rc == scard.SCARD_E_CANCELLED:
                return
            if rc in (scard.SCARD_E_UNKNOWN_READER, scard.SCARD_E_READER_UNAVAILABLE):
                # A reader went away between listing and waiting: list again.
                now = self._list_readers(context)
                if now is None:
                    self._set_state("error", "pcscd unavailable")
                    return
                states = {r: states.get(r, scard.SCARD_STATE_UNAWARE) for r in now}
                continue
            if rc != scard.SCARD_S_SUCCESS:
                self._set_state("error", "pcscd unavailable")
                return
            relist = False
            for reader, event_state, _atr in result:
                if reader == PNP_NOTIFICATION:
                    if event_state & scard.SCARD_STATE_CHANGED:
                        relist = True
                    pnp_state = event_state & ~scard.SCARD_STATE_CHANGED
                    continue
                prev = states.get(reader)
                if prev is None:
                    continue
                if event_state & (scard.SCARD_STATE_UNKNOWN | scard.SCARD_STATE_IGNORE):
                    relist = True
                    continue
                present = bool(event_state & scard.SCARD_STATE_PRESENT) and not (
                    event_state & scard.SCARD_STATE_MUTE
                )
                was_present = bool(prev & scard.SCARD_STATE_PRESENT)
                states[reader] = event_state & ~scard.SCARD_STATE_CHANGED
                if present and not was_present:
                    self._read_uid(context, reader)
            if relist:
                now = self._list_readers(context)
                if now is None:
                    self._set_state("error", "pcscd unavailable")
                    return
                states = {r: states.get(r, scard.SCARD_STATE_UNAWARE) for r in now}

    def _read_uid(self, context: Any, reader: str) -> None:
        rc, card, protocol = scard.SCardConnect(
            context,
            reader,
            scard.SCARD_SHARE_SHARED,
            scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
        )
        if rc != scard.SCARD_S_SUCCESS:
            return  # taken away before we could talk to it: no read
        try:
            rc, resp = scard.SCardTransmit(card, protocol, GET_UID_APDU)
        finally:
            scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
        if rc != scard.SCARD_S_SUCCESS:
            return  # removed mid-APDU: no read
        log.debug("pcsc_uid_reply", reader=self.name, size=len(resp), sw=bytes(resp[-2:]).hex())
        if len(resp) < 2:
            return  # the card left the field mid-APDU: vpcd and some readers answer nothing
        uid = uid_from_response(list(resp))
        self._post(deliver_uid, self.core, uid if uid is not None else b"")
