"""Load and validate TOML configuration; every error names the file, the key and why."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any, TypeVar

import msgspec

from config.schema import CentralConfig, Config, is_postgresql_url

T = TypeVar("T")

EXIT_BAD_CONFIG = 2


class ConfigError(Exception):
    """A configuration file that cannot be used; ``str()`` is the one-line message."""

    def __init__(self, file: Path | str, key: str | None, reason: str) -> None:
        self.file = str(file)
        self.key = key
        self.reason = reason
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + reason)


_PATH_RE = re.compile(r" - at `\$(?P<path>[^`]*)`$")
_UNKNOWN_RE = re.compile(r"^Object contains unknown field `(?P<field>[^`]+)`")
_KEY_RE = re.compile(r"^@(?P<key>[a-z_]+)@ ")
_MISSING_RE = re.compile(r"^Object missing required field `(?P<field>[^`]+)`")


def _key_path(msg: str) -> tuple[str | None, str]:
    """Turn msgspec's '... - at `$.readers[1].kind`' into ('readers[1].kind', reason)."""
    m = _PATH_RE.search(msg)
    path = m.group("path").lstrip(".") if m else ""
    reason = msg[: m.start()] if m else msg
    for rx, what in ((_UNKNOWN_RE, "unknown key"), (_MISSING_RE, "missing required key")):
        f = rx.match(reason)
        if f:
            path = f"{path}.{f.group('field')}" if path else f.group("field")
            reason = what
    k = _KEY_RE.match(reason)
    if k:
        path = f"{path}.{k.group('key')}" if path else k.group("key")
        reason = reason[k.end() :]
    reason = reason.replace("`", "")
    reason = reason[0].lower() + reason[1:] if reason else reason
    return (path or None), reason


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with path.open("rb") as f:
            return tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(path, None, "file not found") from None
    except PermissionError:
        raise ConfigError(path, None, "permission denied") from None
    except IsADirectoryError:
        raise ConfigError(path, None, "is a directory, not a file") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(path, None, f"not valid TOML: {e}") from None
    except UnicodeDecodeError:
        raise ConfigError(path, None, "not UTF-8 text") from None


def _allowed_values(typ: type[Any], key: str) -> tuple[Any, ...] | None:
    """The values a Literal field at ``key`` ('readers[1].kind') accepts, if it is one."""
    info: Any = msgspec.inspect.type_info(typ)
    for part in re.sub(r"\[\d+\]", "", key).split("."):
        while isinstance(info, msgspec.inspect.VarTupleType | msgspec.inspect.ListType):
            info = info.item_type
        if not isinstance(info, msgspec.inspect.StructType):
            return None
        fields = {f.name: f.type for f in info.fields}
        if part not in fields:
            return None
        info = fields[part]
    return info.values if isinstance(info, msgspec.inspect.LiteralType) else None


def _convert(path: Path, data: dict[str, Any], typ: type[T]) -> T:
    try:
        return msgspec.convert(data, typ, strict=True)
    except msgspec.ValidationError as e:
        key, reason = _key_path(str(e))
        allowed = _allowed_values(typ, key) if key else None
        if allowed and reason.startswith("invalid enum value"):
            value = reason.removeprefix("invalid enum value").strip()
            reason = f"unknown value {value} (one of: {', '.join(map(str, allowed))})"
        raise ConfigError(path, key, reason) from None


def _resolve(base: Path, p: str) -> str:
    """Resolve a relative path against the config file's folder."""
    if not p:
        return p
    q = Path(p).expanduser()
    return str(q if q.is_absolute() else (base / q).resolve())


def _resolve_paths(cfg: Config, base: Path) -> Config:
    readers = tuple(
        msgspec.structs.replace(r, path=_resolve(base, r.path)) if r.kind != "pcsc" else r
        for r in cfg.readers
    )
    printer = cfg.printer
    if printer.kind in ("serial", "usb", "file"):
        printer = msgspec.structs.replace(printer, path=_resolve(base, printer.path))
    return msgspec.structs.replace(
        cfg,
        terminal=msgspec.structs.replace(
            cfg.terminal, state_dir=_resolve(base, cfg.terminal.state_dir)
        ),
        readers=readers,
        printer=printer,
        sync=msgspec.structs.replace(cfg.sync, token_file=_resolve(base, cfg.sync.token_file)),
    )


def load_config(path: str | Path) -> Config:
    """Load the daemon's configuration, paths resolved; raises ConfigError."""
    p = Path(path)
    cfg = _convert(p, _read_toml(p), Config)
    return _resolve_paths(cfg, p.resolve().parent)


def load_central_config(path: str | Path) -> CentralConfig:
    """Load the reference city server's configuration; raises ConfigError."""
    p = Path(path)
    cfg = _convert(p, _read_toml(p), CentralConfig)
    base = p.resolve().parent
    database = cfg.central.database
    if not is_postgresql_url(database):
        database = _resolve(base, database)
    central = msgspec.structs.replace(cfg.central, database=database)
    return msgspec.structs.replace(cfg, central=central)


def config_from_dict(data: dict[str, Any], *, base: Path, name: str = "<config>") -> Config:
    """Build a Config from a dict (demo, tests) with the same checks as a file."""
    return _resolve_paths(_convert(Path(name), data, Config), base)
