"""The sale service: card reads to card views, quotes, durable sales, voids, day close."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Callable
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

import structlog

from config.faults import fault_point
from config.schema import Config
from config.version import package_version
from drivers.events import CardRead, ReaderState, ReadRejected
from ledger.cards import CardNumberError, CardNumberFormat, mask
from ledger.clock import Clock, format_ts, local_date
from ledger.domain import CardRecord, CardStatus, Rules
from ledger.entry import Draft, Entry, EntryKind, request_fields
from ledger.pins import verify_pin
from ledger.refusals import Refusal, message_for
from ledger.rules import (
    CatalogState,
    OfflinePolicy,
    SaleRequest,
    benefit_views,
    card_view,
    quote,
)
from ledger.store import Appended, IdempotencyConflict, LedgerError, LedgerStore
from ledger.usage import UsageBook
from ledger.voids import day_summary, plan_void
from sync.catalog import Catalog
from terminal.api import ApiError, Caller, SaleBody, Services
from terminal.events import EventHub
from terminal.messages import message
from terminal.printing import Printing

log = structlog.get_logger("kartapos.sale")

# Keep entries of this many recent local days in memory for the Z report.
_DAYS_KEPT = 2


def offline_policy(cfg: Config) -> OfflinePolicy:
    return OfflinePolicy(
        max_catalog_age_s=cfg.offline.max_catalog_age_h * 3600,
        redeem_per_card_per_day=cfg.offline.redeem_per_card_per_day,
        stale_after_s=cfg.offline.stale_after_s,
    )


def _refusal(r: Refusal) -> ApiError:
    status = 404 if r.code == "card_unknown" else 422
    details = {
        k: v if isinstance(v, int | str | bool | None) else str(v) for k, v in r.details.items()
    }
    return ApiError(r.code, status, r.message, details)


class SaleService(Services):
    """Everything the cashier screen asks for, over the ledger, catalogue and printer."""

    def __init__(
        self,
        *,
        cfg: Config,
        store: LedgerStore,
        catalog: Catalog,
        usage: UsageBook,
        printing: Printing,
        hub: EventHub,
        clock: Clock,
        recent: list[Entry],
        sync_now: Callable[[], Any] | None = None,
        sync_info: Callable[[], dict[str, Any]] | None = None,
        readers_info: Callable[[], list[dict[str, Any]]] | None = None,
    ) -> None:
        self._cfg = cfg
        self._store = store
        self._catalog = catalog
        self._usage = usage
        self._printing = printing
        self._hub = hub
        self._clock = clock
        self._tz = ZoneInfo(cfg.terminal.timezone)
        self._policy = offline_policy(cfg)
        self._format = CardNumberFormat(
            pattern=cfg.cards.number_pattern,
            issuer_digits=cfg.cards.issuer_digits,
            digit_lengths=tuple(cfg.cards.digit_lengths),
        )
        self._card_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        # Card records of the current card-list version (a lookup is a thread hop).
        self._cards: dict[str, CardRecord] = {}
        self._cards_version: int | None = None
        self._unapplied: dict[int, Entry] = {}
        self._recent: dict[str, list[Entry]] = {}
        for e in recent:
            self._remember(e)
        self._sync_now = sync_now
        self._sync_info = sync_info or (lambda: {})
        self._readers_info = readers_info or (lambda: [])

    # --- bookkeeping -------------------------------------------------------------------

    def _remember(self, e: Entry) -> None:
        self._recent.setdefault(e.local_date, []).append(e)
        if len(self._recent) > _DAYS_KEPT:
            for d in sorted(self._recent)[:-_DAYS_KEPT]:
                del self._recent[d]

    def _drain(self) -> None:
        while (nxt := self._unapplied.pop(self._usage.last_seq + 1, None)) is not None:
            self._usage.apply(nxt)
            self._remember(nxt)

    async def _apply_through(self, entry: Entry) -> None:
        """Feed the usage book every entry up to ``entry`` in seq order.

        Appends complete out of order under group commit; a card's next sale must see
        this one, so gaps are filled from the store rather than waited for.
        """
        if entry.seq > self._usage.last_seq:
            self._unapplied[entry.seq] = entry
        self._drain()
        for _ in range(3):
            if self._usage.last_seq >= entry.seq:
                return
            # Entries of one group commit finish together: their own coroutines apply
            # them within a loop turn or two, cheaper than reading them back.
            await asyncio.sleep(0)
            self._drain()
        if self._usage.last_seq < entry.seq:
            gap = entry.seq - self._usage.last_seq
            for e in await self._store.read_after(self._usage.last_seq, gap):
                self._unapplied.setdefault(e.seq, e)
            self._drain()

    @contextlib.asynccontextmanager
    async def _card_lock(self, number: str) -> AsyncIterator[None]:
        """Serialise quote + append per card so two tills cannot spend one balance twice."""
        lock, users = self._card_locks.get(number, (asyncio.Lock(), 0))
        self._card_locks[number] = (lock, users + 1)
        try:
            async with lock:
                yield
        finally:
            lock, users = self._card_locks[number]
            if users <= 1:
                del self._card_locks[number]
            else:
                self._card_locks[number] = (lock, users - 1)

    def _now(self) -> datetime:
        return self._clock.now()

    def _catalog_state(self) -> CatalogState:
        return CatalogState(age_s=self._catalog.cards_age_s())

    def _rules(self) -> Rules:
        rules = self._catalog.rules
        if rules is None:
            raise ApiError("rules_missing", 503)
        return rules

    def _normalise(self, text: str) -> str:
        try:
            return self._format.normalise(text)
        except CardNumberError:
            raise ApiError("not_a_card_number", 422) from None

    async def _card(self, number: str) -> CardRecord:
        if self._cards_version != self._catalog.cards_version or len(self._cards) > 4096:
            self._cards.clear()
            self._cards_version = self._catalog.cards_version
        card = self._cards.get(number)
        if card is None:
            card = await self._catalog.lookup(number)
            if card is not None:
                self._cards[number] = card
        if card is None:
            raise ApiError("card_unknown", 404, details={"card": mask(number)})
        return card

    # --- card view ---------------------------------------------------------------------

    def card_view(self, card: CardRecord, at: datetime) -> dict[str, Any]:
        """CARDVIEW of DESIGN section 6, plus what the page shows beside it.

        Extensions: the card's refusal ``reason``/``message``; per programme whether it is
        still valid; ``balance.stale`` with ``as_of`` the city's balance date (the screen
        says "stan na ..."); per benefit its unit, description, uses left, when a period
        limit frees up and the Polish reason; invisible benefits are left out and the
        available ones come first.
        """
        on = local_date(at, self._tz)
        catalog = self._catalog_state()
        rules = self._catalog.rules or Rules(version="")
        view: dict[str, Any] = dict(
            card_view(card, rules, self._usage, at, catalog=catalog, policy=self._policy)
        )
        reason: str | None = None
        if card.status in (CardStatus.BLOCKED, CardStatus.REPLACED):
            reason = "card_blocked"
        elif not view["active"]:
            reason = "card_inactive"
        extra = {
            v.id: v
            for v in benefit_views(
                card, rules, self._usage, at, catalog=catalog, policy=self._policy
            )
        }
        benefits = []
        for b in view["benefits"]:
            v = extra[b["id"]]
            if not v.visible:
                continue
            b.update(
                unit=v.unit,
                description=v.description,
                remaining=v.remaining,
                free_at=format_ts(v.free_at) if v.free_at else None,
                message=message_for_reason(v.reason),
            )
            benefits.append(b)
        benefits.sort(key=lambda b: not b["available"])
        stale = catalog.stale(self._policy)
        view.update(
            reason=reason,
            message=message_for_reason(reason),
            programs=[
                {"code": p.code, "valid_to": p.valid_to.isoformat(), "valid": p.valid_to >= on}
                for p in card.programs
            ],
            balance={
                **view["balance"],
                "as_of": format_ts(card.points_as_of) if card.points_as_of else None,
                "stale": stale,
            },
            benefits=benefits,
            offline=stale,
        )
        return view

    async def resolve(self, text: str) -> dict[str, Any]:
        card = await self._card(self._normalise(text))
        return self.card_view(card, self._now())

    async def on_reader_event(self, ev: CardRead | ReaderState | ReadRejected) -> None:
        """A reader said something: push it to the screen."""
        if isinstance(ev, ReaderState):
            self._hub.publish(
                {
                    "type": "device",
                    "device": "reader",
                    "name": ev.reader,
                    "kind": ev.kind,
                    "state": ev.state,
                    "detail": ev.detail,
                }
            )
            return
        if isinstance(ev, ReadRejected):
            self._hub.publish(
                {
                    "type": "card_error",
                    "reason": ev.reason,
                    "message": message(ev.reason),
                    "read": {"source": ev.source, "reader": ev.reader},
                }
            )
            return
        read = {"source": ev.source, "reader": ev.reader}
        card: CardRecord | None = None
        if ev.number is not None:
            card = await self._catalog.lookup(ev.number)
        elif ev.uid is not None:
            card = await self._catalog.by_uid(ev.uid)
        if card is None:
            self._hub.publish(
                {
                    "type": "card_error",
                    "reason": "card_unknown",
                    "message": message("card_unknown"),
                    "read": read,
                }
            )
            return
        log.info("card_read", card=card.number, source=ev.source, reader=ev.reader)
        self._hub.publish({"type": "card", "read": read, "card": self.card_view(card, self._now())})

    # --- sales -------------------------------------------------------------------------

    @staticmethod
    def _request(body: SaleBody) -> SaleRequest:
        return SaleRequest(
            amount_gr=body.amount_gr,
            benefit_ids=tuple(body.benefit_ids),
            benefit_quantities=dict(body.benefit_quantities),
            redeem_points=body.redeem_points,
            points_override=body.points_override,
            override_reason=body.override_reason,
        )

    def _quote(self, card: CardRecord, body: SaleBody, at: datetime) -> Any:
        try:
            return quote(
                card,
                self._rules(),
                self._usage,
                self._request(body),
                at,
                catalog=self._catalog_state(),
                policy=self._policy,
            )
        except Refusal as r:
            raise _refusal(r) from None

    async def quote(self, body: SaleBody, caller: Caller) -> dict[str, Any]:
        number = self._normalise(body.card)
        card = await self._card(number)
        q = self._quote(card, body, self._now())
        return quote_json(q)

    def _same_request(self, entry: Entry, body: SaleBody, number: str) -> bool:
        asked = Draft(
            ts="",
            local_date="",
            kind=EntryKind.SALE,
            card=number,
            amount_gr=body.amount_gr,
            benefits=tuple(body.benefit_ids),
            benefit_quantities={b: body.benefit_quantities.get(b, 1) for b in body.benefit_ids},
            points_redeemed=body.redeem_points,
            points_override=body.points_override,
            override_reason=(body.override_reason or "").strip() or None
            if body.points_override is not None
            else None,
        )
        return request_fields(asked) == request_fields(entry)

    async def _replayed(
        self, entry: Entry, body: SaleBody, number: str
    ) -> tuple[int, dict[str, Any]]:
        if entry.kind != EntryKind.SALE or not self._same_request(entry, body, number):
            raise ApiError("sale_conflict", 409, details={"seq": entry.seq})
        status = await self._receipt_of(entry)
        return 200, {"entry": entry.to_dict(), "receipt": {"status": status}}

    async def sell(self, body: SaleBody, caller: Caller) -> tuple[int, dict[str, Any]]:
        number = self._normalise(body.card)
        async with self._card_lock(number):
            now = self._now()
            try:
                card = await self._card(number)
                q = self._quote(card, body, now)
            except ApiError:
                # A retry of a sale that did commit may now be refused (its first try
                # spent the points): answer with that sale, not the refusal.
                existing = await self._store.by_sale_id(body.id)
                if existing is not None:
                    return await self._replayed(existing, body, number)
                raise
            draft = q.to_draft(
                ts=format_ts(now),
                local_date=local_date(now, self._tz).isoformat(),
                card=number,
                cashier=caller.cashier_id,
                sale_id=body.id,
            )
            try:
                appended = await self._append(draft)
            except IdempotencyConflict as c:
                return await self._replayed(c.existing, body, number)
            await self._apply_through(appended.entry)
        entry = appended.entry
        if not appended.created:
            return await self._replayed(entry, body, number)
        fault_point("after_commit_before_print")
        log.info(
            "sale",
            seq=entry.seq,
            card=number,
            amount_gr=entry.amount_gr,
            points=entry.points_earned,
            redeemed=entry.points_redeemed,
        )
        status = await self._printing.print_entry(entry, card=card)
        result = {
            "entry": entry.to_dict(),
            "receipt": {"status": status},
            "explanation": [x.text_pl for x in q.explanation],
        }
        self._hub.publish({"type": "sale", "entry": result["entry"], "receipt": result["receipt"]})
        return 201, result

    async def void(self, sale_id: str, reason: str, caller: Caller) -> tuple[int, dict[str, Any]]:
        original = await self._store.by_sale_id(sale_id)
        if original is None:
            raise ApiError("not_found", 404, details={"sale": sale_id})
        void_id = f"void:{sale_id}"
        done = await self._store.by_sale_id(void_id)
        if done is not None:
            return 200, {
                "entry": done.to_dict(),
                "receipt": {"status": await self._receipt_of(done)},
            }
        number = original.card or ""
        async with self._card_lock(number):
            card = await self._catalog.lookup(number) if number else None
            try:
                plan = plan_void(original, self._usage, reason=reason, card=card)
            except Refusal as r:
                raise _refusal(r) from None
            now = self._now()
            draft = plan.to_draft(
                ts=format_ts(now),
                local_date=local_date(now, self._tz).isoformat(),
                cashier=caller.cashier_id,
                sale_id=void_id,
            )
            appended = await self._append(draft)
            await self._apply_through(appended.entry)
        entry = appended.entry
        fault_point("after_commit_before_print")
        log.info("void", seq=entry.seq, ref=entry.ref, card=number)
        status = await self._printing.print_entry(entry, card=card, voided=original)
        body = {"entry": entry.to_dict(), "receipt": {"status": status}}
        self._hub.publish({"type": "sale", **body})
        return (201 if appended.created else 200), body

    async def close_day(self, caller: Caller) -> dict[str, Any]:
        now = self._now()
        today = local_date(now, self._tz).isoformat()
        summary = day_summary(self._recent.get(today, []), today)
        draft = Draft(
            ts=format_ts(now),
            local_date=today,
            kind=EntryKind.DAY_CLOSE,
            card=None,
            rules_version=self._catalog.rules.version_str if self._catalog.rules else "",
            cashier=caller.cashier_id,
            summary=summary,
        )
        appended = await self._append(draft)
        await self._apply_through(appended.entry)
        entry = appended.entry
        fault_point("after_commit_before_print")
        log.info("day_close", seq=entry.seq, local_date=today, sales=summary.get("sales"))
        status = await self._printing.print_entry(entry)
        body = {"entry": entry.to_dict(), "receipt": {"status": status}, "summary": summary}
        self._hub.publish({"type": "sale", "entry": body["entry"], "receipt": body["receipt"]})
        return body

    async def _append(self, draft: Draft) -> Appended:
        """Append durably; a storage failure is a clear refusal: the sale was NOT saved."""
        try:
            return await self._store.append(draft)
        except IdempotencyConflict:
            raise
        except LedgerError as e:
            log.error("ledger_write_failed", error=str(e))
            raise ApiError("ledger_write_failed", 503) from None

    async def _receipt_of(self, entry: Entry) -> str:
        """A replayed request's receipt state; queues the original if a failure lost it."""
        status = await self._printing.status_of(entry.seq)
        if status == "none":
            status = await self._printing.print_entry(entry)
        return status

    async def _entry(self, seq: int) -> Entry:
        e = await self._store.get(seq)
        if e is None:
            raise ApiError("not_found", 404, details={"seq": seq})
        return e

    async def reprint(self, seq: int) -> dict[str, Any]:
        entry = await self._entry(seq)
        status = await self._printing.print_entry(entry, copy=True)
        return {"seq": seq, "receipt": {"status": status, "copy": True}}

    async def receipt(self, seq: int) -> dict[str, Any]:
        entry = await self._entry(seq)
        text = await self._printing.preview_text(entry)
        return {
            "seq": seq,
            "text": text,
            "png_url": f"/api/v1/receipts/{seq}/png",
            "status": await self._printing.status_of(seq),
        }

    async def receipt_png(self, seq: int) -> bytes:
        return await self._printing.preview_png(await self._entry(seq))

    async def ledger(self, after: int, limit: int) -> list[dict[str, Any]]:
        return [e.to_dict() for e in await self._store.read_after(after, limit)]

    async def sync_now(self) -> dict[str, Any]:
        if self._sync_now is None:
            raise ApiError("sync_failed", 503)
        result: dict[str, Any] = await self._sync_now()
        return result

    async def login(self, pin: str) -> Caller | None:
        if not pin.isdigit() or not 4 <= len(pin) <= 12:
            return None
        rules = self._catalog.rules
        cashiers = list(rules.cashiers) if rules else []
        loop = asyncio.get_running_loop()
        for c in cashiers:
            # pbkdf2 takes ~50 ms: off the event loop.
            if await loop.run_in_executor(None, verify_pin, pin, c.pin_hash):
                return Caller(c.id, c.name)
        admin = self._cfg.terminal.admin_pin_hash
        if admin is not None:
            ok: bool = await loop.run_in_executor(None, verify_pin, pin, admin)
            if ok:
                return Caller("admin", "Administrator")
        return None

    # --- status ------------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        readers = self._readers_info()
        printer = {"state": self._printing.state()}
        sync = self._sync_info()
        cards_age = self._catalog.cards_age_s()
        sync.setdefault("cards_version", self._catalog.cards_version)
        sync["cards_age_s"] = round(cards_age, 1) if cards_age is not None else None
        head = self._store.head
        degraded = (
            any(r["state"] != "connected" for r in readers)
            or printer["state"] not in ("online", "none", "unknown")
            or bool(sync.get("fork_alarm"))
            or self._catalog_state().too_old(self._policy)
        )
        return {
            "status": "degraded" if degraded else "ok",
            "version": package_version(),
            "readers": readers,
            "printer": printer,
            "sync": sync,
            "ledger": {"head_seq": head.seq, "head_hash": head.hash},
        }

    def state(self) -> dict[str, Any]:
        rules = self._catalog.rules
        head = self._store.head
        return {
            "terminal": {"id": self._cfg.terminal.id, "partner_id": self._cfg.terminal.partner_id},
            "partner": {"name": rules.partner.name, "address": rules.partner.address}
            if rules
            else None,
            "ledger": {"head_seq": head.seq},
            "today": self._today().isoformat(),
        }

    def _today(self) -> date:
        return local_date(self._now(), self._tz)


def message_for_reason(code: str | None) -> str | None:
    """Polish text of a benefit/card reason code."""
    return None if code is None else message_for(code)


def quote_json(q: Any) -> dict[str, Any]:
    """The would-be result of a sale, for the screen."""
    return {
        "card": q.card,
        "amount_gr": q.amount_gr,
        "purchase_points": q.purchase_points,
        "benefit_points": q.benefit_points,
        "points_earned": q.points_earned,
        "points_redeemed": q.points_redeemed,
        "discount_gr": q.discount_gr,
        "to_pay_gr": q.amount_gr - q.discount_gr,
        "balance_before": q.balance_before,
        "balance_after": q.balance_after,
        "rules_version": q.rules_version,
        "explanation": [x.text_pl for x in q.explanation],
    }
