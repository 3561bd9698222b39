/**
 * The redis engine over several Redis servers (REDIS_URL as a comma list),
 * so that no single Redis carries every room, as Centrifuge shards its
 * Redis broker: one {@linkcode RedisEngine} per shard, and every
 * channel-keyed call (publish, subscribe, unsubscribe, history) goes to the
 * shard that jump consistent hashing of the channel's name picks
 * (jump_hash.ts). Presence and names stay global on the first shard.
 *
 * Every process must list the same shards in the same order: the order
 * decides where each channel lives. Adding a shard at the end moves about
 * 1/N of the channels to it; their history stays behind on the old shard
 * (their offsets start again at 1 on the new one, which the epoch covers).
 *
 * @module
 */

import {
  type Delivery,
  type Engine,
  type EngineStats,
  type EngineStatus,
  type HistoryPage,
  type HistoryQuery,
  type Presence,
  type PublishOptions,
  type StreamPosition,
} from "./engine.ts";
import { fnv1a64, shardOf } from "./jump_hash.ts";
import { RedisEngine } from "./redis.ts";
import { type RedisEngineOptions, redisSettings } from "./redis_options.ts";
import { parseRedisUrls } from "./redis_url.ts";
import { type Logger, silentLogger } from "../logger.ts";

/** Options of {@linkcode ShardedRedisEngine}: a redis engine's, with the shards' URLs for its one URL. */
export interface ShardedRedisOptions extends Omit<RedisEngineOptions, "url"> {
  /** The shards' `redis://` or `rediss://` URLs, in the order every process lists them. */
  urls: readonly string[];
}

/**
 * Channels, history and fan-out spread over several Redis servers; presence
 * and names on the first. `historyMaxBytes` is the whole store's: each shard
 * keeps an equal part of it and evicts from its own channels; the other
 * bounds apply per channel as with one Redis.
 *
 * Publications of one channel keep their order; those of two channels on
 * two shards may arrive in another order than they were published.
 *
 * While a shard is unreachable `status()` is "partial" ("degraded" when it
 * is the first, which keeps presence and names), and only the
 * channels that live on it fail: their publishes and history reads reject,
 * and their subscriptions catch up once it is back. With the first shard
 * down, presence reads reject too.
 */
export class ShardedRedisEngine implements Engine {
  /** The engine's name, as with one Redis. */
  readonly name = "redis";
  /** Presence across every process, kept on the first shard. */
  readonly presence: Presence;

  #shards: RedisEngine[];
  #epochOf = "";
  #epoch = "";

  /**
   * Creates one redis engine per shard; nothing is dialed until
   * {@linkcode ShardedRedisEngine.start}.
   *
   * @throws {TypeError} for a malformed or repeated URL, or none.
   * @throws {RangeError} for a TTL or byte budget out of range.
   */
  constructor(options: ShardedRedisOptions) {
    const { urls, ...common } = options;
    if (urls.length === 0) throw new TypeError("No Redis URL: REDIS_URL is empty");
    parseRedisUrls(urls.join(","));
    const logger = options.logger ?? silentLogger;
    // The budget is the whole store's, as with one Redis: each shard keeps an equal part.
    const historyMaxBytes = Math.floor(redisSettings(common).historyMaxBytes / urls.length);
    this.#shards = urls.map((url, shard) =>
      new RedisEngine({ ...common, url, historyMaxBytes, logger: shardLogger(logger, shard) })
    );
    this.presence = this.#shards[0]!.presence;
  }

  /**
   * The epoch every `since` is relative to, one for all shards: it changes
   * whenever any shard's does (that Redis lost its data), so a position
   * from before never recovers as complete, at the cost of a full recovery
   * for the channels of the other shards too.
   */
  get epoch(): string {
    const epochs = this.#shards.map((shard) => shard.epoch).join("|");
    if (epochs !== this.#epochOf) {
      this.#epochOf = epochs;
      // A digest keeps it short whatever the number of shards, and the same on every process.
      this.#epoch = fnv1a64(epochs).toString(16).padStart(16, "0");
    }
    return this.#epoch;
  }

  /**
   * Starts every shard; rejects, naming the host:port, when one cannot be
   * reached, after closing the others.
   */
  async start(deliver: Delivery): Promise<void> {
    const started = await Promise.allSettled(this.#shards.map((shard) => shard.start(deliver)));
    const failed = started.find((result) => result.status === "rejected");
    if (failed === undefined) return;
    await Promise.all(this.#shards.map((shard) => shard[Symbol.asyncDispose]()));
    throw failed.reason;
  }

  /** Publishes on the channel's shard; a stored publish resolves with the common epoch. */
  async publish(
    channel: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    const position = await this.#shard(channel).publish(channel, payload, options);
    return position === undefined ? undefined : { offset: position.offset, epoch: this.epoch };
  }

  /** Reads a page of the channel's stream from its shard. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const page = await this.#shard(channel).history(channel, query);
    return { ...page, position: { offset: page.position.offset, epoch: this.epoch } };
  }

  /** Starts delivering the channel from its shard. */
  subscribe(channel: string): void {
    this.#shard(channel).subscribe(channel);
  }

  /** Stops delivering the channel. */
  unsubscribe(channel: string): void {
    this.#shard(channel).unsubscribe(channel);
  }

  /**
   * "ok" while every shard is; "degraded" while the first is not (no one
   * can connect without presence) or none is; "partial" otherwise: a load
   * balancer keeps sending users to a process that serves most rooms.
   */
  status(): EngineStatus {
    const up = this.#shards.filter((shard) => shard.status() === "ok").length;
    if (up === this.#shards.length) return "ok";
    return up === 0 || this.#shards[0]!.status() !== "ok" ? "degraded" : "partial";
  }

  /** The sum over the shards: every shard's store counts. */
  stats(): EngineStats {
    const sum: EngineStats = { storedBytes: 0, evictions: 0, expiredChannels: 0 };
    for (const shard of this.#shards) {
      const s = shard.stats();
      sum.storedBytes += s.storedBytes;
      sum.evictions += s.evictions;
      sum.expiredChannels += s.expiredChannels;
    }
    return sum;
  }

  /** Disposes every shard: presence removed, connections and timers closed. */
  async [Symbol.asyncDispose](): Promise<void> {
    await Promise.all(this.#shards.map((shard) => shard[Symbol.asyncDispose]()));
  }

  #shard(channel: string): RedisEngine {
    return this.#shards[shardOf(channel, this.#shards.length)]!;
  }
}

/** The logger with the shard's index on every line, so an outage names its Redis. */
function shardLogger(logger: Logger, shard: number): Logger {
  if (logger === silentLogger) return logger;
  return {
    debug: (event, fields) => logger.debug(event, { shard, ...fields }),
    info: (event, fields) => logger.info(event, { shard, ...fields }),
    warn: (event, fields) => logger.warn(event, { shard, ...fields }),
    error: (event, fields) => logger.error(event, { shard, ...fields }),
  };
}
