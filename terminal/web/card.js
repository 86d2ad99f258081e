// The card panel: the big AKTYWNA / NIEAKTYWNA state, holder, programmes, balance.

import { h, replace } from "./dom.js";
import {
  BENEFIT_REASONS,
  CARD_STATUS,
  ERRORS,
  PROGRAM_NAMES,
  READ_SOURCES,
  T,
  errorText,
  years,
} from "./i18n.js";
import { formatDate, formatDateTime, formatPoints, warsawToday } from "./format.js";

export function renderWaiting(panel) {
  replace(
    panel,
    h(
      "div",
      { class: "waiting", id: "card-waiting" },
      h("div", { class: "waiting-icon", "aria-hidden": "true" }, "▭"),
      h("p", { class: "waiting-title" }, T.waitingTitle),
      h("p", { class: "muted" }, T.waitingHint),
    ),
  );
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
      p.valid_to ? `${expired ? T.expiredOn : T.validTo} ${formatDate(p.valid_to)}` : "",
    ),
  );
}

// Under NIEAKTYWNA an "active" status would contradict the headline: say what is missing.
function statusLine(card) {
  if (!card.active && card.status === "active") return BENEFIT_REASONS.card_inactive;
  return CARD_STATUS[card.status] || card.status || "";
}

function inactiveText(card) {
  const code = card.reason || (card.status === "active" ? "card_inactive" : "card_blocked");
  return card.message || ERRORS[code] || T.unknownError;
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
      h("div", { class: "card-state-status" }, statusLine(card)),
      active ? null : h("div", { class: "card-state-why", id: "card-error-message" }, inactiveText(card)),
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

// A refused read or lookup: blocked/inactive cards still get the big NIEAKTYWNA.
export function renderCardError(panel, error) {
  const inactive = ["card_blocked", "card_inactive"].includes(error.reason);
  const message = errorText(error.reason, error.message);
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
          h(
            "div",
            { class: "card-state-status" },
            error.reason === "card_blocked" ? CARD_STATUS.blocked : ERRORS.card_inactive,
          ),
        )
      : h(
          "div",
          { class: "card-refusal", id: "card-refusal", role: "alert", dataset: { reason: error.reason } },
          h("div", { class: "card-refusal-title" }, T.errorTitle),
          h("p", {}, message),
        ),
    inactive ? h("p", { class: "error", role: "alert", id: "card-error-message" }, message) : null,
    error.number ? h("p", { class: "muted" }, `${T.cardNo} ${error.number}`) : null,
  );
}
