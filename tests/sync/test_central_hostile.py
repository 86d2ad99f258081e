"""Hostile uploads at the city server: at most N at once, and no body ever makes a 500."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import json
import resource
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.sync.central_harness import TERMINAL, CentralHarness, make_entries
from tests.threaded import serve

pytestmark = pytest.mark.usefixtures("central_engine")  # on SQLite and PostgreSQL

ENTRIES = f"/v1/terminals/{TERMINAL}/entries"


async def test_uploads_beyond_the_limit_get_503_with_retry_after(tmp_path: Path) -> None:
    async with CentralHarness.start(tmp_path, max_concurrent_uploads=1) as h:
        body = h.batch_body(make_entries(3))
        release = asyncio.Event()

        async def slow_body() -> AsyncIterator[bytes]:
            yield body[:10]
            await release.wait()  # holds the one upload slot until the test lets go
            yield body[10:]

        async with h.session() as http:
            first = asyncio.create_task(
                http.post(ENTRIES, data=slow_body(), headers={"Content-Type": "application/json"})
            )
            for _ in range(200):  # until the server has taken the first one in
                await asyncio.sleep(0.01)
                async with http.post(ENTRIES, data=body) as r:
                    if r.status == 503:
                        busy = await r.json()
                        retry_after = r.headers.get("Retry-After")
                        break
            else:
                raise AssertionError("the second upload was never refused as busy")
            release.set()
            resp = await first
            assert resp.status == 200, await resp.text()
            resp.release()
            assert (busy["error"], retry_after) == ("busy", "2")
            async with http.post(ENTRIES, data=h.batch_body(make_entries(3))) as r:
                assert r.status == 200  # a replay once the slot is free


@contextlib.contextmanager
def _server(tmp_path: Path) -> Iterator[tuple[str, str]]:
    box: dict[str, str] = {}

    @contextlib.asynccontextmanager
    async def up() -> AsyncIterator[str]:
        async with CentralHarness.start(tmp_path, max_body_bytes=1 << 20) as h:
            box["token"] = h.token
            yield h.url

    with serve(up, what="the city server") as url:
        yield url, box["token"]


def _post(url: str, token: str, body: bytes, encoding: str | None) -> int:
    headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
    if encoding:
        headers["Content-Encoding"] = encoding
    req = urllib.request.Request(url + ENTRIES, data=body, headers=headers, method="POST")  # noqa: S310
    try:
        with urllib.request.urlopen(req, timeout=10) as r:  # noqa: S310 - loopback only
            return int(r.status)
    except urllib.error.HTTPError as e:
        json.loads(e.read())  # every refusal is JSON
        return int(e.code)


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.floats(allow_nan=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=30,
)
entry_like = st.fixed_dictionaries(
    {"seq": json_values, "terminal": st.just(TERMINAL) | json_values},
    optional={
        "amount_gr": json_values,
        "points_earned": json_values,
        "hash": json_values,
        "prev_hash": json_values,
        "benefit_points": json_values,
        "x": json_values,
    },
)
bodies = st.one_of(
    st.binary(max_size=200),
    json_values.map(lambda v: json.dumps(v).encode()),
    st.lists(entry_like, max_size=3).map(
        lambda es: json.dumps({"entries": es, "signature": "AA==", "public_key": "AA=="}).encode()
    ),
    st.integers(min_value=1, max_value=2000).map(
        lambda depth: (
            '{"entries": [{"seq": 1, "x": ' + "[" * depth + "1" + "]" * depth + "}]}"
        ).encode()
    ),
)


@pytest.mark.slow
def test_no_upload_body_makes_a_500_or_grows_the_server(tmp_path: Path) -> None:
    with _server(tmp_path) as (url, token):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        seen: set[int] = set()

        @settings(
            max_examples=300,
            deadline=None,
            derandomize=True,
            suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
        )
        @given(body=bodies, encoding=st.sampled_from([None, "gzip", "deflate"]))
        def one(body: bytes, encoding: str | None) -> None:
            sent = body
            if encoding == "gzip":
                sent = gzip.compress(body) if len(body) % 2 else body  # valid and broken streams
            status = _post(url, token, sent, encoding)
            seen.add(status)
            assert status < 500, (status, body[:200])

        one()
        health: Any = json.loads(urllib.request.urlopen(url + "/v1/health", timeout=5).read())  # noqa: S310
        assert health["status"] == "ok"
        grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert {400, 422} <= seen, seen
    assert grown_mb < 64, f"the server grew {grown_mb:.0f} MB"
