// The card panel: the big AKTYWNA / NIEAKTYWNA state, holder, programmes, balance.

import { $, h, replace } from "./dom.js";
import {
  CARD_NEXT_STEP,
  CARD_STATUS,
  ERRORS,
  FEMININE_PROGRAMS,
  PROGRAM_NAMES,
  READ_SOURCES,
  T,
  errorText,
  years,
} from "./i18n.js";
import { formatDate, formatDateTime, formatPoints, warsawToday } from "./format.js";
import { BACKSPACE, CLEAR, digitPad } from "./keypad.js";
import { hasLongDigitRun } from "./guard.js";

// Waiting for a card: the number can be tapped in on the pad below the field.
export function renderWaiting(panel) {
  const input = $("#card-input");
  const search = h(
    "button",
    {
      type: "button",
      class: "btn btn-primary key key-search",
      id: "card-pad-search",
      tabindex: "-1",
      onmousedown: (ev) => ev.preventDefault(),
      onclick: () => $("#card-form").requestSubmit(),
    },
    T.cardNumberSubmit,
  );
  replace(
    panel,
    h(
      "div",
      { class: "waiting", id: "card-waiting" },
      h("p", { class: "waiting-title" }, T.waitingTitle),
      h("p", { class: "muted" }, T.waitingHint),
      input
        ? digitPad(input, {
            id: "card-pad",
            cls: "keypad-card",
            keys: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "-", "0", BACKSPACE, CLEAR],
            extra: [search],
          })
        : null,
    ),
  );
}

// The package expired, not the person: "Mieszkaniec — pakiet wygasł 01.01.2026".
function validWord(code, expired) {
  if (expired) return `— ${T.expiredOn}`;
  return FEMININE_PROGRAMS.has(code) ? T.validToFeminine : T.validTo;
}

function programRow(p, today) {
  const expired = typeof p.valid === "boolean" ? !p.valid : Boolean(p.valid_to && p.valid_to < today);
  return h(
    "li",
    { class: expired ? "program program-expired" : "program" },
    h("span", { class: "program-name" }, PROGRAM_NAMES[p.code] || p.code),
    " ",
    h(
      "span",
      { class: "program-valid" },
      p.valid_to ? `${validWord(p.code, expired)} ${formatDate(p.valid_to)}` : "",
    ),
  );
}

function statusLine(card) {
  return CARD_STATUS[card.status] || card.status || "";
}

// NIEAKTYWNA says why once and what to do next (the benefits do not repeat it).
export function inactiveText(card) {
  const status = card.status === "active" ? "inactive" : card.status;
  return CARD_NEXT_STEP[status] || card.message || ERRORS[card.reason || "card_inactive"] || T.unknownError;
}

export function renderCard(panel, card, read) {
  const active = Boolean(card.active);
  const holder = card.holder || {};
  const balance = card.balance || {};
  const today = warsawToday();
  const programs = card.programs || [];
  replace(
    panel,
    h(
      "div",
      {
        class: `card-state ${active ? "card-active" : "card-inactive"}`,
        id: "card-state",
        dataset: { active: String(active), status: card.status || "" },
      },
      h("div", { class: "card-state-word" }, active ? T.active : T.inactive),
      active
        ? h("div", { class: "card-state-status" }, statusLine(card))
        : h("div", { class: "card-state-why", id: "card-error-message" }, inactiveText(card)),
    ),
    holder.display_name
      ? h("h2", { class: "holder-name", id: "holder-name" }, holder.display_name)
      : null,
    h(
      "dl",
      { class: "card-facts" },
      h("dt", {}, T.cardNo),
      h("dd", { id: "card-number" }, card.number),
      typeof holder.age === "number" ? h("dt", {}, T.age) : null,
      typeof holder.age === "number" ? h("dd", { id: "holder-age" }, years(holder.age)) : null,
      h("dt", {}, T.programs),
      h(
        "dd",
        {},
        programs.length
          ? h("ul", { class: "programs", id: "programs" }, programs.map((p) => programRow(p, today)))
          : h("span", { class: "muted" }, T.noPrograms),
      ),
      h("dt", {}, T.balance),
      h(
        "dd",
        { class: "balance", id: "balance" },
        h("span", { class: "balance-points" }, formatPoints(balance.points ?? 0)),
        balance.stale && balance.as_of
          ? h("span", { class: "balance-asof" }, ` ${T.balanceAsOf} ${formatDateTime(balance.as_of)}`)
          : null,
      ),
      read && read.source ? h("dt", {}, T.readBy) : null,
      read && read.source
        ? h("dd", { class: "muted" }, READ_SOURCES[read.source] || read.source)
        : null,
    ),
  );
}

const MISREAD = new Set(["garbled", "incomplete", "bad_qr", "expired_qr", "unknown_barcode"]);
const NOT_OUR_CARD = new Set(["payment_card", "not_an_identity", "not_a_card_number", "plain_qr_refused"]);

function refusalTitle(reason) {
  if (MISREAD.has(reason)) return T.misreadTitle;
  if (NOT_OUR_CARD.has(reason)) return T.notOurCardTitle;
  return T.errorTitle;
}

// A refused read or lookup: blocked/inactive cards still get the big NIEAKTYWNA.
export function renderCardError(panel, error) {
  const inactive = ["card_blocked", "card_inactive"].includes(error.reason);
  const message = inactive
    ? CARD_NEXT_STEP[error.reason === "card_blocked" ? "blocked" : "inactive"]
    : errorText(error.reason, error.message);
  // What was typed is shown back, unless it could be a bank card's number.
  const number = error.number && !hasLongDigitRun(error.number) ? error.number : null;
  replace(
    panel,
    inactive
      ? h(
          "div",
          {
            class: "card-state card-inactive",
            id: "card-state",
            dataset: { active: "false", status: error.reason === "card_blocked" ? "blocked" : "" },
          },
          h("div", { class: "card-state-word" }, T.inactive),
          h("div", { class: "card-state-why", id: "card-error-message", role: "alert" }, message),
        )
      : h(
          "div",
          { class: "card-refusal", id: "card-refusal", role: "alert", dataset: { reason: error.reason } },
          h("div", { class: "card-refusal-title" }, refusalTitle(error.reason)),
          h("p", {}, message),
        ),
    number ? h("p", { class: "muted" }, `${T.cardNo} ${number}`) : null,
  );
}
