"""Fixtures of the driver tests: the one pcscd of the machine, owned by this test run."""

from __future__ import annotations

from tests.drivers.pcsc_harness import pcscd

__all__ = ["pcscd"]
