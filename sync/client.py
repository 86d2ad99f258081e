"""The terminal's side of the sync protocol (docs/architecture.md §5.5): upload and refresh.

Upload: GET the server's head, check it is a prefix of this ledger, then send every
entry after it in signed (gzip) batches. Every batch is a pure function of the ledger,
so any retry is a replay the server answers with its head: an entry is received exactly
once whatever fails in between. Entries are never deleted here; a server restored from
an older backup simply reports an older head and gets the rest again.

Refresh: the card list (delta since the catalogue's version, or full) streamed into
the catalogue, which applies it whole or not at all, and the partner's rules with ETag.

HTTP itself (session, token, retries with backoff and Retry-After, capped reads, line
splitting, error codes) is sync.http's; this module says what the answers mean.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import gzip
import random
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import msgspec
import structlog

from config.faults import fault_point
from config.schema import Config
from ledger.clock import Clock, format_ts, parse_ts
from ledger.entry import GENESIS_HASH, Entry, Head
from ledger.store import LedgerError, LedgerStore
from sync.catalog import Catalog, CatalogError, FeedResult
from sync.http import CityHttp, Sleep, SyncError, real_sleep
from sync.keys import TerminalKey
from sync.wire import (
    LeaseRequest,
    UploadBatch,
    WireError,
    cards_path,
    decode_head_reply,
    decode_lease_grant,
    decode_rules,
    decode_upload_ok,
    encode,
    entries_path,
    head_path,
    leases_path,
    rules_path,
    signing_message,
    usage_path,
)

__all__ = [
    "CycleResult",
    "ForkDetected",
    "RefreshResult",
    "SyncClient",
    "SyncError",
    "SyncEvent",
    "UploadResult",
]

log = structlog.get_logger()

MAX_RULES_BYTES = 16 * 1024 * 1024
MAX_FEED_BYTES = 4 * 1024**3
MAX_FEED_LINE_BYTES = 64 * 1024
MAX_HELD_KEPT = 1000  # quarantined entries remembered (the city names at most as many)


# --- outcomes ---------------------------------------------------------------------------


@dataclass(frozen=True)
class SyncEvent:
    """Progress for a screen or a progress bar."""

    kind: str  # upload_started | upload_progress | upload_done | fork | refresh_done | error
    acked_seq: int = 0
    local_seq: int = 0
    message: str = ""


@dataclass(frozen=True)
class UploadResult:
    """One upload run: ``ok`` only when the server acknowledged the whole local ledger."""

    ok: bool
    acked_seq: int
    local_seq: int
    sent: int = 0  # entries the server newly accepted in this run
    batches: int = 0  # POSTs answered 200
    error: str | None = None  # code: fork, unauthorized, rejected, unreachable, ...
    message: str = ""

    @property
    def pending(self) -> int:
        return max(0, self.local_seq - self.acked_seq)


@dataclass(frozen=True)
class RefreshResult:
    """One catalogue refresh."""

    ok: bool
    cards: FeedResult | None = None
    usage: FeedResult | None = None  # None: the city has no usage feed (or it failed)
    rules_changed: bool = False
    rules_version: str | None = None
    error: str | None = None
    message: str = ""


@dataclass(frozen=True)
class CycleResult:
    """Upload + refresh; ``to_dict()`` is what POST /api/v1/sync answers."""

    upload: UploadResult
    refresh: RefreshResult
    leases: dict[str, int] | None = None  # benefit -> grant after the top-up

    @property
    def ok(self) -> bool:
        return self.upload.ok and self.refresh.ok

    def to_dict(self) -> dict[str, Any]:
        up = asdict(self.upload)
        up["pending"] = self.upload.pending
        return {
            "ok": self.ok,
            "upload": up,
            "refresh": asdict(self.refresh),
            "leases": self.leases,
        }


class ForkDetected(SyncError):
    def __init__(self, message: str) -> None:
        super().__init__("fork", message)


# --- the client -------------------------------------------------------------------------


class SyncClient:
    """Uploads the ledger and refreshes the catalogue; one upload at a time."""

    def __init__(
        self,
        cfg: Config,
        store: LedgerStore,
        catalog: Catalog,
        key: TerminalKey,
        clock: Clock,
        *,
        on_event: Callable[[SyncEvent], None] | None = None,
        rng: random.Random | None = None,
        sleep: Sleep = real_sleep,
        max_attempts: int = 5,
        backoff_base_s: float = 1.0,
        backoff_cap_s: float = 60.0,
        max_feed_bytes: int = MAX_FEED_BYTES,
        max_feed_line_bytes: int = MAX_FEED_LINE_BYTES,
    ) -> None:
        self._cfg = cfg
        self._tid = cfg.terminal.id
        self._store = store
        self._catalog = catalog
        self._key = key
        self._clock = clock
        self._on_event = on_event
        self._http = CityHttp(
            cfg.sync.url,
            cfg.sync.token_file,
            clock,
            request_timeout_s=cfg.sync.request_timeout_s,
            rng=rng,
            sleep=sleep,
            max_attempts=max_attempts,
            backoff_base_s=backoff_base_s,
            backoff_cap_s=backoff_cap_s,
        )
        self._max_feed_bytes = max_feed_bytes
        self._max_feed_line = max_feed_line_bytes
        self._batch_size = cfg.sync.batch_size
        self._upload_lock = asyncio.Lock()
        self._refresh_lock = asyncio.Lock()
        # New persons this till admitted to a benefit (the daemon's usage book says).
        self.admitted: Callable[[str], int] = lambda _benefit: 0
        self.lease_error: str | None = None  # the last lease answer refused (health)
        self.usage_error: str | None = None  # the last usage feed refused (health)
        self._last_error: dict[str, str | None] = {"upload": None, "refresh": None}
        self.acked_seq: int = int(catalog.get_state("acked_seq") or 0)
        self.acked_hash: str = catalog.get_state("acked_hash") or GENESIS_HASH
        at = catalog.get_state("last_upload_at")
        self.last_upload_at: datetime | None = parse_ts(at) if at else None
        self.fork_message: str | None = catalog.get_state("fork_alarm")
        # The entries the city holds in quarantine: seq -> reason (health, status bar).
        self.quarantined: dict[int, str] = _held_from_state(catalog.get_state("quarantined"))

    @property
    def fork_alarm(self) -> bool:
        """The server's ledger and this one disagree: uploading stopped until cleared."""
        return self.fork_message is not None

    @property
    def pending_entries(self) -> int:
        """Entries not yet acknowledged by the server (as of the last upload)."""
        return max(0, self._store.head.seq - self.acked_seq)

    async def close(self) -> None:
        """Close the HTTP session."""
        await self._http.close()

    async def clear_fork_alarm(self) -> None:
        """An operator resolved the fork with the city: allow uploads again."""
        await self._catalog.set_state({"fork_alarm": None})
        log.warning("sync_fork_alarm_cleared", terminal=self._tid)
        self.fork_message = None

    # --- public operations ------------------------------------------------------------

    async def cycle(self) -> CycleResult:
        """Upload, then refresh cards, rules and usage, then top up the leases (11.4)."""
        up = await self.upload()
        ref = await self.refresh()
        leases = await self.top_up_leases() if up.ok and ref.ok else None
        return CycleResult(up, ref, leases)

    # --- leases (docs/architecture.md §5.8) --------------------------------------------

    def lease_benefits(self) -> list[str]:
        rules = self._catalog.rules
        return [] if rules is None else [b.id for b in rules.benefits if b.max_persons]

    async def top_up_leases(self, *, release: bool = False) -> dict[str, int]:
        """Hold ``sync.lease_slots`` free slots of every persons-limited benefit (with
        ``release``: none, at day close). Grants are kept before anyone is admitted."""
        out: dict[str, int] = {}
        for benefit in self.lease_benefits():
            admitted = self.admitted(benefit)
            want = admitted + (0 if release else self._cfg.sync.lease_slots)
            granted = await self.lease(benefit, want)
            if granted is not None:
                out[benefit] = granted
        return out

    async def lease(self, benefit: str, want: int) -> int | None:
        """Ask the city for a grant of ``want`` persons; the grant kept (None: no answer,
        the city has no lease service, or its answer was refused: the old grant stays)."""
        admitted = self.admitted(benefit)
        body = LeaseRequest(benefit=benefit, admitted=admitted, want=max(want, admitted))
        try:
            grant = await self._http.request_json(
                "POST", leases_path(self._tid), body, decode=decode_lease_grant
            )
        except SyncError as e:
            if "HTTP 404" in e.message and not self._catalog.leases():
                return None  # a city without leases: the persons_used count applies
            self._lease_problem(f"lease for {benefit}: {e.message}")
            return self._catalog.leases().get(benefit)  # the grant held stays
        rules = self._catalog.rules
        limit = (
            next((b.max_persons for b in rules.benefits if b.id == benefit), None)
            if rules
            else None
        )
        held = self._catalog.leases().get(benefit)
        if grant.benefit != benefit:
            self._lease_problem(f"lease answer for {grant.benefit!r}, asked for {benefit!r}")
            return held
        if limit is not None and grant.granted > limit:
            self._lease_problem(
                f"lease answer grants {grant.granted} of {benefit} beyond max_persons {limit}"
            )
            return held
        if grant.granted < admitted:
            self._lease_problem(
                f"lease answer grants {grant.granted} of {benefit}, {admitted} already admitted"
            )
            return held
        try:
            await self._catalog.set_lease(benefit, grant.granted)
        except CatalogError as e:
            self._lease_problem(str(e))
            return held
        if self.lease_error is not None:
            log.info("lease_recovered", benefit=benefit)
            self.lease_error = None
        return grant.granted

    def _lease_problem(self, why: str) -> None:
        if self.lease_error != why:
            log.error("lease_refused", reason=why)
        self.lease_error = why

    async def upload(self) -> UploadResult:
        """Send what the server lacks; concurrent calls run one after the other."""
        async with self._upload_lock:
            return await self._upload()

    async def refresh(self) -> RefreshResult:
        """Fetch the card list (delta or full) and the rules."""
        async with self._refresh_lock:
            return await self._refresh()

    # --- upload -----------------------------------------------------------------------

    async def _local_head(self) -> Head:
        try:
            h = await self._store.refresh_head() if self._store.readonly else self._store.head
        except LedgerError as e:
            raise SyncError("ledger", str(e)) from None
        return Head(seq=h.seq, hash=h.hash)

    async def _upload(self) -> UploadResult:
        try:
            local = await self._local_head()
        except SyncError as e:
            self._note_error("upload", e)
            return self._upload_result(Head.genesis(), 0, 0, e.code, e.message)
        if self.fork_message is not None:
            return self._upload_result(local, 0, 0, "fork", self.fork_message)
        sent = batches = 0
        self._emit("upload_started", local)
        try:
            server = await self._get_head()
            await self._check_prefix(server, local)
            self._set_acked(server)
            stalls = 0
            # The next batch is read and encoded while the server verifies this one.
            ahead: asyncio.Task[tuple[list[Entry], bytes]] | None = None
            ahead_after = -1
            try:
                while self.acked_seq < local.seq:
                    before = self.acked_seq
                    if ahead is not None and ahead_after == before:
                        entries, body = await ahead
                    else:
                        await _discard(ahead)
                        entries, body = await self._prepare(before)
                    ahead = None
                    if entries[-1].seq < local.seq:
                        ahead_after = entries[-1].seq
                        ahead = asyncio.create_task(self._prepare(ahead_after))
                    head, accepted = await self._send_batch(body, entries)
                    fault_point("after_upload_commit")
                    batches += accepted
                    await self._check_prefix(head, local)
                    self._set_acked(head)
                    sent += max(0, self.acked_seq - before) if accepted else 0
                    stalls = 0 if self.acked_seq > before else stalls + 1
                    if stalls >= 3:
                        raise SyncError("no_progress", f"the server stays at seq {self.acked_seq}")
                    self._emit("upload_progress", local)
            finally:
                await _discard(ahead)
        except ForkDetected as e:
            await self._raise_fork_alarm(e.message)
            await self._save_acked(ok=False)
            return self._upload_result(local, sent, batches, "fork", e.message)
        except SyncError as e:
            self._note_error("upload", e)
            await self._save_acked(ok=False)
            self._emit("error", local, e.message)
            return self._upload_result(local, sent, batches, e.code, e.message)
        self._note_ok("upload")
        await self._save_acked(ok=True)
        self._emit("upload_done", local)
        return self._upload_result(local, sent, batches, None, "")

    def _upload_result(
        self, local: Head, sent: int, batches: int, code: str | None, message: str
    ) -> UploadResult:
        return UploadResult(
            ok=code is None and self.acked_seq >= local.seq,
            acked_seq=self.acked_seq,
            local_seq=local.seq,
            sent=sent,
            batches=batches,
            error=code,
            message=message,
        )

    async def _read(self, after: int) -> list[Entry]:
        try:
            return await self._store.read_after(after, self._batch_size)
        except LedgerError as e:
            raise SyncError("ledger", str(e)) from None

    async def _check_prefix(self, server: Head, local: Head) -> None:
        """The server's head must be an entry of this ledger, or the two have forked."""
        if server.seq == 0:
            return
        if server.seq > local.seq:
            # The daemon may have appended since this run began (and sent those too).
            local = await self._local_head()
        if server.seq > local.seq:
            raise ForkDetected(
                f"the server holds {server.seq} entries but this ledger ends at "
                f"{local.seq}: was the terminal restored from an older copy?"
            )
        try:
            mine = await self._store.get(server.seq)
        except LedgerError as e:
            raise SyncError("ledger", str(e)) from None
        if mine is None or mine.hash != server.hash:
            raise ForkDetected(f"entry {server.seq} held by the server differs from this ledger")

    def _set_acked(self, head: Head) -> None:
        # May go down: a server restored from an older backup acknowledges less.
        self.acked_seq, self.acked_hash = head.seq, head.hash

    async def _save_acked(self, *, ok: bool) -> None:
        values: dict[str, str | None] = {
            "acked_seq": str(self.acked_seq),
            "acked_hash": self.acked_hash,
        }
        if ok:
            self.last_upload_at = self._clock.now()
            values["last_upload_at"] = format_ts(self.last_upload_at)
        try:
            await self._catalog.set_state(values)
        except CatalogError as e:
            # Only bookkeeping: the next run re-reads the server's head anyway.
            log.error("sync_state_not_saved", reason=str(e))

    async def _raise_fork_alarm(self, message: str) -> None:
        self.fork_message = message
        log.error("sync_fork_detected", terminal=self._tid, reason=message)
        self._emit("fork", Head(seq=self._store.head.seq, hash=""), message)
        try:
            await self._catalog.set_state({"fork_alarm": message})
        except CatalogError as e:
            log.error("sync_state_not_saved", reason=str(e))

    async def _prepare(self, after: int) -> tuple[list[Entry], bytes]:
        """The batch after ``after`` and its signed (gzip) body, encoded off the loop."""
        entries = await self._read(after)
        if not entries:
            raise SyncError("ledger", f"no entries after seq {after}")
        return entries, await asyncio.to_thread(self._encode_batch, entries)

    async def _send_batch(self, body: bytes, entries: list[Entry]) -> tuple[Head, bool]:
        """POST one batch; the server's head after it, and whether it was a 200."""
        headers = {"Content-Type": "application/json"}
        if self._cfg.sync.gzip:
            headers["Content-Encoding"] = "gzip"
        reply = await self._http.request(
            "POST", entries_path(self._tid), data=body, headers=headers
        )
        if reply.status == 200:
            ok = reply.decode(decode_upload_ok)
            held = {q.seq: q.reason for q in ok.quarantined}
            await self._note_held(held, entries[0].seq, entries[-1].seq)
            return ok.head, True
        err = reply.error
        if reply.status == 409 and err.error == "gap":
            log.info("sync_gap", server_seq=err.head.seq if err.head else None)
            return (err.head or await self._get_head()), False
        if reply.status == 409 and err.error == "fork":
            raise ForkDetected(err.message or "the server holds different entries")
        if reply.status == 413 and self._batch_size > 1:
            self._batch_size = max(1, self._batch_size // 2)
            log.warning("sync_batch_too_large", batch_size=self._batch_size)
            return Head(seq=self.acked_seq, hash=self.acked_hash), False
        raise reply.failure()

    def _encode_batch(self, entries: list[Entry]) -> bytes:
        last = entries[-1]
        sig = self._key.sign(signing_message(self._tid, last.seq, last.hash))
        batch = UploadBatch(
            entries=entries,
            signature=base64.b64encode(sig).decode("ascii"),
            public_key=self._key.public_key_b64,
        )
        raw = encode(batch)
        return gzip.compress(raw, compresslevel=1) if self._cfg.sync.gzip else raw

    async def _get_head(self) -> Head:
        reply = await self._http.request_json("GET", head_path(self._tid), decode=decode_head_reply)
        await self._note_held({q.seq: q.reason for q in reply.quarantined}, 1, reply.seq)
        return reply.head

    async def _note_held(self, held: dict[int, str], lo: int, hi: int) -> None:
        """The city's word on entries ``lo..hi``: those in ``held`` wait in its quarantine,
        the others are credited (docs/architecture.md §5.9). Kept in the state for health."""
        now = {s: r for s, r in self.quarantined.items() if not lo <= s <= hi}
        now.update(held)
        if now == self.quarantined:
            return
        fresh = sorted(set(held) - set(self.quarantined))
        if fresh:
            log.warning("sync_entries_quarantined", seqs=fresh[:20], count=len(fresh))
        self.quarantined = dict(sorted(now.items())[-MAX_HELD_KEPT:])
        try:
            await self._catalog.set_state({"quarantined": encode(self.quarantined).decode()})
        except CatalogError as e:
            log.error("sync_state_not_saved", reason=str(e))

    # --- refresh ----------------------------------------------------------------------

    async def _refresh(self) -> RefreshResult:
        try:
            try:
                cards = await self._refresh_cards()
                changed, version = await self._refresh_rules()
                usage = await self._refresh_usage() if cards.accepted else None
            except CatalogError as e:
                raise SyncError("catalog", str(e)) from None
        except SyncError as e:
            self._note_error("refresh", e)
            return RefreshResult(ok=False, error=e.code, message=e.message)
        if not cards.accepted:
            err = SyncError("bad_feed", cards.reason or "card feed rejected")
            self._note_error("refresh", err)
            return RefreshResult(
                ok=False, cards=cards, rules_changed=changed, rules_version=version,
                error=err.code, message=err.message,
            )  # fmt: skip
        if usage is not None and not usage.accepted:
            err = SyncError("bad_feed", usage.reason or "usage feed rejected")
            self._note_error("refresh", err)
            return RefreshResult(
                ok=False, cards=cards, usage=usage, rules_changed=changed,
                rules_version=version, error=err.code, message=err.message,
            )  # fmt: skip
        self._note_ok("refresh")
        res = RefreshResult(
            ok=True, cards=cards, usage=usage, rules_changed=changed, rules_version=version
        )
        self._emit("refresh_done", Head(seq=self._store.head.seq, hash=""))
        return res

    async def _refresh_cards(self) -> FeedResult:
        since = self._catalog.cards_version
        path = cards_path(since)
        acked = self.acked_seq  # the upload before this refresh is in the feed's balances
        return await self._http.stream_lines(
            path,
            functools.partial(self._catalog.apply_feed, acked_seq=acked),
            max_line=self._max_feed_line,
            max_total=self._max_feed_bytes,
            what="card feed",
        )

    async def _refresh_usage(self) -> FeedResult | None:
        """The partner's usage feed (delta or full); None from a city without one."""
        path = usage_path(self._cfg.terminal.partner_id, self._catalog.usage_version)
        try:
            result = await self._http.stream_lines(
                path,
                self._catalog.apply_usage_feed,
                max_line=self._max_feed_line,
                max_total=self._max_feed_bytes,
                what="usage feed",
            )
        except SyncError as e:
            if "HTTP 404" in e.message and self._catalog.usage_version is None:
                return None  # an older city: limits count this till's own entries
            raise
        self.usage_error = None if result.accepted else result.reason
        return result

    async def _refresh_rules(self) -> tuple[bool, str | None]:
        headers: dict[str, str] = {}
        if self._catalog.rules is not None and self._catalog.rules_etag:
            headers["If-None-Match"] = self._catalog.rules_etag
        pid = self._cfg.terminal.partner_id
        reply = await self._http.request(
            "GET", rules_path(pid), headers=headers, max_bytes=MAX_RULES_BYTES
        )
        try:
            if reply.status == 304 and self._catalog.rules is not None:
                await self._catalog.rules_unchanged()
                return False, self._catalog.rules.version_str
            if reply.status != 200:
                raise reply.failure()
            try:
                rules = decode_rules(reply.body)
            except WireError as e:
                log.error("rules_rejected", reason=str(e))
                raise SyncError("bad_rules", str(e)) from None
            await self._catalog.set_rules(rules, reply.headers.get("ETag"))
        except CatalogError as e:
            raise SyncError("catalog", str(e)) from None
        log.info("rules_updated", version=rules.version_str)
        return True, rules.version_str

    # --- logging on change, events ----------------------------------------------------

    def _note_error(self, what: str, e: SyncError) -> None:
        if self._last_error[what] != e.code:
            log.error(f"sync_{what}_failed", code=e.code, reason=e.message)
        self._last_error[what] = e.code

    def _note_ok(self, what: str) -> None:
        if self._last_error[what] is not None:
            log.info(f"sync_{what}_recovered", after=self._last_error[what])
        self._last_error[what] = None

    def _emit(self, kind: str, local: Head, message: str = "") -> None:
        if self._on_event is not None:
            self._on_event(SyncEvent(kind, self.acked_seq, local.seq, message))


def _held_from_state(text: str | None) -> dict[int, str]:
    """The quarantined entries saved in the state; nothing for a missing or unreadable value."""
    if not text:
        return {}
    try:
        return msgspec.json.decode(text, type=dict[int, str])
    except (msgspec.DecodeError, msgspec.ValidationError):
        return {}


async def _discard(task: asyncio.Task[Any] | None) -> None:
    """Cancel a read-ahead that is no longer wanted and wait for it to end."""
    if task is None:
        return
    task.cancel()
    # wait() rather than await: our own cancellation still propagates, the task's doesn't.
    await asyncio.wait([task])
    if not task.cancelled():
        task.exception()  # retrieved: a failed read-ahead is simply not used
