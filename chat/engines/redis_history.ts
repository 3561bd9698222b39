/**
 * The history half of the redis engine: one stream per channel, entry id
 * `<offset>-0`, with the payload and the time it was stored, trimmed in
 * batches past `retained`; a counter per channel makes offsets strictly
 * increasing across processes. The epoch key tells this store apart from one
 * that lost its data; every script that stores or reads also reads (or
 * recreates) it. The publish script also keeps the store within its byte
 * budget (see redis_bounds.ts).
 *
 * @module
 */

import type { Clock } from "../clock.ts";
import { type HistoryQuery, newEpoch, type Publication } from "./engine.ts";
import { BOUNDS_LUA, CHANNEL_OVERHEAD, type RedisBounds } from "./redis_bounds.ts";
import type { RedisClient } from "./redis_client.ts";
import { entryNumber, loadScript, parseEntries, runScript, script } from "./redis_scripts.ts";

// Stores, trims and counts, evicts past the budget, publishes with the entry
// id, and answers the epoch, the store's total and how many it evicted.
const PUBLISH_SCRIPT = script(`${BOUNDS_LUA}
local payload, channel, now, prefix = ARGV[1], ARGV[6], ARGV[5], ARGV[11]
local id = redis.call('INCR', KEYS[1])
local entry = id .. '-0'
local added = redis.pcall('XADD', KEYS[2], entry, 'p', payload, 't', now)
if type(added) == 'table' and added.err then
  -- The counter fell behind its stream (deleted or evicted): go on after the top entry.
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if not top then return redis.error_reply(added.err) end
  id = tonumber(string.match(top[1], '^(%d+)')) + 1
  redis.call('SET', KEYS[1], id)
  entry = id .. '-0'
  redis.call('XADD', KEYS[2], entry, 'p', payload, 't', now)
end
-- A channel new to the activity set is charged its overhead once.
local fresh = redis.call('ZADD', KEYS[6], now, channel)
local charge = string.len(payload) + fresh * tonumber(ARGV[10])
-- Every ARGV[2]th offset trims to ARGV[12], as MAXLEN ~ would, but counting what goes.
if id % tonumber(ARGV[2]) == 0 then
  local retained = tonumber(ARGV[12])
  local length = redis.call('XLEN', KEYS[2])
  if length > retained then
    for _, old in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', length - retained)) do
      charge = charge - entry_bytes(old)
    end
    redis.call('XTRIM', KEYS[2], 'MAXLEN', retained)
  end
end
redis.call('HINCRBY', KEYS[5], channel, charge)
local total = count(prefix, charge)
redis.call('PEXPIRE', KEYS[2], ARGV[3])
redis.call('PEXPIRE', KEYS[1], ARGV[8])
-- A new channel renews the store-wide keys' TTL; so does every sweep.
if fresh == 1 then
  for _, key in ipairs({KEYS[4], KEYS[5], KEYS[6]}) do redis.call('PEXPIRE', key, ARGV[8]) end
end
local evicted = 0
local max = tonumber(ARGV[9])
if total > max then total, evicted = evict(prefix, total, max, channel) end
redis.call('PUBLISH', ARGV[4], entry .. '\\n' .. channel .. '\\n' .. payload)
redis.call('SETNX', KEYS[3], ARGV[7])
return {id, redis.call('GET', KEYS[3]), total, evicted}
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
  /** Publications kept per channel (up to a tenth more between trims). */
  retained: number;
  /** Milliseconds a publication is served; 0 for no limit. */
  ttlMs: number;
  /** Bytes of payloads (and channel overheads) in the whole store at most. */
  maxBytes: number;
  /** Milliseconds every key of a channel lives in Redis after its last publication. */
  keepMs: number;
  /** The store-wide counts and this process's stats. */
  bounds: RedisBounds;
  /** Stamps publications for the TTL and the activity set. */
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

  /** The offset counter of a channel. */
  seqKey(channel: string): string {
    return `${this.#o.prefix}seq:${channel}`;
  }

  /** The keys both scripts touch: the channel's counter, its stream and the epoch. */
  #keys(channel: string): string[] {
    return [this.seqKey(channel), this.streamKey(channel), this.epochKey()];
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
    const keys = [...this.#keys(channel), ...o.bounds.keys()];
    // Past the history TTL the stream serves nothing, so it need not outlive it.
    const streamMs = o.ttlMs > 0 ? Math.min(o.ttlMs, o.keepMs) : o.keepMs;
    const args = [
      payload,
      Math.ceil(o.retained / 10),
      streamMs,
      pubsub,
      o.clock.now(),
      channel,
      this.candidate,
      o.keepMs,
      o.maxBytes,
      CHANNEL_OVERHEAD,
      o.prefix,
      o.retained,
    ];
    const reply = await runScript(o.client, PUBLISH_SCRIPT, keys, args);
    const [offset, epoch, total, evicted] = Array.isArray(reply) ? reply : [];
    if (typeof offset !== "number") {
      throw new TypeError(`Unexpected Redis reply: ${JSON.stringify(reply)}`);
    }
    o.bounds.noteStored(total, evicted);
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
