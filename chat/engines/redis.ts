/**
 * The redis engine: channels, history and presence shared by every server
 * process that points at one Redis.
 *
 * - Storage: one stream per channel, entry id `<offset>-0`, with the
 *   payload and the time it was stored, trimmed with `MAXLEN ~`; a counter
 *   per channel makes offsets strictly increasing across processes.
 * - A stored publish is one Lua script (INCR, XADD, PUBLISH): the payload is
 *   stored before anyone can see it. The promise resolves after that and,
 *   when this process subscribed to the channel, after it was handed on
 *   here. An ephemeral publish is a plain PUBLISH.
 * - Fan-out: pub/sub, one channel per engine channel. Stored publications
 *   reach this process only through pub/sub or a catch-up read of the
 *   stream, never straight from `publish`, so one cursor per channel gives
 *   exactly once, in offset order, even while catching up. Ephemeral ones
 *   are handed on as they arrive and are lost while pub/sub is down.
 * - After the pub/sub connection comes back, every channel is read from its
 *   stream after the last delivered entry, then live again.
 * - The epoch key tells this store apart from one that lost its data (a
 *   restart without persistence): then it is replaced, and offsets restart.
 * - Presence: see redis_presence.ts.
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
  type EngineStatus,
  type HistoryPage,
  type HistoryQuery,
  newEpoch,
  type PublishOptions,
  type StreamPosition,
} from "./engine.ts";
import {
  type ReconnectOptions,
  RedisClient,
  type RedisStatus,
  RedisSubscriber,
} from "./redis_client.ts";
import { RedisPresence } from "./redis_presence.ts";
import {
  compareIds,
  type Entry,
  entryNumber,
  loadScript,
  parseEntries,
  parseMessage,
  runScript,
  script,
} from "./redis_scripts.ts";

/** Options of {@linkcode RedisEngine}. */
export interface RedisEngineOptions {
  /** `redis://[user:pass@]host:port/db` or `rediss://`. Default `redis://127.0.0.1:6379`. */
  url?: string;
  /** Extra PEM root certificates for `rediss://`. Default: the system roots. */
  caCerts?: string[];
  /** Publications kept per channel (approximately, `MAXLEN ~`). Default 1000. */
  historyLimit?: number;
  /** Seconds a publication is served from history; 0 for no limit. Default 0. */
  historyTtlS?: number;
  /** Seconds this process's presence entries live without a refresh. Default 30. */
  presenceTtlS?: number;
  /** Prefix of every key and pub/sub channel. Default `chat:`. */
  keyPrefix?: string;
  /** Reconnect backoff of both connections. Default 100 ms doubling up to 2000 ms. */
  reconnect?: ReconnectOptions;
  /** Default: silent. */
  logger?: Logger;
  /** Stamps publications for the history TTL. Default: the system clock. */
  clock?: Clock;
  /** Runs the presence refresh and the retries. Default: the global timers. */
  scheduler?: Scheduler;
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

// Serves only the newest `window` ids although the stream keeps more for catch-ups.
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
  #prefix: string;
  #pubsubPrefix: string;
  #historyLimit: number;
  #retained: number;
  #ttlMs: number;
  #presenceTtlMs: number;
  #deliver: Delivery | undefined;
  #subs = new Map<string, Sub>();
  /** Publishes waiting until their publication was handed on here, by channel. */
  #waiters = new Map<string, { id: number; resolve: () => void }[]>();
  /** Tells this process's data apart from a store that lost it (restart without persistence). */
  #epoch = "";
  /** The epoch set when the key is found missing (Redis lost its data). */
  #candidate = newEpoch();
  #resets = 0;
  #refreshTimer: TimerHandle | undefined;
  #retryTimer: TimerHandle | undefined;
  #started = false;
  #disposed = false;

  /**
   * Creates an engine; nothing is dialed until {@linkcode RedisEngine.start}.
   *
   * @throws {TypeError} for a malformed URL.
   */
  constructor(options: RedisEngineOptions = {}) {
    this.#log = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    this.#scheduler = options.scheduler ?? systemScheduler;
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
    this.presence = new RedisPresence({
      client: this.#client,
      prefix: this.#prefix,
      ttlMs: this.#presenceTtlMs,
      logger: this.#log,
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
    this.#deliver = deliver;
    await loadScript(PUBLISH_SCRIPT);
    await loadScript(HISTORY_SCRIPT);
    await this.presence.load();
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
    this.#refreshTimer = this.#scheduler.setInterval(() => this.presence.refresh(), every);
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
    const keys = [this.#seqKey(channel), this.#streamKey(channel), this.#epochKey()];
    const args = [
      payload,
      this.#retained,
      this.#ttlMs,
      this.#pubsubPrefix + channel,
      this.#clock.now(),
      channel,
      this.#candidate,
    ];
    const reply = await runScript(this.#client, PUBLISH_SCRIPT, keys, args);
    const [id, epoch] = Array.isArray(reply) ? reply : [];
    // A store that lost its data gives out offsets of a new epoch.
    if (typeof epoch === "string" && epoch !== this.#epoch) this.#reset(epoch);
    if (typeof id !== "number") {
      throw new TypeError(`Unexpected Redis reply: ${JSON.stringify(id)}`);
    }
    const sub = this.#subs.get(channel);
    const awaited = sub !== undefined && (sub.cursor === null || entryNumber(sub.cursor) < id);
    if (this.status() === "ok" && awaited) {
      const { promise, resolve } = Promise.withResolvers<void>();
      let list = this.#waiters.get(channel);
      if (list === undefined) this.#waiters.set(channel, list = []);
      // Replies come in id order, so this is almost always an append.
      let at = list.length;
      while (at > 0 && list[at - 1]!.id > id) at--;
      list.splice(at, 0, { id, resolve });
      await promise;
    }
    return { offset: id, epoch: this.#epoch };
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

  /** Reads a page of stored payloads of a channel, oldest first. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const after = query.after === undefined ? -1 : Math.max(0, Math.floor(query.after));
    let limit = Math.max(0, Math.floor(query.limit));
    // Ids start at 1, so nothing comes before 1 (and "(0-0" is no valid bound).
    if (query.before !== undefined && query.before <= Math.max(1, after + 1)) limit = 0;
    const end = query.before === undefined || limit === 0 ? "+" : `(${query.before}-0`;
    const reply = await runScript(
      this.#client,
      HISTORY_SCRIPT,
      [this.#seqKey(channel), this.#streamKey(channel), this.#epochKey()],
      [after, end, limit, this.#historyLimit, this.#candidate],
    );
    // A frame the page holds is handed on before the page, not after it: a channel
    // still catching up (just subscribed) would otherwise deliver the page's newest
    // frames, such as a joining user's own notice, once the page was sent, twice.
    const sub = this.#subs.get(channel);
    if (sub?.syncing) await sub.loop;
    const [head, oldest, range, epoch] = Array.isArray(reply) ? reply : [];
    if (typeof epoch === "string" && epoch !== this.#epoch) this.#reset(epoch);
    const entries = parseEntries(range, channel);
    if (after < 0) entries.reverse();
    const oldestTime = this.#ttlMs > 0 ? this.#clock.now() - this.#ttlMs : -Infinity;
    const fresh = entries.filter((entry) => !(entry.time < oldestTime));
    const expired = fresh.length < entries.length;
    const publications = fresh.map((e) => ({ offset: entryNumber(e.id), payload: e.payload }));
    const last = typeof head === "number" ? head : 0;
    const position = { offset: last, epoch: this.#epoch };
    if (after < 0) return { publications, position, complete: true };
    const floor = Math.max(0, last - this.#historyLimit);
    const first = typeof oldest === "string" ? Math.max(entryNumber(oldest), floor + 1) : last + 1;
    // An `after` beyond the head comes from a store that lost its data.
    const complete = after <= last && first <= after + 1 && !expired;
    return { publications, position, complete };
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
  }

  /** "ok" while both Redis connections are up. */
  status(): EngineStatus {
    return this.#client.connected && this.#subscriber.connected ? "ok" : "degraded";
  }

  /** Removes this process's presence, closes both connections and every timer. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    if (this.#refreshTimer !== undefined) this.#scheduler.clearInterval(this.#refreshTimer);
    if (this.#retryTimer !== undefined) this.#scheduler.clearTimeout(this.#retryTimer);
    this.#refreshTimer = undefined;
    this.#retryTimer = undefined;
    // Users of a stopped process vanish at once instead of after the TTL;
    // the PING reply means every command sent before it has run.
    const commands = this.presence.dispose();
    if (this.#client.connected) {
      await this.#client.pipeline([...commands, ["PING"]]).catch(() => undefined);
    }
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

  #epochKey(): string {
    return `${this.#prefix}epoch`;
  }

  async #readEpoch(): Promise<string> {
    const key = this.#epochKey();
    const [, epoch] = await this.#client.pipeline([["SETNX", key, newEpoch()], ["GET", key]]);
    if (typeof epoch !== "string") throw new TypeError(`Unexpected Redis reply: ${epoch}`);
    return epoch;
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
    if (sub.cursor === null || compareIds(entry.id, sub.cursor) <= 0) return;
    sub.cursor = entry.id;
    const offset = entryNumber(entry.id);
    this.#hand(entry.channel, entry.payload, offset);
    if (this.#waiters.size > 0) this.#release(entry.channel, offset);
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
      const epochKey = this.#epochKey();
      if (!checked) commands.push(["SETNX", epochKey, this.#candidate], ["GET", epochKey]);
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
    for (const sub of this.#subs.values()) if (sub.cursor !== null) sub.cursor = "0-0";
    this.presence.refresh();
    this.#candidate = newEpoch();
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
    this.presence.refresh();
    for (const sub of this.#subs.values()) if (sub.stale) this.#sync(sub);
  }
}
