"""Fixtures of the driver tests: the one pcscd of the machine, owned by this test run."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.drivers.pcsc_harness import PcscdProcess, pcsc_available


# Module scope: the pcscd (and the lock that makes it this run's) is released after each
# module, so other areas' tests that start their own pcscd never wait on this one.
@pytest.fixture(scope="module")
def pcscd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PcscdProcess]:
    if not pcsc_available():
        pytest.skip(
            "pcscd or vsmartcard-vpcd is not installed (apt-get install pcscd vsmartcard-vpcd)"
        )
    with PcscdProcess(Path(tmp_path_factory.mktemp("pcscd"))) as proc:
        yield proc
