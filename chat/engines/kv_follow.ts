/**
 * The fan-out half of the kv engine: following streams in Deno KV.
 *
 * A stream is a head key holding the last sequence number and one key per
 * entry. `kv.watch` on the head keys (ten keys per watch) only says "look",
 * since a watch collapses intermediate values; a range read from the last
 * entry handed on follows. A local commit that directly follows the cursor
 * is handed on at once without a read. One cursor per stream keeps every
 * entry exactly once and in order.
 *
 * @module
 */

import type { Scheduler, TimerHandle } from "../clock.ts";

/** The root of every key of the kv engine. */
export const ROOT = "chat";
/**
 * The stream of ephemeral publications of every channel. A NUL can be in no
 * room or user name, so no channel (a user channel is "~" + a name) is this.
 */
export const EPHEMERAL = "\u0000ev";

/** The head key of a stream. */
export function headKey(stream: string): Deno.KvKey {
  return [ROOT, stream, "head"];
}

/** The prefix of a stream's entries. */
export function msgPrefix(stream: string): Deno.KvKey {
  return [ROOT, stream, "msg"];
}

/** The key of one entry. */
export function msgKey(stream: string, seq: number): Deno.KvKey {
  return [ROOT, stream, "msg", seq];
}

/** A head key's value and versionstamp (null when the key does not exist). */
export interface Head {
  /** The last sequence number; 0 for none. */
  id: number;
  /** When a channel was last published to (see kv_budget.ts); -1 when not recorded. */
  t: number;
  /** Bytes of a channel's publications in the store's total (see kv_budget.ts). */
  b: number;
  /** Null when the key does not exist. */
  versionstamp: string | null;
}

/**
 * Reads a head entry: a channel's holds `{ id, t, b }`; the ephemeral
 * stream's, and a channel's of an older version, only the number.
 */
export function headOf(entry: Deno.KvEntryMaybe<unknown>): Head {
  const value = entry.value as { id?: unknown; t?: unknown; b?: unknown } | number | null;
  if (typeof value === "number") {
    return { id: value, t: -1, b: 0, versionstamp: entry.versionstamp };
  }
  const number = (x: unknown, or: number) => typeof x === "number" ? x : or;
  return {
    id: number(value?.id, 0),
    t: number(value?.t, -1),
    b: number(value?.b, 0),
    versionstamp: entry.versionstamp,
  };
}

/** A stored entry of a channel stream: the payload and when it was stored. */
export interface Stored {
  /** The payload. */
  p: string;
  /** When it was stored, in ms on the engine's clock. */
  t: number;
}

/** An entry of the ephemeral stream: the channel and the payload. */
interface Passing {
  c: string;
  p: string;
}

/** One entry of a followed stream, as handed on. */
export interface Entry {
  /** Its place in the followed stream. */
  seq: number;
  /** The engine channel it was published to. */
  channel: string;
  /** As published. */
  payload: string;
  /** The offset of a stored publication; undefined for an ephemeral one. */
  offset?: number;
}

/** Decodes an entry; undefined for a value of another layout (an older version's frame). */
function decodeEntry(stream: string, seq: number, value: unknown): Entry | undefined {
  if (stream === EPHEMERAL) {
    const v = value as Passing;
    return typeof v?.c === "string" && typeof v.p === "string"
      ? { seq, channel: v.c, payload: v.p }
      : undefined;
  }
  const v = value as Stored;
  return typeof v?.p === "string" ? { seq, channel: stream, payload: v.p, offset: seq } : undefined;
}

interface Follow {
  key: string;
  /** The last entry handed on; -1 until the starting point is read. */
  cursor: number;
  /** Resolves once the starting point was read (or failed to be). */
  ready: Promise<void>;
  running: boolean;
  again: boolean;
}

/** Options of {@linkcode KvFollower}. */
export interface KvFollowerOptions {
  /** Runs the rewatch and retry timers. */
  scheduler: Scheduler;
  /** Receives every entry of every followed stream, exactly once, in order. */
  emit: (entry: Entry) => void;
  /** Told about a failed read or watch. */
  failed: (event: string, error: unknown) => void;
  /** Told after a read succeeded. */
  recovered: () => void;
  /** Background work that the engine's dispose waits for. */
  track: (task: Promise<void>) => void;
}

const WATCH_KEYS = 10;
const REWATCH_MS = 10;
const RETRY_MS = 500;

/** Follows streams in Deno KV and hands their entries on. */
export class KvFollower {
  #options: KvFollowerOptions;
  #kv: Deno.Kv | undefined;
  #follows = new Map<string, Follow>();
  #watches: ReadableStreamDefaultReader<Deno.KvEntryMaybe<unknown>[]>[] = [];
  #rewatchTimer: TimerHandle | undefined;
  #retryTimers = new Set<TimerHandle>();
  #closed = false;

  /** Creates a follower; it reads once {@linkcode KvFollower.open} gives the database. */
  constructor(options: KvFollowerOptions) {
    this.#options = options;
  }

  /** Starts following with the database. */
  open(kv: Deno.Kv): void {
    this.#kv = kv;
    for (const follow of this.#follows.values()) this.#begin(follow);
    this.#scheduleRewatch();
  }

  /** Resolves once the starting point of a followed stream was read. */
  ready(key: string): Promise<void> | undefined {
    return this.#follows.get(key)?.ready;
  }

  /** Follows a stream from its current head. */
  follow(key: string): void {
    if (this.#closed || this.#follows.has(key)) return;
    const follow = { key, cursor: -1, ready: Promise.resolve(), running: false, again: false };
    this.#follows.set(key, follow);
    if (this.#kv !== undefined) {
      this.#begin(follow);
      this.#scheduleRewatch();
    }
  }

  /** Stops following a stream. */
  unfollow(key: string): void {
    if (this.#follows.delete(key)) this.#scheduleRewatch();
  }

  /**
   * Hands on fresh local entries when they directly follow the cursor;
   * otherwise reads. `created`: the commit created the stream's head (the
   * channel was deleted, its offsets start again), so nothing before them exists.
   */
  offer(key: string, entries: Entry[], created = false): void {
    const follow = this.#follows.get(key);
    if (follow === undefined) return;
    if (created && follow.cursor > 0) follow.cursor = 0;
    for (const entry of entries) {
      if (follow.cursor >= 0 && entry.seq <= follow.cursor) continue;
      if (follow.cursor < 0 || entry.seq !== follow.cursor + 1) return this.#pull(follow);
      follow.cursor = entry.seq;
      this.#options.emit(entry);
    }
  }

  /** Stops every watch and timer. */
  close(): void {
    this.#closed = true;
    const scheduler = this.#options.scheduler;
    if (this.#rewatchTimer !== undefined) scheduler.clearTimeout(this.#rewatchTimer);
    this.#rewatchTimer = undefined;
    for (const timer of this.#retryTimers) scheduler.clearTimeout(timer);
    this.#retryTimers.clear();
    this.#stopWatches();
    this.#follows.clear();
  }

  #begin(follow: Follow): void {
    follow.ready = this.#kv!.get(headKey(follow.key)).then(
      (entry) => {
        if (follow.cursor < 0) follow.cursor = headOf(entry).id;
      },
      (error) => this.#options.failed("follow_failed", error),
    );
    this.#options.track(follow.ready);
  }

  #current(follow: Follow): boolean {
    return !this.#closed && this.#follows.get(follow.key) === follow;
  }

  /** Reads and hands on every entry after the cursor; runs once per follow at a time. */
  #pull(follow: Follow): void {
    if (follow.running) {
      follow.again = true;
      return;
    }
    follow.running = true;
    this.#options.track(this.#read(follow));
  }

  async #read(follow: Follow): Promise<void> {
    try {
      await follow.ready;
      do {
        follow.again = false;
        if (!this.#current(follow)) return;
        const kv = this.#kv!;
        // The starting point could not be read before: read it now.
        if (follow.cursor < 0) follow.cursor = headOf(await kv.get(headKey(follow.key))).id;
        const iter = kv.list({
          prefix: msgPrefix(follow.key),
          start: msgKey(follow.key, follow.cursor + 1),
        }, { batchSize: 500 });
        for await (const item of iter) {
          if (!this.#current(follow)) return;
          const seq = item.key[3] as number;
          if (seq <= follow.cursor) continue;
          follow.cursor = seq;
          const entry = decodeEntry(follow.key, seq, item.value);
          if (entry !== undefined) this.#options.emit(entry);
        }
      } while (follow.again);
      this.#options.recovered();
    } catch (error) {
      if (this.#closed) return;
      this.#options.failed("catch_up_failed", error);
      this.#retry(() => this.#pull(follow));
    } finally {
      // In the same turn as the last look at `again`: a `#pull` after it
      // starts a new read instead of setting a flag nobody reads.
      follow.running = false;
    }
  }

  #retry(fn: () => void): void {
    if (this.#closed) return;
    const timer = this.#options.scheduler.setTimeout(() => {
      this.#retryTimers.delete(timer);
      fn();
    }, RETRY_MS);
    this.#retryTimers.add(timer);
  }

  /** Rebuilds the watches a moment later, so a burst of subscriptions costs one rebuild. */
  #scheduleRewatch(): void {
    if (this.#closed || this.#kv === undefined || this.#rewatchTimer !== undefined) return;
    this.#rewatchTimer = this.#options.scheduler.setTimeout(() => {
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
    const follows = [...this.#follows.values()];
    for (let i = 0; i < follows.length; i += WATCH_KEYS) {
      const chunk = follows.slice(i, i + WATCH_KEYS);
      const reader = this.#kv!.watch(chunk.map((f) => headKey(f.key))).getReader();
      this.#watches.push(reader);
      this.#options.track(this.#watch(reader, chunk));
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
          // A deleted channel (idle past its TTL, or evicted): its offsets start again.
          if (entry.versionstamp === null && follow.cursor > 0) follow.cursor = 0;
          // The first value is the head now, covering what changed before the watch began.
          if (this.#current(follow) && headOf(entry).id > follow.cursor) this.#pull(follow);
        });
      }
    } catch (error) {
      if (this.#closed || !this.#watches.includes(reader)) return;
      this.#options.failed("watch_failed", error);
      this.#retry(() => this.#scheduleRewatch());
    }
  }
}
