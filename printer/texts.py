"""Every word the printer puts on paper, in one table (Polish; translate here).

All of it must be encodable in CP852, CP1250 and ISO 8859-2 (a test checks).
"""

from __future__ import annotations

from typing import Final

NONFISCAL: Final = "WYDRUK NIEFISKALNY"
PROGRAMME: Final = "Karta Mieszkańca"
COPY: Final = "KOPIA"
SALE_TITLE: Final = "POTWIERDZENIE TRANSAKCJI"
VOID_TITLE: Final = "ANULOWANIE"
Z_TITLE: Final = "RAPORT DOBOWY (Z)"

NIP: Final = "NIP: {nip}"
DATE: Final = "Data:"
TIME: Final = "Godzina:"
TERMINAL: Final = "Terminal:"
TRANSACTION: Final = "Transakcja nr:"
CASHIER: Final = "Kasjer:"
CARD: Final = "Karta:"
AMOUNT: Final = "Kwota zakupu:"
PAID: Final = "Zapłacono:"
# How the purchase points follow: from what was paid, after the points discount.
PURCHASE_POINTS: Final = "Punkty za {paid}:"
BENEFITS: Final = "Przyznane benefity:"
BENEFIT_QTY: Final = "{quantity} {unit}"
UNITS: Final = {"pieces": "szt.", "hours": "godz."}
REDEEMED: Final = "Wymienione punkty:"
DISCOUNT: Final = "Rabat za punkty:"
TOTAL_POINTS: Final = "Razem przyznano:"
BALANCE: Final = "Saldo po transakcji:"
BALANCE_AS_OF: Final = "stan na {date}"
POINTS: Final = "{points} pkt"

VOIDED: Final = "Anulowana transakcja nr:"
VOIDED_AT: Final = "z dnia:"
VOIDED_AMOUNT: Final = "Kwota anulowanej sprzedaży:"
VOID_POINTS_BACK: Final = "Punkty zwrócone:"
VOID_POINTS_TAKEN: Final = "Punkty odebrane:"
VOID_DISCOUNT: Final = "Cofnięty rabat za punkty:"
VOID_REASON: Final = "Powód:"

Z_DAY: Final = "Dzień:"
Z_SALES: Final = "Liczba sprzedaży:"
Z_VOIDS: Final = "Liczba anulowań:"
Z_SALES_AMOUNT: Final = "Sprzedaż (zakupy):"
Z_VOIDED_AMOUNT: Final = "Anulowano:"
Z_AMOUNT: Final = "Obrót netto:"
Z_DISCOUNT: Final = "Rabaty za punkty:"
Z_POINTS_EARNED: Final = "Przyznane punkty:"
Z_POINTS_REDEEMED: Final = "Wymienione punkty:"
Z_PARTNER_COST: Final = "Koszt partnera ({price}/pkt):"  # price: "0,10 zł"
Z_SEQ_RANGE: Final = "Transakcje nr:"
Z_SEQ_RANGE_VALUE: Final = "{first} - {last}"
Z_NO_TRANSACTIONS: Final = "brak"
Z_HEAD: Final = "Skrót łańcucha (hash):"

VERIFY: Final = "Kod weryfikacyjny:"
VERIFY_HINT: Final = "Kod sprawdzi biuro programu Karta Mieszkańca."
FOOTER: Final = (
    "Zachowaj ten wydruk: potwierdza przyznane punkty i benefity.",
    "Dziękujemy!",
)
VOID_FOOTER: Final = ("Zachowaj ten wydruk: potwierdza anulowanie transakcji i zwrot punktów.",)
Z_FOOTER: Final = ("Raport dla partnera programu.",)

# What the cashier screen shows for the printer's state.
STATUS: Final = {
    "online": "Drukarka gotowa",
    "offline": "Drukarka niedostępna",
    "paper_near_end": "Kończy się papier",
    "paper_out": "Brak papieru",
    "cover_open": "Otwarta pokrywa drukarki",
    "unknown": "Stan drukarki nieznany",
}
