// This browser's device identity: an Ed25519 key made by WebCrypto, the
// private half non-extractable, kept in IndexedDB; it signs the connect as
// the CLI does (payload v3, protocol §2.4).

const DB_NAME = "openclaw";
const DB_STORE = "identity";
const DB_KEY = "device";

export function b64url(bytes) {
  let text = "";
  for (const b of new Uint8Array(bytes)) text += String.fromCharCode(b);
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

export function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The v3 signature payload: fields joined by "|"; platform and device family
 * trimmed and lower-cased; token is auth.token, else auth.deviceToken, else "".
 */
export function signaturePayload({ deviceId, client, role = "operator", scopes = [], signedAt, token = "", nonce }) {
  return [
    "v3",
    deviceId,
    client.id,
    client.mode,
    role,
    scopes.join(","),
    String(signedAt),
    token || "",
    nonce,
    (client.platform || "").trim().toLowerCase(),
    (client.deviceFamily || "").trim().toLowerCase(),
  ].join("|");
}

/** The `device` block of a connect for `params`, signed for this challenge. */
export async function signConnect(identity, params, nonce, signedAt, subtle = globalThis.crypto.subtle) {
  const auth = params.auth || {};
  const payload = signaturePayload({
    deviceId: identity.id,
    client: params.client,
    role: params.role || "operator",
    scopes: params.scopes || [],
    signedAt,
    token: auth.token || auth.deviceToken || "",
    nonce,
  });
  const signature = await subtle.sign({ name: "Ed25519" }, identity.privateKey, new TextEncoder().encode(payload));
  return { id: identity.id, publicKey: identity.publicKey, signature: b64url(signature), signedAt, nonce };
}

/** A new identity: {id, publicKey (base64url raw), privateKey (CryptoKey), createdAtMs}. */
export async function createIdentity(subtle = globalThis.crypto.subtle, now = Date.now) {
  const pair = await subtle.generateKey({ name: "Ed25519" }, false, ["sign", "verify"]);
  const raw = await subtle.exportKey("raw", pair.publicKey);
  const id = hex(await subtle.digest("SHA-256", raw));
  return { id, publicKey: b64url(raw), privateKey: pair.privateKey, createdAtMs: now() };
}

function request(req) {
  return new Promise((resolve, reject) => {
    req.onsuccess = () => resolve(req.result);
    req.onerror = () => reject(req.error);
  });
}

/** The IndexedDB record store the identity lives in (CryptoKeys are stored as they are). */
export function indexedDbStore(idb = globalThis.indexedDB) {
  const open = () => {
    const req = idb.open(DB_NAME, 1);
    req.onupgradeneeded = () => req.result.createObjectStore(DB_STORE);
    return request(req);
  };
  const run = async (mode, fn) => {
    const db = await open();
    try {
      return await request(fn(db.transaction(DB_STORE, mode).objectStore(DB_STORE)));
    } finally {
      db.close();
    }
  };
  return {
    get: () => run("readonly", (s) => s.get(DB_KEY)),
    add: (record) => run("readwrite", (s) => s.add(record, DB_KEY)), // fails if another tab won the race
    clear: () => run("readwrite", (s) => s.delete(DB_KEY)),
  };
}

function usable(record) {
  return record && typeof record.id === "string" && typeof record.publicKey === "string" && record.privateKey && record.privateKey.type === "private";
}

/** The stored identity, or a new one stored first (one identity per browser profile and origin). */
export async function loadOrCreateIdentity(store = indexedDbStore(), subtle = globalThis.crypto.subtle) {
  const stored = await store.get();
  if (usable(stored)) return stored;
  if (stored) await store.clear();
  const fresh = await createIdentity(subtle);
  try {
    await store.add(fresh);
    return fresh;
  } catch (e) {
    const winner = await store.get(); // two tabs at once: keep the one that was stored
    if (usable(winner)) return winner;
    throw e;
  }
}

/** Why device identity cannot work in this page, or null when it can. */
export function insecureReason(win = globalThis) {
  if (!win.isSecureContext) return "insecure-context";
  if (!win.crypto || !win.crypto.subtle) return "no-webcrypto";
  if (!win.indexedDB) return "no-indexeddb";
  return null;
}
