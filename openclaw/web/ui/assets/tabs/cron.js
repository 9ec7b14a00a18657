// Scheduled work: heartbeats, and cron jobs when the gateway offers cron.*.

import { el } from "../lib/session.js";
import { action, ago, badge, card, errorText, fill, note, table, when } from "../lib/widgets.js";

export const id = "cron";
export const title = "Scheduled";

function schedule(job) {
  const s = job.schedule || {};
  if (s.kind === "cron") return `cron ${s.expr}${s.tz ? ` (${s.tz})` : ""}`;
  if (s.kind === "every") return `every ${Math.round((s.everyMs || 0) / 1000)} s`;
  if (s.kind === "at") return `at ${s.at || when(s.atMs)}`;
  return s.kind || "?";
}

export function create(ctx) {
  const heartbeat = el("div", { id: "cron-heartbeat" });
  const jobs = el("div", { id: "cron-jobs" });
  const runs = el("div", { id: "cron-runs" });
  const root = el("section", { class: "tab", id: "tab-cron" }, card("Heartbeats", heartbeat), card("Cron jobs", jobs, runs));

  async function loadHeartbeat() {
    const parts = [];
    if (ctx.has("status")) {
      const status = await ctx.call("status");
      const agent = (((status || {}).heartbeat || {}).agents || [])[0];
      if (agent) {
        parts.push(el("p", null, badge(agent.enabled, "enabled", "disabled"), ` every ${agent.every || "?"}`));
        if (ctx.has("set-heartbeats")) {
          parts.push(action(agent.enabled ? "Disable heartbeats" : "Enable heartbeats", async () => { await ctx.call("set-heartbeats", { enabled: !agent.enabled }); loadHeartbeat(); }));
        }
      }
    }
    if (ctx.has("last-heartbeat")) {
      const last = await ctx.call("last-heartbeat");
      parts.push(note(last ? `Last heartbeat: ${last.status || ""} ${ago(last.ts)}` : "No heartbeat has run yet."));
    }
    fill(heartbeat, parts.length ? parts : note("This gateway has no heartbeat controls."));
  }

  async function history(job) {
    const result = await ctx.call("cron.runs", { id: job.id, limit: 20 });
    fill(
      runs,
      el("h3", null, `Runs of ${job.name || job.id}`),
      table(
        [
          { label: "When", cell: (r) => when(r.runAtMs || r.ts) },
          { label: "Status", cell: (r) => r.status || r.action || "" },
          { label: "Took", cell: (r) => (r.durationMs ? `${Math.round(r.durationMs / 1000)} s` : "") },
          { label: "Summary", cell: (r) => r.error || r.summary || "" },
        ],
        result.entries || [],
        "No runs yet.",
      ),
    );
  }

  function renderJobs(list) {
    fill(
      jobs,
      table(
        [
          { label: "Job", cell: (j) => j.name || j.id },
          { label: "Schedule", cell: schedule },
          { label: "Enabled", cell: (j) => badge(j.enabled !== false) },
          { label: "Next", cell: (j) => when((j.state || {}).nextRunAtMs) },
          { label: "Last", cell: (j) => [(j.state || {}).lastRunStatus || (j.state || {}).lastStatus || "", " ", ago((j.state || {}).lastRunAtMs)].join("") },
          {
            label: "",
            cell: (j) =>
              el(
                "div",
                { class: "row" },
                ctx.has("cron.update") ? action(j.enabled !== false ? "Disable" : "Enable", async () => { await ctx.call("cron.update", { id: j.id, patch: { enabled: j.enabled === false } }); refresh(); }) : null,
                ctx.has("cron.run") ? action("Run now", async () => { await ctx.call("cron.run", { id: j.id, mode: "force" }); refresh(); }) : null,
                ctx.has("cron.runs") ? action("History", () => history(j)) : null,
              ),
          },
        ],
        list,
        "No cron jobs yet.",
      ),
    );
  }

  function refresh() {
    loadHeartbeat().catch((e) => fill(heartbeat, errorText(e)));
    fill(runs);
    if (!ctx.has("cron.list")) {
      fill(jobs, note("No scheduler in this gateway yet: cron jobs show up here once it offers the cron methods."));
      return;
    }
    ctx.call("cron.list", { includeDisabled: true }).then((r) => renderJobs(r.jobs || []), (e) => fill(jobs, errorText(e)));
  }

  return {
    root,
    refresh,
    event(frame) {
      if ((frame.event === "cron" || frame.event === "heartbeat") && !root.hidden) refresh();
    },
  };
}
