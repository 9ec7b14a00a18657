// Run by tests/test_webui_js.py under node: the Web UI's page logic that needs no browser.
// argv[2] is the assets folder. Prints "ok", then one JSON line: a signed connect for Python to verify.
import assert from "node:assert/strict";
import { pathToFileURL } from "node:url";
import path from "node:path";

const assets = process.argv[2];
const load = (name) => import(pathToFileURL(path.join(assets, name)).href);
const { renderMarkdown } = await load("lib/markdown.js");
const { safeHref, h } = await load("lib/dom.js");
const { backoffDelay, RECONNECT, PAIRING } = await load("lib/backoff.js");
const { signaturePayload, signConnect, createIdentity, loadOrCreateIdentity, b64url } = await load("lib/identity.js");
const { GatewayClient, classifyRefusal } = await load("lib/gateway.js");
const { takeLinkToken, CredentialStore, authOf } = await load("lib/credentials.js");
const { parseLogLine, logMatches, configIssues } = await load("lib/records.js");

// -- a minimal DOM: elements and text nodes, serialised for comparisons
class Text {
  constructor(text) { this.nodeType = 3; this.textContent = text; }
}
class Element {
  constructor(tag) { this.nodeType = 1; this.tagName = tag.toUpperCase(); this.children = []; this.attrs = {}; this.listeners = {}; this.className = ""; }
  appendChild(c) { this.children.push(c); return c; }
  removeChild(c) { this.children.splice(this.children.indexOf(c), 1); return c; }
  get firstChild() { return this.children[0] || null; }
  setAttribute(k, v) { this.attrs[k] = String(v); }
  getAttribute(k) { return k in this.attrs ? this.attrs[k] : null; }
  addEventListener(type, fn) { (this.listeners[type] ||= []).push(fn); }
  set textContent(t) { this.children = [new Text(String(t))]; }
  get textContent() { return this.children.map((c) => c.textContent).join(""); }
}
const doc = { createElement: (t) => new Element(t), createTextNode: (t) => new Text(t) };
const esc = (t) => t.replace(/&/g, "&amp;").replace(/</g, "&lt;").replace(/>/g, "&gt;");
function html(node) {
  if (node.nodeType === 3) return esc(node.textContent);
  const attrs = Object.entries(node.attrs).map(([k, v]) => ` ${k}="${v}"`).join("") + (node.className ? ` class="${node.className}"` : "");
  const tag = node.tagName.toLowerCase();
  if (tag === "br" || tag === "hr") return `<${tag}${attrs}>`;
  return `<${tag}${attrs}>${node.children.map(html).join("")}</${tag}>`;
}
function all(node, tag, found = []) {
  if (node.nodeType === 1) {
    if (node.tagName === tag.toUpperCase()) found.push(node);
    node.children.forEach((c) => all(c, tag, found));
  }
  return found;
}
const md = (text, options) => renderMarkdown(doc, text, options);
const inner = (text) => html(md(text)).replace(/^<div class="md">|<\/div>$/g, "");

// -- markdown: structure
assert.equal(inner("Hello **bold** and *it* and `code`"), "<p>Hello <strong>bold</strong> and <em>it</em> and <code>code</code></p>");
assert.equal(inner("# Title\n\npara one\nline two"), "<h1>Title</h1><p>para one<br>line two</p>");
assert.equal(inner("- a\n- b\n  - c"), "<ul><li><p>a</p></li><li><p>b</p><ul><li><p>c</p></li></ul></li></ul>");
assert.equal(inner("3. x\n4. y"), '<ol start="3"><li><p>x</p></li><li><p>y</p></li></ol>');
assert.equal(inner("> quoted\n> more"), "<blockquote><p>quoted<br>more</p></blockquote>");
assert.equal(inner("a ~~gone~~ b\n\n---"), "<p>a <del>gone</del> b</p><hr>");
assert.equal(inner("snake_case_name stays"), "<p>snake_case_name stays</p>");
assert.equal(inner("\\*not em\\*"), "<p>*not em*</p>");

// -- markdown: code blocks keep their text and get a Copy button
const copied = [];
const block = md("```js\nconst a = '<b>';\n```", { copy: (text) => copied.push(text) });
const [code] = all(block, "code");
assert.equal(code.textContent, "const a = '<b>';");
assert.equal(code.className, "language-js");
const [copy] = all(block, "button");
copy.listeners.click[0]();
assert.deepEqual(copied, ["const a = '<b>';"]);
assert.equal(all(md("```\nunclosed while streaming"), "code")[0].textContent, "unclosed while streaming");
assert.equal(all(md("```\"><img>\nx\n```"), "code")[0].className, "");
assert.equal(all(md("```py extra words\nx\n```"), "code")[0].className, "language-py");

// -- markdown: untrusted text never becomes markup
const evil = md('Hi <img src=x onerror="globalThis.pwned=1"> <script>alert(1)</script>\n\n[click](javascript:alert(1)) [x](JAVASCRIPT:alert(2)) [y](java\tscript:alert(3)) [d](data:text/html,<b>) [r](/relative) ![i](https://example.com/i.png)');
assert.equal(all(evil, "img").length, 0);
assert.equal(all(evil, "script").length, 0);
assert.equal(all(evil, "a").length, 0, html(evil));
assert.ok(evil.textContent.includes('<img src=x onerror="globalThis.pwned=1">'));
assert.ok(evil.textContent.includes("[click](javascript:alert(1))"));
assert.ok(evil.textContent.includes("![i](https://example.com/i.png)"));
const links = all(md("[site](https://example.com/a_(b)) <https://x.example/p> see https://y.example/q. and [m](mailto:me@example.com)"), "a");
assert.deepEqual(links.map((a) => a.getAttribute("href")), ["https://example.com/a_(b)", "https://x.example/p", "https://y.example/q", "mailto:me@example.com"]);
for (const a of links) {
  assert.equal(a.getAttribute("rel"), "noopener noreferrer nofollow");
  assert.equal(a.getAttribute("target"), "_blank");
}
assert.equal(all(md("[**bold** link](https://example.com)"), "strong").length, 1);
assert.equal(all(md("[[nested](https://a.example)](https://b.example)"), "a").length, 1);
assert.equal(safeHref("https://ok.example/"), "https://ok.example/");
for (const bad of ["javascript:x", " javascript:x", "vbscript:x", "data:text/html,x", "/x", "//evil.example", "java\nscript:x", "file:///etc/passwd", ""]) assert.equal(safeHref(bad), null, bad);
assert.throws(() => h(doc, "a", { onclick: "x" }), /refusing/);
assert.throws(() => h(doc, "div", { style: "x" }), /refusing/);

// -- markdown: bounded work on hostile input (no quadratic blow-up)
let started = Date.now();
md("*".repeat(100000) + "_[`<".repeat(20000));
md("[".repeat(50000) + "](" + "(".repeat(50000));
assert.ok(Date.now() - started < 5000, `slow: ${Date.now() - started} ms`);
const huge = md("x".repeat(250000));
assert.equal(huge.textContent.length, 250000);

// -- backoff: grows, capped, jittered within bounds
assert.equal(backoffDelay(0, RECONNECT, () => 0.5), 500);
assert.equal(backoffDelay(3, RECONNECT, () => 0.5), 4000);
assert.equal(backoffDelay(100, RECONNECT, () => 0.999), 30000);
assert.equal(backoffDelay(-5, RECONNECT, () => 0.5), 500);
for (let i = 0; i < 200; i++) {
  const d = backoffDelay(i % 12, RECONNECT);
  const raw = Math.min(30000, 500 * 2 ** (i % 12));
  assert.ok(d >= raw * 0.75 - 1 && d <= Math.min(30000, raw * 1.25) + 1, `${i}: ${d}`);
}
assert.ok(backoffDelay(50, PAIRING, () => 1) <= PAIRING.max);

// -- signature payload: the CLI's v3 layout
assert.equal(
  signaturePayload({ deviceId: "dev", client: { id: "webchat-ui", mode: "webchat", platform: " Web ", deviceFamily: "Browser" }, role: "operator", scopes: ["operator.read", "operator.write"], signedAt: 1700000000000, token: "tok", nonce: "n-1" }),
  "v3|dev|webchat-ui|webchat|operator|operator.read,operator.write|1700000000000|tok|n-1|web|browser",
);
assert.equal(signaturePayload({ deviceId: "d", client: { id: "c", mode: "ui" }, signedAt: 1, nonce: "n" }), "v3|d|c|ui|operator||1||n||");
assert.equal(b64url(new Uint8Array([251, 255, 254])), "-__-");

// -- identity store: one identity; a second tab that lost the race uses the winner's
const memory = { value: undefined };
const store = {
  get: async () => memory.value,
  add: async (r) => { if (memory.value) throw new Error("ConstraintError"); memory.value = r; },
  clear: async () => { memory.value = undefined; },
};
const first = await loadOrCreateIdentity(store, crypto.subtle);
assert.equal(first.privateKey.extractable, false);
assert.equal((await loadOrCreateIdentity(store, crypto.subtle)).id, first.id);
const racing = { ...store, get: (() => { let n = 0; return async () => (n++ ? memory.value : undefined); })() };
assert.equal((await loadOrCreateIdentity(racing, crypto.subtle)).id, first.id);

// -- the client: challenge → signed connect → hello; pairing retried by itself; bad token is final
class FakeSocket {
  static all = [];
  constructor(url) { this.url = url; this.sent = []; this.readyState = 0; FakeSocket.all.push(this); }
  open() { this.readyState = 1; this.onopen && this.onopen(); }
  send(text) { this.sent.push(JSON.parse(text)); }
  push(frame) { this.onmessage({ data: JSON.stringify(frame) }); }
  close(code = 1000, reason = "") { if (this.readyState === 3) return; this.readyState = 3; this.onclose && this.onclose({ code, reason }); }
}
const timers = [];
const fakeTimers = { setTimeout: (fn, ms) => { timers.push({ fn, ms }); return timers.length; }, clearTimeout: (id) => { if (timers[id - 1]) timers[id - 1].fn = null; } };
const runTimer = (ms) => { const t = timers.find((x) => x.fn && x.ms === ms); assert.ok(t, `no timer of ${ms} ms in ${JSON.stringify(timers.filter((x) => x.fn).map((x) => x.ms))}`); const fn = t.fn; t.fn = null; fn(); };
const tick = () => new Promise((r) => setTimeout(r, 0));
const sentConnect = async (socket) => {
  for (let i = 0; i < 400 && !socket.sent.length; i++) await new Promise((r) => setTimeout(r, 5)); // signing is asynchronous
  return socket.sent[0];
};
const identity = await createIdentity(crypto.subtle);
const states = [];
const client = new GatewayClient({
  url: "ws://127.0.0.1:1/",
  client: { id: "openclaw-control-ui", mode: "ui", version: "1.0", platform: "web", deviceFamily: "browser" },
  credentials: authOf({ kind: "token", secret: "tok-1" }),
  identity,
  WebSocket: FakeSocket,
  timers: fakeTimers,
  random: () => 0.5,
});
client.on("state", (s) => states.push(s.phase));
client.start();
let ws = FakeSocket.all.at(-1);
ws.open();
ws.push({ type: "event", event: "connect.challenge", payload: { nonce: "nonce-1", ts: 1700000000000 } });
let connect = await sentConnect(ws);
assert.equal(connect.method, "connect");
assert.equal(connect.params.minProtocol, 3);
assert.equal(connect.params.maxProtocol, 4);
assert.equal(connect.params.auth.token, "tok-1");
assert.equal(connect.params.device.id, identity.id);
assert.equal(connect.params.device.nonce, "nonce-1");
// not approved yet: waits, then tries again without being told to
ws.push({ type: "res", id: connect.id, ok: false, error: { code: "NOT_PAIRED", message: "pairing required", details: { code: "PAIRING_REQUIRED", requestId: "req-1", deviceId: identity.id } } });
await tick();
ws.close(1008, "pairing required");
assert.equal(client.state.phase, "pairing");
assert.equal(client.state.requestId, "req-1");
assert.equal(client.state.retryInMs, 1000);
runTimer(1000);
ws = FakeSocket.all.at(-1);
assert.equal(FakeSocket.all.length, 2);
ws.open();
ws.push({ type: "event", event: "connect.challenge", payload: { nonce: "nonce-2", ts: 1700000001000 } });
connect = await sentConnect(ws);
ws.push({ type: "res", id: connect.id, ok: true, payload: { type: "hello-ok", protocol: 4, features: { methods: ["health"] }, policy: { tickIntervalMs: 30000 } } });
await tick();
assert.equal(client.state.phase, "connected");
assert.ok(client.has("health") && !client.has("cron.list"));
// requests and events
const answer = client.request("health");
const req = ws.sent.at(-1);
ws.push({ type: "event", event: "tick", payload: { ts: 1 } });
ws.push({ type: "res", id: req.id, ok: true, payload: { ok: true } });
assert.deepEqual(await answer, { ok: true });
const failing = client.request("nope");
ws.push({ type: "res", id: ws.sent.at(-1).id, ok: false, error: { code: "INVALID_REQUEST", message: "unknown method: nope" } });
await assert.rejects(failing, /unknown method/);
// a drop: pending calls fail, reconnect after a backoff that grows
const lost = client.request("health");
ws.close(1006, "");
await assert.rejects(lost, /connection closed/);
assert.equal(client.state.phase, "retrying");
assert.equal(client.state.retryInMs, 500);
runTimer(500);
FakeSocket.all.at(-1).close(1006, "");
assert.equal(client.state.retryInMs, 1000);
runTimer(1000);
ws = FakeSocket.all.at(-1);
ws.open();
ws.push({ type: "event", event: "connect.challenge", payload: { nonce: "n3", ts: 1 } });
await sentConnect(ws);
ws.push({ type: "res", id: ws.sent[0].id, ok: false, error: { code: "INVALID_REQUEST", message: "unauthorized: gateway token mismatch", details: { code: "AUTH_TOKEN_MISMATCH" } } });
await tick();
ws.close(1008, "unauthorized");
assert.equal(client.state.phase, "failed");
assert.match(client.state.message, /token mismatch/);
assert.equal(timers.filter((t) => t.fn && (t.ms === 500 || t.ms === 1000 || t.ms === 2000)).length, 0, "no retry after a final refusal");
assert.deepEqual(classifyRefusal({ code: "INVALID_REQUEST", details: { code: "AUTH_RATE_LIMITED" }, retryAfterMs: 9000 }).kind, "wait");
assert.deepEqual(classifyRefusal({ code: "UNAVAILABLE", message: "gateway starting", details: {} }).kind, "retry");

// -- credentials: the link token is taken and stripped; kept per tab unless remembered
const replaced = [];
const where = { hash: "#token=abc%20def&x=1", search: "?session=main", pathname: "/chat" };
assert.equal(takeLinkToken(where, { state: null, replaceState: (s, t, url) => replaced.push(url) }), "abc def");
assert.deepEqual(replaced, ["/chat?session=main#x=1"]);
assert.equal(takeLinkToken({ hash: "", search: "", pathname: "/" }, { replaceState: () => assert.fail("nothing to strip") }), null);
const mem = () => { const m = new Map(); return { getItem: (k) => m.get(k) ?? null, setItem: (k, v) => m.set(k, v), removeItem: (k) => m.delete(k), m }; };
const local = mem();
const tab = mem();
const creds = new CredentialStore(local, tab);
creds.save("token", "t1", false);
assert.equal(local.m.size, 0);
assert.deepEqual(creds.load(), { kind: "token", secret: "t1", remember: false });
creds.save("token", "t2", true);
assert.equal(tab.m.size, 0);
assert.deepEqual(creds.load(), { kind: "token", secret: "t2", remember: true });
creds.save("password", "pw", true);
assert.equal(local.m.size, 0, "a password never goes to localStorage");
assert.deepEqual(authOf(creds.load()), { password: "pw" });

// -- records: log lines and config issues
const line = parseLogLine('{"ts":"2026-01-01T00:00:00Z","level":"warn","subsystem":"gateway","msg":"hello there"}');
assert.deepEqual([line.level, line.subsystem, line.msg], ["warn", "gateway", "hello there"]);
assert.equal(parseLogLine("not json").msg, "not json");
assert.ok(logMatches(line, "info", "HELLO"));
assert.ok(!logMatches(line, "error", ""));
assert.ok(!logMatches(line, "", "absent"));
assert.deepEqual(configIssues({ message: "invalid config: gateway.port: expected an integer from 1 to 65535, got 99999; logging.level: invalid value 'x'; allowed: a, b" }), [
  { path: "gateway.port", message: "expected an integer from 1 to 65535, got 99999" },
  { path: "logging.level", message: "invalid value 'x'; allowed: a, b" },
]);
assert.deepEqual(configIssues({ message: "invalid config: agents.list[0].id: must not be empty", details: {} }), [{ path: "agents.list[0].id", message: "must not be empty" }]);
assert.deepEqual(configIssues({ message: "x", details: { issues: [{ path: "a", message: "b" }] } }), [{ path: "a", message: "b" }]);
assert.deepEqual(configIssues({ message: "config changed since last load" }), []);

console.log("ok");

// -- one signed connect, for the gateway's own verifier
const signer = await createIdentity(crypto.subtle);
const params = { minProtocol: 3, maxProtocol: 4, client: { id: "webchat-ui", mode: "webchat", version: "1", platform: "Web", deviceFamily: "Browser" }, role: "operator", scopes: ["operator.admin", "operator.read"], auth: { token: "secret-token" } };
params.device = await signConnect(signer, params, "the-nonce", 1700000000000, crypto.subtle);
console.log(JSON.stringify(params));
