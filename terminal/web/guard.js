// A bank-card number (PAN) must never be shown or kept in a field, however it arrives:
// typed, pasted, or typed by a scanner in keyboard mode. No field of this page ever
// needs a run of 13 or more digits (a city card has 8, an amount at most 11), so such a
// run is hidden at once and a Luhn-valid 13–19 digit run clears the field.

const RUN_RE = /\d(?:[ -]?\d){12,}/g;

function luhn(digits) {
  let sum = 0;
  for (let i = 0; i < digits.length; i++) {
    let d = digits.charCodeAt(digits.length - 1 - i) - 48;
    if (i % 2 === 1) {
      d *= 2;
      if (d > 9) d -= 9;
    }
    sum += d;
  }
  return sum % 10 === 0;
}

// True when `text` holds a run of 13–19 digits (spaces or dashes between them allowed)
// that passes the Luhn check: what a payment card number looks like.
export function hasPan(text) {
  for (const m of String(text || "").matchAll(RUN_RE)) {
    const digits = m[0].replace(/[ -]/g, "");
    for (let len = 13; len <= Math.min(19, digits.length); len++) {
      for (let start = 0; start + len <= digits.length; start++) {
        if (luhn(digits.slice(start, start + len))) return true;
      }
    }
  }
  return false;
}

// A run this long is never a city card or an amount: hide it while it is still growing.
export function hasLongDigitRun(text) {
  return /\d(?:[ -]?\d){12,}/.test(String(text || ""));
}

// Longer than any card number: cleared whatever its check digit.
function hasOverlongRun(text) {
  return /\d(?:[ -]?\d){19,}/.test(String(text || ""));
}

// Watch every text field of `root`; `onRefused(field)` is told (never the number).
export function installPanGuard(root, onRefused) {
  const check = (field) => {
    if (!(field instanceof HTMLInputElement || field instanceof HTMLTextAreaElement)) return;
    if (field.type === "password") return;
    const value = field.value;
    if (hasPan(value) || hasOverlongRun(value)) {
      field.value = "";
      field.classList.remove("masked");
      // An Enter right after (a scanner ends with one) repeats why the field is empty.
      field.dataset.refused = "pan";
      field.dispatchEvent(new Event("input", { bubbles: true }));
      onRefused(field);
      return;
    }
    field.classList.toggle("masked", hasLongDigitRun(value));
    if (value) delete field.dataset.refused;
  };
  root.addEventListener("input", (ev) => check(ev.target), true);
  // Pasted or dropped: refused before the text lands in the field.
  for (const [type, data] of [
    ["paste", (ev) => ev.clipboardData],
    ["drop", (ev) => ev.dataTransfer],
  ]) {
    root.addEventListener(
      type,
      (ev) => {
        const source = data(ev);
        if (source && hasPan(source.getData("text"))) {
          ev.preventDefault();
          onRefused(ev.target);
        }
      },
      true,
    );
  }
  return check;
}
