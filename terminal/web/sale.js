// The sale form: benefits ("Użyj" with a confirmation), amount, points redemption, live
// quote, and the idempotent commit (the same client id on every retry).

import { api } from "./api.js";
import { ask } from "./dialog.js";
import { $, h, lockIcon, replace } from "./dom.js";
import { BENEFIT_REASONS, OVERRIDE_REASONS, T, UNITS, errorText } from "./i18n.js";
import { formatDate, formatDateTime, formatPln, formatPoints, parsePln } from "./format.js";
import { BACKSPACE, CLEAR, digitPad, letterKeyboard, reasonChips, stepper } from "./keypad.js";

// Why a benefit cannot be used, with the number or date that says when it could.
export function benefitReason(b, balance) {
  const base = b.reason ? BENEFIT_REASONS[b.reason] || b.message || b.reason : T.unavailable;
  if (b.reason === "points_below_threshold" && typeof b.min_points === "number") {
    return `${base}: ${T.needPoints(b.min_points + 1 - balance, b.min_points)}`;
  }
  if (b.reason === "not_yet_valid" && b.valid_from) return T.fromDate(formatDate(b.valid_from));
  if (b.reason === "expired" && b.valid_to) return T.untilDate(formatDate(b.valid_to));
  if (b.reason === "period_limit_reached" && b.free_at) return `${base}: ${T.freeAt(formatDateTime(b.free_at))}`;
  return base;
}

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
      maxlength: "20",
      "aria-describedby": "amount-error",
      "aria-keyshortcuts": "F2",
    });
    this.amountPad = digitPad(this.amountInput, {
      id: "amount-pad",
      cls: "keypad-row",
      keys: ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", ",", BACKSPACE, CLEAR],
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
      h(
        "section",
        { class: "benefits-section" },
        h("h2", {}, T.benefits),
        active ? null : h("p", { class: "benefits-blocked", id: "benefits-blocked" }, T.benefitsBlocked),
        this.benefitsEl,
      ),
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
            this.amountPad,
            this.amountError,
            this.redeemEl,
            // The summary beside the buttons: "Do zapłaty" is read where the finger goes.
            h(
              "div",
              { class: "sale-bottom" },
              this.quoteEl,
              h(
                "div",
                { class: "sale-buttons" },
                this.retryBtn,
                this.confirmBtn,
                h(
                  "button",
                  { type: "button", class: "btn", id: "sale-cancel", onclick: () => this.cancel() },
                  `${T.cancel} (Esc)`,
                ),
              ),
            ),
            this.statusEl,
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
    // An inactive card's reason is said once, above the list, not on every benefit.
    const reason = this.card.active ? benefitReason(b, (this.card.balance && this.card.balance.points) || 0) : null;
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
      available || !reason ? null : h("div", { class: "benefit-reason" }, reason),
      h("div", { class: "benefit-action" }, action),
    );
  }

  renderRedeem() {
    const balance = (this.card.balance && this.card.balance.points) || 0;
    const usable = this.card.redeem_options || [];
    const tiers = this.card.redeem_tiers && this.card.redeem_tiers.length ? this.card.redeem_tiers : usable;
    if (!tiers.length) {
      this.redeemEl.hidden = true;
      return;
    }
    this.redeemEl.hidden = false;
    const usableSet = new Set(usable.map((o) => o.points));
    const options = tiers;
    let why = null;
    if (!usable.length) {
      const min = tiers[0].points;
      why = balance < min ? T.redeemNeed(min, min - balance) : T.redeemOffline;
    }
    if (this.redeemPoints && !usableSet.has(this.redeemPoints)) {
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
            !usableSet.has(o.points),
            o.points > balance ? `${T.redeemTooFew}: ${T.needPoints(o.points - balance, o.points)}` : null,
          ),
        ),
      ),
      why ? h("p", { class: "redeem-why", id: "redeem-why" }, why) : null,
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
    // "Do zapłaty" follows from what is chosen: the amount, the benefits, the tier.
    const byId = new Map((this.card.benefits || []).map((b) => [b.id, b]));
    const benefitRows = [...this.chosen.keys()].map((id) => {
      const b = byId.get(id) || { name: id, label: "" };
      return [T.quoteBenefit, [b.name, b.label].filter(Boolean).join(" · "), `quote-benefit-${id}`, "quote-wide"];
    });
    const rows = [
      ...benefitRows,
      q.discount_gr
        ? [`${T.quoteDiscount} (${formatPoints(q.points_redeemed || 0)})`, `−${formatPln(q.discount_gr)}`, "quote-discount"]
        : null,
      [T.quoteToPay, formatPln(Math.max(0, (q.amount_gr || 0) - (q.discount_gr || 0))), "quote-topay", "quote-total"],
      [T.quoteEarn, `+${formatPoints(q.points_earned || 0)}`, "quote-earn"],
      typeof q.balance_after === "number" ? [T.quoteBalance, formatPoints(q.balance_after), "quote-balance"] : null,
    ].filter(Boolean);
    const why = Array.isArray(q.explanation) ? q.explanation : [];
    replace(
      this.quoteEl,
      h("h3", {}, T.quote),
      h(
        "dl",
        { class: "quote-rows" },
        rows.map(([k, v, id, cls]) => [h("dt", { class: cls || null }, k), h("dd", { id, class: cls || null }, v)]),
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
    const reasonInput = b.points_locked
      ? null
      : h("input", { id: "use-reason", type: "text", maxlength: "200", autocomplete: "off" });
    // The reason's keys open only once the points are changed: the usual use stays short.
    const reasonBox = b.points_locked
      ? null
      : h(
          "div",
          { class: "reason-box", id: "use-reason-box", hidden: true },
          h("label", { for: "use-reason" }, T.overrideReason),
          reasonInput,
          reasonChips(reasonInput, OVERRIDE_REASONS, { id: "use-reason-chips" }),
          letterKeyboard(reasonInput, { id: "use-reason-keys" }),
        );
    // Points follow the quantity until the cashier edits them.
    let pointsEdited = false;
    const showReason = () => {
      const n = Number.parseInt(qty.value, 10) || 1;
      if (reasonBox) reasonBox.hidden = Number(pointsInput.value) === (b.points || 0) * n;
    };
    if (pointsInput) {
      pointsInput.addEventListener("input", () => {
        pointsEdited = true;
        showReason();
      });
      qty.addEventListener("input", () => {
        const n = Number.parseInt(qty.value, 10);
        if (!pointsEdited && n > 0) pointsInput.value = String((b.points || 0) * n);
        showReason();
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
        h(
          "div",
          { class: "use-numbers" },
          h(
            "div",
            {},
            h("label", { for: "use-quantity" }, `${T.quantity} (${unit})`),
            stepper(qty, { min: 1, max: 99, label: T.quantity }),
          ),
          pointsInput
            ? h(
                "div",
                {},
                h("label", { for: "use-points" }, T.pointsForBenefit),
                stepper(pointsInput, { min: 0, label: T.pointsForBenefit }),
              )
            : null,
        ),
        b.points_locked
          ? h(
              "p",
              { class: "locked-points", id: "use-points-locked" },
              `${T.pointsForBenefit}: +${formatPoints(b.points || 0)} `,
              lockIcon(T.pointsLocked),
              ` ${T.pointsLocked}`,
            )
          : reasonBox,
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
        if (!reason) {
          reasonBox.hidden = false;
          reasonInput.focus();
          return { error: T.overrideReasonRequired };
        }
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
