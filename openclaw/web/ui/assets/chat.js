// WebChat: one session's history, streamed replies, Stop, tool cards when verbose.

import { clear } from "./lib/dom.js";
import { renderMarkdown } from "./lib/markdown.js";
import { $, copyText, el, formatError, startSession } from "./lib/session.js";

const IMAGE_TYPES = ["image/png", "image/jpeg", "image/gif", "image/webp"];
const messages = $("#messages");
const input = $("#input");
const sendButton = $("#send");
const stopButton = $("#stop");
const picker = $("#session");
const verboseBox = $("#verbose");

const state = {
  client: null,
  sessionKey: new URLSearchParams(location.search).get("session") || null,
  verbose: false,
  runs: new Map(), // runId → {article, body, tools, text}
  active: new Set(), // runs of this session still going
  mine: new Set(), // runs this page started (their user bubble is here already)
  ended: new Set(), // runs seen to end (an ack may arrive after a quick run's last event)
};

const REMEMBERED_RUNS = 500;

/** Add to a set of run ids, forgetting the oldest past a bound. */
function remember(set, value) {
  set.add(value);
  if (set.size > REMEMBERED_RUNS) set.delete(set.values().next().value);
}

function call(method, params, timeoutMs) {
  return state.client ? state.client.request(method, params, timeoutMs) : Promise.reject(new Error("not connected"));
}

function uuid() {
  return crypto.randomUUID();
}

function textOf(message) {
  if (!message) return "";
  if (typeof message.content === "string") return message.content;
  return (Array.isArray(message.content) ? message.content : [])
    .filter((p) => p && p.type === "text" && typeof p.text === "string")
    .map((p) => p.text)
    .join("");
}

function imagesOf(message) {
  const parts = message && Array.isArray(message.content) ? message.content : [];
  return parts
    .map((p) => {
      if (!p || p.type !== "image") return null;
      const source = p.source || p;
      const type = source.mimeType || source.media_type;
      const data = source.data;
      if (!IMAGE_TYPES.includes(type) || typeof data !== "string" || !/^[A-Za-z0-9+/=\s]+$/.test(data)) return null;
      return el("img", { class: "attachment", alt: "attached image", src: `data:${type};base64,${data.replace(/\s/g, "")}` });
    })
    .filter(Boolean);
}

function nearBottom() {
  return messages.scrollHeight - messages.scrollTop - messages.clientHeight < 80;
}

function scrollDown(force) {
  if (force || nearBottom()) messages.scrollTop = messages.scrollHeight;
}

function article(role, ...children) {
  const body = el("div", { class: "body" }, ...children);
  const node = el("article", { class: `msg ${role}` }, body);
  const stick = nearBottom();
  messages.append(node);
  scrollDown(stick);
  return { article: node, body };
}

function userMessage(text, images = []) {
  return article("user", el("div", { class: "text" }, text), ...images);
}

function markdown(text) {
  return renderMarkdown(document, text, { copy: copyText });
}

function toolCard(name, args) {
  const card = el(
    "details",
    { class: "tool" },
    el("summary", null, el("span", { class: "tool-name" }, name || "tool"), el("span", { class: "tool-state" }, " running…")),
    el("pre", { class: "json" }, typeof args === "string" ? args : JSON.stringify(args ?? {}, null, 2)),
  );
  return card;
}

function toolResult(card, result, isError) {
  const stateLabel = card.querySelector(".tool-state");
  if (stateLabel) stateLabel.textContent = isError ? " failed" : " done";
  card.classList.toggle("failed", !!isError);
  card.append(el("pre", { class: "result" }, String(result ?? "")));
}

function renderHistory(list) {
  clear(messages);
  state.runs.clear();
  const cards = new Map();
  for (const message of list) {
    if (message.role === "user") {
      userMessage(textOf(message), imagesOf(message));
    } else if (message.role === "assistant") {
      const text = textOf(message);
      const calls = (Array.isArray(message.content) ? message.content : []).filter((p) => p && p.type === "toolCall");
      if (!text && !(state.verbose && calls.length)) continue;
      const view = article(message.injected ? "assistant note" : "assistant", text ? markdown(text) : null, ...imagesOf(message));
      if (state.verbose) {
        for (const c of calls) {
          const card = toolCard(c.name, c.arguments);
          cards.set(c.id, card);
          view.body.append(card);
        }
      }
    } else if (message.role === "toolResult" && state.verbose) {
      const card = cards.get(message.toolCallId);
      if (card) toolResult(card, textOf(message), message.isError);
    }
  }
  if (!list.length) messages.append(el("p", { class: "muted empty" }, "No messages yet. Say hello."));
  scrollDown(true);
}

async function loadHistory() {
  const key = state.sessionKey;
  try {
    const history = await call("chat.history", { sessionKey: key, limit: 200 });
    if (key === state.sessionKey) renderHistory(history.messages || []);
  } catch (e) {
    clear(messages).append(el("p", { class: "error", role: "alert" }, `Could not load the history: ${formatError(e)}`));
  }
}

async function loadSessions() {
  const hello = state.client.hello || {};
  const main = (hello.snapshot && hello.snapshot.sessionDefaults && hello.snapshot.sessionDefaults.mainSessionKey) || "agent:main:main";
  let rows = [];
  try {
    rows = (await call("sessions.list", {})).sessions || [];
  } catch (e) {
    rows = [];
  }
  if (!state.sessionKey) state.sessionKey = main;
  const known = new Map(rows.map((r) => [r.key, r]));
  for (const key of [main, state.sessionKey]) if (!known.has(key)) known.set(key, { key, displayName: key === main ? "main" : key });
  const ordered = [...known.values()].sort((a, b) => (a.key === main ? -1 : b.key === main ? 1 : (b.updatedAt || 0) - (a.updatedAt || 0)));
  clear(picker).append(...ordered.map((r) => el("option", { value: r.key, selected: r.key === state.sessionKey }, r.key === main ? `main${r.displayName && r.displayName !== "main" ? ` (${r.displayName})` : ""}` : r.displayName || r.key)));
  const row = known.get(state.sessionKey) || {};
  state.verbose = row.verboseLevel === "on";
  verboseBox.checked = state.verbose;
  state.active = new Set(row.activeRunIds || []);
  updateButtons();
}

function updateButtons() {
  const connected = !!(state.client && state.client.connected);
  sendButton.disabled = !connected;
  stopButton.disabled = !connected || state.active.size === 0;
  document.body.classList.toggle("busy", state.active.size > 0);
}

function runView(runId) {
  let run = state.runs.get(runId);
  if (!run) {
    const view = article("assistant streaming");
    run = { ...view, tools: new Map(), text: "" };
    state.runs.set(runId, run);
    const empty = messages.querySelector(".empty");
    if (empty) empty.remove();
  }
  return run;
}

function showText(run, text) {
  const stick = nearBottom();
  run.text = text;
  const old = run.body.querySelector(":scope > .md");
  const fresh = markdown(text);
  if (old) old.replaceWith(fresh);
  else run.body.prepend(fresh);
  scrollDown(stick);
}

function onChat(p) {
  if (p.sessionKey !== state.sessionKey || !p.runId) return;
  if (p.state === "final" && !state.mine.has(p.runId) && !state.runs.has(p.runId) && !String(p.runId).startsWith("inject-")) {
    loadHistory(); // a run started elsewhere (another tab, the CLI): the transcript has both sides
    return;
  }
  const run = runView(p.runId);
  const text = textOf(p.message);
  if (p.state === "delta") {
    state.active.add(p.runId);
    if (text) showText(run, text);
  } else {
    state.active.delete(p.runId);
    remember(state.ended, p.runId);
    run.article.classList.remove("streaming");
    if (p.state === "final") {
      if (text) showText(run, text);
      else if (!run.text) run.body.append(el("p", { class: "muted" }, "(no reply)"));
    } else if (p.state === "aborted") {
      run.article.classList.add("stopped");
      run.body.append(el("p", { class: "muted stop-note" }, "Stopped."));
    } else if (p.state === "error") {
      run.article.classList.add("failed");
      run.body.append(el("p", { class: "error", role: "alert" }, p.errorMessage || "The run failed."));
    }
  }
  updateButtons();
}

function onAgent(p) {
  if (p.sessionKey !== state.sessionKey || !p.runId) return;
  const data = p.data || {};
  if (p.stream === "lifecycle") {
    if (data.phase === "start" && !state.ended.has(p.runId)) state.active.add(p.runId);
    else if (data.phase === "end" || data.phase === "error") state.active.delete(p.runId);
    updateButtons();
    return;
  }
  if (p.stream !== "tool" || !state.verbose) return;
  const run = runView(p.runId);
  if (data.phase === "start") {
    const card = toolCard(data.name, data.args);
    run.tools.set(data.toolCallId, card);
    run.body.append(card);
    scrollDown(false);
  } else if (data.phase === "result") {
    const card = run.tools.get(data.toolCallId);
    if (card) toolResult(card, data.result, data.isError);
  }
}

async function send(text, key, bubble) {
  const view = bubble || userMessage(text);
  const old = view.body.querySelector(".send-error");
  if (old) old.remove();
  remember(state.mine, key);
  const empty = messages.querySelector(".empty");
  if (empty) empty.remove();
  try {
    await call("chat.send", { sessionKey: state.sessionKey, message: text, idempotencyKey: key });
    if (!state.ended.has(key)) state.active.add(key);
    updateButtons();
  } catch (e) {
    const retry = el("button", { type: "button", class: "link", on: { click: () => send(text, key, view) } }, "Retry");
    view.body.append(el("p", { class: "error send-error", role: "alert" }, `Not sent: ${formatError(e)} `, retry));
  }
}

async function stop() {
  if (!state.active.size) return;
  stopButton.disabled = true;
  try {
    await call("chat.abort", { sessionKey: state.sessionKey });
  } catch (e) {
    messages.append(el("p", { class: "error", role: "alert" }, `Could not stop: ${formatError(e)}`));
  }
  updateButtons();
}

function submit() {
  const text = input.value.trim();
  if (!text || sendButton.disabled) return;
  input.value = "";
  autosize();
  send(text, uuid());
}

function autosize() {
  input.style.height = "auto";
  input.style.height = `${Math.min(input.scrollHeight, Math.round(window.innerHeight * 0.4))}px`;
}

$("#composer").addEventListener("submit", (e) => {
  e.preventDefault();
  submit();
});
input.addEventListener("keydown", (e) => {
  if (e.key === "Enter" && !e.shiftKey && !e.isComposing && e.keyCode !== 229) {
    e.preventDefault();
    submit();
  } else if (e.key === "Escape") {
    e.preventDefault();
    stop();
  }
});
input.addEventListener("input", autosize);
stopButton.addEventListener("click", stop);
picker.addEventListener("change", async () => {
  state.sessionKey = picker.value;
  const url = new URL(location.href);
  url.searchParams.set("session", state.sessionKey);
  history.replaceState(null, "", url);
  state.runs.clear();
  await loadSessions();
  await loadHistory();
  input.focus();
});
verboseBox.addEventListener("change", async () => {
  try {
    await call("sessions.patch", { key: state.sessionKey, verboseLevel: verboseBox.checked ? "on" : "off" });
    state.verbose = verboseBox.checked;
    await loadHistory();
  } catch (e) {
    verboseBox.checked = state.verbose;
    messages.append(el("p", { class: "error", role: "alert" }, `Could not change tool display: ${formatError(e)}`));
  }
});

startSession({
  clientId: "webchat-ui",
  mode: "webchat",
  displayName: "WebChat",
  async onHello(client) {
    if (state.client !== client) {
      state.client = client;
      client.on("state", updateButtons);
    }
    await loadSessions();
    await loadHistory();
    updateButtons();
    input.focus();
  },
  onEvent(frame) {
    if (frame.event === "chat") onChat(frame.payload || {});
    else if (frame.event === "agent") onAgent(frame.payload || {});
  },
});
