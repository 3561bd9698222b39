/**
 * A room's users on every process, read once for the welcomes of a burst
 * of joins: a reconnect storm brings a room's members back within a second
 * or two, and each welcome read the list from the store again (on kv, a
 * read of every member's key per join).
 *
 * @module
 */

import type { Clock } from "./clock.ts";
import type { Presence } from "./engines/engine.ts";

/**
 * How long a room's list is reused at most, in ms: a join on another process
 * within it is missing from a welcome's list (its notice, live, still comes to
 * those already in the room). A notice that reaches this process ends it
 * sooner ({@linkcode PresenceCache.forget}).
 */
export const PRESENCE_CACHE_MS = 500;

/** Rooms remembered at most; more start the memory afresh. */
const MAX_ROOMS = 10_000;

/** One room's list: when it was asked for, the answer, and the size of the last answer. */
interface Entry {
  at: number;
  users: Promise<string[] | undefined>;
  count: number | undefined;
}

/** The lists of users of rooms on every process, each reused for {@linkcode PRESENCE_CACHE_MS}. */
export class PresenceCache {
  #presence: Presence;
  #clock: Clock;
  #ttlMs: number;
  #rooms = new Map<string, Entry>();

  /** A cache over an engine's presence, timed by `clock`. */
  constructor(options: { presence: Presence; clock: Clock; ttlMs?: number }) {
    this.#presence = options.presence;
    this.#clock = options.clock;
    this.#ttlMs = options.ttlMs ?? PRESENCE_CACHE_MS;
  }

  /** The room's users on every process; undefined when the store could not say. */
  users(room: string): Promise<string[] | undefined> {
    const now = this.#clock.now();
    const kept = this.#rooms.get(room);
    if (kept !== undefined && now - kept.at < this.#ttlMs) return kept.users;
    if (this.#rooms.size >= MAX_ROOMS) this.#rooms.clear();
    const users = this.#presence.users(room).catch(() => undefined);
    const entry: Entry = { at: now, users, count: kept?.count };
    this.#rooms.set(room, entry);
    users.then((list) => {
      if (list !== undefined) entry.count = list.length;
    });
    return users;
  }

  /**
   * Someone joined, left or was renamed in the room (its notice reached this
   * process): the next to ask reads the list afresh. The last count stays.
   */
  forget(room: string): void {
    const kept = this.#rooms.get(room);
    if (kept !== undefined) kept.at = -Infinity;
  }

  /** How many users the room had on every process when last read, however long ago. */
  count(room: string): number | undefined {
    return this.#rooms.get(room)?.count;
  }
}
