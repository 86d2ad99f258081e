// The cashier's screen: login, card, sale, result, actions, status. Talks only to the
// local API (api.js) and the event stream (events.js); every text comes from i18n.js.

import { api } from "./api.js";
import { renderCard, renderCardError, renderWaiting } from "./card.js";
import { ask } from "./dialog.js";
import { $, h, replace } from "./dom.js";
import { EventStream } from "./events.js";
import { formatPln, formatPoints } from "./format.js";
import { ERRORS, SHORTCUTS, T, errorText } from "./i18n.js";
import { renderOfflineBanner, renderStatus } from "./status.js";
import { SaleForm, newSaleId } from "./sale.js";
import { renderResult } from "./result.js";
import { LoginScreen } from "./login.js";
import { installApproval } from "./approval.js";
import { hasLongDigitRun, installPanGuard } from "./guard.js";
import { letterKeyboard, reasonChips } from "./keypad.js";
import { VOID_REASONS } from "./i18n.js";

const state = {
  cashier: null,
  health: null,
  card: null, // CARDVIEW
  read: null,
  cardError: null, // {reason, message, number}
  result: null, // {kind, entry, receipt, summary, voidable}
  lastSale: null, // the last sale entry that can still be voided
  lastReceiptSeq: null,
  demoCards: [],
  busy: false,
  info: null, // the daemon's hello: terminal, partner, today
};

const els = {};
let saleForm = null;
let loginScreen = null;
let stream = null;
let healthTimer = null;

// ---- helpers -----------------------------------------------------------------------

let toastTimer = null;
function toast(text, kind = "info") {
  els.toast.textContent = text;
  els.toast.className = `toast toast-${kind}`;
  els.toast.hidden = false;
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => {
    els.toast.hidden = true;
  }, 5000);
}

function showError(err) {
  if (err && err.status === 401) {
    showLogin();
    return;
  }
  toast(errorText(err && err.code, err && err.serverMessage), "error");
}

function remember() {
  const keep = { card: state.card, read: state.read, lastSale: state.lastSale, lastReceiptSeq: state.lastReceiptSeq };
  try {
    sessionStorage.setItem("kartapos", JSON.stringify(keep));
  } catch {
    // private mode: the page still works, it just forgets on reload
  }
}

function recall() {
  try {
    const kept = JSON.parse(sessionStorage.getItem("kartapos") || "null");
    if (kept) Object.assign(state, kept);
  } catch {
    sessionStorage.removeItem("kartapos");
  }
}

// ---- login -------------------------------------------------------------------------

// The name first, then the PIN (login.js); the daemon throttles each cashier alone.
function buildLogin() {
  loginScreen = new LoginScreen(els.login, {
    onLoggedIn: async (cashier) => {
      state.cashier = cashier;
      await showPos();
    },
  });
}

function showLogin() {
  closeDialog();
  state.cashier = null;
  if (stream) stream.stop();
  stream = null;
  clearInterval(healthTimer);
  els.pos.hidden = true;
  els.connBanner.hidden = true;
  loginScreen.show();
}

async function logout() {
  try {
    await api.logout();
  } catch {
    // logged out locally either way
  }
  sessionStorage.removeItem("kartapos");
  state.card = null;
  state.result = null;
  showLogin();
}

// ---- the POS screen ----------------------------------------------------------------

function buildPos() {
  const form = els.cardForm;
  replace(
    form,
    h("label", { for: "card-input" }, T.cardNumberLabel),
    h(
      "div",
      { class: "row" },
      h("input", {
        id: "card-input",
        name: "card",
        type: "text",
        inputmode: "numeric",
        autocomplete: "off",
        spellcheck: "false",
        placeholder: T.cardNumberPlaceholder,
      }),
      h("button", { type: "submit", class: "btn", id: "card-submit" }, T.cardNumberSubmit),
    ),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    resolveCard($("#card-input").value);
  });
  replace(
    els.actions,
    actionButton("action-amount", "F2", T.amount, () => focusAmount()),
    actionButton("action-void", "F4", T.voidLast, () => voidLast()),
    actionButton("action-reprint", "F8", T.reprint, () => reprint()),
    actionButton("action-close-day", "F10", T.dayClose, () => closeDay()),
    actionButton("action-cancel", "Esc", T.cancel, () => cancel()),
  );
}

function actionButton(id, key, label, onclick) {
  return h(
    "button",
    { type: "button", class: "btn action", id, onclick, "aria-keyshortcuts": key },
    h("kbd", {}, key),
    " ",
    label,
  );
}

async function showPos() {
  els.login.hidden = true;
  els.pos.hidden = false;
  recall();
  renderAll();
  if (!stream) {
    stream = new EventStream({
      onMessage,
      onOpen: onStreamOpen,
      onClose: onStreamClose,
      onRetry: checkSession,
    });
    stream.start();
  }
  clearInterval(healthTimer);
  // The WebSocket pushes changes; this slow poll only refreshes ages ("5 min temu").
  healthTimer = setInterval(() => refreshHealth(), 30000);
  await refreshHealth(); // the ledger head tells loadLastSale where to look
  await Promise.all([loadDemo(), loadLastSale()]);
  focusDefault();
  refreshCard(); // a card kept over a reload: show its balance as it is now
}

function renderAll() {
  renderStatus(els.statusbar, state.health, state.cashier, { onSync: syncNow, onLogout: logout }, state.info);
  renderOfflineBanner(els.offline, state.health);
  renderCardPanel();
  renderWork();
  renderActions();
}

function renderCardPanel() {
  if (state.cardError) renderCardError(els.cardPanel, state.cardError);
  else if (state.card) renderCard(els.cardPanel, state.card, state.read);
  else renderWaiting(els.cardPanel);
}

function renderActions() {
  $("#action-void").disabled = !state.lastSale || state.busy;
  $("#action-reprint").disabled = !state.lastReceiptSeq || state.busy;
  $("#action-close-day").disabled = state.busy;
  $("#action-amount").disabled = !(state.card && state.card.active) || Boolean(state.result);
}

function renderWork() {
  const col = els.work;
  if (state.result) {
    saleForm = null;
    renderResult(col, state.result, { onNew: newTransaction, onReprint: reprint, onVoid: voidLast });
    return;
  }
  if (state.card) {
    saleForm = new SaleForm(col, {
      card: state.card,
      dialog: els.dialog,
      onCommitted: onSaleCommitted,
      onError: showError,
      onBusy: (busy) => {
        state.busy = busy;
        renderActions();
      },
      onCancel: () => {
        state.busy = false;
        newTransaction();
      },
    });
    return;
  }
  saleForm = null;
  replace(
    col,
    h(
      "div",
      { class: "idle", id: "idle" },
      h("h2", {}, T.shortcuts),
      h(
        "ul",
        { class: "shortcut-list" },
        SHORTCUTS.map(([key, label]) => h("li", {}, h("kbd", {}, key), " ", label)),
      ),
    ),
  );
}

function focusDefault() {
  if (!els.dialog.open) {
    if (state.result) $("#result-new")?.focus();
    else if (state.card && state.card.active) focusAmount();
    else $("#card-input").focus();
  }
}

function focusAmount() {
  if (saleForm) saleForm.focusAmount();
  else $("#card-input").focus();
}

// ---- cards ---------------------------------------------------------------------------

// A question about the previous customer must not be answered for the next one.
function closeDialog() {
  if (els.dialog.open) els.dialog.close();
}

function showCard(card, read) {
  if (state.busy) return; // a sale is being saved: never swap the card under it
  closeDialog();
  state.card = card;
  state.read = read || null;
  state.cardError = null;
  state.result = null;
  remember();
  renderCardPanel();
  renderWork();
  renderActions();
  focusDefault();
}

function showCardError(error) {
  if (state.busy) return;
  closeDialog();
  state.card = null;
  state.read = null;
  state.cardError = error;
  state.result = null;
  remember();
  renderCardPanel();
  renderWork();
  renderActions();
}

async function resolveCard(input) {
  const text = (input || "").trim();
  if (!text) {
    if ($("#card-input").dataset.refused) return toast(T.panRefused, "error");
    // Enter in the empty field does what Enter does elsewhere: finish or start over.
    return enterAnywhere();
  }
  if (hasLongDigitRun(text)) {
    // Never sent, never shown: a number this long can only be a bank card's.
    $("#card-input").value = "";
    showCardError({ reason: "payment_card", message: "", number: null });
    return;
  }
  try {
    const { data } = await api.resolve(text);
    $("#card-input").value = "";
    showCard(data, { source: "manual" });
  } catch (err) {
    if (err.status === 401) return showLogin();
    if (err.isNetwork) return showError(err);
    showCardError({ reason: err.code, message: err.serverMessage, number: text });
  }
}

// Re-read the card shown (after a reconnect or a sale) so the balance is current.
async function refreshCard() {
  if (!state.card || state.busy) return;
  try {
    const { data } = await api.resolve(state.card.number);
    if (state.card && data.number === state.card.number && !state.busy) {
      state.card = data;
      remember();
      renderCardPanel();
      if (!state.result && saleForm) saleForm.updateCard(data);
    }
  } catch {
    // keep what is shown; the next swipe refreshes it
  }
}

// ---- sale / void / reprint / day close ----------------------------------------------

function onSaleCommitted(entry, receipt) {
  state.lastSale = entry;
  state.lastReceiptSeq = entry.seq;
  if (state.card && typeof entry.balance_after === "number") {
    state.card = { ...state.card, balance: { ...state.card.balance, points: entry.balance_after, stale: false } };
  }
  state.result = { kind: "sale", entry, receipt };
  remember();
  renderCardPanel();
  renderWork();
  renderActions();
  focusDefault();
}

function newTransaction() {
  state.result = null;
  state.card = null;
  state.read = null;
  state.cardError = null;
  remember();
  renderCardPanel();
  renderWork();
  renderActions();
  $("#card-input").focus();
}

function cancel() {
  if (saleForm && saleForm.saving) return;
  state.busy = false; // an unknown-outcome sale is given up: its event, if any, still arrives
  if (state.result || state.card || state.cardError) newTransaction();
  else $("#card-input").value = "";
}

async function voidLast() {
  if (state.busy) return;
  const sale = state.lastSale;
  if (!sale) {
    toast(T.voidNothing, "error");
    return;
  }
  const values = await ask(els.dialog, {
    title: T.voidTitle,
    danger: true,
    confirmLabel: T.voidButton,
    body: voidBody(sale),
    read: (form) => {
      const reason = form.querySelector("#void-reason").value.trim();
      return reason ? { reason } : { error: T.voidReasonRequired };
    },
  });
  if (!values) return focusDefault();
  setBusy(true);
  try {
    const { data } = await api.voidSale(sale.sale_id || sale.id, values.reason);
    const entry = data.entry || data;
    state.lastSale = null;
    state.lastReceiptSeq = entry.seq;
    state.result = { kind: "void", entry, receipt: data.receipt || null };
    remember();
    toast(T.voidDone, "ok");
  } catch (err) {
    showError(err);
  } finally {
    setBusy(false);
  }
  renderAll();
  focusDefault();
  refreshCard();
}

// The reason by touch: a pick-list of the usual ones and on-screen letters.
function voidBody(sale) {
  const reason = h("input", { id: "void-reason", name: "reason", type: "text", maxlength: "200", autocomplete: "off" });
  return [
    h("p", {}, T.voidText(sale.seq, formatPln(sale.amount_gr))),
    h("label", { for: "void-reason" }, T.voidReason),
    reason,
    reasonChips(reason, VOID_REASONS, { id: "void-reason-chips" }),
    letterKeyboard(reason, { id: "void-reason-keys" }),
  ];
}

async function reprint() {
  if (state.busy) return;
  if (!state.lastReceiptSeq) {
    toast(T.reprintNothing, "error");
    return;
  }
  try {
    const { data } = await api.reprint(state.lastReceiptSeq);
    await showCopy(data && data.text);
  } catch (err) {
    showError(err);
  }
}

// F8 shows the copy as it was printed (KOPIA), not just a toast.
async function showCopy(text) {
  toast(T.reprintDone, "ok");
  if (!text) return;
  await ask(els.dialog, {
    title: T.reprintTitle,
    confirmLabel: T.close,
    canCancel: false,
    body: [h("pre", { class: "receipt-text receipt-copy", id: "copy-text", tabindex: "0" }, text)],
  });
  focusDefault();
}

async function closeDay() {
  if (state.busy) return;
  const values = await ask(els.dialog, {
    title: T.dayCloseTitle,
    confirmLabel: T.dayCloseButton,
    body: [h("p", {}, T.dayCloseText)],
  });
  if (!values) return focusDefault();
  setBusy(true);
  try {
    const { data } = await api.dayClose();
    const entry = data.entry || data;
    state.lastSale = null;
    state.lastReceiptSeq = entry.seq;
    state.card = null;
    state.cardError = null;
    state.result = { kind: "day_close", entry, receipt: data.receipt || null, summary: data.summary || entry.summary };
    remember();
    toast(T.dayCloseDone, "ok");
  } catch (err) {
    setBusy(false);
    if (err.code === "nothing_to_close" && err.details.last_close_seq) {
      return offerLastZCopy(err);
    }
    showError(err);
  } finally {
    setBusy(false);
  }
  renderAll();
  focusDefault();
}

// F10 again with nothing new: no second Z report; offer the copy (KOPIA) of the last one.
async function offerLastZCopy(err) {
  const seq = err.details.last_close_seq;
  const values = await ask(els.dialog, {
    title: T.dayClosedTitle,
    confirmLabel: T.dayClosedCopy,
    body: [h("p", {}, errorText(err.code, err.serverMessage))],
  });
  if (values) {
    try {
      const { data } = await api.reprint(seq);
      state.lastReceiptSeq = seq;
      await showCopy(data && data.text);
    } catch (e) {
      showError(e);
    }
  }
  renderAll();
  focusDefault();
}

function setBusy(busy) {
  state.busy = busy;
  renderActions();
}

// Find the last sale that can still be voided (not voided, not closed) after a reload.
async function loadLastSale() {
  const head = state.health && state.health.ledger ? state.health.ledger.head_seq : 0;
  if (!head) return;
  try {
    const after = Math.max(0, head - 100);
    const { data } = await api.ledger(after, 100);
    const entries = (data && data.entries) || [];
    let last = null;
    const voided = new Set();
    for (const e of entries) {
      if (e.kind === "sale") last = e;
      else if (e.kind === "void" && e.ref !== null) voided.add(e.ref);
      else if (e.kind === "day_close") last = null;
    }
    state.lastSale = last && !voided.has(last.seq) ? last : null;
    if (entries.length) state.lastReceiptSeq = entries[entries.length - 1].seq;
    remember();
    renderActions();
  } catch {
    // the buttons stay as they were
  }
}

// ---- status, sync, demo ----------------------------------------------------------------

async function refreshHealth() {
  try {
    const { data } = await api.health();
    applyHealth(data);
  } catch (err) {
    if (err.status === 401) showLogin();
  }
}

function applyHealth(health) {
  state.health = health;
  renderStatus(els.statusbar, state.health, state.cashier, { onSync: syncNow, onLogout: logout }, state.info);
  renderOfflineBanner(els.offline, state.health);
}

// Show a reader's new state at once; the health refresh that follows fills the rest.
function applyDevice(msg) {
  if (!state.health || msg.device !== "reader") return;
  const readers = (state.health.readers || []).map((r) => (r.name === msg.name ? { ...r, state: msg.state } : r));
  applyHealth({ ...state.health, readers });
}

async function syncNow() {
  const btn = $("#sync-now");
  if (btn) btn.disabled = true;
  toast(T.syncStarted);
  try {
    const { data } = await api.sync();
    // The daemon answers 200 with ok=false when the city server could not be reached.
    if (data && data.ok === false) toast(ERRORS.sync_failed, "error");
    else toast(T.syncDone, "ok");
  } catch (err) {
    showError(err);
  }
  await refreshHealth();
}

async function loadDemo() {
  const panel = els.demo;
  try {
    const { data } = await api.demoCards();
    state.demoCards = Array.isArray(data) ? data : [];
  } catch {
    state.demoCards = [];
  }
  panel.hidden = state.demoCards.length === 0;
  replace(
    panel,
    h("h2", {}, `${T.demoTitle}: ${T.demoSwipe}`),
    h(
      "div",
      { class: "demo-buttons" },
      state.demoCards.map((c) =>
        h(
          "button",
          {
            type: "button",
            class: "btn btn-demo",
            dataset: { key: c.key },
            title: c.description || "",
            onclick: async () => {
              try {
                await api.demoSwipe(c.key);
              } catch (err) {
                showError(err);
              }
            },
          },
          c.label,
        ),
      ),
    ),
  );
}

// ---- events ---------------------------------------------------------------------------

function onMessage(msg) {
  switch (msg.type) {
    case "card":
      showCard(msg.card, msg.read);
      break;
    case "card_error":
      showCardError({ reason: msg.reason, message: msg.message, number: msg.number });
      break;
    case "health":
      if (msg.health) applyHealth(msg.health);
      break;
    case "hello":
      state.info = msg.state || null;
      applyHealth(state.health);
      break;
    case "device":
      applyDevice(msg);
      refreshHealth();
      break;
    case "sale":
      onSaleEvent(msg.entry);
      break;
    default:
      break;
  }
}

// Sales from this or another screen keep "void last" and "reprint" pointing at the truth.
function onSaleEvent(entry) {
  if (!entry) return;
  if (entry.kind === "sale") state.lastSale = entry;
  else if (entry.kind === "void" && state.lastSale && entry.ref === state.lastSale.seq) state.lastSale = null;
  else if (entry.kind === "day_close") state.lastSale = null;
  state.lastReceiptSeq = entry.seq;
  remember();
  renderActions();
  refreshHealth();
}

let wasDisconnected = false;
function onStreamOpen() {
  els.connBanner.hidden = true;
  if (wasDisconnected) {
    wasDisconnected = false;
    toast(T.reconnected, "ok");
    // The daemon may have restarted: check the session, then re-read what is shown.
    api
      .session()
      .then(({ data }) => {
        if (!data || !data.cashier) return showLogin();
        refreshHealth();
        loadLastSale();
        loadDemo();
        refreshCard();
      })
      .catch((err) => {
        if (err.status === 401) showLogin();
      });
  }
}

// The stream cannot connect: an expired session sends the cashier to the PIN screen,
// a daemon that is down keeps the banner up while the stream retries.
function checkSession() {
  api.session().catch((err) => {
    if (err.status === 401) showLogin();
  });
}

function onStreamClose() {
  wasDisconnected = true;
  els.connBanner.textContent = T.disconnected;
  els.connBanner.hidden = false;
}

// ---- keyboard ---------------------------------------------------------------------------

function onKey(ev) {
  if (els.pos.hidden || els.dialog.open) return;
  switch (ev.key) {
    case "F2":
      ev.preventDefault();
      focusAmount();
      break;
    case "F4":
      ev.preventDefault();
      voidLast();
      break;
    case "F8":
      ev.preventDefault();
      reprint();
      break;
    case "F10":
      ev.preventDefault();
      closeDay();
      break;
    case "Escape":
      ev.preventDefault();
      cancel();
      break;
    case "Enter": {
      // Buttons, links and fields with their own Enter (the card number, the amount)
      // answer it themselves; from anywhere else Enter does the obvious thing or says why.
      const t = ev.target;
      const own =
        t &&
        (["TEXTAREA", "SELECT", "BUTTON", "A"].includes(t.tagName) ||
          (t.tagName === "INPUT" && !["radio", "checkbox"].includes(t.type)));
      if (!own) {
        ev.preventDefault();
        enterAnywhere();
      }
      break;
    }
    default:
      break;
  }
}

// Enter with the focus on nothing that takes it: finish, confirm, or say what is missing.
function enterAnywhere() {
  if (state.result) return newTransaction();
  if (saleForm && saleForm.saving) return toast(T.enterSaving);
  if (saleForm && state.card && state.card.active) return saleForm.confirm();
  if (state.card && !state.card.active) return toast(T.enterInactive, "error");
  toast(T.enterNoCard, "error");
  $("#card-input").focus();
}

// ---- boot -------------------------------------------------------------------------------

async function boot() {
  document.title = T.appTitle;
  els.login = $("#login");
  els.pos = $("#pos");
  els.statusbar = $("#statusbar");
  els.offline = $("#offline-banner");
  els.cardForm = $("#card-form");
  els.cardPanel = $("#card-panel");
  els.demo = $("#demo-panel");
  els.work = $("#work-column");
  els.actions = $("#actions");
  els.dialog = $("#dialog");
  els.toast = $("#toast");
  els.connBanner = $("#conn-banner");
  buildLogin();
  installApproval(api, els.dialog); // overrides and the day close may need a manager
  buildPos();
  document.addEventListener("keydown", onKey);
  installPanGuard(document, () => toast(T.panRefused, "error"));
  for (let attempt = 0; ; attempt++) {
    try {
      const { data } = await api.session();
      if (data && data.cashier) {
        state.cashier = data.cashier;
        await showPos();
      } else {
        showLogin();
      }
      break;
    } catch (err) {
      if (err.status === 401) {
        showLogin();
        break;
      }
      els.connBanner.textContent = T.disconnected;
      els.connBanner.hidden = false;
      await new Promise((r) => setTimeout(r, Math.min(500 * 2 ** attempt, 5000)));
    }
  }
  els.connBanner.hidden = true;
  document.body.dataset.ready = "true";
}

// Exposed for the browser tests of the pure helpers; not used by the page itself.
export { newSaleId, formatPoints };

boot();
