// What both pages share: credentials, device identity, the connection pill,
// and the gate (sign in, waiting for approval, insecure-context help) shown
// until the gateway says hello.

import { clear, h } from "./dom.js";
import { authOf, CredentialStore, takeLinkToken } from "./credentials.js";
import { GatewayClient, OPERATOR_SCOPES } from "./gateway.js";
import { insecureReason, loadOrCreateIdentity } from "./identity.js";

const doc = document;
export const el = (tag, props, ...children) => h(doc, tag, props, ...children);
export const $ = (selector, root = doc) => root.querySelector(selector);

export function basePath() {
  return new URL(doc.baseURI).pathname;
}

function wsUrl() {
  return `${location.protocol === "https:" ? "wss:" : "ws:"}//${location.host}${basePath()}`;
}

function port() {
  return location.port || (location.protocol === "https:" ? "443" : "80");
}

export function formatError(e) {
  return (e && (e.message || e.code)) || String(e);
}

/** Copy text; falls back to a selection copy where the Clipboard API is not offered. */
export async function copyText(text, button) {
  try {
    await navigator.clipboard.writeText(text);
  } catch {
    const area = el("textarea", { class: "offscreen", readonly: true, value: text });
    doc.body.appendChild(area);
    area.select();
    doc.execCommand("copy");
    area.remove();
  }
  if (button) {
    const label = button.textContent;
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = label), 1200);
  }
}

// A gateway without a secret refuses every sign-in: say how to give it one.
const NOT_CONFIGURED = {
  AUTH_TOKEN_NOT_CONFIGURED:
    "The gateway has no token set, so nobody can sign in. On the gateway host set gateway.auth.token in the config (or start it with OPENCLAW_GATEWAY_TOKEN=… or --token …), then run `openclaw dashboard` for a signed-in link.",
  AUTH_PASSWORD_NOT_CONFIGURED: "The gateway is in password mode but has no password set (gateway.auth.password).",
};

function describe(state) {
  switch (state.phase) {
    case "connected":
      return ["ok", "Connected"];
    case "connecting":
      return state.pairing ? ["wait", "Waiting for approval"] : ["wait", "Connecting…"];
    case "retrying":
      return ["bad", `Reconnecting in ${Math.ceil(state.retryInMs / 1000)} s`];
    case "pairing":
      return ["wait", "Waiting for approval"];
    case "failed":
      return ["bad", "Not connected"];
    default:
      return ["bad", "Not connected"];
  }
}

/**
 * Start the page: `clientId`/`mode` name it to the gateway; `onHello(client,
 * hello)` runs on every (re)connect, `onEvent(frame)` for every event.
 */
export async function startSession({ clientId, mode, displayName, onHello, onEvent }) {
  const gate = $("#gate");
  const app = $("#app");
  const pill = $("#conn");
  const signout = $("#signout");
  const store = new CredentialStore(localStorage, sessionStorage);
  const version = ($('meta[name="openclaw-version"]') || {}).content || "0";
  let client = null;
  let identity = null;
  let lastError = null;

  const linkToken = takeLinkToken(location, history);
  if (linkToken) {
    const previous = store.load();
    store.save("token", linkToken, !!(previous && previous.remember && previous.kind === "token"));
  }

  function showGate(...children) {
    clear(gate).append(...children);
    gate.hidden = false;
    app.hidden = true;
  }

  function setPill(state) {
    const [tone, text] = describe(state);
    pill.className = `pill ${tone}`;
    clear(pill).append(text);
    if (state.phase === "retrying") {
      pill.append(" ", el("button", { type: "button", class: "link", on: { click: () => client && client.retryNow() } }, "retry now"));
    }
    doc.body.dataset.conn = state.phase;
  }

  function loginForm(message) {
    const saved = store.load();
    const kind = el("select", { id: "login-kind", name: "kind" }, el("option", { value: "token" }, "Token"), el("option", { value: "password" }, "Password"));
    const secret = el("input", { id: "login-secret", name: "secret", type: "password", autocomplete: "off", required: true, placeholder: "gateway token" });
    const remember = el("input", { id: "login-remember", name: "remember", type: "checkbox", checked: !!(saved && saved.remember) });
    const rememberLabel = el("label", { class: "check" }, remember, " Remember on this browser");
    kind.addEventListener("change", () => {
      secret.placeholder = `gateway ${kind.value}`;
      remember.disabled = kind.value === "password"; // passwords are kept for this tab only
      rememberLabel.classList.toggle("muted", remember.disabled);
    });
    const form = el(
      "form",
      { id: "login", class: "card narrow" },
      el("h2", null, "Connect to your gateway"),
      el(
        "p",
        null,
        "Enter the gateway token (or password). On the gateway host, ",
        el("code", null, "openclaw dashboard"),
        " prints a link that fills it in.",
      ),
      message ? el("p", { class: "error", id: "login-error", role: "alert" }, message) : null,
      el("div", { class: "row" }, kind, secret),
      rememberLabel,
      el("div", { class: "row" }, el("button", { id: "login-submit", type: "submit", class: "primary" }, "Connect")),
    );
    form.addEventListener("submit", (e) => {
      e.preventDefault();
      const value = secret.value.trim();
      if (!value) return;
      store.save(kind.value, value, remember.checked);
      connect();
    });
    showGate(form);
    secret.focus();
  }

  function pairingCard(state) {
    const command = state.requestId ? `openclaw devices approve ${state.requestId}` : "openclaw devices approve --latest";
    const retry = state.retryInMs ? ` Next check in ${Math.ceil(state.retryInMs / 1000)} s.` : "";
    showGate(
      el(
        "section",
        { id: "pairing", class: "card narrow" },
        el("h2", null, "Waiting for approval"),
        el("p", null, "This browser is a new device for the gateway. Approve it on the gateway host:"),
        el("pre", { class: "command" }, command),
        el("p", null, "Device id: ", el("code", { id: "pair-device", class: "wrap" }, state.deviceId || "")),
        el("p", { class: "muted" }, `Or approve it in the Approvals tab of a Control UI that is already connected. This page goes on by itself once approved.${retry}`),
        el("div", { class: "row" }, el("button", { type: "button", on: { click: () => signOut() } }, "Use other credentials")),
      ),
    );
  }

  function insecureCard(reason) {
    const host = location.hostname;
    const p = port();
    showGate(
      el(
        "section",
        { id: "insecure", class: "card narrow" },
        el("h2", null, "Open this page over HTTPS or from localhost"),
        el(
          "p",
          null,
          `This page was loaded over plain HTTP from ${location.host}. The browser switches WebCrypto off on such pages, and the Control UI needs it to prove this device's identity to the gateway`,
          reason === "insecure-context" ? "." : ` (${reason}).`,
        ),
        el("p", null, "Two safe ways in:"),
        el(
          "ul",
          null,
          el("li", null, el("strong", null, "Tailscale Serve: "), "on the gateway host run ", el("code", null, `tailscale serve --bg ${p}`), ", then open the https://….ts.net/ address it prints."),
          el("li", null, el("strong", null, "SSH tunnel: "), "from this computer run ", el("code", { class: "wrap" }, `ssh -N -L ${p}:127.0.0.1:${p} you@${host}`), `, then open http://127.0.0.1:${p}${basePath()} here.`),
        ),
        el(
          "p",
          { class: "muted" },
          "On a network you trust, the gateway can accept the Control UI without device identity (",
          el("code", null, "gateway.controlUi.allowInsecureAuth: true"),
          "). ",
          el("button", { type: "button", class: "link", id: "insecure-anyway", on: { click: () => (store.load() ? connect() : loginForm()) } }, "Connect without device identity"),
        ),
      ),
    );
  }

  function onState(state) {
    setPill(state);
    if (state.phase === "failed") {
      lastError = NOT_CONFIGURED[state.code] || state.message || state.code;
      if (state.code === "CONTROL_UI_DEVICE_IDENTITY_REQUIRED" && !identity) insecureCard(insecureReason(window) || "no device identity");
      else loginForm(lastError);
    } else if (state.phase === "pairing" || (state.phase === "connecting" && state.pairing)) {
      pairingCard(state.phase === "pairing" ? state : { ...state.pairing });
    } else if (state.phase === "connected") {
      gate.hidden = true;
      app.hidden = false;
    } else if (state.phase === "retrying" && app.hidden && state.attempt >= 3) {
      showGate(
        el(
          "section",
          { class: "card narrow", id: "unreachable" },
          el("h2", null, "Still trying to reach the gateway"),
          el("p", null, `No answer on ${wsUrl()} yet (${state.message || `closed with ${state.code}`}). Is the gateway running?`),
          el("p", { class: "muted" }, "Behind a reverse proxy, pass the Host header through, or add ", el("code", null, location.origin), " to ", el("code", null, "gateway.controlUi.allowedOrigins"), "."),
          el("div", { class: "row" }, el("button", { type: "button", on: { click: () => client && client.retryNow() } }, "Retry now"), el("button", { type: "button", class: "link", on: { click: () => signOut() } }, "Use other credentials")),
        ),
      );
    } else if (app.hidden && gate.hidden) {
      showGate(el("section", { class: "card narrow" }, el("p", null, "Connecting to the gateway…")));
    }
  }

  function connect() {
    if (client) client.stop();
    const credentials = store.load();
    client = new GatewayClient({
      url: wsUrl(),
      client: { id: clientId, mode, version, platform: "web", deviceFamily: "browser", displayName },
      scopes: OPERATOR_SCOPES,
      credentials: authOf(credentials),
      identity,
    });
    client.on("state", onState);
    client.on("hello", (hello) => onHello(client, hello));
    client.on("event", (frame) => onEvent(frame));
    if (app.hidden) showGate(el("section", { class: "card narrow" }, el("p", null, "Connecting to the gateway…")));
    client.start();
  }

  function signOut() {
    if (client) client.stop();
    client = null;
    store.clear();
    loginForm();
  }

  signout.addEventListener("click", signOut);

  const insecure = insecureReason(window);
  if (insecure) {
    setPill({ phase: "failed" });
    insecureCard(insecure);
    return;
  }
  try {
    identity = await loadOrCreateIdentity();
  } catch (e) {
    setPill({ phase: "failed" });
    insecureCard(`no Ed25519 in this browser's WebCrypto: ${formatError(e)}`);
    return;
  }
  doc.body.dataset.device = identity.id;
  if (store.load()) connect();
  else {
    setPill({ phase: "idle" });
    loginForm(lastError);
  }
}
