/**
 * One socket as routes see the chat layer. The vocabulary of the manager:
 * - {@linkcode ChatSocket}: the socket, as the manager sees it (a WebSocket
 *   in production, a fake in tests);
 * - {@linkcode Connection}: the handle a route holds for one socket;
 * - `Client` (client.ts): the manager's state of one connection, internal
 *   to the chat layer.
 *
 * @module
 */

/** One frame as a socket delivers it: text, or binary in one of its forms. */
export type RawFrame = string | ArrayBuffer | Blob | Uint8Array;

/** The narrow view of a WebSocket the manager needs. */
export interface ChatSocket {
  /** Queues a text frame. */
  send(data: string): void;
  /** Starts the closing handshake. */
  close(code?: number, reason?: string): void;
  /**
   * Bytes queued but not yet written. Must grow only by what `send` adds
   * (its UTF-8 length), as a WebSocket's does: the manager reads it only once
   * the bytes sent since its last read could have taken it past the limit.
   */
  readonly bufferedAmount: number;
  /** 0 connecting, 1 open, 2 closing, 3 closed. */
  readonly readyState: number;
}

/** What a route hands over when a socket opens. */
export interface ConnectOptions {
  /** `echo` answers `Echo: <text>`; `chat` is the chat protocol. Default `chat`. */
  mode?: "echo" | "chat";
  /** The requested username, unvalidated; none for an anonymous "User N". */
  username?: string;
  /** A verified user id (the token's `sub`); lets one user open several tabs. */
  userId?: string;
  /** The first room, unvalidated. Default `lobby`. */
  room?: string;
  /** Whether the application heartbeat runs for this socket. Default false. */
  heartbeat?: boolean;
  /**
   * Whether frames made in one turn of the event loop go out as one text
   * frame, one JSON object per line (chat mode only). Default false.
   */
  batch?: boolean;
  /** The last message id the client saw in `room`, to recover what it missed. */
  since?: number;
  /** The epoch of `since`, from the client's last `welcome`; a different one recovers nothing. */
  epoch?: string;
  /** The client's address, for logs and limits. */
  remoteAddr?: string;
  /** Refuses the socket with this close (say 1008 "Unauthorized"); set by the route. */
  refuse?: { code: number; reason: string };
}

/** The handle a route keeps for one socket. */
export interface Connection {
  /** The connection id. */
  readonly id: string;
  /** Hands over one frame from the socket. */
  receive(data: RawFrame): void;
  /** Tells the manager the socket closed. */
  closed(code: number): void;
}

/** What an operator sees of one connection. */
export interface ConnectionInfo {
  /** The connection id. */
  id: string;
  /** The name; empty for an echo socket. */
  username: string;
  /** The verified user id (a token's `sub`), or null. */
  userId: string | null;
  /** Rooms, first joined first. */
  rooms: string[];
  /** The client's address; empty when unknown. */
  remoteAddr: string;
  /** When it connected, ISO 8601. */
  connectedSince: string;
  /** Frames received from the socket. */
  framesIn: number;
  /** Frames written to the socket. */
  framesOut: number;
}
