"""The local HTTP/WebSocket API (docs/architecture.md §5.3, CONTRACT) and the page's static files.

The one place that speaks HTTP: the sale service answers with ``terminal.views`` Structs
or raises ``terminal.errors.Refused``; ``STATUS_OF`` turns a refusal code into a status.
``terminal/openapi.yaml`` describes every route.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import hmac
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Protocol

import msgspec
import structlog
from aiohttp import WSMsgType, web

from terminal.auth import COOKIE_NAME, Session, SessionBook
from terminal.errors import Detail, Refused
from terminal.events import EventHub
from terminal.messages import message
from terminal.pinguard import PinGuard
from terminal.views import (
    Approval,
    Caller,
    CardView,
    CashierItem,
    CashierList,
    CloseDayBody,
    EntryResult,
    Health,
    LedgerPage,
    LoginBody,
    QuoteView,
    ReceiptPreview,
    ReprintResult,
    ResolveBody,
    SaleBody,
    SessionView,
    SwipeBody,
    TillState,
    VoidBody,
    Written,
)

log = structlog.get_logger("kartapos.api")


# The status of each refusal the sale service raises; any other refusal is 422.
STATUS_OF: Mapping[str, int] = {
    "card_unknown": 404,
    "not_found": 404,
    "demo_only": 404,
    "sale_conflict": 409,
    "nothing_to_close": 409,
    "rules_missing": 503,
    "ledger_write_failed": 503,
    "sync_failed": 503,
    "bad_pin": 401,
    "manager_required": 403,
    "approval_refused": 403,
    "pin_locked": 429,
}


def status_of(code: str) -> int:
    return STATUS_OF.get(code, 422)


class ApiError(Exception):
    """A refusal of the HTTP layer itself (auth, origin, a malformed request) with its status."""

    def __init__(self, code: str, status: int, details: Mapping[str, Detail] | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.status = status
        self.details = dict(details or {})


def error_response(
    code: str,
    status: int,
    msg: str,
    details: Mapping[str, Detail],
    reason: str | None = None,
    benefit: str | None = None,
) -> web.Response:
    """``{"error": {"code", "message", "reason"?, "benefit"?, "details"?}}`` (§5.3, 11.1)."""
    err: dict[str, Any] = {"code": code, "message": msg}
    if reason is not None:
        err["reason"] = reason
    if benefit is not None:
        err["benefit"] = benefit
    if details:
        err["details"] = dict(details)
    return json_response({"error": err}, status=status)


Handler = Callable[..., Awaitable[Any]]


class Services(Protocol):
    """What the API needs from the daemon (``terminal.sale.SaleService`` implements it)."""

    async def health(self) -> Health: ...
    async def resolve(self, text: str) -> CardView: ...
    async def quote(self, body: SaleBody, caller: Caller) -> QuoteView: ...
    async def sell(self, body: SaleBody, caller: Caller) -> Written: ...
    async def void(self, sale_id: str, reason: str, caller: Caller) -> Written: ...
    async def reprint(self, seq: int) -> ReprintResult: ...
    async def receipt(self, seq: int) -> ReceiptPreview: ...
    async def receipt_png(self, seq: int) -> bytes: ...
    async def close_day(self, caller: Caller) -> EntryResult: ...
    async def ledger(self, after: int, limit: int) -> LedgerPage: ...
    async def sync_now(self) -> dict[str, Any]: ...
    def state(self) -> TillState: ...


class DemoHooks(Protocol):
    """The demo's extra endpoints: simulated swipes."""

    def cards(self) -> list[dict[str, str]]: ...
    async def swipe(self, key: str) -> None: ...


@dataclass
class ApiContext:
    services: Services
    hub: EventHub
    token: str
    sessions: SessionBook
    origins: frozenset[str]
    guard: PinGuard
    wall_s: Callable[[], int]
    demo: DemoHooks | None = None
    secure_cookie: bool = False


CTX = web.AppKey("ctx", ApiContext)
CALLER = web.RequestKey("caller", Caller)
SESSION = web.RequestKey("session", str)  # the session id of a cookie caller
_json_encoder = msgspec.json.Encoder()


def json_response(data: Any, status: int = 200) -> web.Response:
    return web.Response(
        body=_json_encoder.encode(data), status=status, content_type="application/json"
    )


def _decode(typ: type[Any], raw: bytes) -> Any:
    try:
        return msgspec.json.decode(raw, type=typ, strict=True)
    except msgspec.ValidationError as e:
        raise ApiError("invalid_request", 400, details={"reason": str(e)}) from None
    except msgspec.DecodeError:
        raise ApiError("invalid_request", 400, details={"reason": "not JSON"}) from None


_PUBLIC = ("/", "/index.html", "/favicon.ico")


def _is_public(request: web.Request) -> bool:
    p = request.path
    if p in _PUBLIC or p.startswith("/web/"):
        return True
    if p == "/api/v1/cashiers" and request.method == "GET":
        return True  # the login screen's names (never a hash): asked before anyone logs in
    return p == "/api/v1/session" and request.method in ("POST", "GET")


async def caller_of(request: web.Request) -> Caller | None:
    """The caller by bearer token or session cookie; None when neither is valid.

    ``X-Cashier`` counts only beside the bearer token, and only for a cashier the rules
    know (403 ``unknown_cashier`` otherwise). A session whose cashier left the rules ends
    here, at once (docs/architecture.md §5.10).
    """
    ctx = request.app[CTX]
    auth = request.headers.get("Authorization", "")
    if auth.startswith("Bearer "):
        if not hmac.compare_digest(auth[7:].strip().encode(), ctx.token.encode()):
            return None
        named = request.headers.get("X-Cashier")
        if not named:
            return Caller(None, None)
        who = ctx.guard.cashier(named)
        if who is None:
            raise ApiError("unknown_cashier", 403)
        return Caller(who.id, who.name, who.role)
    cookie = request.cookies.get(COOKIE_NAME)
    if not cookie:
        return None
    s: Session | None = ctx.sessions.check(cookie, ctx.wall_s())
    if s is None:
        return None
    cashier = ctx.guard.cashier(s.cashier_id)
    if cashier is None:
        await ctx.sessions.close(s.sid)
        log.info("session_ended", cashier=s.cashier_id, why="cashier_not_in_rules")
        return None
    request[SESSION] = s.sid
    return Caller(cashier.id, cashier.name, cashier.role)


async def approved(request: web.Request, caller: Caller, approval: Approval | None) -> Caller:
    """The caller with a manager's approval checked (their PIN goes through the throttle)."""
    if approval is None:
        return caller
    guard = request.app[CTX].guard
    manager = guard.cashier(approval.cashier)
    if manager is None or manager.role != "manager":
        raise Refused("approval_refused")
    try:
        await guard.check(manager.id, approval.pin)
    except Refused as e:
        if e.code == "bad_pin":
            raise Refused("approval_refused") from None
        raise
    return dataclasses.replace(caller, approved_by=manager.id)


@web.middleware
async def error_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        resp: web.StreamResponse = await handler(request)
        return resp
    except Refused as e:
        resp = error_response(e.code, status_of(e.code), e.message, e.details, e.reason, e.benefit)
        if e.code == "pin_locked" and "retry_after_s" in e.details:
            resp.headers["Retry-After"] = str(e.details["retry_after_s"])
        return resp
    except ApiError as e:
        return error_response(e.code, e.status, message(e.code), e.details)
    except web.HTTPException as e:
        code = {413: "too_large", 404: "not_found", 405: "invalid_request"}.get(e.status)
        if code is None:
            raise
        resp = error_response(code, e.status, message(code), {})
        if "Allow" in e.headers:  # a 405 says which methods the route has (RFC 9110)
            resp.headers["Allow"] = e.headers["Allow"]
        return resp
    except Exception:
        log.exception("api_internal_error", path=request.path, method=request.method)
        return error_response("internal", 500, message("internal"), {})


@web.middleware
async def guard_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    ctx = request.app[CTX]
    origin = request.headers.get("Origin")
    if origin is not None and origin not in ctx.origins:
        log.warning("api_origin_refused", origin=origin, path=request.path)
        raise ApiError("origin_refused", 403)
    if not _is_public(request):
        caller = await caller_of(request)
        if caller is None:
            raise ApiError("unauthorized", 401)
        request[CALLER] = caller
    resp: web.StreamResponse = await handler(request)
    return resp


def _caller(request: web.Request) -> Caller:
    return request[CALLER]


def _int_param(request: web.Request, name: str, default: int, lo: int, hi: int) -> int:
    raw = request.query.get(name)
    if raw is None:
        return default
    try:
        v = int(raw)
    except ValueError:
        raise ApiError("invalid_request", 400, details={"param": name}) from None
    if not lo <= v <= hi:
        raise ApiError("invalid_request", 400, details={"param": name})
    return v


# The largest seq a ledger can hold (terminal/openapi.yaml says the same): SQLite's
# integers stop at 2^63, so a longer number is no entry, not a server error.
MAX_SEQ = 2**62


def _seq(request: web.Request) -> int:
    text = request.match_info["seq"]
    if not (text.isascii() and text.isdigit() and len(text) <= len(str(MAX_SEQ))):
        raise ApiError("not_found", 404)
    v = int(text)
    if not 1 <= v <= MAX_SEQ:
        raise ApiError("not_found", 404)
    return v


async def index(request: web.Request) -> web.StreamResponse:
    page = resources.files("terminal.web").joinpath("index.html")
    try:
        body = page.read_bytes()
    except FileNotFoundError:
        raise ApiError("not_found", 404) from None
    return web.Response(
        body=body,
        content_type="text/html",
        charset="utf-8",
        headers={
            "Cache-Control": "no-store",
            "Content-Security-Policy": (
                "default-src 'self'; img-src 'self' data:; style-src 'self'; "
                "script-src 'self'; connect-src 'self'; frame-ancestors 'none'"
            ),
            "X-Content-Type-Options": "nosniff",
        },
    )


async def health(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[CTX].services.health())


async def state(request: web.Request) -> web.StreamResponse:
    return json_response(request.app[CTX].services.state())


async def resolve(request: web.Request) -> web.StreamResponse:
    body: ResolveBody = _decode(ResolveBody, await request.read())
    return json_response(await request.app[CTX].services.resolve(body.input))


async def quote(request: web.Request) -> web.StreamResponse:
    body: SaleBody = _decode(SaleBody, await request.read())
    return json_response(await request.app[CTX].services.quote(body, _caller(request)))


def _written(w: Written) -> web.Response:
    """201 for a new entry, 200 for a request that replayed an earlier one."""
    return json_response(w.result, status=201 if w.created else 200)


async def sell(request: web.Request) -> web.StreamResponse:
    body: SaleBody = _decode(SaleBody, await request.read())
    try:
        uuid.UUID(body.id)
    except ValueError:
        raise ApiError("invalid_request", 400, details={"field": "id"}) from None
    caller = await approved(request, _caller(request), body.approval)
    return _written(await request.app[CTX].services.sell(body, caller))


async def void(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    body: VoidBody = _decode(VoidBody, raw) if raw.strip() else VoidBody()
    services = request.app[CTX].services
    return _written(await services.void(request.match_info["id"], body.reason, _caller(request)))


async def reprint(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[CTX].services.reprint(_seq(request)))


async def receipt(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[CTX].services.receipt(_seq(request)))


async def receipt_png(request: web.Request) -> web.StreamResponse:
    png = await request.app[CTX].services.receipt_png(_seq(request))
    return web.Response(body=png, content_type="image/png", headers={"Cache-Control": "no-store"})


async def close_day(request: web.Request) -> web.StreamResponse:
    raw = await request.read()
    body: CloseDayBody = _decode(CloseDayBody, raw) if raw.strip() else CloseDayBody()
    caller = await approved(request, _caller(request), body.approval)
    return json_response(await request.app[CTX].services.close_day(caller), status=201)


async def ledger(request: web.Request) -> web.StreamResponse:
    after = _int_param(request, "after", 0, 0, 2**62)
    limit = _int_param(request, "limit", 100, 1, 1000)
    return json_response(await request.app[CTX].services.ledger(after, limit))


async def sync_now(request: web.Request) -> web.StreamResponse:
    return json_response(await request.app[CTX].services.sync_now())


async def cashiers(request: web.Request) -> web.StreamResponse:
    guard = request.app[CTX].guard
    items = [CashierItem(id=c.id, name=c.name, role=c.role) for c in guard.cashiers()]
    return json_response(CashierList(cashiers=items))


def _session_view(caller: Caller) -> SessionView:
    assert caller.cashier_id is not None
    return SessionView(
        cashier=CashierItem(id=caller.cashier_id, name=caller.cashier_name or "", role=caller.role)
    )


async def session_get(request: web.Request) -> web.StreamResponse:
    caller = await caller_of(request)
    if caller is None or caller.cashier_id is None:
        raise ApiError("unauthorized", 401)
    return json_response(_session_view(caller))


async def session_post(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    body: LoginBody = _decode(LoginBody, await request.read())
    if not body.cashier:
        raise Refused("cashier_required")
    cashier = await ctx.guard.check(body.cashier, body.pin)
    cookie = await ctx.sessions.open(cashier.id, ctx.wall_s())
    resp = json_response(_session_view(Caller(cashier.id, cashier.name, cashier.role)))
    resp.set_cookie(
        COOKIE_NAME, cookie, httponly=True, samesite="Strict", path="/", secure=ctx.secure_cookie
    )
    log.info("login", cashier=cashier.id, role=cashier.role)
    return resp


async def session_delete(request: web.Request) -> web.StreamResponse:
    sid = request.get(SESSION)
    if sid is not None:
        await request.app[CTX].sessions.close(sid)  # over on the server, not only the cookie
        log.info("logout", cashier=_caller(request).cashier_id)
    resp = web.Response(status=204)
    resp.del_cookie(COOKIE_NAME, path="/")
    return resp


async def events(request: web.Request) -> web.StreamResponse:
    ctx = request.app[CTX]
    since_raw = request.query.get("since")
    since = int(since_raw) if since_raw and since_raw.isdigit() else None
    # A screen that never answers the closing handshake holds shutdown at most 2 s.
    ws = web.WebSocketResponse(heartbeat=20, max_msg_size=4096, timeout=2.0)
    await ws.prepare(request)
    # The page learns where the stream stands, then everything it missed.
    hello = {"type": "hello", "eid": ctx.hub.last_eid, "state": ctx.services.state()}
    await ws.send_str(_json_encoder.encode(hello).decode())

    async def drain_client() -> None:
        async for msg in ws:
            if msg.type in (WSMsgType.CLOSE, WSMsgType.ERROR):
                return

    async def send_events() -> None:
        try:
            async for ev in ctx.hub.subscribe(since):
                if ws.closed:
                    return
                await ws.send_str(_json_encoder.encode(ev).decode())
        except (ConnectionResetError, RuntimeError):
            pass

    # The stream ends when the screen goes, or at once when its session ends (logout,
    # the cashier left the rules): no card of the next customer reaches a closed session.
    sid = request.get(SESSION)
    tasks: list[asyncio.Future[Any]] = [
        asyncio.ensure_future(drain_client()),
        asyncio.ensure_future(send_events()),
    ]
    if sid is not None:
        tasks.append(asyncio.ensure_future(ctx.sessions.ended(sid).wait()))
    try:
        await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for t in tasks:
            t.cancel()
        for t in tasks:
            with contextlib.suppress(BaseException):
                await t
        await ws.close()
    return ws


async def demo_cards(request: web.Request) -> web.StreamResponse:
    demo = request.app[CTX].demo
    if demo is None:
        raise Refused("demo_only")
    return json_response(demo.cards())


async def demo_swipe(request: web.Request) -> web.StreamResponse:
    demo = request.app[CTX].demo
    if demo is None:
        raise Refused("demo_only")
    body: SwipeBody = _decode(SwipeBody, await request.read())
    await demo.swipe(body.key)
    return json_response({"ok": True}, status=202)


def build_app(ctx: ApiContext, *, max_body_bytes: int) -> web.Application:
    """The aiohttp application of the local API and the cashier page."""
    app = web.Application(
        middlewares=[error_middleware, guard_middleware], client_max_size=max_body_bytes
    )
    app[CTX] = ctx
    web_dir = Path(str(resources.files("terminal.web")))
    r = app.router
    r.add_get("/", index)
    r.add_get("/index.html", index)
    r.add_static("/web/", web_dir, show_index=False, append_version=False)
    r.add_get("/api/v1/health", health)
    r.add_get("/api/v1/state", state)
    r.add_get("/api/v1/events", events)
    r.add_get("/api/v1/cashiers", cashiers)
    r.add_get("/api/v1/session", session_get)
    r.add_post("/api/v1/session", session_post)
    r.add_delete("/api/v1/session", session_delete)
    r.add_post("/api/v1/cards/resolve", resolve)
    r.add_post("/api/v1/sales/quote", quote)
    r.add_post("/api/v1/sales", sell)
    r.add_post("/api/v1/sales/{id}/void", void)
    r.add_get("/api/v1/receipts/{seq}", receipt)
    r.add_get("/api/v1/receipts/{seq}/png", receipt_png)
    r.add_post("/api/v1/receipts/{seq}/reprint", reprint)
    r.add_post("/api/v1/day/close", close_day)
    r.add_get("/api/v1/ledger", ledger)
    r.add_post("/api/v1/sync", sync_now)
    r.add_get("/api/v1/demo/cards", demo_cards)
    r.add_post("/api/v1/demo/swipe", demo_swipe)
    return app


def wall_seconds() -> int:
    return int(time.time())
