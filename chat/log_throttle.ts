/**
 * Log lines for failures that repeat, such as every publish during a Redis
 * outage: the first occurrence is written at once, later ones are counted,
 * and at most one line per interval says how many there were, so an outage
 * writes a few lines rather than one per message.
 *
 * @module
 */

import { type Clock, systemClock } from "./clock.ts";
import type { LogFields, Logger } from "./logger.ts";
import { withDefaults } from "./options.ts";

/** Options of {@linkcode LogThrottle}. */
export interface LogThrottleOptions {
  /** Where the lines go. */
  logger: Logger;
  /** Measures the interval. Default: the system clock. */
  clock?: Clock;
  /** Milliseconds between two lines of one event. */
  intervalMs?: number;
}

/** The defaults of {@linkcode LogThrottleOptions}. */
export const DEFAULT_LOG_THROTTLE: Readonly<{ clock: Clock; intervalMs: number }> = Object.freeze({
  clock: systemClock,
  intervalMs: 10_000,
});

interface EventState {
  /** When the last line of this event was written. */
  writtenAt: number;
  /** Occurrences since then that wrote nothing. */
  suppressed: number;
}

/**
 * Writes at most one line per event and interval. Each line carries `count`:
 * how many occurrences it stands for (itself and those left out since the
 * previous line), and the fields of the occurrence that wrote it. No timers:
 * the count of a burst is written by the first occurrence after the
 * interval, so a burst that ended stays counted until the event recurs.
 *
 * Events are keyed by name only; names are constants in the code, so the
 * state stays as small as the number of call sites.
 *
 * @example
 * ```ts
 * const failures = new LogThrottle({ logger });
 * failures.warn("publish_failed", { channel, error: String(error) });
 * ```
 */
export class LogThrottle {
  #logger: Logger;
  #clock: Clock;
  #intervalMs: number;
  #events = new Map<string, EventState>();

  /** Throws a RangeError for a negative or non-finite interval. */
  constructor(options: LogThrottleOptions) {
    const { logger, clock, intervalMs } = withDefaults(DEFAULT_LOG_THROTTLE, options);
    if (!(Number.isFinite(intervalMs) && intervalMs >= 0)) {
      throw new RangeError(`Invalid log interval: ${intervalMs}`);
    }
    this.#logger = logger;
    this.#clock = clock;
    this.#intervalMs = intervalMs;
  }

  /** A warn line, throttled per event. */
  warn(event: string, fields?: LogFields): void {
    const count = this.#take(event);
    if (count > 0) this.#logger.warn(event, { ...fields, count });
  }

  /** An error line, throttled per event. */
  error(event: string, fields?: LogFields): void {
    const count = this.#take(event);
    if (count > 0) this.#logger.error(event, { ...fields, count });
  }

  /**
   * Counts one occurrence: the number of occurrences the line to write now
   * stands for, or 0 to stay silent.
   */
  #take(event: string): number {
    const now = this.#clock.now();
    const state = this.#events.get(event);
    if (state === undefined) {
      this.#events.set(event, { writtenAt: now, suppressed: 0 });
      return 1;
    }
    if (now - state.writtenAt < this.#intervalMs) {
      state.suppressed++;
      return 0;
    }
    const count = state.suppressed + 1;
    state.writtenAt = now;
    state.suppressed = 0;
    return count;
  }
}
