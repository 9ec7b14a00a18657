// Sessions: list, preview, reset, delete, and per-session overrides (sessions.patch).

import { $, basePath, el } from "../lib/session.js";
import { action, ago, card, errorText, fill, note, table } from "../lib/widgets.js";

export const id = "sessions";
export const title = "Sessions";

const THINKING = ["", "off", "minimal", "low", "medium", "high"];

function textOf(message) {
  const content = message && message.content;
  if (typeof content === "string") return content;
  return (Array.isArray(content) ? content : []).filter((p) => p && p.type === "text").map((p) => p.text).join("");
}

export function create(ctx) {
  const list = el("div", { id: "sessions-list" });
  const preview = el("div", { id: "sessions-preview" });
  const root = el("section", { class: "tab", id: "tab-sessions" }, card("Sessions", list), card("Preview", preview));

  async function patch(key, fields) {
    await ctx.call("sessions.patch", { key, ...fields });
  }

  async function showPreview(key) {
    const result = await ctx.call("sessions.preview", { keys: [key], limit: 6, maxChars: 400 });
    const entry = (result.previews || [])[0] || { items: [] };
    fill(
      preview,
      el("h3", null, key),
      entry.items.length
        ? el("ul", { class: "preview" }, entry.items.map((m) => el("li", null, el("strong", null, `${m.role}: `), textOf(m))))
        : note(entry.status === "missing" ? "This session no longer exists." : "No messages yet."),
    );
  }

  function modelInput(row) {
    const input = el("input", { type: "text", value: row.modelOverride || "", placeholder: "default", "aria-label": `Model for ${row.key}`, class: "model" });
    input.addEventListener("change", () => patch(row.key, { model: input.value.trim() || null }).catch((e) => input.after(errorText(e))));
    return input;
  }

  function thinkingSelect(row) {
    const select = el("select", { "aria-label": `Thinking for ${row.key}` }, THINKING.map((level) => el("option", { value: level, selected: (row.thinkingLevel || "") === level }, level || "default")));
    select.addEventListener("change", () => patch(row.key, { thinkingLevel: select.value || null }).catch((e) => select.after(errorText(e))));
    return select;
  }

  function verboseBox(row) {
    const box = el("input", { type: "checkbox", checked: row.verboseLevel === "on", "aria-label": `Show tool calls for ${row.key}` });
    box.addEventListener("change", () => patch(row.key, { verboseLevel: box.checked ? "on" : "off" }).catch((e) => box.after(errorText(e))));
    return box;
  }

  function render(result) {
    const rows = result.sessions || [];
    fill(
      list,
      table(
        [
          { label: "Session", cell: (r) => el("span", null, el("strong", null, r.displayName || r.key), el("br"), el("code", { class: "small" }, r.key)) },
          { label: "Last activity", cell: (r) => ago(r.updatedAt) },
          { label: "Tokens", cell: (r) => String(r.totalTokens || 0) },
          { label: "Model", cell: modelInput },
          { label: "Thinking", cell: thinkingSelect },
          { label: "Tool calls", cell: verboseBox },
          {
            label: "",
            cell: (r) =>
              el(
                "div",
                { class: "row" },
                el("a", { class: "button", href: new URL(`${basePath()}chat?session=${encodeURIComponent(r.key)}`, location.href).href }, "Chat"),
                action("Preview", () => showPreview(r.key)),
                action("Reset", async () => {
                  if (!confirm(`Start ${r.key} afresh? Its transcript is kept on disk.`)) return;
                  await ctx.call("sessions.reset", { key: r.key, reason: "reset" });
                  refresh();
                }),
                action("Delete", async () => {
                  if (!confirm(`Delete ${r.key}?`)) return;
                  await ctx.call("sessions.delete", { key: r.key, deleteTranscript: false });
                  refresh();
                }, { class: "danger" }),
              ),
          },
        ],
        rows,
        "No sessions yet: send a message in the chat to start one.",
      ),
    );
  }

  function refresh() {
    ctx.call("sessions.list", { includeGlobal: true }).then(render, (e) => fill(list, errorText(e)));
  }

  return {
    root,
    refresh,
    event(frame) {
      // a finished run changes last activity and tokens
      if (frame.event === "chat" && frame.payload && frame.payload.state === "final" && !root.hidden) refresh();
    },
  };
}
