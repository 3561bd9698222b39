/**
 * A room's recent history as a first visit's `welcome` or `joined` carries
 * it: read from the engine and stamped with its ids once, then the same
 * frames for every joiner until the room's next stored publication reaches
 * this process. A burst of joins into one room (a busy lobby, a reconnect
 * storm without `since`) reads the store once instead of once each.
 *
 * A tail is only reused while this process stays subscribed to its room
 * (the room keeps a local member): only then does every later publication
 * reach it and end the tail.
 *
 * @module
 */

import { utf8Length } from "./bytes.ts";
import type { Clock } from "./clock.ts";
import type { Engine } from "./engines/engine.ts";
import { stampId } from "./publisher.ts";

/**
 * How long a room's tail is reused at most, in ms, even with no new
 * publication: history also leaves by age (`HISTORY_TTL_S`).
 */
export const TAIL_CACHE_MS = 1000;

/**
 * UTF-8 bytes of tails kept at most, all rooms together: a room's tail can
 * be 50 large messages, and on kv and redis nothing else here holds them.
 * A tail that does not fit is read for each joiner, as without the cache.
 */
export const TAIL_CACHE_MAX_BYTES = 4 * 1024 * 1024;

/** Rooms remembered at most, their tails empty or not. */
const MAX_ROOMS = 10_000;

/** One stored frame stamped with its id, and its UTF-8 length. */
export interface Stamped {
  /** The publication's offset, its `id` in the frame. */
  readonly id: number;
  /** The frame's JSON, `id` included. */
  readonly text: string;
  /** The text's UTF-8 length. */
  readonly bytes: number;
}

/** One room's tail and what it is valid for. */
interface Entry {
  at: number;
  /** The engine's epoch it was read in. */
  epoch: string;
  /** The room's local members when it was read: a new set means the room was left empty meanwhile. */
  members: object;
  tail: Promise<readonly Stamped[]>;
  /** The tail's bytes once read and kept; 0 before. */
  bytes: number;
}

/** Options of {@linkcode TailCache}. */
export interface TailCacheOptions {
  /** Where the history is read. */
  engine: Engine;
  /** Times {@linkcode TAIL_CACHE_MS}. */
  clock: Clock;
  /** Publications in a tail (`HISTORY_ON_JOIN`). */
  limit: number;
  /** See {@linkcode TAIL_CACHE_MS}. */
  ttlMs?: number;
  /** See {@linkcode TAIL_CACHE_MAX_BYTES}. */
  maxBytes?: number;
}

/** The rooms' recent tails, stamped once and shared by their joiners. */
export class TailCache {
  #o: Required<TailCacheOptions>;
  #rooms = new Map<string, Entry>();
  /** The kept tails' bytes. */
  #bytes = 0;

  /** An empty cache over an engine's history. */
  constructor(options: TailCacheOptions) {
    this.#o = { ttlMs: TAIL_CACHE_MS, maxBytes: TAIL_CACHE_MAX_BYTES, ...options };
  }

  /**
   * The room's newest `limit` publications, oldest first, stamped. `members`
   * is the room's set of local members (the joiner among them); without one
   * nothing is kept. Rejects when the store fails, and the failure is not kept.
   */
  tail(room: string, members: object | undefined): Promise<readonly Stamped[]> {
    const now = this.#o.clock.now();
    const epoch = this.#o.engine.epoch;
    const kept = this.#rooms.get(room);
    if (
      kept !== undefined && kept.members === members && kept.epoch === epoch &&
      now - kept.at < this.#o.ttlMs
    ) {
      return kept.tail;
    }
    const tail = this.#o.engine.history(room, { limit: this.#o.limit })
      .then((page) => page.publications.map(({ offset, payload }) => stamped(offset, payload)));
    if (members === undefined) return tail;
    this.#drop(room);
    if (this.#rooms.size >= MAX_ROOMS) this.#sweep(now);
    const entry: Entry = { at: now, epoch, members, tail, bytes: 0 };
    this.#rooms.set(room, entry);
    tail.then((read) => this.#keep(room, entry, read), () => {
      if (this.#rooms.get(room) === entry) this.#rooms.delete(room);
    });
    return tail;
  }

  /** A stored publication of `channel` reached this process: its tail is not the newest now. */
  stored(channel: string): void {
    if (this.#rooms.size > 0) this.#drop(channel);
  }

  /** Counts a tail once read, or lets it go when the budget has no room for it. */
  #keep(room: string, entry: Entry, read: readonly Stamped[]): void {
    if (this.#rooms.get(room) !== entry) return;
    let bytes = 0;
    for (const s of read) bytes += s.bytes;
    if (this.#bytes + bytes > this.#o.maxBytes) this.#sweep(this.#o.clock.now());
    // The sweep may have let this one go too: a read that took longer than the TTL.
    if (this.#rooms.get(room) !== entry) return;
    if (this.#bytes + bytes > this.#o.maxBytes) {
      this.#rooms.delete(room);
      return;
    }
    entry.bytes = bytes;
    this.#bytes += bytes;
  }

  #drop(room: string): void {
    const entry = this.#rooms.get(room);
    if (entry === undefined) return;
    this.#bytes -= entry.bytes;
    this.#rooms.delete(room);
  }

  /** Lets the expired tails go; all of them when that leaves the rooms' count at its limit. */
  #sweep(now: number): void {
    for (const [room, entry] of this.#rooms) {
      if (now - entry.at >= this.#o.ttlMs) this.#drop(room);
    }
    if (this.#rooms.size < MAX_ROOMS) return;
    this.#rooms.clear();
    this.#bytes = 0;
  }
}

/** A publication stamped with its offset as the id. */
export function stamped(offset: number, payload: string): Stamped {
  const text = stampId(offset, payload);
  return { id: offset, text, bytes: utf8Length(text) };
}
