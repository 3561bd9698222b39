/**
 * One Redis socket: commands issued in the same tick share one write,
 * replies are matched to commands in FIFO order, and a read loop feeds the
 * {@linkcode RespParser}.
 *
 * @module
 */

import { concatBytes } from "../bytes.ts";
import {
  encodeCommand,
  protocolError,
  type RedisArg,
  RedisError,
  type RedisReply,
  RespParser,
} from "./redis_resp.ts";

interface Pending {
  resolve(reply: RedisReply): void;
  reject(error: Error): void;
  /** How many reply frames answer this command (SUBSCRIBE sends one per channel). */
  frames: number;
  replies?: RedisReply[];
}

const READ_BUFFER_SIZE = 64 * 1024;

/** Wraps one socket; it is never reused after it closes. */
export class RespConnection {
  /** Settles when the read loop has ended and the socket is closed. */
  readonly closed: Promise<void>;
  #socket: Deno.Conn;
  #parser: RespParser;
  #onPush: ((reply: RedisReply) => boolean) | undefined;
  #queue: (Pending | undefined)[] = [];
  #head = 0;
  #writes: Uint8Array[] = [];
  #flushing: Promise<void> | null = null;
  #error: Error | null = null;

  /**
   * Starts reading `socket`; `onPush` sees every reply first and returns true
   * for out-of-band frames (pub/sub messages) that answer no command.
   */
  constructor(socket: Deno.Conn, onPush?: (reply: RedisReply) => boolean) {
    this.#socket = socket;
    this.#onPush = onPush;
    this.#parser = new RespParser((reply) => this.#dispatch(reply));
    this.closed = this.#readLoop();
  }

  /** True once the connection failed or was closed; it then rejects every command. */
  get isClosed(): boolean {
    return this.#error !== null;
  }

  /** Queues a command; replies are matched in FIFO order. */
  send(args: readonly RedisArg[], frames = 1): Promise<RedisReply> {
    if (this.#error) return Promise.reject(this.#error);
    let data: Uint8Array;
    try {
      data = encodeCommand(args);
    } catch (error) {
      return Promise.reject(error);
    }
    const { promise, resolve, reject } = Promise.withResolvers<RedisReply>();
    this.#queue.push({ resolve, reject, frames });
    this.#write(data);
    return promise;
  }

  /**
   * Queues several commands as one write; nothing is sent when any of them
   * cannot be encoded.
   */
  sendMany(commands: readonly (readonly RedisArg[])[]): Promise<RedisReply>[] {
    if (this.#error) {
      const error = this.#error;
      return commands.map(() => Promise.reject(error));
    }
    const data = concatBytes(commands.map((args) => encodeCommand(args)));
    const promises = commands.map(() => {
      const { promise, resolve, reject } = Promise.withResolvers<RedisReply>();
      this.#queue.push({ resolve, reject, frames: 1 });
      return promise;
    });
    this.#write(data);
    return promises;
  }

  #write(data: Uint8Array): void {
    this.#writes.push(data);
    this.#flushing ??= this.#flush();
  }

  /** Fails every pending command with `reason` and closes the socket. */
  async close(reason: Error): Promise<void> {
    this.#fail(reason);
    await this.closed;
    await this.#flushing;
  }

  async #flush(): Promise<void> {
    // Yielding once lets every command issued in the same tick share one write.
    await Promise.resolve();
    try {
      while (this.#writes.length > 0 && this.#error === null) {
        const chunks = this.#writes;
        this.#writes = [];
        const data = chunks.length === 1 ? chunks[0]! : concatBytes(chunks);
        for (let offset = 0; offset < data.length;) {
          offset += await this.#socket.write(data.subarray(offset));
        }
      }
    } catch (error) {
      this.#fail(new Error("Redis connection lost", { cause: error }));
    } finally {
      this.#flushing = null;
    }
  }

  async #readLoop(): Promise<void> {
    const buf = new Uint8Array(READ_BUFFER_SIZE);
    let cause: unknown;
    try {
      for (;;) {
        const n = await this.#socket.read(buf);
        if (n === null) break;
        this.#parser.feed(buf.subarray(0, n));
      }
    } catch (error) {
      cause = error;
    }
    this.#fail(new Error("Redis connection lost", cause === undefined ? undefined : { cause }));
  }

  #dispatch(reply: RedisReply): void {
    if (this.#onPush?.(reply)) return;
    const pending = this.#queue[this.#head];
    if (pending === undefined) throw protocolError("reply without a pending command");
    if (reply instanceof RedisError) {
      this.#shift();
      pending.reject(reply);
    } else if (pending.frames === 1) {
      this.#shift();
      pending.resolve(reply);
    } else {
      const replies = pending.replies ??= [];
      replies.push(reply);
      if (replies.length === pending.frames) {
        this.#shift();
        pending.resolve(replies);
      }
    }
  }

  #shift(): void {
    this.#queue[this.#head++] = undefined;
    if (this.#head === this.#queue.length) {
      this.#queue = [];
      this.#head = 0;
    } else if (this.#head > 1024 && this.#head * 2 > this.#queue.length) {
      this.#queue = this.#queue.slice(this.#head);
      this.#head = 0;
    }
  }

  #fail(error: Error): void {
    if (this.#error) return;
    this.#error = error;
    try {
      this.#socket.close();
    } catch {
      // Already closed by the peer or by a failed write.
    }
    const pending = this.#queue;
    const head = this.#head;
    this.#queue = [];
    this.#head = 0;
    this.#writes = [];
    for (let i = head; i < pending.length; i++) pending[i]?.reject(error);
  }
}
