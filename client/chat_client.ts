/**
 * `ChatClient`: the whole chat protocol for Deno and the browser, with typed
 * events. It reconnects with backoff and jitter, resumes every room with
 * `since` and the epoch so nothing is lost or shown twice, reads batched
 * frames, answers and sends the heartbeat, and queues what is sent while
 * disconnected or rate limited, reporting each message's fate.
 *
 * This file holds the public API and the dispatch of frames; each part of
 * the client keeps its state in its own module: the connection and its
 * sockets (connection.ts, link.ts), the username and renames (identity.ts),
 * the rooms (rooms.ts), private conversations (private_talks.ts), outgoing
 * messages (outbox.ts) and the heartbeat (heartbeat.ts).
 *
 * @module
 */

import {
  DEFAULT_ROOM,
  type ErrorFrame,
  type JoinedFrame,
  type MessageFrame,
  nameKey,
  type PrivateFrame,
  type ServerMessage,
  TYPING_INTERVAL_MS,
  type WelcomeFrame,
} from "../chat/protocol.ts";
import { Connection } from "./connection.ts";
import { Emitter, type Unsubscribe } from "./emitter.ts";
import {
  type ChatClientEvents,
  type ChatClientOptions,
  ChatError,
  type ConnectionState,
} from "./events.ts";
import { Heartbeat } from "./heartbeat.ts";
import { Identity } from "./identity.ts";
import { linkUrl } from "./link.ts";
import { frameBytes, Outbox, type OutboxLimits } from "./outbox.ts";
import { PrivateTalks } from "./private_talks.ts";
import { type ReadPosition, ReadState, type ReadTarget } from "./read_state.ts";
import { Rooms } from "./rooms.ts";
import { type Sending, sending } from "./send_queue.ts";
import { TIMERS, type Timers } from "./timers.ts";

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
  readonly #timers: Timers;
  readonly #events = new Emitter<ChatClientEvents>();
  readonly #outbox: Outbox;
  readonly #rooms: Rooms;
  readonly #talks: PrivateTalks;
  readonly #heartbeat: Heartbeat;
  readonly #connection: Connection;
  readonly #me: Identity;
  #seq = 0;
  /** When a `typing` frame last went out, per room or `@person`. */
  readonly #typedAt = new Map<string, number>();
  /** Own read positions, the others' receipts, and the `read` frames waiting. */
  readonly #reads: ReadState;

  /** A client that connects when `connect()` is called. */
  constructor(options: ChatClientOptions) {
    // An invalid URL is the caller's mistake: say so now, not on every reconnect.
    new URL(options.url);
    const timers = this.#timers = options.timers ?? TIMERS;
    const events = this.#events;
    const write = (frame: object) => this.#write(frame);
    this.#outbox = new Outbox({
      timers,
      maxQueued: options.maxQueued ?? 100,
      write: (frame) => this.#write(frame, true),
      welcomed: () => this.#connection.welcomed,
      roomReady: (room) => this.#rooms.ready(room),
    });
    this.#me = new Identity({ username: options.username ?? "", events, write });
    this.#rooms = new Rooms({
      first: options.room ?? DEFAULT_ROOM,
      events,
      write,
      onMessage: (frame) => this.#settleOwn(frame),
      onPresence: (frame) => this.#me.presence(frame),
      onReplayDone: (room) =>
        this.#outbox.resend((item) => item.frame.type === "message" && item.frame.room === room),
    });
    this.#talks = new PrivateTalks({
      events,
      write,
      uid: () => this.#me.uid,
      settle: (frame) => this.#settleOwn(frame),
    });
    this.#heartbeat = new Heartbeat({ timers, write, onTimeout: () => this.#connection.timeout() });
    this.#reads = new ReadState({ timers, write: (frame) => this.#writeSpare(frame) });
    this.#connection = this.#connect(options);
  }

  /** The username: the one asked for, then the one the server gave. */
  get username(): string {
    return this.#me.username;
  }

  /**
   * This user's public identity, from the last welcome ("" before one): own
   * messages carry it as `uid`, across renames, reloads and tabs with one key.
   */
  get uid(): string {
    return this.#me.uid;
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#connection.state;
  }

  /** The rooms the client is in, the first one first. */
  get rooms(): string[] {
    return this.#rooms.names;
  }

  /** Messages waiting for their fate. */
  get queued(): number {
    return this.#outbox.size;
  }

  /** How many users `room` has (the first room when omitted), as last told. */
  userCount(room?: string): number {
    return this.#rooms.userCount(room);
  }

  /** The online users of `room` (the first room when omitted), as last told: a big room's first page. */
  users(room?: string): string[] {
    return this.#rooms.users(room);
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
    this.#connection.connect();
  }

  /** Reconnects at once when a reconnect is waiting (a tab shown again, the network back). */
  reconnectNow(): void {
    this.#connection.reconnectNow();
  }

  /**
   * Closes the connection for good; queued messages are refused with
   * `closed`. The promise resolves once the socket has closed.
   */
  close(): Promise<void> {
    return this.#connection.close();
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
    if (this.#connection.state === "closed") {
      return sending(
        Promise.resolve({ status: "refused", code: "closed", reason: "Client closed" }),
        "",
      );
    }
    return this.#outbox.add(this.#frame(text, options));
  }

  /**
   * The UTF-8 bytes `send(text, options)` would send, client id included:
   * more than the server's `limits.max_message_bytes` is refused.
   */
  messageBytes(text: string, options: { room?: string; to?: string } = {}): number {
    return frameBytes(this.#frame(text, options));
  }

  #frame(text: string, options: { room?: string; to?: string }) {
    const room = this.#rooms.key(options.room);
    return options.to === undefined
      ? { type: "message" as const, message: text, room }
      : { type: "private" as const, to: options.to, message: text, room };
  }

  /** Joins a room on the same socket; resolves with the `joined` frame. */
  join(room: string): Promise<JoinedFrame> {
    return this.#rooms.join(room, this.#cid());
  }

  /** Leaves a room; the `left` event follows. False when not connected. */
  leave(room: string): boolean {
    return this.#write({ type: "leave", room, cid: this.#cid() });
  }

  /** Renames this user; resolves with the new name as the server spells it. */
  rename(name: string): Promise<string> {
    const context = { cid: this.#cid(), welcomed: this.#connection.welcomed };
    return this.#me.rename(name, { ...context, inRoom: this.#rooms.size > 0 });
  }

  /**
   * Says this user is typing, in a room (the first when omitted) or to one
   * user with `to`; call it on every key press: it sends at most one frame
   * per TYPING_INTERVAL_MS per room or person, and nothing while not
   * connected or while messages use every token of the rate limit.
   */
  typing(options: { room?: string; to?: string } = {}): void {
    const { to } = options;
    const room = this.#rooms.key(options.room);
    const target = to === undefined ? { room } : { to };
    const key = to === undefined ? room : `@${nameKey(to)}`;
    const now = this.#timers.now();
    if (now - (this.#typedAt.get(key) ?? -Infinity) < TYPING_INTERVAL_MS) return;
    if (this.#writeSpare({ type: "typing", ...target })) this.#typedAt.set(key, now);
  }

  /**
   * Asks for the conversation with the person of public uid `other` (a
   * private frame's `uid` or `to_uid`): its latest messages come as
   * `private` events with `replayed`, each once. False when not connected.
   */
  conversation(other: string): boolean {
    return this.#write({ type: "conversation", with: other, cid: this.#cid() });
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
    const { where, last } = this.#readTarget(target);
    const epoch = this.#rooms.epoch;
    if (last === 0 || epoch === "") return false;
    const to = "with" in where && target.to !== undefined ? { to: target.to } : {};
    return this.#reads.mark({ ...where, ...to }, { id: last, epoch });
  }

  /**
   * How many messages of a room (the first when neither is given) or of the
   * conversation with uid `with` came after this identity's read position,
   * counted by ids; undefined while no position is known.
   */
  unread(target: { room?: string; with?: string } = {}): number | undefined {
    const { where, last } = this.#readTarget(target);
    const position = this.#reads.position(where);
    if (position === undefined || position.epoch !== this.#rooms.epoch) return undefined;
    return Math.max(0, last - position.id);
  }

  /** A room (the first when neither is given) or a conversation, and the newest id received there. */
  #readTarget(target: { room?: string; with?: string }): { where: ReadTarget; last: number } {
    const other = target.with;
    return other === undefined
      ? { where: { room: this.#rooms.key(target.room) }, last: this.#rooms.last(target.room) }
      : { where: { with: other }, last: this.#talks.last(other) };
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
    return this.#write({ type: "conversations", cid: this.#cid() });
  }

  /**
   * Asks the server for a slower heartbeat (a hidden tab, a phone saving its
   * battery), in milliseconds between pings; the server takes it within 1 to
   * 10 times its own interval and scales its timeout alike. Without an
   * argument, back to the server's own. Kept across reconnects.
   */
  setHeartbeatInterval(intervalMs?: number): void {
    this.#heartbeat.askInterval(intervalMs);
  }

  /**
   * Asks the server for the online users of a room; the `users` event
   * answers. A big room's list comes in pages: ask again from `offset` (the
   * names held so far) for the next. False when not connected.
   */
  refreshUsers(room?: string, offset = 0): boolean {
    return this.#write({
      type: "users",
      room: room ?? this.#rooms.first,
      ...(offset ? { offset } : {}),
      cid: this.#cid(),
    });
  }

  // -------------------------------------------------------------------------
  // The socket

  /** The connection, which tells each part of the client when a socket comes and goes. */
  #connect(options: ChatClientOptions): Connection {
    return new Connection({
      client: options,
      timers: this.#timers,
      events: this.#events,
      url: () =>
        linkUrl({
          url: options.url,
          username: this.#me.username,
          room: this.#rooms.first,
          heartbeat: options.heartbeat !== false,
          since: this.#rooms.firstLast,
          epoch: this.#rooms.epoch,
        }),
      onData: () => this.#heartbeat.heard(),
      onText: (text) => this.#onText(text),
      onDetach: () => {
        this.#rooms.detach();
        this.#outbox.stop();
        this.#heartbeat.stop();
      },
      onDrop: (reason) => {
        this.#outbox.dropped();
        this.#rooms.failJoins(reason);
        this.#me.fail(reason);
      },
      onEnd: (reason) => {
        this.#reads.dispose();
        this.#outbox.refuseAll(reason);
      },
    });
  }

  /** Sends a frame now; the server's rate limit counts it, so the pacer does too. */
  #write(frame: object, paced = false): boolean {
    if (!this.#connection.writable) return false;
    if (!paced) this.#outbox.spend();
    this.#connection.send(frame);
    return true;
  }

  /**
   * Writes a frame that can wait or be left out (a read position, "is
   * typing") only with a token of the rate limit to spare: spent at once
   * like a pong, it could push a fast typist's next frame over the
   * server's limit.
   */
  #writeSpare(frame: object): boolean {
    if (!this.#connection.writable || !this.#outbox.tryTake()) return false;
    this.#connection.send(frame);
    return true;
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
        return this.#rooms.joined(frame);
      case "history":
        return this.#rooms.history(frame);
      case "left":
        return this.#rooms.left(frame);
      case "message":
      case "system":
        return this.#rooms.roomFrame(frame, false);
      case "private":
        return this.#talks.receive(frame);
      case "users":
        return this.#rooms.setUsers(frame);
      case "ping":
        this.#write({ type: "pong" });
        return;
      case "error":
        return this.#onError(frame);
      case "heartbeat_ack":
        return this.#heartbeat.ack(frame.heartbeat);
      case "conversation":
        return this.#talks.conversation(frame);
      case "typing":
        if (!this.#me.isMe(frame.user)) this.#events.emit("typing", frame);
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
    this.#connection.welcome();
    this.#me.welcome(frame);
    this.#outbox.configure(frame.limits as OutboxLimits);
    const rejoin = this.#rooms.welcome(frame);
    this.#connection.opened();
    this.#events.emit("welcome", frame);
    this.#rooms.replay(frame);
    for (const join of rejoin) this.#write(join);
    this.#talks.resume();
    // Private messages in doubt go out again now (one kept by uids may then come twice).
    this.#outbox.clear((item) => item.frame.type === "private");
    this.#reads.flush();
    this.#heartbeat.start(frame.heartbeat);
    this.#outbox.pump();
  }

  #settleOwn(frame: MessageFrame | PrivateFrame): void {
    if (frame.cid !== undefined && this.#me.sent(frame)) {
      this.#outbox.settle(frame.cid, { status: "stored", frame });
    }
  }

  #onError(frame: ErrorFrame): void {
    if (this.#outbox.rateLimited(frame)) return;
    const { cid } = frame;
    const paceOnly = frame.code === "rate_limited";
    if (paceOnly && cid !== undefined && this.#reads.rateLimited(cid)) return;
    // Frames the person asked for carry a cid; one without is the client's own (a pong, a
    // heartbeat, a typing notice): refused for its pace, nothing the person wrote is lost.
    if (paceOnly && cid === undefined) return;
    if (cid !== undefined) {
      const fate = { status: "refused" as const, code: frame.code, reason: frame.message };
      if (this.#outbox.settle(cid, fate)) return;
      const error = new ChatError(frame.code, frame.message);
      if (this.#rooms.refuseJoin(cid, error) || this.#me.refuse(cid, error)) return;
    }
    this.#events.emit("error", frame);
  }
}
