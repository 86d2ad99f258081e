"""Polish messages of the local API's own refusals (the engine's are in ledger.refusals).

A code has one text: codes the rules engine knows (``card_unknown``, ``invalid_amount``,
…) are translated in ``ledger.refusals`` only; tests/terminal/test_messages.py checks
that no code is in both tables.
"""

from __future__ import annotations

from ledger.refusals import MESSAGES as ENGINE_MESSAGES

API_MESSAGES: dict[str, str] = {
    "unauthorized": "Zaloguj się kodem PIN kasjera.",
    "bad_pin": "Nieprawidłowy PIN.",
    "pin_locked": "Zbyt wiele błędnych prób PIN-u tego kasjera. Spróbuj ponownie za chwilę.",
    "cashier_required": "Wybierz swoje imię z listy, potem wpisz PIN.",
    "unknown_cashier": "Nie ma takiego kasjera w regułach partnera.",
    "manager_pin_too_short": "PIN kierownika ma co najmniej 6 cyfr.",
    "manager_required": "Potrzebna zgoda kierownika: kierownik wybiera swoje imię i wpisuje PIN.",
    "approval_refused": "Zgoda odrzucona: nieprawidłowy PIN kierownika albo ta osoba nie jest "
    "kierownikiem.",
    "origin_refused": "Żądanie z obcej strony zostało odrzucone.",
    "invalid_request": "Nieprawidłowe żądanie.",
    "not_found": "Nie znaleziono.",
    "too_large": "Żądanie jest za duże.",
    "sale_conflict": "Ta transakcja została już zapisana z innymi danymi.",
    "not_a_card_number": "To nie jest numer Karty Mieszkańca.",
    "rules_missing": "Brak reguł partnera — połącz się z serwerem miasta.",
    "sync_busy": "Synchronizacja już trwa.",
    "sync_failed": "Synchronizacja nie powiodła się.",
    "printer_none": "Drukarka nie jest skonfigurowana.",
    "nothing_to_close": "Od ostatniego raportu dobowego (Z) nie było nowych transakcji.",
    "demo_only": "Dostępne tylko w trybie demonstracyjnym.",
    "internal": "Błąd wewnętrzny terminala. Spróbuj ponownie.",
    "ledger_write_failed": "Transakcja NIE została zapisana — błąd zapisu na dysku terminala "
    "(np. brak miejsca). Spróbuj ponownie; jeśli błąd wraca, wezwij serwis.",
}

# What readers reject, as the cashier sees it.
READ_MESSAGES: dict[str, str] = {
    "payment_card": "To karta płatnicza — przeciągnij Kartę Mieszkańca.",
    "garbled": "Nie udało się odczytać karty — przeciągnij ponownie.",
    "incomplete": "Niepełny odczyt — przeciągnij kartę ponownie.",
    "unknown_barcode": "Nieznany kod kreskowy.",
    "bad_qr": "Nieprawidłowy kod QR.",
    "expired_qr": "Kod QR wygasł — poproś o odświeżenie kodu w aplikacji.",
    "plain_qr_refused": "Ten kod QR nie jest podpisany przez miasto — poproś o kod "
    "z aplikacji Karty Mieszkańca albo użyj karty.",
    "not_an_identity": "Ten identyfikator zbliżeniowy nie jest kartą (telefon lub karta bankowa).",
}


def pin_locked_message(seconds: int) -> str:
    """``pin_locked`` with the wait: the cashier knows when to try again."""
    return f"Zbyt wiele błędnych prób PIN-u tego kasjera. Spróbuj ponownie za {seconds} s."


def message(code: str) -> str:
    """The Polish message for an API, read or engine refusal code."""
    return (
        API_MESSAGES.get(code)
        or READ_MESSAGES.get(code)
        or ENGINE_MESSAGES.get(code)
        or API_MESSAGES["invalid_request"]
    )
