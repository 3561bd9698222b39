/**
 * The memory engine: a bounded log of payloads per channel, nothing
 * persisted, one process. A new epoch at every start: a restart loses the
 * history, so offsets of the previous life mean nothing.
 *
 * The store is bounded three ways (see {@linkcode DEFAULT_ENGINE}): each
 * channel keeps `historyLimit` payloads; the whole store keeps
 * `historyMaxBytes`, counting {@linkcode CHANNEL_OVERHEAD_BYTES} per
 * channel, by evicting the oldest payloads of the least recently
 * published-to channels; and a channel with no publication for `roomTtlS`
 * is deleted. The channels are also linked in order of last publication,
 * oldest first, so eviction and expiry both work from the oldest end.
 *
 * @module
 */

import type { Clock, Scheduler, TimerHandle } from "../clock.ts";
import { systemClock, systemScheduler } from "../clock.ts";
import type {
  Delivery,
  Engine,
  EngineStats,
  EngineStatus,
  HistoryPage,
  HistoryQuery,
  Payload,
  Publication,
  PublishOptions,
  StreamPosition,
} from "./engine.ts";
import { DEFAULT_ENGINE, newEpoch, sweepIntervalMs } from "./engine.ts";
import { withDefaults } from "../options.ts";
import { FrameLog } from "./frame_log.ts";

/**
 * Bytes charged to `historyMaxBytes` for each channel on top of its
 * payloads, so that many small channels cannot grow the store without
 * bound: 64 MiB holds at most 524,288 channels. A channel's real cost is
 * higher (about 500 bytes of heap for its Map entry, log and index, and a
 * 256-byte buffer, for a channel of one short payload, measured over
 * 100,000 channels), but the budget is defined as bytes of payload, and
 * the contract's steps leave room for at most ~180 bytes a channel.
 */
export const CHANNEL_OVERHEAD_BYTES = 128;

/** Options of {@linkcode MemoryEngine}. */
export interface MemoryEngineOptions {
  /** Payloads kept per channel. Default: {@linkcode DEFAULT_ENGINE}. */
  historyLimit?: number;
  /**
   * Bytes of payloads kept in all, plus {@linkcode CHANNEL_OVERHEAD_BYTES}
   * per channel. Default: {@linkcode DEFAULT_ENGINE}.
   */
  historyMaxBytes?: number;
  /**
   * Seconds after its last stored publication a channel is deleted with its
   * counter. Default: {@linkcode DEFAULT_ENGINE}.
   */
  roomTtlS?: number;
  /**
   * Seconds a publication is served from history; 0 for no limit. Default:
   * {@linkcode DEFAULT_ENGINE}.
   */
  historyTtlS?: number;
  /** The time that publications are stamped with and expire by. Default: the system clock. */
  clock?: Clock;
  /** Runs the sweep for idle channels. Default: the global timers. */
  scheduler?: Scheduler;
}

const { historyLimit, historyMaxBytes, roomTtlS, historyTtlS } = DEFAULT_ENGINE;

/** The defaults of {@linkcode MemoryEngineOptions}. */
export const DEFAULT_MEMORY_ENGINE: Readonly<{
  historyLimit: number;
  historyMaxBytes: number;
  roomTtlS: number;
  historyTtlS: number;
  clock: Clock;
  scheduler: Scheduler;
}> = Object.freeze({
  historyLimit,
  historyMaxBytes,
  roomTtlS,
  historyTtlS,
  clock: systemClock,
  scheduler: systemScheduler,
});

/** A channel's log, when it was last published to, and its place in the order of that. */
class Channel extends FrameLog {
  /** The clock's time of the last stored publication. */
  publishedAt = 0;
  /** The channel published to last before this one, and first after it. */
  older: Channel | undefined;
  newer: Channel | undefined;
  /**
   * With a history TTL: when each publication from offset `timesFrom` on
   * was stored. Entries of publications the log no longer keeps are
   * dropped in bulk, so appending stays O(1).
   */
  times: number[] | undefined;
  timesFrom = 1;

  /** Records when the publication just appended was stored. */
  stamp(now: number): void {
    const times = this.times ??= [];
    times.push(now);
    const gone = this.head - this.count + 1 - this.timesFrom;
    if (gone > 0 && gone * 2 >= times.length) {
      times.splice(0, gone);
      this.timesFrom += gone;
    }
  }

  /** When the oldest kept publication was stored; undefined when none is kept or timed. */
  oldestTime(): number | undefined {
    if (this.count === 0 || this.times === undefined) return undefined;
    return this.times[this.head - this.count + 1 - this.timesFrom];
  }

  /** A channel named `name` keeping `limit` payloads. */
  constructor(readonly name: string, limit: number) {
    super(limit);
  }
}

/** Stores payloads in process memory; delivers within this process only. */
export class MemoryEngine implements Engine {
  /** The engine's name. */
  readonly name = "memory";
  #limit: number;
  #maxBytes: number;
  #ttlMs: number;
  /** Ms a publication is served; 0 for no limit. */
  #historyTtlMs: number;
  #clock: Clock;
  #scheduler: Scheduler;
  #channels = new Map<string, Channel>();
  /**
   * The ends of the list of channels in order of last stored publication.
   * A list and not the Map's own order (delete and set again on every
   * publish): moving a channel is a few pointer writes rather than two hash
   * operations, and walking from the oldest never meets the deleted entries
   * a Map keeps until it compacts (a new iterator skips them all again:
   * evicting 300k channels that way took 17 s, not 0.5 s). Publishing to
   * 100 rooms in turn, the engine alone, delete and set made a publish
   * ~60 % slower than before the bounds; the list, ~15 %.
   */
  #oldest: Channel | undefined;
  #newest: Channel | undefined;
  /** Payload bytes plus the channels' overhead. */
  #stored = 0;
  #evictions = 0;
  #expired = 0;
  #started = false;
  #sweep: TimerHandle | undefined;
  #deliver: Delivery | undefined;
  #epoch = newEpoch();

  /** Creates an engine; see {@linkcode DEFAULT_MEMORY_ENGINE} for the defaults. */
  constructor(options: MemoryEngineOptions = {}) {
    const o = withDefaults(DEFAULT_MEMORY_ENGINE, options);
    if (!(o.historyMaxBytes >= 0)) {
      throw new RangeError(`History max bytes must be non-negative: ${o.historyMaxBytes}`);
    }
    if (!(o.roomTtlS > 0)) throw new RangeError(`Room TTL must be positive: ${o.roomTtlS}`);
    this.#limit = o.historyLimit;
    this.#maxBytes = o.historyMaxBytes;
    this.#ttlMs = o.roomTtlS * 1000;
    if (!(o.historyTtlS >= 0)) {
      throw new RangeError(`History TTL must be non-negative: ${o.historyTtlS}`);
    }
    this.#historyTtlMs = o.historyTtlS * 1000;
    this.#clock = o.clock;
    this.#scheduler = o.scheduler;
  }

  /** A new one at every start: nothing survives a restart. */
  get epoch(): string {
    return this.#epoch;
  }

  /** How many channels are held, counters included; for tests and diagnostics. */
  get channels(): number {
    return this.#channels.size;
  }

  /**
   * Sets the delivery function and arms the sweep for idle channels. Its
   * timer runs only while a channel is held: an engine that stores nothing
   * (as the one a ConnectionManager makes when given none, and tests leave
   * undisposed) holds no timer.
   */
  start(deliver: Delivery): Promise<void> {
    this.#deliver = deliver;
    this.#started = true;
    if (this.#channels.size > 0) this.#arm();
    return Promise.resolve();
  }

  /**
   * Stores (with `history`) and delivers synchronously, inside the call: the
   * delivery function has run when the promise is created.
   */
  publish(
    channel: string,
    payload: Payload,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    if (options?.history !== true) {
      this.#deliver?.(channel, payload);
      return Promise.resolve(undefined);
    }
    const log = this.#touch(channel);
    const before = log.byteLength;
    log.append(payload);
    if (this.#historyTtlMs > 0) log.stamp(log.publishedAt);
    this.#stored += log.byteLength - before;
    if (this.#stored > this.#maxBytes) this.#evict(log);
    const offset = log.head;
    this.#deliver?.(channel, payload, offset);
    return Promise.resolve({ offset, epoch: this.#epoch });
  }

  /** Reads stored payloads, oldest first. */
  history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const log = this.#channels.get(channel);
    if (log !== undefined && this.#historyTtlMs > 0) this.#dropStale(log);
    const position = { offset: log?.head ?? 0, epoch: this.#epoch };
    if (log === undefined) {
      const complete = query.after === undefined || query.after === 0;
      return Promise.resolve({ publications: [], position, complete });
    }
    // Offsets in a log are consecutive, so the wanted range is known up front.
    const oldest = log.head - log.count + 1;
    let lo = Math.max(oldest, (query.after ?? 0) + 1);
    let hi = Math.min(log.head, (query.before ?? Infinity) - 1);
    if (query.after !== undefined) hi = Math.min(hi, lo + query.limit - 1);
    else lo = Math.max(lo, hi - query.limit + 1);
    const publications: Publication[] = [];
    for (let offset = lo; offset <= hi; offset++) {
      publications.push({ offset, payload: log.text(offset)! });
    }
    // An `after` beyond the head comes from a previous life of the store.
    const complete = query.after === undefined ||
      (query.after <= log.head && oldest <= query.after + 1);
    return Promise.resolve({ publications, position, complete });
  }

  /** Nothing to do: every channel is local. */
  subscribe(_channel: string): void {}

  /** Nothing to do: every channel is local. */
  unsubscribe(_channel: string): void {}

  /** Always ok. */
  status(): EngineStatus {
    return "ok";
  }

  /** Bytes held (payloads plus {@linkcode CHANNEL_OVERHEAD_BYTES} a channel), evictions, expiries. */
  stats(): EngineStats {
    return {
      storedBytes: this.#stored,
      evictions: this.#evictions,
      expiredChannels: this.#expired,
    };
  }

  /** Stops the sweep and drops all payloads. */
  [Symbol.asyncDispose](): Promise<void> {
    this.#started = false;
    this.#disarm();
    this.#channels.clear();
    this.#oldest = this.#newest = undefined;
    this.#stored = 0;
    this.#deliver = undefined;
    return Promise.resolve();
  }

  /** The channel's log, created or moved to the newest end of the list as just published to. */
  #touch(channel: string): Channel {
    let log = this.#channels.get(channel);
    if (log === undefined) {
      log = new Channel(channel, this.#limit);
      this.#channels.set(channel, log);
      this.#stored += CHANNEL_OVERHEAD_BYTES;
      this.#link(log);
      if (this.#started) this.#arm();
    } else if (log !== this.#newest) {
      this.#unlink(log);
      this.#link(log);
    }
    log.publishedAt = this.#clock.now();
    return log;
  }

  /** Puts a channel that is not in the list at its newest end. */
  #link(log: Channel): void {
    log.older = this.#newest;
    log.newer = undefined;
    if (this.#newest === undefined) this.#oldest = log;
    else this.#newest.newer = log;
    this.#newest = log;
  }

  /** Takes a channel out of the list. */
  #unlink(log: Channel): void {
    if (log.older === undefined) this.#oldest = log.newer;
    else log.older.newer = log.newer;
    if (log.newer === undefined) this.#newest = log.older;
    else log.newer.older = log.older;
    log.older = log.newer = undefined;
  }

  /**
   * Drops the oldest payloads of the least recently published-to channels
   * until the store fits its budget. A channel left empty is deleted with
   * its counter, except `current`, whose publish has just taken an offset.
   */
  #evict(current: Channel): void {
    while (this.#stored > this.#maxBytes) {
      const log = this.#oldest;
      if (log === undefined) return;
      if (log.count > 0) {
        this.#stored -= log.dropOldest();
        this.#evictions++;
      } else if (log === current) {
        // Only the current channel is left, and it is empty: nothing more to drop.
        return;
      }
      if (log.count === 0 && log !== current) this.#delete(log);
    }
  }

  /** Drops a channel's publications older than the history TTL: they are no longer served. */
  #dropStale(log: Channel): void {
    const cutoff = this.#clock.now() - this.#historyTtlMs;
    for (let t = log.oldestTime(); t !== undefined && t < cutoff; t = log.oldestTime()) {
      this.#stored -= log.dropOldest();
    }
  }

  /** Deletes the channels whose last publication is `roomTtlS` old. */
  #expire(): void {
    const cutoff = this.#clock.now() - this.#ttlMs;
    // The list is in order of last publication, so the expired ones are its oldest end.
    while (this.#oldest !== undefined && this.#oldest.publishedAt <= cutoff) {
      this.#delete(this.#oldest);
      this.#expired++;
    }
    if (this.#channels.size === 0) this.#disarm();
  }

  /** Deletes a channel with its payloads and counter. */
  #delete(log: Channel): void {
    this.#channels.delete(log.name);
    this.#unlink(log);
    this.#stored -= log.byteLength + CHANNEL_OVERHEAD_BYTES;
  }

  /** Starts the sweep for idle channels, unless it runs. */
  #arm(): void {
    if (this.#sweep !== undefined) return;
    this.#sweep = this.#scheduler.setInterval(
      () => this.#expire(),
      sweepIntervalMs(this.#ttlMs / 1000),
    );
  }

  /** Stops the sweep. */
  #disarm(): void {
    if (this.#sweep === undefined) return;
    this.#scheduler.clearInterval(this.#sweep);
    this.#sweep = undefined;
  }
}
