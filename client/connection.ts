/**
 * A connection that stays up: it opens a {@linkcode Link}, reconnects with
 * backoff and jitter when the socket drops (unless the close says it is
 * final), and keeps the state the client reports (`idle`, `connecting`,
 * `open`, `reconnecting`, `closed`), until closed for good.
 *
 * @module
 */

import { CloseCode } from "../chat/protocol.ts";
import { reconnectDelay } from "./backoff.ts";
import { isFinalClose } from "./close_labels.ts";
import type { Emitter } from "./emitter.ts";
import type { ChatClientEvents, ChatClientOptions, ConnectionState, StateEvent } from "./events.ts";
import { Link, linkProtocols } from "./link.ts";
import type { Timers } from "./timers.ts";

/** What a {@linkcode Connection} needs from its client. */
export interface ConnectionOptions {
  /** The client's options: token, key, `webSocket` and `reconnect`. */
  client: ChatClientOptions;
  /** The clock, timers and randomness. */
  timers: Timers;
  /** The client's events, which state changes are emitted as. */
  events: Emitter<ChatClientEvents>;
  /** The URL of the next socket, which resumes from what the client has seen. */
  url: () => string;
  /** Called when a socket opened or a message came: the link is alive. */
  onData: () => void;
  /** Called with each frame's text. */
  onText: (text: string) => void;
  /** Called when a socket is given up, to stop what ran for it. */
  onDetach: () => void;
  /** Called when a socket dropped (or never opened), before any reconnect. */
  onDrop: (reason: string) => void;
  /** Called once when the connection ends for good, before the `closed` state. */
  onEnd: (reason: string) => void;
}

/** One client's connection, across its sockets. */
export class Connection {
  readonly #options: ConnectionOptions;
  readonly #timers: Timers;
  #link: Link | null = null;
  #state: ConnectionState = "idle";
  #welcomed = false;
  /** Whether any socket got a welcome since `connect()`. */
  #everWelcomed = false;
  #attempt = 0;
  #timer: unknown;

  /** A connection that opens with `connect()`. */
  constructor(options: ConnectionOptions) {
    this.#options = options;
    this.#timers = options.timers;
  }

  /** The connection state. */
  get state(): ConnectionState {
    return this.#state;
  }

  /** Whether the current socket got its welcome. */
  get welcomed(): boolean {
    return this.#welcomed;
  }

  /** Opens the connection unless it is open or opening. */
  connect(): void {
    if (this.#state !== "idle" && this.#state !== "closed") return;
    this.#attempt = 0;
    this.#everWelcomed = false;
    this.#open();
  }

  /** Reconnects at once when a reconnect is waiting. */
  reconnectNow(): void {
    if (this.#state !== "reconnecting") return;
    this.#timers.clearTimeout(this.#timer);
    this.#open();
  }

  /** Closes for good; resolves once the socket has closed. */
  close(): Promise<void> {
    const link = this.#link;
    this.#detach();
    this.#timers.clearTimeout(this.#timer);
    this.#end(CloseCode.Normal, "");
    if (link === null || link.closed) return Promise.resolve();
    return link.close(CloseCode.Normal, "Bye");
  }

  /** The socket got its welcome: frames may go, and the backoff starts again. */
  welcome(): void {
    this.#welcomed = this.#everWelcomed = true;
    this.#attempt = 0;
  }

  /** Tells the `open` state, once the welcome is taken in. */
  opened(): void {
    this.#setState({ state: "open" });
  }

  /** Whether a frame can be sent now: the socket is open and welcomed. */
  get writable(): boolean {
    return this.#link !== null && this.#link.open && this.#welcomed;
  }

  /** Sends a frame on the socket; only when `writable`. */
  send(frame: object): void {
    this.#link?.send(frame);
  }

  /** Gives up on a link that brought nothing for a whole heartbeat timeout, and reconnects. */
  timeout(): void {
    const link = this.#link;
    // Closed first, so the socket's own close event (maybe much later) is ignored.
    this.#closed(CloseCode.HeartbeatTimeout, "No answer from the server");
    link?.close(CloseCode.HeartbeatTimeout, "Heartbeat timeout");
  }

  #open(): void {
    this.#setState({ state: "connecting" });
    this.#welcomed = false;
    const { client, onData, onText } = this.#options;
    try {
      this.#link = new Link({
        url: this.#options.url(),
        protocols: linkProtocols(client),
        webSocket: client.webSocket,
        onData,
        onText,
        onClose: (code, reason) => this.#closed(code, reason),
      });
    } catch (error) {
      this.#closed(1006, error instanceof Error ? error.message : String(error));
      return;
    }
    onData();
  }

  #detach(): void {
    this.#link?.drop();
    this.#link = null;
    this.#welcomed = false;
    this.#timers.clearTimeout(this.#timer);
    this.#options.onDetach();
  }

  #closed(code: number, reason: string): void {
    this.#detach();
    this.#options.onDrop(reason || "Connection closed");
    if (this.#state === "closed") return;
    const { reconnect } = this.#options.client;
    if (reconnect === false || isFinalClose({ code, reason }, this.#everWelcomed)) {
      this.#end(code, reason);
      return;
    }
    const delayMs = reconnectDelay(
      { attempt: this.#attempt++, random: this.#timers.random() },
      reconnect,
    );
    this.#timer = this.#timers.setTimeout(() => this.#open(), delayMs);
    this.#setState({ state: "reconnecting", code, reason, delayMs });
  }

  #end(code: number, reason: string): void {
    if (this.#state === "closed") return;
    this.#options.onEnd(reason || "Connection closed");
    this.#setState({ state: "closed", code, reason });
  }

  #setState(event: StateEvent): void {
    this.#state = event.state;
    this.#options.events.emit("state", event);
  }
}
