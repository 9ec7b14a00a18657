// The Control UI: tabs as path routes under the base path, each a module in tabs/.

import { $, basePath, el, startSession } from "./lib/session.js";
import * as overview from "./tabs/overview.js";
import * as channels from "./tabs/channels.js";
import * as sessions from "./tabs/sessions.js";
import * as approvals from "./tabs/approvals.js";
import * as nodes from "./tabs/nodes.js";
import * as cron from "./tabs/cron.js";
import * as skills from "./tabs/skills.js";
import * as logs from "./tabs/logs.js";
import * as config from "./tabs/config.js";

const TABS = [overview, channels, sessions, approvals, nodes, cron, skills, logs, config];
let client = null;
let hello = null;
let current = null;
const views = new Map();

const ctx = {
  call: (method, params, timeoutMs) => (client ? client.request(method, params, timeoutMs) : Promise.reject(new Error("not connected"))),
  has: (method) => !!client && client.has(method),
  hello: () => hello,
  go: (id) => navigate(TABS.find((t) => t.id === id) || overview),
};

function tabFromPath() {
  const rest = location.pathname.slice(basePath().length).replace(/\/$/, "");
  return TABS.find((t) => t.id === rest) || overview;
}

function view(tab) {
  if (!views.has(tab.id)) {
    const v = tab.create(ctx);
    v.root.hidden = true;
    $("#app").append(v.root);
    views.set(tab.id, { ...v, stale: true });
  }
  return views.get(tab.id);
}

function show(tab) {
  if (current && current !== tab) {
    const old = view(current);
    old.root.hidden = true;
    if (old.hide) old.hide();
  }
  current = tab;
  for (const link of document.querySelectorAll("#tabs a")) {
    if (link.dataset.tab === tab.id) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
  document.title = `${tab.title} · OpenClaw`;
  if (!hello) return;
  const v = view(tab);
  v.root.hidden = false;
  if (v.stale) {
    v.stale = false;
    v.refresh();
  }
  if (v.show) v.show();
}

function navigate(tab) {
  const path = basePath() + (tab === overview ? "" : tab.id);
  if (location.pathname !== path) history.pushState(null, "", path);
  show(tab);
}

// Exec approvals waiting (id → expiresAtMs): counted on the Approvals link from any tab.
const waiting = new Map();

function markApprovals() {
  const now = Date.now();
  for (const [id, at] of waiting) if (at && at <= now) waiting.delete(id);
  const link = document.querySelector('#tabs a[data-tab="approvals"]');
  if (link) link.textContent = waiting.size ? `${approvals.title} (${waiting.size})` : approvals.title;
}

function trackApproval(frame) {
  const payload = frame.payload || {};
  if (!payload.id) return;
  if (frame.event === "exec.approval.requested") {
    waiting.set(payload.id, payload.expiresAtMs || 0);
    if (payload.expiresAtMs) setTimeout(markApprovals, Math.max(0, payload.expiresAtMs - Date.now()) + 500);
  } else {
    waiting.delete(payload.id);
  }
  markApprovals();
}

function buildNav() {
  const nav = $("#tabs");
  for (const tab of TABS) {
    const link = el("a", { href: new URL(tab === overview ? "./" : tab.id, document.baseURI).href, "data-tab": tab.id }, tab.title);
    link.addEventListener("click", (e) => {
      if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey) return;
      e.preventDefault();
      navigate(tab);
    });
    nav.append(link);
  }
}

buildNav();
window.addEventListener("popstate", () => show(tabFromPath()));
show(tabFromPath());

startSession({
  clientId: "openclaw-control-ui",
  mode: "ui",
  displayName: "Control UI",
  onHello(c, h) {
    client = c;
    hello = h;
    // Everything may have changed while we were away: each tab reloads when next shown.
    for (const v of views.values()) v.stale = true;
    show(current || tabFromPath());
    waiting.clear();
    markApprovals();
    if (c.has("exec.approval.list")) {
      c.request("exec.approval.list").then((list) => {
        for (const r of Array.isArray(list) ? list : []) waiting.set(r.id, r.expiresAtMs || 0);
        markApprovals();
      }, () => {});
    }
  },
  onEvent(frame) {
    if (frame.event === "exec.approval.requested" || frame.event === "exec.approval.resolved") trackApproval(frame);
    for (const v of views.values()) if (v.event) v.event(frame);
  },
});
