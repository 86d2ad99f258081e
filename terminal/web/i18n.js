// Every text the cashier sees on this page, in one place so it can be translated.
// Codes (reasons, errors, states) come from the daemon (docs/architecture.md §5.3); the page keeps
// its own Polish table for them and prefers the daemon's message when it sends one.

export const LOCALE = "pl-PL";
export const TIME_ZONE = "Europe/Warsaw";

export const T = {
  appTitle: "Karta Mieszkańca — kasa",
  terminal: "Terminal",
  // login
  loginTitle: "Logowanie kasjera",
  loginPrompt: "Wpisz swój PIN",
  loginButton: "Zaloguj",
  pinLabel: "PIN kasjera",
  pinClear: "Wyczyść",
  pinBackspace: "Usuń cyfrę",
  pinEmpty: "Wpisz PIN.",
  logout: "Wyloguj",
  cashier: "Kasjer",
  // card
  waitingTitle: "Przeciągnij, zeskanuj lub przyłóż kartę",
  waitingHint: "albo wpisz numer karty w polu powyżej",
  cardNumberLabel: "Numer karty",
  cardNumberPlaceholder: "np. 01-000018",
  cardNumberSubmit: "Szukaj",
  cardNumberEmpty: "Wpisz numer karty.",
  active: "AKTYWNA",
  inactive: "NIEAKTYWNA",
  cardNo: "Karta nr",
  age: "Wiek",
  programs: "Programy",
  noPrograms: "Brak ważnych programów",
  validTo: "ważny do",
  validToFeminine: "ważna do",
  expiredOn: "pakiet wygasł",
  balance: "Saldo punktów",
  balanceAsOf: "stan na",
  pointsShort: "pkt",
  readBy: "Odczyt",
  closeCard: "Zamknij kartę",
  // benefits
  benefits: "Benefity",
  noBenefits: "Brak benefitów partnera.",
  use: "Użyj",
  selected: "Wybrano",
  remove: "Usuń",
  pointsLocked: "Punkty zablokowane",
  unavailable: "Niedostępny",
  confirmUseTitle: "Potwierdź użycie benefitu",
  confirmUseText: "Czy na pewno użyć benefitu",
  confirmUseFor: "dla karty",
  confirmUseButton: "Tak, użyj",
  quantity: "Liczba",
  pointsForBenefit: "Punkty za benefit",
  overrideReason: "Powód zmiany punktów",
  overrideReasonRequired: "Podaj powód zmiany punktów.",
  quantityInvalid: "Podaj liczbę całkowitą od 1 do 99.",
  pointsInvalid: "Podaj liczbę punktów (0 lub więcej).",
  // sale
  sale: "Transakcja",
  amount: "Kwota zakupu",
  amountPlaceholder: "0,00",
  amountHint: "np. 123,45",
  amountInvalid: "Nieprawidłowa kwota — wpisz np. 123,45.",
  redeem: "Wymiana punktów",
  redeemNone: "Bez wymiany",
  redeemTooFew: "za mało punktów",
  quote: "Podsumowanie",
  quoteEarn: "Punkty za zakup",
  quoteRedeem: "Wymiana",
  quoteDiscount: "Rabat",
  resultDiscount: "Rabat za punkty",
  quoteToPay: "Do zapłaty",
  quoteAmount: "Kwota zakupu",
  quoteBenefit: "Benefit",
  benefitAtTill: "rabat benefitu udzielasz w swojej kasie",
  quoteBalance: "Saldo po transakcji",
  quoteBenefits: "Benefity",
  quoting: "Liczę…",
  confirm: "Zatwierdź",
  cancel: "Przerwij",
  back: "Wróć",
  saving: "Zapisuję transakcję…",
  retrying: (n) => `Brak połączenia z terminalem — ponawiam (próba ${n})…`,
  retryFailed: "Nie udało się zapisać transakcji. Sprawdź połączenie i ponów — nie zostanie zapisana dwa razy.",
  retry: "Ponów",
  retrySafe: "Ponowienie nie zapisze transakcji dwa razy.",
  nothingToSell: "Wpisz kwotę albo wybierz benefit.",
  // result
  saleDone: "Transakcja zapisana",
  saleNo: "Nr transakcji",
  pointsGranted: "Przyznane punkty",
  pointsRedeemed: "Wymienione punkty",
  newBalance: "Nowe saldo",
  receipt: "Wydruk",
  receiptPreview: "Podgląd wydruku",
  receiptCopyPreview: "Podgląd kopii (KOPIA)",
  receiptLoading: "Wczytuję podgląd wydruku…",
  receiptUnavailable: "Podgląd wydruku niedostępny.",
  receiptImage: "Obraz wydruku",
  resultPaid: "Klient płaci",
  resultPointsFrom: (paid) => `za zapłacone ${paid}`,
  newSale: "Nowa transakcja",
  // actions
  voidLast: "Anuluj transakcję",
  voidTitle: "Anulowanie transakcji",
  voidText: (seq, amount) => `Anulować transakcję nr ${seq} na kwotę ${amount}?`,
  voidReason: "Powód anulowania",
  voidReasonRequired: "Podaj powód anulowania.",
  voidButton: "Tak, anuluj transakcję",
  voidDone: "Transakcja anulowana",
  voidNothing: "Brak transakcji do anulowania.",
  voidPointsTaken: "Odebrane punkty",
  voidPointsBack: "Zwrócone punkty",
  reprint: "Drukuj kopię",
  reprintDone: "Wysłano kopię wydruku (KOPIA) do drukarki.",
  reprintNothing: "Brak wydruku do powtórzenia.",
  reprintTitle: "Kopia wydruku",
  dayClose: "Zamknij dzień",
  dayCloseTitle: "Zamknięcie dnia",
  dayCloseText: "Zamknąć dzień i wydrukować raport Z?",
  dayCloseButton: "Tak, zamknij dzień",
  dayCloseDone: "Dzień zamknięty",
  dayClosedTitle: "Dzień jest już zamknięty",
  dayClosedCopy: "Drukuj kopię ostatniego raportu",
  zReport: "Raport dobowy (Z)",
  zRange: "Transakcje nr",
  zNone: "brak",
  shortcuts: "Skróty",
  close: "Zamknij",
  // status bar
  readers: "Czytniki",
  noReaders: "brak czytników",
  printer: "Drukarka",
  sync: "Synchronizacja",
  pending: (n) => `do wysłania: ${n}`,
  lastUpload: "ostatnio",
  never: "nigdy",
  cardsAge: "lista kart sprzed",
  syncNow: "Synchronizuj",
  syncDone: "Synchronizacja zakończona.",
  syncStarted: "Synchronizacja uruchomiona.",
  offlineBanner: "Tryb offline — brak łączności z serwerem miasta.",
  offlineCards: (age) => `Lista kart z ${age} temu.`,
  offlineRules: "Punkty są naliczane normalnie; wymiana punktów jest ograniczona.",
  degraded: "Terminal działa z ograniczeniami.",
  // The city holds entries whose points or benefits do not follow the rules (§5.9).
  quarantined: (n) =>
    `Miasto wstrzymało ${n} ${plural(n, "wpis", "wpisy", "wpisów")} do wyjaśnienia: ` +
    "ich punkty nie są jeszcze na kartach. Zgłoś to operatorowi programu.",
  printerProblem: (state) => `Drukarka: ${state} — sprzedaż działa, wydruki czekają w kolejce.`,
  readersProblem: (names) => `Czytnik niedostępny: ${names} — wpisz numer karty ręcznie.`,
  disconnected: "Brak połączenia z terminalem — łączę ponownie…",
  reconnected: "Połączenie z terminalem przywrócone.",
  // demo
  demoTitle: "Tryb demonstracyjny",
  demoSwipe: "Symuluj przeciągnięcie karty",
  // generic
  errorTitle: "Karty nie można użyć",
  misreadTitle: "Karta nieodczytana",
  notOurCardTitle: "To nie jest Karta Mieszkańca",
  panRefused: "To wygląda na numer karty płatniczej — pole wyczyszczone. Użyj Karty Mieszkańca.",
  enterNoCard: "Najpierw przeciągnij, zeskanuj lub przyłóż kartę albo wpisz jej numer.",
  enterInactive: "Na nieaktywnej karcie nie można zapisać transakcji — Esc: następny klient.",
  enterSaving: "Transakcja jest zapisywana — poczekaj.",
  // on-screen keys
  keypad: "Klawiatura numeryczna",
  keyboard: "Klawiatura",
  keyBackspace: "Usuń znak",
  keyClear: "Wyczyść",
  keySpace: "spacja",
  commonReasons: "Częste powody",
  less: "mniej",
  more: "więcej",
  // benefits and redemption: why not, with the numbers
  benefitsBlocked: "Benefity i wymiana punktów są niedostępne dla tej karty.",
  needPoints: (missing, min) => `brakuje ${missing} pkt (próg ${min} pkt)`,
  fromDate: (date) => `obowiązuje od ${date}`,
  untilDate: (date) => `obowiązywał do ${date}`,
  freeAt: (when) => `znów dostępny od ${when}`,
  redeemNeed: (min, missing) => `Do wymiany potrzeba co najmniej ${min} pkt — brakuje ${missing} pkt.`,
  redeemOffline: "Wymiana punktów jest teraz niedostępna (praca bez aktualnej listy kart).",
  unknownError: "Wystąpił błąd. Spróbuj ponownie.",
};

// Polish names of the programme packages.
export const PROGRAM_NAMES = {
  mieszkaniec: "Mieszkaniec",
  senior: "Senior",
  kdr: "Karta Dużej Rodziny",
};

// Programmes whose name is feminine ("Karta Dużej Rodziny ważna do …").
export const FEMININE_PROGRAMS = new Set(["kdr"]);

// An inactive card: the one reason, said once, and what the cashier does next.
export const CARD_NEXT_STEP = {
  blocked: "Karta zastrzeżona. Nie przyjmuj jej — poproś o inną kartę mieszkańca; zastrzeżenie wyjaśnia biuro programu.",
  replaced: "Karta zastąpiona duplikatem. Poproś o nową kartę (duplikat) — punkty są na niej.",
  expired: "Karta wygasła. Mieszkaniec przedłuża ją w biurze programu lub przez stronę programu.",
  inactive: "Brak ważnego pakietu. Mieszkaniec przedłuża uprawnienia w biurze programu.",
};

// Common reasons, one tap each (the field stays editable).
export const VOID_REASONS = ["Pomyłka kasjera", "Zła kwota", "Zwrot towaru", "Rezygnacja klienta", "Zła karta"];
export const OVERRIDE_REASONS = ["Promocja partnera", "Stały klient", "Reklamacja", "Uzgodnione z kierownikiem"];

// Card status words under the big AKTYWNA / NIEAKTYWNA.
export const CARD_STATUS = {
  active: "karta aktywna",
  blocked: "karta zastrzeżona",
  expired: "karta wygasła",
  replaced: "karta zastąpiona duplikatem (zastrzeżona)",
};

// Why a benefit cannot be used now (CARDVIEW.benefits[].reason).
export const BENEFIT_REASONS = {
  inactive: "benefit nieaktywny",
  not_yet_valid: "benefit jeszcze nie obowiązuje",
  expired: "benefit wygasł",
  age_below: "mieszkaniec jest za młody",
  age_above: "mieszkaniec przekroczył limit wieku",
  program_missing: "karta nie ma wymaganego programu",
  points_below_threshold: "za mało punktów na karcie",
  persons_limit_reached: "wyczerpany limit osób",
  period_limit_reached: "wykorzystany limit w tym okresie",
  offline_limit: "limit w trybie offline",
  card_inactive: "karta nieaktywna",
  age_unknown: "brak daty urodzenia na karcie",
  card_blocked: "karta zastrzeżona",
  benefit_unsupported: "kasa nie rozpoznaje ustawień benefitu",
};

// Refusals and errors by code, used when the daemon sends no message.
export const ERRORS = {
  network: "Brak połączenia z terminalem.",
  unauthorized: "Zaloguj się kodem PIN kasjera.",
  bad_pin: "Nieprawidłowy PIN.",
  pin_locked: "Zbyt wiele błędnych prób PIN-u tego kasjera. Spróbuj ponownie za chwilę.",
  cashier_required: "Wybierz swoje imię z listy, potem wpisz PIN.",
  unknown_cashier: "Nie ma takiego kasjera w regułach partnera.",
  manager_pin_too_short: "PIN kierownika ma co najmniej 6 cyfr.",
  manager_required: "Potrzebna zgoda kierownika: kierownik wybiera swoje imię i wpisuje PIN.",
  approval_refused: "Zgoda odrzucona: nieprawidłowy PIN kierownika albo ta osoba nie jest kierownikiem.",
  origin_refused: "Żądanie z obcej strony zostało odrzucone.",
  invalid_request: "Nieprawidłowe żądanie.",
  not_found: "Nie znaleziono.",
  too_large: "Żądanie jest za duże.",
  sale_conflict: "Ta transakcja została już zapisana z innymi danymi.",
  card_unknown: "Nieznana karta — nie ma jej na liście kart.",
  card_blocked: "Karta zastrzeżona — nie można jej użyć.",
  card_inactive: "Karta nieaktywna — brak ważnego programu.",
  card_data_invalid: "Dane tej karty z listy miasta są nieczytelne — zgłoś to w biurze programu.",
  benefit_unavailable: "Tego benefitu nie można teraz użyć.",
  points_locked: "Punktów tego benefitu nie można zmieniać.",
  insufficient_points: "Za mało punktów na karcie.",
  offline_limit: "Limit wymiany punktów w trybie offline został wyczerpany.",
  catalog_too_old: "Lista kart jest zbyt stara — wymiana punktów niedostępna.",
  invalid_amount: "Nieprawidłowa kwota.",
  not_a_card_number: "To nie jest numer Karty Mieszkańca.",
  rules_missing: "Brak reguł partnera — połącz się z serwerem miasta.",
  sync_busy: "Synchronizacja już trwa.",
  sync_failed: "Synchronizacja nie powiodła się.",
  printer_none: "Drukarka nie jest skonfigurowana.",
  nothing_to_close: "Od ostatniego raportu dobowego (Z) nie było nowych transakcji.",
  already_voided: "Ta sprzedaż została już anulowana.",
  demo_only: "Dostępne tylko w trybie demonstracyjnym.",
  age_unknown: "Brak daty urodzenia na karcie — nie można sprawdzić wieku.",
  override_reason_required: "Podaj powód zmiany liczby punktów.",
  invalid_override: "Zmiana punktów jest możliwa dla jednego benefitu.",
  invalid_quantity: "Nieprawidłowa liczba sztuk lub godzin benefitu.",
  invalid_redeem_tier: "Punkty można wymienić tylko według progów wymiany.",
  discount_exceeds_amount: "Rabat za punkty nie może być wyższy niż kwota zakupu.",
  cannot_void_void: "Nie można anulować anulowania.",
  not_a_sale: "Anulować można tylko sprzedaż.",
  void_reason_required: "Podaj powód anulowania.",
  internal: "Błąd wewnętrzny terminala. Spróbuj ponownie.",
  ledger_write_failed: "Transakcja NIE została zapisana — błąd zapisu na dysku terminala.",
  // card read refusals (card_error.reason)
  payment_card: "To karta płatnicza — przeciągnij Kartę Mieszkańca.",
  garbled: "Nie udało się odczytać karty — przeciągnij ponownie.",
  incomplete: "Niepełny odczyt — przeciągnij kartę ponownie.",
  unknown_barcode: "Nieznany kod kreskowy.",
  bad_qr: "Nieprawidłowy kod QR.",
  expired_qr: "Kod QR wygasł — poproś o odświeżenie kodu w aplikacji.",
  plain_qr_refused: "Ten kod QR nie jest podpisany przez miasto — poproś o kod z aplikacji Karty Mieszkańca albo użyj karty.",
  not_an_identity: "Ten identyfikator zbliżeniowy nie jest kartą (telefon lub karta bankowa).",
};

export const READER_STATES = {
  ok: "gotowy",
  ready: "gotowy",
  connected: "gotowy",
  disconnected: "odłączony",
  missing: "odłączony",
  error: "błąd",
  starting: "uruchamianie",
  unknown: "nieznany",
};

export const PRINTER_STATES = {
  paper_near_end: "Kończy się papier",
  ok: "gotowa",
  ready: "gotowa",
  online: "gotowa",
  paper_out: "Brak papieru",
  paper_low: "Kończy się papier",
  cover_open: "Otwarta pokrywa",
  offline: "niedostępna",
  disconnected: "niedostępna",
  error: "błąd",
  busy: "drukuje",
  none: "brak drukarki",
  unknown: "stan nieznany",
};

export const RECEIPT_STATUS = {
  printed: "wydrukowany",
  queued: "w kolejce do druku",
  failed: "błąd drukowania",
  none: "bez wydruku",
};

export const READ_SOURCES = {
  msr: "pasek magnetyczny",
  barcode: "kod kreskowy",
  qr: "kod QR",
  nfc: "zbliżeniowo",
  manual: "wpisany numer",
};

export const UNITS = {
  pieces: "szt.",
  hours: "godz.",
};

export const SUMMARY_LABELS = {
  sales: "Liczba sprzedaży",
  sales_amount_gr: "Sprzedaż (zakupy)",
  voids_amount_gr: "Anulowania",
  partner_cost_gr: "Koszt partnera",
  sales_count: "Liczba sprzedaży",
  voids: "Liczba anulowań",
  voids_count: "Liczba anulowań",
  amount_gr: "Obrót netto",
  discount_gr: "Rabaty za punkty",
  points_earned: "Przyznane punkty",
  points_redeemed: "Wymienione punkty",
  first_seq: "Od transakcji nr",
  last_seq: "Do transakcji nr",
  entries: "Liczba wpisów",
};

export const SHORTCUTS = [
  ["F2", "Kwota"],
  ["Enter", "Zatwierdź"],
  ["Esc", "Przerwij"],
  ["F4", "Anuluj transakcję"],
  ["F8", "Drukuj kopię"],
  ["F10", "Zamknij dzień"],
];

// Polish plural: 1 rok, 2–4 lata, 5+ lat (12–14: lat).
function plural(n, one, few, many) {
  const abs = Math.abs(n);
  if (abs === 1) return one;
  const d = abs % 10;
  const dd = abs % 100;
  if (d >= 2 && d <= 4 && !(dd >= 12 && dd <= 14)) return few;
  return many;
}

export function years(n) {
  return `${n} ${plural(n, "rok", "lata", "lat")}`;
}

// A duration in words: "5 min", "3 godz.", "4 dni".
export function duration(seconds) {
  const s = Math.max(0, Math.round(seconds));
  if (s < 90) return `${s} s`;
  if (s < 90 * 60) return `${Math.round(s / 60)} min`;
  if (s < 48 * 3600) return `${Math.round(s / 3600)} godz.`;
  const d = Math.round(s / 86400);
  return `${d} ${plural(d, "dzień", "dni", "dni")}`;
}

// The login screen (login.js): the name first, then the PIN.
export const LOGIN = {
  chooseCashier: "Wybierz kasjera",
  changeCashier: "Zmień kasjera",
  manager: "kierownik",
  noCashiers: "Brak kasjerów — reguły partnera jeszcze nie dotarły z serwera miasta.",
  pinPad: "Klawiatura PIN",
};

// A manager's approval on the same screen (approval.js).
export const APPROVAL = {
  title: "Zgoda kierownika",
  text: {
    points_override: "Zmiana liczby punktów wymaga zgody kierownika.",
    day_close: "Zamknięcie dnia (raport Z) wymaga zgody kierownika.",
    other: "Ta czynność wymaga zgody kierownika.",
  },
  chooseManager: "Kierownik wybiera swoje imię:",
  pinLabel: "PIN kierownika",
  pinEmpty: "Kierownik wpisuje swój PIN.",
  confirm: "Zatwierdź",
  noManager: "W regułach partnera nie ma kierownika — zmiany nie można zatwierdzić na tej kasie.",
};

export function errorText(code, message) {
  return message || ERRORS[code] || T.unknownError;
}
