"""The city server (token, reachability, head against the local ledger) and the daemon.

The city is asked through the project's HTTP layer (``sync.http.CityHttp``, as the
sync client asks it), once and within the doctor's timeout; the running daemon through
its local API, whose health answer is ``terminal.views.Health``. No token is printed.
"""

from __future__ import annotations

import asyncio
import stat
from pathlib import Path

import aiohttp
import msgspec

from config.schema import Config, parse_listen
from ledger.clock import Clock
from ledger.entry import Head
from sync.http import CityHttp, SyncError
from sync.wire import decode_head, head_path
from terminal.auth import TOKEN_FILE
from terminal.doctor.access import SERVICE_USER
from terminal.doctor.report import Check, Level, fail, ok, warn
from terminal.views import Health

_OFFLINE_NOTE = "(the till keeps selling offline meanwhile)"


def read_token(path: Path) -> tuple[str, int]:
    """The token (stripped) and the file's permission bits."""
    return path.read_text(encoding="utf-8").strip(), stat.S_IMODE(path.stat().st_mode)


# --- the city server -------------------------------------------------------------------


async def check_sync(cfg: Config, local: Head | None, timeout_s: float, clock: Clock) -> Check:
    """The token file, then the city's head for this terminal against the local ledger's."""
    what = "sync server"
    token_path = Path(cfg.sync.token_file)
    token_fix = (
        f"put the terminal token from the city in {token_path} "
        f"(chown root:{SERVICE_USER}, chmod 0640); [sync] token_file"
    )
    try:
        token, mode = await asyncio.to_thread(read_token, token_path)
    except FileNotFoundError:
        return fail(what, f"token file {token_path} does not exist", token_fix)
    except (OSError, UnicodeDecodeError) as e:
        reason = e.strerror if isinstance(e, OSError) else "not text"
        return fail(what, f"token file {token_path}: {reason}", token_fix)
    if not token:
        return fail(what, f"token file {token_path} is empty", token_fix)
    path = head_path(cfg.terminal.id)
    url = cfg.sync.url.rstrip("/") + path
    # One attempt, under the doctor's own deadline; CityHttp's request timeout is only a
    # backstop behind it, so a slow server reads "no answer within", not "cannot reach".
    http = CityHttp(
        cfg.sync.url, token_path, clock, request_timeout_s=timeout_s + 1, max_attempts=1
    )
    try:
        async with asyncio.timeout(timeout_s):
            reply = await http.request("GET", path)
            server = reply.decode(decode_head) if reply.status == 200 else None
    except TimeoutError:
        return fail(
            what,
            f"no answer from {url} within {timeout_s:g} s",
            f"check the network and [sync] url {_OFFLINE_NOTE}",
        )
    except SyncError as e:
        return _unanswered(what, url, f"GET {path}: ", e, token_fix)
    finally:
        await http.close()
    if reply.status in (401, 403):
        return fail(
            what,
            f"{url}: the server refused the terminal token (HTTP {reply.status})",
            f"check that {token_path} holds the token issued for terminal {cfg.terminal.id}",
        )
    if reply.status == 404:
        return fail(
            what,
            f"{url}: not found (HTTP 404)",
            f"check [sync] url and that the city registered terminal {cfg.terminal.id}",
        )
    if server is None:
        return fail(
            what, f"{url}: HTTP {reply.status}", "try again later; ask the city if it persists"
        )
    if server.seq < 0:
        return _not_a_head(what, url)
    seq = server.seq
    result = ok(what, f"{cfg.sync.url} answers; it holds entries up to seq {seq}")
    if local is not None:
        if seq > local.seq:
            return fail(
                what,
                f"the server holds seq {seq} but this box's ledger ends at {local.seq}",
                "wrong [terminal] id/state_dir, or the ledger was replaced: contact support",
            )
        result = ok(
            what,
            f"{cfg.sync.url} answers; {seq} of {local.seq} entries acknowledged, "
            f"{local.seq - seq} to upload",
        )
    if mode & 0o004:
        return warn(
            what,
            result.detail + f"; but {token_path} is readable by everyone",
            f"chmod 0640 {token_path}",
        )
    return result


def _not_a_head(what: str, url: str) -> Check:
    return fail(what, f"{url}: the reply is not a head ({{seq, hash}})", "check [sync] url")


def _unanswered(what: str, url: str, request: str, e: SyncError, token_fix: str) -> Check:
    """The doctor's line for a request sync.http gave up on (its ``code`` says why)."""
    # sync.http's messages begin with the request ("GET /v1/…: "); the URL says that here.
    reason = e.message.removeprefix(request)
    if e.code == "unreachable":
        return fail(
            what,
            f"cannot reach {url}: {reason.removeprefix('no answer: ')}",
            f"check the network, DNS and [sync] url {_OFFLINE_NOTE}",
        )
    if e.code == "server_error":  # a "try again later" status, not retried here
        return fail(what, f"{url}: {reason}", "try again later; ask the city if it persists")
    if e.code == "bad_reply":
        return _not_a_head(what, url)
    if e.code == "token":  # the file changed since it was read above
        return fail(what, e.message, token_fix)
    return fail(what, f"{url}: {reason}")


# --- the running daemon ----------------------------------------------------------------


def _loopback(host: str) -> str:
    """Where to reach a daemon listening on ``host`` (a wildcard means this machine)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)  # noqa: S104


async def check_daemon(cfg: Config, timeout_s: float) -> tuple[Check, Health | None]:
    """The daemon's own view (GET /api/v1/health), when it runs: readers' live state."""
    what = "daemon"
    host, port = parse_listen(cfg.api.listen)
    host = _loopback(host)
    url = f"http://{f'[{host}]' if ':' in host else host}:{port}/api/v1/health"
    token_path = Path(cfg.terminal.state_dir) / TOKEN_FILE
    try:
        token, _ = await asyncio.to_thread(read_token, token_path)
    except (OSError, UnicodeDecodeError):
        token = ""
    try:
        async with (
            aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as session,
            session.get(url, headers={"Authorization": f"Bearer {token}"}) as resp,
        ):
            status = resp.status
            body = await resp.read() if status == 200 else b""
    except (aiohttp.ClientError, TimeoutError):
        return (
            warn(
                what,
                f"not running (nothing answers at {cfg.api.listen}); the checks here opened "
                "the devices directly",
                "systemctl enable --now kartapos; logs: journalctl -u kartapos",
            ),
            None,
        )
    try:
        health = msgspec.json.decode(body, type=Health) if status == 200 else None
    except msgspec.MsgspecError:
        health = None
    if health is None:
        return (
            warn(
                what,
                f"something answers at {cfg.api.listen} but not as kartapos (HTTP {status})",
                f"check [api] listen and {token_path}",
            ),
            None,
        )
    states = ", ".join(f"{r.name}={r.state}" for r in health.readers)
    detail = (
        f"running at {cfg.api.listen}, status {health.status}; readers: {states or 'none'}; "
        f"printer: {health.printer.state}; entries to upload: {health.sync.pending_entries}"
    )
    level = Level.OK if health.status == "ok" else Level.WARN
    return Check(level, what, detail), health
