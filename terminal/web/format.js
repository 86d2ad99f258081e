// Pure parsing and formatting: money in integer grosze, points, dates (Europe/Warsaw).
// parsePln mirrors ledger.money.parse_pln (the tests compare both on generated input).

import { LOCALE, TIME_ZONE } from "./i18n.js";

const PLN_RE = /^\s*(-)?(\d{1,9})(?:[,.](\d{1,2}))?\s*(?:zł|PLN)?\s*$/;

// "123,45" / "123.45" / "123" / "1 234,5 zł" -> 12345 (grosze); null when unreadable.
export function parsePln(text) {
  if (typeof text !== "string") return null;
  const compact = text.replace(/[ \u00a0]/g, "");
  const m = PLN_RE.exec(compact);
  if (!m) return null;
  const zl = Number.parseInt(m[2], 10);
  const gr = Number.parseInt((m[3] || "0").padEnd(2, "0"), 10);
  const value = zl * 100 + gr;
  return m[1] ? -value : value;
}

function groupThousands(n) {
  return String(n).replace(/\B(?=(\d{3})+(?!\d))/g, "\u00a0");
}

// 1234567 -> "12 345,67 zł" (non-breaking space between thousands, like ledger.money).
export function formatPln(gr, { currency = true } = {}) {
  const sign = gr < 0 ? "-" : "";
  const abs = Math.abs(gr);
  const zl = Math.floor(abs / 100);
  const rest = String(abs % 100).padStart(2, "0");
  const text = `${sign}${groupThousands(zl)},${rest}`;
  return currency ? `${text}\u00a0zł` : text;
}

export function formatPoints(points) {
  const sign = points < 0 ? "-" : "";
  return `${sign}${groupThousands(Math.abs(points))}\u00a0pkt`;
}

// "2026-12-31" -> "31.12.2026" (a calendar date: no time zone arithmetic).
export function formatDate(isoDate) {
  const m = /^(\d{4})-(\d{2})-(\d{2})/.exec(isoDate || "");
  return m ? `${m[3]}.${m[2]}.${m[1]}` : String(isoDate ?? "");
}

const DATE_TIME = new Intl.DateTimeFormat(LOCALE, {
  timeZone: TIME_ZONE,
  day: "2-digit",
  month: "2-digit",
  year: "numeric",
  hour: "2-digit",
  minute: "2-digit",
});

// An instant (RFC 3339) as Warsaw wall time: "18.11.2026, 12:00".
export function formatDateTime(iso) {
  const d = new Date(iso);
  return Number.isNaN(d.getTime()) ? String(iso ?? "") : DATE_TIME.format(d);
}

const TIME = new Intl.DateTimeFormat(LOCALE, { timeZone: TIME_ZONE, hour: "2-digit", minute: "2-digit" });

export function formatTime(date) {
  return TIME.format(date);
}

// Building an Intl formatter costs about a millisecond: make each one once.
const ISO_DATE = new Intl.DateTimeFormat("en-CA", {
  timeZone: TIME_ZONE,
  year: "numeric",
  month: "2-digit",
  day: "2-digit",
});

// Today's date in Warsaw as YYYY-MM-DD.
export function warsawToday(now = new Date()) {
  return ISO_DATE.format(now);
}
