/**
 * The options of the redis engine and their defaults, apart from the engine
 * so that config.ts reads the defaults without loading the engine's code.
 *
 * @module
 */

import type { Clock, Scheduler } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { withDefaults } from "../options.ts";
import { DEFAULT_ENGINE } from "./engine.ts";
import type { ReconnectOptions } from "./redis_link.ts";
import { DEFAULT_HOSTNAME, DEFAULT_PORT } from "./redis_url.ts";

/** Options of `RedisEngine`. */
export interface RedisEngineOptions {
  /** `redis://[user:pass@]host:port/db` or `rediss://`. Default: {@linkcode DEFAULT_REDIS_ENGINE}. */
  url?: string;
  /** Extra PEM root certificates for `rediss://`. Default: the system roots. */
  caCerts?: string[];
  /** Publications served per channel (the stream keeps up to a tenth more). Default: {@linkcode DEFAULT_ENGINE}. */
  historyLimit?: number;
  /** Seconds a publication is served from history; 0 for no limit. Default: {@linkcode DEFAULT_ENGINE}. */
  historyTtlS?: number;
  /**
   * Bytes of stored payloads in the whole Redis (every process on it), plus
   * a fixed charge per channel (redis_bounds.ts); past it the least recently published-to channels lose
   * their oldest first. Default: {@linkcode DEFAULT_ENGINE}.
   */
  historyMaxBytes?: number;
  /** Seconds after its last publication a channel is deleted whole. Default: {@linkcode DEFAULT_ENGINE}. */
  roomTtlS?: number;
  /** Seconds this process's presence entries live without a refresh. Default: {@linkcode DEFAULT_ENGINE}. */
  presenceTtlS?: number;
  /** Prefix of every key and pub/sub channel. Default: {@linkcode DEFAULT_REDIS_ENGINE}. */
  keyPrefix?: string;
  /** Reconnect backoff of both connections, doubling. Default: {@linkcode DEFAULT_REDIS_ENGINE}. */
  reconnect?: ReconnectOptions;
  /** Default: silent. */
  logger?: Logger;
  /** Stamps publications for the history TTL and the idle channels' sweep. Default: the system clock. */
  clock?: Clock;
  /** Runs the presence refresh, the sweep of idle channels and the retries. Default: the global timers. */
  scheduler?: Scheduler;
}

/** The defaults of {@linkcode RedisEngineOptions}. */
export const DEFAULT_REDIS_ENGINE: Readonly<{
  url: string;
  historyLimit: number;
  historyTtlS: number;
  historyMaxBytes: number;
  roomTtlS: number;
  presenceTtlS: number;
  keyPrefix: string;
  reconnect: Readonly<ReconnectOptions>;
}> = Object.freeze({
  url: `redis://${DEFAULT_HOSTNAME}:${DEFAULT_PORT}`,
  ...DEFAULT_ENGINE,
  keyPrefix: "chat:",
  reconnect: Object.freeze({ minDelayMs: 100, maxDelayMs: 2000 }),
});

/**
 * The options over {@linkcode DEFAULT_REDIS_ENGINE}, checked.
 *
 * @throws {RangeError} for a TTL that is not positive or a negative byte budget.
 */
export function redisSettings(
  options: RedisEngineOptions,
): typeof DEFAULT_REDIS_ENGINE & RedisEngineOptions {
  const o = withDefaults(DEFAULT_REDIS_ENGINE, options);
  if (!(o.presenceTtlS > 0)) throw new RangeError(`Invalid presence TTL: ${o.presenceTtlS}`);
  if (!(o.roomTtlS > 0)) throw new RangeError(`Invalid room TTL: ${o.roomTtlS}`);
  if (!(o.historyMaxBytes >= 0)) {
    throw new RangeError(`Invalid history byte budget: ${o.historyMaxBytes}`);
  }
  return o;
}
