/**
 * The codes of the wire protocol: close codes with their reasons and the
 * `code` values of `error` frames, as `as const` tables. Part of the
 * protocol module: `chat/protocol.ts` re-exports every name here, and
 * callers import them from there.
 *
 * @module
 */

/** WebSocket close codes the server uses, with their meaning in README. */
export const CloseCode = {
  /** Normal closure. */
  Normal: 1000,
  /** The server is shutting down. */
  GoingAway: 1001,
  /** Policy violation: server full, invalid name, unauthorized, rate limit. */
  PolicyViolation: 1008,
  /** A frame over MAX_MESSAGE_BYTES. */
  MessageTooBig: 1009,
  /** An unexpected server error. */
  InternalError: 1011,
  /** No frame within HEARTBEAT_TIMEOUT_MS on the heartbeat route. */
  HeartbeatTimeout: 4000,
  /** An operator closed the only room the socket was in. */
  RoomClosed: 4001,
  /** An operator kicked or banned the user. */
  Kicked: 4003,
  /** The socket's send buffer passed MAX_BUFFERED_BYTES. */
  SlowConsumer: 4008,
  /** The username is already online. */
  UsernameInUse: 4009,
} as const;

/** A close code from {@linkcode CloseCode}. */
export type CloseCode = typeof CloseCode[keyof typeof CloseCode];

/** The reason strings sent with the close codes. */
export const CloseReason = {
  ServerShuttingDown: "Server shutting down",
  ServerFull: "Server is full",
  MessageTooBig: "Message too big",
  HeartbeatTimeout: "Heartbeat timeout",
  RoomClosed: "Room closed",
  Kicked: "Kicked",
  Banned: "Banned",
  SlowConsumer: "Slow consumer",
  UsernameInUse: "Username already in use",
  Unauthorized: "Unauthorized",
  RateLimitExceeded: "Rate limit exceeded",
  TooManyConnections: "Too many connections from this address",
} as const;

/** Stable `code` values of `error` frames. */
export const ErrorCode = {
  /** The text looked like a JSON object (started with `{`) but did not parse. */
  BadJson: "bad_json",
  /** The JSON parsed but a field is missing or has the wrong type. */
  BadMessage: "bad_message",
  /** The `type` field names no known frame. */
  UnknownType: "unknown_type",
  /** The message text is empty after trimming. */
  EmptyMessage: "empty_message",
  /** A binary frame; the protocol is JSON text only. */
  BinaryNotSupported: "binary_not_supported",
  /** The private message target is not online. */
  UserNotFound: "user_not_found",
  /** A username that breaks the naming rules. */
  InvalidName: "invalid_name",
  /** A rename to a name someone else has. */
  NameTaken: "name_taken",
  /** A rename to a name that is banned. */
  Banned: "banned",
  /** A room name that breaks the naming rules. */
  InvalidRoom: "invalid_room",
  /** The connection is not in the room it addressed. */
  NotInRoom: "not_in_room",
  /** The connection is in MAX_ROOMS_PER_CONNECTION rooms already. */
  TooManyRooms: "too_many_rooms",
  /** The frame was dropped by the per-connection rate limit. */
  RateLimited: "rate_limited",
  /** The storage engine could not commit the message; it was not sent. */
  Unavailable: "unavailable",
  /** A read position or the list of conversations needs an identity: a token or a browser key. */
  NoIdentity: "no_identity",
  /** The frame is not allowed on this route (for example rename on `/ws`). */
  NotAllowed: "not_allowed",
} as const;

/** An error code from {@linkcode ErrorCode}. */
export type ErrorCode = typeof ErrorCode[keyof typeof ErrorCode];
