/**
 * Client options and the reconnecting link shared by `RedisClient` and
 * `RedisSubscriber` (redis_client.ts): dialing (TCP or
 * TLS), the AUTH/SELECT handshake, drop detection and reconnect with
 * exponential backoff.
 *
 * @module
 */

import { RespConnection } from "./redis_connection.ts";
import type { RedisReply } from "./redis_resp.ts";
import {
  DEFAULT_HOSTNAME,
  DEFAULT_PORT,
  parseRedisUrl,
  type RedisUrlOptions,
} from "./redis_url.ts";

/** Connection state reported through {@linkcode RedisClientOptions.onStatus}. */
export type RedisStatus = "connected" | "disconnected";

/** Reconnect backoff: the delay doubles per failed attempt, with jitter. */
export interface ReconnectOptions {
  /** Delay before the first reconnect attempt, in ms. @default {100} */
  minDelayMs?: number;
  /** Upper bound of the delay between attempts, in ms. @default {5000} */
  maxDelayMs?: number;
}

/** Options for `RedisClient` and `RedisSubscriber` (redis_client.ts). */
export interface RedisClientOptions {
  /** `redis://` or `rediss://` URL; the explicit fields below override its parts. */
  url?: string;
  /** Server host name or IP address. Default {@linkcode DEFAULT_HOSTNAME}. */
  hostname?: string;
  /** Server port. @default {6379} */
  port?: number;
  /** Connect with TLS (`Deno.connectTls`). @default {false} */
  tls?: boolean;
  /** Extra PEM root certificates for TLS, e.g. for a self-signed server. */
  caCerts?: string[];
  /** ACL user name sent with AUTH; without it AUTH uses the password only. */
  username?: string;
  /** Password; when set, AUTH is sent on every (re)connect. */
  password?: string;
  /** Database selected on every (re)connect. @default {0} */
  db?: number;
  /** Limit for connecting plus the AUTH/SELECT handshake, in ms. @default {10000} */
  connectTimeoutMs?: number;
  /**
   * Reconnect after the connection drops, or `false` to stay disconnected.
   * @default {{ minDelayMs: 100, maxDelayMs: 5000 }}
   */
  reconnect?: ReconnectOptions | false;
  /**
   * Called with "connected" after every successful (re)connect (for a
   * subscriber: once its subscriptions are restored) and with
   * "disconnected" when an established connection drops.
   */
  onStatus?: (status: RedisStatus) => void;
  /**
   * Receives failed reconnect attempts and errors thrown by callbacks. When
   * absent, reconnect failures are ignored and callback errors go to
   * `reportError`.
   */
  onError?: (error: Error) => void;
}

/** {@linkcode RedisClientOptions} checked, with the URL applied and every default filled in. */
export interface ResolvedOptions {
  /** Server host name or IP address. */
  hostname: string;
  /** Server port. */
  port: number;
  /** Connect with TLS. */
  tls: boolean;
  /** Extra PEM root certificates for TLS. */
  caCerts: string[] | undefined;
  /** ACL user name sent with AUTH. */
  username: string | undefined;
  /** Password; AUTH is sent when set. */
  password: string | undefined;
  /** Database selected on every (re)connect. */
  db: number;
  /** Limit for connecting plus the handshake, in ms. */
  connectTimeoutMs: number;
  /** Reconnect backoff, or `false` to stay disconnected after a drop. */
  reconnect: Required<ReconnectOptions> | false;
  /** See {@linkcode RedisClientOptions.onStatus}. */
  onStatus: ((status: RedisStatus) => void) | undefined;
  /** See {@linkcode RedisClientOptions.onError}. */
  onError: ((error: Error) => void) | undefined;
}

/**
 * Checks client options, applies the URL under the explicit fields and fills
 * in the defaults.
 *
 * @throws {TypeError} for a malformed URL or an empty hostname.
 * @throws {RangeError} for an invalid port, db, timeout or delay.
 */
export function resolveOptions(options: RedisClientOptions): ResolvedOptions {
  const fromUrl: Partial<RedisUrlOptions> = options.url === undefined
    ? {}
    : parseRedisUrl(options.url);
  const port = options.port ?? fromUrl.port ?? DEFAULT_PORT;
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RangeError(`Invalid port: ${port}`);
  }
  const db = options.db ?? fromUrl.db ?? 0;
  if (!Number.isInteger(db) || db < 0) throw new RangeError(`Invalid database index: ${db}`);
  const connectTimeoutMs = options.connectTimeoutMs ?? 10_000;
  if (!Number.isFinite(connectTimeoutMs) || connectTimeoutMs <= 0) {
    throw new RangeError(`Invalid connect timeout: ${connectTimeoutMs}`);
  }
  let reconnect: Required<ReconnectOptions> | false = false;
  if (options.reconnect !== false) {
    const minDelayMs = options.reconnect?.minDelayMs ?? 100;
    const maxDelayMs = options.reconnect?.maxDelayMs ?? Math.max(5000, minDelayMs);
    if (!Number.isFinite(minDelayMs) || minDelayMs < 0) {
      throw new RangeError(`Invalid reconnect minDelayMs: ${minDelayMs}`);
    }
    if (!Number.isFinite(maxDelayMs) || maxDelayMs < minDelayMs) {
      throw new RangeError(`Invalid reconnect maxDelayMs: ${maxDelayMs}`);
    }
    reconnect = { minDelayMs, maxDelayMs };
  }
  const hostname = options.hostname ?? fromUrl.hostname ?? DEFAULT_HOSTNAME;
  if (hostname === "") throw new TypeError(`Invalid hostname: ${hostname}`);
  return {
    hostname,
    port,
    tls: options.tls ?? fromUrl.tls ?? false,
    caCerts: options.caCerts,
    username: options.username ?? fromUrl.username,
    password: options.password ?? fromUrl.password,
    db,
    connectTimeoutMs,
    reconnect,
    onStatus: options.onStatus,
    onError: options.onError,
  };
}

/** What a {@linkcode Link} user adds to every connection it opens. */
export interface LinkHooks {
  /** Intercepts out-of-band frames (pub/sub messages) before FIFO matching. */
  onPush?: (reply: RedisReply) => boolean;
  /** Runs after AUTH/SELECT, before the connection is handed out. */
  prepare?: (conn: RespConnection) => Promise<void>;
}

/** Owns the current connection: dialing, handshake, drop detection, backoff. */
export class Link {
  /** `host:port`, as named in error messages. */
  readonly address: string;
  #options: ResolvedOptions;
  #hooks: LinkHooks;
  #conn: RespConnection | null = null;
  #attempt: Promise<void> | null = null;
  #timer: ReturnType<typeof setTimeout> | undefined;
  #retries = 0;
  // Reconnecting only starts once a connection was established, so a wrong
  // address fails connect() instead of retrying silently forever.
  #established = false;
  #closing: Promise<void> | null = null;

  /** Creates a link; nothing is dialed until {@linkcode Link.connect}. */
  constructor(options: ResolvedOptions, hooks: LinkHooks) {
    this.#options = options;
    this.#hooks = hooks;
    this.address = `${options.hostname}:${options.port}`;
  }

  /** The usable connection, or null while disconnected or closed. */
  get current(): RespConnection | null {
    return this.#conn !== null && !this.#conn.isClosed ? this.#conn : null;
  }

  /** True once {@linkcode Link.close} was called. */
  get isClosed(): boolean {
    return this.#closing !== null;
  }

  /** The error for a command that cannot be sent right now. */
  unavailable(): Error {
    return this.isClosed
      ? new Error("Redis client is closed")
      : new Error(`Redis is not connected: ${this.address}`);
  }

  /**
   * Connects unless already connected. Only drops after a successful connect
   * are retried automatically.
   */
  connect(): Promise<void> {
    if (this.isClosed) return Promise.reject(this.unavailable());
    if (this.current) return Promise.resolve();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#tryConnect();
  }

  /** Stops reconnecting and closes the current connection, rejecting its pending commands. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      clearTimeout(this.#timer);
      this.#timer = undefined;
      await this.#attempt?.catch(() => {});
      const conn = this.#conn;
      this.#conn = null;
      await conn?.close(new Error("Redis client is closed"));
    })();
    return this.#closing;
  }

  /** Hands an error to `onError`, or to `reportError` when there is none or it throws. */
  report(error: unknown): void {
    const err = error instanceof Error ? error : new Error(String(error));
    if (this.#options.onError === undefined) {
      reportError(err);
      return;
    }
    try {
      this.#options.onError(err);
    } catch (thrown) {
      reportError(thrown);
    }
  }

  #tryConnect(): Promise<void> {
    this.#attempt ??= this.#open().then(
      async (conn) => {
        this.#attempt = null;
        if (this.isClosed) {
          await conn.close(new Error("Redis client is closed"));
          throw this.unavailable();
        }
        this.#adopt(conn);
      },
      (error) => {
        this.#attempt = null;
        if (this.#established) this.#schedule();
        throw error;
      },
    );
    return this.#attempt;
  }

  #adopt(conn: RespConnection): void {
    this.#conn = conn;
    this.#established = true;
    this.#retries = 0;
    conn.closed.then(() => this.#onDrop(conn));
    this.#status("connected");
  }

  #onDrop(conn: RespConnection): void {
    if (this.#conn !== conn || this.isClosed) return;
    this.#conn = null;
    this.#status("disconnected");
    this.#schedule();
  }

  #schedule(): void {
    const backoff = this.#options.reconnect;
    if (backoff === false || this.isClosed || this.#timer !== undefined) return;
    const base = Math.min(backoff.maxDelayMs, backoff.minDelayMs * 2 ** this.#retries);
    // Jitter keeps many chat nodes from reconnecting in lockstep after an outage.
    const delay = base / 2 + Math.random() * (base / 2);
    this.#retries = Math.min(this.#retries + 1, 30);
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.#tryConnect().catch((error) => {
        // Failed attempts are routine during an outage; only report them
        // to a caller who asked.
        if (!this.isClosed && this.#options.onError !== undefined) this.report(error);
      });
    }, delay);
  }

  #status(status: RedisStatus): void {
    try {
      this.#options.onStatus?.(status);
    } catch (error) {
      this.report(error);
    }
  }

  async #open(): Promise<RespConnection> {
    const o = this.#options;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Redis connection timed out: ${this.address}`)),
        o.connectTimeoutMs,
      );
    });
    deadline.catch(() => {});
    const dial: Promise<Deno.Conn> = o.tls
      ? Deno.connectTls({ hostname: o.hostname, port: o.port, caCerts: o.caCerts }).then(
        async (tls) => {
          // Without this, a certificate problem would only surface as a lost
          // connection on the first read.
          try {
            await tls.handshake();
          } catch (error) {
            tls.close();
            throw error;
          }
          return tls;
        },
      )
      : Deno.connect({ hostname: o.hostname, port: o.port }).then((tcp) => {
        // Commands are small and latency-bound; never wait for Nagle.
        tcp.setNoDelay(true);
        return tcp;
      });
    let conn: RespConnection | null = null;
    try {
      let socket: Deno.Conn;
      try {
        socket = await Promise.race([dial, deadline]);
      } catch (error) {
        if (error instanceof Error && error.message.startsWith("Redis connection timed out")) {
          throw error;
        }
        throw new Error(`Cannot connect to Redis: ${this.address}`, { cause: error });
      }
      conn = new RespConnection(socket, this.#hooks.onPush);
      await Promise.race([this.#handshake(conn), deadline]);
      return conn;
    } catch (error) {
      // A dial that completes after the deadline must not leak its socket.
      if (conn === null) dial.then((socket) => socket.close(), () => {});
      await conn?.close(new Error("Redis connection lost"));
      throw error;
    } finally {
      clearTimeout(timer);
    }
  }

  async #handshake(conn: RespConnection): Promise<void> {
    const o = this.#options;
    const steps: Promise<RedisReply>[] = [];
    if (o.password !== undefined) {
      steps.push(conn.send(
        o.username === undefined ? ["AUTH", o.password] : ["AUTH", o.username, o.password],
      ));
    }
    if (o.db !== 0) steps.push(conn.send(["SELECT", o.db]));
    // PING surfaces NOAUTH/LOADING at connect time instead of on the first command.
    steps.push(conn.send(["PING"]));
    await Promise.all(steps);
    await this.#hooks.prepare?.(conn);
  }
}
