/**
 * Bans by username and by verified user id, without timers: an expired ban
 * is removed the next time it is checked.
 *
 * @module
 */

import { nameKey } from "./names.ts";

interface Ban {
  /** The name's {@linkcode nameKey}. */
  key: string;
  untilMs: number;
  /** Verified user ids seen under the name when banned. */
  subs: Set<string>;
}

/** Options of {@linkcode BanList.ban}. */
export interface BanEntryOptions {
  /** When the ban ends, in milliseconds since the epoch. */
  untilMs: number;
  /** Verified user ids to ban with the name, so a new name does not escape it. Default: none. */
  userIds?: Iterable<string>;
}

/** Options of {@linkcode BanList.isBanned}. */
export interface BanCheckOptions {
  /** The verified user id of the connection, if any. Default: none. */
  userId?: string | null;
  /** The current time in milliseconds since the epoch; bans ending by then have expired. */
  now: number;
}

/** Active bans of one server process; names are compared by {@linkcode nameKey}. */
export class BanList {
  #bans = new Map<string, Ban>();
  #subBans = new Map<string, Ban>();

  /**
   * Bans a name and the given user ids until `options.untilMs`. A new ban of
   * a name replaces the old one but keeps the user ids banned with it.
   */
  ban(username: string, options: BanEntryOptions): void {
    const key = nameKey(username);
    const ban: Ban = { key, untilMs: options.untilMs, subs: new Set(this.#bans.get(key)?.subs) };
    this.unban(key);
    for (const sub of options.userIds ?? []) ban.subs.add(sub);
    this.#bans.set(key, ban);
    for (const sub of ban.subs) this.#subBans.set(sub, ban);
  }

  /** Lifts the ban of a name and of the user ids banned with it; returns whether there was one. */
  unban(username: string): boolean {
    const ban = this.#bans.get(nameKey(username));
    if (ban === undefined) return false;
    this.#bans.delete(ban.key);
    // A user id banned again under another name belongs to that newer ban.
    for (const sub of ban.subs) if (this.#subBans.get(sub) === ban) this.#subBans.delete(sub);
    return true;
  }

  /** Whether the name or the user id is banned at `options.now`; lifts expired bans it meets. */
  isBanned(username: string, options: BanCheckOptions): boolean {
    const byName = this.#bans.get(nameKey(username));
    const userId = options.userId ?? null;
    const bySub = userId === null ? undefined : this.#subBans.get(userId);
    for (const ban of [byName, bySub]) {
      if (ban === undefined) continue;
      if (ban.untilMs > options.now) return true;
      this.unban(ban.key);
    }
    return false;
  }
}
