// The browser's gateway client: answer the challenge with a signed connect,
// match responses to requests, pass events on, and reconnect with backoff.
//
// States (client.state.phase): connecting → connected; retrying (with
// retryInMs) after a drop; pairing while the gateway waits for this device to
// be approved (retried by itself); failed when retrying cannot help (bad
// token, origin refused, ...); stopped.

import { backoffDelay, PAIRING, RECONNECT } from "./backoff.js";
import { signConnect } from "./identity.js";

export const PROTOCOL_MIN = 3;
export const PROTOCOL_MAX = 4;
export const OPERATOR_SCOPES = ["operator.admin", "operator.read", "operator.write", "operator.approvals", "operator.pairing"];
const REQUEST_TIMEOUT_MS = 30000;
const HELLO_TIMEOUT_MS = 15000;
const MAX_PENDING = 256;

export class RequestError extends Error {
  constructor(error) {
    super(error.message || error.code || "request failed");
    this.code = error.code || "UNAVAILABLE";
    this.details = error.details || {};
    this.retryAfterMs = error.retryAfterMs;
  }
}

/** What a refused connect means for the next try. */
export function classifyRefusal(error) {
  const code = (error.details && error.details.code) || error.code || "";
  const message = error.message || code;
  if (code === "PAIRING_REQUIRED" || error.code === "NOT_PAIRED") {
    return { kind: "pairing", code, message, requestId: error.details.requestId, deviceId: error.details.deviceId };
  }
  if (code === "AUTH_RATE_LIMITED") {
    return { kind: "wait", code, message, retryAfterMs: error.retryAfterMs || error.details.retryAfterMs || 60000 };
  }
  if (code === "DEVICE_AUTH_SIGNATURE_EXPIRED") {
    return { kind: "fatal", code, message: `${message} (is this computer's clock right?)` };
  }
  if (/^(AUTH_|CONTROL_UI_|DEVICE_AUTH_|DEVICE_IDENTITY|PROTOCOL_MISMATCH)/.test(code) || error.code === "INVALID_REQUEST") {
    return { kind: "fatal", code, message };
  }
  return { kind: "retry", code, message };
}

let instanceId = null;

export class GatewayClient {
  /**
   * opts: url, client ({id, mode, version, platform, ...}), scopes, caps,
   * credentials ({token} | {password} | {}), identity (or null), and for
   * tests WebSocket, timers ({setTimeout, clearTimeout}), random, sign.
   */
  constructor(opts) {
    this.url = opts.url;
    this.client = opts.client;
    this.scopes = opts.scopes || OPERATOR_SCOPES;
    this.caps = opts.caps || [];
    this.credentials = opts.credentials || {};
    this.identity = opts.identity || null;
    this.WebSocket = opts.WebSocket || globalThis.WebSocket;
    this.timers = opts.timers || { setTimeout: (f, ms) => setTimeout(f, ms), clearTimeout: (t) => clearTimeout(t) };
    this.random = opts.random || Math.random;
    this.sign = opts.sign || signConnect;
    this.listeners = { state: [], event: [], hello: [] };
    this.state = { phase: "idle" };
    this.attempt = 0;
    this.pairingAttempt = 0;
    this.pairing = null;
    this.pending = new Map();
    this.ids = 0;
    this.ws = null;
    this.hello = null;
    this.stopped = true;
    this.timer = { retry: null, hello: null, idle: null };
  }

  on(type, fn) {
    this.listeners[type].push(fn);
    return () => {
      this.listeners[type] = this.listeners[type].filter((f) => f !== fn);
    };
  }

  emit(type, value) {
    for (const fn of [...this.listeners[type]]) {
      try {
        fn(value);
      } catch (e) {
        console.error(e); // one broken listener does not stop the others
      }
    }
  }

  setState(state) {
    this.state = state;
    this.emit("state", state);
  }

  get connected() {
    return this.state.phase === "connected";
  }

  start() {
    this.stopped = false;
    this.attempt = 0;
    this.open();
  }

  stop() {
    this.stopped = true;
    this.clearTimers();
    const ws = this.ws;
    this.ws = null;
    this.hello = null;
    if (ws) ws.close(1000, "closed by the page");
    this.failAll("stopped");
    this.setState({ phase: "stopped" });
  }

  /** Skip the wait of a scheduled reconnect. */
  retryNow() {
    if (this.stopped || this.ws) return;
    this.open();
  }

  clearTimers() {
    for (const name of Object.keys(this.timer)) {
      if (this.timer[name] !== null) this.timers.clearTimeout(this.timer[name]);
      this.timer[name] = null;
    }
  }

  open() {
    this.clearTimers();
    this.setState({ phase: "connecting", attempt: this.attempt, pairing: this.pairing });
    let ws;
    try {
      ws = new this.WebSocket(this.url);
    } catch (e) {
      this.setState({ phase: "failed", code: "BAD_URL", message: String(e.message || e) });
      this.stopped = true;
      return;
    }
    this.ws = ws;
    this.hello = null;
    this.connectSent = false;
    this.refusal = null;
    ws.onopen = () => {
      if (ws !== this.ws) return;
      this.timer.hello = this.timers.setTimeout(() => ws.close(4000, "connect timeout"), HELLO_TIMEOUT_MS);
    };
    ws.onmessage = (message) => {
      if (ws === this.ws) this.received(message.data);
    };
    ws.onclose = (event) => {
      if (ws === this.ws) this.closed(event.code, event.reason);
    };
    ws.onerror = () => {}; // a close event follows
  }

  watchIdle() {
    // Ticks come every tickIntervalMs; silence for much longer means a dead link.
    if (this.timer.idle !== null) this.timers.clearTimeout(this.timer.idle);
    const tick = (this.hello && this.hello.policy && this.hello.policy.tickIntervalMs) || 30000;
    const ws = this.ws;
    this.timer.idle = this.timers.setTimeout(() => ws && ws.close(4000, "tick timeout"), tick * 2.5);
  }

  received(text) {
    let frame;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (!frame || typeof frame !== "object") return;
    if (this.hello) this.watchIdle();
    if (frame.type === "event") {
      if (frame.event === "connect.challenge") {
        if (!this.hello && !this.connectSent) this.sendConnect(frame.payload || {});
      } else if (this.hello) {
        this.emit("event", frame);
      }
      return;
    }
    if (frame.type !== "res") return;
    const waiting = this.pending.get(frame.id);
    if (!waiting) return;
    this.pending.delete(frame.id);
    this.timers.clearTimeout(waiting.timer);
    if (frame.ok) waiting.resolve(frame.payload);
    else waiting.reject(new RequestError(frame.error || {}));
  }

  connectParams() {
    if (!instanceId) instanceId = globalThis.crypto && crypto.randomUUID ? crypto.randomUUID() : String(Math.random()).slice(2);
    const params = {
      minProtocol: PROTOCOL_MIN,
      maxProtocol: PROTOCOL_MAX,
      client: { instanceId, ...this.client },
      role: "operator",
      scopes: [...this.scopes],
      caps: [...this.caps],
    };
    const { token, password } = this.credentials;
    if (token) params.auth = { token };
    else if (password) params.auth = { password };
    if (globalThis.navigator) {
      if (navigator.language) params.locale = navigator.language;
      if (navigator.userAgent) params.userAgent = navigator.userAgent.slice(0, 300);
    }
    return params;
  }

  async sendConnect(challenge) {
    this.connectSent = true;
    const ws = this.ws;
    const params = this.connectParams();
    if (this.identity) {
      try {
        params.device = await this.sign(this.identity, params, String(challenge.nonce || ""), Number(challenge.ts) || Date.now());
      } catch (e) {
        this.refusal = { kind: "fatal", code: "DEVICE_SIGN_FAILED", message: `could not sign the connect: ${e.message || e}` };
        ws.close(4000, "signing failed");
        return;
      }
    }
    if (ws !== this.ws) return;
    this.call("connect", params, HELLO_TIMEOUT_MS).then(
      (hello) => {
        if (ws !== this.ws) return;
        if (this.timer.hello !== null) this.timers.clearTimeout(this.timer.hello);
        this.timer.hello = null;
        this.hello = hello;
        this.attempt = 0;
        this.pairingAttempt = 0;
        this.pairing = null;
        this.watchIdle();
        this.setState({ phase: "connected", hello });
        this.emit("hello", hello);
      },
      (error) => {
        if (ws === this.ws) this.refusal = classifyRefusal(error); // the gateway closes the socket next
      },
    );
  }

  closed(code, reason) {
    this.clearTimers();
    this.ws = null;
    const wasConnected = !!this.hello;
    this.hello = null;
    this.failAll(`connection closed (${code})`);
    if (this.stopped) return;
    const refusal = this.refusal;
    this.refusal = null;
    if (refusal && refusal.kind === "fatal") {
      this.stopped = true;
      this.setState({ phase: "failed", code: refusal.code, message: refusal.message });
      return;
    }
    if (code === 4001) {
      this.stopped = true;
      this.setState({ phase: "failed", code: "INVALIDATED", message: reason || "this connection's credentials are no longer valid" });
      return;
    }
    if (refusal && refusal.kind === "pairing") {
      this.pairing = { deviceId: refusal.deviceId || (this.identity && this.identity.id), requestId: refusal.requestId };
      const delay = backoffDelay(this.pairingAttempt++, PAIRING, this.random);
      this.setState({ phase: "pairing", ...this.pairing, retryInMs: delay });
      this.timer.retry = this.timers.setTimeout(() => this.open(), delay);
      return;
    }
    let delay = backoffDelay(this.attempt++, RECONNECT, this.random);
    if (refusal && refusal.kind === "wait") delay = Math.max(delay, refusal.retryAfterMs);
    this.setState({ phase: "retrying", retryInMs: delay, attempt: this.attempt, code, reason, message: refusal && refusal.message, wasConnected, pairing: this.pairing });
    this.timer.retry = this.timers.setTimeout(() => this.open(), delay);
  }

  failAll(message) {
    const pending = [...this.pending.values()];
    this.pending.clear();
    for (const waiting of pending) {
      this.timers.clearTimeout(waiting.timer);
      waiting.reject(new RequestError({ code: "UNAVAILABLE", message }));
    }
  }

  call(method, params, timeoutMs = REQUEST_TIMEOUT_MS) {
    const ws = this.ws;
    if (!ws || ws.readyState !== 1) return Promise.reject(new RequestError({ code: "UNAVAILABLE", message: "not connected to the gateway" }));
    if (this.pending.size >= MAX_PENDING) return Promise.reject(new RequestError({ code: "UNAVAILABLE", message: "too many requests in flight" }));
    const id = `${++this.ids}:${Date.now().toString(36)}`;
    return new Promise((resolve, reject) => {
      const timer = this.timers.setTimeout(() => {
        if (this.pending.delete(id)) reject(new RequestError({ code: "TIMEOUT", message: `${method} timed out` }));
      }, timeoutMs);
      this.pending.set(id, { resolve, reject, timer });
      const frame = { type: "req", id, method };
      if (params !== undefined) frame.params = params;
      ws.send(JSON.stringify(frame));
    });
  }

  /** A request on the open connection: resolves with the payload, rejects with a RequestError. */
  request(method, params, timeoutMs) {
    if (!this.hello) return Promise.reject(new RequestError({ code: "UNAVAILABLE", message: "not connected to the gateway" }));
    return this.call(method, params, timeoutMs);
  }

  /** Whether the gateway offers `method` (hello's features.methods). */
  has(method) {
    const methods = (this.hello && this.hello.features && this.hello.features.methods) || [];
    return methods.includes(method);
  }
}
