/**
 * The one parse function of the wire protocol, used at the socket edge:
 * client text in, a typed {@linkcode ClientMessage} or an error code out.
 * Part of the protocol module: `chat/protocol.ts` re-exports every name
 * here, and callers import them from there.
 *
 * @module
 */

import type { ClientMessage, ClientPrivateMessage } from "./protocol.ts";
import { ErrorCode } from "./protocol_codes.ts";

/** The result of {@linkcode parseClientMessage}. */
export type ParseResult =
  | { ok: true; value: ClientMessage }
  | { ok: false; code: ErrorCode; message: string };

/** How a chat message from the page (and most clients) begins. */
const CHAT_FRAME_HEAD = '{"type":"message","message":"';

/** What a JSON string cannot hold as it is: a quote, a backslash, a control character. */
// deno-lint-ignore no-control-regex
const NEEDS_ESCAPE = /["\\\u0000-\u001f]/;

function fail(code: ErrorCode, message: string): ParseResult {
  return { ok: false, code, message };
}

function ok(value: ClientMessage): ParseResult {
  return { ok: true, value };
}

type Fields = Record<string, unknown>;

function optionalString(fields: Fields, key: string): string | undefined | null {
  const value = fields[key];
  if (value === undefined) return undefined;
  return typeof value === "string" ? value : null;
}

function chatText(value: unknown): ParseResult | string {
  if (typeof value !== "string") {
    return fail(ErrorCode.BadMessage, "Field message must be a string");
  }
  if (value.trim().length === 0) return fail(ErrorCode.EmptyMessage, "Message is empty");
  return value;
}

/** A chat message to the connection's room whose text is `text`, if it is not blank. */
function plainMessage(text: string): ParseResult {
  const message = chatText(text);
  return typeof message === "string" ? ok({ type: "message", message }) : message;
}

const UID = /^[uc][A-Za-z0-9_-]{16}$/;

/** Whether a value is a public uid as the server makes them: `u` or `c` and 16 base64url characters. */
export function isUid(value: string): boolean {
  return UID.test(value);
}

/** The `cid` a client may tag a frame with; printable and short, as it is echoed. */
const CID = /^[A-Za-z0-9_-]{1,64}$/;

/** Adds a frame's `cid` to its parsed value, or refuses a malformed one. */
function withCid(fields: Fields, result: ParseResult): ParseResult {
  const cid = fields.cid;
  if (cid === undefined || !result.ok) return result;
  if (typeof cid !== "string" || !CID.test(cid)) {
    return fail(ErrorCode.BadMessage, "Field cid must be 1 to 64 letters, digits, - or _");
  }
  return ok({ ...result.value, cid } as ClientMessage);
}

/** A chat message, or a private one when it names a target. */
function parseChat(fields: Fields, type: "message" | "private"): ParseResult {
  return withCid(fields, parseChatFields(fields, type));
}

function parseChatFields(fields: Fields, type: "message" | "private"): ParseResult {
  const text = chatText(fields.message);
  if (typeof text !== "string") return text;
  const room = optionalString(fields, "room");
  if (room === null) return fail(ErrorCode.BadMessage, "Field room must be a string");
  // Seed 03 names the target `target_user`; `to` is the short form.
  // Not `??`: a mistyped `to` (null) must be refused, not fall through.
  const short = optionalString(fields, "to");
  const to = short === undefined ? optionalString(fields, "target_user") : short;
  if (to === null) return fail(ErrorCode.BadMessage, "Field to must be a string");
  if (to !== undefined) {
    const msg: ClientPrivateMessage = { type: "private", to, message: text };
    return ok(room === undefined ? msg : { ...msg, room });
  }
  if (type === "private") return fail(ErrorCode.BadMessage, "Field to must be a string");
  return ok(room === undefined ? { type, message: text } : { type, message: text, room });
}

function requiredString(fields: Fields, key: string): string | ParseResult {
  const value = fields[key];
  return typeof value === "string"
    ? value
    : fail(ErrorCode.BadMessage, `Field ${key} must be a string`);
}

/** `join` (with an optional recovery point) or `resume` (with a required one). */
function parseRecovery(fields: Fields, type: "join" | "resume"): ParseResult {
  const room = requiredString(fields, "room");
  if (typeof room !== "string") return room;
  const since = fields.since;
  if (since === undefined && type === "join") return ok({ type, room });
  if (typeof since !== "number" || !Number.isSafeInteger(since) || since < 0) {
    return fail(ErrorCode.BadMessage, "Field since must be a non-negative integer");
  }
  if (fields.epoch === undefined) return ok({ type, room, since });
  const epoch = parseEpoch(fields.epoch);
  if (epoch === undefined) return fail(ErrorCode.BadMessage, "Field epoch must be an epoch");
  return ok({ type, room, since, epoch });
}

/** A `read`: exactly one of a room and a conversation, a positive id and its epoch. */
function parseRead(fields: Fields): ParseResult {
  const { room, with: other, id } = fields;
  if ((room === undefined) === (other === undefined)) {
    return fail(ErrorCode.BadMessage, "Give one of room and with");
  }
  if (room !== undefined && typeof room !== "string") {
    return fail(ErrorCode.BadMessage, "Field room must be a string");
  }
  if (other !== undefined && (typeof other !== "string" || !isUid(other))) {
    return fail(ErrorCode.BadMessage, "Field with must be a uid");
  }
  if (typeof id !== "number" || !Number.isSafeInteger(id) || id < 1) {
    return fail(ErrorCode.BadMessage, "Field id must be a positive integer");
  }
  const epoch = parseEpoch(fields.epoch);
  if (epoch === undefined) return fail(ErrorCode.BadMessage, "Field epoch must be an epoch");
  const to = optionalString(fields, "to");
  if (to === null) return fail(ErrorCode.BadMessage, "Field to must be a string");
  const where = typeof room === "string"
    ? { room }
    : { with: other as string, ...(to === undefined ? {} : { to }) };
  return ok({ type: "read", ...where, id, epoch });
}

/** One parser per client frame type: routing is data. */
const PARSERS: Readonly<Record<ClientMessage["type"], (fields: Fields) => ParseResult>> = {
  message: (fields) => parseChat(fields, "message"),
  private: (fields) => parseChat(fields, "private"),
  rename: (fields) => {
    const name = requiredString(fields, "name");
    return withCid(fields, typeof name === "string" ? ok({ type: "rename", name }) : name);
  },
  heartbeat: (fields) => {
    const interval = fields.interval_ms;
    if (interval === undefined) return ok({ type: "heartbeat" });
    if (typeof interval !== "number" || !Number.isSafeInteger(interval) || interval < 0) {
      return fail(ErrorCode.BadMessage, "Field interval_ms must be a non-negative integer");
    }
    return ok({ type: "heartbeat", interval_ms: interval });
  },
  pong: () => ok({ type: "pong" }),
  join: (fields) => withCid(fields, parseRecovery(fields, "join")),
  resume: (fields) => parseRecovery(fields, "resume"),
  leave: (fields) => {
    const room = requiredString(fields, "room");
    return typeof room === "string" ? ok({ type: "leave", room }) : room;
  },
  conversation: (fields) => {
    const other = fields.with;
    if (typeof other !== "string" || !isUid(other)) {
      return fail(ErrorCode.BadMessage, "Field with must be a uid");
    }
    const since = fields.since;
    if (since === undefined) return ok({ type: "conversation", with: other });
    if (typeof since !== "number" || !Number.isSafeInteger(since) || since < 0) {
      return fail(ErrorCode.BadMessage, "Field since must be a non-negative integer");
    }
    return ok({ type: "conversation", with: other, since });
  },
  read: parseRead,
  conversations: () => ok({ type: "conversations" }),
  typing: (fields) => {
    const room = optionalString(fields, "room");
    if (room === null) return fail(ErrorCode.BadMessage, "Field room must be a string");
    const to = optionalString(fields, "to");
    if (to === null) return fail(ErrorCode.BadMessage, "Field to must be a string");
    return ok({
      type: "typing",
      ...(room === undefined ? {} : { room }),
      ...(to === undefined ? {} : { to }),
    });
  },
  users: (fields) => {
    const room = optionalString(fields, "room");
    if (room === null) return fail(ErrorCode.BadMessage, "Field room must be a string");
    const offset = fields.offset;
    if (offset !== undefined && !(Number.isSafeInteger(offset) && (offset as number) >= 0)) {
      return fail(ErrorCode.BadMessage, "Field offset must be a non-negative integer");
    }
    return withCid(
      fields,
      ok({
        type: "users",
        ...(room === undefined ? {} : { room }),
        ...(offset === undefined ? {} : { offset: offset as number }),
      }),
    );
  },
};

function parseObject(fields: Fields): ParseResult {
  const type = fields.type;
  // Seed 03's client sends `{"message": …, "target_user": …}` without a type.
  if (type === undefined && fields.message !== undefined) return parseChat(fields, "message");
  if (typeof type !== "string") {
    return fail(ErrorCode.BadMessage, "Field type must be a string");
  }
  const parse = Object.hasOwn(PARSERS, type) ? PARSERS[type as ClientMessage["type"]] : undefined;
  if (parse === undefined) {
    return fail(ErrorCode.UnknownType, `Unknown message type: ${type.slice(0, 64)}`);
  }
  return parse(fields);
}

/**
 * Parses one text frame from a client.
 *
 * Text that does not start with `{` is a plain chat message (seed 02), so
 * `42`, `hello` or `[smile] hi` are messages, while `{"type":` is
 * `bad_json`. An object without `type` but with `message` is a message, or
 * a private one with `target_user` or `to` (seed 03).
 */
export function parseClientMessage(text: string): ParseResult {
  // The frame the page sends for a chat message, read without JSON.parse: a
  // body with nothing to unescape is its own value. In a large room the parser
  // runs on caches each fan-out left cold, which is where skipping it saves
  // most; `deno task bench --only=room256,paced256` guards it.
  if (
    text.length >= CHAT_FRAME_HEAD.length + 2 && text.startsWith(CHAT_FRAME_HEAD) &&
    text.endsWith('"}')
  ) {
    const body = text.slice(CHAT_FRAME_HEAD.length, -2);
    if (!NEEDS_ESCAPE.test(body)) {
      return plainMessage(body);
    }
  }
  if (text.trimStart()[0] !== "{") return plainMessage(text);
  let data: unknown;
  try {
    data = JSON.parse(text);
  } catch {
    return fail(ErrorCode.BadJson, "Frame is not valid JSON");
  }
  return parseObject(data as Fields);
}

/**
 * An epoch a client sent back (`?epoch=` or a frame's `epoch`): up to 64
 * letters, digits, `-` and `_`; undefined for anything else.
 */
export function parseEpoch(value: unknown): string | undefined {
  return typeof value === "string" && /^[\w-]{1,64}$/.test(value) ? value : undefined;
}
