"""The repository's own architecture document is what code and tests cite, and it is whole."""

from __future__ import annotations

import re
from pathlib import Path

from tests.conftest import REPO_ROOT

DOC = REPO_ROOT / "docs" / "architecture.md"
CITATION = re.compile(r"docs/architecture\.md (§\d+(?:\.\d+)*)")
SKIP = {".git", ".venv", "node_modules", "test-artifacts", "demo-state", "dist", "build"}


def _sources() -> list[Path]:
    return [
        p
        for p in REPO_ROOT.rglob("*")
        if p.is_file()
        and not SKIP & set(p.relative_to(REPO_ROOT).parts)
        and p.suffix in (".py", ".js", ".yaml", ".md", ".toml", ".sh", ".html", ".css")
    ]


def sections(text: str) -> set[str]:
    return set(re.findall(r"^#{2,3} (§\d+(?:\.\d+)*)\b", text, re.MULTILINE))


def test_every_citation_names_a_section_of_the_document() -> None:
    have = sections(DOC.read_text(encoding="utf-8"))
    assert {"§2", "§3", "§4", "§5.3", "§5.4", "§9"} <= have
    cited: dict[str, list[str]] = {}
    for path in _sources():
        for m in CITATION.finditer(path.read_text(encoding="utf-8", errors="replace")):
            cited.setdefault(m.group(1), []).append(str(path.relative_to(REPO_ROOT)))
    assert len(cited) >= 6, cited
    assert {k: v for k, v in cited.items() if k not in have} == {}


def test_nothing_cites_a_document_the_repository_does_not_hold() -> None:
    # The shared DESIGN.md lives outside the repository; a newcomer has only this one.
    stale = [
        str(p.relative_to(REPO_ROOT))
        for p in _sources()
        if p != Path(__file__)
        and re.search(r"DESIGN(\.md)? (section|\d)", p.read_text("utf-8", "replace"))
    ]
    assert stale == []


def test_every_module_the_document_names_exists() -> None:
    text = DOC.read_text(encoding="utf-8")
    named = set(
        re.findall(r"`((?:config|drivers|ledger|printer|sync|terminal|tests)/[\w/.]+\.py)`", text)
    )
    assert len(named) > 20
    assert sorted(n for n in named if not (REPO_ROOT / n).exists()) == []
