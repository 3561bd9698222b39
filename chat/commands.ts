/**
 * Commands: what a client's frame does. {@linkcode Commands.receive} checks
 * a frame (size, rate, JSON) and {@linkcode COMMANDS}, a table keyed by
 * `ClientMessage["type"]`, routes it to one small handler per type: adding
 * a command is adding a row.
 *
 * @module
 */

import type { BanList } from "./ban_list.ts";
import type { Client } from "./client.ts";
import type { Clock } from "./clock.ts";
import type { RawFrame } from "./connection.ts";
import type { Presence } from "./engines/engine.ts";
import type { Logger } from "./logger.ts";
import type { Metrics } from "./metrics.ts";
import type { Outbox } from "./outbox.ts";
import {
  type ClientJoin,
  type ClientMessage,
  type ClientResume,
  CloseCode,
  CloseReason,
  ErrorCode,
  HEARTBEAT_MAX_SCALE,
  isReservedName,
  nameKey,
  normalizeName,
  parseClientMessage,
  roomName,
  SYSTEM_SENDER,
} from "./protocol.ts";
import type { Publisher } from "./publisher.ts";
import { takeToken } from "./rate_limit.ts";
import type { Registry, UsersPage } from "./registry.ts";
import { leftFrame, MAX_LISTED_USERS, usersText } from "./notices.ts";
import { memberRoom } from "./command_rooms.ts";
import { PRIVATE_COMMANDS } from "./private_commands.ts";
import type { ReadPositions } from "./read_positions.ts";
import { joinedFrame, type Replay } from "./replay.ts";
import type { RoomQuota } from "./room_quota.ts";

/** The defaults of command handling, as {@linkcode ConnectionManagerOptions} names them. */
export const DEFAULT_COMMANDS: Readonly<{
  maxMessageBytes: number;
  rateLimitPerS: number;
  rateLimitBurst: number;
  maxRoomsPerConnection: number;
  authenticated: boolean;
}> = Object.freeze({
  /** Largest text frame in UTF-8 bytes; larger ones close with 1009. */
  maxMessageBytes: 16_384,
  /** Sustained frames per second per connection. */
  rateLimitPerS: 10,
  /** Frames a connection may send in a burst. */
  rateLimitBurst: 20,
  /** Rooms one connection may be in. */
  maxRoomsPerConnection: 10,
  /** Whether names come from verified tokens (then rename is refused). */
  authenticated: false,
});

/** What command handling needs from the manager. */
export interface CommandsOptions {
  /** Who is where. */
  registry: Registry;
  /** Writes to and closes sockets. */
  outbox: Outbox;
  /** Publishes to the engine. */
  publisher: Publisher;
  /** Sends history. */
  replay: Replay;
  /** Read positions, receipts and the list of conversations. */
  reads: ReadPositions;
  /** Checked whenever a name is taken. */
  bans: BanList;
  /** The new rooms each address may enter. */
  rooms: RoomQuota;
  /** See {@linkcode RoomQuota}: told in the error when it is used up. */
  roomsPerIpPerMin: number;
  /** The engine's presence; undefined when it serves one process. */
  presence: Presence | undefined;
  /** A room's users on every process, its list read from the store at most twice a second. */
  allUsers: (room: string) => Promise<string[]>;
  /** The manager's clock. */
  clock: Clock;
  /** Where events are logged. */
  log: Logger;
  /** The counters to update. */
  metrics: Metrics;
  /** See {@linkcode DEFAULT_COMMANDS}. */
  maxMessageBytes: number;
  /** See {@linkcode DEFAULT_COMMANDS}. */
  rateLimitPerS: number;
  /** See {@linkcode DEFAULT_COMMANDS}. */
  rateLimitBurst: number;
  /** See {@linkcode DEFAULT_COMMANDS}. */
  maxRoomsPerConnection: number;
  /** See {@linkcode DEFAULT_COMMANDS}. */
  authenticated: boolean;
  /** Names in one `users` answer at most; a bigger room's list comes in pages. */
  roomPresenceLimit: number;
  /** The heartbeat's ping interval, which a client may ask to scale. */
  heartbeatIntervalMs: number;
  /** The heartbeat's timeout, scaled with the interval. */
  heartbeatTimeoutMs: number;
  /** Takes a client out of a room, with a leave notice when `notify`. */
  leave: (client: Client, room: string, notify: boolean) => void;
  /** Ends a client now (registry, rooms, notices), closing its socket with this code. */
  drop: (client: Client, code: number, reason: string) => void;
}

/** One command: the client's frame of that type, received at `now`. */
export type Handler<T extends ClientMessage["type"]> = (
  commands: Commands,
  client: Client,
  msg: Extract<ClientMessage, { type: T }>,
  now: number,
) => void;

const encoder = new TextEncoder();

/** A frame's `cid` field, read without parsing the frame (which a rate-limited one is not). */
const CID_IN_TEXT = /"cid"\s*:\s*"([A-Za-z0-9_-]{1,64})"/;

/** Checks and handles the frames clients send. */
export class Commands {
  /** The manager's parts and settings, for the handlers. */
  readonly parts: CommandsOptions;
  #ratePerMs: number;
  #isoMs = NaN;
  #iso = "";
  /** The cid of the frame being handled, for the errors that answer it at once. */
  #cid: string | undefined;

  /** Commands over the options' parts. */
  constructor(options: CommandsOptions) {
    this.parts = options;
    this.#ratePerMs = options.rateLimitPerS / 1000;
  }

  /** Checks one frame from a client's socket and handles it. */
  receive(client: Client, data: RawFrame): void {
    if (client.closing) return;
    const o = this.parts;
    if (client.held !== null) {
      if (client.held.length >= o.rateLimitBurst) {
        return o.drop(client, CloseCode.PolicyViolation, CloseReason.RateLimitExceeded);
      }
      client.held.push(data);
      return;
    }
    const now = o.clock.now();
    client.lastSeen = now;
    client.framesIn++;
    o.metrics.framesIn++;
    if (typeof data !== "string") return this.#binary(client, data, now);
    const bytes = this.#size(client, data);
    if (bytes < 0 || !this.#allow(client, now, data)) return;
    if (client.echo) return o.outbox.sendText(client, `Echo: ${data}`);
    const parsed = parseClientMessage(data);
    if (!parsed.ok) return o.outbox.sendError(client, parsed);
    const handler = COMMANDS[parsed.value.type] as Handler<ClientMessage["type"]>;
    // The errors a handler sends at once answer this frame: they carry its cid.
    this.#cid = "cid" in parsed.value ? parsed.value.cid : undefined;
    handler(this, client, parsed.value, now);
    this.#cid = undefined;
  }

  /** Counts a text frame's UTF-8 bytes in; -1 once the client is dropped for its size. */
  #size(client: Client, data: string): number {
    const max = this.parts.maxMessageBytes;
    // A UTF-16 unit is 1 to 3 UTF-8 bytes, so encode only when in doubt.
    let bytes = data.length;
    if (bytes * 3 > max) {
      bytes = data.length > max ? data.length : encoder.encode(data).length;
    }
    this.parts.metrics.bytesIn += bytes;
    if (bytes <= max) return bytes;
    this.#tooBig(client, bytes);
    return -1;
  }

  #binary(client: Client, data: Exclude<RawFrame, string>, now: number): void {
    const size = data instanceof Blob ? data.size : data.byteLength;
    this.parts.metrics.bytesIn += size;
    if (size > this.parts.maxMessageBytes) return this.#tooBig(client, size);
    if (!this.#allow(client, now)) return;
    this.error(client, ErrorCode.BinaryNotSupported, "Binary frames are not supported");
  }

  #tooBig(client: Client, bytes: number): void {
    this.parts.log.info("frame_too_big", { conn: client.id, bytes });
    this.parts.drop(client, CloseCode.MessageTooBig, CloseReason.MessageTooBig);
  }

  /** The token bucket: true when the frame may pass; `text` is the frame, for its cid. */
  #allow(client: Client, now: number, text = ""): boolean {
    const burst = this.parts.rateLimitBurst;
    if (takeToken(client, now, this.#ratePerMs, burst) === 0) {
      client.strikes = 0;
      return true;
    }
    this.parts.metrics.rateLimited++;
    // A client that keeps sending while empty is flooding, not bursting.
    if (++client.strikes > burst) {
      this.parts.drop(client, CloseCode.PolicyViolation, CloseReason.RateLimitExceeded);
    } else {
      // Refused before parsing: the cid is looked for in the text, so the client knows which.
      const cid = CID_IN_TEXT.exec(text)?.[1];
      const message = "Sending too fast; slow down";
      this.parts.outbox.sendError(client, { code: ErrorCode.RateLimited, message, cid });
    }
    return false;
  }

  /**
   * Takes `tokens` more of the client's rate limit for a frame that costs
   * more than one; false, taking none and counted as rate limited, when the
   * bucket holds fewer. The frame's own token was just taken, so the bucket
   * is up to date.
   */
  charge(client: Client, tokens: number): boolean {
    if (client.tokens < tokens) {
      this.parts.metrics.rateLimited++;
      return false;
    }
    client.tokens -= tokens;
    return true;
  }

  /** Sends the client an `error` frame, with the cid of the frame being handled. */
  error(client: Client, code: ErrorCode, message: string): void {
    this.parts.outbox.sendError(client, { code, message, cid: this.#cid });
  }

  /**
   * `error` for an answer that comes later (after a lookup): it keeps the
   * cid of the frame being handled now.
   */
  errorLater(client: Client): (code: ErrorCode, message: string) => void {
    const cid = this.#cid;
    return (code, message) => this.parts.outbox.sendError(client, { code, message, cid });
  }

  /** `new Date(ms).toISOString()`, formatted once per millisecond: busy rooms send many per ms. */
  isoTime(ms: number): string {
    if (ms !== this.#isoMs) {
      this.#iso = new Date(ms).toISOString();
      this.#isoMs = ms;
    }
    return this.#iso;
  }
}

const message: Handler<"message"> = (c, client, msg, now) => {
  const room = memberRoom(c, client, msg.room);
  if (room === undefined) return;
  c.parts.publisher.publish(client, room, {
    type: "message",
    room,
    username: client.username,
    sender: client.username,
    message: msg.message,
    timestamp: c.isoTime(now),
    ...(msg.cid === undefined ? {} : { cid: msg.cid }),
    uid: client.uid,
  });
};

const rename: Handler<"rename"> = (c, client, msg) => {
  const name = renameCheck(c, client, msg.name);
  if (name === undefined || name === client.username) return;
  if (!c.parts.registry.nameFreeFor(name, client)) {
    return c.error(client, ErrorCode.NameTaken, `Username already in use: ${name}`);
  }
  if (c.parts.presence === undefined) return applyRename(c, client, name);
  const fail = c.errorLater(client);
  // Best-effort across processes: two may grant one name at the same time.
  c.parts.presence.lookup(name).catch(() => undefined).then((holder) => {
    if (client.closing || name === client.username) return;
    if (
      (holder !== undefined && nameKey(holder.username) !== client.key) ||
      !c.parts.registry.nameFreeFor(name, client)
    ) {
      return fail(ErrorCode.NameTaken, `Username already in use: ${name}`);
    }
    applyRename(c, client, name);
  });
};

/** The requested name when a rename to it may go on; undefined after an error. */
function renameCheck(c: Commands, client: Client, raw: string): string | undefined {
  if (c.parts.authenticated) {
    c.error(client, ErrorCode.NotAllowed, "Names come from the token; rename is off");
    return undefined;
  }
  const name = normalizeName(raw);
  if (name === undefined || isReservedName(name)) {
    c.error(client, ErrorCode.InvalidName, `Invalid username: ${raw.slice(0, 64)}`);
    return undefined;
  }
  // A ban is checked on connect; without this a banned name comes back by a rename.
  if (c.parts.bans.isBanned(name, { userId: client.userId, now: c.parts.clock.now() })) {
    c.error(client, ErrorCode.Banned, `Username is banned: ${name}`);
    return undefined;
  }
  return name;
}

function applyRename(c: Commands, client: Client, name: string): void {
  const old = client.username;
  c.parts.registry.setName(client, name);
  c.parts.log.info("rename", { conn: client.id, from: old, to: name });
  for (const room of client.rooms) {
    c.parts.presence?.leave(room, old);
    c.parts.presence?.join(room, name);
    const draft = c.parts.publisher.systemDraft(room, "rename", `${old} is now ${name}`, name);
    (draft as { old_name?: string }).old_name = old;
    c.parts.publisher.publishNotice(room, draft).catch((e) =>
      c.parts.publisher.noticeFailed(room, e)
    );
  }
}

/** Answers a heartbeat; one asking for an interval sets the client's scale and says it. */
const heartbeat: Handler<"heartbeat"> = (c, client, msg, now) => {
  const server_time = new Date(now).toISOString();
  if (msg.interval_ms === undefined || !client.heartbeat) {
    return c.parts.outbox.send(client, { type: "heartbeat_ack", server_time });
  }
  const { heartbeatIntervalMs: base, heartbeatTimeoutMs } = c.parts;
  const scale = Math.min(HEARTBEAT_MAX_SCALE, Math.max(1, Math.round(msg.interval_ms / base)));
  client.beatScale = scale;
  const heartbeat = { interval_ms: base * scale, timeout_ms: heartbeatTimeoutMs * scale };
  c.parts.outbox.send(client, { type: "heartbeat_ack", server_time, heartbeat });
};

/** Join a room, or (in a room already) recover what was missed after `since`. */
function join(c: Commands, client: Client, msg: ClientJoin | ClientResume): void {
  const since = c.parts.replay.since(msg.since, msg.epoch);
  const room = roomName(msg.room);
  if (room === undefined) {
    return c.error(client, ErrorCode.InvalidRoom, `Invalid room name: ${msg.room.slice(0, 64)}`);
  }
  if (client.replaying?.has(room) === true) {
    // One replay per room at a time: each holds a page of history in memory.
    return c.error(client, ErrorCode.RateLimited, `History is still being sent: ${room}`);
  }
  if (client.rooms.includes(room)) {
    if (msg.type === "resume" || since !== undefined) {
      // Replay what was missed without a second join notice.
      return c.parts.replay.replay(client, room, since, false);
    }
    const users = c.parts.registry.usersPage(room, c.parts.roomPresenceLimit);
    const epoch = c.parts.replay.epoch;
    const { username } = client;
    return c.parts.outbox.send(
      client,
      joinedFrame({
        username,
        room,
        users,
        recovered: true,
        epoch,
        more: false,
      }),
    );
  }
  const max = c.parts.maxRoomsPerConnection;
  if (client.rooms.length >= max) {
    return c.error(client, ErrorCode.TooManyRooms, `Too many rooms: ${max}`);
  }
  if (!c.parts.rooms.allows(client, room)) {
    const per = c.parts.roomsPerIpPerMin;
    return c.error(client, ErrorCode.RateLimited, `Too many new rooms from this address: ${per}`);
  }
  c.parts.replay.enter(client, room, since, false);
}

const leave: Handler<"leave"> = (c, client, msg) => {
  const room = memberRoom(c, client, msg.room);
  if (room === undefined) return;
  c.parts.leave(client, room, true);
  c.parts.outbox.send(client, leftFrame(room));
};

/** Pages of `users` past the first that cost one more token of the rate limit. */
export const PAGES_PER_TOKEN = 10;

/**
 * The online users of a room, a page of ROOM_PRESENCE_LIMIT names from
 * `offset`. Finding a page walks the names before it: every
 * {@linkcode PAGES_PER_TOKEN} pages down cost one more token.
 */
const users: Handler<"users"> = (c, client, msg) => {
  const room = memberRoom(c, client, msg.room);
  if (room === undefined) return;
  const offset = msg.offset ?? 0;
  const limit = c.parts.roomPresenceLimit;
  const extra = Math.floor(offset / (PAGES_PER_TOKEN * limit));
  if (extra > 0 && !c.charge(client, extra)) {
    return c.error(client, ErrorCode.RateLimited, `A page that far down costs more: ${offset}`);
  }
  const send = (page: UsersPage) =>
    c.parts.outbox.send(client, {
      type: "users",
      room,
      users: page.users.slice(offset, offset + limit),
      connected_count: page.count,
      offset,
      more: offset + limit < page.count,
      sender: SYSTEM_SENDER,
      message: usersText(room, page),
    });
  if (c.parts.presence === undefined) {
    // The names up to the page asked for, not a big room's every member.
    return send(c.parts.registry.usersPage(room, Math.max(offset + limit, MAX_LISTED_USERS)));
  }
  c.parts.allUsers(room).then((all) => send({ users: all, count: all.length }));
};

/** Every command a client may send, by its `type`. */
const COMMANDS: { readonly [T in ClientMessage["type"]]: Handler<T> } = Object.freeze({
  message,
  rename,
  heartbeat,
  pong: () => {},
  join,
  resume: join,
  leave,
  users,
  conversation: (c, client, msg) => c.parts.replay.conversation(client, msg.with, msg.since),
  ...PRIVATE_COMMANDS,
});
