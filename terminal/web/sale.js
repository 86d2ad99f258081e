// The sale form: benefits ("Użyj" with a confirmation), amount, points redemption, live
// quote, and the idempotent commit (the same client id on every retry).

import { api } from "./api.js";
import { ask } from "./dialog.js";
import { $, h, lockIcon, replace } from "./dom.js";
import { BENEFIT_REASONS, T, UNITS, errorText } from "./i18n.js";
import { formatPln, formatPoints, parsePln } from "./format.js";

const RETRY_DELAYS_MS = [300, 600, 1200, 2400, 4000, 5000];
const QUOTE_DEBOUNCE_MS = 150;

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// crypto.randomUUID needs a secure context; a screen on a LAN address over http has only
// getRandomValues, so build the v4 UUID from that.
export function newSaleId() {
  if (globalThis.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}

function isTransient(err) {
  return err.isNetwork || [502, 503, 504].includes(err.status);
}

export class SaleForm {
  constructor(col, { card, dialog, onCommitted, onError, onBusy, onCancel }) {
    this.col = col;
    this.card = card;
    this.dialog = dialog;
    this.onCommitted = onCommitted;
    this.onError = onError;
    this.onBusy = onBusy;
    this.onCancel = onCancel;
    this.chosen = new Map(); // benefit id -> {quantity, points (edited total or null), reason}
    this.redeemPoints = 0;
    this.saleId = null; // set at the first attempt, kept until the outcome is known
    this.pending = null; // the body of a sale whose outcome is unknown (network failure)
    this.quoteSeq = 0;
    this.quoteTimer = null;
    this.saving = false;
    this.build();
  }

  // ---- rendering -----------------------------------------------------------------------

  build() {
    this.benefitsEl = h("div", { class: "benefits", id: "benefits" });
    this.amountInput = h("input", {
      id: "amount",
      name: "amount",
      type: "text",
      inputmode: "decimal",
      autocomplete: "off",
      spellcheck: "false",
      placeholder: T.amountPlaceholder,
      "aria-describedby": "amount-error",
      "aria-keyshortcuts": "F2",
    });
    this.amountInput.addEventListener("input", () => this.changed());
    this.amountInput.addEventListener("keydown", (ev) => {
      if (ev.key === "Enter") {
        ev.preventDefault();
        this.confirm();
      }
    });
    this.amountError = h("p", { class: "error", id: "amount-error", role: "alert" });
    this.redeemEl = h("fieldset", { class: "redeem", id: "redeem" });
    this.quoteEl = h("div", { class: "quote", id: "quote", "aria-live": "polite" });
    this.statusEl = h("p", { class: "sale-status", id: "sale-status", role: "status" });
    this.confirmBtn = h(
      "button",
      { type: "button", class: "btn btn-primary btn-big", id: "sale-confirm", onclick: () => this.confirm() },
      `${T.confirm} (Enter)`,
    );
    this.retryBtn = h(
      "button",
      { type: "button", class: "btn btn-primary btn-big", id: "sale-retry", hidden: true, onclick: () => this.confirm() },
      T.retry,
    );
    const active = Boolean(this.card.active);
    replace(
      this.col,
      h("section", { class: "benefits-section" }, h("h2", {}, T.benefits), this.benefitsEl),
      active
        ? h(
            "section",
            { class: "sale-section", id: "sale" },
            h(
              "div",
              { class: "amount-row" },
              h("label", { for: "amount" }, h("kbd", {}, "F2"), " ", T.amount),
              h("div", { class: "amount-field" }, this.amountInput, h("span", { class: "currency" }, "zł")),
            ),
            this.amountError,
            h("div", { class: "sale-grid" }, this.redeemEl, this.quoteEl),
            h(
              "div",
              { class: "sale-buttons" },
              this.statusEl,
              h(
                "button",
                { type: "button", class: "btn btn-big", id: "sale-cancel", onclick: () => this.cancel() },
                `${T.cancel} (Esc)`,
              ),
              this.retryBtn,
              this.confirmBtn,
            ),
          )
        : null,
    );
    this.renderBenefits();
    if (active) {
      this.renderRedeem();
      this.renderQuote(null);
    }
  }

  updateCard(card) {
    this.card = card;
    this.renderBenefits();
    if (card.active) {
      this.renderRedeem();
      this.changed();
    }
  }

  renderBenefits() {
    const benefits = [...(this.card.benefits || [])];
    // Available first; the daemon's order is kept within each group.
    benefits.sort((a, b) => Number(Boolean(b.available)) - Number(Boolean(a.available)));
    if (!benefits.length) {
      replace(this.benefitsEl, h("p", { class: "muted" }, T.noBenefits));
      return;
    }
    replace(
      this.benefitsEl,
      h(
        "ul",
        { class: "benefit-list" },
        benefits.map((b) => this.benefitRow(b)),
      ),
    );
  }

  benefitRow(b) {
    const available = Boolean(b.available) && Boolean(this.card.active);
    const chosen = this.chosen.get(b.id);
    const unit = UNITS[b.unit] || UNITS.pieces;
    const points = h(
      "span",
      { class: "benefit-points" },
      b.points ? `+${formatPoints(b.points)}` : "",
      b.points_locked ? lockIcon(T.pointsLocked) : null,
    );
    let action;
    if (chosen) {
      action = h(
        "span",
        { class: "benefit-chosen" },
        h("span", { class: "badge badge-ok" }, `${T.selected}: ${chosen.quantity} ${unit}`),
        h(
          "button",
          {
            type: "button",
            class: "btn btn-small",
            dataset: { benefit: b.id },
            "aria-label": `${T.remove}: ${b.name}`,
            onclick: () => this.removeBenefit(b.id),
          },
          T.remove,
        ),
      );
    } else {
      action = h(
        "button",
        {
          type: "button",
          class: "btn btn-use",
          disabled: !available || this.saving || this.pending !== null,
          dataset: { benefit: b.id },
          "aria-label": `${T.use}: ${b.name}`,
          onclick: () => this.useBenefit(b),
        },
        T.use,
      );
    }
    const reason = b.reason ? BENEFIT_REASONS[b.reason] || b.reason : T.unavailable;
    return h(
      "li",
      {
        class: `benefit ${available ? "benefit-available" : "benefit-unavailable"}`,
        dataset: { benefit: b.id, available: String(available) },
        "aria-disabled": available ? null : "true",
      },
      h(
        "div",
        { class: "benefit-main" },
        h("span", { class: "benefit-name" }, b.name),
        b.label ? h("span", { class: "benefit-label" }, b.label) : null,
        points,
      ),
      available ? null : h("div", { class: "benefit-reason" }, reason),
      h("div", { class: "benefit-action" }, action),
    );
  }

  renderRedeem() {
    const balance = (this.card.balance && this.card.balance.points) || 0;
    const options = this.card.redeem_options || [];
    if (!options.length) {
      this.redeemEl.hidden = true;
      return;
    }
    this.redeemEl.hidden = false;
    if (this.redeemPoints && !options.some((o) => o.points === this.redeemPoints && o.points <= balance)) {
      this.redeemPoints = 0;
    }
    const radio = (value, label, disabled, note) =>
      h(
        "label",
        { class: `redeem-option${disabled ? " disabled" : ""}`, title: note },
        h("input", {
          type: "radio",
          name: "redeem",
          value: String(value),
          checked: this.redeemPoints === value,
          disabled: disabled || this.pending !== null,
          onchange: () => {
            this.redeemPoints = value;
            this.changed();
          },
        }),
        label,
      );
    replace(
      this.redeemEl,
      h("legend", {}, T.redeem),
      h(
        "div",
        { class: "redeem-options" },
        radio(0, T.redeemNone, false, null),
        options.map((o) =>
        radio(
          o.points,
          [
            h("span", { class: "redeem-points" }, formatPoints(o.points)),
            h("span", { class: "redeem-discount" }, `−${formatPln(o.discount_gr)}`),
          ],
          o.points > balance,
          o.points > balance ? T.redeemTooFew : null,
        ),
        ),
      ),
    );
  }

  renderQuote(q, error) {
    if (error) {
      replace(this.quoteEl, h("p", { class: "error", id: "quote-error" }, error));
      return;
    }
    if (!q) {
      replace(this.quoteEl);
      return;
    }
    const rows = [
      [T.quoteEarn, `+${formatPoints(q.points_earned || 0)}`, "quote-earn"],
      q.points_redeemed ? [T.quoteRedeem, `−${formatPoints(q.points_redeemed)}`, "quote-redeem"] : null,
      q.discount_gr ? [T.quoteDiscount, `−${formatPln(q.discount_gr)}`, "quote-discount"] : null,
      [T.quoteToPay, formatPln(Math.max(0, (q.amount_gr || 0) - (q.discount_gr || 0))), "quote-topay"],
      typeof q.balance_after === "number" ? [T.quoteBalance, formatPoints(q.balance_after), "quote-balance"] : null,
    ].filter(Boolean);
    const why = Array.isArray(q.explanation) ? q.explanation : [];
    replace(
      this.quoteEl,
      h("h3", {}, T.quote),
      h(
        "dl",
        { class: "quote-rows" },
        rows.map(([k, v, id]) => [h("dt", {}, k), h("dd", { id }, v)]),
      ),
      why.length ? h("ul", { class: "quote-why", id: "quote-why" }, why.map((t) => h("li", {}, t))) : null,
    );
  }

  // ---- benefits --------------------------------------------------------------------------

  async useBenefit(b) {
    const unit = UNITS[b.unit] || UNITS.pieces;
    const qty = h("input", {
      id: "use-quantity",
      type: "number",
      min: "1",
      max: "99",
      step: "1",
      value: "1",
      inputmode: "numeric",
    });
    const pointsInput = b.points_locked
      ? null
      : h("input", { id: "use-points", type: "number", min: "0", step: "1", value: String(b.points || 0), inputmode: "numeric" });
    const reasonInput = b.points_locked ? null : h("input", { id: "use-reason", type: "text", maxlength: "200" });
    // Points follow the quantity until the cashier edits them.
    let pointsEdited = false;
    if (pointsInput) {
      pointsInput.addEventListener("input", () => {
        pointsEdited = true;
      });
      qty.addEventListener("input", () => {
        const n = Number.parseInt(qty.value, 10);
        if (!pointsEdited && n > 0) pointsInput.value = String((b.points || 0) * n);
      });
    }
    const values = await ask(this.dialog, {
      title: T.confirmUseTitle,
      confirmLabel: T.confirmUseButton,
      body: [
        h(
          "p",
          { class: "confirm-use-text" },
          `${T.confirmUseText} „${b.name}”${b.label ? ` (${b.label})` : ""} ${T.confirmUseFor} ${this.card.number}?`,
        ),
        h("label", { for: "use-quantity" }, `${T.quantity} (${unit})`),
        qty,
        b.points_locked
          ? h(
              "p",
              { class: "locked-points", id: "use-points-locked" },
              `${T.pointsForBenefit}: +${formatPoints(b.points || 0)} `,
              lockIcon(T.pointsLocked),
              ` ${T.pointsLocked}`,
            )
          : [
              h("label", { for: "use-points" }, T.pointsForBenefit),
              pointsInput,
              h("label", { for: "use-reason" }, T.overrideReason),
              reasonInput,
            ],
      ],
      read: () => {
        const quantity = Number(qty.value);
        if (!Number.isInteger(quantity) || quantity < 1 || quantity > 99) return { error: T.quantityInvalid };
        if (!pointsInput) return { quantity, points: null, reason: null };
        const points = Number(pointsInput.value);
        if (!Number.isInteger(points) || points < 0) return { error: T.pointsInvalid };
        const standard = (b.points || 0) * quantity;
        if (points === standard) return { quantity, points: null, reason: null };
        const reason = reasonInput.value.trim();
        if (!reason) return { error: T.overrideReasonRequired };
        return { quantity, points, reason };
      },
    });
    if (values) {
      this.chosen.set(b.id, values);
      this.renderBenefits();
      this.changed();
    }
    this.focusAmount();
  }

  removeBenefit(id) {
    this.chosen.delete(id);
    this.renderBenefits();
    this.changed();
    this.focusAmount();
  }

  // ---- the request ------------------------------------------------------------------------

  // The SALE body (docs/architecture.md §5.3), or {error}.
  body() {
    const text = this.amountInput.value.trim();
    let amount = 0;
    if (text) {
      amount = parsePln(text);
      if (amount === null || amount < 0) return { error: T.amountInvalid };
    }
    if (!amount && !this.chosen.size) return { error: T.nothingToSell, empty: true };
    const benefitIds = [...this.chosen.keys()];
    const quantities = {};
    let override = null;
    const reasons = [];
    const byId = new Map((this.card.benefits || []).map((b) => [b.id, b]));
    for (const [id, c] of this.chosen) {
      quantities[id] = c.quantity;
      if (c.points !== null) reasons.push(c.reason);
    }
    if (reasons.length) {
      // points_override is the points the chosen benefits grant in total.
      override = 0;
      for (const [id, c] of this.chosen) {
        override += c.points !== null ? c.points : ((byId.get(id) || {}).points || 0) * c.quantity;
      }
    }
    return {
      sale: {
        card: this.card.number,
        amount_gr: amount,
        benefit_ids: benefitIds,
        benefit_quantities: quantities,
        redeem_points: this.redeemPoints,
        points_override: override,
        override_reason: reasons.length ? reasons.join("; ") : null,
      },
    };
  }

  changed() {
    if (this.pending) return;
    const b = this.body();
    this.amountError.textContent = b.error && !b.empty ? b.error : "";
    clearTimeout(this.quoteTimer);
    if (b.error) {
      this.quoteSeq++;
      this.renderQuote(null);
      return;
    }
    this.quoteTimer = setTimeout(() => this.quote(b.sale), QUOTE_DEBOUNCE_MS);
  }

  async quote(sale) {
    const seq = ++this.quoteSeq;
    try {
      const { data } = await api.quote({ id: this.saleId || newSaleId(), ...sale });
      if (seq !== this.quoteSeq) return;
      const q = (data && (data.entry || data.quote)) || data || {};
      this.renderQuote({ ...q, amount_gr: q.amount_gr ?? sale.amount_gr });
    } catch (err) {
      if (seq !== this.quoteSeq) return;
      if (err.status === 401) return this.onError(err);
      this.renderQuote(null, errorText(err.code, err.serverMessage));
    }
  }

  async confirm() {
    if (this.saving || !this.card.active) return;
    let sale;
    if (this.pending) {
      sale = this.pending;
    } else {
      const b = this.body();
      if (b.error) {
        this.amountError.textContent = b.error;
        this.focusAmount();
        return;
      }
      this.saleId = this.saleId || newSaleId();
      sale = { id: this.saleId, ...b.sale };
    }
    this.setSaving(true, T.saving);
    try {
      const { data } = await this.post(sale);
      this.pending = null;
      this.saleId = null;
      this.setSaving(false, "");
      this.onCommitted(data.entry, data.receipt || null);
    } catch (err) {
      if (isTransient(err)) {
        // The outcome is unknown: keep the form locked and offer a retry with the same id.
        this.pending = sale;
        const why = err.isNetwork
          ? T.retryFailed
          : `${errorText(err.code, err.serverMessage)} ${T.retrySafe}`;
        this.setSaving(false, why);
      } else {
        this.pending = null;
        this.saleId = null; // nothing was written under it (or it is taken: 409)
        this.setSaving(false, "");
        if (err.status === 401) return this.onError(err);
        this.statusEl.textContent = errorText(err.code, err.serverMessage);
        this.statusEl.classList.add("error");
      }
    }
  }

  async post(sale) {
    for (let attempt = 0; ; attempt++) {
      try {
        return await api.sale(sale);
      } catch (err) {
        if (!isTransient(err) || attempt >= RETRY_DELAYS_MS.length) throw err;
        this.statusEl.textContent = T.retrying(attempt + 2);
        await sleep(RETRY_DELAYS_MS[attempt]);
      }
    }
  }

  setSaving(saving, message) {
    this.saving = saving;
    this.statusEl.textContent = message;
    this.statusEl.classList.toggle("error", Boolean(this.pending));
    const locked = saving || this.pending !== null;
    this.amountInput.disabled = locked;
    this.confirmBtn.disabled = saving;
    this.confirmBtn.hidden = this.pending !== null;
    this.retryBtn.hidden = this.pending === null;
    this.retryBtn.disabled = saving;
    if (locked) {
      for (const el of this.col.querySelectorAll(".benefit button, .redeem input")) el.disabled = true;
    } else {
      // Re-render rather than enable everything: unavailable benefits stay disabled.
      this.renderBenefits();
      this.renderRedeem();
    }
    this.onBusy(locked);
    if (!saving && this.pending) this.retryBtn.focus();
  }

  cancel() {
    if (!this.saving) this.onCancel();
  }

  focusAmount() {
    if (this.amountInput.isConnected && !this.amountInput.disabled) {
      this.amountInput.focus();
      this.amountInput.select();
    } else {
      $("#card-input")?.focus();
    }
  }
}
