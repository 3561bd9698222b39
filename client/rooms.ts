/**
 * The rooms a client is in: one {@linkcode RoomLog} each, the first room
 * (the one the socket's URL names), the server's epoch, the joins waiting
 * for their answer, and the frames that enter, replay, update and leave a
 * room. A reconnect resumes every room from the last id it saw.
 *
 * @module
 */

import {
  type HistoryFrame,
  type JoinedFrame,
  type LeftFrame,
  type MessageFrame,
  nameKey,
  type RoomFrame,
  roomName,
  type SystemFrame,
  type UsersFrame,
  type WelcomeFrame,
} from "../chat/protocol.ts";
import type { Emitter } from "./emitter.ts";
import { type ChatClientEvents, ChatError } from "./events.ts";
import { RoomLog } from "./room_log.ts";

/** A room's name as the server spells it (folded), or the name as given when it is invalid. */
export function roomKey(room: string): string {
  return roomName(room) ?? room;
}

interface PendingJoin {
  resolve: (frame: JoinedFrame) => void;
  reject: (error: ChatError) => void;
  room: string;
}

/** What {@linkcode Rooms} needs from its client. */
export interface RoomsOptions {
  /** The first room asked for. */
  first: string;
  /** The client's events, which room frames are emitted as. */
  events: Emitter<ChatClientEvents>;
  /** Sends a frame now; false when not connected. */
  write: (frame: object) => boolean;
  /** Called with each chat message seen for the first time, before its event. */
  onMessage: (frame: MessageFrame) => void;
  /** Called with a live notice that changed a room's users, after the `users` event. */
  onPresence: (frame: SystemFrame) => void;
  /** Called when a room's replay is over: what it did not show stored may go again. */
  onReplayDone: (room: string) => void;
}

/** The rooms of one client, the first one first. */
export class Rooms {
  readonly #logs = new Map<string, RoomLog>();
  readonly #joins = new Map<string, PendingJoin>();
  readonly #events: Emitter<ChatClientEvents>;
  readonly #write: (frame: object) => boolean;
  readonly #onMessage: (frame: MessageFrame) => void;
  readonly #onPresence: (frame: SystemFrame) => void;
  readonly #onReplayDone: (room: string) => void;
  #first: string;
  #epoch = "";

  /** No rooms yet; `first` is the room the first socket asks for. */
  constructor(options: RoomsOptions) {
    this.#first = roomKey(options.first);
    this.#events = options.events;
    this.#write = options.write;
    this.#onMessage = options.onMessage;
    this.#onPresence = options.onPresence;
    this.#onReplayDone = options.onReplayDone;
  }

  /** The first room: the one the socket's URL names, and the default of every method. */
  get first(): string {
    return this.#first;
  }

  /** The epoch of the last welcome or joined; "" before one. */
  get epoch(): string {
    return this.#epoch;
  }

  /** The highest id seen in the first room, which the socket's URL resumes it from; 0 when none. */
  get firstLast(): number {
    return this.#logs.get(this.#first)?.last ?? 0;
  }

  /** The rooms the client is in, the first one first. */
  get names(): string[] {
    return [...this.#logs.keys()];
  }

  /** How many rooms the client is in. */
  get size(): number {
    return this.#logs.size;
  }

  /** `room` as the server spells it, or the first room when omitted. */
  key(room?: string): string {
    return roomKey(room ?? this.#first);
  }

  /** The highest id seen in `room` (the first when omitted); 0 when none. */
  last(room?: string): number {
    return this.#logs.get(this.key(room))?.last ?? 0;
  }

  /** How many users `room` (the first when omitted) has, as last told. */
  userCount(room?: string): number {
    return this.#logs.get(this.key(room))?.count ?? 0;
  }

  /** The online users of `room` (the first when omitted), as last told. */
  users(room?: string): string[] {
    return [...(this.#logs.get(this.key(room))?.users ?? [])];
  }

  /** Whether messages to `room` may go: not while the client rejoins it. */
  ready(room: string): boolean {
    return this.#logs.get(room)?.live !== false;
  }

  /** Joins `room` with the client id `cid`; resolves with the `joined` frame. */
  join(room: string, cid: string): Promise<JoinedFrame> {
    return new Promise((resolve, reject) => {
      if (!this.#write({ type: "join", room, cid })) {
        reject(new ChatError("closed", "Not connected"));
        return;
      }
      this.#joins.set(cid, { resolve, reject, room: nameKey(room) });
    });
  }

  /**
   * Adopts a welcome: enters its room, the first from now on. Returns the
   * joins that resume the other rooms, to write once the welcome is told.
   */
  welcome(frame: WelcomeFrame): object[] {
    this.#first = frame.room;
    // The ids of the other rooms belong to the epoch before this welcome.
    const epoch = this.#epoch;
    const rejoin = [...this.#logs.values()].filter((log) => log.room !== frame.room).map((log) => {
      const since = log.last > 0 ? { since: log.last, ...(epoch === "" ? {} : { epoch }) } : {};
      return { type: "join", room: log.room, ...since };
    });
    this.#enter(frame);
    return rejoin;
  }

  /** Shows a page of a room's history (a welcome's, a joined's, a later one); the last ends the replay. */
  replay(frame: WelcomeFrame | JoinedFrame | HistoryFrame): void {
    for (const stored of frame.history) this.roomFrame(stored, true);
    if (!frame.more) this.#replayDone(frame.room);
  }

  /** Takes a `joined` frame: the answer to the oldest join of its room, or a resume. */
  joined(frame: JoinedFrame): void {
    this.#enter(frame);
    // A resume after a reconnect answers no join.
    const key = nameKey(frame.room);
    const entry = [...this.#joins].find(([, pending]) => pending.room === key);
    if (entry !== undefined) this.#joins.delete(entry[0]);
    const pending = entry?.[1];
    this.#events.emit("joined", frame);
    pending?.resolve(frame);
    this.replay(frame);
  }

  /** Takes a further page of a room's history. */
  history(frame: HistoryFrame): void {
    if (!this.#logs.has(frame.room)) return;
    this.replay(frame);
  }

  /** Takes a `left` frame: the room is forgotten. */
  left(frame: LeftFrame): void {
    this.#logs.delete(frame.room);
    if (frame.room === this.#first) this.#first = this.names[0] ?? this.#first;
    this.#events.emit("left", frame);
  }

  /** Takes a page of a room's online users. */
  setUsers(frame: UsersFrame): void {
    const log = this.#logs.get(frame.room);
    if (log === undefined) return;
    log.setUsers(frame.users, { count: frame.connected_count, offset: frame.offset });
    this.#emitUsers(log);
  }

  /** Takes a room's message or notice, live or `replayed`; one seen already is dropped. */
  roomFrame(frame: RoomFrame, replayed: boolean): void {
    const log = this.#logs.get(frame.room);
    if (log === undefined || !log.firstSight(frame)) return;
    const missed = replayed && log.recovering;
    if (frame.type === "message") {
      this.#onMessage(frame);
      this.#events.emit("message", { frame, replayed, missed });
      return;
    }
    this.#events.emit("system", { frame, replayed, missed });
    if (replayed || !log.applyPresence(frame)) return;
    this.#emitUsers(log);
    this.#onPresence(frame);
  }

  /** Refuses the join of client id `cid` with `error`; false when none waits. */
  refuseJoin(cid: string, error: ChatError): boolean {
    const join = this.#joins.get(cid);
    if (join === undefined) return false;
    this.#joins.delete(cid);
    join.reject(error);
    return true;
  }

  /** The socket is gone: every room waits for its rejoin. */
  detach(): void {
    for (const log of this.#logs.values()) log.live = false;
  }

  /** Fails the joins waiting for an answer, with `closed`. */
  failJoins(reason: string): void {
    const pending = [...this.#joins.values()];
    this.#joins.clear();
    for (const { reject } of pending) reject(new ChatError("closed", reason));
  }

  /** Adopts a welcome's or joined's epoch and users. */
  #enter(frame: WelcomeFrame | JoinedFrame): void {
    let log = this.#logs.get(frame.room);
    if (log === undefined) {
      log = new RoomLog(frame.room);
      this.#logs.set(frame.room, log);
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

  /** A room's replay is over: messages in doubt that it did not show stored go out again. */
  #replayDone(room: string): void {
    const log = this.#logs.get(room);
    if (log !== undefined) log.recovering = false;
    this.#onReplayDone(room);
  }

  #emitUsers(log: RoomLog): void {
    this.#events.emit("users", { room: log.room, users: [...log.users], count: log.count });
  }
}
