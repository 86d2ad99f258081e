"""Layout + ESC/POS encode of one receipt (budget p99 <= 2 ms).

Measured: printer.layout.render() of the sample sale (two benefits, a redemption, a
stale balance, native QR) on an 80 mm TM-T20II profile; also, for information, the
58 mm clone profile whose QR is a raster image, the Z report, and the plain-text
preview.

Run: .venv/bin/python -m benchmarks.bench_printer_layout [--n 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

from config.schema import PrinterSection
from printer.layout import render, render_text
from printer.samples import sample_day_close, sample_sale

BUDGET_P99_MS = 2.0


def measure(
    fn: Callable[[], object], n: int, clock: Callable[[], float] = time.perf_counter
) -> tuple[float, float]:
    for _ in range(50):
        fn()
    times = []
    for _ in range(n):
        start = clock()
        fn()
        times.append((clock() - start) * 1000)
    times.sort()
    return statistics.median(times), times[int(len(times) * 0.99) - 1]


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=5000)
    args = ap.parse_args()
    sale, z = sample_sale(), sample_day_close()
    tm = PrinterSection(profile="TM-T20II", columns=48)
    clone = PrinterSection(profile="POS-5890", columns=32, cancel_kanji=True)
    p50, p99 = measure(lambda: render(sale, tm), args.n)
    ok = p99 <= BUDGET_P99_MS
    load = os.getloadavg()[0]
    print(
        f"sale receipt 80 mm render+encode: p50 {p50:.3f} ms, p99 {p99:.3f} ms "
        f"(budget p99 <= {BUDGET_P99_MS} ms) {'OK' if ok else 'OVER BUDGET'}"
        f"  [load average {load:.2f} on {os.cpu_count()} CPUs]"
    )
    c50, c99 = measure(lambda: render(sale, tm), args.n, time.thread_time)
    print(
        f"same, CPU time of this thread (immune to other processes): p50 {c50:.3f} ms, "
        f"p99 {c99:.3f} ms (information)"
    )
    for label, fn in (
        ("Z report 80 mm", lambda: render(z, tm)),
        ("sale 58 mm clone (raster QR)", lambda: render(sale, clone)),
        ("sale text preview 48 col", lambda: render_text(sale, 48)),
    ):
        p50, p99x = measure(fn, max(args.n // 5, 100))
        print(f"{label}: p50 {p50:.3f} ms, p99 {p99x:.3f} ms (information)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
