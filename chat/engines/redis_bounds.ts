/**
 * The bounds of the redis engine's store: a byte budget shared by every
 * process on one Redis, and the deletion of channels idle for `roomTtlS`.
 *
 * - `<prefix>stored_bytes` counts the bytes (UTF-8, as Lua's `string.len`)
 *   of every stored payload plus {@linkcode CHANNEL_OVERHEAD} per channel;
 *   `<prefix>channel_bytes` (a hash) splits it by channel, so a channel
 *   whose stream Redis expired on its own can still be subtracted.
 * - `<prefix>activity` (a sorted set) scores each channel with its last
 *   publish time on the engine's clock: the lowest is the least recently
 *   published-to channel, the first to lose publications, and channels
 *   scored before `now - roomTtl` are deleted by {@linkcode RedisBounds.sweep}.
 * - The publish script (redis_history.ts) keeps these counts and evicts,
 *   with the Lua functions of {@linkcode BOUNDS_LUA}, so the total is
 *   within budget once it returns.
 * - Every key gets a Redis TTL a margin past `roomTtl`, so nothing outlives
 *   a store no process sweeps any more. A process renews a channel's TTLs
 *   only every tenth of that margin, and moves its activity score only
 *   when it moved by {@linkcode ACTIVITY_STEP_MS}
 *   ({@linkcode PublishMarks}): the bookkeeping would otherwise cost Redis
 *   more than storing the publication.
 *
 * @module
 */

import type { Clock, Scheduler, TimerHandle } from "../clock.ts";
import type { Logger } from "../logger.ts";
import { type EngineStats, sweepIntervalMs } from "./engine.ts";
import type { RedisClient } from "./redis_client.ts";
import { loadScript, runScript, script } from "./redis_scripts.ts";

/**
 * Bytes charged per channel besides its payloads, for its keys and entries:
 * many channels of tiny payloads must not fill Redis within the budget.
 */
export const CHANNEL_OVERHEAD = 128;

/**
 * Id of the pub/sub message that says a channel was deleted: its offsets
 * start again at 1, so subscribers move their cursor back.
 */
export const RESET_ID = "0-0";

// Channels deleted per sweep script call, so one call never blocks Redis long.
const SWEEP_BATCH = 100;

/**
 * Milliseconds a channel's activity score may lag its last publication: LRU
 * and idle detection need no finer grain, and most publishes skip the ZADD.
 */
export const ACTIVITY_STEP_MS = 1000;

// Channels whose marks a process keeps; a forgotten one costs one full publish.
const MARKED_CHANNELS = 10_000;

/**
 * Lua functions of the sweep script, and of the publish script's rare part
 * (trimming and evicting: defining them costs every call that runs them). They
 * build the keys of other channels from `prefix`, which Redis Cluster would
 * refuse; the engine is not for Cluster anyway.
 */
export const BOUNDS_LUA = `
local function entry_bytes(entry)
  local fields = entry[2]
  for i = 1, #fields, 2 do
    if fields[i] == 'p' then return string.len(fields[i + 1]) end
  end
  return 0
end

-- Adds n (negative to subtract) to the total, keeping its TTL; a total from before the
-- counting (an upgraded store) never goes below 0. Subtractions are written
-- 0 - n: Lua's -0 reaches Redis as "-0", which is not an integer to it.
local function count(prefix, n)
  local total = redis.call('INCRBY', prefix .. 'stored_bytes', n)
  if total < 0 then
    redis.call('SET', prefix .. 'stored_bytes', 0, 'KEEPTTL')
    total = 0
  end
  return total
end

-- Deletes a channel with every key it has, and tells its subscribers.
local function drop(prefix, channel)
  local size = tonumber(redis.call('HGET', prefix .. 'channel_bytes', channel) or '0')
  redis.call('DEL', prefix .. 'stream:' .. channel, prefix .. 'seq:' .. channel)
  redis.call('HDEL', prefix .. 'channel_bytes', channel)
  redis.call('ZREM', prefix .. 'activity', channel)
  redis.call('PUBLISH', prefix .. 'ch:' .. channel, '${RESET_ID}\\n' .. channel .. '\\n')
  return count(prefix, 0 - size)
end

-- Removes the oldest entries of a stream while total > max, at most one
-- page; returns the bytes freed, the entries removed and whether the
-- stream has no entry left.
local function shed(prefix, channel, total, max)
  local stream = prefix .. 'stream:' .. channel
  local page = redis.call('XRANGE', stream, '-', '+', 'COUNT', 100)
  local freed, removed, last = 0, 0, nil
  for _, entry in ipairs(page) do
    if total - freed <= max then break end
    freed = freed + entry_bytes(entry)
    removed = removed + 1
    last = entry[1]
  end
  if last then
    redis.call('XTRIM', stream, 'MINID', (tonumber(string.match(last, '^(%d+)')) + 1) .. '-0')
    redis.call('HINCRBY', prefix .. 'channel_bytes', channel, 0 - freed)
  end
  return freed, removed, removed == #page and #page < 100
end

-- Evicts the oldest publications of the least recently published-to
-- channels until total <= max; a channel that loses its last publication
-- is deleted whole, except the one just published to (it keeps its
-- counter). Returns the total and how many publications were evicted.
local function evict(prefix, total, max, current)
  local evicted = 0
  for _ = 1, 1000 do
    if total <= max then break end
    local oldest = redis.call('ZRANGE', prefix .. 'activity', 0, 1)
    local channel = oldest[1]
    if channel == current and oldest[2] then channel = oldest[2] end
    if not channel then break end
    local freed, removed, empty = shed(prefix, channel, total, max)
    evicted = evicted + removed
    total = count(prefix, 0 - freed)
    if empty and channel ~= current then
      total = drop(prefix, channel)
    elseif channel == current and (empty or removed == 0) then
      break
    end
  end
  return total, evicted
end
`;

// Deletes the channels last published to before ARGV[2], and renews the
// store-wide keys' TTL (publishes renew it only when they add a channel).
const SWEEP_SCRIPT = script(`${BOUNDS_LUA}
local prefix = ARGV[1]
for _, name in ipairs({'stored_bytes', 'channel_bytes', 'activity'}) do
  redis.call('PEXPIRE', prefix .. name, ARGV[3])
end
local channels = redis.call('ZRANGEBYSCORE', prefix .. 'activity', '-inf', ARGV[2], 'LIMIT', 0, ${SWEEP_BATCH})
for _, channel in ipairs(channels) do drop(prefix, channel) end
return {#channels, tonumber(redis.call('GET', prefix .. 'stored_bytes') or '0')}
`);

/** Options of {@linkcode RedisBounds}. */
export interface RedisBoundsOptions {
  /** The engine's command connection. */
  client: RedisClient;
  /** Prefix of every key and pub/sub channel. */
  prefix: string;
  /** Milliseconds after its last publication a channel is deleted. */
  roomTtlMs: number;
  /** The engine's clock: publish times and the sweep's cutoff. */
  clock: Clock;
  /** Runs the sweep. */
  scheduler: Scheduler;
  /** Told about failed sweeps, at debug level. */
  logger: Logger;
}

/** Sweeps idle channels and keeps the counts {@linkcode EngineStats} reports. */
export class RedisBounds {
  #o: RedisBoundsOptions;
  #stats: EngineStats = { storedBytes: 0, evictions: 0, expiredChannels: 0 };
  #sweeping = false;
  #again = false;
  #timer: TimerHandle | undefined;

  /** Keeps the options; {@linkcode RedisBounds.load} prepares the script. */
  constructor(options: RedisBoundsOptions) {
    this.#o = options;
  }

  /** Computes the script's SHA-1. */
  async load(): Promise<void> {
    await loadScript(SWEEP_SCRIPT);
  }

  /** The store-wide keys the publish script counts in: total, per channel, activity. */
  keys(): string[] {
    const prefix = this.#o.prefix;
    return [`${prefix}stored_bytes`, `${prefix}channel_bytes`, `${prefix}activity`];
  }

  /**
   * Milliseconds every key lives in Redis after a publish: past the sweep,
   * which deletes a channel at most one sweep interval after `roomTtl`, so
   * Redis expires keys itself only when no process sweeps.
   */
  keepMs(): number {
    return this.#o.roomTtlMs + 2 * this.#sweepMs();
  }

  /**
   * Milliseconds between renewals of a channel's TTLs by one process: a
   * tenth of the margin, so its keys still live past `roomTtl` plus nine
   * tenths of it after the last publish, and never past {@linkcode RedisBounds.keepMs}.
   */
  renewMs(): number {
    return Math.max(1, Math.floor((this.keepMs() - this.#o.roomTtlMs) / 10));
  }

  /** Sweeps every `sweepIntervalMs(roomTtl)` until {@linkcode RedisBounds.stop}. */
  start(): void {
    if (this.#timer !== undefined) return;
    const sweep = () =>
      this.sweep().catch((error) =>
        this.#o.logger.debug("redis_sweep_failed", { error: String(error) })
      );
    this.#timer = this.#o.scheduler.setInterval(sweep, this.#sweepMs());
  }

  /** Stops the sweeps. */
  stop(): void {
    if (this.#timer !== undefined) this.#o.scheduler.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  #sweepMs(): number {
    return sweepIntervalMs(this.#o.roomTtlMs / 1000);
  }

  /** Takes up the store's total and this process's evictions from a publish's reply. */
  noteStored(total: unknown, evicted: unknown): void {
    if (typeof total === "number") this.#stats.storedBytes = total;
    if (typeof evicted === "number") this.#stats.evictions += evicted;
  }

  /** A copy of the counts. */
  stats(): EngineStats {
    return { ...this.#stats };
  }

  /**
   * Deletes every channel with no publication for `roomTtl`, in batches;
   * resolves with how many this call deleted. Several processes may sweep
   * at once: a channel is deleted once. A call while one runs makes it go
   * round once more, with the time then.
   */
  async sweep(): Promise<number> {
    if (this.#sweeping) {
      this.#again = true;
      return 0;
    }
    this.#sweeping = true;
    let deleted = 0;
    try {
      do {
        this.#again = false;
        deleted += await this.#sweepOnce();
      } while (this.#again);
    } finally {
      this.#sweeping = false;
    }
    return deleted;
  }

  async #sweepOnce(): Promise<number> {
    const cutoff = this.#o.clock.now() - this.#o.roomTtlMs;
    let deleted = 0;
    for (;;) {
      const args = [this.#o.prefix, cutoff, this.keepMs()];
      const reply = await runScript(this.#o.client, SWEEP_SCRIPT, [], args);
      const [count, total] = Array.isArray(reply) ? reply : [];
      if (typeof count !== "number") {
        throw new TypeError(`Unexpected Redis reply: ${JSON.stringify(reply)}`);
      }
      this.noteStored(total, 0);
      deleted += count;
      this.#stats.expiredChannels += count;
      if (count < SWEEP_BATCH) return deleted;
    }
  }
}

/** Which bookkeeping a publish does besides counting its bytes. */
export interface PublishDue {
  /** Moves the channel's activity score to now. */
  touch: boolean;
  /** Renews the TTLs of the channel's stream and counter. */
  renew: boolean;
}

/**
 * When this process last moved each channel's activity score and renewed
 * its TTLs, on the engine's clock. Only a throttle: the publish script
 * still scores and gives TTLs to keys it creates (a new or deleted channel,
 * an expired stream), so a mark that is wrong or forgotten costs at most one
 * ZADD or PEXPIRE more, or a score up to {@linkcode ACTIVITY_STEP_MS} old.
 */
export class PublishMarks {
  #marks = new Map<string, { touched: number; renewed: number }>();
  #renewMs: number;

  /** Renews a channel's TTLs at most every `renewMs`. */
  constructor(renewMs: number) {
    this.#renewMs = renewMs;
  }

  /** What a publish to `channel` at `now` does, noted as done. */
  due(channel: string, now: number): PublishDue {
    let mark = this.#marks.get(channel);
    if (mark === undefined) {
      if (this.#marks.size >= MARKED_CHANNELS) this.#marks.delete(this.#marks.keys().next().value!);
      mark = { touched: -Infinity, renewed: -Infinity };
      this.#marks.set(channel, mark);
    }
    // A clock set back counts as due, so a mark from "the future" never stops renewals.
    const touch = !(now - mark.touched < ACTIVITY_STEP_MS && now >= mark.touched);
    const renew = !(now - mark.renewed < this.#renewMs && now >= mark.renewed);
    if (touch) mark.touched = now;
    if (renew) mark.renewed = now;
    return { touch, renew };
  }
}
