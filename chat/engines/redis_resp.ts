/**
 * The RESP codec of the Redis client: {@linkcode encodeCommand} writes a
 * command as a RESP array of bulk strings and {@linkcode RespParser} decodes
 * RESP2 (RESP3-tolerant) replies incrementally into {@linkcode RedisReply}
 * values.
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
    switch (type) {
      case 36: // $ bulk string
      case 33: // ! RESP3 bulk error
      case 61: // = RESP3 verbatim string
        return this.#bulk(type, start, cr);
      case 42: // * array
      case 126: // ~ RESP3 set
      case 62: // > RESP3 push
      case 37: // % RESP3 map
      case 124: // | RESP3 attribute
        this.#aggregate(type, start, cr);
        return true;
      default: {
        const value = this.#simple(type, start, cr);
        this.#consume(cr + 2);
        this.#emit(value);
        return true;
      }
    }
  }

  /** Decodes a one-line element whose header ends at `cr`. */
  #simple(type: number, start: number, cr: number): RedisReply {
    switch (type) {
      case 43: // + simple string
        return this.#text(start + 1, cr);
      case 45: // - simple error
        return new RedisError(this.#text(start + 1, cr));
      case 58: // : integer
        return this.#integer(start + 1, cr);
      case 95: // _ RESP3 null
        return null;
      case 35: // # RESP3 boolean
        return this.#buf[start + 1] === 116 /* t */ ? 1 : 0;
      case 44: // , RESP3 double
        return parseDouble(this.#text(start + 1, cr));
      case 40: // ( RESP3 big number, kept exact as a string
        return this.#text(start + 1, cr);
      default:
        throw protocolError(`unexpected type byte 0x${type.toString(16)}`);
    }
  }

  /**
   * Decodes a bulk string, bulk error or verbatim string whose header ends at
   * `cr`; returns false when its data has not all arrived yet.
   */
  #bulk(type: number, start: number, cr: number): boolean {
    const buf = this.#buf;
    const length = this.#integer(start + 1, cr);
    let next = cr + 2;
    let value: RedisReply = null;
    if (length >= 0) {
      if (length > MAX_BULK_LENGTH) throw protocolError(`bulk length ${length}`);
      const dataEnd = next + length;
      if (dataEnd + 2 > this.#end) {
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
    }
    this.#consume(next);
    this.#emit(value);
    return true;
  }

  /** Opens an array, set, push, map or attribute whose header ends at `cr`. */
  #aggregate(type: number, start: number, cr: number): void {
    const count = this.#integer(start + 1, cr);
    const isPairs = type === 37 || type === 124;
    this.#consume(cr + 2);
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

/** Decodes a RESP3 double, including its `inf`, `-inf` and `nan` spellings. */
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

/** The error for malformed input from the server; the connection must then be dropped. */
export function protocolError(detail: string): Error {
  return new Error(`Redis protocol error: ${detail}`);
}
