/**
 * The wire protocol: every frame a client may send and the server may answer,
 * the close and error codes, and the one parse function used at the socket
 * edge. Nothing past {@linkcode parseClientMessage} sees `unknown`.
 *
 * This module imports nothing but its own parts (the code tables in
 * `protocol_codes.ts`, the parse function in `protocol_parse.ts`, the name
 * rules in `names.ts`), so that every layer
 * may depend on it.
 *
 * @module
 */

export { CloseCode, CloseReason, ErrorCode } from "./protocol_codes.ts";
import { ErrorCode } from "./protocol_codes.ts";
import type {
  ClientConversations,
  ClientRead,
  ConversationsFrame,
  ReadFrame,
  SeenFrame,
} from "./protocol_reads.ts";

/** The display name of the server in notices, reserved for users. */
export const SYSTEM_SENDER = "System";

/** The room a connection joins when it names none. */
export const DEFAULT_ROOM = "lobby";

// ---------------------------------------------------------------------------
// Client to server

/** A chat message to a room (the connection's first room when omitted). */
export interface ClientChatMessage {
  /** Always `message`. */
  type: "message";
  /** The text to send; not empty after trimming. */
  message: string;
  /** A room the connection is in; its first room when omitted. */
  room?: string;
  /** A client id (up to 64 letters, digits, `-`, `_`) the server echoes on the stored frame or the error that answers it. */
  cid?: string;
}

/** A private message to one user, echoed to the sender as acknowledgement. */
export interface ClientPrivateMessage {
  /** Always `private` (also parsed from a `message` naming `to` or `target_user`). */
  type: "private";
  /** The target's username; a `target_user` field is read as this. */
  to: string;
  /** The text to send; not empty after trimming. */
  message: string;
  /** The room it is sent from, shown in the delivered frame; the first room when omitted. */
  room?: string;
  /** A client id (up to 64 letters, digits, `-`, `_`) the server echoes on the stored frame or the error that answers it. */
  cid?: string;
}

/** A request to change the connection's username. */
export interface ClientRename {
  /** Always `rename`. */
  type: "rename";
  /** The new username, under the same rules as a name in the URL. */
  name: string;
  /** A client id the server echoes on an `error` that refuses the rename. */
  cid?: string;
}

/** The application heartbeat; answered with `heartbeat_ack`. */
export interface ClientHeartbeat {
  /** Always `heartbeat`. */
  type: "heartbeat";
  /**
   * Asks for this cadence of pings (a hidden tab beats slower): the server
   * takes it within 1 to {@linkcode HEARTBEAT_MAX_SCALE} times its own
   * interval, scales the timeout alike, and says what it took in the ack.
   */
  interval_ms?: number;
}

/** How many times its own heartbeat interval the server lets a connection ask for. */
export const HEARTBEAT_MAX_SCALE = 10;

/** The answer to a server `ping`. */
export interface ClientPong {
  /** Always `pong`. */
  type: "pong";
}

/** Join another room on the same socket; `since` recovers missed messages. */
export interface ClientJoin {
  /** Always `join`. */
  type: "join";
  /** The room to join. */
  room: string;
  /** The last message id seen in the room: what came after it is recovered. */
  since?: number;
  /** The epoch `since` belongs to, from the last `welcome` or `joined`. */
  epoch?: string;
  /** A client id the server echoes on an `error` that refuses the join. */
  cid?: string;
}

/** Leave a room. */
export interface ClientLeave {
  /** Always `leave`. */
  type: "leave";
  /** A room the connection is in. */
  room: string;
}

/** Ask for the online users of a room (the first room when omitted). */
export interface ClientUsers {
  /** Always `users`. */
  type: "users";
  /** A room the connection is in; its first room when omitted. */
  room?: string;
  /** The page of a big room's list to start at. Default 0. */
  offset?: number;
  /** A client id the server echoes on an `error` that refuses the request. */
  cid?: string;
}

/**
 * Says this user is typing in a room, or to one user with `to`. Passed on
 * live and never stored; the server passes at most one per
 * {@linkcode TYPING_INTERVAL_MS} per connection and drops the rest.
 */
export interface ClientTyping {
  /** Always `typing`. */
  type: "typing";
  /** A room the connection is in; its first room when omitted and no `to`. */
  room?: string;
  /** The user being written to privately. */
  to?: string;
}

/**
 * Asks for the private messages of a conversation: the latest, or those
 * after `since`. Answered with a `conversation` frame.
 */
export interface ClientConversation {
  /** Always `conversation`. */
  type: "conversation";
  /** The other person's public uid (from a private frame's `uid` or `to_uid`). */
  with: string;
  /** The last id seen in the conversation: what came after it is sent. */
  since?: number;
}

/** Ask for every message of a room after `since`, then live ones. */
export interface ClientResume {
  /** Always `resume`. */
  type: "resume";
  /** A room the connection is in. */
  room: string;
  /** The last message id seen in the room: what came after it is sent. */
  since: number;
  /** The epoch `since` belongs to, from the last `welcome` or `joined`. */
  epoch?: string;
}

/** Every frame a client may send, after {@linkcode parseClientMessage}. */
export type ClientMessage =
  | ClientChatMessage
  | ClientPrivateMessage
  | ClientRename
  | ClientHeartbeat
  | ClientPong
  | ClientJoin
  | ClientLeave
  | ClientUsers
  | ClientTyping
  | ClientConversation
  | ClientConversations
  | ClientRead
  | ClientResume;

// ---------------------------------------------------------------------------
// Server to client

/** The heartbeat settings announced in `welcome`. */
export interface HeartbeatInfo {
  /** Milliseconds between the server's `ping` frames. */
  interval_ms: number;
  /** Milliseconds without a frame from the client before it is closed with 4000. */
  timeout_ms: number;
}

/** A chat message as stored and delivered. */
export interface MessageFrame {
  /** Always `message`. */
  type: "message";
  /** Increases strictly within the room. */
  id: number;
  /** The room the message was sent to. */
  room: string;
  /** The author's unique username. */
  username: string;
  /** The author's display name. */
  sender: string;
  /** The text as the author sent it. */
  message: string;
  /** Server time, ISO 8601. */
  timestamp: string;
  /** The author's client id for the message, when it sent one. */
  cid?: string;
  /** The author's public identity: the same across renames, reloads and tabs (see `welcome.uid`). */
  uid?: string;
}

/** A private message as delivered to its target and echoed to its sender. */
export interface PrivateFrame {
  /** Always `private`. */
  type: "private";
  /** Increases strictly within the pair of users. */
  id: number;
  /** The room the sender addressed it from. */
  room: string;
  /** The author's unique username. */
  username: string;
  /** The author's display name. */
  sender: string;
  /** The author's username again, as seed 03's clients read it. */
  from: string;
  /** The target's username. */
  to: string;
  /** The text as the author sent it. */
  message: string;
  /** Server time, ISO 8601. */
  timestamp: string;
  /** The author's client id for the message, when it sent one. */
  cid?: string;
  /** The author's public identity, as on {@linkcode MessageFrame.uid}. */
  uid?: string;
  /**
   * The target's public identity, when known: then the message is kept in
   * the conversation of the two uids, which `conversation` reads again.
   */
  to_uid?: string;
}

/** What a system notice is about. */
export type SystemEvent = "join" | "leave" | "rename" | "announce" | "close" | "kick";

/** A notice from the server to a room. */
export interface SystemFrame {
  /** Always `system`. */
  type: "system";
  /**
   * Increases strictly within the room; absent on `join` and `leave`
   * notices, which are live only and never stored.
   */
  id?: number;
  /** The room the notice is for. */
  room: string;
  /** What the notice is about. */
  event: SystemEvent;
  /** The notice as text, for example `bob joined the room`. */
  message: string;
  /** Always {@linkcode SYSTEM_SENDER}. */
  username: string;
  /** Always {@linkcode SYSTEM_SENDER}. */
  sender: string;
  /** The user the notice is about, when there is one; the first of `users`. */
  user?: string;
  /**
   * Every user a `join` or `leave` notice is about, in order, when it is
   * about more than one: notices within PRESENCE_WINDOW_MS are coalesced.
   */
  users?: string[];
  /** The previous name, for `rename`. */
  old_name?: string;
  /** Members of the room when the notice was made. */
  connected_count: number;
  /** Server time, ISO 8601. */
  timestamp: string;
}

/** A frame kept in a room's history. */
export type RoomFrame = MessageFrame | SystemFrame;

/** A frame kept in history: room frames and private messages. */
export type StoredFrame = MessageFrame | SystemFrame | PrivateFrame;

/** A frame before its id is known: what the manager serialises and publishes. */
export type Draft<F extends StoredFrame = StoredFrame> = F extends StoredFrame ? Omit<F, "id">
  : never;

/**
 * The fields a client that renders every frame as `${sender}: ${message}`
 * (seed 02's) shows, on every frame of the server's own but `ping` and
 * `heartbeat_ack`; the sentences come from `notices.ts`.
 */
export interface SystemText {
  /** Always {@linkcode SYSTEM_SENDER}. */
  sender: string;
  /** The frame as a sentence, for example `Welcome, alice! You are in lobby with 1 other.` */
  message: string;
}

/** The limits announced in `welcome`, for a client to stay within. */
export interface Limits {
  /** MAX_MESSAGE_BYTES: a bigger frame closes the socket with 1009. */
  max_message_bytes: number;
  /** RATE_LIMIT_PER_S: frames a connection may send per second, every type counted. */
  rate_per_s: number;
  /** RATE_LIMIT_BURST: frames a connection may send at once. */
  burst: number;
}

/** The first frame on every chat connection. */
export interface WelcomeFrame extends SystemText {
  /** Always `welcome`. */
  type: "welcome";
  /** The connection id. */
  id: string;
  /** The connection's username, as the server named or normalised it. */
  username: string;
  /**
   * Your public identity: the messages you author carry it as `uid`, the
   * same after a rename, and in every tab of one token's `sub` or one browser key.
   */
  uid: string;
  /** The room the connection joined: its first room. */
  room: string;
  /** The online users of the room: the first ROOM_PRESENCE_LIMIT of them. */
  users: string[];
  /** How many users the room has; more than `users` holds in a big room (ask `users` for pages). */
  user_count: number;
  /** The heartbeat settings; null without the application heartbeat. */
  heartbeat: HeartbeatInfo | null;
  /** Server time, ISO 8601. */
  server_time: string;
  /** Recent room history, oldest first, or what was missed after `since`. */
  history: RoomFrame[];
  /** False when `since` was older than the retained history, or of another epoch. */
  recovered: boolean;
  /** The history's epoch: send it back with `since`; it changes when the server lost history. */
  epoch: string;
  /** Limits the client should respect. */
  limits: Limits;
  /**
   * True when the history goes on in `history` frames (REPLAY_MAX_BYTES
   * per frame); live frames of the room follow the last of them.
   */
  more: boolean;
}

/** The answer to an in-band `join` or `resume`. */
export interface JoinedFrame extends SystemText {
  /** Always `joined`. */
  type: "joined";
  /** The room joined or resumed. */
  room: string;
  /** The online users of the room: the first ROOM_PRESENCE_LIMIT of them. */
  users: string[];
  /** How many users the room has; more than `users` holds in a big room (ask `users` for pages). */
  user_count: number;
  /** As in {@linkcode WelcomeFrame.history}. */
  history: RoomFrame[];
  /** As in {@linkcode WelcomeFrame.recovered}. */
  recovered: boolean;
  /** As in {@linkcode WelcomeFrame.epoch}. */
  epoch: string;
  /** As in {@linkcode WelcomeFrame.more}. */
  more: boolean;
}

/** The next page of a room's history after a `welcome` or `joined` that said `more`. */
export interface HistoryFrame extends SystemText {
  /** Always `history`. */
  type: "history";
  /** The room whose history this is. */
  room: string;
  /** The next frames of the history, oldest first, after those already sent. */
  history: RoomFrame[];
  /** True when another `history` frame follows. */
  more: boolean;
}

/** The private messages of a conversation, oldest first, as stored. */
export interface ConversationFrame {
  /** Always `conversation`. */
  type: "conversation";
  /** The other person's public uid, as asked. */
  with: string;
  /** The messages, oldest first: the latest, or those after `since`. */
  history: PrivateFrame[];
  /** False when `since` was older than the retained history. */
  recovered: boolean;
  /** True when more follow: ask again with `since` the last id here. */
  more: boolean;
  /** The epoch of the ids: a read position of another epoch means nothing. */
  epoch: string;
}

/** The answer to an in-band `leave`. */
export interface LeftFrame extends SystemText {
  /** Always `left`. */
  type: "left";
  /** The room left. */
  room: string;
}

/** The online users of a room. */
export interface UsersFrame extends SystemText {
  /** Always `users`. */
  type: "users";
  /** The room asked about. */
  room: string;
  /** The online users of the room from `offset`: ROOM_PRESENCE_LIMIT of them at most. */
  users: string[];
  /** How many users the room has. */
  connected_count: number;
  /** The place of `users[0]` in the whole list. */
  offset: number;
  /** True when more users follow: ask again with `offset` past these. */
  more: boolean;
}

/** The server's application ping on the heartbeat route. */
export interface PingFrame {
  /** Always `ping`; answer with `pong`. */
  type: "ping";
  /** Server time, ISO 8601. */
  server_time: string;
}

/** Someone is typing: show it for {@linkcode TYPING_TTL_MS} unless another comes. */
export interface TypingFrame {
  /** Always `typing`. */
  type: "typing";
  /** The room typed in; for a private one, the room the typist is in. */
  room: string;
  /** Who is typing. */
  user: string;
  /** For private typing: the user written to (you). */
  to?: string;
}

/** The least time between two `typing` frames of one connection that are passed on. */
export const TYPING_INTERVAL_MS = 2000;

/** How long a client shows "is typing" after the last `typing` frame. */
export const TYPING_TTL_MS = 5000;

/** The answer to a client `heartbeat`. */
export interface HeartbeatAckFrame {
  /** Always `heartbeat_ack`. */
  type: "heartbeat_ack";
  /** Server time, ISO 8601. */
  server_time: string;
  /** The heartbeat now in force, after a heartbeat that asked for an `interval_ms`. */
  heartbeat?: HeartbeatInfo;
}

/** A refused frame; the connection stays open unless a close follows. */
export interface ErrorFrame extends SystemText {
  /** Always `error`. */
  type: "error";
  /** A stable code from {@linkcode ErrorCode}. */
  code: ErrorCode;
  /** A human-readable explanation, for example `User not online: carol`. */
  message: string;
  /** The client id of the frame refused, when it carried one. */
  cid?: string;
}

/** Every frame the server sends on chat routes. */
export type ServerMessage =
  | WelcomeFrame
  | JoinedFrame
  | HistoryFrame
  | LeftFrame
  | MessageFrame
  | PrivateFrame
  | SystemFrame
  | UsersFrame
  | PingFrame
  | HeartbeatAckFrame
  | TypingFrame
  | ConversationFrame
  | ConversationsFrame
  | ReadFrame
  | SeenFrame
  | ErrorFrame;

// Read positions, receipts and the list of conversations have their own file.
export {
  type ClientConversations,
  type ClientRead,
  CONVERSATIONS_INTERVAL_MS,
  CONVERSATIONS_LISTED,
  type ConversationsFrame,
  type ConversationSummary,
  type ReadFrame,
  type SeenFrame,
} from "./protocol_reads.ts";
// The naming rules live in one module that imports nothing.
export { isReservedName, nameKey, normalizeName, roomName } from "./names.ts";
// The parse function lives in its own file of the protocol module.
export { isUid, parseClientMessage, parseEpoch, type ParseResult } from "./protocol_parse.ts";
