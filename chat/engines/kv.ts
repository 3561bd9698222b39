/**
 * The kv engine: payloads stored in Deno KV, fanned out between the workers
 * of one process (`deno serve --parallel`) and between Deno Deploy instances.
 *
 * - Storage: per channel a head key holding the last offset (with the time
 *   of the last publish and the channel's bytes) and one key per
 *   publication, `["chat", channel, "msg", offset]`, with the payload and
 *   the time it was stored. A commit checks the head's versionstamp, so
 *   offsets increase strictly across every handle on the database; a
 *   conflict re-reads the head and retries. Concurrent publishes to one
 *   channel are grouped into one atomic commit.
 * - Bounds: see kv_budget.ts. Publications past the retained window or the
 *   history TTL are trimmed every few dozen publishes; the store keeps
 *   within `historyMaxBytes`; channels idle for `roomTtlS` are deleted.
 * - Ephemeral publishes of every channel go to one short-lived stream,
 *   `["chat", "\0ev", ...]`, which every process with a subscription follows
 *   and filters by its channels: one ordered stream gives exactly once
 *   without a watch per channel. User channels (`~key`) carry stored
 *   private deliveries and are followed like rooms: one watched head key
 *   per connected user of this process (ten per watch).
 * - Fan-out: see kv_follow.ts.
 * - The epoch, `["chat", "epoch"]`, is created when absent: a new or wiped
 *   database starts a new one.
 * - `publish` resolves only after the commit: an acknowledged publication
 *   survives a crash.
 *
 * `kv.watch` does not reach other processes on the same local file (deno
 * issue 21640): use the redis engine for several processes.
 *
 * @module
 */

import { type Clock, type Scheduler, systemClock, systemScheduler } from "../clock.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { withDefaults } from "../options.ts";
import { LogThrottle } from "../log_throttle.ts";
import {
  DEFAULT_ENGINE,
  type Delivery,
  type Engine,
  type EngineStats,
  type EngineStatus,
  type HistoryPage,
  type HistoryQuery,
  type PublishOptions,
  type StreamPosition,
} from "./engine.ts";
import {
  type Entry,
  EPHEMERAL,
  type Head,
  headKey,
  headOf,
  KvFollower,
  msgKey,
  type Stored,
} from "./kv_follow.ts";
import { utf8Length } from "../bytes.ts";
import { KvBudget } from "./kv_budget.ts";
import { readHistory } from "./kv_history.ts";
import { tryCommit } from "./kv_lock.ts";
import { openKv, readEpoch } from "./kv_open.ts";
import { KvTail } from "./kv_tail.ts";
import { KvPresence } from "./kv_presence.ts";

/** Options of {@linkcode KvEngine}. */
export interface KvEngineOptions {
  /**
   * Path of the KV file; its folder is created. Empty or undefined: the
   * platform default of `Deno.openKv()` (the database of a Deno Deploy app).
   */
  path?: string;
  /** Publications served from history per channel. Default: {@linkcode DEFAULT_ENGINE}. */
  historyLimit?: number;
  /** Seconds a publication is served from history; 0 for no limit. Default: {@linkcode DEFAULT_ENGINE}. */
  historyTtlS?: number;
  /**
   * Bytes (UTF-8) of stored payloads in the whole database at most; past it
   * the least recently published-to channels lose their oldest. Default:
   * {@linkcode DEFAULT_ENGINE}.
   */
  historyMaxBytes?: number;
  /** Seconds after its last stored publish a channel is deleted whole. Default: {@linkcode DEFAULT_ENGINE}. */
  roomTtlS?: number;
  /** Seconds this process's presence entries live without a refresh. Default: {@linkcode DEFAULT_ENGINE}. */
  presenceTtlS?: number;
  /** Default: silent. */
  logger?: Logger;
  /** Stamps publications and presence. Default: the system clock. */
  clock?: Clock;
  /** Runs every timer of the engine. Default: the global timers. */
  scheduler?: Scheduler;
}

/** The defaults of {@linkcode KvEngineOptions}. */
export const DEFAULT_KV_ENGINE: Readonly<{
  path: string;
  historyLimit: number;
  historyTtlS: number;
  historyMaxBytes: number;
  roomTtlS: number;
  presenceTtlS: number;
}> = Object.freeze({ path: "", ...DEFAULT_ENGINE });

/** A publish waiting for its commit. */
interface Pending {
  channel: string;
  payload: string;
  /** An upper bound of its size in a KV value. */
  bytes: number;
  /** Its UTF-8 length, counted in the store's budget; 0 for an ephemeral one. */
  size: number;
  resolve: (position: StreamPosition | undefined) => void;
  reject: (error: unknown) => void;
}

/** A committed batch: its entries, whether it created the stream's head, the change of the store's total. */
interface Committed {
  entries: Entry[];
  created: boolean;
  net: number;
}

/** A batch added to an atomic operation, the head it leaves and the change of the store's total. */
interface Staged {
  entries: Entry[];
  next: Omit<Head, "versionstamp">;
  net: number;
  /** Run once the operation committed. */
  done?: () => void;
}

/** The commit queue of one channel, or of every ephemeral publish. */
interface Writer {
  queue: Pending[];
  running: boolean;
  /** The head after this writer's last commit; a stale one only costs a retry. */
  head: Head | undefined;
  /** What this writer knows of its channel's oldest publications, for the trim. */
  tail: KvTail;
}

// The stored publications are also the fan-out log: keep a floor even with HISTORY_LIMIT=0.
const MIN_RETAINED = 100;
const EPHEMERAL_RETAINED = 1000;
// Long enough for every follower to read an ephemeral entry, short enough not to pile up.
const EPHEMERAL_TTL_MS = 60_000;
// Deno KV limits: 1000 mutations and about 800 KiB per atomic operation, 64 KiB per value.
const MAX_BATCH = 64;
const MAX_BATCH_BYTES = 400_000;
const MAX_VALUE_BYTES = 65_536 - 1024;
const MAX_ATTEMPTS = 100;

/** An upper bound of a payload's size as V8 serializes it. */
function estimateBytes(payload: string): number {
  // V8 stores a string with a character beyond Latin-1 at two bytes a character.
  return /[\u0100-\uffff]/.test(payload) ? payload.length * 2 + 64 : payload.length + 64;
}

/** Stores payloads in Deno KV and fans them out with `kv.watch`. */
export class KvEngine implements Engine {
  /** The engine's name. */
  readonly name = "kv";
  /** Who is online on every worker and instance sharing the database. */
  readonly presence: KvPresence;
  #path: string;
  #limit: number;
  #retained: number;
  #ttlMs: number;
  #log: Logger;
  #clock: Clock;
  #kv: Deno.Kv | undefined;
  #epoch = "";
  #deliver: Delivery | undefined;
  #status: EngineStatus = "ok";
  #closed = false;
  #writers = new Map<string, Writer>();
  /** Channels this process subscribed to. */
  #channels = new Set<string>();
  #follower: KvFollower;
  #budget: KvBudget;
  /** Background work that dispose waits for. */
  #tasks = new Set<Promise<void>>();

  /** Creates an engine; the KV database opens in {@linkcode start}. */
  constructor(options: KvEngineOptions = {}) {
    const o = withDefaults(DEFAULT_KV_ENGINE, options);
    this.#path = o.path;
    this.#limit = o.historyLimit;
    this.#ttlMs = o.historyTtlS * 1000;
    this.#log = options.logger ?? silentLogger;
    this.#clock = options.clock ?? systemClock;
    if (!(this.#limit >= 0) || !(this.#ttlMs >= 0)) {
      throw new RangeError(`Invalid history options: ${this.#limit}, ${options.historyTtlS}`);
    }
    this.#retained = Math.max(this.#limit, MIN_RETAINED);
    const scheduler = options.scheduler ?? systemScheduler;
    this.presence = new KvPresence({
      ttlS: o.presenceTtlS,
      logger: this.#log,
      // Only Deno Deploy instances share a database across processes.
      processOnly: this.#path !== "",
      clock: this.#clock,
      scheduler,
    });
    this.#budget = new KvBudget({
      maxBytes: o.historyMaxBytes,
      roomTtlS: o.roomTtlS,
      retained: this.#retained,
      historyTtlMs: this.#ttlMs,
      clock: this.#clock,
      scheduler,
      failed: (event, error) => this.#failed(event, error),
      track: (task) => this.#track(task),
    });
    this.#follower = new KvFollower({
      scheduler,
      emit: (entry) => this.#emit(entry),
      failed: (event, error) => this.#failed(event, error),
      recovered: () => this.#status = "ok",
      track: (task) => this.#track(task),
    });
  }

  /** The epoch stored in the database; read or created by {@linkcode start}. */
  get epoch(): string {
    return this.#epoch;
  }

  /** Opens the database (creating the folder of `path`), reads the epoch and sets the delivery. */
  async start(deliver: Delivery): Promise<void> {
    if (this.#closed) throw new Error("Engine is closed");
    this.#deliver = deliver;
    if (this.#kv !== undefined) return;
    const kv = await openKv(this.#path);
    if (this.#closed) {
      kv.close();
      throw new Error("Engine is closed");
    }
    this.#kv = kv;
    // Said every time: an empty path outside Deno Deploy opens a file in Deno's cache directory.
    this.#log.info("kv_opened", {
      path: this.#path === "" ? "(the platform's default database)" : this.#path,
    });
    this.#epoch = await readEpoch(kv);
    this.presence.open(kv);
    this.#follower.open(kv);
    this.#budget.open(kv);
  }

  /**
   * Commits the payload (with `history`, with the channel's next offset);
   * resolves after the commit, once it was handed to the delivery function
   * when this process subscribed to the channel. Rejects when the store
   * fails; nothing was stored then.
   */
  publish(
    channel: string,
    payload: string,
    options?: PublishOptions,
  ): Promise<StreamPosition | undefined> {
    if (this.#closed) return Promise.reject(new Error("Engine is closed"));
    if (this.#kv === undefined) return Promise.reject(new Error("Engine is not started"));
    const bytes = estimateBytes(payload);
    if (bytes > MAX_VALUE_BYTES) {
      return Promise.reject(new RangeError(`Payload too large for Deno KV: ${bytes} bytes`));
    }
    const stored = options?.history === true;
    const key = stored ? channel : EPHEMERAL;
    let writer = this.#writers.get(key);
    if (writer === undefined) {
      writer = { queue: [], running: false, head: undefined, tail: new KvTail() };
      this.#writers.set(key, writer);
    }
    const { promise, resolve, reject } = Promise.withResolvers<StreamPosition | undefined>();
    const size = stored ? utf8Length(payload) : 0;
    writer.queue.push({ channel, payload, bytes, size, resolve, reject });
    if (!writer.running) this.#track(this.#drain(key, writer));
    return promise;
  }

  /** Reads a page of stored payloads, oldest first; those past the limit or the TTL are not served. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const kv = this.#open();
    // A publication committed before this read is then either handed on live or in the page.
    await this.#follower.ready(channel);
    const oldest = this.#ttlMs > 0 ? this.#clock.now() - this.#ttlMs : -Infinity;
    return await readHistory(kv, channel, query, {
      limit: this.#limit,
      oldest,
      epoch: this.#epoch,
    });
  }

  /** Follows the channel's stream (a room or a user channel) and the ephemeral stream. */
  subscribe(channel: string): void {
    if (this.#closed || this.#channels.has(channel)) return;
    this.#channels.add(channel);
    this.#follower.follow(channel);
    this.#follower.follow(EPHEMERAL);
  }

  /** Stops following the channel; the ephemeral stream too after the last channel. */
  unsubscribe(channel: string): void {
    if (this.#closed || !this.#channels.delete(channel)) return;
    this.#follower.unfollow(channel);
    if (this.#channels.size === 0) this.#follower.unfollow(EPHEMERAL);
  }

  /** Stored bytes of the whole database as last read, evictions and expired channels of this process. */
  stats(): EngineStats {
    return this.#budget.stats();
  }

  /** Degraded after a failed KV operation until one succeeds. */
  status(): EngineStatus {
    return this.#status;
  }

  /**
   * Stops the watches and timers, rejects publishes not yet committed, waits
   * for work in flight and closes the database.
   */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    this.#follower.close();
    this.#budget.close();
    for (const writer of this.#writers.values()) {
      for (const p of writer.queue.splice(0)) p.reject(new Error("Engine is closed"));
    }
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    await this.presence[Symbol.asyncDispose]();
    this.#channels.clear();
    this.#writers.clear();
    this.#deliver = undefined;
    this.#kv?.close();
    this.#kv = undefined;
  }

  #open(): Deno.Kv {
    if (this.#kv === undefined) {
      throw new Error(this.#closed ? "Engine is closed" : "Engine is not started");
    }
    return this.#kv;
  }

  #track(task: Promise<void>): void {
    this.#tasks.add(task);
    task.finally(() => this.#tasks.delete(task));
  }

  async #drain(key: string, writer: Writer): Promise<void> {
    writer.running = true;
    try {
      while (writer.queue.length > 0 && !this.#closed) {
        const batch = this.#take(writer.queue);
        // Committing after the follow's starting point keeps the entry from
        // being counted as already handed on.
        await this.#follower.ready(key);
        let done: Committed;
        try {
          done = await this.#commit(key, writer, batch);
        } catch (error) {
          writer.head = undefined;
          writer.tail.lost();
          this.#failed("publish_failed", error);
          for (const p of batch) p.reject(error);
          continue;
        }
        this.#status = "ok";
        this.#settle(key, batch, done);
      }
    } finally {
      writer.running = false;
    }
    if (this.#writers.size > 1000 && writer.queue.length === 0) this.#writers.delete(key);
  }

  /** Counts a committed batch in the budget, hands it on and resolves its publishes. */
  #settle(key: string, batch: Pending[], { entries, created, net }: Committed): void {
    if (key !== EPHEMERAL) this.#budget.committed(net);
    this.#follower.offer(key, entries, created);
    const epoch = this.#epoch;
    entries.forEach((entry, i) =>
      batch[i]!.resolve(entry.offset === undefined ? undefined : { offset: entry.offset, epoch })
    );
  }

  /** Takes the next batch, bounded in count and bytes. */
  #take(queue: Pending[]): Pending[] {
    let bytes = 0;
    let n = 0;
    for (const p of queue) {
      if (n === MAX_BATCH || (n > 0 && bytes + p.bytes > MAX_BATCH_BYTES)) break;
      bytes += p.bytes;
      n++;
    }
    return queue.splice(0, n);
  }

  /** Commits a batch after the stream's head, retrying on conflicts and a locked file. */
  async #commit(stream: string, writer: Writer, batch: Pending[]): Promise<Committed> {
    const kv = this.#open();
    const key = headKey(stream);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      // The tail is right only if the check is against this writer's own last head.
      const tail = writer.head === undefined ? undefined : writer.tail;
      const head = writer.head ?? headOf(await kv.get(key));
      const op = kv.atomic().check({ key, versionstamp: head.versionstamp });
      const { entries, next, net, done } = stream === EPHEMERAL
        ? this.#stageEphemeral(op, head, batch)
        : await this.#stageStored(op, stream, head, batch, tail);
      const result = await tryCommit(op, attempt);
      if (result?.ok) {
        writer.head = { ...next, versionstamp: result.versionstamp };
        done?.();
        return { entries, created: head.versionstamp === null, net };
      }
      writer.head = undefined;
      writer.tail.lost();
    }
    throw new Error(`Too many write conflicts on channel: ${stream}`);
  }

  /** Adds a batch of ephemeral publishes to the operation. */
  #stageEphemeral(op: Deno.AtomicOperation, head: Head, batch: Pending[]): Staged {
    const last = head.id + batch.length;
    op.set(headKey(EPHEMERAL), last);
    const entries = batch.map((p, i): Entry => {
      const seq = head.id + 1 + i;
      op.set(msgKey(EPHEMERAL, seq), { c: p.channel, p: p.payload }, {
        expireIn: EPHEMERAL_TTL_MS,
      });
      if (seq > EPHEMERAL_RETAINED) op.delete(msgKey(EPHEMERAL, seq - EPHEMERAL_RETAINED));
      return { seq, channel: p.channel, payload: p.payload };
    });
    return { entries, next: { id: last, t: -1, b: 0 }, net: 0 };
  }

  /**
   * Adds a batch of stored publishes to the operation, with the budget's
   * bookkeeping and trim. Without `expireIn`: a later publish's trim
   * deletes them, and counts it.
   */
  async #stageStored(
    op: Deno.AtomicOperation,
    channel: string,
    head: Head,
    batch: Pending[],
    tail: KvTail | undefined,
  ): Promise<Staged> {
    const last = head.id + batch.length;
    // A head check failing on a change by another handle makes the whole
    // commit, trim included, retry.
    const trim = await this.#budget.trimFor(channel, head, last, tail);
    const now = this.#clock.now();
    let size = 0;
    const sizes: number[] = [];
    const entries = batch.map((p, i): Entry => {
      const seq = head.id + 1 + i;
      op.set(msgKey(channel, seq), { p: p.payload, t: now } satisfies Stored);
      size += p.size;
      sizes.push(p.size);
      return { seq, channel, payload: p.payload, offset: seq };
    });
    const staged = this.#budget.stage(op, channel, head, { last, bytes: size, trim });
    const done = () => this.#writers.get(channel)?.tail.committed(trim, head.id + 1, sizes, now);
    return { entries, next: staged.head, net: staged.net, done };
  }

  /** Failures repeat for every batch while the store is down: one line per interval. */
  #failures: LogThrottle | undefined;

  #failed(event: string, error: unknown): void {
    if (this.#closed) return;
    this.#status = "degraded";
    this.#failures ??= new LogThrottle({ logger: this.#log, clock: this.#clock });
    this.#failures.warn(event, { engine: "kv", error: String(error) });
  }

  #emit(entry: Entry): void {
    // The ephemeral stream carries every channel's: only subscribed ones go on.
    if (entry.offset === undefined && !this.#channels.has(entry.channel)) return;
    try {
      this.#deliver?.(entry.channel, entry.payload, entry.offset);
    } catch (error) {
      this.#failures ??= new LogThrottle({ logger: this.#log, clock: this.#clock });
      this.#failures.error("deliver_failed", { channel: entry.channel, error: String(error) });
    }
  }
}
