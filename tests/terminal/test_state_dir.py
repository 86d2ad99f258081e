"""The state dir holds the ledger, the signing key and the API token: it is private."""

from __future__ import annotations

import stat
from pathlib import Path

import pytest

from terminal.app import ensure_state_dir


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_new_state_dir_is_private(tmp_path: Path) -> None:
    ensure_state_dir(tmp_path / "a" / "state")
    assert _mode(tmp_path / "a" / "state") == 0o700


def test_an_existing_state_dir_open_to_others_is_made_private(tmp_path: Path) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o755)
    ensure_state_dir(state)
    assert _mode(state) == 0o700


def test_a_state_dir_that_cannot_be_made_private_is_refused_naming_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    state.chmod(0o750)

    def refuse(self: Path, mode: int) -> None:
        raise PermissionError(1, "Operation not permitted")

    monkeypatch.setattr(Path, "chmod", refuse)
    with pytest.raises(
        PermissionError, match=rf"state dir {state} is open to others \(mode 0750\)"
    ):
        ensure_state_dir(state)
