/**
 * A small Redis client for Deno: RESP2 (RESP3-tolerant) incremental parser,
 * pipelined commands, AUTH/SELECT on every (re)connect, reconnect with
 * exponential backoff and a pub/sub subscriber that restores its
 * subscriptions after a reconnect.
 *
 * Its parts live beside it: redis_resp.ts (the RESP codec), redis_url.ts
 * (URL parsing), redis_connection.ts (one socket) and redis_link.ts (options,
 * dialing and reconnect).
 *
 * ```ts
 * const redis = new RedisClient({ url: "redis://127.0.0.1:6379/0" });
 * await redis.connect();
 * await redis.command(["SET", "greeting", "hello"]);
 * const value = await redis.command(["GET", "greeting"]); // "hello"
 * await redis.close();
 * ```
 *
 * @module
 */

import type { RespConnection } from "./redis_connection.ts";
import { Link, type RedisClientOptions, resolveOptions } from "./redis_link.ts";
import { type RedisArg, RedisError, type RedisReply } from "./redis_resp.ts";

// Commands that switch a connection into a mode where replies no longer
// match requests one to one.
const MODE_COMMANDS = new Set(["SUBSCRIBE", "PSUBSCRIBE", "SSUBSCRIBE", "MONITOR"]);

function checkCommand(args: readonly RedisArg[]): void {
  const name = args[0];
  if (typeof name === "string" && MODE_COMMANDS.has(name.toUpperCase())) {
    throw new TypeError(`Use RedisSubscriber for this command: ${name}`);
  }
}

/**
 * A Redis connection for commands, with pipelining and automatic reconnect.
 *
 * Commands issued while disconnected reject at once instead of queueing;
 * commands in flight when the connection drops reject with "Redis connection
 * lost". After a drop the client reconnects in the background with
 * exponential backoff, re-sending AUTH and SELECT.
 */
export class RedisClient implements AsyncDisposable {
  #link: Link;

  /**
   * Creates a client; nothing is dialed until {@linkcode RedisClient.connect}.
   *
   * @throws {TypeError} for a malformed URL.
   * @throws {RangeError} for an invalid port, db or delay.
   */
  constructor(options: RedisClientOptions = {}) {
    this.#link = new Link(resolveOptions(options), {});
  }

  /** True while a connection is established and usable. */
  get connected(): boolean {
    return this.#link.current !== null;
  }

  /**
   * Connects, authenticates and selects the database. Rejects with an Error
   * naming host:port when the server is unreachable and with a
   * {@linkcode RedisError} when the server refuses AUTH or SELECT. Only drops
   * after a successful connect are retried automatically.
   */
  connect(): Promise<void> {
    return this.#link.connect();
  }

  /**
   * Sends one command, e.g. `["SET", "key", "value"]`. Concurrent calls are
   * pipelined: written without waiting and answered in order.
   */
  command(args: readonly RedisArg[]): Promise<RedisReply> {
    try {
      checkCommand(args);
    } catch (error) {
      return Promise.reject(error);
    }
    const conn = this.#link.current;
    if (conn === null) return Promise.reject(this.#link.unavailable());
    return conn.send(args);
  }

  /**
   * Sends several commands in one write and resolves with their replies in
   * order. If any command fails, it rejects with the first error once all
   * replies have arrived (the other commands have still run).
   */
  async pipeline(commands: readonly (readonly RedisArg[])[]): Promise<RedisReply[]> {
    if (commands.length === 0) return [];
    for (const args of commands) checkCommand(args);
    const conn = this.#link.current;
    if (conn === null) throw this.#link.unavailable();
    const results = await Promise.allSettled(conn.sendMany(commands));
    const replies: RedisReply[] = [];
    for (const result of results) {
      if (result.status === "rejected") throw result.reason;
      replies.push(result.value);
    }
    return replies;
  }

  /** Closes the socket, stops reconnecting and rejects pending commands. */
  close(): Promise<void> {
    return this.#link.close();
  }

  /** Same as {@linkcode RedisClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/** Options for {@linkcode RedisSubscriber}. */
export interface RedisSubscriberOptions extends RedisClientOptions {
  /**
   * Called for each message on a subscribed channel; `pattern` is set when
   * the message matched a {@linkcode RedisSubscriber.psubscribe} pattern.
   */
  onMessage: (channel: string, message: string, pattern?: string) => void;
}

/**
 * A dedicated pub/sub connection.
 *
 * The subscriber remembers its channels and patterns: subscribing while
 * disconnected (or before `connect()`) records the channel, and every
 * (re)connect subscribes to all of them again before reporting "connected"
 * through `onStatus`. Messages published while disconnected are lost, so
 * callers should catch up from a durable source (e.g. a stream) on
 * "connected" and tolerate duplicates.
 */
export class RedisSubscriber implements AsyncDisposable {
  #link: Link;
  #onMessage: (channel: string, message: string, pattern?: string) => void;
  #channels = new Set<string>();
  #patterns = new Set<string>();
  #version = 0;

  /**
   * Creates a subscriber; nothing is dialed until {@linkcode RedisSubscriber.connect}.
   *
   * @throws {TypeError} for a malformed URL.
   * @throws {RangeError} for an invalid port, db or delay.
   */
  constructor(options: RedisSubscriberOptions) {
    this.#onMessage = options.onMessage;
    this.#link = new Link(resolveOptions(options), {
      onPush: (reply) => this.#onPush(reply),
      prepare: (conn) => this.#restore(conn),
    });
  }

  /** True while connected with all subscriptions in place. */
  get connected(): boolean {
    return this.#link.current !== null;
  }

  /** Channels currently subscribed (or to be restored on reconnect). */
  get channels(): string[] {
    return [...this.#channels];
  }

  /** Patterns currently subscribed (or to be restored on reconnect). */
  get patterns(): string[] {
    return [...this.#patterns];
  }

  /** Connects and subscribes to every recorded channel and pattern. */
  connect(): Promise<void> {
    return this.#link.connect();
  }

  /**
   * Subscribes to channels. Resolves once the server confirmed them, or at
   * once when disconnected (they are subscribed on reconnect).
   */
  subscribe(...channels: string[]): Promise<void> {
    return this.#change("SUBSCRIBE", this.#channels, channels, true);
  }

  /** Unsubscribes from the given channels, or from all when none are given. */
  unsubscribe(...channels: string[]): Promise<void> {
    return this.#change("UNSUBSCRIBE", this.#channels, channels, false);
  }

  /** Subscribes to glob-style patterns such as `room:*`. */
  psubscribe(...patterns: string[]): Promise<void> {
    return this.#change("PSUBSCRIBE", this.#patterns, patterns, true);
  }

  /** Unsubscribes from the given patterns, or from all when none are given. */
  punsubscribe(...patterns: string[]): Promise<void> {
    return this.#change("PUNSUBSCRIBE", this.#patterns, patterns, false);
  }

  /** Closes the connection and stops reconnecting. */
  close(): Promise<void> {
    return this.#link.close();
  }

  /** Same as {@linkcode RedisSubscriber.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }

  async #change(
    command: string,
    set: Set<string>,
    names: string[],
    add: boolean,
  ): Promise<void> {
    if (this.#link.isClosed) throw this.#link.unavailable();
    if (add && names.length === 0) throw new TypeError(`Missing channel name: ${command}`);
    const targets = names.length > 0 ? [...new Set(names)] : [...set];
    if (targets.length === 0) return;
    for (const name of targets) {
      if (add) set.add(name);
      else set.delete(name);
    }
    this.#version++;
    const conn = this.#link.current;
    if (conn === null) return;
    try {
      // The server confirms each channel separately.
      await conn.send([command, ...targets], targets.length);
    } catch (error) {
      if (error instanceof RedisError) {
        if (add) { for (const name of targets) set.delete(name); }
        throw error;
      }
      // The connection dropped: the reconnect applies the recorded state.
      if (this.#link.isClosed) throw error;
    }
  }

  /** Re-applies the recorded subscriptions on a fresh connection. */
  async #restore(conn: RespConnection): Promise<void> {
    let applied = { channels: new Set<string>(), patterns: new Set<string>() };
    for (;;) {
      // Calls made during this await only update the sets (the connection
      // is not handed out yet), so repeat until nothing changed meanwhile.
      const version = this.#version;
      const wanted = { channels: new Set(this.#channels), patterns: new Set(this.#patterns) };
      const ops: Promise<RedisReply>[] = [];
      const sync = (sub: string, unsub: string, want: Set<string>, have: Set<string>) => {
        if (want.size > 0) ops.push(conn.send([sub, ...want], want.size));
        const stale = [...have].filter((name) => !want.has(name));
        if (stale.length > 0) ops.push(conn.send([unsub, ...stale], stale.length));
      };
      sync("SUBSCRIBE", "UNSUBSCRIBE", wanted.channels, applied.channels);
      sync("PSUBSCRIBE", "PUNSUBSCRIBE", wanted.patterns, applied.patterns);
      await Promise.all(ops);
      applied = wanted;
      if (version === this.#version) return;
    }
  }

  #onPush(reply: RedisReply): boolean {
    if (!Array.isArray(reply)) return false;
    const [kind, a, b, c] = reply;
    if (kind === "message" && reply.length === 3) {
      if (typeof a === "string" && typeof b === "string" && this.#channels.has(a)) {
        this.#deliver(a, b);
      }
      return true;
    }
    if (kind === "pmessage" && reply.length === 4) {
      if (
        typeof a === "string" && typeof b === "string" && typeof c === "string" &&
        this.#patterns.has(a)
      ) {
        this.#deliver(b, c, a);
      }
      return true;
    }
    return false;
  }

  #deliver(channel: string, message: string, pattern?: string): void {
    try {
      if (pattern === undefined) this.#onMessage(channel, message);
      else this.#onMessage(channel, message, pattern);
    } catch (error) {
      this.#link.report(error);
    }
  }
}
