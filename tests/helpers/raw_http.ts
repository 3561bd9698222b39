/**
 * HTTP/1.1 and WebSocket written byte for byte on a bare TCP connection, for
 * what `fetch` and `WebSocket` will not do: {@linkcode rawRequest} sends a
 * request as it is (an upgrade without `Connection`, a
 * `Sec-WebSocket-Protocol` list without spaces), and {@linkcode RawClient}
 * does a WebSocket handshake by hand and reads only when asked, so it can
 * play a slow consumer or a half-open peer.
 *
 * ```ts
 * const res = await rawRequest({ port, path: "/ws", headers: { Upgrade: "websocket" } });
 * assert.equal(res.status, 400);
 * await using raw = await RawClient.connect(port);
 * assert.equal((await raw.handshake("/ws/chat")).status, 101);
 * ```
 *
 * @module
 */

import type { CloseInfo } from "./ws_client.ts";

/** Options of {@linkcode rawRequest}. */
export interface RawRequestOptions {
  /** The port on 127.0.0.1. */
  port: number;
  /** The request target, say `/ws/chat?token=x`. */
  path: string;
  /**
   * Header lines, written in this order and spelling after `Host`; a `Host`
   * here replaces the default `127.0.0.1`.
   */
  headers?: Record<string, string>;
  /** Default "GET". */
  method?: string;
}

/** A response head: the status line's code and the headers. */
export interface RawHead {
  /** The code of the status line, say 101 or 429. */
  status: number;
  /** The header lines, as received. */
  headers: Headers;
}

/** What came back: the head and the body as text. */
export interface RawResponse extends RawHead {
  /** The body; empty for a 101, whose connection then carries WebSocket frames. */
  body: string;
}

/** One WebSocket frame as read by {@linkcode RawClient}. */
export interface RawFrame {
  /** Whether this is the last frame of its message. */
  fin: boolean;
  /** 0x1 text, 0x2 binary, 0x8 close, 0x9 ping, 0xA pong, 0x0 continuation. */
  opcode: number;
  /** The unmasked payload. */
  payload: Uint8Array;
}

/** How a {@linkcode RawClient}'s connection ended, and the text frames seen on the way. */
export interface RawClose extends CloseInfo {
  /** Text frames read before the end. */
  texts: number;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Sends one request and reads its response head and, unless the status is
 * 101, its `content-length` body. The connection is closed afterwards.
 *
 * @throws {Error} when the server closes before a whole response arrived.
 */
export async function rawRequest(options: RawRequestOptions): Promise<RawResponse> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
  try {
    await writeAll(conn, requestHead(options.method ?? "GET", options.path, options.headers));
    const reader = new ByteReader(conn);
    const head = await readHead(reader);
    const length = head.status === 101 ? 0 : Number(head.headers.get("content-length") ?? 0);
    const body = await reader.read(length);
    if (body === null) throw new Error(`Connection closed before a ${length}-byte body`);
    return { ...head, body: decoder.decode(body) };
  } finally {
    conn.close();
  }
}

/** A request head: the request line, `Host` (127.0.0.1 unless given), then `headers` in order. */
function requestHead(
  method: string,
  path: string,
  headers: Record<string, string> = {},
): Uint8Array {
  const entries = Object.entries(headers);
  const isHost = ([name]: [string, string]) => name.toLowerCase() === "host";
  const lines = [
    `${method} ${path} HTTP/1.1`,
    `Host: ${entries.find(isHost)?.[1] ?? "127.0.0.1"}`,
    ...entries.filter((entry) => !isHost(entry)).map(([name, value]) => `${name}: ${value}`),
  ];
  return encoder.encode(lines.join("\r\n") + "\r\n\r\n");
}

/** Reads a response head, up to and without its CRLFCRLF. */
async function readHead(reader: ByteReader): Promise<RawHead> {
  const bytes = await reader.readHead();
  if (bytes === null) throw new Error("Connection closed before a whole response head");
  const lines = decoder.decode(bytes).split("\r\n");
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  return { status: Number(lines[0]?.split(" ")[1]), headers };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Where the head ends (its CRLFCRLF excluded), or -1 while it has not arrived. */
function headEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}

/** Buffers what a connection sent until a caller has the bytes it asked for. */
class ByteReader {
  #conn: Deno.Conn;
  #buffer = new Uint8Array(0);

  constructor(conn: Deno.Conn) {
    this.#conn = conn;
  }

  /** The next `size` bytes; null when the connection ends (or fails) first. */
  async read(size: number): Promise<Uint8Array | null> {
    while (this.#buffer.length < size) if (!(await this.#fill())) return null;
    const taken = this.#buffer.slice(0, size);
    this.#buffer = this.#buffer.slice(size);
    return taken;
  }

  /** The bytes before the next CRLFCRLF, which is consumed; null when the connection ends first. */
  async readHead(): Promise<Uint8Array | null> {
    let end: number;
    while ((end = headEnd(this.#buffer)) < 0) if (!(await this.#fill())) return null;
    const head = this.#buffer.slice(0, end);
    this.#buffer = this.#buffer.slice(end + 4);
    return head;
  }

  async #fill(): Promise<boolean> {
    const chunk = new Uint8Array(65_536);
    let n: number | null;
    try {
      n = await this.#conn.read(chunk);
    } catch {
      return false;
    }
    if (n === null) return false;
    const next = new Uint8Array(this.#buffer.length + n);
    next.set(this.#buffer);
    next.set(chunk.subarray(0, n), this.#buffer.length);
    this.#buffer = next;
    return true;
  }
}

/** A masked client frame: FIN (or not), the opcode, the length and the masked payload. */
function encodeFrame(opcode: number, payload: Uint8Array, fin: boolean): Uint8Array {
  const length = payload.length;
  const head: number[] = [(fin ? 0x80 : 0) | opcode];
  if (length < 126) head.push(0x80 | length);
  else if (length < 65536) head.push(0x80 | 126, length >> 8, length & 0xff);
  else {
    head.push(0x80 | 127, 0, 0, 0, 0);
    for (let shift = 24; shift >= 0; shift -= 8) head.push((length >>> shift) & 0xff);
  }
  const mask = crypto.getRandomValues(new Uint8Array(4));
  const frame = new Uint8Array(head.length + 4 + length);
  frame.set(head);
  frame.set(mask, head.length);
  for (let i = 0; i < length; i++) frame[head.length + 4 + i] = payload[i]! ^ mask[i & 3]!;
  return frame;
}

/**
 * A WebSocket client on a bare TCP connection: it reads only when asked,
 * so it can play a slow consumer or a half-open peer.
 */
export class RawClient implements AsyncDisposable {
  #conn: Deno.TcpConn;
  #reader: ByteReader;
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
    this.#reader = new ByteReader(conn);
  }

  /** Connects to 127.0.0.1:`port`. */
  static async connect(port: number): Promise<RawClient> {
    return new RawClient(await Deno.connect({ hostname: "127.0.0.1", port }));
  }

  /**
   * Sends a WebSocket upgrade for `path` and reads the response head. A
   * `Host` in `headers` replaces the default `127.0.0.1`, as a page on a
   * rebound DNS name would send it (fetch cannot set Host).
   */
  async handshake(path: string, headers: Record<string, string> = {}): Promise<RawHead> {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    await writeAll(
      this.#conn,
      requestHead("GET", path, {
        Upgrade: "websocket",
        Connection: "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
        ...headers,
      }),
    );
    return await readHead(this.#reader);
  }

  /** Sends one masked frame. */
  async sendFrame(opcode: number, payload: Uint8Array, fin = true): Promise<void> {
    await writeAll(this.#conn, encodeFrame(opcode, payload, fin));
  }

  /** Sends a text frame. */
  sendText(text: string): Promise<void> {
    return this.sendFrame(0x1, encoder.encode(text));
  }

  /** Reads the next frame; null when the connection ended. */
  async readFrame(): Promise<RawFrame | null> {
    const start = await this.#reader.read(2);
    if (start === null) return null;
    let length = start[1]! & 0x7f;
    if (length >= 126) {
      const extended = await this.#reader.read(length === 126 ? 2 : 8);
      if (extended === null) return null;
      length = extended.reduce((sum, byte) => sum * 256 + byte, 0);
    }
    const payload = await this.#reader.read(length);
    if (payload === null) return null;
    return { fin: (start[0]! & 0x80) !== 0, opcode: start[0]! & 0x0f, payload };
  }

  /**
   * Reads frames until a close frame or the end; returns the close code
   * (1005 for none, 1006 for an end without a close frame) and the text
   * frames seen on the way.
   */
  async readUntilClose(): Promise<RawClose> {
    let texts = 0;
    for (;;) {
      const frame = await this.readFrame();
      if (frame === null) return { code: 1006, reason: "", texts };
      if (frame.opcode === 0x1) texts++;
      if (frame.opcode === 0x8) {
        const p = frame.payload;
        if (p.length < 2) return { code: 1005, reason: "", texts };
        return { code: (p[0]! << 8) | p[1]!, reason: decoder.decode(p.subarray(2)), texts };
      }
    }
  }

  /** Closes the TCP connection without a closing handshake. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    try {
      this.#conn.close();
    } catch {
      // Already closed.
    }
  }

  /** Same as {@linkcode RawClient.close}. */
  [Symbol.asyncDispose](): Promise<void> {
    this.close();
    return Promise.resolve();
  }
}
