/**
 * The registry: who is where. Clients by id, the holders of each name (by
 * its `nameKey`), the members of each room and the open connections per
 * address. The process's engine subscriptions and presence follow it: the
 * first holder of a name subscribes to its user channel, the first member
 * of a room to the room, and the last ones unsubscribe.
 *
 * @module
 */

import type { Client } from "./client.ts";
import type { ConnectionInfo } from "./connection.ts";
import { type Broker, type Presence, userChannel } from "./engines/engine.ts";
import { nameKey } from "./protocol.ts";

/** A room and its local members. */
export interface RoomInfo {
  /** The room. */
  room: string;
  /** Its unique users, in order of arrival. */
  users: string[];
  /** How many they are. */
  connected_count: number;
}

/** The first users of a room, or all of them, and how many it has. */
export interface UsersPage {
  /** Unique users in order of arrival: the first ones, or all. */
  users: string[];
  /** How many unique users the room has. */
  count: number;
}

/** The connections, names and rooms of one manager. */
export class Registry {
  #broker: Broker;
  #presence: Presence | undefined;
  /** Open (admitted) clients by id. */
  readonly clients = new Map<string, Client>();
  // Arrays, not Sets: almost every name has one holder, and an empty Set alone
  // costs more than a short array on every idle connection.
  /** The clients holding each name, by `nameKey`. */
  readonly byName = new Map<string, Client[]>();
  /** The local members of each room. */
  readonly rooms = new Map<string, Set<Client>>();
  /** The unique users of each room: a join to a room of 5,000 does not count them. */
  #userCounts = new Map<string, number>();
  /** Open connections by remote address; addresses with none are deleted. */
  #perAddress = new Map<string, number>();
  #anonymous = 0;

  /** A registry whose subscriptions go to `broker` and names to `presence`, if any. */
  constructor(broker: Broker, presence: Presence | undefined) {
    this.#broker = broker;
    this.#presence = presence;
  }

  /** Open connections from an address. */
  fromAddress(remoteAddr: string): number {
    return this.#perAddress.get(remoteAddr) ?? 0;
  }

  /** Counts an admitted client in. */
  add(client: Client): void {
    this.clients.set(client.id, client);
    if (client.remoteAddr !== "") {
      this.#perAddress.set(client.remoteAddr, this.fromAddress(client.remoteAddr) + 1);
    }
  }

  /** Counts a client out; false when it was not in (refused, or removed already). */
  remove(client: Client): boolean {
    if (!this.clients.delete(client.id)) return false;
    const open = this.fromAddress(client.remoteAddr) - 1;
    if (open > 0) this.#perAddress.set(client.remoteAddr, open);
    else this.#perAddress.delete(client.remoteAddr);
    return true;
  }

  /** A "User N" name nobody here holds. */
  anonymousName(): string {
    let name: string;
    do name = `User ${++this.#anonymous}`; while (this.byName.has(nameKey(name)));
    return name;
  }

  /** Whether a name is free here for this user id (tabs of one verified user share it). */
  nameAvailable(name: string, userId: string | null): boolean {
    const holders = this.byName.get(nameKey(name));
    if (holders === undefined) return true;
    if (userId === null) return false;
    for (const c of holders) if (c.userId !== userId) return false;
    return true;
  }

  /** Whether `client` alone holds the name here, or nobody does. */
  nameFreeFor(name: string, client: Client): boolean {
    const holders = this.byName.get(nameKey(name));
    return holders === undefined || (holders.length === 1 && holders[0] === client);
  }

  /** Gives the client a name, releasing its old one. */
  setName(client: Client, name: string): void {
    this.#countRooms(client, -1);
    this.releaseName(client);
    client.key = nameKey(name);
    const holders = this.byName.get(client.key);
    // Another tab of the same user: one name, spelled as its first tab spells it.
    client.username = holders?.[0]?.username ?? name;
    if (holders !== undefined) {
      holders.push(client);
    } else {
      // A literal of one: a push onto [] would reserve room for 17.
      this.byName.set(client.key, [client]);
      this.#broker.subscribe(userChannel(client.key));
      this.#presence?.connect(name, client.userId);
    }
    this.#countRooms(client, 1);
  }

  /** Counts the client's name in or out of each of its rooms where no other tab of it is. */
  #countRooms(client: Client, by: 1 | -1): void {
    for (const room of client.rooms) {
      if (!this.#otherTabIn(client, room)) this.#count(room, by);
    }
  }

  #count(room: string, by: 1 | -1): void {
    this.#userCounts.set(room, (this.#userCounts.get(room) ?? 0) + by);
  }

  /** Gives up the client's name; the last holder stops following its user channel. */
  releaseName(client: Client): void {
    if (client.key === "") return;
    const holders = this.byName.get(client.key);
    if (holders === undefined) return;
    const at = holders.indexOf(client);
    if (at >= 0) holders.splice(at, 1);
    if (holders.length > 0) return;
    this.byName.delete(client.key);
    this.#broker.unsubscribe(userChannel(client.key));
    this.#presence?.disconnect(client.username);
  }

  /** Adds the client to a room; returns whether it is the user's first tab there. */
  join(client: Client, room: string): boolean {
    let members = this.rooms.get(room);
    if (members === undefined) {
      members = new Set();
      this.rooms.set(room, members);
      this.#broker.subscribe(room);
    }
    const firstTab = !this.#otherTabIn(client, room);
    const added = !members.has(client);
    members.add(client);
    // Exact length, unlike a push: most connections stay in one room.
    client.rooms = client.rooms.concat(room);
    if (firstTab) {
      if (added) this.#count(room, 1);
      this.#presence?.join(room, client.username);
    }
    return firstTab;
  }

  /** Removes the client from a room; returns whether it was the user's last tab there. */
  leave(client: Client, room: string): boolean {
    const members = this.rooms.get(room);
    const at = client.rooms.indexOf(room);
    if (at >= 0) client.rooms = client.rooms.toSpliced(at, 1);
    client.replaying?.delete(room);
    if (members === undefined) return false;
    const was = members.delete(client);
    if (members.size === 0) {
      this.rooms.delete(room);
      this.#userCounts.delete(room);
      this.#broker.unsubscribe(room);
    }
    const lastTab = !this.#otherTabIn(client, room);
    if (lastTab) {
      if (was && members.size > 0) this.#count(room, -1);
      this.#presence?.leave(room, client.username);
    }
    return lastTab;
  }

  /** Whether another client of the same name is in the room. */
  #otherTabIn(client: Client, room: string): boolean {
    const holders = this.byName.get(client.key);
    if (holders === undefined) return false;
    for (const c of holders) if (c !== client && c.rooms.includes(room)) return true;
    return false;
  }

  /** Unique users in a room, in order of arrival. */
  users(room: string): string[] {
    return [...this.#names(room)];
  }

  /** How many unique users a room has here: `users(room).length`, kept as they come and go. */
  userCount(room: string): number {
    return this.#userCounts.get(room) ?? 0;
  }

  /** The first `limit` of `users(room)` and how many there are: a big room's without listing everyone. */
  usersPage(room: string, limit: number): UsersPage {
    return { users: [...this.#names(room, limit)], count: this.userCount(room) };
  }

  /** The names of a room's members, once each (a user's tabs share one), in order of arrival. */
  #names(room: string, limit = Infinity): Set<string> {
    const names = new Set<string>();
    for (const c of this.rooms.get(room) ?? []) {
      if (names.size >= limit) break;
      names.add(c.username);
    }
    return names;
  }

  /** The local users of a room, then those of `everywhere` not among them. */
  usersWith(room: string, everywhere: readonly string[]): string[] {
    const local = this.users(room);
    // Each member carries its name's key already.
    const seen = new Set<string>();
    for (const c of this.rooms.get(room) ?? []) seen.add(c.key);
    return local.concat(everywhere.filter((name) => !seen.has(nameKey(name))));
  }

  /** Every room with local members. */
  roomInfos(): RoomInfo[] {
    return [...this.rooms.keys()].map((room) => {
      const users = this.users(room);
      return { room, users, connected_count: users.length };
    });
  }

  /** Every open connection, for operators. */
  connectionInfos(): ConnectionInfo[] {
    return [...this.clients.values()].map((c) => ({
      id: c.id,
      username: c.username,
      userId: c.userId,
      rooms: [...c.rooms],
      remoteAddr: c.remoteAddr,
      connectedSince: new Date(c.connectedAt).toISOString(),
      framesIn: c.framesIn,
      framesOut: c.framesOut,
    }));
  }
}
