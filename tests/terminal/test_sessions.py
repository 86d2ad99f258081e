"""Cashier sessions end on the server: logout, expiry, a cashier gone, a forged cookie (§5.10)."""

from __future__ import annotations

from pathlib import Path

from terminal.auth import SESSIONS_FILE, SessionBook

NOW = 1_800_000_000


def book(tmp_path: Path, ttl_s: int = 3600) -> SessionBook:
    return SessionBook(b"k" * 32, ttl_s, tmp_path / SESSIONS_FILE)


async def test_a_session_lives_on_disk_until_it_ends(tmp_path: Path) -> None:
    first = book(tmp_path)
    cookie = await first.open("K1", NOW)
    s = first.check(cookie, NOW)
    assert s is not None
    assert s.cashier_id == "K1"
    again = book(tmp_path)  # a restart reads the same file
    assert again.check(cookie, NOW) is not None
    ended = again.ended(s.sid)
    await again.close(s.sid)
    assert ended.is_set()
    assert again.check(cookie, NOW) is None
    assert book(tmp_path).check(cookie, NOW) is None  # ended for good, not only in memory


async def test_expired_forged_and_foreign_cookies_open_nothing(tmp_path: Path) -> None:
    b = book(tmp_path, ttl_s=60)
    cookie = await b.open("K1", NOW)
    assert b.check(cookie, NOW + 60) is None
    payload, mac = cookie.rsplit(".", 1)
    assert b.check(payload + "." + "0" * len(mac), NOW) is None
    other = SessionBook(b"x" * 32, 60, None)
    assert other.check(cookie, NOW) is None
    assert b.check("garbage", NOW) is None


async def test_a_cashier_left_out_ends_only_their_sessions(tmp_path: Path) -> None:
    b = book(tmp_path)
    kasia = await b.open("K1", NOW)
    tomek = await b.open("K2", NOW)
    s = b.check(tomek, NOW)
    assert s is not None
    ended = b.ended(s.sid)
    assert await b.keep_only(lambda cid: cid == "K1") == 1
    assert ended.is_set()
    assert b.check(tomek, NOW) is None
    assert b.check(kasia, NOW) is not None


async def test_sessions_do_not_pile_up(tmp_path: Path) -> None:
    b = book(tmp_path, ttl_s=60)
    first = await b.open("K1", NOW)
    for i in range(SessionBook.MAX_PER_CASHIER):
        await b.open("K1", NOW + i)
    assert b.check(first, NOW) is None  # the oldest of this cashier made room
    assert b.live() == SessionBook.MAX_PER_CASHIER
    await b.open("K2", NOW + 120)  # every K1 session has expired by then
    assert b.live() == 1
