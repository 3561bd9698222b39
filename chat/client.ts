/**
 * The manager's state of one connection: {@linkcode Client}. Its fields are
 * grouped by the part of the manager that owns them (the registry, the
 * outbox, replay, admission, command handling, the heartbeat): the owner
 * decides what a field means and when it is reset.
 *
 * The state is one object of plain fields, not one object per part: an idle
 * connection should cost as little as possible (the `idle` benchmark
 * scenario measures memory per idle connection), so a buffer exists only
 * while it has a use, and the client is also the {@linkcode Connection}
 * handle the route holds.
 *
 * @module
 */

import { connectionUserId, publicUserId } from "./user_ids.ts";
import type { ChatSocket, Connection, RawFrame } from "./connection.ts";
import type { TokenBucket } from "./rate_limit.ts";

/** The manager's entry points for a client's socket events; one object per manager. */
export interface ClientHost {
  /** Handles one frame from the client's socket. */
  receive(client: Client, data: RawFrame): void;
  /** Ends the client after its socket closed. */
  closed(client: Client, code: number): void;
}

/** A frame held back behind a room's history (see {@linkcode Client.backlog}). */
export interface BacklogItem {
  /** The room or private channel; empty for a reply to this client alone. */
  channel: string;
  /**
   * The stored frame's id, to skip frames the history already holds; 0 for
   * a reply or a live-only notice (join, leave), which no history holds.
   */
  id: number;
  /** The serialised frame. */
  text: string;
}

/** What a client is created with; the rest of its state starts empty. */
export interface ClientInit {
  /** The socket, written and closed only by the outbox. */
  socket: ChatSocket;
  /** Whether the socket is in echo mode. */
  echo: boolean;
  /** Whether the application heartbeat runs for this socket. */
  heartbeat: boolean;
  /** The verified user id, or null. */
  userId: string | null;
  /** The client's address; empty when unknown. */
  remoteAddr: string;
  /** When the socket opened, on the manager's clock. */
  connectedAt: number;
  /** The rate limit's burst: the bucket starts full. */
  burst: number;
}

/**
 * One connection as the manager keeps it. Also the {@linkcode Connection}
 * handed to the route, so a connection is one object: its two methods
 * forward to the manager's {@linkcode ClientHost}.
 */
export class Client implements Connection, TokenBucket {
  // ---- Registry (registry.ts): who this is and where.
  readonly id: string = crypto.randomUUID();
  /** The socket; only the outbox writes to it or closes it. */
  readonly socket: ChatSocket;
  /** Whether the socket is in echo mode (`/ws`). */
  readonly echo: boolean;
  /** Whether the application heartbeat runs for it. */
  readonly heartbeat: boolean;
  /** The verified user id (a token's `sub`), or null. */
  readonly userId: string | null;
  /** The client's address; empty when unknown. */
  readonly remoteAddr: string;
  /** When the socket opened, on the manager's clock. */
  readonly connectedAt: number;
  /** The name; empty for an echo socket. */
  username = "";
  /** The name's `nameKey`: names are unique regardless of case. */
  key = "";
  // A short array replaced on join and leave rather than a Set: most
  // connections are in one room, and a Set costs more on every idle socket.
  /** First joined room first; the default target of messages. */
  rooms: readonly string[] = [];
  /** Set once the client is being ended: nothing more is read or sent. */
  closing = false;

  // ---- Outbox (outbox.ts): what goes out on the socket.
  /** Frames written to the socket. */
  framesOut = 0;
  /**
   * An upper bound of `socket.bufferedAmount`: its last read value plus the
   * bytes sent since. Reading the socket is an op call per send; the bound
   * is exact enough to read it only when it could be over the limit.
   */
  bufferedBound = 0;
  /**
   * Batching clients: frames made in this turn of the event loop, sent as
   * one text frame by the outbox's flush; null when not batching.
   */
  batch: string[] | null = null;
  /** UTF-8 bytes in `batch`, newlines included. */
  batchBytes = 0;

  #uid: string | null = null;

  /**
   * The public identity on the frames this client authors: the same for
   * every connection of one user id, the connection's own without one.
   */
  get uid(): string {
    return this.#uid ??= this.userId === null
      ? connectionUserId(this.id)
      : publicUserId(this.userId);
  }

  // ---- Replay (replay.ts): live frames wait while history is sent.
  /** Whether `welcome` went out; until then every frame waits in `backlog`. */
  welcomed = false;
  /** Frames held back while history is sent; null when live. */
  backlog: BacklogItem[] | null = [];
  /** UTF-8 bytes in `backlog`, bounded like the send buffer. */
  backlogBytes = 0;
  // Null rather than an empty Set while no history is in flight: a Set costs
  // a couple of hundred bytes on every idle connection.
  /** Rooms whose history is being sent; their frames wait in `backlog`. Null when none. */
  replaying: Set<string> | null = null;

  // ---- Admission (admission.ts).
  /** Frames received while the name is looked up on other processes; null once admitted. */
  held: RawFrame[] | null = null;

  // ---- Commands (commands.ts): the frame rate limit and counts.
  /** Frames received from the socket. */
  framesIn = 0;
  /** The frame rate limit's bucket: tokens left (see `takeToken` in rate_limit.ts). */
  tokens: number;
  /** When `tokens` was last brought up to date. */
  tokensAt: number;
  /** Frames refused in a row while the bucket was empty. */
  strikes = 0;
  /** When a `typing` frame was last passed on, per room or `@person`; null before any. */
  typingAt: Map<string, number> | null = null;
  /** When this connection last had its conversations listed. */
  listedAt = -Infinity;

  // ---- Heartbeat (heartbeat.ts).
  /** When the client last sent a frame. */
  lastSeen: number;
  /** When the client was last pinged. */
  lastPing: number;
  /** The client's heartbeat interval and timeout, in times the server's (a hidden tab's is more). */
  beatScale = 1;
  /** The heartbeat slot the client is next checked in; -1 when not watched. */
  beatSlot = -1;

  readonly #host: ClientHost;

  /** A client opened at `init.connectedAt` with a full bucket of `init.burst` tokens. */
  constructor(init: ClientInit, host: ClientHost) {
    this.socket = init.socket;
    this.echo = init.echo;
    this.heartbeat = init.heartbeat;
    this.userId = init.userId;
    this.remoteAddr = init.remoteAddr;
    this.connectedAt = init.connectedAt;
    this.lastSeen = init.connectedAt;
    this.lastPing = init.connectedAt;
    this.tokens = init.burst;
    this.tokensAt = init.connectedAt;
    this.#host = host;
  }

  /** Hands over one frame from the socket. */
  receive(data: RawFrame): void {
    this.#host.receive(this, data);
  }

  /** Tells the manager the socket closed. */
  closed(code: number): void {
    this.#host.closed(this, code);
  }
}
