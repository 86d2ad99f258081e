// The login screen: tap your name, then your PIN (docs/architecture.md §5.10). The daemon
// throttles each cashier on their own, so the name comes first. By keyboard: the digit
// of a name (or Tab and Enter) picks it, digits type the PIN, Enter logs in, Esc goes back.

import { api } from "./api.js";
import { $, h, replace } from "./dom.js";
import { LOGIN, T, errorText } from "./i18n.js";

const PIN_KEYS = ["1", "2", "3", "4", "5", "6", "7", "8", "9", "C", "0", "⌫"];

// A PIN keypad writing into `input` (shared with the manager's approval, approval.js).
export function pinPad(input, { id } = {}) {
  return h(
    "div",
    { class: "keypad", id, role: "group", "aria-label": LOGIN.pinPad },
    PIN_KEYS.map((k) =>
      h(
        "button",
        {
          type: "button",
          class: "btn key",
          "aria-label": k === "C" ? T.pinClear : k === "⌫" ? T.pinBackspace : k,
          tabindex: "-1",
          dataset: { key: k },
          onmousedown: (ev) => ev.preventDefault(), // a tap leaves the focus in the field
          onclick: () => {
            if (k === "C") input.value = "";
            else if (k === "⌫") input.value = input.value.slice(0, -1);
            else if (input.value.length < 12) input.value += k;
            input.focus();
          },
        },
        k,
      ),
    ),
  );
}

// Big name buttons, numbered for the keyboard; `onPick(cashier)` on a tap or its digit.
export function cashierButtons(cashiers, { id, onPick, selected = null }) {
  return h(
    "div",
    { class: "cashier-list", id, role: "group", "aria-label": LOGIN.chooseCashier },
    cashiers.map((c, i) =>
      h(
        "button",
        {
          type: "button",
          class: `btn cashier-choice${selected === c.id ? " selected" : ""}`,
          // The digit for the keyboard is drawn by CSS: the button is named by the name.
          dataset: { cashier: c.id, role: c.role, n: i < 9 ? String(i + 1) : "" },
          "aria-label": c.name,
          "aria-pressed": selected === null ? null : String(selected === c.id),
          "aria-keyshortcuts": i < 9 ? String(i + 1) : null,
          onclick: () => onPick(c),
        },
        h("span", { class: "cashier-name" }, c.name),
        c.role === "manager" ? h("span", { class: "cashier-role" }, LOGIN.manager) : null,
      ),
    ),
  );
}

export class LoginScreen {
  constructor(root, { onLoggedIn }) {
    this.root = root;
    this.onLoggedIn = onLoggedIn;
    this.cashiers = [];
    this.chosen = null;
    this.form = $("#login-form", root);
    this.pin = $("#pin", root);
    this.error = $("#login-error", root);
    $("#login-title", root).textContent = T.loginTitle;
    $("#pin-label", root).textContent = T.pinLabel;
    $("#login-submit", root).textContent = `${T.loginButton} (Enter)`;
    this.pin.setAttribute("aria-describedby", "login-error");
    $("#keypad", root).replaceWith(pinPad(this.pin, { id: "keypad" }));
    this.list = h("div", { id: "cashier-step", class: "login-step" });
    this.who = h("p", { id: "login-cashier", class: "login-cashier" });
    this.back = h(
      "button",
      { type: "button", class: "btn btn-wide", id: "login-back", onclick: () => this.chooseAgain() },
      `${LOGIN.changeCashier} (Esc)`,
    );
    $("#login-title", root).after(this.list, this.who);
    this.form.append(this.back);
    this.pinStep = [$("#pin-label", root), this.pin, $("#keypad", root), $("#login-submit", root), this.back, this.who];
    this.form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      this.submit();
    });
    document.addEventListener("keydown", (ev) => this.onKey(ev));
  }

  async show() {
    this.root.hidden = false;
    this.chosen = null;
    this.pin.value = "";
    this.error.textContent = "";
    this.renderStep();
    try {
      const { data } = await api.cashiers();
      this.cashiers = (data && data.cashiers) || [];
    } catch (err) {
      this.cashiers = [];
      this.error.textContent = errorText(err.code, err.serverMessage);
    }
    if (this.chosen === null) this.renderStep();
  }

  renderStep() {
    const choosing = this.chosen === null;
    $("#login-title", this.root).textContent = choosing ? LOGIN.chooseCashier : T.loginTitle;
    for (const el of this.pinStep) el.hidden = choosing;
    this.list.hidden = !choosing;
    if (choosing) {
      replace(
        this.list,
        this.cashiers.length
          ? cashierButtons(this.cashiers, { id: "cashier-list", onPick: (c) => this.pick(c) })
          : h("p", { class: "hint", id: "no-cashiers" }, LOGIN.noCashiers),
      );
      const first = $(".cashier-choice", this.list);
      if (first) first.focus();
    } else {
      this.who.textContent = this.chosen.name;
      this.pin.focus();
    }
  }

  pick(cashier) {
    this.chosen = cashier;
    this.pin.value = "";
    this.error.textContent = "";
    this.renderStep();
  }

  chooseAgain() {
    this.chosen = null;
    this.pin.value = "";
    this.error.textContent = "";
    this.renderStep();
  }

  onKey(ev) {
    if (this.root.hidden) return;
    if (this.chosen === null) {
      const n = Number.parseInt(ev.key, 10);
      if (n >= 1 && n <= Math.min(9, this.cashiers.length)) {
        ev.preventDefault();
        this.pick(this.cashiers[n - 1]);
      }
    } else if (ev.key === "Escape") {
      ev.preventDefault();
      this.chooseAgain();
    } else if (/^[0-9]$/.test(ev.key) && document.activeElement !== this.pin) {
      ev.preventDefault(); // typed with the focus elsewhere on the screen: still the PIN
      if (this.pin.value.length < 12) this.pin.value += ev.key;
      this.pin.focus();
    } else if (ev.key === "Enter" && !["INPUT", "BUTTON"].includes(document.activeElement?.tagName)) {
      ev.preventDefault(); // Enter from nowhere in particular logs in, as from the PIN field
      this.submit();
    }
  }

  async submit() {
    if (this.chosen === null) return;
    const value = this.pin.value.trim();
    if (!value) {
      this.error.textContent = T.pinEmpty;
      return;
    }
    try {
      const { data } = await api.login(this.chosen.id, value);
      this.pin.value = "";
      this.error.textContent = "";
      await this.onLoggedIn(data.cashier);
    } catch (err) {
      this.pin.value = "";
      this.error.textContent = errorText(err.code, err.serverMessage);
      if (err.code === "unknown_cashier") return this.show(); // gone from the rules
      this.pin.focus();
    }
  }
}
