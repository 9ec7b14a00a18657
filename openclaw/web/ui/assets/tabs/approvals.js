// Approvals: devices and nodes waiting to pair; DM pairing codes where channels offer them.

import { el } from "../lib/session.js";
import { action, ago, card, errorText, fill, note, short, table } from "../lib/widgets.js";

export const id = "approvals";
export const title = "Approvals";

export function create(ctx) {
  const devices = el("div", { id: "approvals-devices" });
  const paired = el("div", { id: "approvals-paired" });
  const nodes = el("div", { id: "approvals-nodes" });
  const dm = el("div", { id: "approvals-dm" });
  const root = el(
    "section",
    { class: "tab", id: "tab-approvals" },
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

  function refresh() {
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
    },
  };
}
