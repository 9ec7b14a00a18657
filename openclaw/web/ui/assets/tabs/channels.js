// Channels: status per channel account, QR login and logout where the gateway offers them.

import { el } from "../lib/session.js";
import { action, ago, badge, card, errorText, fill, note, table } from "../lib/widgets.js";

export const id = "channels";
export const title = "Channels";

const QR = /^data:image\/png;base64,[A-Za-z0-9+/=]+$/;

export function create(ctx) {
  const body = el("div", { id: "channels-body" });
  const login = el("div", { id: "channels-login" });
  const root = el("section", { class: "tab", id: "tab-channels" }, card("Channels", body, login));

  async function startLogin(channel, accountId) {
    const started = await ctx.call("web.login.start", { ...(accountId ? { accountId } : {}), force: false }, 60000);
    const qr = started && typeof started.qrDataUrl === "string" && QR.test(started.qrDataUrl) ? el("img", { class: "qr", alt: "Login QR code", src: started.qrDataUrl }) : null;
    fill(login, el("h3", null, `Log in: ${channel}`), el("p", null, (started && started.message) || "Scan the code with the app."), qr);
    if (ctx.has("web.login.wait")) {
      const done = await ctx.call("web.login.wait", accountId ? { accountId } : {}, 180000);
      fill(login, el("p", null, (done && done.message) || (done && done.connected ? "Connected." : "Login ended.")));
      refresh();
    }
  }

  function accountsOf(status, channel) {
    const accounts = (status.channelAccounts || {})[channel];
    if (Array.isArray(accounts) && accounts.length) return accounts;
    return [{ accountId: (status.channelDefaultAccountId || {})[channel] || "default", ...((status.channels || {})[channel] || {}) }];
  }

  function render(status) {
    const order = status.channelOrder || [];
    if (!order.length) {
      fill(body, note("No channels are configured. Add one under ", el("code", null, "channels"), " in the Config tab; it shows up here with its status."));
      return;
    }
    const rows = order.flatMap((channel) => accountsOf(status, channel).map((account) => ({ channel, account })));
    fill(
      body,
      table(
        [
          { label: "Channel", cell: (r) => ((status.channelLabels || {})[r.channel] || r.channel) + (r.account.accountId && r.account.accountId !== "default" ? ` (${r.account.accountId})` : "") },
          { label: "Configured", cell: (r) => badge(r.account.configured !== false) },
          { label: "Running", cell: (r) => badge(!!r.account.running) },
          { label: "Connected", cell: (r) => badge(!!r.account.connected) },
          { label: "Last in", cell: (r) => ago(r.account.lastInboundAt) },
          { label: "Last out", cell: (r) => ago(r.account.lastOutboundAt) },
          { label: "Last error", cell: (r) => (r.account.lastError ? el("span", { class: "error" }, String(r.account.lastError)) : "") },
          {
            label: "",
            cell: (r) =>
              el(
                "div",
                { class: "row" },
                ctx.has("web.login.start") ? action("Log in", () => startLogin(r.channel, r.account.accountId)) : null,
                ctx.has("channels.logout") ? action("Log out", async () => { await ctx.call("channels.logout", { channel: r.channel, accountId: r.account.accountId }); refresh(); }) : null,
              ),
          },
        ],
        rows,
      ),
    );
  }

  function refresh() {
    if (!ctx.has("channels.status")) {
      fill(body, note("No channels are configured: this gateway does not run messaging channels yet."));
      return;
    }
    fill(body, note("Loading…"));
    ctx.call("channels.status", { probe: false }).then(render, (e) => fill(body, errorText(e)));
  }

  return { root, refresh };
}
