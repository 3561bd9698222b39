/**
 * The bounds of the kv engine's store: a byte budget for the whole database
 * and the deletion of channels idle for `roomTtlS`.
 *
 * - Every channel's head, `["chat", channel, "head"]`, holds its last offset,
 *   the time of its last stored publish and the bytes (UTF-8) of the
 *   publications it counts. Every change to a channel's publications checks
 *   and rewrites the head, so the count stays exact across processes.
 * - The activity index, `["chat", "\0act", time, channel]`, orders channels
 *   by their last stored publish; a publish moves its channel's entry in the
 *   same atomic operation, so the entry is always the head's time.
 * - The store's total is two `Deno.KvU64` sums, bytes added and bytes
 *   removed (a KvU64 cannot go below zero); their difference is stored.
 * - Past the budget, the oldest publications of the channels first in the
 *   index go; a channel that loses its last one is deleted whole.
 * - A timer deletes every channel whose index entry is older than the TTL.
 *
 * Deno KV's own `expireIn` is not used for stored publications: it would
 * delete them without the count knowing.
 *
 * @module
 */

import { utf8Length } from "../bytes.ts";
import { type Clock, type Scheduler, type TimerHandle } from "../clock.ts";
import { type EngineStats, sweepIntervalMs } from "./engine.ts";
import { type Head, headKey, headOf, msgPrefix, ROOT, type Stored } from "./kv_follow.ts";
import { DROP_BATCH, type KvTail, type Trim } from "./kv_tail.ts";

/** The index root; a NUL can be in no channel name, so no channel's keys start so. */
const ACTIVITY = "\u0000act";
const ADDED_KEY: Deno.KvKey = [ROOT, "\u0000bytes", "added"];
const REMOVED_KEY: Deno.KvKey = [ROOT, "\u0000bytes", "removed"];
/** Channels looked at per read of the activity index. */
const INDEX_BATCH = 50;
/**
 * How long this process trusts its own count of the total between reads: a
 * read per publish would halve a busy store's throughput.
 */
const REREAD_MS = 1000;
/** Rounds of eviction that free nothing before it gives up, and of sweeping per timer tick. */
const MAX_ROUNDS = 50;

/** The value of a channel's head key. */
export interface HeadValue {
  /** The last offset given out. */
  id: number;
  /** When the channel's last stored publish was committed, in ms on the engine's clock. */
  t: number;
  /** Bytes (UTF-8) of the channel's publications in the store's total. */
  b: number;
}

/** The activity index key of a channel last published to at `t`. */
export function activityKey(t: number, channel: string): Deno.KvKey {
  return [ROOT, ACTIVITY, t, channel];
}

/** The bytes a stored publication counts; none for a value of another layout. */
function sizeOf(stored: Stored | null): number {
  return typeof stored?.p === "string" ? utf8Length(stored.p) : 0;
}

/** Options of {@linkcode KvBudget}. */
export interface KvBudgetOptions {
  /** Bytes of stored payloads in the whole store at most. */
  maxBytes: number;
  /** Seconds after its last stored publish a channel is deleted. */
  roomTtlS: number;
  /** Publications a channel keeps at most (publishes trim older ones). */
  retained: number;
  /** Ms a publication is served; 0 for no limit (publishes trim older ones). */
  historyTtlMs: number;
  /** Stamps the index and decides what is idle. */
  clock: Clock;
  /** Runs the sweep. */
  scheduler: Scheduler;
  /** Told about a failed eviction, trim or sweep. */
  failed: (event: string, error: unknown) => void;
  /** Background work that the engine's dispose waits for. */
  track: (task: Promise<void>) => void;
}

/** Which of a channel's oldest publications one step removes. */
interface Cut {
  /** The index time the head must still have; undefined: any. */
  t?: number;
  /** Takes the publication (the listing is oldest first); stops at the first it refuses. */
  take: (offset: number, stored: Stored, bytes: number, head: Head) => boolean;
  /** Whether the channel may be deleted whole when nothing of it is left. */
  whole: boolean;
}

/** What one step did: the index entry was stale, the head changed under it, or bytes freed. */
type Step = "stale" | "conflict" | {
  freed: number;
  /** Publications removed. */
  removed: number;
  deleted: boolean;
  /** Whether the channel has publications beyond the batch looked at. */
  more: boolean;
};

/** Keeps the kv engine's store within its budget and deletes idle channels. */
export class KvBudget {
  #o: KvBudgetOptions;
  #kv: Deno.Kv | undefined;
  #stats: EngineStats = { storedBytes: 0, evictions: 0, expiredChannels: 0 };
  #timer: TimerHandle | undefined;
  #enforcing = false;
  #again = false;
  /** When the store's total was last read, on the engine's clock. */
  #readAt = -Infinity;
  #sweeping = false;
  #closed = false;

  /** Creates the budget; it acts once {@linkcode KvBudget.open} gives the database. */
  constructor(options: KvBudgetOptions) {
    if (!(options.maxBytes > 0) || !(options.roomTtlS > 0)) {
      throw new RangeError(`Invalid store bounds: ${options.maxBytes}, ${options.roomTtlS}`);
    }
    this.#o = options;
  }

  /** Reads the store's total and starts the sweep timer. */
  open(kv: Deno.Kv): void {
    this.#kv = kv;
    const every = sweepIntervalMs(this.#o.roomTtlS);
    this.#timer = this.#o.scheduler.setInterval(() => this.#sweep(), every);
    this.committed(0);
  }

  /** Stops the sweep timer; work in flight stops at its next step. */
  close(): void {
    this.#closed = true;
    if (this.#timer !== undefined) this.#o.scheduler.clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** Stored bytes as last seen, and what this process evicted and deleted. */
  stats(): EngineStats {
    return { ...this.#stats };
  }

  /**
   * The publications a batch up to `last` removes in its own commit (past
   * retention or the history TTL), when it crosses a multiple of the trim
   * step: without a commit of its own to conflict with the channel's next
   * publishes, and without a read when the writer's `tail` knows them.
   */
  async trimFor(
    channel: string,
    head: Head,
    last: number,
    tail: KvTail | undefined,
  ): Promise<Trim | undefined> {
    if (!this.#crossed(head.id + 1, last)) return undefined;
    const oldest = this.#o.historyTtlMs > 0 ? this.#o.clock.now() - this.#o.historyTtlMs : -1;
    const cutoff = last - this.#o.retained;
    const known = tail?.plan(channel, cutoff, oldest);
    if (known !== undefined) return known;
    const trim: Trim = { keys: [], bytes: 0, floor: head.id + 1 };
    const listing = this.#kv!.list<Stored>({ prefix: msgPrefix(channel) }, { limit: DROP_BATCH });
    for await (const entry of listing) {
      const offset = entry.key[3] as number;
      trim.floor = offset;
      if (offset > cutoff && !((entry.value?.t ?? Infinity) < oldest)) break;
      trim.keys.push(entry.key);
      trim.bytes += sizeOf(entry.value);
      trim.floor = offset + 1;
    }
    return trim;
  }

  /**
   * Adds a stored batch's bookkeeping to its publish operation: the new
   * head, the channel's move in the activity index, the trim and the bytes
   * added and removed. Returns the head and the change of the total.
   */
  stage(
    op: Deno.AtomicOperation,
    channel: string,
    head: Head,
    batch: { last: number; bytes: number; trim: Trim | undefined },
  ): { head: HeadValue; net: number } {
    // Publications of an older version are in no count: never remove more than counted.
    const freed = Math.min(batch.trim?.bytes ?? 0, head.b);
    const value: HeadValue = {
      id: batch.last,
      t: this.#o.clock.now(),
      b: head.b + batch.bytes - freed,
    };
    op.set(headKey(channel), value);
    if (head.t >= 0 && head.t !== value.t) op.delete(activityKey(head.t, channel));
    op.set(activityKey(value.t, channel), true);
    op.sum(ADDED_KEY, BigInt(batch.bytes));
    for (const key of batch.trim?.keys ?? []) op.delete(key);
    if (freed > 0) op.sum(REMOVED_KEY, BigInt(freed));
    return { head: value, net: batch.bytes - freed };
  }

  /**
   * Told after a stored batch committed, with the change of the total it
   * made: evicts when the store is past its budget.
   */
  committed(net: number): void {
    this.#stats.storedBytes += net;
    // Within budget by this process's count, read lately: no read of the total per publish.
    // Other processes' publishes are seen at the next read, within REREAD_MS.
    const now = this.#o.clock.now();
    if (this.#stats.storedBytes <= this.#o.maxBytes && now - this.#readAt < REREAD_MS) return;
    if (this.#enforcing) {
      this.#again = true;
      return;
    }
    this.#enforcing = true;
    this.#o.track(this.#enforce());
  }

  /** Whether offsets `from`..`last` passed a multiple of the trim step beyond retention. */
  #crossed(from: number, last: number): boolean {
    // Trimming every few dozen publications costs one read and commit for all of them.
    const step = Math.max(8, Math.min(64, Math.floor(this.#o.retained / 8)));
    return last > this.#o.retained && Math.floor(last / step) > Math.floor((from - 1) / step);
  }

  /**
   * Reads the total and evicts until within budget, again while publishes
   * come in; gives up after rounds that free nothing (every step conflicted).
   */
  async #enforce(): Promise<void> {
    try {
      for (let idle = 0; idle < MAX_ROUNDS && !this.#closed;) {
        this.#again = false;
        const total = await this.#readTotal();
        if (total <= this.#o.maxBytes) {
          // In the same turn as clearing #enforcing: a later commit starts a new run.
          if (!this.#again) return;
          continue;
        }
        const freed = await this.#evict(total - this.#o.maxBytes);
        idle = freed > 0 ? 0 : idle + 1;
      }
    } catch (error) {
      this.#o.failed("evict_failed", error);
    } finally {
      this.#enforcing = false;
    }
  }

  async #readTotal(): Promise<number> {
    this.#readAt = this.#o.clock.now();
    const [added, removed] = await this.#kv!.getMany<[Deno.KvU64, Deno.KvU64]>([
      ADDED_KEY,
      REMOVED_KEY,
    ]);
    const total = Number((added.value?.value ?? 0n) - (removed.value?.value ?? 0n));
    this.#stats.storedBytes = total;
    return total;
  }

  /**
   * Removes the oldest publications of the least recently published-to
   * channels, about `excess` bytes: the first channels of the index whole
   * while their bytes fit, the next in part, all at once. Returns the bytes freed.
   */
  async #evict(excess: number): Promise<number> {
    const kv = this.#kv!;
    const index = await Array.fromAsync(
      kv.list<boolean>({ prefix: [ROOT, ACTIVITY] }, { limit: INDEX_BATCH }),
    );
    const heads = await this.#heads(index.map((entry) => entry.key[3] as string));
    const steps: Promise<number>[] = [];
    let planned = 0;
    index.forEach((entry, i) => {
      if (planned >= excess) return;
      const want = excess - planned;
      planned += heads[i]!.b;
      steps.push(this.#evictFrom(entry.key, heads[i]!, want));
    });
    return (await Promise.all(steps)).reduce((sum, freed) => sum + freed, 0);
  }

  /** The heads of channels, read ten at a time (the limit of `getMany`). */
  async #heads(channels: string[]): Promise<Head[]> {
    const reads = [];
    for (let i = 0; i < channels.length; i += 10) {
      const keys = channels.slice(i, i + 10).map((channel) => headKey(channel));
      reads.push(this.#kv!.getMany(keys));
    }
    return (await Promise.all(reads)).flat().map((entry) => headOf(entry));
  }

  /** Removes about `want` bytes of a channel's oldest publications; returns the bytes freed. */
  async #evictFrom(key: Deno.KvKey, head: Head, want: number): Promise<number> {
    let sum = 0;
    const step = await this.#step(key[3] as string, {
      t: key[2] as number,
      take: (_offset, _stored, bytes) => (sum += bytes) - bytes < want,
      whole: true,
    }, head);
    // Stale: a publish moved the channel or it was deleted; its entry is gone or going.
    if (step === "stale") await this.#kv!.delete(key);
    if (typeof step !== "object") return 0;
    this.#stats.evictions += step.removed;
    return step.freed;
  }

  /** Deletes every channel whose last stored publish is older than the TTL. */
  #sweep(): void {
    if (this.#sweeping || this.#closed || this.#kv === undefined) return;
    this.#sweeping = true;
    const task = this.#sweepIdle().catch((error) => this.#o.failed("sweep_failed", error))
      .finally(() => this.#sweeping = false);
    this.#o.track(task);
  }

  async #sweepIdle(): Promise<void> {
    const cutoff = this.#o.clock.now() - this.#o.roomTtlS * 1000;
    for (let round = 0; round < MAX_ROUNDS && !this.#closed; round++) {
      const index = this.#kv!.list<boolean>({
        start: [ROOT, ACTIVITY],
        end: [ROOT, ACTIVITY, cutoff],
      }, { limit: INDEX_BATCH });
      let seen = 0;
      for await (const entry of index) {
        seen++;
        const [, , t, channel] = entry.key as [string, string, number, string];
        await this.#expire(channel, t, entry.key);
        if (this.#closed) return;
      }
      if (seen < INDEX_BATCH) return;
    }
  }

  /** Deletes a channel idle since `t` whole, unless a publish moved it meanwhile. */
  async #expire(channel: string, t: number, key: Deno.KvKey): Promise<void> {
    for (let round = 0; round < MAX_ROUNDS && !this.#closed; round++) {
      const step = await this.#step(channel, { t, take: () => true, whole: true });
      // A stale index entry: its channel was published to (or deleted) since.
      if (step === "stale") return await this.#kv!.delete(key);
      if (typeof step === "object" && step.deleted) {
        this.#stats.expiredChannels++;
        return;
      }
    }
  }

  /**
   * One atomic step on a channel: removes the oldest publications `cut`
   * takes, in one batch, checking the head read before; deletes the
   * channel whole when it took the last one and `cut.whole` allows.
   */
  async #step(channel: string, cut: Cut, read?: Head): Promise<Step> {
    const kv = this.#kv!;
    const head = read ?? headOf(await kv.get(headKey(channel)));
    if (head.versionstamp === null || (cut.t !== undefined && head.t !== cut.t)) return "stale";
    const listing = kv.list<Stored>({ prefix: msgPrefix(channel) }, { limit: DROP_BATCH + 1 });
    const taken: Deno.KvKey[] = [];
    let sizes = 0;
    let listed = 0;
    for await (const entry of listing) {
      if (++listed > DROP_BATCH) break;
      const stored = entry.value;
      const bytes = sizeOf(stored);
      if (!cut.take(entry.key[3] as number, stored, bytes, head)) break;
      taken.push(entry.key);
      sizes += bytes;
    }
    const deleted = cut.whole && taken.length === listed;
    if (taken.length === 0 && !deleted) {
      return { freed: 0, removed: 0, deleted: false, more: false };
    }
    // Publications of an older version are in no count: never remove more than counted.
    const freed = deleted ? head.b : Math.min(sizes, head.b);
    const op = kv.atomic().check({ key: headKey(channel), versionstamp: head.versionstamp });
    for (const key of taken) op.delete(key);
    if (deleted) {
      op.delete(headKey(channel));
      if (head.t >= 0) op.delete(activityKey(head.t, channel));
    } else op.set(headKey(channel), { id: head.id, t: head.t, b: head.b - freed });
    op.sum(REMOVED_KEY, BigInt(freed));
    if (!(await op.commit()).ok) return "conflict";
    this.#stats.storedBytes -= freed;
    return { freed, removed: taken.length, deleted, more: listed > DROP_BATCH };
  }
}
