/**
 * The clock, timers and randomness a {@linkcode ChatClient} uses, injected
 * so that tests drive reconnects and heartbeats without sleeping.
 *
 * @module
 */

/** The clock, timers and randomness of a client. */
export interface Timers {
  /** Milliseconds since an arbitrary origin. */
  now(): number;
  /** Calls `callback` after `ms` milliseconds; returns a handle for `clearTimeout`. */
  setTimeout(callback: () => void, ms: number): unknown;
  /** Cancels a timer; ignores `undefined` and handles of timers that ran. */
  clearTimeout(handle: unknown): void;
  /** A number in [0, 1). */
  random(): number;
}

/** The runtime's own clock, timers and `Math.random`. */
export const TIMERS: Timers = Object.freeze({
  now: () => Date.now(),
  setTimeout: (callback: () => void, ms: number): unknown => setTimeout(callback, ms),
  clearTimeout: (handle: unknown) => clearTimeout(handle as number | undefined),
  random: () => Math.random(),
});
