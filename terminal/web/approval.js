// A manager's approval on the cashier's screen (docs/architecture.md §5.10): when the
// daemon answers `manager_required` to a points override or a day close, a manager picks
// their name and types their PIN here, and the same request goes again with `approval`.
// The daemon checks that PIN through the same per-cashier throttle as a login.

import { api } from "./api.js";
import { ask } from "./dialog.js";
import { $, h } from "./dom.js";
import { APPROVAL, errorText } from "./i18n.js";
import { cashierButtons, pinPad } from "./login.js";

// What a refused approval may be asked again for; any other refusal ends the approval.
const ASK_AGAIN = new Set(["approval_refused", "pin_locked", "manager_pin_too_short", "bad_pin"]);

// The approval dialog; resolves with {cashier, pin} or null when cancelled.
export async function askApproval(dialog, { what, error = "" }) {
  let managers = [];
  try {
    const { data } = await api.cashiers();
    managers = ((data && data.cashiers) || []).filter((c) => c.role === "manager");
  } catch {
    managers = [];
  }
  let chosen = managers.length === 1 ? managers[0] : null;
  const pin = h("input", {
    id: "approval-pin",
    name: "pin",
    type: "password",
    inputmode: "numeric",
    pattern: "[0-9]*",
    maxlength: "12",
    autocomplete: "off",
    "aria-label": APPROVAL.pinLabel,
  });
  const list = h("div", { id: "approval-managers" });
  const renderList = () => {
    list.replaceChildren(
      cashierButtons(managers, {
        id: "approval-manager-list",
        selected: chosen ? chosen.id : "",
        onPick: (m) => {
          chosen = m;
          renderList();
          pin.focus();
        },
      }),
    );
  };
  renderList();
  const onKey = (ev) => {
    // The digit of a name picks it while the PIN field is empty and not focused.
    if (document.activeElement === pin) return;
    const n = Number.parseInt(ev.key, 10);
    if (n >= 1 && n <= Math.min(9, managers.length)) {
      ev.preventDefault();
      chosen = managers[n - 1];
      renderList();
      pin.focus();
    }
  };
  dialog.addEventListener("keydown", onKey);
  const body = managers.length
    ? [
        h("p", { id: "approval-text" }, APPROVAL.text[what] || APPROVAL.text.other),
        h("p", { class: "label" }, APPROVAL.chooseManager),
        list,
        h("label", { for: "approval-pin" }, APPROVAL.pinLabel),
        pin,
        pinPad(pin, { id: "approval-keypad" }),
      ]
    : [h("p", { id: "approval-none", class: "error" }, APPROVAL.noManager)];
  const opened = ask(dialog, {
    title: APPROVAL.title,
    confirmLabel: APPROVAL.confirm,
    wide: true,
    body,
    read: () => {
      if (!managers.length) return { error: APPROVAL.noManager };
      if (!chosen) return { error: APPROVAL.chooseManager };
      const value = pin.value.trim();
      if (!value) return { error: APPROVAL.pinEmpty };
      return { cashier: chosen.id, pin: value };
    },
  });
  if (error) $("#dialog-error", dialog).textContent = error;
  if (chosen) pin.focus();
  else $(".cashier-choice", dialog)?.focus();
  try {
    return await opened;
  } finally {
    dialog.removeEventListener("keydown", onKey);
  }
}

// `call(approval)` until it is not refused for want of a manager, asking a manager each
// time; a cancelled dialog rethrows the daemon's refusal (the caller shows it).
export async function withApproval(dialog, call) {
  try {
    return await call(undefined);
  } catch (first) {
    if (!first || first.code !== "manager_required") throw first;
    const what = (first.details && first.details.for) || "other";
    let error = "";
    for (;;) {
      const approval = await askApproval(dialog, { what, error });
      if (!approval) throw first;
      try {
        return await call(approval);
      } catch (err) {
        if (!err || !ASK_AGAIN.has(err.code)) throw err;
        error = errorText(err.code, err.serverMessage);
      }
    }
  }
}

// Sales and the day close ask for a manager's approval when the daemon says so.
export function installApproval(client, dialog) {
  const sale = client.sale;
  const dayClose = client.dayClose;
  client.sale = (body) => withApproval(dialog, (approval) => sale(approval ? { ...body, approval } : body));
  client.dayClose = (body) =>
    withApproval(dialog, (approval) => dayClose(approval ? { ...(body || {}), approval } : body));
}
