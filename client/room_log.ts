/**
 * What a client remembers of each room it is in: the highest id seen (to
 * resume with `since`), the ids seen lately (a replay may overlap what was
 * shown), the online users, and whether it is recovering what was missed.
 *
 * @module
 */

import { nameKey, type RoomFrame } from "../chat/protocol.ts";

// Ids remembered per room: enough to cover any overlap of a replay with what was shown.
const SEEN_LIMIT = 2000;

/** One room's memory. */
export class RoomLog {
  /** The room's name as the server spells it. */
  readonly room: string;
  /** The highest id seen; 0 before any. */
  last = 0;
  /** The online users, as the server last told: the first page of a big room's. */
  users: string[] = [];
  /** How many users the room has; more than `users` holds in a big room. */
  count = 0;
  /** Whether the current socket is in the room (its `welcome` or `joined` came). */
  live = false;
  /** True while a replay brings what was missed since `last` (a resume, not a first join). */
  recovering = false;
  #ids = new Set<number>();

  /** An empty log of `room`. */
  constructor(room: string) {
    this.room = room;
  }

  /** Records a frame's id; false when it was seen already. A live-only notice has none. */
  firstSight(frame: RoomFrame): boolean {
    if (frame.id === undefined) return true;
    if (this.#ids.has(frame.id)) return false;
    this.#ids.add(frame.id);
    if (this.#ids.size > SEEN_LIMIT) {
      const oldest = this.#ids.values().next().value;
      if (oldest !== undefined) this.#ids.delete(oldest);
    }
    if (frame.id > this.last) this.last = frame.id;
    return true;
  }

  /** Forgets the ids: the server gave them out again (a new epoch, or history lost). */
  forget(): void {
    this.#ids.clear();
    this.last = 0;
  }

  /** Replaces the online users (or adds a later page, from `offset`), and their count. */
  setUsers(users: readonly string[], page: { count?: number; offset?: number } = {}): void {
    const first = page.offset === undefined || page.offset === 0;
    this.users = [...new Set(first ? users : [...this.users, ...users])];
    this.count = page.count ?? this.users.length;
  }

  /**
   * Updates the online users from a `system` notice; true when they changed.
   * Names are compared by their key, as the server compares them.
   */
  applyPresence(frame: RoomFrame): boolean {
    if (frame.type !== "system" || frame.user === undefined) return false;
    const user = frame.user;
    const same = (a: string, b: string) => nameKey(a) === nameKey(b);
    if (frame.event === "join" || frame.event === "leave" || frame.event === "kick") {
      return this.#applyPresence(frame.event, frame.users ?? [user]);
    } else if (frame.event === "rename" && frame.old_name !== undefined) {
      const old = frame.old_name;
      this.users = this.users.map((u) => (same(u, old) ? user : u));
    } else {
      return false;
    }
    return true;
  }

  /** Adds joined users or removes those who left; true when the list changed. */
  #applyPresence(event: string, users: readonly string[]): boolean {
    const before = this.users.length;
    if (event === "join") {
      const known = new Set(this.users.map(nameKey));
      const added = users.filter((u) => !known.has(nameKey(u)));
      this.users = [...this.users, ...new Set(added)];
      this.count += this.users.length - before;
    } else {
      const keys = new Set(users.map(nameKey));
      this.users = this.users.filter((u) => !keys.has(nameKey(u)));
      const gone = before - this.users.length;
      if (gone > 0) this.count = Math.max(this.users.length, this.count - gone);
    }
    return this.users.length !== before;
  }
}
