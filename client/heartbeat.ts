/**
 * The client's side of the heartbeat: it sends a `heartbeat` frame every
 * interval the server gave, and gives up on a link that brought no frame
 * for a whole timeout, which a socket alone may not notice for minutes.
 *
 * @module
 */

import type { HeartbeatInfo } from "../chat/protocol.ts";
import type { Timers } from "./timers.ts";

/** What a {@linkcode Heartbeat} needs from its client. */
export interface HeartbeatOptions {
  /** The clock and timers. */
  timers: Timers;
  /** Sends a frame now; false when not connected. */
  write: (frame: object) => boolean;
  /** Called when no frame came for a whole timeout: the link is dead. */
  onTimeout: () => void;
}

/** One client's heartbeat, started by each welcome and stopped with its socket. */
export class Heartbeat {
  readonly #timers: Timers;
  readonly #write: (frame: object) => boolean;
  readonly #onTimeout: () => void;
  /** The heartbeat in force: the welcome's, or the last ack's after `askInterval`. */
  #info: HeartbeatInfo | null = null;
  /** The ping interval asked for with `askInterval`; undefined for the server's own. */
  #asked: number | undefined;
  #lastFrameAt = 0;
  #timer: unknown;

  /** A heartbeat that beats once `start` is given the server's. */
  constructor(options: HeartbeatOptions) {
    this.#timers = options.timers;
    this.#write = options.write;
    this.#onTimeout = options.onTimeout;
  }

  /** Notes that a frame came (or a socket opened): the link is alive now. */
  heard(): void {
    this.#lastFrameAt = this.#timers.now();
  }

  /** Adopts a welcome's heartbeat (none when null) and beats at its interval. */
  start(info: HeartbeatInfo | null): void {
    this.#info = info;
    if (info === null) return;
    // Asked for before (a hidden tab): ask again on the new socket.
    if (this.#asked !== undefined) this.#write({ type: "heartbeat", interval_ms: this.#asked });
    this.#timer = this.#timers.setTimeout(() => this.#beat(), info.interval_ms);
  }

  /** Adopts the heartbeat a `heartbeat_ack` gives, when it gives one. */
  ack(info: HeartbeatInfo | undefined): void {
    if (info !== undefined) this.#info = info;
  }

  /**
   * Asks the server for pings every `intervalMs` (its own interval when
   * undefined), now when a heartbeat is in force and on every new socket.
   */
  askInterval(intervalMs: number | undefined): void {
    this.#asked = intervalMs;
    if (this.#info === null) return;
    this.#write({ type: "heartbeat", interval_ms: intervalMs ?? 0 });
  }

  /** Stops beating (the socket is gone); the next `start` beats again. */
  stop(): void {
    this.#timers.clearTimeout(this.#timer);
  }

  #beat(): void {
    const info = this.#info;
    if (info === null) return;
    // No frame for a whole timeout while the server pings every interval: the link is
    // dead even if the socket has not noticed.
    if (this.#timers.now() - this.#lastFrameAt > info.timeout_ms) return this.#onTimeout();
    this.#write({ type: "heartbeat" });
    this.#timer = this.#timers.setTimeout(() => this.#beat(), info.interval_ms);
  }
}
