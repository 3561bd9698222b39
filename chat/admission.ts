/**
 * Admission: the checks a socket passes when it opens (shutting down, a
 * route's refusal, capacity, connections per address, the room and the
 * name, bans), then, with an engine shared by several processes, the
 * lookup of the name on the others. Frames the client sends meanwhile are
 * held and handled once it is admitted.
 *
 * @module
 */

import type { BanList } from "./ban_list.ts";
import type { Client } from "./client.ts";
import type { Scheduler, TimerHandle } from "./clock.ts";
import type { ConnectOptions, RawFrame } from "./connection.ts";
import type { Presence } from "./engines/engine.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import type { Outbox } from "./outbox.ts";
import {
  CloseCode,
  CloseReason,
  DEFAULT_ROOM,
  isReservedName,
  normalizeName,
  roomName,
} from "./protocol.ts";
import type { Registry } from "./registry.ts";
import type { Replay } from "./replay.ts";
import type { RoomQuota } from "./room_quota.ts";

/** Admission's defaults, as {@linkcode ConnectionManagerOptions} names them. */
export const DEFAULT_ADMISSION: Readonly<{ maxConnections: number; maxConnectionsPerIp: number }> =
  Object.freeze({
    /** Open connections at most; more are closed with 1008. */
    maxConnections: 10_000,
    /** Open connections per client address; more are closed with 1008. */
    maxConnectionsPerIp: 20,
  });

/**
 * A name held on another process is looked up again this many times, this
 * many ms apart, before the connection is refused: a holder that has just
 * closed there (a page reload landing on another worker) releases the name
 * through the engine's store a few milliseconds later.
 */
const NAME_RECHECKS = 4;
const NAME_RECHECK_MS = 50;
/** Anonymous names tried on other processes before one is taken unchecked. */
const ANONYMOUS_TRIES = 5;

/** What admission needs from the manager. */
export interface AdmissionOptions {
  /** Who is where. */
  registry: Registry;
  /** Writes to and closes sockets. */
  outbox: Outbox;
  /** Sends history. */
  replay: Replay;
  /** Checked whenever a name is taken. */
  bans: BanList;
  /** The new rooms each address may enter. */
  rooms: RoomQuota;
  /** The engine's presence; undefined when it serves one process. */
  presence: Presence | undefined;
  /** Runs the timers. */
  scheduler: Scheduler;
  /** Where events are logged. */
  log: Logger;
  /** The counters to update. */
  metrics: Metrics;
  /** See {@linkcode DEFAULT_ADMISSION}. */
  maxConnections: number;
  /** See {@linkcode DEFAULT_ADMISSION}. */
  maxConnectionsPerIp: number;
  /** Counts an admitted client in (registry, heartbeat, metrics, log). */
  register: (client: Client) => void;
  /** Handles a frame held while the name was looked up. */
  receive: (client: Client, data: RawFrame) => void;
  /** Whether the manager is shutting down. */
  disposed: () => boolean;
}

/** A client waiting for its name to be looked up on the other processes. */
interface Lookup {
  name: string;
  /** The name was made up here ("User N"): another one is tried when it is taken. */
  anonymous: boolean;
  room: string;
  since: number | undefined;
  /** Names tried (anonymous) or lookups repeated (named) so far. */
  attempt: number;
}

/** Admits or refuses opening sockets. */
export class Admission {
  #o: AdmissionOptions;
  /** Clients waiting to look their name up again, with their timers. */
  #rechecks = new Map<Client, TimerHandle>();
  /**
   * Clients whose name is being looked up on the other processes: not in
   * the registry yet, but counted against the caps, so concurrent
   * handshakes cannot all pass while each waits for its lookup.
   */
  #pending = new Set<Client>();
  /** {@linkcode Admission.#pending} per client address. */
  #pendingFrom = new Map<string, number>();

  /** Admission into the options' registry. */
  constructor(options: AdmissionOptions) {
    this.#o = options;
  }

  /** Whether a new connection would be refused for capacity. */
  get full(): boolean {
    return this.#o.registry.clients.size + this.#pending.size >= this.#o.maxConnections;
  }

  /** Admits a client, or refuses it with a close; a lookup elsewhere may finish later. */
  admit(client: Client, options: ConnectOptions): void {
    const refusal = this.#refusal(client, options);
    if (refusal !== undefined) return this.refuse(client, refusal.code, refusal.reason);
    if (client.echo) {
      client.backlog = null;
      client.welcomed = true;
      return this.#o.register(client);
    }
    const room = roomName(options.room ?? DEFAULT_ROOM);
    if (room === undefined) {
      const reason = `Invalid room name: ${options.room}`.slice(0, 120);
      return this.refuse(client, CloseCode.PolicyViolation, reason);
    }
    if (!this.#o.rooms.allows(client, room)) {
      return this.refuse(client, CloseCode.PolicyViolation, CloseReason.RateLimitExceeded);
    }
    const name = this.#name(client, options.username);
    if (name === undefined) return;
    const since = this.#o.replay.since(options.since, options.epoch);
    // Verified names too: another user id may hold the name on another process.
    if (this.#o.presence !== undefined) {
      client.held = [];
      const anonymous = options.username === undefined;
      this.#wait(client);
      return this.#lookup(client, { name, anonymous, room, since, attempt: 0 });
    }
    this.#enter(client, name, room, since);
  }

  /** Why a socket is refused before its name is looked at, if it is. */
  #refusal(client: Client, options: ConnectOptions): { code: number; reason: string } | undefined {
    if (this.#o.disposed()) {
      return { code: CloseCode.GoingAway, reason: CloseReason.ServerShuttingDown };
    }
    if (options.refuse !== undefined) return options.refuse;
    if (this.full) return { code: CloseCode.PolicyViolation, reason: CloseReason.ServerFull };
    // An empty address (a test, or a socket without one) is not counted.
    const address = client.remoteAddr;
    const fromAddress = this.#o.registry.fromAddress(address) +
      (this.#pendingFrom.get(address) ?? 0);
    if (address !== "" && fromAddress >= this.#o.maxConnectionsPerIp) {
      return { code: CloseCode.PolicyViolation, reason: CloseReason.TooManyConnections };
    }
    return undefined;
  }

  /** The client's name, free here; undefined once refused for it. */
  #name(client: Client, requested: string | undefined): string | undefined {
    if (requested === undefined) return this.#o.registry.anonymousName();
    const name = normalizeName(requested);
    if (name === undefined || isReservedName(name)) {
      const reason = `Invalid username: ${requested}`.slice(0, 120);
      this.refuse(client, CloseCode.PolicyViolation, reason);
      return undefined;
    }
    if (this.#o.bans.isBanned(name, { userId: client.userId, now: client.connectedAt })) {
      this.refuse(client, CloseCode.Kicked, CloseReason.Banned);
      return undefined;
    }
    if (!this.#o.registry.nameAvailable(name, client.userId)) {
      this.refuse(client, CloseCode.UsernameInUse, CloseReason.UsernameInUse);
      return undefined;
    }
    return name;
  }

  /** Counts a client whose lookup is pending against the caps. */
  #wait(client: Client): void {
    this.#pending.add(client);
    const address = client.remoteAddr;
    this.#pendingFrom.set(address, (this.#pendingFrom.get(address) ?? 0) + 1);
  }

  /** Stops counting a client as pending: it was admitted, refused or closed. */
  #done(client: Client): void {
    if (!this.#pending.delete(client)) return;
    const address = client.remoteAddr;
    const n = (this.#pendingFrom.get(address) ?? 1) - 1;
    if (n === 0) this.#pendingFrom.delete(address);
    else this.#pendingFrom.set(address, n);
  }

  /** Names the client, counts it in and sends its `welcome`. */
  #enter(client: Client, name: string, room: string, since: number | undefined): void {
    this.#done(client);
    this.#o.registry.setName(client, name);
    this.#o.register(client);
    this.#o.replay.enter(client, room, since, true);
  }

  /**
   * Admits a client once its name is known to be free on the other
   * processes (best-effort: two processes may admit one name at once).
   */
  #lookup(client: Client, lookup: Lookup): void {
    let next = lookup;
    this.#o.presence!.lookup(lookup.name).then(
      (holder) => {
        if (holder === undefined) return true;
        // A holder with the same user id is the same user's other tab: its spelling is the name.
        if (client.userId === null || holder.userId !== client.userId) return false;
        next = { ...lookup, name: holder.username };
        return true;
      },
      () => true,
    ).then((free) => this.#looked(client, next, free));
  }

  /** Admits, retries or refuses after a lookup. */
  #looked(client: Client, lookup: Lookup, free: boolean): void {
    if (client.closing) return this.#done(client);
    if (this.#o.disposed()) {
      return this.refuse(client, CloseCode.GoingAway, CloseReason.ServerShuttingDown);
    }
    const { name, anonymous, attempt } = lookup;
    const freeHere = this.#o.registry.nameAvailable(name, client.userId);
    let admitted = name;
    if (!free || !freeHere) {
      if (anonymous && attempt < ANONYMOUS_TRIES) {
        const next = { ...lookup, name: this.#o.registry.anonymousName(), attempt: attempt + 1 };
        return this.#lookup(client, next);
      }
      // Only a holder on another process can be on its way out.
      if (!anonymous && freeHere && attempt < NAME_RECHECKS) {
        return this.#recheck(client, { ...lookup, attempt: attempt + 1 });
      }
      if (!anonymous) {
        return this.refuse(client, CloseCode.UsernameInUse, CloseReason.UsernameInUse);
      }
      admitted = this.#o.registry.anonymousName();
    }
    const held = client.held ?? [];
    client.held = null;
    this.#enter(client, admitted, lookup.room, lookup.since);
    for (const data of held) this.#o.receive(client, data);
  }

  /** Looks the name up again after {@linkcode NAME_RECHECK_MS}. */
  #recheck(client: Client, lookup: Lookup): void {
    const timer = this.#o.scheduler.setTimeout(() => {
      this.#rechecks.delete(client);
      this.#lookup(client, lookup);
    }, NAME_RECHECK_MS);
    this.#rechecks.set(client, timer);
  }

  /** Stops a client's pending lookup and recheck (its socket closed). */
  cancel(client: Client): void {
    this.#done(client);
    const timer = this.#rechecks.get(client);
    if (timer === undefined) return;
    this.#o.scheduler.clearTimeout(timer);
    this.#rechecks.delete(client);
  }

  /** Refuses every client waiting for a recheck. */
  refuseWaiting(code: number, reason: string): void {
    for (const [client, timer] of this.#rechecks) {
      this.#o.scheduler.clearTimeout(timer);
      this.refuse(client, code, reason);
    }
    this.#rechecks.clear();
  }

  /** Closes a client that was never counted in. */
  refuse(client: Client, code: number, reason: string): void {
    this.#done(client);
    client.closing = true;
    this.#o.metrics.close(code);
    this.#o.log.info("refuse", { remote: client.remoteAddr, code, reason });
    this.#o.outbox.close(client, code, reason);
  }
}
