"""Cashier PIN checks: a throttle per cashier, kept on disk, and one check at a time.

An attacker at the till may send guesses in parallel, restart the daemon, interleave a PIN
they know, or try to lock everyone out. So (docs/architecture.md §5.10):
- the cashier is named first and every cashier has their own counter: a success clears
  only that cashier's failures, and locking one cashier locks nobody else;
- a try is counted, written to disk, and only then verified (a crash mid-check counts);
- one check at a time per cashier, and one scrypt/PBKDF2 run at a time, off the event loop;
- after ``FREE_TRIES`` failures in a row the next try waits ``BASE_S`` seconds, doubling
  with every failure up to ``CAP_S``: a 4-digit PIN takes weeks (``seconds_to_try``).
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog

from ledger.domain import Cashier
from ledger.pins import MANAGER_MIN_DIGITS, MAX_DIGITS, MIN_DIGITS, verify_pin
from terminal.auth import read_state_file, write_atomically
from terminal.errors import Refused
from terminal.messages import pin_locked_message

log = structlog.get_logger("kartapos.login")

THROTTLE_FILE = "pin-throttle.json"
ADMIN_ID = "admin"


@dataclass(frozen=True)
class Backoff:
    """How long a cashier waits after failures in a row."""

    free_tries: int = 3
    base_s: float = 1.0
    cap_s: float = 300.0

    def delay_after(self, failures: int) -> float:
        """The wait before the next try after ``failures`` failed tries in a row."""
        if failures < self.free_tries:
            return 0.0
        doublings = min(failures - self.free_tries, 64)  # 2.0 ** 1024 overflows
        return min(self.cap_s, self.base_s * 2.0**doublings)

    def seconds_to_try(self, tries: int) -> float:
        """The least time ``tries`` guesses take in a row, none of them right."""
        return math.fsum(self.delay_after(k) for k in range(1, tries))


class _Count(msgspec.Struct, frozen=True):
    failures: int = 0
    next_at: float = 0.0  # wall-clock seconds: the lock must survive a restart


class _ThrottleFile(msgspec.Struct, frozen=True):
    cashiers: dict[str, _Count] = {}


class PinThrottle:
    """Failures per cashier, on disk (``<state_dir>/pin-throttle.json``, written atomically)."""

    def __init__(self, path: Path | None, backoff: Backoff = Backoff()) -> None:
        self.backoff = backoff
        self._path = path
        self._counts: dict[str, _Count] = {}
        self._default = _Count()
        self._write_lock = asyncio.Lock()
        raw = read_state_file(path)
        if raw:
            try:
                self._counts = dict(msgspec.json.decode(raw, type=_ThrottleFile).cashiers)
            except msgspec.DecodeError:
                # A broken file must not hand out free tries: every cashier's next wrong
                # PIN already waits.
                log.error("pin_throttle_file_unreadable", path=str(path))
                self._default = _Count(failures=backoff.free_tries)

    def failures(self, cashier_id: str) -> int:
        return self._counts.get(cashier_id, self._default).failures

    def retry_after(self, cashier_id: str, now: float) -> float:
        """Seconds until ``cashier_id`` may try again (0: now)."""
        c = self._counts.get(cashier_id)
        if c is None:
            return 0.0
        wait = c.next_at - now
        if wait > self.backoff.cap_s:  # the wall clock went back: never wait beyond the cap
            self._counts[cashier_id] = msgspec.structs.replace(c, next_at=now + self.backoff.cap_s)
            wait = self.backoff.cap_s
        return max(0.0, wait)

    async def reserve(self, cashier_id: str, now: float) -> None:
        """Count a try as failed, on disk, before its PIN is checked."""
        failures = self.failures(cashier_id) + 1
        self._counts[cashier_id] = _Count(failures, now + self.backoff.delay_after(failures))
        await self._save()

    async def succeeded(self, cashier_id: str) -> None:
        """The right PIN: this cashier's count starts again (nobody else's changes)."""
        if self._counts.pop(cashier_id, None) is not None:
            await self._save()

    async def _save(self) -> None:
        if self._path is None:
            return
        path = self._path
        async with self._write_lock:  # one writer; each writes the counts as they are now
            data = msgspec.json.encode(_ThrottleFile(cashiers=dict(self._counts)))
            await asyncio.to_thread(write_atomically, path, data)


Verify = Callable[[str, str], bool]


class PinGuard:
    """The one way a PIN is checked: at login and for a manager's approval."""

    def __init__(
        self,
        throttle: PinThrottle,
        directory: Callable[[], Sequence[Cashier]],
        wall_s: Callable[[], float],
        *,
        verify: Verify = verify_pin,
    ) -> None:
        self.throttle = throttle
        self._directory = directory
        self._wall_s = wall_s
        self._verify = verify
        self._locks: dict[str, asyncio.Lock] = {}
        self._cpu = asyncio.Lock()  # one hash computation at a time, whoever it is for

    @classmethod
    def from_state_dir(
        cls,
        state_dir: Path,
        rules_cashiers: Callable[[], Sequence[Cashier]],
        wall_s: Callable[[], float],
        *,
        admin_pin_hash: str | None = None,
    ) -> PinGuard:
        return cls(
            PinThrottle(state_dir / THROTTLE_FILE),
            with_admin(rules_cashiers, admin_pin_hash),
            wall_s,
        )

    def cashiers(self) -> list[Cashier]:
        return list(self._directory())

    def cashier(self, cashier_id: str) -> Cashier | None:
        return next((c for c in self._directory() if c.id == cashier_id), None)

    def known(self, cashier_id: str) -> bool:
        return self.cashier(cashier_id) is not None

    async def check(self, cashier_id: str, pin: str) -> Cashier:
        """The cashier whose PIN this is; raises Refused (``unknown_cashier``,
        ``manager_pin_too_short``, ``pin_locked`` with ``retry_after_s``, ``bad_pin``)."""
        cashier = self.cashier(cashier_id)
        if cashier is None:
            raise Refused("unknown_cashier")
        if cashier.role == "manager" and len(pin) < MANAGER_MIN_DIGITS:
            raise Refused("manager_pin_too_short", details={"min_digits": MANAGER_MIN_DIGITS})
        lock = self._locks.setdefault(cashier.id, asyncio.Lock())
        async with lock:
            wait = self.throttle.retry_after(cashier.id, self._wall_s())
            if wait > 0:
                raise refused_locked(wait)
            if not (pin.isascii() and pin.isdigit() and MIN_DIGITS <= len(pin) <= MAX_DIGITS):
                raise Refused("bad_pin")  # no hash could match: nothing to count
            await self.throttle.reserve(cashier.id, self._wall_s())
            async with self._cpu:
                ok = await asyncio.to_thread(self._verify, pin, cashier.pin_hash)
            if not ok:
                log.warning(
                    "pin_refused", cashier=cashier.id, failures=self.throttle.failures(cashier.id)
                )
                raise Refused("bad_pin")
            await self.throttle.succeeded(cashier.id)
            return cashier


def refused_locked(wait_s: float) -> Refused:
    seconds = max(1, math.ceil(wait_s))
    return Refused(
        "pin_locked", message_pl=pin_locked_message(seconds), details={"retry_after_s": seconds}
    )


def with_admin(
    rules_cashiers: Callable[[], Sequence[Cashier]], admin_pin_hash: str | None
) -> Callable[[], Sequence[Cashier]]:
    """The rules' cashiers plus the terminal's own administrator (a manager), if configured."""
    if admin_pin_hash is None:
        return rules_cashiers
    admin = Cashier(id=ADMIN_ID, name="Administrator", pin_hash=admin_pin_hash, role="manager")

    def directory() -> Sequence[Cashier]:
        listed = tuple(rules_cashiers())
        return listed if any(c.id == ADMIN_ID for c in listed) else (*listed, admin)

    return directory
