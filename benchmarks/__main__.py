"""Run every benchmark module (benchmarks/bench_*.py) in turn, each in its own process."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path


def main() -> int:
    here = Path(__file__).resolve().parent
    failed = 0
    for path in sorted(here.glob("bench_*.py")):
        print(f"== {path.stem}", flush=True)
        rc = subprocess.call([sys.executable, "-m", f"benchmarks.{path.stem}", *sys.argv[1:]])
        failed += rc != 0
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
