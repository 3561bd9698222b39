/**
 * The reconnect delay: exponential with full jitter above a floor, so that
 * clients dropped together (a deploy, a network blip) come back spread out.
 *
 * @module
 */

/** Options of {@linkcode reconnectDelay}. */
export interface BackoffOptions {
  /** The shortest delay, milliseconds. Default 1000. */
  minDelayMs?: number;
  /** The longest delay, milliseconds. Default 30,000. */
  maxDelayMs?: number;
}

/** The defaults of {@linkcode BackoffOptions}. */
export const DEFAULT_BACKOFF: Readonly<Required<BackoffOptions>> = Object.freeze({
  minDelayMs: 1000,
  maxDelayMs: 30_000,
});

/**
 * The delay before reconnect attempt `attempt` (0 for the first), given a
 * random number in [0, 1): uniform between the floor and a ceiling of
 * twice the floor that doubles with every attempt. The first attempt is
 * spread too (1 to 2 s by default): clients dropped together by a restart
 * would otherwise all come back in the same instant.
 *
 * @example
 * ```ts
 * import { reconnectDelay } from "./backoff.ts";
 * reconnectDelay({ attempt: 0, random: 0.5 }); // 1500
 * reconnectDelay({ attempt: 3, random: 0.5 }); // 8500
 * ```
 */
export function reconnectDelay(
  at: { attempt: number; random: number },
  options: BackoffOptions = {},
): number {
  const { minDelayMs, maxDelayMs } = { ...DEFAULT_BACKOFF, ...options };
  const ceiling = Math.min(maxDelayMs, minDelayMs * 2 ** Math.min(at.attempt + 1, 30));
  return Math.round(minDelayMs + at.random * Math.max(0, ceiling - minDelayMs));
}
