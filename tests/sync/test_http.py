"""The city protocol's HTTP layer on its own, against a scripted aiohttp server on loopback.

Each test names the bug it catches. Sleeping is injected (the delays are recorded, not
waited), so a whole retry sequence runs at once.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from aiohttp import web

from config.backoff import MAX_RETRY_AFTER_S
from ledger.clock import FakeClock
from sync.catalog import FeedRejected
from sync.http import CityHttp, SyncError
from sync.wire import decode_head
from tests.sync.test_client_env import free_port_for_tests

TOKEN = "token-of-T-0001"

Answer = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Seen:
    method: str
    path: str
    auth: str | None
    content_type: str | None
    body: bytes


@dataclass
class Scripted:
    """Answers requests from a queue (then 200 ``{}``) and records what it was asked."""

    answers: list[Answer] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    url: str = ""

    def then(self, *answers: Answer) -> None:
        self.answers.extend(answers)

    async def handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append(
            Seen(
                request.method,
                request.path_qs,
                request.headers.get("Authorization"),
                request.headers.get("Content-Type"),
                await request.read(),
            )
        )
        if self.answers:
            return await self.answers.pop(0)(request)
        return web.json_response({})


def status(code: int, body: bytes = b"", headers: dict[str, str] | None = None) -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.Response(status=code, body=body, headers=headers)

    return answer


def json_error(code: int, error: str, message: str = "") -> Answer:
    async def answer(request: web.Request) -> web.StreamResponse:
        return web.json_response({"error": error, "message": message}, status=code)

    return answer


async def drop(request: web.Request) -> web.StreamResponse:
    """The connection is gone before any answer."""
    assert request.transport is not None
    request.transport.abort()
    return web.Response(status=200)


def chunked(*parts: bytes, then_cut: bool = False) -> Answer:
    """A 200 streamed in ``parts`` without Content-Length; maybe cut before its end."""

    async def answer(request: web.Request) -> web.StreamResponse:
        resp = web.StreamResponse(status=200, headers={"Content-Type": "application/x-ndjson"})
        await resp.prepare(request)
        for part in parts:
            await resp.write(part)
        if then_cut:
            assert request.transport is not None
            request.transport.abort()
        else:
            await resp.write_eof()
        return resp

    return answer


@pytest.fixture
async def server() -> AsyncIterator[Scripted]:
    scripted = Scripted()
    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", scripted.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    scripted.url = f"http://127.0.0.1:{port}"
    try:
        yield scripted
    finally:
        await runner.cleanup()


@dataclass
class Client:
    http: CityHttp
    sleeps: list[float]
    token_file: Path


@pytest.fixture
async def client(server: Scripted, tmp_path: Path, clock: FakeClock) -> AsyncIterator[Client]:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    http = CityHttp(
        server.url + "/",
        token_file,
        clock,
        request_timeout_s=5,
        rng=random.Random(7),
        sleep=sleep,
        max_attempts=4,
        backoff_base_s=1.0,
        backoff_cap_s=60.0,
    )
    try:
        yield Client(http, sleeps, token_file)
    finally:
        await http.close()


HEAD = b'{"seq": 3, "hash": "' + b"ab" * 32 + b'"}'


# --- retries --------------------------------------------------------------------------------


async def test_503_is_retried_no_sooner_than_retry_after(server: Scripted, client: Client) -> None:
    """Bug caught: Retry-After ignored (the jittered delay of at most 1-2 s used instead)."""
    server.then(
        status(503, headers={"Retry-After": "7"}),
        # An HTTP date, read against the injected clock (11:00:00 UTC) -> 30 s.
        status(503, headers={"Retry-After": "Wed, 18 Nov 2026 11:00:30 GMT"}),
        status(200, HEAD),
    )
    head = await client.http.request_json("GET", "/v1/terminals/T-0001/head", decode=decode_head)
    assert (head.seq, head.hash) == (3, "ab" * 32)
    assert client.sleeps == [7.0, 30.0]
    assert len(server.seen) == 3


async def test_a_huge_retry_after_is_capped(server: Scripted, client: Client) -> None:
    """Bug caught: a server asking for a day stalls the terminal for a day."""
    server.then(status(429, headers={"Retry-After": "86400"}))
    reply = await client.http.request("GET", "/x")
    assert reply.status == 200
    assert client.sleeps == [MAX_RETRY_AFTER_S]


async def test_retries_back_off_with_full_jitter_then_give_up(
    server: Scripted, client: Client
) -> None:
    """Bug caught: no backoff (tight loop), no limit on attempts, or no jitter (lockstep)."""
    server.then(*[status(503)] * 10)
    with pytest.raises(SyncError) as e:
        await client.http.request("GET", "/v1/cards")
    assert e.value.code == "server_error"
    assert "GET /v1/cards: HTTP 503" in e.value.message
    assert len(server.seen) == 4  # max_attempts
    assert len(client.sleeps) == 3  # no wait after the last attempt
    assert all(0.0 <= d <= 2.0**n for n, d in enumerate(client.sleeps))
    assert client.sleeps != [1.0, 2.0, 4.0]  # drawn below each ceiling, not the ceiling


@pytest.mark.parametrize("code", [408, 425, 429, 500, 502, 503, 504])
async def test_try_again_later_statuses_are_retried(
    code: int, server: Scripted, client: Client
) -> None:
    """Bug caught: a retryable status treated as the final answer."""
    server.then(status(code))
    reply = await client.http.request("GET", "/x")
    assert reply.status == 200
    assert len(server.seen) == 2


@pytest.mark.parametrize("code", [400, 404, 409, 413, 422])
async def test_other_4xx_are_the_answer_not_retried(
    code: int, server: Scripted, client: Client
) -> None:
    """Bug caught: a 4xx retried (a rejected batch sent again and again)."""
    server.then(json_error(code, "gap", "the head is 3"))
    reply = await client.http.request("POST", "/v1/terminals/T-0001/entries", data=b"{}")
    assert reply.status == code
    assert (reply.error.error, reply.error.message) == ("gap", "the head is 3")
    assert len(server.seen) == 1
    assert client.sleeps == []


async def test_a_dropped_connection_is_retried(server: Scripted, client: Client) -> None:
    """Bug caught: a network error ends the step instead of being retried.

    A POST, as an upload is: aiohttp itself resends an idempotent GET once on a dropped
    connection, which would hide this loop.
    """
    server.then(drop, status(200, HEAD))
    head = await client.http.request_json("POST", "/entries", b"{}", decode=decode_head)
    assert head.seq == 3
    assert [s.body for s in server.seen] == [b"{}", b"{}"]
    assert len(client.sleeps) == 1


async def test_connections_dropped_every_time_end_unreachable(
    server: Scripted, client: Client
) -> None:
    """Bug caught: a lost connection reported as a server error, or as success."""
    server.then(*[drop] * 10)
    with pytest.raises(SyncError) as e:
        await client.http.request("POST", "/entries", data=b"{}")
    assert e.value.code == "unreachable"
    assert "POST /entries: no answer" in e.value.message
    assert len(server.seen) == 4
    server.answers.clear()
    server.then(*[drop] * 10)
    with pytest.raises(SyncError) as e:
        await client.http.request("GET", "/head")
    assert e.value.code == "unreachable"
    assert len(client.sleeps) == 6  # three more waits, whatever aiohttp resends by itself


async def test_nobody_listening_is_unreachable(tmp_path: Path, clock: FakeClock) -> None:
    """Bug caught: a refused connection escapes as an aiohttp exception."""
    (tmp_path / "token").write_text(TOKEN)
    sleeps: list[float] = []

    async def sleep(seconds: float) -> None:
        sleeps.append(seconds)

    port = free_port_for_tests()
    http = CityHttp(f"http://127.0.0.1:{port}", tmp_path / "token", clock, sleep=sleep)
    try:
        with pytest.raises(SyncError) as e:
            await http.request("GET", "/head")
    finally:
        await http.close()
    assert e.value.code == "unreachable"
    assert f"cannot connect to 127.0.0.1:{port}" in e.value.message
    assert len(sleeps) == 4  # five attempts by default


# --- capped reads ---------------------------------------------------------------------------


@pytest.mark.parametrize("framing", ["content-length", "chunked"])
async def test_a_body_over_its_cap_is_refused_not_retried(
    framing: str, server: Scripted, client: Client
) -> None:
    """Bug caught: a hostile or broken server fills the terminal's memory."""
    big = b"x" * 1001
    server.then(status(200, big) if framing == "content-length" else chunked(big[:600], big[600:]))
    with pytest.raises(SyncError) as e:
        await client.http.request("GET", "/rules", max_bytes=1000)
    assert e.value.code == "bad_reply"
    assert "over 1000" in e.value.message
    assert len(server.seen) == 1


async def test_a_body_at_its_cap_is_read_whole(server: Scripted, client: Client) -> None:
    """Bug caught: an off-by-one cap refusing, or truncating, a body of exactly the limit."""
    body = bytes(range(256)) * 4
    server.then(chunked(body[:100], body[100:]))
    reply = await client.http.request("GET", "/rules", max_bytes=1024)
    assert reply.body == body


# --- streamed lines -------------------------------------------------------------------------


class Lines:
    """A consumer that keeps what it was given."""

    def __init__(self) -> None:
        self.got: list[bytes] = []

    async def __call__(self, lines: AsyncIterator[bytes]) -> int:
        async for line in lines:
            self.got.append(line)
        return len(self.got)


async def test_stream_lines_recut_across_chunks(server: Scripted, client: Client) -> None:
    """Bug caught: lines split at chunk boundaries, or the last line without newline lost."""
    server.then(chunked(b'{"a"', b":1}\n{", b'"b":2}\n', b"\n", b"tail"))
    lines = Lines()
    n = await client.http.stream_lines("/v1/cards", lines, max_line=100, max_total=1000)
    assert lines.got == [b'{"a":1}\n', b'{"b":2}\n', b"\n", b"tail"]
    assert n == 4
    assert server.seen[0].path == "/v1/cards"


async def test_a_body_cut_mid_line_rejects_and_never_yields_the_half_line(
    server: Scripted, client: Client
) -> None:
    """Bug caught: a lost connection taken as the end of the body (a half line used)."""
    server.then(chunked(b"one\ntwo\nhal", then_cut=True))
    lines = Lines()
    with pytest.raises(FeedRejected, match="connection lost during the card feed"):
        await client.http.stream_lines(
            "/v1/cards", lines, max_line=100, max_total=1000, what="card feed"
        )
    assert lines.got == [b"one\n", b"two\n"]
    assert len(server.seen) == 1  # once the body began nothing is retried


async def test_stream_limits_reject(server: Scripted, client: Client) -> None:
    """Bug caught: a line without end, or an endless stream, read into memory."""
    server.then(chunked(b"ok\n", b"y" * 200), chunked(*[b"z\n" * 50] * 5))
    with pytest.raises(FeedRejected, match="line is longer than 100 bytes"):
        await client.http.stream_lines("/a", Lines(), max_line=100, max_total=10_000)
    with pytest.raises(FeedRejected, match="larger than 300 bytes"):
        await client.http.stream_lines("/b", Lines(), max_line=100, max_total=300)


async def test_stream_is_retried_until_its_answer_begins(server: Scripted, client: Client) -> None:
    """Bug caught: the streamed GET bypasses the retry loop, or its final status is lost."""
    server.then(status(502), status(503, headers={"Retry-After": "3"}), chunked(b"x\n"))
    lines = Lines()
    assert await client.http.stream_lines("/s", lines, max_line=10, max_total=10) == 1
    assert len(server.seen) == 3
    assert len(client.sleeps) == 2
    assert client.sleeps[1] == 3.0
    server.then(json_error(404, "not_found"))
    with pytest.raises(SyncError) as e:
        await client.http.stream_lines("/s", Lines(), max_line=10, max_total=10)
    assert (e.value.code, e.value.message) == ("rejected", "HTTP 404: not_found")


# --- error codes, auth, bodies --------------------------------------------------------------


@pytest.mark.parametrize(
    ("answer", "code", "message"),
    [
        (json_error(401, "unauthorized", "no token"), "unauthorized", "401: unauthorized no token"),
        (json_error(403, "forbidden"), "unauthorized", "HTTP 403: forbidden"),
        (json_error(422, "bad_hash", "entry 4"), "rejected", "HTTP 422: bad_hash entry 4"),
        (status(404, b"<html>no such page</html>"), "rejected", "<html>no such page</html>"),
        (status(200, b'{"seq": "three"}'), "bad_reply", "head"),
    ],
)  # fmt: skip
async def test_final_answers_become_sync_errors_with_codes(
    answer: Answer, code: str, message: str, server: Scripted, client: Client
) -> None:
    """Bug caught: a wrong code (the scheduler retries an unauthorized terminal tightly)."""
    server.then(answer)
    with pytest.raises(SyncError) as e:
        await client.http.request_json("GET", "/head", decode=decode_head)
    assert e.value.code == code
    assert message in e.value.message
    assert len(server.seen) == 1


async def test_token_is_sent_and_reread_for_every_request(server: Scripted, client: Client) -> None:
    """Bug caught: no Authorization header, or a replaced token ignored until restart."""
    await client.http.request("GET", "/a")
    client.token_file.write_text("new-token")
    await client.http.request("GET", "/b")
    assert [s.auth for s in server.seen] == [f"Bearer {TOKEN}", "Bearer new-token"]


@pytest.mark.parametrize("content", ["missing", "empty"])
async def test_no_token_no_request(content: str, server: Scripted, client: Client) -> None:
    """Bug caught: a request sent without credentials (or a crash on a missing file)."""
    if content == "missing":
        client.token_file.unlink()
    else:
        client.token_file.write_text("  \n")
    with pytest.raises(SyncError) as e:
        await client.http.request("GET", "/a")
    assert e.value.code == "token"
    assert str(client.token_file) in e.value.message
    assert server.seen == []


async def test_request_json_sends_bytes_as_they_are_and_objects_as_json(
    server: Scripted, client: Client
) -> None:
    """Bug caught: a pre-encoded (gzip) body re-encoded, or an object body not JSON."""
    server.then(status(200, b"{}"), status(200, b"{}"))
    raw = b"\x1f\x8b not json"
    headers = {"Content-Type": "application/octet-stream"}
    await client.http.request_json("POST", "/raw", raw, decode=bytes, headers=headers)
    await client.http.request_json("POST", "/obj", {"lease": 2, "ok": True}, decode=bytes)
    assert (server.seen[0].body, server.seen[0].content_type) == (raw, headers["Content-Type"])
    assert server.seen[1].body == b'{"lease":2,"ok":true}'
    assert server.seen[1].content_type == "application/json"
