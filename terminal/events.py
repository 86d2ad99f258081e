"""Events for the cashier screen: numbered, fanned out to WebSockets, replayable."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator
from typing import Any


class EventHub:
    """Publishes JSON-able events; each subscriber gets every event once, in order.

    Every event gets an ``eid``; a reconnecting screen asks for the events after the last
    one it saw (``since``) and the hub replays them from a bounded ring buffer.
    """

    def __init__(self, *, keep: int = 256, queue_size: int = 1024) -> None:
        self._recent: deque[dict[str, Any]] = deque(maxlen=keep)
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._next_eid = 1
        self._queue_size = queue_size
        self._closed = False

    @property
    def last_eid(self) -> int:
        return self._next_eid - 1

    def publish(self, event: dict[str, Any]) -> dict[str, Any]:
        """Number the event and hand it to every subscriber (never blocks)."""
        ev = {**event, "eid": self._next_eid}
        self._next_eid += 1
        self._recent.append(ev)
        for q in list(self._subscribers):
            if q.qsize() >= self._queue_size:
                # A stuck screen must not hold the daemon back: end its subscription; it
                # reconnects and replays what it missed.
                self._subscribers.discard(q)
                while not q.empty():
                    q.get_nowait()
                q.put_nowait(None)
                continue
            q.put_nowait(ev)
        return ev

    def replay(self, since: int) -> list[dict[str, Any]]:
        """Recent events after ``since`` (all kept ones when since is older than the buffer)."""
        return [e for e in self._recent if e["eid"] > since]

    async def subscribe(self, since: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Yield replayed events after ``since``, then live ones until closed."""
        if self._closed:
            return
        q: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(q)
        seen = self.last_eid
        try:
            if since is not None:
                for e in self.replay(since):
                    yield e
            while True:
                ev = await q.get()
                if ev is None:
                    return
                if ev["eid"] > seen:
                    yield ev
        finally:
            self._subscribers.discard(q)

    def close(self) -> None:
        """End every subscription, and refuse new ones (shutdown)."""
        self._closed = True
        for q in list(self._subscribers):
            q.put_nowait(None)
        self._subscribers.clear()
