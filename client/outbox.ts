/**
 * The messages on their way out: the {@linkcode SendQueue} that holds them
 * until their fate is known, sent as fast as the server's rate limit allows
 * (a {@linkcode Pacer}), refused at once when over its size limit, and sent
 * again, later each time, when the server said `rate_limited` all the same.
 *
 * @module
 */

import type { ClientChatMessage, ClientPrivateMessage, ErrorFrame } from "../chat/protocol.ts";
import { Pacer } from "./pacer.ts";
import { type Fate, type Outgoing, type Sending, sending, SendQueue } from "./send_queue.ts";
import type { Timers } from "./timers.ts";

/** The longest wait before a message refused as rate limited goes again. */
const RETRY_MAX_MS = 5000;

/** A frame's UTF-8 bytes as sent, with a client id of the longest kind the queue gives. */
export function frameBytes(frame: object): number {
  return new TextEncoder().encode(JSON.stringify({ cid: "x".repeat(16), ...frame })).length;
}

/** The limits of a welcome, as the client reads them. */
export interface OutboxLimits {
  /** The largest frame the server takes, in UTF-8 bytes. */
  max_message_bytes: number;
  /** Frames a second the server allows, when it limits them. */
  rate_per_s?: number;
  /** Frames the server allows at once, when it limits them. */
  burst?: number;
}

/** What an {@linkcode Outbox} needs from its client. */
export interface OutboxOptions {
  /** The clock, timers and randomness. */
  timers: Timers;
  /** Messages waiting at most; more are refused with `queue_full`. */
  maxQueued: number;
  /** Sends a frame now, already paced; false when not connected. */
  write: (frame: object) => boolean;
  /** Whether the socket was welcomed: nothing is sent before. */
  welcomed: () => boolean;
  /** Whether a room's messages may go: not while it is being rejoined. */
  roomReady: (room: string) => boolean;
}

/** A client's outgoing messages and their pace. */
export class Outbox {
  readonly #queue: SendQueue;
  readonly #pacer = new Pacer();
  readonly #timers: Timers;
  readonly #write: (frame: object) => boolean;
  readonly #welcomed: () => boolean;
  readonly #roomReady: (room: string) => boolean;
  #maxBytes = Infinity;
  #timer: unknown;

  /** An empty outbox. */
  constructor(options: OutboxOptions) {
    this.#timers = options.timers;
    this.#queue = new SendQueue(options.maxQueued, options.timers.random);
    this.#write = options.write;
    this.#welcomed = options.welcomed;
    this.#roomReady = options.roomReady;
  }

  /** Messages waiting for their fate. */
  get size(): number {
    return this.#queue.size;
  }

  /** Queues a message and sends what can go; refused at once when over the size limit. */
  add(frame: ClientChatMessage | ClientPrivateMessage): Sending {
    const tooBig = this.#tooBig(frame);
    if (tooBig !== undefined) return sending(Promise.resolve(tooBig), "");
    const fate = this.#queue.add(frame);
    this.pump();
    return fate;
  }

  /** Adopts a welcome's size and rate limits. */
  configure(limits: OutboxLimits): void {
    this.#maxBytes = limits.max_message_bytes;
    const rate = limits.rate_per_s !== undefined && limits.burst !== undefined
      ? { perS: limits.rate_per_s, burst: limits.burst }
      : undefined;
    this.#pacer.configure(rate, this.#timers.now());
  }

  /** Counts a frame sent outside the queue (it cannot wait): the messages wait the longer. */
  spend(): void {
    this.#pacer.spend(this.#timers.now());
  }

  /**
   * Takes a token for a frame that can wait (a read position): true when
   * it may go now; false, and nothing taken, while messages use them all.
   */
  tryTake(): boolean {
    return this.#pacer.take(this.#timers.now()) === 0;
  }

  /** Settles the message with client id `cid`; false when none waits. */
  settle(cid: string, fate: Fate): boolean {
    return this.#queue.settle(cid, fate);
  }

  /** Lets the messages in doubt matching `which` go again, and sends what can go. */
  resend(which: (item: Outgoing) => boolean): void {
    this.#queue.clear(which);
    this.pump();
  }

  /** Marks the messages in doubt matching `which` as plain unsent ones, sending nothing yet. */
  clear(which: (item: Outgoing) => boolean): void {
    this.#queue.clear(which);
  }

  /**
   * Takes a `rate_limited` error. Frames spaced out here can reach the
   * server together (a stalled network lets them go at once), so its
   * bucket may be emptier than the pacer's: the pacer empties too. True
   * when the frame was a message: it goes again after a wait.
   */
  rateLimited(frame: ErrorFrame): boolean {
    if (frame.code !== "rate_limited") return false;
    this.#pacer.drain(this.#timers.now());
    const retries = frame.cid === undefined ? -1 : this.#queue.retry(frame.cid);
    if (retries <= 0) return false;
    // Refused for its pace: wait, longer each time, then send it again, the others behind it.
    this.pump(Math.min(RETRY_MAX_MS, 1000 * retries));
    return true;
  }

  /** After a dropped socket: what was sent waits, in doubt, for the replay. */
  dropped(): void {
    this.#queue.dropped();
  }

  /** Refuses every message with `closed`, for good. */
  refuseAll(reason: string): void {
    this.#queue.refuseAll("closed", reason);
  }

  /** Stops a pending `pump`. */
  stop(): void {
    this.#timers.clearTimeout(this.#timer);
  }

  /** Sends what the queue holds (after `delayMs`), as fast as the server's limit allows. */
  pump(delayMs = 0): void {
    this.#timers.clearTimeout(this.#timer);
    if (delayMs > 0) {
      this.#timer = this.#timers.setTimeout(() => this.pump(), delayMs);
      return;
    }
    if (!this.#welcomed()) return;
    // A room being rejoined holds its messages; one the client is not in sends them, for the
    // server's `not_in_room`.
    const ready = (item: Outgoing) =>
      !item.uncertain &&
      (item.frame.type === "private" || this.#roomReady(item.frame.room ?? ""));
    for (let item = this.#queue.next(ready); item !== undefined; item = this.#queue.next(ready)) {
      // Queued before the first welcome told the limit: a frame over it would close the socket.
      const tooBig = this.#tooBig(item.frame);
      if (tooBig !== undefined) {
        this.#queue.settle(item.frame.cid, tooBig);
        continue;
      }
      const wait = this.#pacer.take(this.#timers.now());
      if (wait > 0) return this.pump(wait);
      if (!this.#write(item.frame)) return;
      item.sent = true;
    }
  }

  /** The refusal of a frame over the server's limit (known from the first welcome). */
  #tooBig(frame: object): Fate | undefined {
    const bytes = frameBytes(frame);
    if (bytes <= this.#maxBytes) return undefined;
    return {
      status: "refused",
      code: "message_too_big",
      reason: `Message too big: ${bytes} bytes`,
    };
  }
}
