/**
 * Time as the ConnectionManager sees it: injected so tests drive heartbeats
 * and timeouts without sleeping.
 *
 * @module
 */

/** A source of the current time in milliseconds since the epoch. */
export interface Clock {
  /** The current time in milliseconds. */
  now(): number;
}

/** A handle returned by {@linkcode Scheduler} to cancel a timer. */
export type TimerHandle = number;

/** Starts and cancels timers. */
export interface Scheduler {
  /** Calls `fn` every `ms` milliseconds until cleared. */
  setInterval(fn: () => void, ms: number): TimerHandle;
  /** Stops an interval. */
  clearInterval(handle: TimerHandle): void;
  /** Calls `fn` once after `ms` milliseconds. */
  setTimeout(fn: () => void, ms: number): TimerHandle;
  /** Cancels a timeout. */
  clearTimeout(handle: TimerHandle): void;
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** The real scheduler, backed by the global timers. */
export const systemScheduler: Scheduler = {
  setInterval: (fn, ms) => Number(setInterval(fn, ms)),
  clearInterval: (handle) => clearInterval(handle),
  setTimeout: (fn, ms) => Number(setTimeout(fn, ms)),
  clearTimeout: (handle) => clearTimeout(handle),
};
