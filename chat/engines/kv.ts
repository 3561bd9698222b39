/**
 * The kv engine: frames stored in Deno KV, fanned out between the workers of
 * one process (`deno serve --parallel`) and between Deno Deploy instances.
 *
 * - Storage: per channel (a room or a pair of users) a head key holding the
 *   last id and one key per frame, `["chat", channel, "msg", id]`. A commit
 *   checks the head's versionstamp, so ids increase strictly across every
 *   handle on the database; a conflict re-reads the head and retries.
 *   Concurrent publishes to one channel are grouped into one atomic commit.
 *   The same commit deletes the frames that fall out of the retained window.
 * - Private frames are stored in their pair channel and, in the same commit,
 *   appended to one private log, `["chat", "~dm", ...]`, which every process
 *   with a subscribed user follows: one ordered stream gives exactly once, in
 *   id order per pair, without knowing the pairs in advance.
 * - Fan-out: `kv.watch` on the head keys of the followed streams (ten keys
 *   per watch) and a range read from the last id handed on, since a watch
 *   collapses intermediate values. A local commit is handed on at once when
 *   it directly follows the last id handed on; one cursor per stream keeps
 *   every frame exactly once and in order.
 * - `publish` resolves only after the commit: an acknowledged frame survives
 *   a crash.
 *
 * `kv.watch` does not reach other processes on the same local file (deno
 * issue 21640): use the redis engine for several processes.
 *
 * @module
 */

import type { PrivateFrame, StoredFrame } from "../protocol.ts";
import { type Logger, silentLogger } from "../logger.ts";
import { LogThrottle } from "../log_throttle.ts";
import { nameKey } from "../names.ts";
import type { Delivery, Draft, Engine, EngineStatus, HistoryPage, HistoryQuery } from "./engine.ts";
import { isPrivateChannel } from "./engine.ts";
import { isLocked, lockPause } from "./kv_lock.ts";
import { KvPresence } from "./kv_presence.ts";

/** Options of {@linkcode KvEngine}. */
export interface KvEngineOptions {
  /**
   * Path of the KV file; its folder is created. Empty or undefined: the
   * platform default of `Deno.openKv()` (the database of a Deno Deploy app).
   */
  path?: string;
  /** Frames served from history per channel. Default 1000. */
  historyLimit?: number;
  /** Seconds a stored frame lives and is served from history; 0 for no limit. Default 0. */
  historyTtlS?: number;
  /** Seconds this process's presence entries live without a refresh. Default 30. */
  presenceTtlS?: number;
  /** Default: silent. */
  logger?: Logger;
}

/** A head key's value and versionstamp (null when the key does not exist). */
interface Head {
  id: number;
  versionstamp: string | null;
}

/** A publish waiting for its commit. */
interface Pending {
  channel: string;
  draft: Draft;
  bytes: number;
  resolve: (frame: StoredFrame) => void;
  reject: (error: unknown) => void;
}

/** The commit queue of one room, or of every private channel. */
interface Writer {
  queue: Pending[];
  running: boolean;
  /** The head after this writer's last commit; a stale one only costs a retry. */
  head: Head | undefined;
}

/** One entry of a followed stream: its position and the frame it carries. */
interface Entry {
  seq: number;
  channel: string;
  frame: StoredFrame;
}

/** A stream this process follows: a room, or the private log. */
interface Follow {
  key: string;
  /** The last entry handed on; -1 until the starting point is read. */
  cursor: number;
  /** Resolves once the starting point was read (or failed to be). */
  ready: Promise<void>;
  running: boolean;
  again: boolean;
}

const ROOT = "chat";
// "~" never starts a room or pair name, so the private log cannot collide.
const DM = "~dm";
// The frames are also the fan-out log, so keep a floor even with HISTORY_LIMIT=0.
const MIN_RETAINED = 100;
const DM_RETAINED = 1000;
// Deno KV limits: 10 keys per watch and getMany, 1000 mutations and about
// 800 KiB per atomic operation, 64 KiB per value.
const WATCH_KEYS = 10;
const MAX_BATCH = 64;
const MAX_BATCH_BYTES = 400_000;
const MAX_VALUE_BYTES = 65_536 - 1024;
const MAX_PAIRS = WATCH_KEYS - 1;
const MAX_ATTEMPTS = 100;
const REWATCH_MS = 10;
const RETRY_MS = 500;

type Key = Deno.KvKey;

function headKey(channel: string): Key {
  return [ROOT, channel, "head"];
}

function msgPrefix(channel: string): Key {
  return [ROOT, channel, "msg"];
}

function msgKey(channel: string, id: number): Key {
  return [ROOT, channel, "msg", id];
}

function headOf(entry: Deno.KvEntryMaybe<unknown>): Head {
  return {
    id: typeof entry.value === "number" ? entry.value : 0,
    versionstamp: entry.versionstamp,
  };
}

/** An upper bound of a value's size as V8 serializes it. */
function estimateBytes(value: unknown): number {
  const json = JSON.stringify(value);
  // V8 stores a string with a character beyond Latin-1 at two bytes a character.
  return /[\u0100-\uffff]/.test(json) ? json.length * 2 : json.length;
}

function dirname(path: string): string {
  const i = Math.max(path.lastIndexOf("/"), path.lastIndexOf("\\"));
  return i <= 0 ? (i === 0 ? "/" : ".") : path.slice(0, i);
}

/** Stores frames in Deno KV and fans them out with `kv.watch`. */
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
  #kv: Deno.Kv | undefined;
  #deliver: Delivery | undefined;
  #status: EngineStatus = "ok";
  #closed = false;

  #writers = new Map<string, Writer>();
  #follows = new Map<string, Follow>();
  /** Lower-cased users whose private frames this process wants. */
  #users = new Set<string>();
  #watches: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>[] = [];
  #rewatchTimer: ReturnType<typeof setTimeout> | undefined;
  #retryTimers = new Set<ReturnType<typeof setTimeout>>();
  /** Background work that dispose waits for. */
  #tasks = new Set<Promise<void>>();

  /** Creates an engine; the KV database opens in {@linkcode start}. */
  constructor(options: KvEngineOptions = {}) {
    this.#path = options.path ?? "";
    this.#limit = options.historyLimit ?? 1000;
    this.#ttlMs = (options.historyTtlS ?? 0) * 1000;
    this.#log = options.logger ?? silentLogger;
    if (!(this.#limit >= 0) || !(this.#ttlMs >= 0)) {
      throw new RangeError(`Invalid history options: ${this.#limit}, ${options.historyTtlS}`);
    }
    this.#retained = Math.max(this.#limit, MIN_RETAINED);
    this.presence = new KvPresence({
      ttlS: options.presenceTtlS,
      logger: this.#log,
      // Only Deno Deploy instances share a database across processes.
      processOnly: this.#path !== "",
    });
  }

  /** Opens the database (creating the folder of `path`) and sets the delivery function. */
  async start(deliver: Delivery): Promise<void> {
    if (this.#closed) throw new Error("Engine is closed");
    this.#deliver = deliver;
    if (this.#kv !== undefined) return;
    if (this.#path === "") {
      this.#kv = await Deno.openKv();
    } else {
      await Deno.mkdir(dirname(this.#path), { recursive: true });
      // Workers of `deno serve --parallel` open the file at once and may
      // find it locked while another one sets it up.
      for (let attempt = 0; this.#kv === undefined; attempt++) {
        try {
          this.#kv = await Deno.openKv(this.#path);
        } catch (error) {
          if (!isLocked(error) || attempt >= 50) throw error;
          await lockPause(attempt);
        }
      }
    }
    if (this.#closed) {
      this.#kv.close();
      throw new Error("Engine is closed");
    }
    this.presence.open(this.#kv);
    for (const follow of this.#follows.values()) this.#begin(follow);
    this.#scheduleRewatch();
  }

  /**
   * Commits the frame with the channel's next id; resolves after the commit,
   * once the frame was handed to the delivery function when this process
   * follows the channel. Rejects when the store fails; nothing was stored then.
   */
  publish(channel: string, draft: Draft): Promise<StoredFrame> {
    if (this.#closed) return Promise.reject(new Error("Engine is closed"));
    if (this.#kv === undefined) return Promise.reject(new Error("Engine is not started"));
    const bytes = estimateBytes(draft);
    if (bytes > MAX_VALUE_BYTES) {
      return Promise.reject(new RangeError(`Frame too large for Deno KV: ${bytes} bytes`));
    }
    const key = isPrivateChannel(channel) ? DM : channel;
    let writer = this.#writers.get(key);
    if (writer === undefined) {
      writer = { queue: [], running: false, head: undefined };
      this.#writers.set(key, writer);
    }
    const { promise, resolve, reject } = Promise.withResolvers<StoredFrame>();
    writer.queue.push({ channel, draft, bytes, resolve, reject });
    if (!writer.running) this.#track(this.#drain(key, writer));
    return promise;
  }

  /** Reads stored frames, oldest first; frames past the limit or the TTL are not served. */
  async history(channel: string, query: HistoryQuery): Promise<HistoryPage> {
    const kv = this.#open();
    // A frame committed before this read is then either handed on live or in the page.
    await this.#follows.get(channel)?.ready;
    const head = headOf(await kv.get(headKey(channel))).id;
    const floor = Math.max(0, head - this.#limit);
    const limit = Math.max(0, Math.floor(query.limit));
    const fresh = (f: StoredFrame) =>
      this.#ttlMs === 0 || Date.parse(f.timestamp) >= Date.now() - this.#ttlMs;
    if (query.after === undefined) {
      const end = Math.min(query.before ?? Infinity, head + 1);
      if (limit === 0 || end <= floor + 1) return { frames: [], complete: true };
      const frames: StoredFrame[] = [];
      const iter = kv.list<StoredFrame>({
        start: msgKey(channel, floor + 1),
        end: msgKey(channel, end),
      }, { reverse: true, limit });
      for await (const entry of iter) if (fresh(entry.value)) frames.push(entry.value);
      return { frames: frames.reverse(), complete: true };
    }
    const after = Math.max(0, Math.floor(query.after));
    // An `after` beyond the head comes from a previous life of the store.
    if (after > head) return { frames: [], complete: false };
    const frames: StoredFrame[] = [];
    const end = query.before ?? Infinity;
    if (limit > 0 && end > Math.max(after, floor) + 1) {
      const iter = kv.list<StoredFrame>({
        prefix: msgPrefix(channel),
        start: msgKey(channel, Math.max(after, floor) + 1),
      }, { limit });
      for await (const entry of iter) {
        if (entry.value.id >= end) break;
        if (fresh(entry.value)) frames.push(entry.value);
      }
    }
    const first = frames[0]?.id ?? head + 1;
    const complete = after >= floor && (first === after + 1 || after === head);
    return { frames, complete };
  }

  /**
   * Follows a room, or for a user channel (`~name`) the private log. Pair
   * channels are not followed themselves: their frames reach the
   * subscribers of the user channels of both users.
   */
  subscribe(channel: string): void {
    if (this.#closed || isPrivateChannel(channel)) return;
    if (channel.startsWith("~")) {
      this.#users.add(channel.slice(1));
      if (!this.#follows.has(DM)) this.#follow(DM);
    } else if (!this.#follows.has(channel)) {
      this.#follow(channel);
    }
  }

  /** Stops following a room, or stops delivering a user's private frames. */
  unsubscribe(channel: string): void {
    if (this.#closed || isPrivateChannel(channel)) return;
    if (channel.startsWith("~")) {
      this.#users.delete(channel.slice(1));
      if (this.#users.size > 0 || !this.#follows.delete(DM)) return;
    } else if (!this.#follows.delete(channel)) {
      return;
    }
    this.#scheduleRewatch();
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
    clearTimeout(this.#rewatchTimer);
    this.#rewatchTimer = undefined;
    for (const timer of this.#retryTimers) clearTimeout(timer);
    this.#retryTimers.clear();
    this.#stopWatches();
    for (const writer of this.#writers.values()) {
      for (const p of writer.queue.splice(0)) p.reject(new Error("Engine is closed"));
    }
    while (this.#tasks.size > 0) await Promise.allSettled([...this.#tasks]);
    await this.presence[Symbol.asyncDispose]();
    this.#follows.clear();
    this.#users.clear();
    this.#writers.clear();
    this.#deliver = undefined;
    this.#kv?.close();
    this.#kv = undefined;
  }

  // -------------------------------------------------------------------------
  // Publishing

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
        const batch = this.#take(writer.queue, key === DM);
        await this.#countUsers(batch);
        // Committing after the follow's starting point keeps the frame from
        // being counted as already handed on.
        await this.#follows.get(key)?.ready;
        let entries: Entry[];
        try {
          entries = key === DM
            ? await this.#commitPrivate(batch)
            : await this.#commitRoom(key, writer, batch);
        } catch (error) {
          writer.head = undefined;
          this.#failed("publish_failed", error);
          for (const p of batch) p.reject(error);
          continue;
        }
        this.#status = "ok";
        this.#offer(this.#follows.get(key), entries);
        entries.forEach((entry, i) => batch[i]!.resolve(entry.frame));
      }
    } finally {
      writer.running = false;
    }
    if (this.#writers.size > 1000 && writer.queue.length === 0) this.#writers.delete(key);
  }

  /**
   * Counts the users of every process in system frames, as presence
   * promises; a failed read keeps the local count.
   */
  async #countUsers(batch: Pending[]): Promise<void> {
    const counts = new Map<string, number | undefined>();
    for (const p of batch) {
      const draft = p.draft;
      if (draft.type !== "system") continue;
      if (!counts.has(draft.room)) {
        const users = await this.presence.users(draft.room).catch(() => undefined);
        counts.set(draft.room, users?.length);
      }
      const count = counts.get(draft.room);
      if (count !== undefined && count > draft.connected_count) {
        p.draft = { ...draft, connected_count: count };
      }
    }
  }

  /** Takes the next batch: bounded in count, bytes and (for private frames) pairs. */
  #take(queue: Pending[], private_: boolean): Pending[] {
    const pairs = new Set<string>();
    let bytes = 0;
    let n = 0;
    for (const p of queue) {
      if (n === MAX_BATCH || (n > 0 && bytes + p.bytes > MAX_BATCH_BYTES)) break;
      if (private_ && !pairs.has(p.channel)) {
        if (pairs.size === MAX_PAIRS) break;
        pairs.add(p.channel);
      }
      bytes += p.bytes;
      n++;
    }
    return queue.splice(0, n);
  }

  async #commitRoom(channel: string, writer: Writer, batch: Pending[]): Promise<Entry[]> {
    const kv = this.#open();
    const key = headKey(channel);
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const head = writer.head ?? headOf(await kv.get(key));
      const last = head.id + batch.length;
      const op = kv.atomic().check({ key, versionstamp: head.versionstamp }).set(key, last);
      const entries = batch.map((p, i): Entry => {
        const frame = { ...p.draft, id: head.id + 1 + i } as StoredFrame;
        this.#store(op, channel, frame, this.#retained);
        return { seq: frame.id, channel, frame };
      });
      const result = await this.#commit(op, attempt);
      if (result?.ok) {
        writer.head = { id: last, versionstamp: result.versionstamp };
        return entries;
      }
      writer.head = undefined;
    }
    throw new Error(`Too many write conflicts on channel: ${channel}`);
  }

  /** Commits private frames to their pair channels and to the private log. */
  async #commitPrivate(batch: Pending[]): Promise<Entry[]> {
    const kv = this.#open();
    const pairs = [...new Set(batch.map((p) => p.channel))];
    const keys = [headKey(DM), ...pairs.map(headKey)];
    for (let attempt = 0; attempt < MAX_ATTEMPTS; attempt++) {
      const heads = (await kv.getMany(keys)).map(headOf);
      const op = kv.atomic();
      keys.forEach((key, i) => op.check({ key, versionstamp: heads[i]!.versionstamp }));
      const next = new Map(pairs.map((pair, i) => [pair, heads[i + 1]!.id]));
      let seq = heads[0]!.id;
      const entries = batch.map((p): Entry => {
        const id = next.get(p.channel)! + 1;
        next.set(p.channel, id);
        const frame = { ...p.draft, id } as StoredFrame;
        this.#store(op, p.channel, frame, this.#retained);
        seq++;
        op.set(msgKey(DM, seq), { channel: p.channel, frame });
        if (seq > DM_RETAINED) op.delete(msgKey(DM, seq - DM_RETAINED));
        return { seq, channel: p.channel, frame };
      });
      op.set(keys[0]!, seq);
      pairs.forEach((pair, i) => op.set(keys[i + 1]!, next.get(pair)!));
      const result = await this.#commit(op, attempt);
      if (result?.ok) return entries;
    }
    throw new Error(`Too many write conflicts on channel: ${DM}`);
  }

  /**
   * Commits; null when another handle held the SQLite write lock, after a
   * short pause (Deno KV does not wait for the lock itself).
   */
  async #commit(
    op: Deno.AtomicOperation,
    attempt: number,
  ): Promise<Deno.KvCommitResult | Deno.KvCommitError | null> {
    try {
      return await op.commit();
    } catch (error) {
      if (!isLocked(error)) throw error;
      await lockPause(attempt);
      return null;
    }
  }

  #store(op: Deno.AtomicOperation, channel: string, frame: StoredFrame, retained: number): void {
    op.set(msgKey(channel, frame.id), frame, this.#ttlMs > 0 ? { expireIn: this.#ttlMs } : {});
    if (frame.id > retained) op.delete(msgKey(channel, frame.id - retained));
  }

  /** Failures repeat for every batch while the store is down: one line per interval. */
  #failures: LogThrottle | undefined;

  #failed(event: string, error: unknown): void {
    if (this.#closed) return;
    this.#status = "degraded";
    this.#failures ??= new LogThrottle({ logger: this.#log });
    this.#failures.warn(event, { engine: "kv", error: String(error) });
  }

  // -------------------------------------------------------------------------
  // Fan-out

  #follow(key: string): void {
    const follow: Follow = {
      key,
      cursor: -1,
      ready: Promise.resolve(),
      running: false,
      again: false,
    };
    this.#follows.set(key, follow);
    if (this.#kv !== undefined) {
      this.#begin(follow);
      this.#scheduleRewatch();
    }
  }

  /** Reads the starting point of a follow: frames after the current head. */
  #begin(follow: Follow): void {
    const kv = this.#open();
    follow.ready = kv.get(headKey(follow.key)).then(
      (entry) => {
        if (follow.cursor < 0) follow.cursor = headOf(entry).id;
      },
      (error) => this.#failed("follow_failed", error),
    );
    this.#track(follow.ready);
  }

  /** Hands on fresh local entries when they directly follow the cursor; otherwise reads. */
  #offer(follow: Follow | undefined, entries: Entry[]): void {
    if (follow === undefined || this.#follows.get(follow.key) !== follow) return;
    for (const entry of entries) {
      if (follow.cursor >= 0 && entry.seq <= follow.cursor) continue;
      if (follow.cursor < 0 || entry.seq !== follow.cursor + 1) return this.#pull(follow);
      follow.cursor = entry.seq;
      this.#emit(follow, entry);
    }
  }

  #emit(follow: Follow, entry: Entry): void {
    if (follow.key === DM) {
      const p = entry.frame as PrivateFrame;
      const wanted = this.#users.has(nameKey(p.to)) ||
        this.#users.has(nameKey(p.username));
      if (!wanted) return;
    }
    try {
      this.#deliver?.(entry.channel, entry.frame);
    } catch (error) {
      this.#failures ??= new LogThrottle({ logger: this.#log });
      this.#failures.error("deliver_failed", { channel: entry.channel, error: String(error) });
    }
  }

  /** Reads and hands on every entry after the cursor; runs once per follow at a time. */
  #pull(follow: Follow): void {
    if (follow.running) {
      follow.again = true;
      return;
    }
    follow.running = true;
    this.#track(
      this.#read(follow).finally(() => {
        follow.running = false;
      }),
    );
  }

  async #read(follow: Follow): Promise<void> {
    try {
      await follow.ready;
      do {
        follow.again = false;
        if (this.#closed || this.#follows.get(follow.key) !== follow) return;
        const kv = this.#open();
        if (follow.cursor < 0) {
          // The starting point could not be read before: read it now.
          const head = headOf(await kv.get(headKey(follow.key))).id;
          if (follow.cursor < 0) follow.cursor = head;
        }
        const iter = kv.list({
          prefix: msgPrefix(follow.key),
          start: msgKey(follow.key, follow.cursor + 1),
        }, { batchSize: 500 });
        for await (const item of iter) {
          if (this.#closed || this.#follows.get(follow.key) !== follow) return;
          const seq = item.key[3] as number;
          if (seq <= follow.cursor) continue;
          follow.cursor = seq;
          this.#emit(follow, this.#entry(follow.key, seq, item.value));
        }
      } while (follow.again);
      this.#status = "ok";
    } catch (error) {
      if (this.#closed) return;
      this.#failed("catch_up_failed", error);
      this.#retry(() => this.#pull(follow));
    }
  }

  #entry(key: string, seq: number, value: unknown): Entry {
    if (key === DM) {
      const { channel, frame } = value as { channel: string; frame: StoredFrame };
      return { seq, channel, frame };
    }
    return { seq, channel: key, frame: value as StoredFrame };
  }

  #retry(fn: () => void): void {
    if (this.#closed) return;
    const timer = setTimeout(() => {
      this.#retryTimers.delete(timer);
      fn();
    }, RETRY_MS);
    this.#retryTimers.add(timer);
  }

  /** Rebuilds the watches a moment later, so a burst of subscriptions costs one rebuild. */
  #scheduleRewatch(): void {
    if (this.#closed || this.#kv === undefined || this.#rewatchTimer !== undefined) return;
    this.#rewatchTimer = setTimeout(() => {
      this.#rewatchTimer = undefined;
      this.#rewatch();
    }, REWATCH_MS);
  }

  #stopWatches(): void {
    for (const reader of this.#watches) reader.cancel().catch(() => undefined);
    this.#watches = [];
  }

  #rewatch(): void {
    if (this.#closed) return;
    this.#stopWatches();
    const kv = this.#open();
    const follows = [...this.#follows.values()];
    for (let i = 0; i < follows.length; i += WATCH_KEYS) {
      const chunk = follows.slice(i, i + WATCH_KEYS);
      const reader = kv.watch(chunk.map((f) => headKey(f.key))).getReader();
      this.#watches.push(reader);
      this.#track(this.#watch(reader, chunk));
    }
  }

  async #watch(
    reader: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>,
    chunk: Follow[],
  ): Promise<void> {
    try {
      while (true) {
        const { done, value } = await reader.read();
        if (done) return;
        value.forEach((entry, i) => {
          const follow = chunk[i]!;
          if (this.#follows.get(follow.key) !== follow) return;
          // The first value is the head now, covering what changed before the watch began.
          if (headOf(entry).id > follow.cursor) this.#pull(follow);
        });
      }
    } catch (error) {
      if (this.#closed || !this.#watches.includes(reader)) return;
      this.#failed("watch_failed", error);
      this.#retry(() => this.#scheduleRewatch());
    }
  }
}
