"""Read systemd unit files and udev rules the way the tests need them (not a general parser)."""

from __future__ import annotations

import re
from collections import defaultdict
from pathlib import Path

SYSTEMD_DIR = Path(__file__).resolve().parents[2] / "systemd"

Unit = dict[str, dict[str, list[str]]]


def parse_unit(text: str) -> Unit:
    """Section -> key -> every value in order (keys such as DeviceAllow= repeat)."""
    unit: Unit = {}
    section: dict[str, list[str]] | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("[") and line.endswith("]"):
            section = unit.setdefault(line[1:-1], defaultdict(list))
            continue
        assert section is not None, f"key outside a section: {raw!r}"
        key, sep, value = line.partition("=")
        assert sep, f"not KEY=VALUE: {raw!r}"
        section[key.strip()].append(value.strip())
    return unit


def load_unit(name: str) -> Unit:
    return parse_unit((SYSTEMD_DIR / name).read_text(encoding="utf-8"))


def last(unit: Unit, section: str, key: str) -> str | None:
    """The effective value of a single-valued key (the last assignment wins)."""
    values = unit.get(section, {}).get(key, [])
    return values[-1] if values else None


# udev rules(7): keys that only match, keys that only assign, keys that may do both.
_MATCH_KEYS = {
    "ACTION", "DEVPATH", "KERNEL", "KERNELS", "NAME", "SUBSYSTEM", "SUBSYSTEMS",
    "DRIVER", "DRIVERS", "ATTR", "ATTRS", "SYSCTL", "ENV", "CONST", "TAG", "TAGS",
    "TEST", "PROGRAM", "RESULT", "SYMLINK",
}  # fmt: skip
_ASSIGN_KEYS = {
    "NAME", "SYMLINK", "OWNER", "GROUP", "MODE", "SECLABEL", "ATTR", "SYSCTL",
    "ENV", "TAG", "RUN", "LABEL", "GOTO", "IMPORT", "OPTIONS",
}  # fmt: skip
_KEYS_WITH_ATTR = {"ATTR", "ATTRS", "ENV", "SYSCTL", "CONST", "TEST", "IMPORT", "RUN", "SECLABEL"}
_TOKEN = re.compile(
    r'\s*(?P<key>[A-Z]+)(?:\{(?P<attr>[^}]*)\})?\s*(?P<op>==|!=|\+=|-=|:=|=)\s*"(?P<value>[^"]*)"\s*'
)

UdevRule = list[tuple[str, str | None, str, str]]


def parse_udev_rules(text: str) -> tuple[list[UdevRule], list[str]]:
    """Parse rule lines into (key, attr, op, value) tokens; also return every problem found."""
    rules: list[UdevRule] = []
    problems: list[str] = []
    lines = text.replace("\\\n", " ").splitlines()
    for lineno, raw in enumerate(lines, 1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        tokens: UdevRule = []
        pos = 0
        while pos < len(line):
            m = _TOKEN.match(line, pos)
            if not m:
                problems.append(f"line {lineno}: cannot parse at {line[pos:]!r}")
                break
            key, attr, op, value = m["key"], m["attr"], m["op"], m["value"]
            matching = op in ("==", "!=")
            if matching and key not in _MATCH_KEYS:
                problems.append(f"line {lineno}: {key} cannot be matched")
            if not matching and key not in _ASSIGN_KEYS:
                problems.append(f"line {lineno}: {key} cannot be assigned")
            if (attr is None) == (key in _KEYS_WITH_ATTR) and key not in ("IMPORT", "RUN"):
                problems.append(
                    f"line {lineno}: {key} {'needs' if attr is None else 'takes no'} {{}}"
                )
            if key == "MODE" and not re.fullmatch(r"0[0-7]{3}", value):
                problems.append(f"line {lineno}: MODE {value!r} is not octal")
            tokens.append((key, attr, op, value))
            pos = m.end()
            if pos < len(line):
                if line[pos] != ",":
                    problems.append(f"line {lineno}: expected ',' at {line[pos:]!r}")
                    break
                pos += 1
        if tokens:
            if not any(op in ("==", "!=") for _, _, op, _ in tokens):
                problems.append(f"line {lineno}: a rule without any match applies to every device")
            rules.append(tokens)
    return rules, problems
