"""Every refusal and availability code of the till, with its Polish text for the cashier.

This module is the one table of cashier-facing refusal text: the rules engine raises
`Refusal` with a code from `MESSAGES`, the screen shows `Refusal.message`, the card view
carries the bare code as a benefit's ``reason``. Translate here, nowhere else.

A refused benefit (docs/architecture.md §5.3, the contract's 11.1) is one code,
``benefit_unavailable``, with the specific ``reason`` (``period_limit_reached``, …) and
the ``benefit`` id; its message is the reason's sentence. The rules engine builds it
(`Refusal.of_benefit`); every layer above only copies the three fields.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime

from ledger.clock import WARSAW

MESSAGES: dict[str, str] = {
    # the card
    "card_unknown": "Nieznana karta — brak jej na liście kart.",
    "card_blocked": "Karta zastrzeżona — nie można jej użyć.",
    "card_inactive": "Karta nieaktywna — brak ważnego pakietu lub karta wygasła.",
    "card_data_invalid": "Dane tej karty z listy miasta są nieczytelne — nie można jej teraz "
    "użyć. Zgłoś to w biurze programu Karta Mieszkańca.",
    # a benefit
    "benefit_unavailable": "Ten benefit nie jest dostępny u tego partnera.",
    "benefit_unsupported": "Kasa nie rozpoznaje ustawień tego benefitu — nie można go teraz "
    "udzielić. Zgłoś to w biurze programu Karta Mieszkańca.",
    "inactive": "Benefit jest nieaktywny.",
    "not_yet_valid": "Benefit jeszcze nie obowiązuje.",
    "expired": "Benefit już nie obowiązuje.",
    "age_below": "Mieszkaniec jest za młody na ten benefit.",
    "age_above": "Mieszkaniec przekroczył wiek uprawniający do tego benefitu.",
    "age_unknown": "Brak daty urodzenia na karcie — nie można sprawdzić wieku.",
    "program_missing": "Karta nie ma ważnego pakietu wymaganego przez ten benefit.",
    "points_below_threshold": "Za mało punktów na koncie, by skorzystać z tego benefitu.",
    "persons_limit_reached": "Wyczerpano limit osób dla tego benefitu.",
    "period_limit_reached": "Wykorzystano limit tego benefitu w bieżącym okresie.",
    "points_locked": "Liczba punktów tego benefitu jest zablokowana — nie można jej zmienić.",
    "override_reason_required": "Podaj powód zmiany liczby punktów.",
    "invalid_override": "Zmiana punktów jest możliwa dla jednego benefitu, o liczbie punktów "
    "od 0 do 1 000 000.",
    "invalid_quantity": "Nieprawidłowa liczba sztuk lub godzin benefitu.",
    # points redemption
    "insufficient_points": "Za mało punktów na koncie na ten próg wymiany.",
    "invalid_redeem_tier": "Punkty można wymienić tylko według progów wymiany.",
    "discount_exceeds_amount": "Rabat za punkty nie może być wyższy niż kwota zakupu.",
    "offline_limit": "Brak aktualnej listy kart (praca bez sieci) — wymiana punktów "
    "jest teraz ograniczona.",
    # the sale
    "invalid_amount": "Nieprawidłowa kwota zakupu.",
    # voids
    "already_voided": "Ta sprzedaż została już anulowana.",
    "cannot_void_void": "Nie można anulować anulowania.",
    "not_a_sale": "Anulować można tylko sprzedaż.",
    "void_reason_required": "Podaj powód anulowania.",
}

# Extra sentences for codes whose details say more (same table, filled from details).
DETAIL_MESSAGES: dict[str, str] = {
    "period_limit_reached": "Dostępny ponownie od {free_at}.",
    "insufficient_points": "Saldo: {balance} pkt, potrzeba {needed} pkt.",
    "age_below": "Wymagany wiek od {age_min} lat.",
    "age_above": "Wymagany wiek do {age_max} lat.",
    "not_yet_valid": "Obowiązuje od {valid_from}.",
    "expired": "Obowiązywał do {valid_to}.",
    "points_below_threshold": "Dostępny po przekroczeniu {min_points} pkt (saldo: {balance} pkt).",
}


def _show(value: object) -> str:
    """Render a detail value the Polish way (dates DD.MM.YYYY, instants in Warsaw time)."""
    if isinstance(value, datetime):
        return value.astimezone(WARSAW).strftime("%d.%m.%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d.%m.%Y")
    return str(value)


def message_for(code: str, details: Mapping[str, object] | None = None) -> str:
    """The cashier's text for ``code``, with the detail sentence when details allow it."""
    base = MESSAGES[code]
    template = DETAIL_MESSAGES.get(code)
    if template is None or not details:
        return base
    try:
        extra = template.format_map({k: _show(v) for k, v in details.items()})
    except KeyError:
        return base
    return f"{base} {extra}"


BENEFIT_UNAVAILABLE = "benefit_unavailable"


class Refusal(Exception):
    """The engine says no: a code from `MESSAGES`, its Polish message and the details.

    ``reason`` and ``benefit`` are set for a refused benefit (code ``benefit_unavailable``):
    the message is then the reason's own sentence.
    """

    code: str
    reason: str | None
    benefit: str | None
    message: str
    details: dict[str, object]

    def __init__(
        self,
        code: str,
        details: Mapping[str, object] | None = None,
        *,
        reason: str | None = None,
        benefit: str | None = None,
    ) -> None:
        for c in (code, reason):
            if c is not None and c not in MESSAGES:
                raise KeyError(f"refusal code {c!r} has no message in ledger.refusals.MESSAGES")
        self.code = code
        self.reason = reason
        self.benefit = benefit
        self.details = dict(details or {})
        self.message = message_for(reason or code, self.details)
        super().__init__(code, self.message)

    @classmethod
    def of_benefit(
        cls, benefit: str, reason: str | None, details: Mapping[str, object] | None = None
    ) -> Refusal:
        """A refused benefit: code ``benefit_unavailable`` with the specific reason."""
        return cls(BENEFIT_UNAVAILABLE, details, reason=reason, benefit=benefit)

    def __str__(self) -> str:
        if self.reason is not None:
            return f"{self.code} ({self.reason}): {self.message}"
        return f"{self.code}: {self.message}"
