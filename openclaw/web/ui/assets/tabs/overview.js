// Overview: the gateway, its health, the model it uses, tokens and cost, who is connected.

import { el } from "../lib/session.js";
import { ago, badge, card, duration, errorText, fill, note, table, when } from "../lib/widgets.js";

export const id = "overview";
export const title = "Overview";

function modelOf(config) {
  const model = (((config || {}).agents || {}).defaults || {}).model;
  if (typeof model === "string") return { primary: model, fallbacks: [] };
  if (model && typeof model.primary === "string") return { primary: model.primary, fallbacks: model.fallbacks || [] };
  return null;
}

export function create(ctx) {
  const gateway = el("dl", { class: "facts", id: "overview-gateway" });
  const health = el("div", { id: "overview-health" });
  const model = el("div", { id: "overview-model" });
  const presence = el("div", { id: "overview-presence" });
  const nodes = el("div", { id: "overview-nodes" });
  const usage = el("div", { id: "overview-usage" });
  const root = el(
    "section",
    { class: "tab", id: "tab-overview" },
    el("div", { class: "grid" }, card("Gateway", gateway), card("Health", health), card("Model", model)),
    card("Usage (30 days)", usage),
    card("Connected clients", presence),
    card("Nodes", nodes),
  );
  let uptime = { base: 0, at: 0 };
  let ticker = null;
  let usageTimer = null;
  let entries = [];

  function fact(label, value, idName) {
    return [el("dt", null, label), el("dd", idName ? { id: idName } : null, value)];
  }

  function renderGateway() {
    const hello = ctx.hello();
    const server = hello.server || {};
    const self = entries.find((e) => e.mode === "gateway") || {};
    fill(
      gateway,
      fact("Version", server.version || "?"),
      fact("Host", server.host || self.host || "—"),
      fact("Protocol", String(hello.protocol)),
      fact("Uptime", duration(uptime.base + Date.now() - uptime.at), "overview-uptime"),
      fact("Methods", String(((hello.features || {}).methods || []).length)),
      hello.snapshot && hello.snapshot.configPath ? fact("Config", el("code", { class: "wrap" }, hello.snapshot.configPath)) : null,
    );
  }

  function renderHealth(h) {
    fill(
      health,
      el("p", null, badge(h.ok, "healthy", "unhealthy"), " checked ", when(h.ts)),
      el("dl", { class: "facts" }, fact("Default agent", h.defaultAgentId || "main"), fact("Heartbeat every", h.heartbeatSeconds ? duration(h.heartbeatSeconds * 1000) : "off"), fact("Channels", String((h.channelOrder || []).length))),
    );
  }

  function renderModel(result) {
    const found = modelOf(result.config);
    if (found) {
      fill(model, el("p", null, el("code", { id: "overview-model-name" }, found.primary)), found.fallbacks.length ? note(`Fallbacks: ${found.fallbacks.join(", ")}`) : null);
      return;
    }
    fill(
      model,
      el("p", { class: "warn", id: "overview-model-missing" }, "No model is set in the config."),
      el("p", null, "Set ", el("code", null, "agents.defaults.model.primary"), ' (for example "openai/gpt-4o-mini") and that provider under ', el("code", null, "models.providers"), ", with its API key, in ", el("code", { class: "wrap" }, result.path || "the config file"), "."),
      note("Without it the agent uses a provider's default model only if the gateway has OPENAI_API_KEY or ANTHROPIC_API_KEY in its environment."),
      el("p", null, el("button", { type: "button", class: "link", on: { click: () => ctx.go("config") } }, "Open the Config tab")),
    );
  }

  function renderPresence() {
    fill(
      presence,
      table(
        [
          { label: "Client", cell: (e) => e.host || e.instanceId || "?" },
          { label: "Mode", cell: (e) => e.mode || "" },
          { label: "Address", cell: (e) => e.ip || "" },
          { label: "Version", cell: (e) => e.version || "" },
          { label: "Platform", cell: (e) => e.platform || "" },
          { label: "Seen", cell: (e) => ago(e.ts) },
        ],
        entries,
        "Nobody is connected.",
      ),
    );
  }

  function renderNodes(result) {
    const list = result.nodes || [];
    const connected = list.filter((n) => n.connected).length;
    fill(
      nodes,
      list.length ? el("p", null, `${connected} connected, ${list.length} known. `, el("button", { type: "button", class: "link", on: { click: () => ctx.go("nodes") } }, "Manage nodes")) : note("No nodes have paired with this gateway."),
    );
  }

  function usd(value) {
    if (!value) return "$0.00";
    return value < 0.01 ? `$${value.toFixed(4)}` : `$${value.toFixed(2)}`;
  }

  function renderUsage(summary) {
    // usage.cost: {totals: {totalTokens, totalCost, missingCostEntries}, byModel: [{provider, model, count, totals}], daily}
    const totals = summary.totals || {};
    const models = summary.byModel || [];
    fill(
      usage,
      el("p", { id: "overview-usage-totals" }, `${usd(totals.totalCost)} · ${(totals.totalTokens || 0).toLocaleString()} tokens · ${(summary.daily || []).length} active days`),
      models.length
        ? table(
            [
              { label: "Model", cell: (m) => el("code", null, `${m.provider}/${m.model}`) },
              { label: "Replies", cell: (m) => String(m.count) },
              { label: "Tokens", cell: (m) => (m.totals.totalTokens || 0).toLocaleString() },
              { label: "Cost", cell: (m) => usd(m.totals.totalCost) },
            ],
            models.slice(0, 10),
          )
        : note("No model replies in the last 30 days."),
      totals.missingCostEntries ? note(`${totals.missingCostEntries} replies have no price: set models.providers.<id>.models[].cost to count them.`) : null,
    );
  }

  function refresh() {
    const hello = ctx.hello();
    const snapshot = hello.snapshot || {};
    uptime = { base: snapshot.uptimeMs || 0, at: Date.now() };
    entries = snapshot.presence || [];
    renderGateway();
    renderPresence();
    if (snapshot.health && snapshot.health.ts) renderHealth(snapshot.health);
    ctx.call("health").then(renderHealth, (e) => fill(health, errorText(e)));
    ctx.call("config.get").then(renderModel, (e) => fill(model, errorText(e)));
    if (ctx.has("node.list")) ctx.call("node.list").then(renderNodes, (e) => fill(nodes, errorText(e)));
    if (ctx.has("usage.cost")) ctx.call("usage.cost", { days: 30 }).then(renderUsage, (e) => fill(usage, errorText(e)));
    else fill(usage, note("This gateway does not report usage."));
  }

  return {
    root,
    refresh,
    show() {
      clearInterval(ticker);
      ticker = setInterval(() => {
        const cell = root.querySelector("#overview-uptime");
        if (cell) cell.textContent = duration(uptime.base + Date.now() - uptime.at);
      }, 1000);
    },
    hide() {
      clearInterval(ticker);
    },
    event(frame) {
      if (frame.event === "presence") {
        entries = (frame.payload || {}).presence || [];
        renderPresence();
      } else if (frame.event === "health" && frame.payload) {
        renderHealth(frame.payload);
      } else if (frame.event === "chat" && (frame.payload || {}).state === "final" && ctx.has("usage.cost")) {
        // a reply was counted: reload the totals once replies settle
        clearTimeout(usageTimer);
        usageTimer = setTimeout(() => ctx.call("usage.cost", { days: 30 }).then(renderUsage, (e) => fill(usage, errorText(e))), 1000);
      }
    },
  };
}
