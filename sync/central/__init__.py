"""The reference city server (`kartapos central`): receives entries, serves cards and rules."""

from __future__ import annotations

from sync.central.admin import (
    AdminError,
    compact_cards,
    enrol,
    feed_reads,
    list_heads,
    load_cards,
    load_rules,
    partner_stats,
    quarantine_decide,
    quarantine_list,
    seed_demo,
    set_card_status,
)
from sync.central.app import CentralServer, Middleware, build_app
from sync.central.db import AppendOutcome, CentralDB, CentralError, HeldEntry, TerminalRow
from sync.central.demo_data import DEMO_CASHIER_PINS, DEMO_PARTNER, DEMO_TERMINAL, demo_number

__all__ = [
    "DEMO_CASHIER_PINS",
    "DEMO_PARTNER",
    "DEMO_TERMINAL",
    "AdminError",
    "AppendOutcome",
    "CentralDB",
    "CentralError",
    "CentralServer",
    "HeldEntry",
    "Middleware",
    "TerminalRow",
    "build_app",
    "compact_cards",
    "demo_number",
    "enrol",
    "feed_reads",
    "list_heads",
    "load_cards",
    "load_rules",
    "partner_stats",
    "quarantine_decide",
    "quarantine_list",
    "seed_demo",
    "set_card_status",
]
