/**
 * The redis engine: channels, history and presence shared by every server
 * process that points at one Redis. Storage and the epoch: see
 * redis_history.ts; presence: redis_presence.ts.
 *
 * - A stored publish is one Lua script (INCR, XADD, PUBLISH): the payload is
 *   stored before anyone can see it. An ephemeral publish is a plain PUBLISH.
 * - The store is bounded (redis_bounds.ts): the publish script evicts past
 *   `historyMaxBytes`, a timer deletes channels idle for `roomTtlS`, and
 *   every key has a Redis TTL. A deleted channel's offsets start again at
 *   1: a message with {@linkcode RESET_ID} moves its subscribers' cursors back.
 * - Fan-out: pub/sub, one channel per engine channel. Stored publications
 *   reach this process only through pub/sub or a catch-up read of the
 *   stream, never straight from `publish`, so one cursor per channel gives
 *   exactly once, in offset order, even while catching up. Ephemeral ones
 *   are handed on as they arrive and are lost while pub/sub is down.
 * - After the pub/sub connection comes back, every channel is read from its
 *   stream after the last delivered entry, then live again.
 *
 * Not for Redis Cluster: the engine's keys are not hash-tagged.
 *
 * @module
 */

import {
  type Clock,
  type Scheduler,
  systemClock,
  systemScheduler,
  type TimerHandle,
} from "../clock.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { LogThrottle } from "../log_throttle.ts";
import {
  type Delivery,
  type Engine,
  type EngineStats,
  type EngineStatus,
  type HistoryPage,
  type HistoryQuery,
  newEpoch,
  type PublishOptions,
  type StreamPosition,
} from "./engine.ts";
import { RedisClient, RedisSubscriber } from "./redis_client.ts";
import type { RedisStatus } from "./redis_link.ts";
import { RedisPresence } from "./redis_presence.ts";
import { type RedisEngineOptions, redisSettings } from "./redis_options.ts";
import { RedisHistory } from "./redis_history.ts";
import { RedisBounds, RESET_ID } from "./redis_bounds.ts";
import { Waiters } from "./redis_waiters.ts";
import {
  compareIds,
  type Entry,
  entryNumber,
  parseEntries,
  parseMessage,
} from "./redis_scripts.ts";

/** A channel this process subscribed to (a room or a user channel). */
interface Sub {
  channel: string;
  stream: string;
  pubsub: string;
  /** The last stream entry handed on; null until the starting point is read. */
  cursor: string | null;
  /** Whether SUBSCRIBE was issued (the subscriber restores it on reconnect). */
  subscribed: boolean;
  /** While true, live messages wait in `buffer` for the catch-up to finish. */
  syncing: boolean;
  /** Whether live messages may have been missed and a catch-up is due. */
  stale: boolean;
  running: boolean;
  again: boolean;
  buffer: Entry[];
  /** The running catch-up; a history read waits for it. */
  loop: Promise<void>;
}

// Stream reads are paged so one catch-up never holds a huge reply.
const BATCH = 500;
// Past this many buffered live messages the catch-up is simply read again.
const MAX_BUFFER = 10_000;
// The streams are also the catch-up log, so keep a floor even with HISTORY_LIMIT=0.
const MIN_RETAINED = 100;
const RETRY_MS = 500;

/**
 * Stores payloads in Redis streams and fans them out with Redis pub/sub, so
 * any number of server processes share channels, history and presence.
 *
 * While Redis is unreachable `status()` is "degraded", `publish` and
 * `history` reject (the manager answers `unavailable`; nothing unstored is
 * delivered, not even locally), and both connections reconnect with backoff.
 */
export class RedisEngine implements Engine {
  /** The engine's name. */
  readonly name = "redis";
  /** Presence across every process on this Redis. */
  readonly presence: RedisPresence;

  #client: RedisClient;
  #subscriber: RedisSubscriber;
  #log: Logger;
  #clock: Clock;
  #scheduler: Scheduler;
  #pubsubPrefix: string;
  #streams: RedisHistory;
  #bounds: RedisBounds;
  #deliver: Delivery | undefined;
  #subs = new Map<string, Sub>();
  #waiters = new Waiters();
  #refreshMs: number;
  /** Tells this process's data apart from a store that lost it (restart without persistence). */
  #epoch = "";
  #resets = 0;
  #refreshTimer: TimerHandle | undefined;
  #retryTimer: TimerHandle | undefined;
  #started = false;
  #disposed = false;

  /**
   * Creates an engine; nothing is dialed until {@linkcode RedisEngine.start}.
   *
   * @throws {TypeError} for a malformed URL.
   * @throws {RangeError} for a TTL or byte budget out of range.
   */
  constructor(options: RedisEngineOptions = {}) {
    this.#log = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#scheduler = options.scheduler ?? systemScheduler;
    const o = redisSettings(options);
    const prefix = o.keyPrefix;
    this.#pubsubPrefix = `${prefix}ch:`;
    const historyLimit = o.historyLimit;
    const presenceTtlMs = o.presenceTtlS * 1000;
    this.#refreshMs = Math.max(100, Math.floor(presenceTtlMs / 3));
    const common = {
      url: o.url,
      caCerts: options.caCerts,
      reconnect: o.reconnect,
      // Failed reconnect attempts are routine during an outage.
      onError: (error: Error) => this.#log.debug("redis_error", { error: error.message }),
    };
    this.#client = new RedisClient({
      ...common,
      onStatus: (status) => this.#onClientStatus(status),
    });
    this.#subscriber = new RedisSubscriber({
      ...common,
      onStatus: (status) => this.#onSubscriberStatus(status),
      onMessage: (channel, message) => this.#onMessage(channel, message),
    });
    this.presence = new RedisPresence({
      client: this.#client,
      prefix,
      ttlMs: presenceTtlMs,
      logger: this.#log,
    });
    this.#bounds = new RedisBounds({
      client: this.#client,
      prefix,
      roomTtlMs: o.roomTtlS * 1000,
      clock: this.#clock,
      scheduler: this.#scheduler,
      logger: this.#log,
    });
    this.#streams = new RedisHistory({
      client: this.#client,
      prefix,
      historyLimit,
      retained: Math.max(historyLimit, MIN_RETAINED),
      ttlMs: o.historyTtlS * 1000,
      maxBytes: o.historyMaxBytes,
      keepMs: this.#bounds.keepMs(),
      bounds: this.#bounds,
      clock: this.#clock,
    }, newEpoch());
  }

  /** The epoch key's value; a new one after Redis lost its data. */
  get epoch(): string {
    return this.#epoch;
  }

  /**
   * Connects both connections and sets the delivery function.
   * Rejects, naming host:port, when Redis cannot be reached.
   */
  async start(deliver: Delivery): Promise<void> {
    this.#deliver = deliver;
    await this.#streams.load();
    await this.#bounds.load();
    await this.presence.load();
    await this.#client.connect();
    try {
      await this.#subscriber.connect();
      this.#epoch = await this.#streams.readEpoch();
    } catch (error) {
      await this.#client.close();
      await this.#subscriber.close();
      throw error;
    }
    this.#started = true;
    for (const sub of this.#subs.values()) this.#sync(sub);
    const refresh = () => this.presence.refresh();
    this.#refreshTimer = this.#scheduler.setInterval(refresh, this.#refreshMs);
    this.#bounds.start();
  }

  /**
   * With `history`, stores the payload and publishes it; resolves once Redis
   * has stored it and, when this process subscribed to the channel, it was
   * handed on here (so a notice reaches local members before, say, their
   * sockets are closed); a dropped connection meanwhile resolves it at once.
   * Without, a plain PUBLISH.
   */
  async publish(
    channel: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    if (options?.history !== true) {
      await this.#client.command([
        "PUBLISH",
        this.#pubsubPrefix + channel,
        `\n${channel}\n${payload}`,
      ]);
      return undefined;
    }
    const { offset: id, epoch } = await this.#streams.store(
      channel,
      payload,
      this.#pubsubPrefix + channel,
    );
    // A store that lost its data gives out offsets of a new epoch.
    this.#observe(epoch);
    const sub = this.#subs.get(channel);
    const awaited = sub !== undefined && (sub.cursor === null || entryNumber(sub.cursor) < id);
    if (this.status() === "ok" && awaited) await this.#waiters.wait(channel, id);
    return { offset: id, epoch: this.#epoch };
  }

  /** Reads a page of stored payloads of a channel, oldest first. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const read = await this.#streams.read(channel, query);
    // A publication the page holds is handed on before the page, not after it: a
    // channel still catching up (just subscribed) would otherwise deliver the page's
    // newest ones, such as a joining user's own notice, once the page was sent, twice.
    const sub = this.#subs.get(channel);
    if (sub?.syncing) await sub.loop;
    this.#observe(read.epoch);
    const position = { offset: read.top, epoch: this.#epoch };
    return { publications: read.publications, position, complete: read.complete };
  }

  /** Starts delivering the channel (a room or a user channel) to this process. */
  subscribe(channel: string): void {
    if (this.#disposed || this.#subs.has(channel)) return;
    const sub: Sub = {
      channel,
      stream: this.#streams.streamKey(channel),
      pubsub: this.#pubsubPrefix + channel,
      cursor: null,
      subscribed: false,
      syncing: true,
      stale: true,
      running: false,
      again: false,
      buffer: [],
      loop: Promise.resolve(),
    };
    this.#subs.set(channel, sub);
    // The starting point is read before SUBSCRIBE and the gap read after it,
    // so a frame published in between is neither lost nor doubled.
    this.#sync(sub);
  }

  /** Stops delivering the channel to this process. */
  unsubscribe(channel: string): void {
    const sub = this.#subs.get(channel);
    if (sub === undefined) return;
    this.#subs.delete(channel);
    if (sub.subscribed) {
      this.#subscriber.unsubscribe(sub.pubsub).catch((error) =>
        this.#log.debug("redis_unsubscribe_failed", { channel, error: String(error) })
      );
    }
    this.#waiters.release(channel);
  }

  /** "ok" while both Redis connections are up. */
  status(): EngineStatus {
    return this.#client.connected && this.#subscriber.connected ? "ok" : "degraded";
  }

  /** The store's bytes as the last publish or sweep saw them, and this process's deletions. */
  stats(): EngineStats {
    return this.#bounds.stats();
  }

  /** Removes this process's presence, closes both connections and every timer. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#refreshTimer !== undefined) this.#scheduler.clearInterval(this.#refreshTimer);
    if (this.#retryTimer !== undefined) this.#scheduler.clearTimeout(this.#retryTimer);
    this.#refreshTimer = undefined;
    this.#retryTimer = undefined;
    this.#bounds.stop();
    // Users of a stopped process vanish at once instead of after the TTL;
    // the PING reply means every command sent before it has run.
    const commands = this.presence.dispose();
    if (this.#client.connected) {
      await this.#client.pipeline([...commands, ["PING"]]).catch(() => undefined);
    }
    this.#subs.clear();
    this.#waiters.releaseAll();
    this.#deliver = undefined;
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
  }

  // -------------------------------------------------------------------------
  // Fan-out and catch-up

  #onMessage(pubsub: string, message: string): void {
    const sub = this.#subs.get(pubsub.slice(this.#pubsubPrefix.length));
    if (sub === undefined || sub.pubsub !== pubsub) return;
    const entry = parseMessage(message);
    if (entry === undefined) return;
    // Ephemeral: no cursor to keep, nothing to catch up.
    if (entry.id === "") return this.#hand(entry.channel, entry.payload);
    if (sub.syncing) {
      sub.buffer.push(entry);
      if (sub.buffer.length > MAX_BUFFER) {
        // Everything buffered is in the stream too: read it from there.
        sub.buffer = [];
        sub.again = true;
      }
      return;
    }
    this.#accept(sub, entry);
  }

  /** Created on the first failed delivery. */
  #deliveryFailures: LogThrottle | undefined;

  #accept(sub: Sub, entry: Entry): void {
    if (sub.cursor === null) return;
    // The channel was deleted: its next publication is offset 1 again.
    if (entry.id === RESET_ID) sub.cursor = RESET_ID;
    if (compareIds(entry.id, sub.cursor) <= 0) return;
    sub.cursor = entry.id;
    const offset = entryNumber(entry.id);
    this.#hand(entry.channel, entry.payload, offset);
    if (this.#waiters.size > 0) this.#waiters.release(entry.channel, offset);
  }

  #hand(channel: string, payload: string, offset?: number): void {
    try {
      this.#deliver?.(channel, payload, offset);
    } catch (error) {
      // A delivery that throws does so for every publication: one line per interval.
      this.#deliveryFailures ??= new LogThrottle({ logger: this.#log, clock: this.#clock });
      this.#deliveryFailures.error("delivery_failed", { channel, error: String(error) });
    }
  }

  #current(sub: Sub): boolean {
    return !this.#disposed && this.#subs.get(sub.channel) === sub;
  }

  #sync(sub: Sub): void {
    if (sub.running) {
      sub.again = true;
      return;
    }
    sub.running = true;
    sub.syncing = true;
    sub.loop = this.#syncLoop(sub);
  }

  async #syncLoop(sub: Sub): Promise<void> {
    try {
      do {
        sub.again = false;
        if (!this.#current(sub)) return;
        if (sub.cursor === null) {
          const reply = await this.#client.command(["XREVRANGE", sub.stream, "+", "-", "COUNT", 1]);
          if (!this.#current(sub)) return;
          sub.cursor = parseEntries(reply, sub.channel)[0]?.id ?? "0-0";
        }
        if (!sub.subscribed) {
          sub.subscribed = true;
          try {
            await this.#subscriber.subscribe(sub.pubsub);
          } catch (error) {
            sub.subscribed = false;
            throw error;
          }
          if (!this.#current(sub)) return;
        }
        // A disconnected subscriber catches up again once it is back.
        if (!this.#subscriber.connected) return;
        await this.#catchUp(sub);
      } while (sub.again && this.#current(sub));
    } catch (error) {
      if (!this.#current(sub)) return;
      sub.stale = true;
      this.#log.debug("redis_catch_up_failed", { channel: sub.channel, error: String(error) });
      this.#scheduleRetry();
    } finally {
      // In the same tick as the last `again` check, so no request falls between.
      sub.running = false;
    }
  }

  /** Reads the stream after the cursor, then hands on what arrived live meanwhile. */
  async #catchUp(sub: Sub): Promise<void> {
    let checked = false;
    for (;;) {
      const resets = this.#resets;
      const cursor = sub.cursor ?? "0-0";
      const commands: (string | number)[][] = [
        ["XRANGE", sub.stream, `(${cursor}`, "+", "COUNT", BATCH],
      ];
      const top = ["XREVRANGE", sub.stream, "+", "-", "COUNT", 1];
      if (!checked) commands.push(...this.#streams.epochCommands(), top);
      const replies = await this.#client.pipeline(commands);
      if (!this.#current(sub)) return;
      if (!checked) {
        checked = true;
        this.#observe(replies[2]);
        // A stream below the cursor was deleted (its reset message missed) and begun again.
        const last = parseEntries(replies[3], sub.channel)[0]?.id ?? RESET_ID;
        if (resets === this.#resets && compareIds(last, cursor) < 0) sub.cursor = RESET_ID;
      }
      // A reset meanwhile moved the cursors back: read again from there.
      if (resets !== this.#resets || sub.cursor !== cursor) continue;
      const entries = parseEntries(replies[0], sub.channel);
      for (const entry of entries) this.#accept(sub, entry);
      if (entries.length < BATCH) break;
    }
    if (!this.#subscriber.connected) return;
    const buffered = sub.buffer;
    sub.buffer = [];
    for (const entry of buffered) this.#accept(sub, entry);
    sub.syncing = false;
    sub.stale = false;
  }

  /** Takes up the store's epoch when it is not this engine's: the store lost its data. */
  #observe(epoch: unknown): void {
    if (typeof epoch === "string" && epoch !== this.#epoch) this.#reset(epoch);
  }

  #reset(epoch: string): void {
    this.#log.warn("redis_data_lost", { note: "ids restart; run Redis with appendonly yes" });
    this.#epoch = epoch;
    this.#resets++;
    for (const sub of this.#subs.values()) if (sub.cursor !== null) sub.cursor = "0-0";
    this.presence.refresh();
    this.#streams.candidate = newEpoch();
    // Publications of the new epoch may have been skipped as already seen.
    for (const sub of this.#subs.values()) this.#sync(sub);
  }

  #scheduleRetry(): void {
    // Without both connections the next "connected" event retries instead.
    if (this.#disposed || this.#retryTimer !== undefined || this.status() !== "ok") return;
    this.#retryTimer = this.#scheduler.setTimeout(() => {
      this.#retryTimer = undefined;
      for (const sub of this.#subs.values()) if (sub.stale) this.#sync(sub);
    }, RETRY_MS);
  }

  #onSubscriberStatus(status: RedisStatus): void {
    if (this.#disposed || !this.#started) return;
    if (status === "disconnected") {
      this.#log.warn("redis_disconnected", { connection: "subscriber" });
      // Their frames come with the catch-up; waiting for it could take long.
      this.#waiters.releaseAll();
      // Pub/sub drops what is published while away; the streams have it.
      for (const sub of this.#subs.values()) {
        sub.syncing = true;
        sub.stale = true;
      }
      return;
    }
    this.#log.info("redis_connected", { connection: "subscriber" });
    for (const sub of this.#subs.values()) this.#sync(sub);
  }

  #onClientStatus(status: RedisStatus): void {
    if (this.#disposed || !this.#started) return;
    if (status === "disconnected") {
      this.#log.warn("redis_disconnected", { connection: "commands" });
      this.#waiters.releaseAll();
      return;
    }
    this.#log.info("redis_connected", { connection: "commands" });
    this.presence.refresh();
    for (const sub of this.#subs.values()) if (sub.stale) this.#sync(sub);
  }
}
