"""The configuration schema (docs/architecture.md §5.2, CONTRACT keys plus kartapos' own).

Every section is a strict msgspec Struct: unknown keys, wrong types and bad values are
rejected with the key path. Values that need more than a type check are checked in
``__post_init__`` (msgspec reports those with the path as well).
"""

from __future__ import annotations

import ipaddress
import re
from typing import Annotated, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import msgspec
from msgspec import Meta

Port = Annotated[int, Meta(ge=1, le=65535)]
PositiveInt = Annotated[int, Meta(ge=1)]
NonNegativeInt = Annotated[int, Meta(ge=0)]
NonNegInt = Annotated[int, Meta(ge=0)]
PositiveFloat = Annotated[float, Meta(gt=0)]
Name = Annotated[str, Meta(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]

# Code pages python-escpos knows by these exact names and that carry Polish letters
# (or are plain ASCII fall-backs).
KNOWN_CODEPAGES = frozenset(
    {"CP852", "CP1250", "ISO_8859-2", "CP437", "CP850", "CP858", "CP866", "CP1252"}
)


def bad(key: str, reason: str) -> ValueError:
    """A value error that the loader reports at ``<section path>.<key>``."""
    return ValueError(f"@{key}@ {reason}")


def parse_listen(text: str) -> tuple[str, int]:
    """'127.0.0.1:8080' / '[::1]:8080' / 'localhost:8080' -> (host, port)."""
    m = re.fullmatch(
        r"\[(?P<v6>[0-9A-Fa-f:.]+)\]:(?P<port>\d{1,5})|(?P<host>[^:\s]+):(?P<p2>\d{1,5})", text
    )
    if not m:
        raise ValueError(f"listen address {text!r} is not HOST:PORT")
    host = m.group("v6") or m.group("host")
    port = int(m.group("port") or m.group("p2"))
    if not 1 <= port <= 65535:
        raise ValueError(f"port {port} out of range 1-65535")
    if m.group("v6"):
        ipaddress.IPv6Address(host)
    elif not re.fullmatch(r"[A-Za-z0-9.-]+", host):
        raise ValueError(f"host {host!r} is not an address or name")
    return host, port


def _check_timezone(name: str) -> None:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as e:
        raise bad("timezone", f"unknown time zone {name!r}") from e


_CODEPAGE_LIST = ", ".join(sorted(KNOWN_CODEPAGES))


class TerminalSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    id: Name
    partner_id: Name
    state_dir: str = "/var/lib/kartapos"
    timezone: str = "Europe/Warsaw"
    # pbkdf2 hash (ledger.pins) of the local admin PIN; cashiers come from the rules feed.
    admin_pin_hash: str | None = None

    def __post_init__(self) -> None:
        _check_timezone(self.timezone)


class ApiSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    listen: str = "127.0.0.1:8080"
    max_body_bytes: PositiveInt = 64 * 1024
    # Extra origins allowed besides the daemon's own (e.g. a kiosk served elsewhere).
    allowed_origins: tuple[str, ...] = ()
    session_ttl_s: PositiveInt = 12 * 3600

    def __post_init__(self) -> None:
        try:
            parse_listen(self.listen)
        except ValueError as e:
            raise bad("listen", str(e)) from e


ReaderKind = Literal["serial", "evdev", "pcsc"]
KeyboardLayout = Literal["us", "pl"]


class ReaderSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    name: Name
    kind: ReaderKind
    path: str  # serial port, /dev/input/by-id/... or a device name; pcsc: reader name substring
    baudrate: PositiveInt = 9600
    # Framing some readers add around a read (serial and wedge): e.g. "\x02" / "\x03".
    prefix: str = ""
    suffix: str = ""
    layout: KeyboardLayout = "us"  # evdev: the keyboard layout the scanner emulates
    inter_key_timeout_ms: PositiveInt = 80  # evdev: a scan ends after this much silence
    dedupe_window_s: Annotated[float, Meta(ge=0)] = 1.5  # the same card again within: one read
    grab: bool = True  # evdev: take the device so scans never type into other windows
    # serial: a read not ended by CR/LF/ETX/suffix is complete (ends with "?") or discarded
    # after this much silence.
    inter_byte_timeout_ms: PositiveInt = 100
    # Reconnect delays after an unplug or error: doubling from min to max.
    reconnect_min_s: PositiveFloat = 0.2
    reconnect_max_s: PositiveFloat = 5.0


PrinterKind = Literal["network", "serial", "usb", "file", "none"]


class PrinterSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    kind: PrinterKind = "none"
    host: str = "127.0.0.1"
    port: Port = 9100
    path: str = ""
    baudrate: PositiveInt = 19200
    profile: str = "TM-T20II"
    codepage: str = "CP852"
    columns: Annotated[int, Meta(ge=24, le=64)] = 48
    connect_timeout_s: PositiveFloat = 2.0
    write_timeout_s: PositiveFloat = 5.0
    # How long a sale waits for its receipt before answering "queued".
    sale_wait_s: PositiveFloat = 1.5
    cutter: bool = True
    # Some clones start in Chinese mode: send FS . after every init.
    cancel_kanji: bool = False
    cash_drawer: bool = False

    def __post_init__(self) -> None:
        if self.codepage not in KNOWN_CODEPAGES:
            raise bad(
                "codepage",
                f"unknown code page {self.codepage!r} (one of {_CODEPAGE_LIST})",
            )
        if self.kind in ("serial", "usb", "file") and not self.path:
            raise bad("path", f"printer kind {self.kind!r} needs a path")


class SyncSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    url: str = "http://127.0.0.1:8765"
    token_file: str = "/etc/kartapos/token"  # noqa: S105 - a path, not a secret
    batch_size: Annotated[int, Meta(ge=1, le=10_000)] = 1000
    nightly_window: str = "01:00-04:00"  # Europe/Warsaw
    upload_interval_s: PositiveInt = 60  # when online, upload this often
    catalog_refresh_s: PositiveInt = 300  # blocked cards reach the till within minutes
    request_timeout_s: PositiveFloat = 30.0
    gzip: bool = True
    # Persons limits (docs/architecture.md §5.8): free slots to hold beyond those used,
    # topped up each sync cycle so the till can admit new persons while offline.
    lease_slots: Annotated[int, Meta(ge=0, le=1000)] = 2
    # A sale that needs a new slot asks the city at most this long before it is refused.
    lease_timeout_s: PositiveFloat = 1.0

    def __post_init__(self) -> None:
        if not re.fullmatch(r"https?://[^\s/]+(/\S*)?", self.url):
            raise bad("url", f"{self.url!r} is not an http(s) URL")
        if not re.fullmatch(
            r"([01]\d|2[0-3]):[0-5]\d-([01]\d|2[0-3]):[0-5]\d", self.nightly_window
        ):
            raise bad("nightly_window", f"{self.nightly_window!r} is not HH:MM-HH:MM")


class CardsSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    number_pattern: str = r"^\d{2}-\d{6,7}$"
    issuer_digits: Annotated[int, Meta(ge=0, le=6)] = 2
    digit_lengths: tuple[PositiveInt, ...] = (8, 9)
    # The city's Ed25519 public key (base64, raw 32 bytes) for the app's signed QR codes.
    qr_public_key: str | None = None
    # With qr_public_key set, a QR holding only a plain card number (anyone can print one)
    # is refused (plain_qr_refused) unless this is true.
    accept_plain_qr: bool = False
    # The resident panel prints numbers with one extra leading zero ("01-0000018" for
    # "01-000018"): a number part of number_digits + 1 digits starting with 0 loses that
    # zero. Turn off in a city whose numbers really have number_digits + 1 digits with a
    # leading zero.
    strip_extra_zero: bool = True
    number_digits: Annotated[int, Meta(ge=1, le=12)] = 6

    def __post_init__(self) -> None:
        try:
            re.compile(self.number_pattern)
        except re.error as e:
            raise bad("number_pattern", f"not a regular expression: {e}") from e


class OfflineSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    # Redemptions are refused when the card list is older than this.
    max_catalog_age_h: PositiveInt = 72
    # While offline (catalogue stale for more than stale_after_s), redemptions per card per day.
    redeem_per_card_per_day: NonNegInt = 1
    stale_after_s: PositiveInt = 900


class LoggingSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class Config(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The daemon's whole configuration."""

    terminal: TerminalSection
    api: ApiSection = ApiSection()
    readers: tuple[ReaderSection, ...] = ()
    printer: PrinterSection = PrinterSection()
    sync: SyncSection = SyncSection()
    cards: CardsSection = CardsSection()
    offline: OfflineSection = OfflineSection()
    logging: LoggingSection = LoggingSection()

    def __post_init__(self) -> None:
        names = [r.name for r in self.readers]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise bad("readers", f"reader names must be unique: {', '.join(dupes)}")


def is_postgresql_url(database: str) -> bool:
    """Whether ``[central] database`` names a PostgreSQL server rather than a SQLite file."""
    return database.startswith(("postgresql://", "postgres://"))


class CentralSection(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    listen: str = "127.0.0.1:8765"
    # A SQLite file (the embedded default; relative to the config file's folder), or a
    # libpq URL "postgresql://user:password@host:port/dbname" (or ?host=/run/postgresql
    # for a unix socket): the same server on PostgreSQL (needs kartapos[postgresql]).
    database: str = "central.sqlite"
    # An upload body's limit after inflating. Sized for the largest legitimate batch of the
    # default sync.batch_size: 1,000 entries of up to 4 KiB (a till's sale is ~0.7 KB, ~1.6
    # KB with a dozen benefits). A bigger batch gets 413 and the client halves it until it
    # fits; one entry alone always fits (the till's own API takes requests of 64 KiB at
    # most). Why not more: a hostile body decodes to ~20x its size in Python objects (a
    # 60 MiB gzip bomb of "[]," cost 1.25 GB), so this times max_concurrent_uploads bounds
    # the uploads' memory: 4 MiB x 8 is under 1 GB at worst.
    max_body_bytes: PositiveInt = 4 * 1024 * 1024
    # Uploads verified at once; more get 503 with Retry-After (the client backs off).
    max_concurrent_uploads: PositiveInt = 8
    # Full card feeds (every resident's name, birth date, chip ids, balance) one terminal
    # may download per hour; more get 429 with Retry-After (0: no limit). A till needs one
    # at enrolment and after a compaction; deltas are never limited. Every download is
    # recorded (`kartapos central -c FILE reads`).
    full_feeds_per_hour: NonNegativeInt = 6
    # Demo only: enrol an unknown terminal's key on first upload.
    trust_on_first_use: bool = False
    # Load the Polish demo data set at first start.
    seed_demo: bool = False

    def __post_init__(self) -> None:
        try:
            parse_listen(self.listen)
        except ValueError as e:
            raise bad("listen", str(e)) from e


class CentralConfig(msgspec.Struct, forbid_unknown_fields=True, kw_only=True, frozen=True):
    """The reference city server's configuration (`kartapos central`)."""

    central: CentralSection = CentralSection()
    logging: LoggingSection = LoggingSection()
