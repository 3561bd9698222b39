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
 * - Fan-out: pub/sub, one channel per engine channel, followed with one
 *   cursor per channel and catch-up reads of the stream (redis_follow.ts).
 *   Ephemeral publications are lost while pub/sub is down.
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
import { RedisBounds } from "./redis_bounds.ts";
import { RedisFollower } from "./redis_follow.ts";
import { Waiters } from "./redis_waiters.ts";

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
  #follower: RedisFollower;
  #waiters = new Waiters();
  #refreshMs: number;
  /** Tells this process's data apart from a store that lost it (restart without persistence). */
  #epoch = "";
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
      onMessage: (channel, message) => this.#follower.onMessage(channel, message),
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
    this.#follower = this.#newFollower();
  }

  /** The follower of this engine's channels, on its connections and streams. */
  #newFollower(): RedisFollower {
    return new RedisFollower({
      client: this.#client,
      subscriber: this.#subscriber,
      streams: this.#streams,
      waiters: this.#waiters,
      pubsubPrefix: this.#pubsubPrefix,
      log: this.#log,
      clock: this.#clock,
      observe: (epoch) => this.#observe(epoch),
      failed: () => this.#scheduleRetry(),
    });
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
    this.#follower.deliver = deliver;
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
    this.#follower.sync();
    const refresh = () => this.presence.refresh();
    this.#refreshTimer = this.#scheduler.setInterval(refresh, this.#refreshMs);
    this.#bounds.start();
  }

  /**
   * With `history`, stores the payload and publishes it; resolves once Redis
   * has stored it and, when this process subscribed to the channel, it was
   * handed on here (so a notice reaches local members before, say, their
   * sockets are closed); a dropped connection meanwhile resolves it at once.
   * Without, a plain PUBLISH, once a subscription of this process to the
   * channel that is still catching up is in place.
   */
  async publish(
    channel: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    if (options?.history !== true) {
      // "Subscribed now" includes this process: a channel it just subscribed
      // to waits for its SUBSCRIBE, or its own members would miss the publish.
      await this.#follower.caughtUp(channel);
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
    if (this.status() === "ok" && this.#follower.awaits(channel, id)) {
      await this.#waiters.wait(channel, id);
    }
    return { offset: id, epoch: this.#epoch };
  }

  /** Reads a page of stored payloads of a channel, oldest first. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const read = await this.#streams.read(channel, query);
    // A publication the page holds is handed on before the page, not after it: a
    // channel still catching up (just subscribed) would otherwise deliver the page's
    // newest ones, such as a joining user's own notice, once the page was sent, twice.
    await this.#follower.caughtUp(channel);
    this.#observe(read.epoch);
    const position = { offset: read.top, epoch: this.#epoch };
    return { publications: read.publications, position, complete: read.complete };
  }

  /** Starts delivering the channel (a room or a user channel) to this process. */
  subscribe(channel: string): void {
    if (!this.#disposed) this.#follower.subscribe(channel);
  }

  /** Stops delivering the channel to this process. */
  unsubscribe(channel: string): void {
    this.#follower.unsubscribe(channel);
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
    this.#follower.stop();
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
    this.#follower.close();
    this.#waiters.releaseAll();
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
  }

  /** Takes up the store's epoch when it is not this engine's: the store lost its data. */
  #observe(epoch: unknown): void {
    if (typeof epoch === "string" && epoch !== this.#epoch) this.#reset(epoch);
  }

  #reset(epoch: string): void {
    this.#log.warn("redis_data_lost", { note: "ids restart; run Redis with appendonly yes" });
    this.#epoch = epoch;
    this.#follower.rewind();
    this.presence.refresh();
    this.#streams.candidate = newEpoch();
    // Publications of the new epoch may have been skipped as already seen.
    this.#follower.sync();
  }

  #scheduleRetry(): void {
    // Without both connections the next "connected" event retries instead.
    if (this.#disposed || this.#retryTimer !== undefined || this.status() !== "ok") return;
    this.#retryTimer = this.#scheduler.setTimeout(() => {
      this.#retryTimer = undefined;
      this.#follower.sync(true);
    }, RETRY_MS);
  }

  #onSubscriberStatus(status: RedisStatus): void {
    if (this.#disposed || !this.#started) return;
    if (status === "disconnected") {
      this.#log.warn("redis_disconnected", { connection: "subscriber" });
      // Their frames come with the catch-up; waiting for it could take long.
      this.#waiters.releaseAll();
      // Pub/sub drops what is published while away; the streams have it.
      this.#follower.interrupted();
      return;
    }
    this.#log.info("redis_connected", { connection: "subscriber" });
    this.#follower.sync();
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
    this.#follower.sync(true);
  }
}
