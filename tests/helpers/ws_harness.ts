/**
 * A chat server on 127.0.0.1 for the hardening tests, and a raw TCP client
 * that does the handshake by hand so it can stop reading or stop answering
 * pings. The WebSocket client is `TestClient` in `ws_client.ts`.
 *
 * ```ts
 * await using server = await startServer({ AUTH_SECRET: "s" });
 * await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
 * await alice.next("welcome");
 * ```
 *
 * @module
 */

import { type App, createApp } from "../../app.ts";
import { loadConfig } from "../../chat/config.ts";

/** A running app served on 127.0.0.1. */
export interface TestServer extends AsyncDisposable {
  /** The application, for its manager and metrics. */
  readonly app: App;
  /** The port on 127.0.0.1. */
  readonly port: number;
  /** A `ws://` URL for a path. */
  url(path: string): string;
  /** An `http://` URL for a path. */
  httpUrl(path: string): string;
}

/** Starts the app on a free port with `env` as its environment; nothing else is read. */
export async function startServer(env: Record<string, string> = {}): Promise<TestServer> {
  // Memory unless a test asks for another engine: nothing is written to disk.
  const app = await createApp(loadConfig({ CHAT_ENGINE: "memory", ...env }));
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.handler);
  const port = server.addr.port;
  return {
    app,
    port,
    url: (path) => `ws://127.0.0.1:${port}${path}`,
    httpUrl: (path) => `http://127.0.0.1:${port}${path}`,
    async [Symbol.asyncDispose]() {
      await app[Symbol.asyncDispose]();
      await server.shutdown();
    },
  };
}

/** One WebSocket frame as read by {@linkcode RawClient}. */
export interface RawFrame {
  fin: boolean;
  opcode: number;
  payload: Uint8Array;
}

/** The answer to a hand-made handshake. */
export interface RawHandshake {
  status: number;
  headers: Headers;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A WebSocket client on a bare TCP connection: it reads only when asked,
 * so it can play a slow consumer or a half-open peer.
 */
export class RawClient implements AsyncDisposable {
  #conn: Deno.TcpConn;
  #buffer = new Uint8Array(0);
  #closed = false;

  private constructor(conn: Deno.TcpConn) {
    this.#conn = conn;
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
  async handshake(path: string, headers: Record<string, string> = {}): Promise<RawHandshake> {
    const key = btoa(String.fromCharCode(...crypto.getRandomValues(new Uint8Array(16))));
    const extra = Object.entries(headers);
    const host = extra.find(([name]) => name.toLowerCase() === "host")?.[1] ?? "127.0.0.1";
    const lines = [
      `GET ${path} HTTP/1.1`,
      `Host: ${host}`,
      "Upgrade: websocket",
      "Connection: Upgrade",
      `Sec-WebSocket-Key: ${key}`,
      "Sec-WebSocket-Version: 13",
      ...extra.filter(([name]) => name.toLowerCase() !== "host")
        .map(([name, value]) => `${name}: ${value}`),
    ];
    await this.#write(encoder.encode(lines.join("\r\n") + "\r\n\r\n"));
    let end: number;
    while ((end = indexOfHeadEnd(this.#buffer)) < 0) {
      if (!(await this.#read())) throw new Error("Connection closed during the handshake");
    }
    const head = decoder.decode(this.#buffer.subarray(0, end)).split("\r\n");
    this.#buffer = this.#buffer.slice(end + 4);
    const status = Number(head[0]?.split(" ")[1]);
    const result = new Headers();
    for (const line of head.slice(1)) {
      const colon = line.indexOf(":");
      if (colon > 0) result.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
    }
    return { status, headers: result };
  }

  /** Sends one masked frame. */
  async sendFrame(opcode: number, payload: Uint8Array, fin = true): Promise<void> {
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
    await this.#write(frame);
  }

  /** Sends a text frame. */
  sendText(text: string): Promise<void> {
    return this.sendFrame(0x1, encoder.encode(text));
  }

  /** Reads the next frame; null when the connection ended. */
  async readFrame(): Promise<RawFrame | null> {
    if (!(await this.#fill(2))) return null;
    const b0 = this.#buffer[0]!;
    const b1 = this.#buffer[1]!;
    let length = b1 & 0x7f;
    let offset = 2;
    if (length === 126) {
      if (!(await this.#fill(4))) return null;
      length = (this.#buffer[2]! << 8) | this.#buffer[3]!;
      offset = 4;
    } else if (length === 127) {
      if (!(await this.#fill(10))) return null;
      length = 0;
      for (let i = 2; i < 10; i++) length = length * 256 + this.#buffer[i]!;
      offset = 10;
    }
    if (!(await this.#fill(offset + length))) return null;
    const payload = this.#buffer.slice(offset, offset + length);
    this.#buffer = this.#buffer.slice(offset + length);
    return { fin: (b0 & 0x80) !== 0, opcode: b0 & 0x0f, payload };
  }

  /**
   * Reads frames until a close frame or the end; returns the close code
   * (1005 for none, 1006 for an end without a close frame) and the text
   * frames seen on the way.
   */
  async readUntilClose(): Promise<{ code: number; reason: string; texts: number }> {
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

  async #write(bytes: Uint8Array): Promise<void> {
    let written = 0;
    while (written < bytes.length) written += await this.#conn.write(bytes.subarray(written));
  }

  async #fill(size: number): Promise<boolean> {
    while (this.#buffer.length < size) if (!(await this.#read())) return false;
    return true;
  }

  async #read(): Promise<boolean> {
    const chunk = new Uint8Array(65536);
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

function indexOfHeadEnd(bytes: Uint8Array): number {
  for (let i = 0; i + 3 < bytes.length; i++) {
    if (bytes[i] === 13 && bytes[i + 1] === 10 && bytes[i + 2] === 13 && bytes[i + 3] === 10) {
      return i;
    }
  }
  return -1;
}
