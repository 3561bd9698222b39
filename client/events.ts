/**
 * The types a `ChatClient` is made with and speaks in: its options, its
 * connection states, its events and their payloads, and its error.
 *
 * @module
 */

import type {
  ConversationSummary,
  ErrorFrame,
  JoinedFrame,
  LeftFrame,
  MessageFrame,
  PrivateFrame,
  ReadFrame,
  SeenFrame,
  SystemFrame,
  TypingFrame,
  WelcomeFrame,
} from "../chat/protocol.ts";
import type { BackoffOptions } from "./backoff.ts";
import type { Timers } from "./timers.ts";

/** Where the client is in its life. */
export type ConnectionState = "idle" | "connecting" | "open" | "reconnecting" | "closed";

/** A change of {@linkcode ConnectionState}. */
export interface StateEvent {
  /** The new state. */
  state: ConnectionState;
  /** For `reconnecting` and `closed`: the close code of the socket that ended. */
  code?: number;
  /** For `reconnecting` and `closed`: the close reason, possibly empty. */
  reason?: string;
  /** For `reconnecting`: milliseconds until the next attempt. */
  delayMs?: number;
}

/** A stored frame and whether it comes from a replay rather than live. */
export interface StoredEvent<F> {
  /** The frame as the server sent it. */
  frame: F;
  /** True for history (on join or after a reconnect), false for a live frame. */
  replayed: boolean;
  /**
   * True for a frame replayed after a reconnect that the client had not
   * seen (sent while it was away): new to the reader, like a live one.
   */
  missed: boolean;
}

/** The events of a {@linkcode ChatClient} and their payloads. */
export interface ChatClientEvents {
  /** The connection state changed. */
  state: StateEvent;
  /** A socket's session started (also after each reconnect). */
  welcome: WelcomeFrame;
  /** A room was joined or resumed on the socket. */
  joined: JoinedFrame;
  /** A room was left. */
  left: LeftFrame;
  /** A chat message, each id once per room. */
  message: StoredEvent<MessageFrame>;
  /** A notice (join, leave, rename, announce, close, kick), each id once per room. */
  system: StoredEvent<SystemFrame>;
  /** A private message to or from this user. */
  private: StoredEvent<PrivateFrame>;
  /** The online users of a room changed. */
  users: { room: string; users: string[]; count: number };
  /** Messages of a room may be missing: the server could not recover them all. */
  gap: { room: string };
  /** This user's name changed. */
  renamed: { from: string; to: string };
  /** Someone else is typing in a room, or to this user (`to`); show it for TYPING_TTL_MS. */
  typing: TypingFrame;
  /** This identity's read position moved: read in another tab, or given back on join. */
  read: ReadFrame;
  /** The other person of a conversation read it up to an id (a read receipt). */
  seen: SeenFrame;
  /** The answer to `listConversations()`: newest first. */
  conversations: ConversationSummary[];
  /** An error frame that answers no queued message, join or rename. */
  error: ErrorFrame;
}

/** Options of {@linkcode ChatClient}. */
export interface ChatClientOptions {
  /** The server: `http(s)://host:port` or `ws(s)://host:port`. */
  url: string | URL;
  /** The username; without one the server names the client and it keeps that name. */
  username?: string;
  /** The first room. Default `lobby`. */
  room?: string;
  /** A JWT, offered as the `bearer.<jwt>` subprotocol, when the server has AUTH_SECRET. */
  token?: string;
  /**
   * A secret of this browser or device (22 to 128 base64url characters, see
   * {@linkcode newKey}), offered as the `key.<secret>` subprotocol: without
   * AUTH_SECRET, connections with one key may share a name that others
   * cannot take (several tabs of one person). Keep it like a password.
   */
  key?: string;
  /** Whether to use the application heartbeat. Default true. */
  heartbeat?: boolean;
  /** Reconnect delays, or false to stay closed after a close. */
  reconnect?: BackoffOptions | false;
  /** Messages that may wait for their fate at once. Default 100. */
  maxQueued?: number;
  /** The clock, timers and randomness; tests pass fakes. */
  timers?: Timers;
  /** Opens a socket; tests and other runtimes may pass their own. */
  webSocket?: (url: string, protocols: string[]) => WebSocket;
}

/** An error frame turned into an exception, for `join` and `rename`. */
export class ChatError extends Error {
  /** The error frame's code, or `closed` when the connection ended first. */
  readonly code: string;

  /** An error with the server's code and message. */
  constructor(code: string, message: string) {
    super(message);
    this.name = "ChatError";
    this.code = code;
  }
}
