"""Named fault points for the fault-injection harness (tests/chaos); inert in production.

The harness starts the daemon with ``KARTAPOS_FAULTS='{"after_commit_before_print": 0.05}'``
and ``KARTAPOS_FAULT_SEED=<n>``; at a named point the process then kills itself with
SIGKILL with that probability, drawn from a generator seeded per process start, so a
seed reproduces the same schedule. Without the variables every point is a no-op.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sys

POINTS = frozenset(
    {
        "after_commit_before_print",  # the sale is durable, its print job not yet queued
        "mid_print",  # half of a receipt's bytes went to the printer
        "mid_catalog_swap",  # a card-list snapshot is staged, not yet swapped in
        "after_upload_commit",  # the server acknowledged a batch; not yet recorded here
    }
)


class _Faults:
    def __init__(self, env: dict[str, str]) -> None:
        raw = env.get("KARTAPOS_FAULTS")
        self.odds: dict[str, float] = {}
        if raw:
            odds = json.loads(raw)
            unknown = set(odds) - POINTS
            if unknown:
                raise ValueError(f"KARTAPOS_FAULTS: unknown fault points {sorted(unknown)}")
            self.odds = {k: float(v) for k, v in odds.items()}
        seed = env.get("KARTAPOS_FAULT_SEED", "0")
        self.rng = random.Random(f"{seed}:{os.getpid()}")

    def draw(self, name: str) -> bool:
        p = self.odds.get(name)
        return bool(p) and self.rng.random() < (p or 0.0)


def die(name: str) -> None:
    """SIGKILL this process at the named point (no cleanup runs, as on a power cut)."""
    sys.stderr.write(f"kartapos: fault point {name}: SIGKILL\n")
    sys.stderr.flush()
    os.kill(os.getpid(), signal.SIGKILL)


_faults = _Faults(dict(os.environ))


def fault_due(name: str) -> bool:
    """Whether the armed point fires now (for points that first do half their work)."""
    return bool(_faults.odds) and _faults.draw(name)


def fault_point(name: str) -> None:
    """Maybe die here (only when the chaos harness armed this point)."""
    if fault_due(name):
        die(name)
