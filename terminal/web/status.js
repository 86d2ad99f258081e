// The status bar (readers, printer, sync) and the offline banner, from /api/v1/health.

import { h, replace } from "./dom.js";
import { duration, PRINTER_STATES, READER_STATES, T } from "./i18n.js";
import { formatDateTime, formatTime, warsawToday } from "./format.js";

// Today's instants as "03:28", older ones with the date.
function formatWhen(iso) {
  const d = new Date(iso);
  return warsawToday(d) === warsawToday() ? formatTime(d) : formatDateTime(iso);
}


const GOOD_READER = new Set(["ok", "ready", "connected"]);
const GOOD_PRINTER = new Set(["ok", "ready", "online", "none"]);

function pill(kind, good, ...content) {
  return h("span", { class: `pill ${good ? "pill-ok" : "pill-bad"}`, dataset: { kind } }, content);
}

export function renderStatus(bar, health, cashier, handlers, info) {
  const readers = (health && health.readers) || [];
  const printerState = (health && health.printer && health.printer.state) || "unknown";
  const sync = (health && health.sync) || {};
  const readerPills = readers.length
    ? readers.map((r) =>
        pill(
          "reader",
          GOOD_READER.has(r.state),
          h("span", { class: "pill-name" }, r.name),
          " ",
          READER_STATES[r.state] || r.state,
        ),
      )
    : [h("span", { class: "muted" }, T.noReaders)];
  const syncParts = [
    T.pending(sync.pending_entries ?? 0),
    `${T.lastUpload}: ${sync.last_upload_at ? formatWhen(sync.last_upload_at) : T.never}`,
  ];
  if (typeof sync.cards_age_s === "number") {
    syncParts.push(`${T.cardsAge} ${duration(sync.cards_age_s)}`);
  }
  replace(
    bar,
    h(
      "div",
      { class: "status-group", id: "status-readers" },
      h("span", { class: "status-label" }, T.readers),
      readerPills,
    ),
    h(
      "div",
      { class: "status-group", id: "status-printer" },
      h("span", { class: "status-label" }, T.printer),
      pill("printer", GOOD_PRINTER.has(printerState), PRINTER_STATES[printerState] || printerState),
    ),
    h(
      "div",
      { class: "status-group", id: "status-sync" },
      h("span", { class: "status-label" }, T.sync),
      h("span", { class: "status-sync-text" }, syncParts.join(" · ")),
      h(
        "button",
        { type: "button", class: "btn btn-small", id: "sync-now", onclick: handlers.onSync },
        T.syncNow,
      ),
    ),
    h(
      "div",
      { class: "status-group status-cashier" },
      info && info.terminal
        ? h(
            "span",
            {
              class: "status-terminal",
              id: "status-terminal",
              title: [info.partner && info.partner.name, info.terminal.id].filter(Boolean).join(" · "),
            },
            info.terminal.id,
          )
        : null,
      h("span", { class: "status-label" }, T.cashier),
      h("span", { id: "cashier-name" }, cashier ? cashier.name : ""),
      h(
        "button",
        { type: "button", class: "btn btn-small", id: "logout", onclick: handlers.onLogout },
        T.logout,
      ),
    ),
  );
}

export function isOffline(health) {
  if (!health) return false;
  // The daemon decides (offline.stale_after_s): the page keeps no copy of the limit.
  return Boolean(health.sync && health.sync.offline);
}

export function renderOfflineBanner(el, health) {
  if (!health) {
    el.hidden = true;
    return;
  }
  const parts = [];
  if (isOffline(health)) {
    parts.push(T.offlineBanner);
    const age = health.sync && health.sync.cards_age_s;
    if (typeof age === "number") parts.push(T.offlineCards(duration(age)));
    parts.push(T.offlineRules);
  }
  const printer = health.printer && health.printer.state;
  if (printer && !GOOD_PRINTER.has(printer) && printer !== "unknown") {
    parts.push(T.printerProblem(PRINTER_STATES[printer] || printer));
  }
  const down = (health.readers || []).filter((r) => !GOOD_READER.has(r.state)).map((r) => r.name);
  if (down.length) parts.push(T.readersProblem(down.join(", ")));
  const held = (health.sync && health.sync.quarantined_count) || 0;
  if (held) parts.push(T.quarantined(held));
  if (!parts.length && health.status === "degraded") parts.push(T.degraded);
  el.hidden = parts.length === 0;
  el.textContent = parts.join(" ");
}
