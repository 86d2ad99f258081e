"""The Polish demo data set: cards, holders, three partners whose benefits use every rule field.

Dates are relative to the day the data is seeded, so packages stay valid (or expired)
whenever the demo runs. Demo only: the cashier PINs below ("1234" for Kasia, "5678"
for Tomek) are published in the README and must never be used in a real shop.
"""

from __future__ import annotations

import random
from datetime import date, timedelta
from typing import Final

import structlog

from ledger.clock import local_date
from ledger.domain import (
    DEFAULT_REDEEM_TIERS,
    Benefit,
    CardRecord,
    CardStatus,
    Cashier,
    EarnRule,
    Holder,
    Partner,
    Program,
    Rules,
)
from ledger.pins import hash_pin
from sync.central.db import CentralDB

log = structlog.get_logger()

DEMO_TERMINAL: Final = "T-DEMO"
DEMO_PARTNER: Final = "P-0001"
DEMO_CASHIER_PINS: Final = {"Kasia": "1234", "Tomek": "5678"}  # demo only, see module doc

_FIRST_NAMES: Final = (
    "Agnieszka", "Bożena", "Czesław", "Dorota", "Elżbieta", "Grażyna", "Halina", "Jędrzej",
    "Józef", "Katarzyna", "Łucja", "Maciej", "Paweł", "Renata", "Stanisław", "Szczepan",
    "Urszula", "Wiesław", "Zdzisław", "Żaneta", "Bartłomiej", "Małgorzata", "Michał", "Iwona",
)  # fmt: skip
_INITIALS: Final = "ABCDĆFGHJKLŁMNOPRSŚTWZŹŻ"


def luhn_digit(serial: int) -> int:
    """Check digit the demo card numbers end with (Luhn over the serial)."""
    total = 0
    for i, ch in enumerate(reversed(str(serial))):
        d = int(ch)
        if i % 2 == 0:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return (10 - total % 10) % 10


def demo_number(serial: int) -> str:
    """01-000018 for serial 1, 01-000026 for 2, ..."""
    return f"01-{serial:05d}{luhn_digit(serial)}"


def demo_cards(today: date) -> list[CardRecord]:
    """The named demo cards plus about fifty generated ones."""
    ahead, later = today + timedelta(days=400), today + timedelta(days=760)
    past = today - timedelta(days=45)

    def card(
        serial: int,
        name: str,
        born: date,
        programs: tuple[tuple[str, date], ...],
        *,
        status: CardStatus = CardStatus.ACTIVE,
        points: int = 0,
        uids: tuple[str, ...] = (),
        person: int | None = None,
    ) -> CardRecord:
        # The city's holder id: one per person, shared by all their cards.
        holder_id = f"H-{person or serial:04d}"
        return CardRecord(
            number=demo_number(serial),
            status=status,
            holder=Holder(display_name=name, birth_date=born, id=holder_id),
            uids=uids,
            programs=tuple(Program(code=c, valid_to=v) for c, v in programs),
            points=points,
        )

    cards = [
        card(1, "Anna K.", date(1988, 4, 12), (("mieszkaniec", ahead),), points=340,
             uids=("04a2c91b6e5d80",)),
        card(2, "Jerzy Ż.", date(1951, 2, 28), (("mieszkaniec", ahead), ("senior", later)),
             points=1250),
        card(3, "Małgorzata Ś.", date(1983, 9, 30), (("mieszkaniec", ahead), ("kdr", later)),
             points=90),
        card(4, "Łukasz B.", date(1995, 6, 1), (("mieszkaniec", ahead),),
             status=CardStatus.BLOCKED, points=500),
        card(5, "Zofia Ł.", date(1960, 11, 11), (("mieszkaniec", past), ("senior", past)),
             points=60),
        card(6, "Grzegorz Ć.", date(1977, 1, 19), (("mieszkaniec", ahead),),
             status=CardStatus.REPLACED, points=0),
        card(7, "Grzegorz Ć.", date(1977, 1, 19), (("mieszkaniec", ahead),), points=210,
             uids=("04f3e2d1c0b9a8",), person=6),  # the duplicate of the replaced card 6
        card(8, "Weronika Ź.", date(2008, 2, 29), (("mieszkaniec", ahead),), points=15,
             uids=("5b0e7a31",)),
    ]  # fmt: skip
    rng = random.Random(20261118)  # fixed: the same fifty cards every time
    for serial in range(9, 61):
        age = rng.randint(16, 90)
        born = date(today.year - age, rng.randint(1, 12), rng.randint(1, 28))
        progs: list[tuple[str, date]] = [("mieszkaniec", ahead if rng.random() > 0.08 else past)]
        if age >= 60 and rng.random() < 0.7:
            progs.append(("senior", later))
        if rng.random() < 0.15:
            progs.append(("kdr", later))
        status = CardStatus.ACTIVE
        roll = rng.random()
        if roll < 0.05:
            status = CardStatus.BLOCKED
        elif roll < 0.08:
            status = CardStatus.EXPIRED
        name = f"{rng.choice(_FIRST_NAMES)} {rng.choice(_INITIALS)}."
        uids = (f"04{rng.getrandbits(48):012x}",) if rng.random() < 0.3 else ()
        cards.append(
            card(serial, name, born, tuple(progs), status=status,
                 points=rng.randint(0, 900), uids=uids)
        )  # fmt: skip
    return cards


def _cashiers(prefix: str, names: tuple[str, ...]) -> tuple[Cashier, ...]:
    out = []
    for i, name in enumerate(names, start=1):
        pin = DEMO_CASHIER_PINS.get(name) or f"{i}{i}{i}{i}"
        out.append(Cashier(id=f"{prefix}-K{i:02d}", name=name, pin_hash=hash_pin(pin)))
    return tuple(out)


def demo_rules(today: date) -> dict[str, Rules]:
    """Rules of the three demo partners; together they use every benefit field."""
    d = timedelta
    cafe = Rules(
        version="2026.11-1",
        earn=EarnRule(
            gr_per_point=100,
            rounding="floor",
            min_amount_gr=500,
            max_points_per_sale=500,
            program_multipliers={"senior": 2},
        ),
        redeem_tiers=DEFAULT_REDEEM_TIERS,
        partner=Partner(
            name="Kawiarnia Pod Żółwiem",
            address="al. Najświętszej Maryi Panny 12, 42-200 Częstochowa",
            nip="5732846199",
        ),
        cashiers=_cashiers("P-0001", ("Kasia", "Tomek")),
        benefits=(
            Benefit(
                id="B-101", name="Kawa gratis do ciastka", label="kawa 0 zł",
                description="Do każdego ciastka mała czarna gratis.",
                points=5, unit="pieces",
            ),
            Benefit(
                id="B-102", name="Zniżka dla seniora", label="-15%",
                description="Dla posiadaczy pakietu Senior od 65 lat.",
                programs=("senior",), age_min=65,
            ),
            Benefit(
                id="B-103", name="Rodzinny deser", label="-20%",
                description="Dla rodzin z Kartą Dużej Rodziny, dwa razy w tygodniu.",
                programs=("kdr",), limited=True, uses_per_period=2, period="week",
                points=10, points_locked=True,
            ),
            Benefit(
                id="B-104", name="Śniadanie dla stałych gości", label="-10 zł",
                description="Raz dziennie dla kart z saldem powyżej 200 punktów.",
                min_points=200, limited=True, uses_per_period=1, period="day",
            ),
            Benefit(
                id="B-105", name="Degustacja nowej kawy", label="gratis",
                description="Pula 50 osób w całym programie, raz w roku.",
                limited=True, max_persons=50, persons_used=48,
                valid_from=today - d(days=10), valid_to=today + d(days=20),
                uses_per_period=1, period="year", points=20,
            ),
            Benefit(
                id="B-106", name="Warsztaty latte art", label="-50%",
                description="Dla młodzieży od 16 do 26 lat, do 4 godzin w miesiącu.",
                age_min=16, age_max=26, unit="hours",
                limited=True, uses_per_period=4, period="month",
            ),
            Benefit(
                id="B-107", name="Promocja wakacyjna", label="-25%",
                description="Zakończona; czeka na wznowienie.", active=False,
            ),
            Benefit(
                id="B-108", name="Benefit testowy", label="-1%",
                description="Niewidoczny dla mieszkańców.", visible=False,
            ),
            Benefit(
                id="B-109", name="Zimowa herbata", label="-30%",
                description="Rusza za dwa tygodnie.",
                valid_from=today + d(days=14), valid_to=today + d(days=120),
            ),
        ),
    )  # fmt: skip
    pool = Rules(
        version="2026.10-3",
        earn=EarnRule(gr_per_point=200, min_amount_gr=1000, program_multipliers={"kdr": 2}),
        partner=Partner(
            name="Pływalnia Miejska „Fala”",
            address="ul. Dąbrowskiego 77, 42-202 Częstochowa",
            nip="5731045528",
        ),
        cashiers=_cashiers("P-0002", ("Ewa", "Żaneta")),
        benefits=(
            Benefit(
                id="B-201", name="Godzina na basenie -40%", label="-40%", unit="hours",
                uses_per_period=8, period="month", points=2, limited=True,
                valid_to=today + d(days=200),
            ),
            Benefit(
                id="B-202", name="Aqua aerobik dla seniora", label="-50%", unit="hours",
                programs=("senior",), age_min=60, limited=True, uses_per_period=20, period="year",
            ),
            Benefit(
                id="B-203", name="Nauka pływania dla dzieci", label="-30%",
                programs=("kdr", "mieszkaniec"), age_max=12,
                limited=True, uses_per_period=1, period="week",
            ),
        ),
    )  # fmt: skip
    books = Rules(
        version=7,
        earn=EarnRule(gr_per_point=100, rounding="floor", max_points_per_sale=100),
        partner=Partner(
            name="Księgarnia „Pod Jasną Górą”",
            address="ul. Świętego Barbary 3, 42-217 Częstochowa",
            nip="9492217401",
        ),
        cashiers=_cashiers("P-0003", ("Józef",)),
        benefits=(
            Benefit(
                id="B-301", name="Książka za 1 zł dla pierwszych stu", label="1 zł",
                limited=True, max_persons=100, persons_used=99, uses_per_period=1,
                period="year", points=50, points_locked=True,
            ),
            Benefit(
                id="B-302", name="Zakładka gratis", label="gratis", min_points=50,
                limited=True, uses_per_period=3, period="month",
            ),
        ),
    )  # fmt: skip
    return {"P-0001": cafe, "P-0002": pool, "P-0003": books}


async def seed_demo_into(db: CentralDB) -> bool:
    """Load the demo data set once; False when it was already there (idempotent)."""
    if await db.meta("demo_seeded"):
        return False
    today = local_date(db.clock.now())
    cards = demo_cards(today)
    await db.upsert_cards(cards, points_given=frozenset(c.number for c in cards))
    for pid, rules in demo_rules(today).items():
        await db.load_rules(pid, rules)
    await db.set_meta("demo_seeded", 1)
    log.info("demo_seeded", cards=len(cards), partners=3)
    return True
