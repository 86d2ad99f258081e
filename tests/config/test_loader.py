"""Configuration: every rejection names the file, the key path and why, and exits 2."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import structlog

from config.loader import EXIT_BAD_CONFIG, ConfigError, load_central_config, load_config
from config.schema import Config
from terminal.cli import main
from tests.conftest import REPO_ROOT


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """main() configures structlog for the process with the (captured) stderr: undo it."""
    yield
    structlog.reset_defaults()


BASE = '[terminal]\nid = "T-0001"\npartner_id = "P-0042"\n'
READER = '[[readers]]\nname = "msr"\nkind = "serial"\npath = "/dev/pos/msr"\n'

# name -> (TOML text, key path, words the reason must contain)
REJECTIONS: dict[str, tuple[str, str, str]] = {
    "unknown key": (BASE + 'colour = "red"\n', "terminal.colour", "unknown key"),
    "unknown section": (BASE + '[printr]\nkind = "none"\n', "printr", "unknown key"),
    "unknown key in a reader": (
        BASE + READER + "baud = 9600\n",
        "readers[0].baud",
        "unknown key",
    ),
    "wrong type: string port": (
        BASE + '[printer]\nport = "9100"\n',
        "printer.port",
        "expected int, got str",
    ),
    "wrong type: float port": (
        BASE + "[printer]\nport = 9100.0\n",
        "printer.port",
        "expected int, got float",
    ),
    "wrong type: readers not a list": (
        BASE + '[readers]\nname = "msr"\n',
        "readers",
        "expected array",
    ),
    "port out of range": (BASE + "[printer]\nport = 70000\n", "printer.port", "<= 65535"),
    "port zero": (BASE + "[printer]\nport = 0\n", "printer.port", ">= 1"),
    "unknown reader kind": (
        BASE + READER + '[[readers]]\nname = "nfc2"\nkind = "bluetooth"\npath = "x"\n',
        "readers[1].kind",
        "unknown value 'bluetooth' (one of: evdev, pcsc, serial)",
    ),
    "unknown printer kind": (
        BASE + '[printer]\nkind = "laser"\n',
        "printer.kind",
        "unknown value 'laser'",
    ),
    "unknown code page": (
        BASE + '[printer]\ncodepage = "cp852"\n',
        "printer.codepage",
        "unknown code page 'cp852'",
    ),
    "bad time zone": (
        BASE + 'timezone = "Europe/Warszawa"\n',
        "terminal.timezone",
        "unknown time zone 'Europe/Warszawa'",
    ),
    "listen without port": (
        BASE + '[api]\nlisten = "localhost"\n',
        "api.listen",
        "not HOST:PORT",
    ),
    "listen port out of range": (
        BASE + '[api]\nlisten = "127.0.0.1:99999"\n',
        "api.listen",
        "out of range",
    ),
    "listen bad IPv6": (BASE + '[api]\nlisten = "[::zz]:8080"\n', "api.listen", "not"),
    "missing terminal id": (
        '[terminal]\npartner_id = "P-0042"\n',
        "terminal.id",
        "missing required key",
    ),
    "bad terminal id": (
        '[terminal]\nid = "T 0001"\npartner_id = "P-0042"\n',
        "terminal.id",
        "expected str matching regex",
    ),
    "file printer without a path": (
        BASE + '[printer]\nkind = "file"\n',
        "printer.path",
        "needs a path",
    ),
    "sync url not http": (
        BASE + '[sync]\nurl = "ftp://city"\n',
        "sync.url",
        "not an http(s) URL",
    ),
    "duplicate reader names": (BASE + READER + READER, "readers", "must be unique: msr"),
}


def _write(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "kartapos.toml"
    p.write_text(text, encoding="utf-8")
    return p


@pytest.mark.parametrize("case", sorted(REJECTIONS))
def test_rejection_names_file_key_and_reason(
    case: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    text, key, reason = REJECTIONS[case]
    path = _write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert reason in info.value.reason
    assert str(info.value) == f"{path}: {key}: {info.value.reason}"
    # Through the command line: one line on stderr, exit 2, no traceback.
    assert main(["ledger", "verify", "-c", str(path)]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert str(path) in err
    assert f"{key}: " in err
    assert reason in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        (BASE + "x = = 1\n", "not valid TOML"),
        (None, "file not found"),
        (b"\xff\xfe[terminal]", "not UTF-8"),
    ],
)
def test_unreadable_files_are_rejected_naming_the_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str | bytes | None, reason: str
) -> None:
    path = tmp_path / "kartapos.toml"
    if isinstance(text, str):
        path.write_text(text, encoding="utf-8")
    elif isinstance(text, bytes):
        path.write_bytes(text)
    with pytest.raises(ConfigError, match=reason) as info:
        load_config(path)
    assert info.value.file == str(path)
    assert main(["ledger", "verify", "-c", str(path)]) == EXIT_BAD_CONFIG
    err = capsys.readouterr().err
    assert str(path) in err
    assert reason in err


def test_a_directory_is_not_a_config(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="directory"):
        load_config(tmp_path)


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    folder = tmp_path / "etc" / "kartapos"
    folder.mkdir(parents=True)
    path = folder / "kartapos.toml"
    path.write_text(
        BASE.replace('"P-0042"\n', '"P-0042"\nstate_dir = "state"\n')
        + '[[readers]]\nname = "msr"\nkind = "serial"\npath = "../dev/msr"\n'
        + '[[readers]]\nname = "scan"\nkind = "evdev"\npath = "/dev/input/event3"\n'
        + '[[readers]]\nname = "nfc"\nkind = "pcsc"\npath = "ACR122"\n'
        + '[printer]\nkind = "file"\npath = "out/receipts.bin"\n'
        + '[sync]\ntoken_file = "token"\n',
        encoding="utf-8",
    )
    # Loaded from another working directory, through a relative config path too.
    cfg = load_config(path)
    assert cfg.terminal.state_dir == str(folder / "state")
    assert cfg.readers[0].path == str(tmp_path / "etc" / "dev" / "msr")
    assert cfg.readers[1].path == "/dev/input/event3"
    assert cfg.readers[2].path == "ACR122"  # a reader name, not a file
    assert cfg.printer.path == str(folder / "out" / "receipts.bin")
    assert cfg.sync.token_file == str(folder / "token")


def test_relative_config_path_is_resolved_from_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "k.toml").write_text(BASE + 'state_dir = "st"\n', encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_config("k.toml").terminal.state_dir == str(tmp_path / "st")


def test_defaults_fill_what_the_file_leaves_out(tmp_path: Path) -> None:
    cfg = load_config(_write(tmp_path, BASE))
    assert isinstance(cfg, Config)
    assert cfg.terminal.timezone == "Europe/Warsaw"
    assert cfg.api.listen == "127.0.0.1:8080"
    assert cfg.printer.kind == "none"
    assert cfg.printer.codepage == "CP852"
    assert cfg.readers == ()


@pytest.mark.parametrize(
    "example", sorted((REPO_ROOT / "config" / "examples").glob("*.toml")), ids=lambda p: p.name
)
def test_example_configs_load(example: Path) -> None:
    cfg = load_config(example)
    assert cfg.terminal.id
    assert Path(cfg.terminal.state_dir).is_absolute()


def test_shop_example_is_a_real_shop() -> None:
    cfg = load_config(REPO_ROOT / "config" / "examples" / "shop.toml")
    assert sorted(r.kind for r in cfg.readers) == ["evdev", "pcsc", "serial"]
    assert cfg.printer.kind == "network"
    assert cfg.printer.codepage == "CP852"


def test_example_set_has_shop_and_demo() -> None:
    names = {p.name for p in (REPO_ROOT / "config" / "examples").glob("*.toml")}
    assert {"shop.toml", "demo.toml"} <= names


def test_central_config_rejects_unknown_keys_and_resolves_database(tmp_path: Path) -> None:
    p = tmp_path / "central.toml"
    p.write_text('[central]\nlisten = "127.0.0.1:8765"\ndatabase = "c.sqlite"\n', "utf-8")
    assert load_central_config(p).central.database == str(tmp_path / "c.sqlite")
    p.write_text('[central]\nlisten = "127.0.0.1:8765"\ndatabse = "c.sqlite"\n', "utf-8")
    with pytest.raises(ConfigError) as info:
        load_central_config(p)
    assert info.value.key == "central.databse"
