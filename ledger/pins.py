"""Cashier PIN hashes: 'pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>'."""

from __future__ import annotations

import hashlib
import hmac
import os

_ALGO = "pbkdf2_sha256"
DEFAULT_ITERATIONS = 100_000


def hash_pin(pin: str, *, iterations: int = DEFAULT_ITERATIONS, salt: bytes | None = None) -> str:
    """Hash a PIN for storage; the PIN itself is never stored."""
    s = salt if salt is not None else os.urandom(16)
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), s, iterations)
    return f"{_ALGO}${iterations}${s.hex()}${dk.hex()}"


def verify_pin(pin: str, pin_hash: str) -> bool:
    """True when ``pin`` matches ``pin_hash``; False for any malformed hash."""
    try:
        algo, it_text, salt_hex, hash_hex = pin_hash.split("$")
        iterations = int(it_text)
        salt, expected = bytes.fromhex(salt_hex), bytes.fromhex(hash_hex)
    except ValueError:
        return False
    if algo != _ALGO or not 1 <= iterations <= 10_000_000:
        return False
    dk = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return hmac.compare_digest(dk, expected)
