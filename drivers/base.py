"""What every reader is, and the machinery all of them share.

Readers are built from configuration in :mod:`drivers.factory`, which imports the
transports; this module imports none of them, so they can all import it.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from types import TracebackType
from typing import Protocol, Self

import structlog

from drivers.events import (
    CardRead,
    ConnState,
    ReaderEvent,
    ReaderState,
    ReadRejected,
    RejectReason,
    Source,
)
from ledger.clock import Clock

log = structlog.get_logger()

# Events kept for a slow consumer; beyond this the oldest card reads are dropped.
MAX_QUEUED_EVENTS = 256
REJECT_LOG_INTERVAL_S = 60.0


class Reader(Protocol):
    """A card reader of any kind: an async context manager yielding events."""

    name: str
    kind: str

    @property
    def state(self) -> ReaderState: ...

    def events(self) -> AsyncIterator[ReaderEvent]:
        """Yield events until the context exits; reconnects by itself."""
        ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


_CLOSED = object()


class ReaderCore:
    """Event queue, state-change reporting, dedupe and logging shared by all readers.

    Transports call :meth:`set_state`, :meth:`card` and :meth:`reject`; these are
    loop-thread only (threads hand over with ``call_soon_threadsafe``).
    """

    def __init__(self, name: str, kind: str, clock: Clock, dedupe_window_s: float) -> None:
        self.name = name
        self.kind = kind
        self.clock = clock
        self.dedupe_window_s = dedupe_window_s
        self._state = ReaderState(reader=name, kind=kind, state="disconnected", detail="starting")
        self._reported = False  # the first state is always reported, even "disconnected"
        self._queue: asyncio.Queue[ReaderEvent | object] = asyncio.Queue()
        self._last_key: str | None = None
        self._last_at = float("-inf")
        self._ever_connected = False
        # reason -> (when last logged, refusals not logged since)
        self._reject_log: dict[str, tuple[float, int]] = {}
        self._closed = False

    @property
    def state(self) -> ReaderState:
        return self._state

    def _put(self, event: ReaderEvent) -> None:
        if self._closed:
            return
        if self._queue.qsize() >= MAX_QUEUED_EVENTS:
            self._queue.get_nowait()
        self._queue.put_nowait(event)

    def set_state(self, state: ConnState, detail: str | None = None) -> None:
        """Report a state change once; repeated identical states are ignored."""
        if state == self._state.state and self._reported:
            return
        self._reported = True
        self._state = ReaderState(reader=self.name, kind=self.kind, state=state, detail=detail)
        if state == "connected":
            if self._ever_connected:
                log.info("reader_reconnected", reader=self.name, kind=self.kind)
            else:
                log.info("reader_connected", reader=self.name, kind=self.kind)
            self._ever_connected = True
        else:
            log.warning(
                "reader_unavailable", reader=self.name, kind=self.kind, state=state, detail=detail
            )
        self._put(self._state)

    def card(self, source: Source, *, number: str | None = None, uid: str | None = None) -> None:
        """Deliver a read unless it repeats the previous card within the dedupe window."""
        now = self.clock.monotonic()
        key = number if number is not None else f"uid:{uid}"
        if key == self._last_key and now - self._last_at < self.dedupe_window_s:
            self._last_at = now
            return
        self._last_key, self._last_at = key, now
        self._put(CardRead(source=source, reader=self.name, number=number, uid=uid, at=now))

    def reject(self, source: Source, reason: RejectReason) -> None:
        """Deliver a refusal; the rejected data is never passed here.

        Logged once per reason per ``REJECT_LOG_INTERVAL_S``: a reader at the wrong baud
        rate sends garbage all day, and the journal should say so once, with a count.
        """
        now = self.clock.monotonic()
        last, suppressed = self._reject_log.get(reason, (float("-inf"), 0))
        if now - last >= REJECT_LOG_INTERVAL_S:
            log.info(
                "read_rejected",
                reader=self.name,
                source=source,
                reason=reason,
                repeated=suppressed,
            )
            self._reject_log[reason] = (now, 0)
        else:
            self._reject_log[reason] = (last, suppressed + 1)
        self._put(ReadRejected(reader=self.name, source=source, reason=reason))

    def close(self) -> None:
        """End :meth:`events` for its consumer."""
        if not self._closed:
            self._queue.put_nowait(_CLOSED)
            self._closed = True

    async def events(self) -> AsyncIterator[ReaderEvent]:
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                return
            assert isinstance(item, CardRead | ReaderState | ReadRejected)
            yield item


class TaskReader:
    """A reader whose transport is one owned task, started and stopped with the context."""

    kind = "base"

    def __init__(self, name: str, clock: Clock, dedupe_window_s: float) -> None:
        self.name = name
        self.core = ReaderCore(name, self.kind, clock, dedupe_window_s)
        self._task: asyncio.Task[None] | None = None

    @property
    def state(self) -> ReaderState:
        return self.core.state

    def events(self) -> AsyncIterator[ReaderEvent]:
        return self.core.events()

    async def run(self) -> None:
        """The transport: connect, read, reconnect with backoff, until cancelled."""
        raise NotImplementedError

    async def __aenter__(self) -> Self:
        self._task = asyncio.create_task(self._guarded(), name=f"reader:{self.name}")
        return self

    async def _guarded(self) -> None:
        try:
            await self.run()
        except Exception as e:
            # A bug, not a device problem (those are retried inside run): say so once.
            log.exception(
                "reader_crashed", reader=self.name, kind=self.kind, error=type(e).__name__
            )
            self.core.set_state("error", "internal error")
            self.core.close()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    raise
        self.core.close()
