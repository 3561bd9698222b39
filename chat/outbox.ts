/**
 * The outbox: the one place that writes to a client's socket or closes it.
 * It batches the frames of one turn of the event loop into one text frame
 * (batching clients), watches the socket's send buffer (a slow consumer is
 * dropped) and defers closes by a tick so they never overtake sends.
 *
 * The verbs of sending, everywhere in the manager:
 * - `deliver`: a publication arriving from the engine (fanout.ts);
 * - `send` / `sendText`: one frame to one client, counted in the metrics;
 * - `write`: the socket write (or the batch), counted by the caller;
 * - `flush`: a batch goes out as one frame.
 *
 * @module
 */

import type { BacklogItem, Client } from "./client.ts";
import type { Scheduler, TimerHandle } from "./clock.ts";
import type { Logger } from "./logger.ts";
import { utf8Length } from "./bytes.ts";
import type { Metrics } from "./metrics.ts";
import { CloseCode, type ErrorCode, type ServerMessage, SYSTEM_SENDER } from "./protocol.ts";

/** The outbox's defaults, as {@linkcode ConnectionManagerOptions} names them. */
export const DEFAULT_OUTBOX: Readonly<{ maxBufferedBytes: number; maxBatchBytes: number }> = Object
  .freeze({
    /** Send buffer past which a socket is closed with 4008 (slow consumer). */
    maxBufferedBytes: 1_048_576,
    /** A batch is sent early rather than grow past this many UTF-8 bytes. */
    maxBatchBytes: 65_536,
  });

/** What the outbox needs from the manager. */
export interface OutboxOptions {
  /** Runs the timers. */
  scheduler: Scheduler;
  /** Where events are logged. */
  log: Logger;
  /** The counters to update. */
  metrics: Metrics;
  /** See {@linkcode DEFAULT_OUTBOX}. */
  maxBufferedBytes: number;
  /** See {@linkcode DEFAULT_OUTBOX}. */
  maxBatchBytes: number;
  /** Ends a client whose send buffer passed the limit (registry, rooms, notices). */
  dropSlow: (client: Client) => void;
}

const OPEN = 1;

/** A close waiting for its tick, with its own code so shutdown keeps a refusal's reason. */
interface PendingClose {
  timer: TimerHandle;
  code: number;
  reason: string;
}

/** Writes, batches and closes the sockets of one manager's clients. */
export class Outbox {
  #o: OutboxOptions;
  // Copied out of the options: read on every write.
  #maxBuffered: number;
  #maxBatch: number;
  /** Clients with frames in their batch, in the order they got the first. */
  #dirty: Client[] = [];
  #flushQueued = false;
  #closes = new Map<Client, PendingClose>();

  /** An outbox with no batches pending. */
  constructor(options: OutboxOptions) {
    this.#o = options;
    this.#maxBuffered = options.maxBufferedBytes;
    this.#maxBatch = options.maxBatchBytes;
  }

  /** Serialises and sends a frame; before `welcome` it waits in the backlog unless `force`. */
  send(client: Client, frame: ServerMessage, force = false): void {
    const text = JSON.stringify(frame);
    if (!force && client.backlog !== null && !client.welcomed) {
      return this.hold(client, { channel: "", id: 0, text }, text.length);
    }
    this.sendText(client, text);
  }

  /** Bytes given to the client's socket and not sent yet, its batch included. */
  unsent(client: Client): number {
    return client.socket.bufferedAmount + client.batchBytes;
  }

  /**
   * Holds a frame back in the client's backlog while its history is sent;
   * a backlog past the send-buffer limit drops the client as a slow consumer.
   */
  hold(client: Client, item: BacklogItem, bytes: number): void {
    client.backlog!.push(item);
    if ((client.backlogBytes += bytes) <= this.#maxBuffered || client.closing) return;
    this.#o.metrics.slowConsumerCloses++;
    this.#o.log.warn("slow_consumer", { conn: client.id, backlog: client.backlogBytes });
    this.#o.dropSlow(client);
  }

  /** Sends an `error` frame and counts it. */
  sendError(client: Client, error: { code: ErrorCode; message: string; cid?: string }): void {
    this.#o.metrics.error(error.code);
    const { code, message, cid } = error;
    const frame = { type: "error", code, message, sender: SYSTEM_SENDER } as const;
    this.send(client, cid === undefined ? frame : { ...frame, cid });
  }

  /** Sends one serialised frame; `bytes`, its UTF-8 length, may be passed when already known. */
  sendText(client: Client, text: string, bytes?: number): void {
    if (client.closing || client.socket.readyState !== OPEN) return;
    const size = bytes ?? utf8Length(text);
    this.#o.metrics.framesOut++;
    this.#o.metrics.bytesOut += size;
    this.write(client, text, size);
  }

  /** Writes one frame to the socket, or adds it to the client's batch. The caller counts it. */
  write(client: Client, text: string, bytes: number): void {
    client.framesOut++;
    const batch = client.batch;
    if (batch === null) {
      if (this.#send(client, text)) this.#checkBuffered(client, bytes);
      return;
    }
    // A batch stays under the largest frame a client could be expected to take whole.
    if (batch.length > 0 && client.batchBytes + 1 + bytes > this.#maxBatch) {
      this.#flushClient(client);
    }
    if (batch.length === 0) {
      this.#dirty.push(client);
      client.batchBytes = bytes;
    } else {
      client.batchBytes += 1 + bytes;
    }
    batch.push(text);
    if (!this.#flushQueued) {
      this.#flushQueued = true;
      // A microtask runs once the frames already received in this turn of
      // the event loop are handled, so the batch costs no latency.
      queueMicrotask(this.#flush);
    }
  }

  /** Sends every pending batch. */
  #flush = (): void => {
    this.#flushQueued = false;
    const dirty = this.#dirty;
    // Flushing may drop a slow consumer, whose close notices batch again.
    this.#dirty = [];
    for (let i = 0; i < dirty.length; i++) this.#flushClient(dirty[i]!);
  };

  /** Sends one client's batch as one frame, one JSON object per line. */
  #flushClient(client: Client): void {
    const batch = client.batch;
    if (batch === null || batch.length === 0) return;
    const text = batch.length === 1 ? batch[0]! : batch.join("\n");
    const bytes = client.batchBytes;
    batch.length = 0;
    client.batchBytes = 0;
    // Not `closing`: an error frame batched just before a drop still goes out first.
    if (client.socket.readyState !== OPEN) return;
    if (this.#send(client, text)) this.#checkBuffered(client, bytes);
  }

  /**
   * Gives a frame to the socket. A socket that throws is closed (1011) and
   * the throw goes no further: it would end the fan-out or the flush loop
   * it came from, and the clients after it there would get nothing, their
   * batches never flushed again.
   */
  #send(client: Client, text: string): boolean {
    try {
      client.socket.send(text);
      return true;
    } catch (error) {
      this.#o.log.warn("write_failed", { conn: client.id, error: String(error) });
      if (!client.closing) this.close(client, CloseCode.InternalError, "Internal error");
      return false;
    }
  }

  /**
   * Drops a slow consumer: reads the socket's buffer only when the bytes
   * sent since the last read could have taken it past the limit, since it
   * grows by nothing else (see `ChatSocket.bufferedAmount`).
   */
  #checkBuffered(client: Client, bytes: number): void {
    if ((client.bufferedBound += bytes) <= this.#maxBuffered) return;
    client.bufferedBound = client.socket.bufferedAmount;
    if (client.bufferedBound <= this.#maxBuffered) return;
    this.#o.metrics.slowConsumerCloses++;
    this.#o.log.warn("slow_consumer", { conn: client.id, buffered: client.socket.bufferedAmount });
    this.#o.dropSlow(client);
  }

  /** Closes the socket on the next tick: Deno may let a close overtake sends made in this one. */
  close(client: Client, code: number, reason: string): void {
    const timer = this.#o.scheduler.setTimeout(() => {
      this.#closes.delete(client);
      this.#closeNow(client, code, reason);
    }, 0);
    this.#closes.set(client, { timer, code, reason });
  }

  /** Closes every socket whose close waits for its tick: shutdown cannot wait. */
  closePending(): void {
    for (const [client, pending] of this.#closes) {
      this.#o.scheduler.clearTimeout(pending.timer);
      this.#closeNow(client, pending.code, pending.reason);
    }
    this.#closes.clear();
  }

  #closeNow(client: Client, code: number, reason: string): void {
    // What the client was told last (an error, a notice) goes out before the close.
    this.#flushClient(client);
    const socket = client.socket;
    try {
      if (socket.readyState < 2) socket.close(code, reason);
    } catch {
      // Already closed by the peer.
    }
  }
}
