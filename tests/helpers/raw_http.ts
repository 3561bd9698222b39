/**
 * One HTTP/1.1 request written byte for byte on a bare TCP connection, for
 * requests `fetch` will not send as they are: an upgrade without
 * `Connection`, a `Sec-WebSocket-Protocol` list without spaces.
 *
 * ```ts
 * const res = await rawRequest({ port, path: "/ws", headers: { Upgrade: "websocket" } });
 * assert.equal(res.status, 400);
 * ```
 *
 * @module
 */

/** Options of {@linkcode rawRequest}. */
export interface RawRequestOptions {
  /** The port on 127.0.0.1. */
  port: number;
  /** The request target, say `/ws/chat?token=x`. */
  path: string;
  /** Header lines after `Host`, written in this order and spelling. */
  headers?: Record<string, string>;
  /** Default "GET". */
  method?: string;
}

/** What came back: the status line's code, the headers and the body as text. */
export interface RawResponse {
  status: number;
  headers: Headers;
  /** The body; empty for a 101, whose connection then carries WebSocket frames. */
  body: string;
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
  const lines = [
    `${options.method ?? "GET"} ${options.path} HTTP/1.1`,
    "Host: 127.0.0.1",
    ...Object.entries(options.headers ?? {}).map(([name, value]) => `${name}: ${value}`),
  ];
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: options.port });
  try {
    await writeAll(conn, encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
    const reader = new ByteReader(conn);
    const head = decoder.decode(await reader.until(headEnd)).split("\r\n");
    const status = Number(head[0]?.split(" ")[1]);
    const headers = new Headers();
    for (const line of head.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    const length = status === 101 ? 0 : Number(headers.get("content-length") ?? 0);
    const body = decoder.decode(await reader.until(() => length));
    return { status, headers, body };
  } finally {
    conn.close();
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let written = 0;
  while (written < bytes.length) written += await conn.write(bytes.subarray(written));
}

/** Where the head ends (its CRLFCRLF consumed), or -1 while it has not arrived. */
function headEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i + 4;
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

  /**
   * Reads until `size(buffer)` names a length the buffer holds, returns that
   * many bytes (a head's CRLFCRLF is dropped) and keeps the rest.
   */
  async until(size: (buffer: Uint8Array) => number): Promise<Uint8Array> {
    let n: number;
    while ((n = size(this.#buffer)) < 0 || n > this.#buffer.length) {
      const chunk = new Uint8Array(16_384);
      const read = await this.#conn.read(chunk);
      if (read === null) throw new Error(`Connection closed after ${this.#buffer.length} bytes`);
      const next = new Uint8Array(this.#buffer.length + read);
      next.set(this.#buffer);
      next.set(chunk.subarray(0, read), this.#buffer.length);
      this.#buffer = next;
    }
    const taken = this.#buffer.subarray(0, n);
    this.#buffer = this.#buffer.slice(n);
    return size === headEnd ? taken.subarray(0, n - 4) : taken;
  }
}
