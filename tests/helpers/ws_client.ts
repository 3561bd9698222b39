/**
 * The WebSocket test client, over Deno's built-in `WebSocket`: it keeps
 * every received frame, lets a test await the next frame that matches, and
 * exposes the chosen subprotocol and the close. It never leaves a timer
 * behind.
 *
 * ```ts
 * await using alice = await TestClient.connect(server.url("/ws/chat/Alice"));
 * await alice.next("welcome");
 * alice.sendJson({ type: "message", message: "hi" });
 * await alice.next((f) => f.type === "message" && f.message === "hi");
 * ```
 *
 * @module
 */

import type { Frame } from "./fakes.ts";

/** How a socket closed. */
export interface CloseInfo {
  /** The close code; 1006 when the connection dropped without a close frame. */
  code: number;
  /** The close reason; empty when none was sent. */
  reason: string;
}

/** Options of {@linkcode TestClient.connect}. */
export interface ConnectOptions {
  /** Milliseconds to wait for the open event. Default 10000. */
  timeoutMs?: number;
  /** Handshake headers such as Origin (a Deno extension). Default: none. */
  headers?: HeadersInit;
  /** Offered subprotocols (`Sec-WebSocket-Protocol`). Default: none. */
  protocols?: string[];
}

interface Waiter {
  match: (text: string) => boolean;
  resolve: (text: string) => void;
  reject: (error: Error) => void;
  timer: ReturnType<typeof setTimeout>;
}

const DEFAULT_TIMEOUT_MS = 10_000;

function parse(text: string): Frame | undefined {
  try {
    const value: unknown = JSON.parse(text);
    return typeof value === "object" && value !== null && !Array.isArray(value)
      ? value as Frame
      : undefined;
  } catch {
    return undefined;
  }
}

function open(url: string | URL, options: ConnectOptions): WebSocket {
  if (options.headers === undefined) return new WebSocket(url, options.protocols);
  const init = { protocols: options.protocols, headers: options.headers };
  // deno-lint-ignore no-explicit-any -- Deno takes handshake headers in the second argument.
  return new WebSocket(url, init as any);
}

/** A connected test client; dispose it (or `close()`) before the test ends. */
export class TestClient implements AsyncDisposable {
  /** Every message received, in order; a binary one as `<binary N>`. */
  readonly texts: string[] = [];
  /** Every received message that is a JSON object, parsed, in order. */
  readonly frames: Frame[] = [];
  /** Resolves once the socket has closed, from either side; never rejects. */
  readonly closed: Promise<CloseInfo>;
  readonly #ws: WebSocket;
  #cursor = 0;
  #waiters = new Set<Waiter>();
  #closeInfo: CloseInfo | undefined;

  private constructor(ws: WebSocket) {
    this.#ws = ws;
    this.closed = new Promise((resolve) => {
      ws.addEventListener("close", (event) => {
        this.#closeInfo = { code: event.code, reason: event.reason };
        for (const w of this.#waiters) {
          clearTimeout(w.timer);
          w.reject(new Error(`Socket closed while waiting: ${event.code} ${event.reason}`));
        }
        this.#waiters.clear();
        resolve(this.#closeInfo);
      });
    });
    ws.addEventListener("message", (event) => this.#receive(event.data));
    // An error is followed by the close, which is what the tests look at.
    ws.addEventListener("error", () => {});
  }

  /**
   * Opens a socket; resolves on open, rejects with the close code when the
   * handshake fails or `timeoutMs` passes.
   */
  static connect(url: string | URL, options: ConnectOptions = {}): Promise<TestClient> {
    const ws = open(url, options);
    ws.binaryType = "arraybuffer";
    const client = new TestClient(ws);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        ws.close();
        client.closed.then(() => reject(new Error(`Timed out connecting: ${url}`)));
      }, options.timeoutMs ?? DEFAULT_TIMEOUT_MS);
      ws.addEventListener("open", () => {
        clearTimeout(timer);
        resolve(client);
      }, { once: true });
      client.closed.then((info) => {
        clearTimeout(timer);
        reject(new Error(`Handshake failed: ${info.code} ${info.reason}`));
      });
    });
  }

  /** The close info once closed, otherwise undefined. */
  get closeInfo(): CloseInfo | undefined {
    return this.#closeInfo;
  }

  /** The subprotocol the server chose; empty when none. */
  get protocol(): string {
    return this.#ws.protocol;
  }

  /** Sends a text or binary frame as it is. */
  send(data: string | Uint8Array<ArrayBuffer>): void {
    this.#ws.send(data);
  }

  /** Sends a value as a JSON text frame. */
  sendJson(value: unknown): void {
    this.#ws.send(JSON.stringify(value));
  }

  /**
   * Forgets every frame received so far, so a test that moves a lot of data
   * keeps its own memory flat; later frames are kept and matched as before.
   */
  clear(): void {
    this.texts.length = 0;
    this.frames.length = 0;
    this.#cursor = 0;
  }

  /**
   * Resolves with the first unconsumed text frame (received before or after
   * the call) that matches, and consumes it and every frame before it.
   * Rejects after `timeoutMs` or when the socket closes first.
   */
  nextText(match: (text: string) => boolean, timeoutMs = DEFAULT_TIMEOUT_MS): Promise<string> {
    for (let i = this.#cursor; i < this.texts.length; i++) {
      const text = this.texts[i]!;
      if (match(text)) {
        this.#cursor = i + 1;
        return Promise.resolve(text);
      }
    }
    this.#cursor = this.texts.length;
    if (this.#closeInfo !== undefined) {
      const { code, reason } = this.#closeInfo;
      return Promise.reject(new Error(`Socket closed while waiting: ${code} ${reason}`));
    }
    return new Promise((resolve, reject) => {
      const waiter: Waiter = {
        match,
        resolve,
        reject,
        timer: setTimeout(() => {
          this.#waiters.delete(waiter);
          reject(new Error(`No matching frame within ${timeoutMs} ms; got: ${this.#tail()}`));
        }, timeoutMs),
      };
      this.#waiters.add(waiter);
    });
  }

  /** Like {@linkcode nextText} for JSON object frames; a string matches `type`. */
  async next(
    match: string | ((frame: Frame) => boolean),
    timeoutMs = DEFAULT_TIMEOUT_MS,
  ): Promise<Frame> {
    const test = typeof match === "string" ? (f: Frame) => f.type === match : match;
    const text = await this.nextText((t) => {
      const frame = parse(t);
      return frame !== undefined && test(frame);
    }, timeoutMs);
    return parse(text)!;
  }

  /** Resolves with the close info once closed; rejects after `timeoutMs`. */
  async waitClosed(timeoutMs = DEFAULT_TIMEOUT_MS): Promise<CloseInfo> {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const limit = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error(`Not closed within ${timeoutMs} ms; got: ${this.#tail()}`)),
        timeoutMs,
      );
    });
    try {
      return await Promise.race([this.closed, limit]);
    } finally {
      clearTimeout(timer);
    }
  }

  /** Closes the socket (default code 1000) and resolves once the close event has fired. */
  close(code = 1000, reason?: string): Promise<CloseInfo> {
    if (this.#closeInfo === undefined && this.#ws.readyState < WebSocket.CLOSING) {
      this.#ws.close(code, reason);
    }
    return this.closed;
  }

  /** Closes the socket. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }

  #receive(data: unknown): void {
    const text = typeof data === "string" ? data : `<binary ${(data as ArrayBuffer).byteLength}>`;
    this.texts.push(text);
    const frame = typeof data === "string" ? parse(text) : undefined;
    if (frame !== undefined) this.frames.push(frame);
    this.#dispatch();
  }

  #dispatch(): void {
    for (const w of this.#waiters) {
      for (let i = this.#cursor; i < this.texts.length; i++) {
        const text = this.texts[i]!;
        if (w.match(text)) {
          this.#cursor = i + 1;
          clearTimeout(w.timer);
          this.#waiters.delete(w);
          w.resolve(text);
          break;
        }
      }
    }
  }

  #tail(): string {
    // Each cut short, so that a long welcome does not hide the frames after it.
    return this.texts.slice(-6).map((text) => text.slice(0, 160)).join(" | ");
  }
}
