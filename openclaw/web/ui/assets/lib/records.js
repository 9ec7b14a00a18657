// Reading what the gateway sends back: log lines and config validation errors.

const KEY = /^[A-Za-z0-9_$-]+(?:\.[A-Za-z0-9_$-]+|\[\d+\])*$/;

export const LEVELS = ["trace", "debug", "info", "warn", "error", "fatal"];

/** A logs.tail line as {ts, level, subsystem, msg, raw}; lines that are not JSON stay text. */
export function parseLogLine(line) {
  let record = null;
  try {
    record = JSON.parse(line);
  } catch {
    // not JSON
  }
  if (!record || typeof record !== "object" || Array.isArray(record)) return { ts: "", level: "info", subsystem: "", msg: String(line), raw: String(line) };
  const level = String(record.level || (record._meta && record._meta.logLevelName) || "info").toLowerCase();
  return {
    ts: String(record.ts || record.time || ""),
    level: LEVELS.includes(level) ? level : "info",
    subsystem: String(record.subsystem || ""),
    msg: String(record.msg ?? record.message ?? record["0"] ?? ""),
    raw: String(line),
  };
}

/** Whether a parsed line passes a minimum level and a case-insensitive text filter. */
export function logMatches(entry, minLevel, text) {
  if (minLevel && LEVELS.indexOf(entry.level) < LEVELS.indexOf(minLevel)) return false;
  if (text && !entry.raw.toLowerCase().includes(text.toLowerCase())) return false;
  return true;
}

/**
 * The per-key problems in a config.set/config.apply error: [{path, message}].
 * The gateway says "invalid config: a.b: what; c: what" (details.issues when given).
 */
export function configIssues(error) {
  const given = error && error.details && Array.isArray(error.details.issues) ? error.details.issues : null;
  if (given) return given.map((i) => ({ path: String(i.path || ""), message: String(i.message || "") }));
  const message = String((error && error.message) || error || "");
  const match = /^invalid (?:config|config\.\w+ params): ([\s\S]*)$/.exec(message);
  if (!match) return [];
  const issues = [];
  for (const part of match[1].split("; ")) {
    // "a.b: what" starts an issue; anything else ("allowed: x, y") goes on the one before
    const at = part.indexOf(": ");
    const key = at > 0 ? part.slice(0, at) : "";
    if (key && KEY.test(key) && key !== "allowed") issues.push({ path: key, message: part.slice(at + 2) });
    else if (issues.length) issues[issues.length - 1].message += `; ${part}`;
    else issues.push({ path: "", message: part });
  }
  return issues;
}
