// On-screen keys for a till without a keyboard: digit pads (card number, amount), a
// letter keyboard with the Polish letters, − / + steppers and pick-lists of reasons.
// Keys never take the focus (a hybrid till keeps typing where it was) and every change
// is announced as an "input" event, so the page reacts as to typing (and guard.js sees it).

import { h } from "./dom.js";
import { T } from "./i18n.js";

export const BACKSPACE = "⌫";
export const CLEAR = "C";

function setValue(input, value) {
  input.value = value;
  input.dispatchEvent(new Event("input", { bubbles: true }));
}

// Typed at the end (the field's caret is not visible on a touch screen).
export function typeInto(input, key) {
  if (!input || input.disabled) return;
  if (key === BACKSPACE) setValue(input, input.value.slice(0, -1));
  else if (key === CLEAR) setValue(input, "");
  else {
    const max = Number.parseInt(input.getAttribute("maxlength") || "0", 10);
    if (max && input.value.length >= max) return;
    setValue(input, input.value + key);
  }
}

function keyLabel(key) {
  if (key === BACKSPACE) return T.keyBackspace;
  if (key === CLEAR) return T.keyClear;
  if (key === " ") return T.keySpace;
  return key;
}

// A key: `press` runs on click (a tap ends in a click); the pointer never moves the focus.
function key(k, press, extraClass = "") {
  return h(
    "button",
    {
      type: "button",
      class: `btn key ${extraClass}`.trim(),
      tabindex: "-1",
      "aria-label": keyLabel(k),
      dataset: { key: k },
      onmousedown: (ev) => ev.preventDefault(),
      onclick: press,
    },
    k === " " ? T.keySpace : k,
  );
}

// A digit pad writing into `input`; `keys` in reading order, `cls` picks the grid.
export function digitPad(input, { id, keys, cls = "", extra = [] }) {
  return h(
    "div",
    { class: `keypad ${cls}`.trim(), id, role: "group", "aria-label": T.keypad },
    keys.map((k) => key(k, () => typeInto(input, k), k === BACKSPACE || k === CLEAR ? "key-edit" : "")),
    extra,
  );
}

const LETTER_ROWS = [
  ["1", "2", "3", "4", "5", "6", "7", "8", "9", "0", BACKSPACE],
  ["q", "w", "e", "r", "t", "y", "u", "i", "o", "p", "-"],
  ["a", "s", "d", "f", "g", "h", "j", "k", "l", ",", "."],
  ["z", "x", "c", "v", "b", "n", "m", " "],
  ["ą", "ć", "ę", "ł", "ń", "ó", "ś", "ź", "ż", CLEAR],
];

// A letter keyboard for `input`: the first letter of a sentence is a capital.
export function letterKeyboard(input, { id }) {
  const press = (k) => () => {
    let c = k;
    if (k.length === 1 && /\p{L}/u.test(k) && (input.value === "" || /[.!?]\s$/.test(input.value))) {
      c = k.toUpperCase();
    }
    typeInto(input, c);
  };
  return h(
    "div",
    { class: "keyboard", id, role: "group", "aria-label": T.keyboard },
    LETTER_ROWS.map((row) =>
      h(
        "div",
        { class: "keyboard-row" },
        row.map((k) => key(k, press(k), k === " " ? "key-space" : k === BACKSPACE || k === CLEAR ? "key-edit" : "")),
      ),
    ),
  );
}

// The common reasons as one-tap choices: a tap fills the field (still editable).
export function reasonChips(input, reasons, { id }) {
  return h(
    "div",
    { class: "chips", id, role: "group", "aria-label": T.commonReasons },
    reasons.map((r) =>
      h(
        "button",
        {
          type: "button",
          class: "btn chip",
          dataset: { reason: r },
          onclick: () => {
            setValue(input, r);
            input.focus();
          },
        },
        r,
      ),
    ),
  );
}

// − value + around a number field, for quantities and points.
export function stepper(input, { min = 0, max = 1_000_000, step = 1, label }) {
  const bump = (delta) => () => {
    const now = Number.parseInt(input.value, 10);
    const next = Math.min(max, Math.max(min, (Number.isNaN(now) ? min : now) + delta));
    setValue(input, String(next));
  };
  return h(
    "div",
    { class: "stepper" },
    h(
      "button",
      {
        type: "button",
        class: "btn key key-step",
        tabindex: "-1",
        "aria-label": `${label}: ${T.less}`,
        dataset: { step: "-", for: input.id },
        onmousedown: (ev) => ev.preventDefault(),
        onclick: bump(-step),
      },
      "−",
    ),
    input,
    h(
      "button",
      {
        type: "button",
        class: "btn key key-step",
        tabindex: "-1",
        "aria-label": `${label}: ${T.more}`,
        dataset: { step: "+", for: input.id },
        onmousedown: (ev) => ev.preventDefault(),
        onclick: bump(step),
      },
      "+",
    ),
  );
}
