/**
 * Who is online across every worker and instance sharing one Deno KV
 * database: the presence part of the kv engine.
 *
 * Each engine (one per worker or instance) writes its own entries,
 * `["chat_presence", "r", room, user, instance]` and
 * `["chat_presence", "u", user, instance]`, stamped with an expiry it
 * refreshes; readers skip entries past their expiry, so the users of a
 * crashed process vanish within the TTL even though Deno KV deletes expired
 * keys only eventually.
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
import { LogThrottle } from "../log_throttle.ts";
import type { Logger } from "../logger.ts";
import { nameKey } from "../names.ts";
import type { Holder, Presence } from "./engine.ts";
import { isLocked, lockPause } from "./kv_lock.ts";

/** Options of {@linkcode KvPresence}. */
export interface KvPresenceOptions {
  /** Seconds an entry lives without a refresh. */
  ttlS: number;
  /** Told about failed writes and reads. */
  logger: Logger;
  /**
   * Count only the entries of this OS process. Right for a local file:
   * other processes cannot share live rooms through it anyway, and the
   * entries of a crashed previous run then hold no names. Default false.
   */
  processOnly?: boolean;
  /** Stamps and checks expiries. Default: the system clock. */
  clock?: Clock;
  /** Runs the refresh. Default: the global timers. */
  scheduler?: Scheduler;
}

interface Stamp {
  name: string;
  /** The holder's verified user id; absent in entries of older versions. */
  userId?: string | null;
  expires: number;
}

type Change = { key: Deno.KvKey; name: string | null; userId: string | null };

const ROOT = "chat_presence";
// Deno KV allows 1000 mutations per atomic operation.
const MAX_MUTATIONS = 500;
const MAX_READ = 10_000;

/** This process's presence entries in Deno KV, and reads of everyone's. */
export class KvPresence implements Presence, AsyncDisposable {
  #kv: Deno.Kv | undefined;
  #ttlMs: number;
  #log: Logger;
  /** Created on the first failed write. */
  #failures: LogThrottle | undefined;
  /** Entries of instances outside this scope are ignored; empty: none are. */
  readonly #scope: string;
  readonly #instance: string;
  /** This process's members: key parts after the root -> display name and user id. */
  #members = new Map<string, { key: Deno.KvKey; name: string; userId: string | null }>();
  #queue: Change[] = [];
  #flushing: Promise<void> | undefined;
  #timer: TimerHandle | undefined;
  #clock: Clock;
  #scheduler: Scheduler;
  #closed = false;

  /** Records changes at once; writes them once {@linkcode open} gives the database. */
  constructor(options: KvPresenceOptions) {
    this.#ttlMs = options.ttlS * 1000;
    if (!(this.#ttlMs > 0)) throw new RangeError(`Invalid presence TTL: ${options.ttlS}`);
    this.#log = options.logger;
    this.#clock = options.clock ?? systemClock;
    this.#scheduler = options.scheduler ?? systemScheduler;
    this.#scope = options.processOnly ? `pid ${Deno.pid}/` : "";
    this.#instance = this.#scope + crypto.randomUUID();
  }

  /** Starts writing to the database and refreshing every third of the TTL. */
  open(kv: Deno.Kv): void {
    if (this.#closed || this.#kv !== undefined) return;
    this.#kv = kv;
    const every = Math.max(100, this.#ttlMs / 3);
    this.#timer = this.#scheduler.setInterval(() => this.#refresh(), every);
    this.#flush();
  }

  /** Records that a user of this process entered a room. */
  join(room: string, username: string): void {
    this.#record([ROOT, "r", room, nameKey(username), this.#instance], username);
  }

  /** Records that a user of this process left a room. */
  leave(room: string, username: string): void {
    this.#record([ROOT, "r", room, nameKey(username), this.#instance], null);
  }

  /** Records that a user connected to this process, with its verified user id if any. */
  connect(username: string, userId: string | null = null): void {
    this.#record([ROOT, "u", nameKey(username), this.#instance], username, userId);
  }

  /** Records that the last connection of a user to this process closed. */
  disconnect(username: string): void {
    this.#record([ROOT, "u", nameKey(username), this.#instance], null);
  }

  /** Users in a room on every process, each once, after this process's own changes. */
  async users(room: string): Promise<string[]> {
    const kv = this.#open();
    await this.#settled();
    const names = new Map<string, string>();
    const now = this.#clock.now();
    const entries = kv.list<Stamp>({ prefix: [ROOT, "r", room] }, { limit: MAX_READ });
    for await (const entry of entries) {
      const user = entry.key[3] as string;
      if (!this.#counts(entry, 4, now) || names.has(user)) continue;
      names.set(user, entry.value.name);
    }
    return [...names.values()];
  }

  /** The holder of a name online on any process, matched by its nameKey. */
  async lookup(username: string): Promise<Holder | undefined> {
    const kv = this.#open();
    await this.#settled();
    const now = this.#clock.now();
    const prefix = [ROOT, "u", nameKey(username)];
    for await (const entry of kv.list<Stamp>({ prefix }, { limit: 100 })) {
      const { name, userId } = entry.value;
      if (this.#counts(entry, 3, now)) return { username: name, userId: userId ?? null };
    }
    return undefined;
  }

  /** Stops refreshing and removes this process's entries. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#timer !== undefined) this.#scheduler.clearInterval(this.#timer);
    await this.#settled();
    const kv = this.#kv;
    const keys = [...this.#members.values()].map((m) => m.key);
    this.#members.clear();
    this.#queue = [];
    if (kv === undefined) return;
    for (let i = 0; i < keys.length; i += MAX_MUTATIONS) {
      const batch = keys.slice(i, i + MAX_MUTATIONS);
      for (let attempt = 0; attempt < 20; attempt++) {
        const op = kv.atomic();
        for (const key of batch) op.delete(key);
        try {
          await op.commit();
          break;
        } catch (error) {
          // Left over, the entries expire with the TTL.
          if (!isLocked(error)) break;
          await lockPause(attempt);
        }
      }
    }
  }

  /** Whether an entry is live and in scope; `at` is the index of its instance in the key. */
  #counts(entry: Deno.KvEntry<Stamp>, at: number, now: number): boolean {
    const instance = entry.key[at];
    return entry.value.expires > now && typeof instance === "string" &&
      instance.startsWith(this.#scope);
  }

  #open(): Deno.Kv {
    if (this.#kv === undefined || this.#closed) throw new Error("Presence is not open");
    return this.#kv;
  }

  #record(key: Deno.KvKey, name: string | null, userId: string | null = null): void {
    if (this.#closed) return;
    const id = JSON.stringify(key);
    if (name === null) this.#members.delete(id);
    else this.#members.set(id, { key, name, userId });
    this.#queue.push({ key, name, userId });
    this.#flush();
  }

  /** Re-stamps every member, which also restores them after failed writes. */
  #refresh(): void {
    if (this.#closed) return;
    for (const member of this.#members.values()) this.#queue.push({ ...member });
    this.#flush();
  }

  /** Resolves once every change recorded so far was written (or failed). */
  async #settled(): Promise<void> {
    while (this.#flushing !== undefined) await this.#flushing;
  }

  #flush(): void {
    const kv = this.#kv;
    if (this.#flushing !== undefined || kv === undefined || this.#queue.length === 0) return;
    // Cleared in a later microtask, so never before the assignment below. A
    // change recorded between the write's last look at the queue and then
    // found a flush running: flush again rather than wait for the refresh.
    const flushing: Promise<void> = this.#write(kv).finally(() => {
      if (this.#flushing !== flushing) return;
      this.#flushing = undefined;
      this.#flush();
    });
    this.#flushing = flushing;
  }

  async #write(kv: Deno.Kv): Promise<void> {
    let attempt = 0;
    // Runs to the end even when closing: a leave not written would hold the name until the TTL.
    while (this.#queue.length > 0) {
      const changes = this.#queue.splice(0, MAX_MUTATIONS);
      const expires = this.#clock.now() + this.#ttlMs;
      const op = kv.atomic();
      for (const { key, name, userId } of changes) {
        if (name === null) op.delete(key);
        // Deno KV removes the key eventually; readers go by the stamp.
        else op.set(key, { name, userId, expires } satisfies Stamp, { expireIn: this.#ttlMs * 2 });
      }
      try {
        await op.commit();
        attempt = 0;
      } catch (error) {
        if (isLocked(error) && attempt < 50) {
          // Written again first, so the changes keep their order.
          this.#queue.unshift(...changes);
          await lockPause(attempt++);
          continue;
        }
        // The next refresh writes every member again.
        // Every refresh fails while the store is down: one line per interval.
        this.#failures ??= new LogThrottle({ logger: this.#log, clock: this.#clock });
        this.#failures.warn("presence_failed", { engine: "kv", error: String(error) });
      }
    }
  }
}
