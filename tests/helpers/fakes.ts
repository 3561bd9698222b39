/**
 * Test doubles for the ConnectionManager: a socket that records what was
 * sent, a clock the test sets, and a scheduler that runs timers only when
 * the test advances time.
 *
 * @module
 */

import type { Clock, Scheduler, TimerHandle } from "../../chat/clock.ts";
import type { ChatSocket } from "../../chat/connection_manager.ts";

/** A frame as a test reads it: parsed JSON with loose fields. */
export type Frame = Record<string, unknown> & { type?: string };

/** A {@linkcode ChatSocket} that records every send and the close. */
export class FakeSocket implements ChatSocket {
  /** Every text frame sent, in order. */
  readonly sent: string[] = [];
  /** The arguments of the first `close` call, if any. */
  closedWith: { code: number | undefined; reason: string | undefined } | undefined;
  /** How many times `close` was called. */
  closeCalls = 0;
  /**
   * Bytes sent since {@linkcode FakeSocket.stall}: a stalled peer reads
   * nothing, so every send stays buffered, as in a WebSocket.
   */
  bufferedAmount = 0;
  /** 1 (open) until `close` is called, then 3. */
  readyState = 1;
  #stalled = false;

  /** Records a text frame. */
  send(data: string): void {
    if (this.readyState !== 1) throw new Error(`Send on a socket in state: ${this.readyState}`);
    this.sent.push(data);
    if (this.#stalled) this.bufferedAmount += new TextEncoder().encode(data).length;
  }

  /** From now on the peer reads nothing: what is sent stays in `bufferedAmount`. */
  stall(): void {
    this.#stalled = true;
  }

  /** Records the close; later calls only count. */
  close(code?: number, reason?: string): void {
    this.closeCalls++;
    if (this.closedWith === undefined) this.closedWith = { code, reason };
    this.readyState = 3;
  }

  /** The close code, if closed; a method so assertions on it do not narrow. */
  closeCode(): number | undefined {
    return this.closedWith?.code;
  }

  /** Every sent frame parsed as JSON. */
  frames(): Frame[] {
    return this.sent.map((text) => JSON.parse(text) as Frame);
  }

  /** The sent frames of one type. */
  framesOf(type: string): Frame[] {
    return this.frames().filter((f) => f.type === type);
  }

  /** Returns and forgets the frames sent so far. */
  take(): Frame[] {
    const frames = this.frames();
    this.sent.length = 0;
    return frames;
  }
}

/** A clock that only moves when told to. */
export class FakeClock implements Clock {
  /** The current time in milliseconds. */
  time: number;

  /** Starts at `start` milliseconds since the epoch. Default: 2024-01-01T00:00:00Z. */
  constructor(start = Date.UTC(2024, 0, 1)) {
    this.time = start;
  }

  /** The current time. */
  now(): number {
    return this.time;
  }
}

interface FakeTimer {
  fn: () => void;
  due: number;
  /** Undefined for a timeout. */
  every: number | undefined;
}

/** A scheduler whose timers run only inside {@linkcode FakeScheduler.advance}. */
export class FakeScheduler implements Scheduler {
  readonly #clock: FakeClock;
  readonly #timers = new Map<TimerHandle, FakeTimer>();
  #next = 1;

  /** Moves `clock` forward as it runs timers. */
  constructor(clock: FakeClock) {
    this.#clock = clock;
  }

  /** Timers not yet cleared or run. */
  get pending(): number {
    return this.#timers.size;
  }

  /** Intervals not yet cleared. */
  get intervals(): number {
    return [...this.#timers.values()].filter((t) => t.every !== undefined).length;
  }

  /** Registers a repeating timer. */
  setInterval(fn: () => void, ms: number): TimerHandle {
    const handle = this.#next++;
    const every = Math.max(1, ms);
    this.#timers.set(handle, { fn, due: this.#clock.time + every, every });
    return handle;
  }

  /** Removes a repeating timer. */
  clearInterval(handle: TimerHandle): void {
    this.#timers.delete(handle);
  }

  /** Registers a one-shot timer. */
  setTimeout(fn: () => void, ms: number): TimerHandle {
    const handle = this.#next++;
    this.#timers.set(handle, { fn, due: this.#clock.time + Math.max(0, ms), every: undefined });
    return handle;
  }

  /** Removes a one-shot timer. */
  clearTimeout(handle: TimerHandle): void {
    this.#timers.delete(handle);
  }

  /**
   * Moves time forward by `ms`, running every timer that falls due in order
   * of due time, with the clock set to each one's due time.
   */
  advance(ms: number): void {
    const target = this.#clock.time + ms;
    for (;;) {
      let handle: TimerHandle | undefined;
      let timer: FakeTimer | undefined;
      for (const [h, t] of this.#timers) {
        if (t.due <= target && (timer === undefined || t.due < timer.due)) {
          handle = h;
          timer = t;
        }
      }
      if (handle === undefined || timer === undefined) break;
      this.#clock.time = Math.max(this.#clock.time, timer.due);
      if (timer.every === undefined) this.#timers.delete(handle);
      else timer.due += timer.every;
      timer.fn();
    }
    this.#clock.time = target;
  }
}

/**
 * Whether a join or leave notice names `user`: its `user`, or one of the
 * `users` of a notice coalesced within PRESENCE_WINDOW_MS.
 */
export function aboutUser(frame: Frame, user: string): boolean {
  return frame.user === user || (Array.isArray(frame.users) && frame.users.includes(user));
}

/** Lets pending promise callbacks (engine history, publish) run. */
export function settle(): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, 0));
}
