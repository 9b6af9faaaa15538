/**
 * Reconnect delays: exponential with "full jitter" (a uniform draw below the exponential
 * ceiling), so that the clients a gateway restart drops do not all come back at once.
 */
export interface BackoffOptions {
  /** The first ceiling, in ms. */
  baseMs: number
  /** No delay above this, in ms. */
  maxMs: number
}

export const DEFAULT_BACKOFF: BackoffOptions = { baseMs: 250, maxMs: 15_000 }

/** The delay before reconnect attempt `attempt` (0 for the first), drawn with `random` in [0, 1). */
export function backoffDelay(attempt: number, options = DEFAULT_BACKOFF, random = Math.random): number {
  const ceiling = Math.min(options.maxMs, options.baseMs * 2 ** Math.min(attempt, 30))
  return Math.floor(random() * ceiling)
}
