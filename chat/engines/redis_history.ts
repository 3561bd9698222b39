/**
 * The history half of the redis engine: one stream per channel, entry id
 * `<offset>-0`, with the payload and the time it was stored, trimmed with
 * `MAXLEN ~`; a counter per channel makes offsets strictly increasing across
 * processes. The epoch key tells this store apart from one that lost its
 * data; every script that stores or reads also reads (or recreates) it.
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { type HistoryQuery, newEpoch, type Publication } from "./engine.ts";
import type { RedisClient } from "./redis_client.ts";
import { entryNumber, loadScript, parseEntries, runScript, script } from "./redis_scripts.ts";

// Stores, publishes with the entry id, and answers the epoch.
const PUBLISH_SCRIPT = script(`
local id = redis.call('INCR', KEYS[1])
local ttl = tonumber(ARGV[3])
local entry = id .. '-0'
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], entry, 'p', ARGV[1], 't', ARGV[5])
if type(added) == 'table' and added.err then
  -- The counter fell behind its stream (deleted or evicted): go on after the top entry.
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if not top then return redis.error_reply(added.err) end
  id = tonumber(string.match(top[1], '^(%d+)')) + 1
  redis.call('SET', KEYS[1], id)
  entry = id .. '-0'
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], entry, 'p', ARGV[1], 't', ARGV[5])
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
redis.call('PUBLISH', ARGV[4], entry .. '\\n' .. ARGV[6] .. '\\n' .. ARGV[1])
redis.call('SETNX', KEYS[3], ARGV[7])
return {id, redis.call('GET', KEYS[3])}
`);

// Serves only the newest `window` offsets although the stream keeps more for catch-ups.
const HISTORY_SCRIPT = script(`
local head = tonumber(redis.call('GET', KEYS[1]) or '0')
local floor = head - tonumber(ARGV[4])
if floor < 0 then floor = 0 end
local after = tonumber(ARGV[1])
local last = ARGV[2]
local limit = tonumber(ARGV[3])
local oldest = redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', 1)[1]
local range = {}
if limit > 0 then
  if after >= 0 then
    if floor > after then after = floor end
    range = redis.call('XRANGE', KEYS[2], '(' .. after .. '-0', last, 'COUNT', limit)
  else
    range = redis.call('XREVRANGE', KEYS[2], last, '(' .. floor .. '-0', 'COUNT', limit)
  end
end
redis.call('SETNX', KEYS[3], ARGV[5])
return {head, oldest and oldest[1] or false, range, redis.call('GET', KEYS[3])}
`);

/** Options of {@linkcode RedisHistory}. */
export interface RedisHistoryOptions {
  /** The engine's command connection. */
  client: RedisClient;
  /** Prefix of every key and pub/sub channel. */
  prefix: string;
  /** Publications served per channel. */
  historyLimit: number;
  /** Publications kept per channel (approximately). */
  retained: number;
  /** Milliseconds a publication is served; 0 for no limit. */
  ttlMs: number;
  /** Stamps publications for the TTL. */
  clock: Clock;
}

/** A stored publish's offset and the store's epoch. */
export interface Stored {
  /** The offset the payload got. */
  offset: number;
  /** The epoch key's value; undefined in an unexpected reply. */
  epoch: string | undefined;
}

/** A page as read, with the store's epoch. */
export interface Read {
  /** Oldest first. */
  publications: Publication[];
  /** The last offset given out. */
  top: number;
  /** As in HistoryPage. */
  complete: boolean;
  /** The epoch key's value; undefined in an unexpected reply. */
  epoch: string | undefined;
}

/** Stores and reads the streams of one Redis. */
export class RedisHistory {
  #o: RedisHistoryOptions;
  /** The epoch set when the key is found missing (Redis lost its data). */
  candidate: string;

  /** Keeps the options; {@linkcode RedisHistory.load} prepares the scripts. */
  constructor(options: RedisHistoryOptions, candidate: string) {
    this.#o = options;
    this.candidate = candidate;
  }

  /** Computes the scripts' SHA-1s. */
  async load(): Promise<void> {
    await loadScript(PUBLISH_SCRIPT);
    await loadScript(HISTORY_SCRIPT);
  }

  /** The stream of a channel. */
  streamKey(channel: string): string {
    return `${this.#o.prefix}stream:${channel}`;
  }

  /** The key of the epoch. */
  epochKey(): string {
    return `${this.#o.prefix}epoch`;
  }

  /** The keys both scripts touch: the channel's counter, its stream and the epoch. */
  #keys(channel: string): string[] {
    return [`${this.#o.prefix}seq:${channel}`, this.streamKey(channel), this.epochKey()];
  }

  /**
   * The commands that read the epoch, setting the candidate when there is
   * none; the epoch is the second reply.
   */
  epochCommands(): string[][] {
    const key = this.epochKey();
    return [["SETNX", key, this.candidate], ["GET", key]];
  }

  /** Reads the epoch, setting the candidate when there is none. */
  async readEpoch(): Promise<string> {
    const [, epoch] = await this.#o.client.pipeline(this.epochCommands());
    if (typeof epoch !== "string") throw new TypeError(`Unexpected Redis reply: ${epoch}`);
    // The candidate marks a store that lost its data: never the epoch in use.
    if (epoch === this.candidate) this.candidate = newEpoch();
    return epoch;
  }

  /** Stores a payload and publishes it on `pubsub` as `<entry id>\n<channel>\n<payload>`. */
  async store(channel: string, payload: string, pubsub: string): Promise<Stored> {
    const o = this.#o;
    const keys = this.#keys(channel);
    const args = [payload, o.retained, o.ttlMs, pubsub, o.clock.now(), channel, this.candidate];
    const reply = await runScript(o.client, PUBLISH_SCRIPT, keys, args);
    const [offset, epoch] = Array.isArray(reply) ? reply : [];
    if (typeof offset !== "number") {
      throw new TypeError(`Unexpected Redis reply: ${JSON.stringify(reply)}`);
    }
    return { offset, epoch: typeof epoch === "string" ? epoch : undefined };
  }

  /** Reads a page of a channel's stream, oldest first. */
  async read(channel: string, query: HistoryQuery): Promise<Read> {
    const o = this.#o;
    const after = query.after === undefined ? -1 : Math.max(0, Math.floor(query.after));
    let limit = Math.max(0, Math.floor(query.limit));
    // Offsets start at 1, so nothing comes before 1 (and "(0-0" is no valid bound).
    if (query.before !== undefined && query.before <= Math.max(1, after + 1)) limit = 0;
    const end = query.before === undefined || limit === 0 ? "+" : `(${query.before}-0`;
    const keys = this.#keys(channel);
    const args = [after, end, limit, o.historyLimit, this.candidate];
    const reply = await runScript(o.client, HISTORY_SCRIPT, keys, args);
    const [head, oldest, range, epoch] = Array.isArray(reply) ? reply : [];
    const entries = parseEntries(range, channel);
    if (after < 0) entries.reverse();
    const oldestTime = o.ttlMs > 0 ? o.clock.now() - o.ttlMs : -Infinity;
    const fresh = entries.filter((entry) => !(entry.time < oldestTime));
    const publications = fresh.map((e) => ({ offset: entryNumber(e.id), payload: e.payload }));
    const top = typeof head === "number" ? head : 0;
    const read = {
      publications,
      top,
      complete: true,
      epoch: typeof epoch === "string" ? epoch : undefined,
    };
    if (after < 0) return read;
    const floor = Math.max(0, top - o.historyLimit);
    const first = typeof oldest === "string" ? Math.max(entryNumber(oldest), floor + 1) : top + 1;
    // An `after` beyond the top comes from a store that lost its data.
    read.complete = after <= top && first <= after + 1 && fresh.length === entries.length;
    return read;
  }
}
