"""An async server run on its own event loop in a thread, for tests whose client blocks.

Schemathesis calls the server synchronously; the server needs a running loop. ``serve``
starts ``up`` (an async context manager yielding the server's URL) in a thread, returns
the URL once it is up, and stops it when the ``with`` block ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractAsyncContextManager


@contextlib.contextmanager
def serve(
    up: Callable[[], AbstractAsyncContextManager[str]], *, what: str, timeout: float = 60
) -> Iterator[str]:
    """The URL of the server ``up()`` starts; the server stops when the block ends."""
    started = threading.Event()
    box: dict[str, object] = {}
    loop = asyncio.new_event_loop()
    stop = asyncio.Event()

    async def main() -> None:
        try:
            async with up() as url:
                box["url"] = url
                started.set()
                await stop.wait()
        except BaseException as e:
            box["error"] = e
            started.set()
            raise

    thread = threading.Thread(target=loop.run_until_complete, args=(main(),), daemon=True)
    thread.start()
    assert started.wait(timeout), f"{what} did not start within {timeout:g} s"
    if "error" in box:
        raise RuntimeError(f"{what} failed: {box['error']!r}")
    try:
        yield str(box["url"])
    finally:
        loop.call_soon_threadsafe(stop.set)
        thread.join(timeout)
        loop.close()
