/**
 * The ConnectionManager: who is connected, who is in which room, fan-out,
 * private delivery, renames, the heartbeat sweep and the per-connection
 * limits. It knows no HTTP and no `WebSocket`, only {@linkcode ChatSocket}.
 *
 * @module
 */

import { BanList } from "./ban_list.ts";
import {
  type ChatSocket,
  Conn,
  type Connection,
  type ConnectionInfo,
  type ConnectOptions,
  Handle,
  type Inlet,
  type Queued,
} from "./connection.ts";
import {
  type Clock,
  type Scheduler,
  systemClock,
  systemScheduler,
  type TimerHandle,
} from "./clock.ts";
import {
  type Engine,
  type EngineStatus,
  isUserChannel,
  type Presence,
  privateChannel,
  type PublishOptions,
  userChannel,
} from "./engines/engine.ts";
import { MemoryEngine } from "./engines/memory.ts";
import { type Logger, silentLogger } from "./logger.ts";
import { LogThrottle } from "./log_throttle.ts";
import { Metrics, utf8Length } from "./metrics.ts";
import { takeToken } from "./rate_limit.ts";
import {
  type ClientMessage,
  CloseCode,
  CloseReason,
  DEFAULT_ROOM,
  type Draft,
  type ErrorCode,
  ErrorCode as Errors,
  type ErrorFrame,
  isReservedName,
  type JoinedFrame,
  nameKey,
  normalizeName,
  parseClientMessage,
  type RoomFrame,
  type ServerMessage,
  type StoredFrame,
  SYSTEM_SENDER,
  type SystemEvent,
  type WelcomeFrame,
} from "./protocol.ts";

export type { ChatSocket, Connection, ConnectionInfo, ConnectOptions } from "./connection.ts";

/** Options of {@linkcode ConnectionManager.ban}. */
export interface BanOptions {
  /** When the ban ends, in milliseconds since the epoch on the manager's clock. */
  untilMs: number;
  /** Why, for logs. Default: none. */
  reason?: string;
}

/** Options of {@linkcode ConnectionManager.kick}. */
export interface KickOptions {
  /** Why, appended to the room notice. Default: none. */
  reason?: string;
  /** Whether the kick enforces a ban: then the close reason is "Banned". Default false. */
  banned?: boolean;
}

/** A room and its local members. */
export interface RoomInfo {
  room: string;
  users: string[];
  connected_count: number;
}

/** Options of {@linkcode ConnectionManager}; every field has a default. */
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
  /** Server ping cadence on the heartbeat route. Default 10000. */
  heartbeatIntervalMs?: number;
  /** Silence after which a heartbeat socket is closed with 4000. Default 30000. */
  heartbeatTimeoutMs?: number;
  /** Open connections at most; more are closed with 1008. Default 10000. */
  maxConnections?: number;
  /** Largest text frame in UTF-8 bytes; larger ones close with 1009. Default 16384. */
  maxMessageBytes?: number;
  /** Send buffer past which a socket is closed with 4008. Default 1048576. */
  maxBufferedBytes?: number;
  /** Rooms one connection may be in. Default 10. */
  maxRoomsPerConnection?: number;
  /** Messages of history in `welcome`. Default 50. */
  historyOnJoin?: number;
  /** Messages replayed at most on recovery. Default 1000. */
  historyLimit?: number;
  /** Sustained frames per second per connection. Default 10. */
  rateLimitPerS?: number;
  /** Frames a connection may send in a burst. Default 20. */
  rateLimitBurst?: number;
  /** Whether names come from verified tokens (then rename is refused). Default false. */
  authenticated?: boolean;
  /** Open connections per client address; more are closed with 1008. Default 20. */
  maxConnectionsPerIp?: number;
}

const OPEN = 1;
/**
 * A name held on another process is looked up again this many times, this
 * many ms apart, before the connection is refused: a holder that has just
 * closed there (a page reload landing on another worker) releases the name
 * through the engine's store, a few milliseconds later.
 */
const NAME_RECHECKS = 4;
const NAME_RECHECK_MS = 50;
/** A batch is sent early rather than grow past this many UTF-8 bytes. */
const MAX_BATCH_BYTES = 65536;
const encoder = new TextEncoder();
const NON_ASCII = /[\u0080-\uffff]/;

/** UTF-8 bytes of a frame; most are ASCII, which a native regex scan finds faster than a loop. */
function byteLength(text: string): number {
  return NON_ASCII.test(text) ? utf8Length(text) : text.length;
}

/** A connection waiting for its name to be looked up on the other processes. */
interface Admission {
  name: string;
  /** The name was made up here ("User N"): another one is tried when it is taken. */
  anonymous: boolean;
  room: string;
  since: number | undefined;
  /** Names tried (anonymous) or lookups repeated (named) so far. */
  attempt: number;
}

/** History to send: the frames' JSON, with the last one's id (0 when none). */
interface History {
  texts: string[];
  lastId: number;
}

/**
 * A `since` whose epoch is not the engine's: offsets of a store that lost
 * its history recover nothing, so the recent tail goes out with
 * `recovered: false`.
 */
const STALE_SINCE = -1;

/** The options of every stored publish: one object, not one per message. */
const STORED: PublishOptions = Object.freeze({ history: true });

/**
 * A stored payload as sent: the offset spliced in as the frame's `id`, so
 * that the JSON built once by the publisher travels unparsed. Every frame
 * the manager publishes starts with its `"type"`, whose value has no comma:
 * the id goes right after it, where clients that match on the leading
 * `{"type":"message"` still find it.
 */
export function stampId(offset: number, payload: string): string {
  const at = payload.indexOf(",");
  if (at < 0) {
    return payload.length > 2 ? payload.slice(0, -1) + ',"id":' + offset + "}" : `{"id":${offset}}`;
  }
  return payload.slice(0, at + 1) + '"id":' + offset + "," + payload.slice(at + 1);
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

/** History read for one connection's `welcome` or `joined`. */
interface Replay {
  conn: Conn;
  room: string;
  /** The last id the client saw, if it said. */
  since: number | undefined;
  /** A `welcome` (the connection's first frame) rather than a `joined`. */
  welcome: boolean;
  history: History;
  /** Whether nothing between `since` and the history was lost. */
  complete: boolean;
}

/**
 * Serialises a `welcome` or `joined` frame whose `history` is empty with the
 * given frames' JSON in it. The key `"history":[]` can only be that key: quotes
 * inside strings are escaped.
 */
function spliceHistory(frame: WelcomeFrame | JoinedFrame, texts: readonly string[]): string {
  // A function, so `$` in the texts is not a replacement pattern.
  return JSON.stringify(frame).replace('"history":[]', () => `"history":[${texts.join(",")}]`);
}

/** Manages every connection of one server process. */
export class ConnectionManager implements AsyncDisposable {
  #inlet: Inlet = {
    receive: (conn, data) => this.#receive(conn, data),
    closed: (conn, code) => this.#closed(conn, code),
  };
  #engine: Engine;
  /** The engine's cross-process presence; undefined for a single-process engine. */
  #presence: Presence | undefined;
  #clock: Clock;
  #scheduler: Scheduler;
  #log: Logger;
  #metrics: Metrics;
  #interval: number;
  #timeout: number;
  #maxConnections: number;
  #maxBytes: number;
  #maxBuffered: number;
  #maxRooms: number;
  #historyOnJoin: number;
  #historyLimit: number;
  #ratePerMs: number;
  #burst: number;
  #authenticated: boolean;
  #maxPerAddress: number;

  #connections = new Map<string, Conn>();
  /** Connections waiting to look their name up again, with their timers. */
  #rechecks = new Map<Conn, TimerHandle>();
  /** Open connections by remote address; addresses with none are deleted. */
  #perAddress = new Map<string, number>();
  // Arrays, not Sets: almost every name has one holder, and an empty Set alone
  // costs more than a short array on every idle connection.
  #byName = new Map<string, Conn[]>();
  #rooms = new Map<string, Set<Conn>>();
  #heartbeats = new Set<Conn>();
  /** Deferred closes, with their own code so shutdown keeps a refusal's reason. */
  #closeTimers = new Map<Conn, { timer: TimerHandle; code: number; reason: string }>();
  /** Checked on connect and rename only, so a ban never closes an open socket by itself. */
  #bans = new BanList();
  #sweep: TimerHandle | undefined;
  #anonymous = 0;
  #started: Promise<void>;
  #disposed = false;

  /** Creates a manager; see {@linkcode ConnectionManagerOptions} for defaults. */
  constructor(options: ConnectionManagerOptions = {}) {
    this.#engine = options.engine ?? new MemoryEngine({ historyLimit: options.historyLimit });
    this.#presence = this.#engine.presence;
    this.#clock = options.clock ?? systemClock;
    this.#scheduler = options.scheduler ?? systemScheduler;
    this.#log = options.logger ?? silentLogger;
    this.#metrics = options.metrics ?? new Metrics();
    this.#interval = options.heartbeatIntervalMs ?? 10_000;
    this.#timeout = options.heartbeatTimeoutMs ?? 30_000;
    this.#maxConnections = options.maxConnections ?? 10_000;
    this.#maxBytes = options.maxMessageBytes ?? 16_384;
    this.#maxBuffered = options.maxBufferedBytes ?? 1_048_576;
    this.#maxRooms = options.maxRoomsPerConnection ?? 10;
    this.#historyOnJoin = options.historyOnJoin ?? 50;
    this.#historyLimit = options.historyLimit ?? 1000;
    this.#ratePerMs = (options.rateLimitPerS ?? 10) / 1000;
    this.#burst = options.rateLimitBurst ?? 20;
    this.#authenticated = options.authenticated ?? false;
    this.#maxPerAddress = options.maxConnectionsPerIp ?? 20;
    this.#started = this.#engine.start((channel, payload, offset) =>
      this.#deliver(channel, payload, offset)
    );
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

  /** The newest stored frames of a room (before `before`), oldest first; rejects when the store fails. */
  async history(room: string, options: HistoryOptions): Promise<RoomFrame[]> {
    const page = await this.#engine.history(room, options);
    return page.publications.map((p) => JSON.parse(stampId(p.offset, p.payload)) as RoomFrame);
  }

  /** Open connections. */
  get connectionCount(): number {
    return this.#connections.size;
  }

  /** Rooms with at least one local member. */
  get roomCount(): number {
    return this.#rooms.size;
  }

  /** Whether a new connection would be refused for capacity. */
  get full(): boolean {
    return this.#connections.size >= this.#maxConnections;
  }

  /**
   * Registers an opened socket. Refusals (server full, invalid or taken name)
   * close the socket with their code and return a handle that ignores frames.
   */
  connect(socket: ChatSocket, options: ConnectOptions = {}): Connection {
    const now = this.#clock.now();
    const conn = new Conn(
      socket,
      options.mode === "echo",
      options.heartbeat === true && options.mode !== "echo",
      options.userId ?? null,
      options.remoteAddr ?? "",
      now,
      this.#burst,
    );
    if (options.batch === true && !conn.echo) conn.out = [];
    const handle = new Handle(conn, this.#inlet);
    if (this.#disposed) {
      this.#refuse(conn, CloseCode.GoingAway, CloseReason.ServerShuttingDown);
      return handle;
    }
    if (options.refuse !== undefined) {
      this.#refuse(conn, options.refuse.code, options.refuse.reason);
      return handle;
    }
    if (this.full) {
      this.#refuse(conn, CloseCode.PolicyViolation, CloseReason.ServerFull);
      return handle;
    }
    // An empty address (a test, or a socket without one) is not counted.
    const fromAddress = this.#perAddress.get(conn.remoteAddr) ?? 0;
    if (conn.remoteAddr !== "" && fromAddress >= this.#maxPerAddress) {
      this.#refuse(conn, CloseCode.PolicyViolation, CloseReason.TooManyConnections);
      return handle;
    }
    if (conn.echo) {
      conn.queue = null;
      conn.welcomed = true;
      this.#register(conn);
      return handle;
    }
    const room = normalizeName(options.room ?? DEFAULT_ROOM);
    if (room === undefined) {
      this.#refuse(
        conn,
        CloseCode.PolicyViolation,
        `Invalid room name: ${options.room}`.slice(0, 120),
      );
      return handle;
    }
    let name: string | undefined;
    if (options.username === undefined) {
      name = this.#anonymousName();
    } else {
      name = normalizeName(options.username);
      if (name === undefined || isReservedName(name)) {
        const reason = `Invalid username: ${options.username}`;
        this.#refuse(conn, CloseCode.PolicyViolation, reason.slice(0, 120));
        return handle;
      }
      if (this.#bans.isBanned(name, { userId: conn.userId, now })) {
        this.#refuse(conn, CloseCode.Kicked, CloseReason.Banned);
        return handle;
      }
      if (!this.#nameAvailable(name, conn.userId)) {
        this.#refuse(conn, CloseCode.UsernameInUse, CloseReason.UsernameInUse);
        return handle;
      }
    }
    // Verified names too: another user id may hold the name on another process.
    if (this.#presence !== undefined) {
      conn.held = [];
      const anonymous = options.username === undefined;
      const since = this.#since(options.since, options.epoch);
      this.#admit(conn, { name, anonymous, room, since, attempt: 0 });
      return handle;
    }
    this.#setName(conn, name);
    this.#register(conn);
    this.#enterRoom(conn, room, this.#since(options.since, options.epoch), true);
    return handle;
  }

  /**
   * Admits a connection once its name is known to be free on the other
   * processes (best-effort: two processes may admit one name at once).
   */
  #admit(conn: Conn, admission: Admission): void {
    const { name, anonymous, attempt } = admission;
    this.#presence!.lookup(name).then(
      // A holder with the same verified user id is the same user's other tab.
      (holder) => holder === undefined || (conn.userId !== null && holder.userId === conn.userId),
      () => true,
    ).then((free) => {
      if (conn.closing) return;
      if (this.#disposed) {
        return this.#refuse(conn, CloseCode.GoingAway, CloseReason.ServerShuttingDown);
      }
      const freeHere = this.#nameAvailable(name, conn.userId);
      let admitted = name;
      if (!free || !freeHere) {
        if (anonymous && attempt < 5) {
          const next = { ...admission, name: this.#anonymousName(), attempt: attempt + 1 };
          return this.#admit(conn, next);
        }
        // Only a holder on another process can be on its way out.
        if (!anonymous && freeHere && attempt < NAME_RECHECKS) {
          return this.#recheck(conn, { ...admission, attempt: attempt + 1 });
        }
        if (!anonymous) {
          return this.#refuse(conn, CloseCode.UsernameInUse, CloseReason.UsernameInUse);
        }
        admitted = this.#anonymousName();
      }
      const held = conn.held ?? [];
      conn.held = null;
      this.#setName(conn, admitted);
      this.#register(conn);
      this.#enterRoom(conn, admission.room, admission.since, true);
      for (const data of held) this.#receive(conn, data);
    });
  }

  /** Tries {@linkcode ConnectionManager.#admit} again after {@linkcode NAME_RECHECK_MS}. */
  #recheck(conn: Conn, admission: Admission): void {
    const timer = this.#scheduler.setTimeout(() => {
      this.#rechecks.delete(conn);
      this.#admit(conn, admission);
    }, NAME_RECHECK_MS);
    this.#rechecks.set(conn, timer);
  }

  /** `since`, or {@linkcode STALE_SINCE} when the client's epoch is not the engine's. */
  #since(since: number | undefined, epoch: string | undefined): number | undefined {
    if (since === undefined || epoch === undefined || epoch === this.#engine.epoch) return since;
    return STALE_SINCE;
  }

  /** Unique users in a room, in order of arrival. */
  users(room: string): string[] {
    const members = this.#rooms.get(room);
    if (members === undefined) return [];
    const names = new Set<string>();
    for (const c of members) names.add(c.username);
    return [...names];
  }

  /**
   * Unique users of a room on every process sharing the engine: the local
   * ones in order of arrival, then the others. Local only when the engine
   * has no presence or its store is unavailable.
   */
  allUsers(room: string): Promise<string[]> {
    if (this.#presence === undefined) return Promise.resolve(this.users(room));
    return this.#presence.users(room).then(
      (everywhere) => this.#union(this.users(room), everywhere),
      () => this.users(room),
    );
  }

  #union(local: string[], everywhere: readonly string[]): string[] {
    const seen = new Set(local.map(nameKey));
    return local.concat(everywhere.filter((name) => !seen.has(nameKey(name))));
  }

  /** Every room with local members. */
  rooms(): RoomInfo[] {
    return [...this.#rooms.keys()].map((room) => {
      const users = this.users(room);
      return { room, users, connected_count: users.length };
    });
  }

  /** Every connection, for operators. */
  connections(): ConnectionInfo[] {
    return [...this.#connections.values()].map((c) => ({
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

  /** Whether a user with this name is connected here. */
  isOnline(username: string): boolean {
    return this.#byName.has(nameKey(username));
  }

  /**
   * Publishes a system notice to a room (stored like any room frame).
   * Resolves with the stored frame.
   */
  announce(room: string, event: SystemEvent, message: string, user?: string): Promise<StoredFrame> {
    return this.#publishNotice(room, this.#systemDraft(room, event, message, user));
  }

  /**
   * Rooms with a notice waiting for its count: their publishes wait behind
   * it, so the notice keeps its place in the room's order.
   */
  #noticeWaits = new Map<string, Promise<void>>();

  /**
   * Stores and fans out a system notice; its `connected_count` counts the
   * room's users on every process when the engine has presence (never less
   * than the local count, which the draft holds).
   */
  #publishNotice(room: string, draft: Draft): Promise<StoredFrame> {
    const presence = this.#presence;
    if (presence === undefined || draft.type !== "system") return this.#storeNotice(room, draft);
    let stored: Promise<StoredFrame> | undefined;
    const before = this.#noticeWaits.get(room) ?? Promise.resolve();
    const wait: Promise<void> = before.then(() => presence.users(room)).catch(() => undefined)
      .then((users) => {
        const count = users === undefined ? 0 : this.#union(this.users(room), users).length;
        if (count > draft.connected_count) draft.connected_count = count;
        stored = this.#storeNotice(room, draft);
        if (this.#noticeWaits.get(room) === wait) this.#noticeWaits.delete(room);
      });
    this.#noticeWaits.set(room, wait);
    return wait.then(() => stored!);
  }

  /** Publishes a notice as it is; the engine takes it in call order. */
  async #storeNotice(room: string, draft: Draft): Promise<StoredFrame> {
    const payload = JSON.stringify(draft);
    const position = await this.#engine.publish(room, payload, STORED);
    return JSON.parse(stampId(position!.offset, payload)) as StoredFrame;
  }

  /**
   * Closes every connection of a user with the given code and reason.
   * Returns how many connections were closed.
   */
  disconnectUser(username: string, code: number, reason: string): number {
    const conns = this.#byName.get(nameKey(username));
    if (conns === undefined) return 0;
    const list = [...conns];
    for (const c of list) this.#drop(c, code, reason);
    return list.length;
  }

  /**
   * Refuses new connections under this name, and under the verified user ids
   * of its current connections, until `untilMs`. Closes nothing: see
   * {@linkcode ConnectionManager.kick}.
   */
  ban(username: string, options: BanOptions): void {
    // The ids of the user's open tabs, so logging in under a new name does not escape the ban.
    const userIds: string[] = [];
    for (const c of this.#byName.get(nameKey(username)) ?? []) {
      if (c.userId !== null) userIds.push(c.userId);
    }
    this.#bans.ban(username, { untilMs: options.untilMs, userIds });
    this.#log.info("ban", {
      username,
      until: new Date(options.untilMs).toISOString(),
      reason: options.reason,
    });
  }

  /** Lifts a ban; returns whether there was one. */
  unban(username: string): boolean {
    return this.#bans.unban(username);
  }

  /**
   * Publishes a `kick` notice to every room of the user, then closes each of
   * its connections with 4003. Returns how many connections were closed.
   */
  async kick(username: string, options: KickOptions = {}): Promise<number> {
    const conns = this.#byName.get(nameKey(username));
    if (conns === undefined) return 0;
    const name = conns[0]?.username ?? username;
    const rooms = new Set<string>();
    for (const c of conns) for (const room of c.rooms) rooms.add(room);
    const verb = options.banned ? "banned" : "kicked";
    const message = `${name} was ${verb}${options.reason ? `: ${options.reason}` : ""}`;
    // The notice goes first so the user sees why the socket closes.
    await Promise.all(
      [...rooms].map((room) =>
        this.announce(room, "kick", message, name)
          .catch((error) => this.#log.warn("notice_failed", { room, error: String(error) }))
      ),
    );
    return this.disconnectUser(
      name,
      CloseCode.Kicked,
      options.banned ? CloseReason.Banned : CloseReason.Kicked,
    );
  }

  /**
   * Removes every member from a room after a notice; sockets left in no room
   * are closed with 4001. Returns how many connections were in the room.
   */
  async closeRoom(room: string, reason: string): Promise<number> {
    const members = this.#rooms.get(room);
    if (members === undefined) return 0;
    const list = [...members];
    await this.announce(room, "close", reason).catch(() => undefined);
    for (const c of list) {
      this.#leaveRoom(c, room, false);
      if (c.rooms.length === 0) this.#drop(c, CloseCode.RoomClosed, CloseReason.RoomClosed);
      else this.#send(c, { type: "left", room });
    }
    return list.length;
  }

  /** Closes every connection without notices, for shutdown. */
  closeAll(code: number, reason: string): void {
    for (const [c, timer] of this.#rechecks) {
      this.#scheduler.clearTimeout(timer);
      this.#refuse(c, code, reason);
    }
    this.#rechecks.clear();
    for (const c of [...this.#connections.values()]) this.#drop(c, code, reason, false);
    // Shutdown cannot wait for a later tick: close now.
    for (const [c, pending] of this.#closeTimers) {
      this.#scheduler.clearTimeout(pending.timer);
      this.#closeSocket(c, pending.code, pending.reason);
    }
    this.#closeTimers.clear();
  }

  /** Closes every socket with 1001 and disposes the engine. */
  async [Symbol.asyncDispose](): Promise<void> {
    if (this.#disposed) return;
    this.#disposed = true;
    this.closeAll(CloseCode.GoingAway, CloseReason.ServerShuttingDown);
    if (this.#sweep !== undefined) this.#scheduler.clearInterval(this.#sweep);
    this.#sweep = undefined;
    await this.#started.catch(() => undefined);
    await this.#engine[Symbol.asyncDispose]();
  }

  // -------------------------------------------------------------------------
  // Registry

  #anonymousName(): string {
    let name: string;
    do name = `User ${++this.#anonymous}`; while (this.#byName.has(nameKey(name)));
    return name;
  }

  #nameAvailable(name: string, userId: string | null): boolean {
    const holders = this.#byName.get(nameKey(name));
    if (holders === undefined) return true;
    // Several tabs of one verified user share a name.
    if (userId === null) return false;
    for (const c of holders) if (c.userId !== userId) return false;
    return true;
  }

  /** Gives up the connection's name; the last holder stops following its private channel. */
  #releaseName(conn: Conn): void {
    if (conn.key === "") return;
    const holders = this.#byName.get(conn.key);
    if (holders === undefined) return;
    const at = holders.indexOf(conn);
    if (at >= 0) holders.splice(at, 1);
    if (holders.length === 0) {
      this.#byName.delete(conn.key);
      this.#engine.unsubscribe(userChannel(conn.key));
      this.#presence?.disconnect(conn.username);
    }
  }

  #setName(conn: Conn, name: string): void {
    this.#releaseName(conn);
    conn.username = name;
    conn.key = nameKey(name);
    const holders = this.#byName.get(conn.key);
    if (holders !== undefined) {
      holders.push(conn);
      return;
    }
    // A literal of one: a push onto [] would reserve room for 17.
    this.#byName.set(conn.key, [conn]);
    this.#engine.subscribe(userChannel(conn.key));
    this.#presence?.connect(name, conn.userId);
  }

  #register(conn: Conn): void {
    this.#connections.set(conn.id, conn);
    if (conn.remoteAddr !== "") {
      this.#perAddress.set(conn.remoteAddr, (this.#perAddress.get(conn.remoteAddr) ?? 0) + 1);
    }
    this.#metrics.connectionsTotal++;
    if (conn.heartbeat) {
      this.#heartbeats.add(conn);
      this.#startSweep();
    }
    this.#log.info("connect", {
      conn: conn.id,
      username: conn.username || undefined,
      remote: conn.remoteAddr,
      mode: conn.echo ? "echo" : "chat",
    });
  }

  #refuse(conn: Conn, code: number, reason: string): void {
    conn.closing = true;
    this.#metrics.close(code);
    this.#log.info("refuse", { remote: conn.remoteAddr, code, reason });
    this.#deferClose(conn, code, reason);
  }

  /** Ends a connection now: registry, rooms and notices; the socket closes on a later tick. */
  #drop(conn: Conn, code: number, reason: string, notify = true): void {
    if (conn.closing) return;
    conn.closing = true;
    this.#metrics.close(code);
    this.#unregister(conn, code, notify);
    this.#deferClose(conn, code, reason);
  }

  #deferClose(conn: Conn, code: number, reason: string): void {
    // Deno may let a close overtake sends made in the same tick.
    const timer = this.#scheduler.setTimeout(() => {
      this.#closeTimers.delete(conn);
      this.#closeSocket(conn, code, reason);
    }, 0);
    this.#closeTimers.set(conn, { timer, code, reason });
  }

  #closeSocket(conn: Conn, code: number, reason: string): void {
    // What the connection was told last (an error, a notice) goes out before the close.
    this.#flushConn(conn);
    const socket = conn.socket;
    try {
      if (socket.readyState < 2) socket.close(code, reason);
    } catch {
      // Already closed by the peer.
    }
  }

  #closed(conn: Conn, code: number): void {
    if (conn.closing) return;
    conn.closing = true;
    const recheck = this.#rechecks.get(conn);
    if (recheck !== undefined) {
      this.#scheduler.clearTimeout(recheck);
      this.#rechecks.delete(conn);
    }
    this.#metrics.close(code);
    this.#unregister(conn, code, true);
  }

  #unregister(conn: Conn, code: number, notify: boolean): void {
    if (!this.#connections.delete(conn.id)) return;
    const open = (this.#perAddress.get(conn.remoteAddr) ?? 0) - 1;
    if (open > 0) this.#perAddress.set(conn.remoteAddr, open);
    else this.#perAddress.delete(conn.remoteAddr);
    this.#heartbeats.delete(conn);
    for (const room of conn.rooms) this.#leaveRoom(conn, room, notify);
    this.#releaseName(conn);
    conn.queue = null;
    this.#log.info("disconnect", { conn: conn.id, username: conn.username || undefined, code });
  }

  // -------------------------------------------------------------------------
  // Rooms

  #enterRoom(conn: Conn, room: string, since: number | undefined, welcome: boolean): void {
    let members = this.#rooms.get(room);
    if (members === undefined) {
      members = new Set();
      this.#rooms.set(room, members);
      this.#engine.subscribe(room);
    }
    const firstTab = !this.#userInRoom(conn, room);
    members.add(conn);
    // Exact length, unlike a push: most connections stay in one room.
    conn.rooms = conn.rooms.concat(room);
    (conn.pendingRooms ??= new Set()).add(room);
    if (conn.queue === null) conn.queue = [];
    if (firstTab) {
      // Before the notice, so its connected_count includes the user.
      this.#presence?.join(room, conn.username);
      this.announce(room, "join", `${conn.username} joined the room`, conn.username)
        .catch((error) => this.#log.warn("notice_failed", { room, error: String(error) }));
    }
    this.#replay(conn, room, since, welcome);
  }

  /**
   * Reads a room's history (the recent tail, or what followed `since`) and
   * sends it as `welcome` or `joined`; the room's live frames wait meanwhile.
   */
  #replay(conn: Conn, room: string, since: number | undefined, welcome: boolean): void {
    // A stale `since` (another epoch) gets the recent tail, like a first visit.
    const query = since === undefined || since === STALE_SINCE
      ? { limit: this.#historyOnJoin }
      : { after: since, limit: this.#historyLimit };
    const everywhere = this.#presence?.users(room).catch(() => undefined);
    this.#engine.history(room, query).then(
      (page) => {
        const { publications: pubs, complete } = page;
        // Stamped once per stored payload; the welcome splices them in unparsed.
        const texts = pubs.map((p) => stampId(p.offset, p.payload));
        const history = { texts, lastId: pubs.at(-1)?.offset ?? 0 };
        this.#sendHistoryWith(everywhere, { conn, room, since, welcome, history, complete });
      },
      (error) => {
        this.#log.warn("history_failed", { room, error: String(error) });
        const history = { texts: [], lastId: 0 };
        this.#sendHistoryWith(everywhere, { conn, room, since, welcome, history, complete: false });
      },
    );
  }

  /** Sends history once the users of every process are known (at once without presence). */
  #sendHistoryWith(everywhere: Promise<string[] | undefined> | undefined, replay: Replay): void {
    if (everywhere === undefined) return this.#sendHistory(replay);
    everywhere.then((users) => this.#sendHistory(replay, users));
  }

  #sendHistory(replay: Replay, everywhere?: readonly string[]): void {
    const { conn, room, since, history, complete, welcome } = replay;
    if (conn.closing || !conn.rooms.includes(room)) return;
    const users = everywhere === undefined
      ? this.users(room)
      : this.#union(this.users(room), everywhere);
    const recovered = since === undefined ? true : since !== STALE_SINCE && complete;
    const epoch = this.#engine.epoch;
    const send = (frame: WelcomeFrame | JoinedFrame) =>
      this.#sendText(conn, spliceHistory(frame, history.texts));
    if (welcome) {
      send({
        type: "welcome",
        id: conn.id,
        username: conn.username,
        room,
        users,
        heartbeat: conn.heartbeat
          ? { interval_ms: this.#interval, timeout_ms: this.#timeout }
          : null,
        server_time: new Date(this.#clock.now()).toISOString(),
        history: [],
        recovered,
        epoch,
        limits: { max_message_bytes: this.#maxBytes },
      });
      conn.welcomed = true;
    } else {
      send({ type: "joined", room, users, history: [], recovered, epoch });
    }
    const cursor = Math.max(since ?? 0, history.lastId);
    const pending = conn.pendingRooms;
    pending?.delete(room);
    const queue = conn.queue ?? [];
    const rest: Queued[] = [];
    for (const item of queue) {
      if (item.channel === room) {
        if (item.id > cursor) this.#sendText(conn, item.text);
      } else if (pending?.has(item.channel)) {
        rest.push(item);
      } else {
        this.#sendText(conn, item.text);
      }
    }
    if (pending === null || pending.size === 0) {
      conn.pendingRooms = null;
      conn.queue = null;
    } else {
      conn.queue = rest;
    }
  }

  #userInRoom(conn: Conn, room: string): boolean {
    const holders = this.#byName.get(conn.key);
    if (holders === undefined) return false;
    for (const c of holders) if (c !== conn && c.rooms.includes(room)) return true;
    return false;
  }

  #leaveRoom(conn: Conn, room: string, notify: boolean): void {
    const members = this.#rooms.get(room);
    const at = conn.rooms.indexOf(room);
    if (at >= 0) conn.rooms = conn.rooms.toSpliced(at, 1);
    conn.pendingRooms?.delete(room);
    if (members === undefined) return;
    members.delete(conn);
    if (members.size === 0) {
      this.#rooms.delete(room);
      this.#engine.unsubscribe(room);
    }
    const lastTab = !this.#userInRoom(conn, room);
    if (lastTab) this.#presence?.leave(room, conn.username);
    if (notify && lastTab) {
      this.announce(room, "leave", `${conn.username} left the room`, conn.username)
        .catch((error) => this.#log.warn("notice_failed", { room, error: String(error) }));
    }
  }

  #defaultRoom(conn: Conn): string | undefined {
    for (const room of conn.rooms) return room;
    return undefined;
  }

  #systemDraft(room: string, event: SystemEvent, message: string, user?: string): Draft {
    return {
      type: "system",
      room,
      event,
      message,
      username: SYSTEM_SENDER,
      sender: SYSTEM_SENDER,
      ...(user === undefined ? {} : { user }),
      connected_count: this.users(room).length,
      timestamp: new Date(this.#clock.now()).toISOString(),
    };
  }

  // -------------------------------------------------------------------------
  // Fan-out

  /** Whether a fan-out is running. */
  #fanning = false;
  /** Deliveries that arrived during a fan-out; null when none did. */
  #pendingDeliveries: [string, string, number][] | null = null;

  /**
   * Receives a publication from the engine: a stored one gets its offset
   * spliced in as the id, once per message on this process, never per
   * recipient; an ephemeral one goes out as published.
   */
  #deliver(channel: string, payload: string, offset?: number): void {
    const text = offset === undefined ? payload : stampId(offset, payload);
    const id = offset ?? 0;
    // A fan-out may publish (a slow consumer's leave notice) and a synchronous
    // engine delivers that at once: finish the current frame first so every
    // member sees ids in order.
    if (this.#fanning) {
      (this.#pendingDeliveries ??= []).push([channel, text, id]);
      return;
    }
    this.#fanning = true;
    try {
      this.#fanOut(channel, text, id);
      // Only a re-entrant delivery allocates: the common path stays garbage-free.
      const pending = this.#pendingDeliveries;
      if (pending !== null) {
        // Entries pushed while draining are drained too, in order.
        for (let i = 0; i < pending.length; i++) {
          const [c, t, n] = pending[i]!;
          this.#fanOut(c, t, n);
        }
      }
    } finally {
      this.#fanning = false;
      this.#pendingDeliveries = null;
    }
  }

  /** Sends one delivery to the members of a room, or to the holders of a user channel's name. */
  #fanOut(channel: string, text: string, id: number): void {
    let delivered = 0;
    let bytes = 0;
    if (isUserChannel(channel)) {
      const holders = this.#byName.get(channel.slice(1));
      if (holders === undefined) return;
      bytes = byteLength(text);
      // Not through #deliverAll: an array there would make its loop over room Sets
      // polymorphic. A copy, since dropping a slow consumer splices the original.
      for (const c of [...holders]) delivered += this.#deliverTo(c, channel, id, text, bytes);
    } else {
      // A pair channel has no members: its frames travel on user channels.
      const members = this.#rooms.get(channel);
      if (members === undefined) return;
      bytes = byteLength(text);
      delivered = this.#deliverAll(members, channel, id, text, bytes);
    }
    const m = this.#metrics;
    m.broadcasts++;
    m.deliveries += delivered;
    m.framesOut += delivered;
    m.bytesOut += delivered * bytes;
  }

  /**
   * Delivers to every member; returns how many got it. A loop of its own:
   * inside the larger #fanOut, V8 left the Set iterator unoptimised and
   * allocated a result object per member.
   */
  #deliverAll(
    members: Set<Conn>,
    channel: string,
    id: number,
    text: string,
    bytes: number,
  ): number {
    let delivered = 0;
    for (const c of members) delivered += this.#deliverTo(c, channel, id, text, bytes);
    return delivered;
  }

  /** Sends or queues one delivery; returns 1 when handed to the socket. */
  #deliverTo(c: Conn, channel: string, id: number, text: string, bytes: number): number {
    // Before welcome every frame waits; afterwards only rooms sending history do.
    if (c.queue !== null && (!c.welcomed || c.pendingRooms?.has(channel) === true)) {
      c.queue.push({ channel, id, text });
      return 0;
    }
    if (c.closing || c.socket.readyState !== OPEN) return 0;
    this.#write(c, text, bytes);
    return 1;
  }

  /** Sends one frame, or adds it to the connection's batch. */
  #write(c: Conn, text: string, bytes: number): void {
    c.framesOut++;
    const out = c.out;
    if (out === null) {
      c.socket.send(text);
      this.#checkBuffered(c, bytes);
      return;
    }
    // A batch stays under the largest frame a client could be expected to take whole.
    if (out.length > 0 && c.outBytes + 1 + bytes > MAX_BATCH_BYTES) this.#flushConn(c);
    if (out.length === 0) {
      this.#dirty.push(c);
      c.outBytes = bytes;
    } else {
      c.outBytes += 1 + bytes;
    }
    out.push(text);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      // A microtask runs once the frames already received in this turn of
      // the event loop are handled, so the batch costs no latency.
      queueMicrotask(this.#flush);
    }
  }

  /** Connections with frames in their batch, in the order they got the first. */
  #dirty: Conn[] = [];
  #flushQueued = false;

  /** Sends every pending batch. */
  #flush = (): void => {
    this.#flushQueued = false;
    const dirty = this.#dirty;
    // Flushing may drop a slow consumer, whose close notices batch again.
    this.#dirty = [];
    for (let i = 0; i < dirty.length; i++) this.#flushConn(dirty[i]!);
  };

  /** Sends one connection's batch as one frame. */
  #flushConn(c: Conn): void {
    const out = c.out;
    if (out === null || out.length === 0) return;
    const text = out.length === 1 ? out[0]! : out.join("\n");
    const bytes = c.outBytes;
    out.length = 0;
    c.outBytes = 0;
    // Not `closing`: an error frame queued just before a drop still goes out first.
    if (c.socket.readyState !== OPEN) return;
    c.socket.send(text);
    this.#checkBuffered(c, bytes);
  }

  /**
   * Closes a slow consumer: reads the socket's buffer only when the bytes
   * sent since the last read could have taken it past the limit, since it
   * grows by nothing else (see {@linkcode ChatSocket.bufferedAmount}).
   */
  #checkBuffered(c: Conn, bytes: number): void {
    if ((c.bufferedBound += bytes) <= this.#maxBuffered) return;
    c.bufferedBound = c.socket.bufferedAmount;
    if (c.bufferedBound > this.#maxBuffered) this.#slow(c);
  }

  #slow(c: Conn): void {
    this.#metrics.slowConsumerCloses++;
    this.#log.warn("slow_consumer", { conn: c.id, buffered: c.socket.bufferedAmount });
    this.#drop(c, CloseCode.SlowConsumer, CloseReason.SlowConsumer);
  }

  /** Sends a frame to one connection; `force` skips the pre-welcome queue. */
  #send(conn: Conn, frame: ServerMessage, force = false): void {
    const text = JSON.stringify(frame);
    if (!force && conn.queue !== null && !conn.welcomed) {
      conn.queue.push({ channel: "", id: 0, text });
      return;
    }
    this.#sendText(conn, text);
  }

  /** Sends one frame; `bytes`, its UTF-8 length, may be passed when already known. */
  #sendText(conn: Conn, text: string, bytes?: number): void {
    if (conn.closing || conn.socket.readyState !== OPEN) return;
    const size = bytes ?? byteLength(text);
    this.#metrics.framesOut++;
    this.#metrics.bytesOut += size;
    this.#write(conn, text, size);
  }

  #error(conn: Conn, code: ErrorCode, message: string): void {
    this.#metrics.error(code);
    const frame: ErrorFrame = { type: "error", code, message };
    this.#send(conn, frame);
  }

  // -------------------------------------------------------------------------
  // Receiving

  #receive(conn: Conn, data: string | ArrayBuffer | Blob | Uint8Array): void {
    if (conn.closing) return;
    if (conn.held !== null) {
      if (conn.held.length >= this.#burst) {
        return this.#drop(conn, CloseCode.PolicyViolation, CloseReason.RateLimitExceeded);
      }
      conn.held.push(data);
      return;
    }
    const now = this.#clock.now();
    conn.lastSeen = now;
    conn.framesIn++;
    this.#metrics.framesIn++;
    if (typeof data !== "string") {
      const size = data instanceof Blob ? data.size : data.byteLength;
      this.#metrics.bytesIn += size;
      if (size > this.#maxBytes) return this.#tooBig(conn, size);
      if (!this.#allow(conn, now)) return;
      return this.#error(conn, Errors.BinaryNotSupported, "Binary frames are not supported");
    }
    // A UTF-16 unit is 1 to 3 UTF-8 bytes, so encode only when in doubt.
    let bytes = data.length;
    if (bytes * 3 > this.#maxBytes) {
      bytes = data.length > this.#maxBytes ? data.length : encoder.encode(data).length;
      if (bytes > this.#maxBytes) {
        this.#metrics.bytesIn += bytes;
        return this.#tooBig(conn, bytes);
      }
    }
    this.#metrics.bytesIn += bytes;
    if (!this.#allow(conn, now)) return;
    if (conn.echo) {
      this.#sendText(conn, `Echo: ${data}`);
      return;
    }
    const parsed = parseClientMessage(data);
    if (!parsed.ok) return this.#error(conn, parsed.code, parsed.message);
    this.#handle(conn, parsed.value, now);
  }

  #tooBig(conn: Conn, bytes: number): void {
    this.#log.info("frame_too_big", { conn: conn.id, bytes });
    this.#drop(conn, CloseCode.MessageTooBig, CloseReason.MessageTooBig);
  }

  /** The token bucket: true when the frame may pass. */
  #allow(conn: Conn, now: number): boolean {
    if (takeToken(conn, now, this.#ratePerMs, this.#burst) === 0) {
      conn.strikes = 0;
      return true;
    }
    this.#metrics.rateLimited++;
    // A client that keeps sending while empty is flooding, not bursting.
    if (++conn.strikes > this.#burst) {
      this.#drop(conn, CloseCode.PolicyViolation, CloseReason.RateLimitExceeded);
    } else {
      this.#error(conn, Errors.RateLimited, "Too many frames; slow down");
    }
    return false;
  }

  #isoMs = NaN;
  #iso = "";

  /** `new Date(ms).toISOString()`, formatted once per millisecond: busy rooms send many per ms. */
  #isoTime(ms: number): string {
    if (ms !== this.#isoMs) {
      this.#iso = new Date(ms).toISOString();
      this.#isoMs = ms;
    }
    return this.#iso;
  }

  #handle(conn: Conn, msg: ClientMessage, now: number): void {
    switch (msg.type) {
      case "message": {
        const room = msg.room ?? this.#defaultRoom(conn);
        if (room === undefined || !conn.rooms.includes(room)) {
          return this.#error(conn, Errors.NotInRoom, `Not in room: ${room ?? "(none)"}`);
        }
        return this.#publish(conn, room, {
          type: "message",
          room,
          username: conn.username,
          sender: conn.username,
          message: msg.message,
          timestamp: this.#isoTime(now),
        });
      }
      case "private": {
        // The same rules as a name, so any spelling that connects as José reaches José.
        const to = normalizeName(msg.to);
        const first = to === undefined ? undefined : this.#byName.get(nameKey(to))?.[0];
        const room = msg.room ?? this.#defaultRoom(conn) ?? DEFAULT_ROOM;
        if (first === undefined && to !== undefined && this.#presence !== undefined) {
          return this.#privateElsewhere(conn, to, room, msg.message, now);
        }
        if (first === undefined) {
          return this.#error(conn, Errors.UserNotFound, `User not online: ${msg.to.slice(0, 64)}`);
        }
        return this.#publishPrivate(conn, first.key, {
          type: "private",
          room,
          username: conn.username,
          sender: conn.username,
          to: first.username,
          message: msg.message,
          timestamp: this.#isoTime(now),
        });
      }
      case "rename":
        return this.#rename(conn, msg.name);
      case "heartbeat":
        return this.#send(conn, {
          type: "heartbeat_ack",
          server_time: new Date(now).toISOString(),
        });
      case "pong":
        return;
      case "join":
      case "resume":
        return this.#join(conn, msg.room, this.#since(msg.since, msg.epoch), msg.type === "resume");
      case "leave": {
        const room = normalizeName(msg.room);
        if (room === undefined || !conn.rooms.includes(room)) {
          return this.#error(conn, Errors.NotInRoom, `Not in room: ${msg.room.slice(0, 64)}`);
        }
        this.#leaveRoom(conn, room, true);
        return this.#send(conn, { type: "left", room });
      }
      case "users": {
        const room = msg.room === undefined ? this.#defaultRoom(conn) : normalizeName(msg.room);
        if (room === undefined || !conn.rooms.includes(room)) {
          return this.#error(
            conn,
            Errors.NotInRoom,
            `Not in room: ${msg.room?.slice(0, 64) ?? "(none)"}`,
          );
        }
        if (this.#presence !== undefined) {
          this.allUsers(room).then((users) =>
            this.#send(conn, { type: "users", room, users, connected_count: users.length })
          );
          return;
        }
        const users = this.users(room);
        return this.#send(conn, { type: "users", room, users, connected_count: users.length });
      }
    }
  }

  /** A private message to a user who is not on this process but may be on another. */
  #privateElsewhere(conn: Conn, to: string, room: string, message: string, now: number): void {
    this.#presence!.lookup(to).then(
      (holder) => {
        if (conn.closing) return;
        const name = holder?.username;
        if (name === undefined) {
          return this.#error(conn, Errors.UserNotFound, `User not online: ${to.slice(0, 64)}`);
        }
        this.#publishPrivate(conn, nameKey(name), {
          type: "private",
          room,
          username: conn.username,
          sender: conn.username,
          to: name,
          message,
          timestamp: new Date(now).toISOString(),
        });
      },
      () => {
        if (!conn.closing) this.#error(conn, Errors.Unavailable, "Message not stored; try again");
      },
    );
  }

  /** Created on the first failure, so a manager that never fails pays nothing. */
  #publishFailures: LogThrottle | undefined;

  /** Logs a failed publish; during an outage one line per interval, with a count. */
  #publishFailed(channel: string, error: unknown): void {
    this.#publishFailures ??= new LogThrottle({ logger: this.#log, clock: this.#clock });
    this.#publishFailures.warn("publish_failed", { channel, error: String(error) });
  }

  /**
   * Stores a room message and fans it out: its JSON is built here once,
   * without an id, and every process splices the offset in on delivery.
   */
  #publish(conn: Conn, room: string, draft: Draft): void {
    const waiting = this.#noticeWaits.size === 0 ? undefined : this.#noticeWaits.get(room);
    if (waiting !== undefined) {
      waiting.then(() => this.#publish(conn, room, draft));
      return;
    }
    const started = performance.now();
    this.#engine.publish(room, JSON.stringify(draft), STORED).then(
      () => this.#metrics.observeFanout((performance.now() - started) / 1000),
      (error) => {
        this.#publishFailed(room, error);
        this.#error(conn, Errors.Unavailable, "Message not stored; try again");
      },
    );
  }

  /**
   * Stores a private message in the history of its pair, then sends the
   * stamped frame to the user channels of the recipient and the sender
   * (the sender's echo is the acknowledgement).
   */
  #publishPrivate(conn: Conn, toKey: string, draft: Draft): void {
    const started = performance.now();
    const payload = JSON.stringify(draft);
    const pair = privateChannel(conn.key, toKey);
    this.#engine.publish(pair, payload, STORED).then(
      (position) => {
        const text = stampId(position!.offset, payload);
        const sends = [this.#engine.publish(userChannel(toKey), text)];
        if (toKey !== conn.key) sends.push(this.#engine.publish(userChannel(conn.key), text));
        return Promise.all(sends);
      },
    ).then(
      () => this.#metrics.observeFanout((performance.now() - started) / 1000),
      (error) => {
        this.#publishFailed(pair, error);
        this.#error(conn, Errors.Unavailable, "Message not stored; try again");
      },
    );
  }

  #join(conn: Conn, raw: string, since: number | undefined, resume: boolean): void {
    const room = normalizeName(raw);
    if (room === undefined) {
      return this.#error(conn, Errors.InvalidRoom, `Invalid room name: ${raw.slice(0, 64)}`);
    }
    if (conn.rooms.includes(room)) {
      if (!resume && since === undefined) {
        const users = this.users(room);
        const epoch = this.#engine.epoch;
        return this.#send(conn, {
          type: "joined",
          room,
          users,
          history: [],
          recovered: true,
          epoch,
        });
      }
      // Resume inside a room: replay what was missed without a second join notice.
      (conn.pendingRooms ??= new Set()).add(room);
      if (conn.queue === null) conn.queue = [];
      this.#replay(conn, room, since, false);
      return;
    }
    if (conn.rooms.length >= this.#maxRooms) {
      return this.#error(conn, Errors.TooManyRooms, `Too many rooms: ${this.#maxRooms}`);
    }
    this.#enterRoom(conn, room, since, false);
  }

  #rename(conn: Conn, raw: string): void {
    if (this.#authenticated) {
      return this.#error(conn, Errors.NotAllowed, "Names come from the token; rename is off");
    }
    const name = normalizeName(raw);
    if (name === undefined || isReservedName(name)) {
      return this.#error(conn, Errors.InvalidName, `Invalid username: ${raw.slice(0, 64)}`);
    }
    // A ban is checked on connect; without this a banned name comes back by a rename.
    if (this.#bans.isBanned(name, { userId: conn.userId, now: this.#clock.now() })) {
      return this.#error(conn, Errors.Banned, `Username is banned: ${name}`);
    }
    if (name === conn.username) return;
    const holders = this.#byName.get(nameKey(name));
    if (holders !== undefined && !(holders.length === 1 && holders[0] === conn)) {
      return this.#error(conn, Errors.NameTaken, `Username already in use: ${name}`);
    }
    if (this.#presence === undefined) return this.#applyRename(conn, name);
    // Best-effort across processes: two may grant one name at the same time.
    this.#presence.lookup(name).catch(() => undefined).then((holder) => {
      if (conn.closing || name === conn.username) return;
      const local = this.#byName.get(nameKey(name));
      if (
        (holder !== undefined && nameKey(holder.username) !== conn.key) ||
        (local !== undefined && !(local.length === 1 && local[0] === conn))
      ) {
        return this.#error(conn, Errors.NameTaken, `Username already in use: ${name}`);
      }
      this.#applyRename(conn, name);
    });
  }

  #applyRename(conn: Conn, name: string): void {
    const old = conn.username;
    this.#setName(conn, name);
    this.#log.info("rename", { conn: conn.id, from: old, to: name });
    for (const room of conn.rooms) {
      this.#presence?.leave(room, old);
      this.#presence?.join(room, name);
      const draft = this.#systemDraft(room, "rename", `${old} is now ${name}`, name);
      (draft as { old_name?: string }).old_name = old;
      this.#publishNotice(room, draft)
        .catch((error) => this.#log.warn("notice_failed", { room, error: String(error) }));
    }
  }

  // -------------------------------------------------------------------------
  // Heartbeat

  #startSweep(): void {
    if (this.#sweep !== undefined || this.#disposed) return;
    // One timer for every socket; a tick a fraction of the interval keeps the
    // ping cadence and timeout within a second of their settings.
    const tick = Math.max(10, Math.min(1000, Math.floor(this.#interval / 4)));
    this.#sweep = this.#scheduler.setInterval(() => this.sweep(), tick);
  }

  /** Sends due pings and closes silent sockets; runs on the scheduler. */
  sweep(): void {
    const now = this.#clock.now();
    let ping: string | undefined;
    let pingBytes = 0;
    for (const c of this.#heartbeats) {
      if (now - c.lastSeen >= this.#timeout) {
        this.#metrics.heartbeatTimeouts++;
        this.#log.info("heartbeat_timeout", { conn: c.id, username: c.username });
        this.#drop(c, CloseCode.HeartbeatTimeout, CloseReason.HeartbeatTimeout);
      } else if (now - c.lastPing >= this.#interval) {
        if (ping === undefined) {
          ping = JSON.stringify({ type: "ping", server_time: new Date(now).toISOString() });
          pingBytes = byteLength(ping);
        }
        c.lastPing = now;
        this.#sendText(c, ping, pingBytes);
      }
    }
  }
}
