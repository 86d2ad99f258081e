"""The terminal's Ed25519 signing key: made once at first start, kept in the state dir.

The private key lives in ``<state_dir>/terminal.key`` (PKCS#8 PEM, mode 0600); only
the public key ever leaves this module (for enrolment and in every upload batch).
"""

from __future__ import annotations

import base64
import contextlib
import os
import secrets
import stat
from pathlib import Path

import structlog
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

KEY_FILE = "terminal.key"

log = structlog.get_logger()


class KeyFileError(Exception):
    """The key file exists but cannot be used; ``str()`` is the one-line reason."""


class TerminalKey:
    """The terminal's signing key; signs batch messages, shows the public half."""

    def __init__(self, private_key: Ed25519PrivateKey, path: Path) -> None:
        self._private = private_key
        self.path = path
        raw = private_key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        self.public_key_b64: str = base64.b64encode(raw).decode("ascii")

    def sign(self, message: bytes) -> bytes:
        """Sign ``message`` (64-byte Ed25519 signature)."""
        return self._private.sign(message)

    def __repr__(self) -> str:  # never show the private half, even in a traceback
        return f"TerminalKey(public_key_b64={self.public_key_b64!r})"


def _read_key(path: Path) -> TerminalKey:
    try:
        data = path.read_bytes()
    except OSError as e:
        raise KeyFileError(f"{path}: cannot read the key file: {e.strerror}") from None
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        raise KeyFileError(f"{path}: not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise KeyFileError(f"{path}: not an Ed25519 key")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        # Someone loosened it (a backup restore, a copy): tighten rather than refuse to sell.
        os.chmod(path, 0o600)
        log.warning("key_file_mode_fixed", path=str(path), was=oct(mode))
    return TerminalKey(key, path)


def _write_new_key(path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(pem)
            f.flush()
            os.fsync(f.fileno())
        # link() fails if another process made the key first: theirs wins, never overwritten.
        try:
            os.link(tmp, path)
        except FileExistsError:
            return
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        log.info("terminal_key_created", path=str(path))
    finally:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()


def load_or_create_key(state_dir: Path) -> TerminalKey:
    """The key in ``<state_dir>/terminal.key``, generated (mode 0600) at first use."""
    path = Path(state_dir) / KEY_FILE
    if not path.exists():
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            _write_new_key(path)
        except OSError as e:
            raise KeyFileError(f"{path}: cannot create the key file: {e.strerror}") from None
    return _read_key(path)
