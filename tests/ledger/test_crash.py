"""kill -9 at random moments: no acknowledged entry lost, none doubled, chain intact."""

from __future__ import annotations

import asyncio
import os
import random
import select
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from ledger.store import LedgerStore
from tests.conftest import REPO_ROOT

ROUNDS = 22


def _read_reports(fd: int, proc: subprocess.Popen[bytes], want_lines: int) -> bytes:
    """Read the child's reports until ``want_lines`` arrived (or it died); 20 s at most."""
    buf = b""
    deadline = time.monotonic() + 20
    while buf.count(b"\n") < want_lines:
        left = deadline - time.monotonic()
        if left <= 0:
            pytest.fail(f"child reported only {len(buf.splitlines())} lines in 20 s")
        ready, _, _ = select.select([fd], [], [], left)
        if ready:
            chunk = os.read(fd, 65536)
            if not chunk:
                pytest.fail(f"child exited early (rc={proc.poll()})")
            buf += chunk
    return buf


def _drain(fd: int) -> bytes:
    """What the killed child wrote and we have not read yet (write end is closed)."""
    out = b""
    while chunk := os.read(fd, 65536):
        out += chunk
    return out


async def _check(path: Path, reported: dict[int, str]) -> tuple[int, Counter[str]]:
    async with await LedgerStore.open(path, terminal="T-0001") as store:
        assert await store.verify() is None
        entries = await store.read_after(0, 1_000_000)
    assert [e.seq for e in entries] == list(range(1, len(entries) + 1))
    by_seq = {e.seq: e.hash for e in entries}
    for seq, h in reported.items():
        assert by_seq.get(seq) == h, f"acknowledged seq {seq} lost or changed"
    return len(entries), Counter(e.sale_id for e in entries if e.sale_id)


def test_sigkill_at_random_moments_loses_and_doubles_nothing(state_dir: Path) -> None:
    rng = random.Random(int.from_bytes(os.urandom(4), "big"))
    path = state_dir / "ledger.sqlite"
    reported: dict[int, str] = {}
    acked_ids: set[str] = set()
    prev_run, prev_reported = -1, 0
    for run in range(ROUNDS):
        rfd, wfd = os.pipe()
        proc = subprocess.Popen(
            [
                sys.executable,
                str(REPO_ROOT / "tests" / "ledger" / "crash_child.py"),
                str(path),
                str(wfd),
                str(run),
                str(prev_run),
                str(prev_reported),
            ],
            pass_fds=(wfd,),
            cwd=REPO_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPO_ROOT)},
        )
        os.close(wfd)
        try:
            buf = _read_reports(rfd, proc, rng.randint(1, 400))
            # The moment of the kill is random relative to the child's commits: it keeps
            # appending while we read and decide.
            if rng.random() < 0.5:
                time.sleep(rng.random() * 0.02)
            proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=10)
            buf += _drain(rfd)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
            os.close(rfd)
        assert proc.returncode == -signal.SIGKILL
        this_run = 0
        for line in buf.decode().splitlines(keepends=True):
            if not line.endswith("\n"):
                continue  # a torn last line was never a complete acknowledgement
            seq_s, h, sale_id = line.split()
            assert reported.setdefault(int(seq_s), h) == h
            acked_ids.add(sale_id)
            this_run += sale_id.startswith(f"run{run}-")
        count, per_id = asyncio.run(_check(path, reported))
        assert count >= max(reported)
        doubled = [i for i, c in per_id.items() if c > 1]
        assert not doubled, f"requests written twice: {doubled[:5]}"
        assert acked_ids <= set(per_id)
        prev_run, prev_reported = run, this_run
    assert len(reported) > ROUNDS
