// Logs: a live tail of the gateway log (logs.tail with a cursor), filtered, pausable.

import { el } from "../lib/session.js";
import { LEVELS, logMatches, parseLogLine } from "../lib/records.js";
import { card, errorText, fill, note } from "../lib/widgets.js";

export const id = "logs";
export const title = "Logs";

const POLL_MS = 1000;
const KEEP = 2000; // lines kept in the page
const SHOW = 1000; // rows drawn at once

export function create(ctx) {
  const level = el("select", { id: "logs-level", "aria-label": "Minimum level" }, el("option", { value: "" }, "all levels"), LEVELS.map((l) => el("option", { value: l }, `${l}+`)));
  const filter = el("input", { id: "logs-filter", type: "search", placeholder: "filter text", "aria-label": "Filter text" });
  const pause = el("button", { id: "logs-pause", type: "button" }, "Pause");
  const clearButton = el("button", { type: "button" }, "Clear");
  const status = el("span", { id: "logs-status", class: "muted" });
  const view = el("div", { id: "logs-view", class: "log", role: "log" });
  const root = el("section", { class: "tab", id: "tab-logs" }, card(null, el("div", { class: "row toolbar" }, level, filter, pause, clearButton, status), view));
  let lines = [];
  let cursor = null;
  let paused = false;
  let held = [];
  let visible = false;
  let timer = null;
  let failures = 0;

  function row(entry) {
    return el("div", { class: `line ${entry.level}` }, el("span", { class: "ts", title: entry.ts }, (/T(\d\d:\d\d:\d\d)/.exec(entry.ts) || [, entry.ts])[1]), el("span", { class: "lvl" }, entry.level), el("span", { class: "sub" }, entry.subsystem), el("span", { class: "msg" }, entry.msg));
  }

  function render() {
    const shown = lines.filter((e) => logMatches(e, level.value, filter.value.trim())).slice(-SHOW);
    fill(view, shown.length ? shown.map(row) : note(lines.length ? "No line matches the filter." : "No log lines yet."));
    view.scrollTop = view.scrollHeight;
  }

  function append(entries) {
    const atBottom = view.scrollHeight - view.scrollTop - view.clientHeight < 40;
    lines = lines.concat(entries).slice(-KEEP);
    const matching = entries.filter((e) => logMatches(e, level.value, filter.value.trim()));
    if (!matching.length) return;
    if (view.querySelector(":scope > p")) view.textContent = "";
    view.append(...matching.map(row));
    while (view.childElementCount > SHOW) view.firstElementChild.remove();
    if (atBottom) view.scrollTop = view.scrollHeight;
  }

  async function poll() {
    timer = null;
    if (!visible || paused) return;
    try {
      const page = await ctx.call("logs.tail", { ...(cursor === null ? {} : { cursor }), limit: 500, maxBytes: 250000 });
      failures = 0;
      if (page.reset) append([parseLogLine("--- the log file was rotated ---")]);
      cursor = typeof page.cursor === "number" ? page.cursor : cursor;
      const entries = (page.lines || []).map(parseLogLine);
      if (paused) held = held.concat(entries).slice(-KEEP); // answered after Pause: shown on Resume
      else append(entries);
      status.textContent = page.file ? `${page.file}` : "";
    } catch (e) {
      failures++;
      fill(status, errorText(e));
    }
    if (visible && !paused && timer === null) timer = setTimeout(poll, failures ? Math.min(POLL_MS * 2 ** failures, 15000) : POLL_MS);
  }

  function schedule() {
    if (timer === null && visible && !paused) timer = setTimeout(poll, 0);
  }

  pause.addEventListener("click", () => {
    paused = !paused;
    pause.textContent = paused ? "Resume" : "Pause";
    pause.setAttribute("aria-pressed", String(paused));
    if (!paused) {
      append(held);
      held = [];
      schedule();
    }
  });
  clearButton.addEventListener("click", () => {
    lines = [];
    render();
  });
  level.addEventListener("change", render);
  filter.addEventListener("input", render);

  return {
    root,
    refresh() {
      lines = [];
      held = [];
      cursor = null;
      render();
    },
    show() {
      visible = true;
      schedule();
    },
    hide() {
      visible = false;
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}
