"""MemoryDenyWriteExecute=yes in kartapos.service is compatible with everything the daemon loads.

systemd implements it with a seccomp filter that refuses writable+executable mappings
and adding PROT_EXEC later. Linux >= 6.3 offers the same rule per process
(prctl PR_SET_MDWE), so the test runs the libraries under it in a child process.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

from tests.systemd.unitfile import last, load_unit

PRELUDE = textwrap.dedent(
    """
    import ctypes, errno, mmap, sys
    libc = ctypes.CDLL(None, use_errno=True)
    PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN = 65, 1
    if libc.prctl(PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN, 0, 0, 0) != 0:
        print("NO_MDWE", errno.errorcode.get(ctypes.get_errno()))
        sys.exit(0)
    """
)

# The libraries the daemon imports, each doing the kind of work it does for us.
EXERCISE = textwrap.dedent(
    """
    import asyncio, sqlite3, tempfile, os, zoneinfo
    import aiohttp, aiohttp.web, aiosqlite, msgspec, structlog, serial, serial_asyncio_fast
    import evdev, pyudev
    from smartcard import scard
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from PIL import Image, ImageDraw
    import escpos.printer
    import config.loader, ledger.entry, ledger.canonical, terminal.cli

    key = Ed25519PrivateKey.generate()
    key.public_key().verify(key.sign(b"T-0001:1:ab"), b"T-0001:1:ab")
    msgspec.json.decode(msgspec.json.encode({"seq": 1, "hash": "00" * 32}))
    with tempfile.TemporaryDirectory() as d:
        db = sqlite3.connect(os.path.join(d, "l.sqlite"))
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE t (x)")
        db.executemany("INSERT INTO t VALUES (?)", [(i,) for i in range(100)])
        db.commit()
        db.close()
    p = escpos.printer.Dummy(profile="TM-T20II")
    p.charcode("CP852")
    p.text("Zażółć gęślą jaźń\\n")
    assert p.output
    img = Image.new("L", (64, 64)); ImageDraw.Draw(img).text((1, 1), "ąę")
    pyudev.Context()
    zoneinfo.ZoneInfo("Europe/Warsaw")
    # A serial reader as the daemon opens it (exclusive, raw termios) on a pty.
    import socket
    master, slave = os.openpty()
    port = serial.Serial(os.ttyname(slave), 9600, timeout=0, exclusive=True)
    port.write(b";01000018?\\r")
    port.close()
    os.close(slave); os.close(master)
    # pcscd may be absent: the call still goes through the same socket code.
    rc, ctx = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
    if rc == scard.SCARD_S_SUCCESS:
        scard.SCardReleaseContext(ctx)
    # sd_notify on an abstract socket, as under Type=notify.
    from terminal.sdnotify import Notifier
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(b"\\0kartapos-mdwe-%d" % os.getpid())
    assert Notifier({"NOTIFY_SOCKET": "@kartapos-mdwe-%d" % os.getpid()}).ready()
    assert listener.recv(64) == b"READY=1\\n"
    listener.close()

    async def main() -> None:
        async def hello(request: aiohttp.web.Request) -> aiohttp.web.Response:
            return aiohttp.web.json_response({"ok": True})
        app = aiohttp.web.Application()
        app.router.add_get("/", hello)
        runner = aiohttp.web.AppRunner(app)
        await runner.setup()
        site = aiohttp.web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/") as r:
            assert (await r.json()) == {"ok": True}
        await runner.cleanup()
        from pathlib import Path
        from ledger.entry import Draft
        from ledger.store import LedgerStore
        with tempfile.TemporaryDirectory() as d:
            path = Path(d) / "ledger.sqlite"
            async with await LedgerStore.open(path, terminal="T-0001") as store:
                for i in range(20):
                    await store.append(Draft(
                        ts="2026-11-18T11:00:00.000Z", local_date="2026-11-18", kind="sale",
                        card="01-000018", amount_gr=1000 + i, sale_id=f"req-{i}",
                    ))
                assert await store.verify() is None
        await asyncio.to_thread(sum, range(10))

    asyncio.run(main())
    print("EXERCISED")
    """
)

# Proof the rule is really on: a writable+executable mapping must now be refused.
WX_REFUSED = textwrap.dedent(
    """
    try:
        mmap.mmap(-1, 4096, prot=mmap.PROT_READ | mmap.PROT_WRITE | mmap.PROT_EXEC)
    except PermissionError:
        print("WX_REFUSED")
    """
)


def _run(code: str) -> str:
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    if proc.stdout.startswith("NO_MDWE"):
        pytest.skip(
            f"not applicable here: kernel without PR_SET_MDWE (Linux >= 6.3): {proc.stdout.strip()}"
        )
    return proc.stdout


def test_write_execute_mapping_is_refused_under_mdwe() -> None:
    assert "WX_REFUSED" in _run(PRELUDE + WX_REFUSED)


def test_daemon_libraries_work_with_memory_deny_write_execute() -> None:
    assert last(load_unit("kartapos.service"), "Service", "MemoryDenyWriteExecute") == "yes"
    assert "EXERCISED" in _run(PRELUDE + EXERCISE)
