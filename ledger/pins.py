"""Cashier PIN hashes (docs/architecture.md §5.10).

New hashes are ``scrypt$<n>$<r>$<p>$<salt hex>$<hash hex>`` (hashlib.scrypt); the older
``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>`` stays valid for verifying. A PIN is
4 to 12 digits, a manager's at least ``MANAGER_MIN_DIGITS``: only the hash is stored, so
the length is enforced where the hash is made (and again at a manager's login).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Literal

Role = Literal["cashier", "manager"]

MIN_DIGITS = 4
MAX_DIGITS = 12
MANAGER_MIN_DIGITS = 6

# scrypt's cost: ~16 MiB and some 50 ms a try on a POS box, verified off the event loop.
SCRYPT_N = 2**14
SCRYPT_R = 8
SCRYPT_P = 1
_SCRYPT_MAX_N = 2**20
_PBKDF2 = "pbkdf2_sha256"
_SCRYPT = "scrypt"


class PinPolicyError(ValueError):
    """A PIN that may not be set: not digits, or too short or long for the role."""


def min_digits(role: Role) -> int:
    return MANAGER_MIN_DIGITS if role == "manager" else MIN_DIGITS


def pin_problem(pin: str, role: Role = "cashier") -> str | None:
    """Why ``pin`` may not be a ``role``'s PIN, or None when it may."""
    if not (pin.isascii() and pin.isdigit()):
        return "a PIN is digits only"
    low = min_digits(role)
    if not low <= len(pin) <= MAX_DIGITS:
        return f"a {role}'s PIN has {low} to {MAX_DIGITS} digits"
    return None


def hash_pin(
    pin: str,
    *,
    role: Role = "cashier",
    salt: bytes | None = None,
    n: int = SCRYPT_N,
    r: int = SCRYPT_R,
    p: int = SCRYPT_P,
) -> str:
    """Hash a PIN for storage (scrypt); the PIN itself is never stored.

    Raises PinPolicyError for a PIN the role may not have (a manager's under 6 digits).
    """
    problem = pin_problem(pin, role)
    if problem is not None:
        raise PinPolicyError(problem)
    s = salt if salt is not None else os.urandom(16)
    dk = _scrypt(pin, s, n, r, p)
    return f"{_SCRYPT}${n}${r}${p}${s.hex()}${dk.hex()}"


def hash_pin_pbkdf2(pin: str, *, iterations: int = 100_000, salt: bytes | None = None) -> str:
    """The older hash form (still accepted by ``verify_pin``), for tests of old documents."""
    s = salt if salt is not None else os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), s, iterations)
    return f"{_PBKDF2}${iterations}${s.hex()}${dk.hex()}"


def _scrypt(pin: str, salt: bytes, n: int, r: int, p: int, dklen: int = 32) -> bytes:
    return hashlib.scrypt(
        pin.encode(), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + (1 << 20), dklen=dklen
    )


def hash_problem(pin_hash: str) -> str | None:
    """Why ``pin_hash`` is not a hash this till can verify, or None."""
    parts = pin_hash.split("$")
    try:
        if parts[0] == _SCRYPT and len(parts) == 6:
            n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
            bytes.fromhex(parts[4])
            if not 16 <= len(bytes.fromhex(parts[5])) <= 64:
                return "scrypt hash must be 16 to 64 bytes"
            if not (2 <= n <= _SCRYPT_MAX_N and n & (n - 1) == 0):
                return "scrypt n must be a power of two up to 2^20"
            if not (1 <= r <= 32 and 1 <= p <= 16):
                return "scrypt r or p out of range"
            return None
        if parts[0] == _PBKDF2 and len(parts) == 4:
            iterations = int(parts[1])
            bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
            if not 1 <= iterations <= 10_000_000:
                return "pbkdf2 iterations out of range"
            return None
    except ValueError:
        return "not a number or not hex where one is expected"
    return "unknown hash form (scrypt$… or pbkdf2_sha256$…)"


def verify_pin(pin: str, pin_hash: str) -> bool:
    """True when ``pin`` matches ``pin_hash``; False for any malformed hash."""
    if hash_problem(pin_hash) is not None:
        return False
    parts = pin_hash.split("$")
    if parts[0] == _SCRYPT:
        n, r, p = int(parts[1]), int(parts[2]), int(parts[3])
        salt, expected = bytes.fromhex(parts[4]), bytes.fromhex(parts[5])
        dk = _scrypt(pin, salt, n, r, p, len(expected))
        return hmac.compare_digest(dk, expected)
    iterations = int(parts[1])
    salt, expected = bytes.fromhex(parts[2]), bytes.fromhex(parts[3])
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return hmac.compare_digest(dk, expected)
