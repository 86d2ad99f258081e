"""`kartapos central -c FILE [ACTION]`: the reference city server and its admin actions."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import os
import secrets
import signal
import sys
from pathlib import Path

from config.loader import EXIT_BAD_CONFIG, load_central_config
from config.logging import configure_logging
from config.schema import CentralConfig
from ledger.domain import CardStatus

EPILOG = """\
actions (after -c FILE; without one the server runs in the foreground):
  enrol TID --partner PID --token-file PATH [--public-key B64]
                     enrol a terminal; the token is read from PATH, or made and
                     written there (mode 0600) when PATH does not exist
  seed-demo [--token-file PATH]
                     load the Polish demo data (idempotent); with a token file,
                     also enrol T-DEMO for P-0001
  load-cards FILE    add/change/remove cards from FILE.json or FILE.csv
  load-rules PID FILE
                     store partner PID's rules document (JSON)
  block-card NUMBER  mark a card blocked (zastrzeżona); terminals get it in the next delta
  unblock-card NUMBER
  compact-cards      forget removed cards; terminals older than the current card
                     list version then get the full list instead of a delta
  quarantine list|approve|reject [TID SEQ --by NAME]
                     entries the city holds because their business does not add up
  reads [--terminal TID]
                     who downloaded the card list (full or delta)
  stats PID --from DATE --to DATE [--csv]
                     partner PID's statistics: benefits, terminals, cashiers, cost
  heads              list enrolled terminals and the last entry received from each
"""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.formatter_class = argparse.RawDescriptionHelpFormatter
    parser.epilog = EPILOG
    parser.usage = "kartapos central [-h] -c FILE [ACTION [ARGS ...]]"
    parser.add_argument("-c", "--config", required=True, metavar="FILE", help="server TOML file")
    sub = parser.add_subparsers(dest="action", metavar="ACTION", prog="kartapos central -c FILE")

    def action(name: str, summary: str, description: str) -> argparse.ArgumentParser:
        return sub.add_parser(
            name,
            help=summary,
            description=description,
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )

    from sync.central.admin import MIN_TOKEN_LENGTH

    p = action(
        "enrol",
        "enrol a terminal with its token (and public key)",
        "Enrol terminal TID for partner PID, or change its token, partner or key.\n"
        "The terminal authenticates with the token in PATH. Without --public-key an\n"
        "enrolled key is kept; with none, uploads need trust_on_first_use in the config.",
    )
    p.add_argument("terminal_id", metavar="TID", help="the terminal's id, e.g. T-0002")
    p.add_argument(
        "--partner", required=True, metavar="PID", help="the partner shop it sells for, e.g. P-0001"
    )
    p.add_argument(
        "--token-file",
        required=True,
        metavar="PATH",
        type=Path,
        help=f"the terminal's bearer token (at least {MIN_TOKEN_LENGTH} characters); "
        "made and written there (mode 0600) when PATH does not exist",
    )
    p.add_argument(
        "--public-key",
        metavar="B64",
        help="the terminal's Ed25519 public key: the output of `kartapos keys show`",
    )
    p = action(
        "seed-demo",
        "load the demo data set (idempotent)",
        "Load the Polish demo cards, partner P-0001 and its rules; running it again\n"
        "changes nothing.",
    )
    p.add_argument(
        "--token-file",
        metavar="PATH",
        type=Path,
        help="also enrol T-DEMO for P-0001 with the token in PATH (made when missing)",
    )
    p = action(
        "load-cards",
        "load cards from a .json or .csv file",
        "Add, change or remove cards in one transaction; terminals get the change in\n"
        "their next card-list delta.",
    )
    p.add_argument(
        "file",
        metavar="FILE",
        type=Path,
        help="FILE.json (a list of card objects) or FILE.csv with the header "
        "number,status,display_name[,birth_date,uids,programs,points]; "
        "status 'removed' drops a card",
    )
    p = action(
        "load-rules",
        "store a partner's rules document",
        "Store partner PID's rules document (benefits, points, tiers), replacing the\n"
        "one before; its terminals fetch it at their next sync.",
    )
    p.add_argument("partner_id", metavar="PID", help="the partner, e.g. P-0001")
    p.add_argument("file", metavar="FILE", type=Path, help="the rules document (JSON)")
    p = action(
        "block-card",
        "block a card (zastrzeżona)",
        "Mark a card blocked (zastrzeżona); terminals refuse it after their next sync.",
    )
    p.add_argument("number", metavar="NUMBER", help="the card number as printed, e.g. 01-000018")
    p = action(
        "unblock-card",
        "make a blocked card active again",
        "Make a blocked card active again; terminals accept it after their next sync.",
    )
    p.add_argument("number", metavar="NUMBER", help="the card number as printed, e.g. 01-000018")
    action(
        "compact-cards",
        "forget removed cards (older terminals get a full list)",
        "Forget removed cards; no arguments. Terminals whose card list is older than the\n"
        "current version then get the full list instead of a delta.",
    )
    p = action(
        "quarantine",
        "review entries the city holds: list, approve, reject",
        "Entries whose business does not add up under the rules they name (points,\n"
        "benefits, tiers, overrides, voids) are stored but not credited: the card's\n"
        "balance and the benefit usage leave them out until approved here.\n"
        "  list [--all]                  held entries (--all: decided ones too)\n"
        "  approve TID SEQ --by NAME     credit the entry now\n"
        "  reject TID SEQ --by NAME      never credit it",
    )
    p.add_argument("decision", choices=("list", "approve", "reject"), metavar="list|approve|reject")
    p.add_argument("terminal_id", nargs="?", metavar="TID", help="the terminal, e.g. T-0001")
    p.add_argument("seq", nargs="?", type=int, metavar="SEQ", help="the entry's seq")
    p.add_argument("--by", metavar="NAME", help="who decides (kept with the decision)")
    p.add_argument("--note", metavar="TEXT", help="why (kept with the decision)")
    p.add_argument("--all", action="store_true", help="list: decided entries too")
    p = action(
        "reads",
        "who downloaded the card list: terminal, full or delta, lines",
        "List the latest card-list downloads, newest first: when, which terminal, a full\n"
        "list (every resident) or a delta, how many cards it carried, and whether it was\n"
        "sent to its end. Full lists beyond central.full_feeds_per_hour are refused (429).",
    )
    p.add_argument("--terminal", metavar="TID", help="only this terminal's downloads")
    p.add_argument("--limit", type=int, default=100, metavar="N", help="at most N (default 100)")
    p = action(
        "stats",
        "a partner's statistics: benefits, terminals, cashiers, cost",
        "Partner PID's statistics over local days DATE..DATE (inclusive), as credited:\n"
        "per benefit its uses, distinct residents (persons), quantity and points; per\n"
        "terminal and per cashier the sales, voids, net amount and points earned and\n"
        "redeemed; the partner's cost at the rules' price per point (point_cost_gr,\n"
        "the Z report's). Entries held in quarantine or rejected are counted apart.\n"
        "A void counts on its own day, as on the Z report.",
    )
    p.add_argument("partner_id", metavar="PID", help="the partner, e.g. P-0001")
    p.add_argument("--from", dest="date_from", required=True, metavar="DATE",
                   help="first local day, e.g. 2026-11-01")  # fmt: skip
    p.add_argument("--to", dest="date_to", required=True, metavar="DATE",
                   help="last local day (inclusive), e.g. 2026-11-30")  # fmt: skip
    p.add_argument("--csv", action="store_true",
                   help="one CSV table on stdout (amounts in grosze) instead of text")  # fmt: skip
    action(
        "heads",
        "list terminals and their last received entry",
        "List every enrolled terminal, its partner and the last entry (seq, hash) the\n"
        "server received from it; no arguments.",
    )


def token_from_file(path: Path) -> tuple[str, bool]:
    """Read the token at ``path``; make one (mode 0600) if the file does not exist."""
    try:
        return path.read_text(encoding="utf-8").strip(), False
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, True


async def _serve(cfg: CentralConfig) -> None:
    from sync.central import CentralServer

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with CentralServer(cfg) as server:
        print(f"kartapos central: listening on {server.url}", file=sys.stderr, flush=True)
        await stop.wait()


async def _admin(args: argparse.Namespace, cfg: CentralConfig) -> int:
    from sync import central

    db = cfg.central.database
    action = args.action
    if action == "enrol":
        token, made = token_from_file(args.token_file)
        await central.enrol(db, args.terminal_id, args.partner, token, args.public_key)
        how = "made a new token in" if made else "token read from"
        print(f"enrolled {args.terminal_id} for {args.partner}; {how} {args.token_file}")
    elif action == "seed-demo":
        token = None
        if args.token_file is not None:
            token, _ = token_from_file(args.token_file)
        seeded = await central.seed_demo(db, terminal_token=token)
        print("demo data loaded" if seeded else "demo data was already loaded")
        if token is not None:
            print(f"enrolled {central.DEMO_TERMINAL} for {central.DEMO_PARTNER}")
    elif action == "load-cards":
        count, version = await central.load_cards(db, args.file)
        print(f"loaded {count} cards from {args.file}; card list version {version}")
    elif action == "load-rules":
        rules = await central.load_rules(db, args.partner_id, args.file)
        print(f"stored rules {rules.version_str} of {args.partner_id}: "
              f"{len(rules.benefits)} benefits, {len(rules.cashiers)} cashiers")  # fmt: skip
    elif action in ("block-card", "unblock-card"):
        status = CardStatus.BLOCKED if action == "block-card" else CardStatus.ACTIVE
        await central.set_card_status(db, args.number, status)
        print(f"card {args.number}: {status.value}")
    elif action == "compact-cards":
        version = await central.compact_cards(db)
        print(f"removed cards forgotten; deltas from before version {version} get the full list")
    elif action == "reads":
        reads = await central.feed_reads(db, args.terminal, args.limit)
        if not reads:
            print("no card-list downloads recorded")
        for read in reads:
            kind = "full" if read.full else f"delta since {read.since}"
            done = "" if read.complete else "\tcut short"
            print(f"{read.at}\t{read.terminal}\t{kind}\tversion {read.version}\t"
                  f"{read.lines} lines{done}")  # fmt: skip
    elif action == "quarantine":
        return await _quarantine(args, db)
    elif action == "stats":
        from sync.central.stats import csv_rows, text_lines

        report = await central.partner_stats(db, args.partner_id, args.date_from, args.date_to)
        if args.csv:
            csv.writer(sys.stdout, lineterminator="\n").writerows(csv_rows(report))
        else:
            print("\n".join(text_lines(report)))
    elif action == "heads":
        rows = await central.list_heads(db)
        if not rows:
            print("no terminals enrolled")
        for r in rows:
            key = "key enrolled" if r.public_key else "no key"
            last = r.last_upload_at or "never"
            print(f"{r.id}\t{r.partner_id}\tseq {r.head.seq}\t{r.head.hash[:16]}…\t"
                  f"last upload {last}\t{key}")  # fmt: skip
    return 0


async def _quarantine(args: argparse.Namespace, db: str) -> int:
    from sync import central
    from sync.central.business import REASONS

    if args.decision == "list":
        held = await central.quarantine_list(db, every=args.all)
        if not held:
            print("no entries held" if not args.all else "no entries were ever held")
        for h in held:
            e = h.entry
            print(f"{h.terminal}\tseq {h.seq}\t{h.status}\t{h.reason}\t{h.detail}\t"
                  f"{e.get('kind')} {e.get('card')} {e.get('local_date')}\t"
                  f"pkt +{e.get('points_earned')} -{e.get('points_redeemed')}\t"
                  f"{REASONS.get(h.reason, '')}")  # fmt: skip
        return 0
    if args.terminal_id is None or args.seq is None or not args.by:
        print(f"kartapos central: quarantine {args.decision} needs TID SEQ --by NAME",
              file=sys.stderr)  # fmt: skip
        return EXIT_BAD_CONFIG
    h = await central.quarantine_decide(
        db, args.terminal_id, args.seq, approve=args.decision == "approve", by=args.by,
        note=args.note,
    )  # fmt: skip
    credited = "credited" if h.status == "approved" else "never credited"
    print(f"{h.terminal} seq {h.seq}: {h.status} by {h.decided_by} ({credited})")
    return 0


def run(args: argparse.Namespace) -> int:
    cfg = load_central_config(args.config)
    from sync.central import AdminError, CentralError

    try:
        if args.action is None:
            configure_logging(cfg.logging.level, cfg.logging.format)
            with contextlib.suppress(KeyboardInterrupt):
                asyncio.run(_serve(cfg))
            return 0
        configure_logging("warning", cfg.logging.format, stream=sys.stderr)
        return asyncio.run(_admin(args, cfg))
    except AdminError as e:
        print(f"kartapos central: {e}", file=sys.stderr)
        return EXIT_BAD_CONFIG
    except (CentralError, OSError) as e:
        print(f"kartapos central: {e}", file=sys.stderr)
        return 1
