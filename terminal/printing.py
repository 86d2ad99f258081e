"""The daemon's side of printing: receipt data from entries, the durable queue, previews."""

from __future__ import annotations

import asyncio
from typing import Any

import structlog

from config.schema import Config
from ledger.clock import local_date
from ledger.domain import Benefit, CardRecord, Partner
from ledger.entry import Entry
from ledger.rules import CatalogState, OfflinePolicy
from ledger.store import LedgerStore
from printer.model import ReceiptData, receipt_for_entry
from sync.catalog import Catalog

log = structlog.get_logger("kartapos.printing")


class Printing:
    """Turns committed entries into print jobs; the sale never waits past a short bound."""

    def __init__(
        self,
        *,
        cfg: Config,
        queue: Any | None,
        catalog: Catalog,
        store: LedgerStore,
        policy: OfflinePolicy,
    ) -> None:
        self._cfg = cfg
        self._queue = queue
        self._catalog = catalog
        self._store = store
        self._policy = policy
        self._zone = cfg.terminal.timezone

    def _partner(self) -> Partner:
        rules = self._catalog.rules
        if rules is not None and rules.partner.name:
            return rules.partner
        return Partner(name=self._cfg.terminal.partner_id)

    def _benefits(self) -> dict[str, Benefit]:
        rules = self._catalog.rules
        return {b.id: b for b in rules.benefits} if rules else {}

    def _as_of(self, card: CardRecord | None) -> str | None:
        """'stan na <date>' when the balance comes from an older card list."""
        if card is None or card.points_as_of is None:
            return None
        if not CatalogState(age_s=self._catalog.cards_age_s()).stale(self._policy):
            return None
        from zoneinfo import ZoneInfo

        return local_date(card.points_as_of, ZoneInfo(self._zone)).isoformat()

    async def receipt_data(
        self, entry: Entry, *, card: CardRecord | None = None, voided: Entry | None = None
    ) -> ReceiptData:
        if entry.kind == "void" and voided is None and entry.ref is not None:
            voided = await self._store.get(entry.ref)
        if card is None and entry.card and entry.kind != "day_close":
            card = await self._catalog.lookup(entry.card)
        return receipt_for_entry(
            entry,
            self._partner(),
            benefits=self._benefits(),
            balance_as_of=self._as_of(card),
            voided=voided,
            timezone=self._zone,
        )

    async def print_entry(
        self,
        entry: Entry,
        *,
        card: CardRecord | None = None,
        voided: Entry | None = None,
        copy: bool = False,
    ) -> str:
        """Queue the entry's receipt and wait briefly: 'printed', 'queued' or 'failed'."""
        if self._queue is None:
            return "none"
        data = await self.receipt_data(entry, card=card, voided=voided)
        job = await self._queue.enqueue(data, copy=copy, drawer=False)
        state = await self._queue.wait(job, self._cfg.printer.sale_wait_s)
        return _receipt_status(str(state))

    async def status_of(self, seq: int) -> str:
        """The original receipt's state for an entry."""
        if self._queue is None:
            return "none"
        state = await self._queue.original_state(seq)
        return _receipt_status(str(state)) if state is not None else "none"

    def state(self) -> str:
        if self._queue is None:
            return "none"
        return str(self._queue.status().state)

    async def reconcile(self) -> int:
        """Queue originals for entries committed just before a crash, before their job."""
        if self._queue is None:
            return 0
        head = self._store.head.seq
        last = await self._queue.baseline(head)
        if last == head:
            return 0
        n = 0
        async for entry in self._store.iter_after(last):
            await self._queue.enqueue(await self.receipt_data(entry), copy=False, drawer=False)
            n += 1
        if n:
            log.info("print_reconciled", jobs=n, after_seq=last)
        return n

    async def preview_text(self, entry: Entry, *, copy: bool = False) -> str:
        from printer.layout import render_text

        data = await self.receipt_data(entry)
        return render_text(
            data, self._cfg.printer.columns, copy=copy, codepage=self._cfg.printer.codepage
        )

    async def preview_png(self, entry: Entry) -> bytes:
        from printer.preview import render_png

        data = await self.receipt_data(entry)
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(None, render_png, data, self._cfg.printer.columns)


def _receipt_status(state: str) -> str:
    if state.endswith("printed"):
        return "printed"
    if state.endswith("failed"):
        return "failed"
    return "queued"
