/**
 * Event loop lag: a timer due every interval notes how late it fired. A loop
 * blocked by a long synchronous task (a huge JSON frame, a slow regular
 * expression) delays every socket by as much; `chat_event_loop_lag_seconds`
 * shows it.
 *
 * The clock and the scheduler are injected, as everywhere in `chat/`, so tests
 * set the time a timer fires at instead of blocking the loop.
 *
 * @module
 */

import {
  type Clock,
  type Scheduler,
  systemClock,
  systemScheduler,
  type TimerHandle,
} from "./clock.ts";
import { withDefaults } from "./options.ts";

/** Options of {@linkcode EventLoopLag}. */
export interface EventLoopLagOptions {
  /** Default: the system clock. */
  clock?: Clock;
  /** Default: the global timers. */
  scheduler?: Scheduler;
  /** Milliseconds between probes; see {@linkcode DEFAULT_EVENT_LOOP_LAG}. */
  intervalMs?: number;
}

/** The defaults of {@linkcode EventLoopLagOptions}. */
export const DEFAULT_EVENT_LOOP_LAG: Readonly<{ intervalMs: number }> = Object.freeze({
  /** One probe a second: a gauge scraped every 15 s sees the latest one. */
  intervalMs: 1000,
});

/** Measures how late a timer fires, once every interval, until stopped. */
export class EventLoopLag {
  #clock: Clock;
  #scheduler: Scheduler;
  #intervalMs: number;
  #timer: TimerHandle | undefined;
  #due = 0;
  #seconds = 0;
  #stopped = false;

  /** A probe that starts with {@linkcode EventLoopLag.start}. */
  constructor(options: EventLoopLagOptions = {}) {
    const { intervalMs } = withDefaults(DEFAULT_EVENT_LOOP_LAG, options);
    if (!(Number.isFinite(intervalMs) && intervalMs > 0)) {
      throw new RangeError(
        `Event loop lag interval must be a positive number of ms: ${intervalMs}`,
      );
    }
    this.#clock = options.clock ?? systemClock;
    this.#scheduler = options.scheduler ?? systemScheduler;
    this.#intervalMs = intervalMs;
  }

  /** The lag of the latest probe in seconds; 0 before the first. */
  get seconds(): number {
    return this.#seconds;
  }

  /** Starts probing; does nothing when running or stopped. */
  start(): void {
    if (this.#timer !== undefined || this.#stopped) return;
    this.#arm();
  }

  /** Stops for good and cancels the pending probe. */
  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) this.#scheduler.clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** One timeout at a time, each due an interval after the last fired: a late one delays no other. */
  #arm(): void {
    this.#due = this.#clock.now() + this.#intervalMs;
    this.#timer = this.#scheduler.setTimeout(() => this.#probe(), this.#intervalMs);
  }

  #probe(): void {
    this.#timer = undefined;
    this.#seconds = Math.max(0, this.#clock.now() - this.#due) / 1000;
    if (!this.#stopped) this.#arm();
  }
}
