// Modal confirmations on the native <dialog>: Esc cancels, Enter confirms, focus stays inside.

import { h, replace } from "./dom.js";
import { T } from "./i18n.js";

// Opens the dialog; resolves with what `read(form)` returns, or null when cancelled.
// `read` returns {error} to keep the dialog open with a message.
export function ask(dialog, { title, body, confirmLabel, danger = false, wide = false, canCancel = true, read = () => ({}) }) {
  return new Promise((resolve) => {
    const error = h("p", { class: "error", role: "alert", id: "dialog-error" });
    const form = h(
      "form",
      { method: "dialog", class: "dialog-form", autocomplete: "off" },
      h("h2", { id: "dialog-title" }, title),
      body,
      error,
      h(
        "div",
        { class: "dialog-buttons" },
        canCancel
          ? h("button", { type: "button", class: "btn", id: "dialog-cancel", value: "cancel" }, `${T.back} (Esc)`)
          : null,
        h(
          "button",
          {
            type: "submit",
            class: `btn ${danger ? "btn-danger" : "btn-primary"}`,
            id: "dialog-confirm",
            value: "ok",
          },
          `${confirmLabel} (Enter)`,
        ),
      ),
    );
    let settled = false;
    const finish = (value) => {
      if (settled) return;
      settled = true;
      if (dialog.open) dialog.close();
      replace(dialog);
      resolve(value);
    };
    form.addEventListener("submit", (ev) => {
      ev.preventDefault();
      const result = read(form);
      if (result && result.error) {
        error.textContent = result.error;
        return;
      }
      finish(result || {});
    });
    // Typing, a picked reason or an on-screen key answers the message: it goes away.
    const clearError = () => {
      error.textContent = "";
    };
    form.addEventListener("input", clearError);
    form.addEventListener("click", (ev) => {
      if (ev.target.closest && ev.target.closest('button:not([type="submit"])')) clearError();
    });
    form.querySelector("#dialog-cancel")?.addEventListener("click", () => finish(null));
    dialog.addEventListener("cancel", () => finish(null), { once: true });
    dialog.addEventListener("close", () => finish(null), { once: true });
    replace(dialog, form);
    dialog.classList.toggle("dialog-wide", wide);
    dialog.setAttribute("aria-labelledby", "dialog-title");
    dialog.showModal();
    const first = form.querySelector("input, textarea, select") || form.querySelector("#dialog-confirm");
    first.focus();
  });
}
