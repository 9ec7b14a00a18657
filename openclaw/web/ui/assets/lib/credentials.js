// The gateway secret the page connects with.
//
// `openclaw dashboard` links carry it as #token=… ; the page takes it and
// strips it from the address bar at once. A token is kept for this tab only
// (sessionStorage) unless the user ticks "remember" (then localStorage); a
// password is never written to localStorage.

const KEY = "openclaw.gateway.auth";

/**
 * The token a dashboard link carried (#token=… or, from older links, ?token=…),
 * removed from the address bar; null when there is none.
 */
export function takeLinkToken(location, history) {
  const hash = new URLSearchParams((location.hash || "").replace(/^#/, ""));
  const query = new URLSearchParams(location.search || "");
  const token = hash.get("token") || query.get("token");
  if (!hash.has("token") && !query.has("token")) return null;
  hash.delete("token");
  query.delete("token");
  const search = query.toString();
  const rest = hash.toString();
  history.replaceState(history.state, "", `${location.pathname}${search ? `?${search}` : ""}${rest ? `#${rest}` : ""}`);
  return token && token.trim() ? token.trim() : null;
}

function read(storage) {
  try {
    const value = JSON.parse(storage.getItem(KEY) || "null");
    if (value && (value.kind === "token" || value.kind === "password") && typeof value.secret === "string" && value.secret) return value;
  } catch {
    // unreadable: as if absent
  }
  return null;
}

export class CredentialStore {
  constructor(local, session) {
    this.local = local;
    this.session = session;
  }

  /** {kind: "token"|"password", secret, remember} or null. */
  load() {
    const remembered = read(this.local);
    if (remembered && remembered.kind === "token") return { ...remembered, remember: true };
    const tab = read(this.session);
    return tab ? { ...tab, remember: false } : null;
  }

  save(kind, secret, remember) {
    this.clear();
    const value = JSON.stringify({ kind, secret });
    if (remember && kind === "token") this.local.setItem(KEY, value);
    else this.session.setItem(KEY, value);
  }

  clear() {
    this.local.removeItem(KEY);
    this.session.removeItem(KEY);
  }
}

/** The connect's auth for stored credentials. */
export function authOf(credentials) {
  if (!credentials) return {};
  return credentials.kind === "password" ? { password: credentials.secret } : { token: credentials.secret };
}
