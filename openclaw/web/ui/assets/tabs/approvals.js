// Approvals: agent commands (exec) waiting for an operator; devices and nodes waiting to pair;
// DM pairing codes where channels offer them.

import { el } from "../lib/session.js";
import { action, ago, card, errorText, fill, note, short, table } from "../lib/widgets.js";

export const id = "approvals";
export const title = "Approvals";

export function create(ctx) {
  const devices = el("div", { id: "approvals-devices" });
  const paired = el("div", { id: "approvals-paired" });
  const nodes = el("div", { id: "approvals-nodes" });
  const dm = el("div", { id: "approvals-dm" });
  const execs = el("div", { id: "approvals-exec" });
  const root = el(
    "section",
    { class: "tab", id: "tab-approvals" },
    card("Commands waiting for approval", execs),
    card("Devices waiting for approval", devices),
    card("Nodes waiting for approval", nodes),
    card("DM pairing codes", dm),
    card("Paired devices", paired),
  );

  function pendingTable(rows, method, kind) {
    return table(
      [
        { label: kind === "node" ? "Node" : "Device", cell: (r) => el("code", { title: r.deviceId || r.nodeId }, short(r.deviceId || r.nodeId, 16)) },
        { label: "Client", cell: (r) => [r.displayName || r.clientId || "", r.platform ? ` (${r.platform})` : ""].join("") },
        { label: "Role", cell: (r) => [r.role || kind, (r.scopes || []).length ? `: ${r.scopes.join(", ")}` : ""].join("") },
        { label: "From", cell: (r) => r.remoteIp || "" },
        { label: "Asked", cell: (r) => ago(r.ts || r.createdAtMs) },
        {
          label: "",
          cell: (r) =>
            el(
              "div",
              { class: "row" },
              action("Approve", async () => { await ctx.call(`${method}.approve`, { requestId: r.requestId }); refresh(); }, { class: "primary", "data-request": r.requestId }),
              action("Reject", async () => { await ctx.call(`${method}.reject`, { requestId: r.requestId }); refresh(); }, { class: "danger" }),
            ),
        },
      ],
      rows,
      kind === "node" ? "No node is waiting." : "No device is waiting.",
    );
  }

  function renderDevices(result) {
    fill(devices, pendingTable(result.pending || [], "device.pair", "device"));
    fill(
      paired,
      table(
        [
          { label: "Device", cell: (r) => el("code", { title: r.deviceId }, short(r.deviceId, 16)) },
          { label: "Client", cell: (r) => r.displayName || r.clientId || "" },
          { label: "Roles", cell: (r) => (r.roles || []).join(", ") },
          { label: "Scopes", cell: (r) => (r.scopes || []).join(", ") },
          { label: "Approved", cell: (r) => ago(r.approvedAtMs) },
          { label: "", cell: (r) => action("Remove", async () => { if (!confirm("Remove this device? It will have to pair again.")) return; await ctx.call("device.pair.remove", { deviceId: r.deviceId }); refresh(); }, { class: "danger" }) },
        ],
        result.paired || [],
        "No devices are paired.",
      ),
    );
  }

  function renderDm(result) {
    const rows = result.requests || result.pending || [];
    fill(
      dm,
      table(
        [
          { label: "Channel", cell: (r) => r.channel || "" },
          { label: "From", cell: (r) => r.senderName || r.from || r.senderId || "" },
          { label: "Code", cell: (r) => el("code", null, r.code || "") },
          { label: "Asked", cell: (r) => ago(r.createdAtMs || r.ts) },
          { label: "", cell: (r) => action("Approve", async () => { await ctx.call("channels.pairing.approve", { channel: r.channel, code: r.code }); refresh(); }, { class: "primary" }) },
        ],
        rows,
        "No one is waiting for a DM pairing code.",
      ),
    );
  }

  function meta(request) {
    const parts = [request.host, request.agentId && `agent ${request.agentId}`, request.sessionKey, request.nodeId && `node ${short(request.nodeId, 12)}`];
    return parts.filter(Boolean).join(" · ");
  }

  function renderExecs(pending) {
    // exec.approval.list: [{id, request: {command, cwd, host, agentId, sessionKey, resolvedPath?, nodeId?}, createdAtMs, expiresAtMs}]
    const decide = (r, decision) => async () => {
      await ctx.call("exec.approval.resolve", { id: r.id, decision });
      refreshExecs();
    };
    if (!pending.length) {
      fill(execs, note("No command is waiting. An agent's exec asks here when the exec policy says so (tools.exec.ask, exec-approvals.json)."));
      return;
    }
    fill(
      execs,
      pending.map((r) =>
        el(
          "div",
          { class: "approval", "data-id": r.id },
          el("pre", null, el("code", { class: "command" }, r.request.command)),
          el("p", { class: "muted small" }, `${meta(r.request)} · expires ${ago(r.expiresAtMs)}`),
          r.request.cwd ? el("p", { class: "muted small wrap" }, `in ${r.request.cwd}`) : null,
          r.request.resolvedPath ? el("p", { class: "muted small wrap" }, `runs ${r.request.resolvedPath}`) : null,
          el(
            "div",
            { class: "row" },
            action("Allow once", decide(r, "allow-once"), { class: "primary", "data-approval": r.id }),
            action("Always allow", decide(r, "allow-always"), { "data-approval-always": r.id }),
            action("Deny", decide(r, "deny"), { class: "danger", "data-approval-deny": r.id }),
          ),
        ),
      ),
    );
  }

  function refreshExecs() {
    if (ctx.has("exec.approval.list")) ctx.call("exec.approval.list").then((r) => renderExecs(Array.isArray(r) ? r : []), (e) => fill(execs, errorText(e)));
    else fill(execs, note("This gateway has no exec approvals."));
  }

  function refresh() {
    refreshExecs();
    ctx.call("device.pair.list").then(renderDevices, (e) => fill(devices, errorText(e)));
    if (ctx.has("node.pair.list")) ctx.call("node.pair.list").then((r) => fill(nodes, pendingTable(r.pending || [], "node.pair", "node")), (e) => fill(nodes, errorText(e)));
    else fill(nodes, note("This gateway has no node pairing."));
    if (ctx.has("channels.pairing.list")) ctx.call("channels.pairing.list", {}).then(renderDm, (e) => fill(dm, errorText(e)));
    else fill(dm, note("DM pairing codes show up here once a messaging channel that uses them is configured."));
  }

  return {
    root,
    refresh,
    event(frame) {
      if (/^(device|node)\.pair\.(requested|resolved)$/.test(frame.event)) refresh();
      else if (/^exec\.approval\.(requested|resolved)$/.test(frame.event)) refreshExecs();
    },
  };
}
