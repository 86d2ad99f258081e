"""The installed package's version: one home for `kartapos --version`, health and doctor."""

from __future__ import annotations

from functools import cache
from importlib import metadata

DISTRIBUTION = "kartapos"


@cache
def package_version() -> str:
    """The version pip or dpkg installed (``pyproject.toml`` ``[project] version``)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        # Run from a source tree that was never installed: say so rather than guess.
        return "0+unknown"
