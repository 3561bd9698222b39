/**
 * The redis engine: rooms, private messages, history and presence shared by
 * every server process that points at one Redis.
 *
 * - Storage: one stream per room and per pair of users, entry id `<id>-0`,
 *   trimmed with `MAXLEN ~`; a counter per channel makes ids strictly
 *   increasing across processes. Every private frame is also appended to an
 *   inbox stream of each of its two users, so a process can catch up a user
 *   channel without knowing the pairs.
 * - Publishing is one Lua script (INCR, XADD, PUBLISH): the frame is stored
 *   before anyone can see it. The promise resolves after that and, when this
 *   process listens to the channel, after the frame was handed on here.
 * - Fan-out: pub/sub, one channel per room and per user. Frames reach local
 *   members only through pub/sub or a catch-up read of the stream, never
 *   straight from `publish`, so one cursor per channel gives exactly once, in
 *   id order, even while catching up.
 * - After the pub/sub connection comes back, every channel is read from its
 *   stream after the last delivered entry, then live again.
 * - Presence: sorted sets scored with an expiry in Redis time, refreshed by
 *   each process for its own members, so a crashed process's users vanish
 *   within the TTL.
 *
 * Not for Redis Cluster: a script touches keys of several channels.
 *
 * @module
 */

import type { PrivateFrame, StoredFrame } from "../protocol.ts";
import { nameKey } from "../names.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { LogThrottle } from "../log_throttle.ts";
import {
  type Delivery,
  type Draft,
  type Engine,
  type EngineStatus,
  type HistoryPage,
  type HistoryQuery,
  type Holder,
  isPrivateChannel,
  type Presence,
  userChannel,
} from "./engine.ts";
import {
  type ReconnectOptions,
  RedisClient,
  RedisError,
  type RedisReply,
  type RedisStatus,
  RedisSubscriber,
} from "./redis_client.ts";

/** Options of {@linkcode RedisEngine}. */
export interface RedisEngineOptions {
  /** `redis://[user:pass@]host:port/db` or `rediss://`. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** Extra PEM root certificates for `rediss://`. Default: the system roots. */
  caCerts?: string[];
  /** Frames kept per channel (approximately, `MAXLEN ~`). Default 1000. */
  historyLimit?: number;
  /** Seconds a stored frame is served from history; 0 for no limit. Default 0. */
  historyTtlS?: number;
  /** Seconds this process's presence entries live without a refresh. Default 30. */
  presenceTtlS?: number;
  /** Prefix of every key and pub/sub channel. Default `chat:`. */
  keyPrefix?: string;
  /** Reconnect backoff of both connections. Default 100 ms doubling up to 2000 ms. */
  reconnect?: ReconnectOptions;
  /** Default: silent. */
  logger?: Logger;
}

/** One stream entry: its id, the engine channel of its frame and the frame JSON. */
interface Entry {
  id: string;
  channel: string;
  frame: string;
}

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

const PUBLISH_SCRIPT = `
local id = redis.call('INCR', KEYS[1])
local body = string.sub(ARGV[1], 1, -2)
local count = tonumber(ARGV[4])
if count >= 0 then
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local seen, n = {}, 0
  for _, m in ipairs(redis.call('ZRANGEBYSCORE', KEYS[3], '(' .. now, '+inf')) do
    local key = string.match(m, '^[^|]*|([^|]*)|')
    if key and not seen[key] then
      seen[key] = true
      n = n + 1
    end
  end
  if n > count then count = n end
  body = body .. ',"connected_count":' .. count
end
local frame = body .. ',"id":' .. id .. '}'
local ttl = tonumber(ARGV[3])
local entry = id .. '-0'
local added = redis.pcall('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], entry, 'f', frame)
if type(added) == 'table' and added.err then
  -- The counter fell behind its stream (deleted or evicted): go on after the top entry.
  local top = redis.call('XREVRANGE', KEYS[2], '+', '-', 'COUNT', 1)[1]
  if not top then return redis.error_reply(added.err) end
  id = tonumber(string.match(top[1], '^(%d+)')) + 1
  redis.call('SET', KEYS[1], id)
  frame = body .. ',"id":' .. id .. '}'
  entry = id .. '-0'
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], entry, 'f', frame)
end
if ttl > 0 then redis.call('PEXPIRE', KEYS[2], ttl) end
if #KEYS == 3 then
  redis.call('PUBLISH', ARGV[5] .. ARGV[6], entry .. '\\n' .. ARGV[6] .. '\\n' .. frame)
else
  for i = 4, #KEYS do
    local inbox = redis.call('XADD', KEYS[i], 'MAXLEN', '~', ARGV[2], '*', 'c', ARGV[6], 'f', frame)
    if ttl > 0 then redis.call('PEXPIRE', KEYS[i], ttl) end
    redis.call('PUBLISH', ARGV[5] .. ARGV[i + 3], inbox .. '\\n' .. ARGV[6] .. '\\n' .. frame)
  end
end
return {id, count}
`;

// Serves only the newest `window` ids although the stream keeps more for catch-ups.
const HISTORY_SCRIPT = `
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
return {head, oldest and oldest[1] or false, range}
`;

const TOUCH_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local ttl = tonumber(ARGV[1])
for i, key in ipairs(KEYS) do
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now)
  redis.call('ZADD', key, now + ttl, ARGV[i + 1])
  redis.call('PEXPIRE', key, ttl * 2)
end
return #KEYS
`;

const LIVE_SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. now, '+inf')
`;

interface Script {
  source: string;
  sha: string | undefined;
}

/**
 * Stores frames in Redis streams and fans them out with Redis pub/sub, so
 * any number of server processes share rooms, private messages, history
 * and presence.
 *
 * While Redis is unreachable `status()` is "degraded", `publish` and
 * `history` reject (the manager answers `unavailable`; nothing unstored is
 * delivered, not even locally), and both connections reconnect with backoff.
 */
export class RedisEngine implements Engine {
  /** The engine's name. */
  readonly name = "redis";
  /** Presence across every process on this Redis. */
  readonly presence: Presence;

  #client: RedisClient;
  #subscriber: RedisSubscriber;
  #log: Logger;
  #prefix: string;
  #pubsubPrefix: string;
  #historyLimit: number;
  #retained: number;
  #ttlMs: number;
  #presenceTtlMs: number;
  #deliver: Delivery | undefined;
  #subs = new Map<string, Sub>();
  /** Last private frame id handed on per pair: both users' channels carry it. */
  #pairs = new Map<string, number>();
  /** Publishes waiting until their frame was handed on here, by channel. */
  #waiters = new Map<string, { id: number; resolve: () => void }[]>();
  #scripts = {
    publish: { source: PUBLISH_SCRIPT, sha: undefined } as Script,
    history: { source: HISTORY_SCRIPT, sha: undefined } as Script,
    touch: { source: TOUCH_SCRIPT, sha: undefined } as Script,
    live: { source: LIVE_SCRIPT, sha: undefined } as Script,
  };
  /** Tells this process's data apart from a store that lost it (restart without persistence). */
  #epoch: string | undefined;
  #resets = 0;
  readonly #instance = crypto.randomUUID();
  /** This process's presence members by sorted-set key and lower-cased user. */
  #members = new Map<string, Map<string, string>>();
  /** Members whose removal may not have reached Redis. */
  #removals = new Map<string, Set<string>>();
  #refreshTimer: ReturnType<typeof setInterval> | undefined;
  #retryTimer: ReturnType<typeof setTimeout> | undefined;
  #started = false;
  #disposed = false;

  /**
   * Creates an engine; nothing is dialed until {@linkcode RedisEngine.start}.
   *
   * @throws {TypeError} for a malformed URL.
   */
  constructor(options: RedisEngineOptions = {}) {
    this.#log = options.logger ?? silentLogger;
    this.#prefix = options.keyPrefix ?? "chat:";
    this.#pubsubPrefix = `${this.#prefix}ch:`;
    this.#historyLimit = options.historyLimit ?? 1000;
    this.#retained = Math.max(this.#historyLimit, MIN_RETAINED);
    this.#ttlMs = (options.historyTtlS ?? 0) * 1000;
    this.#presenceTtlMs = (options.presenceTtlS ?? 30) * 1000;
    if (!(this.#presenceTtlMs > 0)) {
      throw new RangeError(`Invalid presence TTL: ${options.presenceTtlS}`);
    }
    const common = {
      url: options.url ?? "redis://127.0.0.1:6379",
      caCerts: options.caCerts,
      reconnect: options.reconnect ?? { minDelayMs: 100, maxDelayMs: 2000 },
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
    this.presence = {
      join: (room, username) =>
        this.#addMember(this.#roomKey(room), username, this.#roomMember(username)),
      leave: (room, username) => this.#removeMember(this.#roomKey(room), username),
      connect: (username, userId) =>
        this.#addMember(
          this.#onlineKey(username),
          username,
          this.#onlineMember(username, userId ?? null),
        ),
      disconnect: (username) => this.#removeMember(this.#onlineKey(username), username),
      users: (room) => this.#users(room),
      lookup: (username) => this.#lookup(username),
    };
  }

  /**
   * Connects both connections and sets the delivery function.
   * Rejects, naming host:port, when Redis cannot be reached.
   */
  async start(deliver: Delivery): Promise<void> {
    this.#deliver = deliver;
    for (const script of Object.values(this.#scripts)) script.sha = await sha1(script.source);
    await this.#client.connect();
    try {
      await this.#subscriber.connect();
      this.#epoch = await this.#readEpoch();
    } catch (error) {
      await this.#client.close();
      await this.#subscriber.close();
      throw error;
    }
    this.#started = true;
    for (const sub of this.#subs.values()) this.#sync(sub);
    const every = Math.max(100, Math.floor(this.#presenceTtlMs / 3));
    this.#refreshTimer = setInterval(() => this.#refreshPresence(), every);
  }

  /**
   * Stores the frame and publishes it. Resolves once Redis has stored it and,
   * when this process listens to the channel, has handed it on here (so a
   * notice reaches local members before, say, their sockets are closed);
   * a dropped connection meanwhile resolves it at once.
   */
  async publish(channel: string, draft: Draft): Promise<StoredFrame> {
    let body: Record<string, unknown> = draft;
    let count = -1;
    if (draft.type === "system") {
      const { connected_count, ...rest } = draft;
      body = rest;
      count = connected_count;
    }
    const keys = [this.#seqKey(channel), this.#streamKey(channel), this.#roomKey(channel)];
    const args: (string | number)[] = [
      JSON.stringify(body),
      this.#retained,
      this.#ttlMs,
      count,
      this.#pubsubPrefix,
      channel,
    ];
    if (isPrivateChannel(channel)) {
      const p = draft as Draft<PrivateFrame>;
      const users = new Set([nameKey(p.username), nameKey(p.to)]);
      for (const key of users) {
        keys.push(this.#streamKey(userChannel(key)));
        args.push(userChannel(key));
      }
    }
    const reply = await this.#run(this.#scripts.publish, keys, args);
    const [id, stored] = Array.isArray(reply) ? reply : [];
    if (typeof id !== "number" || typeof stored !== "number") {
      throw new TypeError(`Unexpected Redis reply: ${JSON.stringify(reply)}`);
    }
    if (this.status() === "ok" && this.#awaited(channel, draft, id)) {
      const { promise, resolve } = Promise.withResolvers<void>();
      let list = this.#waiters.get(channel);
      if (list === undefined) this.#waiters.set(channel, list = []);
      // Replies come in id order, so this is almost always an append.
      let at = list.length;
      while (at > 0 && list[at - 1]!.id > id) at--;
      list.splice(at, 0, { id, resolve });
      await promise;
    }
    return (count >= 0 ? { ...body, connected_count: stored, id } : { ...body, id }) as StoredFrame;
  }

  /** Whether this process will hand the frame on and has not yet. */
  #awaited(channel: string, draft: Draft, id: number): boolean {
    if (isPrivateChannel(channel)) {
      const p = draft as Draft<PrivateFrame>;
      const local = this.#subs.has(userChannel(nameKey(p.username))) ||
        this.#subs.has(userChannel(nameKey(p.to)));
      return local && (this.#pairs.get(channel) ?? 0) < id;
    }
    const sub = this.#subs.get(channel);
    return sub !== undefined && (sub.cursor === null || entryNumber(sub.cursor) < id);
  }

  /** Resolves the waiting publishes of a channel up to `id`, or all of them. */
  #release(channel: string, id = Infinity): void {
    const list = this.#waiters.get(channel);
    if (list === undefined) return;
    let n = 0;
    while (n < list.length && list[n]!.id <= id) list[n++]!.resolve();
    if (n === list.length) this.#waiters.delete(channel);
    else if (n > 0) list.splice(0, n);
  }

  #releaseAll(): void {
    for (const channel of [...this.#waiters.keys()]) this.#release(channel);
  }

  /** Reads stored frames of a channel, oldest first. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const after = query.after === undefined ? -1 : Math.max(0, Math.floor(query.after));
    let limit = Math.max(0, Math.floor(query.limit));
    // Ids start at 1, so nothing comes before 1 (and "(0-0" is no valid bound).
    if (query.before !== undefined && query.before <= Math.max(1, after + 1)) limit = 0;
    const end = query.before === undefined || limit === 0 ? "+" : `(${query.before}-0`;
    const reply = await this.#run(
      this.#scripts.history,
      [this.#seqKey(channel), this.#streamKey(channel)],
      [after, end, limit, this.#historyLimit],
    );
    // A frame the page holds is handed on before the page, not after it: a channel
    // still catching up (just subscribed) would otherwise deliver the page's newest
    // frames, such as a joining user's own notice, once the page was sent, twice.
    const sub = this.#subs.get(channel);
    if (sub?.syncing) await sub.loop;
    const [head, oldest, range] = Array.isArray(reply) ? reply : [];
    const entries = parseEntries(range, channel);
    if (after < 0) entries.reverse();
    const { frames, expired } = this.#frames(entries);
    if (after < 0) return { frames, complete: true };
    const last = typeof head === "number" ? head : 0;
    const floor = Math.max(0, last - this.#historyLimit);
    const first = typeof oldest === "string" ? Math.max(entryNumber(oldest), floor + 1) : last + 1;
    // An `after` beyond the head comes from a store that lost its data.
    const complete = after <= last && first <= after + 1 && !expired;
    return { frames, complete };
  }

  /** Starts delivering the channel (a room or a user channel) to this process. */
  subscribe(channel: string): void {
    if (this.#disposed || this.#subs.has(channel)) return;
    const sub: Sub = {
      channel,
      stream: this.#streamKey(channel),
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
    this.#release(channel);
    if (channel.startsWith("~")) {
      // Pair cursors matter only while one of the pair is subscribed here.
      const pairs = new Set([...this.#pairs.keys(), ...this.#waiters.keys()]);
      for (const pair of pairs) {
        if (!isPrivateChannel(pair)) continue;
        const [a, b] = pair.slice(1).split("|");
        if (!this.#subs.has(userChannel(a ?? "")) && !this.#subs.has(userChannel(b ?? ""))) {
          this.#pairs.delete(pair);
          this.#release(pair);
        }
      }
    }
  }

  /** "ok" while both Redis connections are up. */
  status(): EngineStatus {
    return this.#client.connected && this.#subscriber.connected ? "ok" : "degraded";
  }

  /** Removes this process's presence, closes both connections and every timer. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    clearInterval(this.#refreshTimer);
    clearTimeout(this.#retryTimer);
    this.#refreshTimer = undefined;
    this.#retryTimer = undefined;
    if (this.#client.connected) {
      // Users of a stopped process vanish at once instead of after the TTL;
      // the PING reply means every command sent before it has run.
      const commands: (string | number)[][] = [];
      for (const map of [this.#members, this.#removals]) {
        for (const [key, members] of map) commands.push(["ZREM", key, ...members.values()]);
      }
      commands.push(["PING"]);
      await this.#client.pipeline(commands).catch(() => undefined);
    }
    this.#members.clear();
    this.#removals.clear();
    this.#subs.clear();
    this.#releaseAll();
    this.#deliver = undefined;
    await Promise.all([this.#client.close(), this.#subscriber.close()]);
  }

  // -------------------------------------------------------------------------
  // Keys

  #seqKey(channel: string): string {
    return `${this.#prefix}seq:${channel}`;
  }

  #streamKey(channel: string): string {
    return `${this.#prefix}stream:${channel}`;
  }

  #roomKey(room: string): string {
    return `${this.#prefix}presence:${room}`;
  }

  #onlineKey(username: string): string {
    return `${this.#prefix}online:${nameKey(username)}`;
  }

  // Names cannot contain "|", so members split unambiguously.
  #roomMember(username: string): string {
    return `${this.#instance}|${nameKey(username)}|${username}`;
  }

  /** `instance|name`, then `|userId` for a verified holder (a user id may contain "|"). */
  #onlineMember(username: string, userId: string | null): string {
    const member = `${this.#instance}|${username}`;
    return userId === null ? member : `${member}|${userId}`;
  }

  // -------------------------------------------------------------------------
  // Commands

  async #run(script: Script, keys: string[], args: (string | number)[]): Promise<RedisReply> {
    if (script.sha !== undefined) {
      try {
        return await this.#client.command(["EVALSHA", script.sha, keys.length, ...keys, ...args]);
      } catch (error) {
        // A restarted Redis has an empty script cache.
        if (!(error instanceof RedisError && error.code === "NOSCRIPT")) throw error;
      }
    }
    return await this.#client.command(["EVAL", script.source, keys.length, ...keys, ...args]);
  }

  async #readEpoch(): Promise<string> {
    const key = `${this.#prefix}epoch`;
    const [, epoch] = await this.#client.pipeline([
      ["SETNX", key, crypto.randomUUID()],
      ["GET", key],
    ]);
    if (typeof epoch !== "string") throw new TypeError(`Unexpected Redis reply: ${epoch}`);
    return epoch;
  }

  /** Parses stored frames, leaving out those past the history TTL. */
  #frames(entries: Entry[]): { frames: StoredFrame[]; expired: boolean } {
    const frames: StoredFrame[] = [];
    const oldest = this.#ttlMs > 0 ? Date.now() - this.#ttlMs : -Infinity;
    let expired = false;
    for (const entry of entries) {
      const frame = parseFrame(entry.frame);
      if (frame === undefined) continue;
      if (Date.parse(frame.timestamp) < oldest) {
        expired = true;
        continue;
      }
      frames.push(frame);
    }
    return { frames, expired };
  }

  // -------------------------------------------------------------------------
  // Fan-out and catch-up

  #onMessage(pubsub: string, message: string): void {
    const sub = this.#subs.get(pubsub.slice(this.#pubsubPrefix.length));
    if (sub === undefined || sub.pubsub !== pubsub) return;
    const entry = parsePayload(message);
    if (entry === undefined) return;
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
    if (sub.cursor === null || compareIds(entry.id, sub.cursor) <= 0) return;
    sub.cursor = entry.id;
    const frame = parseFrame(entry.frame);
    if (frame === undefined) return;
    if (isPrivateChannel(entry.channel)) {
      if (frame.id <= (this.#pairs.get(entry.channel) ?? 0)) return;
      this.#pairs.set(entry.channel, frame.id);
    }
    try {
      this.#deliver?.(entry.channel, frame);
    } catch (error) {
      // A delivery that throws does so for every frame: one line per interval.
      this.#deliveryFailures ??= new LogThrottle({ logger: this.#log });
      this.#deliveryFailures.error("delivery_failed", {
        channel: entry.channel,
        error: String(error),
      });
    }
    if (this.#waiters.size > 0) this.#release(entry.channel, frame.id);
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
      const epochKey = `${this.#prefix}epoch`;
      if (!checked) commands.push(["SETNX", epochKey, crypto.randomUUID()], ["GET", epochKey]);
      const replies = await this.#client.pipeline(commands);
      if (!this.#current(sub)) return;
      if (!checked) {
        checked = true;
        const epoch = replies[2];
        if (typeof epoch === "string" && epoch !== this.#epoch) this.#reset(epoch);
      }
      // A reset meanwhile moved the cursors back: read again from there.
      if (resets !== this.#resets) continue;
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

  /** Redis lost its data (restarted without persistence): ids start over. */
  #reset(epoch: string): void {
    this.#log.warn("redis_data_lost", { note: "ids restart; run Redis with appendonly yes" });
    this.#epoch = epoch;
    this.#resets++;
    this.#pairs.clear();
    for (const sub of this.#subs.values()) if (sub.cursor !== null) sub.cursor = "0-0";
    this.#refreshPresence();
  }

  #scheduleRetry(): void {
    // Without both connections the next "connected" event retries instead.
    if (this.#disposed || this.#retryTimer !== undefined || this.status() !== "ok") return;
    this.#retryTimer = setTimeout(() => {
      this.#retryTimer = undefined;
      for (const sub of this.#subs.values()) if (sub.stale) this.#sync(sub);
    }, RETRY_MS);
  }

  #onSubscriberStatus(status: RedisStatus): void {
    if (this.#disposed || !this.#started) return;
    if (status === "disconnected") {
      this.#log.warn("redis_disconnected", { connection: "subscriber" });
      // Their frames come with the catch-up; waiting for it could take long.
      this.#releaseAll();
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
      this.#releaseAll();
      return;
    }
    this.#log.info("redis_connected", { connection: "commands" });
    this.#refreshPresence();
    for (const sub of this.#subs.values()) if (sub.stale) this.#sync(sub);
  }

  // -------------------------------------------------------------------------
  // Presence

  #addMember(key: string, username: string, member: string): void {
    if (this.#disposed) return;
    let map = this.#members.get(key);
    if (map === undefined) this.#members.set(key, map = new Map());
    const old = map.get(nameKey(username));
    map.set(nameKey(username), member);
    if (old !== undefined && old !== member) this.#removeMember(key, old, old);
    const removals = this.#removals.get(key);
    if (removals?.delete(member) && removals.size === 0) this.#removals.delete(key);
    if (!this.#client.connected) return;
    this.#run(this.#scripts.touch, [key], [this.#presenceTtlMs, member]).catch((error) =>
      this.#log.debug("presence_failed", { error: String(error) })
    );
  }

  /** Removes the user's member, or the given stale one. */
  #removeMember(key: string, username: string, stale?: string): void {
    if (this.#disposed) return;
    const map = this.#members.get(key);
    const member = stale ?? map?.get(nameKey(username));
    if (member === undefined) return;
    if (stale === undefined && map?.delete(nameKey(username)) && map.size === 0) {
      this.#members.delete(key);
    }
    let removals = this.#removals.get(key);
    if (removals === undefined) this.#removals.set(key, removals = new Set());
    removals.add(member);
    if (!this.#client.connected) return;
    this.#client.command(["ZREM", key, member]).then(
      () => this.#forget(key, member),
      (error) => this.#log.debug("presence_failed", { error: String(error) }),
    );
  }

  #forget(key: string, member: string): void {
    const removals = this.#removals.get(key);
    if (removals?.delete(member) && removals.size === 0) this.#removals.delete(key);
  }

  /** Renews this process's members and retries removals that did not arrive. */
  #refreshPresence(): void {
    if (this.#disposed || !this.#client.connected) return;
    for (const [key, members] of this.#removals) {
      const list = [...members];
      this.#client.command(["ZREM", key, ...list]).then(
        () => list.forEach((member) => this.#forget(key, member)),
        () => undefined,
      );
    }
    let keys: string[] = [];
    let args: (string | number)[] = [this.#presenceTtlMs];
    const flush = () => {
      this.#run(this.#scripts.touch, keys, args).catch((error) =>
        this.#log.debug("presence_failed", { error: String(error) })
      );
      keys = [];
      args = [this.#presenceTtlMs];
    };
    for (const [key, members] of this.#members) {
      for (const member of members.values()) {
        keys.push(key);
        args.push(member);
        if (keys.length >= BATCH) flush();
      }
    }
    if (keys.length > 0) flush();
  }

  async #users(room: string): Promise<string[]> {
    const reply = await this.#run(this.#scripts.live, [this.#roomKey(room)], []);
    const users = new Map<string, string>();
    for (const member of Array.isArray(reply) ? reply : []) {
      if (typeof member !== "string") continue;
      const [, key, name] = member.split("|");
      if (key !== undefined && name !== undefined && !users.has(key)) users.set(key, name);
    }
    return [...users.entries()].sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0).map(([, n]) => n);
  }

  async #lookup(username: string): Promise<Holder | undefined> {
    const reply = await this.#run(this.#scripts.live, [this.#onlineKey(username.trim())], []);
    const member = Array.isArray(reply) ? reply[0] : undefined;
    if (typeof member !== "string") return undefined;
    const holder = member.slice(member.indexOf("|") + 1);
    const bar = holder.indexOf("|");
    // Without a second "|": a holder without a token, or a member of an older version.
    if (bar < 0) return { username: holder, userId: null };
    return { username: holder.slice(0, bar), userId: holder.slice(bar + 1) };
  }
}

// ---------------------------------------------------------------------------
// Parsing

/** Stream entries of an XRANGE/XREVRANGE reply; `channel` unless the entry names its own. */
function parseEntries(reply: RedisReply | undefined, channel: string): Entry[] {
  const entries: Entry[] = [];
  if (!Array.isArray(reply)) return entries;
  for (const item of reply) {
    if (!Array.isArray(item)) continue;
    const [id, fields] = item;
    if (typeof id !== "string" || !Array.isArray(fields)) continue;
    let frame: string | undefined;
    let entryChannel = channel;
    for (let i = 0; i + 1 < fields.length; i += 2) {
      const value = fields[i + 1];
      if (typeof value !== "string") continue;
      if (fields[i] === "f") frame = value;
      else if (fields[i] === "c") entryChannel = value;
    }
    if (frame !== undefined) entries.push({ id, channel: entryChannel, frame });
  }
  return entries;
}

/** Splits a pub/sub payload `<entry id>\n<channel>\n<frame JSON>`. */
function parsePayload(message: string): Entry | undefined {
  const a = message.indexOf("\n");
  const b = message.indexOf("\n", a + 1);
  if (a < 0 || b < 0) return undefined;
  return { id: message.slice(0, a), channel: message.slice(a + 1, b), frame: message.slice(b + 1) };
}

function parseFrame(text: string): StoredFrame | undefined {
  try {
    const frame = JSON.parse(text) as StoredFrame;
    return typeof frame === "object" && frame !== null && typeof frame.id === "number"
      ? frame
      : undefined;
  } catch {
    return undefined;
  }
}

/** The frame id of a room or pair stream entry id `<id>-0`. */
function entryNumber(id: string): number {
  return Number(id.slice(0, id.indexOf("-")));
}

/** Orders stream entry ids `<ms>-<seq>`. */
function compareIds(a: string, b: string): number {
  const da = a.indexOf("-");
  const db = b.indexOf("-");
  const ms = Number(a.slice(0, da)) - Number(b.slice(0, db));
  if (ms !== 0) return ms;
  return Number(a.slice(da + 1)) - Number(b.slice(db + 1));
}

async function sha1(text: string): Promise<string> {
  const digest = await crypto.subtle.digest("SHA-1", new TextEncoder().encode(text));
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0")).join("");
}
