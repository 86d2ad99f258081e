"""Give freed memory back to the system after a large piece of work.

CPython frees objects into its own arenas and glibc keeps freed heap pages for reuse,
so a daemon's RSS stays at its high-water mark after loading a 1,000,000-card list or
rebuilding its read models once: on a 2 GB till that is memory nothing else can use.
``glibc``'s ``malloc_trim(0)`` returns the free pages at the top and inside the heap.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import gc
from functools import cache
from typing import Any


@cache
def _libc() -> Any | None:
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        lib = ctypes.CDLL(name)
        _ = lib.malloc_trim  # glibc only (not musl)
    except (OSError, AttributeError):
        return None
    return lib


def give_back_memory(*, collect: bool = False) -> bool:
    """Trim the C heap (after a full garbage collection with ``collect``: it stops the
    event loop for milliseconds, so only after one-off work); False where the C library
    cannot trim."""
    if collect:
        gc.collect()
    lib = _libc()
    if lib is None:
        return False
    lib.malloc_trim(0)
    return True
