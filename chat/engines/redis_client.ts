/**
 * A small Redis client for Deno: RESP2 (RESP3-tolerant) incremental parser,
 * pipelined commands, AUTH/SELECT on every (re)connect, reconnect with
 * exponential backoff and a pub/sub subscriber that restores its
 * subscriptions after a reconnect.
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

/**
 * A decoded Redis reply.
 *
 * Bulk and simple strings are decoded as UTF-8 strings, integers and RESP3
 * doubles as numbers (integers above 2^53 lose precision), nil as `null` and
 * arrays (also RESP3 maps as flat key/value arrays, sets and pushes) as arrays.
 * RESP3 booleans become 1 or 0. A top-level error reply rejects the command
 * promise; an error nested in an array (e.g. inside an `EXEC` result) is kept
 * in place as a {@linkcode RedisError} value.
 */
export type RedisReply = string | number | null | RedisError | RedisReply[];

/** One command argument; numbers are sent in their decimal form. */
export type RedisArg = string | number | Uint8Array;

/** Connection state reported through {@linkcode RedisClientOptions.onStatus}. */
export type RedisStatus = "connected" | "disconnected";

/** An error reply sent by the Redis server; `message` is the server text. */
export class RedisError extends Error {
  /** The error prefix sent by the server, e.g. `"ERR"`, `"WRONGPASS"` or `"NOAUTH"`. */
  readonly code: string;

  /** Creates an error from the server message, e.g. `"ERR unknown command"`. */
  constructor(message: string, options?: ErrorOptions) {
    super(message, options);
    this.name = "RedisError";
    this.code = /^[A-Z][A-Z0-9_]*(?= |$)/.exec(message)?.[0] ?? "ERR";
  }
}

/** Connection settings parsed from a `redis://` or `rediss://` URL. */
export interface RedisUrlOptions {
  /** Host name or IP address (IPv6 addresses keep their brackets). */
  hostname: string;
  /** TCP port; 6379 when the URL has none. */
  port: number;
  /** True for `rediss://`. */
  tls: boolean;
  /** ACL user name, if the URL has one. */
  username?: string;
  /** Password, if the URL has one. */
  password?: string;
  /** Database index from the path; 0 when the URL has none. */
  db: number;
}

/** Default Redis port. */
const DEFAULT_PORT = 6379;

/**
 * Parses `redis://[user:pass@]host[:port][/db]` and `rediss://` (TLS) URLs.
 *
 * @throws {TypeError} when the URL is malformed; the message shows the URL
 * with its password masked.
 */
export function parseRedisUrl(url: string): RedisUrlOptions {
  const invalid = () => new TypeError(`Invalid Redis URL: ${maskUrl(url)}`);
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw invalid();
  }
  if (parsed.protocol !== "redis:" && parsed.protocol !== "rediss:") throw invalid();
  // Non-special schemes keep an empty host for "redis:host" style input.
  if (parsed.hostname === "" || parsed.search !== "" || parsed.hash !== "") throw invalid();
  const port = parsed.port === "" ? DEFAULT_PORT : Number(parsed.port);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw invalid();
  const path = parsed.pathname.replace(/^\//, "");
  if (path !== "" && !/^\d{1,5}$/.test(path)) throw invalid();
  const options: RedisUrlOptions = {
    hostname: parsed.hostname,
    port,
    tls: parsed.protocol === "rediss:",
    db: path === "" ? 0 : Number(path),
  };
  try {
    if (parsed.username !== "") options.username = decodeURIComponent(parsed.username);
    if (parsed.password !== "") options.password = decodeURIComponent(parsed.password);
  } catch {
    throw invalid();
  }
  return options;
}

/** Hides the password of a URL so it can appear in error messages and logs. */
function maskUrl(url: string): string {
  return url.replace(/^([^:/?#]*:\/\/[^:@/?#]*):[^@/?#]*@/, "$1:***@");
}

// ---------------------------------------------------------------------------
// Protocol encoding and parsing

const CR = 13;
const LF = 10;
const MAX_BULK_LENGTH = 512 * 1024 * 1024;
const INITIAL_BUFFER_SIZE = 16 * 1024;
// A buffer grown for one huge reply is dropped once empty so an idle
// connection does not pin that memory.
const MAX_IDLE_BUFFER_SIZE = 1024 * 1024;

const encoder = new TextEncoder();

/**
 * Encodes one command as a RESP array of bulk strings.
 *
 * @throws {TypeError} for an empty command or an unsupported argument.
 * @throws {RangeError} for a non-finite number argument.
 */
export function encodeCommand(args: readonly RedisArg[]): Uint8Array {
  if (args.length === 0) throw new TypeError("Redis command must not be empty");
  const parts: Uint8Array[] = [];
  let size = 1 + String(args.length).length + 2;
  for (const arg of args) {
    let bytes: Uint8Array;
    if (typeof arg === "string") {
      bytes = encoder.encode(arg);
    } else if (typeof arg === "number") {
      if (!Number.isFinite(arg)) throw new RangeError(`Invalid Redis argument: ${arg}`);
      bytes = encoder.encode(String(arg));
    } else if (arg instanceof Uint8Array) {
      bytes = arg;
    } else {
      throw new TypeError(`Invalid Redis argument: ${typeof arg}`);
    }
    parts.push(bytes);
    size += 1 + String(bytes.length).length + 2 + bytes.length + 2;
  }
  const out = new Uint8Array(size);
  let pos = writeHeader(out, 0, 42, /* * */ args.length);
  for (const bytes of parts) {
    pos = writeHeader(out, pos, 36, /* $ */ bytes.length);
    out.set(bytes, pos);
    pos += bytes.length;
    out[pos++] = CR;
    out[pos++] = LF;
  }
  return out;
}

/** Writes `<type><n>\r\n` and returns the position after it. */
function writeHeader(out: Uint8Array, pos: number, type: number, n: number): number {
  out[pos++] = type;
  const digits = String(n);
  for (let i = 0; i < digits.length; i++) out[pos++] = digits.charCodeAt(i);
  out[pos++] = CR;
  out[pos++] = LF;
  return pos;
}

/** An aggregate (array, map, set, push or attribute) still being filled. */
interface Frame {
  items: RedisReply[];
  remaining: number;
  /** RESP3 attributes are metadata in front of a reply and are dropped. */
  discard: boolean;
}

/**
 * Incremental RESP parser: feed it socket chunks in any split and it calls
 * `onReply` once per complete top-level reply, in order.
 *
 * Each byte is examined about once: complete elements are consumed as soon as
 * they arrive and partially received aggregates stay on a stack, so a large
 * array split across many reads is not re-parsed from its start. Bulk lengths
 * are byte counts, so multi-byte UTF-8 and binary payloads are handled.
 */
export class RespParser {
  #onReply: (reply: RedisReply) => void;
  #buf = new Uint8Array(INITIAL_BUFFER_SIZE);
  #start = 0;
  #end = 0;
  // Where to resume looking for CR, relative to #start, so a long line that
  // arrives in pieces is scanned only once.
  #scanOffset = 1;
  #stack: Frame[] = [];
  #decoder = new TextDecoder();

  /** Creates a parser that reports each complete reply to `onReply`. */
  constructor(onReply: (reply: RedisReply) => void) {
    this.#onReply = onReply;
  }

  /**
   * Consumes one chunk of bytes (copied, so the caller may reuse it).
   *
   * @throws {Error} on malformed input; the parser must then be discarded.
   */
  feed(chunk: Uint8Array): void {
    this.#append(chunk);
    while (this.#start < this.#end && this.#parseOne()) {
      // Keep consuming complete elements.
    }
    if (this.#start === this.#end) {
      this.#start = 0;
      this.#end = 0;
      if (this.#buf.length > MAX_IDLE_BUFFER_SIZE) {
        this.#buf = new Uint8Array(INITIAL_BUFFER_SIZE);
      }
    }
  }

  #append(chunk: Uint8Array): void {
    if (this.#end + chunk.length > this.#buf.length) {
      const pending = this.#end - this.#start;
      if (pending + chunk.length <= this.#buf.length) {
        this.#buf.copyWithin(0, this.#start, this.#end);
      } else {
        const grown = new Uint8Array(Math.max(this.#buf.length * 2, pending + chunk.length));
        grown.set(this.#buf.subarray(this.#start, this.#end));
        this.#buf = grown;
      }
      this.#start = 0;
      this.#end = pending;
    }
    this.#buf.set(chunk, this.#end);
    this.#end += chunk.length;
  }

  /** Parses one element at #start; returns false when more bytes are needed. */
  #parseOne(): boolean {
    const buf = this.#buf;
    const start = this.#start;
    const end = this.#end;
    let cr = start + this.#scanOffset;
    while (cr < end && buf[cr] !== CR) cr++;
    if (cr + 1 >= end) {
      this.#scanOffset = cr - start;
      return false;
    }
    if (buf[cr + 1] !== LF) throw protocolError("missing LF after CR");
    const type = buf[start]!;
    let next = cr + 2;
    let value: RedisReply;
    switch (type) {
      case 43: // + simple string
        value = this.#text(start + 1, cr);
        break;
      case 45: // - simple error
        value = new RedisError(this.#text(start + 1, cr));
        break;
      case 58: // : integer
        value = this.#integer(start + 1, cr);
        break;
      case 36: // $ bulk string
      case 33: // ! RESP3 bulk error
      case 61: { // = RESP3 verbatim string
        const length = this.#integer(start + 1, cr);
        if (length < 0) {
          value = null;
          break;
        }
        if (length > MAX_BULK_LENGTH) throw protocolError(`bulk length ${length}`);
        const dataEnd = next + length;
        if (dataEnd + 2 > end) {
          this.#scanOffset = cr - start;
          return false;
        }
        if (buf[dataEnd] !== CR || buf[dataEnd + 1] !== LF) {
          throw protocolError("bulk string not terminated by CRLF");
        }
        // Verbatim strings start with a 3-byte format and a colon ("txt:").
        const text = this.#text(type === 61 ? Math.min(next + 4, dataEnd) : next, dataEnd);
        value = type === 33 ? new RedisError(text) : text;
        next = dataEnd + 2;
        break;
      }
      case 42: // * array
      case 126: // ~ RESP3 set
      case 62: // > RESP3 push
      case 37: // % RESP3 map
      case 124: { // | RESP3 attribute
        const count = this.#integer(start + 1, cr);
        const isPairs = type === 37 || type === 124;
        this.#consume(next);
        if (count < 0) {
          this.#emit(null);
        } else if (count === 0) {
          if (type !== 124) this.#emit([]);
        } else {
          this.#stack.push({
            items: [],
            remaining: isPairs ? count * 2 : count,
            discard: type === 124,
          });
        }
        return true;
      }
      case 95: // _ RESP3 null
        value = null;
        break;
      case 35: // # RESP3 boolean
        value = buf[start + 1] === 116 /* t */ ? 1 : 0;
        break;
      case 44: // , RESP3 double
        value = parseDouble(this.#text(start + 1, cr));
        break;
      case 40: // ( RESP3 big number, kept exact as a string
        value = this.#text(start + 1, cr);
        break;
      default:
        throw protocolError(`unexpected type byte 0x${type.toString(16)}`);
    }
    this.#consume(next);
    this.#emit(value);
    return true;
  }

  #consume(next: number): void {
    this.#start = next;
    this.#scanOffset = 1;
  }

  #emit(value: RedisReply): void {
    let current = value;
    for (;;) {
      const top = this.#stack[this.#stack.length - 1];
      if (top === undefined) {
        this.#onReply(current);
        return;
      }
      if (!top.discard) top.items.push(current);
      if (--top.remaining > 0) return;
      this.#stack.pop();
      if (top.discard) return;
      current = top.items;
    }
  }

  #text(from: number, to: number): string {
    return this.#decoder.decode(this.#buf.subarray(from, to));
  }

  #integer(from: number, to: number): number {
    const buf = this.#buf;
    let i = from;
    const negative = buf[i] === 45;
    if (negative || buf[i] === 43) i++;
    if (i === to) throw protocolError("empty integer");
    let n = 0;
    for (; i < to; i++) {
      const digit = buf[i]! - 48;
      if (digit < 0 || digit > 9) throw protocolError(`invalid integer "${this.#text(from, to)}"`);
      n = n * 10 + digit;
    }
    return negative ? -n : n;
  }
}

function parseDouble(text: string): number {
  switch (text) {
    case "inf":
    case "+inf":
      return Infinity;
    case "-inf":
      return -Infinity;
    case "nan":
      return NaN;
    default:
      return Number(text);
  }
}

function protocolError(detail: string): Error {
  return new Error(`Redis protocol error: ${detail}`);
}

// ---------------------------------------------------------------------------
// One socket: write coalescing, FIFO reply matching, read loop

interface Pending {
  resolve(reply: RedisReply): void;
  reject(error: Error): void;
  /** How many reply frames answer this command (SUBSCRIBE sends one per channel). */
  frames: number;
  replies?: RedisReply[];
}

const READ_BUFFER_SIZE = 64 * 1024;

/** Wraps one socket; it is never reused after it closes. */
class RespConnection {
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

  constructor(socket: Deno.Conn, onPush?: (reply: RedisReply) => boolean) {
    this.#socket = socket;
    this.#onPush = onPush;
    this.#parser = new RespParser((reply) => this.#dispatch(reply));
    this.closed = this.#readLoop();
  }

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
    const data = concat(commands.map((args) => encodeCommand(args)));
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
        const data = chunks.length === 1 ? chunks[0]! : concat(chunks);
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

function concat(chunks: Uint8Array[]): Uint8Array {
  let size = 0;
  for (const chunk of chunks) size += chunk.length;
  const out = new Uint8Array(size);
  let pos = 0;
  for (const chunk of chunks) {
    out.set(chunk, pos);
    pos += chunk.length;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Options and the reconnecting link shared by client and subscriber

/** Reconnect backoff: the delay doubles per failed attempt, with jitter. */
export interface ReconnectOptions {
  /** Delay before the first reconnect attempt, in ms. @default {100} */
  minDelayMs?: number;
  /** Upper bound of the delay between attempts, in ms. @default {5000} */
  maxDelayMs?: number;
}

/** Options for {@linkcode RedisClient} and {@linkcode RedisSubscriber}. */
export interface RedisClientOptions {
  /** `redis://` or `rediss://` URL; the explicit fields below override its parts. */
  url?: string;
  /** Server host name or IP address. @default {"127.0.0.1"} */
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

interface ResolvedOptions {
  hostname: string;
  port: number;
  tls: boolean;
  caCerts: string[] | undefined;
  username: string | undefined;
  password: string | undefined;
  db: number;
  connectTimeoutMs: number;
  reconnect: Required<ReconnectOptions> | false;
  onStatus: ((status: RedisStatus) => void) | undefined;
  onError: ((error: Error) => void) | undefined;
}

function resolveOptions(options: RedisClientOptions): ResolvedOptions {
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
  const hostname = options.hostname ?? fromUrl.hostname ?? "127.0.0.1";
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

interface LinkHooks {
  /** Intercepts out-of-band frames (pub/sub messages) before FIFO matching. */
  onPush?: (reply: RedisReply) => boolean;
  /** Runs after AUTH/SELECT, before the connection is handed out. */
  prepare?: (conn: RespConnection) => Promise<void>;
}

/** Owns the current connection: dialing, handshake, drop detection, backoff. */
class Link {
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

  constructor(options: ResolvedOptions, hooks: LinkHooks) {
    this.#options = options;
    this.#hooks = hooks;
    this.address = `${options.hostname}:${options.port}`;
  }

  get current(): RespConnection | null {
    return this.#conn !== null && !this.#conn.isClosed ? this.#conn : null;
  }

  get isClosed(): boolean {
    return this.#closing !== null;
  }

  /** The error for a command that cannot be sent right now. */
  unavailable(): Error {
    return this.isClosed
      ? new Error("Redis client is closed")
      : new Error(`Redis is not connected: ${this.address}`);
  }

  connect(): Promise<void> {
    if (this.isClosed) return Promise.reject(this.unavailable());
    if (this.current) return Promise.resolve();
    clearTimeout(this.#timer);
    this.#timer = undefined;
    return this.#tryConnect();
  }

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
