// Skills: skills.status — which skills the agent gets, and why the others are left out.

import { el } from "../lib/session.js";
import { badge, card, errorText, fill, note, table } from "../lib/widgets.js";

export const id = "skills";
export const title = "Skills";

const MISSING = [
  ["bins", "missing bin"],
  ["anyBins", "needs one of the bins"],
  ["env", "missing env"],
  ["config", "config not set"],
  ["os", "only for os"],
];

/** Why a skill is not eligible, in the words `openclaw skills list` uses ("" when it is). */
export function whyNot(skill) {
  if (skill.eligible) return "";
  const reasons = [];
  if (skill.disabled) reasons.push(`disabled in config (skills.entries.${skill.skillKey}.enabled)`);
  if (skill.blockedByAllowlist) reasons.push("not in skills.allowBundled");
  const missing = skill.missing || {};
  for (const [key, label] of MISSING) {
    const list = missing[key] || [];
    if (list.length) reasons.push(`${label}${list.length > 1 && label.startsWith("missing") ? "s" : ""}: ${list.join(", ")}`);
  }
  return reasons.join("; ");
}

export function create(ctx) {
  const list = el("div", { id: "skills-list" });
  const where = el("div", { id: "skills-where" });
  const root = el(
    "section",
    { class: "tab", id: "tab-skills" },
    card("Skills", where, list, note("Enable, disable or give a skill env under skills.entries in the Config tab; the gateway reads skills.* when it starts.")),
  );

  function render(result) {
    const skills = (result.skills || []).slice().sort((a, b) => Number(b.eligible) - Number(a.eligible) || a.name.localeCompare(b.name));
    fill(where, note("Workspace skills: ", el("code", { class: "wrap" }, result.workspaceDir || "?"), " · managed: ", el("code", { class: "wrap" }, result.managedSkillsDir || "?")));
    fill(
      list,
      table(
        [
          { label: "Skill", cell: (s) => el("span", { "data-skill": s.name }, el("strong", null, `${s.emoji ? s.emoji + " " : ""}${s.name}`), el("br"), el("span", { class: "small" }, s.description || "")) },
          { label: "From", cell: (s) => (s.source || "").replace(/^openclaw-/, "") },
          { label: "Eligible", cell: (s) => badge(!!s.eligible) },
          { label: "Why not", cell: (s) => el("span", { class: "skill-why" }, whyNot(s)) },
        ],
        skills,
        "No skills found.",
      ),
    );
  }

  function refresh() {
    if (!ctx.has("skills.status")) {
      fill(list, note("This gateway does not offer skills.status."));
      return;
    }
    ctx.call("skills.status").then(render, (e) => fill(list, errorText(e)));
  }

  return { root, refresh };
}
