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
import { BOUNDS_LUA, CHANNEL_OVERHEAD, PublishMarks, type RedisBounds } from "./redis_bounds.ts";
import type { RedisClient } from "./redis_client.ts";
import {
  entryNumber,
  loadScript,
  parseEntries,
  runScript,
  type Script,
  script,
} from "./redis_scripts.ts";

// Reads the epoch (KEYS[3]) into `epoch`, set to the candidate when missing:
// one GET when it is there.
const epochLua = (candidate: string) => `
local epoch = redis.call('GET', KEYS[3])
if not epoch then
  epoch = ${candidate}
  redis.call('SET', KEYS[3], epoch)
end
`;

/**
 * A Lua string literal of any text: bytes other than plain ASCII letters,
 * digits and `:_-.` as decimal escapes, which Lua 5.1 reads in any string.
 */
function luaString(text: string): string {
  let out = "";
  for (const byte of new TextEncoder().encode(text)) {
    const c = String.fromCharCode(byte);
    out += /[A-Za-z0-9:_.-]/.test(c) ? c : `\\${String(byte).padStart(3, "0")}`;
  }
  return `'${out}'`;
}

/** What one engine's publish script is built with: its settings, which never change. */
interface PublishSettings {
  prefix: string;
  /** Trims every this many offsets. */
  trimEvery: number;
  retained: number;
  streamMs: number;
  keepMs: number;
  maxBytes: number;
}

/**
 * Stores and counts, publishes with the entry id, and answers the epoch,
 * the store's total and how many it evicted. The engine's settings are
 * literals in the source, not arguments: Redis turns every argument into a
 * Lua string on every call. ARGV: payload, pub/sub channel, time, channel,
 * candidate epoch, and flags (1: move the activity score, 2: renew the TTLs;
 * see PublishMarks). Keys this call creates get their TTL whatever the flags say.
 */
function publishScript(o: PublishSettings): Script {
  const keys = storeKeys(o.prefix);
  return script(`
local payload, channel, now = ARGV[1], ARGV[4], ARGV[3]
local flags = tonumber(ARGV[6])
local id = redis.call('INCR', KEYS[1])
local entry = id .. '-0'
local renew_seq, renew_stream = flags >= 2 or id == 1, flags >= 2
-- NOMKSTREAM tells a stream created here (new, or expired by its TTL) from one that has a TTL.
local added = redis.pcall('XADD', KEYS[2], 'NOMKSTREAM', entry, 'p', payload, 't', now)
if not added then
  redis.call('XADD', KEYS[2], entry, 'p', payload, 't', now)
  renew_stream = true
elseif type(added) == 'table' and added.err then
  -- The counter fell behind its stream (deleted or evicted): go on after the top entry.
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if not top then return redis.error_reply(added.err) end
  id = tonumber(string.match(top[1], '^(%d+)')) + 1
  redis.call('SET', KEYS[1], id)
  renew_seq = true
  entry = id .. '-0'
  redis.call('XADD', KEYS[2], entry, 'p', payload, 't', now)
end
local charge = string.len(payload)
-- Offset 1: a new channel, or a deleted one starting again (an evicted one
-- keeps its counter). Its share is this payload and its overhead, whatever a
-- life whose keys Redis expired left in the hash; it renews the store-wide
-- keys' TTL (once they exist), as every sweep does.
if id == 1 then
  charge = charge + ${CHANNEL_OVERHEAD} - tonumber(redis.call('HGET', ${keys.shares}, channel) or '0')
end
if id == 1 or flags % 2 == 1 then redis.call('ZADD', ${keys.activity}, now, channel) end
-- Lua formats a number each time it passes one to Redis: once is enough.
local bytes = tostring(charge)
redis.call('HINCRBY', ${keys.shares}, channel, bytes)
local total = redis.call('INCRBY', ${keys.total}, bytes)
if id == 1 then
  for _, key in ipairs({${keys.total}, ${keys.shares}, ${keys.activity}}) do
    redis.call('PEXPIRE', key, '${o.keepMs}')
  end
end
if renew_stream then redis.call('PEXPIRE', KEYS[2], '${o.streamMs}') end
if renew_seq then redis.call('PEXPIRE', KEYS[1], '${o.keepMs}') end
local evicted = 0
${trimAndEvictLua(o)}
redis.call('PUBLISH', ARGV[2], entry .. '\\n' .. channel .. '\\n' .. payload)
${epochLua("ARGV[5]")}
return {id, epoch, total, evicted}
`);
}

/** The store-wide keys as Lua literals. */
function storeKeys(prefix: string) {
  return {
    total: luaString(`${prefix}stored_bytes`),
    shares: luaString(`${prefix}channel_bytes`),
    activity: luaString(`${prefix}activity`),
  };
}

/**
 * The publish script's rare part: every so many offsets it trims the stream
 * as MAXLEN ~ would, but counting what goes; past the budget it evicts; and
 * it mends a total below 0 (a store from before the counting). Its Lua
 * functions are defined only when it runs: building them costs every call.
 */
function trimAndEvictLua(o: PublishSettings): string {
  const max = Number.isFinite(o.maxBytes) ? String(o.maxBytes) : "math.huge";
  const prefix = luaString(o.prefix);
  return `
local trim = id % ${o.trimEvery} == 0
if trim or total > ${max} or total < 0 then
  ${BOUNDS_LUA}
  if total < 0 then total = count(${prefix}, 0) end
  local length = trim and redis.call('XLEN', KEYS[2]) or 0
  if length > ${o.retained} then
    local freed = 0
    for _, old in ipairs(redis.call('XRANGE', KEYS[2], '-', '+', 'COUNT', length - ${o.retained})) do
      freed = freed + entry_bytes(old)
    end
    redis.call('XTRIM', KEYS[2], 'MAXLEN', '${o.retained}')
    redis.call('HINCRBY', ${storeKeys(o.prefix).shares}, channel, 0 - freed)
    total = count(${prefix}, 0 - freed)
  end
  if total > ${max} then total, evicted = evict(${prefix}, total, ${max}, channel) end
end`;
}

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
${epochLua("ARGV[5]")}
return {head, oldest and oldest[1] or false, range, epoch}
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
  #publish: Script;
  #marks: PublishMarks;
  /** The epoch set when the key is found missing (Redis lost its data). */
  candidate: string;

  /** Keeps the options; {@linkcode RedisHistory.load} prepares the scripts. */
  constructor(options: RedisHistoryOptions, candidate: string) {
    this.#o = options;
    this.candidate = candidate;
    const { ttlMs, keepMs } = options;
    // Past the history TTL the stream serves nothing, so it need not outlive it by
    // more than a renewal interval, which keeps it serving for the TTL between renewals.
    const renewMs = ttlMs > 0
      ? Math.max(1, Math.min(options.bounds.renewMs(), Math.floor(ttlMs / 10)))
      : options.bounds.renewMs();
    this.#marks = new PublishMarks(renewMs);
    this.#publish = publishScript({
      prefix: options.prefix,
      trimEvery: Math.ceil(options.retained / 10),
      retained: options.retained,
      streamMs: ttlMs > 0 ? Math.min(ttlMs + renewMs, keepMs) : keepMs,
      keepMs,
      maxBytes: options.maxBytes,
    });
  }

  /** Computes the scripts' SHA-1s. */
  async load(): Promise<void> {
    await loadScript(this.#publish);
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
    const keys = this.#keys(channel);
    const now = o.clock.now();
    const due = this.#marks.due(channel, now);
    const flags = (due.touch ? 1 : 0) + (due.renew ? 2 : 0);
    const args = [payload, pubsub, now, channel, this.candidate, flags];
    const reply = await runScript(o.client, this.#publish, keys, args);
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
