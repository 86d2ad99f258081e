"""The reference city server's HTTP API (docs/architecture.md §5.5, CONTRACT), on aiohttp."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import math
import zlib
from collections.abc import AsyncGenerator, Sequence
from datetime import timedelta
from types import TracebackType
from typing import Any, Final, NoReturn, Self

import structlog
from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from aiohttp.typedefs import Handler, Middleware

from config.schema import CentralConfig, parse_listen
from ledger.canonical import canonical
from ledger.clock import Clock, SystemClock, format_ts, parse_ts
from ledger.entry import Head
from sync.central import stats
from sync.central.db import CentralDB, LeaseRefused, TerminalRow
from sync.central.engine import describe
from sync.central.verify import BatchRejected, VerifiedBatch, check_signature, verify_chain_of
from sync.wire import (
    NDJSON,
    HeadReply,
    LeaseGrant,
    QuarantinedEntry,
    RawUploadBatch,
    UploadError,
    UploadOk,
    WireError,
    decode_cards_header,
    decode_lease_request,
    decode_upload,
    encode,
)

log = structlog.get_logger()


DB_KEY: Final = web.AppKey("db", CentralDB)
CFG_KEY: Final = web.AppKey("cfg", CentralConfig)
WRITE_LOCK_KEY: Final = web.AppKey("write_lock", asyncio.Lock)
UPLOADS_KEY: Final = web.AppKey("uploads", list[int])  # [uploads being handled now]
BUSY_RETRY_AFTER_S: Final = 2
FULL_FEED_WINDOW: Final = timedelta(hours=1)  # central.full_feeds_per_hour counts in it
LEASE_BODY_LIMIT: Final = 16 * 1024  # a lease request is a few dozen bytes

_ACCEPTED_ENCODINGS = frozenset({"", "identity", "gzip", "deflate"})
_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    415: "unsupported_encoding",
}


class Reply(Exception):
    """Stop handling and answer with this JSON error."""

    def __init__(
        self,
        status: int,
        error: str,
        message: str = "",
        *,
        head: Head | None = None,
        seq: int | None = None,
        headers: dict[str, str] | None = None,
        close: bool = False,
    ) -> None:
        super().__init__(message)
        self.close = close  # the body was not read to its end: drop the connection
        self.status = status
        self.body = UploadError(error=error, head=head, message=message, seq=seq)
        self.headers = headers or {}


def _json(obj: object, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=encode(obj), status=status, content_type="application/json", headers=headers
    )


@web.middleware
async def errors_as_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is a JSON ``{"error", "message"}``; unexpected ones are logged once."""
    try:
        return await handler(request)
    except Reply as r:
        resp = _json(r.body, r.status, r.headers)
        if r.close:
            resp.force_close()
        return resp
    except web.HTTPException as e:
        if e.status < 400:
            raise
        code = _HTTP_CODES.get(e.status, "internal" if e.status >= 500 else "bad_request")
        hdrs = {"Allow": e.headers["Allow"]} if "Allow" in e.headers else None
        return _json(UploadError(error=code, message=e.reason), e.status, hdrs)
    except asyncio.CancelledError:
        raise
    except Exception:
        log.exception("central_request_failed", path=request.path, method=request.method)
        return _json(UploadError(error="internal", message="internal server error"), 500)


# --- auth -------------------------------------------------------------------------------


async def _authenticate(request: web.Request) -> TerminalRow:
    auth = request.headers.get("Authorization", "")
    scheme, _, token = auth.partition(" ")
    token = token.strip()
    if scheme.lower() != "bearer" or not token:
        raise Reply(
            401,
            "unauthorized",
            "missing bearer token",
            headers={"WWW-Authenticate": 'Bearer realm="kartapos"'},
        )
    row = await request.app[DB_KEY].terminal_by_token(token)
    if row is None:
        raise Reply(
            401,
            "unauthorized",
            "unknown token",
            headers={"WWW-Authenticate": 'Bearer realm="kartapos", error="invalid_token"'},
        )
    return row


async def _terminal_itself(request: web.Request) -> TerminalRow:
    row = await _authenticate(request)
    if row.id != request.match_info["tid"]:
        raise Reply(403, "forbidden", "this token belongs to another terminal")
    return row


# --- handlers ---------------------------------------------------------------------------


async def health(_request: web.Request) -> web.Response:
    return _json({"status": "ok"})


async def get_head(request: web.Request) -> web.Response:
    row = await _terminal_itself(request)
    _only_query(request)
    held = await request.app[DB_KEY].held_seqs(row.id)
    return _json(
        HeadReply(
            seq=row.head.seq,
            hash=row.head.hash,
            quarantined=[QuarantinedEntry(seq=seq, reason=reason) for seq, reason in held],
        )
    )


async def _read_body(request: web.Request, limit: int) -> bytes:
    """The (decompressed) request body, refused with 413 past ``limit`` bytes."""
    enc = request.headers.get("Content-Encoding", "").strip().lower()
    if enc not in _ACCEPTED_ENCODINGS:
        raise Reply(
            415, "unsupported_encoding", f"Content-Encoding {enc!r} is not accepted", close=True
        )
    if request.content_length is not None and request.content_length > limit:
        raise Reply(413, "too_large", f"request body over {limit} bytes", close=True)
    # aiohttp's own inflating is off (CentralServer): a broken stream would be answered in
    # plain text before this handler ran, and the inflated size would not be bounded.
    inflate = _inflater(enc)
    buf = bytearray()
    try:
        async for chunk in request.content.iter_chunked(1 << 16):
            buf += chunk if inflate is None else _inflate(inflate, chunk, limit - len(buf))
            if len(buf) > limit:
                raise Reply(413, "too_large", f"request body over {limit} bytes", close=True)
        if inflate is not None:
            buf += inflate.flush()
            if not inflate.eof:
                raise zlib.error("the compressed stream is cut short")
    except (HttpProcessingError, web.RequestPayloadError, zlib.error) as e:
        reason = str(e).replace("\n", " ")
        raise Reply(
            400, "bad_request", f"request body cannot be read: {reason}", close=True
        ) from None
    if len(buf) > limit:
        raise Reply(413, "too_large", f"request body over {limit} bytes", close=True)
    return bytes(buf)


def _inflater(encoding: str) -> Any:
    """A zlib decompressor for the Content-Encoding, or None for an identity body."""
    if encoding == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if encoding == "deflate":
        return zlib.decompressobj(zlib.MAX_WBITS)
    return None


def _inflate(inflate: Any, chunk: bytes, room: int) -> bytes:
    """Inflate ``chunk``, never more than ``room`` + 1 bytes (the caller then says 413)."""
    out: bytes = inflate.decompress(chunk, max(room, 0) + 1)
    return out


def _refuse_with_head(e: BatchRejected, head: Head) -> NoReturn:
    raise Reply(e.status, e.error, e.message, head=head, seq=e.seq)


async def post_entries(request: web.Request) -> web.Response:
    row = await _terminal_itself(request)
    _only_query(request)
    cfg = request.app[CFG_KEY]
    bound = log.bind(terminal=row.id)
    uploads = request.app[UPLOADS_KEY]
    if uploads[0] >= cfg.central.max_concurrent_uploads:
        bound.info("upload_busy", active=uploads[0])
        raise Reply(
            503,
            "busy",
            f"more than {cfg.central.max_concurrent_uploads} uploads at once; retry later",
            headers={"Retry-After": str(BUSY_RETRY_AFTER_S)},
        )
    uploads[0] += 1
    try:
        return await _post_entries(request, row, bound)
    finally:
        uploads[0] -= 1


def _decode_and_verify(tid: str, data: bytes) -> tuple[RawUploadBatch, VerifiedBatch]:
    """Decoding and checking, both CPU work on a large batch: run off the event loop."""
    try:
        batch = decode_upload(data)
    except WireError as e:
        raise BatchRejected(400, "bad_request", str(e)) from None
    except RecursionError:
        # msgspec stops at the interpreter's depth limit (~1000) with a clean RecursionError;
        # verify_chain_of refuses anything past MAX_DEPTH that decodes, without recursing.
        raise BatchRejected(400, "bad_request", "the body nests too deeply") from None
    return batch, verify_chain_of(tid, batch.entries)


async def _post_entries(request: web.Request, row: TerminalRow, bound: Any) -> web.Response:
    db, cfg = request.app[DB_KEY], request.app[CFG_KEY]
    tid = row.id
    data = await _read_body(request, cfg.central.max_body_bytes)
    try:
        batch, verified = await asyncio.to_thread(_decode_and_verify, tid, data)
        enrolled = row.public_key
        if enrolled is None and cfg.central.trust_on_first_use:
            check_signature(tid, batch, verified)
            enrolled = await db.trust_key(tid, batch.public_key)
        if enrolled is None:
            raise BatchRejected(422, "unknown_key", "no public key is enrolled for this terminal")
        if batch.public_key != enrolled:
            raise BatchRejected(
                422, "unknown_key", "the batch's public key is not the one enrolled"
            )
        check_signature(tid, batch, verified)
    except BatchRejected as e:
        bound.warning("upload_refused", error=e.error, reason=e.message, seq=e.seq, status=e.status)
        _refuse_with_head(e, row.head)
    async with request.app[WRITE_LOCK_KEY]:
        outcome = await db.append(tid, row.partner_id, verified)
    if outcome.kind == "gap":
        bound.info("upload_gap", first_seq=verified.first_seq, head_seq=outcome.head.seq)
        raise Reply(
            409,
            "gap",
            f"batch starts at {verified.first_seq}, server head is {outcome.head.seq}",
            head=outcome.head,
        )
    if outcome.kind == "fork":
        bound.error("upload_fork", seq=outcome.seq, head_seq=outcome.head.seq)
        raise Reply(
            409,
            "fork",
            f"entry {outcome.seq} differs from the one the server holds",
            head=outcome.head,
            seq=outcome.seq,
        )
    bound.info(
        "upload_ok" if outcome.kind == "appended" else "upload_replay",
        first_seq=verified.first_seq,
        last_seq=verified.last_seq,
        appended=outcome.appended,
        head_seq=outcome.head.seq,
    )
    held = [QuarantinedEntry(seq=seq, reason=reason) for seq, reason in outcome.quarantined]
    if held:
        bound.warning("upload_quarantined", count=len(held), first_seq=held[0].seq)
    return _json(UploadOk(head=outcome.head, quarantined=held))


def _only_query(request: web.Request, *allowed: str) -> None:
    unknown = sorted(set(request.query) - set(allowed))
    if unknown:
        raise Reply(400, "bad_request", f"unknown query parameter(s): {', '.join(unknown)}")


def _since(request: web.Request) -> int | None:
    """The one integer ``since`` of a feed request (absent: None); 400 otherwise."""
    _only_query(request, "since")
    values = request.query.getall("since", [])
    if not values:
        return None
    try:
        if len(values) != 1 or not values[0].strip():
            raise ValueError(values)
        return int(values[0])
    except ValueError:
        raise Reply(400, "bad_request", "since must be one integer version") from None


async def _stream_feed(
    request: web.Request, feed: AsyncGenerator[bytes, None], gone_event: str
) -> web.StreamResponse:
    """Send an NDJSON feed; its header is read before the status line goes out."""
    resp = web.StreamResponse(headers={"Content-Type": NDJSON, "Cache-Control": "no-store"})
    resp.enable_compression()
    async with contextlib.aclosing(feed):
        first = await anext(feed)
        await resp.prepare(request)
        try:
            await resp.write(first)
            async for chunk in feed:
                await resp.write(chunk)
            await resp.write_eof()
        except ConnectionError:
            log.info(gone_event)
    return resp


async def get_cards(request: web.Request) -> web.StreamResponse:
    row = await _authenticate(request)
    since = _since(request)
    feed = request.app[DB_KEY].card_feed(since, row.id)
    audited = _audited(request, row.id, since, feed)
    return await _stream_feed(request, audited, "cards_feed_client_gone")


async def _audited(
    request: web.Request, terminal: str, since: int | None, feed: AsyncGenerator[bytes, None]
) -> AsyncGenerator[bytes, None]:
    """The card feed, recorded (who read the register); a full feed beyond
    ``full_feeds_per_hour`` for this terminal is refused with 429 before it is sent."""
    db, cfg = request.app[DB_KEY], request.app[CFG_KEY]
    now = db.clock.now()
    lines, complete = 0, False
    async with contextlib.aclosing(feed):
        first = await anext(feed)
        header = decode_cards_header(first)
        limit = cfg.central.full_feeds_per_hour
        if header.full and limit:
            recent = await db.full_feeds_since(terminal, format_ts(now - FULL_FEED_WINDOW))
            if len(recent) >= limit:
                free_at = parse_ts(recent[-limit]) + FULL_FEED_WINDOW
                wait = max(1, math.ceil((free_at - now).total_seconds()))
                log.warning("cards_full_feed_refused", terminal=terminal, last_hour=len(recent))
                raise Reply(
                    429,
                    "too_many_full_feeds",
                    f"at most {limit} full card lists per hour for one terminal; "
                    f"ask for a delta (since={header.version}) or retry in {wait} s",
                    headers={"Retry-After": str(wait)},
                )
        try:
            yield first
            async for chunk in feed:
                lines += chunk.count(b"\n")
                yield chunk
            complete = True
        finally:
            await db.record_feed_read(
                terminal,
                at=format_ts(now),
                full=header.full,
                since=since,
                version=header.version,
                lines=max(lines - 1, 0),  # the end line is not a card
                complete=complete,
            )
            log.info("cards_feed_read", terminal=terminal, full=header.full, lines=lines - 1)


async def get_usage(request: web.Request) -> web.StreamResponse:
    """The partner's usage across its tills (contract 11.4), for its own terminals only."""
    row = await _authenticate(request)
    since = _since(request)
    pid = request.match_info["pid"]
    if row.partner_id != pid:
        raise Reply(403, "forbidden", "this terminal is enrolled for another partner")
    feed = request.app[DB_KEY].usage_feed(pid, since, row.id)
    return await _stream_feed(request, feed, "usage_feed_client_gone")


async def get_stats(request: web.Request) -> web.Response:
    """The partner's statistics over local days ``from``..``to`` (sync/central/stats.py),
    for its own terminals only."""
    row = await _authenticate(request)
    _only_query(request, "from", "to")
    pid = request.match_info["pid"]
    if row.partner_id != pid:
        raise Reply(403, "forbidden", "this terminal is enrolled for another partner")
    ends = [request.query.getall(name, []) for name in ("from", "to")]
    if any(len(v) != 1 for v in ends):
        raise Reply(400, "bad_request", "give from=YYYY-MM-DD and to=YYYY-MM-DD, once each")
    try:
        date_from, date_to = stats.report_range(ends[0][0], ends[1][0])
    except stats.RangeError as e:
        raise Reply(400, "bad_request", str(e)) from None
    report = await request.app[DB_KEY].partner_stats(pid, date_from, date_to)
    return _json(report, headers={"Cache-Control": "no-store"})


async def post_lease(request: web.Request) -> web.Response:
    """Top up or release this terminal's persons lease of a benefit (contract 11.5)."""
    row = await _terminal_itself(request)
    _only_query(request)
    data = await _read_body(request, LEASE_BODY_LIMIT)
    try:
        req = decode_lease_request(data)
    except WireError as e:
        raise Reply(400, "bad_request", str(e)) from None
    try:
        out = await request.app[DB_KEY].lease(row.id, req.benefit, req.admitted, req.want)
    except LeaseRefused as e:
        raise Reply(404, "not_found", str(e)) from None
    log.info(
        "lease",
        terminal=row.id,
        benefit=req.benefit,
        admitted=req.admitted,
        want=req.want,
        granted=out.granted,
        held=out.held,
        persons_used=out.persons_used,
    )
    return _json(
        LeaseGrant(benefit=out.benefit, granted=out.granted, persons_used=out.persons_used)
    )


def _etag(body: bytes) -> str:
    return '"' + hashlib.sha256(body).hexdigest()[:32] + '"'


def _etag_matches(header: str | None, etag: str) -> bool:
    if not header:
        return False
    tags = [t.strip() for t in header.split(",")]
    return "*" in tags or etag in tags or f"W/{etag}" in tags


async def get_rules(request: web.Request) -> web.Response:
    row = await _authenticate(request)
    _only_query(request)
    pid = request.match_info["pid"]
    if row.partner_id != pid:
        raise Reply(403, "forbidden", "this terminal is enrolled for another partner")
    rules = await request.app[DB_KEY].rules(pid)
    if rules is None:
        raise Reply(404, "not_found", f"no rules for partner {pid}")
    body = canonical(rules)
    etag = _etag(body)
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _etag_matches(request.headers.get("If-None-Match"), etag):
        return web.Response(status=304, headers=headers)
    return web.Response(body=body, content_type="application/json", headers=headers)


def build_app(
    db: CentralDB, cfg: CentralConfig, *, middlewares: Sequence[Middleware] = ()
) -> web.Application:
    """The aiohttp application; extra middlewares run inside the JSON error layer."""
    app = web.Application(
        middlewares=[errors_as_json, *middlewares],
        client_max_size=cfg.central.max_body_bytes,
    )
    app[DB_KEY] = db
    app[CFG_KEY] = cfg
    app[WRITE_LOCK_KEY] = asyncio.Lock()
    app[UPLOADS_KEY] = [0]
    app.router.add_get("/v1/health", health)
    app.router.add_get("/v1/terminals/{tid}/head", get_head)
    app.router.add_post("/v1/terminals/{tid}/entries", post_entries)
    app.router.add_get("/v1/cards", get_cards)
    app.router.add_get("/v1/partners/{pid}/rules", get_rules)
    app.router.add_get("/v1/partners/{pid}/usage", get_usage)
    app.router.add_get("/v1/partners/{pid}/stats", get_stats)
    app.router.add_post("/v1/terminals/{tid}/leases", post_lease)
    return app


class CentralServer:
    """The reference city server, in-process: ``async with CentralServer(cfg) as s: s.url``."""

    def __init__(
        self,
        cfg: CentralConfig,
        *,
        clock: Clock | None = None,
        middlewares: Sequence[Middleware] = (),
        port: int | None = None,
    ) -> None:
        """``port`` overrides the configured one (0: any free port, for tests)."""
        self.cfg = cfg
        self._port = port
        self._clock = clock or SystemClock()
        self._middlewares = tuple(middlewares)
        self._runner: web.AppRunner | None = None
        self._db: CentralDB | None = None
        self.url = ""

    @property
    def db(self) -> CentralDB:
        if self._db is None:
            raise RuntimeError("the server is not started")
        return self._db

    async def start(self) -> None:
        from sync.central.demo_data import seed_demo_into

        c = self.cfg.central
        host, port = parse_listen(c.listen)
        if self._port is not None:
            port = self._port
        self._db = await CentralDB.open(c.database, self._clock)
        try:
            if c.seed_demo:
                await seed_demo_into(self._db)
            app = build_app(self._db, self.cfg, middlewares=self._middlewares)
            # auto_decompress off: _read_body inflates, bounded, and answers errors in JSON.
            self._runner = web.AppRunner(
                app, access_log=None, shutdown_timeout=2.0, auto_decompress=False
            )
            await self._runner.setup()
            await web.TCPSite(self._runner, host, port).start()
        except BaseException:
            await self.stop()
            raise
        bound_port = self._runner.addresses[0][1]
        shown = f"[{host}]" if ":" in host else host
        self.url = f"http://{shown}:{bound_port}"
        log.info("central_listening", url=self.url, database=describe(c.database))

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._db is not None:
            await self._db.close()
            self._db = None

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()


__all__ = ["CentralServer", "Middleware", "build_app"]
