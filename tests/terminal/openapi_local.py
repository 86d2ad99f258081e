"""terminal/openapi.yaml, built from the routes below and the Structs of terminal/views.py.

The schemas are generated from the code (msgspec), so the document cannot drift from what
the daemon sends; test_openapi_local.py checks the committed file equals this build and
runs schemathesis against the running daemon. After changing a view or a route:

    .venv/bin/python -m tests.terminal.openapi_local   # rewrites terminal/openapi.yaml
"""

from __future__ import annotations

import sys
from typing import Any

import msgspec
import yaml

from terminal.views import (
    CardErrorEvent,
    CardEvent,
    CardView,
    CashierList,
    CloseDayBody,
    DeviceEvent,
    EntryResult,
    Health,
    HealthEvent,
    LedgerPage,
    LoginBody,
    QuoteView,
    ReceiptPreview,
    ReprintResult,
    ResolveBody,
    SaleBody,
    SaleEvent,
    SessionView,
    SwipeBody,
    TillState,
    VoidBody,
)
from tests.conftest import REPO_ROOT

SPEC_PATH = REPO_ROOT / "terminal" / "openapi.yaml"
REF = "#/components/schemas/{name}"


class ErrorDetail(msgspec.Struct, kw_only=True):
    code: str
    message: str  # Polish, for the cashier
    reason: str | None = None  # with code benefit_unavailable: why (docs/architecture.md §5.6)
    benefit: str | None = None  # with code benefit_unavailable: the refused benefit's id
    details: dict[str, int | str | bool | None] | None = None


class Error(msgspec.Struct, kw_only=True):
    """``{"error": {"code", "message"}}`` with a 4xx or 5xx status (docs/architecture.md §5.3)."""

    error: ErrorDetail


STRUCTS: tuple[type[Any], ...] = (
    Health,
    TillState,
    CardView,
    QuoteView,
    EntryResult,
    ReprintResult,
    ReceiptPreview,
    LedgerPage,
    SaleBody,
    ResolveBody,
    VoidBody,
    LoginBody,
    SwipeBody,
    CloseDayBody,
    SessionView,
    CashierList,
    Error,
    CardEvent,
    CardErrorEvent,
    DeviceEvent,
    SaleEvent,
    HealthEvent,
)


def _json(name: str) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": REF.format(name=name)}}}


def _ok(name: str, text: str) -> dict[str, Any]:
    return {"description": text, "content": _json(name)}


def _err(text: str) -> dict[str, Any]:
    return {"description": text, "content": _json("Error")}


def _body(name: str) -> dict[str, Any]:
    return {"required": True, "content": _json(name)}


AUTH = {"401": _err("No valid API token or cashier session (`unauthorized`).")}
BAD = {"400": _err("Not JSON, or not the body's shape (`invalid_request`).")}
# A request that needs a manager (docs/architecture.md §5.10).
MANAGER = {
    "403": _err(
        "`manager_required`: a cashier asks; send `approval` (a manager's id and PIN), or "
        "`approval_refused`: that PIN is wrong or that person is no manager."
    ),
    "429": _err("`pin_locked`: the manager's PIN was tried too often; `details.retry_after_s`."),
}
CARD = {
    "404": _err("`card_unknown`: the number is not on the card list."),
    "422": _err(
        "A refusal: `not_a_card_number`, `card_blocked`, `card_inactive`, "
        "`benefit_unavailable`, `points_locked`, `insufficient_points`, `offline_limit`, "
        "`invalid_amount`, … (code, Polish message, details)."
    ),
    "503": _err("`rules_missing` (no partner rules yet) or `ledger_write_failed` (not saved)."),
}
SEQ = {
    "name": "seq",
    "in": "path",
    "required": True,
    "schema": {"type": "integer", "minimum": 1, "maximum": 2**62},
}
NOT_FOUND = {"404": _err("No entry with this seq (`not_found`).")}


def paths() -> dict[str, Any]:
    return {
        "/api/v1/health": {
            "get": {
                "operationId": "health",
                "summary": "Readers, printer, sync and ledger state.",
                "responses": {"200": _ok("Health", "The till's health."), **AUTH},
            }
        },
        "/api/v1/state": {
            "get": {
                "operationId": "state",
                "summary": "Terminal, partner, today and the ledger head (the page's header).",
                "responses": {"200": _ok("TillState", "The till."), **AUTH},
            }
        },
        "/api/v1/cashiers": {
            "get": {
                "operationId": "cashiers",
                "summary": "The names the login screen lists (id, name, role; never a PIN hash).",
                "security": [{}],
                "responses": {"200": _ok("CashierList", "The cashiers of the rules.")},
            }
        },
        "/api/v1/session": {
            "get": {
                "operationId": "sessionGet",
                "summary": "The cashier of this session cookie.",
                "security": [{}],
                "responses": {"200": _ok("SessionView", "Logged in."), **AUTH},
            },
            "post": {
                "operationId": "login",
                "summary": "Log the chosen cashier in with their PIN; sets the session cookie.",
                "description": "Throttled per cashier: every try is counted before the PIN "
                "is checked, one check at a time, with a wait doubling after failures "
                "(docs/architecture.md §5.10).",
                "security": [{}],
                "requestBody": _body("LoginBody"),
                "responses": {
                    "200": _ok("SessionView", "Logged in; the cookie is set."),
                    **BAD,
                    "401": _err("`bad_pin`."),
                    "422": _err(
                        "`cashier_required`, `unknown_cashier`, or `manager_pin_too_short`."
                    ),
                    "429": _err(
                        "`pin_locked`: too many wrong PINs for this cashier; wait "
                        "`details.retry_after_s` (also the `Retry-After` header)."
                    ),
                },
            },
            "delete": {
                "operationId": "logout",
                "summary": "End the session on the server at once (and clear the cookie).",
                "responses": {"204": {"description": "Logged out."}, **AUTH},
            },
        },
        "/api/v1/cards/resolve": {
            "post": {
                "operationId": "resolveCard",
                "summary": "A typed card number to the card view.",
                "requestBody": _body("ResolveBody"),
                "responses": {
                    "200": _ok("CardView", "The card as the screen shows it."),
                    **BAD,
                    **AUTH,
                    **CARD,
                },
            }
        },
        "/api/v1/sales/quote": {
            "post": {
                "operationId": "quote",
                "summary": "What the sale would grant and take; nothing is written.",
                "requestBody": _body("SaleBody"),
                "responses": {"200": _ok("QuoteView", "The quote."), **BAD, **AUTH, **CARD},
            }
        },
        "/api/v1/sales": {
            "post": {
                "operationId": "sell",
                "summary": "Write the sale durably, then print its receipt.",
                "description": "Idempotent by `id`: the same body again is 200 with the same "
                "entry; another body under a used `id` is 409 `sale_conflict`.",
                "requestBody": _body("SaleBody"),
                "responses": {
                    "201": _ok("EntryResult", "Written and sent to the printer."),
                    "200": _ok("EntryResult", "This id was written before: that sale."),
                    **BAD,
                    **AUTH,
                    **CARD,
                    **MANAGER,
                    "409": _err("`sale_conflict`: the id was used for another sale."),
                },
            }
        },
        "/api/v1/sales/{id}/void": {
            "post": {
                "operationId": "void",
                "summary": "Write the compensating entry of a sale (ANULOWANIE).",
                "parameters": [
                    {"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}
                ],
                "requestBody": {"required": False, "content": _json("VoidBody")},
                "responses": {
                    "201": _ok("EntryResult", "The void was written."),
                    "200": _ok("EntryResult", "This sale was voided before: that void."),
                    **BAD,
                    **AUTH,
                    "404": _err("`not_found`: no sale with this id."),
                    "422": _err("`void_reason_required`, `already_voided`, `not_a_sale`, …"),
                    "503": _err("`ledger_write_failed`: not saved."),
                },
            }
        },
        "/api/v1/receipts/{seq}": {
            "get": {
                "operationId": "receipt",
                "summary": "The receipt's text preview and print state.",
                "parameters": [SEQ],
                "responses": {"200": _ok("ReceiptPreview", "The preview."), **AUTH, **NOT_FOUND},
            }
        },
        "/api/v1/receipts/{seq}/png": {
            "get": {
                "operationId": "receiptPng",
                "summary": "The receipt as a picture.",
                "parameters": [SEQ],
                "responses": {
                    "200": {
                        "description": "A PNG image.",
                        "content": {"image/png": {"schema": {"type": "string"}}},
                    },
                    **AUTH,
                    **NOT_FOUND,
                },
            }
        },
        "/api/v1/receipts/{seq}/reprint": {
            "post": {
                "operationId": "reprint",
                "summary": "Print the receipt again, marked KOPIA.",
                "parameters": [SEQ],
                "responses": {"200": _ok("ReprintResult", "Queued."), **AUTH, **NOT_FOUND},
            }
        },
        "/api/v1/day/close": {
            "post": {
                "operationId": "closeDay",
                "summary": "Write the day_close entry and print the Z report.",
                "description": "Needs a manager: a manager's session or the API token, or "
                "a cashier's request with `approval`.",
                "requestBody": {"required": False, "content": _json("CloseDayBody")},
                "responses": {
                    "201": _ok("EntryResult", "The day_close entry and its summary."),
                    **BAD,
                    **AUTH,
                    **MANAGER,
                    "422": _err("`manager_pin_too_short` (in `approval`)."),
                    "409": _err(
                        "`nothing_to_close`: no sale or void since the last Z report; "
                        "`details.last_close_seq` is that report's seq (reprint it as KOPIA)."
                    ),
                    "503": _err("`ledger_write_failed`: not saved."),
                },
            }
        },
        "/api/v1/ledger": {
            "get": {
                "operationId": "ledger",
                "summary": "Entries after a seq, oldest first.",
                "parameters": [
                    {
                        "name": "after",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 0, "maximum": 2**62},
                    },
                    {
                        "name": "limit",
                        "in": "query",
                        "schema": {"type": "integer", "minimum": 1, "maximum": 1000},
                    },
                ],
                "responses": {"200": _ok("LedgerPage", "The page."), **BAD, **AUTH},
            }
        },
    }


def build_spec() -> dict[str, Any]:
    _, components = msgspec.json.schema_components(STRUCTS, ref_template=REF)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "kartapos local API (daemon <-> cashier screen)",
            "version": "1.0",
            "summary": "docs/architecture.md §5.3 (CONTRACT).",
            "description": (
                "Served on `api.listen` (loopback). Requests carry `Authorization: Bearer "
                "<token>` (`<state_dir>/api-token`) or the cashier's session cookie; a "
                "browser request with a foreign `Origin` is refused (403). Amounts are "
                "integer grosze, points integers.\n\n"
                "Not described here: `GET /api/v1/events`, a WebSocket whose messages are "
                "`CardEvent`, `CardErrorEvent`, `DeviceEvent`, `SaleEvent` and `HealthEvent` "
                "(each with `eid`; `?since=EID` replays missed ones), after a first "
                '`{"type": "hello", "eid", "state": TillState}`; `POST /api/v1/sync` (runs '
                "a sync cycle: slow, and talks to the city); the demo's `/api/v1/demo/*`."
            ),
            "license": {"name": "MIT"},
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "security": [{"apiToken": []}],
        "paths": paths(),
        "components": {
            "schemas": components,
            "securitySchemes": {"apiToken": {"type": "http", "scheme": "bearer"}},
        },
    }


def render() -> str:
    head = "# Generated by `python -m tests.terminal.openapi_local` from terminal/views.py.\n"
    body: str = yaml.safe_dump(build_spec(), sort_keys=False, allow_unicode=True, width=100)
    return head + body


if __name__ == "__main__":
    SPEC_PATH.write_text(render(), encoding="utf-8")
    sys.stdout.write(f"wrote {SPEC_PATH}\n")
