"""Where python-escpos keeps its parsed profile cache; set by the program's start-up.

Importing escpos parses a large profile file unless a pickle of it is cached in
``$ESCPOS_CAPABILITIES_PICKLE_DIR``; without the variable it parses into a fresh temp
folder on every start (~0.5 s of the start-up budget). The variable is read once, when
escpos is imported, so :func:`prepare_escpos_cache` is an explicit call the program
makes before anything imports escpos (``terminal.app.Daemon`` does, before it opens the
print queue); importing a module of this package never changes the environment.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

ENV = "ESCPOS_CAPABILITIES_PICKLE_DIR"


def _candidates() -> list[Path]:
    out: list[Path] = []
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        out.append(Path(xdg) / "kartapos" / "escpos")
    home = os.environ.get("HOME")
    if home:
        out.append(Path(home) / ".cache" / "kartapos" / "escpos")
    out.append(Path(tempfile.gettempdir()) / f"kartapos-escpos-{os.getuid()}")
    return out


def prepare_escpos_cache(state_dir: Path | None = None) -> Path | None:
    """Point escpos at a writable cache folder (keeps an existing setting); return it."""
    current = os.environ.get(ENV)
    if current:
        # escpos writes its pickle there and fails if the folder is missing.
        with contextlib.suppress(OSError):
            Path(current).mkdir(parents=True, exist_ok=True, mode=0o700)
        return Path(current)
    candidates = _candidates()
    if state_dir is not None:
        candidates.insert(0, state_dir / "cache" / "escpos")
    for folder in candidates:
        try:
            folder.mkdir(parents=True, exist_ok=True, mode=0o700)
        except OSError:
            continue
        if os.access(folder, os.W_OK):
            os.environ[ENV] = str(folder)
            return folder
    return None
