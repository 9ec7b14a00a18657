// Reconnect delays: exponential, capped, with jitter so many tabs do not retry in step.

export const RECONNECT = { base: 500, max: 30000, factor: 2, jitter: 0.25 };
export const PAIRING = { base: 1000, max: 10000, factor: 1.5, jitter: 0.2 };

/** Milliseconds to wait before try number `attempt` (0 first), never above `max`. */
export function backoffDelay(attempt, policy = RECONNECT, random = Math.random) {
  const { base, max, factor, jitter } = policy;
  const n = Math.max(0, Math.min(Number(attempt) || 0, 60));
  const raw = Math.min(max, base * Math.pow(factor, n));
  const spread = raw * jitter;
  return Math.round(Math.min(max, Math.max(0, raw - spread + random() * 2 * spread)));
}
