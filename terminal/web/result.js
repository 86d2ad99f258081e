// What was just written: a sale, a void or a day close, with the receipt / Z report preview.

import { api } from "./api.js";
import { h, replace } from "./dom.js";
import { RECEIPT_STATUS, SUMMARY_LABELS, T } from "./i18n.js";
import { formatPln, formatPoints } from "./format.js";

const PREVIEW_TRIES = 4;

function facts(rows, wide = false) {
  return h(
    "dl",
    { class: wide ? "result-facts result-facts-wide" : "result-facts" },
    rows.filter(Boolean).map(([label, value, id]) => [h("dt", {}, label), h("dd", { id }, value)]),
  );
}

function summaryValue(key, value) {
  if (key.endsWith("_gr")) return formatPln(value);
  if (key.startsWith("points")) return formatPoints(value);
  return String(value);
}

// The Z figures in one column, in the order they add up: sales − voids = net; then the
// points and their cost; the transaction range on one line.
const Z_ORDER = [
  ["sales", null],
  ["voids", null],
  ["sales_amount_gr", null],
  ["voids_amount_gr", "−"],
  ["amount_gr", "="],
  ["discount_gr", null],
  ["points_earned", null],
  ["points_redeemed", null],
  ["partner_cost_gr", null],
];

function zRows(summary) {
  const rows = Z_ORDER.filter(([k]) => typeof summary[k] === "number").map(([k, op]) => {
    const value = k === "voids_amount_gr" ? Math.abs(summary[k]) : summary[k];
    return [op ? `${op} ${SUMMARY_LABELS[k] || k}` : SUMMARY_LABELS[k] || k, summaryValue(k, value), `summary-${k}`];
  });
  const { first_seq: first, last_seq: last } = summary;
  rows.push([T.zRange, first && last ? `${first}–${last}` : T.zNone, "summary-range"]);
  return rows;
}

export function renderResult(col, result, { onNew, onReprint, onVoid }) {
  const { kind, entry, receipt } = result;
  const receiptStatus = receipt && receipt.status;
  const preview = h("pre", { class: "receipt-text", id: "receipt-text", tabindex: "0" }, T.receiptLoading);
  const image = h("p", { class: "receipt-image" });
  let title;
  let body;
  if (kind === "sale") {
    title = T.saleDone;
    const paid = entry.amount_gr - (entry.discount_gr || 0);
    body = facts([
      [T.saleNo, String(entry.seq), "result-seq"],
      [T.amount, formatPln(entry.amount_gr), "result-amount"],
      entry.discount_gr ? [T.resultDiscount, `−${formatPln(entry.discount_gr)}`, "result-discount"] : null,
      [T.resultPaid, formatPln(paid), "result-paid"],
      [T.pointsGranted, `+${formatPoints(entry.points_earned)}`, "result-points"],
      entry.points_redeemed ? [T.pointsRedeemed, `−${formatPoints(entry.points_redeemed)}`, "result-redeemed"] : null,
      typeof entry.balance_after === "number" ? [T.newBalance, formatPoints(entry.balance_after), "result-balance"] : null,
      receiptStatus ? [T.receipt, RECEIPT_STATUS[receiptStatus] || receiptStatus, "result-receipt"] : null,
    ]);
  } else if (kind === "void") {
    title = T.voidDone;
    // A void entry negates its sale: minus the points granted, minus those spent.
    body = facts([
      [T.saleNo, String(entry.ref ?? ""), "result-ref"],
      [T.amount, formatPln(Math.abs(entry.amount_gr)), "result-amount"],
      entry.points_earned ? [T.voidPointsTaken, `−${formatPoints(-entry.points_earned)}`, "result-points-taken"] : null,
      entry.points_redeemed ? [T.voidPointsBack, `+${formatPoints(-entry.points_redeemed)}`, "result-points-back"] : null,
      typeof entry.balance_after === "number" ? [T.newBalance, formatPoints(entry.balance_after), "result-balance"] : null,
      receiptStatus ? [T.receipt, RECEIPT_STATUS[receiptStatus] || receiptStatus, "result-receipt"] : null,
    ]);
  } else {
    title = T.dayCloseDone;
    const summary = result.summary || {};
    body = facts(zRows(summary), true);
  }
  replace(
    col,
    h(
      "div",
      { class: `result result-${kind}`, id: "result", dataset: { kind } },
      h("h2", { class: "result-title", id: "result-title" }, title),
      h(
        "div",
        { class: "result-body" },
        h(
          "div",
          { class: "result-main" },
      h(
        "div",
        { class: "result-buttons" },
        kind === "sale"
          ? h("button", { type: "button", class: "btn", id: "result-void", onclick: onVoid }, h("kbd", {}, "F4"), " ", T.voidLast)
          : null,
        h("button", { type: "button", class: "btn", id: "result-reprint", onclick: onReprint }, h("kbd", {}, "F8"), " ", T.reprint),
        h(
          "button",
          { type: "button", class: "btn btn-primary btn-big", id: "result-new", onclick: onNew },
          `${T.newSale} (Enter)`,
        ),
      ),
      body,
        ),
        // The printout beside the facts, as tall as the column: more than its header.
        h(
          "div",
          { class: "result-paper" },
          h("h3", {}, kind === "day_close" ? T.zReport : T.receiptPreview),
          preview,
          image,
        ),
      ),
    ),
  );
  loadPreview(entry.seq, preview, image);
}

async function loadPreview(seq, preview, image) {
  for (let attempt = 0; attempt < PREVIEW_TRIES; attempt++) {
    try {
      const { data } = await api.receipt(seq);
      preview.textContent = data.text || T.receiptUnavailable;
      if (data.png_url) {
        replace(image, h("a", { href: data.png_url, target: "_blank", rel: "noopener" }, T.receiptImage));
      }
      return;
    } catch (err) {
      if (err.status === 401) break;
      await new Promise((r) => setTimeout(r, 250 * (attempt + 1)));
    }
  }
  if (preview.isConnected) preview.textContent = T.receiptUnavailable;
}
