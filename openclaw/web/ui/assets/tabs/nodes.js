// Nodes: list, describe, and invoke a command with a JSON params editor.

import { el } from "../lib/session.js";
import { action, ago, badge, card, errorText, fill, json, note, table, uuid } from "../lib/widgets.js";

export const id = "nodes";
export const title = "Nodes";

export function create(ctx) {
  const list = el("div", { id: "nodes-list" });
  const detail = el("div", { id: "nodes-detail" });
  const root = el("section", { class: "tab", id: "tab-nodes" }, card("Nodes", list), card("Node", detail));

  function invoker(node) {
    const commands = node.commands || [];
    const command = el("select", { id: "invoke-command", "aria-label": "Command" }, commands.map((c) => el("option", { value: c }, c)));
    const params = el("textarea", { id: "invoke-params", rows: 6, spellcheck: "false", "aria-label": "Params (JSON)" });
    params.value = "{}";
    const timeout = el("input", { id: "invoke-timeout", type: "number", min: 1, value: 30000, "aria-label": "Timeout (ms)" });
    const result = el("div", { id: "invoke-result" });
    const run = action("Invoke", async () => {
      let parsed;
      try {
        parsed = JSON.parse(params.value || "null");
      } catch (e) {
        fill(result, el("p", { class: "error" }, `Params are not JSON: ${e.message}`));
        return;
      }
      const ms = Math.max(1, parseInt(timeout.value, 10) || 30000);
      fill(result, note("Running…"));
      try {
        const payload = { nodeId: node.nodeId, command: command.value, idempotencyKey: uuid(), timeoutMs: ms };
        if (parsed !== null) payload.params = parsed;
        fill(result, json(await ctx.call("node.invoke", payload, ms + 5000)));
      } catch (e) {
        fill(result, errorText(e));
      }
    }, { class: "primary", id: "invoke-run" });
    if (!commands.length) return note("This node offers no commands.");
    return el("div", { class: "invoke" }, el("h3", null, "Invoke"), el("div", { class: "row" }, command, timeout, run), params, result);
  }

  async function describe(nodeId) {
    fill(detail, note("Loading…"));
    try {
      const node = await ctx.call("node.describe", { nodeId });
      fill(detail, el("h3", null, node.displayName || node.nodeId), ctx.has("node.invoke") ? invoker(node) : null, el("details", null, el("summary", null, "Description"), json(node)));
    } catch (e) {
      fill(detail, errorText(e));
    }
  }

  function render(result) {
    fill(
      list,
      table(
        [
          { label: "Node", cell: (n) => el("span", null, el("strong", null, n.displayName || n.nodeId), el("br"), el("code", { class: "small" }, n.nodeId)) },
          { label: "Platform", cell: (n) => n.platform || "" },
          { label: "Connected", cell: (n) => badge(!!n.connected) },
          { label: "Commands", cell: (n) => String((n.commands || []).length) },
          { label: "Seen", cell: (n) => ago(n.lastSeenAtMs || n.connectedAtMs) },
          { label: "", cell: (n) => action("Open", () => describe(n.nodeId)) },
        ],
        result.nodes || [],
        "No nodes yet. Run `openclaw node run` on a machine to add one.",
      ),
    );
  }

  function refresh() {
    ctx.call("node.list").then(render, (e) => fill(list, errorText(e)));
  }

  return { root, refresh };
}
