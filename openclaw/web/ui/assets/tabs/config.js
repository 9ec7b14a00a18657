// Config: the file with secrets redacted; edit and save with the base hash, errors per key.

import { el } from "../lib/session.js";
import { configIssues } from "../lib/records.js";
import { action, badge, card, errorText, fill, note } from "../lib/widgets.js";

export const id = "config";
export const title = "Config";

export function create(ctx) {
  const info = el("div", { id: "config-info" });
  const editor = el("textarea", { id: "config-raw", rows: 24, spellcheck: "false", "aria-label": "Config (JSON5)" });
  const result = el("div", { id: "config-result", role: "status" });
  let loaded = null;

  function issuesList(issues) {
    return el("ul", { class: "issues", id: "config-issues" }, issues.map((i) => el("li", null, i.path ? [el("code", { class: "key" }, i.path), ": "] : null, i.message)));
  }

  async function save(method) {
    fill(result);
    const params = { raw: editor.value };
    if (loaded && loaded.exists && loaded.hash) params.baseHash = loaded.hash;
    try {
      await ctx.call(method, params);
    } catch (e) {
      const issues = configIssues(e);
      if (/changed since last load/.test(e.message || "")) {
        fill(result, el("p", { class: "error" }, "Someone else changed the config since you loaded it. Reload to see their version (copy your edits first)."));
      } else if (issues.length) {
        fill(result, el("p", { class: "error" }, "Not saved: the config has problems."), issuesList(issues));
      } else {
        fill(result, errorText(e));
      }
      return;
    }
    await load(false);
    fill(result, el("p", { class: "ok" }, method === "config.apply" ? "Saved and applied." : "Saved."));
  }

  const buttons = el(
    "div",
    { class: "row toolbar" },
    action("Reload", () => load(true), { id: "config-reload" }),
    action("Save", () => save("config.set"), { class: "primary", id: "config-save" }),
    ctx.has("config.apply") ? action("Save and apply", () => save("config.apply"), { id: "config-apply" }) : null,
  );
  const root = el("section", { class: "tab", id: "tab-config" }, card("Config", info, buttons, editor, result));

  async function load(clearResult) {
    const got = await ctx.call("config.get");
    loaded = got;
    editor.value = got.raw === null || got.raw === undefined ? "{\n}\n" : got.raw;
    fill(
      info,
      el("p", null, el("code", { class: "wrap" }, got.path), " ", got.exists ? badge(got.valid, "valid", "invalid") : note("(no file yet: defaults apply; saving creates it)")),
      note("Secrets show as __OPENCLAW_REDACTED__; leave them so and they stay as they are."),
      got.issues && got.issues.length ? issuesList(got.issues) : null,
      got.warnings && got.warnings.length ? el("details", null, el("summary", null, `${got.warnings.length} warnings`), issuesList(got.warnings)) : null,
    );
    if (clearResult) fill(result);
  }

  return {
    root,
    refresh() {
      load(true).catch((e) => fill(info, errorText(e)));
    },
  };
}
