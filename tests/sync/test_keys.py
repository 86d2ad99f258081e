"""The terminal key: made once, private, stable, and its signatures verify."""

from __future__ import annotations

import base64
import os
import stat
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from sync.keys import KEY_FILE, KeyFileError, load_or_create_key
from sync.wire import signing_message, verify_batch_signature


def test_key_is_created_private_and_stable(state_dir: Path) -> None:
    first = load_or_create_key(state_dir)
    path = state_dir / KEY_FILE
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_or_create_key(state_dir)
    assert again.public_key_b64 == first.public_key_b64
    assert "PRIVATE" not in repr(first)


def test_signature_verifies_with_the_contract_message(state_dir: Path) -> None:
    key = load_or_create_key(state_dir)
    sig = base64.b64encode(key.sign(signing_message("T-1", 7, "ab" * 32))).decode()
    assert verify_batch_signature(key.public_key_b64, sig, "T-1", 7, "ab" * 32)
    assert not verify_batch_signature(key.public_key_b64, sig, "T-1", 8, "ab" * 32)


def test_state_dir_is_created(tmp_path: Path) -> None:
    key = load_or_create_key(tmp_path / "new" / "state")
    assert (tmp_path / "new" / "state" / KEY_FILE).exists()
    assert len(key.public_key_b64) == 44


def test_corrupt_key_file_is_a_clear_error_and_not_replaced(state_dir: Path) -> None:
    path = state_dir / KEY_FILE
    path.write_bytes(b"not a key")
    with pytest.raises(KeyFileError, match="not an unencrypted PEM"):
        load_or_create_key(state_dir)
    assert path.read_bytes() == b"not a key"  # an enrolled identity is never silently replaced


def test_loosened_mode_is_tightened(state_dir: Path) -> None:
    key = load_or_create_key(state_dir)
    path = state_dir / KEY_FILE
    os.chmod(path, 0o644)
    assert load_or_create_key(state_dir).public_key_b64 == key.public_key_b64
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_concurrent_first_use_yields_one_key(state_dir: Path) -> None:
    with ThreadPoolExecutor(8) as pool:
        keys = list(pool.map(lambda _: load_or_create_key(state_dir).public_key_b64, range(8)))
    assert len(set(keys)) == 1
    assert [p.name for p in state_dir.iterdir()] == [KEY_FILE]
