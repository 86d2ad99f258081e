"""`import printer.layout` with python-escpos' profile cache warm (budget <= 150 ms).

Each figure is a fresh interpreter importing printer.layout (which pulls in escpos,
msgspec, config and ledger types), timed inside that interpreter. The cache folder is
a fresh temporary ESCPOS_CAPABILITIES_PICKLE_DIR: the first import fills it (cold,
the baseline), the next ones read it (warm, the budget).

Run: .venv/bin/python -m benchmarks.bench_printer_import [--n 10]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

BUDGET_MS = 150.0
PROBE = (
    "import time; t = time.perf_counter(); c = time.process_time(); import printer.layout; "
    "print((time.perf_counter() - t) * 1000, (time.process_time() - c) * 1000)"
)


def one(cache: Path) -> tuple[float, float]:
    """Wall and CPU milliseconds of one import in a fresh interpreter."""
    env = dict(os.environ, ESCPOS_CAPABILITIES_PICKLE_DIR=str(cache))
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, capture_output=True, text=True, check=True
    )
    wall, cpu = out.stdout.strip().splitlines()[-1].split()
    return float(wall), float(cpu)


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        cache = Path(tmp)
        cold, _ = one(cache)
        runs = [one(cache) for _ in range(args.n)]
    warm = sorted(w for w, _ in runs)
    cpu = sorted(c for _, c in runs)
    median, worst = statistics.median(warm), warm[-1]
    ok = median <= BUDGET_MS
    print(f"import printer.layout, cache cold (baseline): {cold:.1f} ms")
    print(
        f"import printer.layout, cache warm: median {median:.1f} ms, max {worst:.1f} ms "
        f"(budget <= {BUDGET_MS:.0f} ms) {'OK' if ok else 'OVER BUDGET'}"
        f"  [load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs]"
    )
    print(
        f"same, CPU time of the importing process: median {statistics.median(cpu):.1f} ms "
        "(information: immune to other processes' load)"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
