/**
 * `ChatClient`: the whole chat protocol for Deno and the browser, with typed
 * events. It reconnects with backoff and jitter, resumes every room with
 * `since` and the epoch so nothing is lost or shown twice, reads batched
 * frames, answers and sends the heartbeat, and queues what is sent while
 * disconnected or rate limited, reporting each message's fate.
 *
 * @module
 */

import {
  CloseCode,
  type ConversationFrame,
  DEFAULT_ROOM,
  type ErrorFrame,
  type HeartbeatInfo,
  type HistoryFrame,
  type JoinedFrame,
  type LeftFrame,
  type MessageFrame,
  nameKey,
  type PrivateFrame,
  type RoomFrame,
  roomName,
  type ServerMessage,
  TYPING_INTERVAL_MS,
  type UsersFrame,
  type WelcomeFrame,
} from "../chat/protocol.ts";
import { reconnectDelay } from "./backoff.ts";
import { isFinalClose } from "./close_labels.ts";
import { Conversations } from "./conversations.ts";
import { Emitter, type Unsubscribe } from "./emitter.ts";
import {
  type ChatClientEvents,
  type ChatClientOptions,
  ChatError,
  type ConnectionState,
  type StateEvent,
} from "./events.ts";
import { Pacer } from "./pacer.ts";
import { type ReadPosition, ReadState } from "./read_state.ts";
import { RoomLog } from "./room_log.ts";
import { type Fate, type Outgoing, type Sending, sending, SendQueue } from "./send_queue.ts";
import { TIMERS, type Timers } from "./timers.ts";

// WebSocket.OPEN and CLOSED, without needing a global WebSocket (see the `webSocket` option).
const OPEN = 1;
const CLOSED = 3;
/** Conversations read again after a reconnect: the most recently active. */
const RESUMED_CONVERSATIONS = 5;
/** The longest wait before a message refused as rate limited goes again. */
const RETRY_MAX_MS = 5000;

/** A frame's UTF-8 bytes as sent, with a client id of the longest kind the queue gives. */
function frameBytes(frame: object): number {
  return new TextEncoder().encode(JSON.stringify({ cid: "x".repeat(16), ...frame })).length;
}

/** A room's name as the server spells it (folded), or the name as given when it is invalid. */
function roomKey(room: string): string {
  return roomName(room) ?? room;
}

interface Pending<T> {
  resolve: (value: T) => void;
  reject: (error: ChatError) => void;
}

/**
 * A chat connection that stays connected: create it, subscribe with `on`,
 * then `connect()`.
 *
 * @example
 * ```ts ignore
 * import { ChatClient } from "./mod.ts";
 * const chat = new ChatClient({ url: "http://localhost:8000", username: "alice" });
 * chat.on("message", ({ frame }) => console.log(`${frame.sender}: ${frame.message}`));
 * chat.connect();
 * const fate = await chat.send("hello");
 * console.log(fate.status); // "stored"
 * ```
 */
export class ChatClient {
  readonly #options: ChatClientOptions;
  readonly #timers: Timers;
  readonly #events = new Emitter<ChatClientEvents>();
  readonly #queue: SendQueue;
  readonly #pacer = new Pacer();
  readonly #rooms = new Map<string, RoomLog>();
  readonly #joins = new Map<string, Pending<JoinedFrame> & { room: string }>();
  #rename: (Pending<string> & { cid: string }) | undefined;
  #socket: WebSocket | null = null;
  #state: ConnectionState = "idle";
  #username: string;
  #firstRoom: string;
  #epoch = "";
  #uid = "";
  /** The heartbeat in force: the welcome's, or the last ack's after `setHeartbeatInterval`. */
  #heartbeat: HeartbeatInfo | null = null;
  /** The ping interval asked for with `setHeartbeatInterval`; undefined for the server's own. */
  #beatInterval: number | undefined;
  #welcomed = false;
  /** Whether any socket got a welcome since `connect()`. */
  #everWelcomed = false;
  #attempt = 0;
  #lastFrameAt = 0;
  #maxMessageBytes = Infinity;
  #timer: unknown;
  #pumpTimer: unknown;
  #heartbeatTimer: unknown;
  #seq = 0;
  /** The private conversations seen, by the other person's uid. */
  readonly #talks = new Conversations();
  /** Conversations asked for again after a reconnect, whose frames are `missed`. */
  readonly #resuming = new Set<string>();
  /** When a `typing` frame last went out, per room or `@person`. */
  readonly #typedAt = new Map<string, number>();
  /** Own read positions, the others' receipts, and the `read` frames waiting. */
  readonly #reads: ReadState;

  /** A client that connects when `connect()` is called. */
  constructor(options: ChatClientOptions) {
    // An invalid URL is the caller's mistake: say so now, not on every reconnect.
    new URL(options.url);
    this.#options = options;
    this.#timers = options.timers ?? TIMERS;
    this.#queue = new SendQueue(options.maxQueued ?? 100, this.#timers.random);
    this.#username = options.username ?? "";
    this.#firstRoom = roomKey(options.room ?? DEFAULT_ROOM);
    this.#reads = new ReadState({ timers: this.#timers, write: (f) => this.#write(f) });
  }

  /** The username: the one asked for, then the one the server gave. */
  get username(): string {
    return this.#username;
  }

  /**
   * This user's public identity, from the last welcome ("" before one): own
   * messages carry it as `uid`, across renames, reloads and tabs with one key.
   */
  get uid(): string {
    return this.#uid;
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** The rooms the client is in, the first one first. */
  get rooms(): string[] {
    return [...this.#rooms.keys()];
  }

  /** Messages waiting for their fate. */
  get queued(): number {
    return this.#queue.size;
  }

  /** How many users `room` has (the first room when omitted), as last told. */
  userCount(room?: string): number {
    return this.#rooms.get(roomKey(room ?? this.#firstRoom))?.count ?? 0;
  }

  /** The online users of `room` (the first room when omitted), as last told: a big room's first page. */
  users(room?: string): string[] {
    return [...(this.#rooms.get(roomKey(room ?? this.#firstRoom))?.users ?? [])];
  }

  /** Calls `listener` with every `type` event; returns the function that stops it. */
  on<K extends keyof ChatClientEvents>(
    type: K,
    listener: (payload: ChatClientEvents[K]) => void,
  ): Unsubscribe {
    return this.#events.on(type, listener);
  }

  /** Opens the connection; it reconnects by itself until `close()`. */
  connect(): void {
    if (this.#state !== "idle" && this.#state !== "closed") return;
    this.#attempt = 0;
    this.#everWelcomed = false;
    this.#open();
  }

  /** Reconnects at once when a reconnect is waiting (a tab shown again, the network back). */
  reconnectNow(): void {
    if (this.#state !== "reconnecting") return;
    this.#timers.clearTimeout(this.#timer);
    this.#open();
  }

  /**
   * Closes the connection for good; queued messages are refused with
   * `closed`. The promise resolves once the socket has closed.
   */
  close(): Promise<void> {
    const socket = this.#socket;
    this.#detach();
    this.#timers.clearTimeout(this.#timer);
    this.#end(CloseCode.Normal, "");
    if (socket === null || socket.readyState === CLOSED) return Promise.resolve();
    const closed = new Promise<void>((resolve) =>
      socket.addEventListener("close", () => resolve())
    );
    socket.close(CloseCode.Normal, "Bye");
    return closed;
  }

  /** Closes the client, for `await using`. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  /**
   * Sends a chat message to a room (the first room when omitted), or a
   * private message with `to`. The promise settles with its fate: stored
   * (with the frame as stored) or refused (with the server's code and reason);
   * its `cid` is the client id the stored frame will carry.
   */
  send(text: string, options: { room?: string; to?: string } = {}): Sending {
    if (this.#state === "closed") {
      return sending(
        Promise.resolve({ status: "refused", code: "closed", reason: "Client closed" }),
        "",
      );
    }
    const frame = this.#frame(text, options);
    const tooBig = this.#tooBig(frame);
    if (tooBig !== undefined) return sending(Promise.resolve(tooBig), "");
    const fate = this.#queue.add(frame);
    this.#pump();
    return fate;
  }

  /**
   * The UTF-8 bytes `send(text, options)` would send, client id included:
   * more than the server's `limits.max_message_bytes` is refused.
   */
  messageBytes(text: string, options: { room?: string; to?: string } = {}): number {
    return frameBytes(this.#frame(text, options));
  }

  #frame(text: string, options: { room?: string; to?: string }) {
    const room = roomKey(options.room ?? this.#firstRoom);
    return options.to === undefined
      ? { type: "message" as const, message: text, room }
      : { type: "private" as const, to: options.to, message: text, room };
  }

  /** The refusal of a frame over the server's limit (known from the first welcome). */
  #tooBig(frame: object): Fate | undefined {
    const bytes = frameBytes(frame);
    if (bytes <= this.#maxMessageBytes) return undefined;
    return {
      status: "refused",
      code: "message_too_big",
      reason: `Message too big: ${bytes} bytes`,
    };
  }

  /** Joins a room on the same socket; resolves with the `joined` frame. */
  join(room: string): Promise<JoinedFrame> {
    return new Promise((resolve, reject) => {
      const cid = this.#cid();
      if (!this.#write({ type: "join", room, cid })) {
        reject(new ChatError("closed", "Not connected"));
        return;
      }
      this.#joins.set(cid, { resolve, reject, room: nameKey(room) });
    });
  }

  /** Leaves a room; the `left` event follows. False when not connected. */
  leave(room: string): boolean {
    return this.#write({ type: "leave", room });
  }

  /** Renames this user; resolves with the new name as the server spells it. */
  rename(name: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const cid = this.#cid();
      if (this.#rename !== undefined) {
        reject(new ChatError("rename_pending", `A rename is under way: ${name}`));
        return;
      }
      if (nameKey(name) === nameKey(this.#username) && this.#welcomed) {
        // The server answers nothing to a rename to one's own name.
        resolve(this.#username);
        return;
      }
      if (!this.#write({ type: "rename", name, cid })) {
        reject(new ChatError("closed", "Not connected"));
        return;
      }
      // In no room there is no notice to wait for: the server renamed us or sent an error.
      if (this.#rooms.size === 0) return resolve(name);
      this.#rename = { resolve, reject, cid };
    });
  }

  /**
   * Says this user is typing, in a room (the first when omitted) or to one
   * user with `to`; call it on every key press: it sends at most one frame
   * per TYPING_INTERVAL_MS per room or person, and nothing while not connected.
   */
  typing(options: { room?: string; to?: string } = {}): void {
    const { to } = options;
    const room = roomKey(options.room ?? this.#firstRoom);
    const target = to === undefined ? { room } : { to };
    const key = to === undefined ? room : `@${nameKey(to)}`;
    const now = this.#timers.now();
    if (now - (this.#typedAt.get(key) ?? -Infinity) < TYPING_INTERVAL_MS) return;
    if (this.#write({ type: "typing", ...target })) this.#typedAt.set(key, now);
  }

  /**
   * Asks for the conversation with the person of public uid `other` (a
   * private frame's `uid` or `to_uid`): its latest messages come as
   * `private` events with `replayed`, each once. False when not connected.
   */
  conversation(other: string): boolean {
    return this.#write({ type: "conversation", with: other });
  }

  /**
   * Marks a room (the first when neither is given) or the conversation with
   * the person of uid `with` read up to the newest message received; `to`,
   * their name, lets the server show them a receipt at once. Stored by the
   * server for this identity (a token or a key) and passed to its other
   * tabs; sent at most once per READ_INTERVAL_MS per room or conversation,
   * and after a reconnect when not connected. False when nothing new was read.
   */
  markRead(target: { room?: string; with?: string; to?: string } = {}): boolean {
    const other = target.with;
    const last = other === undefined
      ? this.#rooms.get(roomKey(target.room ?? this.#firstRoom))?.last ?? 0
      : this.#talks.last(other);
    if (last === 0 || this.#epoch === "") return false;
    const to = target.to === undefined ? {} : { to: target.to };
    const where = other === undefined
      ? { room: roomKey(target.room ?? this.#firstRoom) }
      : { with: other, ...to };
    return this.#reads.mark(where, { id: last, epoch: this.#epoch });
  }

  /**
   * How many messages of a room (the first when neither is given) or of the
   * conversation with uid `with` came after this identity's read position,
   * counted by ids; undefined while no position is known.
   */
  unread(target: { room?: string; with?: string } = {}): number | undefined {
    const other = target.with;
    const where = other === undefined
      ? { room: roomKey(target.room ?? this.#firstRoom) }
      : { with: other };
    const position = this.#reads.position(where);
    if (position === undefined || position.epoch !== this.#epoch) return undefined;
    const last = other === undefined
      ? this.#rooms.get(where.room ?? "")?.last ?? 0
      : this.#talks.last(other);
    return Math.max(0, last - position.id);
  }

  /** How far the person of uid `other` has read their conversation with this client. */
  seenBy(other: string): ReadPosition | undefined {
    return this.#reads.seenBy(other);
  }

  /**
   * Asks for this identity's conversations, newest first, with their newest
   * ids and both read positions: the `conversations` event answers. False
   * when not connected.
   */
  listConversations(): boolean {
    return this.#write({ type: "conversations" });
  }

  /**
   * Asks the server for a slower heartbeat (a hidden tab, a phone saving its
   * battery), in milliseconds between pings; the server takes it within 1 to
   * 10 times its own interval and scales its timeout alike. Without an
   * argument, back to the server's own. Kept across reconnects.
   */
  setHeartbeatInterval(intervalMs?: number): void {
    this.#beatInterval = intervalMs;
    if (this.#heartbeat === null) return;
    this.#write({ type: "heartbeat", interval_ms: intervalMs ?? 0 });
  }

  /**
   * Asks the server for the online users of a room; the `users` event
   * answers. A big room's list comes in pages: ask again from `offset` (the
   * names held so far) for the next. False when not connected.
   */
  refreshUsers(room?: string, offset = 0): boolean {
    return this.#write({
      type: "users",
      room: room ?? this.#firstRoom,
      ...(offset ? { offset } : {}),
    });
  }

  // -------------------------------------------------------------------------
  // The socket

  #open(): void {
    this.#setState({ state: "connecting" });
    this.#welcomed = false;
    const { token = "", key = "" } = this.#options;
    const secrets = [
      ...(token === "" ? [] : [`bearer.${token}`]),
      ...(key === "" ? [] : [`key.${key}`]),
    ];
    const protocols = secrets.length === 0 ? [] : ["chat", ...secrets];
    const open = this.#options.webSocket ?? ((url, list) => new WebSocket(url, list));
    let socket: WebSocket;
    try {
      socket = open(this.#url(), protocols);
    } catch (error) {
      this.#closed(1006, error instanceof Error ? error.message : String(error));
      return;
    }
    this.#socket = socket;
    this.#lastFrameAt = this.#timers.now();
    // Each handler checks that its socket is still the current one: a stale socket never acts.
    socket.addEventListener("message", (event) => {
      if (this.#socket !== socket || typeof event.data !== "string") return;
      this.#lastFrameAt = this.#timers.now();
      // Batched frames: one JSON object per line; JSON never holds a raw newline.
      for (const line of event.data.split("\n")) {
        if (this.#socket !== socket) return;
        this.#onText(line);
      }
    });
    socket.addEventListener("close", (event) => {
      if (this.#socket === socket) this.#closed(event.code, event.reason);
    });
  }

  #url(): string {
    const url = new URL(this.#options.url);
    url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
    const name = this.#username;
    url.pathname = name === "" ? "/ws/chat" : `/ws/chat/${encodeURIComponent(name)}`;
    const params = new URLSearchParams({ room: this.#firstRoom, batch: "1" });
    if (this.#options.heartbeat !== false) params.set("heartbeat", "1");
    const last = this.#rooms.get(this.#firstRoom)?.last ?? 0;
    if (last > 0) {
      params.set("since", String(last));
      if (this.#epoch !== "") params.set("epoch", this.#epoch);
    }
    url.search = params.toString();
    return url.href;
  }

  /** Sends a frame now; the server's rate limit counts it, so the pacer does too. */
  #write(frame: object, paced = false): boolean {
    const socket = this.#socket;
    if (socket === null || socket.readyState !== OPEN || !this.#welcomed) return false;
    if (!paced) this.#pacer.spend(this.#timers.now());
    socket.send(JSON.stringify(frame));
    return true;
  }

  #detach(): void {
    this.#socket = null;
    for (const log of this.#rooms.values()) log.live = false;
    this.#welcomed = false;
    this.#timers.clearTimeout(this.#timer);
    this.#timers.clearTimeout(this.#pumpTimer);
    this.#timers.clearTimeout(this.#heartbeatTimer);
  }

  #closed(code: number, reason: string): void {
    this.#detach();
    this.#queue.dropped();
    this.#failPending(reason || "Connection closed");
    if (this.#state === "closed") return;
    if (this.#options.reconnect === false || isFinalClose({ code, reason }, this.#everWelcomed)) {
      this.#end(code, reason);
      return;
    }
    const delayMs = reconnectDelay(
      { attempt: this.#attempt++, random: this.#timers.random() },
      this.#options.reconnect,
    );
    this.#timer = this.#timers.setTimeout(() => this.#open(), delayMs);
    this.#setState({ state: "reconnecting", code, reason, delayMs });
  }

  #end(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#reads.dispose();
    this.#queue.refuseAll("closed", reason || "Connection closed");
    this.#setState({ state: "closed", code, reason });
  }

  #failPending(reason: string): void {
    const pending = [...this.#joins.values(), ...(this.#rename ? [this.#rename] : [])];
    this.#joins.clear();
    this.#rename = undefined;
    for (const { reject } of pending) reject(new ChatError("closed", reason));
  }

  #setState(event: StateEvent): void {
    this.#state = event.state;
    this.#events.emit("state", event);
  }

  #cid(): string {
    return `r${++this.#seq}`;
  }

  // -------------------------------------------------------------------------
  // Frames

  #onText(text: string): void {
    let frame: ServerMessage;
    try {
      frame = JSON.parse(text);
    } catch {
      return;
    }
    if (typeof frame !== "object" || frame === null || typeof frame.type !== "string") return;
    this.#onFrame(frame);
  }

  #onFrame(frame: ServerMessage): void {
    switch (frame.type) {
      case "welcome":
        return this.#onWelcome(frame);
      case "joined":
        return this.#onJoined(frame);
      case "history":
        return this.#onHistory(frame);
      case "left":
        return this.#onLeft(frame);
      case "message":
      case "system":
        return this.#onRoomFrame(frame, false);
      case "private":
        return this.#onPrivate(frame);
      case "users":
        return this.#setUsers(frame);
      case "ping":
        this.#write({ type: "pong" });
        return;
      case "error":
        return this.#onError(frame);
      case "heartbeat_ack":
        if (frame.heartbeat !== undefined) this.#heartbeat = frame.heartbeat;
        return;
      case "conversation":
        return this.#onConversation(frame);
      case "typing":
        if (nameKey(frame.user) !== nameKey(this.#username)) this.#events.emit("typing", frame);
        return;
      case "read":
      case "seen":
        if (this.#reads.receive(frame)) this.#events.emit(frame.type, frame);
        return;
      case "conversations":
        for (const c of frame.conversations) {
          if (c.read_id > 0) {
            this.#reads.receive({ type: "read", with: c.with, id: c.read_id, epoch: c.epoch });
          }
          if (c.seen_id > 0) {
            this.#reads.receive({ type: "seen", with: c.with, id: c.seen_id, epoch: c.epoch });
          }
        }
        this.#events.emit("conversations", frame.conversations);
        return;
    }
  }

  #onWelcome(frame: WelcomeFrame): void {
    this.#welcomed = this.#everWelcomed = true;
    this.#attempt = 0;
    this.#username = frame.username;
    this.#uid = frame.uid ?? "";
    this.#firstRoom = frame.room;
    const limit = frame.limits as {
      max_message_bytes: number;
      rate_per_s?: number;
      burst?: number;
    };
    this.#maxMessageBytes = limit.max_message_bytes;
    const rate = limit.rate_per_s !== undefined && limit.burst !== undefined
      ? { perS: limit.rate_per_s, burst: limit.burst }
      : undefined;
    this.#pacer.configure(rate, this.#timers.now());
    const rejoin = [...this.#rooms.values()].filter((log) => log.room !== frame.room);
    // The ids of the other rooms belong to the epoch before this welcome.
    const epoch = this.#epoch;
    this.#enter(frame);
    this.#setState({ state: "open" });
    this.#events.emit("welcome", frame);
    this.#afterEntry(frame);
    for (const log of rejoin) {
      const since = log.last > 0 ? { since: log.last, ...(epoch === "" ? {} : { epoch }) } : {};
      this.#write({ type: "join", room: log.room, ...since });
    }
    // Conversations between identities are read again from where they were.
    for (const resume of this.#talks.resumes(RESUMED_CONVERSATIONS)) {
      this.#resuming.add(resume.with);
      this.#write({ type: "conversation", ...resume });
    }
    // Private messages in doubt go out again now (one kept by uids may then come twice).
    this.#queue.clear((item) => item.frame.type === "private");
    this.#reads.flush();
    this.#startHeartbeat(frame);
    this.#pump();
  }

  #onJoined(frame: JoinedFrame): void {
    this.#enter(frame);
    // The answer to the oldest join of this room (a resume after a reconnect answers none).
    const key = nameKey(frame.room);
    const entry = [...this.#joins].find(([, pending]) => pending.room === key);
    if (entry !== undefined) this.#joins.delete(entry[0]);
    const pending = entry?.[1];
    this.#events.emit("joined", frame);
    pending?.resolve(frame);
    this.#afterEntry(frame);
  }

  /** Adopts a welcome's or joined's epoch, users and first page of history. */
  #enter(frame: WelcomeFrame | JoinedFrame): void {
    let log = this.#rooms.get(frame.room);
    if (log === undefined) {
      log = new RoomLog(frame.room);
      this.#rooms.set(frame.room, log);
    }
    this.#epoch = frame.epoch;
    log.recovering = log.last > 0 && frame.recovered;
    // Not recovered: `since` was older than the history, or of another epoch (the server's
    // ids started again). Either way the ids seen so far in the room mean nothing now.
    if (log.last > 0 && !frame.recovered) {
      log.forget();
      this.#events.emit("gap", { room: frame.room });
    }
    log.setUsers(frame.users, { count: frame.user_count });
    log.live = true;
    this.#emitUsers(log);
  }

  #afterEntry(frame: WelcomeFrame | JoinedFrame): void {
    for (const stored of frame.history) this.#onRoomFrame(stored, true);
    if (!frame.more) this.#replayDone(frame.room);
  }

  #onHistory(frame: HistoryFrame): void {
    if (!this.#rooms.has(frame.room)) return;
    for (const stored of frame.history) this.#onRoomFrame(stored, true);
    if (!frame.more) this.#replayDone(frame.room);
  }

  /** A room's replay is over: messages in doubt that it did not show stored go out again. */
  #replayDone(room: string): void {
    const log = this.#rooms.get(room);
    if (log !== undefined) log.recovering = false;
    this.#queue.clear((item) => item.frame.type === "message" && item.frame.room === room);
    this.#pump();
  }

  #onRoomFrame(frame: RoomFrame, replayed: boolean): void {
    const log = this.#rooms.get(frame.room);
    if (log === undefined || !log.firstSight(frame)) return;
    const missed = replayed && log.recovering;
    if (frame.type === "message") {
      this.#settleOwn(frame);
      this.#events.emit("message", { frame, replayed, missed });
      return;
    }
    this.#events.emit("system", { frame, replayed, missed });
    if (replayed || !log.applyPresence(frame)) return;
    this.#emitUsers(log);
    if (
      frame.event === "rename" && frame.user !== undefined &&
      nameKey(frame.old_name ?? "") === nameKey(this.#username)
    ) {
      this.#renamed(frame.user);
    }
  }

  #onLeft(frame: LeftFrame): void {
    this.#rooms.delete(frame.room);
    if (frame.room === this.#firstRoom) this.#firstRoom = this.rooms[0] ?? this.#firstRoom;
    this.#events.emit("left", frame);
  }

  #onPrivate(frame: PrivateFrame): void {
    this.#settleOwn(frame);
    const other = Conversations.other(frame, this.#uid);
    if (other !== undefined && !this.#talks.record(other, frame)) return;
    this.#events.emit("private", { frame, replayed: false, missed: false });
  }

  /** A conversation read again: what was not shown yet, and the next page when there is one. */
  #onConversation(frame: ConversationFrame): void {
    const missed = this.#resuming.delete(frame.with);
    for (const stored of frame.history) {
      if (!this.#talks.record(frame.with, stored)) continue;
      this.#settleOwn(stored);
      this.#events.emit("private", { frame: stored, replayed: true, missed });
    }
    if (frame.more && frame.history.length > 0) {
      if (missed) this.#resuming.add(frame.with);
      this.#write({ type: "conversation", with: frame.with, since: this.#talks.last(frame.with) });
    }
  }

  #settleOwn(frame: MessageFrame | PrivateFrame): void {
    const { cid, uid } = frame;
    const own = uid !== undefined ? uid === this.#uid : frame.username === this.#username;
    if (cid !== undefined && own) {
      this.#queue.settle(cid, { status: "stored", frame });
    }
  }

  #renamed(name: string): void {
    const from = this.#username;
    this.#username = name;
    const pending = this.#rename;
    this.#rename = undefined;
    this.#events.emit("renamed", { from, to: name });
    pending?.resolve(name);
  }

  #emitUsers(log: RoomLog): void {
    this.#events.emit("users", { room: log.room, users: [...log.users], count: log.count });
  }

  #setUsers(frame: UsersFrame): void {
    const { room, users } = frame;
    const log = this.#rooms.get(room);
    if (log === undefined) return;
    log.setUsers(users, { count: frame.connected_count, offset: frame.offset });
    this.#emitUsers(log);
  }

  #onError(frame: ErrorFrame): void {
    const cid = (frame as { cid?: string }).cid;
    const retries = cid === undefined || frame.code !== "rate_limited"
      ? -1
      : this.#queue.retry(cid);
    if (retries > 0) {
      // Refused for its pace: wait, longer each time, then send it again, the others behind it.
      this.#pacer.drain(this.#timers.now());
      this.#pump(Math.min(RETRY_MAX_MS, 1000 * retries));
      return;
    }
    if (cid !== undefined) {
      if (this.#queue.settle(cid, { status: "refused", code: frame.code, reason: frame.message })) {
        return;
      }
      const join = this.#joins.get(cid);
      if (join !== undefined) {
        this.#joins.delete(cid);
        return join.reject(new ChatError(frame.code, frame.message));
      }
      if (this.#rename?.cid === cid) {
        const { reject } = this.#rename;
        this.#rename = undefined;
        return reject(new ChatError(frame.code, frame.message));
      }
    }
    this.#events.emit("error", frame);
  }

  // -------------------------------------------------------------------------
  // Sending and the heartbeat

  /** Sends what the queue holds, as fast as the server's limit allows. */
  #pump(delayMs = 0): void {
    this.#timers.clearTimeout(this.#pumpTimer);
    if (delayMs > 0) {
      this.#pumpTimer = this.#timers.setTimeout(() => this.#pump(), delayMs);
      return;
    }
    if (!this.#welcomed) return;
    // A room being rejoined holds its messages; one the client is not in sends them, for the
    // server's `not_in_room`.
    const ready = (item: Outgoing) =>
      !item.uncertain &&
      (item.frame.type === "private" || this.#rooms.get(item.frame.room ?? "")?.live !== false);
    for (let item = this.#queue.next(ready); item !== undefined; item = this.#queue.next(ready)) {
      // Queued before the first welcome told the limit: a frame over it would close the socket.
      const tooBig = this.#tooBig(item.frame);
      if (tooBig !== undefined) {
        this.#queue.settle(item.frame.cid, tooBig);
        continue;
      }
      const wait = this.#pacer.take(this.#timers.now());
      if (wait > 0) return this.#pump(wait);
      if (!this.#write(item.frame, true)) return;
      item.sent = true;
    }
  }

  #startHeartbeat(frame: WelcomeFrame): void {
    this.#heartbeat = frame.heartbeat;
    if (frame.heartbeat === null) return;
    // Asked for before (a hidden tab): ask again on the new socket.
    if (this.#beatInterval !== undefined) {
      this.#write({ type: "heartbeat", interval_ms: this.#beatInterval });
    }
    const beat = () => {
      const heartbeat = this.#heartbeat;
      if (heartbeat === null) return;
      // No frame for a whole timeout while the server pings every interval: the link is
      // dead even if the socket has not noticed. Drop it and reconnect.
      if (this.#timers.now() - this.#lastFrameAt > heartbeat.timeout_ms) {
        const socket = this.#socket;
        // Closed first, so the socket's own close event (maybe much later) is ignored.
        this.#closed(CloseCode.HeartbeatTimeout, "No answer from the server");
        socket?.close(CloseCode.HeartbeatTimeout, "Heartbeat timeout");
        return;
      }
      this.#write({ type: "heartbeat" });
      this.#heartbeatTimer = this.#timers.setTimeout(beat, heartbeat.interval_ms);
    };
    this.#heartbeatTimer = this.#timers.setTimeout(beat, frame.heartbeat.interval_ms);
  }
}
