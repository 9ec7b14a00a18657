// Small building blocks the Control UI tabs share (all DOM, never HTML text).

import { clear } from "./dom.js";
import { el, formatError } from "./session.js";

export function card(title, ...children) {
  return el("section", { class: "card" }, title ? el("h2", null, title) : null, ...children);
}

export function note(text, ...more) {
  return el("p", { class: "muted" }, text, ...more);
}

export function errorText(e) {
  return el("p", { class: "error", role: "alert" }, formatError(e));
}

/** Replace a box's content. */
export function fill(box, ...children) {
  clear(box).append(...children.flat().filter((c) => c !== null && c !== undefined && c !== false));
  return box;
}

/** columns: [{label, cell(row) → node|string}] */
export function table(columns, rows, empty = "Nothing here.") {
  if (!rows.length) return note(empty);
  return el(
    "div",
    { class: "scroll" },
    el(
      "table",
      null,
      el("thead", null, el("tr", null, columns.map((c) => el("th", null, c.label)))),
      el("tbody", null, rows.map((row) => el("tr", null, columns.map((c) => el("td", { "data-label": c.label }, c.cell(row)))))),
    ),
  );
}

export function json(value) {
  let text;
  try {
    text = JSON.stringify(value, null, 2);
  } catch {
    text = String(value);
  }
  return el("pre", { class: "json" }, text === undefined ? "undefined" : text);
}

export function ago(ms) {
  if (!ms) return "—";
  const seconds = Math.round((Date.now() - ms) / 1000);
  if (seconds < 0) return `in ${duration(-seconds * 1000)}`;
  if (seconds < 5) return "just now";
  return `${duration(seconds * 1000)} ago`;
}

export function duration(ms) {
  let s = Math.max(0, Math.floor(ms / 1000));
  const d = Math.floor(s / 86400);
  s -= d * 86400;
  const h = Math.floor(s / 3600);
  s -= h * 3600;
  const m = Math.floor(s / 60);
  s -= m * 60;
  if (d) return h ? `${d}d ${h}h` : `${d}d`;
  if (h) return m ? `${h}h ${m}m` : `${h}h`;
  if (m) return s ? `${m}m ${s}s` : `${m}m`;
  return `${s}s`;
}

export function when(ms) {
  return ms ? new Date(ms).toLocaleString() : "—";
}

export function short(id, n = 12) {
  const text = String(id || "");
  return text.length > n ? `${text.slice(0, n)}…` : text;
}

/** A button that shows it is busy while `action()` runs, and an error next to it if it fails. */
export function action(label, fn, props = {}) {
  const button = el("button", { type: "button", ...props }, label);
  button.addEventListener("click", async () => {
    button.disabled = true;
    const old = button.parentElement && button.parentElement.querySelector(":scope > .error");
    if (old) old.remove();
    try {
      await fn(button);
    } catch (e) {
      button.after(el("span", { class: "error" }, ` ${formatError(e)}`));
    } finally {
      button.disabled = false;
    }
  });
  return button;
}

export function badge(ok, yes = "yes", no = "no") {
  return el("span", { class: `badge ${ok ? "ok" : "off"}` }, ok ? yes : no);
}

export function uuid() {
  return crypto.randomUUID();
}
