/**
 * The ConnectionManager: the one typed facade routes call. It wires the
 * parts of the manager, one job each (as Centrifuge splits its hub, client
 * and writer):
 * - registry.ts: who is where (clients, names, rooms, per-address counts);
 * - client.ts: one connection's state, also the route's handle;
 * - admission.ts: the checks a socket passes when it opens;
 * - commands.ts: what a client's frame does, a table keyed by its type;
 * - publisher.ts: frames into the engine, serialised once;
 * - replay.ts: history in `welcome`, `joined` and recoveries;
 * - fanout.ts: the engine's deliveries to local clients;
 * - outbox.ts: the one place that writes to or closes a socket;
 * - heartbeat.ts: pings and timeouts;
 * - moderation.ts: bans, kicks and room closes.
 * It knows no HTTP and no `WebSocket`, only {@linkcode ChatSocket}.
 *
 * @module
 */

import { Admission, DEFAULT_ADMISSION } from "./admission.ts";
import { Client, type ClientHost } from "./client.ts";
import { type Clock, type Scheduler, systemClock, systemScheduler } from "./clock.ts";
import { Commands, DEFAULT_COMMANDS } from "./commands.ts";
import type {
  ChatSocket,
  Connection,
  ConnectionInfo,
  ConnectOptions,
  RawFrame,
} from "./connection.ts";
import {
  conversationChannel,
  type Engine,
  type EngineStats,
  type EngineStatus,
} from "./engines/engine.ts";
import { DEFAULT_MEMORY_ENGINE, MemoryEngine } from "./engines/memory.ts";
import { Fanout } from "./fanout.ts";
import { DEFAULT_HEARTBEAT, Heartbeat } from "./heartbeat.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { Metrics } from "./metrics.ts";
import { type BanOptions, type KickOptions, Moderation } from "./moderation.ts";
import { withDefaults } from "./options.ts";
import { DEFAULT_OUTBOX, Outbox } from "./outbox.ts";
import {
  CloseCode,
  CloseReason,
  nameKey,
  type PrivateFrame,
  type RoomFrame,
  type StoredFrame,
  type SystemEvent,
} from "./protocol.ts";
import { DEFAULT_PUBLISHER, Publisher, stampedTexts } from "./publisher.ts";
import { PresenceCache } from "./presence_cache.ts";
import { ReadPositions } from "./read_positions.ts";
import { Registry, type RoomInfo } from "./registry.ts";
import { DEFAULT_REPLAY, Replay } from "./replay.ts";
import { DEFAULT_ROOM_QUOTA, RoomQuota } from "./room_quota.ts";

export type { ChatSocket, Connection, ConnectionInfo, ConnectOptions } from "./connection.ts";
export type { BanOptions, KickOptions } from "./moderation.ts";
export type { RoomInfo } from "./registry.ts";

/** How every system notice's JSON begins: the publisher serialises `type` first. */
const SYSTEM_FRAME_HEAD = '{"type":"system"';

/** The defaults of {@linkcode ConnectionManagerOptions}: each part's own, gathered. */
export const DEFAULT_CONNECTION_MANAGER: Readonly<{
  heartbeatIntervalMs: number;
  heartbeatTimeoutMs: number;
  maxConnections: number;
  maxConnectionsPerIp: number;
  maxMessageBytes: number;
  maxBufferedBytes: number;
  maxRoomsPerConnection: number;
  historyOnJoin: number;
  historyLimit: number;
  rateLimitPerS: number;
  rateLimitBurst: number;
  authenticated: boolean;
  roomsPerIpPerMin: number;
  replayMaxBytes: number;
  roomPresenceLimit: number;
  presenceWindowMs: number;
}> = Object.freeze({
  ...DEFAULT_HEARTBEAT,
  ...DEFAULT_ROOM_QUOTA,
  ...DEFAULT_ADMISSION,
  ...DEFAULT_COMMANDS,
  maxBufferedBytes: DEFAULT_OUTBOX.maxBufferedBytes,
  ...DEFAULT_REPLAY,
  ...DEFAULT_PUBLISHER,
  historyLimit: DEFAULT_MEMORY_ENGINE.historyLimit,
});

/** Options of {@linkcode ConnectionManager}; defaults in {@linkcode DEFAULT_CONNECTION_MANAGER}. */
export interface ConnectionManagerOptions {
  /** Stores and fans out frames; the manager owns and disposes it. Default: a MemoryEngine. */
  engine?: Engine;
  /** Default: the system clock. */
  clock?: Clock;
  /** Runs the heartbeat sweep and deferred closes. Default: the global timers. */
  scheduler?: Scheduler;
  /** Default: silent. */
  logger?: Logger;
  /** Default: a fresh Metrics. */
  metrics?: Metrics;
  /** Server ping cadence on the heartbeat route. */
  heartbeatIntervalMs?: number;
  /** Silence after which a heartbeat socket is closed with 4000. */
  heartbeatTimeoutMs?: number;
  /** Open connections at most; more are closed with 1008. */
  maxConnections?: number;
  /** Largest text frame in UTF-8 bytes; larger ones close with 1009. */
  maxMessageBytes?: number;
  /** Send buffer past which a socket is closed with 4008. */
  maxBufferedBytes?: number;
  /** Rooms one connection may be in. */
  maxRoomsPerConnection?: number;
  /** Messages of history in `welcome`. */
  historyOnJoin?: number;
  /** Room members up to which joins and leaves are announced; lists of names are paged at it. */
  roomPresenceLimit?: number;
  /** After a join or leave notice, a room's further ones wait this long and go together; 0: each at once. */
  presenceWindowMs?: number;
  /** Messages replayed at most on recovery; also the MemoryEngine's history when none is given. */
  historyLimit?: number;
  /** Sustained frames per second per connection. */
  rateLimitPerS?: number;
  /** Frames a connection may send in a burst. */
  rateLimitBurst?: number;
  /** Whether names come from verified tokens (then rename is refused). */
  authenticated?: boolean;
  /** Open connections per client address; more are closed with 1008. */
  maxConnectionsPerIp?: number;
  /** Rooms without local members one address may enter per minute; more get `rate_limited`. */
  roomsPerIpPerMin?: number;
  /** History bytes in one frame; a longer replay goes on as the socket drains. */
  replayMaxBytes?: number;
}

/** The status of the manager's engine, for health checks. */
export interface HealthInfo {
  /** The engine's name as in CHAT_ENGINE. */
  engine: string;
  /** Whether the engine can reach its store. */
  status: EngineStatus;
}

/** Options of {@linkcode ConnectionManager.history}. */
export interface HistoryOptions {
  /** Only frames with an id below this. */
  before?: number;
  /** The newest this many frames (before `before`). */
  limit: number;
}

/** Manages every connection of one server process. */
export class ConnectionManager implements AsyncDisposable {
  #engine: Engine;
  #clock: Clock;
  #log: Logger;
  #metrics: Metrics;
  #burst: number;
  #registry: Registry;
  #outbox: Outbox;
  #publisher: Publisher;
  #heartbeat: Heartbeat;
  #moderation: Moderation;
  #admission: Admission;
  #replay: Replay;
  /** The rooms' users on every process, read once for a burst; undefined on one process. */
  #everywhere: PresenceCache | undefined;
  #replayMaxBytes: number;
  #commands: Commands;
  #fanout: Fanout;
  /** The socket events of every client; one object per manager. */
  #host: ClientHost = {
    receive: (client, data) => this.#commands.receive(client, data),
    closed: (client, code) => this.#closed(client, code),
  };
  #started: Promise<void>;
  #disposed = false;

  /** Creates a manager; see {@linkcode DEFAULT_CONNECTION_MANAGER} for defaults. */
  constructor(options: ConnectionManagerOptions = {}) {
    const s = withDefaults(DEFAULT_CONNECTION_MANAGER, options);
    this.#engine = options.engine ?? new MemoryEngine({ historyLimit: s.historyLimit });
    const engine = this.#engine;
    const presence = engine.presence;
    const clock = this.#clock = options.clock ?? systemClock;
    const scheduler = options.scheduler ?? systemScheduler;
    const log = this.#log = options.logger ?? silentLogger;
    const metrics = this.#metrics = options.metrics ?? new Metrics();
    this.#burst = s.rateLimitBurst;
    const drop = (c: Client, code: number, reason: string) => this.#drop(c, code, reason);
    const leave = (c: Client, room: string, notify: boolean) => this.#leave(c, room, notify);
    const registry = this.#registry = new Registry(engine, presence);
    const outbox = this.#outbox = new Outbox({
      scheduler,
      log,
      metrics,
      maxBufferedBytes: s.maxBufferedBytes,
      maxBatchBytes: DEFAULT_OUTBOX.maxBatchBytes,
      dropSlow: (c) => this.#drop(c, CloseCode.SlowConsumer, CloseReason.SlowConsumer),
    });
    const parts = { engine, registry, outbox, clock, log, metrics };
    // One read of a room's users on every process: a burst of welcomes, `users`, notices' limit.
    const everywhere = this.#everywhere = presence && new PresenceCache({ presence, clock });
    const publisher = this.#publisher = new Publisher({
      ...parts,
      scheduler,
      roomPresenceLimit: s.roomPresenceLimit,
      presenceWindowMs: s.presenceWindowMs,
      roomSize: everywhere === undefined ? undefined : (room) => everywhere.count(room),
    });
    this.#replayMaxBytes = s.replayMaxBytes;
    const reads = new ReadPositions({ engine, publisher, outbox, registry, presence, log, clock });
    const replay = this.#replay = new Replay({
      ...s,
      ...parts,
      publisher,
      scheduler,
      afterStart: (c, target) => void reads.send(c, target),
      presence: everywhere,
    });
    this.#heartbeat = new Heartbeat({ ...s, clock, scheduler, log, metrics, outbox, drop });
    this.#moderation = new Moderation({ registry, outbox, publisher, log, drop });
    const bans = this.#moderation.bans;
    const rooms = new RoomQuota({ registry, clock, roomsPerIpPerMin: s.roomsPerIpPerMin });
    const common = { registry, outbox, replay, bans, presence, log, metrics, rooms, reads };
    this.#admission = new Admission({
      ...s,
      ...common,
      scheduler,
      register: (c) => this.#register(c),
      receive: (c, data: RawFrame) => this.#commands.receive(c, data),
      disposed: () => this.#disposed,
    });
    const allUsers = (room: string) => this.allUsers(room);
    this.#commands = new Commands({ ...s, ...common, publisher, clock, leave, drop, allUsers });
    this.#fanout = new Fanout(registry, outbox, metrics);
    this.#started = engine.start((c, p, o) => this.#deliver(c, p, o));
  }

  /**
   * The engine's delivery: a stored one ends the room's cached tail before a
   * joiner is sent it; a system notice (a join, leave or rename on any
   * process) has the room's users read afresh for the next who asks.
   */
  #deliver(channel: string, payload: string, offset?: number): void {
    if (offset !== undefined) this.#replay.stored(channel);
    if (this.#everywhere !== undefined && payload.startsWith(SYSTEM_FRAME_HEAD)) {
      this.#everywhere.forget(channel);
    }
    this.#fanout.deliver(channel, payload, offset);
  }

  /** Resolves once the engine is ready. */
  ready(): Promise<void> {
    return this.#started;
  }

  /** The metrics this manager updates. */
  get metrics(): Metrics {
    return this.#metrics;
  }

  /** The engine's name and status, for health checks. */
  health(): HealthInfo {
    return { engine: this.#engine.name, status: this.#engine.status() };
  }

  /**
   * The newest stored frames of a room (before `before`), oldest first, at
   * most `replayMaxBytes` of them (at least one); rejects when the store fails.
   */
  history(room: string, options: HistoryOptions): Promise<RoomFrame[]> {
    return this.#read<RoomFrame>(room, options);
  }

  /**
   * The newest private messages between the user of public uid `me` and
   * the person of uid `other`, as {@linkcode history} reads a room's: the
   * caller proves `me` (a token's `sub` or a browser key), so only the two
   * read their conversation.
   */
  conversation(
    pair: { me: string; other: string },
    options: HistoryOptions,
  ): Promise<PrivateFrame[]> {
    return this.#read<PrivateFrame>(conversationChannel(pair.me, pair.other), options);
  }

  async #read<F>(channel: string, options: HistoryOptions): Promise<F[]> {
    const page = await this.#engine.history(channel, options);
    const fit = { maxBytes: this.#replayMaxBytes, keep: "newest" } as const;
    return stampedTexts(page.publications, fit).map((text) => JSON.parse(text) as F);
  }

  /** The engine's stored bytes, evictions and expired channels. */
  historyStats(): EngineStats {
    return this.#engine.stats();
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.#registry.clients.size;
  }

  /** Rooms with at least one local member. */
  get roomCount(): number {
    return this.#registry.rooms.size;
  }

  /** Whether a new connection would be refused for capacity. */
  get full(): boolean {
    return this.#admission.full;
  }

  /**
   * Registers an opened socket. Refusals (server full, invalid or taken name)
   * close the socket with their code and return a connection that ignores frames.
   */
  connect(socket: ChatSocket, options: ConnectOptions = {}): Connection {
    const echo = options.mode === "echo";
    const client = new Client({
      socket,
      echo,
      heartbeat: options.heartbeat === true && !echo,
      userId: options.userId ?? null,
      remoteAddr: options.remoteAddr ?? "",
      connectedAt: this.#clock.now(),
      burst: this.#burst,
    }, this.#host);
    if (options.batch === true && !echo) client.batch = [];
    this.#admission.admit(client, options);
    return client;
  }

  /** Unique users in a room, in order of arrival. */
  users(room: string): string[] {
    return this.#registry.users(room);
  }

  /**
   * Unique users of a room on every process sharing the engine: the local
   * ones in order of arrival, then the others, as read from the store at
   * most `PRESENCE_CACHE_MS` ago. Local only when the engine has no
   * presence or its store is unavailable.
   */
  allUsers(room: string): Promise<string[]> {
    const registry = this.#registry;
    if (this.#everywhere === undefined) return Promise.resolve(registry.users(room));
    return this.#everywhere.users(room).then((everywhere) =>
      everywhere === undefined ? registry.users(room) : registry.usersWith(room, everywhere)
    );
  }

  /** Every room with local members. */
  rooms(): RoomInfo[] {
    return this.#registry.roomInfos();
  }

  /** Every connection, for operators. */
  connections(): ConnectionInfo[] {
    return this.#registry.connectionInfos();
  }

  /** Whether a user with this name is connected here. */
  isOnline(username: string): boolean {
    return this.#registry.byName.has(nameKey(username));
  }

  /** The name as its online holder spells it (`josé` for `JOSÉ`); undefined when offline here. */
  onlineName(username: string): string | undefined {
    return this.#registry.byName.get(nameKey(username))?.[0]?.username;
  }

  /** Publishes a system notice to a room (stored like any room frame); resolves with it. */
  announce(room: string, event: SystemEvent, message: string, user?: string): Promise<StoredFrame> {
    return this.#publisher.announce(room, event, message, user);
  }

  /** Closes every connection of a user; returns how many were closed. */
  disconnectUser(username: string, code: number, reason: string): number {
    return this.#moderation.disconnectUser(username, code, reason);
  }

  /**
   * Refuses new connections under this name, and under the verified user ids
   * of its current connections, until `untilMs`. Closes nothing: see
   * {@linkcode ConnectionManager.kick}.
   */
  ban(username: string, options: BanOptions): void {
    this.#moderation.ban(username, options);
  }

  /** Lifts a ban; returns whether there was one. */
  unban(username: string): boolean {
    return this.#moderation.unban(username);
  }

  /**
   * Publishes a `kick` notice to every room of the user, then closes each of
   * its connections with 4003. Returns how many connections were closed.
   */
  kick(username: string, options: KickOptions = {}): Promise<number> {
    return this.#moderation.kick(username, options);
  }

  /**
   * Removes every member from a room after a notice; sockets left in no room
   * are closed with 4001. Returns how many connections were in the room.
   */
  closeRoom(room: string, reason: string): Promise<number> {
    return this.#moderation.closeRoom(room, reason);
  }

  /** Sends due pings and closes silent sockets; runs on the scheduler. */
  sweep(): void {
    this.#heartbeat.sweep();
  }

  /** Closes every connection without notices, for shutdown. */
  closeAll(code: number, reason: string): void {
    this.#admission.refuseWaiting(code, reason);
    for (const c of [...this.#registry.clients.values()]) this.#drop(c, code, reason, false);
    this.#outbox.closePending();
  }

  /** Closes every socket with 1001 and disposes the engine. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.closeAll(CloseCode.GoingAway, CloseReason.ServerShuttingDown);
    this.#heartbeat.stop();
    this.#publisher.stop();
    this.#replay.dispose();
    await this.#started.catch(() => undefined);
    await this.#engine[Symbol.asyncDispose]();
  }

  // -------------------------------------------------------------------------
  // A client's life: counted in once admitted, ended by a drop or its socket's close.

  #register(client: Client): void {
    this.#registry.add(client);
    this.#metrics.connectionsTotal++;
    if (client.heartbeat) this.#heartbeat.add(client);
    this.#log.info("connect", {
      conn: client.id,
      username: client.username || undefined,
      remote: client.remoteAddr,
      mode: client.echo ? "echo" : "chat",
    });
  }

  /** Ends a client now: registry, rooms and notices; the socket closes on a later tick. */
  #drop(client: Client, code: number, reason: string, notify = true): void {
    if (client.closing) return;
    client.closing = true;
    this.#metrics.close(code);
    this.#unregister(client, code, notify);
    this.#outbox.close(client, code, reason);
  }

  /** Ends a client whose socket closed. */
  #closed(client: Client, code: number): void {
    if (client.closing) return;
    client.closing = true;
    this.#admission.cancel(client);
    this.#metrics.close(code);
    this.#unregister(client, code, true);
  }

  #unregister(client: Client, code: number, notify: boolean): void {
    if (!this.#registry.remove(client)) return;
    this.#heartbeat.delete(client);
    for (const room of client.rooms) this.#leave(client, room, notify);
    this.#registry.releaseName(client);
    client.backlog = null;
    this.#log.info("disconnect", {
      conn: client.id,
      username: client.username || undefined,
      code,
    });
  }

  /** Takes a client out of a room; the user's last tab there announces the leave. */
  #leave(client: Client, room: string, notify: boolean): void {
    const lastTab = this.#registry.leave(client, room);
    if (notify && lastTab) {
      this.#publisher.notify(room, "leave", client.username);
    }
  }
}
