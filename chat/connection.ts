/**
 * One socket as the chat layer sees it: the socket-facing types routes use
 * ({@linkcode ChatSocket}, {@linkcode ConnectOptions}, {@linkcode Connection},
 * {@linkcode ConnectionInfo}) and the per-connection state the
 * ConnectionManager keeps, which is internal to the chat layer.
 *
 * @module
 */

import type { TokenBucket } from "./rate_limit.ts";

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
  receive(data: string | ArrayBuffer | Blob | Uint8Array): void;
  /** Tells the manager the socket closed. */
  closed(code: number): void;
}

/** What an operator sees of one connection. */
export interface ConnectionInfo {
  id: string;
  username: string;
  userId: string | null;
  rooms: string[];
  remoteAddr: string;
  connectedSince: string;
  framesIn: number;
  framesOut: number;
}

/** A frame held back for one connection. Internal to the chat layer. */
export interface Queued {
  /** The room or private channel; empty for a reply to this connection alone. */
  channel: string;
  /** The stored frame's id, to skip frames the history already holds; 0 for a reply. */
  id: number;
  /** The serialised frame. */
  text: string;
}

/**
 * The manager's state of one socket: name, rooms, limits and queues.
 * Internal to the chat layer; routes only see {@linkcode Connection}.
 */
export class Conn implements TokenBucket {
  readonly id = crypto.randomUUID();
  username = "";
  /** Lower-cased username: names are unique regardless of case. */
  key = "";
  // A short array replaced on join and leave rather than a Set: most
  // connections are in one room, and a Set costs more on every idle socket.
  /** First joined room first; the default target of messages. */
  rooms: readonly string[] = [];
  lastSeen: number;
  lastPing: number;
  framesIn = 0;
  framesOut = 0;
  /**
   * An upper bound of `socket.bufferedAmount`: its last read value plus the
   * bytes sent since. Reading the socket is an op call per send; the bound
   * is exact enough to read it only when it could be over the limit.
   */
  bufferedBound = 0;
  /** The frame rate limit's bucket: tokens left (see `takeToken` in rate_limit.ts). */
  tokens: number;
  /** When `tokens` was last brought up to date. */
  tokensAt: number;
  strikes = 0;
  closing = false;
  /** Whether `welcome` went out; until then every frame queues. */
  welcomed = false;
  /**
   * Frames held back while history is being sent: null when live. Rooms in
   * `pendingRooms` queue here; before `welcome` everything queues here.
   */
  queue: Queued[] | null = [];
  // Null rather than an empty Set while no history is in flight: a Set costs
  // a couple of hundred bytes on every idle connection.
  /** Rooms whose history is being sent; null when none. */
  pendingRooms: Set<string> | null = null;
  /**
   * Batching connections: frames made in this turn of the event loop, sent
   * as one text frame by the manager's flush; null when not batching.
   */
  out: string[] | null = null;
  /** UTF-8 bytes in `out`, newlines included. */
  outBytes = 0;
  /** Frames received while the name is checked on other processes; null once admitted. */
  held: (string | ArrayBuffer | Blob | Uint8Array)[] | null = null;
  /** A connection opened at `connectedAt` with a full bucket of `burst` tokens. */
  constructor(
    readonly socket: ChatSocket,
    readonly echo: boolean,
    readonly heartbeat: boolean,
    readonly userId: string | null,
    readonly remoteAddr: string,
    readonly connectedAt: number,
    burst: number,
  ) {
    this.lastSeen = connectedAt;
    this.lastPing = connectedAt;
    this.tokens = burst;
    this.tokensAt = connectedAt;
  }
}

/** The manager's entry points for handles; one object per manager. Internal to the chat layer. */
export interface Inlet {
  /** Hands over one frame from the connection's socket. */
  receive(conn: Conn, data: string | ArrayBuffer | Blob | Uint8Array): void;
  /** Tells the manager the connection's socket closed. */
  closed(conn: Conn, code: number): void;
}

// Methods on a prototype rather than two closures per connection: a few
// hundred bytes less for every idle socket.
/**
 * The {@linkcode Connection} the manager hands to a route, forwarding to its
 * {@linkcode Inlet}. Internal to the chat layer.
 */
export class Handle implements Connection {
  readonly id: string;
  #conn: Conn;
  #inlet: Inlet;
  /** Binds a connection's state to the manager that owns it. */
  constructor(conn: Conn, inlet: Inlet) {
    this.id = conn.id;
    this.#conn = conn;
    this.#inlet = inlet;
  }
  /** Hands over one frame from the socket. */
  receive(data: string | ArrayBuffer | Blob | Uint8Array): void {
    this.#inlet.receive(this.#conn, data);
  }
  /** Tells the manager the socket closed. */
  closed(code: number): void {
    this.#inlet.closed(this.#conn, code);
  }
}
