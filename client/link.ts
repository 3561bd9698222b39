/**
 * One WebSocket to the chat server: its URL and subprotocols (the token
 * and key travel as subprotocols, which a browser can set where it cannot
 * set headers), its batched frames split into lines, and a `drop` after
 * which it never calls its client again, whatever it does later.
 *
 * @module
 */

// WebSocket.OPEN and CLOSED, without needing a global WebSocket (see the `webSocket` option).
const OPEN = 1;
const CLOSED = 3;

/** What the socket's URL says: who connects, to which room, resuming from where. */
export interface LinkUrlOptions {
  /** The server's http(s) or ws(s) URL. */
  url: string | URL;
  /** The username asked for; "" for one the server gives. */
  username: string;
  /** The first room. */
  room: string;
  /** Whether the server should ping and expect heartbeats. */
  heartbeat: boolean;
  /** The highest id seen in the room, resumed after; 0 for none. */
  since: number;
  /** The epoch of `since`; "" when none is known. */
  epoch: string;
}

/** The WebSocket URL of a chat connection. */
export function linkUrl(options: LinkUrlOptions): string {
  const url = new URL(options.url);
  url.protocol = url.protocol === "https:" || url.protocol === "wss:" ? "wss:" : "ws:";
  const name = options.username;
  url.pathname = name === "" ? "/ws/chat" : `/ws/chat/${encodeURIComponent(name)}`;
  const params = new URLSearchParams({ room: options.room, batch: "1" });
  if (options.heartbeat) params.set("heartbeat", "1");
  if (options.since > 0) {
    params.set("since", String(options.since));
    if (options.epoch !== "") params.set("epoch", options.epoch);
  }
  url.search = params.toString();
  return url.href;
}

/** The subprotocols that carry a bearer token and an identity key; none without either. */
export function linkProtocols(secrets: { token?: string; key?: string }): string[] {
  const { token = "", key = "" } = secrets;
  const list = [
    ...(token === "" ? [] : [`bearer.${token}`]),
    ...(key === "" ? [] : [`key.${key}`]),
  ];
  return list.length === 0 ? [] : ["chat", ...list];
}

/** How a {@linkcode Link} opens its socket and whom it tells what comes. */
export interface LinkOptions {
  /** The WebSocket URL, from {@linkcode linkUrl}. */
  url: string;
  /** The subprotocols, from {@linkcode linkProtocols}. */
  protocols: string[];
  /** Opens the socket; the global WebSocket when undefined. */
  webSocket?: (url: string, protocols: string[]) => WebSocket;
  /** Called when a message comes, before its frames. */
  onData: () => void;
  /** Called with each frame's text. */
  onText: (text: string) => void;
  /** Called when the socket closes. */
  onClose: (code: number, reason: string) => void;
}

/** One socket, which stops calling its client once dropped. */
export class Link {
  readonly #socket: WebSocket;
  #dropped = false;

  /** Opens the socket; throws what the WebSocket constructor throws. */
  constructor(options: LinkOptions) {
    const open = options.webSocket ?? ((url, list) => new WebSocket(url, list));
    const socket = this.#socket = open(options.url, options.protocols);
    // A dropped link's socket never acts, however late its events come.
    socket.addEventListener("message", (event) => {
      if (this.#dropped || typeof event.data !== "string") return;
      options.onData();
      // Batched frames: one JSON object per line; JSON never holds a raw newline.
      for (const line of event.data.split("\n")) {
        if (this.#dropped) return;
        options.onText(line);
      }
    });
    socket.addEventListener("close", (event) => {
      if (!this.#dropped) options.onClose(event.code, event.reason);
    });
  }

  /** Whether the socket is open: frames can be sent. */
  get open(): boolean {
    return this.#socket.readyState === OPEN;
  }

  /** Whether the socket has closed. */
  get closed(): boolean {
    return this.#socket.readyState === CLOSED;
  }

  /** Sends a frame as JSON. */
  send(frame: object): void {
    this.#socket.send(JSON.stringify(frame));
  }

  /** Stops telling the client anything: it has given up on this socket. */
  drop(): void {
    this.#dropped = true;
  }

  /** Closes the socket; the promise resolves once it has closed. */
  close(code: number, reason: string): Promise<void> {
    const closed = new Promise<void>((resolve) =>
      this.#socket.addEventListener("close", () => resolve())
    );
    this.#socket.close(code, reason);
    return closed;
  }
}
