"""Who may call the local API: the bearer token, revocable cashier sessions, the Origin check.

The PIN check and its throttle are in ``terminal/pinguard.py``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import os
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import msgspec
import structlog

log = structlog.get_logger("kartapos.auth")

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


SESSIONS_FILE = "sessions.json"


def write_atomically(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` (0600): a crash leaves the old file or the new one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        os.write(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)
    dfd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def read_state_file(path: Path | None) -> bytes:
    """A small state file's bytes; empty when there is none (yet)."""
    if path is None:
        return b""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return b""


@dataclass(frozen=True)
class Session:
    sid: str
    cashier_id: str
    expires_at: int  # unix seconds


class _Stored(msgspec.Struct, frozen=True):
    cashier: str
    expires: int


class _SessionsFile(msgspec.Struct, frozen=True):
    sessions: dict[str, _Stored] = {}


class SessionBook:
    """Cashier sessions: a signed cookie names a session id kept on disk.

    A session ends at once, on the server, when the cashier logs out or leaves the rules
    (``keep_only``); it survives a daemon restart and expires by itself. ``ended(sid)``
    is set when it ends, so an open event stream closes with it.
    """

    MAX_PER_CASHIER = 8  # the oldest session of a cashier ends when they open a ninth

    def __init__(self, key: bytes, ttl_s: int, path: Path | None) -> None:
        self._key = key
        self._ttl = ttl_s
        self._path = path
        self._sessions: dict[str, _Stored] = {}
        self._ended: dict[str, asyncio.Event] = {}
        self._write_lock = asyncio.Lock()
        raw = read_state_file(path)
        if raw:
            try:
                self._sessions = dict(msgspec.json.decode(raw, type=_SessionsFile).sessions)
            except msgspec.DecodeError:
                log.warning("sessions_file_unreadable", path=str(path))  # all logged out

    @classmethod
    def from_state_dir(cls, state_dir: Path, ttl_s: int) -> SessionBook:
        key = _read_or_create_secret(state_dir / SESSION_KEY_FILE, secrets.token_hex(32).encode())
        return cls(key, ttl_s, state_dir / SESSIONS_FILE)

    def _mac(self, payload: bytes) -> str:
        return hmac.new(self._key, payload, hashlib.sha256).hexdigest()

    async def _save(self) -> None:
        if self._path is None:
            return
        path = self._path
        async with self._write_lock:
            data = msgspec.json.encode(_SessionsFile(sessions=dict(self._sessions)))
            await asyncio.to_thread(write_atomically, path, data)

    async def open(self, cashier_id: str, now: int) -> str:
        """A new session for ``cashier_id``; returns the cookie's value."""
        for old in [s for s, v in self._sessions.items() if v.expires <= now]:
            self._end(old)
        mine = [s for s, v in self._sessions.items() if v.cashier == cashier_id]  # oldest first
        for old in mine[: max(0, len(mine) - self.MAX_PER_CASHIER + 1)]:
            self._end(old)
        sid = secrets.token_urlsafe(18)
        expires = now + self._ttl
        self._sessions[sid] = _Stored(cashier=cashier_id, expires=expires)
        await self._save()
        payload = f"{sid}\x1f{cashier_id}\x1f{expires}".encode()
        return base64.urlsafe_b64encode(payload).decode() + "." + self._mac(payload)

    def check(self, cookie: str, now: int) -> Session | None:
        """The live session the cookie names, or None (forged, expired or ended)."""
        try:
            b64, mac = cookie.rsplit(".", 1)
            payload = base64.urlsafe_b64decode(b64.encode())
        except (ValueError, TypeError):
            return None
        if not hmac.compare_digest(mac, self._mac(payload)):
            return None
        try:
            sid, cid, exp = payload.decode().split("\x1f")
            expires = int(exp)
        except (UnicodeDecodeError, ValueError):
            return None
        stored = self._sessions.get(sid)
        if stored is None or stored.cashier != cid or min(expires, stored.expires) <= now:
            return None
        return Session(sid, cid, expires)

    def _end(self, sid: str) -> bool:
        gone = self._sessions.pop(sid, None) is not None
        ev = self._ended.pop(sid, None)
        if ev is not None:
            ev.set()
        return gone

    async def close(self, sid: str) -> None:
        """End one session now (logout)."""
        if self._end(sid):
            await self._save()

    async def keep_only(self, known: Callable[[str], bool]) -> int:
        """End every session of a cashier ``known`` no longer accepts; how many ended."""
        gone = [s for s, v in self._sessions.items() if not known(v.cashier)]
        for sid in gone:
            self._end(sid)
        if gone:
            log.info("sessions_ended", count=len(gone), why="cashier_not_in_rules")
            await self._save()
        return len(gone)

    def ended(self, sid: str) -> asyncio.Event:
        """An event set when the session ends (already set if it has)."""
        ev = self._ended.setdefault(sid, asyncio.Event())
        if sid not in self._sessions:
            self._ended.pop(sid, None)
            ev.set()
        return ev

    def live(self) -> int:
        return len(self._sessions)


def allowed_origins(host: str, port: int, extra: tuple[str, ...]) -> frozenset[str]:
    """The page's own origins (as the browser names them) plus configured ones."""
    names = {host, "127.0.0.1", "localhost"} if host in ("127.0.0.1", "localhost") else {host}
    if host in ("::1", "[::1]"):
        names = {"[::1]", "localhost"}
    own = {f"http://{n}:{port}" for n in names}
    return frozenset(own | set(extra))
