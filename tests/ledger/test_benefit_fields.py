"""One table-driven test per field of the partner's benefit form, with its boundary cases."""

from __future__ import annotations

from datetime import date, datetime

import pytest

from ledger.domain import Benefit, CardRecord, CardStatus
from ledger.refusals import Refusal
from ledger.rules import BenefitView, CatalogState, SaleRequest, benefit_views, rules_problems
from tests.ledger.test_rules_support import (
    FRESH,
    POLICY,
    Till,
    benefit,
    make_card,
    make_rules,
    reason_of,
    warsaw,
)

NOON = warsaw(2026, 11, 18)


def view_of(
    b: Benefit,
    at: datetime = NOON,
    *,
    card: CardRecord | None = None,
    till: Till | None = None,
    catalog: CatalogState = FRESH,
) -> BenefitView:
    till = till or Till()
    views = benefit_views(
        card or make_card(), make_rules(b), till.usage, at, catalog=catalog, policy=POLICY
    )
    assert len(views) == 1
    return views[0]


def use(
    till: Till, b: Benefit, at: datetime, *, card: CardRecord | None = None, qty: int = 1
) -> None:
    sale = SaleRequest(amount_gr=0, benefit_ids=(b.id,), benefit_quantities={b.id: qty})
    till.sell(card or make_card(), make_rules(b), sale, at)


def refusal_of(
    till: Till, b: Benefit, at: datetime, *, card: CardRecord | None = None, qty: int = 1
) -> str | None:
    """The refusal code of using ``b`` now, or None when the sale goes through."""
    try:
        use(till, b, at, card=card, qty=qty)
    except Refusal as r:
        return reason_of(r)
    return None


@pytest.mark.parametrize(
    ("label", "name", "description"),
    [("-10%", "Basen miejski", "Wejście ulgowe"), ("", "Kino", ""), ("2 za 1", "Żółć", "ąęśćńół")],
)
def test_label(label: str, name: str, description: str) -> None:
    b = benefit(label=label, name=name, description=description)
    v = view_of(b)
    assert (v.label, v.name, v.description) == (label, name, description)


@pytest.mark.parametrize(
    ("limited", "uses", "allowed"),
    [
        # "Liczba godzin / wejść … w danej jednostce czasu" holds whenever it is set: a
        # limit beside "bez limitu" is an inconsistent form, enforced (docs/architecture.md
        # §5.6; the till used to sell "Raz dziennie" with limited absent three times a day).
        (False, 1, 1),
        (True, 1, 1),
        (True, 3, 3),
        (False, 3, 3),
    ],
)
def test_limited(limited: bool, uses: int, allowed: int) -> None:
    b = benefit(limited=limited, uses_per_period=uses, period="day")
    till = Till()
    for _ in range(allowed):
        assert refusal_of(till, b, NOON) is None
    assert refusal_of(till, b, NOON) == "period_limit_reached"


def test_unlimited_without_limits_sells_any_number_of_times() -> None:
    """Manual: „Benefit bez limitu – … dowolnej liczby razy w dowolnym czasie”."""
    b = benefit(limited=False)
    till = Till()
    for _ in range(20):
        assert refusal_of(till, b, NOON) is None


@pytest.mark.parametrize(
    ("max_persons", "persons_used", "reason"),
    [(1, 1, "persons_limit_reached"), (2, 1, None), (None, 5, None)],
)
def test_max_persons_holds_whatever_limited_says(
    max_persons: int | None, persons_used: int, reason: str | None
) -> None:
    """Manual: „Limit osób … w momencie przekroczenia limitu, sprzedaż … zablokowane”."""
    for limited in (False, True):
        b = benefit(limited=limited, max_persons=max_persons, persons_used=persons_used)
        assert view_of(b).reason == reason
        assert refusal_of(Till(), b, NOON) == reason


def test_limited_false_with_a_limit_is_reported() -> None:
    b = benefit(limited=False, uses_per_period=1, period="day", max_persons=3)
    problems = rules_problems(make_rules(b))
    assert problems == [
        "benefits[b1] is limited: false but sets max_persons and uses_per_period:"
        " the limit is enforced"
    ]
    assert rules_problems(make_rules(benefit(limited=True, uses_per_period=1))) == []


def test_a_refused_benefit_says_benefit_unavailable_with_its_reason() -> None:
    """The contract's shape: code benefit_unavailable, the reason, the benefit's id."""
    b = benefit("raz", limited=True, uses_per_period=1, period="day")
    till = Till()
    use(till, b, NOON)
    with pytest.raises(Refusal) as exc:
        use(till, b, NOON)
    r = exc.value
    assert (r.code, r.reason, r.benefit) == ("benefit_unavailable", "period_limit_reached", "raz")
    assert r.message.startswith("Wykorzystano limit tego benefitu w bieżącym okresie.")
    assert view_of(b, till=till).reason == r.reason  # the card view uses the same word


@pytest.mark.parametrize(
    ("at", "reason"),
    [
        (warsaw(2026, 11, 17, 23, 59, 59), "not_yet_valid"),  # the day before, last second
        (warsaw(2026, 11, 18, 0, 0, 0), None),  # the first valid day, first second
        (datetime.fromisoformat("2026-11-17T23:00:00+00:00"), None),  # 00:00 in Warsaw (CET)
        (datetime.fromisoformat("2026-11-17T22:59:59+00:00"), "not_yet_valid"),
    ],
)
def test_valid_from(at: datetime, reason: str | None) -> None:
    v = view_of(benefit(valid_from=date(2026, 11, 18)), at)
    assert v.reason == reason
    assert v.available is (reason is None)


@pytest.mark.parametrize(
    ("valid_to", "at", "reason"),
    [
        (date(2026, 11, 18), warsaw(2026, 11, 18, 23, 59, 59), None),  # the last valid day
        (date(2026, 11, 18), warsaw(2026, 11, 19, 0, 0, 0), "expired"),
        # summer time: 22:30 UTC on 31 July is already 1 August in Warsaw (CEST)
        (date(2026, 7, 31), datetime.fromisoformat("2026-07-31T21:59:59+00:00"), None),
        (date(2026, 7, 31), datetime.fromisoformat("2026-07-31T22:30:00+00:00"), "expired"),
    ],
)
def test_valid_to(valid_to: date, at: datetime, reason: str | None) -> None:
    assert view_of(benefit(valid_to=valid_to), at).reason == reason


@pytest.mark.parametrize(
    ("birth", "at", "reason"),
    [
        (date(2008, 11, 18), warsaw(2026, 11, 17, 23, 59), "age_below"),  # the day before
        (date(2008, 11, 18), warsaw(2026, 11, 18, 0, 0), None),  # the 18th birthday
        (date(2008, 2, 29), warsaw(2026, 2, 28), "age_below"),  # leapling, common year
        (date(2008, 2, 29), warsaw(2026, 3, 1), None),  # birthday is 1 March
        (date(2006, 2, 28), warsaw(2024, 2, 28), None),  # 18th birthday in a leap year
        (date(2004, 2, 29), warsaw(2022, 2, 28), "age_below"),
        (date(2004, 2, 29), warsaw(2022, 3, 1), None),
        (None, NOON, "age_unknown"),
    ],
)
def test_age_min(birth: date | None, at: datetime, reason: str | None) -> None:
    v = view_of(benefit(age_min=18), at, card=make_card(birth=birth))
    assert v.reason == reason


@pytest.mark.parametrize(
    ("birth", "at", "reason"),
    [
        (date(2000, 11, 18), warsaw(2026, 11, 18), None),  # turns 26: still "up to 26"
        (date(2000, 11, 18), warsaw(2027, 11, 17, 23, 59), None),  # last day aged 26
        (date(2000, 11, 18), warsaw(2027, 11, 18, 0, 0), "age_above"),  # 27
        (date(2000, 2, 29), warsaw(2027, 2, 28), None),  # still 26 until 1 March
        (date(2000, 2, 29), warsaw(2027, 3, 1), "age_above"),
        (None, NOON, "age_unknown"),
    ],
)
def test_age_max(birth: date | None, at: datetime, reason: str | None) -> None:
    v = view_of(benefit(age_max=26), at, card=make_card(birth=birth))
    assert v.reason == reason


@pytest.mark.parametrize(
    ("active", "valid_to", "reason"),
    [
        (True, None, None),
        (False, None, "inactive"),
        (False, date(2020, 1, 1), "inactive"),  # inactive is said before expired
    ],
)
def test_active(active: bool, valid_to: date | None, reason: str | None) -> None:
    assert view_of(benefit(active=active, valid_to=valid_to)).reason == reason
    till = Till()
    assert refusal_of(till, benefit(active=active, valid_to=valid_to), NOON) == reason


@pytest.mark.parametrize("visible", [True, False])
def test_visible(visible: bool) -> None:
    """Visibility is about the city's web site and app; the till still offers the benefit."""
    b = benefit(visible=visible)
    v = view_of(b)
    assert v.visible is visible
    assert v.available
    assert refusal_of(Till(), b, NOON) is None


@pytest.mark.parametrize(
    ("programs", "card_programs", "at", "reason"),
    [
        ((), (("mieszkaniec", date(2030, 1, 1)),), NOON, None),  # no restriction
        (("senior",), (("mieszkaniec", date(2030, 1, 1)),), NOON, "program_missing"),
        (
            ("senior",),
            (("mieszkaniec", date(2030, 1, 1)), ("senior", date(2026, 11, 18))),
            warsaw(2026, 11, 18, 23, 59),
            None,  # the package's last valid day
        ),
        (
            ("senior",),
            (("mieszkaniec", date(2030, 1, 1)), ("senior", date(2026, 11, 18))),
            warsaw(2026, 11, 19, 0, 0),
            "program_missing",  # a package past valid_to counts as missing
        ),
        (("senior", "kdr"), (("kdr", date(2030, 1, 1)),), NOON, None),  # any of them
    ],
)
def test_programs(
    programs: tuple[str, ...],
    card_programs: tuple[tuple[str, date], ...],
    at: datetime,
    reason: str | None,
) -> None:
    card = make_card(programs=card_programs)
    assert view_of(benefit(programs=programs), at, card=card).reason == reason


@pytest.mark.parametrize(
    ("points", "qty", "granted"),
    [(0, 1, 0), (5, 1, 5), (5, 3, 15), (25, 2, 50)],
)
def test_points(points: int, qty: int, granted: int) -> None:
    b = benefit(points=points)
    till = Till()
    sale = SaleRequest(amount_gr=0, benefit_ids=("b1",), benefit_quantities={"b1": qty})
    entry = till.sell(make_card(), make_rules(b), sale, NOON)
    assert entry.benefit_points == {"b1": granted}
    assert entry.points_earned == granted
    assert view_of(b).points == points


@pytest.mark.parametrize(
    ("locked", "override", "reason_text", "refusal", "granted"),
    [
        (True, 50, "promocja", "points_locked", None),
        (True, 10, None, "points_locked", None),  # even the default value is refused
        (False, 50, "promocja otwarcia", None, 50),
        (False, 0, "klient zrezygnował z punktów", None, 0),
        (False, 50, None, "override_reason_required", None),
        (False, 50, "   ", "override_reason_required", None),
        (False, -1, "ujemne", "invalid_override", None),
        (True, None, None, None, 10),  # no override: the locked points are granted
    ],
)
def test_points_locked(
    locked: bool,
    override: int | None,
    reason_text: str | None,
    refusal: str | None,
    granted: int | None,
) -> None:
    b = benefit(points=10, points_locked=locked)
    assert view_of(b).points_locked is locked
    sale = SaleRequest(
        amount_gr=0, benefit_ids=("b1",), points_override=override, override_reason=reason_text
    )
    till = Till()
    if refusal is not None:
        with pytest.raises(Refusal) as exc:
            till.sell(make_card(), make_rules(b), sale, NOON)
        assert exc.value.code == refusal
        assert till.entries == []
        return
    entry = till.sell(make_card(), make_rules(b), sale, NOON)
    assert entry.benefit_points == {"b1": granted}
    assert entry.points_override == override
    assert entry.override_reason == (reason_text.strip() if reason_text else None)


@pytest.mark.parametrize(
    ("min_points", "synced", "earned_here", "reason"),
    [
        # "dostępność … dopiero po przekroczeniu określonej liczby punktów": strictly above
        (100, 99, 0, "points_below_threshold"),
        (100, 100, 0, "points_below_threshold"),  # exactly the threshold is not above it
        (100, 101, 0, None),
        (100, 91, 10, None),  # this terminal's unsynced points count
        (100, 90, 10, "points_below_threshold"),
        (100, 0, 99, "points_below_threshold"),
        (0, 0, 0, "points_below_threshold"),
        (0, 1, 0, None),
        (None, 0, 0, None),
    ],
)
def test_min_points(
    min_points: int | None, synced: int, earned_here: int, reason: str | None
) -> None:
    card = make_card(points=synced, as_of=warsaw(2026, 11, 1))
    till = Till()
    if earned_here:
        till.sell(card, make_rules(), SaleRequest(amount_gr=earned_here * 100), warsaw(2026, 11, 2))
    assert view_of(benefit(min_points=min_points), card=card, till=till).reason == reason


def _card(n: int) -> CardRecord:
    return make_card(number=f"01-{n:06d}")


@pytest.mark.parametrize(
    ("max_persons", "persons_used", "others_here", "reason"),
    [
        (3, 2, 0, None),  # the last person
        (3, 3, 0, "persons_limit_reached"),
        (3, 1, 1, None),  # server 1 + 1 unacknowledged here = 2: one more fits
        (3, 1, 2, "persons_limit_reached"),  # 1 + 2 here = 3
        (0, 0, 0, "persons_limit_reached"),
        (None, 10**6, 0, None),
    ],
)
def test_max_persons(
    max_persons: int | None, persons_used: int, others_here: int, reason: str | None
) -> None:
    b = benefit(limited=True, max_persons=max_persons, persons_used=persons_used)
    till = Till()
    for i in range(others_here):
        use(till, b, NOON, card=_card(100 + i))
    assert view_of(b, till=till).reason == reason
    assert refusal_of(till, b, NOON) == reason


def test_max_persons_counts_a_card_once_and_survives_restart() -> None:
    b = benefit(limited=True, max_persons=2, persons_used=0)
    till = Till()
    use(till, b, NOON, card=_card(1))
    use(till, b, NOON, card=_card(1))  # the same person again: still one person
    use(till, b, NOON, card=_card(2))
    assert refusal_of(till, b, NOON, card=_card(3)) == "persons_limit_reached"
    assert refusal_of(till, b, NOON, card=_card(1)) is None  # already one of the persons
    # a restart rebuilds the book from the ledger: the limit still holds
    restarted = Till()
    for e in till.entries:
        restarted.entries.append(e)
        restarted.usage.apply(e)
    assert refusal_of(restarted, b, NOON, card=_card(3)) == "persons_limit_reached"


def test_max_persons_void_frees_the_person_and_ack_hands_over_to_server() -> None:
    b = benefit(limited=True, max_persons=2)
    till = Till()
    use(till, b, NOON, card=_card(1))
    use(till, b, NOON, card=_card(2))
    assert refusal_of(till, b, NOON, card=_card(3)) == "persons_limit_reached"
    till.void(2, NOON)
    assert refusal_of(till, b, NOON, card=_card(3)) is None  # seq 4
    # the server acknowledged seq 4 and its rules now count both persons
    till.usage.set_acknowledged(4)
    counted = benefit(limited=True, max_persons=2, persons_used=2)
    assert refusal_of(till, counted, NOON, card=_card(4)) == "persons_limit_reached"
    assert refusal_of(till, counted, NOON, card=_card(1)) is None


@pytest.mark.parametrize(
    ("age_s", "reason"),
    [
        (60.0, None),
        (72 * 3600.0, None),
        (72 * 3600.0 + 1, "offline_limit"),
        (None, "offline_limit"),
    ],
)
def test_max_persons_offline(age_s: float | None, reason: str | None) -> None:
    """A programme-wide limit cannot be trusted with a card list older than the maximum."""
    b = benefit(limited=True, max_persons=5, persons_used=1)
    assert view_of(b, catalog=CatalogState(age_s=age_s)).reason == reason


@pytest.mark.parametrize(
    ("limit", "uses_before", "qty", "reason"),
    [
        (3, 2, 1, None),  # the N-th use
        (3, 3, 1, "period_limit_reached"),  # the N+1-th
        (3, 1, 2, None),
        (3, 2, 2, "period_limit_reached"),  # quantity counts against the limit
        (3, 0, 4, "invalid_quantity"),  # more than a whole period allows
        (None, 50, 1, None),
    ],
)
def test_uses_per_period(limit: int | None, uses_before: int, qty: int, reason: str | None) -> None:
    b = benefit(limited=True, uses_per_period=limit, period="day")
    till = Till()
    for _ in range(uses_before):
        use(till, b, NOON)
    assert refusal_of(till, b, NOON, qty=qty) == reason


def test_uses_per_period_says_when_it_frees_up() -> None:
    b = benefit(limited=True, uses_per_period=2, period="week")
    till = Till()
    use(till, b, warsaw(2026, 11, 16, 9))  # Monday
    v = view_of(b, warsaw(2026, 11, 18), till=till)
    assert (v.available, v.remaining) == (True, 1)
    use(till, b, warsaw(2026, 11, 18))
    v = view_of(b, warsaw(2026, 11, 22, 23, 59), till=till)  # Sunday night
    assert v.reason == "period_limit_reached"
    assert v.free_at == warsaw(2026, 11, 23, 0, 0)  # Monday 00:00 Warsaw
    assert v.remaining == 0
    with pytest.raises(Refusal) as exc:
        use(till, b, warsaw(2026, 11, 20))
    assert exc.value.details["free_at"] == warsaw(2026, 11, 23, 0, 0)
    assert "23.11.2026 00:00" in exc.value.message


@pytest.mark.parametrize(
    ("period", "used_at", "last_blocked", "first_free"),
    [
        ("day", warsaw(2026, 3, 29, 0, 30), warsaw(2026, 3, 29, 23, 59), warsaw(2026, 3, 30, 0, 0)),
        (
            "week",
            warsaw(2026, 11, 16, 0, 0),
            warsaw(2026, 11, 22, 23, 59),
            warsaw(2026, 11, 23, 0, 0),
        ),
        ("month", warsaw(2026, 1, 31, 8), warsaw(2026, 1, 31, 23, 59), warsaw(2026, 2, 1, 0, 0)),
        ("month", warsaw(2026, 10, 1), warsaw(2026, 10, 31, 23, 59), warsaw(2026, 11, 1, 0, 0)),
        ("year", warsaw(2026, 1, 1, 0, 0), warsaw(2026, 12, 31, 23, 59), warsaw(2027, 1, 1, 0, 0)),
        (None, warsaw(2020, 1, 1), warsaw(2030, 12, 31), None),  # no period: whole history
    ],
)
def test_period(
    period: str | None, used_at: datetime, last_blocked: datetime, first_free: datetime | None
) -> None:
    b = benefit(limited=True, uses_per_period=1, period=period)
    till = Till()
    use(till, b, used_at)
    blocked = view_of(b, last_blocked, till=till)
    assert blocked.reason == "period_limit_reached"
    assert blocked.free_at == first_free
    if first_free is not None:
        assert view_of(b, first_free, till=till).available


@pytest.mark.parametrize(
    ("unit", "hours", "text"),
    [("hours", 3, "× 3 godz."), ("pieces", 2, "× 2 szt."), ("hours", 1, "Benefit „Sauna”: 4")],
)
def test_unit(unit: str, hours: int, text: str) -> None:
    b = benefit(name="Sauna", limited=True, uses_per_period=4, period="day", unit=unit, points=4)
    till = Till()
    q = till.quote(
        make_card(),
        make_rules(b),
        SaleRequest(amount_gr=0, benefit_ids=("b1",), benefit_quantities={"b1": hours}),
        NOON,
    )
    assert any(text in line.text_pl for line in q.explanation)
    assert view_of(b).unit == unit
    use(till, b, NOON, qty=hours)
    left = 4 - hours
    assert view_of(b, till=till).remaining == left
    assert refusal_of(till, b, NOON, qty=left + 1) == "period_limit_reached"
    if left:
        assert refusal_of(till, b, NOON, qty=left) is None


@pytest.mark.parametrize(
    ("persons_used", "reason"),
    [(0, None), (9, None), (10, "persons_limit_reached"), (11, "persons_limit_reached")],
)
def test_persons_used(persons_used: int, reason: str | None) -> None:
    b = benefit(limited=True, max_persons=10, persons_used=persons_used)
    assert view_of(b).reason == reason


@pytest.mark.parametrize(
    ("status", "programs", "reason"),
    [
        (CardStatus.ACTIVE, (("mieszkaniec", date(2030, 1, 1)),), None),
        (CardStatus.BLOCKED, (("mieszkaniec", date(2030, 1, 1)),), "card_blocked"),
        (CardStatus.REPLACED, (("mieszkaniec", date(2030, 1, 1)),), "card_blocked"),
        (CardStatus.EXPIRED, (("mieszkaniec", date(2030, 1, 1)),), "card_inactive"),
        (CardStatus.ACTIVE, (("mieszkaniec", date(2026, 11, 17)),), "card_inactive"),
        (CardStatus.ACTIVE, (), "card_inactive"),
    ],
)
def test_card_state_blocks_every_benefit(
    status: CardStatus, programs: tuple[tuple[str, date], ...], reason: str | None
) -> None:
    card = make_card(status=status, programs=programs)
    assert view_of(benefit(), card=card).reason == reason
    assert refusal_of(Till(), benefit(), NOON, card=card) == reason


@pytest.mark.parametrize(
    "fields",
    [
        {"uses_per_period": -1, "period": "day"},
        {"max_persons": -2},
        {"min_points": -5},
        {"points": -10},
        {"age_min": -1},
        {"unsupported": "unit: Invalid enum value 'litres'"},
    ],
)
def test_a_benefit_the_till_cannot_understand_is_unsupported(fields: dict[str, object]) -> None:
    """Bug: a negative limit was read as "no limit" (or "never"); the till must say it cannot."""
    bad = benefit("bad", **fields)
    ok = benefit("ok")
    views = benefit_views(
        make_card(), make_rules(bad, ok), Till().usage, NOON, catalog=FRESH, policy=POLICY
    )
    assert [(v.id, v.reason) for v in views] == [("bad", "benefit_unsupported"), ("ok", None)]
    till = Till()
    rules = make_rules(bad, ok)
    with pytest.raises(Refusal) as exc:
        till.sell(make_card(), rules, SaleRequest(amount_gr=0, benefit_ids=("bad",)), NOON)
    assert (exc.value.code, exc.value.reason) == ("benefit_unavailable", "benefit_unsupported")
    till.sell(make_card(), rules, SaleRequest(amount_gr=0, benefit_ids=("ok",)), NOON)
