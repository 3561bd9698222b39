/**
 * Moderation: bans (checked when a name is taken, on connect and rename),
 * kicks and closing a room, for the admin routes.
 *
 * @module
 */

import { BanList } from "./ban_list.ts";
import type { Client } from "./client.ts";
import type { Logger } from "./logger.ts";
import { leftFrame } from "./notices.ts";
import type { Outbox } from "./outbox.ts";
import { CloseCode, CloseReason, nameKey } from "./protocol.ts";
import type { Publisher } from "./publisher.ts";
import type { Registry } from "./registry.ts";

/** Options of {@linkcode Moderation.ban}. */
export interface BanOptions {
  /** When the ban ends, in milliseconds since the epoch on the manager's clock. */
  untilMs: number;
  /** Why, for logs. Default: none. */
  reason?: string;
}

/** Options of {@linkcode Moderation.kick}. */
export interface KickOptions {
  /** Why, appended to the room notice. Default: none. */
  reason?: string;
  /** Whether the kick enforces a ban: then the close reason is "Banned". Default false. */
  banned?: boolean;
}

/** What moderation needs from the manager. */
export interface ModerationOptions {
  /** Who is where. */
  registry: Registry;
  /** Writes to and closes sockets. */
  outbox: Outbox;
  /** Publishes to the engine. */
  publisher: Publisher;
  /** Where events are logged. */
  log: Logger;
  /** Ends a client now (registry, rooms, notices), closing its socket with this code. */
  drop: (client: Client, code: number, reason: string) => void;
}

/** Bans, kicks and room closes. */
export class Moderation {
  #o: ModerationOptions;
  /** Checked on connect and rename only, so a ban never closes an open socket by itself. */
  readonly bans: BanList = new BanList();

  /** Moderation of the options' registry. */
  constructor(options: ModerationOptions) {
    this.#o = options;
  }

  /** Closes every connection of a user; returns how many were closed. */
  disconnectUser(username: string, code: number, reason: string): number {
    const holders = this.#o.registry.byName.get(nameKey(username));
    if (holders === undefined) return 0;
    const list = [...holders];
    for (const c of list) this.#o.drop(c, code, reason);
    return list.length;
  }

  /** Refuses the name, and the verified user ids of its open connections, until `untilMs`. */
  ban(username: string, options: BanOptions): void {
    // The ids of the user's open tabs, so logging in under a new name does not escape the ban.
    const userIds: string[] = [];
    for (const c of this.#o.registry.byName.get(nameKey(username)) ?? []) {
      if (c.userId !== null) userIds.push(c.userId);
    }
    this.bans.ban(username, { untilMs: options.untilMs, userIds });
    this.#o.log.info("ban", {
      username,
      until: new Date(options.untilMs).toISOString(),
      reason: options.reason,
    });
  }

  /** Lifts a ban; returns whether there was one. */
  unban(username: string): boolean {
    return this.bans.unban(username);
  }

  /** Publishes a `kick` notice to every room of the user, then closes its connections with 4003. */
  async kick(username: string, options: KickOptions = {}): Promise<number> {
    const holders = this.#o.registry.byName.get(nameKey(username));
    if (holders === undefined) return 0;
    const name = holders[0]?.username ?? username;
    const rooms = new Set<string>();
    for (const c of holders) for (const room of c.rooms) rooms.add(room);
    const verb = options.banned ? "banned" : "kicked";
    const message = `${name} was ${verb}${options.reason ? `: ${options.reason}` : ""}`;
    const publisher = this.#o.publisher;
    // The notice goes first so the user sees why the socket closes.
    await Promise.all(
      [...rooms].map((room) =>
        publisher.announce(room, "kick", message, name)
          .catch((error) => publisher.noticeFailed(room, error))
      ),
    );
    const reason = options.banned ? CloseReason.Banned : CloseReason.Kicked;
    return this.disconnectUser(name, CloseCode.Kicked, reason);
  }

  /**
   * Removes every member from a room after a notice; clients left in no room
   * are closed with 4001. Returns how many clients were in the room.
   */
  async closeRoom(room: string, reason: string): Promise<number> {
    const members = this.#o.registry.rooms.get(room);
    if (members === undefined) return 0;
    const list = [...members];
    await this.#o.publisher.announce(room, "close", reason).catch(() => undefined);
    for (const c of list) {
      this.#o.registry.leave(c, room);
      if (c.rooms.length === 0) this.#o.drop(c, CloseCode.RoomClosed, CloseReason.RoomClosed);
      else this.#o.outbox.send(c, leftFrame(room, true));
    }
    return list.length;
  }
}
