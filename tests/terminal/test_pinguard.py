"""The PIN throttle as an attacker at the till tries it (docs/architecture.md §5.10).

Parallel guesses, a restart, a known PIN interleaved, locking everyone out, brute force:
the guard is driven with a frozen wall clock and a counting verify function, so what is
asserted is how many PINs were actually checked.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Sequence
from pathlib import Path

import pytest

from ledger.domain import Cashier
from ledger.pins import (
    PinPolicyError,
    hash_pin,
    hash_pin_pbkdf2,
    hash_problem,
    verify_pin,
)
from terminal.errors import Refused
from terminal.pinguard import THROTTLE_FILE, Backoff, PinGuard, PinThrottle, with_admin

# Fake hashes: the counting verifier below compares "pin:<digits>" with the PIN.
A = Cashier(id="K-A", name="Ala", pin_hash="pin:1111")
B = Cashier(id="K-B", name="Bartek", pin_hash="pin:2222")
M = Cashier(id="K-M", name="Marta", pin_hash="pin:246810", role="manager")
DAY = 86_400.0


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


class CountingVerify:
    """Counts checks and the most that ran at once; each check takes a little while."""

    def __init__(self, seconds: float = 0.002) -> None:
        self.calls: list[str] = []
        self.running = 0
        self.most_at_once = 0
        self._seconds = seconds
        self._lock = threading.Lock()

    def __call__(self, pin: str, pin_hash: str) -> bool:
        with self._lock:
            self.calls.append(pin_hash)
            self.running += 1
            self.most_at_once = max(self.most_at_once, self.running)
        try:
            time.sleep(self._seconds)  # the hash's cost, so that checks could overlap
            return pin_hash == f"pin:{pin}"
        finally:
            with self._lock:
                self.running -= 1


def guard(
    state: Path,
    clock: Clock,
    verify: CountingVerify,
    cashiers: Sequence[Cashier] = (A, B, M),
) -> PinGuard:
    return PinGuard(PinThrottle(state / THROTTLE_FILE), lambda: cashiers, clock, verify=verify)


async def attempt(g: PinGuard, cashier: str, pin: str) -> str:
    """``ok`` or the refusal's code."""
    try:
        await g.check(cashier, pin)
    except Refused as e:
        return e.code
    return "ok"


async def test_a_hundred_parallel_guesses_check_at_most_the_free_tries(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify()
    g = guard(tmp_path, clock, verify)
    results = await asyncio.gather(*(attempt(g, A.id, f"{i:04d}") for i in range(100)))
    allowed = Backoff().free_tries
    assert len(verify.calls) == allowed
    assert results.count("bad_pin") == allowed
    assert results.count("pin_locked") == 100 - allowed
    assert verify.most_at_once == 1


async def test_the_refusal_says_when_to_try_again_and_the_wait_doubles(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify(0)
    b = Backoff()
    g = guard(tmp_path, clock, verify)
    for _ in range(b.free_tries):
        assert await attempt(g, A.id, "0000") == "bad_pin"
    with pytest.raises(Refused) as locked:
        await g.check(A.id, "1111")  # even the right PIN waits: it is not checked
    assert locked.value.details["retry_after_s"] == b.base_s
    assert "1 s" in locked.value.message
    assert len(verify.calls) == b.free_tries
    clock.now += b.base_s
    assert await attempt(g, A.id, "0000") == "bad_pin"
    assert g.throttle.retry_after(A.id, clock.now) == 2 * b.base_s


async def test_a_lock_survives_a_restart(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify(0)
    first = guard(tmp_path, clock, verify)
    for _ in range(Backoff().free_tries):
        await attempt(first, A.id, "0000")
    assert await attempt(first, A.id, "0000") == "pin_locked"
    # The daemon starts again: a new guard over the same state dir (as terminal/app.py).
    again = guard(tmp_path, clock, CountingVerify(0))
    assert await attempt(again, A.id, "1111") == "pin_locked"
    assert again.throttle.failures(A.id) == Backoff().free_tries
    clock.now += Backoff().base_s
    assert await attempt(again, A.id, "1111") == "ok"


async def test_a_try_is_on_disk_before_its_pin_is_checked(tmp_path: Path) -> None:
    clock = Clock()
    seen: list[int] = []

    def verify(pin: str, pin_hash: str) -> bool:
        # What a daemon started now would read: this very try is already counted.
        seen.append(PinThrottle(tmp_path / THROTTLE_FILE).failures(A.id))
        return False

    g = PinGuard(PinThrottle(tmp_path / THROTTLE_FILE), lambda: (A,), clock, verify=verify)
    await attempt(g, A.id, "0000")
    await attempt(g, A.id, "0000")
    assert seen == [1, 2]


async def test_a_known_pin_of_one_cashier_never_resets_another(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify(0)
    g = guard(tmp_path, clock, verify)
    free = Backoff().free_tries
    for i in range(free):
        assert await attempt(g, B.id, f"{i:04d}") == "bad_pin"
        assert await attempt(g, A.id, "1111") == "ok"  # the attacker knows Ala's PIN
    assert g.throttle.failures(B.id) == free
    assert await attempt(g, B.id, "2222") == "pin_locked"
    assert await attempt(g, A.id, "1111") == "ok"  # locking Bartek locks nobody else
    assert await attempt(g, M.id, "246810") == "ok"


async def test_locking_one_cashier_leaves_the_others_their_free_tries(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify(0)
    g = guard(tmp_path, clock, verify)
    await asyncio.gather(*(attempt(g, A.id, "0000") for _ in range(50)))
    assert await attempt(g, A.id, "1111") == "pin_locked"
    assert await attempt(g, B.id, "0000") == "bad_pin"
    assert await attempt(g, B.id, "2222") == "ok"
    assert g.throttle.failures(B.id) == 0  # the success cleared Bartek's own failure


async def test_one_pin_check_at_a_time_whoever_it_is_for(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify(0.005)
    g = guard(tmp_path, clock, verify)
    await asyncio.gather(*(attempt(g, c.id, "000000") for c in (A, B, M) for _ in range(2)))
    assert len(verify.calls) == 6
    assert verify.most_at_once == 1


def test_a_four_digit_pin_cannot_be_brute_forced_in_reasonable_time() -> None:
    b = Backoff()
    every_pin = b.seconds_to_try(10_000)
    half = b.seconds_to_try(5_000)  # what finding one PIN takes on average
    assert every_pin >= 30 * DAY, every_pin / DAY
    assert half >= 15 * DAY, half / DAY
    # A fixed schedule, not an attacker's luck: the wait is at its cap after a few tries.
    assert b.delay_after(b.free_tries + 12) == b.cap_s


async def test_the_guard_keeps_to_the_schedule_an_attacker_meets(tmp_path: Path) -> None:
    """Try as fast as the guard allows: the clock time spent is the schedule's bound."""
    clock, verify = Clock(), CountingVerify(0)
    g = guard(tmp_path, clock, verify)
    start, tries = clock.now, 40
    while len(verify.calls) < tries:
        result = await attempt(g, A.id, f"{len(verify.calls) + 2000:04d}")
        if result == "pin_locked":
            clock.now += g.throttle.retry_after(A.id, clock.now)
    assert clock.now - start == pytest.approx(Backoff().seconds_to_try(tries))


async def test_a_clock_set_back_never_locks_beyond_the_cap(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify(0)
    g = guard(tmp_path, clock, verify)
    for _ in range(Backoff().free_tries):
        await attempt(g, A.id, "0000")
    clock.now -= 30 * DAY
    assert g.throttle.retry_after(A.id, clock.now) == Backoff().cap_s
    clock.now += Backoff().cap_s
    assert await attempt(g, A.id, "1111") == "ok"


async def test_an_unreadable_throttle_file_hands_out_no_free_tries(tmp_path: Path) -> None:
    (tmp_path / THROTTLE_FILE).write_text("{not json")
    clock, verify = Clock(), CountingVerify(0)
    g = guard(tmp_path, clock, verify)
    assert await attempt(g, A.id, "0000") == "bad_pin"
    assert await attempt(g, A.id, "1111") == "pin_locked"


async def test_unknown_cashiers_and_malformed_pins_cost_no_check(tmp_path: Path) -> None:
    clock, verify = Clock(), CountingVerify(0)
    g = guard(tmp_path, clock, verify)
    assert await attempt(g, "K-NOBODY", "1111") == "unknown_cashier"
    assert await attempt(g, A.id, "12a4") == "bad_pin"
    assert await attempt(g, A.id, "123") == "bad_pin"
    assert await attempt(g, M.id, "24681") == "manager_pin_too_short"
    assert verify.calls == []
    assert not (tmp_path / THROTTLE_FILE).exists()


async def test_the_administrator_is_a_manager_unless_the_rules_name_one_admin() -> None:
    directory = with_admin(lambda: (A,), hash_pin("135790", role="manager"))
    admin = [c for c in directory() if c.id == "admin"]
    assert [(c.name, c.role) for c in admin] == [("Administrator", "manager")]
    ruled = Cashier(id="admin", name="Szef", pin_hash="pin:999999", role="manager")
    assert with_admin(lambda: (ruled,), "x")() == (ruled,)


def test_new_hashes_are_scrypt_and_old_pbkdf2_ones_still_verify() -> None:
    h = hash_pin("1234")
    algo, n, r, p, salt, digest = h.split("$")
    assert (algo, int(n), int(r), int(p)) == ("scrypt", 2**14, 8, 1)
    assert len(bytes.fromhex(salt)) == 16
    assert len(bytes.fromhex(digest)) == 32
    assert verify_pin("1234", h)
    assert not verify_pin("1235", h)
    old = hash_pin_pbkdf2("5678", iterations=1000)
    assert verify_pin("5678", old)
    assert not verify_pin("5679", old)
    assert hash_problem(h) is None
    assert hash_problem(old) is None


@pytest.mark.parametrize(
    "bad",
    [
        "scrypt$3$8$1$00$" + "00" * 32,  # n not a power of two
        "scrypt$2097152$8$1$00$" + "00" * 32,  # n beyond 2^20: a memory bomb
        "scrypt$16384$8$1$00$00",  # a hash too short to mean anything
        "scrypt$16384$8$1$zz$" + "00" * 32,
        "bcrypt$x",
        "",
    ],
)
def test_a_malformed_hash_verifies_nothing(bad: str) -> None:
    assert hash_problem(bad) is not None
    assert not verify_pin("1234", bad)


def test_a_manager_pin_has_at_least_six_digits_where_its_hash_is_made() -> None:
    with pytest.raises(PinPolicyError, match="6 to 12 digits"):
        hash_pin("12345", role="manager")
    with pytest.raises(PinPolicyError, match="digits only"):
        hash_pin("12a4")
    assert verify_pin("123456", hash_pin("123456", role="manager"))
    assert verify_pin("1234", hash_pin("1234", role="cashier"))
