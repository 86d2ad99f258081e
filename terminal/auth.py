"""Who may call the local API: the bearer token, cashier sessions, and the Origin check."""

from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

TOKEN_FILE = "api-token"  # noqa: S105 - a file name, not a secret
SESSION_KEY_FILE = "session-key"
COOKIE_NAME = "kp_session"


def _read_or_create_secret(path: Path, make: bytes) -> bytes:
    """Read a secret file, creating it (mode 0600, atomically) at first start."""
    try:
        return path.read_bytes().strip()
    except FileNotFoundError:
        pass
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, make + b"\n")
        os.fsync(fd)
    finally:
        os.close(fd)
    try:
        os.link(tmp, path)  # fails if another process made it first: then use theirs
    except FileExistsError:
        pass
    finally:
        tmp.unlink(missing_ok=True)
    return path.read_bytes().strip()


def load_api_token(state_dir: Path) -> str:
    """The API bearer token from ``<state_dir>/api-token`` (made at first start)."""
    return _read_or_create_secret(
        state_dir / TOKEN_FILE, secrets.token_urlsafe(32).encode()
    ).decode()


@dataclass(frozen=True)
class Session:
    cashier_id: str
    cashier_name: str
    expires_at: int  # unix seconds


class SessionSigner:
    """Stateless signed session cookies: survive a daemon restart, expire by themselves."""

    def __init__(self, key: bytes, ttl_s: int) -> None:
        self._key = key
        self._ttl = ttl_s

    @classmethod
    def from_state_dir(cls, state_dir: Path, ttl_s: int) -> SessionSigner:
        key = _read_or_create_secret(state_dir / SESSION_KEY_FILE, secrets.token_hex(32).encode())
        return cls(key, ttl_s)

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    def issue(self, cashier_id: str, cashier_name: str, now: int) -> str:
        payload = f"{cashier_id}\x1f{cashier_name}\x1f{now + self._ttl}".encode()
        return base64.urlsafe_b64encode(payload).decode() + "." + self._mac(payload)

    def check(self, cookie: str, now: int) -> Session | None:
        try:
            b64, mac = cookie.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(b64.encode())
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            cid, name, exp = payload.decode().split("\x1f")
            expires = int(exp)
        except (UnicodeDecodeError, ValueError):
            return None
        if expires <= now:
            return None
        return Session(cid, name, expires)


class PinThrottle:
    """After ``limit`` wrong PINs in a row, refuse logins for ``lock_s`` seconds."""

    def __init__(self, limit: int = 5, lock_s: float = 30.0) -> None:
        self._limit = limit
        self._lock_s = lock_s
        self._failures = 0
        self._locked_until = 0.0

    def locked(self, mono: float) -> bool:
        return mono < self._locked_until

    def failed(self, mono: float) -> None:
        self._failures += 1
        if self._failures >= self._limit:
            self._locked_until = mono + self._lock_s
            self._failures = 0

    def succeeded(self) -> None:
        self._failures = 0


def allowed_origins(host: str, port: int, extra: tuple[str, ...]) -> frozenset[str]:
    """The page's own origins (as the browser names them) plus configured ones."""
    names = {host, "127.0.0.1", "localhost"} if host in ("127.0.0.1", "localhost") else {host}
    if host in ("::1", "[::1]"):
        names = {"[::1]", "localhost"}
    own = {f"http://{n}:{port}" for n in names}
    return frozenset(own | set(extra))
