"""The sale service: card reads to card views, quotes, durable sales, voids, day close.

It speaks the domain: answers are the Structs of ``terminal/views.py`` and a refusal is
``terminal.errors.Refused``; it never imports the HTTP layer (tests/test_layering.py).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import date, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

import structlog

from config.faults import fault_point
from config.schema import Config
from config.version import package_version
from drivers.events import CardRead, ReaderState, ReadRejected
from drivers.factory import card_number_format
from ledger.cards import CardNumberError, mask
from ledger.clock import Clock, format_ts, local_date
from ledger.domain import CardRecord, Rules
from ledger.entry import Draft, Entry, EntryKind, request_fields
from ledger.money import PARTNER_COST_PER_POINT_GR
from ledger.refusals import Refusal
from ledger.rules import (
    CatalogState,
    OfflinePolicy,
    Quote,
    SaleRequest,
    card_snapshot,
    quote,
)
from ledger.store import Appended, IdempotencyConflict, LedgerError, LedgerStore
from ledger.usage import LOCAL, Network, UsageBook
from ledger.voids import plan_void
from sync.catalog import Catalog
from terminal.errors import Refused
from terminal.events import EventHub
from terminal.messages import message
from terminal.printing import Printing
from terminal.readmodels import UsageKeeper
from terminal.views import (
    Caller,
    CardErrorEvent,
    CardEvent,
    CardView,
    DeviceEvent,
    EntryResult,
    Event,
    HeadSeq,
    Health,
    LedgerHealth,
    LedgerPage,
    PartnerInfo,
    PrinterHealth,
    QuoteView,
    ReaderHealth,
    ReadInfo,
    ReceiptPreview,
    ReceiptState,
    ReprintResult,
    SaleBody,
    SaleEvent,
    SyncHealth,
    TerminalInfo,
    TillState,
    Written,
    card_view,
    event_dict,
    quote_view,
)

log = structlog.get_logger("kartapos.sale")

IntegrityState = Literal["pending", "running", "ok", "failed"]


def offline_policy(cfg: Config) -> OfflinePolicy:
    return OfflinePolicy(
        max_catalog_age_s=cfg.offline.max_catalog_age_h * 3600,
        redeem_per_card_per_day=cfg.offline.redeem_per_card_per_day,
        stale_after_s=cfg.offline.stale_after_s,
    )


class SaleService:
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
        keeper: UsageKeeper | None = None,
        sync_now: Callable[[], Any] | None = None,
        lease_now: Callable[[str], Awaitable[int | None]] | None = None,
        on_day_closed: Callable[[], None] | None = None,
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
        self._format = card_number_format(cfg.cards)
        self._card_locks: dict[str, tuple[asyncio.Lock, int]] = {}
        self._close_lock = asyncio.Lock()
        # Card records of the current card-list version (a lookup is a thread hop).
        self._cards: dict[str, CardRecord] = {}
        self._cards_version: int | None = None
        self._unapplied: dict[int, Entry] = {}
        self._keeper = keeper or UsageKeeper(store, usage, clock)
        # The background check of the whole ledger file after READY:
        # "pending", "running", "ok" or "failed", with why.
        self.integrity: tuple[IntegrityState, str | None] = ("pending", None)
        self._sync_now = sync_now
        self._lease_now = lease_now
        self._on_day_closed = on_day_closed
        self._sync_info = sync_info or (lambda: {})
        self._readers_info = readers_info or (lambda: [])

    # --- bookkeeping -------------------------------------------------------------------

    def _drain(self) -> None:
        while (nxt := self._unapplied.pop(self._usage.last_seq + 1, None)) is not None:
            self._usage.apply(nxt)

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
            raise Refused("rules_missing")
        return rules

    def _normalise(self, text: str) -> str:
        try:
            return self._format.normalise(text)
        except CardNumberError:
            raise Refused("not_a_card_number") from None

    async def _card(self, number: str) -> CardRecord:
        await self._keeper.ensure_tracked(self._catalog.rules)
        if self._cards_version != self._catalog.cards_version or len(self._cards) > 1024:
            self._cards.clear()
            self._cards_version = self._catalog.cards_version
        card = self._cards.get(number)
        if card is None:
            card = await self._catalog.lookup(number)
            if card is not None:
                self._cards[number] = card
        if card is None:
            if await self._catalog.is_invalid(number):
                raise Refused("card_data_invalid", details={"card": mask(number)})
            raise Refused("card_unknown", details={"card": mask(number)})
        return card

    # --- card view ---------------------------------------------------------------------

    async def _network(self, card: CardRecord) -> Network:
        """What the partner's usage feed and this till's leases say for the card's holder."""
        return await self._catalog.network_for(card.holder_key)

    def card_view(self, card: CardRecord, at: datetime, network: Network = LOCAL) -> CardView:
        """The card as the screen shows it now (``terminal.views.card_view``)."""
        catalog = self._catalog_state()
        rules = self._catalog.rules or Rules(version="")
        snap = card_snapshot(
            card, rules, self._usage, at, catalog=catalog, policy=self._policy, network=network
        )
        return card_view(snap, stale=catalog.stale(self._policy), rules=rules)

    def _publish(self, ev: Event) -> None:
        self._hub.publish(event_dict(ev))

    async def resolve(self, text: str) -> CardView:
        card = await self._card(self._normalise(text))
        return self.card_view(card, self._now(), await self._network(card))

    async def on_reader_event(self, ev: CardRead | ReaderState | ReadRejected) -> None:
        """A reader said something: push it to the screen."""
        if isinstance(ev, ReaderState):
            self._publish(
                DeviceEvent(
                    device="reader", name=ev.reader, kind=ev.kind, state=ev.state, detail=ev.detail
                )
            )
            return
        read = ReadInfo(source=ev.source, reader=ev.reader)
        if isinstance(ev, ReadRejected):
            self._publish(CardErrorEvent(reason=ev.reason, message=message(ev.reason), read=read))
            return
        card: CardRecord | None = None
        await self._keeper.ensure_tracked(self._catalog.rules)
        if ev.number is not None:
            card = await self._catalog.lookup(ev.number)
        elif ev.uid is not None:
            card = await self._catalog.by_uid(ev.uid)
        if card is None:
            invalid = ev.number is not None and await self._catalog.is_invalid(ev.number)
            reason = "card_data_invalid" if invalid else "card_unknown"
            self._publish(CardErrorEvent(reason=reason, message=message(reason), read=read))
            return
        log.info("card_read", card=card.number, source=ev.source, reader=ev.reader)
        view = self.card_view(card, self._now(), await self._network(card))
        self._publish(CardEvent(read=read, card=view))

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

    async def _quote(self, card: CardRecord, body: SaleBody, at: datetime) -> Quote:
        """The engine's quote with the holder's network view; a new person beyond this
        till's lease asks the city for a slot (at most ``sync.lease_timeout_s``) once."""
        network = await self._network(card)
        try:
            return self._quote_with(card, body, at, network)
        except Refusal as r:
            if not (r.reason == "persons_limit_reached" and "granted" in r.details):
                raise Refused.of(r) from None
            if r.benefit is None or self._lease_now is None:
                raise Refused.of(r) from None
            if not await self._ask_lease(r.benefit):
                raise Refused.of(r) from None
        try:
            return self._quote_with(card, body, at, await self._network(card))
        except Refusal as r:
            raise Refused.of(r) from None

    async def _ask_lease(self, benefit: str) -> bool:
        """One more slot for ``benefit`` from the city, within the lease timeout."""
        assert self._lease_now is not None
        try:
            async with asyncio.timeout(self._cfg.sync.lease_timeout_s):
                granted = await self._lease_now(benefit)
        except TimeoutError:
            log.warning("lease_timeout", benefit=benefit)
            return False
        return granted is not None and granted > self._usage.admitted(benefit)

    def _quote_with(
        self, card: CardRecord, body: SaleBody, at: datetime, network: Network
    ) -> Quote:
        return quote(
            card,
            self._rules(),
            self._usage,
            self._request(body),
            at,
            catalog=self._catalog_state(),
            policy=self._policy,
            network=network,
        )

    async def quote(self, body: SaleBody, caller: Caller) -> QuoteView:
        number = self._normalise(body.card)
        card = await self._card(number)
        return quote_view(await self._quote(card, body, self._now()))

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

    async def _replayed(self, entry: Entry, body: SaleBody, number: str) -> Written:
        if entry.kind != EntryKind.SALE or not self._same_request(entry, body, number):
            raise Refused("sale_conflict", details={"seq": entry.seq})
        return Written(await self._result_of(entry), created=False)

    async def _result_of(self, entry: Entry) -> EntryResult:
        """An earlier write answered again, with its receipt's state."""
        return EntryResult(entry=entry, receipt=ReceiptState(status=await self._receipt_of(entry)))

    def _need_manager(self, caller: Caller, what: str) -> None:
        """Refuse ``manager_required`` unless a manager calls or approved (§5.10)."""
        if not caller.may_approve:
            raise Refused("manager_required", details={"for": what})
        if caller.approved_by is not None:
            log.info("manager_approved", what=what, manager=caller.approved_by)

    async def sell(self, body: SaleBody, caller: Caller) -> Written:
        number = self._normalise(body.card)
        if body.points_override is not None:
            if not caller.may_approve:
                # A retry of a sale that was approved and written: answer with it.
                existing = await self._store.by_sale_id(body.id)
                if existing is not None:
                    return await self._replayed(existing, body, number)
            self._need_manager(caller, "points_override")
        async with self._card_lock(number):
            now = self._now()
            try:
                card = await self._card(number)
                q = await self._quote(card, body, now)
            except Refused:
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
        receipt = ReceiptState(status=await self._printing.print_entry(entry, card=card))
        self._publish(SaleEvent(entry=entry, receipt=receipt))
        explanation = [x.text_pl for x in q.explanation]
        return Written(EntryResult(entry=entry, receipt=receipt, explanation=explanation), True)

    async def void(self, sale_id: str, reason: str, caller: Caller) -> Written:
        original = await self._store.by_sale_id(sale_id)
        if original is None:
            raise Refused("not_found", details={"sale": sale_id})
        void_id = f"void:{sale_id}"
        done = await self._store.by_sale_id(void_id)
        if done is not None:
            return Written(await self._result_of(done), created=False)
        number = original.card or ""
        async with self._card_lock(number):
            done = await self._store.by_sale_id(void_id)  # a void that waited on the lock
            if done is not None:
                return Written(await self._result_of(done), created=False)
            card = await self._catalog.lookup(number) if number else None
            try:
                plan = plan_void(original, self._usage, reason=reason, card=card)
                # voided_by stays None: a void of this sale would have been found above
                # by its id, and two voids of one sale wait on each other's card lock.
            except Refusal as r:
                raise Refused.of(r) from None
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
        receipt = ReceiptState(status=status)
        self._publish(SaleEvent(entry=entry, receipt=receipt))
        return Written(EntryResult(entry=entry, receipt=receipt), created=appended.created)

    async def close_day(self, caller: Caller) -> EntryResult:
        async with self._close_lock:  # two F10s at once: the second sees the first's entry
            return await self._close_day(caller)

    def _refuse_close_without_news(self, today: str) -> None:
        """A second Z report with nothing new since the last one would count it all twice."""
        day = self._usage.day(today)
        if not day.has_news():
            raise Refused("nothing_to_close", details={"last_close_seq": day.last_close_seq})

    async def _close_day(self, caller: Caller) -> EntryResult:
        now = self._now()
        today = local_date(now, self._tz).isoformat()
        self._refuse_close_without_news(today)
        self._need_manager(caller, "day_close")
        rules = self._catalog.rules
        cost = rules.point_cost_gr if rules else PARTNER_COST_PER_POINT_GR
        summary = self._usage.day(today).summary(cost)
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
        if self._on_day_closed is not None:
            self._on_day_closed()  # e.g. give back the lease slots the till holds
        receipt = ReceiptState(status=await self._printing.print_entry(entry))
        self._publish(SaleEvent(entry=entry, receipt=receipt))
        return EntryResult(entry=entry, receipt=receipt, summary=summary)

    async def _append(self, draft: Draft) -> Appended:
        """Append durably; a storage failure is a clear refusal: the sale was NOT saved."""
        try:
            return await self._store.append(draft)
        except IdempotencyConflict:
            raise
        except LedgerError as e:
            log.error("ledger_write_failed", error=str(e))
            raise Refused("ledger_write_failed") from None

    async def _receipt_of(self, entry: Entry) -> str:
        """A replayed request's receipt state; queues the original if a failure lost it."""
        status = await self._printing.status_of(entry.seq)
        if status == "none":
            status = await self._printing.print_entry(entry)
        return status

    async def _entry(self, seq: int) -> Entry:
        e = await self._store.get(seq)
        if e is None:
            raise Refused("not_found", details={"seq": seq})
        return e

    async def reprint(self, seq: int) -> ReprintResult:
        entry = await self._entry(seq)
        status = await self._printing.print_entry(entry, copy=True)
        text = await self._printing.preview_text(entry, copy=True)
        return ReprintResult(seq=seq, receipt=ReceiptState(status=status, copy=True), text=text)

    async def receipt(self, seq: int) -> ReceiptPreview:
        entry = await self._entry(seq)
        return ReceiptPreview(
            seq=seq,
            text=await self._printing.preview_text(entry),
            png_url=f"/api/v1/receipts/{seq}/png",
            status=await self._printing.status_of(seq),
        )

    async def receipt_png(self, seq: int) -> bytes:
        return await self._printing.preview_png(await self._entry(seq))

    async def ledger(self, after: int, limit: int) -> LedgerPage:
        return LedgerPage(entries=await self._store.read_after(after, limit))

    async def sync_now(self) -> dict[str, Any]:
        if self._sync_now is None:
            raise Refused("sync_failed")
        result: dict[str, Any] = await self._sync_now()
        return result

    # --- status ------------------------------------------------------------------------

    async def health(self) -> Health:
        readers = [ReaderHealth(**r) for r in self._readers_info()]
        printer = PrinterHealth(state=self._printing.state())
        catalog = self._catalog_state()
        info = {"cards_version": self._catalog.cards_version, **self._sync_info()}
        sync = SyncHealth(
            **info,
            cards_age_s=round(catalog.age_s, 1) if catalog.age_s is not None else None,
            offline=catalog.stale(self._policy),
        )
        head = self._store.head
        degraded = (
            any(r.state != "connected" for r in readers)
            or printer.state not in ("online", "none", "unknown")
            or sync.fork_alarm
            or catalog.too_old(self._policy)
            or self.integrity[0] == "failed"
            or sync.usage_error is not None
            or sync.lease_error is not None
            or sync.quarantined_count > 0
        )
        return Health(
            status="degraded" if degraded else "ok",
            version=package_version(),
            readers=readers,
            printer=printer,
            sync=sync,
            ledger=LedgerHealth(
                head_seq=head.seq,
                head_hash=head.hash,
                integrity=self.integrity[0],
                integrity_detail=self.integrity[1],
            ),
        )

    def state(self) -> TillState:
        rules = self._catalog.rules
        return TillState(
            terminal=TerminalInfo(
                id=self._cfg.terminal.id, partner_id=self._cfg.terminal.partner_id
            ),
            partner=PartnerInfo(name=rules.partner.name, address=rules.partner.address)
            if rules
            else None,
            ledger=HeadSeq(head_seq=self._store.head.seq),
            today=self._today().isoformat(),
        )

    def _today(self) -> date:
        return local_date(self._now(), self._tz)
