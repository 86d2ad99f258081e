"""The HTTP layer of the city protocol: every request the terminal makes.

The protocol: docs/architecture.md §5.5.

:class:`CityHttp` owns the aiohttp session and the ``Authorization`` header and runs
the one retry loop: network errors, timeouts and the "try again later" statuses
(:data:`RETRY_STATUSES`) are retried with exponential backoff and full jitter, never
sooner than the server's ``Retry-After`` (docs/architecture.md §7); any other status is the
answer. Bodies are read with a cap (a server is input too) and streamed bodies are cut
into lines with a cap per line and in total. Whatever cannot be answered ends as a
:class:`SyncError` whose ``code`` the results and the scheduler use:

- ``token``: the token file is missing or empty (no request is made);
- ``unreachable``: no answer after the last attempt (connection, timeout);
- ``server_error``: the server still answered a retryable status after the last attempt;
- ``unauthorized``: 401/403; ``rejected``: any other final status the caller did not expect;
- ``bad_reply``: a body over its cap, or one that does not decode.

What a status means for the protocol (a gap, a fork, a 304) is the caller's business
(sync.client); this module knows only HTTP.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import AsyncGenerator, AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import msgspec
import structlog
from multidict import CIMultiDict

from config.backoff import Backoff, parse_retry_after
from ledger.clock import Clock
from sync.catalog import FeedRejected
from sync.wire import UploadError, WireError, decode_error

log = structlog.get_logger()

T = TypeVar("T")
Sleep = Callable[[float], Awaitable[None]]

MAX_REPLY_BYTES = 1024 * 1024
STREAM_CHUNK = 256 * 1024
# Replies that say "try again later"; everything else 4xx is final for this run.
RETRY_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})


async def real_sleep(seconds: float) -> None:
    """asyncio.sleep, as the default Sleep."""
    await asyncio.sleep(seconds)


class SyncError(Exception):
    """A sync step that failed for this run; ``code`` is the result's error code."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class Reply:
    """A whole (capped) answer; ``status`` 0 means none came (``body`` says why)."""

    status: int
    body: bytes
    headers: CIMultiDict[str] = field(default_factory=CIMultiDict)

    def describe(self) -> str:
        if self.status == 0:
            return f"no answer: {self.body.decode(errors='replace')}"
        return f"HTTP {self.status}"

    @property
    def error(self) -> UploadError:
        """The city's error body; a non-JSON one becomes its text as the message."""
        try:
            return decode_error(self.body)
        except WireError:
            return UploadError(error="", message=self.body.decode("utf-8", errors="replace")[:200])

    def failure(self) -> SyncError:
        """This reply as the final error of the step that got it."""
        err = self.error
        code = "unauthorized" if self.status in (401, 403) else "rejected"
        return SyncError(code, f"HTTP {self.status}: {err.error} {err.message}".strip())

    def decode(self, decode: Callable[[bytes], T]) -> T:
        """The body through a wire decoder; a body that does not decode is ``bad_reply``."""
        try:
            return decode(self.body)
        except WireError as e:
            raise SyncError("bad_reply", str(e)) from None


class _TooLarge(Exception):
    pass


class CityHttp:
    """Requests to the city server at ``base_url``, authenticated by the token in a file.

    The token file is read for every request, so a new token is used without a restart.
    """

    def __init__(
        self,
        base_url: str,
        token_file: str | Path,
        clock: Clock,
        *,
        request_timeout_s: float = 30.0,
        rng: random.Random | None = None,
        sleep: Sleep = real_sleep,
        max_attempts: int = 5,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
    ) -> None:
        self._base = base_url.rstrip("/")
        self._token_file = Path(token_file)
        self._clock = clock
        self._timeout_s = request_timeout_s
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.max_attempts = max_attempts
        self._backoff_base = backoff_base_s
        self._backoff_cap = backoff_cap_s
        self._session: aiohttp.ClientSession | None = None

    async def close(self) -> None:
        """Close the session (a later request opens a new one)."""
        if self._session is not None:
            await self._session.close()
            self._session = None

    # --- requests -----------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> Reply:
        """The first answer whose status is not retryable, whatever it is, body read whole."""

        async def whole(resp: aiohttp.ClientResponse) -> Reply:
            return await _reply(resp, max_bytes)

        timeout = aiohttp.ClientTimeout(total=self._timeout_s)
        return await self._retrying(
            method, path, whole, timeout, data=data, headers=headers, max_bytes=max_bytes
        )

    async def request_json(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        decode: Callable[[bytes], T],
        headers: dict[str, str] | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> T:
        """A 200 answer through ``decode``; any other final status is its SyncError.

        ``body`` is sent as it is when it is bytes, else encoded as JSON.
        """
        hdrs = dict(headers or {})
        data: bytes | None = None
        if isinstance(body, bytes):
            data = body
        elif body is not None:
            data = msgspec.json.encode(body)
            hdrs.setdefault("Content-Type", "application/json")
        reply = await self.request(method, path, data=data, headers=hdrs, max_bytes=max_bytes)
        if reply.status != 200:
            raise reply.failure()
        return reply.decode(decode)

    async def stream_lines(
        self,
        path: str,
        consume: Callable[[AsyncIterator[bytes]], Awaitable[T]],
        *,
        max_line: int,
        max_total: int,
        what: str = "stream",
    ) -> T:
        """GET ``path`` and hand its 200 body, as lines, to ``consume``.

        Retried like any request until the answer begins; once ``consume`` has the
        lines nothing is retried: a line over ``max_line``, more than ``max_total``
        bytes or a connection lost mid-body raises FeedRejected from the iterator.
        Any other final status is its SyncError.
        """
        timeout = aiohttp.ClientTimeout(
            total=None, sock_connect=self._timeout_s, sock_read=self._timeout_s
        )

        async def lines(resp: aiohttp.ClientResponse) -> T:
            if resp.status != 200:
                raise (await _reply(resp, MAX_REPLY_BYTES)).failure()
            stream = _body_lines(resp, max_line=max_line, max_total=max_total, what=what)
            async with contextlib.aclosing(stream) as it:
                return await consume(it)

        return await self._retrying("GET", path, lines, timeout)

    # --- the retry loop -----------------------------------------------------------------

    async def _retrying(
        self,
        method: str,
        path: str,
        answer: Callable[[aiohttp.ClientResponse], Awaitable[T]],
        client_timeout: aiohttp.ClientTimeout,
        *,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        max_bytes: int = MAX_REPLY_BYTES,
    ) -> T:
        """``answer`` of the first response with a final status; retries all else.

        A retryable answer's body (read up to ``max_bytes``) only names the failure.
        """
        session = self._get_session()
        hdrs = {**(headers or {}), **self._auth()}
        backoff = Backoff(self._backoff_base, self._backoff_cap, jitter=True, rng=self._rng)
        reply = Reply(0, b"")
        for attempt in range(1, self.max_attempts + 1):
            try:
                async with session.request(
                    method, self._base + path, data=data, headers=hdrs, timeout=client_timeout
                ) as resp:
                    if resp.status not in RETRY_STATUSES:
                        return await answer(resp)
                    reply = await _reply(resp, max_bytes)
            except (aiohttp.ClientError, TimeoutError) as e:
                reply = Reply(0, net_error(e).encode())
            except _TooLarge as e:
                raise SyncError("bad_reply", str(e)) from None
            if attempt < self.max_attempts:
                await self._wait(backoff, reply)
        code = "unreachable" if reply.status == 0 else "server_error"
        raise SyncError(code, f"{method} {path}: {reply.describe()}")

    async def _wait(self, backoff: Backoff, reply: Reply) -> None:
        retry_after = parse_retry_after(reply.headers.get("Retry-After"), self._clock.now())
        delay = backoff.next_delay(retry_after)
        log.info("sync_retry", delay_s=round(delay, 3), after=reply.describe())
        await self._sleep(delay)

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(
                timeout=aiohttp.ClientTimeout(total=self._timeout_s)
            )
        return self._session

    def _auth(self) -> dict[str, str]:
        path = self._token_file
        try:
            token = path.read_text(encoding="utf-8").strip()
        except OSError as e:
            raise SyncError("token", f"cannot read the token file {path}: {e.strerror}") from None
        if not token:
            raise SyncError("token", f"the token file {path} is empty")
        return {"Authorization": f"Bearer {token}"}


# --- bodies -----------------------------------------------------------------------------


async def _reply(resp: aiohttp.ClientResponse, max_bytes: int) -> Reply:
    return Reply(resp.status, await read_capped(resp, max_bytes), CIMultiDict(resp.headers))


async def read_capped(resp: aiohttp.ClientResponse, max_bytes: int) -> bytes:
    """The whole body, refusing more than ``max_bytes`` (a server is input too)."""
    if resp.content_length is not None and resp.content_length > max_bytes:
        raise _TooLarge(f"reply of {resp.content_length} bytes is over {max_bytes}")
    data = await resp.content.read(max_bytes + 1)
    while len(data) <= max_bytes:
        more = await resp.content.read(max_bytes + 1 - len(data))
        if not more:
            break
        data += more
    if len(data) > max_bytes:
        raise _TooLarge(f"reply is over {max_bytes} bytes")
    return data


async def _body_lines(
    resp: aiohttp.ClientResponse, *, max_line: int, max_total: int, what: str
) -> AsyncGenerator[bytes, None]:
    """The response body as lines; oversize or a dropped connection rejects it."""
    chunks = resp.content.iter_chunked(STREAM_CHUNK)
    try:
        async for line in split_lines(chunks, max_line=max_line, max_total=max_total, what=what):
            yield line
    except (aiohttp.ClientError, TimeoutError) as e:
        raise FeedRejected(f"connection lost during the {what}: {net_error(e)}") from None


async def split_lines(
    chunks: AsyncIterator[bytes], *, max_line: int, max_total: int, what: str = "stream"
) -> AsyncIterator[bytes]:
    """Re-cut a byte stream into lines (each with its newline; a last one maybe without).

    Raises FeedRejected past ``max_total`` bytes or when a line outgrows ``max_line``
    before its newline arrives (so a hostile stream cannot fill memory).
    """
    buf = b""
    total = 0
    async for chunk in chunks:
        total += len(chunk)
        if total > max_total:
            raise FeedRejected(f"{what} larger than {max_total} bytes")
        parts = (buf + chunk).split(b"\n")
        buf = parts.pop()
        if len(buf) > max_line:
            raise FeedRejected(f"a {what} line is longer than {max_line} bytes")
        for line in parts:
            yield line + b"\n"
    if buf:
        yield buf


def net_error(e: BaseException) -> str:
    """A network failure in one short line (aiohttp's reprs run to hundreds of chars)."""
    text = str(e) or type(e).__name__
    if isinstance(e, aiohttp.ClientConnectorError):
        text = f"cannot connect to {e.host}:{e.port} ({e.os_error.strerror or e.os_error})"
    elif isinstance(e, TimeoutError):
        text = "timed out"
    return text[:200]
